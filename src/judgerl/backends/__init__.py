"""Backends: the one seam between judgerl and a model, and `build_backend` to make one from config.

Why a registry: a reward config names a backend by `type`; this module maps the type to the
class and keeps heavy dependencies (torch for `local`, boto3 for `bedrock`) out of the import of
judgerl until a config asks for them.

Types: `openai` (aliases `vllm`, `ollama`, `llamacpp`, which default `base_url` to the server's
usual local port), `scripted` (options `answer`: a string, or a mapping sent as JSON, and
`latency_s`), `local` and `bedrock`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgerl.backends.base import Backend, Completion, CompletionRequest, TokenLogprob, Usage
from judgerl.config import BackendConfig
from judgerl.errors import ConfigError

OPENAI_TYPES = frozenset({"openai", "vllm", "ollama", "llamacpp"})
TYPES = sorted(OPENAI_TYPES | {"scripted", "local", "bedrock"})

__all__ = ["TYPES", "Backend", "Completion", "CompletionRequest", "TokenLogprob", "Usage", "build_backend"]


def _scripted(config: BackendConfig) -> Backend:
    from judgerl.backends.scripted import ScriptedBackend, constant_responder

    options = config.options
    unknown = sorted(set(options) - {"answer", "latency_s"})
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for a scripted backend; known: answer, latency_s",
                          field=unknown[0])
    answer: Any = options.get("answer", "")
    if not isinstance(answer, (str, dict, list)):
        raise ConfigError("must be a string or a mapping", field="answer")
    latency = options.get("latency_s", 0.0)
    if not isinstance(latency, (int, float)) or latency < 0:
        raise ConfigError("must be a number >= 0", field="latency_s")
    return ScriptedBackend(constant_responder(answer), model=config.model or "scripted",
                           latency_s=float(latency), max_concurrency=config.max_concurrency)


def build_backend(config: BackendConfig, base_dir: str | Path | None = None) -> Backend:
    """Make the backend a config describes. `base_dir` resolves relative paths (local models).

    The runtime reads `rpm`, `tpm` and `timeout_s` attributes of a backend for its rate limits
    and per-attempt timeout; they are set here from the config (for a `local` backend,
    `timeout_s` only when the config sets it).
    """
    kind = config.type
    backend: Backend
    if kind in OPENAI_TYPES:
        from judgerl.backends.openai_compat import OpenAICompatBackend

        backend = OpenAICompatBackend.from_config(config)
    elif kind == "scripted":
        backend = _scripted(config)
    elif kind == "local":
        from judgerl.backends.local import LocalBackend

        backend = LocalBackend.from_config(config, base_dir=base_dir)
    elif kind == "bedrock":
        try:
            from judgerl.backends.bedrock import BedrockBackend
        except ImportError as exc:
            raise ConfigError(f"the bedrock backend needs `pip install judgerl[bedrock]` ({exc})",
                              field="type") from exc
        backend = BedrockBackend.from_config(config)
    else:
        raise ConfigError(f"unknown backend type '{kind}'; known: {TYPES}", field="type")
    for field in ("rpm", "tpm", "timeout_s"):
        explicit = field in config.model_fields_set
        # An in-process model has no per-attempt timeout unless the config asks for one: a slow
        # CPU batch is not a hung server.
        default_ok = not (kind == "local" and field == "timeout_s")
        if explicit or (default_ok and getattr(backend, field, None) is None):
            setattr(backend, field, getattr(config, field))
    return backend
