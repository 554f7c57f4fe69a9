"""The composite reward: checks -> gate -> judges -> aggregate, for a batch of rollouts.

This is the one object every consumer uses (`judgerl score`, the TRL / verl / OpenRLHF / Lambda
adapters, training, evaluation). It keeps every component of every reward, and it never
turns a judge failure into a number unless the config's `failure_policy` says so:

- a failed hard check (a gate) skips the judges and gives the gate's fixed score (`gated`);
- a judge that could not score gives `unscored` (value None under the default policy,
  0.5 under `neutral`, 0 under `zero`), always with the reason;
- when more than `failure_budget` of a batch is unscored, the batch raises
  `FailureBudgetExceeded` (with the rewards attached) instead of training on noise.

Every failure is isolated to its row: a text that is not valid Unicode, a check that raises
(a `match` check on a row without a reference), a judge that raises while rendering or parsing,
a formula that divides by zero: that row is `unscored` with the reason (naming the file and
line when the row came from a file), and every other row is scored. Only what would fail every
row alike stops the batch: a `FatalBackendError` (bad key, unknown model) and the budget.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from judgerl.aggregate import Formula, weighted_mean
from judgerl.backends.base import Backend
from judgerl.config import BackendConfig, CheckConfig, RewardConfig, load_reward_config
from judgerl.data import find_lone_surrogate, lone_surrogate, surrogate_message
from judgerl.errors import BudgetExhausted, ConfigError, DataError, FailureBudgetExceeded, FatalBackendError
from judgerl.judges.base import Judge
from judgerl.judges.verdict_tokens import check_verdict_tokens
from judgerl.reward.dry_run import DryRunBackend
from judgerl.runtime.loop import LoopThread
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Reward, Rollout, Sample, Score, reason_key

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
        #: every backend is the dry run's neutral stand-in (set by `from_config(dry_run=True)`)
        self.dry_run = False
        self.weights = {check_config.name: check_config.weight for check_config, _ in self.checks}
        self.weights.update({judge.name: judge.weight for judge in self.judges})
        source = config.source
        if len(self.weights) != len(self.checks) + len(self.judges):
            names = [check_config.name for check_config, _ in self.checks]
            names += [judge.name for judge in self.judges]
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ConfigError(f"check and judge names must be unique: {', '.join(map(repr, twice))} "
                              "is used more than once", path=source, field="name")
        if not self.weights:
            raise ConfigError("the reward config has no checks and no judges", path=source)
        self.formula = None
        if config.aggregate.method == "formula":
            if not config.aggregate.formula:
                raise ConfigError("method 'formula' needs a formula", path=source, field="aggregate.formula")
            try:
                self.formula = Formula(config.aggregate.formula, set(self.weights))
            except ConfigError as exc:
                raise exc.located(source) from exc
        elif not any(self.weights.values()):
            raise ConfigError("every check and judge has weight 0: the weighted mean is undefined",
                              path=source, field="weight")
        self._loop: LoopThread | None = None
        self._verdict_tokens_checked = False
        self._verdict_check: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, source: RewardConfig | str | dict[str, Any], *,
                    backends: dict[str, Backend] | None = None,
                    overrides: list[str] | None = None, dry_run: bool = False) -> RewardPipeline:
        """Build from a config (path, dict or model). `backends` replaces the configured ones;
        `dry_run` replaces each by a `DryRunBackend` (no model is called; judges answer neutrally)."""
        from judgerl.backends import build_backend
        from judgerl.checks import build_check
        from judgerl.judges import JUDGE_TYPES, build_judge, needs_own_backend

        config = source if isinstance(source, RewardConfig) else load_reward_config(source, overrides)
        path = config.source
        dry_run_backends: list[DryRunBackend] = []
        if dry_run:
            if backends is not None:
                raise ConfigError("dry run replaces every backend: pass `backends` or `dry_run`, not both")
            for name, backend_config in config.backends.items():
                with _located(path, f"backends.{name}"):
                    _check_backend_config(backend_config)
            dry_run_backends = [DryRunBackend() for _ in config.backends]
            # a dry run costs nothing: no budget (and no price) applies to its stand-in backends
            config = config.model_copy(update={"runtime": config.runtime.model_copy(
                update={"budget_usd": None, "budget_tokens": None})})
            backends = dict(zip(config.backends, dry_run_backends, strict=True))
        if backends is None:
            backends = {}
            for name, backend_config in config.backends.items():
                with _located(path, f"backends.{name}"):
                    backends[name] = build_backend(backend_config, config.base_dir)
        with _located(path, None):
            runtime = ModelRuntime(backends, config.runtime, base_dir=config.base_dir)
        try:
            for judge_config in config.judges:
                if judge_config.type not in JUDGE_TYPES:
                    continue  # build_judge names the unknown type: the first thing to fix
                if needs_own_backend(judge_config) and judge_config.backend not in backends:
                    raise ConfigError(f"backend '{judge_config.backend}' is not defined in `backends` "
                                      f"(defined: {sorted(backends)})",
                                      path=path, field=f"judges.{judge_config.name}.backend")
            checks = []
            for check_config in config.checks:
                with _located(path, f"checks.{check_config.name}"):
                    checks.append((check_config, build_check(check_config, config.base_dir)))
            judges = []
            for judge_config in config.judges:
                with _located(path, f"judges.{judge_config.name}"):
                    judges.append(build_judge(judge_config, runtime, config.base_dir))
            for backend in dry_run_backends:
                backend.serve(judges)
            pipeline = cls(config, runtime, checks, judges)
            pipeline.dry_run = dry_run
            return pipeline
        except BaseException:
            runtime.close_files()  # the cache and journal were opened; nothing else was started
            raise

    # -- scoring ---------------------------------------------------------------------------

    async def check_verdict_tokens(self) -> None:
        """Refuse, once and before any judgment, a logprob judge whose verdict tokens its backend's
        API cannot score (judges/verdict_tokens.py): a `ConfigError` naming a working pair."""
        if self._verdict_tokens_checked:
            return
        # The groups of a batch start together: they share one check (one warning, one set of
        # tokenize requests), not one each.
        loop = asyncio.get_running_loop()
        task = self._verdict_check
        if task is None or task.get_loop() is not loop:
            task = loop.create_task(check_verdict_tokens(self.judges, self.runtime.backends))
            self._verdict_check = task
        await asyncio.shield(task)
        self._verdict_tokens_checked = True

    async def score_group(self, sample: Sample, rollouts: Sequence[Rollout]) -> list[Reward]:
        """Rewards for the rollouts of one sample, in order; a row's failure stays that row's."""
        if self.judges and not self._verdict_tokens_checked:
            await self.check_verdict_tokens()
        rewards: list[Reward | None] = [None] * len(rollouts)
        check_scores: dict[int, dict[str, Score]] = {}
        sample_problem = _invalid_sample_text(sample)
        for index, rollout in enumerate(rollouts):
            problem = sample_problem or _invalid_rollout_text(rollout)
            if problem is not None:
                rewards[index] = self.unscored_reward(sample, rollout, {}, f"invalid_text: {problem}")
                continue
            scores = self._run_checks(sample, rollout)
            failed = next(((name, score) for name, score in scores.items() if score.value is None), None)
            if failed is not None:
                name, score = failed
                rewards[index] = self.unscored_reward(sample, rollout, scores,
                                                       f"{score.reason or 'unscored'} ({name})")
                continue
            gate = self._gate(scores)
            if gate is not None:
                rewards[index] = self._gated_reward(sample, rollout, scores, gate)
                continue
            check_scores[index] = scores
        open_indices = list(check_scores)
        judge_scores: dict[int, dict[str, Score]] = {index: {} for index in open_indices}
        if open_indices and self.judges:
            open_rollouts = [rollouts[index] for index in open_indices]
            try:
                results = await asyncio.gather(
                    *(self._judge_group(judge, sample, open_rollouts) for judge in self.judges))
            except FatalBackendError as exc:
                # the rows decided without a judge (gated, invalid) are final: the caller keeps them
                exc.rewards = [reward for reward in rewards if reward is not None]  # type: ignore[attr-defined]
                raise
            for judge, scores in zip(self.judges, results, strict=True):
                for index, score in zip(open_indices, scores, strict=True):
                    judge_scores[index][judge.name] = score
        for index in open_indices:
            rewards[index] = self._aggregate(sample, rollouts[index], check_scores[index],
                                             judge_scores[index])
        return [reward for reward in rewards if reward is not None]

    async def _judge_group(self, judge: Judge, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        """The judge's scores for these rollouts; if the judge raises, each is unscored with why.

        `FatalBackendError` is not caught: every other call would fail the same way."""
        try:
            scores = await judge.score_group(sample, rollouts)
        except (FatalBackendError, asyncio.CancelledError):
            raise
        except Exception as exc:
            reason = f"judge_error: judge '{judge.name}' raised {type(exc).__name__}: {_short(exc)}"
            return [Score.unscored(judge.name, reason) for _ in rollouts]
        if len(scores) != len(rollouts):
            reason = (f"judge_error: judge '{judge.name}' returned {len(scores)} scores "
                      f"for {len(rollouts)} rollouts")
            return [Score.unscored(judge.name, reason) for _ in rollouts]
        return list(scores)

    async def _score_batch(self, items: Sequence[tuple[Sample, Rollout]],
                           on_reward: RewardCallback | None) -> list[Reward]:
        groups: OrderedDict[str, tuple[Sample, list[int]]] = OrderedDict()
        for position, (sample, _rollout) in enumerate(items):
            groups.setdefault(sample.id, (sample, []))[1].append(position)
        results: list[Reward | None] = [None] * len(items)

        async def one_group(sample: Sample, positions: list[int]) -> None:
            try:
                rewards = await self.score_group(sample, [items[p][1] for p in positions])
            except FatalBackendError as exc:
                if on_reward is not None:
                    for reward in getattr(exc, "rewards", []):
                        on_reward(reward)
                raise
            for position, reward in zip(positions, rewards, strict=True):
                results[position] = reward
                if on_reward is not None:
                    on_reward(reward)

        # A fatal error (a revoked key, expired credentials) ends the batch, but only once every
        # group has finished: the groups whose judgments came back are kept (`on_reward`), not
        # dropped with the batch (the runtime fails the calls after a 401 / 403 / 404 at once).
        outcomes = await asyncio.gather(
            *(one_group(sample, positions) for sample, positions in groups.values()), return_exceptions=True)
        failure = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failure is not None:
            raise failure
        return [reward for reward in results if reward is not None]

    async def score_batch(self, items: Sequence[tuple[Sample, Rollout]], *,
                          on_reward: RewardCallback | None = None,
                          enforce_budget: bool = True) -> list[Reward]:
        """Score a batch (any mix of samples); groups rollouts by sample for group judges.

        Safe to await from any event loop: the work runs on the pipeline's own loop.
        `on_reward` is called (on that loop's thread) as each reward is ready.
        """
        rewards = await self.loop_thread().arun(self._score_batch(items, on_reward))
        self.check_spending_budget(rewards)
        if enforce_budget:
            self.check_failure_budget(rewards)
        return rewards

    def score_batch_sync(self, items: Sequence[tuple[Sample, Rollout]], *,
                         on_reward: RewardCallback | None = None,
                         enforce_budget: bool = True) -> list[Reward]:
        """`score_batch` for synchronous callers (verl, Lambda, scripts)."""
        rewards = self.loop_thread().run(self._score_batch(items, on_reward))
        self.check_spending_budget(rewards)
        if enforce_budget:
            self.check_failure_budget(rewards)
        return rewards

    def reads_trajectories(self) -> bool:
        """Whether some component reads a tool-using rollout's trajectory (a tool check, a judge
        with scope trajectory / turns): adapters then score a turn that only calls tools."""
        return any(getattr(check, "reads_trajectory", lambda: False)() for _, check in self.checks) or \
            any(judge.reads_trajectory() for judge in self.judges)

    def check_spending_budget(self, rewards: Sequence[Reward]) -> None:
        """Raise BudgetExhausted (the rewards attached) when the runtime's spending budget refused a
        judgment of this batch: those rows are unscored `budget_exhausted`, not failures of the judge,
        and the caller must stop (and keep the finished rows) rather than go on without a judge."""
        budget = self.runtime.budget
        if budget.exhausted is None:
            return
        refused = sum(1 for reward in rewards if (reward.reason or "").startswith("budget_exhausted"))
        if not refused:
            return
        spend = {**self.runtime_stats(), **budget.snapshot()}
        error = BudgetExhausted(
            f"{budget.exhausted}; {refused} of {len(rewards)} judgments of the batch left unscored "
            f"(budget_exhausted); spent so far: {spend_text(spend)}. Raise the budget and rerun to go on",
            spend)
        error.rewards = list(rewards)
        raise error

    def check_failure_budget(self, rewards: Sequence[Reward]) -> None:
        """Raise FailureBudgetExceeded when the unscored share passes the budget."""
        budget = self.config.failure_budget
        if budget is None or not rewards:
            return
        failed = [reward for reward in rewards if reward.status == "unscored"]
        if len(failed) / len(rewards) > budget:
            reasons = Counter(reason_key(reward.reason) for reward in failed)
            error = FailureBudgetExceeded(len(failed), len(rewards), budget, dict(reasons),
                                          example=failed[0].reason)
            error.rewards = list(rewards)  # type: ignore[attr-defined]
            raise error

    # -- pieces ----------------------------------------------------------------------------

    def _run_checks(self, sample: Sample, rollout: Rollout) -> dict[str, Score]:
        """Every check's score; a check that raises is that check's unscored score, with why."""
        scores = {}
        for check_config, check in self.checks:
            name = check_config.name
            try:
                scores[name] = check(sample, rollout)
            except DataError as exc:
                where = rollout.location or f"sample {sample.id!r}"
                field = f", field '{exc.field}'" if exc.field else ""
                scores[name] = Score.unscored(name, f"data_error: {where}{field}: {exc.detail} "
                                                    f"(sample {sample.id!r}, rollout {rollout.id!r})")
            except Exception as exc:
                where = rollout.location or f"sample {sample.id!r}, rollout {rollout.id!r}"
                scores[name] = Score.unscored(name, f"check_error: {where}: check '{name}' raised "
                                                    f"{type(exc).__name__}: {_short(exc)}")
        return scores

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
        unscored = [(name, score) for name, score in scores.items() if score.value is None]
        if unscored:
            name, score = unscored[0]
            return self.unscored_reward(sample, rollout, scores, f"{score.reason or 'unscored'} ({name})",
                                         rationale=rationale)
        values = {name: float(value) for name, value in components.items() if value is not None}
        try:
            value = self.formula(values) if self.formula is not None else weighted_mean(values, self.weights)
        except Exception as exc:  # FormulaEvaluationError and anything else: this row's failure only
            return self.unscored_reward(sample, rollout, scores, f"aggregate_error: {_short(exc)}",
                                         rationale=rationale)
        details = {"scores": {name: _score_detail(score) for name, score in scores.items()}}
        return Reward(sample_id=sample.id, rollout_id=rollout.id, value=value, components=components,
                      rationale=rationale, status="ok", details=details)

    def unscored_reward(self, sample: Sample, rollout: Rollout, scores: dict[str, Score] | None, reason: str,
                        *, rationale: str = "") -> Reward:
        """An unscored reward (value from `failure_policy`) keeping whatever components were computed.

        Adapters use it too, for a rollout they cannot hand to the pipeline (an unreadable
        trajectory, a deadline): one place decides what unscored is worth."""
        scores = scores or {}
        components: dict[str, float | None] = {name: score.value for name, score in scores.items()}
        for check_config, _ in self.checks:
            components.setdefault(check_config.name, None)
        for judge in self.judges:
            components.setdefault(judge.name, None)
        policy = self.config.failure_policy
        value = None if policy == "unscored" else (NEUTRAL_SCORE if policy == "neutral" else 0.0)
        details = {"scores": {name: _score_detail(score) for name, score in scores.items()},
                   "failure_policy": policy}
        return Reward(sample_id=sample.id, rollout_id=rollout.id, value=value, components=components,
                      rationale=rationale, status="unscored", reason=reason, details=details)

    def runtime_stats(self) -> dict[str, Any]:
        """The runtime's accounting now (calls, tokens, cost, latencies): `RuntimeStats.snapshot()`,
        and the spend against `runtime.budget_usd` / `budget_tokens` when one is set."""
        stats = self.runtime.stats.snapshot()
        if self.runtime.budget.active:
            stats.update(self.runtime.budget.snapshot())
        return stats

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


def spend_text(stats: dict[str, Any]) -> str:
    """One line of what the runtime spent: calls, tokens, USD (and the budgets, when set).

    >>> spend_text({"attempts": 3, "total_tokens": 120, "cost_usd": 0.0012, "budget_usd": 0.001})
    '3 calls sent, 120 tokens, $0.0012 (budget $0.001)'
    """
    text = (f"{stats.get('attempts', 0)} calls sent, {stats.get('total_tokens', 0)} tokens, "
            f"${stats.get('cost_usd', 0.0):.4g}")
    budgets = [f"${stats['budget_usd']:g}" if stats.get("budget_usd") is not None else None,
               f"{stats['budget_tokens']} tokens" if stats.get("budget_tokens") is not None else None]
    budgets = [item for item in budgets if item]
    return text + (f" (budget {', '.join(budgets)})" if budgets else "")


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _invalid_sample_text(sample: Sample) -> str | None:
    """Why the sample's prompt or reference cannot be handled (a lone surrogate), or None."""
    found = find_lone_surrogate(sample.messages, "messages")
    if found is not None:
        return f"sample {sample.id!r}, field '{found[0]}' {surrogate_message(found[1])}"
    if sample.reference is not None and (index := lone_surrogate(sample.reference)) is not None:
        return f"sample {sample.id!r}, field 'reference' {surrogate_message(index)}"
    return None


