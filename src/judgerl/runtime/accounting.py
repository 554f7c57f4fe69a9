"""Accounting of judge calls: counts, tokens, cost, latency percentiles, errors by reason.

Why: judge calls are the main running cost of RLAIF and the main source of slowness; users need
to see per run (and per training step) how many calls were made, how many the cache and the
in-batch dedup saved, how many HTTP attempts the retries cost, what it cost in USD, and why calls
failed. `ModelRuntime.stats.snapshot()` returns all of it as a plain dict.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from typing import Any

from judgerl.backends.base import Usage
from judgerl.config import Price

LATENCY_WINDOW = 10_000


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]) or None for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 95), percentile([], 50)
    (2.0, 4.0, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


class RuntimeStats:
    """Thread-safe counters of one runtime. Token and cost figures count fresh calls only."""

    def __init__(self, prices: dict[str, Price] | None = None) -> None:
        self.prices = prices or {}
        self._lock = threading.Lock()
        self.calls = 0            # logical complete() calls, including cache and dedup hits
        self.backend_calls = 0    # logical calls that went to a backend
        self.attempts = 0         # attempts sent to a backend (HTTP requests)
        self.cache_hits = 0
        self.dedup_hits = 0
        self.ok = 0
        self.failed = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.errors: Counter[str] = Counter()          # final error reason -> logical calls
        self.attempt_errors: Counter[str] = Counter()  # error reason -> attempts
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def count_call(self) -> None:
        with self._lock:
            self.calls += 1

    def count_hit(self, *, dedup: bool) -> None:
        with self._lock:
            if dedup:
                self.dedup_hits += 1
            else:
                self.cache_hits += 1

    def count_attempt(self, error_reason: str | None = None) -> None:
        with self._lock:
            self.attempts += 1
            if error_reason:
                self.attempt_errors[error_reason] += 1

    def count_result(self, *, model: str, usage: Usage | None, latency_s: float,
                     error_reason: str | None) -> None:
        """One logical call that went to the backend has finished (ok or failed)."""
        with self._lock:
            self.backend_calls += 1
            self._latencies.append(latency_s)
            if error_reason is not None:
                self.failed += 1
                self.errors[error_reason] += 1
                return
            self.ok += 1
            if usage is not None:
                self.prompt_tokens += usage.prompt_tokens
                self.completion_tokens += usage.completion_tokens
                cost = self.price_usd(model, usage)
                if cost is not None:
                    self.cost_usd += cost

    def price_usd(self, model: str, usage: Usage) -> float | None:
        """What `usage` cost at `model`'s configured price (USD); None when no price is set."""
        price = self.prices.get(model)
        if price is None:
            return None
        return (usage.prompt_tokens * price.input_per_mtok
                + usage.completion_tokens * price.output_per_mtok) / 1e6

    def snapshot(self) -> dict[str, Any]:
        """All figures as a plain, JSON-ready dict."""
        with self._lock:
            latencies = list(self._latencies)
            return {
                "calls": self.calls,
                "backend_calls": self.backend_calls,
                "attempts": self.attempts,
                "retry_amplification": (round(self.attempts / self.backend_calls, 4)
                                        if self.backend_calls else None),
                "cache_hits": self.cache_hits,
                "dedup_hits": self.dedup_hits,
                "ok": self.ok,
                "failed": self.failed,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "cost_usd": round(self.cost_usd, 6),
                "latency_p50_s": percentile(latencies, 50),
                "latency_p95_s": percentile(latencies, 95),
                "errors": dict(self.errors),
                "attempt_errors": dict(self.attempt_errors),
            }


