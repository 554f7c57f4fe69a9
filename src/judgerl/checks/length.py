"""Length check: keep answers inside a target range without a cliff at its edges.

Length is the cheapest lever a policy finds for pleasing a judge (longer looks better), so
most recipes bound it. A hard 0/1 edge gives GRPO no gradient near the bound; this check
decays linearly instead: 1 inside [min, max], then 1 - distance / tolerance outside, down to 0.
`tolerance` defaults to half the bound that was crossed (so with max 200 words, 250 words
scores 0.5 and 300 or more scores 0), and 0 makes the range hard.

Units: `chars` (characters of the stripped text), `words` (runs of letters/digits, so
punctuation and Markdown bullets are not words), `tokens` (whitespace-separated pieces, not a
model's tokenizer: cheap and model-independent).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, clamp01, option_error
from judgerl.types import Rollout, Sample, Score

_WORD = re.compile(r"\w+(?:['’-]\w+)*")


def measure(text: str, unit: str) -> int:
    """The length of `text` in `unit`.

    >>> measure("  Hello, world! It's fine.  ", "chars")
    24
    >>> measure("Hello, world! It's fine.", "words")
    4
    >>> measure("- a  - b", "tokens")
    4
    >>> measure("Ça va très bien", "words")
    4
    """
    if unit == "chars":
        return len(text.strip())
    if unit == "words":
        return len(_WORD.findall(text))
    return len(text.split())


class LengthOptions(CheckOptions):
    unit: Literal["chars", "words", "tokens"] = Field(default="words", description="what is counted")
    min: int | None = Field(default=None, ge=0, description="shortest length that scores 1")
    max: int | None = Field(default=None, ge=0, description="longest length that scores 1")
    tolerance: float | None = Field(
        default=None, ge=0,
        description="units outside the range over which the score falls to 0; default half the bound")


class LengthCheck(BaseCheck):
    """1 inside [min, max]; a linear decay to 0 over `tolerance` units outside.

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Describe"}])
    >>> check = LengthCheck("len", LengthOptions(unit="words", min=2, max=4, tolerance=2))
    >>> [check(s, Rollout("s", " ".join(["w"] * n))).value for n in (0, 1, 2, 4, 5, 6, 9)]
    [0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
    >>> check(s, Rollout("s", "one two three four five")).rationale
    '5 words, above the maximum of 4 by 1 (tolerance 2)'
    """

    summary = "the answer's length (chars, words, whitespace tokens) is in [min, max]; soft penalty outside"
    Options = LengthOptions

    def __init__(self, name: str, options: LengthOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        if options.min is None and options.max is None:
            raise option_error(name, "max", "give 'min', 'max' or both")
        if options.min is not None and options.max is not None and options.min > options.max:
            raise option_error(name, "min", f"min ({options.min}) is above max ({options.max})")

    def _tolerance(self, bound: int) -> float:
        if self.options.tolerance is not None:
            return self.options.tolerance
        return max(1.0, bound / 2)

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        unit, low, high = self.options.unit, self.options.min, self.options.max
        n = measure(rollout.completion, unit)
        details = {"length": n, "unit": unit}
        if low is not None and n < low:
            return self._outside(n, low, low - n, "below the minimum", details)
        if high is not None and n > high:
            return self._outside(n, high, n - high, "above the maximum", details)
        return Score(self.name, 1.0, rationale=f"{n} {unit}, within range", details=details)

    def _outside(self, n: int, bound: int, distance: int, where: str, details: dict) -> Score:
        tolerance = self._tolerance(bound)
        value = 0.0 if tolerance == 0 else clamp01(1 - distance / tolerance)
        rationale = (f"{n} {self.options.unit}, {where} of {bound} by {distance} "
                     f"(tolerance {tolerance:g})")
        return Score(self.name, value, rationale=rationale, details=details)
