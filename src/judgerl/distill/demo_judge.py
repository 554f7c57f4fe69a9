"""`judgerl demo` (its default `--judge student`): the demo rewarded by a judge distilled for it.

Why: the demo's embedded few-shot judge does not move under RFT (docs/benchmarks.md), so the demo showed RLVR
with a noisy judge. This module distils the packaged student on the specific-reply labelled set
(`judgerl/data/specific-reply`: "the reply addresses the specific thing the customer wrote, not a
generic apology"), gates it on the held-out scenarios like `judgerl distill`, and writes the demo's
reward config with the student's rubric judge (`scoring: logprob`, its own template, the `local`
backend on the student's folder) next to the demo's checks. A student trained on a previous run
is reused when the labelled data and the training settings hash the same, so a second demo does
not pay for distillation again. The workflow itself is `judgerl run`'s; this module only adds the
distillation stage in front of it and the per-stage timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from judgerl.config import read_yaml
from judgerl.distill.agreement import DistillGateError, Thresholds
from judgerl.distill.command import ADAPTER_FOLDER, MODEL_FOLDER, distill
from judgerl.distill.student import STUDENT_PROMPT, TrainSettings, student_judge_config
from judgerl.errors import ConfigError
from judgerl.run.folder import read_stages
from judgerl.run.workflow import DEMO_RECIPE, Workflow

CRITERION = "specific"
DESCRIPTION = "The reply addresses the specific thing the customer wrote, not a generic apology."
#: the demo's reward backend name for the student (the demo's own `judge` backend stays as it is)
BACKEND = "student"
#: the student's weight next to the demo's checks (length 2, complete 1, offers_help 0.5, clean 1)
DEFAULT_WEIGHT = 2.0
MANIFEST = "student.json"
STUDENT_DIR = "student"
REWARD_FILE = "reward-student.yaml"
#: what `--judge` accepts: the distilled student (default) or the embedded few-shot tone judge
DEMO_JUDGES = ("student", "fewshot")
#: `--quick`: the student sees every QUICK_EVERY-th labelled row for one epoch; a smoke run of
#: the distillation stage, so its gate figures are printed and recorded but not enforced
QUICK_EVERY = 4
QUICK_DATA_DIR = "student-data"


def specific_reply_data() -> tuple[Path, Path]:
    """The packaged specific-reply set: (train.jsonl, held_out.jsonl)."""
    folder = Path(str(resources.files("judgerl").joinpath("data", "specific-reply")))
    return folder / "train.jsonl", folder / "held_out.jsonl"


@dataclass
class StudentPlan:
    """What the demo's student is trained from and how; its hash decides whether a previous
    run's student can be reused."""

    base_model: str = "smollm2-135m-instruct"
    train: Path = field(default_factory=lambda: specific_reply_data()[0])
    held_out: Path = field(default_factory=lambda: specific_reply_data()[1])
    settings: TrainSettings = field(default_factory=TrainSettings)
    thresholds: Thresholds = field(default_factory=Thresholds)
    criterion: str = CRITERION
    description: str = DESCRIPTION
    #: the student's template (a shipped prompt name)
    prompt: str = STUDENT_PROMPT
    #: a folder where this student may ship already trained (`adapter/` + `student.json`, written
    #: by `package_student`); used when its recorded digest is this plan's, else trained here
    packaged: Path | None = None

    def digest(self) -> str:
        """sha256 over the labelled files' bytes, the base model, the settings and the criterion
        (the thresholds are not in it: a stricter gate re-checks the recorded figures instead)."""
        for path in (self.train, self.held_out):
            if not path.is_file():
                raise ConfigError("labelled file not found", path=str(path))
        base = Path(self.base_model)
        described = {"base_model": self.base_model, "settings": asdict(self.settings),
                     "criterion": self.criterion, "description": self.description,
                     "prompt": self.prompt,
                     # a base model folder: its files' names and sizes stand in for its bytes
                     "base_files": sorted((p.name, p.stat().st_size) for p in base.iterdir() if p.is_file())
                     if base.is_dir() else None}
        digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode())
        for path in (self.train, self.held_out):
            digest.update(path.read_bytes())
        return digest.hexdigest()


