"""The reward function `judgerl train` hands to TRL, with what the monitors need on the side.

Why not just `judgerl.adapters.trl.reward_function`: a training run also has to *watch* the
reward. This wrapper scores a step's rollouts exactly like the adapter (one concurrent
`RewardPipeline.score_batch`, `None` for unscored so TRL leaves it out of the advantage, the
adapter's `log_rewards` for component means and shares), and in the same call:

- scores a random sample of the rollouts with the held-out reward, concurrently with the main one;
- logs each component's spread, the judge calls / tokens / cost of the step (from the runtime's
  stats), the run's spend so far (`judge/spent_usd`, `judge/spent_tokens`, with the budget when
  `runtime.budget_usd` / `budget_tokens` is set; the pipeline raises `BudgetExhausted` when the
  budget refuses a judgment, and `GrpoRun` saves a checkpoint and stops) and the hacking
  signals of `monitors.SignalTracker` through TRL's `log_metric`, so they
  land in TRL's logs, TensorBoard and `metrics.jsonl`;
- appends every rollout with its reward and components to `completions.jsonl`.

Samples are looked up by the dataset's `id` column, so checks and judges see the original
sample (its reference and metadata), not a copy rebuilt from TRL's columns.

Under `accelerate launch` (`ranks` given) all of this happens on the main process over the
global batch (`adapters.trl_ranks.score_across_ranks`): the other ranks hold no pipeline, send
their rows and take their rewards back; the spreads, judge use and hacking signals are logged by
the main process alone and so describe the whole batch, and only it writes `completions.jsonl`
(with the rank each rollout was generated on).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from judgerl.adapters.trl import attach_trajectory, completion_text, log_rewards
from judgerl.adapters.trl_ranks import ROW_RANKS, Ranks, score_across_ranks
from judgerl.data import JsonlWriter
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.accounting import stats_delta
from judgerl.train.monitors import SignalTracker
from judgerl.trajectory import TrajectoryError
from judgerl.types import Reward, Rollout, Sample, rollout_id

METRIC_PREFIX = "reward"
#: counters of the runtime's stats (runtime/accounting.py) logged per step as `judge/<name>`
JUDGE_COUNTERS = ("calls", "backend_calls", "attempts", "cache_hits", "dedup_hits", "failed", "prompt_tokens",
                  "completion_tokens", "total_tokens", "cost_usd")


class TrainingReward:
    """An async TRL reward function over `pipeline`; see the module docstring."""

    __name__ = "judgerl"

    def __init__(self, pipeline: RewardPipeline | None, samples: Sequence[Sample], *,
                 tracker: SignalTracker | None = None, held_out: RewardPipeline | None = None,
                 held_out_sample: int = 4, completions_path: Path | None = None, seed: int = 0,
                 tools: list[dict[str, Any]] | None = None, ranks: Ranks | None = None) -> None:
        if pipeline is None and (ranks is None or ranks.is_main):
            raise ValueError("the training reward needs a pipeline on the main process")
        self.pipeline = pipeline
        self.tools = tools  # the schemas of the recipe's tools: `Rollout.tools` of tool-using rollouts
        self.ranks = ranks
        self.samples = {sample.id: sample for sample in samples}
        self.tracker = tracker
        self.held_out = held_out
        self.held_out_sample = held_out_sample
        self.completions_path = completions_path
        self._writer: JsonlWriter | None = None
        self._random = random.Random(seed)
        self._last_stats = pipeline.runtime_stats() if pipeline is not None else {}
        self.calls = 0

    def items(self, completions: Sequence[Any], ids: Sequence[str],
              trajectory_errors: dict[int, str] | None = None) -> list[tuple[Sample, Rollout]]:
        """(Sample, Rollout) pairs; the k rollouts of one prompt share the sample, ids `<sample>#<n>`.

        A conversational completion with tool calls or results (TRL's tool-calling loop) keeps its
        messages as `Rollout.trajectory`; a malformed one is recorded in `trajectory_errors`."""
        seen: dict[str, int] = {}
        items = []
        for index, (completion, sample_id) in enumerate(zip(completions, ids, strict=True)):
            sample = self.samples[str(sample_id)]
            count = seen.get(sample.id, 0)
            seen[sample.id] = count + 1
            rollout = Rollout(sample_id=sample.id, completion=completion_text(completion),
                              id=rollout_id(sample.id, count))
            if trajectory_errors is not None:
                try:
                    attach_trajectory(rollout, completion, self.tools)
                except TrajectoryError as exc:
                    trajectory_errors[index] = f"bad trajectory: {exc}"
            items.append((sample, rollout))
        return items

    async def _score(self, items: list[tuple[Sample, Rollout]], errors: dict[int, str]) -> list[Reward]:
        """The pipeline's rewards; a rollout whose trajectory cannot be read is unscored, not judged."""
        if not errors:
            return await self.pipeline.score_batch(items)
        good = [item for index, item in enumerate(items) if index not in errors]
        scored = iter(await self.pipeline.score_batch(good) if good else [])
        return [self.pipeline.unscored_reward(*item, None, errors[index])
                if index in errors else next(scored) for index, item in enumerate(items)]

    async def __call__(self, prompts: list[Any], completions: list[Any],
                       completion_ids: list[list[int]] | None = None, **kwargs: Any) -> list[float | None]:
        if self.ranks is None:
            return await self.score(prompts, completions, completion_ids, **kwargs)
        return await score_across_ranks(self.score, prompts, completions, completion_ids, kwargs, self.ranks)

    async def score(self, prompts: list[Any], completions: list[Any],
                    completion_ids: list[list[int]] | None = None, **kwargs: Any) -> list[float | None]:
        """Score one batch (the global one, in a multi-process run) in this process."""
        if self.pipeline is None:
            raise RuntimeError("the training reward scores on the main process only")
        errors: dict[int, str] = {}
        items = self.items(completions, kwargs["id"], errors)
        sampled = [index for index in self._held_out_indices(len(items)) if index not in errors]
        if self.held_out is not None and sampled:
            rewards, held = await asyncio.gather(
                self._score(items, errors),
                self.held_out.score_batch([items[index] for index in sampled], enforce_budget=False))
        else:
            rewards, held = await self._score(items, errors), []
        self.calls += 1
        step = _step(kwargs.get("trainer_state"))
        metrics = self.step_metrics(rewards)
        if self.tracker is not None:
            lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                       else [len(rollout.completion.split()) for _, rollout in items])
            pairs = [(rewards[index].value, reward.value) for index, reward in zip(sampled, held, strict=True)
                     if rewards[index].value is not None and reward.value is not None]
            metrics.update(self.tracker.observe([rollout.completion for _, rollout in items], lengths, pairs))
        log_rewards(rewards, kwargs, prefix=METRIC_PREFIX, log_rationales=False)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            for name, value in metrics.items():
                if not math.isnan(value):
                    log_metric(name, value)
        self._write(step, items, rewards, ROW_RANKS.get())
        return [reward.value for reward in rewards]

    def _held_out_indices(self, count: int) -> list[int]:
        if self.held_out is None or count == 0:
            return []
        return sorted(self._random.sample(range(count), min(self.held_out_sample, count)))

    def step_metrics(self, rewards: Sequence[Reward]) -> dict[str, float]:
        """Each component's std (the adapter logs the means) and the judge's use since the last call."""
        metrics: dict[str, float] = {}
        names = list(dict.fromkeys(name for reward in rewards for name in reward.components))
        for name in names:
            values = [value for reward in rewards if (value := reward.components.get(name)) is not None]
            if values:
                metrics[f"{METRIC_PREFIX}/{name}/std"] = statistics.pstdev(values)
        stats = self.pipeline.runtime_stats() if self.pipeline is not None else {}
        spent = stats_delta(self._last_stats, stats)
        metrics.update({f"judge/{key}": float(spent[key]) for key in JUDGE_COUNTERS
                        if isinstance(spent.get(key), (int, float))})
        # the spend of the whole run so far (this process), next to the budget when one is set
        for key, name in (("cost_usd", "spent_usd"), ("total_tokens", "spent_tokens"),
                          ("budget_usd", "budget_usd"), ("budget_tokens", "budget_tokens")):
            if isinstance(stats.get(key), (int, float)):
                metrics[f"judge/{name}"] = float(stats[key])
        self._last_stats = stats
        return metrics

    def _write(self, step: int, items: Sequence[tuple[Sample, Rollout]], rewards: Sequence[Reward],
               row_ranks: Sequence[int] | None = None) -> None:
        """Append the batch to completions.jsonl (the main process's global batch in a multi-process run)."""
        if self.completions_path is None:
            return
        if self._writer is None:
            self._writer = JsonlWriter(self.completions_path)
        for index, ((sample, rollout), reward) in enumerate(zip(items, rewards, strict=True)):
            row = {"step": step, "sample_id": sample.id, "rollout_id": rollout.id,
                   "prompt": sample.prompt, "completion": rollout.completion,
                   "reward": reward.value, "status": reward.status, "reason": reward.reason,
                   "components": reward.components}
            if rollout.trajectory:
                row["trajectory"] = rollout.trajectory
            if row_ranks is not None:
                row["rank"] = row_ranks[index]
            self._writer.write(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _step(state: Any) -> int:
    """The optimizer step these rollouts train (TRL scores before the step completes)."""
    return int(getattr(state, "global_step", 0)) + 1

