"""examples/rubrics runs from a fresh clone: the scripted variant scores all 80 rollouts offline
(good answers above their flawed twins), every config of the folder loads and dry-runs, and the
recorded run of the embedded judge is a complete rewards file of the rollouts it was run on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from judgerl.cli import app
from judgerl.data import load_rollouts, load_samples
from judgerl.rubric_items import parse_rubric_items

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rubrics"
runner = CliRunner()


def rewards(path: Path) -> dict[str, dict]:
    return {row["rollout_id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_the_data_is_40_prompts_with_valid_rubrics() -> None:
    samples = load_samples(EXAMPLE / "prompts.jsonl")
    assert not samples.errors and len(samples.samples) == 40
    for sample in samples.samples:
        items = parse_rubric_items(sample.metadata["rubric"])
        assert any(item.pitfall for item in items) and sample.reference
    pairs = load_rollouts(EXAMPLE / "rollouts.jsonl")
    assert not pairs.errors and len(pairs.pairs) == 80


def test_the_scripted_variant_scores_every_rollout(tmp_path: Path) -> None:
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, ["score", "-c", str(EXAMPLE / "reward_scripted.yaml"),
                                 "-i", str(EXAMPLE / "rollouts.jsonl"), "-o", str(output)])
    assert result.exit_code == 0, result.output
    rows = rewards(output)
    assert len(rows) == 80 and all(row["status"] == "ok" for row in rows.values())
    ordered = sum(rows[f"{key}/good"]["value"] > rows[f"{key}/flawed"]["value"]
                  for key in {rid.rsplit("/", 1)[0] for rid in rows})
    assert ordered >= 36, "the good answer beats its flawed twin on (nearly) every prompt"


@pytest.mark.parametrize("config", ["reward.yaml", "reward_endpoint.yaml", "reward_panel.yaml"])
def test_the_other_configs_load_and_dry_run(config: str, tmp_path: Path) -> None:
    output = tmp_path / "dry.jsonl"
    result = runner.invoke(app, ["score", "-c", str(EXAMPLE / config), "-i", str(EXAMPLE / "rollouts.jsonl"),
                                 "-o", str(output), "--dry-run",
                                 "--set", f"runtime.cache_path={tmp_path / 'c.sqlite'}",
                                 "--set", f"runtime.journal_path={tmp_path / 'j.jsonl'}"])
    assert result.exit_code == 0, result.output
    assert {row["status"] for row in rewards(output).values()} == {"ok"}


def test_the_recorded_embedded_run_is_complete() -> None:
    """rewards.jsonl is `judgerl score` of reward.yaml on the first 20 rollouts (10 prompts)."""
    rows = rewards(EXAMPLE / "rewards.jsonl")
    lines = (EXAMPLE / "rollouts.jsonl").read_text().splitlines()[:20]
    assert set(rows) == {json.loads(line)["rollout_id"] for line in lines}
    assert all(row["details"]["scores"]["rubric"]["details"]["scoring"] == "logprob"
               for row in rows.values() if row["status"] == "ok")
