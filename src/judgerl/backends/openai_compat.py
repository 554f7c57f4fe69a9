"""The OpenAI-compatible chat-completions backend (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Why: nearly every judge endpoint speaks `POST {base_url}/chat/completions`. This module makes
exactly one attempt per call over one shared `aiohttp.ClientSession` per event loop
(`max_concurrency` keep-alive connections) and turns every failure into a `BackendError` that
says whether a retry can help, so that the runtime (runtime/model_runtime.py) can decide; it never
retries itself.

Why aiohttp and not httpx: the client's CPU per request decides how busy one event loop can
keep a judge. Measured on loopback with 64 calls in flight: httpx costs 1.7-2 ms of CPU per
request (5.7 ms with one 64-connection pool; its pure-Python h11 parser and its pool work),
aiohttp 0.4 ms (C HTTP parser). At a few hundred calls/s the httpx time, spent in bursts when
many answers arrive together, delayed each call by tens of ms (bench/reward_throughput.py).

Classification:

- 408, 409, 429, 5xx, connection errors, resets, timeouts: retryable, with the server's
  `retry-after-ms` / `Retry-After` (seconds or an HTTP-date) when given;
- 400, 401, 403, 404, 422: `FatalBackendError` with the server's own error text (every other call
  would fail the same way); except a 400 that says the prompt exceeds the context length, which
  only concerns that one request ("context_length", not retried, not fatal), and a 400 that
  refuses the prompt for its content (Azure's `content_filter`, OpenAI's `invalid_prompt`:
  "content_filter", not retried, not fatal);
- a 200 whose `finish_reason` is `content_filter` (the answer null or cut short by the server's
  filter): "content_filter", not retried; a 200 whose message is a `refusal` (structured
  outputs: the model declined this prompt): "refusal", not retried;
- a 200 with a body that is not JSON, is cut short, has no `choices` or no message content:
  retryable "bad_response";
- `finish_reason: "length"` is returned as is (`Completion.finish_reason == "length"`): the text
  may still be usable, and a judge whose parse then fails reports it as a parse failure (with a
  bounded re-ask) rather than the backend guessing.

Messages of errors start with the reason the runtime reports ("http_429: ...", "timeout: ...").

Structured verdicts (`structured_output`, the one switch): a judge that asks for JSON puts its
answer's JSON Schema on the request; `json_schema` (the default) sends it as
`response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`
(OpenAI, vLLM, SGLang, Ollama's /v1) or, for `type: llamacpp`, in llama.cpp's own form
`{"type": "json_object", "schema": ...}` (llama.cpp's server and llama-cpp-python's); `json_object`
sends `{"type": "json_object"}` (any JSON, no shape); `none` sends nothing. The old
`supports_json_mode` / `supports_json_schema` still work and map onto it.

Endpoints (`endpoint`): `chat` posts the messages to /chat/completions and the server applies the
model's chat template; `completions` renders the prompt here exactly as the `local` backend does
(plain text: the contents joined by blank lines; or, with `chat_template: true`, the `tokenizer`'s
own chat template) and posts it to /completions, so a judge validated in-process sees the same
text on a server of the same model.

Verdict tokens (`token_pieces`): an API returns the top log-probabilities of the first generated
token only, so a logprob judge's candidate must be one token. The split of a text is read from
the `tokenizer` option (a packaged model name, a .gguf file or a Hugging Face folder) when given,
else asked of the server (vLLM's and llama.cpp's `/tokenize`, llama-cpp-python's
`/extras/tokenize`); None when neither can tell.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
import httpx
from pydantic import Field, field_validator

from judgerl.backends.base import (
    Backend,
    BackendLimits,
    BackendOptions,
    Completion,
    CompletionRequest,
    TokenLogprob,
    Usage,
    render_prompt,
)
from judgerl.config import BackendConfig
from judgerl.errors import BackendError, ConfigError, FatalBackendError

RETRYABLE_STATUSES = frozenset({408, 409, 429})
FATAL_STATUSES = frozenset({400, 401, 403, 404, 422})
_CONTEXT_LENGTH = re.compile(r"context[ _]length|maximum context|too many tokens|prompt is too long", re.I)
# A 400 that refuses this one prompt for its content (Azure OpenAI's content filter, code
# `content_filter`; OpenAI's `invalid_prompt` "flagged as potentially violating our usage
# policy"): a policy's rollout can say anything, so this is that row's failure, not the run's.
_CONTENT_FILTER = re.compile(r"content[ _]filter|content management policy|flagged as potentially "
                             r"violating|\binvalid_prompt\b|ResponsibleAIPolicyViolation", re.I)
#: default base URLs of the aliases of type `openai`
DEFAULT_BASE_URLS = {
    "vllm": "http://127.0.0.1:8000/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "llamacpp": "http://127.0.0.1:8080/v1",
}


StructuredOutput = Literal["json_schema", "json_object", "none"]
Endpoint = Literal["chat", "completions"]


def resolve_structured_output(structured_output: str | None, supports_json_mode: bool | None,
                              supports_json_schema: bool | None) -> str:
    """The `structured_output` a backend uses, from the option or its two old aliases.

    >>> resolve_structured_output(None, None, None)
    'json_schema'
    >>> resolve_structured_output(None, True, False), resolve_structured_output(None, False, None)
    ('json_object', 'none')
    >>> resolve_structured_output("none", True, None)
    Traceback (most recent call last):
    ...
    judgerl.errors.ConfigError: field 'supports_json_mode': replaced by structured_output; give \
