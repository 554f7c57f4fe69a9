"""Soak test of `judgerl serve`: N judgments through the real server, printing its memory as it goes.

Why: a training run makes millions of judgments through one long-lived reward server, so
anything the server keeps per judgment (the in-memory journal did, issue 17 case 10: 70 -> 176 MB
over 20,480 judgments, linearly) ends in an out-of-memory kill hours into a run. This runs
`judgerl serve` as a real subprocess on 127.0.0.1 in front of a fake OpenAI-compatible judge
(tests/fake_openai.py, in its own process), sends batches of unique answers (no cache hits, no
dedup: every item is one judge call) and prints the server's resident memory (VmRSS) every
`--every` judgments, with the growth after warm-up. Bounded state shows as a flat line.

    .venv/bin/python bench/serve_soak.py                  # 100,000 judgments (RSS at 10k, 50k, 100k)
    .venv/bin/python bench/serve_soak.py --n 20000        # a shorter soak
    .venv/bin/python bench/serve_soak.py --tiny           # 500 judgments, seconds (CI smoke)

`--max-growth-mb X` exits 1 when RSS grew by more than X MB from the first report to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
FAKE_JUDGE = ROOT / "tests" / "fake_openai.py"
VERDICT = json.dumps({"criteria": {"answers": {"rationale": "it answers", "score": True}}})


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` in MB (Linux /proc), or None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_fake_judge(latency_s: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """The loopback fake judge (tests/fake_openai.py) in its own process, answering every rubric call
    with one passing verdict after `latency_s`; returns the process and its /v1 URL."""
    process = subprocess.Popen([sys.executable, str(FAKE_JUDGE), "--port", "0", "--latency", str(latency_s),
                                "--text", VERDICT], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the fake judge did not start: {line!r}")
    return process, f"http://127.0.0.1:{line.split()[1]}/v1"


def write_config(folder: Path, judge_url: str, concurrency: int, *, timeout_s: float = 30) -> Path:
    """A reward like a training run's: a length check and a rubric judge (one call a rollout); no
    cache, no journal file, no failure budget."""
    path = folder / "reward.yaml"
    path.write_text(textwrap.dedent(f"""\
        backends:
          judge: {{type: openai, base_url: "{judge_url}", model: fake-judge, max_concurrency: {concurrency},
                  timeout_s: {timeout_s:g}}}
        runtime: {{journal_path: null, cache_path: null}}
        checks:
          - {{name: length, type: length, unit: words, min: 1, max: 60, weight: 0.5}}
        judges:
          - name: quality
            type: rubric
            criteria: [{{name: answers, kind: check, description: "The answer responds to the question."}}]
        failure_budget: null
        """), encoding="utf-8")
    return path


def start_server(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "judgerl.cli", "serve", "-c", str(config), "--port", str(port),
               "--no-auth", "--max-batch", "4096"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 10.0) -> None:
    """Terminate a started server (the service, the fake judge) and wait; kill it if it hangs."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            error = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"judgerl serve exited with {server.returncode}: {error[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("judgerl serve did not answer /health in time")


async def soak(url: str, server_pid: int, *, total: int, batch: int, in_flight: int,
               every: int) -> list[tuple[int, float | None, float]]:
    """Send `total` judgments; returns (judgments done, RSS MB, seconds) at each report."""
    reports: list[tuple[int, float | None, float]] = []
    started = time.monotonic()
    done = 0
    next_report = every
    unscored = 0
    sent = 0
    lock = asyncio.Lock()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done, next_report, unscored, sent
        while True:
            async with lock:
                if sent >= total:
                    return
                first, size = sent, min(batch, total - sent)
                sent += size
            query = [f"Q: question {first + i}? A: this is answer number {first + i}." for i in range(size)]
            response = await client.post(f"{url}/get_reward", json={"query": query})
            if response.status_code != 200:
                raise RuntimeError(f"get_reward -> {response.status_code}: {response.text[:500]}")
            data = response.json()
            if len(data["rewards"]) != size:
                raise RuntimeError(f"{len(data['rewards'])} rewards for {size} items")
            async with lock:
                done += size
                unscored += int(sum(data["extra_logs"]["unscored"]))
                while done >= next_report:
                    reports.append((next_report, rss_mb(server_pid), time.monotonic() - started))
                    print(f"{next_report:>9,} judgments  server RSS {_mb(reports[-1][1])}  "
                          f"{reports[-1][2]:7.1f} s  ({unscored} unscored)", flush=True)
                    next_report += every

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
    if unscored:
        print(f"warning: {unscored} judgments were unscored (the fake judge should answer them all)")
    return reports


def _mb(value: float | None) -> str:
    return f"{value:7.1f} MB" if value is not None else "   n/a   "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="judgments in all")
    parser.add_argument("--tiny", action="store_true", help="500 judgments: a smoke run of seconds")
    parser.add_argument("--batch", type=int, default=256, help="items per /get_reward request")
    parser.add_argument("--in-flight", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--concurrency", type=int, default=64, help="judge calls in flight (server side)")
    parser.add_argument("--every", type=int, default=None, help="report every this many judgments "
                        "(default: 10,000, or a tenth of --n when smaller)")
    parser.add_argument("--max-growth-mb", type=float, default=None,
                        help="exit 1 when RSS grows more than this from the first report to the last")
    args = parser.parse_args(argv)
    total = 500 if args.tiny else args.n
    batch = min(args.batch, 50) if args.tiny else args.batch
    every = args.every or min(10_000, max(1, total // 10))

    judge, judge_url = start_fake_judge()
    server: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="judgerl-soak-") as folder:
            config = write_config(Path(folder), judge_url, args.concurrency)
            port = free_port()
            server = start_server(config, port)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, server)
            print(f"judgerl serve (pid {server.pid}) at {url}; RSS at start {_mb(rss_mb(server.pid))}; "
                  f"{total:,} judgments in batches of {batch}, {args.in_flight} in flight", flush=True)
            reports = asyncio.run(soak(url, server.pid, total=total, batch=batch, in_flight=args.in_flight,
                                       every=every))
    finally:
        for process in (server, judge):
            stop_process(process)
    return summarize(reports, total, args.max_growth_mb)


def summarize(reports: list[tuple[int, float | None, float]], total: int, max_growth_mb: float | None) -> int:
    known = [(count, rss) for count, rss, _seconds in reports if rss is not None]
    seconds = reports[-1][2] if reports else 0.0
    print(f"done: {total:,} judgments in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f} judgments/s)")
    if len(known) < 2:
        print("RSS growth: not enough readings (is /proc available?)")
        return 0
    (first_count, first_rss), (last_count, last_rss) = known[0], known[-1]
    growth = last_rss - first_rss
    per_10k = growth / max(last_count - first_count, 1) * 10_000
    print(f"RSS growth from {first_count:,} to {last_count:,} judgments: {growth:+.1f} MB "
          f"({per_10k:+.2f} MB per 10,000 judgments)")
    if max_growth_mb is not None and growth > max_growth_mb:
        print(f"FAIL: RSS grew by {growth:.1f} MB, more than --max-growth-mb {max_growth_mb:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
