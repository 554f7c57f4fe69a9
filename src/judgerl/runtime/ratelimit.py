"""Requests-per-minute and tokens-per-minute limits, as token buckets, plus the Retry-After gate.

Why: a judge endpoint enforces RPM / TPM quotas; going over them costs 429s, retries and
Retry-After pauses that stall a whole training step. Spending from a bucket *before* sending keeps
the runtime under the quota instead of discovering it. TPM is charged up front with an estimate
(prompt estimate + `max_tokens`) and corrected with the real usage afterwards.

The buckets reserve and then sleep, with no asyncio primitive inside, so that they work from any
event loop (and any thread: a lock guards the arithmetic).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any


class TokenBucket:
    """`rate_per_s` tokens flow in continuously up to `capacity`; a spend may go into debt.

    A request larger than the capacity is still served (after the bucket has filled), so a
    single big prompt cannot block forever.

    >>> bucket = TokenBucket(rate_per_s=10, capacity=10)
    >>> bucket.reserve(4, now=bucket.updated)
    0.0
    >>> round(bucket.reserve(10, now=bucket.updated), 3)  # 6 left: wait until 10 are there
    0.4
    """

    def __init__(self, rate_per_s: float, capacity: float) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.level = capacity
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate_per_s)
        self.updated = now

    def reserve(self, amount: float, *, now: float | None = None) -> float:
        """Take `amount` now and return how long the caller must wait before using it."""
        with self._lock:
            now = time.monotonic() if now is None else now
            self._refill(now)
            # Wait until the level reaches min(amount, capacity); the rest is debt.
            needed = min(amount, self.capacity)
            wait = max(0.0, (needed - self.level) / self.rate_per_s)
            self.level -= amount
            return wait

    def refund(self, amount: float) -> None:
        """Give back (or, when negative, charge) `amount` after the real cost is known."""
        with self._lock:
            self._refill(time.monotonic())
            self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """The RPM and TPM buckets of one backend (either may be absent)."""

    def __init__(self, rpm: float | None, tpm: float | None, *, burst_s: float = 1.0) -> None:
        self.rpm_bucket = (TokenBucket(rpm / 60.0, max(1.0, rpm / 60.0 * burst_s))
                           if rpm else None)
        self.tpm_bucket = (TokenBucket(tpm / 60.0, max(1.0, tpm / 60.0 * burst_s))
                           if tpm else None)

    @property
    def active(self) -> bool:
        return self.rpm_bucket is not None or self.tpm_bucket is not None

    async def acquire(self, tokens: float) -> None:
        """Spend one request and `tokens` tokens, sleeping as long as the quotas require."""
        wait = 0.0
        if self.rpm_bucket is not None:
            wait = max(wait, self.rpm_bucket.reserve(1))
        if self.tpm_bucket is not None:
            wait = max(wait, self.tpm_bucket.reserve(tokens))
        if wait > 0:
            await asyncio.sleep(wait)

    def correct(self, charged: float, actual: float) -> None:
        """Correct the TPM charge with the real usage."""
        if self.tpm_bucket is not None and charged != actual:
            self.tpm_bucket.refund(charged - actual)


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A cheap prompt-size estimate (about 4 characters per token, plus per-message overhead).

    >>> estimate_tokens([{"role": "user", "content": "x" * 40}])
    14
    """
    total = 0
    for message in messages:
        content = message.get("content", "")
        total += 4 + len(content if isinstance(content, str) else str(content)) // 4
    return total


class RetryAfterGate:
    """A shared "not before" time per backend: while it is in the future, nothing is sent.

    Set from a 429 (or 503) `Retry-After`; every sender checks it right before sending.
    """

    def __init__(self) -> None:
        self.not_before = 0.0
        self._lock = threading.Lock()

    def close_for(self, seconds: float, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.not_before = max(self.not_before, now + seconds)

    def remaining(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.not_before - now)
