"""One TRL reward call per step for all the processes of a multi-process run, scored on rank 0.

Why: under `accelerate launch` (or torchrun) TRL's `GRPOTrainer` calls every reward function on
every rank with that rank's share of the generation batch (`_calculate_rewards`, checked against
trl 1.16), and its `RepeatSampler` lays the `num_generations` copies of a prompt out one after
another over the *global* batch, so the completions of one prompt may sit on two ranks. Scoring
on each rank would show a group or pairwise judge part of a group, multiply the judge's
`max_concurrency` / `rpm` / `tpm` by the number of processes, and give every rank its own cache,
journal and accounting. Instead:

1. every rank hands its rows (prompts, completions, completion ids, dataset columns) to the
   others with one `all_gather_object`, in rank order, which is the order of TRL's global batch
   (TRL itself concatenates the rewards in rank order and reads them as whole groups);
2. the main process (rank 0) scores the whole global batch with the one pipeline: groups are
   whole, and only it talks to judges, so limits, cache, journal and accounting are global;
3. the results are cut back into the ranks' slices and sent with one `scatter_object_list`.

The collectives line up because TRL calls reward functions in the same order on every rank; a
process-wide lock keeps two judgerl reward functions on one trainer (TRL runs async ones
concurrently) from interleaving them differently on different ranks. Metrics: only the main
process calls `log_metric` (with figures of the whole batch); TRL averages a metric over the
values the ranks logged, so the logged value is the global one. `log_extra` columns are cut
like the rewards and each rank logs its own slice (TRL gathers them in rank order). When the
main process fails (a crossed failure budget, a bad row), it sends an error marker instead of
results, so every rank raises (`MainProcessFailed`) instead of waiting forever.

A single process (no `WORLD_SIZE` above 1) never comes here and never touches torch.distributed.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from judgerl.errors import JudgerlError

#: keyword arguments TRL passes that are hooks or trainer state, not dataset columns
TRL_HOOKS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})

#: on the main process, while it scores a global batch: the rank each row came from
ROW_RANKS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("judgerl_row_ranks",
                                                                             default=None)

ScoreCall = Callable[..., Awaitable[list[float | None]]]


class MainProcessFailed(JudgerlError):
    """Raised on the other ranks when the main process could not score the global batch."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a multi-process launch."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_ranks(environ: dict[str, str] | None = None) -> Ranks | None:
    """The rank and world size `accelerate launch` / torchrun set (`RANK`, `WORLD_SIZE`); None when
    this process runs alone.

    >>> launched_ranks({"WORLD_SIZE": "2", "RANK": "1"})
    Ranks(rank=1, world_size=2)
    >>> launched_ranks({}) is None
    True
    """
    env = os.environ if environ is None else environ
    size = int(env.get("WORLD_SIZE", "1"))
    if size <= 1:
        return None
    rank = int(env.get("RANK", "0"))
    if not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={size}")
    return Ranks(rank=rank, world_size=size)


def rank_slices(lengths: Sequence[int]) -> list[slice]:
    """Where each rank's rows sit in the global batch (rank order).

    >>> rank_slices([3, 2, 0])
    [slice(0, 3, None), slice(3, 5, None), slice(5, 5, None)]
    """
    out, start = [], 0
    for length in lengths:
        out.append(slice(start, start + length))
        start += length
    return out


def merge_batches(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ranks' local batches (dicts of per-row lists, same keys) as one global batch.

    A value that is not a list (or is None on some rank) is kept from rank 0, like TRL's own
    non-column keywords.

    >>> merge_batches([{"prompts": ["a", "a"], "x": None}, {"prompts": ["b"], "x": None}])
    {'prompts': ['a', 'a', 'b'], 'x': None}
    """
    keys = list(parts[0]) if parts else []
    for rank, part in enumerate(parts):
        if list(part) != keys:
            raise ValueError(f"rank {rank} sent the columns {sorted(part)}, rank 0 sent {sorted(keys)}")
    merged: dict[str, Any] = {}
    for key in keys:
        values = [part[key] for part in parts]
        if all(isinstance(value, list) for value in values):
            merged[key] = [row for value in values for row in value]
        else:
            merged[key] = values[0]
    return merged


def cut_results(values: Sequence[Any], extras: dict[str, list[Any]], lengths: Sequence[int],
                ) -> list[tuple[list[Any], dict[str, list[Any]]]]:
    """The global rewards and `log_extra` columns cut into each rank's slice.

    >>> cut_results([1, 2, 3], {"s": ["a", "b", "c"]}, [2, 1])
    [([1, 2], {'s': ['a', 'b']}), ([3], {'s': ['c']})]
    """
    total = sum(lengths)
    if len(values) != total:
        raise ValueError(f"the reward function returned {len(values)} rewards for {total} rows")
    for column, column_values in extras.items():
        if len(column_values) != total:
            raise ValueError(f"log_extra column {column!r} has {len(column_values)} values for {total} rows")
    return [(list(values[part]), {column: list(rows[part]) for column, rows in extras.items()})
            for part in rank_slices(lengths)]


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    """One lock per event loop: a step's collectives run whole, one reward function at a time."""
    loop = asyncio.get_running_loop()
    lock = _LOCKS.get(loop)
    if lock is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


def _process_group(ranks: Ranks) -> Any:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"WORLD_SIZE={ranks.world_size} but torch.distributed is not initialized: run the "
                           "reward function inside TRL's trainer (it sets up the process group) under "
                           "`accelerate launch` or torchrun")
    if dist.get_world_size() != ranks.world_size or dist.get_rank() != ranks.rank:
        raise RuntimeError(f"torch.distributed says rank {dist.get_rank()} of {dist.get_world_size()}, the "
                           f"environment says rank {ranks.rank} of {ranks.world_size}")
    return dist


