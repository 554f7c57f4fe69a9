"""`judgerl run examples/contract_review/recipe.yaml`, shortened for CI, on the real embedded model.

Every stage runs for real: the packaged SmolLM2-135M policy (baseline evaluation, SFT, one GRPO
step, final evaluation, export) and the embedded judge behind the schema gate. Shortened by the
overrides the recipe documents: two training contracts, one step each with a group of two,
one held-out contract, short answers (not valid JSON, so the gate gives them 0 without a judge
call), and no validation suite (the full suite asks the 135M judge for long per-comment
verdicts: minutes each).
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from judgerl.cli import app

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "contract_review" / "recipe.yaml"
CI_OVERRIDES = ["trainer.max_steps=1", "rollout.number_generation=2", "trainer.global_batch_size=2",
                "trainer.per_device_batch_size=2", "sft.max_steps=1", "sft.batch_size=2",
                "sft.max_length=1536",
                "data.max_samples=2", "rollout.max_new_tokens=16", "evaluation.limit=1", "evaluation.k=2",
                "evaluation.max_new_tokens=16", "validation.suite=null", "workflow.export_check=false"]


def test_contract_review_workflow_runs_end_to_end(tmp_path: Path):
    run_dir = tmp_path / "contract_review"
    arguments = ["run", str(RECIPE), "--set", f"workflow.run_dir={run_dir}"]
    for override in CI_OVERRIDES:
        arguments += ["--set", override]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    stages = json.loads((run_dir / "stages.json").read_text())["stages"]
    assert stages["validation"]["status"] == "skipped"
    assert all(stages[name]["status"] == "done"
               for name in ("baseline_eval", "sft", "rft", "final_eval", "export", "report"))
    for label in ("base", "sft", "rft"):
        summary = json.loads((run_dir / "eval" / label / "summary.json").read_text())
        assert summary["schema_validity"] is not None and 0.0 <= summary["schema_validity"] <= 1.0
    metrics = [json.loads(line) for line in (run_dir / "rft" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in metrics] == [1]
    assert (run_dir / "export" / "model.safetensors").exists()
    assert "contract" in (run_dir / "report.html").read_text().lower()
