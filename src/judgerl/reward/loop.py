"""Moved to `judgerl.runtime.loop`; this path re-exports it for one release."""

from judgerl.runtime.loop import (  # noqa: F401
    CLOSE_TIMEOUT_S,
    LoopThread,
)
