"""`judgerl distill`: teacher verdicts -> a trained student folder, a reward snippet, a gated report.

Why one function: the CLI, the benchmark and the tests run the same steps in the same order
(read verdicts, split by sample, train, write the folder and the snippet, score the held-out rows
through the `local` backend, report, gate), so none of them can skip the held-out measurement.
A pairwise teacher (its journal's comparisons, or a pairwise labelled file) takes the same steps
with pairs: a Bradley-Terry student (student.py) whose snippet is a pointwise pairwise judge.
A panel teacher's combined verdicts train a student with one check named after the panel; the
rollouts it abstained on are left out and counted in the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from judgerl.config import load_reward_config
from judgerl.distill.agreement import (
    AgreementReport,
    DistillGateError,
    Thresholds,
    measure_agreement,
    measure_pair_agreement,
    student_pair_verdicts,
    student_verdicts,
    write_agreement_report,
)
from judgerl.distill.examples import (
    Judged,
    JudgedPair,
    balanced,
    has_item_verdicts,
    journal_judge_names,
    judged_from_journal,
    judged_from_labelled,
    judged_from_labelled_items,
    judged_from_panel_journal,
    pairs_from_journal,
    pairs_from_labelled,
    split_by_sample,
)
from judgerl.distill.student import (
    STUDENT_PROMPT,
    TrainResult,
    TrainSettings,
    merge_student,
    student_judge_config,
    student_pairwise_config,
    train_student,
)
from judgerl.errors import ConfigError, DataError
from judgerl.judges.pairwise import DEFAULT_CRITERION
from judgerl.validate.datasets import PairItem, load_labelled_file

if TYPE_CHECKING:
    from rich.console import Console

MODEL_FOLDER = "model"
#: a LoRA student's adapter, beside its merged model (what a packaged student ships)
ADAPTER_FOLDER = "adapter"
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
    criteria = options.pop("criteria", [])  # a teacher of per-prompt rubrics may have none
    return criteria, options


def teacher_kind(config_path: Path, journal: Path, judge: str | None) -> tuple[str, str]:
    """(judge name, its type in the teacher's reward config: rubric, pairwise or panel)."""
    if judge is None:
        names = sorted(journal_judge_names(journal))
        if len(names) != 1:
            raise DataError(f"the journal holds judgments of {names or 'no judge'}; name one with --judge",
                            path=str(journal))
        judge = names[0]
    config = load_reward_config(config_path)
    found = next((j for j in config.judges if j.name == judge), None)
    if found is None or found.type not in ("rubric", "pairwise", "panel"):
        raise ConfigError(f"no rubric, pairwise or panel judge '{judge}' in the reward config "
                          f"(judges: {[j.name for j in config.judges]})", path=str(config_path))
    return judge, found.type


def panel_criterion(config_path: Path, judge: str, description: str | None) -> list[dict[str, Any]]:
    """A panel teacher's one check for the student: named after the panel, asking `description` (or
    the panel's own `description`); a pairwise panel cannot be distilled yet."""
    from judgerl.judges.panel import panel_shape

    config = load_reward_config(config_path)
    found = next(j for j in config.judges if j.name == judge)
    if panel_shape(found) == "pairwise":
        raise ConfigError(f"panel '{judge}' compares answers: distilling a pairwise panel is not supported "
                          "(distil one of its members, or a pointwise panel)", path=str(config_path),
                          field=f"judges.{judge}")
    asked = description or found.options.get("description")
    if not asked:
        raise ConfigError(f"say what panel '{judge}' judges, as the student's one check: --description, or "
                          "`description` in the panel's config", path=str(config_path),
                          field=f"judges.{judge}.description")
    return [{"name": judge, "kind": "check", "description": str(asked)}]


def teacher_pairwise_options(config_path: Path, judge: str) -> dict[str, Any]:
    """A pairwise teacher's options (its mode, instructions, ...) from its reward config."""
    config = load_reward_config(config_path)
    found = next(j for j in config.judges if j.name == judge)
    return dict(found.options)


def distill(*, out_dir: Path, base_model: str, journal: Path | None = None, config: Path | None = None,
            judge: str | None = None, labelled: Path | None = None, criterion: str | None = None,
            description: str | None = None, held_out: float = 0.2,
            held_out_labelled: Path | None = None, settings: TrainSettings | None = None,
            thresholds: Thresholds | None = None, enforce_gate: bool = True,
            console: Console | None = None, prompt: str = STUDENT_PROMPT,
            trained_adapter: Path | None = None) -> DistillResult:
    """Run the whole distillation; raise `DistillGateError` (after writing the report) below thresholds.
    With a `console`, the student's training shows its progress there (step, loss, time left).
    A LoRA student leaves its adapter in OUT_DIR/adapter. With `trained_adapter` (such an adapter,
    trained on these rows before) the student is that adapter merged into the base instead of
    trained again; everything after (the snippet, the held-out measurement, the gate) is the same."""
    from judgerl.models import resolve_model

    settings = settings or TrainSettings()
    thresholds = thresholds or Thresholds()
    rows: list[Judged]
    options: dict[str, Any] = {}
    left_out: dict[str, int] = {}
    if journal is not None:
        if config is None:
            raise ConfigError("--config (the teacher's reward config) is needed with --journal: "
                              "the student's rubric copies the teacher's criteria")
        judge, kind = teacher_kind(config, journal, judge)
        if kind == "pairwise":
            options = teacher_pairwise_options(config, judge)
            asked = description or options.get("instructions") or DEFAULT_CRITERION
            return _distill_pairs(out_dir=out_dir, base_model=base_model, judge=judge,
                                  pairs=pairs_from_journal(journal, judge=judge), held=None,
                                  description=asked, options=options, held_out=held_out, settings=settings,
                                  thresholds=thresholds, enforce_gate=enforce_gate, console=console)
        if kind == "panel":
            criteria = panel_criterion(config, judge, description)
            verdicts = judged_from_panel_journal(journal, judge=judge)
            rows, left_out = verdicts.judged, verdicts.left_out
        else:
            judge, rows = judged_from_journal(journal, judge=judge)
            criteria, options = teacher_criteria(config, judge)
    elif labelled is not None:
        found = load_labelled_file(labelled)  # rows validated, a bad one named by line and field
        if isinstance(found[0], PairItem):
            if not description:
                raise ConfigError("--description names what makes an answer better in a pairwise "
                                  "labelled file (the criterion the student judges each answer on)")
            pairs = pairs_from_labelled(labelled)
            held = None
            if held_out_labelled is not None:
                held = pairs_from_labelled(held_out_labelled)
                _check_disjoint(pairs, held, held_out_labelled)
            return _distill_pairs(out_dir=out_dir, base_model=base_model,
                                  judge=judge or criterion or "distilled", pairs=pairs, held=held,
                                  description=description, options={},
                                  held_out=held_out, settings=settings, thresholds=thresholds,
                                  enforce_gate=enforce_gate, console=console)
        if has_item_verdicts(found):
            # verdicts on the items of per-prompt rubrics: the student judges a row's own items
            judge = judge or criterion or "rubric"
            rows = judged_from_labelled_items(labelled, found)
            if held_out_labelled is not None:
                test = judged_from_labelled_items(held_out_labelled)
                _check_disjoint(rows, test, held_out_labelled)
            criteria, options = [], {"rubric_field": "rubric"}
        else:
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
    training_config = student_judge_config(judge, criteria, model=str(model_dir), extra_options=options,
                                           prompt=prompt)
    if trained_adapter is not None:
        training = merge_student(resolve_model(base_model), trained_adapter, model_dir)
    else:
        adapter_dir = out_dir / ADAPTER_FOLDER if settings.method == "lora" else None
        training = train_student(resolve_model(base_model), train_rows, training_config, model_dir, settings,
                                 console, adapter_dir=adapter_dir)
    snippet = out_dir / SNIPPET_FILE
    snippet_config = student_judge_config(judge, criteria, model=MODEL_FOLDER, extra_options=options,
                                          prompt=prompt)
    _write_snippet(snippet, snippet_config)
    measured = student_judge_config(judge, criteria, model=str(model_dir.resolve()), extra_options=options,
                                    prompt=prompt)
    student, seconds = student_verdicts(measured, test_rows)
    if not criteria:
        # a row rubric's r1, r2, ... are positions, not criteria: its items are measured (and
        # gated) together, under the judge's name
        test_rows = [replace(row, criterion=judge) for row in test_rows]
    report = measure_agreement(judge, test_rows, student, student_seconds=seconds, thresholds=thresholds)
    report.teacher_left_out = left_out
    return _finish(report, training, model_dir, snippet, out_dir, len(train_rows), enforce_gate)


def _distill_pairs(*, out_dir: Path, base_model: str, judge: str, pairs: list[JudgedPair],
                   held: list[JudgedPair] | None, description: str, options: dict[str, Any],
                   held_out: float, settings: TrainSettings, thresholds: Thresholds,
                   enforce_gate: bool, console: Console | None = None) -> DistillResult:
    """The pairwise teacher's distillation: a Bradley-Terry student, a pointwise pairwise snippet."""
    from judgerl.models import resolve_model

    if held is not None:
        train_pairs, test_pairs = pairs, held
    else:
        train_pairs, test_pairs = split_by_sample(pairs, held_out=held_out, seed=settings.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_dir = out_dir / MODEL_FOLDER

    def config_for(model: str) -> dict[str, Any]:
        return student_pairwise_config(judge, description, model=model, extra_options=options)

    training = train_student(resolve_model(base_model), train_pairs, config_for(str(model_dir)), model_dir,
                             settings, console)
    snippet = out_dir / SNIPPET_FILE
    _write_snippet(snippet, config_for(MODEL_FOLDER))
    test_pairs = balanced(test_pairs)
    verdicts, seconds = student_pair_verdicts(config_for(str(model_dir.resolve())), test_pairs)
    report = measure_pair_agreement(judge, test_pairs, verdicts, student_seconds=seconds,
                                    thresholds=thresholds)
    return _finish(report, training, model_dir, snippet, out_dir, len(train_pairs), enforce_gate)


def _write_snippet(path: Path, config: dict[str, Any]) -> None:
    path.write_text("# a distilled judge (judgerl distill); the model path is relative to this file\n"
                    + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _finish(report: AgreementReport, training: TrainResult, model_dir: Path, snippet: Path, out_dir: Path,
            train_rows: int, enforce_gate: bool) -> DistillResult:
    paths = write_agreement_report(report, out_dir)
    if enforce_gate and not report.passed:
        raise DistillGateError(f"the distilled judge is refused for training: {'; '.join(report.failures)} "
                               f"(report: {paths['markdown']})")
    return DistillResult(report, training, model_dir, snippet, paths, train_rows)


def _check_disjoint(train: list[Judged] | list[JudgedPair], test: list[Judged] | list[JudgedPair],
                    path: Path) -> None:
    """A held-out file must not share a question with the training file (split by sample)."""
    shared = {row.sample.id for row in train} & {row.sample.id for row in test}
    if shared:
        example = next(row.sample.messages[-1]["content"] for row in test if row.sample.id in shared)
        raise ConfigError(f"{len(shared)} question(s) of the held-out file are also in the training file, "
                          f"e.g. {example!r}: hold out whole questions", path=str(path))
