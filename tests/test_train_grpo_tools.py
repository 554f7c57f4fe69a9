"""`judgerl train` with tools: TRL 1.16's tool-calling GRPO loop, the reward scoring trajectories.

Why: TRL's `GRPOTrainer(tools=[...])` generates, parses the tool calls with the tokenizer's
response schema, calls the Python functions, appends their results and generates again; the
reward function then gets conversational completions with `tool_calls` and `tool` messages. The
recipe names the functions (`rollout.tools`); the reward must judge those conversations as
trajectories. The slow test trains two real steps with TRL on a tiny Llama fitted in seconds to
call the support agent's tools (`tests/tiny_policy.py`); the judge is a scripted backend (it
says so) that records what it was shown. The fast tests cover the recipe's tool loading and the
reward's reading of TRL's completions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.errors import ConfigError
from judgerl.reward.pipeline import RewardPipeline
from judgerl.train.recipe import load_recipe
from judgerl.train.reward import TrainingReward
from judgerl.train.tools import recipe_tools, tool_schemas
from judgerl.types import Sample

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "examples" / "support_agent"
TOOL_SPECS = [f"{SUPPORT / 'agent_tools.py'}:lookup_order", f"{SUPPORT / 'agent_tools.py'}:refund_policy"]
REWARD = {"backends": {"judge": {"type": "scripted"}},
          "checks": [{"name": "looked_up", "type": "tool_calls", "required": ["lookup_order"]},
                     {"name": "arguments", "type": "tool_arguments"}],
          "judges": [{"name": "resolution", "type": "rubric", "backend": "judge", "scope": "trajectory",
                      "criteria": [{"name": "good", "description": "answers from what the tools returned"}]}],
          "failure_budget": 1.0}


def tasks(count: int) -> list[dict[str, Any]]:
    lines = (SUPPORT / "tasks.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    return [json.loads(line) for line in lines]


def recipe_data(root: Path, tools: list[str], **rollout: Any) -> dict[str, Any]:
    return {"model": {"name_or_path": str(root / "model"), "lora": {"enabled": False}},
            "data": {"train": str(root / "train.jsonl")}, "reward": REWARD,
            "rollout": {"number_generation": 2, "max_new_tokens": 320, "temperature": 0.7, "tools": tools,
                        "max_tool_calls": 2, **rollout},
            "trainer": {"max_steps": 2, "global_batch_size": 4, "save_steps": 2, "learning_rate": 1e-3},
            "monitors": {"progress": False},
            "logging": {"output_dir": str(root / "out"), "tensorboard": False}}


# -- the recipe's tools ------------------------------------------------------------------------


def test_recipe_tools_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text('def weather(city: str) -> str:\n    """The weather.\n\n    Args:\n'
                                       '        city: a city\n    """\n    return "sunny in " + city\n'
                                       "def bare(x):\n    return x\n", encoding="utf-8")
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps({"data": {"train": "train.jsonl"}, "reward": {"checks": []},
                                "rollout": {"tools": ["tools.py:weather"], "max_tool_calls": 3}}))
    recipe = load_recipe(str(path))
    [weather] = recipe_tools(recipe)
    assert weather("Paris") == "sunny in Paris" and recipe.rollout.max_tool_calls == 3
    assert tool_schemas([weather]) == [{"type": "function", "function": {
        "name": "weather", "description": "The weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "a city"}},
                       "required": ["city"]}}}]
    for spec, message in (("tools.py:nothing", "has no function 'nothing'"), ("missing.py:f", "no file"),
                          ("weather", "is not 'file.py:function'"), ("no_such_pkg.mod:f", "cannot import")):
        bad = load_recipe(str(path), [f"rollout.tools=[{spec}]"])
        with pytest.raises(ConfigError, match=message) as raised:
            recipe_tools(bad)
        assert "field 'rollout.tools.0'" in str(raised.value) and "recipe.yaml" in str(raised.value)
    bare = load_recipe(str(path), ["rollout.tools=[tools.py:bare]"])
    with pytest.raises(ConfigError, match="bare: TRL cannot build a tool schema"):
        tool_schemas(recipe_tools(bare), source=bare.source)


def test_no_tools_changes_nothing_in_trls_config(tmp_path: Path) -> None:
    from judgerl.train.grpo import grpo_config

    recipe = load_recipe(recipe_data(tmp_path, []))
    assert recipe_tools(recipe) == []
    assert grpo_config(recipe, processes=1).max_tool_calling_iterations == 2


# -- the reward over TRL's tool-calling completions ----------------------------------------------


