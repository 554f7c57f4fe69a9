"""`judgerl distill`: teacher verdicts -> a trained student folder, a reward snippet, a gated report.

Why one function: the CLI, the benchmark and the tests run the same steps in the same order
(read verdicts, split by sample, train, write the folder and the snippet, score the held-out rows
through the `local` backend, report, gate), so none of them can skip the held-out measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from judgerl.config import load_reward_config
from judgerl.distill.agreement import (
    AgreementReport,
    DistillGateError,
    Thresholds,
    measure_agreement,
    student_verdicts,
    write_agreement_report,
)
from judgerl.distill.examples import Judged, judged_from_journal, judged_from_labelled, split_by_sample
from judgerl.distill.student import TrainResult, TrainSettings, student_judge_config, train_student
from judgerl.errors import ConfigError

MODEL_FOLDER = "model"
SNIPPET_FILE = "reward-snippet.yaml"


@dataclass
class DistillResult:
    report: AgreementReport
    training: TrainResult
    model_dir: Path
    snippet: Path
    report_paths: dict[str, Path]
    train_rows: int


def teacher_criteria(config_path: Path, judge: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The teacher judge's criteria and its other options, from its reward config."""
    config = load_reward_config(config_path)
    found = next((j for j in config.judges if j.name == judge), None)
    if found is None or found.type != "rubric":
        raise ConfigError(f"no rubric judge '{judge}' in the reward config "
                          f"(judges: {[j.name for j in config.judges]})", path=str(config_path))
    options = dict(found.options)
    criteria = options.pop("criteria")
    return criteria, options


def distill(*, out_dir: Path, base_model: str, journal: Path | None = None, config: Path | None = None,
            judge: str | None = None, labelled: Path | None = None, criterion: str | None = None,
            description: str | None = None, held_out: float = 0.2,
            held_out_labelled: Path | None = None, settings: TrainSettings | None = None,
            thresholds: Thresholds | None = None, enforce_gate: bool = True) -> DistillResult:
    """Run the whole distillation; raise `DistillGateError` (after writing the report) below thresholds."""
    from judgerl.models import resolve_model

    settings = settings or TrainSettings()
    thresholds = thresholds or Thresholds()
    rows: list[Judged]
    options: dict[str, Any] = {}
    if journal is not None:
        if config is None:
            raise ConfigError("--config (the teacher's reward config) is needed with --journal: "
                              "the student's rubric copies the teacher's criteria")
        judge, rows = judged_from_journal(journal, judge=judge)
        criteria, options = teacher_criteria(config, judge)
    elif labelled is not None:
        if not criterion or not description:
            raise ConfigError("--criterion and --description name the check a labelled file grades")
        judge = judge or "distilled"
        rows = judged_from_labelled(labelled, criterion=criterion)
        if held_out_labelled is not None:
            test = judged_from_labelled(held_out_labelled, criterion=criterion)
            _check_disjoint(rows, test, held_out_labelled)
        criteria = [{"name": criterion, "kind": "check", "description": description}]
    else:
        raise ConfigError("give --journal (with --config) or --labelled")
    if held_out_labelled is not None:
        if labelled is None:
            raise ConfigError("a held-out labelled file goes with --labelled")
        train_rows, test_rows = rows, test
    else:
        train_rows, test_rows = split_by_sample(rows, held_out=held_out, seed=settings.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / MODEL_FOLDER
    training_config = student_judge_config(judge, criteria, model=str(model_dir), extra_options=options)
    training = train_student(resolve_model(base_model), train_rows, training_config, model_dir, settings)
    snippet = out_dir / SNIPPET_FILE
    snippet_config = student_judge_config(judge, criteria, model=MODEL_FOLDER, extra_options=options)
    snippet.write_text("# a distilled judge (judgerl distill); the model path is relative to this file\n"
                       + yaml.safe_dump(snippet_config, sort_keys=False), encoding="utf-8")
    measured = student_judge_config(judge, criteria, model=str(model_dir.resolve()), extra_options=options)
    verdicts, seconds = student_verdicts(measured, test_rows)
    report = measure_agreement(judge, test_rows, verdicts, student_seconds=seconds, thresholds=thresholds)
    paths = write_agreement_report(report, out_dir)
    if enforce_gate and not report.passed:
        raise DistillGateError(f"the distilled judge is refused for training: {'; '.join(report.failures)} "
                               f"(report: {paths['markdown']})")
    return DistillResult(report, training, model_dir, snippet, paths, len(train_rows))


def _check_disjoint(train: list[Judged], test: list[Judged], path: Path) -> None:
    """A held-out file must not share a question with the training file (split by sample)."""
    shared = {row.sample.id for row in train} & {row.sample.id for row in test}
    if shared:
        example = next(row.sample.messages[-1]["content"] for row in test if row.sample.id in shared)
        raise ConfigError(f"{len(shared)} question(s) of the held-out file are also in the training file, "
                          f"e.g. {example!r}: hold out whole questions", path=str(path))