structured_output alone
    """
    legacy = supports_json_mode is not None or supports_json_schema is not None
    if structured_output is not None:
        if legacy:
            field = "supports_json_mode" if supports_json_mode is not None else "supports_json_schema"
            raise ConfigError("replaced by structured_output; give structured_output alone", field=field)
        return structured_output
    if not legacy:
        return "json_schema"
    if supports_json_mode is False:
        return "none"
    if supports_json_schema is False:
        return "json_object"
    return "json_schema"


class OpenAIOptions(BackendOptions):
    """The options of an `openai` / `vllm` / `ollama` / `llamacpp` backend."""

    base_url: str | None = Field(default=None, description="the /v1 URL (local servers: a default)")
    api_key: str | None = Field(default=None, description="the key itself (prefer api_key_env)")
    api_key_env: str | None = Field(default=None, description="environment variable holding the key")
    structured_output: StructuredOutput | None = Field(
        default=None, description="what a judge's JSON request sends: json_schema (default: the "
        "answer's schema, enforced by the server), json_object (any JSON) or none")
    supports_json_mode: bool | None = Field(default=None, description="old name: true is "
                                            "structured_output json_schema, false is none")
    supports_json_schema: bool | None = Field(default=None, description="old name: false (with "
                                              "supports_json_mode) is structured_output json_object")
    endpoint: Endpoint = Field(default="chat", description="chat: /chat/completions (the server's chat "
                               "template); completions: /completions with the prompt rendered here")
    chat_template: bool = Field(default=False, description="endpoint completions: render with the "
                                "tokenizer's chat template (needs `tokenizer`), as the local backend's "
                                "chat_template: true; false: plain text, as its chat_template: false")
    tokenizer: str | None = Field(default=None, description="the model's tokenizer here: a packaged "
                                  "model name, a .gguf file or a model folder (verdict-token checks, "
                                  "chat_template)")
    headers: dict[str, str] | None = Field(default=None, description="added to every request")
    extra_body: dict[str, Any] | None = Field(default=None, description="added to every request body")
    max_tokens_field: str = Field(default="max_tokens", description="max_tokens or max_completion_tokens")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (fractional ms) or `Retry-After` (seconds or HTTP-date).

    >>> parse_retry_after({"retry-after-ms": "250"})
    0.25
    >>> parse_retry_after({"Retry-After": "1.5"})
    1.5
    >>> parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0)
    10.0
    >>> parse_retry_after({"Retry-After": "soon"}) is None
    True
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = _finite_float(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000.0)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return max(0.0, seconds)
    date = email.utils.parsedate_tz(raw)
    if date is None:
        return None
    return max(0.0, email.utils.mktime_tz(date) - (time.time() if now is None else now))


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class HTTPAnswer:
    """One HTTP response, read in full: what the classification and the parsing look at."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    content: bytes
    reason: str = ""

    def json(self) -> Any:
        """The body as JSON (UTF-8/16/32 detected); raises ValueError when it is not JSON."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name
            return self.content.decode("utf-8", errors="replace")


def _server_message(response: HTTPAnswer) -> str:
    """The server's own error text (OpenAI `{"error": {"message"}}`, vLLM, Ollama, plain text)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if error.get(key):
                    return str(error[key])[:500]
        if isinstance(error, str):
            return error[:500]
        if body.get("detail"):
            return str(body["detail"])[:500]
    return json.dumps(body)[:500]


