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
import random
import threading
import time
from typing import Any

from judgerl.errors import SendGateClosed


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


#: the share of a Retry-After window over which its waiting calls are spread (up to the config's cap)
JITTER_SHARE = 0.25


class RetryAfterGate:
    """A shared "not before" time per backend: while it is in the future, nothing is sent.

    Set from a 429 (or 503) `Retry-After`; checked by the runtime before a call takes its turn
    and again by the backend at send time (`check_open`, right before the request is written,
    after any wait for a connection), so a window that opens meanwhile still holds the call.
    When a window ends, each waiting call adds its own random delay (`release_delay`), so the
    calls held by one window do not all fire in the same instant.
    """

    def __init__(self) -> None:
        self.not_before = 0.0
        self.window_s = 0.0  # the length of the window that set `not_before`
        self._lock = threading.Lock()

    def close_for(self, seconds: float, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if now + seconds > self.not_before:
                self.not_before = now + seconds
                self.window_s = seconds

    def remaining(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(0.0, self.not_before - now)

    def is_open(self, now: float | None = None) -> bool:
        """No window is open (the same test as `remaining() == 0`, without the arithmetic).

        >>> gate = RetryAfterGate(); gate.close_for(1.0, now=0.0)
        >>> gate.is_open(now=0.5), gate.is_open(now=1.0)
        (False, True)
        """
        return self.not_before <= (time.monotonic() if now is None else now)

    def release_delay(self, rng: random.Random, max_jitter_s: float, *, now: float | None = None) -> float:
        """How long a call should sleep: the rest of the window plus a random extra delay.

        The extra delay is uniform in [0, min(max_jitter_s, a quarter of the window)]: long
        windows spread their waiting calls over up to `max_jitter_s`, short ones over a quarter
        of their own length (a 50 ms window costs at most 12.5 ms more).

        >>> gate = RetryAfterGate(); gate.close_for(1.0, now=0.0)
        >>> delays = [gate.release_delay(random.Random(seed), 0.5, now=0.5) for seed in range(50)]
        >>> 0.5 <= min(delays) < 0.55, 0.7 < max(delays) <= 0.75
        (True, True)
        >>> RetryAfterGate().release_delay(random.Random(0), 0.5)
        0.0
        """
        wait = self.remaining(now)
        if wait <= 0:
            return 0.0
        return wait + rng.uniform(0.0, min(max_jitter_s, JITTER_SHARE * self.window_s))

    def check_open(self) -> None:
        """Raise `SendGateClosed` while a window is open: called right before a request is sent."""
        wait = self.remaining()
        if wait > 0:
            raise SendGateClosed(wait)
