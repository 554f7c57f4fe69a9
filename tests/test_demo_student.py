"""`judgerl demo --judge student` at tiny scale: a tiny real student distilled from a slice of the
specific-reply set, gated, reused on a second run when nothing changed, trained again when the
settings change, refused below the thresholds; and the whole demo workflow (tiny real policy,
every stage) rewarded by that student through the `local` backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from judgerl.distill.agreement import DistillGateError, Thresholds
from judgerl.distill.demo_judge import (
    BACKEND,
    CRITERION,
    DESCRIPTION,
    QUICK_EVERY,
    StudentPlan,
    prepare_student,
    quick_plan,
    run_student_demo,
    specific_reply_data,
    student_reward_config,
)
from judgerl.distill.student import TrainSettings
from judgerl.run.workflow import DEMO_RECIPE, QUICK_OVERRIDES
from tiny_policy import build_corpus_model_dir, build_tiny_model_dir

#: a tiny student cannot pass the real gate; these thresholds let the plumbing run
OPEN_GATE = Thresholds(min_accuracy=0.0, min_kappa=-1.0)


def slice_file(source: Path, target: Path, every: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[::every]), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def tiny_plan(tmp_path_factory: pytest.TempPathFactory) -> StudentPlan:
    from judgerl.judges.templates import load_prompt

    folder = tmp_path_factory.mktemp("student-data")
    train, held = specific_reply_data()
    train = slice_file(train, folder / "train.jsonl", 8)
    held = slice_file(held, folder / "held.jsonl", 8)
    corpus = [load_prompt("rubric_student").text, DESCRIPTION,
              *train.read_text(encoding="utf-8").splitlines(), "PASS", "FAIL"]
    base = build_corpus_model_dir(folder / "tiny-base", corpus)
    return StudentPlan(base_model=str(base), train=train, held_out=held,
                       settings=TrainSettings(method="full", epochs=1, learning_rate=3e-3),
                       thresholds=OPEN_GATE)


def test_a_student_is_reused_when_data_and_settings_match_and_trained_again_otherwise(
        tmp_path: Path, tiny_plan: StudentPlan):
    folder = tmp_path / "student"
    first = prepare_student(folder, tiny_plan)
    assert not first.reused and (first.model_dir / "config.json").is_file()
    assert first.figures["held_out_rows"] > 0 and first.figures["train_rows"] > 0
    weights = sorted(first.model_dir.glob("*.safetensors"))
    stamp = [path.stat().st_mtime_ns for path in weights]

    again = prepare_student(folder, tiny_plan)
    assert again.reused and again.figures == first.figures
    assert [path.stat().st_mtime_ns for path in weights] == stamp, "a reused student is not rewritten"

    # a stricter gate re-checks the recorded figures without training
    strict = StudentPlan(**{**tiny_plan.__dict__, "thresholds": Thresholds(min_accuracy=1.01)})
    with pytest.raises(DistillGateError, match="refused"):
        prepare_student(folder, strict)
    assert [path.stat().st_mtime_ns for path in weights] == stamp

    other = StudentPlan(**{**tiny_plan.__dict__, "settings": TrainSettings(method="full", epochs=1,
                                                                          learning_rate=3e-3, seed=1)})
    assert other.digest() != tiny_plan.digest()
    retrained = prepare_student(folder, other)
    assert not retrained.reused
    assert json.loads((folder / "student.json").read_text())["digest"] == other.digest()


def test_changed_labels_change_the_digest(tmp_path: Path, tiny_plan: StudentPlan):
    copy = tmp_path / "train.jsonl"
    copy.write_text(tiny_plan.train.read_text(encoding="utf-8").replace('"score": 1', '"score": 0', 1))
    changed = StudentPlan(**{**tiny_plan.__dict__, "train": copy})
    assert changed.digest() != tiny_plan.digest()


def test_a_student_below_the_thresholds_is_refused(tmp_path: Path, tiny_plan: StudentPlan):
    strict = StudentPlan(**{**tiny_plan.__dict__, "thresholds": Thresholds(min_accuracy=1.01)})
    with pytest.raises(DistillGateError, match="accuracy"):
        prepare_student(tmp_path / "student", strict)
    assert (tmp_path / "student" / "agreement.md").is_file(), "the refused student's report is kept"


def test_the_quick_student_sees_a_quarter_of_the_rows_once_and_its_gate_is_only_printed(
        tmp_path: Path, tiny_plan: StudentPlan):
    from rich.console import Console

    plan = quick_plan(tmp_path / "data")
    for quick, packaged in zip((plan.train, plan.held_out), specific_reply_data(), strict=True):
        rows = packaged.read_text(encoding="utf-8").splitlines()
        assert quick.read_text(encoding="utf-8").splitlines() == rows[::QUICK_EVERY]
    assert plan.settings.epochs == 1 and plan.digest() != StudentPlan().digest()

    strict = StudentPlan(**{**tiny_plan.__dict__, "thresholds": Thresholds(min_accuracy=1.01)})
    console = Console(record=True, width=200)
    student = prepare_student(tmp_path / "student", strict, console, enforce_gate=False)
    assert (student.model_dir / "config.json").is_file()
    assert "gate not enforced (--quick): accuracy" in console.export_text()


def test_the_reward_config_adds_the_student_to_the_checks(tmp_path: Path):
    reward = DEMO_RECIPE.parent / "reward.yaml"
    config = student_reward_config(reward, tmp_path / "model", weight=2.0)
    demo = yaml.safe_load(reward.read_text())
    assert [c["name"] for c in config["checks"]] == [c["name"] for c in demo["checks"]]
    [judge] = config["judges"]
    assert judge["scoring"] == "logprob" and judge["prompt"] == "rubric_student"
    assert judge["backend"] == BACKEND and judge["weight"] == 2.0
    assert judge["criteria"][0]["name"] == CRITERION
    assert config["backends"] == {BACKEND: {"type": "local", "model": str((tmp_path / "model").resolve()),
                                            "max_concurrency": 16}}


def test_the_demo_runs_every_stage_rewarded_by_the_student(tmp_path: Path, tiny_plan: StudentPlan):
    policy = build_tiny_model_dir(tmp_path / "tiny-policy")
    overrides = [*QUICK_OVERRIDES, f"model.name_or_path={policy}", "model.lora.rank=4", "model.lora.alpha=8",
                 "rollout.number_generation=2", "rollout.max_new_tokens=6", "trainer.global_batch_size=4",
                 "evaluation.max_new_tokens=6", "workflow.sft=false",  # SFT rows exceed the tiny context
                 "monitors.held_out_reward=null", "logging.tensorboard=false"]
    run_dir = tmp_path / "demo"
    report, timings = run_student_demo(run_dir, overrides, plan=tiny_plan)
    assert report.is_file()
    assert set(timings) >= {"distill", "sft", "rft", "evaluation", "total"} and timings["sft"] == 0.0
    assert timings["rft"] > 0 and timings["evaluation"] > 0
    summary = json.loads((run_dir / "eval" / "rft" / "summary.json").read_text())
    scored = summary["components"].get(CRITERION)
    assert scored is not None and 0.0 <= scored <= 1.0, summary["components"]
    assert json.loads((run_dir / "timings.json").read_text()) == timings


def test_an_unknown_demo_judge_is_refused_before_any_work(tmp_path: Path):
    from typer.testing import CliRunner

    from judgerl.cli import app

    result = CliRunner().invoke(app, ["demo", "--run-dir", str(tmp_path / "demo"), "--judge", "teacher"])
    assert result.exit_code != 0
    assert "student or fewshot" in result.output
    assert not (tmp_path / "demo").exists()


def test_a_folder_of_the_few_shot_demo_is_not_resumed_with_the_student(tmp_path: Path,
                                                                        tiny_plan: StudentPlan):
    from judgerl.errors import ConfigError

    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    (run_dir / "stages.json").write_text(json.dumps({"stages": {"rft": {"status": "done", "seconds": 1}}}))
    with pytest.raises(ConfigError, match="another judge"):
        run_student_demo(run_dir, plan=tiny_plan)
    assert not (run_dir / "student").exists(), "refused before distilling"


def test_finished_stages_of_a_previous_student_are_not_resumed_with_a_new_one(
        tmp_path: Path, tiny_plan: StudentPlan):
    from judgerl.errors import ConfigError

    run_dir = tmp_path / "demo"
    run_dir.mkdir()
    (run_dir / "stages.json").write_text(json.dumps({"stages": {"rft": {"status": "done", "seconds": 1}}}))
    (run_dir / "reward-student.yaml").write_text("checks: []\n")
    with pytest.raises(ConfigError, match="fresh --run-dir"):
        run_student_demo(run_dir, plan=tiny_plan)
