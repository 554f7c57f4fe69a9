"""One way for every judge to call its model: render, call through the runtime, parse, re-ask once.

Why shared: the rules around a judge call are the same for all judges and easy to get subtly
wrong in three places: exactly one bounded re-ask on a malformed answer (showing the judge its
answer and what was wrong), a backend failure reported as "unscored" with the runtime's reason
(never a made-up score), and one journal entry per judgment with everything needed to audit it
later (prompt version and hash, raw outputs, parsed scores, attempts, latency, tokens).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from judgerl.backends.base import Completion, CompletionRequest
from judgerl.judges.templates import PromptTemplate
from judgerl.types import Rollout, Sample

if TYPE_CHECKING:
    from judgerl.runtime.model_runtime import ModelRuntime

T = TypeVar("T")

REASK_MESSAGE = ("Your answer could not be used: {error}. Reply again with only the JSON object, "
                 "in exactly the shape asked for, and nothing else.")


@dataclass
class CallLog:
    """What one or more model calls of a single judgment cost and returned (for the journal)."""

    raw_outputs: list[str] = field(default_factory=list)
    prompt_hashes: list[str] = field(default_factory=list)
    attempts: int = 0
    latency_s: float = 0.0
    #: the backend's own time (no queueing): what a judgment costs the endpoint
    service_s: float = 0.0
    tokens: int = 0
    calls: int = 0
    cached_calls: int = 0
    #: each call's rendered request (messages and, for scoring: logprob, the candidate tokens):
    #: what a distilled judge is trained on and what an audit replays
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: the model that answered each call (as the backend reports it)
    models: list[str] = field(default_factory=list)
    #: USD of the fresh calls at the runtime's configured prices (None: no price for the model)
    cost_usd: float | None = None

    @property
    def cached(self) -> bool:
        return self.calls > 0 and self.cached_calls == self.calls

    def merge(self, other: CallLog) -> None:
        self.raw_outputs += other.raw_outputs
        self.prompt_hashes += other.prompt_hashes
        self.attempts += other.attempts
        self.latency_s += other.latency_s
        self.service_s += other.service_s
        self.tokens += other.tokens
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.models += other.models
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd
        self.requests += other.requests


@dataclass
class CallOutcome(Generic[T]):
    """A parsed result, or None with the reason ("parse_error: ..." or the runtime's error)."""

    value: T | None
    reason: str | None
    log: CallLog

    @property
    def ok(self) -> bool:
        return self.reason is None


async def call_and_parse(runtime: ModelRuntime, backend_name: str, request: CompletionRequest,
                         parse: Callable[[Completion], T], *, reasks: int = 1) -> CallOutcome[T]:
    """Call the model and parse its answer; on `JudgeParseError` re-ask up to `reasks` times.

    A re-ask appends the judge's bad answer and a short correction to the conversation. A call
    that fails in the runtime is not re-asked here (the runtime already retried it).

    Parse-then-cache: `parse` is handed to the runtime as `accept`, so only an answer that
    parsed is written to the cache (a rerun never replays an unusable answer).
    """
    log = CallLog()
    error: str | None = None
    for round_ in range(reasks + 1):
        result = await runtime.complete(backend_name, request, accept=parse)
        log.calls += 1
        log.attempts += result.attempts
        log.latency_s += result.latency_s
        log.service_s += result.service_s
        log.cached_calls += int(result.cached or getattr(result, "deduplicated", False))
        log.prompt_hashes.append(request.fingerprint())
        log.requests.append({"messages": [dict(message) for message in request.messages],
                             "candidate_tokens": list(request.candidate_tokens or [])})
        if result.completion is None:
            return CallOutcome(None, result.error or "backend call failed", log)
        completion = result.completion
        log.raw_outputs.append(completion.text)
        log.tokens += completion.usage.total_tokens
        log.models.append(completion.model)
        fresh = not (result.cached or getattr(result, "deduplicated", False))
        cost = runtime.stats.price_usd(completion.model, completion.usage) if fresh else None
        if cost is not None:
            log.cost_usd = (log.cost_usd or 0.0) + cost
        if result.parse_error is None:
            return CallOutcome(result.parsed, None, log)
        error = result.parse_error
        if completion.finish_reason == "length":
            error += " (the answer was cut off at max_tokens)"
        if round_ < reasks:
            request = replace(request, messages=[
                *request.messages,
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": REASK_MESSAGE.format(error=error)},
            ])
    return CallOutcome(None, f"parse_error: {error}", log)


def record_judgment(runtime: ModelRuntime, *, judge: str, kind: str, prompt: PromptTemplate,
                    sample_id: str, rollout_ids: list[str], log: CallLog, outcome: str,
                    reason: str | None, scores: Any = None, rationale: str = "",
                    extra: dict[str, Any] | None = None,
                    inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one journal entry for one judgment (however many calls it took) and return it.

    `inputs` (see `judgment_inputs`) is what was judged: the question, the reference and the
    answers, so the judgment can be replayed through another judge or distilled into a student.
    """
    entry: dict[str, Any] = {
        "time": time.time(),
        "judge": judge,
        "judge_kind": kind,
        "prompt_name": prompt.name,
        "prompt_version": prompt.version,
        "prompt_hash": log.prompt_hashes[0] if log.prompt_hashes else None,
        "prompt_hashes": log.prompt_hashes,
        "sample_id": sample_id,
        "rollout_ids": rollout_ids,
        "raw_outputs": log.raw_outputs,
        "scores": scores,
        "rationale": rationale,
        "latency_s": round(log.latency_s, 6),
        "service_s": round(log.service_s, 6),
        "tokens": log.tokens,
        "calls": log.calls,
        "attempts": log.attempts,
        "cached": log.cached,
        "outcome": outcome,
        "reason": reason,
        "requests": log.requests,
        "model": log.models[0] if len(set(log.models)) == 1 else (log.models or None),
        "cost_usd": None if log.cost_usd is None else round(log.cost_usd, 8),
    }
    if inputs is not None:
        entry["inputs"] = inputs
    if extra:
        entry.update(extra)
    runtime.record(entry)
    return entry


def judgment_inputs(sample: Sample, rollouts: list[Rollout]) -> dict[str, Any]:
    """What a judgment judged, for the journal: the sample's messages and reference, the answers."""
    return {"messages": [dict(message) for message in sample.messages], "reference": sample.reference,
            "answers": [rollout.completion for rollout in rollouts]}
