"""Agreement with human labels: the judge against people, on preference pairs or on scores.

Pairs (LLMBar, EvalBiasBench, your own `answer_a` / `answer_b` / `label` file): `accuracy` is the
share of pairs where the judge picks the human's answer; a tie or an unscored pair counts as a
miss (reported as `tie_rate` and `unscored_share`), so a judge cannot score well by abstaining.
`scored_accuracy` is the same over the pairs the judge decided. Each has a bootstrap interval, and
`breakdown` gives the accuracy per category (EvalBiasBench's bias types).

Scores (`prompt` / `answer` / `score` file): `spearman` between the human score and the judge's
score, and Cohen's `kappa` with the judge's [0, 1] score mapped onto the human scale
(`low + value * (high - low)`, rounded) when the human scale is integer, over the scored items.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from judgerl.errors import ConfigError
from judgerl.types import Score
from judgerl.validate.datasets import AnswerItem, PairItem
from judgerl.validate.probe import JudgeProbe, PairOutcome
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.stats import bootstrap_ci, cohen_kappa, mean, share, spearman
from judgerl.validate.suite import Bootstrap, HumanLabelsSection


async def run_human_labels(section: HumanLabelsSection, probe: JudgeProbe,
                           items: list[PairItem] | list[AnswerItem], bootstrap: Bootstrap, *,
                           tick: Tick = no_tick, name: str = "human_labels") -> SectionResult:
    if all(isinstance(item, PairItem) for item in items):
        pairs = [item for item in items if isinstance(item, PairItem)]
        if any(item.label is None for item in pairs):
            raise ConfigError("every pair needs a human `label`", field=f"{name}.data")
        result = await _pairs(probe, pairs, bootstrap, tick, name)
    else:
        answers = [item for item in items if isinstance(item, AnswerItem)]
        result = await _scores(section, probe, answers, bootstrap, tick, name)
    if section.gate_on == "ci_low":
        result.gate_values = {figure: (interval[0] if interval else None)
                              for figure, interval in result.intervals.items()}
        result.notes.append("thresholds are checked on the lower end of the confidence interval")
    return result


async def _pairs(probe: JudgeProbe, pairs: list[PairItem], bootstrap: Bootstrap, tick: Tick,
                 name: str) -> SectionResult:
    async def one(item: PairItem) -> PairOutcome:
        outcome = await probe.compare(item.id, item.prompt, item.a, item.b, item.reference,
                                      trajectory_a=item.trajectory_a, trajectory_b=item.trajectory_b)
        tick(1)
        return outcome

    outcomes = list(await asyncio.gather(*(one(item) for item in pairs)))
    hits = [1.0 if outcome.winner == item.label else 0.0
            for item, outcome in zip(pairs, outcomes, strict=True)]
    scored = [hit for hit, outcome in zip(hits, outcomes, strict=True) if outcome.winner is not None]
    options = {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed}
    result = SectionResult(name, probe.name)
    result.counts = {"pairs": len(pairs), "decided": sum(o.winner in ("a", "b") for o in outcomes)}
    result.figures = {
        "accuracy": mean(hits),
        "scored_accuracy": mean(scored),
        "tie_rate": share(sum(o.winner == "tie" for o in outcomes), len(pairs)),
        "unscored_share": share(sum(o.winner is None for o in outcomes), len(pairs)),
        "spearman": None, "kappa": None,
    }
    result.not_applicable = ["spearman", "kappa"]
    result.intervals = {"accuracy": bootstrap_ci(hits, mean, **options),
                        "scored_accuracy": bootstrap_ci(scored, mean, **options)}
    by_category: dict[str, list[float]] = defaultdict(list)
    for item, hit in zip(pairs, hits, strict=True):
        by_category[item.category or "all"].append(hit)
    if len(by_category) > 1:
        result.breakdown["category (accuracy)"] = {key: mean(values) for key, values in by_category.items()}
    result.items = [{"id": item.id, "label": item.label, "judge": outcome.winner, "value": outcome.value,
                     "category": item.category, "reason": outcome.reason, **_members(outcome.details)}
                    for item, outcome in zip(pairs, outcomes, strict=True)]
    result.examples = [{"id": item.id, "human": item.label, "judge": outcome.winner or "unscored",
                        "prompt": item.prompt, "reason": outcome.reason or ""}
                       for item, outcome in zip(pairs, outcomes, strict=True) if outcome.winner != item.label]
    return result


def item_agreement(result: SectionResult, answers: list[AnswerItem], scores: list[Score],
                   bootstrap: Bootstrap) -> None:
    """Per-item agreement where the rows' rubric items carry a human verdict (`met`): the judge's
    verdict on item i is its criterion `r<i+1>` (met when its value >= 0.5); `item_accuracy` and
    Cohen's `item_kappa` over the labelled items the judge scored, and the accuracy per category."""
    pairs: list[tuple[int, int]] = []
    by_category: dict[str, list[float]] = defaultdict(list)
    labelled = 0
    for item, score in zip(answers, scores, strict=True):
        criteria = (score.details or {}).get("criteria") or {}
        for index, rubric_item in enumerate(item.rubric or []):
            if "met" not in rubric_item:
                continue
            labelled += 1
            verdict = criteria.get(f"r{index + 1}")
            if score.value is None or verdict is None:
                continue
            human, judged = int(rubric_item["met"]), int(float(verdict["value"]) >= 0.5)
            pairs.append((human, judged))
            by_category[str(rubric_item.get("category") or "all")].append(float(human == judged))
    if not labelled:
        return
    options = {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed}

    def accuracy(rows: list[tuple[int, int]]) -> float | None:
        return mean([float(human == judged) for human, judged in rows])

    def kappa(rows: list[tuple[int, int]]) -> float | None:
        return cohen_kappa([row[0] for row in rows], [row[1] for row in rows], categories=[0, 1])

    result.counts |= {"items_labelled": labelled, "items_scored": len(pairs)}
    result.figures |= {"item_accuracy": accuracy(pairs), "item_kappa": kappa(pairs) if pairs else None}
    result.intervals["item_accuracy"] = bootstrap_ci(pairs, accuracy, **options)
    if len(by_category) > 1:
        result.breakdown["rubric item category (accuracy)"] = {key: mean(values)
                                                               for key, values in by_category.items()}


