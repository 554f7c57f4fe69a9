"""The fault matrix, judge rows: what a judge makes of bad verdicts, over real HTTP on loopback.

The runtime rows (429, 5xx, timeouts, resets, truncated bodies) are in test_fault_matrix.py.
Here the HTTP call succeeds but the verdict is garbage, out of range, NaN or infinite, a group
answer has reordered, missing or duplicated ids, a pairwise answer fails in the swapped order,
or too many judgments of a batch fail. The expected outcome is the right score or `unscored`
with the reason, never a made-up number, with the number of attempts as expected (one re-ask).
"""

from __future__ import annotations

import json
import re

import pytest

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.errors import FailureBudgetExceeded
from judgerl.reward.cache import CompletionCache
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample

RUBRIC = {"name": "quality", "type": "rubric",
          "criteria": [{"name": "correct", "kind": "check", "description": "right answer"},
                       {"name": "clear", "kind": "likert", "description": "clarity",
                        "levels": {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}}]}


def pipeline_for(server: FakeOpenAIServer, judge: dict, **extra) -> RewardPipeline:
    config = {"backends": {"judge": {"type": "openai", "base_url": server.url, "model": "fake"}},
              "runtime": {"max_attempts": 2, "backoff_base_s": 0.01}, "judges": [judge],
              "failure_budget": None, **extra}
    return RewardPipeline.from_config(config)


def one(completion: str = "Paris", sample_id: str = "s") -> list[tuple[Sample, Rollout]]:
    sample = Sample(sample_id, [{"role": "user", "content": "Capital of France?"}], reference="Paris")
    return [(sample, Rollout(sample_id, completion, id=f"{sample_id}/0"))]


def rubric_answer(correct: str, clear: str) -> str:
    """A rubric verdict with the two scores spliced in as raw JSON text (so NaN can be sent)."""
    return ('{"criteria": {"correct": {"rationale": "r", "score": ' + correct
            + '}, "clear": {"rationale": "r", "score": ' + clear + "}}}")


@pytest.mark.parametrize("verdict", [
    "I think it is good.",                          # garbage
    rubric_answer("true", "7"),                     # out of range
    rubric_answer("true", "NaN"),                   # NaN
    rubric_answer("true", "Infinity"),              # infinite
    rubric_answer("true", "1e999"),                 # overflows to infinity
    rubric_answer('"yes"', "3"),                    # wrong type
    '{"criteria": {"correct": {"rationale": "r", "score": true}}}',  # a criterion missing
], ids=["garbage", "out-of-range", "nan", "infinite", "overflow", "wrong-type", "missing-criterion"])
def test_bad_rubric_verdict_is_unscored_after_one_reask(fake_openai: FakeOpenAIServer, verdict: str):
    fake_openai.default = Reply(text=verdict)
    with pipeline_for(fake_openai, RUBRIC) as pipeline:
        [reward] = pipeline.score_batch_sync(one())
    assert reward.status == "unscored" and reward.value is None
    assert reward.reason.startswith("parse_error")
    assert fake_openai.request_count == 2, "exactly one re-ask"


def test_rubric_reask_recovers_a_malformed_first_answer(fake_openai: FakeOpenAIServer):
    fake_openai.script(Reply(text="garbage"), Reply(text=rubric_answer("true", "5")))
    with pipeline_for(fake_openai, RUBRIC) as pipeline:
        [reward] = pipeline.score_batch_sync(one())
    assert reward.status == "ok" and reward.value == pytest.approx(1.0)
    reask = fake_openai.chat_requests[1].messages
    assert reask[-2]["content"] == "garbage" and "could not be used" in reask[-1]["content"]


def group_reply(ids_scores: list[tuple[str, float]]) -> Reply:
    scores = [{"id": item, "rationale": "r", "score": score} for item, score in ids_scores]
    return Reply(text=json.dumps({"scores": scores}))


GROUP = {"name": "ranking", "type": "group"}


def group_items() -> list[tuple[Sample, Rollout]]:
    sample = Sample("g", [{"role": "user", "content": "Capital of France?"}])
    return [(sample, Rollout("g", text, id=f"g/{n}")) for n, text in enumerate(["Paris", "Lyon", "Nice"])]


def test_group_answer_with_reordered_ids_is_matched_by_id(fake_openai: FakeOpenAIServer):
    fake_openai.default = group_reply([("r3", 4), ("r1", 10), ("r2", 1)])
    with pipeline_for(fake_openai, GROUP) as pipeline:
        rewards = pipeline.score_batch_sync(group_items())
    assert [r.value for r in rewards] == pytest.approx([1.0, 0.0, 3 / 9])