def _invalid_rollout_text(rollout: Rollout) -> str | None:
    index = lone_surrogate(rollout.completion)
    if index is None:
        return None
    where = rollout.location or f"rollout {rollout.id!r}"
    return f"{where}, field 'completion' {surrogate_message(index)}"


def _check_backend_config(config: BackendConfig) -> None:
    """What a dry run checks of a backend it replaces: its type and its options (a typo there
    must not wait for the real run). Nothing is built, so no key or model is needed; a type
    whose extra is not installed is left to the real run."""
    from judgerl.backends import BACKEND_TYPES, backend_class

    if config.type not in BACKEND_TYPES:
        backend_class(config.type)  # raises: unknown backend type, with the known ones
    try:
        kind = backend_class(config.type)
    except (ConfigError, ImportError):  # a known type whose extra is not installed
        return
    kind.Options.of(config)


@contextmanager
def _located(path: str | None, prefix: str | None) -> Iterator[None]:
    """Re-raise a component's ConfigError naming the config file and the component's field."""
    try:
        yield
    except ConfigError as exc:
        located = exc.located(path, prefix=prefix)
        if located is exc:
            raise
        raise located from exc


def _score_detail(score: Score) -> dict[str, Any]:
    return {"value": score.value, "status": score.status, "reason": score.reason,
            "rationale": score.rationale, **({"details": score.details} if score.details else {})}
