"""Match check: compare the answer with the sample's reference (exact, regex or numeric).

Verifiable tasks (math, extraction, classification) need no judge: the reward is whether the
answer equals the reference. This check reads `sample.reference`, or with `field` a column
kept in `sample.metadata` (a list there means "any of these").

A sample without a reference is a data error, not a zero: scoring it 0 would punish the
policy for a hole in the dataset. The check raises `DataError` naming the sample id; the reward
pipeline makes that row (and only that row) `unscored` with a `data_error` reason naming the
file and line it came from, so the problem shows in the output and the summary while the other
rows are scored; give every row a reference or drop the check.

Modes:
- `exact`: equal after normalisation (Unicode NFKC always; `case_sensitive`, whitespace
  collapsing and `strip_punctuation` as configured).
- `regex`: the answer matches `pattern`, or the reference read as a pattern (`search`
  anywhere by default, or `fullmatch`).
- `numeric`: the last number of the answer (inside the last `\\boxed{...}` when there is
  one; `1,234.5`, `-3`, `2e-3`, `3/4` and `\\frac{3}{4}` are understood) is within
  `rel_tol` / `abs_tol` of the reference's number (also its last number, so a GSM8K
  solution ending in `#### 72` works as it is).

`extract` (a regex with one group) first cuts the answer out of the completion, e.g.
`"Answer:\\s*(.+)"`; when it does not match, the score is 0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, option_error
from judgerl.errors import DataError
from judgerl.types import Rollout, Sample, Score

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(?P<frac>\.\d+)?"
    r"(?:[eE](?P<exp>[-+]?\d+))?(?:\s*/\s*(?P<den>\d+)(?![\d.]))?")
_FRAC = re.compile(r"\\d?frac\s*\{\s*([-+]?[\d.,]+)\s*\}\s*\{\s*([-+]?[\d.,]+)\s*\}")


def last_boxed(text: str) -> str | None:
    r"""The content of the last `\boxed{...}` (nested braces allowed), or None.

    >>> last_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}")
    '\\frac{1}{2}'
    >>> last_boxed("no box") is None
    True
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            if depth == 0:
                return text[begin:index]
            depth -= 1
    return None


def last_number(text: str) -> float | None:
    r"""The last number written in `text` (or in its last `\boxed{}`), as a float.

    >>> last_number("It costs 1,234.50 dollars, not 99.")
    99.0
    >>> last_number(r"Thus \boxed{-\frac{3}{4}}. Check: 2 + 2 = 4")
    -0.75
    >>> last_number("between 3-5 items, about 2.5e3 tokens")
    2500.0
    >>> last_number("no digits") is None
    True
    """
    boxed = last_boxed(text)
    if boxed is not None:
        text = boxed
    text = _FRAC.sub(r"\1/\2", text)
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    match = matches[-1]
    whole = match.group("int").replace(",", "") or "0"
    # float() parses any length and exponent in linear time (int() refuses > 4300 digits).
    value = float(f"{whole}{match.group('frac') or ''}e{match.group('exp') or 0}")
    if match.group("den"):
        denominator = float(match.group("den"))
        if denominator == 0:
            return None
        value /= denominator
    if match.group("sign") in ("-", "\u2212"):
        value = -value
    return value


def normalize(text: str, *, case_sensitive: bool, whitespace: bool, punctuation: bool) -> str:
    """The text as `exact` mode compares it.

    >>> normalize("  The  Eiffel\\nTower! ", case_sensitive=False, whitespace=True, punctuation=True)
    'the eiffel tower'
    """
    text = unicodedata.normalize("NFKC", text)
    if punctuation:
        text = "".join(" " if unicodedata.category(char).startswith("P") else char for char in text)
    if not case_sensitive:
        text = text.casefold()
    if whitespace:
        text = " ".join(text.split())
    return text.strip()


