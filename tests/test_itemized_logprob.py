"""The itemized rubric judge scored from verdict-token probabilities (`scoring: logprob`)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig
from judgerl.errors import BackendError, ConfigError
from judgerl.judges import build_judge
from judgerl.judges.itemized import ItemizedRubricJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

LEVELS = {level: f"level {level}" for level in range(1, 6)}
LIKERT = [{"name": name, "kind": "likert", "description": f"{name} of the comment", "levels": LEVELS}
          for name in ("Grounding", "Actionability")]
SAMPLE = Sample("s1", [{"role": "user", "content": "Review the contract against the policy."}],
                reference="the expert review")


def review(*comments: str) -> str:
    items = [{"text_excerpt": f"quote of {text}", "comment": text} for text in comments]
    return json.dumps({"comments": items})


def asked(request: CompletionRequest) -> tuple[str, str]:
    """(the comment shown, the criterion asked about) read back from a rendered request."""
    prompt = request.messages[-1]["content"]
    shown = re.search(r'"comment": "([^"]*)"', prompt)
    criterion = re.search(r"Criterion: (\w+)", prompt)
    assert shown and criterion, prompt
    return shown.group(1), criterion.group(1)


def distribution(probabilities: dict[str, float]) -> Any:
    """A responder answering every request with these probabilities over its candidate tokens."""
    def respond(request: CompletionRequest) -> Completion:
        assert request.candidate_tokens and request.max_tokens == 1
        logprobs = {token: math.log(probabilities[token]) if probabilities.get(token) else -math.inf
                    for token in request.candidate_tokens}
        return Completion(text=request.candidate_tokens[0], model="scripted", usage=Usage(50, 1),
                          candidate_logprobs=logprobs)
    return respond


def make_judge(responder: Any, criteria: list[dict[str, Any]] | None = None,
               **options: Any) -> tuple[ItemizedRubricJudge, ScriptedBackend, ModelRuntime]:
    backend = ScriptedBackend(responder)
    runtime = ModelRuntime({"judge": backend})
    config = JudgeConfig(name="quality", type="itemized_rubric", scoring="logprob",
                         **{"criteria": criteria or LIKERT, **options})
    judge = build_judge(config, runtime)
    assert isinstance(judge, ItemizedRubricJudge)
    return judge, backend, runtime


async def test_each_comment_and_dimension_is_one_verdict_token_question() -> None:
    # comment "good" is put at level 5 or 4 (expected 4.5), "bad" at level 1 for certain.
    def respond(request: CompletionRequest) -> Completion:
        comment, _ = asked(request)
        return distribution({"5": 0.5, "4": 0.5} if comment == "good" else {"1": 1.0})(request)

    judge, backend, runtime = make_judge(respond)
    score = await judge.score(SAMPLE, Rollout("s1", review("good", "bad"), id="r0"))
    assert len(backend.calls) == 4  # 2 comments x 2 dimensions
    assert sorted(asked(call) for call in backend.calls) == [
        ("bad", "Actionability"), ("bad", "Grounding"), ("good", "Actionability"), ("good", "Grounding")]
    # good: (4.5 - 1) / 4 = 0.875 on both; bad: 0 -> mean 0.4375. On the 1-5 scale (4.5 + 1) / 2.
    assert score.value == pytest.approx(0.4375)
    assert score.details["aggregate_raw"] == pytest.approx(2.75)
    assert score.details["scoring"] == "logprob"
    assert score.details["items"]["c1"]["criteria"]["Grounding"]["score"] == pytest.approx(4.5)
    assert "Grounding 4.50" in score.rationale
    [entry] = runtime.journal_entries
    assert entry["prompt_version"] == "itemized-rubric-logprob-v1" and entry["calls"] == 4
    assert entry["outcome"] == "ok" and entry["scoring"] == "logprob"


async def test_requests_of_one_answer_share_everything_but_their_last_lines() -> None:
    judge, backend, _ = make_judge(distribution({"3": 1.0}))
    await judge.score(SAMPLE, Rollout("s1", review("first", "second")))
    prompts = [call.messages[-1]["content"] for call in backend.calls]
    task = prompts[0].split("Item c")[0]
    assert "Review the contract" in task
    assert all(prompt.startswith(task) for prompt in prompts)  # the task comes first, once per request
    assert all(call.messages[0] == backend.calls[0].messages[0] for call in backend.calls)


async def test_checks_use_the_pass_and_fail_tokens() -> None:
    check = [{"name": "cites_rule", "kind": "check", "description": "names the guideline rule"}]
    judge, backend, _ = make_judge(distribution({"Yes": 0.8, "No": 0.2}), criteria=check,
                                   pass_token="Yes", fail_token="No")
    score = await judge.score(SAMPLE, Rollout("s1", review("only")))
    assert backend.calls[0].candidate_tokens == ["Yes", "No"]
    assert "exactly one word: Yes if it does, No if it does not" in backend.calls[0].messages[-1]["content"]
    assert score.value == pytest.approx(0.8)


async def test_no_mass_on_the_levels_leaves_the_answer_unscored() -> None:
    def respond(request: CompletionRequest) -> Completion:
        comment, criterion = asked(request)
        if comment == "second" and criterion == "Actionability":
            return distribution({})(request)
        return distribution({"4": 1.0})(request)

    judge, _, runtime = make_judge(respond)
    score = await judge.score(SAMPLE, Rollout("s1", review("first", "second")))
    assert score.value is None and score.status == "unscored"
    assert "c2 Actionability" in (score.reason or "") and "no probability mass" in (score.reason or "")
    assert runtime.journal_entries[-1]["outcome"] == "unscored"


async def test_a_failed_call_leaves_the_answer_unscored_not_zero() -> None:
    def respond(request: CompletionRequest) -> Completion:
        if asked(request)[0] == "second":
            raise BackendError("bad request", retryable=False, status=400)
        return distribution({"5": 1.0})(request)

    judge, _, _ = make_judge(respond)
    score = await judge.score(SAMPLE, Rollout("s1", review("first", "second")))
    assert score.value is None and "bad request" in (score.reason or "")


async def test_the_reference_is_shown_when_asked() -> None:
    judge, backend, _ = make_judge(distribution({"2": 1.0}), use_reference=True)
    score = await judge.score(SAMPLE, Rollout("s1", review("x")))
    assert score.value == pytest.approx(0.25)
    assert "the expert review" in backend.calls[0].messages[-1]["content"]


async def test_no_items_scores_0_without_a_call() -> None:
    judge, backend, _ = make_judge(lambda request: pytest.fail("the judge must not be called"))
    score = await judge.score(SAMPLE, Rollout("s1", "not json"))
    assert score.value == 0.0 and backend.calls == []


def test_a_logprob_template_must_show_the_item(tmp_path: Any) -> None:
    template = tmp_path / "mine.txt"
    template.write_text("# version: mine-v1\n[user]\n{question}\n{criterion}\n{instruction}\n")
    with pytest.raises(ConfigError) as info:
        make_judge(distribution({"3": 1.0}), prompt_file=str(template))
    assert "item" in str(info.value) and info.value.field == "judges.quality.prompt_file"
