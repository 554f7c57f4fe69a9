"""Spending budgets (`runtime.budget_usd`, `runtime.budget_tokens`): no call crosses them, the judgments
they refuse are unscored `budget_exhausted` (never a made-up score), `judgerl score` keeps every
finished row and exits 2 with the spend, and a rerun with a raised budget scores what is missing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer, Reply
from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.config import RuntimeConfig, load_reward_config
from judgerl.errors import BudgetExhausted, ConfigError
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.train.grpo import GrpoRun
from judgerl.train.recipe import load_recipe
from test_cli_score import EXAMPLES, ROLLOUTS, read_rewards, rubric_judge
from test_train_grpo import REWARD, scripted_judge
from tiny_policy import build_tiny_model_dir

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


def test_a_tokenizer_that_counts_more_than_the_estimate_does_not_cross_the_budget(
        fake_openai: FakeOpenAIServer):
    """The estimate counts 4 characters a token; for Chinese text a real tokenizer counts about one
    a character. The server's real counts used to be ignored by the estimate, and three calls
    estimated at 112 tokens each spent 1,224 of a 1,000-token budget; now the estimate is scaled
    by what the model really counted, over real HTTP."""
    from judgerl.backends import build_backend
    from judgerl.config import BackendConfig

    def answer(request: Any) -> Reply:
        return Reply(text="ok", usage={"prompt_tokens": len(request.prompt), "completion_tokens": 2})

    fake_openai.responder = answer
    backend = build_backend(BackendConfig(type="openai", base_url=fake_openai.url, model="m",
                                          max_concurrency=1))
    runtime = ModelRuntime({"judge": backend}, RuntimeConfig(budget_tokens=1000, max_attempts=1))

    async def main() -> list:
        results = []
        for index in range(5):
            prompt = f"{index}" + "问" * 399  # 400 characters: estimated 104 prompt tokens, 400 real
            results.append(await runtime.complete("judge", CompletionRequest(
                messages=[{"role": "user", "content": prompt}], max_tokens=8)))
        await runtime.aclose()
        return results

    results = asyncio.run(main())
    stats = runtime.stats.snapshot()
    assert stats["total_tokens"] <= 1000, stats
    assert [result.ok for result in results] == [True, True, False, False, False]
    assert results[2].reason == "budget_exhausted" and "~408 tokens" in results[2].error
    assert len(fake_openai.chat_requests) == 2


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


def test_training_stops_at_the_budget_with_a_checkpoint_and_resumes_after_raising_it(tmp_path: Path):
    """Fails on the code before budgets: the recipe's reward could not set `runtime.budget_tokens`."""
    build_tiny_model_dir(tmp_path / "model")
    rows = [{"id": f"q{i}", "prompt": f"Say something short about {word}.", "reference": word}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain"])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")

    def judge(request: CompletionRequest) -> Completion:  # 110 tokens a call, whatever the prompt
        return Completion(text=scripted_judge(request), model="scripted", usage=Usage(100, 10))

    def run(budget: int, *, resume: bool = False) -> Any:
        reward = {**REWARD, "runtime": {"budget_tokens": budget},
                  "judges": [{**REWARD["judges"][0], "max_tokens": 64}]}
        recipe = load_recipe({
            "model": {"name_or_path": str(tmp_path / "model"), "lora": {"enabled": False}},
            "data": {"train": str(tmp_path / "train.jsonl")}, "reward": reward,
            "rollout": {"number_generation": 4, "max_new_tokens": 10},
            "trainer": {"max_steps": 2, "global_batch_size": 8, "per_device_batch_size": 4,
                        "save_steps": 5, "learning_rate": 5e-3},
            "logging": {"output_dir": str(tmp_path / "out"), "tensorboard": False}})
        grpo = GrpoRun(recipe, resume=resume,
                       backends={"judge": ScriptedBackend(judge, max_concurrency=1)})
        return grpo.run

    out = tmp_path / "out"
    start = run(2000)
    with pytest.raises(BudgetExhausted) as caught:
        start()
    message = str(caught.value)
    assert "while scoring step 2" in message and "checkpoint-1" in message and "--resume" in message
    assert (out / "checkpoint-1").is_dir(), "the last finished step is saved although save_steps is 5"
    assert caught.value.spend["total_tokens"] <= 2000
    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert {row["step"] for row in completions} == {1} and len(completions) == 8
    metrics_rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics_rows[0]["judge/spent_tokens"] > 0 and metrics_rows[0]["judge/budget_tokens"] == 2000

    resume = run(100_000, resume=True)
    result = resume()
    assert result.global_step == 2
    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert [row["step"] for row in completions].count(2) == 8 and len(completions) == 16


def test_a_run_folder_resumes_with_a_raised_budget_but_not_with_other_settings(tmp_path: Path):
    import yaml

    from judgerl.run.workflow import refuse_other_settings

    recipe = {"trainer": {"max_steps": 4}, "reward": {"runtime": {"budget_usd": 1.0}}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    raised = {"runtime": {"budget_usd": 5.0}}
    refuse_other_settings(tmp_path, {"trainer": {"max_steps": 4}, "reward": raised})
    with pytest.raises(ConfigError, match=r"trainer\.max_steps"):
        refuse_other_settings(tmp_path, {"trainer": {"max_steps": 8}, "reward": raised})
