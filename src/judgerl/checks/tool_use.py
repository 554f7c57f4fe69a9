"""Deterministic checks of tool use: what an agent called, with what, and what it made of it.

Why: a judge skims a transcript; an agent learns fast that a confident answer scores as well as
a looked-up one. These checks read the trajectory (`Rollout.trajectory`, judgerl.trajectory)
exactly, for free, before any judge call, and make good hard gates:

- `tool_arguments`: each call names a tool the agent was given and its arguments validate
  against that tool's JSON schema (`jsonschema`, the draft read from `$schema`, as json_schema
  does). Score: the share of valid calls (`no_calls_score` when there are none).
- `tool_calls`: required tools called, forbidden tools not called, the number of calls (in all
  and per tool) within bounds. Score 1.0 or 0.0, every violation named in the rationale.
- `tool_grounding`: the facts of the final answer (by default every token with a digit: order
  numbers, amounts, dates) appear in what the tools returned (or in the sample fields named in
  `also_from`, the prompt by default): the same pattern finds the facts of those texts, and a
  fact is grounded when it is one of them (so "90" is not grounded by "59.90"), compared as the
  quote grounding check compares quotes (whitespace and typographic quotes normalised,
  `normalise_quote`). Score: the share of grounded facts (`no_facts_score` when there are none).
- `tool_results_authentic`: no tool result invented by the assistant: no assistant text that
  imitates a tool turn (`<tool_response>`, `"role": "tool"`, `Observation:` ..., the markers in
  `markers`), and no call left without its result before the assistant went on (it answered
  as if it knew). Score 1.0 or 0.0.

The tools' schemas come from `Rollout.tools` (the row's `tools` column), else from the sample's
`tools` metadata column. A rollout without a trajectory has made no calls.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
from pydantic import Field, field_validator

from judgerl.checks.base import BaseCheck, CheckOptions, option_error
from judgerl.checks.grounding import normalise_quote, sample_field
from judgerl.errors import DataError
from judgerl.trajectory import ToolCall, TrajectoryError, parse_tools, tool_calls, tool_results, tool_schemas
from judgerl.types import Rollout, Sample, Score


def rollout_calls(rollout: Rollout) -> list[ToolCall]:
    """The calls of a rollout's trajectory (none for a single-turn rollout)."""
    return list(tool_calls(rollout.trajectory)) if rollout.trajectory else []


def rollout_tools(sample: Sample, rollout: Rollout) -> list[dict[str, Any]] | None:
    """The tools the agent was given: the rollout's, else the sample's `tools` column, else None."""
    if rollout.tools is not None:
        return rollout.tools
    raw = sample.metadata.get("tools")
    return parse_tools(raw) if raw is not None else None


class ToolUseCheck(BaseCheck):
    """The checks of this module all read the trajectory."""

    def reads_trajectory(self) -> bool:
        return True


def _count(items: int, noun: str) -> str:
    return f"{items} {noun}{'' if items == 1 else 's'}"


class ToolArgumentsOptions(CheckOptions):
    no_calls_score: float = Field(default=1.0, ge=0, le=1, description="the score of a rollout that "
                                  "made no call")


