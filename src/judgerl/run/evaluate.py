"""Evaluation runs: k answers per held-out prompt from each model, scored, kept, summarised.

Why: the RFT workflow's question is "did training help, and does the gain generalise?". This
module answers it the same way for every model (a base model, an SFT or RFT checkpoint, a LoRA
adapter, an OpenAI-compatible endpoint): sample k answers per prompt, score each one with the
training reward pipeline and, optionally, with a held-out judge (a second reward config: a
modified rubric or prompt), and write

    OUT/eval/<label>/samples.jsonl   one row per (prompt, k index), written as each batch finishes
    OUT/eval/<label>/summary.json    figures computed from those rows only (`summarize_rows`)

The summary is a pure function of samples.jsonl, so anything it says can be recomputed from the
rows. A rerun with `resume=True` keeps the prompts whose k rows are all there and does the rest.
A judge failure is unscored (left out of every mean and counted in `unscored_share`), never a 0.
While the judge scores one batch, the policy already generates the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgerl.config import BackendConfig, RewardConfig, RuntimeConfig
from judgerl.errors import ConfigError, DataError
from judgerl.models.policy import Generation, SamplingConfig
from judgerl.run.folder import read_rows
from judgerl.runtime.accounting import stats_delta
from judgerl.types import Reward, Rollout, Sample, rollout_id

log = logging.getLogger(__name__)

LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SCHEMA_CHECK_TYPES = ("json_schema", "json_valid")
SCORED = ("ok", "gated")

PipelineSource = Any  # RewardPipeline | RewardConfig | str | Path | dict


@dataclass
class ModelSpec:
    """A model to evaluate: a local `source` (see policy.py for what it may be) or an endpoint."""

    source: str | None = None
    endpoint: BackendConfig | None = None
    merge_adapter: bool = True  # fold a LoRA adapter into the base before sampling (faster)
    dtype: str | None = None

    def __post_init__(self) -> None:
        if (self.source is None) == (self.endpoint is None):
            raise ConfigError(
                "a model is either a local source or an endpoint, not both or neither", field="model"
            )

    def describe(self) -> str:
        if self.endpoint is not None:
            return f"{self.endpoint.options.get('base_url', self.endpoint.type)} ({self.endpoint.model})"
        return str(self.source)


def parse_model_option(text: str, *, dtype: str | None = None) -> tuple[str, ModelSpec]:
    """`label=PATH_OR_NAME` (the CLI's --model) -> (label, spec).

    >>> parse_model_option("base=smollm2-135m-instruct")
    ('base', ModelSpec(source='smollm2-135m-instruct', endpoint=None, merge_adapter=True, dtype=None))
    """
    label, sep, source = text.partition("=")
    if not sep or not source.strip():
        raise ConfigError(f"expected LABEL=PATH_OR_NAME, got {text!r}", field="--model")
    return check_label(label.strip()), ModelSpec(source=source.strip(), dtype=dtype)


def parse_endpoint_option(text: str) -> tuple[str, ModelSpec]:
    """`label=URL,model=NAME[,key=value...]` (the CLI's --endpoint) -> (label, spec).

    Extra keys go to the OpenAI-compatible backend (api_key_env, max_concurrency, rpm, type, ...).

    >>> label, spec = parse_endpoint_option("api=http://127.0.0.1:8000/v1,model=qwen,max_concurrency=8")
    >>> label, spec.endpoint.model, spec.endpoint.options["base_url"], spec.endpoint.max_concurrency
    ('api', 'qwen', 'http://127.0.0.1:8000/v1', 8)
    """
    head, *rest = [part.strip() for part in text.split(",")]
    label, sep, url = head.partition("=")
    if not sep or not url:
        raise ConfigError(f"expected LABEL=URL,model=NAME, got {text!r}", field="--endpoint")
    options: dict[str, Any] = {"type": "openai", "base_url": url}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {part!r} in {text!r}", field="--endpoint")
        options[key.strip()] = value.strip()
    if not options.get("model"):
        raise ConfigError(f"an endpoint needs model=NAME: {text!r}", field="--endpoint")
    from judgerl.config import parse_model

    endpoint = parse_model(BackendConfig, options, path="--endpoint")
    return check_label(label.strip()), ModelSpec(endpoint=endpoint)


def check_label(label: str) -> str:
    if not LABEL_PATTERN.fullmatch(label):
        raise ConfigError(
            f"label {label!r} must be letters, digits, '_', '.' or '-' (it names a folder)", field="label"
        )
    return label


# -- generators --------------------------------------------------------------------------------


class Generator:
    """Samples k answers per prompt; a local policy or an endpoint behind the runtime."""

    def generate(self, samples: Sequence[Sample]) -> list[list[Generation]]:
        raise NotImplementedError

    def close(self) -> None:
        """Free the model or the connections."""


class LocalGenerator(Generator):
    def __init__(self, spec: ModelSpec, sampling: SamplingConfig) -> None:
        from judgerl.models.policy import load_policy

        self.policy = load_policy(str(spec.source), merge_adapter=spec.merge_adapter, dtype=spec.dtype)
        self.sampling = sampling
        self._calls = 0

    def generate(self, samples: Sequence[Sample]) -> list[list[Generation]]:
        # A different seed per batch, fixed by the run's seed, so batches do not repeat each other.
        sampling = SamplingConfig(
            **{
                **asdict(self.sampling),
                "seed": self.sampling.seed + self._calls,
                "batch_size": max(1, len(samples)),
            }
        )
        self._calls += 1
        return self.policy.generate([sample.messages for sample in samples], sampling)

    def close(self) -> None:
        self.policy.close()


class EndpointGenerator(Generator):
    """Samples from an OpenAI-compatible server through a ModelRuntime (retries, limits apply)."""

    NAME = "policy"

    def __init__(
        self, spec: ModelSpec, sampling: SamplingConfig, runtime_config: RuntimeConfig | None = None
    ) -> None:
        from judgerl.backends import build_backend
        from judgerl.runtime.loop import LoopThread
        from judgerl.runtime.model_runtime import ModelRuntime

        assert spec.endpoint is not None
        self.sampling = sampling
        self.loop = LoopThread(name="judgerl-eval-endpoint")
        backend = build_backend(spec.endpoint)
        self.runtime = ModelRuntime({self.NAME: backend}, runtime_config or RuntimeConfig())

    def generate(self, samples: Sequence[Sample]) -> list[list[Generation]]:
        return self.loop.run(self._generate(samples))

    async def _generate(self, samples: Sequence[Sample]) -> list[list[Generation]]:
        import asyncio

        from judgerl.backends.base import CompletionRequest

        async def one(sample: Sample, index: int) -> Generation:
            request = CompletionRequest(
                messages=sample.messages,
                max_tokens=self.sampling.max_new_tokens,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                seed=sample_seed(self.sampling.seed, sample.id, index),
            )
            result = await self.runtime.complete(self.NAME, request)
            if result.completion is None:
                return Generation(
                    text="",
                    completion_tokens=0,
                    finish_reason="error",
                    error=result.error or "endpoint failed",
                )
            completion = result.completion
            return Generation(
                text=completion.text,
                completion_tokens=completion.usage.completion_tokens,
                finish_reason=completion.finish_reason or "stop",
            )

        groups = [
            asyncio.gather(*(one(sample, index) for index in range(self.sampling.k))) for sample in samples
        ]
        return [list(group) for group in await asyncio.gather(*groups)]

    def close(self) -> None:
        self.loop.run(self.runtime.aclose())
        self.loop.close()


def sample_seed(seed: int, sample_id: str, index: int) -> int:
    """A stable per-answer seed, the same on a resumed run.

    >>> sample_seed(0, "a", 1) == sample_seed(0, "a", 1) != sample_seed(0, "a", 2)
    True
    """
    digest = hashlib.sha256(f"{seed}:{sample_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def open_generator(spec: ModelSpec, sampling: SamplingConfig) -> Generator:
    if spec.endpoint is not None:
        return EndpointGenerator(spec, sampling)
    return LocalGenerator(spec, sampling)


# -- scoring -----------------------------------------------------------------------------------


def build_pipeline(source: PipelineSource, backends: dict[str, Any] | None = None) -> tuple[Any, bool]:
    """(pipeline, owned): a RewardPipeline as is (not owned), or one built from a config (owned)."""
    from judgerl.reward.pipeline import RewardPipeline

    if isinstance(source, RewardPipeline):
        return source, False
    return RewardPipeline.from_config(source, backends=backends), True


def find_schema_check(config: RewardConfig, name: str | None = None) -> str | None:
    """The check whose 1.0 means "valid JSON for the schema": `name`, else the first json_schema
    check, else the first json_valid check, else None."""
    names = [check.name for check in config.checks]
    if name is not None:
        if name not in names:
            raise ConfigError(
                f"no check named '{name}' in the reward config (checks: {names})", field="schema_check"
            )
        return name
    for wanted in SCHEMA_CHECK_TYPES:
        for check in config.checks:
            if check.type == wanted:
                return check.name
    return None


def criteria_of(reward: Reward) -> dict[str, float | None]:
    """Per-criterion values of rubric-like judges: {"judge.criterion": value}."""
    found: dict[str, float | None] = {}
    for component, detail in (reward.details.get("scores") or {}).items():
        criteria = (detail.get("details") or {}).get("criteria") if isinstance(detail, dict) else None
        if not isinstance(criteria, dict):
            continue
        for criterion, item in criteria.items():
            value = item.get("value") if isinstance(item, dict) else item
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[f"{component}.{criterion}"] = float(value)
    return found


def _row(
    label: str,
    sample: Sample,
    index: int,
    generation: Generation,
    reward: Reward | None,
    heldout: Reward | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "model": label,
        "prompt_id": sample.id,
        "k": index,
        "prompt": sample.prompt,
        "completion": generation.text,
        "completion_tokens": generation.completion_tokens,
        "finish_reason": generation.finish_reason,
    }
    if generation.error is not None:
        row.update(
            status="generation_failed",
            reason=generation.error,
            reward=None,
            components={},
            criteria={},
            rationale="",
            heldout=None,
        )
        return row
    assert reward is not None
    row.update(
        reward=reward.value,
        status=reward.status,
        reason=reward.reason,
        components=reward.components,
        criteria=criteria_of(reward),
        rationale=reward.rationale,
    )
    row["heldout"] = (
        None
        if heldout is None
        else {
            "reward": heldout.value,
            "status": heldout.status,
            "reason": heldout.reason,
            "components": heldout.components,
            "rationale": heldout.rationale,
        }
    )
    return row


def score_chunk(
    label: str,
    samples: Sequence[Sample],
    generations: Sequence[Sequence[Generation]],
    pipeline: Any,
    heldout_pipeline: Any | None,
) -> list[dict[str, Any]]:
    """Rows for one batch of prompts: the training reward and the held-out reward of each answer."""
    items: list[tuple[Sample, Rollout]] = []
    for sample, answers in zip(samples, generations, strict=True):
        for index, generation in enumerate(answers):
            if generation.error is None:
                items.append(
                    (
                        sample,
                        Rollout(sample.id, generation.text, id=rollout_id(sample.id, index),
                                metadata={"k": index}),
                    )
                )
    rewards = {reward.rollout_id: reward for reward in pipeline.score_batch_sync(items, enforce_budget=False)}
    heldout: dict[str, Reward] = {}
    if heldout_pipeline is not None:
        heldout = {
            reward.rollout_id: reward
            for reward in heldout_pipeline.score_batch_sync(items, enforce_budget=False)
        }
    rows = []
    for sample, answers in zip(samples, generations, strict=True):
        for index, generation in enumerate(answers):
            rollout_key = rollout_id(sample.id, index)
            rows.append(
                _row(label, sample, index, generation, rewards.get(rollout_key), heldout.get(rollout_key))
            )
    return rows


# -- summaries ---------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 6) if values else None


def _scored_value(row: dict[str, Any] | None) -> float | None:
    if not row or row.get("status") not in SCORED or row.get("reward") is None:
        return None
    return float(row["reward"])


def k_figures(
    rows: Sequence[dict[str, Any]], value: Callable[[dict[str, Any]], float | None]
) -> dict[str, float | None]:
    """mean_of_k and best_of_k over prompts with at least one scored answer.

    >>> rows = [{"prompt_id": "a", "v": 0.2}, {"prompt_id": "a", "v": 0.6}, {"prompt_id": "b", "v": 1.0}]
    >>> k_figures(rows, lambda row: row["v"])
    {'mean_of_k': 0.7, 'best_of_k': 0.8, 'prompts_scored': 2}
    """
    by_prompt: dict[str, list[float]] = {}
    for row in rows:
        number = value(row)
        if number is not None:
            by_prompt.setdefault(str(row["prompt_id"]), []).append(number)
    groups = list(by_prompt.values())
    return {
        "mean_of_k": _mean([statistics.fmean(group) for group in groups]),
        "best_of_k": _mean([max(group) for group in groups]),
        "prompts_scored": len(groups),
    }


def _component_means(rows: Sequence[dict[str, Any]], key: str) -> dict[str, float | None]:
    values: dict[str, list[float]] = {}
    for row in rows:
        for name, number in (row.get(key) or {}).items():
            values.setdefault(name, [])
            if number is not None:
                values[name].append(float(number))
    return {name: _mean(numbers) for name, numbers in values.items()}


def summarize_rows(rows: Sequence[dict[str, Any]], *, k: int, schema_check: str | None) -> dict[str, Any]:
    """Every figure of summary.json, from the sample rows alone."""
    generated = [row for row in rows if row.get("status") != "generation_failed"]
    rewards = [value for value in map(_scored_value, generated) if value is not None]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row.get("status", "?")] = statuses.get(row.get("status", "?"), 0) + 1
    summary: dict[str, Any] = {
        "k": k,
        "prompts": len({row["prompt_id"] for row in rows}),
        "samples": len(rows),
        "status_counts": statuses,
        "generation_failed": statuses.get("generation_failed", 0),
        "reward_mean": _mean(rewards),
        "reward_std": round(statistics.pstdev(rewards), 6) if len(rewards) > 1 else None,
        **k_figures(generated, _scored_value),
        "components": _component_means(generated, "components"),
        "criteria": _component_means(generated, "criteria"),
        "unscored_share": _share(generated, lambda row: row.get("status") == "unscored"),
        "gated_share": _share(generated, lambda row: row.get("status") == "gated"),
        "schema_check": schema_check,
        "schema_validity": (
            _share(generated, lambda row: (row.get("components") or {}).get(schema_check) == 1.0)
            if schema_check
            else None
        ),
        "completion_tokens_mean": _mean([float(row.get("completion_tokens") or 0) for row in generated]),
        "truncated_share": _share(generated, lambda row: row.get("finish_reason") == "length"),
    }
    heldout_rows = [row for row in generated if row.get("heldout")]
    if heldout_rows:

        def heldout_value(row: dict[str, Any]) -> float | None:
            return _scored_value(row.get("heldout"))

        heldout_rewards = [value for value in map(heldout_value, heldout_rows) if value is not None]
        summary["heldout"] = {
            "reward_mean": _mean(heldout_rewards),
            **k_figures(heldout_rows, heldout_value),
            "components": _component_means([row["heldout"] for row in heldout_rows], "components"),
            "unscored_share": _share(heldout_rows, lambda row: row["heldout"].get("status") == "unscored"),
        }
    else:
        summary["heldout"] = None
    return summary


def _share(rows: Sequence[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> float | None:
    return round(sum(1 for row in rows if predicate(row)) / len(rows), 6) if rows else None


# -- rows on disk ------------------------------------------------------------------------------


def _keep_complete(path: Path, k: int) -> set[str]:
    """Rewrite samples.jsonl with only the prompts that have all k rows; return their ids."""
    rows = read_rows(path)
    counts: dict[str, set[int]] = {}
    for row in rows:
        counts.setdefault(str(row.get("prompt_id")), set()).add(int(row.get("k", -1)))
    complete = {prompt for prompt, indices in counts.items() if indices == set(range(k))}
    kept = [row for row in rows if str(row.get("prompt_id")) in complete]
    # Always rewritten: a torn last line (a killed run) must not glue itself to the next row.
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept), encoding="utf-8")
    tmp.replace(path)
    return complete


def load_eval_samples(
    path: str | os.PathLike[str], *, limit: int | None = None, warn: Callable[[str], None] | None = None
) -> list[Sample]:
    """Held-out prompts from a file: bad rows are reported (file, line, field) and skipped."""
    from judgerl.data import load_samples

    result = load_samples(path)
    for error in result.errors[:20]:
        (warn or log.warning)(f"skipped: {error}")
    if len(result.errors) > 20 and warn is not None:
        warn(f"... and {len(result.errors) - 20} more bad rows")
    samples = result.samples[:limit] if limit is not None else result.samples
    if not samples:
        raise DataError("no valid samples to evaluate", path=str(path))
    return samples


# -- the run -----------------------------------------------------------------------------------


@dataclass
class EvalSummary:
    """What `evaluate_models` did: one summary dict per label, and where the files are."""

    out_dir: Path
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self) -> list[tuple[str, ...]]:
        """Rows for a terminal table: label, reward, best-of-k, validity, held-out, unscored."""

        def fmt(value: Any) -> str:
            return "-" if value is None else f"{value:.3f}"

        return [
            (
                label,
                fmt(s.get("reward_mean")),
                fmt(s.get("mean_of_k")),
                fmt(s.get("best_of_k")),
                fmt(s.get("schema_validity")),
                fmt((s.get("heldout") or {}).get("reward_mean")),
                fmt(s.get("unscored_share")),
                str(s.get("samples")),
            )
            for label, s in self.models.items()
        ]


def evaluate_models(
    models: dict[str, ModelSpec],
    samples: Sequence[Sample],
    reward_config: PipelineSource,
    *,
    k: int = 4,
    heldout_reward_config: PipelineSource | None = None,
    schema_check_name: str | None = None,
    out_dir: str | os.PathLike[str],
    sampling: SamplingConfig | None = None,
    backends: dict[str, Any] | None = None,
    heldout_backends: dict[str, Any] | None = None,
    resume: bool = True,
    generator_factory: Callable[[ModelSpec, SamplingConfig], Generator] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> EvalSummary:
    """Evaluate each model on `samples`; write OUT/eval/<label>/{samples.jsonl,summary.json}.

    `reward_config` / `heldout_reward_config`: a RewardPipeline (used as is) or a config (path,
    dict, RewardConfig; built with `backends` / `heldout_backends` and closed at the end).
    `sampling` sets temperature, top_p, max_new_tokens, seed, batch size; its k is replaced by `k`.
    `progress(label, n)` is called after each batch of n prompts is written.
    """
    if not samples:
        raise DataError("no samples to evaluate")
    if not models:
        raise ConfigError("no model to evaluate", field="--model")
    for label in models:
        check_label(label)
    sampling = SamplingConfig(**{**asdict(sampling or SamplingConfig()), "k": k})
    factory = generator_factory or open_generator
    out = Path(out_dir)
    pipeline, owned = build_pipeline(reward_config, backends)
    heldout_pipeline, heldout_owned = (
        build_pipeline(heldout_reward_config, heldout_backends)
        if heldout_reward_config is not None
        else (None, False)
    )
    result = EvalSummary(out_dir=out)
    try:
        schema_check = find_schema_check(pipeline.config, schema_check_name)
        for label, spec in models.items():
            result.models[label] = _evaluate_one(
                label,
                spec,
                samples,
                pipeline,
                heldout_pipeline,
                sampling=sampling,
                out=out,
                schema_check=schema_check,
                resume=resume,
                factory=factory,
                progress=progress,
            )
    finally:
        if owned:
            pipeline.close()
        if heldout_owned:
            heldout_pipeline.close()
    return result


def _evaluate_one(
    label: str,
    spec: ModelSpec,
    samples: Sequence[Sample],
    pipeline: Any,
    heldout_pipeline: Any | None,
    *,
    sampling: SamplingConfig,
    out: Path,
    schema_check: str | None,
    resume: bool,
    factory: Callable[[ModelSpec, SamplingConfig], Generator],
    progress: Callable[[str, int], None] | None,
) -> dict[str, Any]:
    folder = out / "eval" / label
    folder.mkdir(parents=True, exist_ok=True)
    rows_path = folder / "samples.jsonl"
    settings = {
        "model": spec.describe(),
        "k": sampling.k,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_new_tokens": sampling.max_new_tokens,
        "seed": sampling.seed,
    }
    settings_path = folder / "settings.json"
    if resume and rows_path.exists() and _settings_changed(settings_path, settings):
        log.warning("%s: settings changed since the last run; starting %s again", folder, label)
        resume = False
    done = _keep_complete(rows_path, sampling.k) if resume and rows_path.exists() else set()
    if not resume:
        rows_path.unlink(missing_ok=True)
    settings_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")
    todo = [sample for sample in samples if sample.id not in done]
    stats_before = pipeline.runtime_stats()
    heldout_before = heldout_pipeline.runtime_stats() if heldout_pipeline is not None else None
    started = time.monotonic()
    generation_s = 0.0
    if todo:
        generator = factory(spec, sampling)
        try:
            generation_s = _run_batches(
                label, todo, generator, pipeline, heldout_pipeline, sampling.batch_size, rows_path, progress
            )
        finally:
            generator.close()
    rows = [row for row in read_rows(rows_path) if str(row.get("prompt_id")) in {s.id for s in samples}]
    summary = {
        "label": label,
        **settings,
        **summarize_rows(rows, k=sampling.k, schema_check=schema_check),
        "resumed_prompts": len(done & {sample.id for sample in samples}),
        "judge": stats_delta(stats_before, pipeline.runtime_stats()),
        "heldout_judge": (
            stats_delta(heldout_before, heldout_pipeline.runtime_stats())
            if heldout_pipeline is not None else None
        ),
        "seconds": round(time.monotonic() - started, 3),
        "generation_seconds": round(generation_s, 3),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = folder / "summary.json.tmp"
    tmp.write_text(json.dumps(_finite(summary), indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(folder / "summary.json")
    return summary


def _settings_changed(path: Path, settings: dict[str, Any]) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")) != settings
    except (OSError, json.JSONDecodeError):
        return True


def _run_batches(
    label: str,
    todo: Sequence[Sample],
    generator: Generator,
    pipeline: Any,
    heldout_pipeline: Any | None,
    batch_size: int,
    rows_path: Path,
    progress: Callable[[str, int], None] | None,
) -> float:
    """Generate batch i+1 while batch i is scored; append rows as each batch is scored."""
    generation_s = 0.0
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgerl-eval-score") as executor,
        rows_path.open("a", encoding="utf-8") as handle,
    ):
        pending: tuple[Future[list[dict[str, Any]]], int] | None = None

        def flush(job: tuple[Future[list[dict[str, Any]]], int]) -> None:
            rows = job[0].result()
            handle.writelines(json.dumps(_finite(row), ensure_ascii=False) + "\n" for row in rows)
            handle.flush()
            if progress is not None:
                progress(label, job[1])

        try:
            for start in range(0, len(todo), batch_size):
                chunk = list(todo[start : start + batch_size])
                began = time.monotonic()
                generations = generator.generate(chunk)
                generation_s += time.monotonic() - began
                if pending is not None:
                    job, pending = pending, None
                    flush(job)
                pending = (
                    executor.submit(score_chunk, label, chunk, generations, pipeline, heldout_pipeline),
                    len(chunk),
                )
        finally:
            # Rows already scored are kept even when a later batch fails.
            if pending is not None:
                flush(pending)
    return generation_s


def _finite(value: Any) -> Any:
    """JSON without NaN / inf (they are not JSON): replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
