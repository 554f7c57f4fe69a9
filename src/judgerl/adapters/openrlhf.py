"""An OpenRLHF-compatible remote reward server: `judgerl serve --config reward.yaml`.

Why: OpenRLHF (and anything that speaks its remote reward model protocol) scores rollouts by
POSTing to a URL (`--remote_rm_url`). Serving the judgerl pipeline over HTTP lets a Ray cluster
share one reward runtime (one cache, one set of rate limits, one journal) across all workers.

Protocol (OpenRLHF `openrlhf/utils/remote_rm_utils.py`):

    POST /get_reward   {"query": [prompt+response, ...], "prompts": [prompt, ...], "labels": [...]}
    -> 200 {"rewards": [float, ...], "scores": [float, ...], "extra_logs": {name: [float, ...]}}

`query` holds the prompt and the response concatenated; the response is `query` with its
`prompts` prefix removed (the whole query when it does not start with the prompt, or when
`prompts` is absent). `labels` (optional) are the reference answers. `rewards` and `scores` are
the same numbers in [0, 1]; OpenRLHF needs numbers, so an unscored item gets the config's
`failure_policy` value (0.0 under the default `unscored`), and `extra_logs["unscored"]` is 1 for
it (0 otherwise). `extra_logs` has every reward component plus `unscored` and `gated`.

Safety defaults: bound to 127.0.0.1; a bearer token is required (`Authorization: Bearer <t>`,
or `?token=<t>` in the URL for OpenRLHF's stock client, which sends no headers) unless
`--no-auth` is given; bodies over `max_body_bytes` get 413, batches over `max_batch` get 413,
malformed bodies get 422, all as JSON `{"error": ...}`. When the batch's unscored share passes
the config's `failure_budget` the answer is 503 with the reasons (OpenRLHF retries, then stops
the run): training on a batch the judge could not score would be training on noise.

`GET /health` answers `{"status": "ok"}` without auth (for load balancers); it reveals nothing.
Requests run concurrently: each awaits `pipeline.score_batch`, which runs on the pipeline's
own loop, so uvicorn's loop stays free and every request shares one runtime.

A body nested more than `MAX_JSON_DEPTH` levels deep is 422, like any malformed body. An item
whose text cannot be handled (a lone surrogate) is that item's failure, not the batch's: it is
unscored (0.0 with `unscored: 1`) and the other items are scored. Slow clients are bounded
(adapters/http_guard.py): request headers must arrive within `header_timeout_s` and the body
within `body_timeout_s`, and at most `max_connections` connections are open at once.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from judgerl.adapters import component_values, numeric_value, prompt_sample_id, reference_text
from judgerl.adapters.http_guard import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    guarded_h11_protocol,
)
from judgerl.data import MAX_JSON_DEPTH, json_depth_exceeds
from judgerl.errors import ConfigError, FailureBudgetExceeded, FatalBackendError, JudgerlError
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample, rollout_id

logger = logging.getLogger("judgerl.serve")

DEFAULT_MAX_BATCH = 4096
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class RewardRequest(BaseModel):
    """The body of `POST /get_reward`."""

    model_config = ConfigDict(extra="allow")

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None


class RequestError(Exception):
    """A client error, answered as `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def split_query(query: str, prompt: str | None) -> str:
    """The response part of an OpenRLHF query (prompt + response).

    >>> split_query("Q: 2+2? A: 4", "Q: 2+2? A:")
    ' 4'
    >>> split_query("no prefix here", "Q:")
    'no prefix here'
    """
    if prompt and query.startswith(prompt):
        return query[len(prompt):]
    return query


def build_items(body: RewardRequest) -> list[tuple[Sample, Rollout]]:
    """(Sample, Rollout) pairs; items with the same prompt and label share a sample id."""
    count = len(body.query)
    for field, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != count:
            raise RequestError(422, f"field '{field}' has {len(values)} items but 'query' has {count}")
    seen: dict[str, int] = {}
    items = []
    for index, query in enumerate(body.query):
        prompt = body.prompts[index] if body.prompts is not None else None
        reference = reference_text(body.labels[index]) if body.labels is not None else None
        messages = [{"role": "user", "content": prompt}] if prompt else []
        sample_id = prompt_sample_id(messages, reference)
        occurrence = seen.get(sample_id, 0)
        seen[sample_id] = occurrence + 1
        sample = Sample(id=sample_id, messages=messages, reference=reference)
        items.append((sample, Rollout(sample_id=sample_id, completion=split_query(query, prompt),
                                      id=rollout_id(sample_id, occurrence))))
    return items


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(raw: bytes, max_batch: int) -> RewardRequest:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(422, f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RequestError(422, f"the body is nested more than {MAX_JSON_DEPTH} levels deep") from exc
    if json_depth_exceeds(data, MAX_JSON_DEPTH):
        raise RequestError(422, f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        body = RewardRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise RequestError(422, f"field '{field}': {first['msg']}") from exc
    if len(body.query) > max_batch:
        raise RequestError(413, f"batch of {len(body.query)} items is over the limit of {max_batch}")
    return body


def create_app(pipeline: RewardPipeline, *, token: str | None, max_batch: int = DEFAULT_MAX_BATCH,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app. `token=None` turns auth off (the caller must have asked for that)."""
    app = FastAPI(title="judgerl reward server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pipeline = pipeline

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            given = request.query_params.get("token", "")
        given_bytes = given.strip().encode("utf-8", "surrogatepass")
        return bool(given) and hmac.compare_digest(given_bytes, token.encode())

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        started = time.monotonic()
        if not authorized(request):
            return error_response(401, "missing or wrong bearer token")
        try:
            body = parse_body(await read_body(request, max_body_bytes), max_batch)
            items = build_items(body)
        except RequestError as exc:
            logger.info("get_reward -> %d: %s", exc.status, exc.message)
            return error_response(exc.status, exc.message)
        try:
            rewards = await pipeline.score_batch(items)
        except FailureBudgetExceeded as exc:
            logger.error("get_reward -> 503: %s", exc)
            return error_response(503, str(exc), failed=exc.failed, total=exc.total, reasons=exc.reasons)
        except FatalBackendError as exc:
            logger.error("get_reward -> 502: %s", exc)
            return error_response(502, f"the judge backend refused the call: {exc}")
        except JudgerlError as exc:
            logger.error("get_reward -> 500: %s", exc)
            return error_response(500, str(exc))
        values = [numeric_value(reward) for reward in rewards]
        per_item = [component_values(reward) for reward in rewards]
        names = list(dict.fromkeys(name for components in per_item for name in components))
        extra_logs = {name: [components.get(name, 0.0) for components in per_item] for name in names}
        logger.info("get_reward -> 200: %d items (%d unscored) in %.2fs", len(rewards),
                    sum(reward.status == "unscored" for reward in rewards), time.monotonic() - started)
        return JSONResponse({"rewards": values, "scores": values, "extra_logs": extra_logs})

    return app


def resolve_token(*, token_env: str, no_auth: bool) -> str | None:
    """The bearer token from `token_env`, or None with `no_auth`; a missing token is a ConfigError."""
    if no_auth:
        return None
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise ConfigError(f"the reward server needs a bearer token: set the environment variable {token_env} "
                          "(e.g. `export JUDGERL_SERVER_TOKEN=$(python -c 'import secrets; "
                          "print(secrets.token_urlsafe())')`), "
                          "or pass --no-auth to serve without one")
    return token


