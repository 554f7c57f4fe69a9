"""AWS Bedrock as a judge backend, through the Converse API (boto3 `bedrock-runtime`).

Why: Bedrock hosts the judge models many RFT users already pay for (Claude, Llama, Nova,
Mistral...), and Converse gives them one request shape. Like every backend, this one makes one
attempt per call and classifies failures; the judgerl runtime does the retrying, so boto3's own
retries are turned off (`total_max_attempts=1`) to avoid retry amplification.

Config (`backends:` in a reward config):

    judge:
      type: bedrock
      model: anthropic.claude-3-5-haiku-20241022-v1:0   # model id or inference profile id/ARN
      region: us-east-1            # default: $AWS_REGION / $AWS_DEFAULT_REGION / the boto3 profile's
      profile: my-profile          # optional boto3 profile
      max_concurrency: 16
      timeout_s: 60                # boto3 read timeout
      max_tokens: 512              # optional inference config; a value set here wins over
      temperature: 0.0             #   what the judge asks for
      top_p: 0.9
      stop_sequences: ["</verdict>"]

      structured_output: tool_use  # JSON verdicts through a forced tool call (default: none)

Credentials come from the usual boto3 chain (environment, profile, instance role).

Structured verdicts (`structured_output`): Converse has no `response_format`; with `tool_use` a
judge's request that carries its answer's JSON Schema gets one tool, `judgment`, whose input schema
is that schema, and `toolChoice` forces the model to call it; the call's input, written back as
JSON, is the answer, and it goes through the judge's strict parser like any text. Forcing one
tool (`toolChoice: tool`) is supported by Anthropic Claude (3 and later), Amazon Nova and Mistral
Large, not by every Bedrock model (Meta Llama takes `auto` only: Bedrock refuses the request with
a ValidationException, which stops the run with the hint to set `structured_output: none`), hence
`none` by default. A tool's input schema guides the model; Bedrock does not constrain decoding to
it as a grammar would, so an answer may still fail the parser and be re-asked once.

Failure classes: ThrottlingException, TooManyRequestsException, ServiceUnavailableException,
ModelNotReadyException, InternalServerException, ModelTimeoutException,
ServiceQuotaExceededException, any 408/429/5xx, connection errors and timeouts are retryable;
ValidationException, AccessDeniedException, ResourceNotFoundException, unrecognised or expired
credentials and other 4xx are fatal (every call would fail the same way), except a
ValidationException about this one request's prompt: too long for the model (`context_length`)
or blocked by the model's content filtering (`content_filter`; a policy's rollout can say
anything), which fail that one call, as ModelErrorException does. Converse returns no
log-probabilities: a judge in `scoring: logprob` mode on this backend is a fatal configuration
error, reported on its first call.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from judgerl.backends.base import Backend, BackendLimits, BackendOptions, Completion, CompletionRequest, Usage
from judgerl.errors import BackendError, ConfigError, FatalBackendError

if TYPE_CHECKING:
    from judgerl.config import BackendConfig

RETRYABLE_CODES = frozenset({
    "ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException",
    "ModelNotReadyException", "InternalServerException", "ModelTimeoutException",
    "ServiceQuotaExceededException", "RequestTimeout", "RequestTimeoutException",
})
FATAL_CODES = frozenset({
    "ValidationException", "AccessDeniedException", "ResourceNotFoundException",
    "UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException",
})
CALL_CODES = frozenset({"ModelErrorException", "ModelStreamErrorException"})
#: ValidationExceptions about one request's prompt, not the configuration: that call's failure
ONE_CALL_VALIDATION = (
    ("context_length", re.compile(r"too long|context (length|window)|input tokens exceed|"
                                  r"too many (input )?tokens", re.I)),
    ("content_filter", re.compile(r"content filter|blocked by content|content policy", re.I)),
)
#: the one tool of `structured_output: tool_use`, whose input is the judge's answer
VERDICT_TOOL = "judgment"
INFERENCE_KEYS = {"max_tokens": "maxTokens", "maxTokens": "maxTokens", "temperature": "temperature",
                  "top_p": "topP", "topP": "topP", "stop_sequences": "stopSequences",
                  "stopSequences": "stopSequences"}


def to_converse(messages: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Chat messages as Converse's (`system`, `messages`): system turns move to `system`,
    consecutive turns of one role are merged (Converse wants user/assistant alternating).

    >>> to_converse([{"role": "system", "content": "be strict"}, {"role": "user", "content": "a"},
    ...              {"role": "user", "content": "b"}])
    ([{'text': 'be strict'}], [{'role': 'user', 'content': [{'text': 'a'}, {'text': 'b'}]}])
    """
    system: list[dict[str, str]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role", "user")
        text = message.get("content") or ""
        if not isinstance(text, str):
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
        if role == "system":
            system.append({"text": text})
            continue
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].append({"text": text})
        else:
            turns.append({"role": role, "content": [{"text": text}]})
    return system, turns


