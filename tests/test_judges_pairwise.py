"""PairwiseJudge: both orders, ties on disagreement, never a win from a failure; group modes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from judgerl.backends.base import Completion, CompletionRequest, TokenLogprob
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig
from judgerl.errors import BackendError
from judgerl.judges import build_judge
from judgerl.judges.pairwise import PairwiseJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

SAMPLE = Sample("s1", [{"role": "user", "content": "Name a prime number above 10."}], reference="11")


def make(responder: Any, **options: Any) -> tuple[PairwiseJudge, ScriptedBackend, ModelRuntime]:
    backend = ScriptedBackend(responder)
    runtime = ModelRuntime({"judge": backend})
    judge = build_judge(JudgeConfig(name="pref", type="pairwise", **options), runtime)
    assert isinstance(judge, PairwiseJudge)
    return judge, backend, runtime


def shown(request: CompletionRequest) -> tuple[str, str]:
    """The two answers in the order the judge sees them (the line after each fence opening)."""
    content = next(message["content"] for message in request.messages if message["role"] == "user")
    first = content.split("<<<ANSWER_A_", 1)[1].split("\n", 2)[1]
    second = content.split("<<<ANSWER_B_", 1)[1].split("\n", 2)[1]
    return first, second


def prefers(better: set[str]) -> Any:
    """A position-consistent judge: the answer in `better` wins wherever it is shown."""
    def responder(request: CompletionRequest) -> str:
        first, second = shown(request)
        winner = "A" if first in better and second not in better else \
            "B" if second in better and first not in better else "tie"
        return json.dumps({"rationale": "content", "winner": winner})
    return responder


async def test_a_judge_that_always_says_a_gives_a_tie() -> None:
    judge, backend, runtime = make(lambda request: '{"rationale": "first is best", "winner": "A"}')
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.winner == "tie" and verdict.status == "ok"
    assert verdict.details["by_order"] == ["a", "b"] and verdict.details["position_consistent"] is False
    assert [shown(request) for request in backend.calls] in (
        [("13", "12"), ("12", "13")], [("12", "13"), ("13", "12")])
    [entry] = runtime.journal_entries
    assert entry["judge_kind"] == "pairwise" and entry["calls"] == 2 and entry["scores"]["winner"] == "tie"


async def test_a_consistent_judge_gives_the_win_in_either_position() -> None:
    judge, _, _ = make(prefers({"13"}))
    assert (await judge.compare(SAMPLE, "13", "12")).winner == "a"
    assert (await judge.compare(SAMPLE, "12", "13")).winner == "b"


async def test_parse_failure_in_the_swapped_order_is_unscored_never_a_win() -> None:
    def responder(request: CompletionRequest) -> str:
        first, _ = shown(request)
        return '{"winner": "A"}' if first == "13" else "B wins, clearly"

    judge, backend, runtime = make(responder)
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.winner is None and verdict.status == "unscored"
    assert verdict.reason is not None and verdict.reason.startswith("parse_error: order b-a: ")
    assert len(backend.calls) == 3  # one call per order + exactly one re-ask for the bad one
    assert runtime.journal_entries[0]["outcome"] == "unscored"
    [score] = await judge.score_group(SAMPLE, [Rollout("s1", "13")])
    assert score.value is None and score.status == "unscored"


async def test_backend_error_in_one_order_is_unscored() -> None:
    def responder(request: CompletionRequest) -> str:
        if shown(request)[0] == "12":
            raise BackendError("judge_down: scripted", retryable=False)
        return '{"winner": "A"}'

    judge, _, _ = make(responder)
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.winner is None and "judge_down" in (verdict.reason or "")


async def test_tie_not_allowed_is_a_parse_error() -> None:
    judge, backend, _ = make(lambda request: '{"winner": "tie"}', allow_tie=False)
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.status == "unscored" and len(backend.calls) == 4
    assert '"A" or "B"' in backend.calls[0].messages[1]["content"]


async def test_reference_mode_win_tie_loss_and_missing_reference() -> None:
    judge, _, _ = make(prefers({"13", "11"}), mode="reference")
    scores = await judge.score_group(SAMPLE, [Rollout("s1", "13", id="r0"), Rollout("s1", "12", id="r1")])
    assert [score.value for score in scores] == [0.5, 0.0]
    judge, _, _ = make(prefers({"13"}), mode="reference")
    assert [s.value for s in await judge.score_group(SAMPLE, [Rollout("s1", "13")])] == [1.0]
    no_reference = Sample("s2", SAMPLE.messages)
    scores = await judge.score_group(no_reference, [Rollout("s2", "13")])
    assert scores[0].status == "unscored" and "no reference" in (scores[0].reason or "")


async def test_baseline_mode_uses_the_metadata_field() -> None:
    judge, backend, _ = make(prefers({"13"}), mode="baseline", baseline_field="base_answer")
    sample = Sample("s1", SAMPLE.messages, metadata={"base_answer": "12"})
    assert [s.value for s in await judge.score_group(sample, [Rollout("s1", "13")])] == [1.0]
    assert all("12" in shown(request) for request in backend.calls)
    scores = await judge.score_group(SAMPLE, [Rollout("s1", "13")])
    assert scores[0].status == "unscored" and "base_answer" in (scores[0].reason or "")


async def test_empty_answer_loses_without_a_call() -> None:
    judge, backend, _ = make(prefers(set()), empty_answer_score=0.0)
    [score] = await judge.score_group(SAMPLE, [Rollout("s1", "  ")])
    assert score.value == 0.0 and backend.calls == []


async def test_round_robin_win_rates() -> None:
    judge, backend, _ = make(prefers({"13"}), mode="round_robin")
    rollouts = [Rollout("s1", "13", id="a"), Rollout("s1", "12", id="b"), Rollout("s1", "12", id="c"),
                Rollout("s1", "", id="d")]
    scores = await judge.score_group(SAMPLE, rollouts)
    # a beats b, c, d; b and c tie (identical, no call), both beat the empty d (no call)
    assert [score.value for score in scores[:3]] == [1.0, pytest.approx(0.5), pytest.approx(0.5)]
    assert scores[3].value == 0.0 and scores[3].details["edge_rule"] == "empty_answer"
    assert len(backend.calls) == 2 * 2  # only (a, b) and (a, c) reach the judge, in both orders


async def test_round_robin_leaves_unscored_pairs_out() -> None:
    def responder(request: CompletionRequest) -> str:
        if "broken" in shown(request):
            raise BackendError("judge_down: scripted", retryable=False)
        return prefers({"13"})(request)

    judge, _, _ = make(responder, mode="round_robin")
    scores = await judge.score_group(SAMPLE, [Rollout("s1", "13"), Rollout("s1", "12"),
                                              Rollout("s1", "broken")])
    assert scores[0].value == 1.0 and scores[0].details["unscored_pairs"] == 1
    assert scores[1].value == 0.0
    assert scores[2].status == "unscored" and "no scored comparison" in (scores[2].reason or "")
    [single] = await judge.score_group(SAMPLE, [Rollout("s1", "13")])
    assert single.status == "unscored"


def letter_probs(p_a: float) -> Completion:
    top = {"A": math.log(p_a), "B": math.log(1 - p_a)}
    return Completion(text="A", model="scripted", logprobs=[TokenLogprob("A", top["A"], top)])


async def test_logprob_mode_averages_both_orders() -> None:
    def responder(request: CompletionRequest) -> Completion:
        assert request.candidate_tokens == ["A", "B"] and request.max_tokens == 1
        first, _ = shown(request)
        # position bias +0.2 towards A; "13" is truly better
        return letter_probs(0.8 if first == "13" else 0.4)

    judge, _, runtime = make(responder, scoring="logprob")
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.prob_a == pytest.approx((0.8 + 0.6) / 2)
    assert verdict.winner == "a"
    assert runtime.journal_entries[0]["prompt_version"] == "pairwise-logprob-v1"
    [score] = await judge.score_group(SAMPLE, [Rollout("s1", "13")])
    assert score.value == pytest.approx(0.7)

    biased, _, _ = make(lambda request: letter_probs(0.7), scoring="logprob")
    verdict = await biased.compare(SAMPLE, "13", "12")
    assert verdict.prob_a == pytest.approx(0.5) and verdict.winner == "tie"


async def test_logprob_mode_without_logprobs_is_unscored() -> None:
    judge, _, _ = make(lambda request: "A", scoring="logprob")
    verdict = await judge.compare(SAMPLE, "13", "12")
    assert verdict.status == "unscored" and "log-probabilities" in (verdict.reason or "")
