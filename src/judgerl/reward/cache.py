"""Moved to `judgerl.runtime.cache`; this path re-exports it for one release."""

from judgerl.runtime.cache import (  # noqa: F401
    KEY_VERSION,
    CompletionCache,
    cache_key,
)
