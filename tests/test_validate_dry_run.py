"""`judgerl validate --dry-run`: the suite and the reward config run end to end with no model
called (every backend, the agreement section's second config included, is the neutral stand-in
of dry runs), the report says it is a dry run, and thresholds are shown but gate nothing."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from judgerl.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "validation"


def test_a_dry_run_runs_every_section_without_a_model_and_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-c", str(EXAMPLES / "reward.yaml"), "-s",
                                      str(EXAMPLES / "suite.yaml"), "-o", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output  # the stand-in misses thresholds: shown, not enforced
    report = json.loads((tmp_path / "validation.json").read_text())
    assert report["dry_run"] is True and report["passed"] is False
    names = [section["name"] for section in report["sections"]]
    assert names == ["consistency", "agreement", "human_labels", "regression", "bias.position",
                     "bias.verbosity", "bias.attacks"]
    agreement = next(section for section in report["sections"] if section["name"] == "agreement")
    assert agreement["figures"]["percent_agreement"] == 1.0  # two stand-ins agree on every item
    assert "runtime" in report and report["runtime"]["failed"] == 0
    assert "dry run" in result.output and "not enforced" in result.output


def test_without_dry_run_the_report_has_no_dry_run_mark(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("regression:\n  items:\n    - {id: a, prompt: Hi, answer: Hello, expect: pass}\n")
    config = tmp_path / "reward.yaml"
    config.write_text("backends: {judge: {type: scripted, answer: "
                      "'{\"criteria\": {\"clear\": {\"rationale\": \"ok\", \"score\": true}}}'}}\n"
                      "judges: [{name: q, type: rubric, backend: judge, "
                      "criteria: [{name: clear, description: clear}]}]\n")
    result = CliRunner().invoke(app, ["validate", "-c", str(config), "-s", str(suite), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "validation.json").read_text())
    assert "dry_run" not in report and report["passed"] is True
    assert "dry run" not in result.output


def test_a_misspelt_judge_in_the_suite_names_the_suite_file(tmp_path: Path) -> None:
    """`judge: helpfull` is a field of the suite: the error named the reward config as the file."""
    suite = tmp_path / "suite.yaml"
    suite.write_text("judge: qq\nregression:\n  items:\n"
                     "    - {id: a, prompt: Hi, answer: Hello, expect: pass}\n")
    config = tmp_path / "reward.yaml"
    config.write_text("backends: {judge: {type: scripted}}\n"
                      "judges: [{name: q, type: rubric, backend: judge, "
                      "criteria: [{name: clear, description: clear}]}]\n")
    result = CliRunner().invoke(app, ["validate", "-c", str(config), "-s", str(suite), "-o", str(tmp_path),
                                      "--dry-run"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2
    assert f"{suite}, field 'judge': no judge named 'qq' in the reward config {config}" in text, text
