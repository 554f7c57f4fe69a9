"""The `local` backend: `LocalBackend` (options, loading, requests to the engine) and the process-wide
registry of engines (`get_engine`: one per model folder, dtype and device, shared by every backend
on that model)."""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import Field

from judgerl.backends.base import Backend, BackendLimits, BackendOptions, Completion, CompletionRequest
from judgerl.backends.local.engine import (
    DEFAULT_PREFIX_CACHE_TOKENS,
    DTYPES,
    STOP_TIMEOUT_S,
    Job,
    LocalEngine,
)
from judgerl.config import BackendConfig
from judgerl.errors import ConfigError, FatalBackendError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------- sharing

_ENGINES: dict[tuple[str, str, str], LocalEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(model: str, *, dtype: str = "float32", device: str = "cpu", max_batch_size: int = 8,
               threads: int | None = None,
               prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS) -> LocalEngine:
    """The process-wide engine for this model, dtype and device (loaded on first use). Backends
    that share it get the largest batch size and prefix cache budget any of them asked for."""
    from judgerl.models import resolve_model

    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, not {dtype!r}", field="dtype")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    path = resolve_model(model)
    key = (str(path.resolve()), dtype, device)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = LocalEngine(path, dtype=dtype, device=device, max_batch_size=max_batch_size,
                                 prefix_cache_tokens=prefix_cache_tokens)
            _ENGINES[key] = engine
            log.info("loaded %s (%s, %s) in %.1fs", path, dtype, device, engine.load_s)
        engine.max_batch_size = max(engine.max_batch_size, max_batch_size)
        engine.prefix_store.max_tokens = max(engine.prefix_store.max_tokens, prefix_cache_tokens)
        return engine


@atexit.register
def stop_engines() -> None:
    """Stop every engine's worker before the interpreter tears down (see `LocalEngine.stop`)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
    for engine in engines:
        if not engine.stop():
            log.warning("the local engine on %s did not stop within %.0f s", engine.path, STOP_TIMEOUT_S)


def loaded_engines() -> dict[tuple[str, str, str], LocalEngine]:
    """The engines loaded in this process (for stats and tests)."""
    return dict(_ENGINES)


class LocalOptions(BackendOptions):
    """The options of a `local` backend (see `LocalBackend`)."""

    dtype: str = Field(default="float32", description=f"one of {DTYPES}")
    device: str = Field(default="cpu", description="torch device")
    max_batch_wait_s: float = Field(default=0.01, ge=0, description="a batch waits this long for more")
    threads: int | None = Field(default=None, ge=1, description="torch intra-op threads (process-wide)")
    chat_template: bool = Field(default=True, description="false: prompts as plain text")
    prefix_cache_tokens: int = Field(default=DEFAULT_PREFIX_CACHE_TOKENS, ge=0,
                                     description="prefix KV cache budget in tokens (0: no prefix reuse)")


class LocalBackend(Backend):
    """A model run in-process by transformers; see the module docstring.

    `model`: a packaged model name (`smollm2-135m-instruct`), a `.gguf` file or a Hugging Face
    folder. `max_concurrency` is also the largest batch. `max_batch_wait_s`: how long the first
    request of a batch waits for others to join it. `threads`: torch intra-op threads (process-wide).
    `chat_template`: false sends prompts as plain text unless a request's `extra` says otherwise
    (small models judged better without it, see docs/guides/backends.md). `prefix_cache_tokens`: budget of the
    prefix KV cache in tokens (0 disables prefix reuse; backends sharing a model get the largest).
    """

    kind = "local"
    Options = LocalOptions

    def __init__(self, model: str = "smollm2-135m-instruct", *, max_concurrency: int = 8,
                 dtype: str = "float32", device: str = "cpu", max_batch_wait_s: float = 0.01,
                 threads: int | None = None, chat_template: bool = True,
                 prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS,
                 limits: BackendLimits | None = None) -> None:
        super().__init__(model, max_concurrency=max_concurrency, limits=limits)
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, not {dtype!r}", field="dtype")
        if max_batch_wait_s < 0:
            raise ConfigError("max_batch_wait_s must be >= 0", field="max_batch_wait_s")
        if prefix_cache_tokens < 0:
            raise ConfigError("prefix_cache_tokens must be >= 0 (0 disables prefix reuse)",
                              field="prefix_cache_tokens")
        self.dtype = dtype
        self.device = device
        self.max_batch_wait_s = max_batch_wait_s
        self.threads = threads
        self.chat_template = chat_template
        self.prefix_cache_tokens = prefix_cache_tokens
        self._engine: LocalEngine | None = None

    @classmethod
    def from_config(cls, config: BackendConfig, base_dir: str | Path | None = None) -> LocalBackend:
        """Build from a `backends:` entry: `type: local`, `model`, and the options above.

        A relative `model` path is taken from `base_dir` (the reward config's folder) when it names
        a file or folder there; anything else (a packaged name, a cached hub id) is passed on as is.
        """
        options = cls.Options.of(config)
        from judgerl.models import DEFAULT_JUDGE_MODEL

        return cls(model_beside(config.model or DEFAULT_JUDGE_MODEL, base_dir),
                   max_concurrency=config.max_concurrency, **options.model_dump(),
                   limits=BackendLimits.from_config(config, timeout_by_default=False))

    def load(self) -> LocalEngine:
        """Load (or join) the shared engine now; `complete` does this on its first call."""
        if self._engine is None:
            try:
                self._engine = get_engine(self.model, dtype=self.dtype, device=self.device,
                                          max_batch_size=self.max_concurrency, threads=self.threads,
                                          prefix_cache_tokens=self.prefix_cache_tokens)
            except ConfigError as exc:
                raise FatalBackendError(f"local model '{self.model}': {exc}") from exc
        return self._engine

    @property
    def stats(self) -> dict[str, Any]:
        """Requests, forward passes, batch sizes, tokens and prefix cache use of the (shared) engine."""
        engine = self.load()
        return {**engine.stats.snapshot(), "prefix_cache_entries": len(engine.prefix_store),
                "prefix_cache_tokens": engine.prefix_store.tokens,
                "prefix_cache_bytes": engine.prefix_cache_bytes}

    def render(self, request: CompletionRequest) -> str:
        """The exact prompt text the model sees for `request`."""
        return self.load().render(request, self.chat_template)

    async def complete(self, request: CompletionRequest) -> Completion:
        engine = self._engine or await asyncio.to_thread(self.load)
        loop = asyncio.get_running_loop()
        job = Job(request, loop, loop.create_future(), self.max_batch_wait_s, self.chat_template)
        engine.submit(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancelled = True  # not started yet: the worker skips it
            raise

    def cache_identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "dtype": self.dtype,
                "chat_template": self.chat_template}


def model_beside(model: str, base_dir: str | Path | None) -> str:
    """`model` as a path under `base_dir` when it is a relative path that exists there, else as is.

    >>> model_beside("smollm2-135m-instruct", "/nowhere")
    'smollm2-135m-instruct'
    """
    if base_dir is None or Path(model).is_absolute():
        return model
    candidate = Path(base_dir) / model
    return str(candidate.resolve()) if candidate.exists() else model
