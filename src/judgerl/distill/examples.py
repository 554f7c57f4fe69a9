"""Training rows for a distilled judge: (the prompt the student will see, the teacher's verdict).

Why a module of its own: the student must be trained on exactly the prompt it will be asked at
scoring time, so the prompt is not copied from the teacher's journal (the teacher may have used
another template or `scoring: generate`) but rendered by the student's own rubric judge
(`scoring: logprob`, one request per criterion) from what was judged: the question, the reference
and the answer, which the journal records as `inputs`. The teacher's verdict per criterion becomes
the target: P(pass) for a check (a soft target; 0/1 for hard targets), the level for a Likert one.

The held-out split is by sample id, never by rollout or criterion: every answer to one question and
every criterion of it falls on one side, so the agreement measured on held-out rows is agreement on
questions the student never saw.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from judgerl.errors import DataError
from judgerl.runtime.journal import read_journal
from judgerl.types import Rollout, Sample
from judgerl.validate.datasets import AnswerItem, load_labelled_file

Kind = Literal["check", "likert"]


@dataclass(frozen=True)
class Judged:
    """One answer the teacher judged on one criterion, and its verdict."""

    sample: Sample
    rollout: Rollout
    criterion: str
    kind: Kind
    #: check: P(pass) in [0, 1]; likert: the level, 1..5 (a float when it was an expectation)
    verdict: float
    #: seconds and tokens the teacher spent on the whole judgment (all criteria), for the savings
    teacher_latency_s: float | None = None
    teacher_tokens: int | None = None
    #: the model that answered and what the judgment cost (USD, at the run's configured prices)
    teacher_model: str | None = None
    teacher_cost_usd: float | None = None


def judged_from_journal(path: str | Path, *, judge: str | None = None) -> tuple[str, list[Judged]]:
    """The scored rubric judgments of one judge in a journal, one `Judged` per criterion.

    `judge` may be left out when the journal holds one rubric judge only. Entries without
    `inputs` (journals written before judgerl recorded them) cannot be replayed and are an error.
    """
    entries = [entry for entry in read_journal(path) if entry.get("judge_kind") == "rubric"]
    names = sorted({str(entry.get("judge")) for entry in entries})
    if judge is None:
        if len(names) != 1:
            raise DataError(f"the journal holds rubric judgments of {names or 'no judge'}; "
                            "name one with --judge", path=str(path))
        judge = names[0]
    chosen = [entry for entry in entries if entry.get("judge") == judge and entry.get("outcome") == "ok"]
    if not chosen:
        raise DataError(f"no scored rubric judgment of judge '{judge}' (judges: {names})", path=str(path))
    judged: list[Judged] = []
    for number, entry in enumerate(chosen, start=1):
        inputs = entry.get("inputs")
        if not isinstance(inputs, dict) or not inputs.get("answers"):
            raise DataError(f"judgment {number} of '{judge}' has no `inputs` (the question and answer); "
                            "rerun the teacher with this judgerl version to record them", path=str(path))
        criteria = (entry.get("scores") or {}).get("criteria") or {}
        if entry.get("edge_rule") or not criteria:
            continue  # a fixed edge-rule score (empty answer): nothing the teacher judged
        sample = Sample(id=str(entry["sample_id"]), messages=list(inputs.get("messages") or []),
                        reference=inputs.get("reference"))
        rollout = Rollout(sample_id=sample.id, completion=str(inputs["answers"][0]),
                          id=str((entry.get("rollout_ids") or [""])[0]))
        for name, item in criteria.items():
            kind: Kind = "likert" if item.get("kind") == "likert" else "check"
            verdict = float(item["value"] if kind == "check" else item["score"])
            judged.append(Judged(sample, rollout, name, kind, verdict,
                                 teacher_latency_s=_number(entry.get("latency_s")),
                                 teacher_tokens=int(entry.get("tokens") or 0),
                                 teacher_model=entry.get("model") if isinstance(entry.get("model"), str)
                                 else None,
                                 teacher_cost_usd=_number(entry.get("cost_usd"))))
    return judge, judged


def judged_from_labelled(path: str | Path, *, criterion: str) -> list[Judged]:
    """Rows of a scored labelled file (`judgerl validate`'s format) as verdicts on one check.

    Scores already in [0, 1] are P(pass); any other scale is mapped onto [0, 1] by its min and max.
    """
    items = load_labelled_file(path)
    if not items or not isinstance(items[0], AnswerItem):
        raise DataError("distilling from a labelled file needs scored rows (prompt, answer, score); "
                        "pairwise rows are not supported yet", path=str(path))
    scores = [float(item.score) for item in items if isinstance(item, AnswerItem) and item.score is not None]
    low, high = min(scores), max(scores)
    if low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    if high <= low:
        raise DataError("every row has the same score: nothing to learn", path=str(path))
    judged = []
    for item in items:
        assert isinstance(item, AnswerItem) and item.score is not None
        sample_id = item.category + ":" + item.prompt if item.category else item.prompt
        sample = Sample(id=_short_id(sample_id), messages=[{"role": "user", "content": item.prompt}],
                        reference=item.reference)
        judged.append(Judged(sample, Rollout(sample_id=sample.id, completion=item.answer, id=item.id),
                             criterion, "check", (float(item.score) - low) / (high - low)))
    return judged


def split_by_sample(judged: Iterable[Judged], *, held_out: float, seed: int = 0,
                    ) -> tuple[list[Judged], list[Judged]]:
    """(train, held out): a sample's rows all go to one side, chosen by a seeded hash of its id.

    >>> rows = [Judged(Sample(str(i), []), Rollout(str(i), "a", id=f"{i}-{k}"), "c", "check", 1.0)
    ...         for i in range(50) for k in range(3)]
    >>> train, test = split_by_sample(rows, held_out=0.3)
    >>> {r.sample.id for r in train} & {r.sample.id for r in test}
    set()
    """
    if not 0 < held_out < 1:
        raise ValueError("held_out must be between 0 and 1")
    rows = list(judged)
    ids = sorted({row.sample.id for row in rows}, key=lambda sample_id: _hash(f"{seed}:{sample_id}"))
    if len(ids) < 2:
        raise DataError("distillation needs judgments of at least two samples to hold one out")
    held = set(ids[:max(1, round(len(ids) * held_out))])
    return [row for row in rows if row.sample.id not in held], [row for row in rows if row.sample.id in held]


def target_distribution(row: Judged, tokens: list[str], *, soft: bool) -> list[float]:
    """The teacher's verdict as a distribution over the verdict tokens (pass/fail or levels 1-5).

    A check's soft target is [P(pass), 1 - P(pass)]; a Likert verdict is split between the two
    nearest levels so its expectation is the teacher's. Hard targets round to one token.

    >>> row = Judged(Sample("s", []), Rollout("s", "a"), "c", "likert", 3.25)
    >>> target_distribution(row, list("12345"), soft=True)
    [0.0, 0.0, 0.75, 0.25, 0.0]
    """
    if row.kind == "check":
        probability = min(1.0, max(0.0, row.verdict))
        if not soft:
            probability = 1.0 if probability >= 0.5 else 0.0
        return [probability, 1.0 - probability]
    level = min(float(len(tokens)), max(1.0, row.verdict))
    if not soft:
        level = float(math.floor(level + 0.5))
    distribution = [0.0] * len(tokens)
    low = math.floor(level)
    upper_share = level - low
    distribution[low - 1] += 1.0 - upper_share
    if upper_share > 0:
        distribution[low] += upper_share
    return distribution


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _short_id(text: str) -> str:
    return "p-" + _hash(text)[:12]
