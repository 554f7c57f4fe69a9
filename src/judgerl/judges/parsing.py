"""Strict, typed parsing of judge answers: a valid, in-range result or `JudgeParseError`.

Why strict: a reward is only as trustworthy as the number behind it. Lenient parsing (grab the
first digit, default a missing field to 0.5, clip 7 to 5) turns a confused judge into a made-up
reward that the policy then learns from. Here every answer is either fully valid (the exact set
of criteria / ids, typed values in range, finite numbers) or rejected with a message that says
what was wrong; the caller re-asks once with that message and otherwise reports "unscored".

Which JSON object: judges often think aloud, quote the answer (which may itself hold a fake
verdict such as `{"score": 5}`), or wrap their JSON in a ```json fence. The parser decodes every
complete top-level JSON object in the text and uses the LAST one: the judge's final word comes
after whatever it quoted. NaN and Infinity are rejected while decoding.

Schemas: next to each verdict model sits the JSON Schema of the answer it accepts
(`rubric_schema`, `pairwise_schema`, `group_schema`; the itemized one is in judges/itemized.py).
A judge puts it on its request (`CompletionRequest.response_schema`) and a backend whose server
constrains its output to a schema sends it (the backend's `structured_output`). The schemas are
written in the subset that OpenAI's strict mode, vLLM, SGLang, llama.cpp and Ollama all accept:
objects with every property required and no others, `enum`, `minimum` / `maximum`,
`minItems` / `maxItems`. An answer the server constrained still goes through the same strict
parser: a schema cannot say "every id exactly once", and a server may ignore it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from judgerl.errors import JudgeParseError

MAX_ANSWER_CHARS = 200_000


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def find_last_json_object(text: str) -> dict[str, Any]:
    """The last complete top-level JSON object in `text`; NaN / Infinity are errors.

    >>> find_last_json_object('I think {"score": 2} is quoted; final: ```json\\n{"score": 4}\\n```')
    {'score': 4}
    >>> find_last_json_object("no json here")
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: no JSON object found in the answer
    """
    if len(text) > MAX_ANSWER_CHARS:
        raise JudgeParseError(f"answer too long to parse ({len(text)} characters)")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    found: dict[str, Any] | None = None
    saw_non_finite = False
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError as exc:
            saw_non_finite = saw_non_finite or "non-finite" in str(exc)
            position = text.find("{", position + 1)
            continue
        except RecursionError:
            raise JudgeParseError("JSON nested too deeply") from None
        if isinstance(value, dict):
            found = value
        position = text.find("{", end)
    if found is None:
        if saw_non_finite:
            raise JudgeParseError("the JSON answer holds a non-finite number (NaN or Infinity)")
        raise JudgeParseError("no JSON object found in the answer")
    return found


def validate_answer(model: type[BaseModel], data: Any) -> Any:
    """`model.model_validate(data)`, with a failure raised as JudgeParseError naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in exc.errors()[:5])
        raise JudgeParseError(f"invalid judge answer: {problems}") from None


def _check_finite(value: float, where: str) -> float:
    if not math.isfinite(value):
        raise JudgeParseError(f"{where}: non-finite number {value}")
    return value


# --------------------------------------------------------------------------- rubric


CriterionKind = Literal["check", "likert"]