def classify(exc: Exception) -> BackendError:
    """A boto3 / botocore exception as judgerl's BackendError (retryable or fatal)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"bedrock {code}: {error.get('Message', '')}".strip()
        metadata = exc.response.get("ResponseMetadata", {})
        status = metadata.get("HTTPStatusCode")
        headers = {key.lower(): value for key, value in (metadata.get("HTTPHeaders") or {}).items()}
        retry_after = _retry_after(headers.get("retry-after"))
        unknown = code not in FATAL_CODES | CALL_CODES
        if code in RETRYABLE_CODES or (unknown and (status in (408, 429) or (status or 0) >= 500)):
            return BackendError(message, retryable=True, status=status, retry_after=retry_after)
        if code in CALL_CODES:
            return BackendError(message, retryable=False, status=status)
        if code == "ValidationException":
            for reason, pattern in ONE_CALL_VALIDATION:
                if pattern.search(str(error.get("Message", ""))):
                    return BackendError(f"{reason}: {message}", retryable=False, status=status)
        return FatalBackendError(message, status=status)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return BackendError(f"bedrock timeout: {exc}", retryable=True, status=408)
    if isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
        return BackendError(f"bedrock connection error: {exc}", retryable=True)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return FatalBackendError(f"bedrock: no usable AWS credentials ({exc})")
    return BackendError(f"bedrock call failed: {type(exc).__name__}: {exc}", retryable=True)


def _retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class BedrockOptions(BackendOptions):
    """The options of a `bedrock` backend; the inference keys go to Converse's inferenceConfig."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    region: str | None = Field(default=None, alias="region_name", description="AWS region")
    profile: str | None = Field(default=None, description="AWS profile")
    inference_config: dict[str, Any] = Field(default_factory=dict, description="Converse inferenceConfig")
    max_tokens: int | None = Field(default=None, alias="maxTokens")
    temperature: float | None = None
    top_p: float | None = Field(default=None, alias="topP")
    stop_sequences: list[str] | None = Field(default=None, alias="stopSequences")
    structured_output: Literal["tool_use", "none"] = Field(
        default="none", description="tool_use: a judge's JSON answer through a forced tool call whose "
        "input schema is the answer's schema (Claude, Nova, Mistral Large); none: plain text")

    def inference(self) -> dict[str, Any]:
        """The inference keys given at the top level, then `inference_config` over them."""
        given = {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                 "stop_sequences": self.stop_sequences}
        return {**{key: value for key, value in given.items() if value is not None}, **self.inference_config}


