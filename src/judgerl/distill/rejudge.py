"""`judgerl rejudge`: replay recorded rollouts through another reward config and compare the scores.

Why: a judge change (a new judge model, a revised rubric, a distilled student) changes the reward a
run trains on. Before paying for a run, a user replays the rollouts already scored (a journal's
judgments, or the `completions.jsonl` that `judgerl train` writes) through the new config and
reads how far the scores agree (the statistics of the agreement report: Spearman, and, at the 0.5
cut, accuracy, Cohen's kappa and the AUC of the new score against the old verdict) and which
rollouts moved most.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from judgerl.backends.base import Backend
from judgerl.data import iter_rows
from judgerl.distill.agreement import auc
from judgerl.errors import DataError
from judgerl.runtime.journal import read_journal
from judgerl.types import Rollout, Sample
from judgerl.validate.report import fmt
from judgerl.validate.stats import cohen_kappa, percent_agreement, spearman

MOVED_SHOWN = 20


@dataclass(frozen=True)
class Recorded:
    """One rollout as it was scored: what was judged and the score it got then."""

    sample: Sample
    rollout: Rollout
    old_score: float


@dataclass
class RejudgeReport:
    source: str
    rows: int
    rescored: int
    spearman: float | None
    accuracy: float | None
    kappa: float | None
    auc: float | None
    mean_old: float | None
    mean_new: float | None
    moved: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recorded_from_journal(path: str | Path, *, judge: str | None = None) -> list[Recorded]:
    """The scored judgments of one judge (all of them when the journal holds one judge) with inputs."""
    entries = [entry for entry in read_journal(path)
               if entry.get("outcome") == "ok" and isinstance(entry.get("inputs"), dict)]
    names = sorted({str(e.get("judge")) for e in entries})
    if judge is None:
        if len(names) != 1:
            raise DataError(f"the journal holds judgments with inputs of {names or 'no judge'}; "
                            "name one with --judge", path=str(path))
        judge = names[0]
    recorded = []
    for entry in entries:
        scores = entry.get("scores")
        value = scores.get("value") if isinstance(scores, dict) else scores
        if entry.get("judge") != judge or not isinstance(value, (int, float)):
            continue
        inputs = entry["inputs"]
        sample = Sample(id=str(entry["sample_id"]), messages=list(inputs.get("messages") or []),
                        reference=inputs.get("reference"))
        answers = inputs.get("answers") or []
        for rollout_id, answer in zip(entry.get("rollout_ids") or [], answers, strict=False):
            rollout = Rollout(sample_id=sample.id, completion=str(answer), id=str(rollout_id))
            recorded.append(Recorded(sample, rollout, float(value)))
    if not recorded:
        raise DataError(f"no scored judgment of '{judge}' with inputs to replay", path=str(path))
    return recorded


def recorded_from_completions(path: str | Path) -> list[Recorded]:
    """Rows of a `completions.jsonl` (`judgerl train`): prompt, completion and the reward they got."""
    recorded = []
    for line, row in iter_rows(path):
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError("not a JSON object", path=str(path), line=line)
        if not isinstance(row.get("reward"), (int, float)):
            continue  # an unscored reward has nothing to compare against
        sample = Sample(id=str(row["sample_id"]), messages=[{"role": "user", "content": str(row["prompt"])}])
        recorded.append(Recorded(sample, Rollout(sample_id=sample.id, completion=str(row["completion"]),
                                                 id=str(row.get("rollout_id") or "")), float(row["reward"])))
    if not recorded:
        raise DataError("no scored rows to replay", path=str(path))
    return recorded


def rejudge(recorded: list[Recorded], config: str | Path | dict[str, Any], *, source: str = "",
            component: str | None = None, backends: dict[str, Backend] | None = None) -> RejudgeReport:
    """Rescore `recorded` with `config` (its total reward, or one `component`) and compare.

    `backends` replaces the config's backends (as in `RewardPipeline.from_config`)."""
    from judgerl.reward.pipeline import RewardPipeline

    with RewardPipeline.from_config(config, backends=backends) as pipeline:
        rewards = pipeline.score_batch_sync([(r.sample, r.rollout) for r in recorded], enforce_budget=False)
    pairs: list[tuple[Recorded, float]] = []
    for item, reward in zip(recorded, rewards, strict=True):
        new = reward.components.get(component) if component else reward.value
        if new is not None:
            pairs.append((item, float(new)))
    old = [item.old_score for item, _ in pairs]
    new_scores = [score for _, score in pairs]
    old_labels = [value >= 0.5 for value in old]
    new_labels = [value >= 0.5 for value in new_scores]
    moved = sorted(({"sample_id": item.sample.id, "rollout_id": item.rollout.id, "old": item.old_score,
                     "new": score, "change": score - item.old_score,
                     "completion": item.rollout.completion[:200]} for item, score in pairs),
                   key=lambda row: -abs(row["change"]))[:MOVED_SHOWN]
    return RejudgeReport(
        source=source, rows=len(recorded), rescored=len(pairs),
        spearman=spearman(old, new_scores) if len(pairs) > 1 else None,
        accuracy=percent_agreement(old_labels, new_labels), kappa=cohen_kappa(old_labels, new_labels),
        auc=auc(new_scores, old_labels), mean_old=sum(old) / len(old) if old else None,
        mean_new=sum(new_scores) / len(new_scores) if new_scores else None, moved=moved)


def render_markdown(report: RejudgeReport) -> str:
    lines = [f"# Rejudged: {report.source}", "",
             f"{report.rescored} of {report.rows} rollouts rescored by the new config.", "",
             "| Spearman | accuracy at 0.5 | kappa at 0.5 | AUC (new vs old verdict) | mean old | mean new |",
             "|---|---|---|---|---|---|",
             f"| {fmt(report.spearman)} | {fmt(report.accuracy)} | {fmt(report.kappa)} | {fmt(report.auc)} | "
             f"{fmt(report.mean_old)} | {fmt(report.mean_new)} |", "",
             "## Rollouts whose scores moved most", "", "| sample | rollout | old | new | completion |",
             "|---|---|---|---|---|"]
    for row in report.moved:
        text = " ".join(row["completion"].split()).replace("|", "\\|")[:80]
        lines.append(f"| {row['sample_id']} | {row['rollout_id']} | {fmt(row['old'])} | {fmt(row['new'])} "
                     f"| {text} |")
    return "\n".join(lines) + "\n"


def write_rejudge_report(report: RejudgeReport, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "rejudge.json", folder / "rejudge.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
