"""An OpenRLHF-compatible remote reward server: `judgerl serve --config reward.yaml`.

Why: OpenRLHF (and anything that speaks its remote reward model protocol) scores rollouts by
POSTing to a URL (`--reward.remote_url` since OpenRLHF 0.9; tested with 0.11.2). Serving the
judgerl pipeline over HTTP lets a Ray cluster share one reward runtime (one cache, one set of
rate limits, one journal) across all workers.

Protocol (OpenRLHF `openrlhf/utils/agent.py`, `SingleTurnAgentExecutor._fetch_rewards_via_http`):

    POST /get_reward   {"query": [prompt+response, ...], "prompts": [prompt, ...], "labels": [...]}
    -> 200 {"rewards": [float, ...], "scores": [float, ...], "extra_logs": {name: [float, ...]}}

OpenRLHF ≥ 0.9.1 posts one rollout per request. `query` is prompt + response decoded with
`skip_special_tokens=False`, so it holds the chat template's markup and ends with the model's
end-of-turn token. The response is `query` without its `prompts` prefix (or, when the tokenizer
does not decode the prompt back to the same text, what follows the last assistant header), with
the special tokens removed (`judgerl.adapters.special_tokens`: defaults for the common chat
templates, plus `--special-token` / the `--tokenizer`'s own); the prompt is parsed back to
chat messages for the judge. `labels` are the reference answers: OpenRLHF sends `""` when it
was started without `--data.label_key`; an empty label is "no reference", and when the reward
needs one (a judge with `use_reference`, a pairwise judge against the reference, a match check)
the answer is 422 naming the field. `rewards` and `scores` are the same numbers in [0, 1];
OpenRLHF needs numbers, so an unscored item gets the config's `failure_policy` value (0.0
under the default `unscored`), and `extra_logs["unscored"]` is 1 for it (0 otherwise).
`extra_logs` has every reward component plus `unscored` and `gated`.

Agent rollouts: with an agent function (`--train.agent_func_path`) OpenRLHF posts nothing itself;
an agent posts its finished rollout from `step()` with the same body, `query` being the whole
chat-templated run. When the config reads trajectories (`RewardPipeline.reads_trajectories`), a
multi-turn query is read back into a trajectory with tool calls and results
(`judgerl.adapters.templated`); a single assistant turn is read as above.

Failure budget: over the last `budget_window` items the server scored (all clients together,
counted once 32 were seen), not per request: a single unscored rollout is answered 200 with
`unscored: 1`. When the window's unscored share passes the config's `failure_budget` the answer
is 503 with the reasons, without `Retry-After` (the run should stop; OpenRLHF retries 5 times
1 s apart, then leaves the reward empty and the run stops): training on rollouts the judge
could not score would be training on noise. The one 503 with `Retry-After` is a refusal for
memory (below): try again later.

Safety defaults: bound to 127.0.0.1; a client must send `Authorization: Bearer <t>` or connect
from a network allowed with `--allow-network 10.0.0.0/8` (repeatable): OpenRLHF's client sends
no headers, and a `?token=` in the URL is not accepted, because OpenRLHF prints the URL on every
non-2xx answer (the secret would end up in training logs). `--no-auth` serves anyone. Bodies
over `max_body_bytes` get 413, batches over `max_batch` get 413, malformed bodies get 422, all
as JSON `{"error": ...}`.

`GET /health` answers `{"status": "ok"}` without auth (for load balancers); it reveals nothing.
Requests run concurrently: each awaits `pipeline.score_batch`, which runs on the pipeline's
own loop, so uvicorn's loop stays free and every request shares one runtime.

A body nested more than `MAX_JSON_DEPTH` levels deep is 422, like any malformed body. An item
whose text cannot be handled (a lone surrogate) is that item's failure, not the batch's: it is
unscored (0.0 with `unscored: 1`) and the other items are scored. Slow clients are bounded
(adapters/http_guard.py): a request's first byte must arrive within `idle_timeout_s` (within
`header_timeout_s` while other connections wait for a slot), its headers within
`header_timeout_s` of that and its body within `body_timeout_s`; at most `max_connections`
connections are served at once and more wait (in the listen backlog, never closed: a training
cluster sends its whole batch at once).
Request bodies held at once (being read or judged) are bounded by `max_pending_bytes`: a request
that would pass it is answered 503 with `Retry-After` (a bound on memory; an honest batch of
10,000 OpenRLHF rollouts holds a few tens of MB). A client that disconnects before its answer is
one log line (its rollouts are still judged, and cached when the cache is on).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from judgerl.adapters import (
    component_values,
    numeric_value,
    prompt_sample_id,
    reference_text,
    reference_users,
)
from judgerl.adapters.http_guard import (
    DEFAULT_BACKLOG,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    GuardedServer,
    connection_limits,
    guarded_h11_protocol,
    raise_fd_limit,
)
from judgerl.adapters.service_metrics import CONTENT_TYPE, ServiceMetrics
from judgerl.adapters.special_tokens import (
    DEFAULT_SPECIAL_TOKENS,
    chat_messages,
    response_of,
    strip_special_tokens,
)
from judgerl.adapters.templated import templated_trajectory
from judgerl.data import MAX_JSON_DEPTH, json_depth_exceeds
from judgerl.errors import (
    BudgetExhausted,
    ConfigError,
    DataError,
    FailureBudgetExceeded,
    FatalBackendError,
    JudgerlError,
)
from judgerl.reward.budget import DEFAULT_MIN_ITEMS, DEFAULT_WINDOW, RollingFailureBudget
from judgerl.reward.groups import GroupAssembler, whole_group_judges
from judgerl.reward.pipeline import RewardPipeline
from judgerl.rubric_items import split_reference
from judgerl.trajectory import TrajectoryError, final_answer
from judgerl.types import Reward, Rollout, Sample, rollout_id

logger = logging.getLogger("judgerl.serve")

DEFAULT_MAX_BATCH = 4096
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_GROUP_TIMEOUT_S = 30.0
DEFAULT_MAX_PENDING_BYTES = 1024 * 1024 * 1024
RETRY_AFTER_BUSY_S = 5  # a request refused for memory: try again in a few seconds
CLIENT_CLOSED = 499  # the status recorded (never sent) when the client left before its answer
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RewardRequest(BaseModel):
    """The body of `POST /get_reward`."""

    model_config = ConfigDict(extra="allow")

    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any] | None = None
    # judgerl's extensions for group assembly (OpenRLHF sends neither): the group of each item
    # (e.g. verl's uid; default: its prompt and label) and the expected size of the groups.
    group_keys: list[str] | None = None
    group_size: int | None = Field(default=None, ge=1)


class RequestError(Exception):
    """A client error, answered as `{"error": message}` with `status` (503s with `Retry-After`)."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def error_response(status: int, message: str, retry_after_s: int | None = None, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers or None)


