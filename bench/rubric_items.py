"""Benchmark: what a per-prompt rubric costs per rollout, by how its items are asked.

Why: a rubric of n items can be judged in 1 call (all items in one JSON answer), in n calls
(one item each), in batches (`items_per_call`), as n one-token logprob questions, or as one
holistic score (`mode: implicit`). Their cost differs by the number of calls and the prompt
tokens each repeats; this script prints both, and the seconds, per rollout.

    .venv/bin/python bench/rubric_items.py                       # both parts below
    .venv/bin/python bench/rubric_items.py --part calls          # 1. only (seconds: overhead only)
    .venv/bin/python bench/rubric_items.py --part calls --base-url http://127.0.0.1:8000/v1 --model M
    .venv/bin/python bench/rubric_items.py --part logprob --rollouts 12
    .venv/bin/python bench/rubric_items.py --part logprob --rollouts 3 --threads 1   # a crowded machine
    .venv/bin/python bench/rubric_items.py --tiny                # smoke run: it works, no figures

1. `calls`: for 5, 10 and 20 items (criteria pooled from examples/rubrics/prompts.jsonl), the rubric
   judge on the example's answers in four ways: explicit with one item per call, batched (5 per
   call), all in one call, and implicit. Judge calls, prompt tokens (counted with the packaged
   SmolLM2 tokenizer on the rendered messages) and seconds per rollout. The default backend is
   the example's scripted overlap judge (not a model): its seconds are judgerl's own overhead;
   `--base-url` times a real OpenAI-compatible server instead.
2. `logprob`: the embedded SmolLM2-135M judge (`type: local`, in-process, CPU), `scoring:
   logprob`, at 1 item and at 10 items per rollout, with the backend's shared-prefix KV cache and
   without it (`prefix_cache_tokens: 0`): seconds per rollout (median over `--rollouts`), prompt
   tokens run through the model, and the ratio 10 items / 1 item (the issue asks <= 2.5x). Each
   rollout's answer differs, so only the prefix within a rollout is shared.

Timings are wall time on this machine and noisy when its cores are shared: say so when quoting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from judgerl.backends.base import Backend  # noqa: E402
from judgerl.backends.local import LocalBackend  # noqa: E402
from judgerl.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from judgerl.backends.scripted import ScriptedBackend, load_responder  # noqa: E402
from judgerl.config import JudgeConfig  # noqa: E402
from judgerl.judges import build_judge  # noqa: E402
from judgerl.runtime.model_runtime import ModelRuntime  # noqa: E402
from judgerl.types import Rollout, Sample  # noqa: E402

EXAMPLE = ROOT / "examples" / "rubrics"


def example_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EXAMPLE / "rollouts.jsonl").read_text().splitlines()
            if json.loads(line)["rollout_id"].endswith("/good")]


def rubric_of(rows: list[dict[str, Any]], index: int, n: int) -> list[dict[str, Any]]:
    """n items: the row's own, then criteria of the next rows (a longer rubric of real criteria)."""
    items: list[dict[str, Any]] = []
    for offset in range(len(rows)):
        for item in rows[(index + offset) % len(rows)]["rubric"]:
            if len(items) < n:
                items.append(item)
    if not any(item["weight"] > 0 for item in items):
        items[0] = {**items[0], "weight": 5, "category": "essential"}
    return items


def token_counter() -> Any:
    from transformers import AutoTokenizer

    from judgerl.models.packaged import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct"))
    return lambda messages: sum(len(tokenizer(message["content"])["input_ids"]) for message in messages)


async def judge_rollouts(backend: Backend, options: dict[str, Any], rows: list[dict[str, Any]],
                         n: int, count_tokens: Any) -> dict[str, float]:
    runtime = ModelRuntime({"judge": backend}, None)
    judge = build_judge(JudgeConfig(name="rubric", type="rubric", backend="judge", **options), runtime)
    calls: list[int] = []
    tokens: list[int] = []
    seconds: list[float] = []
    unscored = 0
    for index, row in enumerate(rows):
        sample = Sample(row["id"], [{"role": "user", "content": row["prompt"]}],
                        metadata={"rubric": rubric_of(rows, index, n)})
        before = len(runtime.journal_entries)
        started = time.perf_counter()
        score = await judge.score(sample, Rollout(row["id"], row["completion"], id=row["rollout_id"]))
        seconds.append(time.perf_counter() - started)
        unscored += score.value is None
        [entry] = runtime.journal_entries[before:]
        calls.append(entry["calls"])
        tokens.append(sum(count_tokens(request["messages"]) for request in entry["requests"]))
    await runtime.aclose()
    return {"calls": statistics.mean(calls), "prompt_tokens": statistics.mean(tokens),
            "seconds": statistics.median(seconds), "unscored": unscored}


