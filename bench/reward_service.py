"""Benchmark of `judgerl serve` fed one rollout a request by many clients, with group assembly;
and (`--openrlhf N`) OpenRLHF's own reward client sending a whole batch at once.

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

`--openrlhf N[,N...]` (issue 26): OpenRLHF 0.11.2 scores every rollout of a batch concurrently,
one POST per rollout on a new connection (`SingleTurnAgentExecutor._fetch_rewards_via_http`: 5
tries 1 s apart, a 180 s timeout each, then no reward), and a rollout without a reward makes its
experience maker raise. A batch is `rollout_batch_size` x `n_samples_per_prompt` rollouts (e.g.
1,024 x 8 = 8,192). This mode drives that real executor with N rollouts at once against
`judgerl serve` started as a user starts it (its CLI, default limits) in front of a loopback
OpenAI-compatible judge (tests/fake_openai.py, its own process) answering each call in L s
(`--judge-latency`), C calls at a time (`--judge-slots`, the config's `max_concurrency`). Only
the generation engine is a stand-in (vLLM needs a GPU): it answers at once, so the whole batch
reaches the service together (the worst case). For each N it prints the rollouts without a
reward (goal 0), the tries OpenRLHF repeated, p50/p95 latency of a rollout's reward, the
service's peak resident memory (VmHWM) and its growth over the idle service divided by N (the
memory each waiting request costs, an upper bound), achieved vs ideal throughput (a pointwise
judge makes one call per rollout, C at a time:
ideal N / (ceil(N / C) x L) rollouts/s, C / L for large N), and with `--group-size G` the groups
assembled complete or split at the group timeout. Each N gets a fresh service.

    .venv/bin/python bench/reward_service.py --openrlhf 1000,4000,10000
    .venv/bin/python bench/reward_service.py --openrlhf 1000,4000,10000 --group-size 8
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import logging
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
from serve_soak import start_fake_judge, stop_process, wait_healthy, write_config

from judgerl.adapters.http_guard import raise_fd_limit
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


# -- --openrlhf: OpenRLHF's own client, a whole batch at once (issue 26) ------------------------------


@dataclass
class LoadResult:
    rollouts: int
    without_reward: int
    failed_tries: int
    p50_s: float | None
    p95_s: float | None
    seconds: float
    achieved_per_s: float
    ideal_per_s: float
    idle_rss_mb: float | None
    peak_rss_mb: float | None
    per_request_kb: float | None
    groups_complete: float | None
    groups_split: float | None
    statuses: dict[str, float]
    log_tracebacks: int
    log_deadlines: int
    try_errors: list[tuple[str, int]]
    service_cpu_ms_per_rollout: float | None


def status_kb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process `pid` so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_cli_service(config: Path, port: int, group_size: int, log: Path) -> subprocess.Popen[bytes]:
    """`judgerl serve` as a user starts it: its CLI, default limits (only --no-auth on loopback)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "judgerl.cli", "serve", "-c", str(config), "--port", str(port),
               "--no-auth"]
    if group_size > 1:
        command += ["--group-size", str(group_size)]
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)


