"""`judgerl demo --task contract-review`: the seed's contract review case study, sized for two CPU cores.

Why: the result judgerl reproduces is a contract-review RFT in which a policy writes JSON review
comments, a judge scores them, and RFT ends above SFT, which ends above the base model, on a judge it
was not trained on. At full size (examples/contract_review) a 135M policy learns nothing on a CPU.
This study keeps the structure at a size it can learn (the packaged `demo/contract_review`, built
by examples/contract_review/build_cpu_data.py: 3-clause contracts, 1-2 planted issues, answers
`{"comments": [{"quote", "rule", "fix"}]}`) and runs the whole comparison in one resumable command:

1. two students distilled from labelled comments (`rubric` items with `met` verdicts): the
   reward's (on services, NDA and lease contracts, gated on software licences, a type it never
   saw) and the scorer's (on other contracts written only for it, measured on the reward
   student's rows): they share no labelled row and no contract. Both ship trained in the package
   (examples/contract_review/build_students.py); the study merges them and measures them again,
   or trains them itself when the shipped ones are not of the same data and settings (or with
   `--distil-students`);
2. the base policy evaluated on the 16 held-out contracts (8 of a type never trained on);
3. one SFT model on the expert comments, evaluated the same way;
4. for each seed: two RFT runs warm-started from that SFT model, one with the checks only (schema
   gate, grounding, count, duplicates) and one with the checks and the reward's student judging
   each contract's planted issues item by item; both evaluated by the checks + the scorer;
5. the table (mean, min and max over seeds) printed and written to RUN_DIR/results.{json,md}.

The stages run as a graph on `run.stage_graph`'s worker processes (two, one thread each, on two
cores: the study's 30 minutes depend on it). Every stage leaves its output in RUN_DIR and is
skipped when it is there, so an interrupted study goes on where it stopped. This module only
orders the stages; training, evaluation and distillation are the layers' own functions.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from judgerl.checks.grounding import normalise_quote
from judgerl.checks.json_checks import parse_json
from judgerl.config import read_yaml
from judgerl.distill.agreement import Thresholds
from judgerl.distill.demo_judge import (
    PreparedStudent,
    StudentPlan,
    prepare_student,
    reusable_student,
    write_config,
)
from judgerl.distill.student import TrainSettings
from judgerl.errors import ConfigError
from judgerl.run.folder import read_rows
from judgerl.run.stage_graph import Stage, StageResult, run_stages
from judgerl.run.workflow import evaluation_inputs, trained_model

#: the judge's name in the reward configs, and what its student is asked about each item
JUDGE = "issues"
DESCRIPTION = "The review flags the planted issue the rubric item describes: its clause, rule and fix."
#: the student's template: the review and the item only (the contract would cost ~250 tokens a call)
ITEM_PROMPT = "rubric_item_student"
#: the judge's weight next to the checks (grounding 1, count 0.25, duplicates 0.25)
JUDGE_WEIGHT = 3.0
ARMS = ("checks", "judge")
MODELS = ("base", "sft", "rft-checks", "rft-judge")
#: the models trained once per seed (the base and the one SFT model are evaluated once)
RFT_MODELS = ("rft-checks", "rft-judge")
RESULTS_JSON = "results.json"
#: the study's wall-clock seconds, summed over the runs that did work (stages overlap in time)
WALL_JSON = "wall.json"
WALL_KEY = "seconds"
RESULTS_MD = "results.md"
TIMINGS_JSON = "timings.json"
#: `--quick` (and CI): the smallest run that passes through every stage
QUICK_OVERRIDES = ["trainer.max_steps=2", "trainer.save_steps=2", "sft.max_steps=2", "evaluation.limit=2",
                   "evaluation.k=2", "rollout.max_new_tokens=48", "evaluation.max_new_tokens=48"]
QUICK_EVERY = 8
#: where the two students ship trained, beside the study's data (an adapter and a manifest each)
STUDENTS_DIR = "students"


def study_folder() -> Path:
    """The packaged case study: recipe, checks, schema and data."""
    return Path(str(resources.files("judgerl").joinpath("demo", "contract_review")))



@dataclass
class StudySettings:
    """How the study runs: seeds, extra recipe settings, and the students' training."""

    seeds: Sequence[int] = (0, 1, 2)
    overrides: list[str] = field(default_factory=list)
    quick: bool = False
    reward_student: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=3, lora_layers=12))
    scorer_student: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=3, lora_layers=12))
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: the students' base model (the packaged 135M; tests give a tiny one)
    student_base: str = "smollm2-135m-instruct"
    #: processes running stages side by side, each with its share of the cores (two 1-thread
    #: processes did 1.3x the GRPO steps a minute of one 2-thread process on 2 cores)
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    #: train both students here even when the package ships them trained for these plans
    distil_students: bool = False


