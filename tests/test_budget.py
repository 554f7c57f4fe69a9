"""Spending budgets (`runtime.budget_usd`, `runtime.budget_tokens`): no call crosses them, the judgments
they refuse are unscored `budget_exhausted` (never a made-up score), `judgerl score` keeps every
finished row and exits 2 with the spend, and a rerun with a raised budget scores what is missing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer
from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.config import RuntimeConfig, load_reward_config
from judgerl.errors import BudgetExhausted, ConfigError
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.model_runtime import ModelRuntime
from test_cli_score import EXAMPLES, ROLLOUTS, read_rewards, rubric_judge

runner = CliRunner()


def test_a_budget_of_zero_or_less_is_a_config_error_naming_the_field():
    for field in ("budget_usd", "budget_tokens"):
        for value in ("0", "-5"):
            with pytest.raises(ConfigError) as caught:
                load_reward_config(EXAMPLES / "reward_rubric.yaml", [f"runtime.{field}={value}"])
            assert caught.value.field == f"runtime.{field}"
            assert "reward_rubric.yaml" in str(caught.value)


def test_a_usd_budget_needs_a_price_for_every_model():
    backend = ScriptedBackend(lambda request: "ok", model="judge-x")
    with pytest.raises(ConfigError) as caught:
        ModelRuntime({"judge": backend}, RuntimeConfig(budget_usd=1.0))
    assert caught.value.field == "runtime.prices" and "judge-x" in str(caught.value)
    ModelRuntime({"judge": backend}, RuntimeConfig(budget_usd=1.0, prices={"judge-x": {}})).close_files()


def _usage_backend() -> ScriptedBackend:
    """Every answer reports 100 prompt + 10 completion tokens, after a short delay (calls overlap)."""
    def answer(request: CompletionRequest) -> Completion:
        return Completion(text="ok", model="m", usage=Usage(100, 10))
    return ScriptedBackend(answer, model="m", latency_s=0.01, max_concurrency=8)


def test_concurrent_calls_never_cross_the_token_budget_and_the_refusal_is_final(tmp_path: Path):
    backend = _usage_backend()
    config = RuntimeConfig(budget_tokens=1000, cache_path=str(tmp_path / "cache.sqlite"))
    runtime = ModelRuntime({"judge": backend}, config)

    def request(index: int, max_tokens: int = 20) -> CompletionRequest:
        return CompletionRequest(messages=[{"role": "user", "content": f"question {index} " + "x" * 320}],
                                 max_tokens=max_tokens)

    async def main() -> list:
        first = await asyncio.gather(*(runtime.complete("judge", request(i)) for i in range(20)))
        # a much smaller call would fit what is left, but nothing is sent once the budget said no
        late = await runtime.complete("judge", request(99, max_tokens=1))
        cached = await runtime.complete("judge", request(0))  # answered before: free, still served
        return [*first, late, cached]

    results = asyncio.run(main())
    stats = runtime.stats.snapshot()
    runtime.close_files()
    assert stats["total_tokens"] <= 1000
    ok = [result for result in results[:20] if result.ok]
    refused = [result for result in results[:20] if not result.ok]
    assert ok and refused and len(backend.calls) == len(ok)
    assert all(result.reason == "budget_exhausted" for result in refused)
    assert "runtime.budget_tokens=1000" in refused[0].error
    assert results[20].reason == "budget_exhausted" and len(backend.calls) == len(ok)
    assert results[21].ok and results[21].cached


def test_the_pipeline_raises_budget_exhausted_with_the_rows_unscored_not_faked():
    config = load_reward_config(EXAMPLES / "reward_scripted.yaml", ["runtime.budget_tokens=1"])
    from judgerl.data import load_rollouts

    items, _ = load_rollouts(ROLLOUTS)
    with RewardPipeline.from_config(config) as pipeline, pytest.raises(BudgetExhausted) as caught:
        pipeline.score_batch_sync(items)
    refused = [reward for reward in caught.value.rewards if reward.status == "unscored"]
    assert refused and all(reward.value is None for reward in refused)
    assert all(reward.reason.startswith("budget_exhausted") for reward in refused)
    assert caught.value.spend["budget_tokens"] == 1 and caught.value.spend["attempts"] == 0


def test_score_stops_at_the_budget_keeps_every_finished_row_and_a_rerun_scores_the_rest(
        fake_openai: FakeOpenAIServer, tmp_path: Path):
    """Fails on the code before budgets: `runtime.budget_tokens` was an unknown field."""
    fake_openai.responder = rubric_judge
    output = tmp_path / "rewards.jsonl"
    common = ["score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
              "--batch-size", "2",
              "--set", f"backends.judge.base_url={fake_openai.url}",
              "--set", "backends.judge.max_concurrency=1",
              "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
              "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}"]
    stopped = runner.invoke(app, [*common, "--set", "runtime.budget_tokens=2500"])
    assert stopped.exit_code == 2, stopped.output
    assert "stopped by the budget" in stopped.output and "budget_exhausted" in stopped.output
    assert "judge spend" in stopped.output
    first = read_rewards(output)
    judged_first = len(fake_openai.chat_requests)
    assert 0 < judged_first < 6, stopped.output
    assert all(row["status"] in ("ok", "gated") for row in first.values()), "no refused row is written"
    used = sum(json.loads(line).get("tokens", 0)
               for line in (tmp_path / "journal.jsonl").read_text().splitlines())
    assert 0 < used <= 2500
    scored_first = {key: row["value"] for key, row in first.items()}

    resumed = runner.invoke(app, [*common, "--set", "runtime.budget_tokens=100000"])
    assert resumed.exit_code == 0, resumed.output
    rewards = read_rewards(output)
    assert len(rewards) == 8 and all(row["status"] in ("ok", "gated") for row in rewards.values())
    assert {key: rewards[key]["value"] for key in scored_first} == scored_first, "nothing finished is lost"
    assert len(fake_openai.chat_requests) == 6, "each judged rollout was judged once over both runs"
