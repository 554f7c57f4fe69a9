"""The training recipe: validation with file/field errors, --set overrides, and the GRPOConfig mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from judgerl.errors import ConfigError
from judgerl.train.recipe import batch_layout, load_recipe

BASE = {"data": {"train": "train.jsonl"}, "reward": "reward.yaml"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    recipe_file = write(tmp_path / "recipe.yaml", "data: {train: data/train.jsonl}\nreward: reward.yaml\n")
    recipe = load_recipe(recipe_file)
    assert recipe.path(recipe.data.train) == tmp_path / "data" / "train.jsonl"
    assert recipe.output_dir == tmp_path / "runs" / "grpo"
    assert recipe.sft_output_dir == tmp_path / "runs" / "grpo-sft"
    assert recipe.model.lora.enabled and recipe.rollout.number_generation == 4


def test_overrides_are_typed_and_reach_nested_fields() -> None:
    overrides = ["trainer.max_steps=7", "model.lora.enabled=false", "rollout.temperature=0.7",
                 "model.lora.target_modules=[q_proj, v_proj]"]
    recipe = load_recipe(dict(BASE), overrides)
    assert recipe.trainer.max_steps == 7
    assert recipe.model.lora.enabled is False
    assert recipe.rollout.temperature == 0.7
    assert recipe.model.lora.target_modules == ["q_proj", "v_proj"]


def test_reward_overrides_go_to_a_reward_file_given_as_a_path() -> None:
    recipe = load_recipe(dict(BASE), ["reward.judges.0.weight=3", "trainer.max_steps=2"])
    assert recipe.reward == "reward.yaml"
    assert recipe.reward_overrides == ["judges.0.weight=3"]
    inline = load_recipe({**BASE, "reward": {"failure_budget": 0.5}}, ["reward.failure_budget=0.2"])
    assert inline.reward == {"failure_budget": 0.2} and inline.reward_overrides == []


def test_bad_field_names_the_file_and_field(tmp_path: Path) -> None:
    recipe_file = write(tmp_path / "recipe.yaml", "data: {train: t.jsonl}\nreward: r.yaml\n"
                                                  "trainer: {max_stepz: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe_file)
    assert str(recipe_file) in str(info.value) and "trainer.max_stepz" in str(info.value)
    with pytest.raises(ConfigError, match=r"rollout\.number_generation"):
        load_recipe(dict(BASE), ["rollout.number_generation=1"])


def test_global_batch_must_hold_whole_groups() -> None:
    with pytest.raises(ConfigError, match=r"multiple of rollout\.number_generation"):
        load_recipe(dict(BASE), ["trainer.global_batch_size=6", "rollout.number_generation=4"])


def test_save_best_by_needs_evaluation() -> None:
    with pytest.raises(ConfigError, match=r"save_best_by needs data\.eval"):
        load_recipe(dict(BASE), ["trainer.save_best_by=reward"])


def test_batch_layout() -> None:
    assert batch_layout(32, 8, 2) == (8, 2)
    assert batch_layout(8, None, 1) == (8, 1)
    with pytest.raises(ConfigError, match="processes"):
        batch_layout(9, None, 2)


def test_grpo_config_maps_every_knob() -> None:
    from judgerl.train.grpo import grpo_config

    recipe = load_recipe(dict(BASE), [
        "rollout.number_generation=8", "rollout.temperature=0.9", "rollout.top_k=40", "rollout.top_p=0.95",
        "rollout.max_new_tokens=96", "trainer.global_batch_size=32", "trainer.per_device_batch_size=8",
        "trainer.learning_rate=2e-6", "trainer.clip_ratio_high=0.28", "trainer.ent_coeff=0.01",
        "trainer.beta=0.04", "trainer.loss_type=dr_grpo", "trainer.save_steps=5", "trainer.save_top_k=2",
        "trainer.max_steps=11", "logging.logging_steps=2", "trainer.process_timeout_s=3600",
        "rollout.vllm.enabled=true", "rollout.vllm.server_base_url=http://10.0.0.5:8000"])
    args = grpo_config(recipe, processes=2)
    assert args.num_generations == 8
    assert (args.temperature, args.top_k, args.top_p, args.max_completion_length) == (0.9, 40, 0.95, 96)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps * 2 == 32
    assert args.gradient_accumulation_steps == 2
    assert args.steps_per_generation == args.gradient_accumulation_steps  # one reward call per step
    assert not args.gradient_checkpointing  # judgerl's default (TRL's own default is on)
    assert (args.epsilon, args.epsilon_high, args.entropy_coef, args.beta) == (0.2, 0.28, 0.01, 0.04)
    assert args.loss_type == "dr_grpo" and args.learning_rate == 2e-6 and args.max_steps == 11
    assert (args.save_steps, args.save_total_limit, args.logging_steps) == (5, 2, 2)
    assert args.use_vllm and args.vllm_mode == "server" and args.vllm_server_base_url == "http://10.0.0.5:8000"
    assert args.ddp_timeout == 3600


def test_vllm_server_mode_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="server_base_url"):
        load_recipe(dict(BASE), ["rollout.vllm.enabled=true"])


def test_validation_gate_stops_training_before_the_model_loads(tmp_path: Path) -> None:
    """A judge that passes everything fails a regression suite with a known-bad answer: no training."""
    from judgerl.backends.scripted import ScriptedBackend
    from judgerl.errors import ValidationGateError
    from judgerl.train.grpo import train

    always_pass = ScriptedBackend(lambda request: '{"criteria": {"correct": {"score": true}}}')
    suite = {"regression": {"items": [{"id": "bad", "prompt": "Capital of France?", "answer": "Berlin.",
                                       "expect": "fail"}], "min_pass_rate": 1.0}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    reward = {"backends": {"judge": {"type": "scripted"}},
              "judges": [{"name": "quality", "type": "rubric",
                          "criteria": [{"name": "correct", "description": "is correct"}]}]}
    recipe = load_recipe({"data": {"train": "missing.jsonl"}, "reward": reward,
                          "validation": {"suite": str(tmp_path / "suite.yaml")},
                          "logging": {"output_dir": str(tmp_path / "out")}})
    with pytest.raises(ValidationGateError, match="pass_rate"):
        train(recipe, backends={"judge": always_pass})
    assert (tmp_path / "out" / "validation").is_dir()


def test_the_shipped_demo_recipe_loads() -> None:
    from judgerl.config import load_reward_config
    from judgerl.train.splits import load_split

    recipe = load_recipe(Path(__file__).parents[1] / "src" / "judgerl" / "demo" / "recipe.yaml")
    assert len(load_split(recipe, "train")) >= 16 and load_split(recipe, "eval")
    assert all(sample.messages[0]["role"] == "system" for sample in load_split(recipe, "train"))
    for source in (recipe.reward, recipe.monitors.held_out_reward):
        assert isinstance(source, str)
        config = load_reward_config(recipe.path(source))
        assert config.judges and config.checks
