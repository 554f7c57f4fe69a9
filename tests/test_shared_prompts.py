"""Each prompt computed once per GRPO group (`rollout.share_prompts`) gives TRL's own numbers.

Everything is compared with the installed TRL's own code on a tiny real Llama with TRL's fused
LM head and a PEFT LoRA adapter: the per-token log-probabilities, entropies and the gradients of
the loss (through the shared prompt states), the tokens sampled with the same seed, and a whole
`judgerl train` step with and without sharing.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from judgerl.backends.scripted import ScriptedBackend  # noqa: E402
from judgerl.train import shared_prompts  # noqa: E402
from judgerl.train.grpo import GrpoRun, trainer_class  # noqa: E402
from judgerl.train.recipe import load_recipe  # noqa: E402
from judgerl.train.shared_prompts import (  # noqa: E402
    SharedPromptGRPOTrainer,
    generation_from_shared_prompts,
    overrides_fit_installed_trl,
    prefilled_cache,
    prompt_groups,
)
from tiny_policy import build_tiny_model_dir  # noqa: E402

PROMPTS = ["hello world, this is", "The capital of France is Paris. The answer"]
ORDER = [0, 1, 0, 1, 1, 0]  # two groups, shuffled as TRL shuffles a generation batch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("shared") / "model")


def policy(folder: Path) -> Any:
    """The tiny model as GRPOTrainer prepares it: fused LM head (temperature 0.9, log-probs and
    entropies), then a LoRA adapter on the top layer whose B matrices are not zero (so gradients
    reach every adapter matrix)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(folder)
    add_fused_lm_head(model, temperature=0.9, outputs=("log_probs", "entropy"))
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"],
                                             layers_to_transform=[1]))
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.1)
    return model


