"""The recipe's data splits as judgerl Samples and as the datasets TRL's trainers take.

Why: GRPO and SFT must see the same prompts, with the same system prompt, so that base, SFT and
RFT models are compared on equal terms. Rows are read by `judgerl.data` (errors name the file,
line and field); TRL gets only what it needs (`prompt` as chat messages, the row `id` so the
reward function finds the original Sample, and for SFT the reference answer as `completion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from judgerl.data import load_samples_strict
from judgerl.errors import DataError
from judgerl.train.recipe import Recipe
from judgerl.types import Sample


def load_split(recipe: Recipe, split: str) -> list[Sample]:
    """The `train` or `eval` samples of the recipe, with `data.system_prompt` applied."""
    data = recipe.data
    file = data.train if split == "train" else data.eval
    if file is None:
        return []
    samples = load_samples_strict(recipe.path(file))
    if split == "train" and data.max_samples:
        samples = samples[:data.max_samples]
    if data.system_prompt:
        for sample in samples:
            if not any(message["role"] == "system" for message in sample.messages):
                sample.messages.insert(0, {"role": "system", "content": data.system_prompt})
    return samples


def _prompt(sample: Sample, chat: bool) -> Any:
    """Chat messages for a tokenizer with a chat template; plain text (system + user turns) without one."""
    if chat:
        return sample.messages
    return "\n\n".join(message["content"] for message in sample.messages)


def grpo_dataset(samples: Sequence[Sample], *, chat: bool) -> Any:
    """A `datasets.Dataset` with `prompt` and `id` columns."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": _prompt(sample, chat), "id": sample.id} for sample in samples])


def sft_dataset(samples: Sequence[Sample], *, chat: bool, path: str) -> Any:
    """A prompt-completion `datasets.Dataset`: the reference answer is the target."""
    from datasets import Dataset

    missing = [sample.id for sample in samples if not sample.reference]
    if missing:
        raise DataError(f"SFT needs a `reference` answer in every row; {len(missing)} rows have none "
                        f"(first: id {missing[0]!r})", path=path, field="reference")
    rows = []
    for sample in samples:
        completion: Any = ([{"role": "assistant", "content": sample.reference}] if chat
                           else " " + str(sample.reference))
        rows.append({"prompt": _prompt(sample, chat), "completion": completion})
    return Dataset.from_list(rows)
