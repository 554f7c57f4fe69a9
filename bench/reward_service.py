"""Benchmark of `judgerl serve` fed one rollout a request by many clients, with group assembly.

Why: verl ≥ 0.9 and OpenRLHF ≥ 0.9.1 send one rollout per request, from many workers, and a
group judge needs the k rollouts of a prompt together. The service holds them until the group is
complete (group assembly), then judges the group in one call. This prints whether that costs
throughput, and how much latency the holding adds:

- achieved ÷ ideal throughput (rollouts/s; target ≥ 0.90). The judge is fake: one call per group,
  latency L, at most C calls at a time (the runtime's concurrency cap), so it can judge at most
  C × G / L rollouts/s. K closed-loop clients each hold one rollout until its reward comes back,
  so at most floor(K/G) groups are in the service at once: ideal = min(C, floor(K/G)) × G / L.
  With K ≥ 2 × C × G (the defaults) groups queue for a judge slot while others are judged, and
  the figure measures the service, not the clients' pauses;
- the p50/p95 time a rollout was held for its group (the service's own measure, from /metrics),
  and the clients' p95 latency minus L (all overhead: HTTP, assembly, queueing).

The rollouts of a prompt are dealt to consecutive clients; each client waits a random
"generation" time in [0, J] before sending (rollouts of one prompt finish at different times).
The service runs in its own process (uvicorn on 127.0.0.1), the clients in this one (aiohttp).

    .venv/bin/python bench/reward_service.py               # K=64, G=8, C=4, L=0.5 s, J=20 ms, 20 s
    .venv/bin/python bench/reward_service.py --clients 8 --group 2 --slots 2
    .venv/bin/python bench/reward_service.py --tiny        # smoke run (CI): figures not meaningful
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import JudgeConfig, RewardConfig
from judgerl.judges.base import Judge
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.accounting import percentile
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample, Score

ROOT = Path(__file__).resolve().parents[1]


class FakeGroupJudge(Judge):
    """A whole-group judge that is not a model: one call per group to a scripted backend
    (latency L, C slots; each group's request is distinct, so no cache or dedup hit hides the
    judge's cost); the longest answer of the group scores 1, the others 0."""

    kind = "group"

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        result = await self.runtime.complete(self.backend_name, CompletionRequest(
            messages=[{"role": "user", "content": json.dumps({"question": sample.prompt,
                                                              "answers": [r.completion for r in rollouts]})}],
            max_tokens=4))
        if not result.ok:
            return [Score.unscored(self.name, f"judge_error: {result.error}") for _ in rollouts]
        longest = max(len(rollout.completion) for rollout in rollouts)
        return [Score(self.name, float(len(rollout.completion) == longest)) for rollout in rollouts]


def serve_child(args: argparse.Namespace) -> int:
    """The service process: `judgerl serve`'s app in front of the fake judge."""
    import uvicorn

    from judgerl.adapters.openrlhf import create_app

    backend = ScriptedBackend(lambda request: "ok", latency_s=args.latency, max_concurrency=args.slots)
    config = RewardConfig(judges=[JudgeConfig(name="best", type="custom")], failure_budget=None,
                          runtime={"max_attempts": 1})
    runtime = ModelRuntime({"judge": backend}, config.runtime)
    with RewardPipeline(config, runtime, [], [FakeGroupJudge(config.judges[0], runtime)]) as pipeline:
        app = create_app(pipeline, token=None, group_size=args.group, group_timeout_s=args.group_timeout)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve-child", "--port", str(port),
               "--latency", str(args.latency), "--slots", str(args.slots), "--group", str(args.group),
               "--group-timeout", str(args.group_timeout)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, env=env, text=True)
    return process, f"http://127.0.0.1:{port}"


async def wait_ready(url: str, process: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}")
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            await asyncio.sleep(0.1)


