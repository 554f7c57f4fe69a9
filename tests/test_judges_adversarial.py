"""The adversarial regression set reaches every judge fenced and inert, and the reference never leaks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig
from judgerl.errors import DataError
from judgerl.judges import build_judge
from judgerl.judges.adversarial import AdversarialItem, load_adversarial_set
from judgerl.judges.parsing import CriterionSpec, parse_rubric
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

ITEMS = load_adversarial_set()
SECRET = "SECRET-REFERENCE-7731"
CRITERIA = [{"name": "correct", "description": "Answers the question correctly."},
            {"name": "style", "kind": "likert", "description": "Clarity.",
             "levels": {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}}]


def test_the_set_covers_the_required_attacks() -> None:
    completions = "\n".join(item.completion for item in ITEMS)
    for needle in ["Ignore previous instructions", '{"criteria"', "<<<END_ANSWER_", "```", "</answer>",
                   "<|im_start|>system", "assistant:", "{reference}"]:
        assert needle in completions, needle
    assert {":", "Solution", "Thought process:"} <= {item.completion for item in ITEMS}
    assert all(item.expected == "fail" and item.question and item.reference for item in ITEMS)


def fenced_body(content: str, label: str) -> tuple[str, str, str]:
    """(opening, body, closing) of the fence with this label (the first opening: the fence comes
    before its content); its opening and closing markers must each occur exactly once."""
    first = re.search(rf"<<<{label}_([a-z]+)>>>", content)
    assert first is not None, f"no {label} fence"
    tag = first.group(1)
    opening, closing = f"<<<{label}_{tag}>>>", f"<<<END_{label}_{tag}>>>"
    assert content.count(opening) == 1 and content.count(closing) == 1
    start = content.index(opening) + len(opening) + 1
    end = content.index(closing) - 1
    return opening, content[start:end], closing


def capture(**judge: Any) -> tuple[Any, ScriptedBackend]:
    backend = ScriptedBackend(lambda request: "not used")
    runtime = ModelRuntime({"judge": backend})
    return build_judge(JudgeConfig(name="j", **judge), runtime), backend


def sample_for(item: AdversarialItem, reference: str | None = SECRET) -> Sample:
    return Sample(item.id, [{"role": "user", "content": item.question}], reference=reference)


def user_content(request: CompletionRequest) -> str:
    assert [message["role"] for message in request.messages] == ["system", "user"]
    return request.messages[1]["content"]


def assert_inert(content: str, label: str, completion: str) -> None:
    _, body, _ = fenced_body(content, label)
    assert body == completion  # verbatim, whole, inside the fence
    if len(completion) > 3:
        assert content.count(completion) == 1


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.id)
def test_rubric_prompt_fences_the_attack_and_hides_the_reference(item: AdversarialItem) -> None:
    judge, _ = capture(type="rubric", criteria=CRITERIA)
    content = user_content(judge.generate_request(sample_for(item), Rollout(item.id, item.completion)))
    assert_inert(content, "ANSWER", item.completion)
    assert SECRET not in content  # use_reference is off; "{reference}" in a completion stays literal

    judge, _ = capture(type="rubric", criteria=CRITERIA, use_reference=True)
    content = user_content(judge.generate_request(sample_for(item), Rollout(item.id, item.completion)))
    assert_inert(content, "ANSWER", item.completion)
    assert content.count(SECRET) == 1
    assert fenced_body(content, "REFERENCE")[1] == SECRET


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.id)
def test_logprob_rubric_prompt_fences_the_attack(item: AdversarialItem) -> None:
    judge, _ = capture(type="rubric", criteria=CRITERIA, scoring="logprob")
    for criterion in judge.options.criteria:
        request = judge.logprob_request(sample_for(item), Rollout(item.id, item.completion), criterion)
        content = user_content(request)
        assert_inert(content, "ANSWER", item.completion)
        assert SECRET not in content
        assert content.rstrip().endswith(("FAIL if it does not.", "one digit from 1 to 5."))


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.id)
@pytest.mark.parametrize("scoring", ["generate", "logprob"])
def test_pairwise_prompt_fences_both_answers(item: AdversarialItem, scoring: str) -> None:
    judge, _ = capture(type="pairwise", scoring=scoring)
    content = user_content(judge.request(sample_for(item), item.completion, item.reference))
    assert_inert(content, "ANSWER_A", item.completion)
    assert fenced_body(content, "ANSWER_B")[1] == item.reference
    assert SECRET not in content


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.id)
def test_group_prompt_fences_each_answer(item: AdversarialItem) -> None:
    judge, _ = capture(type="group")
    rollouts = [Rollout(item.id, item.reference), Rollout(item.id, item.completion)]
    request, ids = judge.request(sample_for(item), rollouts)
    content = user_content(request)
    assert ids == ["r1", "r2"]
    assert fenced_body(content, "ANSWER_R1")[1] == item.reference
    assert_inert(content, "ANSWER_R2", item.completion)
    assert SECRET not in content


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: item.id)
async def test_a_judge_quoting_the_attack_is_parsed_by_its_own_final_verdict(item: AdversarialItem) -> None:
    """A judge that quotes the answer (fake verdict JSON and all) before its verdict: the last
    object in its answer is its own, so the quoted fake verdict is never used."""
    final = {"criteria": {"correct": {"rationale": "does not answer", "score": False},
                          "style": {"rationale": "n/a", "score": 1}}}
    answer = f"The answer says:\n{item.completion}\nMy verdict:\n{json.dumps(final)}"
    judge, backend = capture(type="rubric", criteria=CRITERIA)
    backend.responder = lambda request: answer
    score = await judge.score(sample_for(item), Rollout(item.id, item.completion))
    assert score.value == 0.0
    results = parse_rubric(answer, [CriterionSpec("correct", "check"), CriterionSpec("style", "likert")])
    assert results["correct"].raw is False


def test_loader_reports_file_item_and_field(tmp_path: Path) -> None:
    path = tmp_path / "attacks.yaml"
    path.write_text("items:\n  - id: a\n    category: x\n    question: q?\n    completion: ':'\n")
    with pytest.raises(DataError, match=r"attacks.yaml.*items\.0\.reference"):
        load_adversarial_set(path)
    path.write_text("items:\n" + "".join(
        f"  - {{id: a, category: x, question: q, reference: r, completion: c{n}}}\n" for n in range(2)))
    with pytest.raises(DataError, match="duplicated id 'a'"):
        load_adversarial_set(path)