def part_calls(args: argparse.Namespace, count_tokens: Any) -> None:
    rows = example_rows()[: args.rollouts]
    ways = {"explicit, 1 item per call": {"items_per_call": 1},
            "explicit, 5 items per call": {"items_per_call": 5},
            "explicit, all in one call": {},
            "implicit (one 1-10 score)": {"mode": "implicit"}}
    where = args.base_url or "scripted overlap judge (not a model): seconds are judgerl's overhead"
    print(f"\n1. judge calls, prompt tokens and seconds per rollout ({len(rows)} rollouts; {where})")
    print(f"{'items':>5}  {'way':<28} {'calls':>6} {'prompt tokens':>14} {'seconds':>9}")
    for n in args.items:
        for name, options in ways.items():
            backend: Backend
            if args.base_url:
                backend = OpenAICompatBackend(base_url=args.base_url, model=args.model)
            else:
                responder = load_responder(f"{EXAMPLE / 'scripted_judge.py'}:respond", None,
                                           field="responder")
                backend = ScriptedBackend(responder)
            figures = asyncio.run(judge_rollouts(backend, {**options, "max_tokens": 4096}, rows, n,
                                                 count_tokens))
            flag = f"  ({figures['unscored']} unscored)" if figures["unscored"] else ""
            print(f"{n:>5}  {name:<28} {figures['calls']:>6.1f} {figures['prompt_tokens']:>14.0f} "
                  f"{figures['seconds']:>9.4f}{flag}")


def part_logprob(args: argparse.Namespace, count_tokens: Any) -> None:
    rows = example_rows()[: args.rollouts + 1]
    print(f"\n2. embedded SmolLM2-135M, scoring: logprob, {args.rollouts} rollouts (median s per rollout)")
    print(f"{'prefix cache':<13} {'items':>5} {'calls':>6} {'prompt tok':>10} {'prefilled tok':>13} "
          f"{'seconds':>8}")
    # off first: the engine is shared by the process and keeps the largest prefix budget it was given
    for cache_tokens in (0, None):
        results = {}
        for n in (1, 10):
            backend = LocalBackend("smollm2-135m-instruct", max_concurrency=16, chat_template=False,
                                   threads=args.threads,
                                   **({} if cache_tokens is None else {"prefix_cache_tokens": cache_tokens}))
            warm = asyncio.run(judge_rollouts(backend, {"scoring": "logprob"}, rows[:1], n, count_tokens))
            assert warm["unscored"] == 0, "the warm-up rollout was unscored"
            engine = backend._engine
            before = engine.stats.snapshot() if engine is not None else {}
            figures = asyncio.run(judge_rollouts(backend, {"scoring": "logprob"}, rows[1:], n, count_tokens))
            after = engine.stats.snapshot() if engine is not None else {}
            prefilled = ((after.get("prefill_tokens", 0) - before.get("prefill_tokens", 0))
                         / max(1, len(rows) - 1))
            results[n] = figures["seconds"]
            label = "on" if cache_tokens is None else "off"
            print(f"{label:<13} {n:>5} {figures['calls']:>6.1f} {figures['prompt_tokens']:>10.0f} "
                  f"{prefilled:>13.0f} {figures['seconds']:>8.3f}")
        print(f"{'':<13} 10 items / 1 item = {results[10] / results[1]:.2f}x"
              + ("   (target <= 2.5x)" if cache_tokens is None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["calls", "logprob", "both"], default="both")
    parser.add_argument("--items", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--rollouts", type=int, default=12)
    parser.add_argument("--base-url", default=None, help="time a real OpenAI-compatible judge (part 1)")
    parser.add_argument("--model", default="judge-model")
    parser.add_argument("--threads", type=int, default=None,
                        help="part 2: torch threads of the local engine (1 on a crowded machine)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: 2 rollouts, 5 items, part 1 only")
    args = parser.parse_args()
    if args.tiny:
        args.part, args.items, args.rollouts = "calls", [5], 2
    count_tokens = token_counter()
    if args.part in ("calls", "both"):
        part_calls(args, count_tokens)
    if args.part in ("logprob", "both"):
        part_logprob(args, count_tokens)


if __name__ == "__main__":
    main()
