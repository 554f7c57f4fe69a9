"""The failure budget over a rolling window of one process, for callers that score one item a call.

Why: `RewardPipeline.score_batch` checks the config's `failure_budget` over the batch it was
given. That is right for a trainer that scores a whole batch at once (TRL, a Lambda invocation),
and wrong for the engines that send one rollout per call: verl ≥ 0.9 calls the reward function
once per sample, OpenRLHF ≥ 0.9.1 posts one rollout per request. There one unscored rollout is a
"batch" that is 100% unscored, and a single judge hiccup would raise `FailureBudgetExceeded`
(or answer 503) even under `failure_policy: neutral`.

`RollingFailureBudget` keeps the outcome of the last `window` rewards this process scored and
raises only when, with at least `min_items` of them seen, the unscored share is over the budget.
Reasons listed in `exempt_reasons` are neither failures nor successes (they are not counted).
It is thread-safe: verl runs sync reward functions in a thread pool.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from judgerl.errors import FailureBudgetExceeded
from judgerl.types import Reward
from judgerl.types import reason_key as text_reason_key

if TYPE_CHECKING:
    from judgerl.reward.pipeline import RewardPipeline

DEFAULT_WINDOW = 256
DEFAULT_MIN_ITEMS = 32


def reason_key(reward: Reward) -> str:
    """The short reason of an unscored reward (`judge_error: ...` -> `judge_error`; see
    `judgerl.types.reason_key`), else the first word of its reason (a bounded metric label)."""
    key = text_reason_key(reward.reason)
    return key.split(" ")[0] if key else "unknown"


class RollingFailureBudget:
    """`failure_budget` over the last `window` rewards (see the module docstring).

    >>> from judgerl.types import Reward
    >>> budget = RollingFailureBudget(0.5, window=4, min_items=2)
    >>> bad = Reward(sample_id="s", rollout_id="r", value=0.5, status="unscored", reason="judge_error")
    >>> budget.record([bad])          # one item: too few to judge the rate
    >>> budget.record([Reward(sample_id="s", rollout_id="r2", value=1.0)])
    >>> budget.failed, budget.seen
    (1, 2)
    >>> budget.record([bad])          # 2 of 3 unscored: over 0.5
    Traceback (most recent call last):
    judgerl.errors.FailureBudgetExceeded: ...
    """

    def __init__(self, budget: float | None, *, window: int = DEFAULT_WINDOW,
                 min_items: int = DEFAULT_MIN_ITEMS, exempt_reasons: Iterable[str] = ()) -> None:
        if window < 1 or min_items < 1:
            raise ValueError(f"window ({window}) and min_items ({min_items}) must be at least 1")
        self.budget = budget
        self.window = window
        self.min_items = min(min_items, window)
        self.exempt_reasons = frozenset(exempt_reasons)
        self._outcomes: deque[tuple[bool, str]] = deque(maxlen=window)
        self._lock = threading.Lock()

    @property
    def seen(self) -> int:
        """Rewards in the window."""
        return len(self._outcomes)

    @property
    def failed(self) -> int:
        """Unscored rewards in the window."""
        with self._lock:
            return sum(failed for failed, _reason in self._outcomes)

    def record(self, rewards: Sequence[Reward]) -> None:
        """Add these rewards to the window; raise FailureBudgetExceeded if the budget is now crossed.

        The error carries the window's counts and reasons, and `rewards` (the ones just scored).
        """
        with self._lock:
            for reward in rewards:
                failed = reward.status == "unscored"
                key = reason_key(reward) if failed else ""
                if failed and key in self.exempt_reasons:
                    continue
                self._outcomes.append((failed, key))
            if self.budget is None or len(self._outcomes) < self.min_items:
                return
            failures = [reason for failed, reason in self._outcomes if failed]
            total = len(self._outcomes)
            if len(failures) / total <= self.budget:
                return
            example = next((reward.reason for reward in rewards if reward.status == "unscored"), None)
            error = FailureBudgetExceeded(len(failures), total, self.budget, dict(Counter(failures)),
                                          example=example)
        error.rewards = list(rewards)  # type: ignore[attr-defined]
        raise error


_budgets: weakref.WeakKeyDictionary[RewardPipeline, RollingFailureBudget] = weakref.WeakKeyDictionary()
_budgets_lock = threading.Lock()


def rolling_budget(pipeline: RewardPipeline, *, window: int = DEFAULT_WINDOW,
                   min_items: int = DEFAULT_MIN_ITEMS) -> RollingFailureBudget:
    """The process-wide rolling budget of `pipeline` (made at the first call, with its config's budget)."""
    with _budgets_lock:
        budget = _budgets.get(pipeline)
        if budget is None:
            budget = RollingFailureBudget(pipeline.config.failure_budget, window=window, min_items=min_items)
            _budgets[pipeline] = budget
        return budget


__all__ = ["DEFAULT_MIN_ITEMS", "DEFAULT_WINDOW", "RollingFailureBudget", "reason_key", "rolling_budget"]