def environment_proxy(url: str) -> str | None:
    """The proxy that HTTP(S)_PROXY / ALL_PROXY / NO_PROXY name for `url`, as httpx would use it.

    Read once per session: aiohttp's own `trust_env` looks it up (and ~/.netrc) in a worker
    thread on every request, which costs more than the request.
    """
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or (parts.hostname and urllib.request.proxy_bypass_environment(parts.hostname, proxies)):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class _GatedConnector(aiohttp.TCPConnector):
    """A connector that checks the backend's Retry-After gate once the connection is in hand.

    Waiting for a pooled connection or opening a new one takes event-loop turns, during which
    another call's 429 can open a Retry-After window. Checking the gate here, after the
    connection is obtained and right before aiohttp writes the request, keeps such a request
    from going out inside the window: the connection goes back to the pool unused and the
    runtime waits for the window to end (`SendGateClosed`).
    """

    def __init__(self, *args: Any, send_check: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send_check = send_check

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        connection = await super().connect(req, traces, timeout)
        try:
            self._send_check()
        except BaseException:
            connection.release()  # unused and healthy: back to the pool
            raise
        return connection


def _logsumexp(values: list[float]) -> float:
    peak = max(values)
    return peak + math.log(sum(math.exp(value - peak) for value in values))


def _normalise_token(token: str) -> str:
    return token.strip().lstrip("Ġ▁").strip()


def candidate_logprobs(first: TokenLogprob, candidates: list[str]) -> dict[str, float]:
    """Log-probabilities of `candidates` at the first generated position, from its top list.

    Tokens that differ only by surrounding space (" PASS", "PASS") are summed. A candidate that
    is not among the top alternatives is left out (its probability is below the listed ones).

    >>> first = TokenLogprob("PASS", -0.2, {"PASS": -0.2, " PASS": -3.0, "FAIL": -1.9})
    >>> {key: round(value, 3) for key, value in candidate_logprobs(first, ["PASS", "FAIL", "N/A"]).items()}
    {'PASS': -0.141, 'FAIL': -1.9}
    """
    alternatives = dict(first.top)
    alternatives.setdefault(first.token, first.logprob)
    found: dict[str, float] = {}
    for candidate in candidates:
        wanted = _normalise_token(candidate)
        matches = [logprob for token, logprob in alternatives.items() if _normalise_token(token) == wanted]
        if matches:
            found[candidate] = _logsumexp(matches)
    return found


class OpenAICompatBackend(Backend):
    """Chat (or text) completions over HTTP. One attempt per `complete` call.

    Connections: at most `max_concurrency`, kept alive, in one `aiohttp.TCPConnector` per event
    loop. Timeouts as before with httpx: `timeout_s` bounds the wait for a connection slot and
    each read of the answer; connecting is bounded by min(`timeout_s`, 10 s). The environment's
    HTTP(S)_PROXY / NO_PROXY and SSL_CERT_FILE / SSL_CERT_DIR are honoured.

    `api_key` or `api_key_env` (the name of an environment variable) sets a bearer token.
    `structured_output` decides what a JSON request sends (`response_format`, see the module
    docstring); `endpoint` chat or completions, `chat_template` and `tokenizer` likewise. `headers` and
    `extra_body` are added to every request, and `request.extra` to that request's body (both are
    part of the cache key). `trace_configs` (aiohttp `TraceConfig`s) let a probe watch every
    request that goes out, below the runtime (the throughput benchmark counts requests sent
    inside a Retry-After window with one).
    """

    kind = "openai"
    Options = OpenAIOptions
    scores_whole_candidates = False  # the API gives the first generated token's alternatives only

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 api_key_env: str | None = None, timeout_s: float = 60.0, max_concurrency: int = 16,
                 structured_output: str | None = None, supports_json_mode: bool | None = None,
                 supports_json_schema: bool | None = None, server: str = "openai",
                 endpoint: str = "chat", chat_template: bool = False, tokenizer: str | None = None,
                 tokenizer_base_dir: str | Path | None = None,
                 headers: dict[str, str] | None = None, extra_body: dict[str, Any] | None = None,
                 max_tokens_field: str = "max_tokens", rpm: float | None = None, tpm: float | None = None,
                 trace_configs: Sequence[aiohttp.TraceConfig] | None = None) -> None:
        super().__init__(model, max_concurrency=max_concurrency,
                         limits=BackendLimits(rpm=rpm, tpm=tpm, timeout_s=timeout_s))
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}",
                              field="base_url")
        if api_key is None and api_key_env:
            # a key read from a file or a mounted secret often ends with a newline, which no
            # HTTP header may carry: every call would fail with a header-injection ValueError
            api_key = (os.environ.get(api_key_env) or "").strip()
            if not api_key:
                state = "is empty" if api_key_env in os.environ else "is not set"
                raise ConfigError(f"environment variable {api_key_env} {state}", field="api_key_env")
            if any(ord(character) < 32 or ord(character) == 127 for character in api_key):
                raise ConfigError(f"environment variable {api_key_env} holds a control character (a line "
                                  "break inside the key?): an HTTP header cannot carry it",
                                  field="api_key_env")
        self.base_url = base_url.rstrip("/")
        if endpoint not in ("chat", "completions"):
            raise ConfigError(f"endpoint must be chat or completions, got {endpoint!r}", field="endpoint")
        self.endpoint = endpoint
        self.url = f"{self.base_url}/{'chat/completions' if endpoint == 'chat' else 'completions'}"
        self.timeout_s = timeout_s
        self.structured_output = resolve_structured_output(structured_output, supports_json_mode,
                                                           supports_json_schema)
        self.server = server
        if chat_template and endpoint != "completions":
            raise ConfigError("chat_template is for endpoint: completions (the chat endpoint uses the "
                              "server's template)", field="chat_template")
        if chat_template and not tokenizer:
            raise ConfigError("chat_template: true renders with the model's own template here: give "
                              "`tokenizer` (a packaged model name, a .gguf file or a model folder)",
                              field="tokenizer")
        self.chat_template = chat_template
        self.tokenizer_spec = tokenizer
        self._tokenizer_base_dir = Path(tokenizer_base_dir) if tokenizer_base_dir else None
        self._tokenizer: Any = None
        self._pieces: dict[str, list[str] | None] = {}
        self.extra_body = dict(extra_body or {})
        self.max_tokens_field = max_tokens_field
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._trace_configs = list(trace_configs or [])
        self._proxy = environment_proxy(self.url)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(cls, config: BackendConfig, base_dir: str | Path | None = None, *,
                    trace_configs: Sequence[aiohttp.TraceConfig] | None = None) -> OpenAICompatBackend:
        """Build from a `BackendConfig` of type openai / vllm / ollama / llamacpp."""
        options = cls.Options.of(config)
        base_url = options.base_url or DEFAULT_BASE_URLS.get(config.type)
        if not base_url:
            raise ConfigError(f"a backend of type '{config.type}' needs base_url "
                              "(e.g. http://127.0.0.1:8000/v1)", field="base_url")
        if not config.model:
            raise ConfigError(f"a backend of type '{config.type}' needs a model name", field="model")
        return cls(base_url, config.model, api_key=options.api_key, api_key_env=options.api_key_env,
                   timeout_s=config.timeout_s, max_concurrency=config.max_concurrency,
                   structured_output=options.structured_output,
                   supports_json_mode=options.supports_json_mode,
                   supports_json_schema=options.supports_json_schema, server=config.type,
                   endpoint=options.endpoint, chat_template=options.chat_template,
                   tokenizer=options.tokenizer, tokenizer_base_dir=base_dir,
                   headers=options.headers, extra_body=options.extra_body,
                   max_tokens_field=options.max_tokens_field,
                   rpm=config.rpm, tpm=config.tpm, trace_configs=trace_configs)

    def cache_identity(self) -> dict[str, Any]:
        identity = {"kind": self.kind, "model": self.model, "structured_output": self.structured_output,
                    "extra_body": self.extra_body}
        if self.endpoint != "chat":
            identity |= {"endpoint": self.endpoint, "chat_template": self.chat_template}
            if self.chat_template:
                identity["tokenizer"] = self.tokenizer_spec
        if self.server == "llamacpp" and self.structured_output == "json_schema":
            identity["schema_form"] = "llamacpp"
        return identity

    # -- the request -----------------------------------------------------------------------

    def response_format(self, request: CompletionRequest) -> dict[str, Any] | None:
        """What `structured_output` sends for this request (None: nothing).

        >>> backend = OpenAICompatBackend("http://127.0.0.1:9/v1", "m")
        >>> schema = {"type": "object"}
        >>> backend.response_format(CompletionRequest([], json_mode=True, response_schema=schema))["type"]
        'json_schema'
        >>> OpenAICompatBackend("http://127.0.0.1:9/v1", "m", server="llamacpp").response_format(
        ...     CompletionRequest([], json_mode=True, response_schema=schema))
        {'type': 'json_object', 'schema': {'type': 'object'}}
        """
        if not request.json_mode or self.structured_output == "none":
            return None
        schema = request.response_schema
        if self.structured_output == "json_object" or schema is None:
            return {"type": "json_object"}
        if self.server == "llamacpp":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "judgment", "schema": schema, "strict": True}}

    def render(self, request: CompletionRequest) -> str:
        """endpoint completions: the prompt text, rendered as the local backend renders it."""
        return render_prompt(request, self.load_tokenizer() if self.chat_template else None)

    def build_body(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body of one chat completion (or, endpoint completions, one text completion)."""
        body: dict[str, Any] = {"model": self.model}
        if self.endpoint == "chat":
            body["messages"] = request.messages
        else:
            body["prompt"] = self.render(request)
        body |= {self.max_tokens_field: request.max_tokens, "temperature": request.temperature}
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = request.stop
        response_format = self.response_format(request)
        if response_format is not None:
            body["response_format"] = response_format
        top = request.top_logprobs
        if request.candidate_tokens and not top:
            top = 20  # the most OpenAI allows; candidates are read from the first position
        if self.endpoint == "completions":
            if request.logprobs or top:
                body["logprobs"] = int(top or 1)  # the text API: how many alternatives per token
        elif request.logprobs or top:
            body["logprobs"] = True
            if top:
                body["top_logprobs"] = int(top)
        body.update(self.extra_body)
        body.update(request.extra)
        return body

    # -- the tokenizer ---------------------------------------------------------------------

    def load_tokenizer(self) -> Any:
        """The `tokenizer` option's tokenizer (loaded once), or None when none is configured."""
        if self._tokenizer is None and self.tokenizer_spec:
            from transformers import AutoTokenizer

            from judgerl.models.packaged import resolve_model

            spec = self.tokenizer_spec
            local = Path(spec).expanduser()
            if not local.is_absolute() and self._tokenizer_base_dir is not None \
                    and (self._tokenizer_base_dir / local).exists():
                spec = str(self._tokenizer_base_dir / local)
            self._tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(spec)))
        return self._tokenizer

    async def token_pieces(self, text: str) -> list[str] | None:
        """The tokens `text` splits into for this model: from the `tokenizer` option, else from the
        server's tokenize endpoint; None when neither can tell."""
        if text in self._pieces:
            return self._pieces[text]
        tokenizer = self.load_tokenizer()
        if tokenizer is not None:
            ids = tokenizer.encode(text, add_special_tokens=False)
            pieces: list[str] | None = [tokenizer.decode([token]) for token in ids]
        else:
            pieces = await self._probe_pieces(text)
        self._pieces[text] = pieces
        return pieces

    async def _probe_pieces(self, text: str) -> list[str] | None:
        """Ask the server: llama.cpp's `/tokenize` (with pieces), vLLM's `/tokenize`,
        llama-cpp-python's `/extras/tokenize`; the first that answers with token ids counts."""
        root = self.base_url.removesuffix("/v1")
        session = self._session_for_loop()
        attempts: list[tuple[str, dict[str, Any]]] = [
            (f"{root}/tokenize", {"model": self.model, "prompt": text, "content": text,
                                  "add_special_tokens": False, "add_special": False, "with_pieces": True}),
            (f"{root}/extras/tokenize", {"model": self.model, "input": text}),
        ]
        for url, body in attempts:
            tokens = await self._tokenize_call(session, url, body)
            if tokens is None:
                continue
            if url.endswith("/extras/tokenize"):
                # it may add a BOS token: what an empty text gives is the overhead
                overhead = await self._tokenize_call(session, url, {"model": self.model, "input": ""})
                tokens = tokens[len(overhead or []):]
            detokenize = url.removesuffix("/tokenize") + "/detokenize"
            pieces = []
            for token in tokens:
                if isinstance(token, dict) and "piece" in token:
                    pieces.append(str(token["piece"]))
                    continue
                token_id = token.get("id") if isinstance(token, dict) else token
                data = await self._post_json(session, detokenize, {"model": self.model, "tokens": [token_id]})
                text = next((data[key] for key in ("text", "prompt", "content")
                             if isinstance(data, dict) and isinstance(data.get(key), str)), None)
                pieces.append(text if text is not None else f"<{token_id}>")
            return pieces
        return None

    async def _post_json(self, session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
        """POST `body`; the JSON answer of a 200, else None (a probe: any failure means "unknown")."""
        try:
            async with session.post(url, json=body, proxy=self._proxy, allow_redirects=False) as reply:
                if reply.status != 200:
                    return None
                return json.loads(await reply.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return None

    async def _tokenize_call(self, session: aiohttp.ClientSession, url: str,
                             body: dict[str, Any]) -> list[Any] | None:
        data = await self._post_json(session, url, body)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        return tokens if isinstance(tokens, list) else None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        """This event loop's session (made on first use; a session belongs to one loop)."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._session_loop is not loop or session.closed:
            if session is not None and self._session_loop is not None and self._session_loop.is_closed():
                session.detach()  # its loop is gone: it cannot be closed any more, only dropped quietly
            # One TLS context, made as httpx makes it (certifi, or SSL_CERT_FILE / SSL_CERT_DIR);
            # none for http.
            tls: ssl.SSLContext | bool = (httpx.create_ssl_context()
                                          if self.base_url.startswith("https://") else False)
            connector = _GatedConnector(limit=self.max_concurrency, limit_per_host=0, ssl=tls,
                                        send_check=self.check_send_gate)
            timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout_s,
                                            sock_connect=min(self.timeout_s, 10.0),
                                            sock_read=self.timeout_s)
            session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers,
                                            trace_configs=self._trace_configs or None)
            self._session, self._session_loop = session, loop
        return session

    async def complete(self, request: CompletionRequest) -> Completion:
        session = self._session_for_loop()
        # encoded as httpx encodes `json=`: compact, UTF-8, no NaN; a lone surrogate (say, in a judge's
        # earlier answer shown back to it) can only sit inside a JSON string, where backslashreplace
        # writes exactly its JSON escape (\ud800): valid UTF-8 and valid JSON
        payload = json.dumps(self.build_body(request), ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False).encode("utf-8", "backslashreplace")
        try:
            async with session.post(self.url, data=payload, proxy=self._proxy,
                                    allow_redirects=False) as reply:  # as httpx: redirects are answers
                response = HTTPAnswer(reply.status, reply.headers, await reply.read(), reply.reason or "")
        except asyncio.TimeoutError as exc:  # aiohttp's connect / read timeouts are TimeoutErrors too
            raise BackendError(f"timeout: {type(exc).__name__} from {self.url}", retryable=True) from exc
        except aiohttp.ClientError as exc:
            # refused connections, resets, a body cut short (ClientPayloadError), bad HTTP, ...
            raise BackendError(f"connection_error: {type(exc).__name__}: {exc or 'no detail'}",
                               retryable=True) from exc
        self._raise_for_status(response)
        return self._parse(response, request)

    def _raise_for_status(self, response: HTTPAnswer) -> None:
        status = response.status
        if status < 400:
            return
        message = _server_message(response)
        schema_hint = (f" (structured_output is {self.structured_output}: if this server does not take "
                       "JSON schemas, set the backend's structured_output: json_object or none; "
                       "llama.cpp's server: use type: llamacpp)")
        if status >= 500 and "validation error" in message and "response_format" in message:
            # llama-cpp-python's server answers a request it cannot validate with a 500: no retry helps
            raise FatalBackendError(f"http_{status}: {self.url} refused the request{schema_hint}: {message}",
                                    status=status)
        if status in RETRYABLE_STATUSES or status >= 500:
            raise BackendError(f"http_{status}: {message}", retryable=True, status=status,
                               retry_after=parse_retry_after(response.headers))
        if status == 400 and _CONTEXT_LENGTH.search(message):
            raise BackendError(f"context_length: {message}", retryable=False, status=status)
        if status == 400 and _CONTENT_FILTER.search(response.text):
            raise BackendError(f"content_filter: {message}", retryable=False, status=status)
        if status in FATAL_STATUSES:
            hint = {401: " (check the API key)", 403: " (check the key's permissions)",
                    404: f" (check base_url {self.base_url} and model '{self.model}')"}.get(status, "")
            if status in (400, 422) and re.search(r"response_format|json_schema|schema", message, re.I):
                hint = schema_hint
            raise FatalBackendError(f"http_{status}: {self.url} refused the request{hint}: {message}",
                                    status=status)
        raise BackendError(f"http_{status}: {message}", retryable=False, status=status)

    # -- the response ----------------------------------------------------------------------

    def _parse(self, response: HTTPAnswer, request: CompletionRequest) -> Completion:
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendError(f"bad_response: body is not valid JSON ({len(response.content)} bytes)",
                               retryable=True, status=response.status) from exc
        if not isinstance(data, dict):
            raise BackendError("bad_response: body is not a JSON object", retryable=True,
                               status=response.status)
        choices = data.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise BackendError("bad_response: no choices", retryable=True, status=response.status)
        choice = choices[0]
        if choice.get("finish_reason") == "content_filter":
            # Azure OpenAI's content filter stopped the answer (its content is null or cut short):
            # this prompt's answer, every time, so no retry, and no sign that the server is unwell
            raise BackendError("content_filter: the server's content filter stopped the answer "
                               "(finish_reason content_filter)", retryable=False, status=response.status)
        if self.endpoint == "completions":
            text = choice.get("text")
            if not isinstance(text, str):
                raise BackendError("bad_response: no text in the completion", retryable=True,
                                   status=response.status)
            logprobs = self._parse_text_logprobs(choice.get("logprobs"))
        else:
            message = choice.get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
            if not isinstance(text, str):
                refusal = message.get("refusal") if isinstance(message, dict) else None
                if refusal:  # the model declined this prompt (structured outputs): asking again repeats it
                    raise BackendError(f"refusal: {refusal}", retryable=False, status=response.status)
                raise BackendError("bad_response: no message content", retryable=True, status=response.status)
            logprobs = self._parse_logprobs(choice.get("logprobs"))
        candidates = None
        if request.candidate_tokens and logprobs:
            candidates = candidate_logprobs(logprobs[0], request.candidate_tokens)
        return Completion(text=text, model=str(data.get("model") or self.model),
                          usage=self._parse_usage(data.get("usage"), request, text),
                          finish_reason=choice.get("finish_reason"), logprobs=logprobs,
                          candidate_logprobs=candidates)

    @staticmethod
    def _parse_usage(usage: Any, request: CompletionRequest, text: str) -> Usage:
        """The server's token counts; an estimate (about 4 characters a token) when it gives none."""
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            return Usage(prompt_tokens=usage["prompt_tokens"],
                         completion_tokens=int(usage.get("completion_tokens") or 0))
        prompt = sum(len(str(message.get("content", ""))) for message in request.messages)
        return Usage(prompt_tokens=max(1, prompt // 4), completion_tokens=max(1, len(text) // 4))

    @staticmethod
    def _parse_logprobs(raw: Any) -> list[TokenLogprob] | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
            return None
        tokens = []
        for item in raw["content"]:
            if not isinstance(item, dict) or "token" not in item:
                raise BackendError("bad_response: malformed logprobs entry", retryable=True)
            top = {str(alt["token"]): float(alt["logprob"]) for alt in item.get("top_logprobs") or []
                   if isinstance(alt, dict) and "token" in alt and "logprob" in alt}
            tokens.append(TokenLogprob(token=str(item["token"]), logprob=float(item.get("logprob", 0.0)),
                                       top=top))
        return tokens

    @staticmethod
    def _parse_text_logprobs(raw: Any) -> list[TokenLogprob] | None:
        """The text-completions shape: `tokens`, `token_logprobs`, `top_logprobs` (one dict per token)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
            return None
        tokens, values = raw["tokens"], raw.get("token_logprobs") or []
        tops = raw.get("top_logprobs") or []
        if not isinstance(values, list) or not isinstance(tops, list):
            raise BackendError("bad_response: malformed logprobs", retryable=True)
        parsed = []
        for index, token in enumerate(tokens):
            value = values[index] if index < len(values) else None
            top = tops[index] if index < len(tops) else None
            alternatives = {str(key): float(item) for key, item in (top or {}).items()
                            if isinstance(item, (int, float))} if isinstance(top, dict) else {}
            parsed.append(TokenLogprob(token=str(token),
                                       logprob=float(value) if isinstance(value, (int, float)) else 0.0,
                                       top=alternatives))
        return parsed

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        if self._session_loop is not asyncio.get_running_loop():
            # A session made on another (finished) event loop cannot be closed from this one; its
            # connections belong to that loop and are released with it.
            if self._session_loop is None or self._session_loop.is_closed():
                session.detach()
            return
        await session.close()
