"""`judgerl serve` scoring OpenRLHF agent rollouts (multi-turn, tool calls) as trajectories.

Why: in OpenRLHF 0.11.2 an agent (`--train.agent_func_path`) runs in `MultiTurnAgentExecutor`,
which keeps the rollout as one chat-templated text (prompt, then each action and environment
feedback appended) and takes its reward from the agent's own `step()`: with an agent function
the CLI sets `--reward.remote_url` to "agent" and nothing posts to a reward URL by itself. An
agent that wants judgerl's reward posts the finished rollout from `step()`, and the client it
has is OpenRLHF's own (`SingleTurnAgentExecutor._fetch_rewards_via_http`: `query`, `prompts`,
`labels`, text only). Here OpenRLHF's real executor runs such an agent: the prompt comes from
OpenRLHF's `preprocess_data` with the packaged SmolLM2 tokenizer's chat template (ChatML, tools
listed Hermes-style in the system prompt), the model writes `<tool_call>` blocks, the agent
answers them in `tool` turns and, at the end, posts `observation_text + action` through that
client to `judgerl serve` (uvicorn on loopback). The server reads the text back into a
trajectory (`judgerl.adapters.templated`) and scores it with tool checks and a trajectory
rubric judge (scripted backend: not a model). Only vLLM is a stand-in (it needs a GPU).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from judgerl.adapters.openrlhf import create_app
from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.reward.pipeline import RewardPipeline
from test_adapter_openrlhf import running

if importlib.util.find_spec("openrlhf") is None:
    pytest.skip("needs openrlhf (the `engines` extra; scripts/setup installs it)", allow_module_level=True)

import torch
from openrlhf.datasets.prompts_dataset import preprocess_data
from openrlhf.utils.agent import AgentInstanceBase, MultiTurnAgentExecutor, SingleTurnAgentExecutor


def tool(name: str, description: str, argument: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": {argument: {"type": "string"}}, "required": [argument],
        "additionalProperties": False}}}


TOOLS = [tool("lookup_order", "Looks an order up.", "order_id"),
         tool("refund_policy", "A category's refund policy.", "category")]
SYSTEM = ("You are a shop's support agent. You may call these tools:\n<tools>\n"
          + "\n".join(json.dumps(tool) for tool in TOOLS)
          + "\n</tools>\nCall one as <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>.")
QUESTION = "Can I get a refund for order A17? The kettle broke."
ORDERS = {"A17": {"order_id": "A17", "category": "kitchen", "total": "59.90", "days_since_delivery": 12}}
POLICIES = {"kitchen": "Kitchen items: full refund within 30 days of delivery."}


def tool_call(name: str, **arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


RUNS = {
    "good": [tool_call("lookup_order", order_id="A17"), tool_call("refund_policy", category="kitchen"),
             "Order A17 (59.90) arrived 12 days ago, within 30 days of delivery: your refund is on its way."],
    "hallucinating": [tool_call("lookup_order", order_id="A17"),
                      "Order A17 qualifies: a refund of 80.00 will reach you within 2 days."],
    "bad_arguments": [tool_call("lookup_order", order="A17"), "I could not find order A17, sorry."],
    "lazy": ["Sure, a refund is on its way."],
}


def run_tool(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", {})
    if call.get("name") == "lookup_order" and arguments.get("order_id") in ORDERS:
        return json.dumps(ORDERS[arguments["order_id"]])
    if call.get("name") == "refund_policy" and arguments.get("category") in POLICIES:
        return POLICIES[arguments["category"]]
    return json.dumps({"error": "no such order or category"})


class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine: each call answers the next action, then EOS; its
    text is decoded without special tokens, as vLLM's is by default."""

    def __init__(self, tokenizer: Any, actions: list[str]) -> None:
        self.tokenizer = tokenizer
        self.actions = list(actions)

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        text = self.actions.pop(0)
        token_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        token_ids.append(self.tokenizer.eos_token_id)
        output = SimpleNamespace(token_ids=token_ids, finish_reason="stop", logprobs=None,
                                 text=self.tokenizer.decode(token_ids, skip_special_tokens=True))
        return SimpleNamespace(outputs=[output])


class SupportAgent(AgentInstanceBase):
    """What a user writes for `--train.agent_func_path`: runs the tools, and at the end posts the
    whole rollout to the reward server with OpenRLHF's own reward client."""

    reward_url = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.prompt = ""
        self.client = SingleTurnAgentExecutor(remote_rm_url=self.reward_url)

    async def reset(self, states: dict, **kwargs: Any) -> dict:
        self.prompt = states["observation"]
        return {"observation": states["observation"]}

    async def step(self, states: dict, **kwargs: Any) -> dict:
        action = states["action_text"]
        calls = [json.loads(block) for block in re.findall(r"<tool_call>(.*?)</tool_call>", action, re.S)]
        if calls:  # answer in the chat template's tool turns, then open the next assistant turn
            feedback = "<|im_end|>\n" + "".join(f"<|im_start|>tool\n{run_tool(call)}<|im_end|>\n"
                                                for call in calls) + "<|im_start|>assistant\n"
            return {"rewards": torch.tensor(0.0), "scores": torch.tensor(0.0),
                    "environment_feedback": feedback, "done": False}
        query = states["observation_text"] + action + "<|im_end|>"
        [info] = await self.client._fetch_rewards_via_http([query], [self.prompt], [states["label"]])
        reward = float(info["rewards"][0])
        return {"rewards": torch.tensor(reward), "scores": torch.tensor(reward), "environment_feedback": "",
                "done": True, "extra_logs": info["extra_logs"]}


