"""RubricJudge through the real ModelRuntime with a scripted (not a model) backend."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.base import Completion, CompletionRequest, TokenLogprob
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, RuntimeConfig
from judgerl.errors import BackendError, ConfigError
from judgerl.judges import build_judge
from judgerl.judges.rubric import RubricJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

CRITERIA = [
    {"name": "correct", "description": "States the right capital.", "weight": 3},
    {"name": "clarity", "kind": "likert", "description": "How clear the answer is.", "weight": 1,
     "levels": {1: "unreadable", 2: "confusing", 3: "ok", 4: "clear", 5: "crisp"}},
]
SAMPLE = Sample("s1", [{"role": "user", "content": "What is the capital of France?"}], reference="Paris.")


def make(responder: Any, **options: Any) -> tuple[RubricJudge, ScriptedBackend, ModelRuntime]:
    backend = ScriptedBackend(responder)
    runtime = ModelRuntime({"judge": backend})
    config = JudgeConfig(name="quality", type="rubric", **{"criteria": CRITERIA, **options})
    judge = build_judge(config, runtime)
    assert isinstance(judge, RubricJudge)
    return judge, backend, runtime


def verdict(correct: bool, clarity: int) -> str:
    return json.dumps({"criteria": {"correct": {"rationale": "capital named", "score": correct},
                                    "clarity": {"rationale": "short", "score": clarity}}})


async def test_weighted_mean_of_normalised_criteria_and_journal() -> None:
    judge, backend, runtime = make(lambda request: "Thinking...\n```json\n" + verdict(True, 3) + "\n```")
    score = await judge.score(SAMPLE, Rollout("s1", "Paris", id="r0"))
    assert score.value == pytest.approx((3 * 1.0 + 1 * 0.5) / 4)
    assert score.details["criteria"]["clarity"] == {"kind": "likert", "score": 3, "value": 0.5,
                                                    "rationale": "short"}
    assert "correct: capital named" in score.rationale
    assert len(backend.calls) == 1
    [entry] = runtime.journal_entries
    assert entry["judge"] == "quality" and entry["judge_kind"] == "rubric"
    assert entry["prompt_name"] == "rubric" and entry["prompt_version"] == "rubric-v1"
    assert entry["prompt_hash"] == backend.calls[0].fingerprint()
    assert entry["sample_id"] == "s1" and entry["rollout_ids"] == ["r0"]
    assert entry["outcome"] == "ok" and entry["attempts"] == 1 and entry["tokens"] > 0
    assert entry["scores"]["value"] == pytest.approx(0.875)
    assert "Paris." not in backend.calls[0].messages[1]["content"]  # use_reference is off


async def test_one_reask_then_success() -> None:
    answers = iter(["I'd say it passes.", verdict(False, 1)])
    judge, backend, runtime = make(lambda request: next(answers))
    score = await judge.score(SAMPLE, Rollout("s1", "Lyon"))
    assert score.value == 0.0
    assert len(backend.calls) == 2
    reask = backend.calls[1].messages
    assert reask[-2] == {"role": "assistant", "content": "I'd say it passes."}
    assert "no JSON object" in reask[-1]["content"]
    assert runtime.journal_entries[0]["raw_outputs"] == ["I'd say it passes.", verdict(False, 1)]


@pytest.mark.parametrize("bad", [
    '{"criteria": {"correct": {"score": true}}}',                                  # missing criterion
    '{"criteria": {"correct": {"score": true}, "clarity": {"score": 6}}}',         # out of range
    '{"criteria": {"correct": {"score": "yes"}, "clarity": {"score": 3}}}',        # wrong type
    '{"criteria": {"correct": {"score": true}, "clarity": {"score": NaN}}}',       # NaN
    '{"criteria": {"correct": {"score": true}, "clarity": {"score": 3}, "x": {"score": 1}}}',  # extra
    "PASS",
])
async def test_malformed_twice_is_unscored_after_exactly_one_reask(bad: str) -> None:
    judge, backend, runtime = make(lambda request: bad)
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.value is None and score.status == "unscored"
    assert score.reason is not None and score.reason.startswith("parse_error: ")
    assert len(backend.calls) == 2
    assert runtime.journal_entries[0]["outcome"] == "unscored"


async def test_backend_failure_is_unscored_with_the_runtime_reason() -> None:
    def responder(request: CompletionRequest) -> str:
        raise BackendError("judge_down: scripted outage", retryable=False)

    judge, backend, runtime = make(responder)
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.value is None and score.reason is not None and "judge_down" in score.reason
    assert len(backend.calls) == 1  # not re-asked: the runtime owns retries
    assert runtime.journal_entries[0]["outcome"] == "unscored"


@pytest.mark.parametrize("answer", ["", "   \n\t"])
async def test_empty_answer_scores_the_edge_value_without_a_call(answer: str) -> None:
    judge, backend, runtime = make(lambda request: pytest.fail("the judge must not be called"),
                                   empty_answer_score=0.0)
    score = await judge.score(SAMPLE, Rollout("s1", answer))
    assert score.value == 0.0 and score.details["edge_rule"] == "empty_answer"
    assert backend.calls == []
    assert runtime.journal_entries[0]["edge_rule"] == "empty_answer"


async def test_empty_answer_goes_to_the_judge_when_the_rule_is_off() -> None:
    judge, backend, _ = make(lambda request: verdict(False, 1), empty_answer_score=None)
    assert (await judge.score(SAMPLE, Rollout("s1", ""))).value == 0.0
    assert len(backend.calls) == 1


async def test_reference_is_fenced_when_used_and_required() -> None:
    judge, backend, _ = make(lambda request: verdict(True, 5), use_reference=True)
    await judge.score(SAMPLE, Rollout("s1", "Paris"))
    content = backend.calls[0].messages[-1]["content"]
    assert "<<<REFERENCE_" in content and content.count("Paris.") == 1
    no_reference = Sample("s2", SAMPLE.messages)
    score = await judge.score(no_reference, Rollout("s2", "Paris"))
    assert score.status == "unscored" and "no reference" in (score.reason or "")
    assert len(backend.calls) == 1


def top_logprobs_completion(probabilities: dict[str, float]) -> Completion:
    top = {token: math.log(p) for token, p in probabilities.items()}
    best = max(top, key=lambda token: top[token])
    return Completion(text=best, model="scripted", logprobs=[TokenLogprob(best, top[best], top)])


async def test_logprob_mode_reads_pass_probability_and_expected_likert() -> None:
    def responder(request: CompletionRequest) -> Completion:
        assert request.max_tokens == 1 and request.logprobs and request.top_logprobs == 20
        if request.candidate_tokens == ["PASS", "FAIL"]:
            # OpenAI-style: probabilities only in top_logprobs, with a leading-space variant
            return top_logprobs_completion({"PASS": 0.5, " PASS": 0.1, "FAIL": 0.2, "Yes": 0.2})
        assert request.candidate_tokens == ["1", "2", "3", "4", "5"]
        # local-backend style: candidate_logprobs filled directly
        return Completion(text="4", model="scripted",
                          candidate_logprobs={"3": math.log(0.25), "4": math.log(0.75), "1": -math.inf})

    judge, backend, runtime = make(responder, scoring="logprob")
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    p_pass = 0.6 / 0.8
    likert = (3.75 - 1) / 4
    assert score.details["criteria"]["correct"]["value"] == pytest.approx(p_pass)
    assert score.details["criteria"]["clarity"]["score"] == pytest.approx(3.75)
    assert score.value == pytest.approx((3 * p_pass + likert) / 4)
    assert len(backend.calls) == 2
    assert "Reply with exactly one word: PASS" in backend.calls[0].messages[-1]["content"] or \
        "Reply with exactly one word: PASS" in backend.calls[1].messages[-1]["content"]
    [entry] = runtime.journal_entries
    assert entry["prompt_version"] == "rubric-logprob-v1" and entry["calls"] == 2


async def test_logprob_mode_without_logprobs_or_mass_is_unscored() -> None:
    judge, backend, _ = make(lambda request: "PASS", scoring="logprob")
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.status == "unscored" and "no log-probabilities" in (score.reason or "")
    assert len(backend.calls) == 2  # one per criterion, no re-ask in logprob mode

    judge, _, _ = make(lambda request: top_logprobs_completion({"Sure": 0.9, "OK": 0.1}), scoring="logprob")
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.status == "unscored" and "no probability mass" in (score.reason or "")


async def test_logprob_case_sensitivity_option() -> None:
    def responder(request: CompletionRequest) -> Completion:
        is_check = request.candidate_tokens == ["PASS", "FAIL"]
        return top_logprobs_completion({"pass": 0.7, "FAIL": 0.3} if is_check else {"5": 1.0})

    strict, _, _ = make(responder, scoring="logprob")
    assert (await strict.score(SAMPLE, Rollout("s1", "Paris"))).details["criteria"]["correct"]["value"] == 0.0
    loose, _, _ = make(responder, scoring="logprob", case_sensitive_tokens=False)
    value = (await loose.score(SAMPLE, Rollout("s1", "Paris"))).details["criteria"]["correct"]["value"]
    assert value == pytest.approx(0.7)


async def test_logprob_mode_with_generated_rationale() -> None:
    def responder(request: CompletionRequest) -> str | Completion:
        if request.candidate_tokens is None:
            return "It names Paris, clearly."
        return top_logprobs_completion({"PASS": 0.9, "FAIL": 0.1} if "PASS" in request.candidate_tokens
                                       else {"5": 1.0})

    judge, backend, runtime = make(responder, scoring="logprob", rationale=True)
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.rationale == "It names Paris, clearly."
    assert len(backend.calls) == 3
    assert "It names Paris, clearly." in runtime.journal_entries[0]["raw_outputs"]


async def test_every_judgment_reaches_the_journal_file(tmp_path: Path) -> None:
    answers = iter([verdict(True, 5), "garbage", "garbage"])
    runtime = ModelRuntime({"judge": ScriptedBackend(lambda request: next(answers))},
                           RuntimeConfig(journal_path=str(tmp_path / "journal.jsonl")))
    judge = build_judge(JudgeConfig(name="quality", type="rubric", criteria=CRITERIA), runtime)
    await judge.score(SAMPLE, Rollout("s1", "Paris", id="good"))
    await judge.score(SAMPLE, Rollout("s1", "Lyon", id="bad"))
    await judge.score(SAMPLE, Rollout("s1", "", id="empty"))
    await runtime.aclose()
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [(entry["rollout_ids"], entry["outcome"]) for entry in lines] == [
        (["good"], "ok"), (["bad"], "unscored"), (["empty"], "ok")]
    assert lines[0]["scores"]["criteria"]["correct"]["score"] is True
    assert lines[1]["raw_outputs"] == ["garbage", "garbage"] and lines[1]["calls"] == 2


async def test_truncated_answer_reason_says_so() -> None:
    cut = Completion(text='{"criteria": {"correct": {"rationale": "long', model="scripted",
                     finish_reason="length")
    judge, _, _ = make(lambda request: cut)
    score = await judge.score(SAMPLE, Rollout("s1", "Paris"))
    assert score.status == "unscored" and "cut off at max_tokens" in (score.reason or "")


@pytest.mark.parametrize(("options", "field"), [
    ({"criteria": [], "rubric_field": None}, "judges.quality.rubric_field"),
    ({"criteria": [{"name": "r1", "description": "x"}]}, "judges.quality.rubric_field"),
    ({"criteria": CRITERIA, "mode": "implicit", "scoring": "logprob"}, "judges.quality.mode"),
    ({"criteria": CRITERIA, "items_per_call": 2, "scoring": "logprob"}, "judges.quality.items_per_call"),
    ({"criteria": [{"name": "a", "description": "x", "kind": "likert"}]}, "judges.quality.criteria.0"),
    ({"criteria": [{"name": "a", "description": "x", "levels": {1: "a"}}]}, "judges.quality.criteria.0"),
    ({"criteria": [{"name": "bad name", "description": "x"}]}, "judges.quality.criteria.0.name"),
    ({"criteria": CRITERIA, "scoring": "vibes"}, "judges.quality.scoring"),
    ({"criteria": CRITERIA, "temprature": 0.2}, "judges.quality.temprature"),
    ({"criteria": CRITERIA + CRITERIA[:1]}, "judges.quality.criteria"),
])
def test_bad_options_name_the_field(options: dict[str, Any], field: str) -> None:
    runtime = ModelRuntime({"judge": ScriptedBackend(lambda request: "")})
    with pytest.raises(ConfigError) as info:
        build_judge(JudgeConfig(name="quality", type="rubric", **options), runtime)
    assert info.value.field == field
