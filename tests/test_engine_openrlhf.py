"""`judgerl serve` against the real OpenRLHF client (openrlhf 0.11.2 from PyPI, the `engines` extra).

Why: the server was once written from OpenRLHF's docs and then scored every answer through its
end-of-sequence token. Here OpenRLHF's own code builds and sends the request:

- the prompt comes from OpenRLHF's `preprocess_data` (its prompt dataset) with a real chat
  template (the packaged SmolLM2 tokenizer, ChatML, EOS `<|im_end|>`);
- `SingleTurnAgentExecutor.execute` tokenizes it, takes the generation from the engine, decodes
  prompt + response with `skip_special_tokens=False` and posts it with
  `_fetch_rewards_via_http` to `--reward.remote_url`, exactly as in a training run.

Only the generation engine is a stand-in (vLLM needs a GPU): it returns the token ids of a
chosen answer followed by the tokenizer's EOS id, as vLLM does when a model ends its turn.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from adapter_fakes import make_pipeline
from judgerl.adapters.openrlhf import create_app
from judgerl.reward.pipeline import RewardPipeline
from test_adapter_openrlhf import running

if importlib.util.find_spec("openrlhf") is None:
    pytest.skip("needs openrlhf (the `engines` extra; scripts/setup installs it)", allow_module_level=True)

from openrlhf.datasets.prompts_dataset import preprocess_data
from openrlhf.utils.agent import SingleTurnAgentExecutor

TESTED_VERSION = "0.11.2"


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from judgerl.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct")))


class OneAnswerEngine:
    """Stands in for OpenRLHF's vLLM engine: answers `text`, then the EOS token, as a model would."""

    def __init__(self, tokenizer: Any, text: str) -> None:
        self.token_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        output = SimpleNamespace(token_ids=list(self.token_ids), finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


def openrlhf_reward(url: str, tokenizer: Any, question: str, answer: str, label: str | None) -> dict:
    """One rollout through OpenRLHF's own dataset preprocessing and single-turn executor."""
    row = {"input": question, **({"answer": label} if label is not None else {})}
    prompt, label_sent = preprocess_data(row, input_key="input",
                                         label_key="answer" if label is not None else None,
                                         apply_chat_template=tokenizer.apply_chat_template)
    executor = SingleTurnAgentExecutor(remote_rm_url=f"{url}/get_reward")
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    return asyncio.run(executor.execute(prompt, label_sent, params, max_length=512, hf_tokenizer=tokenizer,
                                        llm_engine=OneAnswerEngine(tokenizer, answer)))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "reward.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_installed_openrlhf_is_the_tested_release_and_has_the_readme_flag():
    assert importlib.metadata.version("openrlhf") == TESTED_VERSION
    package = Path(importlib.util.find_spec("openrlhf").submodule_search_locations[0])
    cli = package / "cli" / "train_ppo_ray.py"
    source = cli.read_text()
    assert '"--reward.remote_url"' in source and '"--data.label_key"' in source


def test_the_query_openrlhf_sends_ends_with_the_eos(tokenizer):
    """What the fix is for: OpenRLHF's decode keeps `<|im_end|>` after the answer."""
    prompt, _ = preprocess_data({"input": "Capital of France?"},
                                apply_chat_template=tokenizer.apply_chat_template)
    prompt_ids = tokenizer(text=prompt, add_special_tokens=False)["input_ids"]
    answer_ids = OneAnswerEngine(tokenizer, "Paris").token_ids
    query = tokenizer.decode(prompt_ids + answer_ids, skip_special_tokens=False)
    assert query.startswith(prompt) and query.endswith("Paris<|im_end|>")


@pytest.mark.parametrize("answer, label, expected", [("Paris", "Paris", 1.0), ("Lyon", "Paris", 0.0),
                                                     ("24", "24", 1.0)])
def test_exact_match_sees_the_answer_without_the_eos(tmp_path, tokenizer, answer, label, expected):
    config = write(tmp_path, "checks:\n  - {name: exact, type: match}\n")
    with RewardPipeline.from_config(config) as pipeline, \
            running(create_app(pipeline, token=None, allow_networks=["127.0.0.1/32"])) as url:
        output = openrlhf_reward(url, tokenizer, "Capital of France?", answer, label)
    assert output["reward"] == [expected], output
    assert output["extra_logs"]["exact"] == [expected]


def test_json_gate_passes_a_valid_json_answer(tmp_path, tokenizer):
    config = write(tmp_path, (
        "checks:\n"
        "  - {name: json, type: json_valid, gate: true, gate_score: 0.0}\n"
        "  - {name: exact, type: match, extract: '\"answer\": *\"([^\"]*)\"'}\n"))
    with RewardPipeline.from_config(config) as pipeline, \
            running(create_app(pipeline, token=None, allow_networks=["127.0.0.1/32"])) as url:
        output = openrlhf_reward(url, tokenizer, "Capital of France? Answer in JSON.", '{"answer": "Paris"}',
                                 "Paris")
    assert output["extra_logs"]["gated"] == [0.0], "the EOS no longer makes valid JSON invalid"
    assert output["reward"] == [1.0]


def test_the_judge_sees_the_chat_and_the_bare_answer_and_empty_labels_work(tokenizer):
    """Without --data.label_key OpenRLHF sends label "": no reference (this reward needs none)."""
    pipeline, judge, _backend = make_pipeline()
    with pipeline, running(create_app(pipeline, token=None, allow_networks=["127.0.0.0/8"])) as url:
        output = openrlhf_reward(url, tokenizer, "Say something good.", "a good answer", None)
    assert output["reward"] == [1.0] and output["extra_logs"]["unscored"] == [0.0]
    _sample_id, completion, reference, prompt = judge.seen[0]
    assert completion == "a good answer"
    assert reference is None
    assert "Say something good." in prompt and "<|im_start|>" not in prompt

