"""`judgerl run` end to end on CPU, shortened: a tiny real Llama, a scripted judge, every stage
(baseline eval, validation, SFT, RFT, final eval, export, report), and a resume after a stage
was interrupted. The judge is a scripted backend (it says so in its name); the model, TRL's
trainers, the checkpoints, the export and the report are real.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.run.workflow import STAGES, Workflow
from tiny_policy import build_tiny_model_dir

PROMPTS = ["Say hello.", "Name a colour.", "Count to three.", "Name a fruit.", "Say thanks.", "Name a day."]


def scripted_judge(request: CompletionRequest) -> str:
    """Pass/fail from a hash of the judged prompt, so rewards vary within a group."""
    content = request.messages[-1]["content"]
    digest = hashlib.sha256(content.encode()).digest()[0]
    passed = "Hello!" in content or digest % 2 == 0
    return json.dumps({"criteria": {"clear": {"rationale": "scripted", "score": passed}}})


def write_recipe(folder: Path, *, regression_answer: str = "Hello!") -> Path:
    model = build_tiny_model_dir(folder / "tiny-model")
    for split, prompts in (("train", PROMPTS), ("eval", PROMPTS[:2])):
        with (folder / f"{split}.jsonl").open("w") as handle:
            for index, prompt in enumerate(prompts):
                handle.write(json.dumps({"id": f"{split}-{index}", "prompt": prompt,
                                         "reference": "A short, clear answer."}) + "\n")
    reward = {"backends": {"judge": {"type": "scripted"}},
              "checks": [{"name": "length", "type": "length", "unit": "chars", "min": 1, "max": 60}],
              "judges": [{"name": "quality", "type": "rubric",
                          "criteria": [{"name": "clear", "description": "the answer is clear"}]}],
              "failure_budget": 1.0}
    (folder / "reward.yaml").write_text(yaml.safe_dump(reward))
    suite = {"regression": {"items": [
        {"id": "good", "prompt": "Say hello.", "answer": regression_answer, "expect": "pass"}]}}
    (folder / "suite.yaml").write_text(yaml.safe_dump(suite))
    recipe = {
        "model": {"name_or_path": str(model), "lora": {"enabled": True, "rank": 4, "alpha": 8}},
        "data": {"train": "train.jsonl", "eval": "eval.jsonl"},
        "rollout": {"number_generation": 2, "max_new_tokens": 6},
        "trainer": {"max_steps": 2, "global_batch_size": 4, "save_steps": 1, "learning_rate": 1e-3},
        "reward": "reward.yaml",
        "sft": {"max_steps": 1, "batch_size": 2, "max_length": 64},
        "monitors": {"held_out_reward": "reward.yaml", "progress": False},
        "logging": {"output_dir": "run", "tensorboard": False},
        "validation": {"suite": "suite.yaml"},
        "evaluation": {"k": 2, "max_new_tokens": 6, "temperature": 1.0},
        "workflow": {"export_check": True},
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return folder / "recipe.yaml"


def backends() -> dict:
    return {"judge": ScriptedBackend(scripted_judge)}


def test_run_every_stage_then_resume_after_an_interrupted_stage(tmp_path: Path, monkeypatch):
    recipe = write_recipe(tmp_path)
    original = Workflow.final_eval

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Workflow, "final_eval", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Workflow(recipe, backends=backends()).run()
    run_dir = tmp_path / "run"
    stages = json.loads((run_dir / "stages.json").read_text())["stages"]
    assert list(stages) == ["baseline_eval", "validation", "sft", "rft"]
    base_rows = (run_dir / "eval" / "base" / "samples.jsonl").read_text()
    rft_checkpoints = sorted(p.name for p in (run_dir / "rft").glob("checkpoint-*"))
    assert rft_checkpoints == ["checkpoint-1", "checkpoint-2"]

    monkeypatch.setattr(Workflow, "final_eval", original)
    report = Workflow(recipe, backends=backends()).run()

    stages = json.loads((run_dir / "stages.json").read_text())["stages"]
    assert list(stages) == list(STAGES) and all(s["status"] == "done" for s in stages.values())
    assert (run_dir / "eval" / "base" / "samples.jsonl").read_text() == base_rows, "base eval was redone"
    metrics = [json.loads(line) for line in (run_dir / "rft" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2], "training was redone"

    summaries = {label: json.loads((run_dir / "eval" / label / "summary.json").read_text())
                 for label in ("base", "sft", "rft")}
    assert all(0.0 <= s["reward_mean"] <= 1.0 for s in summaries.values())
    assert (run_dir / "validation" / "validation.json").exists()
    html = report.read_text()
    for label, summary in summaries.items():
        assert label in html
        assert f"{summary['reward_mean']:.3f}" in html
    assert (run_dir / "export" / "config.json").exists() and (run_dir / "export" / "README.md").exists()
    assert "export/README.md" in html


def test_a_failed_validation_gate_stops_the_run_before_training(tmp_path: Path):
    from judgerl.errors import JudgerlError

    recipe = write_recipe(tmp_path, regression_answer="zz")  # the scripted judge fails this one
    with pytest.raises(JudgerlError, match=r"regression: pass_rate = 0\.000"):
        Workflow(recipe, backends=backends()).run()
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())["stages"]
    assert list(stages) == ["baseline_eval"]
    assert not (tmp_path / "run" / "rft").exists()


def test_rft_can_start_from_the_sft_model(tmp_path: Path):
    recipe = write_recipe(tmp_path)
    overrides = ["workflow.rft_from=sft", "validation.suite=null", "trainer.max_steps=1"]
    Workflow(recipe, overrides, backends=backends(), stop_after="rft").run()
    run_dir = tmp_path / "run"
    stages = json.loads((run_dir / "stages.json").read_text())["stages"]
    merged_sft = run_dir / "sft" / "final" / "merged"
    assert Path(stages["rft"]["outputs"]["started_from"]) == merged_sft
    adapter = json.loads((run_dir / "rft" / "final" / "adapter_config.json").read_text())
    assert Path(adapter["base_model_name_or_path"]) == merged_sft  # the RFT adapter sits on the SFT model


def test_rft_from_sft_without_an_sft_stage_is_a_config_error(tmp_path: Path):
    from judgerl.errors import ConfigError

    recipe = write_recipe(tmp_path)
    workflow = Workflow(recipe, ["workflow.rft_from=sft", "workflow.sft=false"], backends=backends())
    with pytest.raises(ConfigError, match="rft_from: sft needs the SFT stage's merged model") as info:
        workflow.rft_recipe()
    assert info.value.field == "workflow.rft_from"


def test_a_folder_finished_under_other_settings_is_not_resumed(tmp_path: Path):
    from judgerl.errors import ConfigError

    recipe = write_recipe(tmp_path)
    Workflow(recipe, backends=backends(), stop_after="baseline_eval").run()
    run_dir = tmp_path / "run"
    saved = (run_dir / "recipe.yaml").read_text()
    stages = (run_dir / "stages.json").read_text()

    # say `judgerl demo --quick`, then the full run in the same folder: its finished stages would be
    # skipped and the report would mix the two runs
    with pytest.raises(ConfigError, match=r"other settings \(trainer\.max_steps: 2 -> 3\)"):
        Workflow(recipe, ["trainer.max_steps=3"], backends=backends())
    assert (run_dir / "recipe.yaml").read_text() == saved and (run_dir / "stages.json").read_text() == stages

    # the same settings resume (the interrupted-run case)
    Workflow(recipe, backends=backends(), stop_after="validation").run()
    stages = json.loads((run_dir / "stages.json").read_text())["stages"]
    assert list(stages) == ["baseline_eval", "validation"]
