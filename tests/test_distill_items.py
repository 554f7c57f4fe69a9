"""Distillation from verdicts on the items of per-prompt rubrics (`judgerl validate`'s scored format
with `met` per rubric item): each labelled item becomes a training row r1, r2, ... on a sample that
carries the rubric without the verdicts, and `distill` trains a tiny real student on them with the
item template, writing a snippet that judges a row's own rubric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from judgerl.distill.agreement import Thresholds
from judgerl.distill.command import distill
from judgerl.distill.examples import has_item_verdicts, judged_from_labelled_items, split_by_sample
from judgerl.distill.student import TrainSettings, student_judge, student_judge_config, student_request
from judgerl.errors import DataError
from judgerl.validate.datasets import load_labelled_file
from tiny_policy import build_corpus_model_dir

ITEM_PROMPT = "rubric_item_student"
CONTRACTS = ["The Supplier may raise prices at any time without notice.",
             "This Agreement renews every year unless cancelled 180 days before.",
             "Either party may assign this Agreement without consent.",
             "The Customer indemnifies the Supplier for all losses of any kind.",
             "Notices may be given by email only.",
             "The Supplier may end this Agreement at once without reason.",
             "Liability of the Supplier is unlimited for all claims.",
             "The Customer must pay within 7 days of any invoice."]
RULES = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"]


def item(quote: str, rule: str) -> str:
    return f'Quotes "{quote}", names rule {rule}'


def comment(quote: str, rule: str) -> str:
    return json.dumps({"comments": [{"quote": quote, "rule": rule, "fix": "Change it."}]})


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def labelled_rows(contracts: list[str], start: int = 0) -> list[dict[str, Any]]:
    """For each contract (one planted issue, its rule): the right comment (met) and one naming the
    wrong rule (not met)."""
    rows = []
    for index, contract in enumerate(contracts, start=start):
        rule, wrong = RULES[index % len(RULES)], RULES[(index + 3) % len(RULES)]
        prompt = f"CONTRACT:\n{contract}\nFlag each clause that breaks a rule."
        rubric = [{"criterion": item(contract, rule), "weight": 1}]
        rows.append({"id": f"c{index}:expert", "prompt": prompt, "answer": comment(contract, rule),
                     "score": 1, "category": "expert", "rubric": [{**rubric[0], "met": True}]})
        rows.append({"id": f"c{index}:wrong_rule", "prompt": prompt, "answer": comment(contract, wrong),
                     "score": 0, "category": "wrong_rule", "rubric": [{**rubric[0], "met": False}]})
    return rows


# -- the rows --------------------------------------------------------------------------------------


def test_each_labelled_item_is_a_row_on_a_sample_that_carries_the_rubric_without_verdicts(
        tmp_path: Path) -> None:
    rubric = [{"criterion": "names rule P2", "weight": 1},
              {"criterion": "quotes the term clause", "weight": 2},
              {"criterion": "asks for a 24 month cap", "weight": 1, "category": "important"}]
    rows = [{"id": "a", "prompt": "Review contract one.", "answer": "answer a", "score": 0.5,
             "rubric": [{**rubric[0], "met": True}, {**rubric[1], "met": False}, rubric[2]]},
            {"id": "b", "prompt": "Review contract one.", "answer": "answer b", "score": 1,
             "rubric": [{**entry, "met": True} for entry in rubric]},
            {"id": "c", "prompt": "Review contract two.", "answer": "answer c", "score": 0,
             "reference": "the expert's review", "rubric": [{**rubric[0], "met": False}]}]
    path = write(tmp_path / "items.jsonl", rows)
    assert has_item_verdicts(load_labelled_file(path))
    judged = judged_from_labelled_items(path)
    # a: r1 and r2 (r3 has no verdict), b: r1-r3, c: r1
    assert [(row.rollout.id, row.criterion, row.verdict) for row in judged] == [
        ("a", "r1", 1.0), ("a", "r2", 0.0), ("b", "r1", 1.0), ("b", "r2", 1.0), ("b", "r3", 1.0),
        ("c", "r1", 0.0)]
    assert all(row.kind == "check" for row in judged)
    by_answer = {row.rollout.id: row for row in judged}
    assert by_answer["a"].sample.metadata["rubric"] == rubric, "the whole rubric, `met` stripped"
    assert by_answer["c"].sample.metadata["rubric"] == [rubric[0]]
    assert all("met" not in entry for row in judged for entry in row.sample.metadata["rubric"])
    assert by_answer["a"].rollout.completion == "answer a"
    assert by_answer["c"].sample.reference == "the expert's review"
    # one sample per prompt: the answers to one contract stay on one side of a split
    assert by_answer["a"].sample.id == by_answer["b"].sample.id != by_answer["c"].sample.id
    assert by_answer["a"].sample.messages == [{"role": "user", "content": "Review contract one."}]
    train, held = split_by_sample(judged, held_out=0.5)
    assert {row.sample.id for row in train}.isdisjoint({row.sample.id for row in held})
    assert len(train) + len(held) == len(judged)


def test_the_student_is_asked_about_the_item_with_the_item_template(tmp_path: Path) -> None:
    path = write(tmp_path / "items.jsonl", labelled_rows(CONTRACTS[:2]))
    judged = judged_from_labelled_items(path)
    judge = student_judge(student_judge_config("issues", [], model="unused",
                                               extra_options={"rubric_field": "rubric"}, prompt=ITEM_PROMPT))
    for row in judged:
        request = student_request(judge, row)
        text = "\n".join(message["content"] for message in request.messages)
        assert row.sample.metadata["rubric"][int(row.criterion[1:]) - 1]["criterion"] in text
        assert row.rollout.completion in text
        assert "Grade the review against one rubric item." in text  # rubric_item_student, not the teacher's


def test_a_row_without_a_rubric_is_refused_naming_the_file_and_the_row(tmp_path: Path) -> None:
    rows = labelled_rows(CONTRACTS[:1])
    rows.append({"id": "bare-row", "prompt": "Review this.", "answer": "x", "score": 1})
    path = write(tmp_path / "mixed.jsonl", rows)
    assert has_item_verdicts(load_labelled_file(path))
    with pytest.raises(DataError, match="bare-row") as caught:
        judged_from_labelled_items(path)
    assert str(path) in str(caught.value) and "rubric" in str(caught.value)


def test_a_file_without_any_met_is_refused(tmp_path: Path) -> None:
    rows = [{**row, "rubric": [{key: value for key, value in entry.items() if key != "met"}
                               for entry in row["rubric"]]} for row in labelled_rows(CONTRACTS[:2])]
    path = write(tmp_path / "no-met.jsonl", rows)
    assert not has_item_verdicts(load_labelled_file(path))
    with pytest.raises(DataError, match="met") as caught:
        judged_from_labelled_items(path)
    assert str(path) in str(caught.value)


def test_a_file_whose_verdicts_are_all_equal_is_refused(tmp_path: Path) -> None:
    rows = [row for row in labelled_rows(CONTRACTS[:3]) if row["category"] == "expert"]
    path = write(tmp_path / "all-met.jsonl", rows)
    with pytest.raises(DataError, match="same verdict") as caught:
        judged_from_labelled_items(path)
    assert str(path) in str(caught.value)


def test_a_met_that_is_not_a_boolean_is_refused_with_its_line_and_field(tmp_path: Path) -> None:
    rows = labelled_rows(CONTRACTS[:2])
    rows[2]["rubric"][0]["met"] = "yes"
    path = write(tmp_path / "bad-met.jsonl", rows)
    with pytest.raises(DataError, match=r"line 3.*rubric\[0\]\.met") as caught:
        judged_from_labelled_items(path)
    assert str(path) in str(caught.value)


# -- the whole distillation -----------------------------------------------------------------------


def test_distill_trains_a_tiny_item_student_from_an_item_labelled_file(tmp_path: Path) -> None:
    from judgerl.judges.templates import load_prompt

    train = write(tmp_path / "train.jsonl", labelled_rows(CONTRACTS[:6]))
    held = write(tmp_path / "held.jsonl", labelled_rows(CONTRACTS[6:], start=6))
    corpus = [load_prompt(ITEM_PROMPT).text, *train.read_text().splitlines(), *held.read_text().splitlines(),
              "PASS", "FAIL"]
    base = build_corpus_model_dir(tmp_path / "base", corpus)
    result = distill(out_dir=tmp_path / "student", base_model=str(base), labelled=train,
                     held_out_labelled=held, criterion="issues", prompt=ITEM_PROMPT,
                     settings=TrainSettings(method="full", epochs=1, learning_rate=3e-3),
                     thresholds=Thresholds(min_accuracy=0, min_kappa=-1))
    assert result.train_rows == 12 and (result.model_dir / "config.json").is_file()
    snippet = yaml.safe_load(result.snippet.read_text(encoding="utf-8"))
    [judge] = snippet["judges"]
    assert judge["name"] == "issues" and judge["prompt"] == ITEM_PROMPT
    assert judge["rubric_field"] == "rubric" and judge["criteria"] == []
    assert judge["scoring"] == "logprob" and snippet["backends"]["student"]["model"] == "model"
    report = json.loads(result.report_paths["json"].read_text(encoding="utf-8"))
    # r1, r2, ... are positions in each row's own rubric: measured and gated together, under the judge
    assert [criterion["criterion"] for criterion in report["criteria"]] == ["issues"]
    assert report["criteria"][0]["rows"] == 4 and report["held_out_rows"] == 4
    assert report["criteria"][0]["accuracy"] is not None and report["passed"]
    assert result.report_paths["markdown"].is_file()


def test_a_held_out_file_sharing_a_contract_with_training_is_refused(tmp_path: Path) -> None:
    from judgerl.errors import ConfigError

    train = write(tmp_path / "train.jsonl", labelled_rows(CONTRACTS[:3]))
    held = write(tmp_path / "held.jsonl", labelled_rows(CONTRACTS[2:4], start=2))
    with pytest.raises(ConfigError, match="hold out whole questions"):
        distill(out_dir=tmp_path / "out", base_model="unused", labelled=train, held_out_labelled=held,
                prompt=ITEM_PROMPT)
    assert not (tmp_path / "out").exists(), "refused before any training"


def test_the_cli_takes_the_student_template_and_refuses_an_unknown_one_before_training(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from judgerl.cli import app

    train = write(tmp_path / "train.jsonl", labelled_rows(CONTRACTS[:4]))
    result = CliRunner().invoke(app, ["distill", "--labelled", str(train), "--output", str(tmp_path / "out"),
                                      "--prompt", "no_such_template"])
    assert result.exit_code != 0
    assert "no shipped prompt 'no_such_template'" in result.output and "rubric_item_student" in result.output
    assert not (tmp_path / "out" / "model").exists(), "nothing was trained"
