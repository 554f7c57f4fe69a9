"""Quote grounding: is every quote in a JSON answer really a quote of the source document?

Why: tasks that cite a document (contract review comments with a `text_excerpt`, answers with
supporting quotes) are judged as if the quote were real. A judge skims; a policy learns fast that
an invented or paraphrased "quote" scores as well as a real one, or copies a sentence from the
reference guideline it was shown instead of the target document. This check finds each quote in
the sample's source text deterministically, for free, before any judge call.

A quote is grounded when, after normalisation, it is a substring of the source field:
- whitespace runs become one space (line breaks in the contract do not matter);
- typographic quotes and dashes become ASCII (`normalize_quotes`, default on);
- case is ignored only with `ignore_case: true` (default off: a verbatim quote keeps its case);
- a quote shorter than `min_chars` (after normalisation) is not grounded: "the" is in every
  contract and proves nothing.
When a `forbidden_field` is set (e.g. the reference guideline), a quote that is NOT in the source
but IS in the forbidden text is reported as copied from it (it scores as ungrounded either way).

Fields are read from the sample: `prompt` (the last user turn), `reference`, or any key of
`Sample.metadata` (JSONL row columns such as `contract`); `source_field: tool_results` reads
what a tool-using agent's tools returned instead (its trajectory's tool messages). Score: the
share of grounded quotes; 0 with a rationale when the answer is not JSON or has no quotes at the path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions
from judgerl.checks.json_checks import parse_json
from judgerl.checks.json_items import MISSING, PathError, check_path_option, parse_path, select
from judgerl.errors import DataError
from judgerl.trajectory import tool_results
from judgerl.types import Rollout, Sample, Score

#: `source_field` naming what the agent's tools returned (the rollout's trajectory), not a sample field
TOOL_RESULTS_FIELD = "tool_results"

_SPACE = re.compile(r"\s+")
_TYPOGRAPHIC = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                              "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
                              "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "})


def normalise_quote(text: str, *, ignore_case: bool = False, normalize_quotes: bool = True) -> str:
    """The form in which quotes and sources are compared.

    >>> normalise_quote("  Customer shall\\n   pay \u2018all\u2019 fees ")
    "Customer shall pay 'all' fees"
    >>> normalise_quote("Customer SHALL pay", ignore_case=True)
    'customer shall pay'
    """
    if normalize_quotes:
        text = text.translate(_TYPOGRAPHIC)
    text = _SPACE.sub(" ", text).strip()
    return text.casefold() if ignore_case else text


def sample_field(sample: Sample, field: str) -> str | None:
    """A text field of the sample: prompt, reference, or a metadata key (None when absent).

    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Q"}], metadata={"contract": "1. Term."})
    >>> sample_field(s, "contract"), sample_field(s, "prompt"), sample_field(s, "reference")
    ('1. Term.', 'Q', None)
    """
    if field == "prompt":
        return sample.prompt
    if field == "reference":
        return sample.reference
    value = sample.metadata.get(field)
    return value if isinstance(value, str) else None


class QuoteGroundingOptions(CheckOptions):
    path: str = Field(default="comments[*].text_excerpt",
                      description="where the quotes are in the JSON answer (one per item)")
    source_field: str = Field(default="contract", description="the sample field quotes must come from: "
                              "prompt, reference, a metadata column, or tool_results")
    forbidden_field: str | None = Field(default=None, description="a sample field that quotes must not "
                                        "come from (e.g. reference_doc); reported in the rationale")
    ignore_case: bool = Field(default=False, description="compare without case")
    normalize_quotes: bool = Field(default=True, description="typographic quotes and dashes count as ASCII")
    min_chars: int = Field(default=10, ge=1, description="shorter quotes (after normalisation) are not "
                           "grounded")
    allow_fence: bool = Field(default=True, description="unwrap an answer that is one ```json block")


class QuoteGroundingCheck(BaseCheck):
    """Share of quotes that are found verbatim (modulo whitespace) in the source text.

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[], metadata={
    ...     "contract": "4. Liability. Customer shall be liable\\nwithout limit for all losses.",
    ...     "reference_doc": "P1 Liability must always be capped."})
    >>> check = QuoteGroundingCheck("grounding", QuoteGroundingOptions(forbidden_field="reference_doc"))
    >>> answer = ('{"comments": [{"text_excerpt": "Customer shall be liable without limit"},'
    ...           ' {"text_excerpt": "Liability must always be capped"},'
    ...           ' {"text_excerpt": "Supplier may terminate at will"}]}')
    >>> score = check(s, Rollout("s", answer))
    >>> round(score.value, 3)
    0.333
    >>> for part in score.rationale.split("; "):
    ...     print(part)
    1/3 quotes found in contract
    item 1: copied from reference_doc, not contract
    item 2: not found in contract
    """

    summary = ("share of quotes in a JSON answer (e.g. comments[*].text_excerpt) found verbatim in a sample "
               "field")
    Options = QuoteGroundingOptions

    def __init__(self, name: str, options: QuoteGroundingOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        check_path_option(name, "path", options.path)
        self.steps = parse_path(options.path)

    def reads_trajectory(self) -> bool:
        return self.options.source_field == TOOL_RESULTS_FIELD

    def _norm(self, text: str) -> str:
        return normalise_quote(text, ignore_case=self.options.ignore_case,
                               normalize_quotes=self.options.normalize_quotes)

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        options = self.options
        if options.source_field == TOOL_RESULTS_FIELD:
            source = "\n".join(tool_results(rollout.trajectory).values()) if rollout.trajectory else None
            if source is None:
                return Score.unscored(self.name, f"sample {sample.id!r} has no text field "
                                      f"{options.source_field!r} to check quotes against")
        else:
            source = sample_field(sample, options.source_field)
            if source is None:  # a gap in the data: the row's failure, named by file, line and field
                raise DataError(f"quote_grounding check {self.name!r} needs this text field to check "
                                "quotes against", path=f"sample {sample.id!r}", field=options.source_field)
        value, problem = parse_json(rollout.completion, options.allow_fence)
        if problem:
            return Score(self.name, 0.0, rationale=problem, details={"quotes": None})
        try:
            quotes = select(value, self.steps)
        except PathError as exc:
            return Score(self.name, 0.0, rationale=f"no quotes at {options.path}: {exc}",
                         details={"quotes": None})
        if not quotes:
            return Score(self.name, 0.0, rationale=f"no quotes at {options.path}", details={"quotes": 0})
        source_norm = self._norm(source)
        forbidden = sample_field(sample, options.forbidden_field) if options.forbidden_field else None
        forbidden_norm = self._norm(forbidden) if forbidden else None
        results = [self._locate(quote, source_norm, forbidden_norm) for quote in quotes]
        grounded = sum(result == "grounded" for result in results)
        problems = [f"item {index}: {self._describe(result)}" for index, result in enumerate(results)
                    if result != "grounded"]
        rationale = f"{grounded}/{len(results)} quotes found in {options.source_field}"
        if problems:
            more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
            rationale += "; " + "; ".join(problems[:4]) + more
        details: dict[str, Any] = {"quotes": len(results), "grounded": grounded, "per_item": results,
                                   "from_forbidden": sum(result == "forbidden" for result in results)}
        return Score(self.name, grounded / len(results), rationale=rationale, details=details)

    def _locate(self, quote: Any, source: str, forbidden: str | None) -> str:
        if quote is MISSING:
            return "missing"
        if not isinstance(quote, str):
            return "not_text"
        normalised = self._norm(quote)
        if len(normalised) < self.options.min_chars:
            return "too_short"
        if normalised in source:
            return "grounded"
        if forbidden is not None and normalised in forbidden:
            return "forbidden"
        return "not_found"

    def _describe(self, result: str) -> str:
        source, forbidden = self.options.source_field, self.options.forbidden_field
        return {"missing": "no quote", "not_text": "the quote is not a string",
                "too_short": f"quote shorter than {self.options.min_chars} characters",
                "forbidden": f"copied from {forbidden}, not {source}",
                "not_found": f"not found in {source}"}[result]
