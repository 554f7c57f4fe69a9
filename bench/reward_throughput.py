"""Throughput benchmark of the reward runtime against a fake judge with latency and a concurrency cap.

Why: the runtime's job is to keep a judge endpoint busy without tripping its limits. This
prints, in one run, the figures that say whether it does (issue 3, item 6; issue 30, item 6):

1. achieved calls/s / ideal min(C/L, RPM/60) through `ModelRuntime` (target >= 0.90), at two
   points: the stress point (L = 0.2 s, N = 2048 = 32 x C: whole rounds, so the batch ceiling
   ceil(N/C) x L is the ideal time) and a realistic one (L = 1 s, LLM judges answer in 1-5 s;
   N = 1024). Each run is split exactly into where its time went, from the fake server's
   timestamps along the chain of calls that ended last (`account`): the ideal time, the round
   quantisation, start-up, the server's lateness, the client's turnaround per round, the end;
   with the client's CPU per call and the garbage collector's share of it. The same batch is
   run with a bare client in the runtime's place (the same gather of N coroutines, an
   asyncio.Semaphore(C) and one aiohttp session, no runtime, no retries, no accounting;
   `--no-floor` skips it), alternating: what this machine, asyncio, aiohttp and the fake server
   allow, so the runtime's own share is the difference;
2. the same batch the naive way (one thread per sample, no limits, no retries, as in common
   reward-Lambda examples), with its 429 count;
3. retry amplification (HTTP attempts / logical calls) when every 5th request is answered 429
   (expected 1.25), and the number of requests sent inside an announced Retry-After window
   (must be 0), counted by an observer below the runtime (aiohttp trace callbacks);
4. judge calls saved by the cache and the in-batch dedup on a batch where half the answers repeat.

`--repeat R` runs phase 1 R times at each point, alternating the runtime and the bare client,
and prints medians; `--only-throughput` skips phases 2-4: `--only-throughput --repeat 3` is the
fair re-measurement (about 2.5 minutes). `--overhead` prints only the runtime's own CPU per call,
no HTTP: N calls through `ModelRuntime` to a backend that answers at once, against the same
calls through a bare semaphore (median of 7 runs of 20,000 calls; seconds). `--profile` prints
the Python function calls a judgment costs through the runtime, the backend alone and the bare
client (cProfile's call counts: unlike timings, they do not move with the machine's load).

The fake judge (tests/fake_openai.py) runs in its own process on 127.0.0.1: fixed latency L,
and beyond C requests in flight it answers 429 with Retry-After.

    .venv/bin/python bench/reward_throughput.py                # both points, phases 1-4 (~70 s)
    .venv/bin/python bench/reward_throughput.py --n 300 --latency 0.1 --concurrency 16 --realistic-latency 0
    .venv/bin/python bench/reward_throughput.py --only-throughput --repeat 3  # medians, vs a bare client
    .venv/bin/python bench/reward_throughput.py --only-throughput --n 2000 --realistic-latency 0  # old shape
    .venv/bin/python bench/reward_throughput.py --tiny     # smoke run (CI): it works, figures not meaningful
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import math
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from judgerl.backends.base import Backend, BackendLimits, Completion, CompletionRequest, Usage
from judgerl.backends.openai_compat import OpenAICompatBackend, parse_retry_after
from judgerl.config import RuntimeConfig
from judgerl.errors import BackendError
from judgerl.runtime.model_runtime import ModelRuntime

ROOT = Path(__file__).resolve().parents[1]
FAKE_SERVER = ROOT / "tests" / "fake_openai.py"


class RetryAfterObserver:
    """Counts requests put on the wire inside a Retry-After window the client has already seen.

    It hooks into the HTTP client itself (aiohttp trace callbacks), below the runtime, so it sees
    what really goes out: a request counts when its headers are written to the socket, and a
    window opens when a 429's headers arrive (before the runtime has even read the answer).
    """

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []
        self.sent = 0
        self.sent_in_window = 0
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_headers_sent.append(self._on_sent)
        self.trace.on_request_end.append(self._on_answer)

    async def _on_sent(self, _session: Any, _context: Any, _params: Any) -> None:
        now = time.monotonic()
        self.sent += 1
        if any(start <= now < end for start, end in self.windows[-256:]):
            self.sent_in_window += 1

    async def _on_answer(self, _session: Any, _context: Any, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status == 429:
            wait = parse_retry_after(params.response.headers)
            if wait:
                seen = time.monotonic()
                self.windows.append((seen, seen + wait))


class FakeJudge:
    """The fake judge server in a child process, with its admin endpoints."""

    def __init__(self, latency: float, concurrency: int, retry_after: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(FAKE_SERVER), "--latency", str(latency), "--concurrency-limit",
             str(concurrency), "--limit-retry-after", str(retry_after)],
            stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"fake judge did not start: {line!r}")
        self.base = f"http://127.0.0.1:{line.split()[1]}"
        self.url = self.base + "/v1"
        self.admin = httpx.Client(timeout=30)

    def configure(self, **settings: Any) -> None:
        self.admin.post(self.base + "/_config", json=settings).raise_for_status()
        self.admin.post(self.base + "/_reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self.admin.get(self.base + "/_stats").json()

    def close(self) -> None:
        self.admin.close()
        self.process.terminate()
        self.process.wait(10)


def judge_request(text: str) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "system", "content": "Score the answer from 1 to 5."},
                                       {"role": "user", "content": text}], max_tokens=32)


async def run_runtime(url: str, prompts: list[str], concurrency: int, *, rpm: float | None = None,
                      cache_path: str | None = None, dedup: bool = False,
                      observer: RetryAfterObserver | None = None,
                      ) -> tuple[float, float, dict[str, Any], int]:
    """Score `prompts` through the runtime; returns (start time, seconds, stats snapshot, failed calls)."""
    backend = OpenAICompatBackend(url, "fake-judge", max_concurrency=concurrency, timeout_s=30,
                                  rpm=rpm, trace_configs=[observer.trace] if observer else None)
    config = RuntimeConfig(cache_path=cache_path, dedup=dedup, max_attempts=8, retry_after_cap_s=10)
    runtime = ModelRuntime({"judge": backend}, config)
    started = time.monotonic()
    results = await asyncio.gather(*(runtime.complete("judge", judge_request(text)) for text in prompts))
    elapsed = time.monotonic() - started
    snapshot = runtime.stats.snapshot()
    await runtime.aclose()
    return started, elapsed, snapshot, sum(not result.ok for result in results)


async def run_floor(url: str, prompts: list[str], concurrency: int) -> tuple[float, float, int]:
    """Phase 1 without the runtime: a semaphore, one aiohttp session, the same JSON body.

    Returns (start time, seconds, failed calls). What a client can do here at best, the runtime's
    limits, retries, breaker and accounting left out."""
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(text: str) -> bool:
            async with slots:
                body = json.dumps({"model": "fake-judge", "messages": judge_request(text).messages,
                                   "max_tokens": 32}, separators=(",", ":")).encode()
                async with session.post(url + "/chat/completions", data=body) as reply:
                    answer = json.loads(await reply.read())
                    return reply.status == 200 and bool(answer["choices"][0]["message"]["content"])

        started = time.monotonic()
        results = await asyncio.gather(*(one(text) for text in prompts))
        return started, time.monotonic() - started, sum(not ok for ok in results)


async def run_backend_only(url: str, prompts: list[str], concurrency: int) -> tuple[float, float, int]:
    """Phase 1 with the OpenAI-compatible backend but no runtime (`--split`): an asyncio.Semaphore(C)
    around `OpenAICompatBackend.complete`. Between the bare client and the runtime, it says which
    of the two the difference is in. Returns (start time, seconds, failed calls)."""
    backend = OpenAICompatBackend(url, "fake-judge", max_concurrency=concurrency, timeout_s=30)
    slots = asyncio.Semaphore(concurrency)

    async def one(text: str) -> bool:
        async with slots:
            try:
                return bool((await backend.complete(judge_request(text))).text)
            except BackendError:
                return False

    started = time.monotonic()
    results = await asyncio.gather(*(one(text) for text in prompts))
    elapsed = time.monotonic() - started
    await backend.aclose()
    return started, elapsed, sum(not ok for ok in results)


class InstantBackend(Backend):
    """Answers at once (after one event-loop turn): what is left is the runtime's own work."""

    kind = "instant"

    async def complete(self, request: CompletionRequest) -> Completion:
        await asyncio.sleep(0)
        return Completion(text="ok", model=self.model, usage=Usage(prompt_tokens=20, completion_tokens=1))


