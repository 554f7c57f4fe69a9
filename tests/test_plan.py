"""`judgerl plan`: the forecast of a reward's judge calls, tokens, cost and time, checked against real
scoring over loopback HTTP (calls exact, tokens within 10 %) and on its own arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer
from judgerl.cli import app
from judgerl.config import load_reward_config
from judgerl.errors import DataError
from judgerl.reward.plan import PlanOptions, PlanPart, forecast
from judgerl.run.plan import actual_spend, config_parts, forecast_vs_actual, recipe_parts
from judgerl.train.recipe import load_recipe
from test_cli_score import EXAMPLES, ROLLOUTS, rubric_judge
from test_train_grpo import REWARD
from tiny_policy import build_tiny_model_dir

runner = CliRunner()
PRICE = ["--set", "runtime.prices.judge-model.input_per_mtok=2.5",
         "--set", "runtime.prices.judge-model.output_per_mtok=10"]


def plan_json(*args: str) -> dict:
    result = runner.invoke(app, ["plan", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_plan_of_scoring_a_file_is_exact_in_calls_and_close_in_tokens(
        fake_openai: FakeOpenAIServer, tmp_path: Path):
    fake_openai.responder = rubric_judge
    settings = ["--set", f"backends.judge.base_url={fake_openai.url}",
                "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
                "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}", *PRICE]
    config = str(EXAMPLES / "reward_rubric.yaml")
    forecast_ = plan_json("-c", config, "--rollouts", str(ROLLOUTS), *settings)
    assert fake_openai.chat_requests == [], "planning calls no model"
    total = forecast_["total"]
    assert forecast_["parts"][0]["checks_run"] is True
    scored = runner.invoke(app, ["score", "-c", config, "-i", str(ROLLOUTS), "-o", str(tmp_path / "r.jsonl"),
                                 *settings])
    assert scored.exit_code == 0, scored.output
    # the two answers that are not JSON are gated: 6 calls, not 8
    assert total["calls"] == len(fake_openai.chat_requests) == 6
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    prompt = sum(usage["prompt_tokens"] for usage in _usages(fake_openai))
    assert abs(total["prompt_tokens"] - prompt) / prompt < 0.10
    assert len(journal) == 6
    row = forecast_["judges"][0]
    assert row["tokens_counted_by"].startswith("estimate") and row["calls_per_rollout"] == 0.75
    expected_usd = (total["prompt_tokens"] * 2.5 + total["completion_tokens"] * 10) / 1e6
    assert total["usd"] == pytest.approx(expected_usd, abs=1e-6)
    used = sum(entry["tokens"] for entry in journal)
    assert abs(total["total_tokens"] - used) / used < 0.10

    # a rerun is answered by the cache: nothing to send, nothing to pay
    again = plan_json("-c", config, "--rollouts", str(ROLLOUTS), *settings)
    assert again["total"]["cached_calls"] == 6 and again["total"]["sent_calls"] == 0
    assert again["total"]["usd"] == 0 and again["total"]["prompt_tokens"] == 0


def _usages(server: FakeOpenAIServer) -> list[dict]:
    """The usage the fake server reported for each request (its own count: characters / 4)."""
    out = []
    for request in server.chat_requests:
        chars = sum(len(str(message.get("content", ""))) for message in request.messages)
        out.append({"prompt_tokens": max(1, chars // 4)})
    return out


def test_a_missing_price_forecasts_tokens_only_and_says_so():
    result = plan_json("-c", str(EXAMPLES / "reward_rubric.yaml"), "--rollouts", str(ROLLOUTS))
    assert result["total"]["usd"] is None and result["total"]["prompt_tokens"] > 0
    assert any("no price for model 'judge-model'" in note for note in result["notes"])
    printed = runner.invoke(app, ["plan", "-c", str(EXAMPLES / "reward_rubric.yaml"),
                                  "--rollouts", str(ROLLOUTS)])
    assert printed.exit_code == 0 and "no price" in printed.output


def test_the_run_shape_scales_the_sampled_rows_and_the_limits_bound_the_step(tmp_path: Path):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Question {i}?", "reference": "x"}) + "\n"
                            for i in range(10)), encoding="utf-8")
    config = load_reward_config(EXAMPLES / "reward_rubric.yaml",
                                ["backends.judge.rpm=60", "backends.judge.max_concurrency=4",
                                 "runtime.budget_tokens=100000", "runtime.cache_path=null"])
    parts = config_parts(config, data=data, steps=100, prompts_per_step=3, rollouts_per_prompt=4,
                         answer_tokens=50, sample=5)
    result = forecast(parts, PlanOptions(latency_s={"*": 2.0}, generation_s=30.0))
    judge = result["judges"][0]
    # one JSON verdict per stand-in answer (no gate is run on stand-ins): 12 a step, 1200 in all
    assert judge["calls_per_rollout"] == 1 and judge["calls_per_step"] == 12 and judge["calls"] == 1200
    backend = result["backends"][0]
    assert backend["bound_by"] == "rpm" and backend["judging_s_per_step"] == pytest.approx(12.0)
    total = result["total"]
    assert total["bound_by"] == "generation" and total["step_s"] == pytest.approx(42.0)
    budget = result["budget"]
    per_step = total["total_tokens"] / 100
    assert budget["fits"] is False and budget["last_step_within_budget"] == int(100000 // per_step)
    assert any("gate" in note for note in result["notes"]), "the schema gate is not run on stand-ins"


def test_a_row_a_judge_cannot_judge_is_named_with_the_judge_field(tmp_path: Path):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(json.dumps({"id": "no-ref", "prompt": "Say hi as JSON.", "rollout_id": "a",
                                    "completion": '{"answer": "hi", "confidence": "high"}'}) + "\n")
    config = load_reward_config(EXAMPLES / "reward_rubric.yaml")
    with pytest.raises(DataError) as caught:
        forecast(config_parts(config, rollouts=rollouts))
    assert caught.value.field == "judges.quality" and "no-ref" in str(caught.value)
    assert "reference" in str(caught.value)


def test_a_recipe_plans_the_training_and_held_out_rewards_from_its_shape(tmp_path: Path):
    build_tiny_model_dir(tmp_path / "model")
    rows = [{"id": f"q{i}", "prompt": f"Say something about {word}.", "reference": word}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain", "tea", "snow"])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = load_recipe({
        "model": {"name_or_path": str(tmp_path / "model"), "lora": {"enabled": False}},
        "data": {"train": str(tmp_path / "train.jsonl")}, "reward": REWARD,
        "rollout": {"number_generation": 4, "max_new_tokens": 10},
        "trainer": {"max_steps": 50, "global_batch_size": 8},
        "monitors": {"held_out_reward": REWARD, "held_out_sample": 3},
        "logging": {"output_dir": str(tmp_path / "out")}})
    parts = recipe_parts(recipe)
    assert [part.name for part in parts] == ["training reward", "held-out reward"]
    result = forecast(parts)
    training, held_out = result["judges"]
    assert training["calls_per_step"] == 8 and training["calls"] == 400
    assert held_out["calls_per_step"] == 3 and held_out["calls"] == 150
    assert result["total"]["calls"] == 550
    assert training["tokens_counted_by"] == "the scripted backend's own count"
    # the stand-ins are cut to max_new_tokens of the policy's own tokenizer
    assert "policy's tokenizer" in result["parts"][0]["answers"]
    # TRL judges once every num_iterations steps (it reuses a generation)
    reused = forecast(recipe_parts(load_recipe(recipe.model_dump(mode="json"), ["trainer.num_iterations=4"])))
    assert reused["judges"][0]["calls"] == 8 * 13  # ceil(50 / 4) generations


def test_forecast_vs_actual_from_the_training_metrics():
    plan_result = {"parts": [{"steps": 4}], "total": {"calls": 40, "prompt_tokens": 4000,
                                                     "completion_tokens": 400, "usd": 0.02}}
    metrics = [{"step": 1, "judge/calls": 10, "judge/prompt_tokens": 1100, "judge/completion_tokens": 90,
                "judge/cost_usd": 0.005},
               {"step": 3, "judge/calls": 10, "judge/prompt_tokens": 900, "judge/completion_tokens": 110,
                "judge/cost_usd": 0.005}]
    actual = actual_spend(metrics)
    assert actual is not None and actual["calls"] == 30 and actual["steps"] == 3  # step 3 stands for 2 and 3
    rows = {row[0]: row for row in forecast_vs_actual(plan_result, actual)}
    assert rows["calls"][1] == 30 and rows["calls"][3] == 0
    assert rows["prompt tokens"][2] == 2900 and rows["prompt tokens"][3] == pytest.approx(2900 / 3000 - 1)
    assert actual_spend([{"step": 1, "loss": 0.1}]) is None
    # with per-judge rows, only the training reward's part is compared (the metrics log it alone)
    plan_result["parts"] = [{"name": "training reward", "steps": 4}, {"name": "held-out reward", "steps": 4}]
    plan_result["judges"] = [
        {"part": "training reward", "calls": 40, "prompt_tokens": 4000, "completion_tokens": 400,
         "usd": 0.02},
        {"part": "held-out reward", "calls": 400, "prompt_tokens": 1, "completion_tokens": 1, "usd": None}]
    rows = {row[0]: row for row in forecast_vs_actual(plan_result, actual)}
    assert rows["calls"][1] == 30 and rows["USD"][1] == pytest.approx(0.015)


def test_plan_part_counts_a_group_of_stand_ins_once_per_answer():
    """Identical stand-ins are not real duplicates: each is a call (a real run's answers differ)."""
    config = load_reward_config(EXAMPLES / "reward_scripted.yaml")
    from judgerl.types import Rollout, Sample

    sample = Sample(id="s", messages=[{"role": "user", "content": "Q?"}], reference="A")
    same = [Rollout(sample_id="s", completion='{"answer": "A", "confidence": "high"}', id=f"s#{n}")
            for n in range(3)]
    result = forecast([PlanPart("p", config, [(sample, same)], groups_per_step=1, steps=1, rows_total=1)])
    assert result["total"]["calls"] == result["total"]["sent_calls"] > 0


def test_the_report_shows_the_spend_and_the_forecast_against_it(tmp_path: Path):
    from judgerl.run.plan import PLAN_FILE, save_plan
    from judgerl.run.report import render_report

    run = tmp_path / "run"
    (run / "rft").mkdir(parents=True)
    rows = [{"step": step, "judge/calls": 10, "judge/cache_hits": 1, "judge/prompt_tokens": 1000,
             "judge/completion_tokens": 50, "judge/total_tokens": 1050, "judge/cost_usd": 0.01,
             "judge/budget_usd": 5.0} for step in (1, 2)]
    (run / "rft" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    page = render_report(run).read_text()
    assert "Judge cost" in page and "2100 tokens" in page and "budget $5" in page
    assert "Forecast vs actual" not in page
    save_plan({"parts": [{"steps": 4}], "total": {"calls": 44, "prompt_tokens": 4000,
                                                 "completion_tokens": 200, "usd": 0.04}}, run / PLAN_FILE)
    page = render_report(run).read_text()
    assert "Forecast vs actual" in page
    assert "22.000" in page and "-0.091" in page  # 44 calls over 4 steps -> 22 for the 2 run; 20 made


def test_probe_measures_the_latency_with_real_calls(fake_openai: FakeOpenAIServer):
    fake_openai.responder = rubric_judge
    fake_openai.latency_s = 0.2
    result = plan_json("-c", str(EXAMPLES / "reward_rubric.yaml"), "--rollouts", str(ROLLOUTS),
                       "--probe", "2", "--set", f"backends.judge.base_url={fake_openai.url}",
                       "--set", "runtime.cache_path=null", "--generation-s", "1")
    backend = result["backends"][0]
    assert len(fake_openai.chat_requests) == 3, "the probe sends a warm-up and N real calls per backend"
    assert backend["latency_from"] == "probe" and 0.2 <= backend["latency_s"] < 1.0
    # 6 calls a step, 32 at once: one wave of the measured latency
    assert result["backends"][0]["judging_s_per_step"] == pytest.approx(backend["latency_s"], abs=1e-3)
    assert result["total"]["bound_by"] == "generation"
    assert any("the probe made 3 real calls" in note for note in result["notes"])


def test_a_tokenizer_on_disk_counts_an_api_judges_tokens(tmp_path: Path):
    from transformers import AutoTokenizer

    from judgerl.backends.base import CompletionRequest
    from judgerl.reward.plan import token_counter

    build_tiny_model_dir(tmp_path / "model")
    result = plan_json("-c", str(EXAMPLES / "reward_rubric.yaml"), "--rollouts", str(ROLLOUTS),
                       "--tokenizer", f"judge={tmp_path / 'model'}")
    row = result["judges"][0]
    assert row["tokens_counted_by"] == f"tokenizer {tmp_path / 'model'}" and result["total"]["tokens_exact"]
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    counter = token_counter(None, str(tmp_path / "model"))
    request = CompletionRequest(messages=[{"role": "user", "content": "Is Paris the capital of France?"}])
    expected = (len(tokenizer.apply_chat_template(request.messages, tokenize=True, add_generation_prompt=True,
                                                  return_dict=True)["input_ids"])
                if tokenizer.chat_template else
                len(tokenizer("Is Paris the capital of France?", add_special_tokens=False)["input_ids"]))
    assert counter.prompt(request) == expected
    bad = runner.invoke(app, ["plan", "-c", str(EXAMPLES / "reward_rubric.yaml"), "--rollouts", str(ROLLOUTS),
                              "--tokenizer", "judge"])
    assert bad.exit_code != 0 and "BACKEND=VALUE" in bad.output


@pytest.mark.slow
def test_plan_prints_for_the_demo_and_the_case_study():
    """The packaged recipes (their local judge's tokenizer: the packaged SmolLM2, converted once)."""
    root = Path(__file__).resolve().parents[1]
    for recipe, per_rollout in ((root / "src" / "judgerl" / "demo" / "recipe.yaml", 2),
                                (root / "examples" / "contract_review" / "recipe.yaml", None)):
        result = plan_json(str(recipe))
        training = result["judges"][0]
        assert training["tokens_counted_by"].startswith("tokenizer of smollm2")
        assert training["calls"] > 0 and result["total"]["prompt_tokens"] > 0
        if per_rollout is not None:
            assert training["calls_per_rollout"] == per_rollout
        printed = runner.invoke(app, ["plan", str(recipe)])
        assert printed.exit_code == 0 and "judging time per step" in printed.output


@pytest.mark.slow
def test_a_training_run_spends_what_its_plan_forecast(tmp_path: Path):
    """Plan a tiny GRPO run, save the plan in the run folder, train, and read both in the report."""
    from judgerl.backends.scripted import ScriptedBackend
    from judgerl.run.plan import PLAN_FILE, save_plan
    from judgerl.run.report import load_run, render_report
    from judgerl.train.grpo import GrpoRun
    from test_train_grpo import held_out_judge

    build_tiny_model_dir(tmp_path / "model")
    rows = [{"id": f"q{i}", "prompt": f"Say something about {word}.", "reference": word}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain"])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = tmp_path / "run"
    recipe = load_recipe({
        "model": {"name_or_path": str(tmp_path / "model"), "lora": {"enabled": False}},
        "data": {"train": str(tmp_path / "train.jsonl")}, "reward": REWARD,
        "rollout": {"number_generation": 4, "max_new_tokens": 10},
        "trainer": {"max_steps": 2, "global_batch_size": 8, "per_device_batch_size": 4, "save_steps": 5},
        "logging": {"output_dir": str(run / "rft"), "tensorboard": False}})
    result = forecast(recipe_parts(recipe))
    save_plan(result, run / PLAN_FILE)
    GrpoRun(recipe, backends={"judge": ScriptedBackend(held_out_judge)}).run()
    actual = actual_spend(load_run(run).metrics)
    assert actual is not None and actual["calls"] == result["total"]["calls"] == 16
    tokens = actual["prompt_tokens"]
    assert abs(result["total"]["prompt_tokens"] - tokens) / tokens < 0.10
    page = render_report(run).read_text()
    assert "Forecast vs actual" in page and "16.000" in page


def test_a_negative_latency_or_generation_time_is_refused_naming_the_option():
    """`--latency-s -1 --generation-s -5` used to forecast "the step takes about -5.00 s", and
    `--latency-s 0 --generation-s 0` (a step of 0 s) ended in a TypeError traceback."""
    quickstart = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
    base = ["plan", "-c", str(quickstart / "reward_scripted.yaml"),
            "--rollouts", str(quickstart / "rollouts.jsonl")]
    for extra, option in ((["--latency-s", "-1"], "--latency-s"),
                          (["--latency-s", "judge=-0.5"], "--latency-s"),
                          (["--generation-s", "-5"], "--generation-s")):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert option in result.output and "-5.00 s" not in result.output
    zero = runner.invoke(app, [*base, "--latency-s", "0", "--generation-s", "0"])
    assert zero.exit_code == 0 and "the step takes about 0.00 s" in zero.output, zero.output