async def run_clients(url: str, args: argparse.Namespace) -> dict[str, Any]:
    work = itertools.count()
    latencies: list[float] = []
    done_at: list[float] = []
    errors: list[str] = []
    rng = random.Random(0)
    stop_at = time.monotonic() + args.duration
    connector = aiohttp.TCPConnector(limit=args.clients)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def client() -> None:
            while time.monotonic() < stop_at:
                item = next(work)
                prompt_index, rollout_index = divmod(item, args.group)
                await asyncio.sleep(rng.uniform(0, args.jitter))
                prompt = f"Prompt {prompt_index}: name a colour. Answer:"
                body = {"query": [f"{prompt} colour {'x' * rollout_index}"], "prompts": [prompt],
                        "labels": [""]}
                started = time.monotonic()
                async with session.post(f"{url}/get_reward", json=body) as response:
                    text = await response.text()
                    if response.status != 200:
                        errors.append(f"{response.status}: {text[:200]}")
                        continue
                latencies.append(time.monotonic() - started)
                done_at.append(time.monotonic())

        began = time.monotonic()
        await asyncio.gather(*(client() for _ in range(args.clients)))
        async with session.get(f"{url}/metrics") as response:
            metrics = await response.text()
    return {"latencies": latencies, "done_at": done_at, "errors": errors, "began": began, "metrics": metrics}


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found and found.group(1) != "NaN" else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64,
                        help="K clients, one rollout in flight each (8-64)")
    parser.add_argument("--group", type=int, default=8,
                        help="G rollouts per prompt (the expected group size)")
    parser.add_argument("--slots", type=int, default=4, help="C judge calls at a time")
    parser.add_argument("--latency", type=float, default=0.5, help="L, seconds per judge call")
    parser.add_argument("--jitter", type=float, default=0.02, help="J, spread of a group's arrivals (s)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--group-timeout", type=float, default=30.0, help="the service's group timeout")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--tiny", action="store_true", help="smoke run (seconds; figures not meaningful)")
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        return serve_child(args)
    if args.tiny:
        args.clients, args.group, args.slots, args.latency, args.duration = 8, 2, 2, 0.05, 1.5
    if args.clients < args.group:
        parser.error(f"--clients ({args.clients}) must be at least --group ({args.group}): a group needs "
                     "all its rollouts in flight at once")

    process, url = start_service(args)
    try:
        asyncio.run(wait_ready(url, process))
        result = asyncio.run(run_clients(url, args))
    finally:
        process.terminate()
        process.wait(timeout=30)

    latencies, done_at = result["latencies"], sorted(result["done_at"])
    # Throughput over the steady part: from 2 L after the start (the first groups are judged) to the
    # end of the load; rewards still coming back after it are not counted.
    window_start = result["began"] + min(2 * args.latency, args.duration / 2)
    window_end = result["began"] + args.duration
    in_window = sum(window_start <= moment <= window_end for moment in done_at)
    achieved = in_window / (window_end - window_start)
    ideal = min(args.slots, args.clients // args.group) * args.group / args.latency
    wait_p50 = metric(result["metrics"], "judgerl_group_wait_p50_seconds")
    wait_p95 = metric(result["metrics"], "judgerl_group_wait_p95_seconds")
    latency_p95 = percentile(latencies, 95)
    summary = {
        "clients": args.clients, "group": args.group, "slots": args.slots, "latency_s": args.latency,
        "jitter_s": args.jitter, "duration_s": args.duration, "rollouts": len(latencies),
        "errors": len(result["errors"]), "achieved_per_s": round(achieved, 2),
        "ideal_per_s": round(ideal, 2),
        "ratio": round(achieved / ideal, 3), "group_wait_p50_s": wait_p50, "group_wait_p95_s": wait_p95,
        "client_p95_overhead_s": None if latency_p95 is None else round(latency_p95 - args.latency, 4),
        "groups_complete": metric(result["metrics"], 'judgerl_groups_total{outcome="complete"}'),
        "groups_incomplete": metric(result["metrics"], 'judgerl_groups_total{outcome="incomplete"}'),
    }
    print(f"service: K={args.clients} clients, G={args.group} rollouts/prompt, fake group judge "
          f"L={args.latency * 1000:.0f} ms x C={args.slots} slots, J={args.jitter * 1000:.0f} ms, "
          f"{args.duration:g} s")
    print(f"rollouts: {len(latencies)} answered, {len(result['errors'])} errors; groups: "
          f"{summary['groups_complete']:.0f} complete, {summary['groups_incomplete']:.0f} at the timeout")
    print(f"throughput: {achieved:.1f} rollouts/s of ideal {ideal:.1f} = min(C, K//G) x G / L: "
          f"achieved/ideal {achieved / ideal:.3f} (target >= 0.90)")
    print(f"group assembly: a rollout held p50 {1000 * (wait_p50 or 0):.1f} ms, "
          f"p95 {1000 * (wait_p95 or 0):.1f} ms "
          f"(J = {args.jitter * 1000:.0f} ms); client p95 latency - L = "
          f"{1000 * (summary['client_p95_overhead_s'] or 0):.1f} ms (queueing for a judge slot included)")
    if result["errors"]:
        print("first error:", result["errors"][0])
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = summary["ratio"] >= 0.90 and not result["errors"]
    print("PASS" if ok else "BELOW TARGET", json.dumps(summary))
    return 0 if ok or args.tiny else 1


if __name__ == "__main__":
    sys.exit(main())
