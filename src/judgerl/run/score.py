"""`judgerl score`: rewards for a file of rollouts, written as they finish, resumable.

Why a module of its own: the command must survive being killed, and a rerun must be the way to
recover from anything that went wrong. Rewards are appended to the output as each one finishes
(flushed). A rerun with the same output resumes everything that is not final:

- `ok` and `gated` rows are final: a rerun keeps them and does not score them again;
- `unscored` rows (the judge was down, the circuit was open, a row's data was bad) are dropped
  from the output and scored again, so rerunning after an outage recovers them; with
  `keep_unscored=True` (`--keep-unscored`) they are kept as they are instead;
- a torn last line (a kill mid-write) is dropped; a key written twice keeps its final row;
- rows a `--dry-run` wrote are marked (`details.dry_run`): their judges' scores came from the
  neutral stand-in, so a run that is not a dry run drops them and scores them again (a dry run
  keeps them, and keeps a real run's rows);
- when the spending budget (`runtime.budget_usd` / `budget_tokens`) runs out, the rows it left
  unscored (`budget_exhausted`) are not written at all, no further batch is started, and
  `score_file` raises `BudgetExhausted` with the summary attached (`exc.summary`): a rerun with a
  raised budget scores exactly the rows that are missing;
- when a batch crosses the reward's `failure_budget` (too many unscored rows: the judge is down or
  answers garbage), its rows are written and no further batch is started: `FailureBudgetExceeded`
  carries the summary too, and a rerun once the judge is fixed scores the unscored rows and the
  rest.

Dropping rows rewrites the output atomically (a temporary file, then a rename), so a kill at
any moment leaves either the old file or the new one; with the SQLite cache, judgments that
finished but were not yet written are not asked again. Each input id appears in the output
exactly once.

One writer at a time: `score_file` holds an exclusive lock (`<output>.lock`, an OS lock that
dies with the process) for the whole run, and a second `judgerl score` on the same output is
refused with `OutputInUse` instead of writing every row twice. An output that is not a
judgerl rewards file (not UTF-8, not JSON objects, no ids) stops the run with a `DataError`
naming the file and line, before anything is scored.

Memory: the summary keeps running statistics, not every value, and reading a previous output
keeps one key per row, not the rows.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from judgerl.errors import BudgetExhausted, DataError, FailureBudgetExceeded, JudgerlError
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Reward, Rollout, Sample, reason_key

#: statuses a rerun keeps; every other row is scored again (unless told to keep unscored rows)
FINAL_STATUSES = frozenset({"ok", "gated"})
_DAMAGED = ("this is not a judgerl rewards file, or it was damaged: move it away, or pass "
            "--no-resume to overwrite it")


class OutputInUse(JudgerlError):
    """Another process holds the output's lock: two writers would score and write every row twice."""


def reward_key(sample_id: str, rollout_id: str) -> str:
    return f"{sample_id}\x1f{rollout_id}"


# ---------------------------------------------------------------------------------------------
# one writer at a time


def lock_path(output: Path) -> Path:
    return output.with_name(output.name + ".lock")


@contextmanager
def hold_output(output: Path) -> Iterator[None]:
    """Hold the exclusive lock of `output` (raise `OutputInUse` at once if another process has it).

    The lock is an OS file lock (`flock`) on `<output>.lock`, released when the process ends
    however it ends; the lock file itself is left in place (removing it could let two
    processes lock two different files).
    """
    path = lock_path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+b")
    except OSError as exc:
        raise DataError(f"cannot create the lock file {path}: {exc}", path=str(output)) from exc
    try:
        if not _try_lock(handle):
            raise OutputInUse(f"{output}: another `judgerl score` is writing this output (it holds "
                              f"{path}); wait for it to finish or choose another --output")
        try:
            yield
        finally:
            _unlock(handle)
    finally:
        handle.close()


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(handle: IO[bytes]) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# what a previous run left


@dataclass
class Previous:
    """What an existing output holds, after `prepare_output` dropped what must be scored again."""

    finished: set[str] = field(default_factory=set)  # keys kept: not scored again
    kept: int = 0  # rows kept (final, or unscored under keep_unscored)
    dropped_unscored: int = 0  # unscored rows dropped, to be scored again
    dropped_dry_run: int = 0  # rows a dry run wrote, dropped by a real run, to be scored again
    dropped_other: int = 0  # a torn last line, or a second row for a key


