"""The judge's cost and time forecast behind `judgerl plan`: exact in calls by construction.

Why render instead of multiply: how many calls a judge makes per rollout depends on the judge
type and on the row (criteria, per-prompt rubric items, turns, both orders of a pairwise judge,
panel members on other backends, a group judge's one call per group). Rather than know judge types
by name, the forecast runs the real `RewardPipeline` on sample rows with stand-in answers through
recording stand-in backends (`RecordingBackend`, a `DryRunBackend` that keeps every request and
its backend): every `CompletionRequest` a judge would send is rendered by the judge itself, with
its real templates, messages, `max_tokens` and candidate tokens. A judge type added tomorrow is
counted the day it answers dry runs.

What is forecast, per judge and backend: calls per rollout and per step, prompt and completion
tokens (counted with the backend's tokenizer where it is on disk: the `local` backend's model, a
transformers tokenizer given with `--tokenizer`, the scripted backend's own count; else estimated
at 4 characters a token, and said so), USD at `runtime.prices` (no price: tokens only, and said
so), the calls the SQLite cache already answers (`runtime.cache_path`), and the judging time per
step from each backend's `max_concurrency`, `rpm`, `tpm` and an expected latency (given, or
measured by probing the real backend with real calls).

Stand-in answers are not real answers: checks and gates are not run on them (every stand-in is
judged, an upper bound when a gate would have stopped some), re-asks after an unparsable answer
and retries are not forecast, and a completion's length is the judge's dry-run answer's. With a
rollout file the real answers are scored through the whole pipeline (checks and gates included),
which is what `judgerl score` of that file will send.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from judgerl.backends.base import Backend, CompletionRequest, render_prompt
from judgerl.backends.scripted import ScriptedBackend, _approx_tokens
from judgerl.config import RewardConfig
from judgerl.errors import ConfigError, DataError, FatalBackendError
from judgerl.judges.base import Judge
from judgerl.reward.dry_run import DryRunBackend
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.cache import CompletionCache, cache_key
from judgerl.runtime.loop import LoopThread
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.runtime.ratelimit import estimate_tokens
from judgerl.types import Rollout, Sample, rollout_id

#: the text stand-in answers are cut from (plain words: about one token a word for most tokenizers)
STAND_IN_TEXT = ("The customer asked a clear question and this answer responds to it directly with the "
                 "facts that matter, the steps to take next, and a short note on what to expect. ")
ESTIMATE = "estimate (4 characters a token)"


# ---------------------------------------------------------------------------------------------
# what is planned


@dataclass
class PlanPart:
    """One reward config scored during the run, and how often.

    `groups` are the sampled rows, each with the answers of one prompt; `groups_per_step` of them
    are scored per step (prompts per step; for a held-out reward, the rollouts it samples), for
    `steps` steps. `run_checks`: real answers go through the whole pipeline (checks, gates);
    stand-ins go to every judge."""

    name: str
    config: RewardConfig
    groups: list[tuple[Sample, list[Rollout]]]
    groups_per_step: float
    steps: int
    rows_total: int
    run_checks: bool = False
    answers: str = "stand-in"


@dataclass
class Recorded:
    """One request a judge sent to a (recording) backend while scoring group `group`."""

    backend: str
    judge: str
    group: int
    request: CompletionRequest
    answer: str


class RecordingBackend(DryRunBackend):
    """A dry-run backend that keeps every request it answers, with its backend's name and group."""

    def __init__(self, name: str, sink: list[Recorded], group: list[int]) -> None:
        super().__init__()
        self.name = name
        self.sink = sink
        self.group = group  # a one-item list the planner sets to the group being scored

    def _answer(self, request: CompletionRequest) -> Any:
        answer = super()._answer(request)
        text = answer if isinstance(answer, str) else answer.text
        self.sink.append(Recorded(self.name, request.tag, self.group[0], request, text))
        return answer


def structured_reference(sample: Sample) -> str | None:
    """The sample's reference when it is a JSON object or list: an answer of the shape the task asks
    for (judges that read items of a structured answer judge each item)."""
    if not sample.reference:
        return None
    try:
        parsed = json.loads(sample.reference)
    except ValueError:
        return None
    return sample.reference if isinstance(parsed, (dict, list)) else None


