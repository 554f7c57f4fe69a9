"""GRPO without recomputing each prompt for every rollout of its group (`rollout.share_prompts`).

Why: GRPO samples `number_generation` answers to each prompt, and TRL's transformers path (no vLLM)
treats the group's rows as strangers: it runs the whole prompt once per row when it generates
(the prefill) and again once per row in the policy's forward pass for the loss. With prompts of a
few hundred tokens and answers of about a hundred, as in a review task, that is most of a step's
arithmetic: on a CPU, where a step is compute-bound, most of its time.

A causal model's states over the prompt do not depend on what follows it, so both passes can
run each distinct prompt once and let every row of its group continue from the same key/value
cache: in generation, the prompt (but its last token) is prefilled once per distinct prompt and
the cache is indexed out to the rows before `generate` goes on from it; in the loss, each group's
prompt is run once *with gradients*, its cache repeated to the group, and the answers run on top
through TRL's fused LM head, so the gradient of every answer flows back into the shared prompt
states. The numbers are TRL's own up to float rounding (tests/test_shared_prompts.py compares
log-probabilities, entropies, gradients and sampled tokens against TRL's path).

Anything this does not cover goes to TRL's own code unchanged: vLLM or continuous-batching
generation, images and other multimodal inputs, MoE auxiliary losses, a static cache, batches
whose prompts are all different, the loss of a run of several processes (DDP, FSDP and ZeRO
expect one forward pass per backward; their sampling is still shared), and TRL releases without
the methods overridden here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from trl import GRPOTrainer

from judgerl.models.shared_prefill import cache_argument, new_cache, prefilled_cache, prompt_groups

#: the multimodal keyword arguments of TRL's log-probability function: any of them set -> TRL's path
MULTIMODAL_INPUTS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
                     "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


def shared_prompt_logps(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        logits_to_keep: int, groups: list[list[int]], *, compute_entropy: bool,
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probabilities (and entropies) of the last `logits_to_keep` tokens of each row,
    as TRL's fused LM head gives them, each group's prompt run once.

    The prompt but its last token goes into a cache (with gradients); the last prompt token and the
    completion run on top of the cache repeated to the group, with labels that score the completion
    tokens only (the fused head predicts token t+1 from position t, so the last prompt token's
    position scores the first completion token)."""
    prompt_length = input_ids.size(1) - logits_to_keep
    cache_key = cache_argument(model)
    parts: list[tuple[list[int], torch.Tensor, torch.Tensor | None]] = []
    for rows in groups:
        first = rows[0]
        cache = new_cache()
        model(input_ids=input_ids[first:first + 1, :prompt_length - 1],
              attention_mask=attention_mask[first:first + 1, :prompt_length - 1],
              use_cache=True, logits_to_keep=1, **{cache_key: cache})
        cache.batch_repeat_interleave(len(rows))
        tail = input_ids[rows, prompt_length - 1:]
        labels = tail.masked_fill(attention_mask[rows, prompt_length - 1:] == 0, -100)
        labels[:, 0] = -100
        outputs = model(input_ids=tail, attention_mask=attention_mask[rows], labels=labels,
                        fused_lm_head=True, **{cache_key: cache})
        parts.append((rows, outputs.log_probs[:, -logits_to_keep:],
                      outputs.entropy[:, -logits_to_keep:] if compute_entropy else None))
    # one differentiable gather back into the batch's row order
    order = torch.tensor([row for rows, _, _ in parts for row in rows], device=input_ids.device)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    logps = torch.cat([part for _, part, _ in parts])[inverse]
    entropies = None
    if compute_entropy:
        entropies = torch.cat([part for _, _, part in parts if part is not None])[inverse]
    return logps, entropies


@contextmanager
def generation_from_shared_prompts(model: Any) -> Iterator[None]:
    """While open, `model.generate(input_ids=..., attention_mask=...)` prefills each distinct
    prompt once (`prefilled_cache`) and generates on from it."""
    original = model.generate
    patched_before = vars(model).get("generate")  # an instance attribute someone else set, kept

    def generate(*args: Any, **kwargs: Any) -> Any:
        input_ids, attention_mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        config = kwargs.get("generation_config")
        key = cache_argument(model)
        if (args or input_ids is None or attention_mask is None or key in kwargs
                or getattr(config, "cache_implementation", None) is not None):
            return original(*args, **kwargs)
        cache = prefilled_cache(model, input_ids, attention_mask)
        return original(**kwargs) if cache is None else original(**kwargs, **{key: cache})

    model.generate = generate
    try:
        yield
    finally:
        if patched_before is None:
            del model.generate  # the class's method again
        else:
            model.generate = patched_before


class SharedPromptGRPOTrainer(GRPOTrainer):
    """TRL's `GRPOTrainer`, each prompt computed once per group in generation and in the loss."""

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor,
                                           attention_mask: torch.Tensor, logits_to_keep: int,
                                           batch_size: int | None = None, compute_entropy: bool = False,
                                           compute_aux_loss: bool = False, **multimodal: Any,
                                           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        prompt_length = input_ids.size(1) - logits_to_keep
        # one process only: DDP / FSDP / ZeRO wrappers expect one forward per backward
        shareable = (self.accelerator.num_processes == 1 and not compute_aux_loss and prompt_length >= 2
                     and all(multimodal.get(name) is None for name in MULTIMODAL_INPUTS))
        groups = (prompt_groups(input_ids[:, :prompt_length], attention_mask[:, :prompt_length])
                  if shareable else [])
        if not groups or len(groups) == input_ids.size(0):
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **multimodal)
        with self.accelerator.autocast():
            logps, entropies = shared_prompt_logps(model, input_ids, attention_mask, logits_to_keep, groups,
                                                   compute_entropy=compute_entropy)
        return logps, entropies, None

    def _generate_single_turn(self, prompt_ids: Any, images: Any, multimodal_fields: Any,
                              num_generations: int, has_tool_images: bool = False) -> Any:
        transformers_path = not (self.use_vllm or getattr(self, "use_transformers_continuous_batching", False)
                                 or getattr(self, "use_transformers_paged", False))
        if not transformers_path or images is not None or multimodal_fields:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        with generation_from_shared_prompts(self.accelerator.unwrap_model(self.model_wrapped)):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)


def overrides_fit_installed_trl() -> bool:
    """Whether the installed TRL has the two methods this module overrides, with the arguments it
    relies on (a TRL that renamed them gets its own path, not a silently broken one)."""
    logps = getattr(GRPOTrainer, "_get_per_token_logps_and_entropies", None)
    generate = getattr(GRPOTrainer, "_generate_single_turn", None)
    if logps is None or generate is None:
        return False
    logps_args = set(inspect.signature(logps).parameters)
    generate_args = list(inspect.signature(generate).parameters)
    return ({"model", "input_ids", "attention_mask", "logits_to_keep", "compute_entropy",
             "compute_aux_loss"} <= logps_args
            and generate_args[:5] == ["self", "prompt_ids", "images", "multimodal_fields", "num_generations"])