class BedrockBackend(Backend):
    """Judge calls to a Bedrock model through `bedrock-runtime.converse`, one attempt per call."""

    kind = "bedrock"
    Options = BedrockOptions

    def __init__(self, model_id: str, *, region: str | None = None, profile: str | None = None,
                 inference_config: dict[str, Any] | None = None, max_concurrency: int = 16,
                 timeout_s: float = 60.0, client: Any = None, limits: BackendLimits | None = None,
                 structured_output: str = "none") -> None:
        super().__init__(model_id, max_concurrency=max_concurrency,
                         limits=limits or BackendLimits(timeout_s=timeout_s))
        self.region = region
        self.profile = profile
        self.timeout_s = timeout_s
        self.inference_config = _inference_config(inference_config or {})
        if structured_output not in ("tool_use", "none"):
            raise ConfigError(f"structured_output must be tool_use or none, got {structured_output!r}",
                              field="backends.structured_output")
        self.structured_output = structured_output
        self._client = client
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: BackendConfig, base_dir: str | Path | None = None) -> BedrockBackend:
        """`type: bedrock`, `model` (a Bedrock model id or inference profile) and the options above."""
        options = cls.Options.of(config)
        if not config.model:
            raise ConfigError("a bedrock backend needs `model` (a Bedrock model id or inference profile)",
                              field="backends.model")
        return cls(config.model, region=options.region, profile=options.profile,
                   inference_config=options.inference(), max_concurrency=config.max_concurrency,
                   timeout_s=config.timeout_s, limits=BackendLimits.from_config(config),
                   structured_output=options.structured_output)

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use (retries off, timeouts and pool from the config)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(profile_name=self.profile or None)
            region = self.region or os.environ.get("AWS_REGION") or session.region_name
            if not region:
                raise FatalBackendError("bedrock: no region; set `region:` on the backend or AWS_REGION")
            self._client = session.client("bedrock-runtime", region_name=region, config=Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=min(10.0, self.timeout_s), read_timeout=self.timeout_s,
                max_pool_connections=self.max_concurrency))
        return self._client

    def build_params(self, request: CompletionRequest) -> dict[str, Any]:
        """The `converse` keyword arguments for one request."""
        if request.logprobs or request.candidate_tokens:
            raise FatalBackendError("bedrock Converse returns no log-probabilities: use generate-then-parse "
                                    "judging (not `scoring: logprob`) for judges on a bedrock backend")
        system, messages = to_converse(request.messages)
        inference: dict[str, Any] = {"maxTokens": request.max_tokens, "temperature": request.temperature}
        if request.top_p is not None:
            inference["topP"] = request.top_p
        if request.stop:
            inference["stopSequences"] = list(request.stop)
        inference.update(self.inference_config)
        params: dict[str, Any] = {"modelId": self.model, "messages": messages, "inferenceConfig": inference}
        if system:
            params["system"] = system
        if self.structured_output == "tool_use" and request.json_mode and request.response_schema:
            params["toolConfig"] = {
                "tools": [{"toolSpec": {"name": VERDICT_TOOL, "description": "Record the judgment.",
                                        "inputSchema": {"json": request.response_schema}}}],
                "toolChoice": {"tool": {"name": VERDICT_TOOL}}}
        return params

    def _call(self, params: dict[str, Any]) -> dict[str, Any]:
        self.check_send_gate()  # in the worker, right before the request: a window may have opened
        return self.client.converse(**params)

    async def complete(self, request: CompletionRequest) -> Completion:
        params = self.build_params(request)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency,
                                                thread_name_prefix="judgerl-bedrock")
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(self._executor, self._call, params)
        except BackendError:
            raise
        except Exception as exc:  # botocore raises many types; classify() decides what they mean
            error = classify(exc)
            forced_tool = "toolConfig" in params and "tool" in str(error).lower()
            if forced_tool and isinstance(error, FatalBackendError):
                error = FatalBackendError(f"{error} (structured_output is tool_use: this model may not take "
                                          "a forced tool call; set the backend's structured_output: none)",
                                          status=error.status)
            raise error from exc
        return parse_response(response, self.model)

    def cache_identity(self) -> dict[str, Any]:
        identity = {"kind": self.kind, "model": self.model, "inference_config": self.inference_config}
        if self.structured_output != "none":
            identity["structured_output"] = self.structured_output
        return identity

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _inference_config(options: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in options.items():
        if key not in INFERENCE_KEYS:
            raise ConfigError(f"unknown Bedrock inference option '{key}' (known: {sorted(INFERENCE_KEYS)})",
                              field=f"backends.{key}")
        if value is not None:
            config[INFERENCE_KEYS[key]] = list(value) if key in ("stop_sequences", "stopSequences") else value
    return config


def parse_response(response: dict[str, Any], model: str) -> Completion:
    """A Converse response as a Completion (text blocks joined; usage; stop reason)."""
    try:
        blocks = response["output"]["message"]["content"]
    except (KeyError, TypeError) as exc:
        raise BackendError(f"bedrock: a response without output.message.content ({exc})",
                           retryable=True) from exc
    calls = [block["toolUse"] for block in blocks if isinstance(block, dict)
             and isinstance(block.get("toolUse"), dict) and block["toolUse"].get("name") == VERDICT_TOOL]
    if calls:  # structured_output tool_use: the forced call's input is the answer
        text = json.dumps(calls[-1].get("input"), ensure_ascii=False)
    else:
        text = "".join(block["text"] for block in blocks if isinstance(block, dict) and "text" in block)
    usage = response.get("usage") or {}
    stop = response.get("stopReason")
    if stop == "max_tokens":
        finish = "length"
    elif stop in ("guardrail_intervened", "content_filtered"):
        # the answer is the guardrail's message or cut short: this prompt's failure, not retried
        raise BackendError(f"content_filter: bedrock stopped the answer (stopReason {stop})", retryable=False)
    else:
        finish = "stop"
    return Completion(text=text, model=model, finish_reason=finish,
                      usage=Usage(prompt_tokens=int(usage.get("inputTokens", 0)),
                                  completion_tokens=int(usage.get("outputTokens", 0))))


__all__ = ["BedrockBackend", "classify", "parse_response", "to_converse"]
