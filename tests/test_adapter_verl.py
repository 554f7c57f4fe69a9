"""Contract tests for the verl adapter: loaded by path as verl does, one response per call.

The same adapter against the real verl package: test_engine_verl.py.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

import judgerl.adapters.verl as verl_adapter
from adapter_fakes import make_pipeline, write_config
from judgerl.adapters import clear_pipelines

KEYS = {"score", "format", "quality", "unscored", "gated"}


def load_like_verl(name: str = "custom_module"):
    """What verl's `get_custom_reward_fn` does with `custom_reward_function.path`."""
    spec = importlib.util.spec_from_file_location(name, verl_adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def test_per_sample_dicts_have_numbers_and_the_same_keys():
    module = load_like_verl()
    pipeline, judge, _backend = make_pipeline()
    with pipeline:
        results = [module.compute_score(data_source="math", solution_str=text, ground_truth="4",
                                        extra_info={"index": 7, "question": "2+2?"}, reward_config=pipeline,
                                        reward_router_address=None)
                   for text in ("it is 4", "five", "BAD", "JUDGE-FAIL")]
    for result in results:
        assert set(result) == KEYS, "verl stacks each key over the batch: keys must not vary"
        assert all(isinstance(value, float) and math.isfinite(value) for value in result.values())
    ok, wrong, gated, unscored = results
    assert ok["score"] == 1.0 and ok["quality"] == 1.0 and ok["unscored"] == 0.0
    assert wrong["score"] == 0.5 and wrong["quality"] == 0.0
    assert gated["score"] == 0.0 and gated["gated"] == 1.0
    assert unscored == {"score": 0.0, "format": 1.0, "quality": 0.0, "unscored": 1.0, "gated": 0.0}
    assert judge.seen[0][3] == "2+2?", "the prompt in extra_info reaches the judge"
    assert judge.seen[0][2] == "4", "ground_truth is the reference"


def test_neutral_policy_score_for_unscored():
    pipeline, _judge, _backend = make_pipeline(failure_policy="neutral")
    with pipeline:
        result = verl_adapter.compute_score("src", "JUDGE-FAIL", "4", None, reward_config=pipeline)
    assert result["score"] == 0.5 and result["unscored"] == 1.0


def test_config_from_the_environment_is_built_once_per_process(tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGERL_REWARD_CONFIG", str(write_config(tmp_path)))
    module = load_like_verl()
    try:
        first = module.compute_score("d", "a short answer", None, {})
        again = verl_adapter.compute_score("d", "another answer", None, {})
        from judgerl.adapters import _pipelines
        assert len(_pipelines) == 1, "both imports of the file share one pipeline"
    finally:
        clear_pipelines()
    assert first == {"score": 1.0, "length": 1.0, "quality": 1.0, "unscored": 0.0, "gated": 0.0}
    assert again["score"] == 1.0


def test_no_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("JUDGERL_REWARD_CONFIG", raising=False)
    from judgerl.errors import ConfigError

    with pytest.raises(ConfigError, match="JUDGERL_REWARD_CONFIG"):
        verl_adapter.compute_score("d", "x", "y")


def test_example_verl_config_points_at_the_adapter():
    """verl ≥ 0.9 reads `reward.custom_reward_function` (test_engine_verl composes it with verl's config)."""
    example = Path(__file__).resolve().parents[1] / "examples" / "verl" / "ppo_judgerl.yaml"
    from judgerl.safe_yaml import load_yaml

    config = load_yaml(example.read_text())
    assert "custom_reward_function" not in config, "the top-level key is legacy: verl 0.9 ignores it"
    reward = config["reward"]["custom_reward_function"]
    assert reward["path"] == "pkg://judgerl.adapters.verl"
    assert hasattr(verl_adapter, reward["name"])
    assert not hasattr(verl_adapter, "compute_score_batch"), "verl ≥ 0.7 has no batch reward manager"


def test_example_reward_config_builds(monkeypatch):
    from judgerl.reward.pipeline import RewardPipeline

    monkeypatch.setenv("JUDGE_API_KEY", "test-key")
    example = Path(__file__).resolve().parents[1] / "examples" / "verl" / "reward.yaml"
    with RewardPipeline.from_config(str(example)) as pipeline:
        assert [judge.name for judge in pipeline.judges] == ["quality"]
        assert pipeline.config.failure_policy == "neutral"