class PendingBodies:
    """The request bytes the service holds at once (read, or waiting for their judgment).

    A bound on memory, not on concurrency: one event loop takes and gives back, so no lock.

    >>> pending = PendingBodies(10)
    >>> pending.take(6), pending.take(6), pending.held
    (True, False, 6)
    >>> pending.give_back(6); pending.held
    0
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


def split_query(query: str, prompt: str | None,
                tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS) -> str:
    """The response part of an OpenRLHF query (prompt + response), without special tokens.

    >>> split_query("Q: 2+2? A: 4", "Q: 2+2? A:")
    ' 4'
    >>> split_query("<|im_start|>user\\n2+2?<|im_end|>\\n<|im_start|>assistant\\n4<|im_end|>\\n",
    ...             "<|im_start|>user\\n2+2?<|im_end|>\\n<|im_start|>assistant\\n")
    '4'
    >>> split_query("no prefix here", "Q:")
    'no prefix here'
    """
    return strip_special_tokens(response_of(query, prompt), tokens)


def label_reference(label: Any) -> str | None:
    """A label as the reference answer; OpenRLHF's `""` (no `--data.label_key`) is no reference."""
    if label is None or (isinstance(label, str) and not label.strip()):
        return None
    return reference_text(label)


def build_items(body: RewardRequest, tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
                needs_reference: Sequence[str] = (), *,
                trajectories: bool = False) -> list[tuple[Sample, Rollout]]:
    """(Sample, Rollout) pairs; items with the same prompt and label share a sample id.

    `needs_reference` names what needs a reference answer: an item without one is a 422. With
    `trajectories` (the pipeline has a component that reads them), a multi-turn query (an agent
    rollout: several assistant turns, or tool calls) becomes a rollout with a trajectory
    (`judgerl.adapters.templated`).
    """
    count = len(body.query)
    for field, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != count:
            raise RequestError(422, f"field '{field}' has {len(values)} items but 'query' has {count}")
    seen: dict[str, int] = {}
    items = []
    for index, query in enumerate(body.query):
        prompt = body.prompts[index] if body.prompts is not None else None
        label, rubric = split_reference(body.labels[index]) if body.labels is not None else (None, None)
        reference = label_reference(label)
        if reference is None and needs_reference:
            field = "labels" if body.labels is None else f"labels[{index}]"
            raise RequestError(422, f"field '{field}' is {'missing' if body.labels is None else 'empty'}, "
                                    f"but the reward's {', '.join(needs_reference)} needs a reference answer "
                                    "(start OpenRLHF with --data.label_key naming your dataset's answer "
                                    "column)")
        messages = chat_messages(prompt, tokens) if prompt else []
        sample_id = prompt_sample_id(prompt or "", reference)
        occurrence = seen.get(sample_id, 0)
        seen[sample_id] = occurrence + 1
        sample = Sample(id=sample_id, messages=messages, reference=reference,
                        metadata={} if rubric is None else {"rubric": rubric})
        rollout = Rollout(sample_id=sample_id, completion=split_query(query, prompt, tokens),
                          id=rollout_id(sample_id, occurrence))
        if trajectories:
            rollout = agent_rollout(rollout, query, prompt, tokens, index)
        items.append((sample, rollout))
    return items


