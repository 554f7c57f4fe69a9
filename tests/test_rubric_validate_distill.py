"""Rubrics written for each prompt in validation and distillation: labelled rows carry a rubric
(per-item human verdicts `met`), the attack that claims every rubric item is satisfied, and
per-item teacher verdicts from a journal becoming per-item training rows of a student.

The judge is the example's scripted overlap judge (not a model) through the real runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, RuntimeConfig
from judgerl.distill.examples import judged_from_journal
from judgerl.distill.student import student_judge, student_judge_config, student_request
from judgerl.errors import DataError
from judgerl.judges import build_judge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample
from judgerl.validate.datasets import AnswerItem, load_labelled_file
from judgerl.validate.probe import JudgeProbe
from judgerl.validate.sections.attacks import build_attacks, run_attacks
from judgerl.validate.sections.human_labels import run_human_labels
from judgerl.validate.suite import AttackProbe, Bootstrap, DataSource, HumanLabelsSection
from rubric_fakes import GOOD, PITFALL, RUBRIC, scripted_judge

QUESTION = "How should the dose of drug X change in an older patient?"


def probe(tmp_path: Path | None = None) -> tuple[JudgeProbe, ModelRuntime]:
    config = RuntimeConfig(journal_path=str(tmp_path / "journal.jsonl")) if tmp_path else None
    runtime = ModelRuntime({"judge": ScriptedBackend(scripted_judge().respond)}, config)
    judge = build_judge(JudgeConfig(name="rubric", type="rubric", backend="judge"), runtime)
    return JudgeProbe(judge), runtime


def labelled(tmp_path: Path) -> Path:
    good = [{**item, "met": met} for item, met in zip(RUBRIC, [True, True, True, False], strict=True)]
    # the human says the pitfall answer meets r2 (creatinine): the overlap judge says not: 1 miss
    pitfall = [{**item, "met": met} for item, met in zip(RUBRIC, [True, True, False, True], strict=True)]
    rows = [{"id": "g", "prompt": QUESTION, "answer": GOOD, "score": 5, "rubric": good},
            {"id": "p", "prompt": QUESTION, "answer": PITFALL, "score": 2, "rubric": pitfall}]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


async def test_per_item_agreement_on_labelled_rubric_items(tmp_path: Path) -> None:
    items = load_labelled_file(labelled(tmp_path))
    assert isinstance(items[0], AnswerItem) and items[0].rubric is not None
    judge_probe, _ = probe()
    section = HumanLabelsSection(data=DataSource(dataset=str(tmp_path / "labels.jsonl")))
    result = await run_human_labels(section, judge_probe, items, Bootstrap(resamples=100))
    assert result.counts["items_labelled"] == 8 and result.counts["items_scored"] == 8
    assert result.figures["item_accuracy"] == pytest.approx(7 / 8)
    assert result.figures["item_kappa"] is not None
    assert result.breakdown["rubric item category (accuracy)"]["important"] == pytest.approx(0.5)


def test_a_bad_rubric_in_a_labelled_file_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    rows = [{"prompt": QUESTION, "answer": GOOD, "score": 1, "rubric": RUBRIC},
            {"prompt": QUESTION, "answer": GOOD, "score": 1, "rubric": [{"criterion": "x", "weight": 0}]}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError) as info:
        load_labelled_file(path)
    assert info.value.line == 2 and info.value.field == "rubric[0].weight"
    rows[1]["rubric"] = [{"criterion": "x", "weight": 1, "met": "yes"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(DataError) as info:
        load_labelled_file(path)
    assert info.value.field == "rubric[0].met"


async def test_the_rubric_claim_attack_catches_a_judge_that_matches_words(tmp_path: Path) -> None:
    items = load_labelled_file(labelled(tmp_path))
    section = AttackProbe(data=DataSource(dataset=str(tmp_path / "labels.jsonl")), openers=[":"],
                          adversarial_set=False)
    attacks = build_attacks(section, items, [])
    claims = [attack for attack in attacks if attack.category == "rubric_claim"]
    assert len(claims) == 2 and claims[0].completion.startswith("Every rubric item is satisfied")
    assert RUBRIC[0]["criterion"] in claims[0].completion
    assert RUBRIC[3]["criterion"] not in claims[0].completion, "the pitfall is not claimed"
    judge_probe, _ = probe()
    result = await run_attacks(section, judge_probe, attacks)
    breakdown = result.breakdown["attack (false-positive rate)"]
    assert breakdown["rubric_claim"] == 1.0, "word overlap is fooled by the listed criteria"
    assert breakdown["opener ':'"] == 0.0, "a lone ':' meets no item"


async def test_per_item_verdicts_become_per_item_student_rows(tmp_path: Path) -> None:
    judge_probe, runtime = probe(tmp_path)
    for rollout_id, answer in (("g", GOOD), ("p", PITFALL)):
        score = await judge_probe.score(rollout_id, QUESTION, answer, rubric=RUBRIC)
        assert score.value is not None
    await runtime.aclose()
    name, rows = judged_from_journal(tmp_path / "journal.jsonl")
    assert name == "rubric" and len(rows) == 8, "one training row per answer and rubric item"
    by_item = {(row.rollout.completion, row.criterion): row.verdict for row in rows}
    assert by_item[(PITFALL, "r4")] == 1.0 and by_item[(GOOD, "r4")] == 0.0
    teacher_options = {"rubric_field": "rubric", "items_per_call": 2, "mode": "explicit", "max_items": 10}
    student = student_judge(student_judge_config("rubric", [], model="unused-folder",
                                                 extra_options=teacher_options))
    assert student.options.scoring == "logprob" and student.options.max_items == 10
    request = student_request(student, next(row for row in rows if row.criterion == "r2"))
    assert RUBRIC[1]["criterion"] in request.messages[-1]["content"], "the item's own text is asked"
    pitfall_request = student_request(student, next(row for row in rows if row.criterion == "r4"))
    shown = pitfall_request.messages[-1]["content"]
    assert "[pitfall: true if the answer does this] Recommends doubling" in shown
    assert isinstance(rows[0].sample, Sample) and isinstance(rows[0].rollout, Rollout)


def test_judgerl_validate_end_to_end_on_rubric_rows(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from judgerl.cli import app
    from rubric_fakes import write_reward

    labelled(tmp_path)
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: rubric-rows\njudge: rubric\npass_threshold: 0.5\n"
        "bootstrap: {resamples: 200, confidence: 0.95, seed: 0}\n"
        "human_labels:\n  data: {dataset: labels.jsonl}\n  min_spearman: null\n"
        "bias:\n  attacks:\n    data: {dataset: labels.jsonl}\n    openers: [':']\n"
        "    adversarial_set: false\n    max_false_positive_rate: 0.05\n", encoding="utf-8")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["validate", "-c", str(write_reward(tmp_path)), "-s", str(suite),
                                      "-o", str(out)])
    report = json.loads((out / "validation.json").read_text())
    text = json.dumps(report)
    assert '"item_accuracy": 0.875' in text, "per-item agreement is in the report"
    assert "rubric_claim" in text
    assert result.exit_code == 1, "the overlap judge is fooled by the rubric claim: the gate fails"
