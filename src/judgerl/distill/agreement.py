"""How well a student judge agrees with its teacher on held-out rows, what it saves, and the gate.

Why: a distilled judge is only worth using where it gives the teacher's verdicts. This module
scores the held-out rows with the student through the real path (a reward pipeline with the
`local` backend reading the written folder, exactly as training would use it), compares verdicts
per criterion (checks: accuracy, Cohen's kappa, AUC of the student's P(pass) against the teacher's
verdict, calibration as ECE with a reliability plot; Likert: Spearman, exact-level accuracy and
quadratic-weighted kappa), measures the student's judgments per second here against the teacher's
recorded latency and tokens, and refuses a student below the thresholds (`DistillGateError`,
a non-zero exit), like the validation gate refuses a judge before training.

For a pairwise teacher the rows are held-out pairs and the one "criterion" is the preferred side:
the student (a `type: pairwise`, `comparison: pointwise` judge) gives P(a better) per pair through
the same real path; accuracy and Cohen's kappa on the side (teacher ties left out, and counted),
AUC of P(a better) against the teacher's side, ECE with a reliability plot on P(a better), the
same gate (accuracy and kappa thresholds).
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from judgerl.distill.examples import Judged, JudgedPair
from judgerl.errors import JudgerlError
from judgerl.types import Rollout, Sample
from judgerl.validate.report import fmt
from judgerl.validate.stats import cohen_kappa, percent_agreement, spearman

RELIABILITY_BINS = 10
#: the one "criterion" of a pairwise teacher's report
PREFERRED_SIDE = "preferred side"


class DistillGateError(JudgerlError):
    """The student agrees with its teacher less than the thresholds ask: refused for training."""


@dataclass
class Thresholds:
    """The gate's minimums, per criterion (a Likert criterion is held to `min_spearman`)."""

    min_accuracy: float = 0.8
    min_kappa: float = 0.6
    min_spearman: float = 0.6


@dataclass
class CriterionAgreement:
    criterion: str
    kind: str
    rows: int
    accuracy: float | None = None
    kappa: float | None = None
    auc: float | None = None
    ece: float | None = None
    spearman: float | None = None
    teacher_pass_share: float | None = None
    #: pairwise: held-out pairs the teacher called a tie (left out of every figure)
    teacher_ties: int | None = None
    reliability: list[dict[str, float]] = field(default_factory=list)