async def score_across_ranks(score: ScoreCall, prompts: list[Any], completions: list[Any],
                             completion_ids: list[list[int]] | None, kwargs: dict[str, Any], ranks: Ranks,
                             ) -> list[float | None]:
    """This rank's rewards, with `score` (a TRL reward call) run once on the main process over
    the global batch; see the module docstring. `score` is never called on the other ranks."""
    dist = _process_group(ranks)
    columns = {key: value for key, value in kwargs.items() if key not in TRL_HOOKS}
    local = {"prompts": list(prompts), "completions": list(completions),
             "completion_ids": list(completion_ids) if completion_ids is not None else None, **columns}
    log_extra = kwargs.get("log_extra")
    async with _lock():
        parts: list[Any] = [None] * ranks.world_size
        dist.all_gather_object(parts, local)
        lengths = [len(part["prompts"]) for part in parts]
        mine: list[Any] = [None]
        if ranks.is_main:
            try:
                cut = await _score_global(score, parts, lengths, kwargs)
            except BaseException as exc:
                marker = ("error", f"{type(exc).__name__}: {exc}")
                dist.scatter_object_list(mine, [marker] * ranks.world_size, src=0)
                raise
            dist.scatter_object_list(mine, [("ok", part) for part in cut], src=0)
        else:
            dist.scatter_object_list(mine, None, src=0)
    kind, payload = mine[0]
    if kind == "error":
        raise MainProcessFailed(f"the main process (rank 0) could not score the batch: {payload}")
    values, extras = payload
    if callable(log_extra):
        for column in sorted(extras):
            log_extra(column, extras[column])
    return values


async def _score_global(score: ScoreCall, parts: list[dict[str, Any]], lengths: list[int],
                        kwargs: dict[str, Any]) -> list[tuple[list[Any], dict[str, list[Any]]]]:
    """Score the merged batch on the main process; `log_extra` is collected, to be cut per rank."""
    merged = merge_batches(parts)
    extras: dict[str, list[Any]] = {}

    def collect(column: str, values: list[Any]) -> None:
        extras.setdefault(column, []).extend(values)

    hooks = {key: kwargs[key] for key in ("trainer_state", "log_metric") if key in kwargs}
    token = ROW_RANKS.set([rank for rank, length in enumerate(lengths) for _ in range(length)])
    try:
        values = await score(merged.pop("prompts"), merged.pop("completions"), merged.pop("completion_ids"),
                             **merged, **hooks, log_extra=collect)
    finally:
        ROW_RANKS.reset(token)
    return cut_results(values, extras, lengths)


def run_on_main(work: Callable[[], Any], ranks: Ranks, *, timeout_s: float = 1800) -> None:
    """`work()` on the main process only (e.g. the validation gate, which calls the judge), the
    other ranks waiting for it; when it fails there, every rank raises.

    Sets up the process group first if nothing has yet (accelerate's `PartialState`, as the
    trainer's `TrainingArguments` would: on CPU with `ACCELERATE_USE_CPU` or without CUDA)."""
    import torch.distributed

    if torch.distributed.is_available() and not torch.distributed.is_initialized():
        import torch
        from accelerate import PartialState

        use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}
        # the trainer's `ddp_timeout` (recipe trainer.process_timeout_s): it keeps this group
        PartialState(cpu=use_cpu or not torch.cuda.is_available(), timeout=timedelta(seconds=timeout_s))
    dist = _process_group(ranks)
    message: list[Any] = [None]
    if ranks.is_main:
        try:
            work()
        except BaseException as exc:
            dist.broadcast_object_list([f"{type(exc).__name__}: {exc}"], src=0)
            raise
    dist.broadcast_object_list(message, src=0)
    if message[0] is not None:
        raise MainProcessFailed(f"the main process (rank 0) failed: {message[0]}")


__all__ = ["ROW_RANKS", "TRL_HOOKS", "MainProcessFailed", "Ranks", "cut_results", "launched_ranks",
           "merge_batches", "rank_slices", "run_on_main", "score_across_ranks"]
