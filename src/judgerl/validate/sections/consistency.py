"""Consistency: the same items judged N times. A judge that changes its mind on the same input
cannot be a stable reward, and temperature, batching or a flaky endpoint all make that happen.

Figures: `changed_share` (items whose verdict is not the same in every repeat; an unscored
repeat counts as a verdict of its own), `mean_spread` and `max_spread` (per item, the highest
minus the lowest score over the repeats), `unscored_share` (of all judgments). Repeats run one
round after another with the cache off, so no answer is a copy of an earlier one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from judgerl.validate.datasets import AnswerItem, PairItem, answers_from, pairs_only
from judgerl.validate.probe import JudgeProbe
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.stats import mean, share
from judgerl.validate.suite import ConsistencySection

UNSCORED = "unscored"


async def judge_once(probe: JudgeProbe, item: PairItem | AnswerItem) -> tuple[str, float | None, str | None]:
    """(verdict, value, reason) of one judgment: a winner for pairs, pass / fail for answers."""
    if isinstance(item, PairItem):
        outcome = await probe.compare(item.id, item.prompt, item.a, item.b, item.reference)
        return outcome.winner or UNSCORED, outcome.value, outcome.reason
    score = await probe.score(item.id, item.prompt, item.answer, item.reference)
    return probe.verdict(score.value) or UNSCORED, score.value, score.reason


def units_for(probe: JudgeProbe, items: list[PairItem] | list[AnswerItem],
              where: str) -> list[PairItem] | list[AnswerItem]:
    """Pairs for a pairwise judge, single answers for the others."""
    if probe.kind == "pairwise":
        return pairs_only(items, where=where)
    return answers_from(items)


async def run_consistency(section: ConsistencySection, probe: JudgeProbe,
                          items: list[PairItem] | list[AnswerItem], *, tick: Tick = no_tick,
                          name: str = "consistency") -> SectionResult:
    started = time.monotonic()
    units = units_for(probe, items, f"{name}.data")
    rounds: list[list[tuple[str, float | None, str | None]]] = []

    async def one(unit: PairItem | AnswerItem) -> tuple[str, float | None, str | None]:
        result = await judge_once(probe, unit)
        tick(1)
        return result

    for _ in range(section.repeats):
        rounds.append(list(await asyncio.gather(*(one(unit) for unit in units))))
    records: list[dict[str, Any]] = []
    spreads: list[float] = []
    changed = unscored = 0
    for index, unit in enumerate(units):
        verdicts = [round_[index][0] for round_ in rounds]
        values = [round_[index][1] for round_ in rounds if round_[index][1] is not None]
        spread = max(values) - min(values) if len(values) >= 2 else None
        is_changed = len(set(verdicts)) > 1
        changed += is_changed
        unscored += verdicts.count(UNSCORED)
        if spread is not None:
            spreads.append(spread)
        records.append({"id": unit.id, "verdicts": verdicts, "values": [r[index][1] for r in rounds],
                        "spread": spread, "changed": is_changed,
                        "reasons": sorted({r[index][2] for r in rounds if r[index][2]})})
    result = SectionResult(name, probe.name, seconds=time.monotonic() - started)
    result.counts = {"items": len(units), "repeats": section.repeats,
                     "judgments": len(units) * section.repeats}
    result.figures = {
        "changed_share": share(changed, len(units)),
        "mean_spread": mean(spreads),
        "max_spread": max(spreads) if spreads else None,
        "unscored_share": share(unscored, len(units) * section.repeats),
    }
    result.items = records
    result.examples = [{"id": r["id"], "verdicts": " ".join(r["verdicts"]),
                        "spread": "n/a" if r["spread"] is None else f"{r['spread']:.3f}",
                        "reason": "; ".join(r["reasons"])[:120]}
                       for r in sorted(records, key=lambda r: (not r["changed"], -(r["spread"] or 0)))
                       if r["changed"] or (r["spread"] or 0) > 0]
    if not spreads:
        result.notes.append("no item was scored at least twice, so the spread is not computed")
    return result