class ToolArgumentsCheck(ToolUseCheck):
    """Share of calls whose tool exists and whose arguments validate against its schema."""

    summary = "share of tool calls naming a given tool with arguments valid against its JSON schema"
    Options = ToolArgumentsOptions

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        calls = rollout_calls(rollout)
        if not calls:
            return Score(self.name, self.options.no_calls_score, rationale="no tool calls",
                         details={"calls": 0})
        try:  # a gap in the data: the row's data_error, named by file, line and field
            tools = rollout_tools(sample, rollout)
        except TrajectoryError as exc:
            raise DataError(f"its tools column is not usable: {exc}", path=f"sample {sample.id!r}",
                            field="tools") from exc
        if tools is None:
            raise DataError(f"tool_arguments check {self.name!r} needs the tool schemas: no tool schemas "
                            "for this rollout (give a 'tools' column)", path=f"sample {sample.id!r}",
                            field="tools")
        schemas = tool_schemas(tools)
        problems: list[str] = []
        for number, call in enumerate(calls, start=1):
            problem = self._problem(call, schemas)
            if problem:
                problems.append(f"call {number} ({call.name}, message {call.message_index}): {problem}")
        valid = len(calls) - len(problems)
        rationale = f"{valid}/{len(calls)} calls valid" + ("; " + "; ".join(problems[:4]) if problems else "")
        return Score(self.name, valid / len(calls), rationale=rationale,
                     details={"calls": len(calls), "valid": valid, "problems": problems})

    @staticmethod
    def _problem(call: ToolCall, schemas: dict[str, dict[str, Any]]) -> str | None:
        schema = schemas.get(call.name)
        if schema is None:
            return f"no such tool (given: {', '.join(sorted(schemas)) or 'none'})"
        validator_cls = jsonschema.validators.validator_for(schema)
        try:
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            return f"the tool's parameter schema is invalid: {exc.message}"
        errors = sorted(validator_cls(schema).iter_errors(call.arguments), key=lambda error: list(error.path))
        if not errors:
            return None
        first = errors[0]
        where = "/".join(str(part) for part in first.path) or "arguments"
        return f"{where}: {first.message}"


class ToolCallsOptions(CheckOptions):
    required: list[str] = Field(default_factory=list, description="tools that must be called")
    forbidden: list[str] = Field(default_factory=list, description="tools that must not be called")
    min_calls: int = Field(default=0, ge=0, description="fewest calls in all")
    max_calls: int | None = Field(default=None, ge=0, description="most calls in all (none: no bound)")
    max_per_tool: dict[str, int] = Field(default_factory=dict, description="most calls of a tool, by name")

    @field_validator("forbidden")
    @classmethod
    def _not_both(cls, forbidden: list[str], info: Any) -> list[str]:
        both = sorted(set(forbidden) & set(info.data.get("required", [])))
        if both:
            raise ValueError(f"tools both required and forbidden: {both}")
        return forbidden


