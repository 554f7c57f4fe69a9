"""GroupJudge: one call per group, scores matched by id (never by order), id errors are failures."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig
from judgerl.errors import ConfigError
from judgerl.judges import build_judge
from judgerl.judges.group import GroupJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

SAMPLE = Sample("s1", [{"role": "user", "content": "Name a prime number above 10."}], reference="11")
ROLLOUTS = [Rollout("s1", "13", id="x0"), Rollout("s1", "12", id="x1"), Rollout("s1", "17", id="x2")]


def make(responder: Any, **options: Any) -> tuple[GroupJudge, ScriptedBackend, ModelRuntime]:
    backend = ScriptedBackend(responder)
    runtime = ModelRuntime({"judge": backend})
    judge = build_judge(JudgeConfig(name="rank", type="group", **options), runtime)
    assert isinstance(judge, GroupJudge)
    return judge, backend, runtime


def shown_ids(request: CompletionRequest) -> dict[str, str]:
    """id -> answer text, read from the rendered prompt."""
    content = request.messages[1]["content"]
    pattern = r"Answer (r\d+):\n<<<ANSWER_R\d+_[a-z]+>>>\n(.*?)\n<<<END_ANSWER_R\d+_[a-z]+>>>"
    return dict(re.findall(pattern, content, flags=re.S))


def scores_answer(entries: list[tuple[str, float]]) -> str:
    return json.dumps({"scores": [{"id": item, "rationale": f"about {item}", "score": score}
                                  for item, score in entries]})


async def test_one_call_scores_matched_by_id_even_when_reordered() -> None:
    def responder(request: CompletionRequest) -> str:
        ids = shown_ids(request)
        assert ids == {"r1": "13", "r2": "12", "r3": "17"}
        # reversed order, and the scores depend on the answer each id names
        return scores_answer([(item, 1 if ids[item] == "12" else 10) for item in reversed(ids)])

    judge, backend, runtime = make(responder)
    scores = await judge.score_group(SAMPLE, ROLLOUTS)
    assert [score.value for score in scores] == [1.0, 0.0, 1.0]
    assert [score.details["id"] for score in scores] == ["r1", "r2", "r3"]
    assert scores[1].rationale == "about r2"
    assert len(backend.calls) == 1
    [entry] = runtime.journal_entries
    assert entry["rollout_ids"] == ["x0", "x1", "x2"]
    assert entry["shown_ids"] == {"r1": "x0", "r2": "x1", "r3": "x2"}
    assert entry["scores"]["r2"] == {"score": 1, "value": 0.0}


@pytest.mark.parametrize(("entries", "reason"), [
    ([("r1", 5), ("r2", 5)], "missing"),
    ([("r1", 5), ("r2", 5), ("r2", 6), ("r3", 1)], "duplicated"),
    ([("r1", 5), ("r2", 5), ("r3", 5), ("r4", 9)], "unknown"),
    ([("r1", 5), ("r2", 5), ("x3", 5)], "missing"),
    ([("r1", 5), ("r2", 11), ("r3", 5)], "less than or equal to 10"),
    ([("r1", 5), ("r2", 0), ("r3", 5)], "greater than or equal to 1"),
])
async def test_id_and_range_errors_leave_the_whole_group_unscored(entries: list[tuple[str, float]],
                                                                   reason: str) -> None:
    judge, backend, runtime = make(lambda request: scores_answer(entries))
    scores = await judge.score_group(SAMPLE, ROLLOUTS)
    assert all(score.value is None and score.status == "unscored" for score in scores)
    assert all(reason in (score.reason or "") and (score.reason or "").startswith("parse_error")
               for score in scores)
    assert len(backend.calls) == 2  # exactly one re-ask
    assert runtime.journal_entries[0]["outcome"] == "unscored"


async def test_reask_fixes_a_missing_id() -> None:
    answers = iter([scores_answer([("r1", 4), ("r2", 4)]), scores_answer([("r3", 7), ("r1", 4), ("r2", 1)])])
    judge, backend, _ = make(lambda request: next(answers))
    scores = await judge.score_group(SAMPLE, ROLLOUTS)
    assert [score.value for score in scores] == [pytest.approx(3 / 9), 0.0, pytest.approx(6 / 9)]
    assert "missing" in backend.calls[1].messages[-1]["content"]


async def test_empty_answers_are_not_shown_and_get_the_edge_score() -> None:
    def responder(request: CompletionRequest) -> str:
        ids = shown_ids(request)
        assert list(ids.values()) == ["13", "17"]
        return scores_answer([("r2", 10), ("r1", 7)])

    judge, backend, _ = make(responder, empty_answer_score=0.0)
    rollouts = [ROLLOUTS[0], Rollout("s1", " \n", id="empty"), ROLLOUTS[2]]
    scores = await judge.score_group(SAMPLE, rollouts)
    assert [score.value for score in scores] == [pytest.approx(6 / 9), 0.0, 1.0]
    assert scores[1].details == {"edge_rule": "empty_answer"}

    judge, backend, _ = make(lambda request: pytest.fail("no call for an all-empty group"))
    assert [s.value for s in await judge.score_group(SAMPLE, [Rollout("s1", "")])] == [0.0]
    assert backend.calls == []


async def test_reference_shown_when_asked_and_required() -> None:
    answer = scores_answer([("r1", 9), ("r2", 2), ("r3", 9)])
    judge, backend, _ = make(lambda request: answer, use_reference=True)
    await judge.score_group(SAMPLE, ROLLOUTS)
    assert "<<<REFERENCE_" in backend.calls[0].messages[1]["content"]
    scores = await judge.score_group(Sample("s2", SAMPLE.messages), ROLLOUTS)
    assert all(score.status == "unscored" and "no reference" in (score.reason or "") for score in scores)
    assert len(backend.calls) == 1


def test_logprob_scoring_is_refused_for_groups() -> None:
    with pytest.raises(ConfigError) as info:
        make(lambda request: "", scoring="logprob")
    assert info.value.field == "judges.rank.scoring"
