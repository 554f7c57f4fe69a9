"""`judgerl train` end to end on CPU: a tiny real Llama, TRL's GRPOTrainer, a rubric judge.

The judge is a scripted backend (it says so in its name): it passes or fails an answer from a
hash of the judged text and gives a malformed verdict for some, so rewards vary within groups
(GRPO needs that to move) and some rollouts come back unscored. Everything else is real: the
reward pipeline, TRL's trainer, checkpoints written to disk and resumed from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from judgerl.backends.base import CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.errors import ConfigError
from judgerl.train.grpo import GrpoRun
from judgerl.train.recipe import load_recipe
from tiny_policy import build_tiny_model_dir

REWARD = {
    "backends": {"judge": {"type": "scripted"}},
    "checks": [{"name": "length", "type": "length", "unit": "chars", "min": 1, "max": 400}],
    "judges": [{"name": "quality", "type": "rubric", "backend": "judge",
                "criteria": [{"name": "clear", "description": "the answer is clear"}]}],
    "failure_budget": 1.0,
}


def scripted_judge(request: CompletionRequest) -> str:
    """Pass/fail from a hash of the judge prompt; a quarter of the answers get unparseable verdicts.

    The hash is of the first user message (the prompt holding the answer), which a re-ask keeps,
    so an answer whose verdict is malformed stays malformed and ends unscored.
    """
    first = next(message["content"] for message in request.messages if message["role"] == "user")
    digest = int(hashlib.sha256(first.encode()).hexdigest(), 16)
    if digest % 4 == 0:
        return "I cannot decide."
    return json.dumps({"criteria": {"clear": {"score": digest % 2 == 0, "rationale": "scripted"}}})


def held_out_judge(request: CompletionRequest) -> str:
    return json.dumps({"criteria": {"clear": {"score": True, "rationale": "scripted held-out"}}})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grpo")
    build_tiny_model_dir(root / "model")
    rows = [{"id": f"q{i}", "prompt": f"Say something short about {word}.", "reference": word}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain", "tea", "snow"])]
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return root


def recipe_for(root: Path, *overrides: str) -> Any:
    data = {"model": {"name_or_path": str(root / "model"), "lora": {"enabled": False}},
            "data": {"train": str(root / "train.jsonl")}, "reward": REWARD,
            "rollout": {"number_generation": 4, "max_new_tokens": 10},
            "trainer": {"max_steps": 2, "global_batch_size": 8, "per_device_batch_size": 4,
                        "save_steps": 1, "learning_rate": 5e-3},
            "monitors": {"held_out_reward": REWARD, "held_out_sample": 3, "baseline_steps": 1},
            "logging": {"output_dir": str(root / "out")}}
    return load_recipe(data, list(overrides))


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def metrics(root: Path) -> list[dict[str, Any]]:
    lines = (root / "out" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def run(recipe: Any, *, resume: bool = False) -> Any:
    grpo = GrpoRun(recipe, resume=resume, backends={"judge": ScriptedBackend(scripted_judge)},
                   held_out_backends={"judge": ScriptedBackend(held_out_judge)})
    return grpo.run()


def test_two_steps_then_resume_to_three(workspace: Path) -> None:
    result = run(recipe_for(workspace))
    out = workspace / "out"
    assert result.global_step == 2
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    rows = metrics(workspace)
    assert [row["step"] for row in rows] == [1, 2]
    first = rows[0]
    # the reward and each component, with spread, the unscored share and the judge's use, per step
    for key in ("reward", "reward_std", "reward/quality/mean", "reward/quality/std", "reward/length/mean",
                "reward/unscored_frac", "judge/calls", "judge/total_tokens", "completions/mean_length",
                "hacking/repetition", "hacking/exploit_share", "hacking/held_out_gap"):
        assert first.get(key) is not None, key
    assert first["judge/calls"] >= 8  # 8 rollouts, plus re-asks of malformed verdicts
    assert rows[1].get("hacking/length_drift") is not None  # baseline_steps=1
    assert rows[1].get("hacking/held_out_divergence") is not None
    assert any((out / "tensorboard").glob("events.out.tfevents.*"))

    completions = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(completions) == 16 and {row["step"] for row in completions} == {1, 2}
    unscored = [row for row in completions if row["status"] == "unscored"]
    assert unscored and all(row["reward"] is None and row["reason"] for row in unscored)
    assert max(row["reward/unscored_frac"] for row in rows) > 0

    trained = weights(out / "final")
    initial = weights(workspace / "model")
    assert any(not trained[name].equal(initial[name]) for name in initial)

    # a new run into a folder with checkpoints is refused; --resume continues from checkpoint-2
    with pytest.raises(ConfigError, match="--resume"):
        GrpoRun(recipe_for(workspace, "trainer.max_steps=3"))
    resumed = run(recipe_for(workspace, "trainer.max_steps=3"), resume=True)
    assert resumed.global_step == 3
    assert [row["step"] for row in metrics(workspace)] == [1, 2, 3]
    after = weights(out / "final")
    assert any(not after[name].equal(trained[name]) for name in trained)
    steps = [json.loads(line)["step"] for line in (out / "completions.jsonl").read_text().splitlines()]
    assert steps.count(3) == 8 and steps.count(2) == 8


def test_lora_trains_adapters_only(workspace: Path, tmp_path: Path) -> None:
    recipe = recipe_for(workspace, "model.lora.enabled=true", "model.lora.rank=4", "trainer.max_steps=1",
                        f"logging.output_dir={tmp_path / 'lora'}", "logging.tensorboard=false")
    result = run(recipe)
    adapter = weights_named(result.final_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    assert (result.final_dir / "merged" / "model.safetensors").is_file()


def weights_named(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_cli_train_reports_a_bad_recipe_without_a_traceback(tmp_path: Path) -> None:
    from judgerl.cli import app

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: {train: missing.jsonl}\nreward: {}\ntrainer: {max_steps: 0}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(recipe)])
    assert result.exit_code == 2
    assert "trainer.max_steps" in result.output
