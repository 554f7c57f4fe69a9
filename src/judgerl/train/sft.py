"""`judgerl sft`: the supervised baseline, on the same recipe, data and model as `judgerl train`.

Why: an RFT result means little without the obvious alternative next to it. Fine-tuning on the
reference answers (TRL's `SFTTrainer`, loss on the answer tokens only, LoRA when the recipe uses
it) gives the SFT model that `judgerl evaluate` compares with the base and RFT models.

Recipe mapping onto `SFTConfig`: sft.max_steps (default trainer.max_steps) -> max_steps;
sft.batch_size -> per_device_train_batch_size x gradient_accumulation_steps x processes (as for
GRPO; sft.per_device_batch_size is the forward pass); sft.learning_rate; sft.max_length;
trainer.save_steps / save_top_k / seed / lr_scheduler / warmup_steps / weight_decay / max_grad_norm /
bf16; data.shuffle; logging.*. The output goes to sft.output_dir (default `<output_dir>-sft`).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from judgerl.models.quiet import quiet_unactionable_warnings
from judgerl.train.checkpoints import resume_point
from judgerl.train.compact_lm_head import use_compact_lm_head_on_cpu
from judgerl.train.grpo import (
    TrainResult,
    checkpointing_arg,
    optimizer_args,
    tensorboard_callback,
)
from judgerl.train.monitors import MetricsJsonl, RichProgress
from judgerl.train.policy import load_for_training, lora_config, save_final
from judgerl.train.recipe import Recipe, batch_layout, world_size
from judgerl.train.splits import load_split, sft_dataset


def sft_config(recipe: Recipe, *, processes: int | None = None) -> Any:
    """TRL `SFTConfig` for the recipe's SFT baseline."""
    from trl import SFTConfig

    trainer, sft = recipe.trainer, recipe.sft
    per_device, accumulation = batch_layout(sft.batch_size, sft.per_device_batch_size,
                                            processes or world_size())
    return SFTConfig(
        output_dir=str(recipe.sft_output_dir),
        max_steps=sft.max_steps or trainer.max_steps,
        **optimizer_args(recipe, per_device, accumulation, sft.learning_rate),
        max_length=sft.max_length,
        completion_only_loss=True,
        shuffle_dataset=recipe.data.shuffle,
        save_strategy="steps",
        save_steps=trainer.save_steps,
        save_total_limit=trainer.save_top_k,
        logging_steps=recipe.logging.logging_steps,
        report_to="none",
        disable_tqdm=True,
        seed=trainer.seed,
        data_seed=trainer.seed,
        bf16=trainer.bf16,
        **checkpointing_arg(SFTConfig, recipe.model.gradient_checkpointing),
        dataloader_num_workers=0,
    )


def sft(recipe: Recipe, *, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Fine-tune the recipe's model on its reference answers; returns where it went."""
    from trl import SFTTrainer

    quiet_unactionable_warnings()
    use_compact_lm_head_on_cpu()
    console = console or Console(stderr=True)
    output_dir = recipe.sft_output_dir
    resume_from = resume_point(output_dir, resume=resume, overwrite=recipe.logging.overwrite)
    train_samples, eval_samples = load_split(recipe, "train"), load_split(recipe, "eval")
    model, tokenizer, _ = load_for_training(recipe.model)
    chat = tokenizer.chat_template is not None
    metrics_path = output_dir / "metrics.jsonl"
    callbacks: list[Any] = [MetricsJsonl(metrics_path, key="loss")]
    if recipe.monitors.progress:
        callbacks.append(RichProgress(console, description="SFT"))
    if recipe.logging.tensorboard:
        callbacks.append(tensorboard_callback(output_dir / "tensorboard"))
    trainer = SFTTrainer(
        model=model, args=sft_config(recipe),
        train_dataset=sft_dataset(train_samples, chat=chat, path=str(recipe.path(recipe.data.train))),
        eval_dataset=(sft_dataset(eval_samples, chat=chat, path=str(recipe.path(recipe.data.eval or "")))
                      if eval_samples and all(sample.reference for sample in eval_samples) else None),
        processing_class=tokenizer, peft_config=lora_config(recipe.model, model), callbacks=callbacks)
    if recipe.monitors.progress:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final_dir = save_final(trainer, tokenizer, output_dir / "final", merge=recipe.logging.save_merged)
    return TrainResult(output_dir=output_dir, final_dir=final_dir, global_step=trainer.state.global_step,
                       metrics_path=metrics_path, seconds=time.perf_counter() - started)