def batch(folder: Path) -> tuple[Any, Any, int, Any]:
    """(input_ids, attention_mask, completion length, completion mask) of ORDER's rows: left-padded
    prompts, random completions, two of them cut short (right padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompts = tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    prompt_ids, prompt_mask = prompts.input_ids[ORDER], prompts.attention_mask[ORDER]
    generator = torch.Generator().manual_seed(1)
    completion = torch.randint(3, len(tokenizer), (len(ORDER), 7), generator=generator)
    completion_mask = torch.ones_like(completion)
    completion_mask[1, 5:] = 0
    completion_mask[4, 3:] = 0
    return (torch.cat([prompt_ids, completion], 1), torch.cat([prompt_mask, completion_mask], 1),
            completion.size(1), completion_mask)


def trainer_stand_in() -> SimpleNamespace:
    """The one attribute both log-probability methods use (`accelerator.autocast()`)."""
    from accelerate import Accelerator

    return SimpleNamespace(accelerator=Accelerator(cpu=True))


def test_the_installed_trl_has_the_methods_overridden() -> None:
    # a TRL release that renames them makes this fail, and training falls back to TRL's own path
    assert overrides_fit_installed_trl()


def test_prompt_groups_keep_first_seen_order() -> None:
    ids = torch.tensor([[0, 5, 6], [7, 8, 9], [0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [1, 1, 1]])
    assert prompt_groups(ids, mask) == [[0, 2], [1, 3]]
    assert prompt_groups(ids, torch.ones_like(ids)) == [[0, 2], [1, 3]]
    other_mask = mask.clone()
    other_mask[2, 0] = 1  # same tokens, a real token where the other row has padding: not the same prompt
    assert prompt_groups(ids, other_mask) == [[0], [1, 3], [2]]


def test_log_probs_entropies_and_gradients_match_trls_path(tiny: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import GRPOTrainer

    model = policy(tiny)
    input_ids, attention_mask, keep, completion_mask = batch(tiny)
    stand_in = trainer_stand_in()

    reference, reference_entropy, _ = GRPOTrainer._get_per_token_logps_and_entropies(
        stand_in, model, input_ids, attention_mask, keep, compute_entropy=True)
    (reference * completion_mask).sum().backward()
    reference_grads = {name: parameter.grad.clone() for name, parameter in model.named_parameters()
                       if parameter.grad is not None}
    model.zero_grad()

    calls = []
    original = shared_prompts.shared_prompt_logps
    monkeypatch.setattr(shared_prompts, "shared_prompt_logps",
                        lambda *args, **kwargs: calls.append(args[4]) or original(*args, **kwargs))
    shared, shared_entropy, aux = SharedPromptGRPOTrainer._get_per_token_logps_and_entropies(
        stand_in, model, input_ids, attention_mask, keep, compute_entropy=True)
    assert calls == [[[0, 2, 5], [1, 3, 4]]], "the shared path ran, over the two groups"
    assert aux is None and shared.shape == reference.shape == (len(ORDER), keep)
    mask = completion_mask.bool()
    assert torch.allclose(shared[mask], reference[mask], atol=1e-5)
    assert torch.allclose(shared_entropy[mask], reference_entropy[mask], atol=1e-5)
    assert reference[mask].std() > 0.1, "log-probabilities that differ: the comparison can fail"

    (shared * completion_mask).sum().backward()
    assert len(reference_grads) == 6  # the top layer's LoRA: 3 adapted modules x (A, B)
    for name, expected in reference_grads.items():
        got = dict(model.named_parameters())[name].grad
        assert got is not None, name
        assert torch.allclose(got, expected, atol=1e-6, rtol=1e-4), name
        assert expected.abs().max() > 0, name


def test_generation_from_shared_prompts_samples_the_same_tokens(tiny: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    prompts = tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    input_ids, attention_mask = prompts.input_ids[ORDER], prompts.attention_mask[ORDER]
    config = GenerationConfig(max_new_tokens=12, do_sample=True, temperature=0.9, eos_token_id=None,
                              pad_token_id=tokenizer.pad_token_id)

    torch.manual_seed(3)
    with torch.no_grad():
        expected = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                  generation_config=config)
    cache = prefilled_cache(model, input_ids, attention_mask)
    assert cache is not None and cache.get_seq_length() == input_ids.size(1) - 1
    assert cache.layers[0].keys.size(0) == len(ORDER)
    assert prefilled_cache(model, input_ids[:2], attention_mask[:2]) is None, "distinct prompts: none shared"

    prefills = []
    handle = model.register_forward_pre_hook(lambda module, args, kwargs: prefills.append(
        kwargs["input_ids"].shape), with_kwargs=True)
    try:
        with generation_from_shared_prompts(model):
            torch.manual_seed(3)
            with torch.no_grad():
                got = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                     generation_config=config)
    finally:
        handle.remove()
    assert "generate" not in vars(model), "the model's own generate is back"
    assert torch.equal(got, expected)
    assert not torch.equal(got[0], got[2]), "sampled: rows of one prompt differ, so tokens can disagree"
    # the two distinct prompts once (but their last token), then every row from its last prompt token
    assert prefills[0] == (2, input_ids.size(1) - 1) and prefills[1] == (len(ORDER), 1)


REWARD = {"checks": [{"name": "length", "type": "length", "unit": "chars", "min": 1, "max": 30}]}


def run_one_step(folder: Path, out: Path, *, share: bool) -> tuple[Any, list[dict[str, Any]]]:
    rows = [{"id": f"q{i}", "prompt": f"Say something short about {word}."}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain"])]
    out.parent.mkdir(parents=True, exist_ok=True)
    data = out.parent / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    recipe = load_recipe({
        # no LoRA dropout: TRL samples in training mode, and dropout draws would differ (the
        # prompt is computed once, so a group shares one dropout draw over its prompt)
        "model": {"name_or_path": str(folder),
                  "lora": {"enabled": True, "rank": 4, "alpha": 8, "dropout": 0.0}},
        "data": {"train": str(data)}, "reward": REWARD,
        "rollout": {"number_generation": 4, "max_new_tokens": 12, "share_prompts": share},
        "trainer": {"max_steps": 1, "global_batch_size": 8, "save_steps": 1, "learning_rate": 5e-2},
        "logging": {"output_dir": str(out), "tensorboard": False}}, [])
    grpo = GrpoRun(recipe, backends={"judge": ScriptedBackend(lambda request: "unused")})
    trainer = grpo.trainer
    grpo.run()
    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    return trainer, completions


def test_a_training_step_with_shared_prompts_is_trls_step(tiny: Path, tmp_path: Path) -> None:
    shared_trainer, shared = run_one_step(tiny, tmp_path / "a" / "shared", share=True)
    plain_trainer, plain = run_one_step(tiny, tmp_path / "b" / "plain", share=False)
    assert type(shared_trainer) is SharedPromptGRPOTrainer
    assert type(plain_trainer) is not SharedPromptGRPOTrainer
    assert [row["completion"] for row in shared] == [row["completion"] for row in plain]
    assert len({row["completion"] for row in shared}) > 4, "sampled answers, not one per prompt"
    from safetensors.torch import load_file

    after = [load_file(str(out / "final" / "adapter_model.safetensors"))
             for out in (tmp_path / "a" / "shared", tmp_path / "b" / "plain")]
    assert after[0].keys() == after[1].keys()
    moved = 0
    for name in after[0]:
        assert torch.allclose(after[0][name], after[1][name], atol=1e-5), name
        moved += int(after[0][name].abs().sum() > 0)
    assert moved > 0


def test_vllm_or_switched_off_means_trls_trainer(tmp_path: Path) -> None:
    from trl import GRPOTrainer

    base = {"model": {"name_or_path": "m"}, "data": {"train": "t.jsonl"}, "reward": REWARD,
            "logging": {"output_dir": str(tmp_path)}}
    assert trainer_class(load_recipe(base, [])) is GRPOTrainer, "off by default"
    assert trainer_class(load_recipe(base, ["rollout.share_prompts=true"])) is SharedPromptGRPOTrainer
    vllm = ["rollout.share_prompts=true", "rollout.vllm.enabled=true", "rollout.vllm.mode=colocate"]
    assert trainer_class(load_recipe(base, vllm)) is GRPOTrainer
