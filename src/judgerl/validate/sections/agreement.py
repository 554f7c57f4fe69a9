"""Agreement between two judges: two models, or two prompts, on the same items.

Why: swapping a 70B judge for an 8B one, or editing the prompt, changes the reward. Before
training on the new judge, check how often it agrees with the old one. Figures, over the items
both judges scored: `percent_agreement` and Cohen's `kappa` on the verdicts (a winner for pairs,
pass / fail for single answers), `spearman` on the scores (P(a better) or the winner as 1 / 0.5 / 0
for pairs, the score for answers); `unscored_share` over both judges' judgments.

The two judges may live on different reward pipelines (another config), so collecting each
judge's answers (`collect`) is separate from comparing them (`summarize`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from judgerl.validate.datasets import AnswerItem, PairItem, answers_from, pairs_only
from judgerl.validate.probe import JudgeProbe
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.sections.consistency import UNSCORED, judge_once
from judgerl.validate.stats import bootstrap_ci, cohen_kappa, percent_agreement, share, spearman
from judgerl.validate.suite import Bootstrap

Judgment = tuple[str, float | None, str | None]


def agreement_units(first: JudgeProbe, second: JudgeProbe, items: list[PairItem] | list[AnswerItem],
                    where: str) -> list[PairItem] | list[AnswerItem]:
    """Pairs when either judge is pairwise (both can compare a pair), else single answers."""
    if "pairwise" in (first.kind, second.kind):
        return pairs_only(items, where=where)
    return answers_from(items)


async def collect(probe: JudgeProbe, units: list[PairItem] | list[AnswerItem], *,
                  tick: Tick = no_tick) -> list[Judgment]:
    async def one(unit: PairItem | AnswerItem) -> Judgment:
        result = await judge_once(probe, unit)
        tick(1)
        return result

    return list(await asyncio.gather(*(one(unit) for unit in units)))


def summarize(units: list[PairItem] | list[AnswerItem], first: JudgeProbe, second: JudgeProbe,
              first_judgments: list[Judgment], second_judgments: list[Judgment], bootstrap: Bootstrap,
              *, name: str = "agreement") -> SectionResult:
    both = [(unit, a, b) for unit, a, b in zip(units, first_judgments, second_judgments, strict=True)
            if a[0] != UNSCORED and b[0] != UNSCORED]
    verdicts = [(a[0], b[0]) for _, a, b in both]
    valued = [(a[1], b[1]) for _, a, b in both if a[1] is not None and b[1] is not None]

    def agreement_of(pairs: list[tuple[str, str]]) -> float | None:
        return percent_agreement([p[0] for p in pairs], [p[1] for p in pairs])

    def kappa_of(pairs: list[tuple[str, str]]) -> float | None:
        return cohen_kappa([p[0] for p in pairs], [p[1] for p in pairs])

    def rho_of(pairs: list[tuple[float, float]]) -> float | None:
        return spearman([p[0] for p in pairs], [p[1] for p in pairs])

    options = {"resamples": bootstrap.resamples, "confidence": bootstrap.confidence, "seed": bootstrap.seed}
    result = SectionResult(name, f"{first.name} vs {second.name}")
    unscored = sum(j[0] == UNSCORED for j in [*first_judgments, *second_judgments])
    result.counts = {"items": len(units), "scored_by_both": len(both)}
    result.figures = {
        "percent_agreement": agreement_of(verdicts),
        "kappa": kappa_of(verdicts),
        "spearman": rho_of(valued),
        "unscored_share": share(unscored, 2 * len(units)),
    }
    result.intervals = {
        "percent_agreement": bootstrap_ci(verdicts, agreement_of, **options),
        "kappa": bootstrap_ci(verdicts, kappa_of, **options),
        "spearman": bootstrap_ci(valued, rho_of, **options),
    }
    records: list[dict[str, Any]] = [
        {"id": unit.id, first.name: a[0], second.name: b[0], f"{first.name}_value": a[1],
         f"{second.name}_value": b[1]}
        for unit, a, b in zip(units, first_judgments, second_judgments, strict=True)]
    result.items = records
    result.examples = [{"id": unit.id, "first": a[0], "second": b[0]}
                       for unit, a, b in zip(units, first_judgments, second_judgments, strict=True)
                       if a[0] != b[0]]
    if result.figures["kappa"] is None and verdicts:
        result.notes.append("kappa is undefined: both judges gave one and the same verdict to every item")
    return result
