"""The regression suite: known-good and known-bad answers, each with the verdict it must get.

Why: a judge prompt edited for one failure silently breaks another. Pin the cases that matter
(a correct contract clause must pass, a hallucinated one must fail, the better of two answers
must win) and check them on every change. `pass_rate` is the share of cases that got what they
must get; an unscored case is a failed case. The failing cases are listed with what they got.

An answer case (`answer`) expects `pass` (score >= the suite's `pass_threshold`), `fail`, and/or
a `min_score` / `max_score`; a pair case (`a`, `b`) expects `a`, `b` or `tie`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from judgerl.validate.probe import JudgeProbe
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.stats import share
from judgerl.validate.suite import RegressionItem


async def check_item(probe: JudgeProbe, item: RegressionItem) -> dict[str, Any]:
    """Judge one case; the record says what was expected, what came back and whether it passed."""
    if item.a is not None and item.b is not None:
        outcome = await probe.compare(item.id, item.prompt, item.a, item.b, item.reference)
        got = outcome.winner or "unscored"
        return {"id": item.id, "expected": item.expect, "got": got, "value": outcome.value,
                "passed": outcome.winner == item.expect, "reason": outcome.reason or "", "note": item.note}
    assert item.answer is not None
    score = await probe.score(item.id, item.prompt, item.answer, item.reference)
    expected = [item.expect] if item.expect else []
    if item.min_score is not None:
        expected.append(f"score >= {item.min_score:g}")
    if item.max_score is not None:
        expected.append(f"score <= {item.max_score:g}")
    value = score.value
    passed = value is not None
    if value is not None:
        if item.expect is not None:
            passed = probe.verdict(value) == item.expect
        if item.min_score is not None:
            passed = passed and value >= item.min_score
        if item.max_score is not None:
            passed = passed and value <= item.max_score
    got = "unscored" if value is None else f"{probe.verdict(value)} ({value:.3f})"
    return {"id": item.id, "expected": ", ".join(e for e in expected if e), "got": got, "value": value,
            "passed": passed, "reason": score.reason or "", "note": item.note}


async def run_regression(items: list[RegressionItem], probe: JudgeProbe, *, tick: Tick = no_tick,
                         name: str = "regression") -> SectionResult:
    async def one(item: RegressionItem) -> dict[str, Any]:
        record = await check_item(probe, item)
        tick(1)
        return record

    records = list(await asyncio.gather(*(one(item) for item in items)))
    failing = [record for record in records if not record["passed"]]
    result = SectionResult(name, probe.name)
    result.counts = {"cases": len(records), "failing": len(failing)}
    result.figures = {"pass_rate": share(len(records) - len(failing), len(records)),
                      "unscored_share": share(sum(r["value"] is None for r in records), len(records))}
    result.items = records
    result.examples = [{"id": r["id"], "expected": r["expected"], "got": r["got"],
                        "note": r["note"] or r["reason"]} for r in failing]
    return result
