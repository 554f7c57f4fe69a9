"""Tool-use checks on crafted trajectories: arguments, call rules, grounding, invented results, gates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from judgerl.checks import build_check
from judgerl.config import CheckConfig
from judgerl.errors import ConfigError, DataError
from judgerl.trajectory import parse_tools, parse_trajectory
from judgerl.types import Rollout, Sample

TOOLS = parse_tools([
    {"type": "function", "function": {"name": "lookup_order", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "string", "pattern": "^A[0-9]+$"}},
        "required": ["order_id"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "refund_policy", "parameters": {
        "type": "object", "properties": {"category": {"enum": ["electronics", "clothing"]}},
        "required": ["category"]}}},
])
SAMPLE = Sample("t1", [{"role": "user", "content": "Can I get a refund for order A17?"}])


def call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def rollout(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = TOOLS) -> Rollout:
    trajectory = parse_trajectory(messages)
    final = next((m["content"] for m in reversed(trajectory) if m["role"] == "assistant"), "")
    return Rollout("t1", final, id="t1/0", trajectory=trajectory, tools=tools)


GOOD = [
    {"role": "assistant", "content": "", "tool_calls": [call("c1", "lookup_order", {"order_id": "A17"})]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"order_id": "A17", "total": "59.90", "category": '
                                                      '"electronics", "delivered": "2026-11-02"}'},
    {"role": "assistant", "content": "",
     "tool_calls": [call("c2", "refund_policy", {"category": "electronics"})]},
    {"role": "tool", "tool_call_id": "c2", "content": "Electronics: refunds within 30 days of delivery."},
    {"role": "assistant", "content": "Order A17 (59.90) was delivered on 2026-11-02; you can get a refund "
                                     "within 30 days."},
]


def check(kind: str, **options: Any) -> Any:
    return build_check(CheckConfig(name=kind, type=kind, **options), Path("."))


def test_tool_arguments_share_of_valid_calls_with_the_reason() -> None:
    arguments = check("tool_arguments")
    assert arguments(SAMPLE, rollout(GOOD)).value == 1.0
    bad = [
        {"role": "assistant", "content": "", "tool_calls": [call("c1", "lookup_order", {"order": "A17"}),
                                                            call("c2", "refund_policy", {"category": "food"}),
                                                            call("c3", "delete_account", {}),
                                                            call("c4", "lookup_order", {"order_id": "A9"})]},
        *({"role": "tool", "tool_call_id": f"c{n}", "content": "x"} for n in range(1, 5)),
        {"role": "assistant", "content": "Done."}]
    score = arguments(SAMPLE, rollout(bad))
    assert score.value == 0.25 and score.details["valid"] == 1
    problems = score.details["problems"]
    assert "'order_id' is a required property" in problems[0]
    assert "category: 'food' is not one of" in problems[1]
    assert "no such tool" in problems[2] and "message 0" in problems[2]


def test_tool_arguments_without_calls_or_schemas() -> None:
    arguments = check("tool_arguments", no_calls_score=0.0)
    assert arguments(SAMPLE, Rollout("t1", "Sure.")).value == 0.0
    with pytest.raises(DataError) as caught:  # the row's data_error (file, line, field 'tools')
        arguments(SAMPLE, rollout(GOOD, tools=None))
    assert caught.value.field == "tools" and "no tool schemas" in str(caught.value)
    from_sample = Sample("t1", SAMPLE.messages, metadata={"tools": [tool["function"] for tool in TOOLS]})
    assert arguments(from_sample, rollout(GOOD, tools=None)).value == 1.0


def test_tool_calls_rules() -> None:
    rules = check("tool_calls", required=["lookup_order", "refund_policy"], forbidden=["delete_account"],
                  max_calls=3, max_per_tool={"lookup_order": 1})
    assert rules(SAMPLE, rollout(GOOD)).value == 1.0
    lazy = rules(SAMPLE, Rollout("t1", "Yes, refunds are always fine."))
    assert lazy.value == 0.0 and lazy.details["violations"] == ["required tool 'lookup_order' not called",
                                                                "required tool 'refund_policy' not called"]
    twice = [GOOD[0], GOOD[1], {"role": "assistant", "content": "", "tool_calls": [
        call("c3", "lookup_order", {"order_id": "A17"}), call("c4", "delete_account", {})]},
        {"role": "tool", "tool_call_id": "c3", "content": "x"},
        {"role": "tool", "tool_call_id": "c4", "content": "x"},
        *GOOD[2:]]
    score = rules(SAMPLE, rollout(twice))
    assert score.value == 0.0
    assert score.details["violations"] == ["forbidden tool 'delete_account' called 1 time",
                                           "4 calls, more than 3",
                                           "'lookup_order' called 2 times, more than 1"]
    with pytest.raises(ConfigError, match="both required and forbidden"):
        check("tool_calls", required=["x"], forbidden=["x"])
    with pytest.raises(ConfigError, match="max_calls"):
        check("tool_calls", min_calls=3, max_calls=1)


def test_tool_grounding_finds_invented_facts() -> None:
    grounding = check("tool_grounding")
    assert grounding(SAMPLE, rollout(GOOD)).value == 1.0
    answer = "Order A17 (59.90) qualifies: you get 120.00 back within 90 days."
    invented = [*GOOD[:-1], {"role": "assistant", "content": answer}]
    score = grounding(SAMPLE, rollout(invented))
    assert score.details["ungrounded"] == ["120.00", "90"] and score.value == pytest.approx(2 / 4)
    assert grounding(SAMPLE, Rollout("t1", "Refunds take 14 days.")).value == 0.0  # nothing looked up
    assert grounding(SAMPLE, Rollout("t1", "Please wait.")).details == {"facts": 0}
    with pytest.raises(ConfigError, match="pattern"):
        check("tool_grounding", pattern="(")


def test_quote_grounding_pointed_at_tool_results() -> None:
    quotes = check("quote_grounding", source_field="tool_results", path="quotes[*]")
    answer = '{"quotes": ["refunds within 30 days of delivery", "refunds within 90 days"]}'
    score = quotes(SAMPLE, rollout([*GOOD[:-1], {"role": "assistant", "content": answer}]))
    assert score.value == 0.5 and score.details["per_item"] == ["grounded", "not_found"]


def test_tool_results_authentic() -> None:
    authentic = check("tool_results_authentic")
    assert authentic(SAMPLE, rollout(GOOD)).value == 1.0
    faked = [{"role": "assistant", "content": 'Checking... <tool_response>{"total": "0.00"}</tool_response> '
                                              "So it is free."}]
    score = authentic(SAMPLE, rollout([*faked, {"role": "assistant", "content": "Refund approved."}]))
    assert score.value == 0.0 and "imitates a tool result ('<tool_response>')" in score.rationale
    went_on = [GOOD[0], {"role": "assistant", "content": "Your order was delivered yesterday."}]
    score = authentic(SAMPLE, rollout(went_on))
    assert score.value == 0.0 and "without the result of call(s) c1" in score.rationale
    assert check("tool_results_authentic", require_results=False)(SAMPLE, rollout(went_on)).value == 1.0


def test_a_tool_rule_gates_the_judge_as_any_check_does() -> None:
    from judgerl.backends.scripted import ScriptedBackend
    from judgerl.reward.pipeline import RewardPipeline

    verdict = '{"criteria": {"helpful": {"rationale": "ok", "score": true}}}'
    backend = ScriptedBackend(lambda request: verdict)
    config = {"backends": {"judge": {"type": "scripted"}},
              "checks": [{"name": "looked_up", "type": "tool_calls", "required": ["lookup_order"],
                          "gate": True, "gate_score": 0.0},
                         {"name": "arguments", "type": "tool_arguments"}],
              "judges": [{"name": "run", "type": "rubric", "scope": "trajectory",
                          "criteria": [{"name": "helpful", "description": "Answers the question."}]}]}
    with RewardPipeline.from_config(config, backends={"judge": backend}) as pipeline:
        good, lazy = pipeline.score_batch_sync([(SAMPLE, rollout(GOOD)),
                                                (SAMPLE, Rollout("t1", "Yes.", id="t1/1"))])
    assert good.status == "ok" and good.value == 1.0
    assert good.components == {"looked_up": 1.0, "arguments": 1.0, "run": 1.0}
    assert lazy.status == "gated" and lazy.value == 0.0
    assert len(backend.calls) == 1  # the gated rollout never reached the judge


def test_the_default_fact_pattern_leaves_trailing_punctuation_out() -> None:
    import re

    from judgerl.checks.tool_use import DEFAULT_FACT_PATTERN

    text = "Order A1001: 129.99, delivered 2026-11-02 at 12:30. Total 1,200 (3 items)."
    assert re.findall(DEFAULT_FACT_PATTERN, text) == ["A1001", "129.99", "2026-11-02", "12:30", "1,200", "3"]
