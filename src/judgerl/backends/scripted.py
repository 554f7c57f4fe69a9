"""A deterministic, offline backend for tests and `--dry-run`: answers come from a function.

It is not a model and says so in its name. It lets every layer above the backend be tested
without a network, and lets users try a config end to end before they pay for a judge.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from judgerl.backends.base import Backend, BackendLimits, BackendOptions, Completion, CompletionRequest, Usage
from judgerl.config import BackendConfig
from judgerl.errors import ConfigError

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

    class Options(BackendOptions):
        answer: str | dict[str, Any] | list[Any] = Field(
            default="", description="the answer to every request: a string, or a mapping sent as JSON")
        latency_s: float = Field(default=0.0, ge=0, description="a fixed delay per call")
        responder: str | None = Field(
            default=None, description="'file.py:function' (relative to the config) or "
            "'package.module:function': a function of the request that writes each answer, "
            "instead of `answer` (a scripted judge that reads the request; still not a model)")

    def __init__(self, responder: Responder, *, model: str = "scripted", latency_s: float = 0.0,
                 max_concurrency: int = 64, keep_calls: int = 10_000,
                 limits: BackendLimits | None = None) -> None:
        super().__init__(model, max_concurrency=max_concurrency, limits=limits)
        self.responder = responder
        self.latency_s = latency_s
        self.keep_calls = keep_calls
        self.calls: list[CompletionRequest] = []

    @classmethod
    def from_config(cls, config: BackendConfig, base_dir: str | Path | None = None) -> ScriptedBackend:
        """`type: scripted` with options `answer` and `latency_s`."""
        options = cls.Options.of(config)
        responder = (constant_responder(options.answer) if options.responder is None
                     else load_responder(options.responder, base_dir, field="responder"))
        return cls(responder, model=config.model or "scripted",
                   latency_s=options.latency_s, max_concurrency=config.max_concurrency,
                   limits=BackendLimits.from_config(config))

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


def load_responder(spec: str, base_dir: str | Path | None, *, field: str) -> Responder:
    """The function `spec` names: `file.py:function` (relative to `base_dir`) or `module:function`."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ConfigError(f"{spec!r} is not 'file.py:function' or 'package.module:function'", field=field)
    if where.endswith(".py"):
        file = Path(where) if base_dir is None or Path(where).is_absolute() else Path(base_dir) / where
        if not file.is_file():
            raise ConfigError(f"no file {file}", field=field)
        module_name = "judgerl_scripted_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"cannot import {file}", field=field)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ConfigError(f"cannot import {where}: {exc}", field=field) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{where} has no function {name!r}", field=field)
    return function  # type: ignore[no-any-return]


def constant_responder(answer: str | dict[str, Any] | list[Any]) -> Responder:
    """A responder that always gives the same answer (a dict is sent as JSON).

    >>> constant_responder({"score": 1})(None)
    '{"score": 1}'
    """
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return lambda _request: text
