"""Loading the policy model and its tokenizer for training, and its LoRA config.

Why one place: `judgerl train` (GRPO) and `judgerl sft` must start from exactly the same model,
tokenizer and adapters, or the SFT baseline is not a fair comparison. The model spec goes through
`judgerl.models.resolve_model`, so a packaged name, a .gguf file and a Hugging Face folder all
work, and nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgerl.models import resolve_model
from judgerl.train.recipe import ModelSection


def load_for_training(section: ModelSection) -> tuple[Any, Any, Path]:
    """(model, tokenizer, folder) for the recipe's model section."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(section.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=getattr(torch, section.dtype))
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, folder


def top_layers(model: Any, count: int) -> tuple[list[int], list[str]]:
    """(the indexes of `model`'s top `count` transformer layers, the names of its linear modules
    but the head): peft's `layers_to_transform` takes a layer list only with named target modules."""
    import torch

    total = int(model.config.num_hidden_layers)
    names = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")})
    return list(range(max(0, total - count), total)), names


def lora_config(section: ModelSection, model: Any = None) -> Any:
    """A peft `LoraConfig`, or None when LoRA is off (every weight trains). With `lora.layers`,
    the adapters go on the top N layers of `model` only."""
    if not section.lora.enabled:
        return None
    from peft import LoraConfig

    lora = section.lora
    layers, targets = None, lora.target_modules
    if lora.layers is not None:
        if model is None:
            raise ValueError("lora.layers needs the loaded model (its layer count)")
        layers, linear = top_layers(model, lora.layers)
        targets = linear if targets == "all-linear" else targets
    return LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=targets, layers_to_transform=layers, task_type="CAUSAL_LM")


def save_final(trainer: Any, tokenizer: Any, folder: Path, *, merge: bool) -> Path:
    """Save the trained policy to `folder`: adapters (LoRA) or weights, plus the tokenizer.

    With LoRA and `merge`, `folder/merged` also holds the base model with the adapters merged in,
    a plain folder that `from_pretrained` (and judgerl's evaluation) loads without peft.
    """
    folder.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(folder))  # writes on the main process only
    if not trainer.is_world_process_zero():
        return folder
    tokenizer.save_pretrained(str(folder))
    model = trainer.model
    if merge and hasattr(model, "merge_and_unload"):
        import copy

        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(str(folder / "merged"))
        tokenizer.save_pretrained(str(folder / "merged"))
    return folder