class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine (not a model): answers `token_ids` at once, then EOS."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids

    async def generate(self, prompt_token_ids: list[int], params: Any, multi_modal_data: Any = None) -> Any:
        output = SimpleNamespace(token_ids=list(self.token_ids), finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


class TryCounter(logging.Handler):
    """Counts OpenRLHF's own log lines for a failed try (it logs each at INFO, then retries)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failed_tries = 0
        self.kinds: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "error, please check" in message:
            self.failed_tries += 1
            self.kinds[re.sub(r"\d+", "#", message)[:160]] += 1


def openrlhf_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from judgerl.models import resolve_model

    return AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct")))


async def send_batch(url: str, count: int, group_size: int,
                     tok: Any) -> tuple[list[dict], list[float], float]:
    """N rollouts through OpenRLHF's `SingleTurnAgentExecutor`, all at once; (outputs, latencies, seconds)."""
    from openrlhf.datasets.prompts_dataset import preprocess_data
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(remote_rm_url=f"{url}/get_reward")
    params = SimpleNamespace(max_tokens=64, logprobs=None)
    prompts = [preprocess_data({"input": f"Question {index}: name a colour and say why."},
                               input_key="input", apply_chat_template=tok.apply_chat_template)[0]
               for index in range(-(-count // group_size))]
    engines = [ScriptedEngine(tok(f"Colour {index}: blue, like the sky at noon.", add_special_tokens=False)
                              ["input_ids"] + [tok.eos_token_id]) for index in range(count)]
    latencies: list[float] = []

    async def rollout(index: int) -> dict:
        started = time.monotonic()
        output = await executor.execute(prompts[index // group_size], "", params, max_length=512,
                                        hf_tokenizer=tok, llm_engine=engines[index])
        latencies.append(time.monotonic() - started)
        return output

    began = time.monotonic()
    outputs = await asyncio.gather(*(rollout(index) for index in range(count)))
    return list(outputs), latencies, time.monotonic() - began


def run_load(count: int, *, latency_s: float, slots: int, group_size: int, tok: Any,
             keep_log: Path | None = None) -> LoadResult:
    """One fresh service, one batch of `count` rollouts through OpenRLHF's client."""
    soft = raise_fd_limit()[1]
    if soft < count + 512:
        raise RuntimeError(f"this process may open {soft} files; {count} rollouts at once need about "
                           f"{count + 512} (raise `ulimit -n`)")
    from openrlhf.utils import agent

    counter = TryCounter()
    agent_logger = agent.logger
    saved_handlers = list(agent_logger.handlers)
    for handler in saved_handlers:
        agent_logger.removeHandler(handler)  # thousands of retry lines would bury the figures
    agent_logger.addHandler(counter)
    judge, judge_url = start_fake_judge(latency_s)
    with tempfile.TemporaryDirectory() as folder:
        log = keep_log or Path(folder) / "serve.log"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        service = start_cli_service(write_config(Path(folder), judge_url, slots, timeout_s=60), port,
                                    group_size, log)
        try:
            wait_healthy(url, service, timeout_s=120)
            warm = httpx.post(f"{url}/get_reward", timeout=60,
                              json={"query": ["Q: warm up? A: yes, warm."], "group_size": 1})
            if warm.status_code != 200:
                raise RuntimeError(f"warm-up request -> {warm.status_code}: {warm.text[:300]}")
            idle_kb = status_kb(service.pid, "VmRSS")
            cpu_before = cpu_seconds(service.pid)
            outputs, latencies, seconds = asyncio.run(send_batch(url, count, group_size, tok))
            peak_kb = status_kb(service.pid, "VmHWM")
            cpu_after = cpu_seconds(service.pid)
            metrics = httpx.get(f"{url}/metrics", timeout=30).text
        finally:
            stop_process(service, 60)
            stop_process(judge, 30)
            agent_logger.removeHandler(counter)
            for handler in saved_handlers:
                agent_logger.addHandler(handler)
        log_text = log.read_text(errors="replace")
    without = sum(output["reward"] is None for output in outputs)
    statuses = {found.group(1): float(found.group(2)) for found in
                re.finditer(r'^judgerl_requests_total\{code="(\d+)"\} (\S+)$', metrics, re.M)}
    return LoadResult(
        rollouts=count, without_reward=without, failed_tries=counter.failed_tries,
        p50_s=percentile(latencies, 50), p95_s=percentile(latencies, 95), seconds=seconds,
        achieved_per_s=(count - without) / seconds, ideal_per_s=count / (-(-count // slots) * latency_s),
        idle_rss_mb=None if idle_kb is None else idle_kb / 1024,
        peak_rss_mb=None if peak_kb is None else peak_kb / 1024,
        per_request_kb=None if idle_kb is None or peak_kb is None else (peak_kb - idle_kb) / count,
        groups_complete=metric(metrics, 'judgerl_groups_total{outcome="complete"}'),
        groups_split=metric(metrics, 'judgerl_groups_total{outcome="incomplete"}'),
        statuses=statuses, log_tracebacks=log_text.count("Traceback"),
        log_deadlines=log_text.count("did not arrive within"), try_errors=counter.kinds.most_common(3),
        service_cpu_ms_per_rollout=None if cpu_before is None or cpu_after is None
        else 1000 * (cpu_after - cpu_before) / count)


def print_load(result: LoadResult, *, latency_s: float, slots: int, group_size: int) -> None:
    ms = lambda seconds: "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"  # noqa: E731
    print(f"N={result.rollouts:,} rollouts at once (OpenRLHF SingleTurnAgentExecutor), judge L="
          f"{latency_s * 1000:.0f} ms x C={slots}, group size {group_size}", flush=True)
    print(f"  rollouts without a reward: {result.without_reward} (goal 0); tries OpenRLHF repeated: "
          f"{result.failed_tries}; answers by status: {result.statuses}", flush=True)
    for message, count in result.try_errors:
        print(f"    {count} x {message}", flush=True)
    print(f"  latency p50 {ms(result.p50_s)}, p95 {ms(result.p95_s)}; batch done in {result.seconds:.1f} s",
          flush=True)
    print(f"  throughput {result.achieved_per_s:.1f} rollouts/s of ideal {result.ideal_per_s:.1f} "
          f"= N / (ceil(N / C) x L): achieved/ideal {result.achieved_per_s / result.ideal_per_s:.3f}",
          flush=True)
    if result.service_cpu_ms_per_rollout is not None:
        print(f"  service CPU {result.service_cpu_ms_per_rollout:.2f} ms per rollout (ceiling on one free "
              f"core: {1000 / result.service_cpu_ms_per_rollout:.0f} rollouts/s)", flush=True)
    per = "n/a" if result.per_request_kb is None else f"{result.per_request_kb:.1f} KiB"
    print(f"  service RSS idle {result.idle_rss_mb or 0:.0f} MB, peak {result.peak_rss_mb or 0:.0f} MB: "
          f"{per} per request in flight; in its log: {result.log_tracebacks} tracebacks, "
          f"{result.log_deadlines} connections closed at a read deadline", flush=True)
    if group_size > 1:
        print(f"  groups: {result.groups_complete or 0:.0f} complete, {result.groups_split or 0:.0f} split "
              f"at the group timeout (expected {-(-result.rollouts // group_size)} complete)", flush=True)


def openrlhf_mode(args: argparse.Namespace) -> int:
    counts = [int(part) for part in str(args.openrlhf).split(",") if part.strip()]
    if args.tiny:
        counts = [min(counts[0], 48)] if counts else [48]
    tok = openrlhf_tokenizer()
    results = []
    for count in counts:
        result = run_load(count, latency_s=args.judge_latency, slots=args.judge_slots,
                          group_size=args.group_size, tok=tok)
        print_load(result, latency_s=args.judge_latency, slots=args.judge_slots, group_size=args.group_size)
        results.append(result)
    ok = all(result.without_reward == 0 and result.log_tracebacks == 0 and not result.groups_split
             for result in results)
    summary = [asdict(result) for result in results]
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    print("PASS" if ok else "FAIL", json.dumps(summary), flush=True)
    return 0 if ok else 1


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
    parser.add_argument("--openrlhf", default=None, metavar="N[,N...]",
                        help="OpenRLHF's real client sending N rollouts at once to `judgerl serve`")
    parser.add_argument("--judge-latency", type=float, default=0.2, help="--openrlhf: judge seconds per call")
    parser.add_argument("--judge-slots", type=int, default=64, help="--openrlhf: judge calls at a time (C)")
    parser.add_argument("--group-size", type=int, default=1,
                        help="--openrlhf: the service's --group-size (rollouts per prompt)")
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        return serve_child(args)
    if args.openrlhf:
        return openrlhf_mode(args)
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
