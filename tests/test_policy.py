"""Policy loading and sampling: model folders, run folders, LoRA checkpoints, `materialize`.

Everything runs on a tiny real Llama written to disk by the test (tests/tiny_policy.py); the LoRA
adapter is made with peft and saved the way TRL saves checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.errors import ConfigError
from judgerl.models.policy import (
    SamplingConfig,
    adapter_base,
    latest_checkpoint,
    load_policy,
    materialize,
    resolve_spec,
)

PROMPTS = [[{"role": "user", "content": "Reply in JSON please"}], [{"role": "user", "content": "hello"}]]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_policy import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA checkpoint (non-zero B matrices, so it changes the outputs) inside a run folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    out = tmp_path_factory.mktemp("run") / "rft" / "checkpoint-4"
    model.save_pretrained(out)
    return out


def test_samples_k_answers_per_prompt_reproducibly(tiny_model_dir: Path):
    policy = load_policy(tiny_model_dir)
    assert not policy.is_adapter and policy.tokenizer.padding_side == "left"
    assert policy.render(PROMPTS[0]).endswith("<|im_start|>assistant\n"), "the chat template is applied"
    sampling = SamplingConfig(k=3, max_new_tokens=5, seed=7, batch_size=2)
    first = policy.generate(PROMPTS, sampling)
    assert [len(answers) for answers in first] == [3, 3]
    assert all(
        1 <= g.completion_tokens <= 5 and g.finish_reason in ("stop", "length") for a in first for g in a
    )
    assert [[g.text for g in a] for a in first] == [
        [g.text for g in a] for a in policy.generate(PROMPTS, sampling)
    ]
    greedy = policy.generate(PROMPTS[:1], SamplingConfig(k=2, temperature=0, max_new_tokens=5))
    assert greedy[0][0].text == greedy[0][1].text, "greedy decoding gives k identical answers"
    # left padding: a prompt's greedy answer does not depend on the batch it is in
    alone = policy.generate(PROMPTS[1:], SamplingConfig(k=1, temperature=0, max_new_tokens=5))
    batched = policy.generate(PROMPTS, SamplingConfig(k=1, temperature=0, max_new_tokens=5, batch_size=2))
    assert alone[0][0].text == batched[1][0].text


@pytest.mark.parametrize("adapter", [False, True])
def test_one_prefill_per_prompt_samples_what_num_return_sequences_samples(
        tiny_model_dir: Path, adapter_dir: Path, adapter: bool):
    policy = load_policy(adapter_dir if adapter else tiny_model_dir)
    sampling = SamplingConfig(k=4, max_new_tokens=8, seed=3, batch_size=2)
    prefills = []
    causal_lm = policy.model.get_base_model() if adapter else policy.model
    handle = causal_lm.register_forward_pre_hook(
        lambda module, args, kwargs: prefills.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        shared = policy.generate(PROMPTS, sampling)
    finally:
        handle.remove()
    policy.share_prompts = False
    copied = policy.generate(PROMPTS, sampling)
    assert [[g.text for g in a] for a in shared] == [[g.text for g in a] for a in copied]
    assert [[g.finish_reason for g in a] for a in shared] == [[g.finish_reason for g in a] for a in copied]
    assert len({g.text for g in shared[0]}) > 1, "sampled: the k answers differ, so the comparison can fail"
    # the two prompts prefilled once each (but their last token), then the 8 rows go on from there
    assert prefills[0][0] == 2 and prefills[1] == (8, 1)


def test_lora_checkpoint_loads_on_its_base_and_generates(tiny_model_dir: Path, adapter_dir: Path):
    assert adapter_base(adapter_dir) == str(tiny_model_dir)
    assert resolve_spec(adapter_dir.parent) == adapter_dir, "a run folder resolves to its last checkpoint"
    greedy = SamplingConfig(k=1, temperature=0, max_new_tokens=6)
    policy = load_policy(adapter_dir)
    assert policy.is_adapter and type(policy.model).__name__ == "PeftModel"
    adapted = policy.generate(PROMPTS, greedy)
    merged = load_policy(adapter_dir, merge_adapter=True)
    assert not merged.is_adapter and type(merged.model).__name__ == "LlamaForCausalLM"
    assert [a[0].text for a in merged.generate(PROMPTS, greedy)] == [a[0].text for a in adapted]
    base = load_policy(tiny_model_dir).generate(PROMPTS, greedy)
    assert [a[0].text for a in base] != [a[0].text for a in adapted], "the adapter changes the outputs"


def test_materialize_writes_a_plain_transformers_folder(adapter_dir: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = materialize(adapter_dir, tmp_path / "export")
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template, "the chat template travels with the export"
    greedy = SamplingConfig(k=1, temperature=0, max_new_tokens=6)
    expected = load_policy(adapter_dir).generate(PROMPTS, greedy)
    assert [a[0].text for a in load_policy(out).generate(PROMPTS, greedy)] == [a[0].text for a in expected]
    assert model.config.model_type == "llama"
    assert not list(tmp_path.glob(".export.*")), "no staging folder is left behind"


def test_bad_specs_are_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no model"):
        resolve_spec(tmp_path / "empty")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ConfigError, match="names no base model"):
        load_policy(adapter)
    with pytest.raises(ConfigError, match="k must be"):
        SamplingConfig(k=0)
    for n in (2, 10, 9):
        (tmp_path / "run" / f"checkpoint-{n}").mkdir(parents=True)
    assert latest_checkpoint(tmp_path / "run").name == "checkpoint-10"
