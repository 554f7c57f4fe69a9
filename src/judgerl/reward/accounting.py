"""Moved to `judgerl.runtime.accounting`; this path re-exports it for one release."""

from judgerl.runtime.accounting import (  # noqa: F401
    LATENCY_WINDOW,
    RuntimeStats,
    percentile,
)