def student_plans(folder: Path, settings: StudySettings, scratch: Path) -> dict[str, StudentPlan]:
    """The two students' plans: (reward) judge_train -> gated on judge_held_out; (scorer)
    scorer_train -> measured on judge_train (rows it never saw). Each may ship trained in the
    package (STUDENTS_DIR/<name>, written by examples/contract_review/build_students.py), used
    unless `distil_students`. `--quick` keeps the labelled rows of every QUICK_EVERY-th contract
    (written to `scratch`) and one epoch (so never the packaged students)."""
    files = {name: folder / f"{name}.jsonl" for name in ("judge_train", "judge_held_out", "scorer_train")}
    reward, scorer = settings.reward_student, settings.scorer_student
    if settings.quick:
        scratch.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            # whole contracts (all their labelled comments): every QUICK_EVERY-th row would be
            # the expert's comment of every other contract only, each of its items met
            lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
            prompts = [json.loads(line)["prompt"] for line in lines]
            kept = set(list(dict.fromkeys(prompts))[::QUICK_EVERY])
            files[name] = scratch / source.name
            files[name].write_text("".join(line for line, prompt in zip(lines, prompts, strict=True)
                                           if prompt in kept), encoding="utf-8")
        reward, scorer = replace(reward, epochs=1), replace(scorer, epochs=1)
    common = {"criterion": JUDGE, "description": DESCRIPTION, "prompt": ITEM_PROMPT,
              "thresholds": settings.thresholds, "base_model": settings.student_base}

    def packaged(name: str) -> Path | None:
        return None if settings.distil_students else folder / STUDENTS_DIR / name

    return {"reward": StudentPlan(train=files["judge_train"], held_out=files["judge_held_out"],
                                  settings=reward, packaged=packaged("reward"), **common),
            "scorer": StudentPlan(train=files["scorer_train"], held_out=files["judge_train"],
                                  settings=scorer, packaged=packaged("scorer"), **common)}


def judge_reward_config(checks: Path, model_dir: Path, *, weight: float = JUDGE_WEIGHT) -> dict[str, Any]:
    """The checks of `checks` plus the rubric judge of each row's planted issues on a student."""
    config = checks_config(checks)
    config["backends"] = {"student": {"type": "local", "model": str(Path(model_dir).resolve()),
                                      "max_concurrency": 16}}
    config["judges"] = [{"name": JUDGE, "type": "rubric", "backend": "student", "scoring": "logprob",
                         "prompt": ITEM_PROMPT, "rubric_field": "rubric", "weight": weight}]
    return config


def checks_config(checks: Path) -> dict[str, Any]:
    """The checks of `checks`, their schema file made absolute (the config is written into the run
    folder, away from the schema)."""
    config = read_yaml(checks)
    for check in config.get("checks") or []:
        if check.get("schema_file"):
            check["schema_file"] = str((checks.parent / check["schema_file"]).resolve())
    return config


# ----------------------------------------------------------------------------------------- figures