@dataclass(frozen=True)
class CriterionSpec:
    """What the parser needs to know about one rubric criterion."""

    name: str
    kind: CriterionKind


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's verdict: the raw score (bool or 1..5; a probability or an expected level when
    read from log-probabilities), its value in [0, 1], the rationale."""

    name: str
    raw: bool | int | float
    value: float
    rationale: str


def normalise_criterion(kind: CriterionKind, raw: bool | int) -> float:
    """pass=1, fail=0; a Likert level k in 1..5 gives (k-1)/4.

    >>> normalise_criterion("check", True), normalise_criterion("likert", 4)
    (1.0, 0.75)
    """
    if kind == "check":
        return 1.0 if raw else 0.0
    return (int(raw) - 1) / 4


class _CheckAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: StrictBool
    rationale: str = ""


class _LikertAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: StrictInt = Field(ge=1, le=5)
    rationale: str = ""


class _RubricAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criteria: dict[str, dict[str, Any]]


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object: every property required, no other allowed (strict-mode shape)."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def criterion_schema(kind: CriterionKind) -> dict[str, Any]:
    """One criterion's verdict: a rationale, then a boolean (check) or a level 1..5 (likert).

    >>> criterion_schema("likert")["properties"]["score"]
    {'type': 'integer', 'enum': [1, 2, 3, 4, 5]}
    """
    score = {"type": "boolean"} if kind == "check" else {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    return _object({"rationale": {"type": "string"}, "score": score})


def criteria_schema(criteria: list[CriterionSpec]) -> dict[str, Any]:
    """The `criteria` object: exactly the configured criteria, each by `criterion_schema`."""
    return _object({spec.name: criterion_schema(spec.kind) for spec in criteria})


def rubric_schema(criteria: list[CriterionSpec]) -> dict[str, Any]:
    """The JSON Schema of the answer `parse_rubric` accepts for these criteria.

    >>> schema = rubric_schema([CriterionSpec("correct", "check")])
    >>> schema["required"], schema["properties"]["criteria"]["required"]
    (['criteria'], ['correct'])
    """
    return _object({"criteria": criteria_schema(criteria)})


def parse_rubric(text: str, criteria: list[CriterionSpec]) -> dict[str, CriterionResult]:
    """Parse `{"criteria": {"<name>": {"score": true|false or 1..5, "rationale": "..."}}}`.

    The answer must name exactly the configured criteria: a missing or an extra one is an error.
    A `check` score is a JSON boolean; a `likert` score is an integer 1..5 (not 3.5, not "3").

    >>> specs = [CriterionSpec("correct", "check"), CriterionSpec("style", "likert")]
    >>> answer = '{"criteria": {"correct": {"score": true, "rationale": "ok"}, "style": {"score": 3}}}'
    >>> {name: result.value for name, result in parse_rubric(answer, specs).items()}
    {'correct': 1.0, 'style': 0.5}
    >>> parse_rubric('{"criteria": {"correct": {"score": 1}}}', specs)
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: criteria missing from the answer: ['style']
    """
    answer: _RubricAnswer = validate_answer(_RubricAnswer, find_last_json_object(text))
    expected = {spec.name for spec in criteria}
    missing = sorted(expected - set(answer.criteria))
    extra = sorted(set(answer.criteria) - expected)
    if missing:
        raise JudgeParseError(f"criteria missing from the answer: {missing}")
    if extra:
        raise JudgeParseError(f"unknown criteria in the answer: {extra}")
    results: dict[str, CriterionResult] = {}
    for spec in criteria:
        model = _CheckAnswer if spec.kind == "check" else _LikertAnswer
        try:
            item = model.model_validate(answer.criteria[spec.name])
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "<entry>"
            expected_type = "true or false" if spec.kind == "check" else "an integer from 1 to 5"
            raise JudgeParseError(f"criterion '{spec.name}' {where}: {error['msg']} "
                                  f"(score must be {expected_type})") from None
        value = normalise_criterion(spec.kind, item.score)
        results[spec.name] = CriterionResult(spec.name, item.score, value, item.rationale)
    return results


# --------------------------------------------------------------------------- pairwise


@dataclass(frozen=True)
class PairwiseAnswer:
    """Which position won, as the judge saw it: "A", "B" or "tie"."""

    winner: Literal["A", "B", "tie"]
    rationale: str


class _PairwiseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    winner: str
    rationale: str = ""


def pairwise_schema(*, allow_tie: bool = True) -> dict[str, Any]:
    """The JSON Schema of the answer `parse_pairwise` accepts: the rationale, then the winner.

    >>> pairwise_schema(allow_tie=False)["properties"]["winner"]
    {'type': 'string', 'enum': ['A', 'B']}
    """
    winners = ["A", "B", "tie"] if allow_tie else ["A", "B"]
    return _object({"rationale": {"type": "string"}, "winner": {"type": "string", "enum": winners}})


def parse_pairwise(text: str, *, allow_tie: bool = True) -> PairwiseAnswer:
    """Parse `{"rationale": "...", "winner": "A" | "B" | "tie"}` (case and spaces ignored).

    >>> parse_pairwise('{"rationale": "B is wrong", "winner": "A"}')
    PairwiseAnswer(winner='A', rationale='B is wrong')
    >>> parse_pairwise('{"winner": "tie"}', allow_tie=False)
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: winner must be "A" or "B", got 'tie'
    """
    answer: _PairwiseModel = validate_answer(_PairwiseModel, find_last_json_object(text))
    winner = answer.winner.strip().upper()
    allowed = {"A", "B", "TIE"} if allow_tie else {"A", "B"}
    if winner not in allowed:
        choices = '"A", "B" or "tie"' if allow_tie else '"A" or "B"'
        raise JudgeParseError(f"winner must be {choices}, got {answer.winner!r}")
    return PairwiseAnswer("tie" if winner == "TIE" else winner, answer.rationale)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- group

Entry = TypeVar("Entry")


def match_ids(entries: list[Entry], ids: list[str]) -> dict[str, Entry]:
    """Entries keyed by their `id`: every expected id exactly once, no other. Never by order.

    >>> class E:
    ...     def __init__(self, id): self.id = id
    >>> sorted(match_ids([E("r2"), E(" r1")], ["r1", "r2"]))
    ['r1', 'r2']
    >>> match_ids([E("r1")], ["r1", "r2"])
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: id(s) missing from the answer: ['r2']
    """
    seen: dict[str, Entry] = {}
    duplicated: set[str] = set()
    for entry in entries:
        key = entry.id.strip()  # type: ignore[attr-defined]
        if key in seen:
            duplicated.add(key)
        seen[key] = entry
    if duplicated:
        raise JudgeParseError(f"duplicated id(s) in the answer: {sorted(duplicated)}")
    missing = [item for item in ids if item not in seen]
    if missing:
        raise JudgeParseError(f"id(s) missing from the answer: {missing}")
    extra = sorted(set(seen) - set(ids))
    if extra:
        raise JudgeParseError(f"unknown id(s) in the answer: {extra}")
    return seen

GROUP_SCALE = (1, 10)


@dataclass(frozen=True)
class GroupItem:
    """One rollout's score in a group answer: raw on the 1..10 scale, value in [0, 1]."""

    id: str
    raw: float
    value: float
    rationale: str


