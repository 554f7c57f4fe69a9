"""The one seam between judgerl and a model: `Backend.complete(request) -> Completion`.

A backend is the only code that talks to a model. It does one attempt per call and says, by the
`BackendError` it raises, whether a retry could help; the runtime (reward/runtime.py) decides
whether and when to retry. Nothing else retries.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class CompletionRequest:
    """One chat completion to make. Fields that change the output are part of the cache key."""

    messages: list[dict[str, str]]
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    json_mode: bool = False
    response_schema: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    # Ask for the log-probabilities of these continuations of the prompt (probability-weighted
    # judging). Backends that can score candidates directly (the local one) use them; others
    # fall back to `top_logprobs` of the first generated token.
    candidate_tokens: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Who asks (the judge's name): for the journal, per-judge accounting and dry runs. It does
    # not change the output, so it is not part of the cache key and never sent to a model.
    tag: str = ""

    def cache_payload(self) -> dict[str, Any]:
        """Everything that changes the output, and nothing that does not.

        A shallow dict (the values are shared, not copied): it is only serialised for the cache
        key, and `asdict`'s deep copy cost ~3x as much per judgment."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "tag"}

    def fingerprint(self) -> str:
        """A stable hash of the rendered messages (the journal's prompt hash)."""
        blob = json.dumps(self.messages, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives at that position."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = "stop"
    logprobs: list[TokenLogprob] | None = None
    # Log-probabilities of `request.candidate_tokens` at the first answer position, when asked.
    candidate_logprobs: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        usage = Usage(**data.get("usage") or {})
        logprobs = [TokenLogprob(**item) for item in data["logprobs"]] if data.get("logprobs") else None
        return cls(text=data["text"], model=data["model"], usage=usage,
                   finish_reason=data.get("finish_reason"), logprobs=logprobs,
                   candidate_logprobs=data.get("candidate_logprobs"))


class Backend(ABC):
    """A model endpoint. Subclasses make exactly one attempt per `complete` call.

    `send_gate`, when set (the runtime sets it to its Retry-After gate's `check_open`), is called
    by the backend immediately before a request is written, after any wait for a connection or
    a worker; it raises `SendGateClosed` while the server's Retry-After window is open, and the
    backend then sends nothing. Backends call it through `check_send_gate()`.
    """

    #: short kind name ("openai", "scripted", "local", "bedrock"), part of the cache key
    kind: str = "backend"
    send_gate: Callable[[], None] | None = None

    def __init__(self, model: str, *, max_concurrency: int = 16) -> None:
        self.model = model
        self.max_concurrency = max_concurrency

    def check_send_gate(self) -> None:
        """Raise `SendGateClosed` if a Retry-After window is open (see `send_gate`)."""
        if self.send_gate is not None:
            self.send_gate()

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Make one attempt. Raise `BackendError` (retryable or not) on failure."""

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this backend's outputs in the cache (not URLs or keys)."""
        return {"kind": self.kind, "model": self.model}

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections. Safe to call twice."""
