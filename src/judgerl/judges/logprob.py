"""Probability-weighted judging: verdicts read from the next-token distribution, not parsed text.

Why: a judge that must generate and format a JSON verdict can fail to parse, and a single
sampled token ("PASS") throws away how sure the judge was. Reading the probabilities of the
verdict tokens at the first answer position (as G-Eval does) takes one forward pass, cannot fail
to parse, and gives a graded score: P(pass) for a check, the expected level Σ k·P(k) for a
Likert dimension, P(A) for a pairwise question.

Where the probabilities come from, in order:
1. `Completion.candidate_logprobs`: a backend that scores the requested candidate tokens
   directly (the local one) fills it with {candidate: logprob};
2. `Completion.logprobs[0].top`: the OpenAI-style `top_logprobs` of the first generated token.
   A token matches a candidate when it equals it after stripping whitespace (" PASS" and
   "PASS" both count, and their probabilities add up); matching is case-sensitive unless asked.
Candidates with no probability mass at all give `JudgeParseError` (the caller reports the
judgment as unscored): a judge that put all its mass elsewhere has not answered the question.
These are pure functions so they can be checked without a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from judgerl.backends.base import Completion
from judgerl.errors import JudgeParseError

LIKERT_TOKENS = ["1", "2", "3", "4", "5"]
CriterionKind = Literal["check", "likert"]


def _matches(token: str, candidate: str, case_sensitive: bool) -> bool:
    token = token.strip()
    return token == candidate if case_sensitive else token.casefold() == candidate.casefold()


def candidate_mass(completion: Completion, candidates: list[str], *,
                   case_sensitive: bool = True) -> dict[str, float]:
    """Probability mass (not normalised) on each candidate at the first answer position.

    >>> from judgerl.backends.base import TokenLogprob
    >>> top = {"PASS": math.log(0.6), " PASS": math.log(0.1), "FAIL": math.log(0.2), "x": 0.0}
    >>> c = Completion(text="PASS", model="m", logprobs=[TokenLogprob("PASS", math.log(0.6), top)])
    >>> {k: round(v, 3) for k, v in candidate_mass(c, ["PASS", "FAIL"]).items()}
    {'PASS': 0.7, 'FAIL': 0.2}
    """
    mass = dict.fromkeys(candidates, 0.0)
    if completion.candidate_logprobs:
        pairs = list(completion.candidate_logprobs.items())
    elif completion.logprobs:
        first = completion.logprobs[0]
        pairs = list(first.top.items())
        if first.token not in first.top:
            pairs.append((first.token, first.logprob))
    else:
        raise JudgeParseError("the backend returned no log-probabilities "
                              "(it needs `logprobs`/`top_logprobs` support for scoring: logprob)")
    for token, logprob in pairs:
        if not isinstance(logprob, (int, float)) or math.isnan(logprob) or logprob > 1e-6:
            continue  # not a log-probability; ignore rather than invent mass
        for candidate in candidates:
            if _matches(token, candidate, case_sensitive):
                mass[candidate] += math.exp(min(logprob, 0.0))
                break
    if not any(mass.values()) and pairs and not completion.candidate_logprobs:
        # say what the model did put first: a candidate the tokenizer splits ("P" + "ASS") shows here
        seen = [token for token, _ in sorted(pairs, key=lambda pair: -pair[1])[:5]]
        raise JudgeParseError(f"no probability mass on the candidate tokens {candidates}; the first answer "
                              f"token's top alternatives were {seen} (a candidate of several tokens "
                              "cannot be read from an API's log-probabilities: choose one-token "
                              "pass_token / fail_token, or set the backend's `tokenizer` to have them "
                              "checked)")
    return mass


def normalised(mass: dict[str, float]) -> dict[str, float]:
    """Probabilities over the candidates only; no mass at all is an error.

    >>> normalised({"A": 0.375, "B": 0.125})
    {'A': 0.75, 'B': 0.25}
    >>> normalised({"A": 0.0, "B": 0.0})
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: no probability mass on the candidate tokens ['A', 'B']
    """
    total = sum(mass.values())
    if not total > 0 or not math.isfinite(total):
        raise JudgeParseError(f"no probability mass on the candidate tokens {list(mass)}")
    return {token: value / total for token, value in mass.items()}


def p_pass(mass: dict[str, float], pass_token: str, fail_token: str) -> float:
    """P(pass) = p(PASS) / (p(PASS) + p(FAIL)).

    >>> p_pass({"PASS": 0.41, "FAIL": 0.59}, "PASS", "FAIL")
    0.41
    """
    return normalised({pass_token: mass[pass_token], fail_token: mass[fail_token]})[pass_token]


def expected_likert(mass: dict[str, float], levels: list[str] | None = None) -> tuple[float, float]:
    """The expected level Σ k·P(k) over levels 1..n, and that expectation normalised to [0, 1].

    >>> expected_likert({"1": 0.0, "2": 0.0, "3": 0.5, "4": 0.5, "5": 0.0})
    (3.5, 0.625)
    """
    levels = levels or LIKERT_TOKENS
    probabilities = normalised({level: mass[level] for level in levels})
    expected = sum((index + 1) * probabilities[level] for index, level in enumerate(levels))
    value = (expected - 1) / (len(levels) - 1)
    return expected, min(1.0, max(0.0, value))


def pairwise_prob_first(mass: dict[str, float], first: str = "A", second: str = "B") -> float:
    """P(the answer shown first is better) = p(A) / (p(A) + p(B)).

    >>> pairwise_prob_first({"A": 0.2, "B": 0.6})
    0.25
    """
    return normalised({first: mass[first], second: mass[second]})[first]


def verdict_tokens(kind: CriterionKind, pass_token: str = "PASS", fail_token: str = "FAIL") -> list[str]:
    """The answer tokens of one criterion: [pass, fail] for a check, the levels for a Likert one."""
    return [pass_token, fail_token] if kind == "check" else list(LIKERT_TOKENS)


def verdict_instruction(kind: CriterionKind, tokens: list[str], subject: str = "answer") -> tuple[str, str]:
    """The closing instruction and the list of choices for a one-token verdict on `subject`.

    >>> print(verdict_instruction("likert", LIKERT_TOKENS, "comment")[0])
    Which level describes the comment best? A comment that is not about the task is level 1. \
Reply with exactly one digit from 1 to 5.
    """
    if subject == "answer":
        off_topic = "An answer that does not respond to the question"
    else:
        article = "An" if subject[:1].lower() in "aeiou" else "A"
        off_topic = f"{article} {subject} that is not about the task"
    if kind == "check":
        choices = f"{tokens[0]} or {tokens[1]}"
        return (f"Does the {subject} meet this criterion? {off_topic} does not. Reply with exactly "
                f"one word: {tokens[0]} if it does, {tokens[1]} if it does not."), choices
    return (f"Which level describes the {subject} best? {off_topic} is level 1. "
            "Reply with exactly one digit from 1 to 5."), "1, 2, 3, 4 or 5"


def verdict_parser(kind: CriterionKind, tokens: list[str], *, case_sensitive: bool = True,
                   ) -> Callable[[Completion], tuple[float, float]]:
    """Completion -> (raw, value): P(pass) twice for a check, (expected level, normalised) for Likert."""
    def parse(completion: Completion) -> tuple[float, float]:
        mass = candidate_mass(completion, tokens, case_sensitive=case_sensitive)
        if kind == "check":
            probability = p_pass(mass, tokens[0], tokens[1])
            return probability, probability
        return expected_likert(mass, tokens)

    return parse