def trl_completion(order_id: str, answer: str) -> list[dict[str, Any]]:
    """A completion as TRL 1.16's `_tool_call_loop` leaves it: parsed assistant messages (calls
    without ids, arguments as objects) and `{"role": "tool", "name", "content"}` results."""
    import sys

    sys.path.insert(0, str(SUPPORT))
    import agent_tools

    call = {"type": "function", "function": {"name": "lookup_order", "arguments": {"order_id": order_id}}}
    return [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "lookup_order", "content": agent_tools.lookup_order(order_id)},
            {"role": "assistant", "content": answer}]


def test_the_training_reward_scores_trls_tool_calling_completions_as_trajectories() -> None:
    seen: list[str] = []

    def judge(request: CompletionRequest) -> str:
        seen.append(request.messages[-1]["content"])
        return json.dumps({"criteria": {"good": {"score": True, "rationale": "scripted"}}})

    sample = Sample("t01", [{"role": "user", "content": tasks(1)[0]["prompt"]}])
    with RewardPipeline.from_config(REWARD, backends={"judge": ScriptedBackend(judge)}) as pipeline:
        reward = TrainingReward(pipeline, [sample], tools=tool_schemas(recipe_tools(load_recipe(
            {"data": {"train": "x"}, "reward": REWARD, "rollout": {"tools": TOOL_SPECS}}))))
        orphan = trl_completion("A1001", "Refunded.")
        orphan.insert(0, {"role": "tool", "name": "lookup_order", "content": "answers nothing"})
        values = asyncio.run(reward([sample.messages] * 3, [
            trl_completion("A1001", "Order A1001 was delivered 12 days ago: refundable."),
            [{"role": "assistant", "content": "Sure, refunded."}],       # no tool: single-turn, as before
            orphan], id=["t01"] * 3))
    assert values[0] == 1.0
    assert values[1] is not None and values[1] < 1.0                     # looked_up 0
    assert values[2] is None                                               # unscored, never judged
    assert len(seen) == 2
    assert "Noise-cancelling headphones" in seen[0] and "TOOL_RESULT" in seen[0]


# -- two real training steps -------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    from tiny_policy import build_tool_calling_model_dir

    sys.path.insert(0, str(SUPPORT))
    import agent_tools

    root = tmp_path_factory.mktemp("grpo_tools")
    rows = tasks(4)
    conversations = []
    for row in rows:
        order = json.loads(agent_tools.lookup_order(row["order_id"]))
        answer = (f"Order {row['order_id']} ({order['item']}, {order['total']}) was delivered "
                  f"{order['days_since_delivery']} days ago.")
        prompt = [{"role": "user", "content": row["prompt"]}]
        conversations.append((prompt, trl_completion(row["order_id"], answer)))
    build_tool_calling_model_dir(root / "model", conversations,
                                 [agent_tools.lookup_order, agent_tools.refund_policy], steps=200)
    (root / "train.jsonl").write_text("".join(json.dumps({"id": row["id"], "prompt": row["prompt"]}) + "\n"
                                              for row in rows), encoding="utf-8")
    return root


@pytest.mark.slow
def test_two_grpo_steps_with_tools_and_the_reward_sees_the_calls(workspace: Path) -> None:
    from judgerl.train.grpo import GrpoRun

    transcripts: list[str] = []

    def judge(request: CompletionRequest) -> str:
        transcripts.append(request.messages[-1]["content"])
        verdict = {"score": len(transcripts) % 2 == 0, "rationale": "scripted"}
        return json.dumps({"criteria": {"good": verdict}})

    run = GrpoRun(load_recipe(recipe_data(workspace, TOOL_SPECS)), backends={"judge": ScriptedBackend(judge)})
    assert [tool.__name__ for tool in run.trainer.tools] == ["lookup_order", "refund_policy"]
    result = run.run()
    assert result.global_step == 2
    steps = [json.loads(line) for line in result.metrics_path.read_text(encoding="utf-8").splitlines()]
    assert steps and all(step["tools/call_frequency"] > 0 for step in steps), "the policy called the tools"
    assert max(step["reward/looked_up/mean"] for step in steps) > 0, "the tool_calls check saw the calls"
    # the judge was shown the conversation: TRL ran lookup_order and its result is in a fence
    assert any("TOOL_CALL" in text and "TOOL_RESULT" in text and '"days_since_delivery"' in text
               for text in transcripts)
    rows = [json.loads(line) for line in (workspace / "out" / "completions.jsonl").read_text().splitlines()]
    traced = [row for row in rows if "trajectory" in row]
    assert traced and any(message["role"] == "tool" for row in traced for message in row["trajectory"])
