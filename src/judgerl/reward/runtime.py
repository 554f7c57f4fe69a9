"""Moved to `judgerl.runtime.model_runtime`; this path re-exports it for one release."""

from judgerl.runtime.model_runtime import (  # noqa: F401
    STICKY_FATAL_STATUSES,
    CallResult,
    JudgeRuntime,
    ModelRuntime,
    error_reason,
)
