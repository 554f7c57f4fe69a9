"""The verl reward on a tool-using agent-loop rollout: judged as a trajectory, per-turn scores kept.

Why: verl 0.9.1's agent loop hands the reward function only the decoded response text and
`extra_info`, into which its reward manager merges the agent loop's `extra_fields`
(`NaiveRewardManager.run_single`: `extra_info.update(tool_extra_fields.items())`). judgerl's agent
loop (`judgerl.adapters.verl_agent`) puts the conversation there as `messages` and the tool
schemas as `tools`. These tests read those facts from verl's installed source (so a verl release
that moves them fails here), then call the reward function the way verl loads and calls it, with
`extra_info` merged exactly as `run_single` merges it. `test_engine_verl_agent.py` runs the real
agent loop and reward loop end to end where ray is installed.
"""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.reward.pipeline import RewardPipeline

pytest.importorskip("hydra", reason="needs the `engines` extra (scripts/setup installs it)")
import judgerl.adapters.verl as adapter
from judgerl.adapters import clear_pipelines
from test_engine_verl import (
    VERL_CONFIG_DIR,
    VERL_ROOT,
    call_like_naive,
    compose_verl,
    verl_get_custom_reward_fn,  # noqa: F401  (a fixture)
)

ROOT = Path(__file__).resolve().parents[1]
TOOLS = json.loads((ROOT / "examples" / "support_agent" / "tools.json").read_text())
PROMPT = [{"role": "system", "content": "You are the support agent of Northwind Shop."},
          {"role": "user", "content": "Can I return the headphones from order A1001?"}]
ORDER = json.dumps({"order_id": "A1001", "item": "Noise-cancelling headphones", "category": "electronics",
                    "total": "129.99", "days_since_delivery": 12})
POLICY = "Electronics: full refund within 30 days of delivery."
ANSWER = ("Order A1001 was delivered 12 days ago; electronics are refundable within 30 days, "
          "so 129.99 comes back.")


def verl_messages(answer: str = ANSWER, arguments: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The conversation as verl's ToolAgentLoop builds it: calls without ids (the hermes parser
    gives none), arguments as JSON text, tool messages with no `tool_call_id`."""
    def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
    return [*PROMPT,
            {"role": "assistant", "content": "Let me look that up.",
             "tool_calls": [call("lookup_order", arguments or {"order_id": "A1001"})]},
            {"role": "tool", "content": ORDER},
            {"role": "assistant", "content": "",
             "tool_calls": [call("refund_policy", {"category": "electronics"})]},
            {"role": "tool", "content": POLICY},
            {"role": "assistant", "content": answer}]


def merged_extra_info(messages: list[dict[str, Any]],
                      dataset_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`extra_info` as `NaiveRewardManager.run_single` builds it for an agent-loop rollout."""
    extra_info = dict(dataset_extra or {"index": 7, "split": "train"})
    tool_extra_fields = {"raw_prompt": PROMPT, "turn_scores": [], "tool_rewards": [],
                         "messages": messages, "tools": TOOLS}  # the agent loop's extra_fields
    extra_info.update(tool_extra_fields.items())
    extra_info["num_turns"] = 6
    extra_info["rollout_reward_scores"] = {}
    return extra_info


def config(tmp: Path | None = None) -> dict[str, Any] | Path:
    body = {
        "backends": {"judge": {"type": "scripted",
                               "answer": {"criteria": {"good": {"score": True, "rationale": "fine"}}}}},
        "runtime": {"max_attempts": 1},
        "checks": [{"name": "looked_up", "type": "tool_calls", "required": ["lookup_order", "refund_policy"],
                    "gate": True, "gate_score": 0.0},
                   {"name": "arguments", "type": "tool_arguments"},
                   {"name": "grounded", "type": "tool_grounding"}],
        "judges": [{"name": "resolution", "type": "rubric", "backend": "judge", "scope": "trajectory",
                    "criteria": [{"name": "good", "description": "Says what happens next."}]},
                   {"name": "tone", "type": "rubric", "backend": "judge", "scope": "turns",
                    "criteria": [{"name": "good", "description": "Polite."}]}],
        "failure_budget": None}
    if tmp is None:
        return body
    path = tmp / "reward.json.yaml"
    path.write_text(json.dumps(body), encoding="utf-8")  # JSON is YAML
    return path


def verl_source(relative: str) -> ast.Module:
    return ast.parse((VERL_ROOT / relative).read_text())


def test_verl_merges_the_agent_loops_extra_fields_into_extra_info() -> None:
    """The two facts the wiring rests on, read from verl's source."""
    naive = ast.unparse(verl_source("experimental/reward_loop/reward_manager/naive.py"))
    assert "tool_extra_fields = data_item.non_tensor_batch.get('tool_extra_fields', None)" in naive
    assert "extra_info.update(tool_extra_fields.items())" in naive
    agent_loop = ast.unparse(verl_source("experimental/agent_loop/agent_loop.py"))
    assert "'tool_extra_fields': np.array([o.extra_fields for o in outputs], dtype=object)" in agent_loop
    assert "output.extra_fields['raw_prompt'] = kwargs['raw_prompt']" in agent_loop
    # verl stacks each reward_extra_info key with np.array and keeps its own `turn_scores` extra
    # field in the same batch: judgerl's per-turn key must be another name, and one value per row
    assert "non_tensor_batch[key] = np.array([info[key] for info in reward_extra_infos])" in agent_loop
    assert "'turn_scores'" in agent_loop and adapter.TURN_SCORES_KEY != "turn_scores"
    # the reward is one number per response, put on its last token: no per-turn rewards in 0.9.1
    assert ("rm_scores[torch.arange(response_mask.size(0)), response_length] = torch.tensor(scores"
            in agent_loop)