@lru_cache(maxsize=4096)
def _compile_reference(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


class MatchOptions(CheckOptions):
    mode: Literal["exact", "regex", "numeric"] = Field(default="exact", description="how to compare")
    field: str | None = Field(default=None,
                              description="read the reference from sample.metadata[field] instead")
    extract: str | None = Field(default=None,
                                description="regex with one group that cuts the answer out of the completion")
    case_sensitive: bool = Field(default=False, description="exact and regex modes")
    normalize_whitespace: bool = Field(default=True, description="exact mode: collapse runs of whitespace")
    strip_punctuation: bool = Field(default=False, description="exact mode: ignore punctuation")
    pattern: str | None = Field(default=None, description="regex mode: this pattern instead of the reference")
    regex_match: Literal["search", "fullmatch"] = Field(
        default="search", description="regex mode: anywhere, or the whole answer")
    rel_tol: float = Field(default=1e-6, ge=0, description="numeric mode: relative tolerance")
    abs_tol: float = Field(default=1e-9, ge=0, description="numeric mode: absolute tolerance")


class MatchCheck(BaseCheck):
    """1 when the answer matches the reference, else 0.

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="q1", messages=[{"role": "user", "content": "2+2?"}], reference="#### 4")
    >>> check = MatchCheck("correct", MatchOptions(mode="numeric"))
    >>> check(s, Rollout("q1", r"2 + 2 = \\boxed{4}")).value, check(s, Rollout("q1", "It is 5.")).value
    (1.0, 0.0)
    >>> exact = MatchCheck("exact", MatchOptions(strip_punctuation=True))
    >>> t = Sample(id="q2", messages=[{"role": "user", "content": "Capital?"}], reference="Paris")
    >>> exact(t, Rollout("q2", " paris. ")).value
    1.0
    >>> exact(Sample(id="q3", messages=[]), Rollout("q3", "x"))
    Traceback (most recent call last):
    ...
    judgerl.errors.DataError: sample 'q3', field 'reference': match check 'exact' needs a reference answer
    """

    summary = "the answer matches the reference: exact (normalised), regex, or numeric with tolerance"
    Options = MatchOptions

    def __init__(self, name: str, options: MatchOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        self.flags = 0 if options.case_sensitive else re.IGNORECASE
        self.extract = self._compile("extract", options.extract, 0)
        if self.extract is not None and self.extract.groups != 1:
            raise option_error(name, "extract", "the regex needs exactly one group: the answer")
        self.pattern = self._compile("pattern", options.pattern, self.flags)
        if options.pattern is not None and options.mode != "regex":
            raise option_error(name, "pattern", "only used with mode: regex")

    def _compile(self, option: str, source: str | None, flags: int) -> re.Pattern[str] | None:
        if source is None:
            return None
        try:
            return re.compile(source, flags)
        except re.error as exc:
            raise option_error(self.name, option, f"bad regular expression {source!r}: {exc}") from exc

    def _references(self, sample: Sample) -> list[str]:
        field = self.options.field
        value: Any = sample.metadata.get(field) if field else sample.reference
        if (self.pattern is not None and self.options.mode == "regex") and value is None:
            return []
        values = value if isinstance(value, list) else [value]
        references = [str(item) for item in values if item is not None and str(item).strip()]
        if not references:
            raise DataError(f"match check {self.name!r} needs a reference answer",
                            path=f"sample {sample.id!r}", field=field or "reference")
        return references

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        references = self._references(sample)
        answer = rollout.completion
        if self.extract is not None:
            found = self.extract.search(answer)
            if found is None:
                return Score(self.name, 0.0, rationale=f"no answer found by extract {self.extract.pattern!r}")
            answer = found.group(1)
        mode = self.options.mode
        if mode == "numeric":
            return self._numeric(sample, answer, references)
        if mode == "regex":
            return self._regex(sample, answer, references)
        return self._exact(answer, references)

    def _exact(self, answer: str, references: list[str]) -> Score:
        opts = self.options
        norm = {"case_sensitive": opts.case_sensitive, "whitespace": opts.normalize_whitespace,
                "punctuation": opts.strip_punctuation}
        got = normalize(answer, **norm)
        for reference in references:
            if got == normalize(reference, **norm):
                return Score(self.name, 1.0, rationale="matches the reference")
        return Score(self.name, 0.0, rationale="does not match the reference",
                     details={"answer": got[:200]})

    def _regex(self, sample: Sample, answer: str, references: list[str]) -> Score:
        if self.pattern is not None:
            patterns = [self.pattern]
        else:
            patterns = []
            for reference in references:
                try:
                    patterns.append(_compile_reference(reference, self.flags))
                except re.error as exc:
                    raise DataError(f"reference is not a valid regular expression: {exc}",
                                    path=f"sample {sample.id!r}", field=self.options.field or "reference"
                                    ) from exc
        text = answer.strip()
        for pattern in patterns:
            hit = pattern.fullmatch(text) if self.options.regex_match == "fullmatch" else pattern.search(text)
            if hit:
                return Score(self.name, 1.0, rationale=f"matches {pattern.pattern!r}")
        return Score(self.name, 0.0, rationale=f"does not match {patterns[0].pattern!r}"
                     + (f" (or {len(patterns) - 1} more)" if len(patterns) > 1 else ""))

    def _numeric(self, sample: Sample, answer: str, references: list[str]) -> Score:
        expected = []
        for reference in references:
            number = last_number(reference)
            if number is None:
                raise DataError(f"reference {reference[:60]!r} holds no number for numeric match",
                                path=f"sample {sample.id!r}", field=self.options.field or "reference")
            expected.append(number)
        got = last_number(answer)
        if got is None:
            return Score(self.name, 0.0, rationale="no number in the answer", details={"answer": None})
        for number in expected:
            if math.isclose(got, number, rel_tol=self.options.rel_tol, abs_tol=self.options.abs_tol):
                return Score(self.name, 1.0, rationale=f"{got:g} equals the reference {number:g}",
                             details={"answer": got})
        return Score(self.name, 0.0, rationale=f"{got:g} is not the reference {expected[0]:g}",
                     details={"answer": got})