def prepare_output(path: Path, *, keep_unscored: bool = False, dry_run: bool = False) -> Previous:
    """Read the rows a previous run wrote and drop the ones that are not final (see module doc).

    Unless this run is a `dry_run`, rows a dry run wrote are not final either.

    Raises `DataError` (file and line) for an output that is not a rewards file. The caller
    must hold `hold_output(path)`.
    """
    if path.is_dir():
        raise DataError("is a folder; --output must be a file", path=str(path))
    if not path.exists():
        return Previous()
    keep: dict[str, tuple[int, bool]] = {}  # key -> (line number of the row kept, it is final)
    previous = Previous()
    lines = 0
    torn = False
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                lines = number
                if not raw.endswith(b"\n"):
                    torn = True  # the last line of a killed run: never a finished reward
                    break
                row = _parse_row(raw, path, number)
                if row is None:
                    continue
                key, status, from_dry_run = row
                if from_dry_run and not dry_run:
                    previous.dropped_dry_run += 1
                    continue
                final = status in FINAL_STATUSES
                if not final and not keep_unscored:
                    previous.dropped_unscored += 1
                    continue
                earlier = keep.get(key)
                if earlier is not None:
                    previous.dropped_other += 1
                    if earlier[1] or not final:
                        continue  # keep the first final row (or the first kept unscored one)
                keep[key] = (number, final)
    except OSError as exc:
        raise DataError(f"cannot read it: {exc}", path=str(path)) from exc
    previous.dropped_other += int(torn)
    previous.finished = set(keep)
    previous.kept = len(keep)
    if previous.dropped_unscored or previous.dropped_other or previous.dropped_dry_run:
        _rewrite_keeping(path, {number for number, _final in keep.values()}, lines)
    return previous


def _parse_row(raw: bytes, path: Path, number: int) -> tuple[str, str, bool] | None:
    """(key, status, written by a dry run) of one output line; None for a blank line;
    DataError for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); {_DAMAGED}",
                        path=str(path), line=number) from exc
    if not text.strip():
        return None
    try:
        row = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise DataError(f"not valid JSON ({detail}); {_DAMAGED}", path=str(path), line=number) from exc
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object (a reward), got {type(row).__name__}; {_DAMAGED}",
                        path=str(path), line=number)
    sample_id, rollout_id, status = row.get("sample_id"), row.get("rollout_id"), row.get("status")
    if not isinstance(sample_id, str) or not isinstance(rollout_id, str) or not isinstance(status, str):
        raise DataError(f"a reward needs string 'sample_id', 'rollout_id' and 'status'; {_DAMAGED}",
                        path=str(path), line=number)
    details = row.get("details")
    from_dry_run = isinstance(details, dict) and details.get("dry_run") is True
    return reward_key(sample_id, rollout_id), status, from_dry_run


def _rewrite_keeping(path: Path, keep_lines: set[int], lines: int) -> None:
    """Replace `path` by its lines numbered in `keep_lines`, atomically (temp file, fsync, rename)."""
    temporary = path.with_name(path.name + ".rewrite")
    with path.open("rb") as source, temporary.open("wb") as target:
        for number, raw in enumerate(source, start=1):
            if number > lines:
                break
            if number in keep_lines:
                target.write(raw)
        target.flush()
        os.fsync(target.fileno())
    os.replace(temporary, path)


def read_finished(path: Path, *, keep_unscored: bool = False, dry_run: bool = False) -> set[str]:
    """Keys of the rewards in `path` that a rerun keeps (dropping the rest from the file)."""
    return prepare_output(path, keep_unscored=keep_unscored, dry_run=dry_run).finished


# ---------------------------------------------------------------------------------------------
# writing


class RewardWriter:
    """Appends one JSON line per reward and flushes it; thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # backslashreplace: a lone surrogate (only ever inside a JSON string) is written as its
        # JSON escape, so every line stays valid UTF-8 and valid JSON
        self._file = path.open("a", encoding="utf-8", errors="backslashreplace")
        self._lock = threading.Lock()

    def write(self, reward: Reward) -> None:
        line = json.dumps(reward.to_dict(), ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class RunningStats:
    """Count, mean and spread of a stream of numbers in constant memory (Welford's method).

    >>> stats = RunningStats()
    >>> for value in (1.0, 2.0, 3.0, 4.0):
    ...     stats.add(value)
    >>> stats.count, stats.mean, round(stats.std, 4)
    (4, 2.5, 1.118)
    """

    count: int = 0
    mean: float = 0.0
    _m2: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)

    @property
    def std(self) -> float:
        """Population standard deviation (0 for fewer than two values)."""
        return math.sqrt(self._m2 / self.count) if self.count > 1 else 0.0

    def row(self) -> tuple[str, str, str]:
        if not self.count:
            return "-", "-", "0"
        return f"{self.mean:.3f}", f"{self.std:.3f}", str(self.count)


