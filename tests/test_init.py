"""`judgerl init [DIR]`: a starter project whose printed next commands run as written.

The project is written by the real command into a temporary folder; the printed `score --dry-run`
and `validate --dry-run` commands then run from inside it (no model is called: the neutral
stand-in of dry runs answers every judgment). The same commands against the embedded local judge
load a real model and are marked slow.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl.cli import app
from judgerl.run.starter import FILES, NEXT_COMMANDS, STARTER_DIR
from judgerl.train.recipe import load_recipe
from judgerl.validate.suite import load_suite


def init_project(folder: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["init", str(folder), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def run_printed(command: str, *extra: str) -> tuple[int, str]:
    """Run a printed `judgerl ...` command line in this process (the cwd is the project)."""
    words = shlex.split(command)
    assert words[0] == "judgerl"
    result = CliRunner().invoke(app, [*words[1:], *extra])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_init_writes_the_project_and_prints_the_next_commands(tmp_path: Path) -> None:
    output = init_project(tmp_path / "project")
    for name in FILES:
        written = tmp_path / "project" / name
        assert written.read_bytes() == (STARTER_DIR / name).read_bytes()
        assert f"wrote {written}" in output
    assert f"cd {tmp_path / 'project'}" in output
    for command in NEXT_COMMANDS:
        assert command in output


def test_init_without_a_folder_writes_into_the_current_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(FILES)
    assert "next, from inside the folder:" in result.output and "cd " not in result.output


def test_the_printed_score_dry_run_and_validate_dry_run_run_as_written(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    init_project(project)
    monkeypatch.chdir(project)
    dry_score = next(command for command in NEXT_COMMANDS if command.startswith("judgerl score")
                     and "--dry-run" in command)
    status, output = run_printed(dry_score)
    assert status == 0, output
    rows = [json.loads(line) for line in (project / "dry-run.jsonl").read_text().splitlines()]
    rollouts = (project / "rollouts.jsonl").read_text().splitlines()
    assert len(rows) == len(rollouts) == 8 and {row["status"] for row in rows} == {"ok"}
    assert set(rows[0]["components"]) == {"length", "complete", "clean", "helpful"}
    # the checks are real: the placeholder answer and the one with contact details are not clean
    clean = {row["rollout_id"]: row["components"]["clean"] for row in rows}
    assert clean["late-order/1"] < 1 and clean["refund-time/2"] < 1 and clean["late-order/0"] == 1

    validate = next(command for command in NEXT_COMMANDS if command.startswith("judgerl validate"))
    status, output = run_printed(validate, "--dry-run")
    assert status == 0, output
    assert "dry run" in output and "not enforced" in output
    report = json.loads((project / "runs" / "validation" / "validation.json").read_text())
    assert report["dry_run"] is True and report["judge"] == "helpful"
    assert [section["name"] for section in report["sections"]] == ["regression", "bias.attacks"]
    assert "**dry run**" in (project / "runs" / "validation" / "validation.md").read_text()


def test_init_refuses_to_overwrite_a_file_unless_forced(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "recipe.yaml").write_text("# mine\n")
    result = CliRunner().invoke(app, ["init", str(project)])
    assert result.exit_code == 2
    assert str(project / "recipe.yaml") in result.output and "--force" in result.output
    assert (project / "recipe.yaml").read_text() == "# mine\n"
    assert not (project / "reward.yaml").exists()  # nothing is written when one file is refused
    init_project(project, "--force")
    assert (project / "recipe.yaml").read_bytes() == (STARTER_DIR / "recipe.yaml").read_bytes()


def test_the_recipe_and_suite_load_and_name_the_projects_files(tmp_path: Path) -> None:
    project = tmp_path / "project"
    init_project(project)
    recipe = load_recipe(project / "recipe.yaml")
    assert recipe.path(recipe.data.train) == project / "train.jsonl"
    assert recipe.path(recipe.data.eval) == project / "eval.jsonl"
    assert recipe.path(recipe.validation.suite) == project / "validation.yaml"
    reward = recipe.training_reward_config()
    assert [judge.name for judge in reward.judges] == [load_suite(project / "validation.yaml").judge]
    assert reward.backends["judge"].type == "local"
    assert "# judge:\n  #   type: openai" in (project / "reward.yaml").read_text()


@pytest.mark.slow
def test_the_printed_score_and_validate_run_with_the_embedded_judge(tmp_path: Path, monkeypatch) -> None:
    """The same commands without --dry-run: the embedded 135M judge in-process (slow on a CPU)."""
    project = tmp_path / "project"
    init_project(project)
    monkeypatch.chdir(project)
    score = next(command for command in NEXT_COMMANDS if command.startswith("judgerl score")
                 and "--dry-run" not in command)
    status, output = run_printed(score)
    assert status == 0, output
    rows = [json.loads(line) for line in (project / "rewards.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {row["status"] for row in rows} == {"ok"}
    assert all(0 <= row["components"]["helpful"] <= 1 for row in rows)
    validate = next(command for command in NEXT_COMMANDS if command.startswith("judgerl validate"))
    status, output = run_printed(validate)
    assert status in (0, 1), output  # 1: a threshold missed, which the weak embedded judge may do
    report = json.loads((project / "runs" / "validation" / "validation.json").read_text())
    assert "dry_run" not in report
    assert report["sections"][0]["figures"]["pass_rate"] is not None
