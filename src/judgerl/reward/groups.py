"""Group assembly for a reward service: the rollouts of one prompt, sent apart, judged together.

Why: verl ≥ 0.9 and OpenRLHF ≥ 0.9.1 send one rollout per call, from many workers. A group judge
(all k answers in one call) or a round-robin pairwise judge needs the k rollouts of a prompt
together; scored one by one, each would be a "group" of one. `GroupAssembler` holds rollouts by a
group key (the prompt and label for OpenRLHF, verl's `uid`, TRL's prompt: whatever the caller
gives) until the expected number has arrived or `timeout_s` has passed since the first one, then
judges the group in one `score_batch` call and answers every waiting caller.

A group that cannot complete (the timeout passed first) is scored as it is when every judge of
the pipeline scores rollouts one at a time (rubric, itemized, pairwise against a reference or
baseline: the result is the same as for the whole group); when a judge needs the whole group
(`group`, pairwise `round_robin`), its rollouts are unscored with reason `group_incomplete`:
never a score invented from a partial group.

Everything runs on the event loop of the caller (the server's); `score_batch` runs on the
pipeline's own loop, as for any request. `waits` keeps how long each rollout was held (the
latency that group assembly adds), for the `/metrics` endpoint and the benchmark.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from judgerl.types import Reward, Rollout, Sample, rollout_id

if TYPE_CHECKING:
    from judgerl.reward.pipeline import RewardPipeline

INCOMPLETE_REASON = "group_incomplete"
WAIT_WINDOW = 10_000


def whole_group_judges(pipeline: RewardPipeline) -> list[str]:
    """Names of the judges that need a whole group (`group`, pairwise `round_robin`)."""
    names = []
    for judge in pipeline.judges:
        options = getattr(judge, "options", None)
        if getattr(judge, "kind", "") == "group" or getattr(options, "mode", None) == "round_robin":
            names.append(judge.name)
    return names


@dataclass
class _Pending:
    sample: Sample
    expected: int
    first_at: float
    rollouts: list[Rollout] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    futures: list[asyncio.Future[Reward]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class GroupAssembler:
    """Holds rollouts by group key until the group is complete or `timeout_s` passed (see the module)."""

    def __init__(self, pipeline: RewardPipeline, *, group_size: int, timeout_s: float,
                 on_wait: Callable[[float], None] | None = None) -> None:
        if group_size < 1 or timeout_s <= 0:
            raise ValueError(f"group_size ({group_size}) must be at least 1 and timeout_s ({timeout_s}) "
                             "positive")
        self.pipeline = pipeline
        self.group_size = group_size
        self.timeout_s = timeout_s
        self.needs_whole = whole_group_judges(pipeline)
        self._pending: dict[str, _Pending] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.waits: deque[float] = deque(maxlen=WAIT_WINDOW)
        self.on_wait = on_wait
        self.complete = 0
        self.incomplete = 0

    @property
    def pending_groups(self) -> int:
        return len(self._pending)

    @property
    def pending_rollouts(self) -> int:
        return sum(len(pending.rollouts) for pending in self._pending.values())

    async def score(self, items: Sequence[tuple[Sample, Rollout]], *, keys: Sequence[str] | None = None,
                    group_size: int | None = None) -> list[Reward]:
        """Rewards for `items`, in order, each judged with the rest of its group.

        `keys` (one per item) name the groups; by default the sample id. `group_size` is the
        expected size of every group these items belong to (default: the assembler's).
        """
        if keys is not None and len(keys) != len(items):
            raise ValueError(f"{len(keys)} group keys for {len(items)} items")
        expected = group_size or self.group_size
        futures = [self._add(keys[index] if keys is not None else sample.id, sample, rollout, expected)
                   for index, (sample, rollout) in enumerate(items)]
        return list(await asyncio.gather(*futures))

    def _add(self, key: str, sample: Sample, rollout: Rollout, expected: int) -> asyncio.Future[Reward]:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        pending = self._pending.get(key)
        if pending is None:
            pending = _Pending(sample=sample, expected=expected, first_at=now)
            pending.timer = loop.call_later(self.timeout_s, self._flush, key, pending)
            self._pending[key] = pending
        position = len(pending.rollouts)
        pending.rollouts.append(Rollout(sample_id=pending.sample.id, completion=rollout.completion,
                                        id=rollout_id(pending.sample.id, position),
                                        metadata=rollout.metadata, trajectory=rollout.trajectory,
                                        tools=rollout.tools))
        pending.arrived.append(now)
        future: asyncio.Future[Reward] = loop.create_future()
        pending.futures.append(future)
        if len(pending.rollouts) >= pending.expected:
            self._flush(key, pending)
        return future

    def _flush(self, key: str, pending: _Pending) -> None:
        if self._pending.get(key) is not pending:
            return  # already flushed (complete) when the timer fired
        del self._pending[key]
        if pending.timer is not None:
            pending.timer.cancel()
        now = time.monotonic()
        for arrived in pending.arrived:
            self.waits.append(now - arrived)
            if self.on_wait is not None:
                self.on_wait(now - arrived)
        complete = len(pending.rollouts) >= pending.expected
        if complete:
            self.complete += 1
        else:
            self.incomplete += 1
        task = asyncio.get_running_loop().create_task(self._judge(pending, complete))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge(self, pending: _Pending, complete: bool) -> None:
        try:
            if complete or not self.needs_whole:
                rewards = await self.pipeline.score_batch(
                    [(pending.sample, rollout) for rollout in pending.rollouts], enforce_budget=False)
            else:
                reason = (f"{INCOMPLETE_REASON}: {len(pending.rollouts)} of {pending.expected} rollouts "
                          f"arrived within {self.timeout_s:g} s, and judge(s) {', '.join(self.needs_whole)} "
                          "need the whole group")
                rewards = [self.pipeline.unscored_reward(pending.sample, rollout, None, reason)
                           for rollout in pending.rollouts]
        except Exception as exc:  # every waiting caller gets the error (answered as a 5xx)
            for future in pending.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, reward in zip(pending.futures, rewards, strict=True):
            if not future.done():
                future.set_result(reward)

    def flush_all(self) -> None:
        """Judge every group still waiting, as it is, now (on the event loop's thread)."""
        for key, pending in list(self._pending.items()):
            self._flush(key, pending)

    async def drain(self) -> None:
        """Judge every group still waiting, as it is (shutdown), and wait for the judging to end."""
        self.flush_all()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


__all__ = ["INCOMPLETE_REASON", "GroupAssembler", "whole_group_judges"]
