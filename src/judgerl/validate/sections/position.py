"""Position bias: each pair is judged in both orders; a fair judge names the same answer both times.

`consistency_rate` is the share of pairs (judged in both orders) where the two orders agree,
after un-swapping; `first_position_rate` is the share of order-level decisions won by whichever
answer was shown first (0.5 for a fair judge that decides; 1.0 for one that always says "A").
A pairwise judge already asks both orders and reports each one in its verdict; a group judge is
asked twice; a pointwise judge sees one answer at a time, so the probe does not apply to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from judgerl.types import Winner
from judgerl.validate.datasets import PairItem
from judgerl.validate.probe import JudgeProbe
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.stats import share
from judgerl.validate.suite import PositionProbe

_SWAP: dict[Winner, Winner] = {"a": "b", "b": "a", "tie": "tie"}


Orders = tuple[Winner | None, Winner | None]


async def both_orders(probe: JudgeProbe, item: PairItem) -> tuple[Orders, str | None]:
    """The outcome of order a-b and of order b-a, in a/b terms, and a reason when unscored."""
    outcome = await probe.compare(item.id, item.prompt, item.a, item.b, item.reference)
    if outcome.orders is not None:
        return outcome.orders, outcome.reason
    if outcome.winner is None and probe.kind == "pairwise":
        return (None, None), outcome.reason
    backward = await probe.compare(item.id, item.prompt, item.b, item.a, item.reference)
    second = _SWAP[backward.winner] if backward.winner is not None else None
    return (outcome.winner, second), outcome.reason or backward.reason


async def run_position(section: PositionProbe, probe: JudgeProbe, pairs: list[PairItem], *,
                       tick: Tick = no_tick, name: str = "bias.position") -> SectionResult:
    started = time.monotonic()
    result = SectionResult(name, probe.name)
    if probe.kind == "pointwise":
        result.skipped = "a pointwise judge scores one answer at a time, so answer order cannot bias it"
        return result

    async def one(item: PairItem) -> tuple[Orders, str | None]:
        orders = await both_orders(probe, item)
        tick(1)
        return orders

    outcomes = list(await asyncio.gather(*(one(item) for item in pairs)))
    decided = [(item, orders) for item, (orders, _reason) in zip(pairs, outcomes, strict=True)
               if orders[0] is not None and orders[1] is not None]
    consistent = [orders[0] == orders[1] for _, orders in decided]
    # order a-b shows a first; order b-a shows b first.
    first_wins = sum((orders[0] == "a") + (orders[1] == "b") for _, orders in decided)
    non_tie = sum((orders[0] != "tie") + (orders[1] != "tie") for _, orders in decided)
    result.counts = {"pairs": len(pairs), "judged_in_both_orders": len(decided)}
    result.figures = {"consistency_rate": share(sum(consistent), len(decided)),
                      "first_position_rate": share(first_wins, non_tie),
                      "unscored_share": share(len(pairs) - len(decided), len(pairs))}
    by_category: dict[str, list[bool]] = defaultdict(list)
    for (item, _orders), same in zip(decided, consistent, strict=True):
        by_category[item.category or "all"].append(same)
    if len(by_category) > 1:
        result.breakdown["category (consistency rate)"] = {
            key: share(sum(values), len(values)) for key, values in by_category.items()}
    result.items = [{"id": item.id, "order_ab": orders[0], "order_ba": orders[1], "reason": reason}
                    for item, (orders, reason) in zip(pairs, outcomes, strict=True)]
    result.examples = [{"id": item.id, "order a-b": orders[0], "order b-a": orders[1], "prompt": item.prompt}
                       for item, orders in decided if orders[0] != orders[1]]
    result.seconds = time.monotonic() - started
    return result