def agent_rollout(rollout: Rollout, query: str, prompt: str | None, tokens: Sequence[str],
                  index: int) -> Rollout:
    """`rollout` with the trajectory of a multi-turn `query`; unchanged for a single turn."""
    try:
        parsed = templated_trajectory(query, prompt, tokens)
    except TrajectoryError as exc:  # the lenient reading leaves next to nothing to refuse
        logger.warning("query[%d]: not read as a trajectory (%s); its last assistant turn is judged",
                       index, exc)
        return rollout
    if parsed is None:
        return rollout
    trajectory, tools = parsed
    return Rollout(sample_id=rollout.sample_id, completion=final_answer(trajectory), id=rollout.id,
                   trajectory=trajectory, tools=tools)


def parse_networks(networks: Sequence[str]) -> list[Network]:
    """`--allow-network` values as networks (a bare address is a /32 or /128); bad ones are a ConfigError."""
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(f"--allow-network {network!r} is not a network such as 10.0.0.0/8: "
                              f"{exc}") from exc
    return parsed


def address_allowed(host: str | None, networks: Sequence[Network]) -> bool:
    """Whether the client address `host` is in one of `networks`.

    >>> nets = parse_networks(["10.0.0.0/8", "fd00::/8"])
    >>> address_allowed("10.1.2.3", nets), address_allowed("192.168.0.1", nets), address_allowed(None, nets)
    (True, False, False)
    >>> address_allowed("::ffff:10.0.0.7", nets)
    True
    """
    if not host or not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == network.version and address in network for network in networks)


