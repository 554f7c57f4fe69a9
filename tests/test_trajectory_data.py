"""Trajectories as data: rollout files with tool-using chat lists, their errors, single-turn unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig
from judgerl.data import load_rollouts
from judgerl.judges import build_judge
from judgerl.judges.rubric import RubricJudge
from judgerl.runtime.cache import cache_key
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.trajectory import TrajectoryError, final_answer, parse_trajectory, tool_calls, tool_results

LOOKUP = {"type": "function", "function": {"name": "lookup_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}


def agent_run(arguments: Any = '{"order_id": "A17"}') -> list[dict[str, Any]]:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": arguments}}
    return [{"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
            {"role": "assistant", "content": "Your order A17 has shipped."}]


def write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "rollouts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_tool_using_row_becomes_a_trajectory_with_its_tools(tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "t1", "prompt": "Where is A17?", "completion": agent_run(),
                             "tools": [LOOKUP], "topic": "orders"}])
    [(_, rollout)], errors = load_rollouts(path)
    assert errors == []
    assert rollout.completion == "Your order A17 has shipped."
    assert rollout.trajectory is not None and len(rollout.trajectory) == 3
    assert rollout.trajectory[0]["content"] == ""
    assert rollout.tools is not None and rollout.tools[0]["function"]["name"] == "lookup_order"
    assert "tools" not in rollout.metadata and rollout.metadata["topic"] == "orders"
    [call] = list(tool_calls(rollout.trajectory))
    assert (call.name, call.arguments, call.message_index) == ("lookup_order", {"order_id": "A17"}, 0)
    assert tool_results(rollout.trajectory) == {"c1": '{"status": "shipped"}'}


def test_arguments_as_an_object_read_as_json_text() -> None:
    messages = parse_trajectory(agent_run(arguments={"order_id": "A17"}))
    assert messages[0]["tool_calls"][0]["function"]["arguments"] == '{"order_id": "A17"}'
    assert final_answer(messages) == "Your order A17 has shipped."


@pytest.mark.parametrize(("mutate", "field", "words"), [
    (lambda run: run.__setitem__(1, {**run[1], "tool_call_id": "c9"}), "completion.1.tool_call_id",
     "answers no call"),
    (lambda run: run.insert(0, {"role": "robot", "content": "beep"}), "completion.0.role",
     "unknown role 'robot'"),
    (lambda run: run[0]["tool_calls"][0]["function"].__setitem__("arguments", "{order_id: A17"),
     "completion.0.tool_calls", "arguments are not JSON"),
    (lambda run: run[0]["tool_calls"][0]["function"].__setitem__("arguments", "[1, 2]"),
     "completion.0.tool_calls", "must be a JSON object"),
    (lambda run: run.append({"role": "tool", "tool_call_id": "c1", "content": "again"}),
     "completion.3.tool_call_id", "answered twice"),
])
def test_a_bad_trajectory_is_that_rows_error_naming_the_message(tmp_path: Path, mutate: Any, field: str,
                                                                 words: str) -> None:
    bad = agent_run()
    mutate(bad)
    path = write(tmp_path, [{"id": "ok", "prompt": "Q", "completion": agent_run()},
                            {"id": "bad", "prompt": "Q", "completion": bad}])
    pairs, errors = load_rollouts(path)
    assert [sample.id for sample, _ in pairs] == ["ok"]
    [error] = errors
    assert error.line == 2 and error.field == field and words in str(error)
    assert "rollouts.jsonl" in str(error)


def test_trajectory_error_names_the_message_index() -> None:
    with pytest.raises(TrajectoryError) as caught:
        parse_trajectory([{"role": "assistant", "content": "hi"}, {"role": "narrator", "content": "x"}])
    assert caught.value.index == 1 and str(caught.value).startswith("message 1: unknown role")


def test_single_turn_rows_are_read_and_keyed_exactly_as_before(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    one_message = [{"role": "assistant", "content": "4"}]
    path = write(tmp_path, [{"id": "s1", "prompt": "2+2?", "completion": one_message},
                            {"id": "s1", "prompt": "2+2?", "completion": "four"},
                            {"id": "s2", "prompt": "2+2?", "completion": chat, "tools": "kept as metadata"}])
    pairs, errors = load_rollouts(path)
    assert errors == []
    assert all(rollout.trajectory is None and rollout.tools is None for _, rollout in pairs)
    assert pairs[2][1].metadata["tools"] == "kept as metadata"
    runtime = ModelRuntime({"judge": ScriptedBackend(lambda request: "x")})
    config = JudgeConfig(name="q", type="rubric", criteria=[{"name": "ok", "description": "Is ok."}])
    judge = build_judge(config, runtime)
    assert isinstance(judge, RubricJudge)
    keys = [cache_key({"kind": "scripted"}, judge.generate_request(sample, rollout))
            for sample, rollout in pairs[:2]]
    # Pinned: a change drops every user's cache, so it must be deliberate. Trajectories left them
    # unchanged; they changed when judges began sending their verdict's JSON Schema and when the
    # fence tags became one letter (both change what the judge is asked).
    assert keys == ["5a3415bcc6725fcb12f5e81a1fbd5fb1294bc1d809e237ae3551684c6b8770dd",
                    "43d6202bdb3943babb8f5288e663ae46f5307376a3c638bc2a747ccec12baad7"]
