"""JSON format checks: is the answer JSON at all, and does it follow the task's JSON Schema.

Structured-output tasks (the contract review case study writes a JSON list of comments) fail
first on format; these checks catch that for free, before any judge call, and usually serve
as the hard gate. Schema validation is delegated to `jsonschema` (the draft is read from the
schema's `$schema`, default the latest).

Fences: models often wrap JSON in a Markdown code block. With `allow_fence: true` (default) an
answer that is exactly one fenced block (```` ```json ```` or a bare ```` ``` ````, optional
whitespace around it) is unwrapped before parsing. Text around the fence is not accepted:
"Here you go: ```json ...```" is not valid JSON output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, option_error
from judgerl.safe_yaml import load_yaml
from judgerl.types import Rollout, Sample, Score

_FENCE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\r?\n(?P<body>.*?)\r?\n?[ \t]*```\s*\Z", re.DOTALL)
_MAX_MESSAGE = 160
_NOT_JSON = object()


def unfence(text: str) -> str:
    """The inside of a single ```json fenced block, or the text unchanged.

    >>> unfence('```json\\n{"a": 1}\\n```')
    '{"a": 1}'
    >>> unfence('say ```json\\n{}\\n```')
    'say ```json\\n{}\\n```'
    """
    match = _FENCE.match(text)
    return match.group("body") if match else text


def parse_json(text: str, allow_fence: bool) -> tuple[Any, str | None]:
    """(value, None) when `text` is JSON, else (_NOT_JSON, why)."""
    body = unfence(text) if allow_fence else text
    if not body.strip():
        return _NOT_JSON, "empty answer"
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        return _NOT_JSON, f"not valid JSON: {exc}"
    except RecursionError:
        return _NOT_JSON, "not usable JSON: nested too deeply"


class JsonValidOptions(CheckOptions):
    allow_fence: bool = Field(default=True, description="unwrap an answer that is one ```json block")


class JsonValidCheck(BaseCheck):
    """1 when the answer parses as JSON, else 0.

    >>> from judgerl.types import Sample, Rollout
    >>> check = JsonValidCheck("format", JsonValidOptions())
    >>> s = Sample(id="s1", messages=[{"role": "user", "content": "Give JSON"}])
    >>> check(s, Rollout("s1", '```json\\n{"ok": true}\\n```')).value
    1.0
    >>> score = check(s, Rollout("s1", "{'ok': True}"))
    >>> score.value, score.rationale
    (0.0, 'not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)')
    """

    summary = "the answer parses as JSON (one ```json fenced block allowed): 1 or 0"
    Options = JsonValidOptions

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        _, problem = parse_json(rollout.completion, self.options.allow_fence)
        if problem:
            return Score(self.name, 0.0, rationale=problem)
        return Score(self.name, 1.0, rationale="valid JSON")


class JsonSchemaOptions(CheckOptions):
    schema_: dict[str, Any] | None = Field(default=None, alias="schema",
                                           description="the JSON Schema, inline")
    schema_file: str | None = Field(default=None,
                                    description="a .json or .yaml schema file, relative to the config")
    partial_credit: bool = Field(default=True,
                                 description="JSON with schema errors scores partial_max / n_errors")
    partial_max: float = Field(default=0.5, ge=0, lt=1,
                               description="the most an invalid answer can score (with one error)")
    allow_fence: bool = Field(default=True, description="unwrap an answer that is one ```json block")
    max_errors_shown: int = Field(default=3, ge=1, description="errors listed in the rationale")


# A failure of one of these at the root means the answer is the wrong kind of value altogether
# (a string where an object was asked for): no partial credit, else `"hi"` would earn 0.5.
_ROOT_FATAL = {"type", "anyOf", "oneOf", "allOf", "not", "enum", "const", "if", "then", "else"}


