"""TRL's tool-calling completions through `reward_function`: trajectories, linked ids, bad rows."""

from __future__ import annotations

import json
from typing import Any

from judgerl.adapters.trl import reward_function
from judgerl.backends.scripted import ScriptedBackend
from judgerl.reward.pipeline import RewardPipeline

TOOLS = [{"type": "function", "function": {"name": "multiply", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"]}}}]
VERDICT = json.dumps({"criteria": {"used_tool": {"rationale": "r", "score": True}}})


def trl_tool_completion(arguments: dict[str, Any], result: str, final: str) -> list[dict[str, Any]]:
    """The shape TRL 1.16's tool loop builds: calls without ids, results with a name and no call id."""
    return [{"role": "assistant", "content": "",
             "tool_calls": [{"type": "function", "function": {"name": "multiply", "arguments": arguments}}]},
            {"role": "tool", "name": "multiply", "content": result},
            {"role": "assistant", "content": final}]


def pipeline(backend: ScriptedBackend) -> RewardPipeline:
    config = {"backends": {"judge": {"type": "scripted"}}, "runtime": {"max_attempts": 1},
              "checks": [{"name": "arguments", "type": "tool_arguments"},
                         {"name": "grounded", "type": "tool_grounding"}],
              "judges": [{"name": "run", "type": "rubric", "scope": "trajectory",
                          "criteria": [{"name": "used_tool", "description": "Uses the tool."}]}]}
    return RewardPipeline.from_config(config, backends={"judge": backend})


async def test_conversational_tool_calling_completions_are_judged_as_trajectories() -> None:
    backend = ScriptedBackend(lambda request: VERDICT)
    reward = reward_function(pipeline(backend), name="agent")
    prompts = [[{"role": "user", "content": "What is 6 times 7?"}]] * 4
    completions = [
        trl_tool_completion({"a": 6, "b": 7}, "42", "6 times 7 is 42."),
        trl_tool_completion({"a": 6, "b": 7}, "42", "6 times 7 is 48."),           # not what the tool said
        trl_tool_completion({"a": "six", "b": 7}, "error", "It is 42."),           # bad arguments
        [{"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "multiply", "arguments": "{a: 6"}}]},
         {"role": "tool", "name": "multiply", "content": "?"}, {"role": "assistant", "content": "42"}],
    ]
    statuses: dict[str, list[str]] = {}
    values = await reward(prompts, completions, tools=[TOOLS] * 4,
                          log_extra=lambda column, items: statuses.__setitem__(column, items))
    reward.pipeline.close()
    assert values[0] == 1.0
    assert values[1] is not None and values[1] < values[0]   # 48 is grounded in no tool result
    assert values[2] is not None and values[2] < values[0]
    assert values[3] is None                                  # arguments that are not JSON: that row only
    assert statuses["agent_status"][3].startswith("unscored: bad trajectory: message 0: tool call arguments")
    transcript = backend.calls[0].messages[-1]["content"]
    assert '"a": 6' in transcript and "result of call #1" in transcript


async def test_plain_configs_read_conversational_completions_as_before() -> None:
    config = {"backends": {"judge": {"type": "scripted"}},
              "judges": [{"name": "q", "type": "rubric",
                          "criteria": [{"name": "used_tool", "description": "x"}]}]}
    backend = ScriptedBackend(lambda request: VERDICT)
    reward = reward_function(RewardPipeline.from_config(config, backends={"judge": backend}))
    broken = [{"role": "assistant", "content": "",
               "tool_calls": [{"function": {"name": "m", "arguments": "{"}}]},
              {"role": "assistant", "content": "42"}]
    values = await reward([[{"role": "user", "content": "6*7?"}]], [broken])
    reward.pipeline.close()
    assert values == [1.0]  # no component reads trajectories: the final answer is judged, as before
    assert "42" in backend.calls[0].messages[-1]["content"]
