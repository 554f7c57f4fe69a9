"""The model-call runtime: every model call in the process (judge or policy) goes through one `ModelRuntime`.

Why one place: concurrency limits, rate limits, retries, the circuit breaker, the cache, the
journal and the accounting only work if no call goes around them. Judges (and the evaluation) ask
`runtime.complete(backend_name, request)` and get a `CallResult`; a failure that retrying
cannot fix in time comes back as `CallResult(completion=None, error=...)` so that the judge
can report "unscored" with the reason. A fatal error (bad request, bad key, unknown model)
raises `FatalBackendError`, because every other call would fail the same way.

One logical call, step by step:

1. the SQLite cache (content-addressed; `use_cache=False` skips it) and the in-flight table
   (an identical call already in flight is awaited, not repeated);
2. a concurrency slot of the backend (`backend.max_concurrency`); the call's total deadline
   (`deadline_s`) starts when it first gets a slot, so queueing behind a slow backend is not
   counted against it;
3. the Retry-After gate: while a 429 / 503 `Retry-After` window of that backend is open, nothing
   is sent to it; when the window ends each held call waits its own random extra delay (up to
   `retry_after_jitter_s`), so they do not all fire at once. The backend checks the gate again
   at send time, once it holds a connection (`Backend.send_gate`): a window that opened
   meanwhile sends the call back to wait, without counting an attempt;
4. the RPM / TPM buckets (`backend.limits.rpm`, `.tpm`; TPM charged with the prompt estimate plus
   `max_tokens`, corrected with the real usage);
5. the spending budget (`runtime.budget_usd`, `runtime.budget_tokens`; `accounting.SpendBudget`):
   a call whose estimate would cross it is not sent ("budget_exhausted"), and from then on no
   call of the process is sent (cache hits are still served);
   then the circuit breaker (open: fail fast as "circuit_open"; half-open: one probe);
6. one attempt, bounded by `backend.limits.timeout_s` and the deadline; then retry on retryable errors:
   the server's Retry-After when given (shared by every call of that backend), otherwise
   exponential backoff with full jitter, up to `max_attempts`. A Retry-After longer than
   `retry_after_cap_s` fails that call ("retry_after_too_long") and closes the gate for no one;
7. parse-then-cache: a caller that passes `accept` (the judges pass their parser) gets the
   parsed value, and only an answer that `accept` takes is written to the cache; a cached
   answer that `accept` refuses is dropped from the cache and asked again.

The error of a failed `CallResult` starts with a short machine-readable reason: "timeout",
"http_429", "http_503", "connection_error", "bad_response", "circuit_open",
"deadline_exceeded", "retry_after_too_long", "context_length", "content_filter", "refusal", "backend_error",
"budget_exhausted".
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import sys
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from judgerl.backends.base import Backend, Completion, CompletionRequest
from judgerl.config import RuntimeConfig
from judgerl.errors import BackendError, ConfigError, FatalBackendError, JudgeParseError, SendGateClosed
from judgerl.runtime.accounting import RuntimeStats, SpendBudget
from judgerl.runtime.breaker import CircuitBreaker
from judgerl.runtime.cache import CompletionCache, cache_key
from judgerl.runtime.journal import Journal
from judgerl.runtime.ratelimit import RateLimiter, RetryAfterGate, estimate_tokens

#: statuses after which a backend is never called again in this run
STICKY_FATAL_STATUSES = frozenset({401, 403, 404})
#: failures that are about one prompt (too long, content-filtered): not a sign of an unwell backend
PROMPT_REASONS = frozenset({"context_length", "content_filter", "refusal"})
_REASON = re.compile(r"^([a-z][a-z0-9_]*)(?::|$)")


@dataclass
class CallResult:
    """The outcome of one logical call (possibly several HTTP attempts)."""

    completion: Completion | None
    error: str | None = None
    attempts: int = 1
    #: from the call to its result: queueing (concurrency slot, RPM/TPM, Retry-After), retries
    #: and their back-off included; what the caller waited
    latency_s: float = 0.0
    #: the time the backend itself took: the attempts' sends to their answers (0 for a cached or
    #: shared answer); what the call costs the endpoint, whatever the queue in front of it
    service_s: float = 0.0
    cached: bool = False
    deduplicated: bool = False
    parsed: Any = None  # what `accept` returned, when the caller passed one and it took the answer
    parse_error: str | None = None  # why `accept` refused the answer (the answer was not cached)

    @property
    def ok(self) -> bool:
        return self.completion is not None

    @property
    def reason(self) -> str | None:
        """The machine-readable prefix of `error` ("timeout", "http_429", ...), or None.

        >>> CallResult(None, error="bad_response: empty choices").reason
        'bad_response'
        """
        return None if self.error is None else self.error.split(":", 1)[0]


def error_reason(exc: BackendError) -> str:
    """The short reason of a backend error: its message's `slug:` prefix, else `http_<status>`.

    >>> error_reason(BackendError("bad_response: empty choices", retryable=True, status=200))
    'bad_response'
    >>> error_reason(BackendError("Throttled by the service", retryable=True, status=429))
    'http_429'
    """
    match = _REASON.match(str(exc))
    if match:
        return match.group(1)
    if exc.status is not None:
        return f"http_{exc.status}"
    return "backend_error"


def _format_error(reason: str, detail: str | None) -> str:
    if not detail or detail == reason:
        return reason
    return detail if detail.startswith(reason + ":") else f"{reason}: {detail}"


if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - Python 3.10
    @asynccontextmanager
    async def _timeout(delay: float | None) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        handle = asyncio.get_running_loop().call_later(delay, task.cancel) if delay is not None else None
        try:
            yield
        except asyncio.CancelledError as exc:
            if handle is not None and handle.when() <= asyncio.get_running_loop().time():
                raise asyncio.TimeoutError from exc
            raise
        finally:
            if handle is not None:
                handle.cancel()


class _BackendState:
    """Everything the runtime keeps per backend that is not tied to an event loop."""

    def __init__(self, name: str, backend: Backend, config: RuntimeConfig) -> None:
        self.name = name
        self.backend = backend
        limits = backend.limits
        self.limiter = RateLimiter(limits.rpm, limits.tpm, burst_s=config.rate_burst_s)
        self.gate = RetryAfterGate()
        self.breaker = CircuitBreaker(config.breaker_window, config.breaker_failure_ratio,
                                      config.breaker_cooldown_s)
        self.timeout_s: float = limits.timeout_s if limits.timeout_s is not None else math.inf
        self.fatal: FatalBackendError | None = None
        self.identity = backend.cache_identity()
        #: the last failure the breaker counted: what "circuit_open" reports as its cause
        self.last_failure: str | None = None

    def circuit_open_detail(self, cooldown_s: float | None = None) -> str:
        """Why calls fail fast, with the failure that opened the breaker (the URL refusing
        connections, the timeouts): without it every reason of a run reads "circuit_open"."""
        cause = f" (last error: {self.last_failure})" if self.last_failure else ""
        wait = f"; calls fail fast for {cooldown_s:g}s" if cooldown_s is not None else ""
        return f"backend '{self.name}' is failing{cause}{wait}"


@dataclass
class _Outcome:
    """What one send came to: an answer, the call's final failure, a retryable failure (with the
    server's Retry-After, if any), or nothing sent because a Retry-After window opened meanwhile."""

    completion: Completion | None = None
    final: CallResult | None = None
    unsent_wait_s: float | None = None
    reason: str = ""
    detail: str = ""
    retry_after: float | None = None


