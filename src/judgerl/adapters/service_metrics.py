"""Prometheus metrics of the reward service (`GET /metrics` of `judgerl serve`).

Why: one reward service feeds every worker of a distributed run; its operator needs to see, while
the run goes, how many requests and rollouts it answers, how long they take, how many come back
unscored and why, how many judge calls the cache saved, what the judge costs, and how long group
assembly holds rollouts. The text exposition format (version 0.0.4) is written here directly:
a few counters and histograms do not justify a dependency.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from judgerl.reward.budget import reason_key
from judgerl.runtime.accounting import percentile
from judgerl.types import Reward

if TYPE_CHECKING:
    from judgerl.adapters.http_guard import AcceptGate
    from judgerl.reward.groups import GroupAssembler
    from judgerl.runtime.model_runtime import ModelRuntime

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics).

    >>> h = Histogram((0.1, 1.0))
    >>> h.observe(0.05); h.observe(0.5); h.observe(3.0)
    >>> h.counts, h.count, round(h.total, 2)
    ([1, 2], 3, 3.55)
    """

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[index] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{_number(bound)}"}} {count}'
               for bound, count in zip(self.buckets, self.counts, strict=True)]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out += [f"{name}_sum {_number(self.total)}", f"{name}_count {self.count}"]
        return out


def _number(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class ServiceMetrics:
    """The service's counters; `render` writes them (with the runtime's and assembler's figures)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()     # HTTP status -> requests
        self.items: Counter[str] = Counter()        # reward status -> rollouts
        self.unscored: Counter[str] = Counter()     # reason -> rollouts
        self.in_flight = 0
        self.request_seconds = Histogram()
        self.group_wait_seconds = Histogram()

    def group_wait(self, seconds: float) -> None:
        """A rollout was held `seconds` for its group (the assembler's `on_wait`)."""
        with self._lock:
            self.group_wait_seconds.observe(seconds)

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def finished(self, status: int, seconds: float, rewards: Iterable[Reward] = ()) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests[str(status)] += 1
            self.request_seconds.observe(seconds)
            for reward in rewards:
                self.items[reward.status] += 1
                if reward.status == "unscored":
                    self.unscored[reason_key(reward)] += 1

    def render(self, runtime: ModelRuntime | None = None, assembler: GroupAssembler | None = None, *,
               connections: AcceptGate | None = None, pending_bytes: int | None = None) -> str:
        """The exposition text; `connections` (the server's gate) and `pending_bytes` (request
        bytes held) add the load gauges of `judgerl serve`."""
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[str]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples])

        with self._lock:
            metric("judgerl_requests_total", "counter", "reward requests answered, by HTTP status",
                   [f'judgerl_requests_total{{code="{code}"}} {count}'
                    for code, count in sorted(self.requests.items())])
            metric("judgerl_requests_in_flight", "gauge", "reward requests being answered",
                   [f"judgerl_requests_in_flight {self.in_flight}"])
            metric("judgerl_request_seconds", "histogram", "time to answer a reward request",
                   self.request_seconds.lines("judgerl_request_seconds"))
            metric("judgerl_rollouts_total", "counter", "rollouts scored, by reward status",
                   [f'judgerl_rollouts_total{{status="{status}"}} {count}'
                    for status, count in sorted(self.items.items())])
            metric("judgerl_unscored_total", "counter", "unscored rollouts, by reason",
                   [f'judgerl_unscored_total{{reason="{_label(reason)}"}} {count}'
                    for reason, count in sorted(self.unscored.items())])
            if assembler is not None:
                metric("judgerl_group_wait_seconds", "histogram", "time a rollout was held for its group",
                       self.group_wait_seconds.lines("judgerl_group_wait_seconds"))
                metric("judgerl_groups_total", "counter", "groups judged, complete or at the timeout",
                       [f'judgerl_groups_total{{outcome="complete"}} {assembler.complete}',
                        f'judgerl_groups_total{{outcome="incomplete"}} {assembler.incomplete}'])
                metric("judgerl_groups_pending", "gauge", "groups waiting for rollouts",
                       [f"judgerl_groups_pending {assembler.pending_groups}"])
                waits = list(assembler.waits)
                for quantile in (50, 95):
                    value = percentile(waits, quantile)
                    name = f"judgerl_group_wait_p{quantile}_seconds"
                    metric(name, "gauge", f"time a rollout was held for its group, p{quantile} over the "
                                          "last 10000 rollouts",
                           [f"{name} {'NaN' if value is None else value}"])
        if connections is not None:
            metric("judgerl_connections_served", "gauge", "connections being read or answered",
                   [f"judgerl_connections_served {len(connections.active)}"])
            metric("judgerl_connections_waiting", "gauge",
                   "connections accepted and waiting for a slot (more may wait in the listen backlog)",
                   [f"judgerl_connections_waiting {len(connections.waiting)}"])
            metric("judgerl_connections_max", "gauge", "most connections served at once",
                   [f"judgerl_connections_max {connections.limit}"])
            metric("judgerl_accept_paused", "gauge", "1 while the service does not accept (at the bound)",
                   [f"judgerl_accept_paused {int(connections.paused)}"])
            metric("judgerl_accept_pauses_total", "counter", "times accepting paused at the bound",
                   [f"judgerl_accept_pauses_total {connections.pauses}"])
            metric("judgerl_silent_connections_closed_total", "counter",
                   "connections closed for sending nothing while others waited for a slot",
                   [f"judgerl_silent_connections_closed_total {connections.silent_closed}"])
        if pending_bytes is not None:
            metric("judgerl_pending_request_bytes", "gauge", "request bytes held (read or being judged)",
                   [f"judgerl_pending_request_bytes {pending_bytes}"])
        if runtime is not None:
            lines += runtime_lines(runtime.stats.snapshot())
        return "\n".join(lines) + "\n"


def runtime_lines(snapshot: dict[str, Any]) -> list[str]:
    """The judge runtime's accounting as Prometheus samples."""
    counters = {
        "judgerl_judge_calls_total": ("calls", "judge calls asked for (cache and dedup hits included)"),
        "judgerl_judge_backend_calls_total": ("backend_calls", "judge calls that went to a backend"),
        "judgerl_judge_attempts_total": ("attempts", "requests sent to backends (retries included)"),
        "judgerl_judge_cache_hits_total": ("cache_hits", "judge calls answered from the cache"),
        "judgerl_judge_dedup_hits_total": ("dedup_hits",
                                           "judge calls shared with an identical one in flight"),
        "judgerl_judge_failed_total": ("failed", "judge calls that failed after retries"),
        "judgerl_judge_tokens_total": ("total_tokens", "prompt and completion tokens of fresh judge calls"),
        "judgerl_judge_cost_usd_total": ("cost_usd", "cost of fresh judge calls in USD (configured prices)"),
    }
    lines: list[str] = []
    for name, (key, help_text) in counters.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {snapshot.get(key) or 0}"]
    for quantile in ("p50", "p95"):
        value = snapshot.get(f"latency_{quantile}_s")
        name = f"judgerl_judge_latency_{quantile}_seconds"
        lines += [f"# HELP {name} judge call latency, {quantile} over the last 10000 calls",
                  f"# TYPE {name} gauge", f"{name} {value if value is not None else 'NaN'}"]
    return lines


__all__ = ["CONTENT_TYPE", "Histogram", "ServiceMetrics", "runtime_lines"]
