"""Run a study's stages (train, evaluate, distil) as a graph, on several worker processes at once.

Why: on a small CPU one training process does not keep the cores busy. Sampling a 135M policy is
bound by memory traffic and Python overhead, not arithmetic: two GRPO runs with one thread each,
side by side, did 1.3x the steps a minute of one run with both threads on the 2-core machine the
case study is timed on (bench/study_throughput.py; docs/guides/contract-review-cpu.md). A
study's stages mostly do not depend on each other (the two RFT arms of a seed, the seeds'
evaluations, the two students), so running the ready ones side by side in separate processes,
each with its share of the cores, finishes sooner than running them one after another.

A stage names the stages it needs (`after`); a stage starts when those are done and a worker is
free, the ready ones in the order they were given (list the long ones first). Workers are spawned
processes (no fork of a process that holds threads or a torch pool); a stage's callable and
arguments are pickled to them, so they must be importable module-level functions and plain data.
`workers=1` runs every stage in this process, in order. A failed stage stops new stages from
starting; the running ones finish (their output is kept: the study resumes from it) and the
first failure is raised, as it was raised in the worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from judgerl.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """One unit of work: `action(*args)` once every stage named in `after` is done."""

    name: str
    action: Callable[..., Any]
    args: tuple[Any, ...] = ()
    after: tuple[str, ...] = ()


@dataclass
class StageResult:
    """What a stage returned, and how long it ran (in its worker: stages overlap in time)."""

    name: str
    value: Any
    seconds: float


@dataclass
class GraphRun:
    """The outcome of `run_stages`: every stage's result, and the wall-clock seconds of the run."""

    results: dict[str, StageResult] = field(default_factory=dict)
    wall_seconds: float = 0.0


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each worker's share of the cores (at least one thread)."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def check_graph(stages: Sequence[Stage]) -> None:
    """Refuse a graph whose names repeat or whose `after` names a stage not listed before it
    (listing a stage before the ones that need it also rules out cycles)."""
    seen: set[str] = set()
    for stage in stages:
        if stage.name in seen:
            raise ConfigError(f"stage '{stage.name}' is listed twice", field="stages")
        missing = [name for name in stage.after if name not in seen]
        if missing:
            raise ConfigError(f"stage '{stage.name}' needs {', '.join(missing)}, not listed before it",
                              field="stages")
        seen.add(stage.name)


def _timed(action: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
    started = time.monotonic()
    value = action(*args)
    return value, time.monotonic() - started


def _worker_init(threads: int) -> None:
    """A worker's share of the cores, set before torch starts its thread pool."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def run_stages(stages: Sequence[Stage], *, workers: int = 1,
               on_start: Callable[[Stage], None] | None = None,
               on_done: Callable[[StageResult], None] | None = None) -> GraphRun:
    """Run `stages` on `workers` processes (1: here, in order); `on_start` and `on_done` are
    called in this process as each stage starts and finishes."""
    check_graph(stages)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", field="workers")
    run = GraphRun()
    started = time.monotonic()
    if workers == 1 or len(stages) <= 1:
        for stage in stages:
            if on_start:
                on_start(stage)
            value, seconds = _timed(stage.action, stage.args)
            run.results[stage.name] = StageResult(stage.name, value, seconds)
            if on_done:
                on_done(run.results[stage.name])
        run.wall_seconds = time.monotonic() - started
        return run

    pending = list(stages)
    running: dict[Future[tuple[Any, float]], Stage] = {}
    failure: BaseException | None = None
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_worker_init, initargs=(threads_per_worker(workers),)) as pool:
        while running or (pending and failure is None):
            if failure is None:
                for stage in [stage for stage in pending
                              if all(name in run.results for name in stage.after)]:
                    if len(running) >= workers:
                        break
                    pending.remove(stage)
                    if on_start:
                        on_start(stage)
                    running[pool.submit(_timed, stage.action, stage.args)] = stage
            if not running:  # nothing ready and nothing running: cannot happen for a checked graph
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                stage = running.pop(future)
                error = future.exception()
                if error is not None:
                    error.add_note(f"(in stage '{stage.name}')")
                    failure = failure or error
                    continue
                value, seconds = future.result()
                run.results[stage.name] = StageResult(stage.name, value, seconds)
                if on_done:
                    on_done(run.results[stage.name])
    run.wall_seconds = time.monotonic() - started
    if failure is not None:
        raise failure
    return run
