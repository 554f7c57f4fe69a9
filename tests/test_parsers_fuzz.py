"""Property-based fuzzing of every judge-output parser: an in-range typed result or JudgeParseError.

Nothing else may come out: no other exception, no NaN, no value outside [0, 1], no result for a
criterion or id that was not asked for.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from judgerl.backends.base import Completion, TokenLogprob
from judgerl.errors import JudgeParseError
from judgerl.judges.logprob import (
    LIKERT_TOKENS,
    candidate_mass,
    expected_likert,
    p_pass,
    pairwise_prob_first,
)
from judgerl.judges.parsing import (
    CriterionSpec,
    find_last_json_object,
    parse_group,
    parse_pairwise,
    parse_rubric,
)

SPECS = [CriterionSpec("correct", "check"), CriterionSpec("style", "likert")]
IDS = ["r1", "r2", "r3"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.integers(-10, 20), st.floats(allow_nan=True, allow_infinity=True), st.booleans())
scalars = st.one_of(st.none(), numbers, st.text(max_size=8),
                    st.sampled_from(["A", "B", "tie", "a", " b ", "r1", "r2", "r3", "correct", "style"]))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["criteria", "scores", "score", "id", "winner", "rationale",
                                         "correct", "style", "r1", "r2", "extra"]), children, max_size=4)),
    max_leaves=20)


def dumps(value: Any) -> str:
    # json.dumps writes NaN / Infinity for non-finite floats, which the parsers must refuse
    return json.dumps(value)


def near_valid_rubric() -> st.SearchStrategy[str]:
    """Mostly the right shape, with the values, keys and wrapping perturbed."""
    def entry(score: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries({"score": score}, optional={"rationale": st.text(max_size=10),
                                                                 "confidence": numbers})
    criteria = st.builds(
        lambda correct, style, extra: {"correct": correct, "style": style, **extra},
        entry(st.one_of(st.booleans(), numbers)), entry(st.one_of(st.integers(1, 5), numbers)),
        st.dictionaries(st.sampled_from(["other"]), entry(numbers), max_size=1))
    dropped = st.builds(lambda c, drop: {k: v for k, v in c.items() if k != drop}, criteria,
                        st.sampled_from(["", "correct", "style"]))
    return st.builds(lambda c, wrap: wrap.format(dumps({"criteria": c})), dropped,
                     st.sampled_from(["{}", "```json\n{}\n```", "Reasoning... {}", '{{"score": 5}} then {}',
                                      "{} and finally {{}}"]))


def near_valid_group() -> st.SearchStrategy[str]:
    """All ids in any order, sometimes with one dropped, duplicated or renamed, scores perturbed."""
    score = st.one_of(st.integers(1, 10), st.floats(1, 10), numbers)
    entry = st.builds(lambda item, value, rationale: {"id": item, "score": value, "rationale": rationale},
                      st.sampled_from(IDS), score, st.text(max_size=5))
    base = st.permutations(IDS).flatmap(
        lambda order: st.tuples(*[st.builds(lambda v, i=i: {"id": i, "score": v}, score) for i in order]))
    perturbed = st.builds(
        lambda items, change, other: (list(items) if change == "none" else list(items)[1:] if change == "drop"
                                      else [*items, other] if change == "add"
                                      else [{**items[0], "id": "r4"}, *items[1:]]),
        base, st.sampled_from(["none", "none", "drop", "add", "rename"]), entry)
    return st.builds(lambda items: dumps({"scores": items}), perturbed)


def answers(*structured: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=200), json_values.map(dumps),
                     st.from_regex(r"\A[\s\S]{0,20}\{[\s\S]{0,60}\}[\s\S]{0,20}\Z"), *structured)


def check_finite_unit(value: float) -> None:
    assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


@FUZZ
@given(answers(near_valid_rubric()))
def test_parse_rubric(text: str) -> None:
    try:
        results = parse_rubric(text, SPECS)
    except JudgeParseError:
        return
    assert set(results) == {"correct", "style"}
    assert type(results["correct"].raw) is bool
    assert type(results["style"].raw) is int and 1 <= results["style"].raw <= 5
    for result in results.values():
        check_finite_unit(result.value)
        assert isinstance(result.rationale, str)


@FUZZ
@given(answers(st.builds(lambda w, r: dumps({"winner": w, "rationale": r}), scalars, st.text(max_size=5))),
       st.booleans())
def test_parse_pairwise(text: str, allow_tie: bool) -> None:
    try:
        answer = parse_pairwise(text, allow_tie=allow_tie)
    except JudgeParseError:
        return
    assert answer.winner in ({"A", "B", "tie"} if allow_tie else {"A", "B"})
    assert isinstance(answer.rationale, str)


@FUZZ
@given(answers(near_valid_group()))
def test_parse_group(text: str) -> None:
    try:
        items = parse_group(text, IDS)
    except JudgeParseError:
        return
    assert list(items) == IDS
    for item in items.values():
        assert math.isfinite(item.raw) and 1 <= item.raw <= 10
        check_finite_unit(item.value)


@FUZZ
@given(answers())
def test_find_last_json_object(text: str) -> None:
    try:
        found = find_last_json_object(text)
    except JudgeParseError:
        return
    assert isinstance(found, dict)


token_names = st.one_of(st.sampled_from(["PASS", " PASS", "pass", "FAIL", "FAIL\n", "A", " B", "1", "3", " 5",
                                         "x", ""]), st.text(max_size=4))
logprob_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                           st.floats(min_value=-30, max_value=0))


@st.composite
def completions(draw: st.DrawFn) -> Completion:
    table = draw(st.dictionaries(token_names, logprob_values, max_size=8))
    shape = draw(st.sampled_from(["candidates", "top", "none"]))
    if shape == "candidates":
        return Completion(text="", model="m", candidate_logprobs=table)
    if shape == "top":
        token = draw(token_names)
        return Completion(text=token, model="m",
                          logprobs=[TokenLogprob(token, draw(logprob_values), table)])
    return Completion(text=draw(st.text(max_size=5)), model="m")


@FUZZ
@given(completions(), st.booleans())
def test_logprob_readers(completion: Completion, case_sensitive: bool) -> None:
    for read in (
        lambda: p_pass(candidate_mass(completion, ["PASS", "FAIL"], case_sensitive=case_sensitive),
                       "PASS", "FAIL"),
        lambda: expected_likert(candidate_mass(completion, LIKERT_TOKENS, case_sensitive=case_sensitive))[1],
        lambda: pairwise_prob_first(candidate_mass(completion, ["A", "B"], case_sensitive=case_sensitive)),
    ):
        try:
            value = read()
        except JudgeParseError:
            continue
        check_finite_unit(value)