@dataclass
class PreparedStudent:
    """A gated student ready for the reward config."""

    model_dir: Path
    reused: bool
    seconds: float
    figures: dict[str, Any]
    #: the student came from the package's trained adapter (merged and measured here), not trained here
    packaged: bool = False


def quick_plan(folder: Path) -> StudentPlan:
    """The `--quick` student: every QUICK_EVERY-th row of both packaged files (written to
    `folder`), one epoch: it runs the distillation stage in about a minute, and it is not gated."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for source in specific_reply_data():
        lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
        target = folder / source.name
        target.write_text("".join(lines[::QUICK_EVERY]), encoding="utf-8")
        files.append(target)
    return StudentPlan(train=files[0], held_out=files[1], settings=TrainSettings(epochs=1))


def reusable_student(folder: Path, plan: StudentPlan) -> bool:
    """Whether `folder` holds a finished student of this plan (`prepare_student` would reuse it)."""
    previous = _read_manifest(folder / MANIFEST)
    return previous.get("digest") == plan.digest() and (folder / MODEL_FOLDER / "config.json").is_file()


def prepare_student(folder: Path, plan: StudentPlan, console: Console | None = None, *,
                    enforce_gate: bool = True) -> PreparedStudent:
    """Distil the student into `folder` (or reuse the one a previous run left there when the plan
    hashes the same) and gate it; raise `DistillGateError` when it is below the thresholds (unless
    `enforce_gate` is false: then a failed gate is only printed)."""
    console = console or Console(stderr=True)
    started = time.monotonic()
    digest = plan.digest()
    manifest_path = folder / MANIFEST
    model_dir = folder / MODEL_FOLDER
    if reusable_student(folder, plan):
        previous = _read_manifest(manifest_path)
        figures = previous["figures"]
        console.print(f"student: reusing {model_dir} (same data and settings, trained "
                      f"{previous.get('trained_at', '?')})")
        _gate(figures, plan.thresholds, folder, enforce_gate, console)
        return PreparedStudent(model_dir, True, time.monotonic() - started, figures)
    if folder.exists():
        console.print(f"student: {folder} holds no finished student for these data and settings; "
                      "training again")
        shutil.rmtree(folder)
    shipped = packaged_adapter(plan)
    if shipped is not None:
        console.print(f"student: the package's student trained on {plan.train.name} ({shipped}), "
                      "merged into the base and measured on the held-out rows here")
    else:
        console.print(f"student: distilling {plan.base_model} on {plan.train.name} "
                      f"({plan.settings.method}, {plan.settings.epochs} epoch(s))")
    result = distill(out_dir=folder, base_model=plan.base_model, labelled=plan.train,
                     held_out_labelled=plan.held_out, criterion=plan.criterion,
                     description=plan.description, settings=plan.settings, thresholds=plan.thresholds,
                     enforce_gate=False, console=console, prompt=plan.prompt, trained_adapter=shipped)
    measured = result.report.criteria[0]
    figures = {"accuracy": measured.accuracy, "kappa": measured.kappa, "auc": measured.auc,
               "held_out_rows": result.report.held_out_rows, "train_rows": result.train_rows,
               "training_seconds": round(result.training.seconds, 1)}
    # written last and whole (then renamed): a crash mid-way leaves no manifest, so no false reuse
    staged = manifest_path.with_suffix(".tmp")
    staged.write_text(json.dumps({"digest": digest, "figures": figures,
                                  "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "base_model": plan.base_model, "packaged": shipped is not None},
                                 indent=2), encoding="utf-8")
    os.replace(staged, manifest_path)
    _gate(figures, plan.thresholds, folder, enforce_gate, console)
    return PreparedStudent(result.model_dir, False, time.monotonic() - started, figures, shipped is not None)


def packaged_adapter(plan: StudentPlan) -> Path | None:
    """The adapter shipped for this plan (`plan.packaged`), when its recorded digest is the plan's
    (the same labelled files, base model, settings and template); None otherwise."""
    if plan.packaged is None:
        return None
    recorded = _read_manifest(plan.packaged / MANIFEST)
    adapter = plan.packaged / ADAPTER_FOLDER
    if recorded.get("digest") != plan.digest() or not (adapter / "adapter_config.json").is_file():
        return None
    return adapter


def package_student(student_folder: Path, plan: StudentPlan, target: Path, *, command: str) -> Path:
    """Ship a LoRA student `prepare_student` trained into `student_folder`: its adapter in float16
    (half the bytes; the merged student is measured again wherever it is used) and a manifest
    with the plan's digest, the figures measured after training and how it was made, into `target`."""
    import torch
    from safetensors.torch import load_file, save_file

    recorded = _read_manifest(student_folder / MANIFEST)
    source = student_folder / ADAPTER_FOLDER
    if recorded.get("digest") != plan.digest() or not (source / "adapter_model.safetensors").is_file():
        raise ConfigError("no trained LoRA student of this plan here (train it with prepare_student first)",
                          path=str(student_folder))
    staged = target.with_name(target.name + ".tmp")
    if staged.exists():
        shutil.rmtree(staged)
    (staged / ADAPTER_FOLDER).mkdir(parents=True)
    weights = {name: tensor.to(torch.float16) for name, tensor in
               load_file(str(source / "adapter_model.safetensors")).items()}
    save_file(weights, str(staged / ADAPTER_FOLDER / "adapter_model.safetensors"))
    config = json.loads((source / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = plan.base_model  # the packaged model's name, no machine path
    (staged / ADAPTER_FOLDER / "adapter_config.json").write_text(json.dumps(config, indent=2),
                                                                 encoding="utf-8")
    (staged / MANIFEST).write_text(json.dumps({
        "digest": recorded["digest"], "figures": recorded["figures"],
        "trained_at": recorded.get("trained_at"),
        "base_model": plan.base_model, "settings": asdict(plan.settings), "train": plan.train.name,
        "held_out": plan.held_out.name, "command": command}, indent=2), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staged, target)
    return target


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # a half-written manifest: the student is trained again
    return data if isinstance(data, dict) and isinstance(data.get("figures"), dict) else {}


def _gate(figures: dict[str, Any], thresholds: Thresholds, folder: Path, enforce: bool = True,
          console: Console | None = None) -> None:
    """The `judgerl distill` gate on the recorded held-out figures (None counts as failing); not
    enforced: the failure is printed instead of raised."""
    failures = [f"{name} {_fmt(figures.get(name))} < {minimum}"
                for name, minimum in (("accuracy", thresholds.min_accuracy), ("kappa", thresholds.min_kappa))
                if figures.get(name) is None or figures[name] < minimum]
    if failures and enforce:
        raise DistillGateError(f"the demo's student is refused for training: {'; '.join(failures)} "
                               f"on the held-out scenarios (report: {folder / 'agreement.md'})")
    if failures and console is not None:
        console.print(f"student gate not enforced (--quick): {'; '.join(failures)}", highlight=False)


def student_reward_config(base_reward: Path, model_dir: Path, *, weight: float = DEFAULT_WEIGHT,
                          criterion: str = CRITERION, description: str = DESCRIPTION,
                          keep_judges: bool = False) -> dict[str, Any]:
    """The demo's reward with the student's judge added to its checks (the demo's own judges
    dropped unless `keep_judges`). Paths in the result are absolute."""
    config = read_yaml(base_reward)
    student = student_judge_config(criterion, [{"name": criterion, "kind": "check",
                                                "description": description}],
                                   model=str(Path(model_dir).resolve()))
    judge = {**student["judges"][0], "backend": BACKEND, "weight": weight}
    # the checks need no backend: without the demo's judges, their backends go too
    backends = dict(config.get("backends") or {}) if keep_judges else {}
    judges = list(config.get("judges") or []) if keep_judges else []
    backends[BACKEND] = {"type": "local", "model": str(Path(model_dir).resolve()), "max_concurrency": 16}
    config["backends"] = backends
    config["judges"] = [*judges, judge]
    return config


def checks_only_config(base_reward: Path) -> dict[str, Any]:
    """The demo's reward without any judge (the ablation's first arm)."""
    config = read_yaml(base_reward)
    config.pop("judges", None)
    config.pop("backends", None)
    return config


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_student_demo(run_dir: Path, overrides: list[str] | None = None, *, plan: StudentPlan | None = None,
                     recipe: Path = DEMO_RECIPE, console: Console | None = None,
                     weight: float = DEFAULT_WEIGHT, quick: bool = False) -> tuple[Path, dict[str, float]]:
    """Distil (or reuse) and gate the student, then run the demo's workflow with it in the reward.
    `quick`: the student of `quick_plan` (unless `plan` is given), its gate not enforced.

    Returns the report path and the seconds per stage (distill, validation, sft, rft, evaluation,
    export, report), which are also printed and written to RUN_DIR/timings.json.
    """
    console = console or Console(stderr=True)
    run_dir = run_dir.resolve()
    finished = bool(read_stages(run_dir))
    if finished and not (run_dir / REWARD_FILE).is_file():
        raise ConfigError("this folder holds a demo run with another judge (the few-shot judge, or an "
                          "earlier judgerl's demo); its finished stages would be skipped: give the "
                          "demo another --run-dir or delete this one", path=str(run_dir))
    console.rule("[bold]distill")
    plan = plan or (quick_plan(run_dir / QUICK_DATA_DIR) if quick else StudentPlan())
    student = prepare_student(run_dir / STUDENT_DIR, plan, console, enforce_gate=not quick)
    if finished and not student.reused:
        raise ConfigError("the student was trained again (other data or settings) but this folder's "
                          "finished stages were rewarded by the previous one: start in a fresh --run-dir "
                          f"(the new student is in {run_dir / STUDENT_DIR})", path=str(run_dir))
    console.print(f"student: held-out accuracy {student.figures['accuracy']:.3f}, "
                  f"kappa {student.figures['kappa']:.3f}, AUC {_fmt(student.figures.get('auc'))} "
                  f"({'reused' if student.reused else 'trained'} in {student.seconds:.0f} s)")
    base_reward = _recipe_reward(recipe)
    reward = write_config(student_reward_config(base_reward, student.model_dir, weight=weight),
                          run_dir / REWARD_FILE)
    # the demo's validation suite tests the few-shot judge's criteria; the student was gated above
    settings = [f"workflow.run_dir={run_dir}", f"reward={reward}", "validation.suite=null",
                *(overrides or [])]
    report = Workflow(recipe, settings, console=console).run()
    timings = stage_timings(run_dir, student.seconds)
    (run_dir / "timings.json").write_text(json.dumps(timings, indent=2), encoding="utf-8")
    console.print("where the time went: " + ", ".join(f"{stage} {seconds:.0f} s"
                                                      for stage, seconds in timings.items()))
    return report, timings


def stage_timings(run_dir: Path, distill_seconds: float) -> dict[str, float]:
    """Seconds per stage from RUN_DIR/stages.json (this run's or a resumed run's record); the
    baseline and final evaluations are added up as `evaluation`."""
    stages = read_stages(run_dir)
    seconds = {name: float(entry.get("seconds", 0.0)) for name, entry in stages.items()}
    timings = {"distill": round(distill_seconds, 1)}
    for stage in ("validation", "sft", "rft"):
        timings[stage] = seconds.get(stage, 0.0)
    timings["evaluation"] = round(seconds.get("baseline_eval", 0.0) + seconds.get("final_eval", 0.0), 1)
    timings["export"] = seconds.get("export", 0.0)
    timings["report"] = seconds.get("report", 0.0)
    timings["total"] = round(sum(timings.values()), 1)
    return timings


def _recipe_reward(recipe: Path) -> Path:
    reward = read_yaml(recipe).get("reward")
    if not isinstance(reward, str):
        raise ConfigError("the demo recipe's reward must be a file for --judge student", path=str(recipe),
                          field="reward")
    return (recipe.parent / reward).resolve()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