def call_counts(judge: FakeJudge, prompts: list[str], concurrency: int, top: int = 15) -> dict[str, Any]:
    """`--profile`: the Python function calls a judgment costs on each client path (cProfile's call
    counts, which unlike timings do not move with the machine's load), and the functions whose
    counts differ most between the runtime and the bare client."""
    counts: dict[str, dict[str, int]] = {}
    for client, run in (("runtime", lambda: run_runtime(judge.url, prompts, concurrency)),
                        ("backend", lambda: run_backend_only(judge.url, prompts, concurrency)),
                        ("bare", lambda: run_floor(judge.url, prompts, concurrency))):
        judge.configure(every_nth_429=None)
        profile = cProfile.Profile()
        profile.enable()
        asyncio.run(run())
        profile.disable()
        rows: dict[str, int] = {}
        for (filename, _line, function), (primitive, *_rest) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
            where = re.sub(r".*/(site-packages|python3\.\d+|src)/", "", filename.replace(f"{ROOT}/", ""))
            rows[f"{where}:{function}"] = rows.get(f"{where}:{function}", 0) + primitive
        counts[client] = rows
    n = len(prompts)
    totals = {client: sum(rows.values()) / n for client, rows in counts.items()}
    print(f"Python function calls a judgment (cProfile, N={n}): runtime {totals['runtime']:.0f}, backend "
          f"alone {totals['backend']:.0f}, bare client {totals['bare']:.0f}")
    names = set().union(*counts.values())
    ranked = sorted(names, key=lambda name: -abs(counts["runtime"].get(name, 0)
                                                 - counts["bare"].get(name, 0)))
    print(f"   {'runtime':>8s} {'backend':>8s} {'bare':>8s}  calls a judgment, the {top} largest differences")
    for name in ranked[:top]:
        print(f"   {counts['runtime'].get(name, 0) / n:8.2f} {counts['backend'].get(name, 0) / n:8.2f} "
              f"{counts['bare'].get(name, 0) / n:8.2f}  {name}")
    return {"calls_per_judgment": {client: round(total, 1) for client, total in totals.items()}}


