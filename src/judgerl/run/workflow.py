"""`judgerl run`: the whole RFT workflow in one resumable run directory.

baseline evaluation -> judge validation (the gate) -> SFT baseline (optional) -> RFT training ->
final evaluation -> export -> report. Each stage records in `RUN_DIR/stages.json` that it
finished; a rerun after a crash or Ctrl-C skips the finished stages and continues the first
unfinished one (training resumes from its last checkpoint, evaluation keeps the prompts it had
scored). Every stage calls the module that owns it (evaluate, validate, train, export, report);
this module only decides the order, the paths and what counts as done.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console

from judgerl.errors import ConfigError
from judgerl.run.folder import STAGES_FILE, read_stages
from judgerl.train.recipe import Recipe, load_recipe

if TYPE_CHECKING:
    from judgerl.models.policy import SamplingConfig
    from judgerl.types import Sample

STAGES = ("baseline_eval", "validation", "sft", "rft", "final_eval", "export", "report")
DEMO_RECIPE = Path(__file__).resolve().parents[1] / "demo" / "recipe.yaml"
# `judgerl demo --quick` and CI: every stage runs, on a couple of prompts and steps.
QUICK_OVERRIDES = ["trainer.max_steps=2", "trainer.save_steps=1", "sft.max_steps=2", "data.max_samples=4",
                   "evaluation.limit=2", "evaluation.k=2", "workflow.export_check=false"]


@dataclass
class StageLog:
    """RUN_DIR/stages.json: which stages finished, when, and what they left behind."""

    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def open(cls, run_dir: Path) -> StageLog:
        return cls(run_dir / STAGES_FILE, read_stages(run_dir))

    def done(self, stage: str) -> bool:
        return self.stages.get(stage, {}).get("status") in {"done", "skipped"}

    def mark(self, stage: str, status: str, seconds: float, **outputs: Any) -> None:
        self.stages[stage] = {"status": status, "seconds": round(seconds, 1),
                              "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "outputs": {key: str(value) for key, value in outputs.items()}}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"stages": self.stages}, indent=2))
        os.replace(temporary, self.path)


def run_recipe_paths(recipe: Recipe, overrides: list[str], source: str | Path) -> tuple[Recipe, Path]:
    """The recipe again, with the SFT and RFT outputs placed inside the run directory and every
    file it names made absolute, so that RUN_DIR/recipe.yaml stands on its own (export reads it)."""
    run_dir = recipe.path(recipe.workflow.run_dir or recipe.logging.output_dir).resolve()
    placed = [f"logging.output_dir={run_dir / 'rft'}", f"sft.output_dir={run_dir / 'sft'}"]
    files = {"data.train": recipe.data.train, "data.eval": recipe.data.eval, "reward": recipe.reward,
             "monitors.held_out_reward": recipe.monitors.held_out_reward,
             "evaluation.heldout_reward": recipe.evaluation.heldout_reward,
             "validation.suite": recipe.validation.suite}
    for key, value in files.items():
        if isinstance(value, str):
            placed.append(f"{key}={recipe.path(value).resolve()}")
    if recipe.path(recipe.model.name_or_path).exists():
        placed.append(f"model.name_or_path={recipe.path(recipe.model.name_or_path).resolve()}")
    return load_recipe(source, [*placed, *overrides]), run_dir


#: settings a resumed run may change: raising a judge's spending budget is how a run it stopped goes on
BUDGET_KEYS = ("runtime.budget_usd", "runtime.budget_tokens")


def refuse_other_settings(run_dir: Path, recipe: dict[str, Any]) -> None:
    """A folder whose stages finished under other settings is not resumed: its finished stages
    would be skipped and the report would mix two runs (say, `--quick` and then the full run).
    The judges' spending budgets (`BUDGET_KEYS`) are exempt: a run stopped by its budget is resumed
    with a raised one."""
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        return
    before = _flatten(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    now = _flatten(recipe)
    changed = sorted(key for key in before.keys() | now.keys()
                     if before.get(key) != now.get(key) and not key.endswith(BUDGET_KEYS))
    if changed:
        shown = ", ".join(f"{key}: {before.get(key)!r} -> {now.get(key)!r}" for key in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise ConfigError(f"this folder holds a run with other settings ({shown}{more}); its finished "
                          "stages would be skipped: use another --run-dir (or workflow.run_dir) or "
                          "delete this one", path=str(run_dir))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}, "c": [2]} -> {"a.b": 1, "c": [2]}

    >>> _flatten({"a": {"b": 1, "c": {}}, "d": [2]})
    {'a.b': 1, 'a.c': {}, 'd': [2]}
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def evaluation_inputs(recipe: Recipe) -> tuple[list[Sample], SamplingConfig]:
    """(the held-out prompts: data.eval, its first `evaluation.limit`; the `SamplingConfig` the
    recipe's `evaluation` section asks for): what every evaluation of a recipe's models samples."""
    from judgerl.models.policy import SamplingConfig
    from judgerl.train.splits import load_split

    evaluation = recipe.evaluation
    samples = load_split(recipe, "eval")[: evaluation.limit]
    sampling = SamplingConfig(k=evaluation.k, temperature=evaluation.temperature, top_p=evaluation.top_p,
                              max_new_tokens=evaluation.max_new_tokens or recipe.rollout.max_new_tokens,
                              seed=evaluation.seed, batch_size=evaluation.batch_size)
    return samples, sampling


def trained_model(folder: Path) -> Path:
    """What to evaluate for a training output: the merged final model, the final adapter, or
    the last checkpoint."""
    for candidate in (folder / "final" / "merged", folder / "final"):
        if (candidate / "config.json").is_file() or (candidate / "adapter_config.json").is_file():
            return candidate
    return folder


class Workflow:
    """Runs the stages of one recipe; `run()` returns the report path."""

    def __init__(self, source: str | Path, overrides: list[str] | None = None, *,
                 skip_validation: bool = False, backends: dict[str, Any] | None = None,
                 console: Console | None = None, stop_after: str | None = None) -> None:
        overrides = list(overrides or [])
        self.recipe, self.run_dir = run_recipe_paths(load_recipe(source, overrides), overrides, source)
        if not self.recipe.data.eval:
            raise ConfigError("judgerl run needs data.eval: the held-out prompts evaluated before and "
                              "after training", path=self.recipe.source, field="data.eval")
        if stop_after is not None and stop_after not in STAGES:
            raise ConfigError(f"unknown stage '{stop_after}'; stages: {', '.join(STAGES)}",
                              field="--stop-after")
        self.skip_validation = skip_validation
        self.backends = backends
        self.console = console or Console(stderr=True)
        self.stop_after = stop_after
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = StageLog.open(self.run_dir)
        recipe = self.recipe.model_dump(mode="json")
        if self.log.stages:
            refuse_other_settings(self.run_dir, recipe)
        (self.run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))

    # -- the stages ------------------------------------------------------------------------

    def run(self) -> Path:
        plan: list[tuple[str, Callable[[], dict[str, Any] | None]]] = [
            ("baseline_eval", lambda: self.evaluate({"base": self.recipe.model.name_or_path})),
            ("validation", self.validation),
            ("sft", self.sft),
            ("rft", self.rft),
            ("final_eval", self.final_eval),
            ("export", self.export),
            ("report", self.report),
        ]
        for stage, action in plan:
            if self.log.done(stage):
                self.console.print(f"[dim]stage {stage}: done before, skipped[/]")
            else:
                self.console.rule(f"[bold]{stage}")
                started = time.monotonic()
                outputs = action()
                status = "skipped" if outputs is None else "done"
                self.log.mark(stage, status, time.monotonic() - started, **(outputs or {}))
                self.console.print(f"stage {stage}: {status} in {time.monotonic() - started:.0f} s")
            if stage == self.stop_after:
                break
        return self.run_dir / "report.html"

    def evaluate(self, models: dict[str, str | Path]) -> dict[str, Any]:
        from judgerl.run.evaluate import ModelSpec, evaluate_models

        recipe, evaluation = self.recipe, self.recipe.evaluation
        samples, sampling = evaluation_inputs(recipe)
        summary = evaluate_models(
            {label: ModelSpec(source=str(source)) for label, source in models.items()}, samples,
            recipe.training_reward_config(), k=evaluation.k,
            heldout_reward_config=recipe.evaluation_heldout_reward_config(), out_dir=self.run_dir,
            sampling=sampling,
            backends=self.backends, heldout_backends=self.backends, resume=True)
        return {label: self.run_dir / "eval" / label / "summary.json" for label in summary.models}

    def validation(self) -> dict[str, Any] | None:
        suite = self.recipe.validation.suite
        if not suite:
            self.console.print("no validation suite in the recipe (validation.suite)")
            return None
        from judgerl.validate.gate import gate_or_raise
        from judgerl.validate.runner import run_validation

        report = run_validation(self.recipe.training_reward_config(),
                                self.recipe.path(suite), backends=self.backends,
                                output_dir=self.run_dir / "validation")
        if self.skip_validation or not self.recipe.workflow.validation_gate:
            why = "--skip-validation" if self.skip_validation else "workflow.validation_gate: false"
            failures = "; ".join(failure.message for failure in report.failures) or "none"
            self.console.print(f"[yellow]validation gate off ({why});[/] failing figures: {failures}")
        else:
            gate_or_raise(report)
        return {"report": self.run_dir / "validation" / "validation.json"}

    def sft(self) -> dict[str, Any] | None:
        if not self.recipe.workflow.sft:
            return None
        from judgerl.train.sft import sft

        output = self.recipe.sft_output_dir
        result = sft(self.recipe, resume=_has_checkpoints(output), console=self.console)
        return {"model": result.final_dir}

    def rft(self) -> dict[str, Any]:
        from judgerl.train.grpo import train

        recipe = self.rft_recipe()
        output = recipe.output_dir
        result = train(recipe, resume=_has_checkpoints(output), skip_validation=True,
                       backends=self.backends, console=self.console)
        return {"model": result.final_dir, "metrics": result.metrics_path,
                "started_from": recipe.model.name_or_path}

    def rft_recipe(self) -> Recipe:
        """The recipe RFT trains with: as written, or starting from the SFT model (workflow.rft_from)."""
        if self.recipe.workflow.rft_from == "base":
            return self.recipe
        start = trained_model(self.recipe.sft_output_dir)
        if not self.recipe.workflow.sft or not (start / "config.json").is_file():
            raise ConfigError(f"workflow.rft_from: sft needs the SFT stage's merged model, not found in "
                              f"{self.recipe.sft_output_dir} (set workflow.sft: true and "
                              "logging.save_merged: true)",
                              path=self.recipe.source, field="workflow.rft_from")
        model = self.recipe.model.model_copy(update={"name_or_path": str(start)})
        return self.recipe.model_copy(update={"model": model})

    def final_eval(self) -> dict[str, Any]:
        models: dict[str, str | Path] = {}
        if self.log.stages.get("sft", {}).get("status") == "done":
            models["sft"] = trained_model(self.recipe.sft_output_dir)
        models["rft"] = trained_model(self.recipe.output_dir)
        return self.evaluate(models)

    def export(self) -> dict[str, Any] | None:
        if not self.recipe.workflow.export:
            return None
        from judgerl.run.export import export_run

        result = export_run(self.run_dir, self.run_dir / "export", check=self.recipe.workflow.export_check,
                            backends=self.backends, heldout_backends=self.backends)
        return {"export": result.output, "card": result.card}

    def report(self) -> dict[str, Any]:
        from judgerl.run.report import render_report

        return {"report": render_report(self.run_dir)}


def _has_checkpoints(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("checkpoint-*"))
