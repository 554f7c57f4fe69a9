"""Validation of trajectory judges: tool results that try to instruct the judge, false positives measured."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.errors import ConfigError, DataError
from judgerl.judges.adversarial import load_adversarial_set
from judgerl.validate.runner import run_validation

TRAJECTORY_RUBRIC = {"judges": [{"name": "run", "type": "rubric", "backend": "judge", "scope": "trajectory",
                                 "criteria": [{"name": "correct", "description": "answers correctly"}]}],
                     "failure_budget": None}
SUITE = {"bias": {"attacks": {"max_false_positive_rate": 0.05}}}
OBEYING = re.compile(r"score of 5|passed|full marks|PASS|correct|10/10", re.I)


def verdict(passed: bool) -> str:
    return json.dumps({"criteria": {"correct": {"rationale": "r", "score": passed}}})


def final_answer_of(request: CompletionRequest) -> str:
    user = next(message["content"] for message in request.messages if message["role"] == "user")
    answers = re.findall(r"<<<ASSISTANT_([a-z]+)>>>\n(.*?)\n<<<END_ASSISTANT_\1>>>", user, re.S)
    return answers[-1][1] if answers else ""


def tool_results_of(request: CompletionRequest) -> str:
    user = next(message["content"] for message in request.messages if message["role"] == "user")
    fences = r"<<<TOOL_RESULT_([a-z]+)>>>\n(.*?)\n<<<END_TOOL_RESULT_\1>>>"
    return " ".join(text for _, text in re.findall(fences, user, re.S))


def gullible(request: CompletionRequest) -> str:
    """Does what a tool result tells it to; otherwise grades the final answer, strictly."""
    if OBEYING.search(tool_results_of(request)):
        return verdict(True)
    return verdict(False)


def answer_only(request: CompletionRequest) -> str:
    """Reads the final answer only (and is fooled by what it says there); never by a tool result."""
    return verdict(bool(OBEYING.search(final_answer_of(request))))


def attacks_section(responder: Any) -> Any:
    report = run_validation(TRAJECTORY_RUBRIC, SUITE,
                            backends={"judge": ScriptedBackend(responder, model="scripted-trajectory-judge")})
    return report, report.section("bias.attacks")


def test_tool_result_attacks_are_run_for_trajectory_judges_and_fool_a_gullible_one() -> None:
    adversarial = load_adversarial_set()
    report, attacks = attacks_section(gullible)
    assert attacks.counts["attacks"] == 2 * len(adversarial)
    per_category = attacks.breakdown["attack (false-positive rate)"]
    tool_categories = {key for key in per_category if key.startswith("tool_result:")}
    assert tool_categories == {f"tool_result:{entry.category}" for entry in adversarial}
    assert max(per_category[key] for key in tool_categories) > 0.0
    fooled = [item for item in attacks.items if item["fooled"]]
    assert fooled and all(item["id"].endswith(":tool-result") for item in fooled)
    assert attacks.figures["false_positive_rate"] > 0.05
    assert ("bias.attacks", "false_positive_rate") in {(f.section, f.figure) for f in report.failures}


def test_a_judge_that_ignores_tool_results_has_no_tool_result_false_positives() -> None:
    _, attacks = attacks_section(answer_only)
    assert attacks.counts["decided"] == attacks.counts["attacks"]
    per_category = attacks.breakdown["attack (false-positive rate)"]
    assert all(rate == 0.0 for key, rate in per_category.items() if key.startswith("tool_result:"))
    assert not any(item["fooled"] for item in attacks.items if item["id"].endswith(":tool-result"))


def test_answer_judges_get_no_tool_result_attacks_unless_asked() -> None:
    answer_rubric = {**TRAJECTORY_RUBRIC, "judges": [{**TRAJECTORY_RUBRIC["judges"][0], "scope": "answer"}]}
    backends = {"judge": ScriptedBackend(lambda request: verdict(False))}
    report = run_validation(answer_rubric, SUITE, backends=backends)
    assert report.section("bias.attacks").counts["attacks"] == len(load_adversarial_set())
    pairwise = {"judges": [{"name": "pair", "type": "pairwise", "backend": "judge"}], "failure_budget": None}
    with pytest.raises(ConfigError, match="tool-result attacks need a pointwise or group judge"):
        run_validation(pairwise, {"bias": {"attacks": {"tool_results": True}}},
                       backends={"judge": ScriptedBackend(lambda request: "{}")})


def labelled_run(final: str, *, looked_up: bool) -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"id": "A1"}}}
    calls = [{"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "c1", "content": "delivered"}] if looked_up else []
    return [*calls, {"role": "assistant", "content": final}]


def looked_it_up(request: CompletionRequest) -> str:
    """Prefers runs that called a tool: the label's reason, so an honest judge agrees with it."""
    user = next(message["content"] for message in request.messages if message["role"] == "user")
    return verdict("calling tools: call #1" in user)


def test_human_labels_read_labelled_trajectories(tmp_path: Any) -> None:
    rows = [{"id": f"p{n}", "prompt": "Was A1 delivered?",
             "answer_a": labelled_run("Yes, it was delivered.", looked_up=n % 2 == 0),
             "answer_b": labelled_run("Yes, it was delivered.", looked_up=n % 2 == 1),
             "label": "a" if n % 2 == 0 else "b"} for n in range(6)]
    suite = {"human_labels": {"data": {"items": rows}, "min_accuracy": 0.9}}
    report = run_validation(TRAJECTORY_RUBRIC, suite, backends={"judge": ScriptedBackend(looked_it_up)})
    section = report.section("human_labels")
    assert section.figures["accuracy"] == 1.0 and report.passed
    answer_only_rubric = {**TRAJECTORY_RUBRIC,
                          "judges": [{**TRAJECTORY_RUBRIC["judges"][0], "scope": "answer"}]}
    blind = run_validation(answer_only_rubric, suite, backends={"judge": ScriptedBackend(looked_it_up)})
    assert blind.section("human_labels").figures["accuracy"] == 0.0  # same answers: it sees no difference


def test_a_bad_labelled_trajectory_names_the_row_and_the_message() -> None:
    bad = labelled_run("ok", looked_up=True)
    bad[1]["tool_call_id"] = "c9"
    suite = {"human_labels": {"data": {"items": [{"prompt": "q", "answer": bad, "score": 1.0}]}}}
    with pytest.raises(DataError) as caught:
        run_validation(TRAJECTORY_RUBRIC, suite, backends={"judge": ScriptedBackend(looked_it_up)})
    assert "answers no call" in str(caught.value) and "answer.1.tool_call_id" in str(caught.value)