@dataclass
class AgreementReport:
    judge: str
    held_out_rows: int
    held_out_samples: int
    criteria: list[CriterionAgreement]
    student_judgments_per_s: float | None
    teacher_latency_s: float | None
    teacher_tokens_per_judgment: float | None
    thresholds: Thresholds
    teacher_models: list[str] = field(default_factory=list)
    #: mean USD per judgment from the journal (None: no price configured for the teacher's model)
    teacher_cost_per_judgment: float | None = None
    failures: list[str] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    #: a pairwise teacher: rows are pairs, judgments are comparisons, the criterion the side
    pairwise: bool = False
    #: the teacher's judgments left out, by reason (a panel teacher's abstentions: panel_disagreement)
    teacher_left_out: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def auc(scores: Sequence[float], positives: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None without both classes.

    >>> auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.75
    """
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    if not pos or not neg:
        return None
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


def reliability_bins(probabilities: Sequence[float], outcomes: Sequence[float],
                     bins: int = RELIABILITY_BINS) -> tuple[float | None, list[dict[str, float]]]:
    """Expected calibration error and the bins (mean predicted, observed rate, count).

    >>> ece, table = reliability_bins([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 0])
    >>> round(ece, 3), [b["count"] for b in table]
    (0.25, [2.0, 2.0])
    """
    if not probabilities:
        return None, []
    grouped: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for probability, outcome in zip(probabilities, outcomes, strict=True):
        grouped[min(bins - 1, int(probability * bins))].append((probability, float(outcome)))
    table, ece = [], 0.0
    for index in sorted(grouped):
        items = grouped[index]
        predicted = sum(p for p, _ in items) / len(items)
        observed = sum(o for _, o in items) / len(items)
        ece += len(items) / len(probabilities) * abs(predicted - observed)
        table.append({"predicted": predicted, "observed": observed, "count": float(len(items))})
    return ece, table


def student_verdicts(config: dict[str, Any], rows: list[Judged]) -> tuple[list[float | None], float]:
    """Score `rows` with the student config through a reward pipeline; (verdict per row, seconds).

    A check's verdict is P(pass); a Likert one the expected level. Each answer is scored once on all
    criteria (one forward pass per criterion, as in training).
    """
    from judgerl.reward.pipeline import RewardPipeline

    judge = config["judges"][0]["name"]
    items: dict[tuple[str, str], tuple[Sample, Rollout]] = {}
    for row in rows:
        items.setdefault((row.sample.id, row.rollout.id), (row.sample, row.rollout))
    with RewardPipeline.from_config(config) as pipeline:
        for backend in pipeline.runtime.backends.values():
            load = getattr(backend, "load", None)
            if callable(load):
                load()  # the model's loading time is not judging time
        started = time.perf_counter()
        rewards = pipeline.score_batch_sync(list(items.values()), enforce_budget=False)
        seconds = time.perf_counter() - started
    by_key = {}
    for key, reward in zip(items, rewards, strict=True):
        detail = reward.details.get("scores", {}).get(judge, {})
        by_key[key] = (detail.get("details") or {}).get("criteria") or {}
    verdicts: list[float | None] = []
    for row in rows:
        item = by_key[(row.sample.id, row.rollout.id)].get(row.criterion)
        if item is None:
            verdicts.append(None)
        else:
            verdicts.append(float(item["value"] if row.kind == "check" else item["score"]))
    return verdicts, seconds


def student_pair_verdicts(config: dict[str, Any], pairs: list[JudgedPair],
                          ) -> tuple[list[float | None], float]:
    """P(a better) per pair from the student's pairwise judge (built by a real reward pipeline on
    the written folder, so exactly as a training run scores); (verdicts, seconds). An unscored
    comparison is None."""
    from judgerl.reward.pipeline import RewardPipeline

    with RewardPipeline.from_config(config) as pipeline:
        for backend in pipeline.runtime.backends.values():
            load = getattr(backend, "load", None)
            if callable(load):
                load()  # the model's loading time is not judging time
        judge = pipeline.judges[0]
        compare = getattr(judge, "compare", None)
        if not callable(compare):
            raise TypeError(f"the student judge '{judge.name}' does not compare two answers")

        async def every_pair() -> list[Any]:
            return list(await asyncio.gather(*(compare(pair.sample, pair.a.completion, pair.b.completion)
                                               for pair in pairs)))

        started = time.perf_counter()
        verdicts = pipeline.loop_thread().run(every_pair())
        seconds = time.perf_counter() - started
    return [verdict.prob_a if verdict.status == "ok" else None for verdict in verdicts], seconds


def measure_pair_agreement(judge: str, pairs: list[JudgedPair], student: list[float | None], *,
                           student_seconds: float | None, thresholds: Thresholds) -> AgreementReport:
    """The report of a pairwise student (P(a better) per held-out pair) against its teacher."""
    failures: list[str] = []
    result = CriterionAgreement(PREFERRED_SIDE, "pairwise", len(pairs))
    unscored = sum(verdict is None for verdict in student)
    if unscored:
        failures.append(f"{PREFERRED_SIDE}: the student left {unscored} pair(s) unscored")
    decided = [(pair, float(verdict)) for pair, verdict in zip(pairs, student, strict=True)
               if verdict is not None and pair.verdict != 0.5]
    result.teacher_ties = sum(pair.verdict == 0.5 for pair in pairs)
    teacher_sides = [pair.verdict > 0.5 for pair, _ in decided]
    predicted = [verdict for _, verdict in decided]
    if decided:
        _binary_agreement(result, teacher_sides, predicted)
    _check(failures, PREFERRED_SIDE, "accuracy", result.accuracy, thresholds.min_accuracy)
    _check(failures, PREFERRED_SIDE, "kappa", result.kappa, thresholds.min_kappa)
    moved = sorted(({"sample_id": pair.sample.id, "rollout_id": f"{pair.a.id} vs {pair.b.id}",
                     "criterion": PREFERRED_SIDE, "teacher": pair.verdict, "student": verdict}
                    for pair, verdict in zip(pairs, student, strict=True) if verdict is not None),
                   key=lambda item: -abs(item["teacher"] - item["student"]))[:10]
    return AgreementReport(
        judge=judge, held_out_rows=len(pairs), held_out_samples=len({pair.sample.id for pair in pairs}),
        criteria=[result],
        student_judgments_per_s=(len(pairs) / student_seconds) if student_seconds else None,
        thresholds=thresholds, failures=failures, moved=moved, pairwise=True, **_teacher_figures(pairs))


def measure_agreement(judge: str, rows: list[Judged], student: list[float | None], *,
                      student_seconds: float | None, thresholds: Thresholds) -> AgreementReport:
    """The report of the student against the teacher on `rows` (held out), with the gate applied."""
    per: dict[str, list[tuple[Judged, float | None]]] = defaultdict(list)
    for row, verdict in zip(rows, student, strict=True):
        per[row.criterion].append((row, verdict))
    criteria, failures = [], []
    for name, pairs in per.items():
        kind = pairs[0][0].kind
        scored = [(row, verdict) for row, verdict in pairs if verdict is not None]
        result = CriterionAgreement(name, kind, len(pairs))
        if len(scored) < len(pairs):
            failures.append(f"{name}: the student left {len(pairs) - len(scored)} row(s) unscored")
        teacher = [row.verdict for row, _ in scored]
        predicted = [float(verdict) for _, verdict in scored if verdict is not None]
        if kind == "check":
            if scored:
                _binary_agreement(result, [value >= 0.5 for value in teacher], predicted)
            _check(failures, name, "accuracy", result.accuracy, thresholds.min_accuracy)
            _check(failures, name, "kappa", result.kappa, thresholds.min_kappa)
        else:
            teacher_levels = [math.floor(value + 0.5) for value in teacher]
            student_levels = [math.floor(value + 0.5) for value in predicted]
            result.accuracy = percent_agreement(teacher_levels, student_levels)
            result.kappa = cohen_kappa(teacher_levels, student_levels, weights="quadratic",
                                       categories=[1, 2, 3, 4, 5])
            result.spearman = spearman(teacher, predicted)
            _check(failures, name, "spearman", result.spearman, thresholds.min_spearman)
        criteria.append(result)
    answers = len({(row.sample.id, row.rollout.id) for row in rows})
    moved = sorted(({"sample_id": row.sample.id, "rollout_id": row.rollout.id, "criterion": row.criterion,
                     "teacher": row.verdict, "student": verdict}
                    for row, verdict in zip(rows, student, strict=True) if verdict is not None),
                   key=lambda item: -abs(item["teacher"] - item["student"]))[:10]
    return AgreementReport(
        judge=judge, held_out_rows=len(rows), held_out_samples=len({row.sample.id for row in rows}),
        criteria=criteria,
        student_judgments_per_s=(answers / student_seconds) if student_seconds else None,
        thresholds=thresholds, failures=failures, moved=moved, **_teacher_figures(rows))


def _binary_agreement(result: CriterionAgreement, teacher: list[bool], predicted: list[float]) -> None:
    """Accuracy, kappa, AUC, ECE and the teacher's pass share of a yes/no verdict (a check, or
    the preferred side of a pair) into `result`; the student says yes from 0.5 up."""
    said = [value >= 0.5 for value in predicted]
    result.accuracy = percent_agreement(teacher, said)
    result.kappa = cohen_kappa(teacher, said)
    result.auc = auc(predicted, teacher)
    result.ece, result.reliability = reliability_bins(predicted, [float(x) for x in teacher])
    result.teacher_pass_share = sum(teacher) / len(teacher)


def _teacher_figures(judged: Sequence[Judged] | Sequence[JudgedPair]) -> dict[str, Any]:
    """What the teacher spent per judgment, from its journal: mean time at the endpoint, tokens,
    USD (where priced) and the models that answered."""
    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    costs = [item.teacher for item in judged]
    return {"teacher_latency_s": mean([cost.latency_s for cost in costs if cost.latency_s is not None]),
            "teacher_tokens_per_judgment": mean([float(cost.tokens) for cost in costs if cost.tokens]),
            "teacher_cost_per_judgment": mean([cost.cost_usd for cost in costs if cost.cost_usd is not None]),
            "teacher_models": sorted({cost.model for cost in costs if cost.model})}


def _check(failures: list[str], criterion: str, figure: str, value: float | None, minimum: float) -> None:
    if value is None or value < minimum:
        failures.append(f"{criterion}: {figure} {fmt(value)} < {minimum}")


def render_markdown(report: AgreementReport) -> str:
    teacher_rate = (1 / report.teacher_latency_s) if report.teacher_latency_s else None
    unit = "pairs" if report.pairwise else "rows"
    judgment = "comparisons" if report.pairwise else "judgments"
    lines = [f"# Distilled judge `{report.judge}`: agreement with the teacher", "",
             f"Held out: {report.held_out_rows} {unit} from {report.held_out_samples} samples "
             "(split by sample: no held-out question was trained on).", ""]
    if report.teacher_left_out:
        lines += ["Left out (the teacher gave no verdict): " + ", ".join(
            f"{count} {reason}" for reason, count in sorted(report.teacher_left_out.items())) + ".", ""]
    if report.pairwise:
        ties = report.criteria[0].teacher_ties if report.criteria else 0
        lines += ["Pairwise teacher: the student scores each answer alone and P(a better) = "
                  "sigmoid(s_a - s_b); figures are on the preferred side, AUC and ECE on P(a better); "
                  f"{ties} pair(s) the teacher called a tie are left out. 'teacher pass share' is the "
                  "share of pairs where the teacher preferred a.", ""]
    lines += [
             "| criterion | kind | rows | accuracy | kappa | AUC | ECE | Spearman | teacher pass share |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in report.criteria:
        lines.append(f"| {c.criterion} | {c.kind} | {c.rows} | {fmt(c.accuracy)} | {fmt(c.kappa)} | "
                     f"{fmt(c.auc)} | {fmt(c.ece)} | {fmt(c.spearman)} | {fmt(c.teacher_pass_share)} |")
    lines += ["", "## What it saves", "",
              f"- student, here: {fmt(report.student_judgments_per_s, 2)} {judgment}/s "
              + ("(two answers, each judged alone)" if report.pairwise else "(all criteria of one answer)"),
              f"- teacher, from its journal: {fmt(report.teacher_latency_s, 3)} s per judgment at the "
              f"endpoint, without queueing ({fmt(teacher_rate, 2)} {judgment}/s one at a time), "
              f"{fmt(report.teacher_tokens_per_judgment, 0)} tokens per judgment"
              + (f", model {', '.join(report.teacher_models)}" if report.teacher_models else "")
              + (f", {report.teacher_cost_per_judgment:.6f} USD per judgment (the run's prices)"
                 if report.teacher_cost_per_judgment is not None else ", no price configured"), "",
              "## Gate", "",
              f"Thresholds per criterion: accuracy >= {report.thresholds.min_accuracy}, "
              f"kappa >= {report.thresholds.min_kappa} (checks), "
              f"Spearman >= {report.thresholds.min_spearman} (Likert).", ""]
    lines += (["**Passed**: the student may be used for training."] if report.passed else
              ["**Refused** for training:", *[f"- {failure}" for failure in report.failures]])
    if report.moved:
        lines += ["", "## Largest disagreements", "", "| sample | rollout | criterion | teacher | student |",
                  "|---|---|---|---|---|"]
        lines += [f"| {m['sample_id']} | {m['rollout_id']} | {m['criterion']} | {fmt(m['teacher'])} | "
                  f"{fmt(m['student'])} |" for m in report.moved]
    return "\n".join(lines) + "\n"


def write_agreement_report(report: AgreementReport, folder: Path) -> dict[str, Path]:
    """agreement.json, agreement.md, agreement.html and reliability.png (checks only) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "agreement.json", "markdown": folder / "agreement.md",
             "html": folder / "agreement.html"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    markdown = render_markdown(report)
    paths["markdown"].write_text(markdown, encoding="utf-8")
    image = ""
    if any(c.reliability for c in report.criteria):
        paths["plot"] = folder / "reliability.png"
        _reliability_plot(report, paths["plot"])
        image = '<img src="reliability.png" alt="reliability plot" width="480">'
    paths["html"].write_text(
        "<!doctype html><meta charset='utf-8'><title>Distilled judge agreement</title>"
        "<body style='font-family:sans-serif;max-width:60em'>"
        f"<pre style='white-space:pre-wrap'>{html.escape(markdown)}</pre>{image}</body>\n", encoding="utf-8")
    return paths


def _reliability_plot(report: AgreementReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.8, 4.2))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for c in report.criteria:
        if c.reliability:
            axes.plot([b["predicted"] for b in c.reliability], [b["observed"] for b in c.reliability],
                      marker="o", label=f"{c.criterion} (ECE {fmt(c.ece)})")
    axes.set_xlabel("student P(a better)" if report.pairwise else "student P(pass)")
    axes.set_ylabel("share the teacher preferred a" if report.pairwise else "share the teacher passed")
    axes.set_title("Reliability on held-out rows")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
