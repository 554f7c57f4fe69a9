"""`judgerl train`: a recipe becomes TRL's `GRPOTrainer`, with the judgerl reward and monitors.

Why TRL's trainer and not our own GRPO: TRL's loss, clipping, KL, generation, vLLM rollouts,
accelerate / DeepSpeed / FSDP support and checkpointing are maintained by many people; judgerl
only adds the reward, the recipe and the monitors. `grpo_config` is the whole mapping from the
recipe onto `GRPOConfig`, in one place:

| recipe                         | GRPOConfig                                                    |
|--------------------------------|---------------------------------------------------------------|
| rollout.number_generation      | num_generations                                               |
| rollout.temperature/top_k/top_p| temperature / top_k / top_p                                   |
| rollout.max_new_tokens         | max_completion_length                                         |
| rollout.vllm.enabled / mode    | use_vllm / vllm_mode                                          |
| rollout.vllm.server_base_url   | vllm_server_base_url                                          |
| rollout.vllm.gpu_memory_utilization, tensor_parallel_size | vllm_ + same names                 |
| rollout.max_tool_calls         | max_tool_calling_iterations (rollout.tools: GRPOTrainer tools) |
| rollout.share_prompts          | (judgerl) `SharedPromptGRPOTrainer`: each prompt once a group  |
| trainer.global_batch_size      | per_device_train_batch_size x gradient_accumulation_steps x   |
|                                | processes (completions per optimizer step)                    |
| trainer.learning_rate, warmup_steps, weight_decay, max_grad_norm | same names                  |
| trainer.lr_scheduler           | lr_scheduler_type                                             |
| trainer.clip_ratio / clip_ratio_high | epsilon / epsilon_high                                  |
| trainer.ent_coeff              | entropy_coef                                                  |
| trainer.beta, loss_type, scale_rewards, num_iterations, mask_truncated_completions | same names |
| trainer.save_steps / save_top_k / save_best_by | save_steps / save_total_limit / metric_for_best_model |
| data.shuffle                   | shuffle_dataset                                               |
| logging.logging_steps          | logging_steps                                                 |

TRL generates once per optimizer step (`steps_per_generation` = gradient accumulation), so one
reward call scores the whole global batch: `global_batch_size / number_generation` prompts with
`number_generation` completions each, all judged concurrently.

Under `accelerate launch` (`WORLD_SIZE` > 1) only the main process builds the reward pipelines
(judge backends, cache, journal) and scores, over every rank's rows (`adapters/trl_ranks.py`);
the other ranks generate and train only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from judgerl.adapters.trl_ranks import launched_ranks, run_on_main
from judgerl.backends.base import Backend
from judgerl.errors import BudgetExhausted, ConfigError
from judgerl.models.quiet import quiet_unactionable_warnings
from judgerl.reward.pipeline import RewardPipeline
from judgerl.train.checkpoints import resume_point
from judgerl.train.compact_lm_head import use_compact_lm_head_on_cpu
from judgerl.train.monitors import (
    HackingAlarm,
    MetricsJsonl,
    RichProgress,
    SignalTracker,
    load_exploit_matcher,
)
from judgerl.train.policy import load_for_training, lora_config, save_final
from judgerl.train.recipe import Recipe, batch_layout, world_size
from judgerl.train.reward import TrainingReward
from judgerl.train.splits import grpo_dataset, load_split
from judgerl.train.tools import recipe_tools, tool_schemas


@dataclass
class TrainResult:
    """What a finished (or stopped) run left behind."""

    output_dir: Path
    final_dir: Path
    global_step: int
    metrics_path: Path
    seconds: float
    alarms: list[tuple[int, str]] = field(default_factory=list)
    stopped_early: bool = False


def optimizer_args(recipe: Recipe, per_device: int, accumulation: int, learning_rate: float,
                   ) -> dict[str, Any]:
    """The batch and optimizer settings GRPO and the SFT baseline share (TRL field names).

    Pinned memory only helps a copy to an accelerator; asked for without one, torch warns on
    every data loader."""
    import torch

    trainer = recipe.trainer
    return {"per_device_train_batch_size": per_device, "gradient_accumulation_steps": accumulation,
            "learning_rate": learning_rate, "lr_scheduler_type": trainer.lr_scheduler,
            "warmup_steps": trainer.warmup_steps, "weight_decay": trainer.weight_decay,
            "max_grad_norm": trainer.max_grad_norm,
            "dataloader_pin_memory": torch.accelerator.is_available()}


def grpo_config(recipe: Recipe, *, processes: int | None = None, has_eval: bool = False) -> Any:
    """TRL `GRPOConfig` for the recipe (see the table in the module docstring)."""
    from trl import GRPOConfig

    trainer, rollout, vllm = recipe.trainer, recipe.rollout, recipe.rollout.vllm
    per_device, accumulation = batch_layout(trainer.global_batch_size, trainer.per_device_batch_size,
                                            processes or world_size())
    evaluating = has_eval and trainer.eval_steps is not None
    best = trainer.save_best_by
    return GRPOConfig(
        output_dir=str(recipe.output_dir),
        max_steps=trainer.max_steps,
        **optimizer_args(recipe, per_device, accumulation, trainer.learning_rate),
        num_generations=rollout.number_generation,
        temperature=rollout.temperature,
        top_k=rollout.top_k,
        top_p=rollout.top_p,
        max_completion_length=rollout.max_new_tokens,
        epsilon=trainer.clip_ratio,
        epsilon_high=trainer.clip_ratio_high,
        entropy_coef=trainer.ent_coeff,
        beta=trainer.beta,
        loss_type=trainer.loss_type,
        scale_rewards=trainer.scale_rewards,
        num_iterations=trainer.num_iterations,
        mask_truncated_completions=trainer.mask_truncated_completions,
        shuffle_dataset=recipe.data.shuffle,
        use_vllm=vllm.enabled,
        vllm_mode=vllm.mode,
        vllm_server_base_url=vllm.server_base_url,
        vllm_gpu_memory_utilization=vllm.gpu_memory_utilization,
        vllm_tensor_parallel_size=vllm.tensor_parallel_size,
        max_tool_calling_iterations=rollout.max_tool_calls,
        save_strategy="steps",
        save_steps=trainer.save_steps,
        save_total_limit=trainer.save_top_k,
        metric_for_best_model=best,
        greater_is_better=None if best is None else "loss" not in best,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=trainer.eval_steps if evaluating else None,
        per_device_eval_batch_size=rollout.number_generation,
        logging_steps=recipe.logging.logging_steps,
        report_to="none",
        disable_tqdm=True,
        seed=trainer.seed,
        data_seed=trainer.seed,
        ddp_timeout=round(trainer.process_timeout_s),
        bf16=trainer.bf16,
        **checkpointing_arg(GRPOConfig, recipe.model.gradient_checkpointing),
        log_completions=False,
        dataloader_num_workers=0,
    )


def checkpointing_arg(config_class: type, enabled: bool) -> dict[str, bool]:
    """Activation checkpointing, always set: TRL turns it on by default, which slows small models.

    transformers 5 renamed `gradient_checkpointing` to `activation_checkpointing` (the old name warns).
    """
    import dataclasses

    names = {item.name for item in dataclasses.fields(config_class)}
    name = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {name: enabled}


def trainer_class(recipe: Recipe) -> type:
    """TRL's `GRPOTrainer`, or its subclass that computes each prompt once per group
    (`rollout.share_prompts`, `shared_prompts.py`) where that applies: no vLLM, and a TRL whose
    methods it overrides are the ones it was written for."""
    from trl import GRPOTrainer

    if not recipe.rollout.share_prompts or recipe.rollout.vllm.enabled:
        return GRPOTrainer
    from judgerl.train.shared_prompts import SharedPromptGRPOTrainer, overrides_fit_installed_trl

    return SharedPromptGRPOTrainer if overrides_fit_installed_trl() else GRPOTrainer


class GrpoRun:
    """Everything one `judgerl train` builds; `run()` trains. Tests build it to look inside."""

    def __init__(self, recipe: Recipe, *, resume: bool = False, backends: dict[str, Backend] | None = None,
                 held_out_backends: dict[str, Backend] | None = None, console: Console | None = None) -> None:
        quiet_unactionable_warnings()
        use_compact_lm_head_on_cpu()
        self.recipe = recipe
        self.console = console or Console(stderr=True)
        self.ranks = launched_ranks()
        main = self.ranks is None or self.ranks.is_main
        output_dir = recipe.output_dir
        self.resume_from = resume_point(output_dir, resume=resume, overwrite=recipe.logging.overwrite,
                                        clear=main)
        self.samples = load_split(recipe, "train")
        eval_samples = load_split(recipe, "eval")
        # in a multi-process run only the main process judges: no backends elsewhere
        self.pipeline: RewardPipeline | None = None
        if main:
            self.pipeline = RewardPipeline.from_config(recipe.training_reward_config(), backends=backends)
        monitors = recipe.monitors
        held_out_config = recipe.held_out_reward_config()
        self.held_out = None
        if held_out_config is not None and main:
            self.held_out = RewardPipeline.from_config(held_out_config, backends=held_out_backends)
        self.tracker = SignalTracker(monitors, load_exploit_matcher())
        self.metrics_path = output_dir / "metrics.jsonl"
        completions_path = output_dir / "completions.jsonl"
        self.tools = recipe_tools(recipe)  # rollout.tools: TRL's tool-calling loop
        self.reward = TrainingReward(
            self.pipeline, self.samples + eval_samples, tracker=self.tracker, held_out=self.held_out,
            held_out_sample=monitors.held_out_sample, seed=recipe.trainer.seed,
            completions_path=completions_path if recipe.logging.completions else None, ranks=self.ranks,
            tools=tool_schemas(self.tools, source=recipe.source) if self.tools else None)
        model, self.tokenizer, self.model_folder = load_for_training(recipe.model)
        chat = self.tokenizer.chat_template is not None
        self.alarm = HackingAlarm(self.tracker, self.console)
        callbacks: list[Any] = [MetricsJsonl(self.metrics_path, self.tracker, trim=[completions_path]),
                                self.alarm]
        if monitors.progress:
            callbacks.append(RichProgress(self.console))
        if recipe.logging.tensorboard and main:  # a SummaryWriter opens its event file at once
            callbacks.append(tensorboard_callback(output_dir / "tensorboard"))
        self.trainer = trainer_class(recipe)(
            model=model, reward_funcs=[self.reward],
            args=grpo_config(recipe, has_eval=bool(eval_samples)),
            train_dataset=grpo_dataset(self.samples, chat=chat),
            eval_dataset=grpo_dataset(eval_samples, chat=chat) if eval_samples else None,
            processing_class=self.tokenizer, peft_config=lora_config(recipe.model, model),
            callbacks=callbacks,
            **({"tools": self.tools} if self.tools else {}))
        self._check_process_group()
        if monitors.progress:
            from transformers.trainer_callback import PrinterCallback, ProgressCallback

            self.trainer.remove_callback(PrinterCallback)
            self.trainer.remove_callback(ProgressCallback)

    def _check_process_group(self) -> None:
        """WORLD_SIZE processes were launched: the trainer must run as one of them, not alone."""
        processes = self.trainer.accelerator.num_processes
        if self.ranks is None or processes == self.ranks.world_size:
            return
        self.close()
        raise ConfigError(f"{self.ranks.world_size} processes were launched (WORLD_SIZE) but the trainer "
                          f"runs as {processes}: no process group was set up. On CPU, launch with "
                          "ACCELERATE_USE_CPU=true (accelerate launch --multi_gpu --num_processes N, "
                          "or torchrun)")

    def run(self) -> TrainResult:
        started = time.perf_counter()
        recipe = self.recipe
        try:
            self.trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
            final_dir = save_final(self.trainer, self.tokenizer, recipe.output_dir / "final",
                                   merge=recipe.logging.save_merged)
        except BudgetExhausted as exc:
            raise self._stopped_by_budget(exc) from exc
        finally:
            self.close()
        state = self.trainer.state
        return TrainResult(output_dir=recipe.output_dir, final_dir=final_dir, global_step=state.global_step,
                           metrics_path=self.metrics_path, seconds=time.perf_counter() - started,
                           alarms=list(self.alarm.fired),
                           stopped_early=state.global_step < recipe.trainer.max_steps)

    def _stopped_by_budget(self, exc: BudgetExhausted) -> BudgetExhausted:
        """The judge's spending budget ran out while a step was being scored: that step is not
        trained (its rewards are incomplete); the last finished step is saved as a checkpoint (unless
        `save_steps` already saved it) so that `--resume` with a raised budget continues from it."""
        from judgerl.reward.pipeline import spend_text
        from judgerl.train.checkpoints import checkpoints

        step = self.trainer.state.global_step
        saved = next((path for path in checkpoints(self.recipe.output_dir)
                      if path.name == f"checkpoint-{step}"), None)
        if saved is None:
            self.trainer._save_checkpoint(self.trainer.model, trial=None)
            saved = self.recipe.output_dir / f"checkpoint-{step}"
        return BudgetExhausted(
            f"training stopped by the judge's budget while scoring step {step + 1}: {exc.detail}. Steps "
            f"1-{step} are trained and saved in {saved}; spent this run: {spend_text(exc.spend)}. Raise "
            "runtime.budget_usd / runtime.budget_tokens (for a reward file: --set "
            "reward.runtime.budget_usd=...) and resume (`judgerl train --resume`, or rerun `judgerl run`)",
            exc.spend)

    def close(self) -> None:
        self.reward.close()
        if self.pipeline is not None:
            self.pipeline.close()
        if self.held_out is not None:
            self.held_out.close()


def tensorboard_callback(log_dir: Path) -> Any:
    """transformers' TensorBoard callback writing into `log_dir`."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def train(recipe: Recipe, *, resume: bool = False, skip_validation: bool = False,
          backends: dict[str, Backend] | None = None, console: Console | None = None) -> TrainResult:
    """Run GRPO for `recipe`; when the recipe names a validation suite, the judge must pass it first."""
    if recipe.validation.suite and not skip_validation and not resume:
        ranks = launched_ranks()
        gate = lambda: run_validation_gate(recipe, backends=backends,  # noqa: E731
                                           console=console or Console(stderr=True))
        if ranks is None:
            gate()
        else:
            # the judge is called from the main process only
            run_on_main(gate, ranks, timeout_s=recipe.trainer.process_timeout_s)
    return GrpoRun(recipe, resume=resume, backends=backends, console=console).run()


def run_validation_gate(recipe: Recipe, *, backends: dict[str, Backend] | None = None,
                        console: Console) -> None:
    """`judgerl validate` on the training reward's judge; raises ValidationGateError on a failed threshold.

    The report goes to `<output_dir>/validation/`. A resumed run already passed the gate.
    """
    from judgerl.validate.runner import validate_and_gate

    suite = recipe.path(recipe.validation.suite or "")
    console.print(f"validating the judge against {suite} before training ...", highlight=False)
    report = validate_and_gate(recipe.training_reward_config(), suite,
                               backends=backends, output_dir=recipe.output_dir / "validation")
    console.print(f"judge validation passed ({len(report.sections)} sections)", highlight=False)
