"""`judgerl distill` with a panel as the teacher: its combined verdicts train the student, the
rollouts it abstained on are left out and counted.

The panel's two members are scripted teachers (no model) with the hidden rule of test_distill.py
(an answer that mentions a refund passes); the second also passes every answer that asks for a
photo, so the members disagree on those and the panel abstains (panel_disagreement). The student is
the tiny Llama of test_distill.py, trained for real and measured on held-out samples.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.distill.command import distill
from judgerl.distill.examples import journal_judge_names, judged_from_panel_journal
from judgerl.distill.student import TrainSettings
from judgerl.errors import ConfigError
from judgerl.reward.pipeline import RewardPipeline
from test_distill import ANSWER_RE, CRITERION, build_student_base, synthetic_items, teacher_responder


def photo_friendly(request: CompletionRequest) -> Completion:
    """The hidden rule, except that asking for a photo also passes."""
    match = ANSWER_RE.search(request.messages[-1]["content"])
    assert match is not None
    p_pass = 0.95 if "refund" in match.group(1) or "photo" in match.group(1) else 0.05
    return Completion(text="PASS", model="teacher-b", usage=Usage(250, 1),
                      candidate_logprobs={"PASS": math.log(p_pass), "FAIL": math.log(1 - p_pass)})


def panel_teacher(tmp_path: Path, samples: int, answers: int = 3, **panel: object) -> tuple[Path, Path]:
    journal = tmp_path / "teacher" / "journal.jsonl"
    member = {"type": "rubric", "scoring": "logprob", "criteria": [CRITERION]}
    config = {"backends": {"a": {"type": "scripted"}, "b": {"type": "scripted"}},
              "runtime": {"journal_path": str(journal)}, "failure_budget": None,
              "judges": [{"name": "support", "type": "panel", "abstain_if": {"spread_above": 0.5},
                          "members": [{"name": "a", "backend": "a", **member},
                                      {"name": "b", "backend": "b", **member}], **panel}]}
    path = tmp_path / "teacher" / "reward.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    backends = {"a": ScriptedBackend(teacher_responder, model="teacher"),
                "b": ScriptedBackend(photo_friendly, model="teacher-b")}
    with RewardPipeline.from_config(config, backends=backends) as pipeline:
        pipeline.score_batch_sync(synthetic_items(samples, answers))
    return journal, path


def test_the_panels_combined_verdicts_are_the_examples_and_abstentions_are_counted(tmp_path: Path) -> None:
    journal, _ = panel_teacher(tmp_path, samples=10)
    assert journal_judge_names(journal) == {"support": {"panel"}}  # its members are not teachers
    verdicts = judged_from_panel_journal(journal, judge="support")
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    panel = [entry for entry in entries if entry["judge"] == "support"]
    photo = sum("photo" in entry["inputs"]["answers"][0] for entry in panel)
    assert photo > 0 and verdicts.left_out == {"panel_disagreement": photo}
    assert len(verdicts.judged) == 30 - photo
    for row in verdicts.judged:
        assert row.criterion == "support" and row.kind == "check"
        assert row.verdict == pytest.approx(0.95 if "refund" in row.rollout.completion else 0.05)
        assert row.teacher.tokens == 301 + 251 and row.teacher.model == "teacher+teacher-b"


def test_a_tiny_student_learns_from_a_panel(tmp_path: Path) -> None:
    journal, config = panel_teacher(tmp_path, samples=60, description=CRITERION["description"])
    base = build_student_base(tmp_path / "base")
    result = distill(out_dir=tmp_path / "student", base_model=str(base), journal=journal, config=config,
                     settings=TrainSettings(method="full", epochs=6, learning_rate=3e-3, batch_size=8))
    (criterion,) = result.report.criteria
    assert criterion.criterion == "support"
    assert criterion.accuracy is not None and criterion.accuracy >= 0.9 and result.report.passed
    assert result.report.teacher_left_out["panel_disagreement"] > 0
    assert "panel_disagreement" in (tmp_path / "student" / "agreement.md").read_text(encoding="utf-8")
    snippet = yaml.safe_load(result.snippet.read_text(encoding="utf-8"))
    assert snippet["judges"][0]["criteria"][0]["description"] == CRITERION["description"]


def test_a_panel_teacher_needs_a_description(tmp_path: Path) -> None:
    journal, config = panel_teacher(tmp_path, samples=4)
    with pytest.raises(ConfigError, match="--description") as caught:
        distill(out_dir=tmp_path / "student", base_model="unused", journal=journal, config=config)
    assert caught.value.field == "judges.support.description"
