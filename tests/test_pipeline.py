"""The composite reward pipeline: gates, failure policies, aggregation, budget, loops."""

from __future__ import annotations

import asyncio

import pytest

from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import CheckConfig, JudgeConfig, RewardConfig
from judgerl.errors import ConfigError, FailureBudgetExceeded
from judgerl.judges.base import PointwiseJudge
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample, Score


class LengthJudge(PointwiseJudge):
    """A test judge: calls the scripted backend, scores by the answer's length; fails on 'FAIL'."""

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        from judgerl.backends.base import CompletionRequest

        result = await self.runtime.complete(self.backend_name, CompletionRequest(
            messages=[{"role": "user", "content": rollout.completion}]))
        if not result.ok or "FAIL" in rollout.completion:
            return Score.unscored(self.name, result.error or "judge_error: scripted failure")
        return Score(self.name, min(1.0, len(rollout.completion) / 10), rationale="long enough")


def starts_with_brace(sample: Sample, rollout: Rollout) -> Score:
    return Score("format", 1.0 if rollout.completion.startswith("{") else 0.0)


def build(**config_fields) -> tuple[RewardPipeline, ScriptedBackend]:
    backend = ScriptedBackend(lambda request: "ok")
    config = RewardConfig(
        checks=[CheckConfig(name="format", type="custom", gate=True, gate_score=0.0, weight=1.0)],
        judges=[JudgeConfig(name="quality", type="custom", weight=3.0)],
        **config_fields,
    )
    runtime = ModelRuntime({"judge": backend}, config.runtime)
    judge = LengthJudge(config.judges[0], runtime)
    return RewardPipeline(config, runtime, [(config.checks[0], starts_with_brace)], [judge]), backend


def items(*completions: str, sample_id: str = "s1") -> list[tuple[Sample, Rollout]]:
    sample = Sample(sample_id, [{"role": "user", "content": "q"}])
    return [(sample, Rollout(sample_id, text, id=f"{sample_id}#{i}")) for i, text in enumerate(completions)]


def test_gate_skips_the_judge_and_gives_the_fixed_score():
    pipeline, backend = build()
    with pipeline:
        rewards = pipeline.score_batch_sync(items("no brace", "{0123456789}"))
    assert [r.status for r in rewards] == ["gated", "ok"]
    assert rewards[0].value == 0.0 and rewards[0].reason == "gate:format"
    assert rewards[0].components == {"format": 0.0, "quality": None}
    assert len(backend.calls) == 1, "the gated rollout must not reach the judge"
    assert rewards[1].value == pytest.approx((1.0 * 1 + 1.0 * 3) / 4)


@pytest.mark.parametrize(("policy", "expected"), [("unscored", None), ("neutral", 0.5), ("zero", 0.0)])
def test_failure_policies(policy, expected):
    pipeline, _ = build(failure_policy=policy, failure_budget=None)
    with pipeline:
        [reward] = pipeline.score_batch_sync(items("{FAIL}"))
    assert reward.status == "unscored"
    assert reward.value == expected
    assert "scripted failure" in reward.reason and "(quality)" in reward.reason
    assert reward.components["quality"] is None and reward.components["format"] == 1.0


def test_weighted_mean_keeps_every_component():
    pipeline, _ = build()
    with pipeline:
        [reward] = pipeline.score_batch_sync(items("{12}"))
    assert reward.components == {"format": 1.0, "quality": pytest.approx(0.4)}
    assert reward.value == pytest.approx((1.0 + 3 * 0.4) / 4)
    assert reward.details["scores"]["quality"]["rationale"] == "long enough"
    assert "[quality] long enough" in reward.rationale


def test_formula_aggregate():
    pipeline, _ = build(aggregate={"method": "formula", "formula": "format * quality"})
    with pipeline:
        [reward] = pipeline.score_batch_sync(items("{12}"))
    assert reward.value == pytest.approx(0.4)


def test_formula_with_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown component 'schema'"):
        build(aggregate={"method": "formula", "formula": "schema * quality"})