class JsonSchemaCheck(BaseCheck):
    """Schema conformance of a JSON answer, with monotone partial credit.

    Score: 1 when valid; 0 when not JSON, or when the root value is the wrong kind (its
    `type`, `enum`, `anyOf`, ... fails). Otherwise, with `partial_credit`, the answer has
    n >= 1 independent errors (each missing property, each bad item counts) and scores
    `partial_max / n` (default 0.5, 0.25, 0.167, ...): fewer errors never score less, and an
    invalid answer always scores below a valid one. Without `partial_credit` it scores 0.

    >>> from judgerl.types import Sample, Rollout
    >>> schema = {"type": "object", "required": ["name", "age"],
    ...           "properties": {"age": {"type": "integer", "minimum": 0}}}
    >>> check = JsonSchemaCheck("schema", JsonSchemaOptions(schema=schema))
    >>> s = Sample(id="s1", messages=[{"role": "user", "content": "Who?"}])
    >>> check(s, Rollout("s1", '{"name": "Ada", "age": 36}')).value
    1.0
    >>> score = check(s, Rollout("s1", '{"age": -1}'))
    >>> score.value
    0.25
    >>> print(score.rationale)
    2 schema errors: $: 'name' is a required property; $.age: -1 is less than the minimum of 0
    >>> check(s, Rollout("s1", '"Ada"')).value
    0.0
    """

    summary = "the answer is JSON that follows a JSON Schema; partial credit partial_max / n_errors"
    Options = JsonSchemaOptions

    def __init__(self, name: str, options: JsonSchemaOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        schema = self._load_schema()
        validator_cls = jsonschema.validators.validator_for(schema)
        try:
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            option = "schema_file" if options.schema_file else "schema"
            raise option_error(name, option, f"not a valid JSON Schema: {exc.message}") from exc
        self.schema = schema
        self.validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)

    def _load_schema(self) -> dict[str, Any]:
        inline, file = self.options.schema_, self.options.schema_file
        if (inline is None) == (file is None):
            raise option_error(self.name, "schema", "give exactly one of 'schema' and 'schema_file'")
        if inline is not None:
            return inline
        path = Path(file)
        if not path.is_absolute():
            path = self.base_dir / path
        if not path.is_file():
            raise option_error(self.name, "schema_file", f"schema file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise option_error(self.name, "schema_file", f"cannot parse {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise option_error(self.name, "schema_file", f"{path} must hold a JSON object")
        return data

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        value, problem = parse_json(rollout.completion, self.options.allow_fence)
        if problem:
            return Score(self.name, 0.0, rationale=problem, details={"errors": None})
        try:
            errors = list(self.validator.iter_errors(value))
        except RecursionError:
            return Score(self.name, 0.0, rationale="JSON nested too deeply to validate",
                         details={"errors": None})
        errors.sort(key=_error_order)
        if not errors:
            return Score(self.name, 1.0, rationale="valid against the schema", details={"errors": 0})
        shown = "; ".join(_describe(error) for error in errors[: self.options.max_errors_shown])
        more = len(errors) - self.options.max_errors_shown
        rationale = (f"{len(errors)} schema error{'s' if len(errors) > 1 else ''}: {shown}"
                     + (f" (+{more} more)" if more > 0 else ""))
        details = {"errors": len(errors), "paths": [error.json_path for error in errors]}
        fatal = any(not error.absolute_path and error.validator in _ROOT_FATAL for error in errors)
        if fatal or not self.options.partial_credit:
            if fatal:
                rationale += " (the root value is the wrong kind: no partial credit)"
            return Score(self.name, 0.0, rationale=rationale, details=details)
        return Score(self.name, self.options.partial_max / len(errors), rationale=rationale,
                     details=details)


def _error_order(error: jsonschema.ValidationError) -> tuple[list[str], str]:
    """Document order: by instance path (list indexes numerically), then message."""
    path = [f"{part:012d}" if isinstance(part, int) else f"~{part}" for part in error.absolute_path]
    return path, error.message


def _describe(error: jsonschema.ValidationError) -> str:
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{error.json_path}: {message}"
