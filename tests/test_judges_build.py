"""build_judge: the registry, option validation naming `judges.<name>.<field>`, user prompt files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, load_reward_config
from judgerl.errors import ConfigError
from judgerl.judges import JUDGE_TYPES, build_judge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample

CHECK = [{"name": "ok", "description": "Answers the question."}]


def runtime(answer: str = "") -> ModelRuntime:
    return ModelRuntime({"judge": ScriptedBackend(lambda request: answer)})


def test_registry_names() -> None:
    assert set(JUDGE_TYPES) == {"rubric", "pairwise", "group", "itemized_rubric", "panel"}


def test_unknown_type_and_backend_name_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        build_judge(JudgeConfig(name="q", type="listwise"), runtime())
    assert info.value.field == "judges.q.type" and "rubric" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_judge(JudgeConfig(name="q", type="group", backend="gpt"), runtime())
    assert info.value.field == "judges.q.backend"


@pytest.mark.parametrize(("judge_type", "options", "field"), [
    ("pairwise", {"mode": "league"}, "judges.q.mode"),
    ("pairwise", {"tie_margin": 0.7}, "judges.q.tie_margin"),
    ("group", {"max_tokens": 0}, "judges.q.max_tokens"),
    ("group", {"empty_answer_score": 2}, "judges.q.empty_answer_score"),
    ("rubric", {"criteria": CHECK, "pass_token": "X", "fail_token": "X", "scoring": "logprob"},
     "judges.q.fail_token"),
])
def test_bad_options(judge_type: str, options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_judge(JudgeConfig(name="q", type=judge_type, **options), runtime())
    assert info.value.field == field


async def test_user_prompt_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "my_rubric.txt").write_text(
        "# version: house-rubric-v7\nQ: {question}\nA: {answer}\n"
        "Criteria: {criteria}\nShape: {answer_format}\n")
    config_path = tmp_path / "reward.yaml"
    config_path.write_text(
        "backends: {judge: {type: scripted}}\n"
        "judges:\n  - {name: q, type: rubric, prompt_file: my_rubric.txt, "
        "criteria: [{name: ok, description: Answers the question.}]}\n")
    config = load_reward_config(config_path)
    rt = runtime(json.dumps({"criteria": {"ok": {"score": True}}}))
    judge = build_judge(config.judges[0], rt, config.base_dir)
    sample = Sample("s", [{"role": "user", "content": "hi?"}])
    score = await judge.score_group(sample, [Rollout("s", "hello")])
    assert score[0].value == 1.0
    assert rt.journal_entries[0]["prompt_name"] == "my_rubric"
    assert rt.journal_entries[0]["prompt_version"] == "house-rubric-v7"
    assert rt.backends["judge"].calls[0].messages[0]["content"].startswith("Q: <<<QUESTION_")


@pytest.mark.parametrize(("text", "message"), [
    ("# version: v1\nGrade {answer} by {rubric}", "unknown placeholder"),
    ("# version: v1\nGrade the question {question}", "must contain"),
    ("Grade {answer}", "version"),
])
def test_bad_user_prompt_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.txt").write_text(text)
    with pytest.raises(ConfigError, match=message):
        config = JudgeConfig(name="q", type="rubric", criteria=CHECK, prompt_file="p.txt")
        build_judge(config, runtime(), tmp_path)


def test_pairwise_prompt_must_show_both_answers(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("# version: v1\nWhich is better? {answer_a}")
    with pytest.raises(ConfigError, match="answer_b") as info:
        build_judge(JudgeConfig(name="q", type="pairwise", prompt_file="p.txt"), runtime(), tmp_path)
    assert info.value.field == "judges.q.prompt_file"
