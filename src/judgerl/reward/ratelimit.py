"""Moved to `judgerl.runtime.ratelimit`; this path re-exports it for one release."""

from judgerl.runtime.ratelimit import (  # noqa: F401
    RateLimiter,
    RetryAfterGate,
    TokenBucket,
    estimate_tokens,
)
