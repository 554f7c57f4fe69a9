"""The one seam between judgerl and a model: `Backend.complete(request) -> Completion`.

A backend is the only code that talks to a model. It does one attempt per call and says, by the
`BackendError` it raises, whether a retry could help; the runtime (runtime/model_runtime.py) decides
whether and when to retry. Nothing else retries.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import Self

from judgerl.config import BackendConfig
from judgerl.errors import ConfigError


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
    # Whose answer this is in the cache and the in-flight dedup, when two askers must not share
    # one (a panel's members: `<panel>/<member>`). Never sent to a model; part of the cache key
    # only when set, so the keys of every other call are unchanged.
    cache_scope: str = ""

    def cache_payload(self) -> dict[str, Any]:
        """Everything that changes the output (and the cache scope, when set), nothing else.

        A shallow dict (the values are shared, not copied): it is only serialised for the cache
        key, and `asdict`'s deep copy cost ~3x as much per judgment."""
        return {item.name: getattr(self, item.name) for item in fields(self)
                if item.name != "tag" and (item.name != "cache_scope" or self.cache_scope)}

    def fingerprint(self) -> str:
        """A stable hash of the rendered messages (the journal's prompt hash)."""
        blob = json.dumps(self.messages, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def render_prompt(request: CompletionRequest, tokenizer: Any = None) -> str:
    """The exact prompt text a model sees for `request`, from one place for every backend that
    renders prompts itself (the local engine, the OpenAI-compatible `completions` endpoint) and for
    the distilled student's training prompts, which must be exactly what the local engine will show it.

    Without a `tokenizer` (or one without a chat template): the message contents joined by blank
    lines; with one: its chat template, continuing a final assistant message or opening the
    assistant's turn. `request.extra["assistant_prefix"]` is appended either way.

    >>> print(render_prompt(CompletionRequest([{"role": "system", "content": "Judge."},
    ...                                        {"role": "user", "content": "Is 2+2=4?"}])))
    Judge.
    <BLANKLINE>
    Is 2+2=4?
    """
    messages = [{"role": m["role"], "content": m["content"]} for m in request.messages]
    prefix = str(request.extra.get("assistant_prefix") or "")
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return "\n\n".join(m["content"] for m in messages) + prefix
    if messages and messages[-1]["role"] == "assistant":
        text = tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    else:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return str(text) + prefix


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


class BackendLimits(BaseModel):
    """The limits the runtime enforces on a backend's calls: the backend declares them, the runtime
    (runtime/model_runtime.py) reads them. `timeout_s` None: no per-attempt timeout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: float | None = Field(default=None, gt=0, description="requests per minute")
    tpm: float | None = Field(default=None, gt=0, description="tokens per minute")
    timeout_s: float | None = Field(default=None, gt=0, description="per-attempt timeout")

    @classmethod
    def from_config(cls, config: BackendConfig, *, timeout_by_default: bool = True) -> BackendLimits:
        """The config's limits; `timeout_by_default=False` takes `timeout_s` only when the config
        sets it (an in-process model has no timeout unless asked: a slow CPU batch is not a hung
        server)."""
        explicit = "timeout_s" in config.model_fields_set
        return cls(rpm=config.rpm, tpm=config.tpm,
                   timeout_s=config.timeout_s if timeout_by_default or explicit else None)


class BackendOptions(BaseModel):
    """Base of each backend type's own options (the keys of a `backends:` entry beyond
    `BackendConfig`'s fields): an unknown or bad option is a `ConfigError` naming it."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, config: BackendConfig) -> Self:
        """The options of `config`, validated.

        >>> BackendOptions.of(BackendConfig(type="scripted", colour="red"))
        Traceback (most recent call last):
        ...
        judgerl.errors.ConfigError: field 'colour': unknown option for a scripted backend; known: []
        """
        try:
            return cls.model_validate(config.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            if first["type"] == "extra_forbidden":
                known = sorted(cls.model_fields)
                raise ConfigError(f"unknown option for a {config.type} backend; known: {known}",
                                  field=field) from exc
            raise ConfigError(str(first["msg"]).removeprefix("Value error, "), field=field) from exc


class Backend(ABC):
    """A model endpoint. Subclasses make exactly one attempt per `complete` call.

    A type that a config can name declares its `Options` and builds itself in `from_config`;
    `judgerl.backends.BACKEND_TYPES` maps the config's `type` to the class.

    `send_gate`, when set (the runtime sets it to its Retry-After gate's `check_open`), is called
    by the backend immediately before a request is written, after any wait for a connection or
    a worker; it raises `SendGateClosed` while the server's Retry-After window is open, and the
    backend then sends nothing. Backends call it through `check_send_gate()`.
    """

    #: short kind name ("openai", "scripted", "local", "bedrock"), part of the cache key
    kind: str = "backend"
    #: the type's own options, validated by `from_config`
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    send_gate: Callable[[], None] | None = None
    #: whether a logprob judge's candidate string is scored whole, however many tokens it is (the
    #: local backend reads each token's probability); false for an API, which returns the top
    #: log-probabilities of the first generated token only: a candidate must then be one token
    scores_whole_candidates: ClassVar[bool] = True

    def __init__(self, model: str, *, max_concurrency: int = 16, limits: BackendLimits | None = None) -> None:
        self.model = model
        self.max_concurrency = max_concurrency
        self.limits = limits or BackendLimits()

    @classmethod
    def from_config(cls, config: BackendConfig, base_dir: str | Path | None = None) -> Backend:
        """Build from a `backends:` entry; `base_dir` (the config's folder) resolves relative paths."""
        raise ConfigError(f"a {cls.__name__} cannot be built from a config", field="type")

    def check_send_gate(self) -> None:
        """Raise `SendGateClosed` if a Retry-After window is open (see `send_gate`)."""
        if self.send_gate is not None:
            self.send_gate()

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """Make one attempt. Raise `BackendError` (retryable or not) on failure."""

    async def token_pieces(self, text: str) -> list[str] | None:
        """The tokens `text` splits into for this backend's model; None when it cannot tell.

        Read by the verdict-token check (judges/verdict_tokens.py) when `scores_whole_candidates`
        is false."""
        return None

    def cache_identity(self) -> dict[str, Any]:
        """What identifies this backend's outputs in the cache (not URLs or keys)."""
        return {"kind": self.kind, "model": self.model}

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections. Safe to call twice."""
