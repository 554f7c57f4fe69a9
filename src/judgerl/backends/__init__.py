"""Backends: the one seam between judgerl and a model, and `build_backend` to make one from config.

Why a registry: a reward config names a backend by `type`; `BACKEND_TYPES` maps the type to the
class (as "module:Class", imported when a config asks for it, so that torch for `local` and boto3
for `bedrock` stay out of `import judgerl`). Each class declares its options as a pydantic
`Options` model and builds itself in `from_config`, with the limits the runtime enforces
(`rpm`, `tpm`, `timeout_s`) as its `limits`.

Types: `openai` (aliases `vllm`, `ollama`, `llamacpp`, which default `base_url` to the server's
usual local port), `scripted` (options `answer`: a string, or a mapping sent as JSON, and
`latency_s`), `local` and `bedrock`.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from judgerl.backends.base import (
    Backend,
    BackendLimits,
    BackendOptions,
    Completion,
    CompletionRequest,
    TokenLogprob,
    Usage,
)
from judgerl.config import BackendConfig
from judgerl.errors import ConfigError

_OPENAI = "judgerl.backends.openai_compat:OpenAICompatBackend"
BACKEND_TYPES: dict[str, str] = {
    "openai": _OPENAI,
    "vllm": _OPENAI,
    "ollama": _OPENAI,
    "llamacpp": _OPENAI,
    "scripted": "judgerl.backends.scripted:ScriptedBackend",
    "local": "judgerl.backends.local:LocalBackend",
    "bedrock": "judgerl.backends.bedrock:BedrockBackend",
}
TYPES = sorted(BACKEND_TYPES)
#: the extra that installs a type's dependencies
EXTRAS = {"local": "local", "bedrock": "bedrock"}

__all__ = ["BACKEND_TYPES", "TYPES", "Backend", "BackendLimits", "BackendOptions", "Completion",
           "CompletionRequest", "TokenLogprob", "Usage", "backend_class", "build_backend"]


def backend_class(kind: str) -> type[Backend]:
    """The class behind a backend `type`, imported now."""
    target = BACKEND_TYPES.get(kind)
    if target is None:
        raise ConfigError(f"unknown backend type '{kind}'; known: {TYPES}", field="type")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if kind not in EXTRAS:
            raise
        raise ConfigError(f"the {kind} backend needs `pip install judgerl[{EXTRAS[kind]}]` ({exc})",
                          field="type") from exc
    backend_type: type[Backend] = getattr(module, class_name)
    return backend_type


def build_backend(config: BackendConfig, base_dir: str | Path | None = None) -> Backend:
    """Make the backend a config describes. `base_dir` resolves relative paths (local models)."""
    return backend_class(config.type).from_config(config, base_dir)