@pytest.mark.parametrize("ids_scores", [
    [("r1", 10), ("r2", 1)],                          # r3 missing
    [("r1", 10), ("r2", 1), ("r2", 5)],               # r2 duplicated, r3 missing
    [("r1", 10), ("r2", 1), ("r3", 5), ("r4", 5)],    # an extra id
], ids=["missing", "duplicated", "extra"])
def test_group_answer_with_bad_ids_makes_the_whole_group_unscored(fake_openai: FakeOpenAIServer, ids_scores):
    fake_openai.default = group_reply(ids_scores)
    with pipeline_for(fake_openai, GROUP) as pipeline:
        rewards = pipeline.score_batch_sync(group_items())
    assert all(r.status == "unscored" and r.value is None for r in rewards)
    assert all("parse_error" in r.reason for r in rewards)
    assert fake_openai.request_count == 2


def test_pairwise_parse_failure_in_the_swapped_order_stays_unscored(fake_openai: FakeOpenAIServer):
    """The first order says the rollout wins; the swapped order is garbage: never a win."""

    def respond(request: RecordedRequest) -> Reply:
        shown_first = re.search(r"Answer A:\n<<<ANSWER_A_\w+>>>\n(.*?)\n<<<END", request.prompt, re.S)
        first_answer = shown_first.group(1)
        if first_answer == "Paris, the capital.":  # the rollout shown first: a clean verdict for it
            return Reply(text='{"rationale": "A is right", "winner": "A"}')
        return Reply(text="B? maybe. {not json")

    fake_openai.responder = respond
    judge = {"name": "preference", "type": "pairwise", "mode": "reference"}
    with pipeline_for(fake_openai, judge) as pipeline:
        [reward] = pipeline.score_batch_sync(one("Paris, the capital."))
    assert reward.status == "unscored" and reward.value is None
    assert "parse_error" in reward.reason
    assert fake_openai.request_count == 3, "two orders, one re-ask for the failed one"


def test_failure_budget_crossed_stops_the_batch_with_the_reasons(fake_openai: FakeOpenAIServer):
    def respond(request: RecordedRequest) -> Reply:
        if "BROKEN" in request.prompt:
            return Reply(status=503, error="overloaded")
        return Reply(text=rubric_answer("true", "4"))

    fake_openai.responder = respond
    sample = Sample("b", [{"role": "user", "content": "Capital of France?"}])
    batch = [(sample, Rollout("b", "BROKEN" if n % 2 else "Paris", id=f"b/{n}")) for n in range(8)]
    with pipeline_for(fake_openai, RUBRIC, failure_budget=0.25) as pipeline, \
            pytest.raises(FailureBudgetExceeded) as caught:
        pipeline.score_batch_sync(batch)
    assert (caught.value.failed, caught.value.total) == (4, 8)
    assert "http_503" in str(caught.value)
    kept = [r for r in caught.value.rewards if r.status == "ok"]
    assert len(kept) == 4 and all(r.value == pytest.approx(0.875) for r in kept)


def test_case03_an_answer_that_did_not_parse_is_not_cached(fake_openai: FakeOpenAIServer, tmp_path):
    """Issue 17, case 3: parse-then-cache. A rerun with the same cache asks the judge again."""
    runtime = {"max_attempts": 2, "backoff_base_s": 0.01, "cache_path": str(tmp_path / "cache.sqlite")}
    fake_openai.default = Reply(text="I think it is good.")
    with pipeline_for(fake_openai, RUBRIC, runtime=runtime) as pipeline:
        [reward] = pipeline.score_batch_sync(one())
    assert reward.status == "unscored" and reward.reason.startswith("parse_error")
    assert fake_openai.request_count == 2  # the answer and the re-ask's answer, neither usable
    assert len(CompletionCache(tmp_path / "cache.sqlite")) == 0, "nothing unparseable was cached"

    fake_openai.default = Reply(text=rubric_answer("true", "5"))  # the judge is fixed
    with pipeline_for(fake_openai, RUBRIC, runtime=runtime) as pipeline:
        [reward] = pipeline.score_batch_sync(one())
    assert reward.status == "ok" and reward.value == pytest.approx(1.0)
    assert fake_openai.request_count == 3, "asked again, not served the old garbage"

    with pipeline_for(fake_openai, RUBRIC, runtime=runtime) as pipeline:
        [reward] = pipeline.score_batch_sync(one())
    assert reward.status == "ok" and fake_openai.request_count == 3, "a parsed answer is cached"