async def _scores(section: HumanLabelsSection, probe: JudgeProbe, answers: list[AnswerItem],
                  bootstrap: Bootstrap, tick: Tick, name: str) -> SectionResult:
    async def one(item: AnswerItem) -> Score:
        score = await probe.score(item.id, item.prompt, item.answer, item.reference,
                                  trajectory=item.trajectory, rubric=item.rubric)
        tick(1)
        return score

    scores = list(await asyncio.gather(*(one(item) for item in answers)))
    human = [float(item.score) for item in answers if item.score is not None]
    low, high = section.scale if section.scale is not None else (min(human), max(human))
    pairs = [(float(item.score), score.value) for item, score in zip(answers, scores, strict=True)
             if item.score is not None and score.value is not None]
    integer_scale = all(value.is_integer() for value in (*human, low, high)) and high > low
    options = {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed}

    def rho_of(rows: list[tuple[float, float]]) -> float | None:
        return spearman([row[0] for row in rows], [row[1] for row in rows])

    categories = list(range(int(low), int(high) + 1)) if integer_scale else []

    def kappa_of(rows: list[tuple[float, float]]) -> float | None:
        judged = [round(low + value * (high - low)) for _, value in rows]
        return cohen_kappa([int(row[0]) for row in rows], judged, weights=section.kappa_weights,
                           categories=categories)

    result = SectionResult(name, probe.name)
    result.counts = {"answers": len(answers), "scored": len(pairs)}
    result.figures = {"spearman": rho_of(pairs),
                      "kappa": kappa_of(pairs) if integer_scale and pairs else None,
                      "unscored_share": share(len(answers) - len(pairs), len(answers)), "accuracy": None}
    result.not_applicable = ["accuracy", "scored_accuracy", "tie_rate"]
    result.intervals = {"spearman": bootstrap_ci(pairs, rho_of, **options)}
    if integer_scale:
        result.intervals["kappa"] = bootstrap_ci(pairs, kappa_of, **options)
    else:
        result.not_applicable.append("kappa")
        result.notes.append("kappa needs an integer human scale; these labels are not, so it is skipped")
    outside = [value for value in human if not low <= value <= high]
    if outside:
        raise ConfigError(f"human scores {outside[:3]} are outside the scale [{low:g}, {high:g}]",
                          field=f"{name}.scale")
    result.items = [{"id": item.id, "human": item.score, "judge": score.value, "reason": score.reason,
                     **_members(score.details)}
                    for item, score in zip(answers, scores, strict=True)]
    item_agreement(result, answers, scores, bootstrap)
    spread = high - low or 1.0
    result.examples = sorted(
        ({"id": item.id, "human": item.score, "judge": "unscored" if score.value is None else
          f"{low + score.value * (high - low):.2f}", "answer": item.answer}
         for item, score in zip(answers, scores, strict=True)
         if score.value is None or abs((float(item.score or 0) - low) / spread - score.value) > 0.25),
        key=lambda row: row["id"])
    return result


def _members(details: dict[str, Any]) -> dict[str, Any]:
    """A panel's members' own judgments of the item (judges/panel.py), kept for the panel's figures
    (validate/sections/panel.py); nothing for any other judge."""
    members = details.get("members")
    return {"members": members} if isinstance(members, dict) else {}
