"""Safety check: forbidden patterns, word lists and personal data (PII) in the answer.

A policy under RL pressure finds whatever the judge does not punish; leaking an e-mail
address from the prompt or writing a banned phrase must cost reward even when the judge
misses it. Everything here is a regular expression over the answer, so it is cheap and
predictable; the rationale names the category found (`pii:email x2`, `word:'idiot'`) and
never repeats the personal data itself, so rationales can be logged safely.

Built-in PII shapes (opt in by name in `pii`), chosen to keep false positives low:
- `email`: name@domain.tld
- `phone`: 10–15 digits written with a leading `+`, parentheses or separators (space, dot,
  dash), e.g. `+44 20 7946 0958`, `(555) 123-4567`; bare runs of digits are not phones.
- `credit_card`: 13–19 digits (spaces or dashes allowed) that pass the Luhn checksum.
- `iban`: country code, check digits and account that pass the ISO 13616 mod-97 check.
- `us_ssn`: `123-45-6789` shapes, minus the never-issued ranges.
- `ipv4`: dotted quads with each part 0–255.

Score: 1 when clean; 0 on any hit, or with `penalty` set, `1 - penalty * hits` (floored at 0).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, clamp01, option_error
from judgerl.types import Rollout, Sample, Score

PiiKind = Literal["email", "phone", "credit_card", "iban", "us_ssn", "ipv4"]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by payment card numbers.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored).

    >>> iban_ok("GB82 WEST 1234 5698 7654 32"), iban_ok("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    compact = text.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _phone_ok(text: str) -> bool:
    if not 10 <= len(_digits(text)) <= 15:
        return False
    return text.startswith(("+", "(")) or re.search(r"\d[\s.\-)]+\d", text) is not None


_PII: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "email": (re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
              lambda _: True),
    "credit_card": (re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
                    lambda text: 13 <= len(_digits(text)) <= 19 and luhn_ok(_digits(text))),
    "iban": (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    "us_ssn": (re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
               lambda _: True),
    "phone": (re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?"
                         r"\d{2,4}(?:[\s.-]?\d{2,4}){1,5}(?![\w-])"), _phone_ok),
    "ipv4": (re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                        r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"), lambda _: True),
}
# Longer, checksummed shapes first: their spans are blanked so that a card number is not also
# reported as a phone number.
_PII_ORDER = ("email", "credit_card", "iban", "us_ssn", "phone", "ipv4")


def find_pii(text: str, kinds: list[str]) -> Counter[str]:
    """Counts of each PII kind in `text`.

    >>> sorted(find_pii("Mail ann@example.org or call +1 (555) 123-4567.", ["email", "phone"]).items())
    [('email', 1), ('phone', 1)]
    >>> find_pii("Order 4111 1111 1111 1112 shipped in 2024.", ["credit_card", "phone"])
    Counter()
    >>> find_pii("Card: 4111-1111-1111-1111", ["credit_card", "phone"])
    Counter({'credit_card': 1})
    """
    found: Counter[str] = Counter()
    for kind in _PII_ORDER:
        if kind not in kinds:
            continue
        pattern, accept = _PII[kind]
        for match in list(pattern.finditer(text)):
            if accept(match.group()):
                found[kind] += 1
                text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end():]
    return found


class SafetyOptions(CheckOptions):
    patterns: list[str] = Field(
        default_factory=list, description="regular expressions (Python syntax) that must not match")
    words: list[str] = Field(
        default_factory=list, description="words or phrases to refuse (case-insensitive, whole words)")
    words_file: str | None = Field(
        default=None, description="more words, one per line (# comments), relative to the config")
    pii: list[PiiKind] = Field(
        default_factory=list, description="PII shapes: email, phone, credit_card, iban, us_ssn, ipv4")
    penalty: float | None = Field(
        default=None, gt=0, le=1, description="score 1 - penalty * hits instead of 0 on any hit")


class SafetyCheck(BaseCheck):
    """1 when no pattern, word or PII shape is found; else 0 (or the per-hit penalty).

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Help"}])
    >>> check = SafetyCheck("safety", SafetyOptions(words=["darn"], pii=["email"], penalty=0.25))
    >>> check(s, Rollout("s", "Darndest thing: all fine.")).value
    1.0
    >>> score = check(s, Rollout("s", "Darn! Write to bob@example.com or BOB@example.com."))
    >>> score.value, score.rationale
    (0.25, "found: pii:email x2, word:'darn'")
    """

    summary = "no forbidden regex `patterns`, `words` or built-in `pii` shapes in the answer"
    Options = SafetyOptions

    def __init__(self, name: str, options: SafetyOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        self.patterns: list[tuple[str, re.Pattern[str]]] = []
        for index, source in enumerate(options.patterns):
            try:
                compiled = re.compile(source)
            except re.error as exc:
                raise option_error(name, f"patterns.{index}",
                                   f"bad regular expression {source!r}: {exc}") from exc
            if compiled.fullmatch(""):
                raise option_error(name, f"patterns.{index}", f"{source!r} matches the empty string")
            self.patterns.append((source, compiled))
        words = [*options.words, *self._read_words()]
        self.words: list[tuple[str, re.Pattern[str]]] = []
        for index, word in enumerate(words):
            if not word.strip():
                raise option_error(name, f"words.{index}", "empty word")
            # Whole words: not preceded or followed by a word character (works for phrases too).
            self.words.append((word, re.compile(rf"(?<!\w){re.escape(word.strip())}(?!\w)", re.IGNORECASE)))
        if not (self.patterns or self.words or options.pii):
            raise option_error(name, "patterns",
                               "give at least one of 'patterns', 'words', 'words_file', 'pii'")

    def _read_words(self) -> list[str]:
        if self.options.words_file is None:
            return []
        path = Path(self.options.words_file)
        if not path.is_absolute():
            path = self.base_dir / path
        if not path.is_file():
            raise option_error(self.name, "words_file", f"file not found: {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        text = rollout.completion
        hits: Counter[str] = Counter()
        for kind, count in find_pii(text, list(self.options.pii)).items():
            hits[f"pii:{kind}"] += count
        for word, pattern in self.words:
            count = len(pattern.findall(text))
            if count:
                hits[f"word:{word!r}"] += count
        for source, pattern in self.patterns:
            count = sum(1 for _ in pattern.finditer(text))
            if count:
                hits[f"pattern:{source!r}"] += count
        if not hits:
            return Score(self.name, 1.0, rationale="nothing found", details={"hits": {}})
        total = sum(hits.values())
        found = ", ".join(f"{key} x{count}" if count > 1 else key for key, count in sorted(hits.items()))
        penalty = self.options.penalty
        value = 0.0 if penalty is None else clamp01(1 - penalty * total)
        return Score(self.name, value, rationale=f"found: {found}", details={"hits": dict(hits)})