class _Slots:
    """A backend's concurrency slots on one event loop: `asyncio.Semaphore`'s job, cheaper per call.

    A free slot is taken without awaiting (no coroutine, no future: `take_now`); when none is
    free the call waits its turn in FIFO order (`take`), and a finished call hands its slot
    straight to the next waiter (`give`), so no later arrival can take it first. A waiter that is
    cancelled after being handed a slot passes it on. Waiters exist only while no slot is free.

    >>> async def demo():
    ...     slots = _Slots(1)
    ...     first = slots.take_now()
    ...     waiter = asyncio.ensure_future(slots.take())
    ...     await asyncio.sleep(0)
    ...     second = slots.take_now()  # the only slot is held and someone waits for it
    ...     slots.give()               # handed to the waiter, not freed
    ...     await waiter
    ...     slots.give()
    ...     return first, second, slots.free
    >>> asyncio.run(demo())
    (True, False, 1)
    """

    __slots__ = ("_waiters", "free")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take_now(self) -> bool:
        if self.free > 0:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # a slot was handed over as this call was cancelled: pass it on
            raise

    def give(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                return
        self.free += 1


class _LoopState:
    """Slots and in-flight futures belong to one event loop; one of these per loop."""

    def __init__(self, states: dict[str, _BackendState]) -> None:
        self.slots = {name: _Slots(state.backend.max_concurrency) for name, state in states.items()}
        self.inflight: dict[str, asyncio.Future[CallResult]] = {}


class ModelRuntime:
    """Makes model calls (a judge's, or the evaluation's policy sampling) under the configured limits.

    `base_dir` resolves a relative `cache_path` / `journal_path` (default: the working folder).
    Limits are per process and per event loop: run all judge work on one loop (the reward
    pipeline does) to keep them process-wide.
    """

    def __init__(self, backends: dict[str, Backend], config: RuntimeConfig | None = None, *,
                 base_dir: str | Path | None = None, rng: random.Random | None = None) -> None:
        self.backends = backends
        self.config = config or RuntimeConfig()
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        self._states = {name: _BackendState(name, backend, self.config)
                        for name, backend in backends.items()}
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary())
        # the loop of the latest call and its state (a weak reference: a finished loop is not kept)
        self._last_loop: tuple[Callable[[], asyncio.AbstractEventLoop | None], _LoopState | None] = (
            lambda: None, None)
        self._rng = rng or random.Random()
        self.stats = RuntimeStats(self.config.prices)
        self.budget = SpendBudget(self.stats, usd=self.config.budget_usd, tokens=self.config.budget_tokens)
        if self.config.budget_usd is not None:
            for name, backend in backends.items():
                if backend.model not in self.config.prices:
                    raise ConfigError(
                        f"runtime.budget_usd is set but runtime.prices has no price for model "
                        f"'{backend.model}' (backend '{name}'), so its calls could not be counted "
                        "against the budget: add one (0 for a model that costs nothing per token)",
                        field="runtime.prices")
        self.cache = (CompletionCache(base / self.config.cache_path)
                      if self.config.cache_path else None)
        self.journal = Journal(base / self.config.journal_path if self.config.journal_path else None)
        for state in self._states.values():
            state.backend.send_gate = state.gate.check_open

    # -- public ----------------------------------------------------------------------------

    @property
    def journal_entries(self) -> list[dict[str, Any]]:
        """The most recent `record()`ed entries of this run (up to 1000), oldest first.

        Memory is bounded: the journal file (`journal_path`) keeps every entry, and
        `journal.written` / `journal.outcomes` count them all."""
        return self.journal.entries

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            raise ConfigError(f"unknown backend '{name}'; known: {sorted(self.backends)}",
                              field="backend")
        return self.backends[name]

    def retry_after_gate(self, name: str) -> RetryAfterGate:
        """The Retry-After gate of backend `name` (shared by all its calls)."""
        self.backend(name)
        return self._states[name].gate

    def breaker_state(self, name: str) -> str:
        """"closed", "open" or "half-open" for backend `name`."""
        self.backend(name)
        return self._states[name].breaker.state

    async def complete(self, backend_name: str, request: CompletionRequest, *,
                       use_cache: bool = True,
                       accept: Callable[[Completion], Any] | None = None) -> CallResult:
        """One logical call: a `CallResult` with the completion or the reason it failed.

        Raises `FatalBackendError` for 400/401/403/404 (after a 401/403/404 every later call
        to that backend raises at once). `use_cache=False` bypasses the cache and the dedup
        (for repeated sampling, e.g. a consistency check).

        `accept(completion)` (a judge's parser) decides whether an answer is usable: its value
        comes back as `result.parsed`; when it raises `JudgeParseError` the reason is
        `result.parse_error` and the answer is not cached (a cached one is dropped and asked
        again). Without `accept` every answer is cached.
        """
        self.backend(backend_name)
        state = self._states[backend_name]
        self.stats.count_call()
        if state.fatal is not None:
            raise state.fatal
        started = time.monotonic()
        if not use_cache or (self.cache is None and not self.config.dedup):
            return self._accepted(await self._call(state, request, started), None, accept)
        key = cache_key(state.identity, request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                result = self._accepted(CallResult(hit, attempts=0, latency_s=time.monotonic() - started,
                                                   cached=True), None, accept)
                if result.parse_error is None:
                    self.stats.count_hit(dedup=False)
                    return result
                self.cache.discard(key)  # an unusable answer from an older run: ask again
        if not self.config.dedup:
            return self._accepted(await self._call(state, request, started), key, accept)
        result = await self._deduplicated(state, request, key, started)
        return self._accepted(result, None if result.deduplicated else key, accept)

    def _accepted(self, result: CallResult, key: str | None,
                  accept: Callable[[Completion], Any] | None) -> CallResult:
        """Parse-then-cache: run `accept` on a fresh or cached answer; cache it (under `key`) if taken."""
        if result.completion is None or (result.cached and accept is None):
            return result
        if accept is not None:
            try:
                result = replace(result, parsed=accept(result.completion), parse_error=None)
            except JudgeParseError as exc:
                return replace(result, parsed=None, parse_error=str(exc))
        if key is not None and self.cache is not None:
            self.cache.put(key, result.completion)
        return result

    def record(self, entry: dict[str, Any]) -> None:
        """Keep one judgment's record: appended to the JSONL journal (flushed); the most recent in memory."""
        self.journal.write(entry)

    async def aclose(self) -> None:
        """Close the backends, the cache and the journal. Safe to call twice."""
        for backend in self.backends.values():
            await backend.aclose()
        self.close_files()

    def close_files(self) -> None:
        """Close the cache and the journal (what `aclose` does besides closing the backends)."""
        if self.cache is not None:
            self.cache.close()
            self.cache = None
        self.journal.close()

    # -- internals -------------------------------------------------------------------------

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        last_loop, last_state = self._last_loop
        if last_loop() is loop:  # the usual case: the same loop as the call before
            return last_state
        loop_state = self._loops.get(loop)
        if loop_state is None:
            loop_state = self._loops[loop] = _LoopState(self._states)
        self._last_loop = (weakref.ref(loop), loop_state)
        return loop_state

    async def _deduplicated(self, state: _BackendState, request: CompletionRequest, key: str,
                            started: float) -> CallResult:
        inflight = self._loop_state().inflight
        while (shared := inflight.get(key)) is not None:
            try:
                result = await asyncio.shield(shared)
            except asyncio.CancelledError:
                if shared.cancelled():
                    continue  # the call we were sharing was cancelled, not us: make our own
                raise
            self.stats.count_hit(dedup=True)
            return replace(result, attempts=0, deduplicated=True, latency_s=time.monotonic() - started)
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        inflight[key] = future
        try:
            result = await self._call(state, request, started)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: sharing calls re-raise it; no "never retrieved" warning
            raise
        else:
            future.set_result(result)
            return result
        finally:
            inflight.pop(key, None)

    def _fail(self, state: _BackendState, reason: str, detail: str | None, attempts: int,
              started: float) -> CallResult:
        latency = time.monotonic() - started
        self.stats.count_result(model=state.backend.model, usage=None, latency_s=latency,
                                error_reason=reason)
        return CallResult(None, error=_format_error(reason, detail), attempts=attempts, latency_s=latency)

    async def _call(self, state: _BackendState, request: CompletionRequest, started: float) -> CallResult:
        """Attempts with retries; returns a CallResult (with the backend's own time, `service_s`)
        or raises FatalBackendError.

        The hot path of every call, kept flat on purpose (bench/reward_throughput.py): one
        coroutine frame below `complete` (each frame is walked again at every resume), no token
        estimate unless an RPM / TPM limit needs it, and no `_wait_to_send` coroutine while
        neither the Retry-After gate nor a limit can hold the call."""
        config = self.config
        slots = self._loop_state().slots[state.name]
        limiter, gate, budget = state.limiter, state.gate, self.budget
        prompt_estimate = estimate_tokens(request.messages) if limiter.active or budget.active else 0
        estimate = prompt_estimate + request.max_tokens if limiter.active else 0
        attempts = 0
        service_s = 0.0
        deadline: float | None = None
        if budget.exhausted is not None:  # nothing more is sent once the budget said no
            return self._fail(state, "budget_exhausted", budget.exhausted, attempts, started)
        while True:
            if state.breaker.state == "open":
                result = self._fail(state, "circuit_open",
                                    state.circuit_open_detail(config.breaker_cooldown_s), attempts, started)
                result.service_s = service_s
                return result
            if not slots.take_now():
                await slots.take()
            held: list[tuple[int, float]] = []  # the budget's estimate of the call in flight
            try:
                if deadline is None:
                    deadline = time.monotonic() + config.deadline_s
                quota_spent = False
                while True:  # until something was sent (a window that opens at send time loops back)
                    if gate.is_open() and (quota_spent or not limiter.active):
                        waited_out = None  # nothing can hold the call: no coroutine, no await
                    else:
                        waited_out, quota_spent = await self._wait_to_send(
                            state, estimate, quota_spent, deadline, attempts, started)
                    if waited_out is not None:
                        waited_out.service_s = service_s
                        return waited_out
                    # no await between the checks below and the send
                    now = time.monotonic()
                    if now >= deadline:
                        result = self._fail(state, "deadline_exceeded", None, attempts, started)
                        result.service_s = service_s
                        return result
                    if budget.active and not held:
                        admitted = budget.admit(state.backend.model, prompt_estimate, request.max_tokens)
                        if isinstance(admitted, str):
                            result = self._fail(state, "budget_exhausted", admitted, attempts, started)
                            result.service_s = service_s
                            return result
                        held.append(admitted)
                    if not state.breaker.allow(now=now):
                        result = self._fail(state, "circuit_open", state.circuit_open_detail(),
                                            attempts, started)
                        result.service_s = service_s
                        return result
                    attempts += 1
                    outcome = await self._attempt(state, request, min(state.timeout_s, deadline - now),
                                                  attempts, started)
                    service_s += time.monotonic() - now
                    if outcome.unsent_wait_s is None:
                        break
                    # A window opened while the backend got its connection: nothing was sent, so
                    # it is no attempt and says nothing about health. Wait for the window (the
                    # gate that said so is normally this one; close_for keeps the later end).
                    attempts -= 1
                    gate.close_for(outcome.unsent_wait_s)
                if outcome.final is not None:
                    outcome.final.service_s = service_s
                    return outcome.final
                if outcome.completion is not None:
                    if held and outcome.completion.usage is not None:
                        budget.observe(state.backend.model, prompt_estimate,
                                       outcome.completion.usage.prompt_tokens)
                    result = self._succeeded(state, outcome.completion, estimate, attempts, started)
                    result.service_s = service_s
                    return result
                delay = self._retry_delay(state, outcome, attempts, deadline, started)
                if isinstance(delay, CallResult):
                    delay.service_s = service_s
                    return delay
            finally:
                for estimate_held in held:  # after the real usage is counted
                    budget.release(estimate_held)
                slots.give()
            if delay > 0:
                await asyncio.sleep(delay)  # outside the slot: other calls go on meanwhile

    async def _wait_to_send(self, state: _BackendState, estimate: int, quota_spent: bool, deadline: float,
                            attempts: int, started: float) -> tuple[CallResult | None, bool]:
        """Wait out the Retry-After gate and take the RPM / TPM quota (once per send).

        Returns (a failed CallResult when the deadline comes first, else None; whether the quota
        is spent). It returns without awaiting once nothing holds the call, so the caller's
        checks and send happen in the same step of the event loop.
        """
        while True:
            wait = state.gate.release_delay(self._rng, self.config.retry_after_jitter_s)
            if wait > 0:
                if time.monotonic() + state.gate.remaining() > deadline:
                    return self._fail(state, "deadline_exceeded", "waiting for Retry-After",
                                      attempts, started), quota_spent
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                continue
            if state.limiter.active and not quota_spent:
                await state.limiter.acquire(estimate)
                quota_spent = True
                continue
            return None, quota_spent

    async def _attempt(self, state: _BackendState, request: CompletionRequest, limit: float,
                       attempts: int, started: float) -> _Outcome:
        """Send once, bounded by `limit`; classify what came back (and update breaker, gate, stats)."""
        try:
            async with _timeout(limit):
                return _Outcome(completion=await state.backend.complete(request))
        except SendGateClosed as exc:
            state.breaker.release_probe()
            return _Outcome(unsent_wait_s=exc.wait_s)
        except asyncio.CancelledError:
            state.breaker.release_probe()  # the caller went away; the outcome is unknown
            raise
        except asyncio.TimeoutError:
            state.breaker.record(False)
            state.last_failure = f"timeout: no answer within {limit:g}s"
            if limit < state.timeout_s:
                self.stats.count_attempt("deadline_exceeded")
                return _Outcome(final=self._fail(state, "deadline_exceeded", f"after {attempts} attempt(s)",
                                                 attempts, started))
            self.stats.count_attempt("timeout")
            return _Outcome(reason="timeout", detail=f"no answer within {limit:g}s")
        except FatalBackendError as exc:
            state.breaker.release_probe()
            reason = error_reason(exc)
            self.stats.count_attempt(reason)
            self.stats.count_result(model=state.backend.model, usage=None,
                                    latency_s=time.monotonic() - started, error_reason=reason)
            if exc.status in STICKY_FATAL_STATUSES:
                state.fatal = exc
            raise
        except BackendError as exc:
            reason, detail = error_reason(exc), str(exc)
            self.stats.count_attempt(reason)
            if exc.status == 429:
                state.breaker.release_probe()  # rate limiting says nothing about health
            elif reason in PROMPT_REASONS:
                state.breaker.record(True)  # the server answered: it refused this prompt, and is up
            else:
                state.breaker.record(False)
                state.last_failure = _format_error(reason, detail)
            if exc.retry_after is not None:
                if exc.retry_after > self.config.retry_after_cap_s:
                    # Only this call fails: a pause this long is not worth waiting for,
                    # and the gate stays as it is, so no other call is held by it.
                    return _Outcome(final=self._fail(
                        state, "retry_after_too_long", f"{reason}: server asked to wait "
                        f"{exc.retry_after:g}s, over the cap of {self.config.retry_after_cap_s:g}s",
                        attempts, started))
                # Close the gate before anything else can run: no other call of this
                # backend may be sent inside the window.
                state.gate.close_for(max(0.0, exc.retry_after))
            if not exc.retryable:
                return _Outcome(final=self._fail(state, reason, detail, attempts, started))
            return _Outcome(reason=reason, detail=detail, retry_after=exc.retry_after)

    def _succeeded(self, state: _BackendState, completion: Completion, estimate: int, attempts: int,
                   started: float) -> CallResult:
        state.breaker.record(True)
        self.stats.count_attempt()
        actual = completion.usage.total_tokens if completion.usage else 0
        state.limiter.correct(estimate, actual or estimate)
        latency = time.monotonic() - started
        self.stats.count_result(model=state.backend.model, usage=completion.usage,
                                latency_s=latency, error_reason=None)
        return CallResult(completion, attempts=attempts, latency_s=latency)

    def _retry_delay(self, state: _BackendState, outcome: _Outcome, attempts: int, deadline: float,
                     started: float) -> float | CallResult:
        """After a retryable failure: the delay before the next attempt, or the final failure."""
        config = self.config
        if attempts >= config.max_attempts:
            return self._fail(state, outcome.reason, f"{outcome.detail} (after {attempts} attempts)",
                              attempts, started)
        if outcome.retry_after is not None:
            delay = 0.0  # the gate holds this call, and every other one, for the window
        else:
            ceiling = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempts - 1))
            delay = self._rng.uniform(0.0, ceiling)
        if time.monotonic() + max(delay, state.gate.remaining()) > deadline:
            return self._fail(state, "deadline_exceeded",
                              f"{outcome.detail} (after {attempts} attempts)", attempts, started)
        return delay


#: the name before the runtime served policy sampling too; kept for one release
JudgeRuntime = ModelRuntime
