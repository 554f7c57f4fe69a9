"""Language consistency: the answer is written in the prompt's language (or a fixed one).

RL against an English-reading judge drifts multilingual policies into English, and some
policies switch language mid-answer; this check catches both offline with `langdetect` (a
port of Google's language-detection, 55 languages, no network). langdetect samples at
random, so the seed is fixed (`DetectorFactory.seed = 0`) and results are reproducible.

Before detection, fenced code blocks, URLs and e-mail addresses are removed (they look
English whatever the prose is). Text shorter than `min_chars` after that cannot be detected
reliably: it scores 1 and the rationale says so (an empty answer is other checks' business).
Regional variants compare by their base language: `zh-cn` matches `zh-tw`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from langdetect import DetectorFactory, detect_langs
from langdetect.detector_factory import init_factory
from langdetect.lang_detect_exception import LangDetectException
from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, option_error
from judgerl.types import Rollout, Sample, Score

DetectorFactory.seed = 0

_NOISE = re.compile(r"```.*?(?:```|\Z)|https?://\S+|www\.\S+|\S+@\S+\.\w+", re.DOTALL)


@lru_cache(maxsize=1)
def supported_languages() -> frozenset[str]:
    """Base language codes langdetect knows (ISO 639-1, e.g. 'en', 'fr', 'zh').

    >>> {"en", "fr", "zh"} <= supported_languages()
    True
    """
    init_factory()
    from langdetect import detector_factory

    return frozenset(_base(code) for code in detector_factory._factory.get_lang_list())


def _base(code: str) -> str:
    return code.lower().split("-")[0]


def clean_text(text: str) -> str:
    """Text with code blocks, URLs and e-mails removed, whitespace collapsed.

    >>> clean_text("Voir https://x.org et ```py\\nprint(1)\\n``` ici")
    'Voir et ici'
    """
    return " ".join(_NOISE.sub(" ", text).split())


def detect(text: str) -> tuple[str, float] | None:
    """(base language, probability) of `text`, or None when langdetect finds nothing.

    >>> detect("Le chat dort sur le canapé depuis ce matin.")[0]
    'fr'
    >>> detect("12345 !!!") is None
    True
    """
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return None
    return _base(best.lang), float(best.prob)


class LanguageOptions(CheckOptions):
    expected: str | None = Field(
        default=None, description="fixed ISO 639-1 code (e.g. 'en'); default: the prompt's language")
    min_chars: int = Field(default=20, ge=1, description="shorter text is not judged (scores 1)")


class LanguageCheck(BaseCheck):
    """1 when the answer's detected language is the expected one, else 0.

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Quelle est la capitale de la France ?"}])
    >>> check = LanguageCheck("lang", LanguageOptions())
    >>> check(s, Rollout("s", "La capitale de la France est Paris, bien sûr.")).value
    1.0
    >>> score = check(s, Rollout("s", "The capital of France is Paris, of course."))
    >>> score.value, score.rationale
    (0.0, "answer is in 'en', expected 'fr' (the prompt's language)")
    >>> check(s, Rollout("s", "Paris.")).rationale
    'answer too short to detect its language (6 < 20 chars): not judged'
    """

    summary = "the answer is in the prompt's language (or `expected`), detected offline with langdetect"
    Options = LanguageOptions

    def __init__(self, name: str, options: LanguageOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        if options.expected is not None:
            code = _base(options.expected)
            if code not in supported_languages():
                raise option_error(name, "expected", f"unknown language code {options.expected!r}; "
                                   f"known: {', '.join(sorted(supported_languages()))}")
            self.expected: str | None = code
        else:
            self.expected = None

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        min_chars = self.options.min_chars
        if self.expected is not None:
            expected, source = self.expected, "configured"
        else:
            prompt = clean_text(sample.prompt)
            found = detect(prompt) if len(prompt) >= min_chars else None
            if found is None:
                return Score(self.name, 1.0, details={"expected": None},
                             rationale="prompt too short or featureless to detect its language: not judged")
            expected, source = found[0], "the prompt's language"
        answer = clean_text(rollout.completion)
        if len(answer) < min_chars:
            return Score(self.name, 1.0, details={"expected": expected, "detected": None},
                         rationale=f"answer too short to detect its language ({len(answer)} < "
                                   f"{min_chars} chars): not judged")
        found = detect(answer)
        if found is None:
            return Score(self.name, 1.0, details={"expected": expected, "detected": None},
                         rationale="no language features in the answer: not judged")
        detected, prob = found
        details = {"expected": expected, "detected": detected, "probability": round(prob, 4)}
        if detected == expected:
            return Score(self.name, 1.0, rationale=f"answer is in {detected!r} ({source})", details=details)
        return Score(self.name, 0.0, rationale=f"answer is in {detected!r}, expected {expected!r} ({source})",
                     details=details)