def runtime_overhead(calls: int, concurrency: int, runs: int = 7) -> tuple[float, float]:
    """Median CPU microseconds per call: through `ModelRuntime` (dedup and cache off, as phase 1),
    and through a bare semaphore around the same backend."""
    requests = [judge_request(f"answer {index}") for index in range(calls)]

    async def through_runtime() -> float:
        backend = InstantBackend("instant", max_concurrency=concurrency, limits=BackendLimits(timeout_s=30))
        runtime = ModelRuntime({"judge": backend}, RuntimeConfig(dedup=False, max_attempts=8))
        pending = [runtime.complete("judge", request) for request in requests]
        started = time.process_time()
        results = await asyncio.gather(*pending)
        spent = time.process_time() - started
        assert all(result.ok for result in results)
        await runtime.aclose()
        return spent / calls * 1e6

    async def through_semaphore() -> float:
        backend = InstantBackend("instant", max_concurrency=concurrency)
        slots = asyncio.Semaphore(concurrency)

        async def one(request: CompletionRequest) -> Completion:
            async with slots:
                return await backend.complete(request)

        pending = [one(request) for request in requests]
        started = time.process_time()
        await asyncio.gather(*pending)
        return (time.process_time() - started) / calls * 1e6

    runtime_us = sorted(asyncio.run(through_runtime()) for _ in range(runs))[runs // 2]
    bare_us = sorted(asyncio.run(through_semaphore()) for _ in range(runs))[runs // 2]
    return runtime_us, bare_us


def run_naive(url: str, prompts: list[str]) -> tuple[float, dict[int, int]]:
    """One thread per sample, no limits, no retries (a failure is scored as 0 in such examples)."""
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=None,
                                                          max_keepalive_connections=None))
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def score(text: str) -> None:
        try:
            status = client.post(url + "/chat/completions",
                                 json={"model": "fake-judge", "messages": judge_request(text).messages,
                                       "max_tokens": 32}).status_code
        except httpx.HTTPError:
            status = 0
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=score, args=(text,)) for text in prompts]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    client.close()
    return elapsed, statuses


