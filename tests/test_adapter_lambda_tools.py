"""The Nova Lambda on tool-using samples: scored as trajectories when the config reads them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from judgerl.adapters.aws_lambda import handle, parse_sample
from judgerl.backends.scripted import ScriptedBackend
from judgerl.reward.pipeline import RewardPipeline

TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
VERDICT = json.dumps({"criteria": {"sensible": {"rationale": "looked it up", "score": True}}})


def config(judge_scope: str = "trajectory") -> dict[str, Any]:
    return {"backends": {"judge": {"type": "scripted"}}, "runtime": {"max_attempts": 1},
            "checks": [{"name": "arguments", "type": "tool_arguments"},
                       {"name": "calls", "type": "tool_calls", "max_calls": 2}],
            "judges": [{"name": "run", "type": "rubric", "scope": judge_scope,
                        "criteria": [{"name": "sensible", "description": "Uses the tools sensibly."}]}]}


def call(call_id: str, arguments: str = '{"city": "Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": arguments}}


EVENT = [
    {"id": "calls-only", "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1")]}]},
    {"id": "converse", "metadata": {"tools": TOOLS}, "messages": [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "weather",
                                                       "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1",
                                                     "content": [{"json": {"sky": "sunny"}}]}}]},
        {"role": "nova_assistant", "content": [{"text": "Sunny in Paris."}]}]},
    {"id": "bad-args", "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1", '{"town": "Paris"}')]}]},
    {"id": "orphan", "tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c7", "content": "sunny"}]},
    {"id": "text", "messages": [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello!"}]},
]


def metrics(result: dict[str, Any]) -> dict[str, float]:
    return {metric["name"]: metric["value"] for metric in result["metrics_list"]}


def test_tool_calling_samples_get_real_scores(caplog: pytest.LogCaptureFixture) -> None:
    backend = ScriptedBackend(lambda request: VERDICT)
    with RewardPipeline.from_config(config(), backends={"judge": backend}) as pipeline, \
            caplog.at_level(logging.WARNING, logger="judgerl.adapters.aws_lambda"):
        assert pipeline.reads_trajectories()
        results = handle(json.loads(json.dumps(EVENT)), None, pipeline=pipeline)
    by_id = {result["id"]: result for result in results}
    assert [result["id"] for result in results] == ["calls-only", "converse", "bad-args", "orphan", "text"]
    assert by_id["calls-only"]["aggregate_reward_score"] == 1.0
    assert metrics(by_id["calls-only"])["unscored"] == 0.0 and metrics(by_id["calls-only"])["run"] == 1.0
    assert by_id["converse"]["aggregate_reward_score"] == 1.0
    assert metrics(by_id["bad-args"])["arguments"] == 0.0
    assert 0.0 < by_id["bad-args"]["aggregate_reward_score"] < 1.0
    assert metrics(by_id["orphan"])["invalid_sample"] == 1.0
    assert "field 'messages.2': tool message answers no call" in caplog.text
    assert by_id["text"]["aggregate_reward_score"] == 1.0
    transcripts = [request.messages[-1]["content"] for request in backend.calls]
    assert any('"sky": "sunny"' in text and "Sunny in Paris." in text for text in transcripts)
    assert len(backend.calls) == 4  # the invalid sample is never judged


def test_converse_parts_become_a_trajectory() -> None:
    sample, rollout = parse_sample(EVENT[1], trajectories=True)
    assert sample.messages == [{"role": "user", "content": "Weather in Paris?"}]
    assert rollout.completion == "Sunny in Paris." and rollout.trajectory is not None
    assert [message["role"] for message in rollout.trajectory] == ["assistant", "tool", "assistant"]
    assert rollout.trajectory[1]["content"] == '{"sky": "sunny"}'
    assert rollout.tools is not None and rollout.tools[0]["function"]["name"] == "weather"
    _, plain = parse_sample(EVENT[1])  # without trajectory-reading components: the answer as before
    assert plain.trajectory is None and plain.completion == "Sunny in Paris."


def test_without_trajectory_components_a_tool_call_answer_stays_unscored() -> None:
    plain = {"backends": {"judge": {"type": "scripted"}},
             "judges": [{"name": "run", "type": "rubric",
                         "criteria": [{"name": "sensible", "description": "Sensible."}]}]}
    backend = ScriptedBackend(lambda request: VERDICT)
    with RewardPipeline.from_config(plain, backends={"judge": backend}) as pipeline:
        assert not pipeline.reads_trajectories()
        [result] = handle([EVENT[0]], None, pipeline=pipeline)
    assert metrics(result)["unscored"] == 1.0 and backend.calls == []


def test_calls_without_ids_are_linked_to_their_results() -> None:
    raw = {"id": "x", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"toolUse": {"name": "weather", "input": {"city": "Oslo"}}}]},
        {"role": "tool", "name": "weather", "content": "snow"},
        {"role": "assistant", "content": "Snow in Oslo."}]}
    _, rollout = parse_sample(raw, trajectories=True)
    assert rollout.trajectory is not None
    assert rollout.trajectory[1] == {"role": "tool", "tool_call_id": "call_0", "content": "snow",
                                     "name": "weather"}
