"""Moved to `judgerl.runtime.journal`; this path re-exports it for one release."""

from judgerl.runtime.journal import (  # noqa: F401
    Journal,
    read_journal,
)