class ToolCallsCheck(ToolUseCheck):
    """1.0 when the calls meet every rule (required, forbidden, bounds), else 0.0."""

    summary = "required tools called, forbidden ones not, call counts within bounds (1 or 0)"
    Options = ToolCallsOptions

    def __init__(self, name: str, options: ToolCallsOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        if options.max_calls is not None and options.max_calls < options.min_calls:
            raise option_error(name, "max_calls", "max_calls is below min_calls")

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        options = self.options
        names = [call.name for call in rollout_calls(rollout)]
        counts = {name: names.count(name) for name in names}
        violations = [f"required tool {tool!r} not called" for tool in options.required if tool not in counts]
        violations += [f"forbidden tool {tool!r} called {_count(counts[tool], 'time')}"
                       for tool in options.forbidden if tool in counts]
        if len(names) < options.min_calls:
            violations.append(f"{_count(len(names), 'call')}, fewer than {options.min_calls}")
        if options.max_calls is not None and len(names) > options.max_calls:
            violations.append(f"{_count(len(names), 'call')}, more than {options.max_calls}")
        violations += [f"{tool!r} called {counts[tool]} times, more than {limit}"
                       for tool, limit in options.max_per_tool.items() if counts.get(tool, 0) > limit]
        rationale = "; ".join(violations) if violations else f"{_count(len(names), 'call')}, all rules met"
        return Score(self.name, 0.0 if violations else 1.0, rationale=rationale,
                     details={"calls": counts, "violations": violations})


#: a token with a digit; inner punctuation only between word characters ("A1001:" -> "A1001")
DEFAULT_FACT_PATTERN = r"[A-Za-z]*\d(?:\w|[.,:/-](?=\w))*"


class ToolGroundingOptions(CheckOptions):
    pattern: str = Field(default=DEFAULT_FACT_PATTERN, description="a regular expression for the facts "
                         "of the final answer (default: every token with a digit)")
    also_from: list[str] = Field(default_factory=lambda: ["prompt"], description="sample fields a fact "
                                 "may also come from: prompt, reference or a metadata column")
    ignore_case: bool = Field(default=True, description="compare without case")
    no_facts_score: float = Field(default=1.0, ge=0, le=1, description="the score of an answer with no "
                                  "facts to check")


class ToolGroundingCheck(ToolUseCheck):
    """Share of the final answer's facts found in the tool results (or the allowed sample fields)."""

    summary = "share of the final answer's facts (tokens with digits by default) found in tool results"
    Options = ToolGroundingOptions

    def __init__(self, name: str, options: ToolGroundingOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        try:
            self.pattern = re.compile(options.pattern)
        except re.error as exc:
            raise option_error(name, "pattern", f"not a regular expression: {exc}") from exc

    def _norm(self, text: str) -> str:
        return normalise_quote(text, ignore_case=self.options.ignore_case)

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        facts = list(dict.fromkeys(match.group(0) for match in self.pattern.finditer(rollout.completion)
                                   if match.group(0).strip()))
        if not facts:
            return Score(self.name, self.options.no_facts_score, rationale="no facts to check in the answer",
                         details={"facts": 0})
        sources = list(tool_results(rollout.trajectory).values()) if rollout.trajectory else []
        sources += [text for field in self.options.also_from if (text := sample_field(sample, field))]
        known = {self._norm(match.group(0)) for match in self.pattern.finditer("\n".join(sources))}
        ungrounded = [fact for fact in facts if self._norm(fact) not in known]
        grounded = len(facts) - len(ungrounded)
        rationale = f"{grounded}/{len(facts)} facts found in the tool results"
        if ungrounded:
            rationale += "; not found: " + ", ".join(repr(fact) for fact in ungrounded[:6])
        return Score(self.name, grounded / len(facts), rationale=rationale,
                     details={"facts": len(facts), "grounded": grounded, "ungrounded": ungrounded})


DEFAULT_TOOL_MARKERS = ["<tool_response>", "<tool_result>", "<|im_start|>tool", '"role": "tool"',
                        '"tool_call_id"', "Observation:", "[TOOL RESULT]", "Tool result:"]


class ToolResultsAuthenticOptions(CheckOptions):
    markers: list[str] = Field(default_factory=lambda: list(DEFAULT_TOOL_MARKERS),
                               description="texts that mark an imitated tool turn (case-insensitive)")
    require_results: bool = Field(default=True, description="every call needs its result before the "
                                  "assistant writes again")


class ToolResultsAuthenticCheck(ToolUseCheck):
    """1.0 unless the assistant wrote a tool result itself or went on without a call's result."""

    summary = "no tool result invented by the assistant (imitated tool turns, calls answered by no result)"
    Options = ToolResultsAuthenticOptions

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        messages = rollout.trajectory or [{"role": "assistant", "content": rollout.completion}]
        problems: list[str] = []
        waiting: dict[str, int] = {}
        for index, message in enumerate(messages):
            if message["role"] == "tool":
                waiting.pop(message["tool_call_id"], None)
                continue
            if message["role"] != "assistant":
                continue
            if self.options.require_results and waiting:
                problems.append(f"message {index}: went on without the result of call(s) "
                                f"{', '.join(sorted(waiting))}")
                waiting.clear()
            text = str(message.get("content") or "").casefold()
            found = [marker for marker in self.options.markers if marker.casefold() in text]
            if found:
                problems.append(f"message {index}: imitates a tool result ({found[0]!r})")
            waiting.update({call["id"]: index for call in message.get("tool_calls") or ()})
        rationale = "; ".join(problems) if problems else "every tool result came from a tool"
        return Score(self.name, 0.0 if problems else 1.0, rationale=rationale, details={"problems": problems})