class GcTimer:
    """Wall time the garbage collector ran (gc.callbacks), while installed: a share of the client's CPU."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._started = 0.0

    def _callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def account(timing: dict[str, Any], started: float, elapsed: float, n: int, concurrency: int,
            latency: float, ideal: float) -> dict[str, Any] | None:
    """Where one run's time went, from the fake server's timestamps (no RPM limit), exactly.

    The calls go in rounds: each of the C slots serves about N/C calls one after another. The run
    ends with the last answer, so what decided its length is the chain of calls that led to it
    (the fake server's `chain_*`: the k-th answer frees the slot of the (k+C)-th request, followed
    back from the last one). Along that chain the elapsed time is, with nothing left over:

        start-up (until the chain's first request is at the server: the first round's requests go
        out one after another) + its holds at the server (ceil(N/C) x L, plus the server's timer
        lateness) + its ceil(N/C) - 1 turnarounds (an answer leaves the server -> the next request
        on that slot is fully read there: the client's event loop, HTTP and runtime work for every
        answer of that round handled before it, and both processes' scheduling) + the end (the
        last answer reaching the client).

    ceil(N/C) x L itself is the ideal time N / ideal plus the round quantisation (nothing a client
    can do about it: 0 when C divides N). Each part is also given as a share of the elapsed
    time, so that the ratio to ideal + the shares = 1.
    """
    if timing.get("chain_first_arrival") is None or not timing.get("chain_links"):
        return None
    rounds = timing["chain_links"] + 1
    ideal_s = n / ideal
    parts = {"ideal_s": ideal_s, "quantisation_s": rounds * latency - ideal_s,
             "startup_s": timing["chain_first_arrival"] - started,
             "server_lateness_s": timing["chain_hold_s"] - rounds * latency,
             "turnaround_s": timing["chain_gap_s"],
             "end_s": started + elapsed - timing["last_finish"]}
    shares = {key.removesuffix("_s"): value / elapsed for key, value in parts.items()}
    return {"rounds": rounds, "ceiling_ratio": round(ideal_s / (rounds * latency), 4),
            "ratio_to_ceiling": round(rounds * latency / elapsed, 4),
            "first_request_s": round(timing["first_arrival"] - started, 4),
            "turnaround_ms_per_round": round(timing["chain_gap_s"] / (rounds - 1) * 1000, 2),
            "turnaround_mean_ms_all_slots": round(timing["refill_gap_mean_s"] * 1000, 2),
            "server_lateness_ms_per_round": round(parts["server_lateness_s"] / rounds * 1000, 2),
            **{key: round(value, 4) for key, value in parts.items()},
            "shares": {key: round(value, 4) for key, value in shares.items()}}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure_point(judge: FakeJudge, prompts: list[str], *, name: str, latency: float, concurrency: int,
                  rpm: float | None, repeat: int, floor: bool, split: bool = False) -> dict[str, Any]:
    """Phase 1 at one latency: the runtime (and the bare client) `repeat` times, alternating the
    order each repeat; every run printed with its accounting, then the medians."""
    n = len(prompts)
    ideal = concurrency / latency if rpm is None else min(concurrency / latency, rpm / 60)
    rounds = math.ceil(n / concurrency)
    ceiling = n / ideal / (rounds * latency) if rpm is None else None
    judge.configure(latency_s=latency, every_nth_429=None)
    print(f"\n== {name}: L={latency * 1000:.0f} ms, C={concurrency}, N={n}: ideal min(C/L, RPM/60) = "
          f"{ideal:.1f} calls/s ({n / ideal:.2f} s); {rounds} rounds of L = {rounds * latency:.2f} s"
          + (f", so the batch ceiling is {ceiling:.3f} of ideal" if ceiling is not None else ""), flush=True)
    if rpm is not None and (floor or split):
        print("  (with an RPM limit only the runtime runs: the bare client and the backend alone do not "
              "keep to it, so their ratio to this ideal would mean nothing)")
        floor = split = False
    runs: dict[str, list[dict[str, Any]]] = {"runtime": [], "backend": [], "bare": []}
    clients = ["runtime"] + (["backend"] if split else []) + (["bare"] if floor else [])
    for run in range(max(1, repeat)):
        for client in (clients if run % 2 == 0 else clients[::-1]):
            judge.configure(every_nth_429=None)
            cpu_started = time.process_time()
            with GcTimer() as gc_timer:
                if client == "runtime":
                    started, elapsed, snapshot, failed = asyncio.run(
                        run_runtime(judge.url, prompts, concurrency, rpm=rpm))
                elif client == "backend":
                    started, elapsed, failed = asyncio.run(run_backend_only(judge.url, prompts, concurrency))
                    snapshot = None
                else:
                    started, elapsed, failed = asyncio.run(run_floor(judge.url, prompts, concurrency))
                    snapshot = None
            cpu_us = (time.process_time() - cpu_started) / n * 1e6
            server = judge.stats()
            rate = n / elapsed
            figures: dict[str, Any] = {
                "seconds": round(elapsed, 3), "calls_per_s": round(rate, 1),
                "ratio_to_ideal": round(rate / ideal, 4), "failed": failed,
                "server_429": server["status_counts"].get("429", 0),
                "max_in_flight": server["max_concurrent"],
                "client_cpu_us_per_call": round(cpu_us, 1), "gc_ms": round(gc_timer.seconds * 1000, 1),
                "gc_collections": gc_timer.collections, "load_average_1m": round(os.getloadavg()[0], 2)}
            if snapshot is not None:
                figures |= {"latency_p50_s": snapshot["latency_p50_s"],
                            "latency_p95_s": snapshot["latency_p95_s"]}
            parts = account(server["timing"], started, elapsed, n, concurrency, latency, ideal) \
                if rpm is None else None
            figures["accounting"] = parts
            runs[client].append(figures)
            label = CLIENT_LABELS[client]
            print(f"  {label} run {run + 1}: {elapsed:.3f} s, ratio to ideal {rate / ideal:.3f}"
                  + (f", to the batch ceiling {parts['ratio_to_ceiling']:.3f}" if parts else "")
                  + f"; failed {failed}, 429s {figures['server_429']}, max in flight "
                  f"{server['max_concurrent']}; client CPU {cpu_us:.0f} us/call (GC "
                  f"{figures['gc_ms']:.0f} ms in {gc_timer.collections} collections); load "
                  f"{figures['load_average_1m']:.2f}", flush=True)
            if parts:
                print(f"      the chain that ended last: start-up {parts['startup_s'] * 1000:.0f} ms (first "
                      f"request {parts['first_request_s'] * 1000:.0f} ms); server hold L + "
                      f"{parts['server_lateness_ms_per_round']:.1f} ms x {parts['rounds']}; turnaround "
                      f"{parts['turnaround_ms_per_round']:.1f} ms x {parts['rounds'] - 1} (mean over all "
                      f"slots {parts['turnaround_mean_ms_all_slots']:.1f} ms); end "
                      f"{parts['end_s'] * 1000:.0f} ms", flush=True)
    return summarise(name, runs, n=n, latency=latency, concurrency=concurrency, ideal=ideal,
                     ceiling=ceiling)


CLIENT_LABELS = {"runtime": "runtime    ", "backend": "backend    ", "bare": "bare client"}
SHARE_NAMES = {"quantisation": "round quantisation (ceil(N/C) x L - N/ideal)",
               "startup": "start-up (the first round sent)",
               "server_lateness": "the fake server's timer lateness",
               "turnaround": "client turnaround, ceil(N/C) - 1 rounds",
               "end": "end (the last answer to the client)"}


def summarise(name: str, runs: dict[str, list[dict[str, Any]]], *, n: int, latency: float, concurrency: int,
              ideal: float, ceiling: float | None) -> dict[str, Any]:
    """Medians per client, the runtime's own share (paired with the bare client's runs), and the
    table of where every percent of the elapsed time went."""
    summary: dict[str, Any] = {"n": n, "latency_s": latency, "concurrency": concurrency,
                               "ideal_calls_per_s": round(ideal, 2),
                               "batch_ceiling": round(ceiling, 4) if ceiling is not None else None}
    for client, items in runs.items():
        if not items:
            continue
        parts = [item["accounting"] for item in items if item["accounting"]]
        summary[client] = {
            "ratio_to_ideal": round(_median([item["ratio_to_ideal"] for item in items]), 4),
            "ratio_runs": [round(item["ratio_to_ideal"], 3) for item in items],
            "ratio_to_ceiling": round(_median([part["ratio_to_ceiling"] for part in parts]), 4)
            if parts else None,
            "turnaround_ms_per_round": round(_median([part["turnaround_ms_per_round"] for part in parts]), 2)
            if parts else None,
            "client_cpu_us_per_call": round(_median([item["client_cpu_us_per_call"] for item in items]), 1),
            "gc_us_per_call": round(_median([item["gc_ms"] for item in items]) * 1000 / n, 1),
            "failed": sum(item["failed"] for item in items),
            "server_429": sum(item["server_429"] for item in items),
            "max_in_flight": max(item["max_in_flight"] for item in items),
            "shares": {key: round(_median([part["shares"][key] for part in parts]), 4)
                       for key in SHARE_NAMES} if parts else None,
            "runs": items}
    runtime, bare = summary.get("runtime"), summary.get("bare")
    print(f"-- {name}, medians over {len(runs['runtime'])} run(s)"
          + (" each, the clients alternating:" if bare or summary.get("backend") else ":"))
    for client, label in CLIENT_LABELS.items():
        item = summary.get(client)
        if item is None:
            continue
        print(f"   {label}: ratio to ideal {item['ratio_to_ideal']:.3f} (runs {item['ratio_runs']})"
              + (f"; to the batch ceiling {item['ratio_to_ceiling']:.3f}; turnaround "
                 f"{item['turnaround_ms_per_round']:.1f} ms a round" if item["ratio_to_ceiling"] else "")
              + f"; client CPU {item['client_cpu_us_per_call']:.0f} us/call, of it GC "
              f"{item['gc_us_per_call']:.0f} us")
    for upper, lower, text in (("runtime", "bare", "the runtime path's share (runtime + backend)"),
                               ("backend", "bare", "of it the backend's (no runtime)"),
                               ("runtime", "backend", "of it the runtime's (on top of the backend)")):
        if not (runs[upper] and runs[lower]):
            continue
        pairs = list(zip(runs[upper], runs[lower], strict=False))
        delta = _median([u["ratio_to_ideal"] - v["ratio_to_ideal"] for u, v in pairs])
        cpu_delta = _median([u["client_cpu_us_per_call"] - v["client_cpu_us_per_call"] for u, v in pairs])
        turn = [(u["accounting"], v["accounting"]) for u, v in pairs if u["accounting"] and v["accounting"]]
        turn_delta = _median([u["turnaround_ms_per_round"] - v["turnaround_ms_per_round"] for u, v in turn])
        summary[f"{upper}_minus_{lower}"] = {"ratio_to_ideal": round(delta, 4),
                                             "client_cpu_us_per_call": round(cpu_delta, 1),
                                             "turnaround_ms_per_round": round(turn_delta, 2)}
        print(f"   {text}: ratio {delta:+.3f} against the {CLIENT_LABELS[lower].strip()} (median of the "
              f"paired runs); client CPU {cpu_delta:+.0f} us/call; turnaround {turn_delta:+.1f} ms a round")
    if runtime and runtime["shares"]:
        print("   where the runtime's elapsed time went (median share of each run's elapsed time; "
              "ratio to ideal + these = 1 in each run):")
        print(f"      {'ratio to ideal (useful time)':48s} {runtime['ratio_to_ideal'] * 100:6.1f} %")
        for key, text in SHARE_NAMES.items():
            bare_text = (f"   (bare client {bare['shares'][key] * 100:5.1f} %)"
                         if bare and bare["shares"] else "")
            print(f"      {text:48s} {runtime['shares'][key] * 100:6.1f} %{bare_text}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2048,
                        help="judgments per phase (default 2048 = 32 x C: whole rounds, batch ceiling 1.0)")
    parser.add_argument("--latency", type=float, default=0.2,
                        help="judge latency L in seconds at the stress point (default 0.2)")
    parser.add_argument("--realistic-latency", type=float, default=1.0,
                        help="L of the second, realistic point (LLM judges answer in 1-5 s); 0 skips it")
    parser.add_argument("--realistic-n", type=int, default=1024,
                        help="judgments at the realistic point (default 1024 = 16 x C, 16 s at 1 s)")
    parser.add_argument("--concurrency", type=int, default=64, help="judge concurrency limit C")
    parser.add_argument("--rpm", type=float, default=None, help="an RPM limit for the runtime")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of the cap's 429")
    parser.add_argument("--nth-retry-after", type=float, default=0.05,
                        help="Retry-After of the every-5th 429 (amplification phase)")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="also run phase 1 with a bare aiohttp client in place of the runtime "
                             "(default; --no-floor skips it)")
    parser.add_argument("--split", action="store_true",
                        help="also run phase 1 with the OpenAI-compatible backend alone (no runtime): "
                             "which of the two a difference to the bare client is in")
    parser.add_argument("--profile", action="store_true",
                        help="only the Python function calls a judgment costs on each client path (cProfile)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of phase 1 (and the floor), alternating")
    parser.add_argument("--only-throughput", action="store_true", help="phase 1 (and the floor) only")
    parser.add_argument("--overhead", action="store_true",
                        help="only the runtime's own CPU per call (no HTTP), against a bare semaphore")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long smoke run (N=40, L=20 ms, C=8); figures not meaningful, exit 0")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.latency, args.concurrency, args.retry_after = 40, 0.02, 8, 0.05
        args.realistic_latency, args.realistic_n = min(args.realistic_latency, 0.04), 16
    n, latency, concurrency = args.n, args.latency, args.concurrency
    if args.overhead:
        calls = 400 if args.tiny else 20000
        runtime_us, bare_us = runtime_overhead(calls, concurrency)
        print(f"runtime overhead: {runtime_us:.1f} us of CPU a call through ModelRuntime, {bare_us:.1f} us "
              f"through a bare semaphore: the runtime's own work {runtime_us - bare_us:.1f} us a call "
              f"({calls} calls, C={concurrency}, median of 7; load {os.getloadavg()[0]:.2f})")
        return 0
    prompts = [f"answer number {index}: the contract's clause {index % 97} limits liability"
               for index in range(n)]
    ideal = concurrency / latency if args.rpm is None else min(concurrency / latency, args.rpm / 60)
    figures: dict[str, Any] = {"n": n, "latency_s": latency, "concurrency": concurrency, "rpm": args.rpm,
                               "ideal_calls_per_s": round(ideal, 2)}
    judge = FakeJudge(latency, concurrency, args.retry_after)
    try:
        load = os.getloadavg()[0]
        figures["load_average_1m"] = round(load, 2)
        figures["cpu_cores"] = os.cpu_count()
        print(f"fake judge: L={latency * 1000:.0f} ms, C={concurrency}, N={n}; "
              f"ideal = min(C/L, RPM/60) = {ideal:.1f} calls/s; machine: {os.cpu_count()} cores, "
              f"load average {load:.2f} at start")

        if args.profile:
            figures["profile"] = call_counts(judge, prompts, concurrency)
            return 0

        # 1. the runtime at full speed against the bare client: the stress point, then a realistic one
        stress = measure_point(judge, prompts, name="stress point", latency=latency, concurrency=concurrency,
                               rpm=args.rpm, repeat=args.repeat, floor=args.floor,
                               split=args.split)
        figures["runtime"] = stress["runtime"]
        figures["stress"] = stress
        if args.realistic_latency > 0:
            realistic_prompts = [f"answer number {index} (realistic point): the contract's clause "
                                 f"{index % 97} limits liability" for index in range(args.realistic_n)]
            figures["realistic"] = measure_point(
                judge, realistic_prompts, name="realistic point", latency=args.realistic_latency,
                concurrency=concurrency, rpm=args.rpm, repeat=args.repeat, floor=args.floor,
                               split=args.split)
        print()
        for key in ("stress", "realistic"):
            point = figures.get(key)
            if point is None:
                continue
            floor_text = (f"; bare client {point['bare']['ratio_to_ideal']:.3f}, the runtime's own share "
                          f"{point['runtime_minus_bare']['ratio_to_ideal']:+.3f}" if "bare" in point else "")
            ceiling_text = (f" (batch ceiling {point['batch_ceiling']:.3f}, to it "
                            f"{point['runtime']['ratio_to_ceiling']:.3f})"
                            if point["batch_ceiling"] is not None and point["runtime"]["ratio_to_ceiling"]
                            else "")
            print(f"1. {key} point L={point['latency_s'] * 1000:.0f} ms N={point['n']}: runtime ratio to "
                  "ideal "
                  f"{point['runtime']['ratio_to_ideal']:.3f}{ceiling_text}{floor_text}")
        judge.configure(latency_s=latency)
        if args.only_throughput:  # (the judge is closed by `finally`)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2))
            return 0

        # 2. the naive baseline
        judge.configure(every_nth_429=None)
        elapsed, statuses = run_naive(judge.url, prompts)
        ok = statuses.get(200, 0)
        too_many = statuses.get(429, 0)
        figures["naive"] = {"seconds": round(elapsed, 2), "ok": ok, "http_429": too_many,
                            "other_failures": n - ok - too_many,
                            "share_429": round(too_many / n, 3),
                            "ok_calls_per_s": round(ok / elapsed, 1),
                            "ratio_to_ideal": round(ok / elapsed / ideal, 3)}
        print(f"2. naive:     {n} threads, no limits: {ok} ok, {too_many} answered 429 ({too_many / n:.0%}), "
              f"{n - ok - too_many} other failures, in {elapsed:.2f} s; judged calls/s "
              f"{ok / elapsed:.1f}, ratio to ideal {ok / elapsed / ideal:.3f}; "
              f"{n - ok} samples would be scored 0")

        # 3. retry amplification with every 5th request answered 429
        judge.configure(every_nth_429=5, nth_retry_after_s=args.nth_retry_after, window_grace_s=0.005)
        observer = RetryAfterObserver()
        _started, elapsed, snapshot, failed = asyncio.run(
            run_runtime(judge.url, [p + " (retry phase)" for p in prompts], concurrency, rpm=args.rpm,
                        observer=observer))
        server = judge.stats()
        amplification = server["requests"] / n
        figures["retries"] = {"seconds": round(elapsed, 2), "http_attempts": server["requests"],
                              "logical_calls": n, "amplification": round(amplification, 4),
                              "server_429": server["status_counts"].get("429", 0), "failed": failed,
                              "sent_inside_retry_after_window": observer.sent_in_window,
                              "runtime_attempts": snapshot["attempts"]}
        print(f"3. retries:   every 5th request 429 (retry-after {args.nth_retry_after * 1000:.0f} ms): "
              f"{server['requests']} HTTP attempts / {n} calls = amplification {amplification:.3f} "
              f"(expected 1.25); failed {failed}; requests sent inside a Retry-After window: "
              f"{observer.sent_in_window} (must be 0); {elapsed:.2f} s")

        # 4. cache and dedup on a batch where half the answers repeat
        judge.configure(every_nth_429=None)
        half = [f"repeated answer {index % (n // 2)}" for index in range(n)]
        random.Random(0).shuffle(half)
        with tempfile.TemporaryDirectory() as folder:
            cache = str(Path(folder) / "cache.sqlite")
            _started, elapsed, snapshot, _failed = asyncio.run(
                run_runtime(judge.url, half, concurrency, cache_path=cache, dedup=True))
            first_requests = judge.stats()["requests"]
            judge.configure()
            _started, elapsed_again, snapshot_again, _ = asyncio.run(
                run_runtime(judge.url, half, concurrency, cache_path=cache, dedup=True))
            second_requests = judge.stats()["requests"]
        figures["cache"] = {"calls": n, "unique": len(set(half)), "judge_requests": first_requests,
                            "saved": n - first_requests, "dedup_hits": snapshot["dedup_hits"],
                            "cache_hits": snapshot["cache_hits"],
                            "rerun_judge_requests": second_requests,
                            "rerun_cache_hits": snapshot_again["cache_hits"]}
        print(f"4. cache:     {n} calls, {len(set(half))} distinct: {first_requests} judge requests, "
              f"{n - first_requests} saved ({(n - first_requests) / n:.0%}; dedup {snapshot['dedup_hits']}, "
              f"cache {snapshot['cache_hits']}) in {elapsed:.2f} s; a rerun of the batch with the same "
              f"cache: {second_requests} requests, {snapshot_again['cache_hits']} hits, "
              f"{elapsed_again:.2f} s")
    finally:
        judge.close()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    ok = (figures["runtime"]["ratio_to_ideal"] >= 0.9 and figures["runtime"]["failed"] == 0
          and figures["retries"]["sent_inside_retry_after_window"] == 0)
    summary = {"ratio": figures["runtime"]["ratio_to_ideal"],
               "amplification": figures["retries"]["amplification"]}
    print("PASS" if ok else "BELOW TARGET", json.dumps(summary))
    return 0 if ok or args.tiny else 1


if __name__ == "__main__":
    sys.exit(main())
