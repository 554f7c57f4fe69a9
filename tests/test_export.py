"""`judgerl export` on a short, real run: a tiny Llama, LoRA adapters saved by peft, a real evaluation.

The run is built from real artefacts, cheaply: a tiny base model (tests/tiny_policy.py), two LoRA
checkpoints written by peft with random (non-zero) adapter weights and a trainer_state.json, an SFT
adapter, `judgerl.evaluate` run on base / SFT / both RFT checkpoints with greedy decoding, and a
validation report written through judgerl.validate's own classes. The judge is the configured
`scripted` backend (it says so in its name): it answers a fixed verdict, so the rewards vary by
the deterministic checks only. The export is reloaded with plain transformers / peft.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from judgerl.export import (
    ExportCheckFailed,
    RunFiles,
    check_export,
    compare_figure,
    export_run,
    read_run,
    select_checkpoint,
)
from judgerl.model_card import fmt, front_matter
from judgerl.safe_yaml import load_yaml
from tiny_policy import build_tiny_model_dir

PROMPTS = ["Say yes in JSON.", "What is the capital of France?", "Say hello.", "Give a score."]


def reward(criterion: str, verdict: bool) -> dict[str, Any]:
    answer = {"criteria": {criterion: {"score": verdict, "rationale": "scripted"}}}
    return {
        "backends": {"judge": {"type": "scripted", "model": "scripted-judge", "answer": answer}},
        "checks": [{"name": "schema", "type": "json_valid"},
                   {"name": "length", "type": "length", "unit": "chars", "min": 1, "max": 12}],
        "judges": [{"name": "quality", "type": "rubric", "backend": "judge",
                    "criteria": [{"name": criterion, "description": f"the answer is {criterion}"}]}],
        "failure_budget": 1.0,
    }


def save_adapter(base: Path, out: Path, seed: int, step: int | None = None) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    if step is not None:
        (out / "optimizer.pt").write_bytes(b"not shipped")
        state = {"global_step": step, "log_history": [{"step": step, "loss": 0.1 * step}],
                 "best_model_checkpoint": str(out.parent / "checkpoint-1"), "best_metric": 0.5}
        (out / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")


def write_validation(run: Path) -> dict[str, Any]:
    from judgerl.validate.report import SectionResult, ValidationReport
    from judgerl.validate.suite import Threshold

    section = SectionResult(
        name="agreement", judge="quality", figures={"accuracy": 0.8125, "kappa": 0.634},
        intervals={"accuracy": (0.71, 0.9)},
        thresholds=[Threshold(section="agreement", figure="kappa", kind="min", bound=0.4)])
    report = ValidationReport(judge="quality", judge_kind="rubric", config="reward.yaml", suite="suite.yaml",
                              sections=[section]).to_dict()
    (run / "validation").mkdir(parents=True)
    (run / "validation" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from judgerl.evaluate import ModelSpec, evaluate_models
    from judgerl.policy import SamplingConfig
    from judgerl.train.prompts import load_split
    from judgerl.train.recipe import load_recipe

    root = tmp_path_factory.mktemp("export")
    base = build_tiny_model_dir(root / "model")
    rows = [{"id": f"p{index}", "prompt": prompt} for index, prompt in enumerate(PROMPTS)]
    for name in ("train.jsonl", "eval.jsonl"):
        (root / name).write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = root / "run"
    run.mkdir()
    recipe = {"model": {"name_or_path": str(base), "lora": {"rank": 4, "alpha": 8}},
              "data": {"train": str(root / "train.jsonl"), "eval": str(root / "eval.jsonl")},
              "reward": reward("clear", True), "trainer": {"max_steps": 2, "save_steps": 1},
              "monitors": {"held_out_reward": reward("grounded", False)},
              "logging": {"output_dir": str(run / "rft")}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    save_adapter(base, run / "rft" / "checkpoint-1", seed=1, step=1)
    save_adapter(base, run / "rft" / "checkpoint-2", seed=2, step=2)
    save_adapter(base, run / "sft" / "checkpoint-1", seed=3)
    write_validation(run)
    loaded = load_recipe(run / "recipe.yaml")
    models = {"base": ModelSpec(source=str(base)), "sft": ModelSpec(source=str(run / "sft")),
              "rft": ModelSpec(source=str(run / "rft" / "checkpoint-2")),
              "rft-step1": ModelSpec(source=str(run / "rft" / "checkpoint-1"))}
    evaluate_models(models, load_split(loaded, "eval"), recipe["reward"], k=2,
                    heldout_reward_config=recipe["monitors"]["held_out_reward"], out_dir=run,
                    sampling=SamplingConfig(temperature=0, max_new_tokens=8, batch_size=8))
    return run


@pytest.fixture(scope="module")
def merged(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return export_run(run_dir, tmp_path_factory.mktemp("merged") / "export", limit=8)


def summaries(run: Path) -> dict[str, dict[str, Any]]:
    return {path.parent.name: json.loads(path.read_text()) for path in run.glob("eval/*/summary.json")}


def test_merged_export_loads_with_plain_transformers_and_generates(merged: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merged.output
    names = {path.name for path in out.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "judgerl_export.json"} <= names
    assert not names & {"optimizer.pt", "trainer_state.json", "adapter_config.json"}
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tokenizer.chat_template  # the chat template travels with the export
    messages = [{"role": "user", "content": "Say hello."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    output = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] > ids["input_ids"].shape[1]
    assert merged.checkpoint.name == "checkpoint-2"  # "last": no final/, the highest checkpoint
    assert merged.check is not None and merged.check.passed, merged.check.describe()
    assert merged.check.exact_text and merged.check.compared_answers == len(PROMPTS) * 2
    assert {item.figure for item in merged.check.comparisons} >= {"reward_mean", "heldout_reward_mean",
                                                                   "schema_validity"}
    assert torch.isfinite(model(**ids).logits).all()


def test_merged_logits_equal_base_plus_adapter(merged: Any, run_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(run_dir.parent / "model", dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(run_dir / "rft" / "checkpoint-2")).eval()
    exported = AutoModelForCausalLM.from_pretrained(merged.output, dtype=torch.float32).eval()
    bare = AutoModelForCausalLM.from_pretrained(run_dir.parent / "model", dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(merged.output)("The capital of France is Paris.", return_tensors="pt")
    with torch.inference_mode():
        want, got, plain = (m(**ids).logits for m in (adapted, exported, bare))
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(plain, want, atol=1e-3)  # the adapter does change the model


def test_card_holds_the_runs_figures(merged: Any, run_dir: Path) -> None:
    text = merged.card.read_text(encoding="utf-8")
    meta = front_matter(text)
    assert meta["library_name"] == "transformers"
    assert {"judgerl", "grpo", "rlhf"} <= set(meta["tags"])
    assert meta["datasets"] == ["train.jsonl", "eval.jsonl"]
    found = summaries(run_dir)
    results = {metric["type"]: metric["value"] for metric in meta["model-index"][0]["results"][0]["metrics"]}
    assert results["judge_reward"] == pytest.approx(found["rft"]["reward_mean"])
    assert results["heldout_judge_reward"] == pytest.approx(found["rft"]["heldout"]["reward_mean"])
    table = text.split("## Evaluation", 1)[1].split("## Reward and judge", 1)[0]
    assert "| figure | base | sft | rft | rft-step1 |" in table
    for label in ("base", "sft", "rft"):
        summary = found[label]
        for value in (summary["reward_mean"], summary["best_of_k"], summary["schema_validity"],
                      summary["heldout"]["reward_mean"], *summary["criteria"].values()):
            assert fmt(value) in table
    row = next(line for line in table.splitlines() if line.startswith("| schema validity |"))
    expected = [f" {fmt(found[label]['schema_validity'])} " for label in ("base", "sft", "rft")]
    assert row.split("|")[2:5] == expected
    validation = text.split("## Judge validation", 1)[1]
    assert "0.812" in validation and "0.634" in validation and ">= 0.4" in validation
    assert "scripted-judge" in text and "rubric-v" in text  # judge model and prompt version
    recipe_block = text.split("The whole recipe", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    recipe = load_yaml(recipe_block)
    assert recipe["trainer"]["max_steps"] == 2 and recipe["trainer"]["clip_ratio"] == 0.2  # defaults too
    assert "vllm serve ./export --served-model-name judgerl-run" in text


def test_provenance_hashes_the_shipped_weights(merged: Any) -> None:
    provenance = json.loads(merged.provenance.read_text())
    digest = hashlib.sha256((merged.output / "model.safetensors").read_bytes()).hexdigest()
    assert provenance["weights_sha256"] == {"model.safetensors": digest}
    assert provenance["checkpoint"].endswith("checkpoint-2") and provenance["format"] == "merged"
    assert provenance["check"]["passed"] is True and provenance["dtype"] == "float32"


def test_adapter_only_export_loads_with_peft(run_dir: Path, merged: Any, tmp_path: Path) -> None:
    import torch
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_run(run_dir, tmp_path / "adapter", merge=False, limit=2)
    assert result.check is not None and result.check.passed, result.check.describe()
    names = {path.name for path in result.output.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "optimizer.pt" not in names and "trainer_state.json" not in names
    model = AutoPeftModelForCausalLM.from_pretrained(result.output).eval()
    exported = AutoModelForCausalLM.from_pretrained(merged.output).eval()
    ids = AutoTokenizer.from_pretrained(result.output)("Say hello.", return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(model(**ids).logits, exported(**ids).logits, atol=1e-5)
    card = result.card.read_text()
    assert "--enable-lora --lora-modules judgerl-run=./export" in card
    assert front_matter(card)["library_name"] == "peft"


def tamper(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    name = next(key for key in weights if "layers.1.mlp.down_proj" in key)
    weights[name] = weights[name] + 0.5 * torch.randn_like(weights[name])
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_check_fails_on_tampered_weights(merged: Any, run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "tampered"
    shutil.copytree(merged.output, copy)
    tamper(copy)
    with pytest.raises(ExportCheckFailed) as caught:
        check_export(copy, run_dir, limit=8)
    check = caught.value.check
    assert check.logits is not None and not check.logits["passed"]
    assert "FAIL logits vs checkpoint" in str(caught.value)
    assert check.logits["max_relative_diff"] > check.logits["tolerance"]


def test_cli_export_then_check_only_fails_when_tampered(run_dir: Path, tmp_path: Path) -> None:
    from judgerl.cli import app

    out = tmp_path / "cli-export"
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(run_dir), "--output", str(out), "--no-check", "--name", "tiny"])
    assert done.exit_code == 0, done.output
    assert (out / "model.safetensors").is_file() and "vllm serve ./export --served-model-name tiny" in (
        out / "README.md").read_text()
    check_only = ["export", str(run_dir), "--output", str(out), "--check-only", "--limit", "2"]
    ok = runner.invoke(app, check_only)
    assert ok.exit_code == 0, ok.output
    tamper(out)
    failed = runner.invoke(app, check_only)
    assert failed.exit_code == 1
    assert "FAIL" in failed.output


def test_failed_check_keeps_nothing_in_place(run_dir: Path, tmp_path: Path) -> None:
    """An export whose check fails is left at <output>.rejected, never at <output>."""
    out = tmp_path / "strict"
    other = tmp_path / "other.jsonl"  # same prompt ids, other prompts: the greedy answers cannot match
    other.write_text("".join(json.dumps({"id": f"p{index}", "prompt": f"Something else {index}?"}) + "\n"
                             for index in range(len(PROMPTS))), encoding="utf-8")
    with pytest.raises(ExportCheckFailed, match="greedy answers identical"):
        export_run(run_dir, out, limit=2, data=other)
    assert not out.exists() and (tmp_path / "strict.rejected" / "model.safetensors").is_file()


def test_best_checkpoint_by_heldout_judge_then_trainer_state(run_dir: Path) -> None:
    files = read_run(run_dir)
    found = summaries(run_dir)
    selection = select_checkpoint(files, "best")
    scores = {"checkpoint-1": found["rft-step1"]["heldout"]["reward_mean"],
              "checkpoint-2": found["rft"]["heldout"]["reward_mean"]}
    assert selection.rule.startswith("best: highest held-out judge")
    assert scores[selection.path.name] == max(scores.values())
    labels = {"checkpoint-1": "rft-step1", "checkpoint-2": "rft"}
    assert selection.reference_label == labels[selection.path.name]
    without_evals = RunFiles(run_dir=run_dir, recipe=files.recipe)
    fallback = select_checkpoint(without_evals, "best")
    assert fallback.path.name == "checkpoint-1" and "trainer_state" in fallback.rule


def test_best_without_evidence_is_an_error(tmp_path: Path) -> None:
    from judgerl.errors import ConfigError

    (tmp_path / "rft" / "checkpoint-3").mkdir(parents=True)
    (tmp_path / "rft" / "checkpoint-3" / "config.json").write_text("{}")
    assert select_checkpoint(RunFiles(run_dir=tmp_path), "last").path.name == "checkpoint-3"
    with pytest.raises(ConfigError, match="needs evaluations"):
        select_checkpoint(RunFiles(run_dir=tmp_path), "best")


def test_compare_figure_tolerates_noise_but_not_a_shift() -> None:
    import random

    rng = random.Random(0)

    def rows(p: float, prompts: int = 16, k: int = 4) -> list[dict[str, Any]]:
        return [{"prompt_id": f"q{i}", "v": float(rng.random() < p)}
                for i in range(prompts) for _ in range(k)]

    same = [compare_figure("v", rows(0.5), rows(0.5), lambda row: row["v"], atol=0.0) for _ in range(20)]
    assert sum(item.passed for item in same) >= 19  # z = 3: false alarms are rare
    shifted = compare_figure("v", rows(0.2), rows(0.9), lambda row: row["v"], atol=0.0)
    assert not shifted.passed and shifted.difference > shifted.tolerance
    exact = compare_figure("v", [{"prompt_id": "a", "v": 1.0}], [{"prompt_id": "a", "v": 0.0}],
                           lambda row: row["v"], atol=0.05)
    assert exact.se is None and not exact.passed  # too few answers for an se: atol alone decides