def test_a_tool_rollout_is_judged_as_a_trajectory_through_verls_loader(
        tmp_path, verl_get_custom_reward_fn):  # noqa: F811  (the fixture)
    reward_config = config(tmp_path)
    verl_config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        "reward.custom_reward_function.path=pkg://judgerl.adapters.verl",
        "reward.custom_reward_function.name=compute_score_async",
        f"+reward.custom_reward_function.reward_kwargs.reward_config={reward_config}"])
    fn = verl_get_custom_reward_fn(verl_config)
    decoded = ("Let me look that up.\n<tool_call>...</tool_call>\nuser\n<tool_response>...\nassistant\n"
               + ANSWER)
    try:
        result = call_like_naive(fn, data_source="support", solution_str=decoded, ground_truth=None,
                                 extra_info=merged_extra_info(verl_messages()))
        lazy_run = [*PROMPT, {"role": "assistant", "content": "Sure, refund approved."}]
        lazy = call_like_naive(fn, data_source="support", solution_str="Sure, refund approved.",
                               ground_truth=None, extra_info=merged_extra_info(lazy_run))
    finally:
        clear_pipelines()
    assert result["looked_up"] == 1.0 and result["arguments"] == 1.0 and result["grounded"] == 1.0
    assert result["resolution"] == 1.0 and result["tone"] == 1.0 and result["score"] == 1.0
    assert result["unscored"] == 0.0 and result["gated"] == 0.0
    # the assistant turns with text are at 0 and 4 of the trajectory (the prompt is not in it;
    # turn 2 only calls a tool, and turns-scope judges skip those unless include_tool_call_turns)
    assert json.loads(result[adapter.TURN_SCORES_KEY]) == {"tone": [[0, 1.0], [4, 1.0]]}
    # a single-turn conversation is one answer, as before trajectories (no tool call: gated to 0)
    assert lazy["gated"] == 1.0 and lazy["score"] == 0.0
    assert set(lazy) == set(result), "verl stacks each key over the batch: the keys must not vary"
    assert json.loads(lazy[adapter.TURN_SCORES_KEY]) == {"tone": []}


def test_the_judge_reads_the_tool_results_and_the_checks_the_arguments() -> None:
    seen: list[str] = []

    def respond(request: CompletionRequest) -> str:
        seen.append(request.messages[-1]["content"])
        return json.dumps({"criteria": {"good": {"score": True, "rationale": "fine"}}})

    with RewardPipeline.from_config(config(), backends={"judge": ScriptedBackend(respond)}) as pipeline:
        good = asyncio.run(adapter.compute_score_async(
            "support", "(decoded text)", None, merged_extra_info(verl_messages()), reward_config=pipeline))
        bad_arguments = adapter.compute_score(
            "support", "(decoded text)", None, merged_extra_info(verl_messages(arguments={"order": 1001})),
            reward_config=pipeline)
        invented = adapter.compute_score(
            "support", "(decoded text)", None,
            merged_extra_info(verl_messages(answer="You get 150.00 back within 90 days.")),
            reward_config=pipeline)
    assert good["score"] == 1.0
    assert any(POLICY in text and "Noise-cancelling headphones" in text for text in seen), \
        "the judge saw the tool results"
    assert not any("(decoded text)" in text for text in seen), "judged: the trajectory, not the text"
    assert bad_arguments["arguments"] == 0.5 and bad_arguments["score"] < 1.0  # 1 of 2 calls valid
    assert invented["grounded"] == 0.0 and invented["score"] < 1.0


def test_a_malformed_conversation_is_unscored_and_never_judged() -> None:
    backend = ScriptedBackend(lambda request: "{}")
    messages = verl_messages()
    messages[3] = {"role": "tool", "tool_call_id": "nobody-called-this", "content": ORDER}
    with RewardPipeline.from_config(config(), backends={"judge": backend}) as pipeline:
        result = adapter.compute_score("support", "x", None, merged_extra_info(messages),
                                       reward_config=pipeline)
        with pytest.raises(adapter.TrajectoryError, match="message 1: tool message answers no call"):
            adapter.build_item("support", "x", None, merged_extra_info(messages))
    assert result["unscored"] == 1.0 and result["score"] == 0.0
    assert set(result) >= {"looked_up", "resolution", "tone", adapter.TURN_SCORES_KEY}
    assert backend.calls == []


def test_without_the_agent_loops_messages_the_response_text_is_the_answer() -> None:
    """verl's own ToolAgentLoop (no `messages`) and single-turn rollouts: scored as before."""
    extra = merged_extra_info(verl_messages())
    del extra["messages"]
    sample, rollout = adapter.build_item("support", "decoded response", "ref", extra)
    assert rollout.trajectory is None and rollout.completion == "decoded response"
    sample, rollout = adapter.build_item("gsm8k", "it is 4", "4", {"index": 3, "question": "2+2?"})
    assert rollout.trajectory is None and rollout.completion == "it is 4"
    assert sample.messages == [{"role": "user", "content": "2+2?"}]
