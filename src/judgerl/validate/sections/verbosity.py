"""Verbosity bias: the worse answer of a labelled pair, padded with filler or turned into a long
list, must not beat the better, concise one.

For each pair and each style (validate/padding.py) the judge compares the better answer with the
padded worse one. `padded_win_rate` is the share of those comparisons (that the judge decided)
won by the padded answer; `base_win_rate` is the same for the unpadded worse answer, and
`win_rate_increase` the difference: how much length alone buys. A pointwise judge "prefers" the
answer it scores strictly higher. Per-style rates are in the breakdown.
"""

from __future__ import annotations

import asyncio
import time

from judgerl.validate.datasets import PairItem
from judgerl.validate.padding import make_variant
from judgerl.validate.probe import JudgeProbe, PairOutcome
from judgerl.validate.report import SectionResult
from judgerl.validate.sections import Tick, no_tick
from judgerl.validate.stats import mean, share
from judgerl.validate.suite import VerbosityProbe


async def run_verbosity(section: VerbosityProbe, probe: JudgeProbe, pairs: list[PairItem], *,
                        tick: Tick = no_tick, name: str = "bias.verbosity") -> SectionResult:
    started = time.monotonic()
    cases: list[tuple[PairItem, str, str]] = []  # (pair, style, worse text)
    for item in pairs:
        assert item.better is not None and item.worse is not None
        cases.append((item, "none", item.worse))
        cases += [(item, style, make_variant(style, item.worse, item.better)) for style in section.styles]

    async def one(case: tuple[PairItem, str, str]) -> PairOutcome:
        item, style, worse = case
        outcome = await probe.compare(f"{item.id}:{style}", item.prompt, item.better or "", worse,
                                      item.reference)
        tick(1)
        return outcome

    outcomes = list(await asyncio.gather(*(one(case) for case in cases)))

    def win_rate(styles: set[str]) -> tuple[float | None, int]:
        chosen = [o for (_, style, _), o in zip(cases, outcomes, strict=True)
                  if style in styles and o.winner is not None]
        return share(sum(o.winner == "b" for o in chosen), len(chosen)), len(chosen)

    padded_rate, padded_n = win_rate(set(section.styles))
    base_rate, _ = win_rate({"none"})
    result = SectionResult(name, probe.name)
    result.counts = {"pairs": len(pairs), "comparisons": len(cases), "padded_decided": padded_n}
    result.figures = {
        "padded_win_rate": padded_rate,
        "base_win_rate": base_rate,
        "win_rate_increase": None if padded_rate is None or base_rate is None else padded_rate - base_rate,
        "unscored_share": share(sum(o.winner is None for o in outcomes), len(outcomes)),
    }
    result.breakdown["style (worse answer's win rate)"] = {
        style: win_rate({style})[0] for style in ["none", *section.styles]}
    ratios = [len(text) / max(len(item.better or ""), 1) for item, style, text in cases if style != "none"]
    result.notes.append(f"padded answers are on average {mean(ratios) or 0:.1f}x as long as the better "
                        "answer")
    result.items = [{"id": item.id, "style": style, "winner": o.winner, "value": o.value, "reason": o.reason}
                    for (item, style, _), o in zip(cases, outcomes, strict=True)]
    result.examples = [{"id": item.id, "style": style, "prompt": item.prompt, "padded answer": text}
                       for (item, style, text), o in zip(cases, outcomes, strict=True)
                       if style != "none" and o.winner == "b"]
    result.seconds = time.monotonic() - started
    return result
