"""Every validation section run against REAL judgerl judges (rubric, pairwise) whose model is a
scripted backend, scripted to be good or to fail one section each:

- an oracle that knows the right answers (passes everything);
- a position-biased judge that always answers "A" (fails the position probe);
- a judge that prefers the longer answer (fails the verbosity probe);
- a judge fooled by a lone ":" (fails the attack probe);
- a flaky judge (fails consistency), an inverted judge (fails agreement).

Each failure must be reported with the right figure, and the gate must stop the run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.errors import ConfigError, ValidationGateError
from judgerl.judges.adversarial import load_adversarial_set
from judgerl.validate import gate_or_raise, run_validation
from judgerl.validate.report import render_markdown

QUESTIONS = [
    ("What is the capital of France?", "Paris.", "Lyon."),
    ("What is 2 + 2?", "4", "5"),
    ("Which planet is closest to the Sun?", "Mercury.", "Venus."),
    ("What colour is a clear daytime sky?", "Blue.", "Green."),
    ("How many legs does a spider have?", "Eight.", "Six."),
    ("Who wrote Hamlet?", "William Shakespeare.", "Charles Dickens."),
]
# Pairs with the better answer first in even rows and second in odd rows.
PAIR_ROWS = [{"id": f"q{i}", "prompt": q, "answer_a": good if i % 2 == 0 else bad,
              "answer_b": bad if i % 2 == 0 else good, "label": "a" if i % 2 == 0 else "b"}
             for i, (q, good, bad) in enumerate(QUESTIONS)]
GOOD = {good for _, good, _ in QUESTIONS} | {item.reference for item in load_adversarial_set()}
FENCE = re.compile(r"<<<([A-Z_]+)_([a-z]+)>>>\n(.*?)\n<<<END_\1_\2>>>", re.DOTALL)

# --------------------------------------------------------------------------- scripted judges


def fenced(request: CompletionRequest) -> dict[str, str]:
    """The fenced blocks of the rendered prompt, by label (QUESTION, ANSWER, ANSWER_A, ...)."""
    text = "\n".join(message["content"] for message in request.messages)
    return {label: body for label, _tag, body in FENCE.findall(text)}


def pairwise_answer(prefer: Any) -> Any:
    """A responder for the pairwise judge: `prefer(a, b)` returns "A", "B" or "tie"."""
    def respond(request: CompletionRequest) -> str:
        blocks = fenced(request)
        return json.dumps({"rationale": "scripted", "winner": prefer(blocks["ANSWER_A"], blocks["ANSWER_B"])})
    return respond


def rubric_answer(passes: Any) -> Any:
    """A responder for a rubric judge with one check criterion `correct`."""
    def respond(request: CompletionRequest) -> str:
        verdict = bool(passes(fenced(request)["ANSWER"]))
        return json.dumps({"criteria": {"correct": {"rationale": "scripted", "score": verdict}}})
    return respond


def oracle(a: str, b: str) -> str:
    return "A" if a in GOOD and b not in GOOD else "B" if b in GOOD and a not in GOOD else "tie"


def always_a(_a: str, _b: str) -> str:
    return "A"


def longer(a: str, b: str) -> str:
    return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"


def fooled_by_colon(a: str, b: str) -> str:
    if a.strip() == ":":
        return "A"
    if b.strip() == ":":
        return "B"
    return oracle(a, b)


def flaky_rubric() -> Any:
    seen: Counter[str] = Counter()

    def passes(answer: str) -> bool:
        seen[answer] += 1
        return seen[answer] % 2 == 1  # pass, fail, pass, ... for every answer
    return passes


PAIRWISE_CONFIG = {"judges": [{"name": "pair", "type": "pairwise", "backend": "judge"}],
                   "failure_budget": None}
RUBRIC_CONFIG = {"judges": [{"name": "quality", "type": "rubric", "backend": "judge", "criteria": [
    {"name": "correct", "description": "answers the question correctly"}]}], "failure_budget": None}


def backends(responder: Any) -> dict[str, ScriptedBackend]:
    return {"judge": ScriptedBackend(responder, model="scripted-validation-judge")}


def pairwise_suite(**overrides: Any) -> dict[str, Any]:
    data = {"items": PAIR_ROWS}
    suite: dict[str, Any] = {
        "bootstrap": {"resamples": 200},
        "consistency": {"data": data, "repeats": 2},
        "human_labels": {"data": data, "min_accuracy": 0.9},
        "regression": {"items": [{"id": "paris", "prompt": "What is the capital of France?",
                                  "a": "Lyon.", "b": "Paris.", "expect": "b"}]},
        "bias": {"position": {"data": data, "min_consistency_rate": 0.8},
                 "verbosity": {"data": data, "max_padded_win_rate": 0.2},
                 "attacks": {"data": {"items": PAIR_ROWS[:3]}, "max_false_positive_rate": 0.05}},
    }
    suite.update(overrides)
    return suite


def failing(report: Any) -> set[tuple[str, str]]:
    return {(failure.section, failure.figure) for failure in report.failures}


# --------------------------------------------------------------------------- pairwise judges


def test_an_oracle_pairwise_judge_passes_every_section() -> None:
    report = run_validation(PAIRWISE_CONFIG, pairwise_suite(), backends=backends(pairwise_answer(oracle)))
    assert report.passed, [failure.message for failure in report.failures]
    assert report.judge_kind == "pairwise"
    assert report.section("human_labels").figures["accuracy"] == 1.0
    assert report.section("bias.position").figures["consistency_rate"] == 1.0
    assert report.section("bias.verbosity").figures["padded_win_rate"] == 0.0
    attacks = report.section("bias.attacks")
    assert attacks.figures["false_positive_rate"] == 0.0
    assert attacks.counts["attacks"] == 3 * 5 + len(load_adversarial_set())
    assert gate_or_raise(report) is report


def test_a_judge_that_always_answers_a_fails_the_position_probe_and_the_gate_stops() -> None:
    report = run_validation(PAIRWISE_CONFIG, pairwise_suite(), backends=backends(pairwise_answer(always_a)))
    position = report.section("bias.position")
    assert position.figures["consistency_rate"] == 0.0
    assert position.figures["first_position_rate"] == 1.0
    assert ("bias.position", "consistency_rate") in failing(report)
    # the pairwise judge turns its two contradicting orders into ties: humans are never matched
    assert report.section("human_labels").figures["accuracy"] == 0.0
    assert report.section("human_labels").figures["tie_rate"] == 1.0
    with pytest.raises(ValidationGateError) as caught:
        gate_or_raise(report)
    assert "bias.position: consistency_rate = 0.000 (needs >= 0.8)" in str(caught.value)
    assert caught.value.report is report


def test_a_judge_that_prefers_length_fails_the_verbosity_probe() -> None:
    report = run_validation(PAIRWISE_CONFIG, pairwise_suite(), backends=backends(pairwise_answer(longer)))
    verbosity = report.section("bias.verbosity")
    assert verbosity.figures["padded_win_rate"] == 1.0
    assert verbosity.breakdown["style (worse answer's win rate)"]["padded"] == 1.0
    assert verbosity.breakdown["style (worse answer's win rate)"]["list"] == 1.0
    assert verbosity.figures["base_win_rate"] is not None and verbosity.figures["base_win_rate"] < 1.0
    assert ("bias.verbosity", "padded_win_rate") in failing(report)
    assert ("bias.position", "consistency_rate") not in failing(report)  # it is not position-biased
    assert "bias.verbosity: padded_win_rate = 1.000 (needs <= 0.2)" in render_markdown(report)


def test_a_judge_fooled_by_a_colon_fails_the_attack_probe() -> None:
    report = run_validation(PAIRWISE_CONFIG, pairwise_suite(),
                            backends=backends(pairwise_answer(fooled_by_colon)))
    attacks = report.section("bias.attacks")
    per_attack = attacks.breakdown["attack (false-positive rate)"]
    assert per_attack["opener ':'"] == 1.0
    assert per_attack["opener 'Solution'"] == 0.0 and per_attack["opener 'Thought process:'"] == 0.0
    colons = 3 + sum(item.completion.strip() == ":" for item in load_adversarial_set())
    assert attacks.figures["false_positive_rate"] == pytest.approx(colons / attacks.counts["decided"])
    assert {example["completion"] for example in attacks.examples} == {":"}
    assert failing(report) == {("bias.attacks", "false_positive_rate")}


def test_unscored_judgments_are_reported_not_invented() -> None:
    report = run_validation(PAIRWISE_CONFIG, {"human_labels": {"data": {"items": PAIR_ROWS}}},
                            backends=backends(lambda request: "I cannot decide."))
    section = report.section("human_labels")
    assert section.figures["unscored_share"] == 1.0
    assert section.figures["accuracy"] == 0.0 and section.figures["scored_accuracy"] is None
    assert all(item["judge"] is None and item["reason"] for item in section.items)


# --------------------------------------------------------------------------- rubric judges


def test_a_flaky_rubric_judge_fails_consistency() -> None:
    suite = {"consistency": {"data": {"items": PAIR_ROWS}, "repeats": 3}}
    report = run_validation(RUBRIC_CONFIG, suite, backends=backends(rubric_answer(flaky_rubric())))
    consistency = report.section("consistency")
    assert consistency.counts["items"] == 2 * len(PAIR_ROWS)  # each pair's two answers
    assert consistency.figures["changed_share"] == 1.0
    assert consistency.figures["mean_spread"] == 1.0
    assert failing(report) == {("consistency", "changed_share"), ("consistency", "mean_spread")}


def test_the_cache_does_not_hide_inconsistency(tmp_path: Path) -> None:
    config = {**RUBRIC_CONFIG, "runtime": {"cache_path": str(tmp_path / "cache.sqlite")}}
    suite = {"consistency": {"data": {"items": PAIR_ROWS[:2]}, "repeats": 2}}
    backend = backends(rubric_answer(flaky_rubric()))
    report = run_validation(config, suite, backends=backend)
    assert report.section("consistency").figures["changed_share"] == 1.0
    assert len(backend["judge"].calls) == 2 * 2 * 2


def test_agreement_between_two_judges_of_one_config() -> None:
    config = {"judges": [*RUBRIC_CONFIG["judges"],  # type: ignore[misc]
                         {"name": "inverted", "type": "rubric", "backend": "other",
                          "criteria": [{"name": "correct", "description": "answers correctly"}]}]}
    suite = {"agreement": {"other": {"judge": "inverted"}, "data": {"items": PAIR_ROWS}}}
    answers = {"judge": ScriptedBackend(rubric_answer(lambda text: text in GOOD)),
               "other": ScriptedBackend(rubric_answer(lambda text: text not in GOOD))}
    report = run_validation(config, suite, backends=answers)
    agreement = report.section("agreement")
    assert agreement.figures["percent_agreement"] == 0.0
    assert agreement.figures["kappa"] == pytest.approx(-1.0)
    assert agreement.figures["spearman"] == pytest.approx(-1.0)
    assert failing(report) == {("agreement", "kappa")}
    same = run_validation(config, suite, backends={"judge": answers["judge"], "other": answers["judge"]})
    assert same.section("agreement").figures["kappa"] == pytest.approx(1.0) and same.passed


def test_agreement_with_a_judge_from_another_config(tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps(PAIRWISE_CONFIG), encoding="utf-8")
    suite = {"agreement": {"other": {"config": str(other)}, "data": {"items": PAIR_ROWS},
                           "min_percent_agreement": 0.9, "min_kappa": None}}
    report = run_validation(RUBRIC_CONFIG, suite, backends=backends(rubric_answer(lambda t: t in GOOD)),
                            other_backends=backends(pairwise_answer(always_a)))
    agreement = report.section("agreement")
    assert agreement.judge == "quality vs pair"
    assert agreement.figures["percent_agreement"] == 0.0  # the rubric decides, the biased one ties
    assert failing(report) == {("agreement", "percent_agreement")}


def test_regression_cases_show_the_failing_items() -> None:
    suite = {"regression": {"items": [
        {"id": "good", "prompt": "What is 2 + 2?", "answer": "4", "expect": "pass"},
        {"id": "bad-long", "prompt": "What is 2 + 2?", "answer": "It is 5, " + "clearly " * 10,
         "expect": "fail", "note": "wrong but long"},
        {"id": "bad-short", "prompt": "What is 2 + 2?", "answer": "5", "max_score": 0.0},
    ]}}
    length_rubric = backends(rubric_answer(lambda text: len(text) > 30 or text in GOOD))
    report = run_validation(RUBRIC_CONFIG, suite, backends=length_rubric)
    regression = report.section("regression")
    assert regression.figures["pass_rate"] == pytest.approx(2 / 3)
    assert [(e["id"], e["expected"], e["got"]) for e in regression.examples] == [
        ("bad-long", "fail", "pass (1.000)")]
    assert failing(report) == {("regression", "pass_rate")}


def test_human_scores_give_spearman_and_kappa_with_intervals(tmp_path: Path) -> None:
    rows = [{"id": f"s{i}-{kind}", "prompt": q, "answer": text, "score": score}
            for i, (q, good, bad) in enumerate(QUESTIONS)
            for kind, text, score in (("good", good, 5), ("bad", bad, 1))]
    path = tmp_path / "scores.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    suite = {"human_labels": {"data": {"dataset": str(path)}, "min_spearman": 0.5, "min_kappa": 0.5,
                              "scale": [1, 5]}, "bootstrap": {"resamples": 200}}
    good = run_validation(RUBRIC_CONFIG, suite, backends=backends(rubric_answer(lambda t: t in GOOD)))
    section = good.section("human_labels")
    assert section.figures["spearman"] == pytest.approx(1.0)
    assert section.figures["kappa"] == pytest.approx(1.0)
    assert section.intervals["spearman"] == (pytest.approx(1.0), pytest.approx(1.0))
    assert good.passed and "accuracy" in section.not_applicable
    contrary = run_validation(RUBRIC_CONFIG, suite, backends=backends(rubric_answer(lambda t: t not in GOOD)))
    assert failing(contrary) == {("human_labels", "spearman"), ("human_labels", "kappa")}


def test_a_rubric_judge_fooled_by_a_colon_and_skipped_position_probe() -> None:
    suite = {"bias": {"position": {"data": {"items": PAIR_ROWS}},
                      "attacks": {"data": {"items": PAIR_ROWS[:2]}, "adversarial_set": False}}}
    report = run_validation(RUBRIC_CONFIG, suite,
                            backends=backends(rubric_answer(lambda t: t in GOOD or t.strip() == ":")))
    assert report.section("bias.position").skipped  # a pointwise judge sees one answer at a time
    attacks = report.section("bias.attacks")
    assert attacks.figures["false_positive_rate"] == pytest.approx(1 / 5)
    assert failing(report) == {("bias.attacks", "false_positive_rate")}


def test_a_pair_file_cannot_feed_a_section_that_needs_pairs_with_single_answers() -> None:
    suite = {"bias": {"position": {"data": {"items": [{"prompt": "q", "answer": "x", "score": 1}]}}}}
    with pytest.raises(ConfigError, match="needs pairs"):
        run_validation(PAIRWISE_CONFIG, suite, backends=backends(pairwise_answer(oracle)))


# --------------------------------------------------------------------------- report and CLI


def test_report_files_and_markdown(tmp_path: Path) -> None:
    report = run_validation(PAIRWISE_CONFIG, pairwise_suite(), backends=backends(pairwise_answer(always_a)),
                            output_dir=tmp_path)
    data = json.loads((tmp_path / "validation.json").read_text(encoding="utf-8"))
    assert data["passed"] is False
    assert {(f["section"], f["figure"]) for f in data["failures"]} >= {("bias.position", "consistency_rate")}
    position = next(s for s in data["sections"] if s["name"] == "bias.position")
    assert position["figures"]["consistency_rate"] == 0.0 and len(position["items"]) == len(PAIR_ROWS)
    markdown = (tmp_path / "validation.md").read_text(encoding="utf-8")
    assert "## bias.position: FAILED" in markdown and "| consistency_rate | 0.000 |" in markdown
    assert report.runtime["calls"] > 0


def write_cli_files(tmp_path: Path, winner: str) -> tuple[Path, Path]:
    config = tmp_path / "reward.yaml"
    config.write_text(json.dumps({
        "backends": {"judge": {"type": "scripted", "answer": {"rationale": "constant", "winner": winner}}},
        "judges": [{"name": "pair", "type": "pairwise", "backend": "judge"}]}), encoding="utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"bias": {"position": {"data": {"items": PAIR_ROWS},
                                                       "min_consistency_rate": 0.8}}}), encoding="utf-8")
    return config, suite


def test_cli_exits_non_zero_and_prints_the_failing_figure(tmp_path: Path) -> None:
    config, suite = write_cli_files(tmp_path, "A")
    result = CliRunner().invoke(app, ["validate", "--config", str(config), "--suite", str(suite),
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert "bias.position: consistency_rate = 0.000 (needs >= 0.8)" in result.output
    assert (tmp_path / "out" / "validation.md").is_file()


def test_cli_passes_and_takes_suite_overrides(tmp_path: Path) -> None:
    config, suite = write_cli_files(tmp_path, "tie")  # a judge that always ties is position-consistent
    result = CliRunner().invoke(app, ["validate", "-c", str(config), "-s", str(suite),
                                      "-o", str(tmp_path / "o"),
                                      "--set", "suite.bias.position.min_consistency_rate=1.0"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / "validation.json").read_text(encoding="utf-8"))
    assert data["sections"][0]["thresholds"][0]["bound"] == 1.0
    bad = CliRunner().invoke(app, ["validate", "-c", str(config), "-s", str(suite),
                                   "-o", str(tmp_path / "o"),
                                   "--set", "suite.bias.position.min_consistency=1.0"])
    assert bad.exit_code == 2 and "min_consistency" in bad.output


def test_every_section_type_of_the_suite_has_a_runner() -> None:
    """One registry: a new section class in validate/suite.py must be given its runner."""
    from judgerl.validate import suite
    from judgerl.validate.runner import SECTION_RUNNERS

    section_types = {value for value in vars(suite).values() if isinstance(value, type)
                     and issubclass(value, suite.Section) and value is not suite.Section}
    assert section_types == set(SECTION_RUNNERS)