def variant(reference: str, index: int) -> str:
    """The structured reference with its first text value marked `(index)`: the same shape, a
    different answer (judges that compare answers skip identical ones, real answers differ).

    >>> variant('{"points": ["a", "b"]}', 2)
    '{"points": ["a (2)", "b"]}'
    """
    if index == 0:
        return reference
    parsed = json.loads(reference)
    stack: list[Any] = [parsed]
    while stack:
        node = stack.pop(0)
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, value in items:
            if isinstance(value, str):
                node[key] = f"{value} ({index})"
                return json.dumps(parsed, ensure_ascii=False)
            if isinstance(value, (dict, list)):
                stack.append(value)
    return json.dumps(parsed, ensure_ascii=False) + " " * index


def stand_in_answers(sample: Sample, count: int, tokens: int, counter: TokenCounter) -> list[Rollout]:
    """`count` different answers: the sample's reference when it is structured (JSON), each marked
    apart (`variant`), else plain text of about `tokens` tokens. Real answers differ from each
    other, so stand-ins are never taken for cache or dedup hits (real answers from a rollout file
    are)."""
    rollouts = []
    reference = structured_reference(sample)
    for index in range(count):
        text = f"Answer {index + 1}. " + STAND_IN_TEXT * (1 + (tokens * 8) // len(STAND_IN_TEXT))
        text = variant(reference, index) if reference is not None else counter.cut(text, tokens)
        rollouts.append(Rollout(sample_id=sample.id, completion=text, id=rollout_id(sample.id, index)))
    return rollouts


def record_requests(part: PlanPart) -> list[Recorded]:
    """Every request the part's judges send for its groups (see the module docstring).

    A judge that cannot render a row is a `DataError` naming the row and the judge's field."""
    config = part.config
    runtime = config.runtime.model_copy(update={"cache_path": None, "journal_path": None, "dedup": False,
                                                "budget_usd": None, "budget_tokens": None})
    config = config.model_copy(update={"runtime": runtime})
    sink: list[Recorded] = []
    group = [0]
    recorders = {name: RecordingBackend(name, sink, group) for name in config.backends}
    pipeline = RewardPipeline.from_config(config, backends=dict(recorders))
    for recorder in recorders.values():
        recorder.serve(pipeline.judges)
    loop = LoopThread()
    try:
        for index, (sample, rollouts) in enumerate(part.groups):
            group[0] = index
            if part.run_checks:
                rewards = loop.run(pipeline.score_group(sample, rollouts))
                for reward in rewards:
                    for judge in pipeline.judges:
                        if reward.status == "unscored" and (reward.reason or "").endswith(f"({judge.name})"):
                            _cannot_render(part, judge, sample, reward.reason or "")
            else:
                for judge in pipeline.judges:
                    scores = loop.run(_judge(judge, sample, rollouts))
                    failed = next((score for score in scores if score.value is None), None)
                    if failed is not None:
                        _cannot_render(part, judge, sample, failed.reason or "unscored")
    finally:
        loop.run(pipeline.runtime.aclose())
        loop.close()
    return sink


async def _judge(judge: Judge, sample: Sample, rollouts: list[Rollout]) -> list[Any]:
    try:
        return list(await judge.score_group(sample, rollouts))
    except (FatalBackendError, KeyError) as exc:
        raise DataError(f"judge '{judge.name}' cannot be planned: {exc}",
                        field=f"judges.{judge.name}") from exc
    except Exception as exc:
        raise DataError(f"judge '{judge.name}' cannot render a request for sample {sample.id!r}: "
                        f"{type(exc).__name__}: {exc}", field=f"judges.{judge.name}") from exc


def _cannot_render(part: PlanPart, judge: Judge, sample: Sample, reason: str) -> None:
    raise DataError(f"{part.name}: judge '{judge.name}' cannot judge sample {sample.id!r} (its dry run "
                    f"gave no score: {reason}); fix the row or the judge's options",
                    path=part.config.source, field=f"judges.{judge.name}")


# ---------------------------------------------------------------------------------------------
# counting tokens


class TokenCounter:
    """Tokens of a request and of an answer, the way one backend counts them (see `how`)."""

    def __init__(self, how: str, *, tokenizer: Any = None, local_chat_template: bool | None = None,
                 scripted: ScriptedBackend | None = None, candidate_completion: int = 1) -> None:
        self.how = how
        self.tokenizer = tokenizer
        self.local_chat_template = local_chat_template
        self.scripted = scripted
        self.candidate_completion = candidate_completion

    @property
    def exact(self) -> bool:
        return self.how != ESTIMATE

    def text(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return max(1, len(text) // 4)

    def cut(self, text: str, tokens: int) -> str:
        """`text` cut to about `tokens` tokens."""
        if self.tokenizer is None:
            return text[: max(4, tokens * 4)].rstrip()
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][:max(1, tokens)]
        return str(self.tokenizer.decode(ids)).strip()

    def prompt(self, request: CompletionRequest) -> int:
        if self.scripted is not None:
            return _approx_tokens(" ".join(message.get("content", "") for message in request.messages))
        if self.tokenizer is None:
            return estimate_tokens(request.messages)
        if self.local_chat_template is not None:
            use_template = request.extra.get("chat_template", self.local_chat_template)
            return self.text(render_prompt(request, self.tokenizer if use_template else None))
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(request.messages, tokenize=True,
                                                     add_generation_prompt=True)
            if not isinstance(ids, list):  # a BatchEncoding (transformers 5) rather than the ids
                ids = ids["input_ids"]
            return len(ids)
        return self.text("\n\n".join(message.get("content", "") for message in request.messages))

    def completion(self, request: CompletionRequest, answer: str) -> int:
        if request.candidate_tokens:
            return self.candidate_completion
        if self.scripted is not None:
            real = self.scripted.responder(request)
            if isinstance(real, str):
                return _approx_tokens(real)
            return _approx_tokens(answer)
        return min(request.max_tokens, self.text(answer))


def token_counter(backend: Backend | None, tokenizer_path: str | None = None) -> TokenCounter:
    """How `backend`'s tokens are counted: a tokenizer on disk when there is one, else an estimate."""
    from judgerl.backends.local.backend import LocalBackend

    if tokenizer_path is not None:
        return TokenCounter(f"tokenizer {tokenizer_path}", tokenizer=_load_tokenizer(tokenizer_path))
    if isinstance(backend, LocalBackend):
        from judgerl.models.packaged import resolve_model

        folder = resolve_model(backend.model)
        # the local backend scores candidates in its prompt pass: no completion token
        return TokenCounter(f"tokenizer of {backend.model}", tokenizer=_load_tokenizer(str(folder)),
                            local_chat_template=backend.chat_template, candidate_completion=0)
    if isinstance(backend, ScriptedBackend):
        return TokenCounter("the scripted backend's own count", scripted=backend)
    return TokenCounter(ESTIMATE)


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load a tokenizer from {path}: {exc}", field="tokenizer") from exc


# ---------------------------------------------------------------------------------------------
# the forecast


@dataclass
class PlanOptions:
    """What the forecast needs beyond the parts: latencies, generation time, probes, tokenizers."""

    latency_s: dict[str, float] = field(default_factory=dict)  # backend name (or "*") -> seconds
    generation_s: float | None = None  # the policy's generation per step
    probe: int = 0  # real calls per backend to measure the latency
    tokenizers: dict[str, str] = field(default_factory=dict)  # backend name -> tokenizer folder


def forecast(parts: Sequence[PlanPart], options: PlanOptions | None = None) -> dict[str, Any]:
    """The whole forecast as a JSON-ready dict (see docs/guides/judge-cost.md for every field)."""
    options = options or PlanOptions()
    judges: list[dict[str, Any]] = []
    per_backend: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    for part in parts:
        real = _real_backends(part, notes)
        counters = {name: token_counter(real.get(name), options.tokenizers.get(name))
                    for name in part.config.backends}
        recorded = record_requests(part)
        cached = _cached_keys(part, real, recorded)
        dedup_wide = part.config.runtime.cache_path is not None
        collapse = part.run_checks  # identical real answers are asked once; stand-ins are not real
        seen: set[tuple[int, str]] = set()
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for index, call in enumerate(recorded):
            row = rows.setdefault((call.judge, call.backend), {
                "calls": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0, "max_tokens": 0})
            counter = counters[call.backend]
            row["calls"] += 1
            row["prompt_tokens"] += counter.prompt(call.request)
            row["completion_tokens"] += counter.completion(call.request, call.answer)
            row["max_tokens"] = max(row["max_tokens"], call.request.max_tokens)
            key = cached[index]
            if key is not None and key[1]:
                row["cached"] += 1
            elif key is not None and collapse:
                scope = (-1 if dedup_wide else call.group, key[0])
                if scope in seen:
                    row["cached"] += 1  # the same call again: the cache or the dedup answers it
                seen.add(scope)
        groups = max(1, len(part.groups))
        rollouts_per_group = sum(len(rollouts) for _, rollouts in part.groups) / groups
        for (judge_name, backend_name), row in rows.items():
            scale = part.groups_per_step / groups  # sampled groups -> one step
            backend_config = part.config.backends[backend_name]
            backend = real.get(backend_name)
            model = backend.model if backend is not None else (backend_config.model or backend_config.type)
            price = part.config.runtime.prices.get(model)
            sent_share = 1 - row["cached"] / row["calls"] if row["calls"] else 0.0
            step = {"calls": row["calls"] * scale, "prompt_tokens": row["prompt_tokens"] * scale,
                    "completion_tokens": row["completion_tokens"] * scale}
            step["sent_calls"] = step["calls"] * sent_share
            usd_step = None
            if price is not None:
                usd_step = sent_share * (step["prompt_tokens"] * price.input_per_mtok
                                         + step["completion_tokens"] * price.output_per_mtok) / 1e6
            elif not any(f"model '{model}'" in note for note in notes):
                notes.append(f"no price for model '{model}' (backend '{backend_name}') in runtime.prices: "
                             "its tokens are forecast, not its cost")
            rollouts_step = part.groups_per_step * rollouts_per_group
            judges.append({
                "part": part.name, "judge": judge_name, "backend": backend_name, "model": model,
                "tokens_counted_by": counters[backend_name].how,
                "calls_per_rollout": round(step["calls"] / rollouts_step, 4) if rollouts_step else None,
                "calls_per_step": round(step["calls"], 3),
                "sent_calls_per_step": round(step["sent_calls"], 3),
                "prompt_tokens_per_call": round(row["prompt_tokens"] / row["calls"], 1),
                "completion_tokens_per_call": round(row["completion_tokens"] / row["calls"], 1),
                "max_tokens": row["max_tokens"],
                "calls": round(step["calls"] * part.steps, 1),
                "cached_calls": round((step["calls"] - step["sent_calls"]) * part.steps, 1),
                "prompt_tokens": round(step["prompt_tokens"] * sent_share * part.steps),
                "completion_tokens": round(step["completion_tokens"] * sent_share * part.steps),
                "usd": None if usd_step is None else round(usd_step * part.steps, 6),
                "usd_per_step": None if usd_step is None else round(usd_step, 6),
            })
            load = per_backend.setdefault((part.name, backend_name), {
                "part": part.name, "backend": backend_name, "model": model,
                "kind": backend.kind if backend is not None else backend_config.type,
                "max_concurrency": backend.max_concurrency if backend is not None
                else backend_config.max_concurrency,
                "rpm": backend_config.rpm, "tpm": backend_config.tpm,
                "sent_calls_per_step": 0.0, "tokens_per_step": 0.0, "_requests": []})
            load["sent_calls_per_step"] += step["sent_calls"]
            load["tokens_per_step"] += sent_share * (step["prompt_tokens"] + step["completion_tokens"])
        for call in recorded:
            per_backend[(part.name, call.backend)]["_requests"].append(call.request)
        if options.probe:
            _probe(part, real, per_backend, options.probe, notes)
        _close(real)
        if not part.run_checks and any(check.gate for check in part.config.checks):
            notes.append(f"{part.name}: stand-in answers are judged without running the checks: a gate "
                         "that stops some real answers makes the real calls fewer (the forecast is an "
                         "upper bound)")
    backends = [_timing(load, options) for load in per_backend.values()]
    total = _total(judges, backends, options, parts)
    for counter_how in {row["tokens_counted_by"] for row in judges}:
        if counter_how == ESTIMATE:
            notes.append("tokens of backends without a tokenizer on disk are estimated at 4 characters a "
                         "token (pass --tokenizer BACKEND=FOLDER for an exact count)")
    return {"parts": [_part_summary(part) for part in parts], "judges": judges, "backends": backends,
            "total": total, "budget": _budget(parts, total), "notes": notes}


def _part_summary(part: PlanPart) -> dict[str, Any]:
    groups = max(1, len(part.groups))
    rollouts = sum(len(rollouts) for _, rollouts in part.groups)
    return {"name": part.name, "config": part.config.source, "steps": part.steps,
            "groups_per_step": part.groups_per_step,
            "rollouts_per_step": round(part.groups_per_step * rollouts / groups, 3),
            "rows_sampled": len(part.groups), "rows_total": part.rows_total, "answers": part.answers,
            "checks_run": part.run_checks}


def _real_backends(part: PlanPart, notes: list[str]) -> dict[str, Backend]:
    """The configured backends, built (nothing is loaded or connected): their model, limits, cache
    identity and tokenizer. One that cannot be built here (a missing SDK or key) is left out and
    noted: its figures come from the config alone, and no cache hit is counted for it."""
    from judgerl.backends import build_backend

    built: dict[str, Backend] = {}
    for name, backend_config in part.config.backends.items():
        try:
            built[name] = build_backend(backend_config, part.config.base_dir)
        except Exception as exc:
            notes.append(f"backend '{name}' cannot be built here ({type(exc).__name__}: {exc}): its "
                         "limits come from the config, its tokens are estimated, no cache hit is counted")
    return built


def _close(backends: dict[str, Backend]) -> None:
    async def close() -> None:
        for backend in backends.values():
            await backend.aclose()

    asyncio.run(close())


def _cached_keys(part: PlanPart, real: dict[str, Backend], recorded: list[Recorded]
                 ) -> list[tuple[str, bool] | None]:
    """For each recorded request: (its cache key, whether the cache at runtime.cache_path holds it)."""
    keys: list[tuple[str, bool] | None] = []
    path = part.config.runtime.cache_path
    cache = None
    if path is not None and part.config.path(path).is_file():
        cache = CompletionCache(part.config.path(path))
    try:
        for call in recorded:
            backend = real.get(call.backend)
            if backend is None:
                keys.append(None)
                continue
            key = cache_key(backend.cache_identity(), call.request)
            keys.append((key, cache is not None and cache.get(key) is not None))
    finally:
        if cache is not None:
            cache.close()
    return keys


def _probe(part: PlanPart, real: dict[str, Backend], loads: dict[tuple[str, str], dict[str, Any]],
           count: int, notes: list[str]) -> None:
    """Send `count` of each backend's rendered requests for real (one at a time, no cache, after one
    warm-up call that is not counted) and keep the median latency; what the probe cost is noted."""
    runtime_config = part.config.runtime.model_copy(update={"cache_path": None, "journal_path": None})
    runtime = ModelRuntime(real, runtime_config, base_dir=part.config.base_dir)
    loop = LoopThread()
    try:
        for (part_name, backend_name), load in loads.items():
            if part_name != part.name or backend_name not in real:
                continue
            latencies, errors = [], []
            requests = load["_requests"]
            if requests:  # a warm-up call first (a connection, a model load), not counted
                loop.run(runtime.complete(backend_name, requests[0], use_cache=False))
            for request in requests[:count]:
                result = loop.run(runtime.complete(backend_name, request, use_cache=False))
                if result.ok:
                    latencies.append(result.service_s or result.latency_s)
                else:
                    errors.append(result.reason or "failed")
            if latencies:
                load["probe_latency_s"] = round(statistics.median(latencies), 4)
                load["probe_calls"] = len(latencies)
            if errors:
                notes.append(f"probe of backend '{backend_name}': {len(errors)} of {count} calls failed "
                             f"({', '.join(sorted(set(errors)))})")
        spent = runtime.stats.snapshot()
        notes.append(f"{part.name}: the probe made {spent['attempts']} real calls "
                     f"({spent['total_tokens']} tokens, ${spent['cost_usd']:.4f})")
    finally:
        loop.run(runtime.aclose())  # on the loop their connections were opened on (safe to repeat)
        loop.close()


def _timing(load: dict[str, Any], options: PlanOptions) -> dict[str, Any]:
    """Judging time per step of one backend: the slowest of concurrency x latency, RPM and TPM."""
    load = {key: value for key, value in load.items() if key != "_requests"}
    name = load["backend"]
    latency = load.get("probe_latency_s")
    source = "probe" if latency is not None else None
    if latency is None and (name in options.latency_s or "*" in options.latency_s):
        latency, source = options.latency_s.get(name, options.latency_s.get("*")), "given"
    calls, tokens = load["sent_calls_per_step"], load["tokens_per_step"]
    bounds: dict[str, float] = {}
    if latency is not None:
        bounds["latency"] = math.ceil(calls / load["max_concurrency"] - 1e-9) * latency
    if load["rpm"]:
        bounds["rpm"] = 60.0 * calls / load["rpm"]
    if load["tpm"]:
        bounds["tpm"] = 60.0 * tokens / load["tpm"]
    judging = max(bounds.values()) if bounds else None
    # without a latency only the RPM / TPM bounds are known: a lower bound (`complete` false)
    return {**load, "sent_calls_per_step": round(calls, 3), "tokens_per_step": round(tokens),
            "latency_s": latency, "latency_from": source,
            "judging_s_per_step": None if judging is None else round(judging, 3),
            "bound_by": max(bounds, key=lambda key: bounds[key]) if bounds else None,
            "complete": latency is not None}


def _total(judges: list[dict[str, Any]], backends: list[dict[str, Any]], options: PlanOptions,
           parts: Sequence[PlanPart]) -> dict[str, Any]:
    usd_known = [row["usd"] for row in judges if row["usd"] is not None]
    priced = len(usd_known) == len(judges)
    by_part: dict[str, list[float]] = defaultdict(list)
    for backend in backends:
        if backend["judging_s_per_step"] is not None:
            by_part[backend["part"]].append(backend["judging_s_per_step"])
    complete = all(backend["complete"] for backend in backends)
    # the parts of a step (the training reward and the held-out one) are judged concurrently
    judging = max((max(values) for values in by_part.values()), default=None)
    steps = max((part.steps for part in parts), default=0)
    total: dict[str, Any] = {
        "calls": round(sum(row["calls"] for row in judges), 1),
        "cached_calls": round(sum(row["cached_calls"] for row in judges), 1),
        "sent_calls": round(sum(row["calls"] - row["cached_calls"] for row in judges), 1),
        "calls_per_step": round(sum(row["calls_per_step"] for row in judges), 3),
        "prompt_tokens": sum(row["prompt_tokens"] for row in judges),
        "completion_tokens": sum(row["completion_tokens"] for row in judges),
        "usd": round(sum(usd_known), 6) if priced and judges else None,
        "usd_priced_part": round(sum(usd_known), 6) if usd_known else None,
        "usd_per_step": round(sum(row["usd_per_step"] or 0.0 for row in judges), 6) if priced else None,
        "tokens_exact": all(row["tokens_counted_by"] != ESTIMATE for row in judges),
        "judging_s_per_step": judging if complete else None,
        "judging_at_least_s_per_step": judging if not complete else None,
        "generation_s_per_step": options.generation_s,
    }
    total["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    if judging is not None and options.generation_s is not None:
        step = judging + options.generation_s
        total["step_s"] = round(step, 3)
        total["judging_share"] = round(judging / step, 3) if step else None
        total["bound_by"] = "judging" if judging > options.generation_s else "generation"
        total["run_s"] = round(step * steps, 1)
    elif judging is not None:
        total["judging_run_s"] = round(judging * steps, 1)
    return total


def _budget(parts: Sequence[PlanPart], total: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the forecast fits `runtime.budget_usd` / `budget_tokens`, and at which step it would stop."""
    runtime = parts[0].config.runtime if parts else None
    if runtime is None or (runtime.budget_usd is None and runtime.budget_tokens is None):
        return None
    steps = max(part.steps for part in parts)
    out: dict[str, Any] = {"budget_usd": runtime.budget_usd, "budget_tokens": runtime.budget_tokens}
    stops = []
    if runtime.budget_tokens is not None and total["total_tokens"]:
        per_step = total["total_tokens"] / steps
        stops.append(int(runtime.budget_tokens // per_step) if per_step else steps)
    if runtime.budget_usd is not None and total["usd"]:
        per_step = total["usd"] / steps
        stops.append(int(runtime.budget_usd // per_step) if per_step else steps)
    if stops:
        last = min(stops)
        out["fits"] = last >= steps
        out["last_step_within_budget"] = min(last, steps)
    return out