def comment_precision(completion: str, clauses: list[dict[str, Any]]) -> float | None:
    """Share of an answer's comments that quote a clause with a planted issue and name that issue's
    rule (deterministic, from the row's `clauses`); None when the answer has no comment list."""
    parsed, not_json = parse_json(completion, allow_fence=True)  # as the schema check reads it
    if not_json is not None:
        return None
    comments = parsed.get("comments") if isinstance(parsed, dict) else None
    if not isinstance(comments, list) or not comments:
        return None
    flagged = [(normalise_quote(clause["text"]), clause["rule"]) for clause in clauses if clause.get("issue")]
    right = 0
    for comment in comments:
        if not isinstance(comment, dict):
            continue
        quote = normalise_quote(str(comment.get("quote", "")))
        if len(quote) >= 12 and any(quote in text and comment.get("rule") == rule for text, rule in flagged):
            right += 1
    return right / len(comments)


def model_figures(samples: Path, rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The seed's figures for one evaluated model, from its samples.jsonl (every answer counts;
    a gated answer scores 0): reward, issues (the scorer's per-item verdicts), schema validity,
    grounded share (valid answers), comment precision (valid answers), and issues by contract
    type (seen in training or not)."""
    answers = read_rows(samples)
    scored = [row for row in answers if row.get("status") in ("ok", "gated")]

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 4) if values else None

    def issues(row: dict[str, Any]) -> float:  # a gated answer's judge component is null: never judged
        value = (row.get("components") or {}).get(JUDGE)
        return 0.0 if value is None else float(value)

    valid = [row for row in scored if row["status"] == "ok"]
    precision = [value for row in valid
                 for value in [comment_precision(row["completion"], rows[row["prompt_id"]]["clauses"])]
                 if value is not None]
    figures: dict[str, float | None] = {
        "reward": mean([float(row["reward"]) for row in scored]),
        "issues": mean([issues(row) for row in scored]),
        "schema_valid": mean([1.0 if row["status"] == "ok" else 0.0 for row in scored]),
        "grounded": mean([float(row["components"]["grounding"]) for row in valid]),
        "precision": mean(precision),
        "unscored": round(1 - len(scored) / len(answers), 4) if answers else None,
    }
    for split in ("seen_type", "unseen_type"):
        figures[f"issues_{split}"] = mean([issues(row) for row in scored
                                           if rows[row["prompt_id"]].get("split") == split])
    return figures


def spread(values: list[float | None]) -> dict[str, Any]:
    present = [value for value in values if value is not None]
    if not present:
        return {"mean": None, "min": None, "max": None, "std": None, "n": 0}
    return {"mean": round(statistics.fmean(present), 4), "min": min(present), "max": max(present),
            "std": round(statistics.pstdev(present), 4) if len(present) > 1 else 0.0, "n": len(present)}


FIGURES = (("reward", "reward"), ("issues", "issues found (judge)"), ("issues_unseen_type", "… unseen type"),
           ("schema_valid", "schema valid"), ("grounded", "grounded quotes"),
           ("precision", "comment precision"))


def results_table(results: dict[str, Any]) -> str:
    """The markdown table of RUN_DIR/results.json: mean [min-max] over seeds per model and figure."""
    header = "| model | " + " | ".join(title for _key, title in FIGURES) + " |"
    lines = [header, "|" + "---|" * (len(FIGURES) + 1)]
    for model in MODELS:
        per_figure = results["models"].get(model)
        if not per_figure:
            continue
        cells = []
        for key, _title in FIGURES:
            stats = per_figure.get(key) or {}
            if stats.get("mean") is None:
                cells.append("n/a")
            elif stats.get("n", 0) > 1:
                cells.append(f"{stats['mean']:.3f} [{stats['min']:.3f}-{stats['max']:.3f}]")
            else:
                cells.append(f"{stats['mean']:.3f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- stages


@dataclass
class ContractStudy:
    """One study in RUN_DIR; `run()` returns the results (also in RUN_DIR/results.json)."""

    run_dir: Path
    settings: StudySettings = field(default_factory=StudySettings)
    console: Console = field(default_factory=lambda: Console(stderr=True))
    folder: Path = field(default_factory=study_folder)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.recipe = self.folder / "recipe.yaml"
        self.overrides = [*(QUICK_OVERRIDES if self.settings.quick else []), *self.settings.overrides,
                          "validation.suite=null", "monitors.held_out_reward=null",
                          "logging.tensorboard=false"]
        if (self.run_dir / TIMINGS_JSON).is_file():  # a resumed study: the stages that ran before
            self.timings.update(json.loads((self.run_dir / TIMINGS_JSON).read_text(encoding="utf-8")))

    # the stages ------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from judgerl.train.recipe import load_recipe

        self.run_dir.mkdir(parents=True, exist_ok=True)
        plans = student_plans(self.folder, self.settings, self.run_dir / "student-data")
        checks = self.folder / "reward.yaml"
        student_models = {name: self.run_dir / f"student-{name}" / "model" for name in plans}
        rewards = {"checks": write_config(checks_config(checks), self.run_dir / "reward-checks.yaml"),
                   "judge": write_config(judge_reward_config(checks, student_models["reward"]),
                                         self.run_dir / "reward-judge.yaml")}
        scorer = write_config(judge_reward_config(checks, student_models["scorer"]),
                              self.run_dir / "scorer.yaml")
        base_model = load_recipe(self.recipe, self.overrides).model.name_or_path
        students: dict[str, PreparedStudent] = {}
        for name, plan in plans.items():  # a finished student is only re-gated: no worker needed
            if reusable_student(self.run_dir / f"student-{name}", plan):
                students[name] = self.student(name, plan)
        stages = [stage for stage in self.stages(plans, rewards, scorer, base_model, students)
                  if not self.finished(stage)]
        todo = {stage.name for stage in stages}  # what a resumed study did before is not waited for
        stages = [replace(stage, after=tuple(name for name in stage.after if name in todo))
                  for stage in stages]
        eval_rows = {row["id"]: row for row in read_rows(self.folder / "eval.jsonl")}
        workers = min(self.settings.workers, max(1, len(stages)))
        if workers == 1:  # here, in order, printing to this console
            stages = [Stage(stage.name, getattr(self, stage.args[2]), stage.args[3], stage.after)
                      for stage in stages]

        def started(stage: Stage) -> None:
            where = "" if workers == 1 else f" (log: {self.log_path(stage.name).relative_to(self.run_dir)})"
            self.console.rule(f"[bold]{stage.name}[/]{where}")

        def finished(result: StageResult) -> None:
            self._time(timing_key(result.name), result.seconds)
            if result.name.startswith("student "):
                students[result.name.removeprefix("student ")] = result.value
            self.console.print(f"[green]done:[/] {result.name} in {result.seconds:.0f} s", highlight=False)
            if result.name.startswith("evaluate ") and len(students) == len(plans):
                self.write_results(students, eval_rows)  # an interrupted study shows what it finished

        if stages:
            run = run_stages(stages, workers=workers, on_start=started, on_done=finished)
            self._time(WALL_KEY, run.wall_seconds, into=WALL_JSON)
        return self.write_results(students, eval_rows)

    def stages(self, plans: dict[str, StudentPlan], rewards: dict[str, Path], scorer: Path, base_model: str,
               students: dict[str, PreparedStudent]) -> list[Stage]:
        """The study as a graph, the long stages first: the SFT model (one, shared by the seeds'
        RFT runs), the students not already there, then for each seed the two RFT arms and the
        evaluations."""
        spec = self.spec()
        seeds = list(self.settings.seeds)
        def stage(name: str, method: str, args: tuple[Any, ...], after: tuple[str, ...] = ()) -> Stage:
            return Stage(name, run_study_stage, (spec, name, method, args), after)

        stages = [stage("sft", "sft", (seeds[0], self.sft_dir()))]
        for name, plan in plans.items():
            if name not in students:
                stages.append(stage(f"student {name}", "student", (name, plan)))
        needs_scorer = () if "scorer" in students else ("student scorer",)
        needs_reward = () if "reward" in students else ("student reward",)
        stages.append(stage("evaluate base", "evaluate",
                            ("base", base_model, scorer, self.run_dir / "base", 0), needs_scorer))
        # one SFT model, evaluated once as the base is (with the first seed's sampling)
        stages.append(stage("evaluate sft", "evaluate", ("sft", self.sft_dir(), scorer, self.sft_eval_dir(),
                                                         seeds[0]), ("sft", *needs_scorer)))
        for seed in seeds:
            seed_dir = self.run_dir / f"seed-{seed}"
            for arm in reversed(ARMS):  # the judge arm first: the longer one
                stages.append(stage(f"rft {arm} (seed {seed})", "rft",
                                    (seed, self.sft_dir(), seed_dir / f"rft-{arm}", rewards[arm]),
                                    ("sft", *(needs_reward if arm == "judge" else ()))))
            for arm in ARMS:
                stages.append(stage(f"evaluate rft-{arm} (seed {seed})", "evaluate",
                                    (f"rft-{arm}", seed_dir / f"rft-{arm}", scorer, seed_dir, seed),
                                    (f"rft {arm} (seed {seed})", *needs_scorer)))
        return stages

    def finished(self, stage: Stage) -> bool:
        """Whether a stage's output is already in RUN_DIR (a resumed study skips it)."""
        _spec, _name, method, args = stage.args
        if method == "evaluate":
            label, _model, _scorer, out, _seed = args
            return evaluated(out, label)
        if method == "sft":
            return trained(args[1])
        if method == "rft":
            return trained(args[2])
        return False

    def spec(self) -> StudySpec:
        return StudySpec(self.run_dir, self.settings, self.folder)

    def sft_dir(self) -> Path:
        return self.run_dir / "sft"

    def sft_eval_dir(self) -> Path:
        return self.run_dir / "sft-eval"

    def log_path(self, stage: str) -> Path:
        return self.run_dir / "logs" / (stage.replace(" (seed ", "-seed-").replace(")", "").replace(" ", "-")
                                        + ".log")

    def write_results(self, students: dict[str, PreparedStudent],
                      eval_rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """RUN_DIR/results.{json,md} from the evaluations done so far: the seeds whose models are
        all evaluated (an interrupted study already shows the seeds it finished)."""
        per_seed: dict[str, list[dict[str, float | None]]] = {model: [] for model in MODELS}
        for model, folder in (("base", self.run_dir / "base"), ("sft", self.sft_eval_dir())):
            if evaluated(folder, model):
                per_seed[model].append(model_figures(folder / "eval" / model / "samples.jsonl", eval_rows))
        seeds_done = []
        for seed in self.settings.seeds:
            seed_dir = self.run_dir / f"seed-{seed}"
            if not all(evaluated(seed_dir, model) for model in RFT_MODELS):
                continue
            folders = {model: seed_dir / "eval" / model for model in RFT_MODELS}
            seeds_done.append(seed)
            for model, folder in folders.items():
                per_seed[model].append(model_figures(folder / "samples.jsonl", eval_rows))
        wall = json.loads((self.run_dir / WALL_JSON).read_text(encoding="utf-8")) \
            if (self.run_dir / WALL_JSON).is_file() else {}
        results = {
            "seeds": seeds_done, "seeds_planned": list(self.settings.seeds),
            "quick": self.settings.quick,
            "workers": self.settings.workers,
            "students": {name: {**student.figures, "reused": student.reused, "packaged": student.packaged}
                         for name, student in students.items()},
            "models": {model: {key: spread([figures.get(key) for figures in runs])
                               for key in {*(k for k, _ in FIGURES), "unscored", "issues_seen_type"}}
                       for model, runs in per_seed.items()},
            "per_seed": per_seed,
            "timings_s": self.timings,
            "wall_s": wall.get(WALL_KEY),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": self.command(),
            "machine": machine(),
        }
        (self.run_dir / RESULTS_JSON).write_text(json.dumps(results, indent=2), encoding="utf-8")
        (self.run_dir / RESULTS_MD).write_text(self.markdown(results), encoding="utf-8")
        return results

    def student(self, name: str, plan: StudentPlan) -> PreparedStudent:
        """Distil (or reuse) one student; the reward's must pass its gate (unless --quick), the
        scorer is measured and recorded, and the table says how far to trust it."""
        prepared = prepare_student(self.run_dir / f"student-{name}", plan, self.console,
                                   enforce_gate=name == "reward" and not self.settings.quick)
        figures = prepared.figures
        made = "reused" if prepared.reused else "shipped in the package" if prepared.packaged else "trained"
        self.console.print(f"{name} student: accuracy {figures['accuracy']:.3f}, kappa "
                           f"{figures['kappa']:.3f} on {figures['held_out_rows']} held-out items "
                           f"({made})", highlight=False)
        return prepared

    def evaluate(self, label: str, model: str | Path, scorer: Path, out: Path, seed: int) -> Path:
        """Evaluate `model` (a model name, or a training output folder) on the held-out contracts
        with the scorer; the samples file."""
        samples = out / "eval" / label / "samples.jsonl"
        if evaluated(out, label):
            return samples
        from judgerl.run.evaluate import ModelSpec, evaluate_models
        from judgerl.train.recipe import load_recipe

        recipe = load_recipe(self.recipe, [*self.overrides, f"evaluation.seed={seed}"])
        chosen, sampling = evaluation_inputs(recipe)
        source = trained_model(model) if isinstance(model, Path) else model
        evaluate_models({label: ModelSpec(source=str(source))}, chosen, scorer, k=recipe.evaluation.k,
                        out_dir=out, sampling=sampling, resume=True)
        return samples

    def sft(self, seed: int, output: Path) -> Path:
        if trained(output):
            return trained_model(output)
        from judgerl.train.recipe import load_recipe
        from judgerl.train.sft import sft

        recipe = load_recipe(self.recipe, [*self.overrides, f"trainer.seed={seed}",
                                           f"sft.output_dir={output}"])
        sft(recipe, resume=output.is_dir() and any(output.glob("checkpoint-*")), console=self.console)
        return trained_model(output)

    def rft(self, seed: int, start: Path, output: Path, reward: Path) -> Path:
        if trained(output):
            return trained_model(output)
        from judgerl.train.grpo import train
        from judgerl.train.recipe import load_recipe

        recipe = load_recipe(self.recipe, [*self.overrides, f"trainer.seed={seed}", f"reward={reward}",
                                           f"logging.output_dir={output}",
                                           f"model.name_or_path={trained_model(start)}"])
        result = train(recipe, resume=output.is_dir() and any(output.glob("checkpoint-*")),
                       skip_validation=True, console=self.console)
        return trained_model(result.output_dir)

    # output ----------------------------------------------------------------------------------

    def command(self) -> str:
        """The `judgerl demo` command line that runs (or resumes) this study."""
        seeds = list(self.settings.seeds)
        parts = ["judgerl demo --task contract-review"]
        if self.settings.quick:
            parts.append("--quick")
        if seeds != list(range(1 if self.settings.quick else 3)):
            parts.append(f"--seeds {len(seeds)}" if seeds == list(range(len(seeds)))
                         else f"(seeds {', '.join(map(str, seeds))}: Python API)")
        if self.settings.workers != StudySettings().workers:
            parts.append(f"--workers {self.settings.workers}")
        if self.settings.distil_students:
            parts.append("--distil-students")
        parts.extend(f"--set {override}" for override in self.settings.overrides)
        parts.append(f"--run-dir {self.run_dir}")
        return " ".join(parts)

    def markdown(self, results: dict[str, Any]) -> str:
        students = results["students"]
        done, planned = len(results["seeds"]), len(results.get("seeds_planned", results["seeds"]))
        lines = [f"# Contract review on two CPU cores: {done} seed(s)"
                 + ("" if done == planned else f" of {planned} (the study goes on: rerun the command)")
                 + (" (--quick: a smoke run, not a result)" if results["quick"] else ""), "",
                 "Held-out contracts (half of them of a contract type never trained on), scored by the "
                 "checks and a scorer student that shares no labelled row or contract with the reward's. "
                 f"One SFT model (seed {results['seeds_planned'][0]}) is the start of every RFT run; the "
                 "base and SFT models are "
                 "evaluated once, the RFT models once per seed: mean [min-max] over seeds.", "",
                 results_table(results), "",
                 f"Command: `{results['command']}`; finished {results['finished_at']} on "
                 f"{results['machine']}.", ""]
        for name, figures in students.items():
            made = ("shipped trained in the package, merged and measured here" if figures.get("packaged")
                    else "distilled here")
            lines.append(f"- {name} student ({made}): accuracy {figures['accuracy']:.3f}, kappa "
                         f"{figures['kappa']:.3f} on {figures['held_out_rows']} items it never saw "
                         f"({figures['train_rows']} training items)")
        timings, wall = results["timings_s"], results.get("wall_s")
        clock = (f"{wall / 60:.0f} min wall clock on {results['workers']} worker process(es); the stages "
                 "ran side by side, so their times add up to more" if wall else "not timed")
        lines.append(f"- where the time went ({clock}): "
                     + ", ".join(f"{part} {seconds:.0f} s" for part, seconds in timings.items()))
        return "\n".join(lines) + "\n"

    def _time(self, part: str, seconds: float, *, into: str = TIMINGS_JSON) -> None:
        """Add a stage's seconds to RUN_DIR/timings.json (kept across resumed runs: a stage that
        was skipped keeps the time it took when it ran); the study's wall-clock seconds go to
        RUN_DIR/wall.json the same way."""
        path = self.run_dir / into
        table = self.timings if into == TIMINGS_JSON else (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {})
        table[part] = round(table.get(part, 0.0) + seconds, 1)
        path.write_text(json.dumps(table, indent=2), encoding="utf-8")


@dataclass(frozen=True)
class StudySpec:
    """What a worker process needs to rebuild the study (pickled to it)."""

    run_dir: Path
    settings: StudySettings
    folder: Path


def trained(output: Path) -> bool:
    """Whether a training stage (SFT, RFT) finished: its merged model is in `output`."""
    return (trained_model(output) / "config.json").is_file()


def evaluated(out: Path, label: str) -> bool:
    """Whether a model's evaluation finished: its summary is in OUT/eval/LABEL."""
    return (out / "eval" / label / "summary.json").is_file()


def timing_key(stage: str) -> str:
    """The timings.json entry a stage adds to: the stage's name without its seed ("rft judge")."""
    return stage.split(" (seed ", 1)[0]


def run_study_stage(spec: StudySpec, name: str, method: str, args: tuple[Any, ...]) -> Any:
    """One stage of the study in a worker process: the study rebuilt from `spec`, the stage's
    output going to RUN_DIR/logs/<stage>.log."""
    study = ContractStudy(spec.run_dir, spec.settings, folder=spec.folder)
    log = study.log_path(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        study.console = Console(file=handle, width=120, force_terminal=False)
        return getattr(study, method)(*args)


def machine() -> str:
    """What ran the study, in words: CPU model, cores, torch threads and accelerator (the
    figures of a trained model are tied to the machine; the docs give them with it)."""
    import os
    import platform

    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text(encoding="utf-8").splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    return (f"{model}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, "
            + (f"accelerator {accelerator}" if accelerator else "no accelerator"))


def run_contract_study(run_dir: Path, settings: StudySettings | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Run (or finish) the study in `run_dir`; print its table; return the results."""
    console = console or Console(stderr=True)
    settings = settings or StudySettings()
    if not settings.seeds:
        raise ConfigError("the study needs at least one seed", field="--seeds")
    study = ContractStudy(run_dir, settings, console)
    results = study.run()
    console.print(study.markdown(results), highlight=False, markup=False)
    return results