def server_config(app: FastAPI, *, host: str = "127.0.0.1", port: int = 5000, log_level: str = "info",
                  header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                  body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
                  max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Any:
    """The `uvicorn.Config` of `judgerl serve`: the guarded h11 protocol (slow-client bounds),
    access log off (the URL may carry ?token=; get_reward logs its own line without it)."""
    import uvicorn

    protocol = guarded_h11_protocol(header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                                    max_connections=max_connections)
    return uvicorn.Config(app, host=host, port=port, http=protocol, access_log=False, log_level=log_level)


def serve(config: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 5000,
          token_env: str = "JUDGERL_SERVER_TOKEN", no_auth: bool = False, overrides: list[str] | None = None,
          max_batch: int = DEFAULT_MAX_BATCH, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          log_level: str = "info", header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
          body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
          max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
    """Run the server until interrupted (what `judgerl serve` calls)."""
    import uvicorn

    token = resolve_token(token_env=token_env, no_auth=no_auth)
    if token is None and host not in LOOPBACK_HOSTS:
        logger.warning("serving WITHOUT auth on %s: anyone who can reach this port can spend "
                       "your judge budget", host)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with RewardPipeline.from_config(str(config), overrides=overrides) as pipeline:
        app = create_app(pipeline, token=token, max_batch=max_batch, max_body_bytes=max_body_bytes)
        uvicorn.Server(server_config(app, host=host, port=port, log_level=log_level,
                                     header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                                     max_connections=max_connections)).run()


__all__ = ["RewardRequest", "build_items", "create_app", "resolve_token", "serve", "server_config",
           "split_query"]
