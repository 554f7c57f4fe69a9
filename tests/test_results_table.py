"""`judgerl run` and `judgerl demo` end by printing the run's results table, then the report's path.

The run folder is a finished one written by the test (every stage marked done, three evaluation
summaries with known figures, the report rendered), so the command skips every stage and only
prints: no model is trained or loaded. The printed table must hold the same figures as the
report's results table, and they must be the summaries' own figures (nothing recomputed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from judgerl.cli import app
from judgerl.run.report import render_report, run_results
from judgerl.run.workflow import DEMO_RECIPE, STAGES, Workflow

FIGURES = {  # label: (reward, best-of-k, held-out, length, quality)
    "base": (0.637, 0.785, 0.733, 0.731, 0.512),
    "sft": (0.708, 0.827, 0.883, 0.929, 0.435),
    "rft": (0.815, 0.890, 0.945, 0.992, 0.658),
}


def finish(run_dir: Path, judge: str = "quality") -> None:
    """Write the evaluation summaries of FIGURES (the last figure is the judge's component), mark
    every stage done and render the report."""
    for label, (reward_mean, best, heldout, length, quality) in FIGURES.items():
        (run_dir / "eval" / label).mkdir(parents=True)
        summary = {"k": 4, "prompts": 8, "samples": 32, "reward_mean": reward_mean, "mean_of_k": reward_mean,
                   "best_of_k": best, "heldout": {"reward_mean": heldout},
                   "components": {"length": length, judge: quality}}
        (run_dir / "eval" / label / "summary.json").write_text(json.dumps(summary))
    (run_dir / "stages.json").write_text(json.dumps({"stages": {
        stage: {"status": "done", "seconds": 1.0} for stage in STAGES}}))
    render_report(run_dir)


def finished_run(folder: Path) -> tuple[Path, Path]:
    """A recipe and its run folder with every stage done; returns (recipe, run_dir)."""
    for split in ("train", "eval"):
        row = {"id": f"{split}-0", "prompt": "Say hello."}
        (folder / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    reward = {"backends": {"judge": {"type": "scripted"}},
              "checks": [{"name": "length", "type": "length", "unit": "words", "min": 1, "max": 20}],
              "judges": [{"name": "quality", "type": "rubric", "backend": "judge",
                          "criteria": [{"name": "clear", "description": "the answer is clear"}]}]}
    (folder / "reward.yaml").write_text(yaml.safe_dump(reward))
    recipe = {"model": {"name_or_path": "smollm2-135m-instruct"},
              "data": {"train": "train.jsonl", "eval": "eval.jsonl"}, "reward": "reward.yaml",
              "logging": {"output_dir": "run", "tensorboard": False}, "evaluation": {"k": 4}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    run_dir = Workflow(folder / "recipe.yaml").run_dir  # writes RUN_DIR/recipe.yaml, trains nothing
    finish(run_dir)
    return folder / "recipe.yaml", run_dir


def printed_rows(output: str) -> dict[str, list[str]]:
    """The body rows of the rich table in `output`: {label: [figures]}."""
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if cells and cells[0] in FIGURES:
            found[cells[0]] = cells[1:]
    return found


def report_rows(report: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The header and body rows of the report's results table."""
    page = report.read_text(encoding="utf-8")
    table = re.search(r'<table id="results-table">(.*?)</table>', page, re.DOTALL)
    assert table is not None, "the report has no results table"
    header = re.findall(r"<th>(.*?)</th>", table.group(1))
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.DOTALL)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        rows[cells[0]] = cells[1:]
    return header, rows


def test_the_results_table_holds_the_evaluations_own_figures(tmp_path: Path) -> None:
    _, run_dir = finished_run(tmp_path)
    results = run_results(run_dir)
    assert results.columns == ["model", "training reward (mean)", "best-of-4", "held-out judge (mean)",
                               "length", "judge: quality"]
    assert {row[0]: tuple(row[1:]) for row in results.rows} == FIGURES
    header, rows = report_rows(run_dir / "report.html")
    assert header == results.columns
    assert rows == {label: [f"{value:.3f}" for value in figures] for label, figures in FIGURES.items()}


def test_run_prints_the_reports_results_table_then_its_path(tmp_path: Path) -> None:
    recipe, run_dir = finished_run(tmp_path)
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    _, in_report = report_rows(run_dir / "report.html")
    assert printed_rows(result.output) == in_report
    assert list(printed_rows(result.output)) == ["base", "sft", "rft"]
    header = next(line for line in result.output.splitlines() if "training reward (mean)" in line)
    for column in ("model", "best-of-4", "held-out judge (mean)", "length", "judge: quality"):
        assert column in header  # in a log the table is as wide as it needs: no header is cut
    table_end = result.output.rindex("rft")
    assert result.output.index("report:", table_end) > table_end  # the path comes after the table
    assert str(run_dir / "report.html") in result.output.replace("\n", "")


def test_a_missing_figure_is_a_dash_in_both(tmp_path: Path) -> None:
    _, run_dir = finished_run(tmp_path)
    summary_path = run_dir / "eval" / "base" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["heldout"] = None
    summary_path.write_text(json.dumps(summary))
    render_report(run_dir)
    _, rows = report_rows(run_dir / "report.html")
    assert rows["base"][2] == "–" == run_results(run_dir).formatted_rows()[0][3]


def test_demo_prints_the_results_table_then_the_reports_path(tmp_path: Path) -> None:
    """A finished demo folder (the few-shot judge's: no student to distil): every stage is skipped."""
    run_dir = (tmp_path / "demo").resolve()
    Workflow(DEMO_RECIPE, [f"workflow.run_dir={run_dir}"])  # the demo's recipe.yaml, as the demo writes it
    finish(run_dir, judge="tone")
    result = CliRunner().invoke(app, ["demo", "--judge", "fewshot", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    _, in_report = report_rows(run_dir / "report.html")
    assert printed_rows(result.output) == in_report
    assert result.output.index("demo finished") > result.output.rindex("rft")
    assert "judge: tone" in result.output  # the demo's judge, told from its checks by the run's recipe
    assert "judge: length" not in result.output
