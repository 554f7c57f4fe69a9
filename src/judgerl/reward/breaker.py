"""Moved to `judgerl.runtime.breaker`; this path re-exports it for one release."""

from judgerl.runtime.breaker import (  # noqa: F401
    CircuitBreaker,
)
