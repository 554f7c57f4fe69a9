"""The two speed-ups behind the contract review study's wall clock, each measured both ways.

Why: `judgerl demo --task contract-review` runs its stages side by side in two worker processes
with one thread each, and its SFT uses TRL's fused LM head on the labelled positions only. Both
choices rest on a measurement of this machine, which this script repeats:

- `--part sft`: SFT steps of the study's recipe (the packaged 135M policy, 8 contracts a step)
  with TRL's fused LM head as shipped (every position projected on a CPU) and with judgerl's
  compact path (`judgerl.train.compact_lm_head`): median step seconds, their ratio, and whether
  the losses were the same.
- `--part workers`: GRPO steps of the study's recipe (checks-only reward), first in one process
  with every core, then as two processes with one thread each running at the same time: the
  steps done per minute both ways and their ratio (ideal on 2 cores: 2.0 when one process kept
  both cores busy, which sampling a 135M model does not).

    .venv/bin/python bench/study_throughput.py --part sft           # 4 SFT steps each way
    .venv/bin/python bench/study_throughput.py --part workers       # 3 GRPO steps, 1x2 then 2x1 threads
    .venv/bin/python bench/study_throughput.py --tiny               # smoke run: a tiny model, both parts
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_policy import build_tiny_model_dir  # noqa: E402


def recipe_overrides(model: str, out: Path, extra: list[str]) -> list[str]:
    return [f"model.name_or_path={model}", "logging.tensorboard=false", "validation.suite=null",
            "monitors.held_out_reward=null", f"logging.output_dir={out}", f"sft.output_dir={out}", *extra]


def metrics(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


SFT_CHILD = """
import json, sys
from pathlib import Path
import judgerl.train.sft as sft_module
from judgerl.distill.contract_study import study_folder
from judgerl.train.recipe import load_recipe
if sys.argv[2] == "shipped":  # TRL's fused head as shipped: every position projected on a CPU
    sft_module.use_compact_lm_head_on_cpu = lambda: False
sft_module.sft(load_recipe(study_folder() / "recipe.yaml", json.loads(sys.argv[1])))
"""


def sft_run(model: str, steps: int, compact: bool, out: Path,
            extra: list[str]) -> tuple[list[float], list[float]]:
    """One SFT run in a fresh process; (seconds of each step after the first, every step's loss)."""
    overrides = recipe_overrides(model, out, [f"sft.max_steps={steps}", *extra])
    variant = "compact" if compact else "shipped"
    subprocess.run([sys.executable, "-c", SFT_CHILD, json.dumps(overrides), variant],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = metrics(out)
    stamps = [row["time"] for row in rows]
    return ([later - earlier for earlier, later in itertools.pairwise(stamps)],
            [row["loss"] for row in rows])


def part_sft(model: str, steps: int, extra: list[str], work: Path) -> None:
    times, losses = {}, {}
    for compact in (False, True):
        times[compact], losses[compact] = sft_run(model, steps, compact, work / f"sft-{compact}", extra)
        print(f"compact={str(compact).lower()}: step seconds "
              + ", ".join(f"{seconds:.1f}" for seconds in times[compact]), flush=True)
    shipped, compact = statistics.median(times[False]), statistics.median(times[True])
    same = all(abs(a - b) < 1e-4 for a, b in zip(losses[False], losses[True], strict=True))
    print(f"\nSFT, {model}, {steps} steps each way (the first left out), losses the same: {same}")
    print(f"median step time: TRL as shipped {shipped:.2f} s, labelled positions only {compact:.2f} s; "
          f"speed-up {shipped / compact:.2f}x")


GRPO_CHILD = """
import json, sys, time
from pathlib import Path
from judgerl.distill.contract_study import study_folder
from judgerl.train.grpo import train
from judgerl.train.recipe import load_recipe
folder = study_folder()
out = Path(sys.argv[1])
recipe = load_recipe(folder / "recipe.yaml", json.loads(sys.argv[2]))
started = time.monotonic()
train(recipe, skip_validation=True)
print("SECONDS", time.monotonic() - started)
"""


def grpo_processes(model: str, steps: int, threads: int, copies: int, work: Path, extra: list[str]) -> float:
    """`copies` GRPO runs at once, `threads` torch threads each; the wall-clock seconds of all."""
    from judgerl.distill.contract_study import study_folder

    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.monotonic()
    children = []
    for copy in range(copies):
        out = work / f"grpo-{threads}x{copies}-{copy}"
        overrides = recipe_overrides(model, out, [f"reward={study_folder() / 'reward.yaml'}",
                                                  f"trainer.max_steps={steps}", f"trainer.save_steps={steps}",
                                                  f"trainer.seed={copy}", *extra])
        children.append(subprocess.Popen([sys.executable, "-c", GRPO_CHILD, str(out), json.dumps(overrides)],
                                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for child in children:
        if child.wait() != 0:
            raise SystemExit(f"a GRPO run failed (exit {child.returncode}); run it alone to see why")
    return time.monotonic() - started


def part_workers(model: str, steps: int, extra: list[str], work: Path) -> None:
    cores = os.cpu_count() or 1
    one = grpo_processes(model, steps, cores, 1, work, extra)
    print(f"1 process x {cores} threads: {steps} steps in {one:.0f} s", flush=True)
    two = grpo_processes(model, steps, max(1, cores // 2), 2, work, extra)
    print(f"2 processes x {max(1, cores // 2)} thread(s): {2 * steps} steps in {two:.0f} s", flush=True)
    single, double = steps / one * 60, 2 * steps / two * 60
    print(f"\nGRPO, {model}, {steps} steps a run (model load and save included), {cores} cores")
    print(f"steps per minute: one process {single:.2f}, two processes {double:.2f}; "
          f"ratio {double / single:.2f}x (ideal 2.0 if one process left half the cores idle)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("sft", "workers", "both"), default="both")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the policy (packaged 135M)")
    parser.add_argument("--steps", type=int, default=None, help="steps a run (default: sft 5, workers 3)")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: a tiny random model, 3 steps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        extra: list[str] = []
        if args.tiny:
            args.model, args.steps = str(build_tiny_model_dir(work / "tiny")), 3
            extra = ["rollout.max_new_tokens=8", "model.lora.layers=null", "sft.batch_size=2",
                     "sft.max_length=4096"]  # a character-level tokenizer: no row cut to nothing
        if args.part in ("sft", "both"):
            part_sft(args.model, args.steps or 5, extra, work)
        if args.part in ("workers", "both"):
            part_workers(args.model, args.steps or 3, extra, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
