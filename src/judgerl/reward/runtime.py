"""The reward runtime: every judge call in the process goes through one `JudgeRuntime`.

Why one place: concurrency limits, rate limits, retries, the circuit breaker, the cache, the
journal and the accounting only work if no call goes around them. Judges ask
`runtime.complete(backend_name, request)` and get a `CallResult`; a failure that retrying
cannot fix in time comes back as `CallResult(completion=None, error=...)` so that the judge
can report "unscored" with the reason. A fatal error (bad request, bad key, unknown model)
raises `FatalBackendError`, because every other call would fail the same way.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from judgerl.backends.base import Backend, Completion, CompletionRequest
from judgerl.config import RuntimeConfig
from judgerl.errors import BackendError, ConfigError, FatalBackendError


@dataclass
class CallResult:
    """The outcome of one logical call (possibly several HTTP attempts)."""

    completion: Completion | None
    error: str | None = None
    attempts: int = 1
    latency_s: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.completion is not None


class JudgeRuntime:
    """Makes model calls for judges under the configured limits."""

    def __init__(self, backends: dict[str, Backend], config: RuntimeConfig | None = None) -> None:
        self.backends = backends
        self.config = config or RuntimeConfig()
        self._semaphores = {name: asyncio.Semaphore(backend.max_concurrency)
                            for name, backend in backends.items()}
        self.journal_entries: list[dict[str, Any]] = []

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            raise ConfigError(f"unknown backend '{name}'; known: {sorted(self.backends)}",
                              field="backend")
        return self.backends[name]

    async def complete(self, backend_name: str, request: CompletionRequest) -> CallResult:
        backend = self.backend(backend_name)
        started = time.monotonic()
        async with self._semaphores[backend_name]:
            try:
                completion = await backend.complete(request)
            except FatalBackendError:
                raise
            except BackendError as exc:
                return CallResult(None, error=str(exc), latency_s=time.monotonic() - started)
        return CallResult(completion, latency_s=time.monotonic() - started)

    def record(self, entry: dict[str, Any]) -> None:
        """Keep one judgment's record (the journal)."""
        self.journal_entries.append(entry)

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
