"""Benchmark: does the demo's RFT learn from the distilled judge? Checks only vs checks + student.

Why: `judgerl demo --judge student` rewards the demo with a 135M student distilled for "the reply
addresses the specific thing the customer wrote, not a generic apology". Whether RFT moves that
criterion must be measured by a judge the reward did not train on, beyond the run-to-run spread.
The reward's student is the demo's own (`judgerl demo --judge student`: distilled on the 336
training rows, 24 scenarios, gated on the 109 held-out rows, 8 other scenarios). The scoring
student is distilled the other way round: on the 109 held-out rows only, and its agreement is
measured on the 336 training rows it never saw, so the two judges share no labelled row and no
scenario. Both are gated as `judgerl distill` does (a refused scorer is said so and used anyway,
for information). Then, for each seed, the demo's RFT runs twice from the base policy, with (a)
the demo's checks only and (b) the checks + the reward's student, and the trained policies answer
the demo's held-out prompts (`demo/eval.jsonl`), scored by the checks + the scoring student. The
base policy is scored the same way once.

Prints, per arm: the scoring student's criterion and the total reward as mean, std, min and max
over seeds; and the wall time of each part (the two distillations, each RFT, each evaluation).

    python bench/demo_ablation.py --seeds 3 --output runs/ablation   # the packaged 135M models
    python bench/demo_ablation.py --tiny               # < 2 min: tiny random models, 2 steps
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from judgerl.distill.agreement import DistillGateError, Thresholds
from judgerl.distill.demo_judge import (
    CRITERION,
    DESCRIPTION,
    StudentPlan,
    checks_only_config,
    prepare_student,
    specific_reply_data,
    student_reward_config,
    write_config,
)
from judgerl.distill.student import TrainSettings
from judgerl.run.workflow import DEMO_RECIPE, trained_model

ARMS = ("checks", "checks+student")


def subset(source: Path, target: Path, every: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[::every]), encoding="utf-8")
    return target


def scorer_config(model_dir: Path) -> dict[str, Any]:
    """The evaluation's reward: the demo's checks + the scoring student (same weight as in training)."""
    return student_reward_config(DEMO_RECIPE.parent / "reward.yaml", model_dir)


def tiny_models(folder: Path, train: Path) -> tuple[str, str]:
    from judgerl.judges.templates import load_prompt

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_policy import build_corpus_model_dir, build_tiny_model_dir

    corpus = [load_prompt("rubric_student").text, DESCRIPTION,
              *train.read_text(encoding="utf-8").splitlines()[:60], "PASS", "FAIL"]
    student = build_corpus_model_dir(folder / "tiny-student", corpus)
    return str(student), str(build_tiny_model_dir(folder / "tiny-policy"))


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return (f"mean {statistics.fmean(values):.3f}  std {std:.3f}  min {min(values):.3f}  "
            f"max {max(values):.3f}  (n={len(values)})")


def evaluate(model: str, label: str, config: dict[str, Any], overrides: list[str],
             out: Path) -> dict[str, Any]:
    from judgerl.run.evaluate import ModelSpec, evaluate_models
    from judgerl.run.workflow import evaluation_inputs
    from judgerl.train.recipe import load_recipe

    recipe = load_recipe(DEMO_RECIPE, overrides)
    samples, sampling = evaluation_inputs(recipe)
    summary = evaluate_models({label: ModelSpec(source=model)}, samples, config, k=recipe.evaluation.k,
                              out_dir=out, sampling=sampling, resume=False)
    return summary.models[label]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="< 2 min smoke run (tiny random models)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="RFT steps (default: the demo recipe's)")
    parser.add_argument("--student-base", default="smollm2-135m-instruct")
    parser.add_argument("--epochs", type=int, default=3, help="the reward student's training epochs")
    parser.add_argument("--scorer-epochs", type=int, default=6,
                        help="the scoring student's epochs (it has a third of the rows)")
    parser.add_argument("--output", type=Path, default=None,
                        help="keep students and runs here (students are reused when unchanged, "
                             "finished RFT runs of a seed and arm always)")
    parser.add_argument("--eval-k", type=int, default=None,
                        help="answers per held-out prompt in the evaluations (default: the recipe's, 4)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        # absolute: the recipe resolves relative reward paths against its own folder
        out = (args.output or Path(tmp)).resolve()
        out.mkdir(parents=True, exist_ok=True)
        train, held = specific_reply_data()
        settings = TrainSettings(epochs=args.epochs)
        thresholds = Thresholds()
        base_overrides = ["validation.suite=null", "monitors.held_out_reward=null",
                          "logging.tensorboard=false", "workflow.export_check=false"]
        student_base = args.student_base
        if args.tiny:
            held = subset(held, out / "held.jsonl", 6)
            train = subset(train, out / "train.jsonl", 6)
            student_base, policy = tiny_models(out, train)
            settings = TrainSettings(method="full", epochs=1, learning_rate=3e-3)
            thresholds = Thresholds(min_accuracy=0.0, min_kappa=-1.0)  # a tiny student cannot pass
            args.seeds = min(args.seeds, 2)
            args.scorer_epochs = 1
            base_overrides += [f"model.name_or_path={policy}", "model.lora.rank=4", "model.lora.alpha=8",
                               "rollout.number_generation=2", "rollout.max_new_tokens=6",
                               "trainer.global_batch_size=4", "trainer.max_steps=2", "trainer.save_steps=2",
                               "evaluation.max_new_tokens=6", "evaluation.limit=2", "evaluation.k=2"]
        if args.steps is not None:
            base_overrides.append(f"trainer.max_steps={args.steps}")
        if args.eval_k is not None:
            base_overrides.append(f"evaluation.k={args.eval_k}")
        timings: dict[str, list[float]] = {}
        students = {}
        # the reward's student is the demo's (the plan `judgerl demo --judge student` trains, so a
        # demo run's RUN_DIR/student copied to OUTPUT/student-reward is reused); the scorer is
        # trained on the held-out rows and measured on the training rows
        plans = {"reward": StudentPlan(base_model=student_base, train=train, held_out=held, settings=settings,
                                       thresholds=thresholds),
                 "scorer": StudentPlan(base_model=student_base, train=held, held_out=train,
                                       settings=replace(settings, epochs=args.scorer_epochs),
                                       thresholds=thresholds)}
        for name, plan in plans.items():
            gate = "passed"
            try:
                student = prepare_student(out / f"student-{name}", plan)
            except DistillGateError as exc:  # measured anyway, and said so
                gate = f"REFUSED ({exc}); its figures below are for information only"
                open_gate = Thresholds(min_accuracy=0.0, min_kappa=-1.0)
                student = prepare_student(out / f"student-{name}", replace(plan, thresholds=open_gate))
            students[name] = student
            timings[f"distill {name} student"] = [student.seconds]
            figures = student.figures
            print(f"{name} student: trained on {plan.train.name} ({figures['train_rows']} rows), measured on "
                  f"{plan.held_out.name} ({figures['held_out_rows']} rows, other scenarios): accuracy "
                  f"{figures['accuracy']:.3f}, kappa {figures['kappa']:.3f}, AUC "
                  f"{'n/a' if figures.get('auc') is None else format(figures['auc'], '.3f')}"
                  f"{' (reused)' if student.reused else ''}; gate {gate}", flush=True)
        scoring = scorer_config(students["scorer"].model_dir)
        rewards = {"checks": write_config(checks_only_config(DEMO_RECIPE.parent / "reward.yaml"),
                                          out / "reward-checks.yaml"),
                   "checks+student": write_config(student_reward_config(DEMO_RECIPE.parent / "reward.yaml",
                                                                        students["reward"].model_dir),
                                                  out / "reward-checks-student.yaml")}
        from judgerl.train.grpo import train as rft
        from judgerl.train.recipe import load_recipe

        started = time.monotonic()
        base = evaluate(load_recipe(DEMO_RECIPE, base_overrides).model.name_or_path, "base", scoring,
                        base_overrides, out / "base")
        timings["evaluate base"] = [time.monotonic() - started]
        results: dict[str, dict[str, list[float]]] = {arm: {"criterion": [], "total": []} for arm in ARMS}
        for seed in range(args.seeds):
            for arm in ARMS:
                folder = out / f"{arm.replace('+', '-')}-seed{seed}"
                overrides = [*base_overrides, f"reward={rewards[arm]}", f"trainer.seed={seed}",
                             f"evaluation.seed={seed}", f"logging.output_dir={folder / 'rft'}"]
                started = time.monotonic()
                trained = folder / "rft" / "final" / "merged"
                if (trained / "config.json").is_file():  # a finished run of this seed and arm: reused
                    print(f"seed {seed} {arm}: reusing {trained}", flush=True)
                else:
                    result = rft(load_recipe(DEMO_RECIPE, overrides), skip_validation=True)
                    trained = trained_model(result.output_dir)
                    timings.setdefault(f"RFT {arm}", []).append(time.monotonic() - started)
                started = time.monotonic()
                summary = evaluate(str(trained), arm.replace("+", "-"), scoring,
                                   overrides, folder)
                timings.setdefault(f"evaluate {arm}", []).append(time.monotonic() - started)
                criterion = summary["components"].get(CRITERION)
                if criterion is not None:
                    results[arm]["criterion"].append(criterion)
                if summary.get("reward_mean") is not None:
                    results[arm]["total"].append(summary["reward_mean"])
                print(f"seed {seed} {arm:<15}: {CRITERION} {criterion}  total {summary.get('reward_mean')}",
                      flush=True)
        print(f"held-out demo prompts scored by the checks + the scoring student "
              f"(shares no labelled row or scenario with the reward's student); {args.seeds} seed(s)")
        base_criterion = base["components"].get(CRITERION)
        print(f"{'base policy':<26}: {CRITERION} {base_criterion}  total {base.get('reward_mean')}")
        for arm in ARMS:
            print(f"{arm:<15} {CRITERION:<10}: {spread(results[arm]['criterion'])}")
            print(f"{arm:<15} {'total':<10}: {spread(results[arm]['total'])}")
        for part, seconds in timings.items():
            runs = f" ({len(seconds)} runs)" if len(seconds) > 1 else ""
            print(f"time {part:<26}: {sum(seconds):.1f} s{runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
