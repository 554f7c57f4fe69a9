"""verl's own tool agent loop and reward loop scoring a tool-using rollout with the judgerl reward.

Why: `test_adapter_verl_tools.py` checks the reward function against `extra_info` as verl's
reward manager merges it. This test runs verl's real code end to end (verl's agent loop imports ray):
judgerl's `JudgerlToolAgentLoop` (verl's `ToolAgentLoop` plus the conversation), instantiated from
`examples/verl/agent_loops.yaml` the way `AgentLoopWorker._run_agent_loop` does, with verl's
hermes tool parser, continuous-token builder and `FunctionTool`s (the support agent's fake order
lookup and refund policy); then `AgentLoopWorker._agent_loop_postprocess` (padding, streaming
reward: `_compute_score` builds the DataProto with `tool_extra_fields`) and `_postprocess` (the
training batch); the reward is computed by verl's real `RewardLoopWorker` and
`NaiveRewardManager` with the README's wiring.

What is not real: the LLM server (`ScriptedLLMServer` returns written token ids for each
assistant turn: a policy model is not what is under test) and the Ray actor handle (the worker's
`compute_score` is awaited in this process, as `test_engine_verl_ray.py` does). The
`AgentLoopWorker` is made without its constructor (which starts LLM clients): only the
attributes its post-processing reads are set, each from the same config.

Skipped without ray and tensordict (the `engines` extra; scripts/setup installs them, CPU only).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray", reason="verl's agent loop imports ray; see the module docstring")
pytest.importorskip("tensordict")

from judgerl.adapters import clear_pipelines, load_pipeline
from test_adapter_verl_tools import config
from test_engine_verl import README_OVERRIDES, VERL_CONFIG_DIR, compose_verl

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "examples" / "support_agent"
PROMPT = [{"role": "system", "content": "You are the support agent of Northwind Shop."},
          {"role": "user", "content": "Can I return the headphones from order A1001?"}]
ANSWER = ("Order A1001 (Noise-cancelling headphones, 129.99) was delivered 12 days ago; electronics "
          "are refundable within 30 days, so you get a full refund.")
TURNS = ['Let me look that up.\n<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A1001"}}\n'
         "</tool_call>",
         '<tool_call>\n{"name": "refund_policy", "arguments": {"category": "electronics"}}\n</tool_call>',
         ANSWER]


class ScriptedLLMServer:
    """verl's `LLMServerClient.generate`, answered from a script (not a model; it says so)."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.tokenizer = tokenizer
        self.turns = list(turns)
        self.prompts: list[str] = []

    async def generate(self, *, request_id: str, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> Any:
        from verl.workers.rollout.replica import TokenOutput

        self.prompts.append(self.tokenizer.decode(prompt_ids))
        text = self.turns.pop(0)
        ids = [*self.tokenizer.encode(text, add_special_tokens=False), self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[0.0] * len(ids), stop_reason="completed")


def support_tools() -> list[Any]:
    from verl.tools.function_tool import FunctionTool
    from verl.tools.schemas import OpenAIFunctionToolSchema

    spec = importlib.util.spec_from_file_location("support_tools", SUPPORT / "make_trajectories.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    orders = json.loads((SUPPORT / "orders.json").read_text())
    schemas = {tool["function"]["name"]: tool for tool in json.loads((SUPPORT / "tools.json").read_text())}
    functions = {"lookup_order": lambda order_id: module.lookup_order(orders, order_id),
                 "refund_policy": module.refund_policy}
    return [FunctionTool(name=name, fn=functions[name],
                         tool_schema=OpenAIFunctionToolSchema.model_validate(schema))
            for name, schema in schemas.items()]


def reward_yaml(folder: Path) -> Path:
    path = config(folder)  # the adapter test's config: tool checks, a trajectory and a turns judge
    assert isinstance(path, Path)
    return path


def run_agent_rollout(tmp_path: Path, turns: list[str], max_assistant_turns: int | None = None,
                      ) -> tuple[Any, Any, ScriptedLLMServer]:
    """One rollout through verl's agent loop, reward loop and batch assembly: (batch, internal output)."""
    import hydra
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, DictConfigWrap, ToolListWrap
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from judgerl.models import resolve_model

    model = str(resolve_model("smollm2-135m-instruct"))
    agent_loops = ROOT / "examples" / "verl" / "agent_loops.yaml"
    config = compose_verl(VERL_CONFIG_DIR, "ppo_trainer", [
        *README_OVERRIDES,
        f"+reward.custom_reward_function.reward_kwargs.reward_config={reward_yaml(tmp_path)}",
        f"actor_rollout_ref.model.path={model}",
        "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.multi_turn.enable=true",
        "actor_rollout_ref.rollout.multi_turn.format=hermes",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={agent_loops}",
        "actor_rollout_ref.rollout.agent.default_agent_loop=judgerl_tool_agent",
        "actor_rollout_ref.rollout.prompt_length=1024", "actor_rollout_ref.rollout.response_length=1024"])
    tokenizer = AutoTokenizer.from_pretrained(model)
    server = ScriptedLLMServer(tokenizer, turns)
    [entry] = [item for item in OmegaConf.load(agent_loops) if item.name == "judgerl_tool_agent"]
    loop = hydra.utils.instantiate(config=entry, trainer_config=DictConfigWrap(config=config),
                                   server_manager=server, tokenizer=tokenizer, processor=None,
                                   hf_model_type="llama",
                                   dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                                   tools=ToolListWrap(support_tools()))
    if max_assistant_turns is not None:
        loop.max_assistant_turns = max_assistant_turns

    reward_worker = RewardLoopWorker(config)
    # the Ray actor handle: `handle.compute_score.remote(data)` awaited in this process
    handle = SimpleNamespace(compute_score=SimpleNamespace(remote=reward_worker.compute_score))
    worker = AgentLoopWorker.__new__(AgentLoopWorker)
    worker.config = config
    worker.rollout_config = omega_conf_to_dataclass(config.actor_rollout_ref.rollout)
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tokenizer, None, {}
    worker.distillation_enabled = False
    worker.reward_loop_worker_handles = [handle]

    kwargs = {"raw_prompt": PROMPT, "data_source": "support", "reward_model": {"ground_truth": None},
              "extra_info": {"index": 7, "split": "train"}, "tools_kwargs": {}, "index": 7, "uid": "u7"}

    async def rollout() -> Any:
        output = await loop.run({"temperature": 1.0}, **kwargs)
        return await worker._agent_loop_postprocess(output, False, **kwargs)

    internal = reward_worker.loop.run_until_complete(rollout())
    batch = worker._postprocess([internal], input_non_tensor_batch=None)
    return batch, internal, server


def test_verls_tool_agent_loop_rollout_is_judged_as_a_trajectory(tmp_path):
    try:
        batch, internal, server = run_agent_rollout(tmp_path, TURNS)
        backend = load_pipeline(reward_yaml(tmp_path)).runtime.backend("judge")
        transcripts = [request.messages[-1]["content"] for request in backend.calls]
    finally:
        clear_pipelines()
    assert "Electronics: full refund within 30 days" in server.prompts[2], "verl ran the tools"
    info = internal.extra_fields["reward_extra_info"]
    assert info["looked_up"] == 1.0 and info["arguments"] == 1.0 and info["grounded"] == 1.0
    assert info["resolution"] == 1.0 and info["tone"] == 1.0 and info["unscored"] == 0.0
    assert internal.reward_score == 1.0
    # the judge read the conversation: the tool results are in its transcript, no chat markup
    assert any("Electronics: full refund within 30 days" in text and "Noise-cancelling headphones" in text
               for text in transcripts)
    assert not any("<|im_end|>" in text or "<tool_call>" in text for text in transcripts)
    # per-turn scores: the text turns 0 and 4 of the trajectory, in verl's reward_extra_info
    assert json.loads(info["judge_turn_scores"]) == {"tone": [[0, 1.0], [4, 1.0]]}
    # the training batch: the reward on the last response token, the extra keys stacked per row
    assert batch.batch["rm_scores"].sum().item() == 1.0
    assert "judge_turn_scores" in batch.meta_info["reward_extra_keys"]
    assert isinstance(batch.non_tensor_batch["judge_turn_scores"], np.ndarray)
    messages = batch.non_tensor_batch["messages"][0]
    assert [message["role"] for message in messages] == ["system", "user", "assistant", "tool", "assistant",
                                                        "tool", "assistant"]
    assert messages[-1]["content"] == ANSWER


def test_a_turn_cut_off_by_max_assistant_turns_is_still_in_the_trajectory(tmp_path):
    """ToolAgentLoop stops after the 2nd generation without adding it to its messages; the
    judgerl loop decodes it, so the tool checks see that refund_policy was called (and never answered)."""
    try:
        _batch, internal, _server = run_agent_rollout(tmp_path, TURNS[:2], max_assistant_turns=2)
    finally:
        clear_pipelines()
    messages = internal.extra_fields["messages"]
    assert [message["role"] for message in messages[2:]] == ["assistant", "tool", "assistant"]
    assert messages[-1]["tool_calls"][0]["function"]["name"] == "refund_policy"
    info = internal.extra_fields["reward_extra_info"]
    assert info["looked_up"] == 1.0 and info["unscored"] == 0.0