CONFIG = {
    "backends": {"judge": {"type": "scripted"}},
    "runtime": {"max_attempts": 1},
    "checks": [
        {"name": "looked_up", "type": "tool_calls", "required": ["lookup_order"], "max_calls": 4,
         "gate": True, "gate_score": 0.0},
        {"name": "arguments", "type": "tool_arguments"},
        {"name": "grounded", "type": "tool_grounding", "weight": 2},
    ],
    "judges": [{"name": "resolution", "type": "rubric", "backend": "judge", "scope": "trajectory",
                "criteria": [{"name": "looked_up_first", "description": "Reads the order first."}]}],
    "failure_budget": None,
}


def verdict(request: CompletionRequest) -> str:
    transcript = request.messages[-1]["content"]
    looked_up = re.search(r"^#\d+ tool result", transcript, re.M) is not None
    return json.dumps({"criteria": {"looked_up_first": {"rationale": "checked", "score": looked_up}}})


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from judgerl.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct")))


def agent_rollout(url: str, tokenizer: Any, actions: list[str]) -> dict[str, Any]:
    prompt, label = preprocess_data({"input": [{"role": "system", "content": SYSTEM},
                                               {"role": "user", "content": QUESTION}], "answer": "refund"},
                                    input_key="input", label_key="answer",
                                    apply_chat_template=tokenizer.apply_chat_template)
    SupportAgent.reward_url = f"{url}/get_reward"
    executor = MultiTurnAgentExecutor(SupportAgent)
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    return asyncio.run(executor.execute(prompt, label, params, max_length=2048, hf_tokenizer=tokenizer,
                                        llm_engine=ScriptedEngine(tokenizer, actions)))


def test_openrlhf_agent_path_posts_no_reward_itself() -> None:
    """What this integration rests on: with an agent function the reward is the agent's own."""
    package = Path(importlib.util.find_spec("openrlhf").submodule_search_locations[0])
    cli = (package / "cli" / "train_ppo_ray.py").read_text()
    assert 'args.reward.remote_url = "agent"' in cli
    agent = (package / "utils" / "agent.py").read_text()
    executor = agent.split("class MultiTurnAgentExecutor")[1].split("class SingleTurnAgentExecutor")[0]
    assert "_fetch_rewards_via_http" not in executor and 'step_result["rewards"]' in executor


def test_agent_rollouts_are_scored_as_trajectories(tokenizer: Any) -> None:
    backend = ScriptedBackend(verdict)
    with RewardPipeline.from_config(CONFIG, backends={"judge": backend}) as pipeline, \
            running(create_app(pipeline, token=None, allow_networks=["127.0.0.1/32"])) as url:
        outputs = {name: agent_rollout(url, tokenizer, actions) for name, actions in RUNS.items()}
    logs = {name: {key: values[0] for key, values in output["extra_logs"].items()}
            for name, output in outputs.items()}
    rewards = {name: output["reward"] for name, output in outputs.items()}
    assert rewards["good"] == pytest.approx(1.0), logs["good"]
    assert logs["good"]["unscored"] == 0.0 and logs["good"]["looked_up"] == 1.0
    assert logs["good"]["grounded"] == 1.0 and logs["good"]["resolution"] == 1.0
    # 80.00 and 2 came from no tool: the grounding check reads the tool results the server parsed
    assert logs["hallucinating"]["grounded"] < 1.0 and 0.0 < rewards["hallucinating"] < rewards["good"]
    # the arguments are checked against the schemas listed in the system prompt
    assert logs["bad_arguments"]["arguments"] == 0.0 and rewards["bad_arguments"] < rewards["good"]
    assert rewards["lazy"] == 0.0 and logs["lazy"]["gated"] == 1.0  # never looked anything up
    # one judge call per tool-using rollout, each on the fenced transcript without template markup
    transcripts = [request.messages[-1]["content"] for request in backend.calls]
    assert len(transcripts) == 3
    good = next(text for text in transcripts if "Kitchen items: full refund" in text)
    assert "<|im_start|>" not in good and "<tool_call>\n{" not in good  # calls are fenced as calls
    assert re.search(r"#\d+ assistant, calling tools: call #1", good)
    assert "your refund is on its way" in good and QUESTION in good
