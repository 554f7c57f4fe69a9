"""`judgerl validate` on a panel judge: the panel measured as one judge, each member's own figures,
the members' agreement with each other and the abstention rate, from one pass over the items.

The members are real rubric / pairwise judges on scripted backends (named so), scripted to be right
(an oracle) or wrong in a known way, so every figure has a value worked out by hand below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.errors import ConfigError
from judgerl.validate import run_validation
from test_validate_judges import GOOD, PAIR_ROWS, QUESTIONS, always_a, oracle, pairwise_answer, rubric_answer

CRITERIA = [{"name": "correct", "description": "answers the question correctly"}]
SCORE_ROWS = [{"id": f"s{i}-{kind}", "prompt": q, "answer": text, "score": score}
              for i, (q, good, bad) in enumerate(QUESTIONS)
              for kind, text, score in (("good", good, 5), ("bad", bad, 1))]


def rubric_panel(**options: Any) -> dict[str, Any]:
    members = [{"name": name, "type": "rubric", "backend": name, "criteria": CRITERIA}
               for name in ("right", "right2", "lenient")]
    return {"failure_budget": None,
            "judges": [{"name": "panel", "type": "panel", "members": members, **options}]}


def rubric_backends() -> dict[str, ScriptedBackend]:
    right = rubric_answer(lambda text: text in GOOD)
    return {"right": ScriptedBackend(right, model="scripted-right"),
            "right2": ScriptedBackend(right, model="scripted-right-2"),
            "lenient": ScriptedBackend(rubric_answer(lambda text: True), model="scripted-lenient")}


def scores_suite(min_spearman: float | None = None, **panel: Any) -> dict[str, Any]:
    suite: dict[str, Any] = {"human_labels": {"data": {"items": SCORE_ROWS}, "min_spearman": min_spearman},
                             "bootstrap": {"resamples": 200}}
    if panel:
        suite["panel"] = panel
    return suite


def test_a_panel_is_measured_as_one_judge_and_member_by_member() -> None:
    report = run_validation(rubric_panel(combine="majority"), scores_suite(0.5, min_members_kappa=0.2),
                            backends=rubric_backends())
    human = report.section("human_labels")
    assert human.figures["spearman"] == pytest.approx(1.0)  # 2 of 3 members are right on every item
    panel = report.section("panel")
    assert panel.breakdown["member (spearman)"]["right"] == pytest.approx(1.0)
    assert panel.breakdown["member (spearman)"]["lenient"] is None  # a constant judge has no rho
    # verdicts: right == right2 everywhere; lenient agrees with them on the 6 good answers only
    assert panel.figures["members_percent_agreement"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert panel.figures["members_kappa"] == pytest.approx((1 + 0 + 0) / 3)
    # Fleiss: P_good = 1, P_bad = 1/3 -> P = 2/3; p_pass = 2/3 -> P_e = 5/9; kappa = (1/9) / (4/9)
    assert panel.figures["fleiss_kappa"] == pytest.approx(0.25)
    assert panel.figures["abstention_rate"] == 0.0 and panel.counts["judged_by_all"] == 12
    assert report.passed


def test_the_abstention_rate_is_reported_and_gated() -> None:
    report = run_validation(rubric_panel(abstain_if={"spread_above": 0.5}),
                            scores_suite(max_abstention_rate=0.2), backends=rubric_backends())
    human, panel = report.section("human_labels"), report.section("panel")
    assert human.figures["unscored_share"] == pytest.approx(0.5)  # every bad answer: 0, 0 vs 1
    assert panel.figures["abstention_rate"] == pytest.approx(0.5)
    assert panel.counts["abstained"] == 6
    failures = [(failure.section, failure.figure) for failure in report.failures]
    assert failures == [("panel", "abstention_rate")]


def test_a_pairwise_panel_gives_each_members_accuracy_on_pairs() -> None:
    members = [{"name": "oracle", "type": "pairwise", "backend": "oracle"},
               {"name": "first", "type": "pairwise", "backend": "first"}]
    config = {"failure_budget": None, "judges": [{"name": "panel", "type": "panel", "members": members,
                                                  "quorum": 2}]}
    backends = {"oracle": ScriptedBackend(pairwise_answer(oracle), model="scripted-oracle"),
                "first": ScriptedBackend(pairwise_answer(always_a), model="scripted-always-a")}
    report = run_validation(config, {"human_labels": {"data": {"items": PAIR_ROWS}}}, backends=backends)
    assert report.section("human_labels").figures["accuracy"] == 1.0  # mean of 1 (or 0) and a tie
    panel = report.section("panel")
    assert panel.breakdown["member (accuracy)"] == {"oracle": 1.0, "first": 0.0}  # always A: a tie
    assert panel.figures["members_percent_agreement"] == 0.0


def test_a_panel_section_needs_a_panel_judge_and_human_labels(tmp_path: Path) -> None:
    rubric = {"judges": [{"name": "quality", "type": "rubric", "backend": "judge", "criteria": CRITERIA}]}
    with pytest.raises(ConfigError, match="panel judge") as caught:
        run_validation(rubric, scores_suite(max_abstention_rate=0.2),
                       backends={"judge": ScriptedBackend(rubric_answer(lambda text: True))})
    assert caught.value.field == "panel"
    with pytest.raises(ConfigError, match="human_labels"):
        run_validation(rubric_panel(), {"panel": {"max_abstention_rate": 0.2}}, backends=rubric_backends())


def test_the_cli_prints_the_panels_figures(tmp_path: Path) -> None:
    config = rubric_panel(abstain_if={"spread_above": 0.5})
    config["backends"] = {name: {"type": "scripted", "answer": {"criteria": {"correct": {
        "rationale": "scripted", "score": name != "lenient"}}}} for name in ("right", "right2", "lenient")}
    (tmp_path / "reward.yaml").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "suite.yaml").write_text(json.dumps(scores_suite()), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", "-c", str(tmp_path / "reward.yaml"),
                                      "--suite", str(tmp_path / "suite.yaml"), "-o", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "validation.json").read_text(encoding="utf-8"))
    panel = next(section for section in report["sections"] if section["name"] == "panel")
    assert panel["figures"]["abstention_rate"] == 1.0, result.output  # 1, 1 vs 0 on every item
    assert "panel" in result.output
