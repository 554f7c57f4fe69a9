"""`judgerl score`: rewards for a file of rollouts, written as they finish, resumable.

Why a module of its own: the command must survive being killed. Rewards are appended to the
output as each one finishes (flushed), and a rerun with the same output skips the rollouts
already written (a torn last line from a kill is dropped first), so each input id appears in
the output exactly once and, with the SQLite cache, no finished judgment is requested again.
"""

from __future__ import annotations

import json
import statistics
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Reward, Rollout, Sample


def reward_key(sample_id: str, rollout_id: str) -> str:
    return f"{sample_id}\x1f{rollout_id}"


def read_finished(path: Path) -> set[str]:
    """Keys of rewards already in `path`; truncates a torn last line left by a kill."""
    if not path.exists():
        return set()
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    finished = set()
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            finished.add(reward_key(row["sample_id"], row["rollout_id"]))
    return finished


class RewardWriter:
    """Appends one JSON line per reward and flushes it; thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, reward: Reward) -> None:
        line = json.dumps(reward.to_dict(), ensure_ascii=False, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class ScoreSummary:
    """What `judgerl score` prints at the end."""

    total: int = 0
    skipped: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    components: dict[str, list[float]] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)

    def add(self, reward: Reward) -> None:
        self.total += 1
        self.status_counts[reward.status] = self.status_counts.get(reward.status, 0) + 1
        if reward.value is not None:
            self.values.append(reward.value)
        for name, value in reward.components.items():
            bucket = self.components.setdefault(name, [])
            if value is not None:
                bucket.append(value)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(name, mean, std, n) for the aggregate and each component."""
        out = [("reward", *_stats(self.values))]
        out += [(name, *_stats(values)) for name, values in self.components.items()]
        return out


def _stats(values: Sequence[float]) -> tuple[str, str, str]:
    if not values:
        return "-", "-", "0"
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f}", f"{spread:.3f}", str(len(values))


def score_file(pipeline: RewardPipeline, items: Sequence[tuple[Sample, Rollout]], output: Path, *,
               batch_size: int = 256, resume: bool = True,
               progress: Callable[[int], None] | None = None) -> ScoreSummary:
    """Score `items` into `output` in batches; returns the summary. Failure budget per batch."""
    summary = ScoreSummary()
    if not resume and output.exists():
        output.unlink()
    finished = read_finished(output)
    pending = [item for item in items if reward_key(item[0].id, item[1].id) not in finished]
    summary.skipped = len(items) - len(pending)
    writer = RewardWriter(output)

    def on_reward(reward: Reward) -> None:
        writer.write(reward)
        summary.add(reward)
        if progress is not None:
            progress(1)

    try:
        for batch in _chunks(pending, batch_size):
            pipeline.score_batch_sync(batch, on_reward=on_reward)
    finally:
        writer.close()
        summary.runtime = pipeline.runtime_stats()
    return summary


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
