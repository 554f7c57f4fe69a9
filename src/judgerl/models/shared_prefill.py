"""A key/value cache of a batch's prompts with each distinct prompt computed once.

Why: sampling several answers to one prompt (GRPO's group of `number_generation`, evaluation's
k answers) makes `generate` run that prompt once per answer: `num_return_sequences=k` and TRL's
repeated rows both copy the prompt before the prefill. A causal model's states over a prompt do
not depend on what is sampled after it, so the prefill can run once per distinct prompt and every
row continue from the same cache: the same tokens, sampled with the same random draws, for a
k-th of the prefill's arithmetic. Used by evaluation (`models/policy.py`) and by GRPO training
(`train/shared_prompts.py`, which also shares the prompt in the loss).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is the `local` / `train` extras' (imported where used)
    import torch


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> list[list[int]]:
    """The rows of a left-padded batch grouped by identical prompt (tokens and mask), first-seen order."""
    groups: dict[tuple[tuple[int, ...], tuple[int, ...]], list[int]] = {}
    for row, (ids, mask) in enumerate(zip(prompt_ids.tolist(), prompt_mask.tolist(), strict=True)):
        groups.setdefault((tuple(ids), tuple(mask)), []).append(row)
    return list(groups.values())


def cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its key/value cache by: `cache` (transformers >= 5.25)
    or `past_key_values` (earlier releases)."""
    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def new_cache() -> Any:
    from transformers import DynamicCache

    return DynamicCache()


def prefilled_cache(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any | None:
    """A key/value cache of every row's prompt but its last token, each distinct prompt computed
    once, or None when every row's prompt is different (nothing to share).

    Positions are counted from each row's first real token, as `generate` counts them in a
    left-padded batch, so generation from this cache is generation from scratch."""
    import torch

    groups = prompt_groups(input_ids, attention_mask)
    if len(groups) == input_ids.size(0) or input_ids.size(1) < 2:
        return None
    firsts = [rows[0] for rows in groups]
    ids, mask = input_ids[firsts, :-1], attention_mask[firsts, :-1]
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = new_cache()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
              **{cache_argument(model): cache})
    index = torch.empty(input_ids.size(0), dtype=torch.long, device=input_ids.device)
    for group, rows in enumerate(groups):
        index[rows] = group
    cache.batch_select_indices(index)
    return cache
