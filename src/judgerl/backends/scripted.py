"""A deterministic, offline backend for tests and `--dry-run`: answers come from a function.

It is not a model and says so in its name. It lets every layer above the backend be tested
without a network, and lets users try a config end to end before they pay for a judge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from judgerl.backends.base import Backend, Completion, CompletionRequest, Usage

Responder = Callable[[CompletionRequest], "str | Completion | Awaitable[str | Completion]"]


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedBackend(Backend):
    """Answers each request with `responder(request)`: a string or a full `Completion`.

    `responder` may be sync or async and may raise `BackendError` to script failures.
    `latency_s` adds a fixed delay per call. `calls` keeps the requests received, the most recent
    `keep_calls` of them (a long `--dry-run` or server run must not grow without bound).
    """

    kind = "scripted"

    def __init__(self, responder: Responder, *, model: str = "scripted", latency_s: float = 0.0,
                 max_concurrency: int = 64, keep_calls: int = 10_000) -> None:
        super().__init__(model, max_concurrency=max_concurrency)
        self.responder = responder
        self.latency_s = latency_s
        self.keep_calls = keep_calls
        self.calls: list[CompletionRequest] = []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.check_send_gate()
        self.calls.append(request)
        if len(self.calls) > self.keep_calls:
            del self.calls[: len(self.calls) - self.keep_calls]
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        answer = self.responder(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, Completion):
            return answer
        prompt_text = " ".join(message.get("content", "") for message in request.messages)
        return Completion(text=str(answer), model=self.model,
                          usage=Usage(_approx_tokens(prompt_text), _approx_tokens(str(answer))))


def constant_responder(answer: str | dict[str, Any]) -> Responder:
    """A responder that always gives the same answer (a dict is sent as JSON).

    >>> constant_responder({"score": 1})(None)
    '{"score": 1}'
    """
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return lambda _request: text
