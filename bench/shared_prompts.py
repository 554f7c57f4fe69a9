"""How much faster is a GRPO step when each prompt is computed once per group (`rollout.share_prompts`)?

Why: TRL's transformers path runs the whole prompt once per completion, when it samples and again
in the loss; judgerl's `SharedPromptGRPOTrainer` runs it once per group of `number_generation`
completions. The saving grows with the prompt's length next to the answer's: the contract review
case study (prompts of 250-420 tokens, answers up to 112) is the case it was written for, the
customer-support demo (short prompts) the other end.

Runs `judgerl train` on a packaged recipe twice per repeat, sharing off and on (alternating, the
order swapped every repeat), with the recipe's own checks as the reward (no judge: the policy's
work only), from the packaged SmolLM2-135M (or --model), and prints the median step time of each
(the first step left out: it warms up) and their ratio.

    .venv/bin/python bench/shared_prompts.py                      # contract review, 4 steps, 1 repeat
    .venv/bin/python bench/shared_prompts.py --task support       # the demo's recipe
    .venv/bin/python bench/shared_prompts.py --eval               # evaluation's k answers, both ways
    .venv/bin/python bench/shared_prompts.py --tiny               # seconds: a tiny model (CI smoke run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_policy import build_tiny_model_dir  # noqa: E402


def recipe_folder(task: str) -> Path:
    if task == "contract-review":
        from judgerl.distill.contract_study import study_folder

        return study_folder()
    from judgerl.run.workflow import DEMO_RECIPE

    return DEMO_RECIPE.parent


def step_times(task: str, model: str, steps: int, share: bool, out: Path, extra: list[str]) -> list[float]:
    """One `judgerl train` run; the seconds of each step after the first."""
    from judgerl.train.grpo import train
    from judgerl.train.recipe import load_recipe

    folder = recipe_folder(task)
    recipe = load_recipe(folder / "recipe.yaml", [
        f"model.name_or_path={model}", f"reward={folder / 'reward.yaml'}", f"rollout.share_prompts={share}",
        f"trainer.max_steps={steps}", f"trainer.save_steps={steps}", f"logging.output_dir={out}",
        "logging.tensorboard=false", "validation.suite=null", "monitors.held_out_reward=null", *extra])
    train(recipe, skip_validation=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return [row["step_time"] for row in rows if row.get("step_time") is not None][1:]


def evaluation_seconds(task: str, model: str, prompts: int, k: int, max_new_tokens: int) -> None:
    """Evaluation's sampling (`Policy.generate`): k answers to each of `prompts` held-out prompts,
    from one prefill per prompt and with `num_return_sequences=k`, alternating twice; the answers
    must be the same."""
    import time

    from judgerl.models.policy import SamplingConfig, load_policy
    from judgerl.run.folder import read_rows

    policy = load_policy(model)
    rows = read_rows(recipe_folder(task) / "eval.jsonl")[:prompts]
    chosen = [row["messages"] if "messages" in row else [{"role": "user", "content": row["prompt"]}]
              for row in rows]
    sampling = SamplingConfig(k=k, temperature=0.7, max_new_tokens=max_new_tokens, batch_size=len(chosen))
    seconds: dict[bool, list[float]] = {True: [], False: []}
    answers: dict[bool, list[list[str]]] = {}
    for share in (True, False, True, False):
        policy.share_prompts = share
        started = time.perf_counter()
        answers[share] = [[g.text for g in group] for group in policy.generate(chosen, sampling)]
        seconds[share].append(time.perf_counter() - started)
    same = answers[True] == answers[False]
    one, copied = min(seconds[True]), min(seconds[False])
    print(f"{task}: {len(chosen)} prompts x k={k}, up to {max_new_tokens} tokens; answers the same: {same}")
    print(f"evaluation sampling: num_return_sequences {copied:.1f} s, one prefill a prompt {one:.1f} s; "
          f"speed-up {copied / one:.2f}x (one prefill / copies = {one / copied:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("contract-review", "support"), default="contract-review")
    parser.add_argument("--model", default="smollm2-135m-instruct", help="the policy (packaged 135M)")
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps a run (the first is left out)")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs (off, on), order swapped each")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: a tiny random model, 2 steps")
    parser.add_argument("--eval", action="store_true",
                        help="time evaluation's sampling instead (8 held-out prompts, k=2, 112 tokens)")
    args = parser.parse_args()
    if args.eval:
        evaluation_seconds(args.task, args.model, 8, 2, 112)
        return 0
    extra: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.tiny:
            args.model, args.steps = str(build_tiny_model_dir(work / "tiny")), 2
            extra = ["rollout.max_new_tokens=8", "model.lora.layers=null"]
        times: dict[bool, list[float]] = {False: [], True: []}
        for repeat in range(args.repeat):
            for share in ((False, True) if repeat % 2 == 0 else (True, False)):
                out = work / f"run-{repeat}-{'shared' if share else 'trl'}"
                times[share] += step_times(args.task, args.model, args.steps, share, out, extra)
                latest = times[share][-(args.steps - 1):]
                print(f"repeat {repeat}, share_prompts={str(share).lower()}: step seconds "
                      + ", ".join(f"{seconds:.2f}" for seconds in latest), flush=True)
    trl, shared = statistics.median(times[False]), statistics.median(times[True])
    print(f"\n{args.task}, {args.model}, {args.steps} steps x {args.repeat} repeat(s), "
          "first step of each run left out")
    print(f"median step time: TRL's path {trl:.2f} s, shared prompts {shared:.2f} s; "
          f"speed-up {trl / shared:.2f}x (shared / TRL = {shared / trl:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