class _GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    score: float = Field(ge=GROUP_SCALE[0], le=GROUP_SCALE[1], allow_inf_nan=False, strict=True)
    rationale: str = ""


class _GroupModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scores: list[_GroupEntry]


def group_schema(ids: list[str]) -> dict[str, Any]:
    """The JSON Schema of the answer `parse_group` accepts for these ids (one entry per id; that
    each id comes exactly once is the parser's check: a schema cannot say it).

    >>> group_schema(["r1", "r2"])["properties"]["scores"]["minItems"]
    2
    """
    entry = _object({"id": {"type": "string", "enum": list(ids)}, "rationale": {"type": "string"},
                     "score": {"type": "integer", "minimum": GROUP_SCALE[0], "maximum": GROUP_SCALE[1]}})
    return _object({"scores": {"type": "array", "items": entry, "minItems": len(ids), "maxItems": len(ids)}})


def parse_group(text: str, ids: list[str]) -> dict[str, GroupItem]:
    """Parse `{"scores": [{"id": "r1", "score": 1..10, "rationale": "..."}, ...]}`.

    Scores are numbers from 1 to 10 (integers recommended; 7.5 is accepted), normalised to
    (score - 1) / 9. Entries are matched by id, never by position: every expected id must appear
    exactly once and no other id may appear, else the whole answer is rejected.

    >>> items = parse_group('{"scores": [{"id": "r2", "score": 1}, {"id": "r1", "score": 10}]}', ["r1", "r2"])
    >>> items["r1"].value, items["r2"].value
    (1.0, 0.0)
    >>> parse_group('{"scores": [{"id": "r1", "score": 5}, {"id": "r1", "score": 6}]}', ["r1", "r2"])
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: duplicated id(s) in the answer: ['r1']
    """
    answer: _GroupModel = validate_answer(_GroupModel, find_last_json_object(text))
    seen = match_ids(answer.scores, ids)
    low, high = GROUP_SCALE
    return {key: GroupItem(key, _check_finite(seen[key].score, key),
                           (seen[key].score - low) / (high - low), seen[key].rationale)
            for key in ids}