@dataclass
class ScoreSummary:
    """What `judgerl score` prints at the end."""

    total: int = 0
    skipped: int = 0  # final rows already in the output: not scored again
    retried: int = 0  # unscored rows of a previous run, scored again
    redone_dry_run: int = 0  # rows a dry run had written, scored again by this real run
    not_in_input: int = 0  # final rows of the output whose rollout is not in this input (kept)
    not_scored: int = 0  # rows the spending budget left unscored: not written, scored by a rerun
    status_counts: dict[str, int] = field(default_factory=dict)
    unscored_reasons: dict[str, int] = field(default_factory=dict)
    reward: RunningStats = field(default_factory=RunningStats)
    components: dict[str, RunningStats] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)

    def add(self, reward: Reward) -> None:
        self.total += 1
        self.status_counts[reward.status] = self.status_counts.get(reward.status, 0) + 1
        if reward.status == "unscored":
            reason = reason_key(reward.reason)
            self.unscored_reasons[reason] = self.unscored_reasons.get(reason, 0) + 1
        if reward.value is not None:
            self.reward.add(reward.value)
        for name, value in reward.components.items():
            bucket = self.components.setdefault(name, RunningStats())
            if value is not None:
                bucket.add(value)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(name, mean, std, n) for the aggregate and each component."""
        out = [("reward", *self.reward.row())]
        out += [(name, *stats.row()) for name, stats in self.components.items()]
        return out


def score_file(pipeline: RewardPipeline, items: Sequence[tuple[Sample, Rollout]], output: Path, *,
               batch_size: int = 256, resume: bool = True, keep_unscored: bool = False,
               progress: Callable[[int], None] | None = None) -> ScoreSummary:
    """Score `items` into `output` in batches; returns the summary. Failure budget per batch.

    With `resume` (the default), rows of `output` that are final are kept and not scored
    again, and unscored rows are scored again (kept as they are with `keep_unscored`).
    Without `resume` the output is started afresh. Holds the output's lock throughout.
    """
    summary = ScoreSummary()
    if output.is_dir():  # before the lock: `-o .` has no name to put `.lock` after
        raise DataError("is a folder; --output must be a file", path=str(output))
    with hold_output(output):
        if output.is_dir():
            raise DataError("is a folder; --output must be a file", path=str(output))
        if not resume and output.exists():
            output.unlink()
        dry_run = pipeline.dry_run
        previous = prepare_output(output, keep_unscored=keep_unscored, dry_run=dry_run)
        finished = previous.finished
        keys = {reward_key(sample.id, rollout.id) for sample, rollout in items}
        pending = [item for item in items if reward_key(item[0].id, item[1].id) not in finished]
        summary.skipped = len(items) - len(pending)
        summary.not_in_input = len(finished - keys)  # another input's rows: kept, but said
        summary.retried = previous.dropped_unscored
        summary.redone_dry_run = previous.dropped_dry_run
        writer = RewardWriter(output)

        def on_reward(reward: Reward) -> None:
            if (reward.reason or "").startswith("budget_exhausted"):
                summary.not_scored += 1  # not final, and not written: a rerun scores it
                return
            if dry_run:  # the judges' scores are the stand-in's: a real rerun must not keep them
                reward.details["dry_run"] = True
            writer.write(reward)
            summary.add(reward)
            if progress is not None:
                progress(1)

        try:
            for batch in _chunks(pending, batch_size):
                pipeline.score_batch_sync(batch, on_reward=on_reward)
        except (BudgetExhausted, FailureBudgetExceeded) as exc:
            summary.runtime = pipeline.runtime_stats()
            summary.not_scored = len(pending) - summary.total
            exc.summary = summary  # type: ignore[attr-defined]
            raise
        finally:
            writer.close()
            summary.runtime = pipeline.runtime_stats()
    return summary


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
