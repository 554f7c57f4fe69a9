"""A circuit breaker per backend: when most recent attempts fail, stop calling for a cool-down.

Why: during a judge outage, retrying every call with backoff piles up thousands of waiting
calls and hammers a server that is already down. When the share of failures among the last
`window` attempts reaches `failure_ratio`, the breaker opens: calls fail fast ("circuit_open",
so the judgment is unscored with that reason) for `cooldown_s`. Then one probe call is let
through (half-open); its success closes the breaker, its failure opens it again.

Rate limiting (429) is not counted as a failure: the Retry-After gate handles it.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class CircuitBreaker:
    """closed -> open (fail fast) -> half-open (one probe) -> closed or open again.

    >>> breaker = CircuitBreaker(window=2, failure_ratio=1.0, cooldown_s=10)
    >>> breaker.record(False, now=0.0); breaker.record(False, now=0.0); breaker.state_at(1.0)
    'open'
    >>> breaker.allow(now=5.0), breaker.state_at(10.5), breaker.allow(now=11.0), breaker.allow(now=11.0)
    (False, 'half-open', True, False)
    >>> breaker.record(True, now=11.5); breaker.state
    'closed'
    """

    def __init__(self, window: int = 20, failure_ratio: float = 0.8, cooldown_s: float = 30.0) -> None:
        self.window = window
        self.failure_ratio = failure_ratio
        self.cooldown_s = cooldown_s
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.times_opened = 0
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        return self.state_at(time.monotonic())

    def state_at(self, now: float) -> str:
        """"closed", "open" (failing fast) or "half-open" (the next call is a probe)."""
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or now < self._opened_at + self.cooldown_s:
            return "open"
        return "half-open"

    def allow(self, *, now: float | None = None) -> bool:
        """May a call go out now? In half-open state only one probe is allowed."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._opened_at is None:
                return True
            if now < self._opened_at + self.cooldown_s or self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record(self, success: bool, *, now: float | None = None) -> None:
        """Record the outcome of one attempt that `allow` let through."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._opened_at is not None:
                if self._probe_in_flight:
                    self._probe_in_flight = False
                    if success:
                        self._opened_at = None
                        self._outcomes.clear()
                    else:
                        self._opened_at = now
                        self.times_opened += 1
                # Outcomes of calls sent before the breaker opened do not change its state.
                return
            self._outcomes.append(success)
            failures = self._outcomes.count(False)
            if len(self._outcomes) >= self.window and failures / len(self._outcomes) >= self.failure_ratio:
                self._opened_at = now
                self.times_opened += 1

    def release_probe(self) -> None:
        """The probe ended without an outcome that says anything (e.g. a 429): allow another."""
        with self._lock:
            self._probe_in_flight = False
