"""Options every prompted judge shares, and how a judge picks and checks its prompt template.

Why a module: the rubric, pairwise and group judges take the same knobs for the call (tokens,
temperature, JSON mode, generate-or-logprob scoring) and the same edge rules, and they must
report a bad option the same way (`judges.<name>.<field>`), so the common part is defined once.
Each judge extends `JudgeOptions` with its own fields, documented where they are defined.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgerl.config import JudgeConfig, parse_model
from judgerl.judges.templates import PromptTemplate, fence, load_prompt, load_prompt_file
from judgerl.types import Rollout, Sample

OptionsT = TypeVar("OptionsT", bound=BaseModel)
log = logging.getLogger(__name__)


class JudgeOptions(BaseModel):
    """Options shared by the rubric, pairwise and group judges (all optional)."""

    model_config = ConfigDict(extra="forbid")

    prompt_file: str | None = Field(
        default=None, description="your own template (relative to the config file); it must start "
        "with '# version: ...' and may use the placeholders the judge documents")
    prompt: str | None = Field(
        default=None, description="a template shipped with judgerl, by name (a file of "
        "judgerl/judges/prompts/, e.g. rubric_logprob_fewshot); instead of prompt_file")
    scoring: Literal["generate", "logprob"] = Field(
        default="generate", description="generate: the judge writes JSON that is parsed strictly; "
        "logprob: verdicts read from the probabilities of the answer tokens (one token, no parsing)")
    max_tokens: int = Field(default=1024, ge=1, description="token limit of a generated judgment")
    temperature: float = Field(default=0.0, ge=0, le=2, description="judge sampling temperature")
    json_mode: bool | None = Field(
        default=None, description="replaced by the backend's `structured_output`: a judge that asks "
        "for JSON always sends its answer's schema, and the backend decides what the server is sent; "
        "still accepted (it changes nothing) with a warning")
    empty_answer_score: float | None = Field(
        default=0.0, ge=0, le=1, description="score of an empty / whitespace answer, given without "
        "calling the judge; null sends empty answers to the judge like any other")
    top_logprobs: int = Field(default=20, ge=1, le=20, description="logprob mode: alternatives "
                              "asked for at the verdict position")
    case_sensitive_tokens: bool = Field(default=True, description="logprob mode: 'pass' does not "
                                        "count as 'PASS' unless this is false")

    @model_validator(mode="after")
    def _json_mode_moved(self) -> JudgeOptions:
        if self.json_mode is not None:
            log.warning("judge option `json_mode` is replaced by the backend option `structured_output` "
                        "(json_schema | json_object | none) and changes nothing; remove it")
        return self

    @model_validator(mode="after")
    def _shipped_prompt(self) -> JudgeOptions:
        """`prompt: NAME` is short for `prompt_file:` the shipped template NAME (checked here)."""
        if self.prompt is not None:
            if self.prompt_file is not None:
                raise ValueError("give `prompt` (a shipped template) or `prompt_file` (your own), not both")
            shipped = resources.files("judgerl.judges").joinpath("prompts", f"{self.prompt}.txt")
            if "/" in self.prompt or not shipped.is_file():
                names = sorted(item.name.removesuffix(".txt")
                               for item in resources.files("judgerl.judges").joinpath("prompts").iterdir()
                               if item.name.endswith(".txt"))
                raise ValueError(f"no shipped prompt '{self.prompt}'; shipped: {names}")
            self.prompt_file = str(shipped)
        return self


def parse_options(model: type[OptionsT], config: JudgeConfig) -> OptionsT:
    """Validate a judge's extra config keys; errors name `judges.<name>.<field>`."""
    options: OptionsT = parse_model(model, config.options, prefix=f"judges.{config.name}")
    return options


def choose_prompt(prompt_file: str | None, default: str, base_dir: Path | None) -> PromptTemplate:
    """The user's template when given, else the shipped one named `default`."""
    if prompt_file:
        return load_prompt_file(prompt_file, base_dir, field="prompt_file")
    return load_prompt(default)


def data_error(sample: Sample, rollout: Rollout, field: str, detail: str) -> str:
    """The unscored reason of a row whose data the judge cannot work with (no reference, no
    baseline): `data_error: <file>, line <n>, field '<field>': ...`, as a check's, so the user
    finds the row and the summary counts it under one reason."""
    where = rollout.location or f"sample {sample.id!r}"
    return f"data_error: {where}, field '{field}': {detail} (sample {sample.id!r}, rollout {rollout.id!r})"


def labelled_reason(failures: list[tuple[str, str]]) -> str:
    """One unscored reason for several failed parts (criteria, items, turns), led by the first
    part's reason code as every reason is (`parse_error: on_topic: ...; polite: ...`), not by a
    part's name: the summaries count reasons by that code.

    >>> labelled_reason([("on_topic", "parse_error: no logprobs"), ("polite", "timeout: 30s")])
    'parse_error: on_topic: no logprobs; polite: timeout: 30s'
    """
    code = failures[0][1].split(":", 1)[0].strip()
    parts = []
    for label, reason in failures:
        head, colon, detail = reason.partition(":")
        parts.append(f"{label}: {detail.strip() if colon and head.strip() == code else reason}")
    return f"{code}: " + "; ".join(parts)


NO_REFERENCE = "no reference answer, and the judge has use_reference: true"


def is_empty(text: str) -> bool:
    return not text.strip()


def question_block(sample: Sample) -> str:
    """The question (the last user turn), fenced: dataset text is data, like the answer."""
    return fence(sample.prompt, "QUESTION")


def reference_block(reference: str | None) -> str:
    """The reference answer with its lead-in, fenced; empty when no reference is shown."""
    if reference is None:
        return ""
    return ("Reference answer (a correct answer written by an expert; use it to check the answer, "
            "do not grade it):\n" + fence(reference, "REFERENCE") + "\n\n")