async def read_body(request: Request, limit: int, pending: PendingBodies | None = None,
                    held: list[int] | None = None) -> bytes:
    """The request body, refusing (413) more than `limit` bytes before reading them all.

    With `pending`, each chunk is taken from the service's bound on bytes held at once (and
    added to `held[0]`, for the caller to give back); past the bound the answer is 503.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes is over the limit of {limit} bytes")
    if pending is not None and declared is not None and declared.isdigit() and \
            pending.held + int(declared) > pending.limit:
        raise RequestError(503, f"the service holds {pending.held} bytes of requests (max {pending.limit}); "
                                "try again later", RETRY_AFTER_BUSY_S)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        if pending is not None and held is not None:
            if not pending.take(len(chunk)):
                raise RequestError(503, f"the service holds {pending.held} bytes of requests (max "
                                        f"{pending.limit}); try again later", RETRY_AFTER_BUSY_S)
            held[0] += len(chunk)
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
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, allow_networks: Sequence[str] = (),
               special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS, budget_window: int = DEFAULT_WINDOW,
               budget_min_items: int = DEFAULT_MIN_ITEMS, group_size: int = 1,
               group_timeout_s: float = DEFAULT_GROUP_TIMEOUT_S,
               max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES) -> FastAPI:
    """The FastAPI app.

    A request is let in with the bearer `token` or from one of `allow_networks`; with neither
    (`token=None`, no networks) auth is off (the caller must have asked for that). With
    `group_size` > 1 (or a request's `group_size`), rollouts are held by group (see
    `judgerl.reward.groups`) for at most `group_timeout_s`. Request bodies held at once are
    bounded by `max_pending_bytes` (503 with `Retry-After` past it).
    """
    metrics = ServiceMetrics()
    assembler = GroupAssembler(pipeline, group_size=group_size, timeout_s=group_timeout_s,
                               on_wait=metrics.group_wait)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await assembler.drain()  # on shutdown (SIGTERM): judge the groups still waiting as they are

    app = FastAPI(title="judgerl reward server", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    app.state.assembler = assembler
    networks = parse_networks(allow_networks)
    tokens = tuple(special_tokens)
    needs_reference = reference_users(pipeline)
    trajectories = pipeline.reads_trajectories()
    budget = RollingFailureBudget(pipeline.config.failure_budget, window=budget_window,
                                  min_items=budget_min_items)
    app.state.failure_budget = budget
    pending = PendingBodies(max_pending_bytes)
    app.state.pending_bodies = pending
    max_body_bytes = min(max_body_bytes, max_pending_bytes)  # a larger body could never be held: 413

    def authorized(request: Request) -> bool:
        if token is None and not networks:
            return True
        if address_allowed(request.client.host if request.client else None, networks):
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given_bytes = given.strip().encode("utf-8", "surrogatepass")
        return (token is not None and scheme.lower() == "bearer" and bool(given)
                and hmac.compare_digest(given_bytes, token.encode()))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> PlainTextResponse:
        if not authorized(request):
            return PlainTextResponse("unauthorized\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        text = metrics.render(pipeline.runtime, assembler, pending_bytes=pending.held,
                              connections=getattr(app.state, "connection_gate", None))
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    async def score(body: RewardRequest, items: list[tuple[Sample, Rollout]]) -> list[Reward]:
        expected = body.group_size or group_size
        if body.group_keys is not None and len(body.group_keys) != len(items):
            raise RequestError(422, f"field 'group_keys' has {len(body.group_keys)} items but 'query' has "
                                    f"{len(items)}")
        if expected > 1:
            return await assembler.score(items, keys=body.group_keys, group_size=expected)
        return await pipeline.score_batch(items, enforce_budget=False)

    async def answer(request: Request, started: float, held: list[int]) -> tuple[JSONResponse, list[Reward]]:
        if not authorized(request):
            message = ("missing or wrong bearer token" if token is not None
                       else "this client's address is not in an allowed network")
            return error_response(401, message), []
        try:
            body = parse_body(await read_body(request, max_body_bytes, pending, held), max_batch)
            items = build_items(body, tokens, needs_reference, trajectories=trajectories)
            rewards = await score(body, items)
        except ClientDisconnect:
            logger.info("get_reward: the client at %s disconnected before its request was read (%d bytes "
                        "received)", client_address(request), held[0])
            return error_response(CLIENT_CLOSED, "the client disconnected"), []
        except RequestError as exc:
            logger.info("get_reward -> %d: %s", exc.status, exc.message)
            return error_response(exc.status, exc.message, exc.retry_after_s), []
        except DataError as exc:
            logger.info("get_reward -> 422: %s", exc)
            return error_response(422, str(exc)), []
        except FatalBackendError as exc:
            logger.error("get_reward -> 502: %s", exc)
            return error_response(502, f"the judge backend refused the call: {exc}"), []
        except BudgetExhausted as exc:  # stop, like the failure budget: no Retry-After, nothing to wait for
            logger.error("get_reward -> 503: %s", exc)
            return error_response(503, f"the judge's spending budget is used up: {exc}",
                                  budget_exhausted=True, spend=exc.spend), []
        except JudgerlError as exc:
            logger.error("get_reward -> 500: %s", exc)
            return error_response(500, str(exc)), []
        try:
            budget.record(rewards)
        except FailureBudgetExceeded as exc:
            logger.error("get_reward -> 503: %s", exc)
            return error_response(503, str(exc), failed=exc.failed, total=exc.total,
                                  reasons=exc.reasons), rewards
        values = [numeric_value(reward) for reward in rewards]
        per_item = [component_values(reward) for reward in rewards]
        names = list(dict.fromkeys(name for components in per_item for name in components))
        extra_logs = {name: [components.get(name, 0.0) for components in per_item] for name in names}
        if await request.is_disconnected():
            logger.info("get_reward: the client at %s disconnected before its answer (%d items judged, "
                        "answer dropped)", client_address(request), len(rewards))
            return error_response(CLIENT_CLOSED, "the client disconnected"), rewards
        logger.info("get_reward -> 200: %d items (%d unscored) in %.2fs", len(rewards),
                    sum(reward.status == "unscored" for reward in rewards), time.monotonic() - started)
        return JSONResponse({"rewards": values, "scores": values, "extra_logs": extra_logs}), rewards

    @app.post("/get_reward")
    async def get_reward(request: Request) -> JSONResponse:
        started = time.monotonic()
        metrics.started()
        status, rewards, held = 500, [], [0]
        try:
            response, rewards = await answer(request, started, held)
            status = response.status_code
            return response
        finally:
            pending.give_back(held[0])
            metrics.finished(status, time.monotonic() - started, rewards)

    return app


def client_address(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "an unknown address"


def draining_server(config: Any, assembler: GroupAssembler) -> Any:
    """A `uvicorn.Server` that, told to stop (SIGTERM, SIGINT), first judges the groups still
    waiting for rollouts as they are: the requests holding them are answered before the server
    waits for its connections to close, not after the group timeout. It is a `GuardedServer`:
    past `max_connections` it stops accepting (connections wait in the listen backlog)."""

    class DrainingServer(GuardedServer):
        async def shutdown(self, sockets: Any = None) -> None:
            assembler.flush_all()
            await super().shutdown(sockets=sockets)

    return DrainingServer(config)


def resolve_token(*, token_env: str, no_auth: bool, allow_networks: Sequence[str] = ()) -> str | None:
    """The bearer token from `token_env`; None with `no_auth`, or when clients are let in by network.

    A missing token with neither is a ConfigError that says what to set.
    """
    if no_auth:
        return None
    token = os.environ.get(token_env, "").strip()
    if not token and not allow_networks:
        raise ConfigError(f"the reward server needs a bearer token: set the environment variable {token_env} "
                          "(e.g. `export JUDGERL_SERVER_TOKEN=$(python -c 'import secrets; "
                          "print(secrets.token_urlsafe())')`), or let clients in by address with "
                          "--allow-network 10.0.0.0/8, or pass --no-auth to serve without either")
    return token or None


def server_config(app: FastAPI, *, host: str = "127.0.0.1", port: int = 5000, log_level: str = "info",
                  header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                  body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
                  max_connections: int = DEFAULT_MAX_CONNECTIONS, backlog: int = DEFAULT_BACKLOG,
                  idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S) -> Any:
    """The `uvicorn.Config` of `judgerl serve`: the guarded h11 protocol (slow-client bounds,
    backpressure past `max_connections`), a listen `backlog` for the connections that wait, the
    asyncio loop (the protocol pauses its listener), access log off (get_reward logs its own line)."""
    import uvicorn

    protocol = guarded_h11_protocol(header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                                    max_connections=max_connections, idle_timeout_s=idle_timeout_s)
    app.state.connection_gate = protocol.gate  # for GET /metrics
    return uvicorn.Config(app, host=host, port=port, http=protocol, loop="asyncio", backlog=backlog,
                          access_log=False, log_level=log_level)


def serve(config: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 5000,
          token_env: str = "JUDGERL_SERVER_TOKEN", no_auth: bool = False, overrides: list[str] | None = None,
          max_batch: int = DEFAULT_MAX_BATCH, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          allow_networks: Sequence[str] = (), special_tokens: Sequence[str] = (),
          tokenizer: str | None = None, budget_window: int = DEFAULT_WINDOW, group_size: int = 1,
          group_timeout_s: float = DEFAULT_GROUP_TIMEOUT_S, log_level: str = "info",
          header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
          max_connections: int = DEFAULT_MAX_CONNECTIONS, backlog: int = DEFAULT_BACKLOG,
          max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES,
          idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S) -> None:
    """Run the server until interrupted (what `judgerl serve` calls).

    `special_tokens` are stripped besides the defaults and the `tokenizer` folder's own. The
    process's soft open-file limit is raised to its hard limit, and `max_connections` and
    `backlog` are fitted under it and the kernel's somaxconn (each change is logged).
    """
    from judgerl.adapters.special_tokens import token_list

    token = resolve_token(token_env=token_env, no_auth=no_auth, allow_networks=allow_networks)
    networks = [] if no_auth else list(allow_networks)
    parse_networks(networks)
    if token is None and not networks and host not in LOOPBACK_HOSTS:
        logger.warning("serving WITHOUT auth on %s: anyone who can reach this port can spend "
                       "your judge budget", host)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    before, after = raise_fd_limit()
    if after != before:
        logger.info("raised the open-file limit (RLIMIT_NOFILE soft) from %d to %d", before, after)
    max_connections, backlog, notes = connection_limits(max_connections, backlog)
    for note in notes:
        logger.warning("%s", note)
    tokens = token_list(special_tokens, tokenizer=tokenizer)
    with RewardPipeline.from_config(str(config), overrides=overrides) as pipeline:
        if group_size > 1 and not whole_group_judges(pipeline):
            logger.warning("--group-size %d: no judge of this config needs whole groups (group, pairwise "
                           "round_robin); holding rollouts only adds latency", group_size)
        app = create_app(pipeline, token=token, max_batch=max_batch, max_body_bytes=max_body_bytes,
                         allow_networks=networks, special_tokens=tokens, budget_window=budget_window,
                         group_size=group_size, group_timeout_s=group_timeout_s,
                         max_pending_bytes=max_pending_bytes)
        draining_server(server_config(app, host=host, port=port, log_level=log_level,
                                      header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                                      max_connections=max_connections, backlog=backlog,
                                      idle_timeout_s=idle_timeout_s),
                        app.state.assembler).run()


__all__ = [
    "PendingBodies",
    "RewardRequest",
    "address_allowed",
    "build_items",
    "create_app",
    "draining_server",
    "label_reference",
    "parse_networks",
    "reference_users",
    "resolve_token",
    "serve",
    "server_config",
    "split_query",
]