def stats_delta(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """What was spent between two `RuntimeStats.snapshot()`s (a runtime shared by several runs or
    steps): counters as differences, latencies and the retry amplification as they are now."""
    delta: dict[str, Any] = {}
    for key, value in after.items():
        old = (before or {}).get(key)
        counter = isinstance(value, (int, float)) and not key.startswith(("latency", "retry_amp"))
        delta[key] = value - old if counter and isinstance(old, (int, float)) else value
        if isinstance(delta[key], float):
            delta[key] = round(delta[key], 6)
    return delta


class SpendBudget:
    """`runtime.budget_usd` / `runtime.budget_tokens` of one runtime: what the process may still spend.

    Why here and not in the judges: the runtime is the one place every call goes through, so the
    budget holds across judges, backends and retries. Before each send the runtime asks `admit`
    with the call's estimate (the prompt estimate plus `max_tokens`, priced at the model's
    price); the estimate is held while the call is in flight, so concurrent calls cannot jointly
    overshoot, and released once the real usage is counted in `stats`. The first refusal is
    final (`exhausted`): no later call of the process is sent, whatever its size, so a run stops
    at one point instead of trickling on with small calls. Cache hits cost nothing and are
    still served.

    The prompt estimate counts 4 characters a token; a model whose tokenizer counts more (Chinese
    or Japanese text, code) would then spend more than its estimate. So each answer's real prompt
    tokens are compared with the estimate (`observe`), and the model's later estimates are scaled
    by the largest ratio seen: once a model has answered, its estimates do not fall below its
    real counts for prompts like those seen.
    """

    def __init__(self, stats: RuntimeStats, *, usd: float | None, tokens: int | None) -> None:
        self.stats = stats
        self.usd = usd
        self.tokens = tokens
        self._lock = threading.Lock()
        self._held_tokens = 0
        self._held_usd = 0.0
        self._prompt_scale: dict[str, float] = {}  # model -> largest real / estimated prompt tokens
        self.exhausted: str | None = None  # why the budget refused a call (None: not yet)

    @property
    def active(self) -> bool:
        return self.usd is not None or self.tokens is not None

    def admit(self, model: str, prompt_tokens: int, max_tokens: int) -> tuple[int, float] | str:
        """Hold the estimate of one call (returned, to `release` later), or say why it may not be sent."""
        scale = self._prompt_scale.get(model)
        if scale is not None:
            prompt_tokens = math.ceil(prompt_tokens * scale)
        cost = self.stats.price_usd(model, Usage(prompt_tokens, max_tokens)) or 0.0
        tokens = prompt_tokens + max_tokens
        with self._lock:
            if self.exhausted is not None:
                return self.exhausted
            spent_tokens, spent_usd = self.spent()
            if self.tokens is not None and spent_tokens + self._held_tokens + tokens > self.tokens:
                self.exhausted = (f"budget_exhausted: the next call (~{tokens} tokens) would cross "
                                  f"runtime.budget_tokens={self.tokens} ({spent_tokens} spent, "
                                  f"{self._held_tokens} in flight)")
                return self.exhausted
            if self.usd is not None and spent_usd + self._held_usd + cost > self.usd:
                self.exhausted = (f"budget_exhausted: the next call (~${cost:.6f}) would cross "
                                  f"runtime.budget_usd={self.usd:g} (${spent_usd:.6f} spent, "
                                  f"${self._held_usd:.6f} in flight)")
                return self.exhausted
            self._held_tokens += tokens
            self._held_usd += cost
            return tokens, cost

    def observe(self, model: str, estimated_prompt_tokens: int, prompt_tokens: int) -> None:
        """An answer of `model` counted `prompt_tokens` for a prompt estimated at the second figure."""
        if estimated_prompt_tokens > 0 and prompt_tokens > estimated_prompt_tokens:
            ratio = prompt_tokens / estimated_prompt_tokens
            with self._lock:
                self._prompt_scale[model] = max(ratio, self._prompt_scale.get(model, 1.0))

    def release(self, held: tuple[int, float]) -> None:
        """The call is over (its real usage, if any, is in `stats`): drop its estimate."""
        with self._lock:
            self._held_tokens -= held[0]
            self._held_usd -= held[1]

    def spent(self) -> tuple[int, float]:
        """(tokens, USD) spent so far by fresh calls."""
        with self.stats._lock:
            return self.stats.prompt_tokens + self.stats.completion_tokens, self.stats.cost_usd

    def snapshot(self) -> dict[str, Any]:
        """The spend against the budget, JSON-ready."""
        tokens, usd = self.spent()
        return {"spent_tokens": tokens, "spent_usd": round(usd, 6), "budget_tokens": self.tokens,
                "budget_usd": self.usd, "exhausted": self.exhausted is not None}
