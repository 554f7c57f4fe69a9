"""The composite reward: checks -> gate -> judges -> aggregate, for a batch of rollouts.

This is the one object every consumer uses (`judgerl score`, the TRL / verl / OpenRLHF / Lambda
adapters, training, evaluation). It keeps every component of every reward, and it never
turns a judge failure into a number unless the config's `failure_policy` says so:

- a failed hard check (a gate) skips the judges and gives the gate's fixed score (`gated`);
- a judge that could not score gives `unscored` (value None under the default policy,
  0.5 under `neutral`, 0 under `zero`), always with the reason;
- when more than `failure_budget` of a batch is unscored, the batch raises
  `FailureBudgetExceeded` (with the rewards attached) instead of training on noise.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from judgerl.backends.base import Backend
from judgerl.config import CheckConfig, RewardConfig, load_reward_config
from judgerl.errors import ConfigError, FailureBudgetExceeded
from judgerl.judges.base import Judge
from judgerl.reward.aggregate import Formula, weighted_mean
from judgerl.reward.dry_run import DryRunBackend
from judgerl.runtime.loop import LoopThread
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Reward, Rollout, Sample, Score

NEUTRAL_SCORE = 0.5
RewardCallback = Callable[[Reward], None]


class RewardPipeline:
    """Scores rollouts with the checks and judges of one `RewardConfig`."""

    def __init__(self, config: RewardConfig, runtime: ModelRuntime,
                 checks: Sequence[tuple[CheckConfig, Callable[[Sample, Rollout], Score]]],
                 judges: Sequence[Judge]) -> None:
        self.config = config
        self.runtime = runtime
        self.checks = list(checks)
        self.judges = list(judges)
        self.weights = {check_config.name: check_config.weight for check_config, _ in self.checks}
        self.weights.update({judge.name: judge.weight for judge in self.judges})
        if len(self.weights) != len(self.checks) + len(self.judges):
            raise ConfigError("check and judge names must be unique", field="name")
        self.formula = None
        if config.aggregate.method == "formula":
            if not config.aggregate.formula:
                raise ConfigError("method 'formula' needs a formula", field="aggregate.formula")
            self.formula = Formula(config.aggregate.formula, set(self.weights))
        self._loop: LoopThread | None = None

    @classmethod
    def from_config(cls, source: RewardConfig | str | dict[str, Any], *,
                    backends: dict[str, Backend] | None = None,
                    overrides: list[str] | None = None, dry_run: bool = False) -> RewardPipeline:
        """Build from a config (path, dict or model). `backends` replaces the configured ones;
        `dry_run` replaces each by a `DryRunBackend` (no model is called; judges answer neutrally)."""
        from judgerl.backends import build_backend
        from judgerl.checks import build_check
        from judgerl.judges import build_judge

        config = source if isinstance(source, RewardConfig) else load_reward_config(source, overrides)
        dry_run_backends: list[DryRunBackend] = []
        if dry_run:
            if backends is not None:
                raise ConfigError("dry run replaces every backend: pass `backends` or `dry_run`, not both")
            dry_run_backends = [DryRunBackend() for _ in config.backends]
            backends = dict(zip(config.backends, dry_run_backends, strict=True))
        if backends is None:
            backends = {name: build_backend(backend_config, config.base_dir)
                        for name, backend_config in config.backends.items()}
        runtime = ModelRuntime(backends, config.runtime, base_dir=config.base_dir)
        for judge_config in config.judges:
            if judge_config.backend not in backends:
                raise ConfigError(f"backend '{judge_config.backend}' is not defined in `backends` "
                                  f"(defined: {sorted(backends)})",
                                  path=config.source, field=f"judges.{judge_config.name}.backend")
        checks = [(check_config, build_check(check_config, config.base_dir))
                  for check_config in config.checks]
        judges = [build_judge(judge_config, runtime, config.base_dir) for judge_config in config.judges]
        for backend in dry_run_backends:
            backend.serve(judges)
        return cls(config, runtime, checks, judges)

    # -- scoring ---------------------------------------------------------------------------

    async def score_group(self, sample: Sample, rollouts: Sequence[Rollout]) -> list[Reward]:
        """Rewards for the rollouts of one sample, in order."""
        check_scores = [self._run_checks(sample, rollout) for rollout in rollouts]
        gates = [self._gate(scores) for scores in check_scores]
        open_indices = [index for index, gate in enumerate(gates) if gate is None]
        judge_scores: dict[int, dict[str, Score]] = {index: {} for index in open_indices}
        if open_indices and self.judges:
            open_rollouts = [rollouts[index] for index in open_indices]
            results = await asyncio.gather(
                *(judge.score_group(sample, open_rollouts) for judge in self.judges))
            for judge, scores in zip(self.judges, results, strict=True):
                if len(scores) != len(open_rollouts):
                    raise RuntimeError(f"judge '{judge.name}' returned {len(scores)} scores "
                                       f"for {len(open_rollouts)} rollouts")
                for index, score in zip(open_indices, scores, strict=True):
                    judge_scores[index][judge.name] = score
        rewards = []
        for index, rollout in enumerate(rollouts):
            if gates[index] is not None:
                rewards.append(self._gated_reward(sample, rollout, check_scores[index], gates[index]))
            else:
                rewards.append(self._aggregate(sample, rollout, check_scores[index], judge_scores[index]))
        return rewards

    async def _score_batch(self, items: Sequence[tuple[Sample, Rollout]],
                           on_reward: RewardCallback | None) -> list[Reward]:
        groups: OrderedDict[str, tuple[Sample, list[int]]] = OrderedDict()
        for position, (sample, _rollout) in enumerate(items):
            groups.setdefault(sample.id, (sample, []))[1].append(position)
        results: list[Reward | None] = [None] * len(items)

        async def one_group(sample: Sample, positions: list[int]) -> None:
            rewards = await self.score_group(sample, [items[p][1] for p in positions])
            for position, reward in zip(positions, rewards, strict=True):
                results[position] = reward
                if on_reward is not None:
                    on_reward(reward)

        await asyncio.gather(*(one_group(sample, positions) for sample, positions in groups.values()))
        return [reward for reward in results if reward is not None]

    async def score_batch(self, items: Sequence[tuple[Sample, Rollout]], *,
                          on_reward: RewardCallback | None = None,
                          enforce_budget: bool = True) -> list[Reward]:
        """Score a batch (any mix of samples); groups rollouts by sample for group judges.

        Safe to await from any event loop: the work runs on the pipeline's own loop.
        `on_reward` is called (on that loop's thread) as each reward is ready.
        """
        rewards = await self.loop_thread().arun(self._score_batch(items, on_reward))
        if enforce_budget:
            self.check_failure_budget(rewards)
        return rewards

    def score_batch_sync(self, items: Sequence[tuple[Sample, Rollout]], *,
                         on_reward: RewardCallback | None = None,
                         enforce_budget: bool = True) -> list[Reward]:
        """`score_batch` for synchronous callers (verl, Lambda, scripts)."""
        rewards = self.loop_thread().run(self._score_batch(items, on_reward))
        if enforce_budget:
            self.check_failure_budget(rewards)
        return rewards

    def check_failure_budget(self, rewards: Sequence[Reward]) -> None:
        """Raise FailureBudgetExceeded when the unscored share passes the budget."""
        budget = self.config.failure_budget
        if budget is None or not rewards:
            return
        failed = [reward for reward in rewards if reward.status == "unscored"]
        if len(failed) / len(rewards) > budget:
            reasons = Counter((reward.reason or "unknown").split(":")[0] for reward in failed)
            error = FailureBudgetExceeded(len(failed), len(rewards), budget, dict(reasons),
                                          example=failed[0].reason)
            error.rewards = list(rewards)  # type: ignore[attr-defined]
            raise error

    # -- pieces ----------------------------------------------------------------------------

    def _run_checks(self, sample: Sample, rollout: Rollout) -> dict[str, Score]:
        return {check_config.name: check(sample, rollout) for check_config, check in self.checks}

    def _gate(self, scores: dict[str, Score]) -> CheckConfig | None:
        """The first hard check that failed, or None."""
        for check_config, _ in self.checks:
            score = scores[check_config.name]
            if check_config.gate and (score.value is None or score.value < check_config.gate_threshold):
                return check_config
        return None

    def _gated_reward(self, sample: Sample, rollout: Rollout, checks: dict[str, Score],
                      gate: CheckConfig) -> Reward:
        components: dict[str, float | None] = {name: score.value for name, score in checks.items()}
        components.update({judge.name: None for judge in self.judges})
        failed = checks[gate.name]
        return Reward(sample_id=sample.id, rollout_id=rollout.id, value=gate.gate_score,
                      components=components, status="gated",
                      reason=f"gate:{gate.name}", rationale=f"[{gate.name}] {failed.rationale}".strip(),
                      details={"scores": {name: _score_detail(score) for name, score in checks.items()}})

    def _aggregate(self, sample: Sample, rollout: Rollout, checks: dict[str, Score],
                   judged: dict[str, Score]) -> Reward:
        scores = {**checks, **judged}
        components = {name: score.value for name, score in scores.items()}
        rationale = "\n".join(f"[{name}] {score.rationale}" for name, score in judged.items()
                              if score.rationale)
        details = {"scores": {name: _score_detail(score) for name, score in scores.items()}}
        unscored = [(name, score) for name, score in scores.items() if score.value is None]
        if unscored:
            name, score = unscored[0]
            reason = f"{score.reason or 'unscored'} ({name})"
            policy = self.config.failure_policy
            value = None if policy == "unscored" else (NEUTRAL_SCORE if policy == "neutral" else 0.0)
            return Reward(sample_id=sample.id, rollout_id=rollout.id, value=value, components=components,
                          rationale=rationale, status="unscored", reason=reason,
                          details={**details, "failure_policy": policy})
        values = {name: float(value) for name, value in components.items() if value is not None}
        if self.formula is not None:
            value = self.formula(values)
        elif values:
            value = weighted_mean(values, self.weights)
        else:
            raise ConfigError("the reward config has no checks and no judges")
        return Reward(sample_id=sample.id, rollout_id=rollout.id, value=value, components=components,
                      rationale=rationale, status="ok", details=details)

    def runtime_stats(self) -> dict[str, Any]:
        """The runtime's accounting now (calls, tokens, cost, latencies): `RuntimeStats.snapshot()`."""
        return self.runtime.stats.snapshot()

    # -- lifecycle -------------------------------------------------------------------------

    def loop_thread(self) -> LoopThread:
        """The pipeline's own event loop (one thread), started on first use: judge work that is not
        `score_batch` (the validation's probes) runs here too, under the same runtime limits."""
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def close(self) -> None:
        """Close backends (connections, files) and the pipeline's loop."""
        if self._loop is not None:
            self._loop.run(self.runtime.aclose())
            self._loop.close()
            self._loop = None

    def __enter__(self) -> RewardPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _score_detail(score: Score) -> dict[str, Any]:
    return {"value": score.value, "status": score.status, "reason": score.reason,
            "rationale": score.rationale, **({"details": score.details} if score.details else {})}
