"""Contract tests for the TRL adapter, and one real GRPOTrainer step that calls it."""

from __future__ import annotations

import inspect

import pytest

from adapter_fakes import make_pipeline, write_config
from judgerl.adapters import clear_pipelines
from judgerl.adapters.trl import build_items, completion_text, reward_function
from judgerl.errors import FailureBudgetExceeded


class Hooks:
    """Stands in for TRL's `log_metric` / `log_extra` hooks and records what they receive."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.extra: dict[str, list] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)

    def log_extra(self, column: str, values: list) -> None:
        self.extra.setdefault(column, []).extend(values)


async def test_standard_prompts_group_rollouts_and_pick_up_the_reference():
    pipeline, judge, _backend = make_pipeline()
    with pipeline:
        reward = reward_function(pipeline, name="judge_reward")
        assert inspect.iscoroutinefunction(reward) and reward.__name__ == "judge_reward"
        hooks = Hooks()
        values = await reward(
            prompts=["2+2?", "2+2?", "3+3?", "3+3?"],
            completions=["it is 4", "five", "BAD 6", "JUDGE-FAIL 6"],
            completion_ids=[[1], [2], [3], [4]],
            reference=["4", "4", "6", "6"], extra_col=["a", "a", "b", "b"],
            trainer_state=object(), log_metric=hooks.log_metric, log_extra=hooks.log_extra)
    assert values == [1.0, 0.5, 0.0, None], "right, wrong (format only), gated, unscored (None: TRL drops it)"
    sample_ids = [seen[0] for seen in judge.seen]
    assert sample_ids[0] == sample_ids[1] != sample_ids[2], "rollouts of one prompt share a sample id"
    assert {seen[2] for seen in judge.seen} == {"4", "6"}, "the reference column reached the judge"
    assert hooks.metrics["judge_reward/unscored_frac"] == [0.25]
    assert hooks.metrics["judge_reward/gated_frac"] == [0.25]
    assert hooks.metrics["judge_reward/quality/mean"] == [pytest.approx(1 / 2)]
    assert hooks.extra["judge_reward_status"][:3] == ["ok", "ok", "gated"]
    assert hooks.extra["judge_reward_status"][3].startswith("unscored: judge_error")
    assert hooks.extra["judge_reward_rationale"][0] == "[quality] verdict 1"


async def test_conversational_prompts_and_completions():
    pipeline, judge, _backend = make_pipeline()
    prompt = [{"role": "system", "content": "be brief"},
              {"role": "user", "content": [{"type": "text", "text": "capital of France?"}]}]
    with pipeline:
        reward = reward_function(pipeline)
        values = await reward(prompts=[prompt, prompt],
                              completions=[[{"role": "assistant", "content": "Paris"}],
                                           [{"role": "assistant", "content": "Lyon"}]],
                              answer=["Paris", "Paris"])
    assert values == [1.0, 0.5]
    assert [seen[1] for seen in judge.seen] == ["Paris", "Lyon"]
    assert judge.seen[0][3] == "capital of France?", "list-of-parts content becomes text"


def test_row_id_column_separates_identical_prompts_and_unknown_columns_become_metadata():
    items = build_items(["q", "q", "q", "q"], ["a", "b", "c", "d"],
                        {"id": [1, 1, 2, 2], "topic": ["x", "x", "y", "y"], "log_metric": print})
    samples = [sample for sample, _ in items]
    assert samples[0].id == samples[1].id != samples[2].id
    assert [rollout.id for _, rollout in items][:2] == [f"{samples[0].id}#0", f"{samples[0].id}#1"]
    assert samples[2].metadata == {"id": 2, "topic": "y"}
    assert samples[0].reference is None


def test_completion_text_takes_the_last_assistant_message():
    completion = [{"role": "assistant", "content": "thinking"}, {"role": "tool", "content": "42"},
                  {"role": "assistant", "content": [{"type": "text", "text": "final"}]}]
    assert completion_text(completion) == "final"
    with pytest.raises(TypeError):
        completion_text(42)


async def test_failure_budget_stops_the_step():
    pipeline, _judge, _backend = make_pipeline(failure_budget=0.25)
    with pipeline:
        reward = reward_function(pipeline)
        with pytest.raises(FailureBudgetExceeded, match="2 of 3 judgments unscored"):
            await reward(prompts=["q"] * 3, completions=["JUDGE-FAIL", "JUDGE-FAIL", "good"])


async def test_neutral_policy_gives_a_number(tmp_path):
    pipeline, _judge, _backend = make_pipeline(failure_policy="neutral")
    with pipeline:
        values = await reward_function(pipeline)(prompts=["q"], completions=["JUDGE-FAIL"])
    assert values == [0.5]


async def test_from_a_config_file_named_after_it(tmp_path):
    path = write_config(tmp_path, name="contract.yaml")
    try:
        reward = reward_function(path)
        assert reward.__name__ == "contract"
        assert reward_function(path).pipeline is reward.pipeline, "one pipeline per config and process"
        values = await reward(prompts=["q", "q"], completions=["short answer", ""])
    finally:
        clear_pipelines()
    assert values[0] == 1.0
    assert values[1] is not None and values[1] < 1.0, "an empty answer fails the length check"


@pytest.mark.timeout(300)
def test_a_real_grpo_step_calls_the_adapter(tmp_path):
    datasets = pytest.importorskip("datasets")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from tiny_policy import build_tiny_model_dir

    model_dir = build_tiny_model_dir(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = datasets.Dataset.from_dict({"prompt": ["hello world", "The capital of France is"] * 2,
                                          "reference": ["world", "Paris"] * 2})
    pipeline, judge, _backend = make_pipeline()
    adapter = reward_function(pipeline, name="judgerl")
    calls: list[tuple[list, list, dict, list]] = []

    async def judgerl(prompts, completions, completion_ids=None, **kwargs):
        # Records exactly what TRL passes to the adapter and what the adapter returns.
        values = await adapter(prompts, completions, completion_ids, **kwargs)
        calls.append((prompts, completions, kwargs, values))
        return values

    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=8, report_to=[], use_cpu=True,
                      logging_steps=1, save_strategy="no", bf16=False, seed=0,
                      dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=[judgerl], args=args, train_dataset=dataset,
                          processing_class=tokenizer)
    with pipeline:
        trainer.train()
    assert len(calls) == 1, "one generation batch for one step"
    prompts, completions, kwargs, values = calls[0]
    assert len(prompts) == len(completions) == len(values) == 4
    assert all(isinstance(completion, str) for completion in completions)
    assert set(kwargs["reference"]) <= {"world", "Paris"}, "dataset columns arrive as keyword arguments"
    assert callable(kwargs["log_metric"]) and callable(kwargs["log_extra"])
    judged = [seen[1] for seen in judge.seen]
    assert sorted(judged) == sorted(c for c in completions if not c.startswith("BAD")), \
        "the judge scored exactly the completions TRL generated"
    assert all(value is None or 0.0 <= value <= 1.0 for value in values)
    logged = {key: value for entry in trainer.state.log_history for key, value in entry.items()}
    assert "rewards/judgerl/mean" in logged, sorted(logged)
    scored = [value for value in values if value is not None]
    assert logged["rewards/judgerl/mean"] == pytest.approx(sum(scored) / len(scored))
    assert "judgerl/unscored_frac" in logged, "the log_metric hook reaches TRL's logs"