def test_failure_budget_stops_the_batch_and_keeps_the_rewards():
    pipeline, _ = build(failure_budget=0.25)
    with pipeline, pytest.raises(FailureBudgetExceeded) as caught:
        pipeline.score_batch_sync(items("{FAIL}", "{FAIL}", "{good answer}", "{another}"))
    assert caught.value.failed == 2 and caught.value.total == 4
    assert "judge_error (2)" in str(caught.value) and "scripted failure" in str(caught.value)
    assert len(caught.value.rewards) == 4


def test_one_failure_in_64_keeps_the_other_63():
    pipeline, _ = build(failure_budget=0.1)
    completions = [f"{{answer {i}}}" for i in range(64)]
    completions[17] = "{FAIL}"
    with pipeline:
        rewards = pipeline.score_batch_sync(items(*completions))
    assert len(rewards) == 64
    assert [r.rollout_id for r in rewards] == [f"s1#{i}" for i in range(64)]
    assert sum(r.status == "unscored" for r in rewards) == 1
    assert all(r.value is not None for i, r in enumerate(rewards) if i != 17)


def test_batch_order_is_kept_across_samples_and_callback_sees_each_reward():
    pipeline, _ = build()
    batch = items("{a}", "{bb}", sample_id="x") + items("{ccc}", sample_id="y") + items("{d}", sample_id="x")
    seen = []
    with pipeline:
        rewards = pipeline.score_batch_sync(batch, on_reward=seen.append)
    assert [(r.sample_id, r.rollout_id) for r in rewards] == [(s.id, r.id) for s, r in batch]
    assert sorted(r.rollout_id for r in seen) == sorted(r.rollout_id for r in rewards)


def test_score_batch_can_be_awaited_from_a_foreign_event_loop():
    pipeline, _ = build()

    async def from_other_loop():
        first, second = await asyncio.gather(pipeline.score_batch(items("{one}")),
                                             pipeline.score_batch(items("{two}", sample_id="t")))
        return first + second

    with pipeline:
        rewards = asyncio.run(from_other_loop())
        again = asyncio.run(from_other_loop())  # a second loop: the runtime's loop is unaffected
    assert [r.status for r in rewards + again] == ["ok"] * 4


def test_closing_the_loop_cancels_and_awaits_what_a_failed_batch_left_behind() -> None:
    """A gather whose first judgment raises leaves the others running; close() must finish them
    on the loop (their cleanup runs), not leave them to die later on a closed loop."""
    from judgerl.runtime.loop import LoopThread

    loop = LoopThread()
    cleaned_up: list[int] = []

    async def slow_judgment(index: int) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned_up.append(index)

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("the first judgment fails")

    async def batch() -> None:
        await asyncio.gather(failing(), *(slow_judgment(index) for index in range(3)))

    with pytest.raises(ValueError, match="first judgment"):
        loop.run(batch())
    assert cleaned_up == []  # still running after the batch raised
    loop.close()
    assert sorted(cleaned_up) == [0, 1, 2]
    assert loop.loop.is_closed()


def test_dry_run_is_a_pipeline_feature_and_calls_no_model():
    """`from_config(dry_run=True)`: every backend is a DryRunBackend that answers for the pipeline's
    own judges, so the rubric judge parses its neutral answer and the reward is `ok`."""
    from pathlib import Path

    from judgerl.reward.dry_run import DryRunBackend

    config = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "reward_rubric.yaml"
    with RewardPipeline.from_config(str(config), dry_run=True) as pipeline:
        backends = pipeline.runtime.backends
        assert backends and all(isinstance(backend, DryRunBackend) for backend in backends.values())
        assert all(set(backend.judges) == {judge.name for judge in pipeline.judges}
                   for backend in backends.values())
        sample = Sample("s1", [{"role": "user", "content": "What is the capital of France?"}],
                        reference="Paris")
        rewards = pipeline.score_batch_sync([(sample, Rollout("s1", '{"answer": "Paris"}', id="s1#0"))])
    assert rewards[0].status in {"ok", "gated"}, rewards[0]
    with pytest.raises(ConfigError, match="not both"):
        RewardPipeline.from_config(str(config), dry_run=True, backends={})
