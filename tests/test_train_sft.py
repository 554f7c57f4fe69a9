"""`judgerl sft`: the supervised baseline trains a tiny real model on the reference answers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from judgerl.errors import DataError
from judgerl.train.recipe import load_recipe
from judgerl.train.sft import sft
from tiny_policy import build_tiny_model_dir


def test_sft_two_steps_with_lora(tmp_path: Path) -> None:
    build_tiny_model_dir(tmp_path / "model")
    rows = [{"id": f"q{i}", "prompt": f"Name a {kind}.", "reference": f'{{"answer": "{answer}"}}'}
            for i, (kind, answer) in enumerate([("fruit", "apple"), ("colour", "red"), ("city", "Paris")])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    recipe = load_recipe({"model": {"name_or_path": str(tmp_path / "model"), "lora": {"rank": 4}},
                          "data": {"train": str(tmp_path / "train.jsonl")}, "reward": {},
                          "trainer": {"max_steps": 2, "save_steps": 1},
                          "sft": {"batch_size": 3, "learning_rate": 1e-2},
                          "logging": {"output_dir": str(tmp_path / "out")}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sft(recipe)
    noise = [str(w.message) for w in caught
             if "is_gradient_checkpointing" in str(w.message) or "pin_memory" in str(w.message)]
    assert noise == []  # third-party warnings a user cannot act on are not shown
    assert result.global_step == 2 and result.output_dir == tmp_path / "out-sft"
    losses = [json.loads(line)["loss"] for line in result.metrics_path.read_text().splitlines()]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)
    from safetensors.torch import load_file

    adapter = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert any(tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name)
    assert (result.output_dir / "checkpoint-2").is_dir()


def test_sft_needs_references(tmp_path: Path) -> None:
    build_tiny_model_dir(tmp_path / "model")
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n")
    recipe = load_recipe({"model": {"name_or_path": str(tmp_path / "model")},
                          "data": {"train": str(tmp_path / "train.jsonl")}, "reward": {},
                          "logging": {"output_dir": str(tmp_path / "out")}})
    with pytest.raises(DataError, match="reference"):
        sft(recipe)
