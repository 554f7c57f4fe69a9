"""One way for the validation sections to ask any judge the two questions they need.

Why: the sections measure a judge, whatever its shape. They ask either "how good is this one
answer?" (a score) or "which of these two answers is better?" (a pair outcome). This adapter
answers both for every judge kind:

- a pointwise judge (rubric) scores each answer; a pair is decided by the higher score;
- a comparing judge (pairwise) compares the pair (it asks both orders itself, and its verdict
  carries each order's outcome, which the position probe reads); one answer is scored through
  the judge's own `score_group` (against the sample's reference in `mode: reference`);
- a group judge scores the pair in one call, in the order given.

A judgment the judge could not give stays None with its reason: never a made-up number.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from judgerl.judges.base import ComparingJudge, Judge, PointwiseJudge
from judgerl.judges.transcript import as_transcript
from judgerl.types import Rollout, Sample, Score, Winner

JudgeKind = Literal["pointwise", "pairwise", "group"]
WINNER_VALUE = {"a": 1.0, "tie": 0.5, "b": 0.0}


@dataclass
class PairOutcome:
    """Which answer of a pair won (None: unscored) and how strongly (`value`: 1 = a, 0 = b).

    `orders` holds the outcome of each presentation order, un-swapped into a/b terms, when the
    judge reports them: (order a-b, order b-a).
    """

    winner: Winner | None
    value: float | None = None
    orders: tuple[Winner | None, Winner | None] | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def judge_kind(judge: Judge) -> JudgeKind:
    if isinstance(judge, ComparingJudge):
        return "pairwise"
    if isinstance(judge, PointwiseJudge):
        return "pointwise"
    return "group"


def make_sample(item_id: str, prompt: str, reference: str | None = None) -> Sample:
    return Sample(id=item_id, messages=[{"role": "user", "content": prompt}], reference=reference)


def winner_from_scores(score_a: float | None, score_b: float | None) -> Winner | None:
    """The higher score wins; equal scores tie; a missing score leaves the pair unscored.

    >>> winner_from_scores(0.8, 0.2), winner_from_scores(0.5, 0.5), winner_from_scores(None, 1.0)
    ('a', 'tie', None)
    """
    if score_a is None or score_b is None:
        return None
    return "a" if score_a > score_b else "b" if score_b > score_a else "tie"


def orders_from_details(details: dict[str, Any]) -> tuple[Winner | None, Winner | None] | None:
    """Each order's outcome from a pairwise verdict's details (judges/pairwise.py), in a/b terms.

    >>> orders_from_details({"by_order": ["a", "b"]})
    ('a', 'b')
    >>> orders_from_details({"prob_a_by_order": [0.9, 0.3]})
    ('a', 'b')
    >>> orders_from_details({}) is None
    True
    """
    by_order = details.get("by_order")
    if isinstance(by_order, (list, tuple)) and len(by_order) == 2:
        return by_order[0], by_order[1]
    probs = details.get("prob_a_by_order")
    if isinstance(probs, (list, tuple)) and len(probs) == 2:
        return winner_from_scores(probs[0], 0.5), winner_from_scores(probs[1], 0.5)
    return None


class JudgeProbe:
    """Asks one judge for scores and pair outcomes, whatever kind of judge it is."""

    def __init__(self, judge: Judge, *, pass_threshold: float = 0.5) -> None:
        self.judge = judge
        self.kind = judge_kind(judge)
        self.pass_threshold = pass_threshold

    @property
    def name(self) -> str:
        return self.judge.name

    def verdict(self, score: float | None) -> str | None:
        """A score as a pass / fail verdict (None stays None)."""
        if score is None:
            return None
        return "pass" if score >= self.pass_threshold else "fail"

    async def score(self, item_id: str, prompt: str, answer: str, reference: str | None = None, *,
                    trajectory: list[dict[str, Any]] | None = None,
                    rubric: list[dict[str, Any]] | None = None) -> Score:
        """The judge's score of one answer (with the agent's `trajectory` that led to it, if any, and
        the prompt's own `rubric`, under the column the judge reads it from)."""
        sample = make_sample(item_id, prompt, reference)
        if rubric is not None:
            field = getattr(getattr(self.judge, "options", None), "rubric_field", None) or "rubric"
            sample.metadata[field] = rubric
        rollout = Rollout(sample_id=item_id, completion=answer, id=f"{item_id}:answer", trajectory=trajectory)
        if isinstance(self.judge, PointwiseJudge):
            return await self.judge.score(sample, rollout)
        scores = await self.judge.score_group(sample, [rollout])
        return scores[0]

    async def compare(self, item_id: str, prompt: str, a: str, b: str,
                      reference: str | None = None, *, trajectory_a: list[dict[str, Any]] | None = None,
                      trajectory_b: list[dict[str, Any]] | None = None) -> PairOutcome:
        """Which of a and b the judge prefers (with the runs that led to them, if any: a comparing
        judge that reads trajectories compares their transcripts)."""
        sample = make_sample(item_id, prompt, reference)
        if isinstance(self.judge, ComparingJudge):
            if self.judge.reads_trajectory():
                options = getattr(self.judge, "options", None)
                budget = int(getattr(options, "max_transcript_chars", 24_000))
                a, b = (as_transcript(Rollout(item_id, text, trajectory=trajectory), budget).completion
                        for text, trajectory in ((a, trajectory_a), (b, trajectory_b)))
            verdict = await self.judge.compare(sample, a, b)
            if verdict.winner is None:
                return PairOutcome(None, reason=verdict.reason or "unscored", details=dict(verdict.details))
            value = verdict.prob_a if verdict.prob_a is not None else WINNER_VALUE[verdict.winner]
            return PairOutcome(verdict.winner, value, orders_from_details(verdict.details),
                               details=dict(verdict.details))
        rollouts = [Rollout(sample_id=item_id, completion=a, id=f"{item_id}:a", trajectory=trajectory_a),
                    Rollout(sample_id=item_id, completion=b, id=f"{item_id}:b", trajectory=trajectory_b)]
        if isinstance(self.judge, PointwiseJudge):
            judge = self.judge
            scores = list(await asyncio.gather(*(judge.score(sample, rollout) for rollout in rollouts)))
        else:
            scores = await self.judge.score_group(sample, rollouts)
        score_a, score_b = scores[0].value, scores[1].value
        winner = winner_from_scores(score_a, score_b)
        details: dict[str, Any] = {"score_a": score_a, "score_b": score_b}
        members_a, members_b = scores[0].details.get("members"), scores[1].details.get("members")
        if isinstance(members_a, dict) and isinstance(members_b, dict):  # a panel: each member's own pick
            details["members"] = {name: {"winner": winner_from_scores(members_a[name].get("value"),
                                                                      members_b[name].get("value"))}
                                  for name in members_a if name in members_b}
        if winner is None:
            reasons = [score.reason for score in scores if score.value is None]
            return PairOutcome(None, reason="; ".join(r for r in reasons if r) or "unscored", details=details)
        assert score_a is not None and score_b is not None
        return PairOutcome(winner, (score_a - score_b + 1) / 2, details=details)
