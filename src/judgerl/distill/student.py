"""Fine-tune a small student judge on the teacher's verdicts and write a folder `local` loads.

Why this shape: the local backend scores a `scoring: logprob` judge in one forward pass by reading
the probabilities of the verdict tokens (PASS/FAIL, or 1-5) at the first answer position. The
student is trained on exactly that: for each row, the prompt its own rubric judge renders, run
through the chat template as the local engine runs it, and a cross-entropy between the teacher's
verdict distribution and the student's probabilities restricted to the verdict tokens (summed over
each token's single-token spellings, as the engine sums them). Nothing else about the model is
asked to change, so a low-rank adapter (LoRA, the default) is enough; `full` trains every weight.
The result is merged into plain weights: the `local` backend needs no peft to load it.

A pairwise teacher (which of two answers is better) gets a Bradley-Terry student that still
scores each answer alone: the student's strength of an answer is s = log P(pass) - log P(fail)
over the verdict tokens (the same restricted probabilities as above, one forward pass per answer
with its `rubric_student` prompt on one criterion), and a pair (a, b) with teacher preference
t = P(a better) is trained with BCE(sigmoid(s_a - s_b), t). It is then used as a `type: pairwise`
judge with `comparison: pointwise`, whose P(a better) = preference(p_a, p_b) is exactly
sigmoid(s_a - s_b): the quantity trained is the one scored, position-consistent by construction,
k forward passes for k answers. Measured choice: on LLMBar pairs the 135M model judged pointwise
agreed with humans 0.69, head to head 0.50.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, cast

from judgerl.backends.base import CompletionRequest, render_prompt
from judgerl.config import JudgeConfig, RewardConfig
from judgerl.distill.examples import Judged, JudgedPair, target_distribution
from judgerl.errors import ConfigError
from judgerl.judges.logprob import verdict_tokens
from judgerl.judges.pairwise import CRITERION_NAME, PairwiseJudge
from judgerl.judges.rubric import RubricJudge
from judgerl.models.quiet import quiet_unactionable_warnings

if TYPE_CHECKING:
    from rich.console import Console

    from judgerl.train.monitors import StepProgress

log = logging.getLogger(__name__)
Method = Literal["lora", "full"]
STUDENT_BACKEND = "student"
#: the student's own zero-shot template: short, because every training step and every judgment
#: pays for each prompt token (the teacher's few-shot prompt is ~1000 tokens, this one ~100)
STUDENT_PROMPT = "rubric_student"


@dataclass
class TrainSettings:
    """How the student is trained (the defaults are the ones measured in docs/guides/distillation.md)."""

    method: Method = "lora"
    epochs: int = 3
    learning_rate: float | None = None  # None: 1e-3 for LoRA, 1e-4 for full (measured: docs)
    batch_size: int = 8  # rows per step (a pairwise teacher: pairs, two prompts each)
    soft_targets: bool = True
    lora_rank: int = 16
    #: LoRA on the top N transformer layers only (None: all): the backward pass then stops there,
    #: ~1.5-2x faster steps on a CPU
    lora_layers: int | None = None
    seed: int = 0
    #: longer prompts keep their last tokens (the answer's end, the criterion and the verdict cue)
    max_prompt_tokens: int = 384
    #: recompute activations in the backward pass: less memory, ~30% more time
    gradient_checkpointing: bool = False

    def rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1e-3 if self.method == "lora" else 1e-4


@dataclass
class TrainResult:
    rows: int
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    trainable_parameters: int = 0


def student_judge_config(judge: str, criteria: list[dict[str, Any]], *, model: str,
                         extra_options: dict[str, Any] | None = None,
                         prompt: str = STUDENT_PROMPT) -> dict[str, Any]:
    """The reward config (as a dict) that scores with the student: one rubric judge, logprob scoring.

    The prompt is the student's own (`prompt`, a shipped template), never the teacher's: the
    student is trained and later asked with this one template, so the reward snippet and the
    training rows cannot drift apart.
    """
    options = {key: value for key, value in (extra_options or {}).items()
               if key not in {"scoring", "prompt", "prompt_file", "rationale", "name", "type", "backend",
                              "weight", "items_per_call", "mode"}}  # the student asks one item per call
    return {"backends": {STUDENT_BACKEND: {"type": "local", "model": model}},
            "judges": [{"name": judge, "type": "rubric", "backend": STUDENT_BACKEND, "scoring": "logprob",
                        "prompt": prompt, **options, "criteria": criteria}]}


#: a pairwise teacher's options the pointwise student keeps (how a group is turned into scores)
PAIRWISE_KEPT_OPTIONS = ("mode", "baseline_field", "tie_margin", "scope", "max_transcript_chars",
                         "empty_answer_score", "allow_tie")


def student_pairwise_config(judge: str, description: str, *, model: str, mode: str = "round_robin",
                            extra_options: dict[str, Any] | None = None,
                            prompt: str = STUDENT_PROMPT) -> dict[str, Any]:
    """The reward config that scores with a student of a pairwise teacher: a `type: pairwise`
    judge, `comparison: pointwise` (each answer judged alone by the student, logprob scoring),
    `instructions` the one criterion it was trained on; the teacher's `mode` and group options kept.
    """
    options = {key: value for key, value in (extra_options or {}).items() if key in PAIRWISE_KEPT_OPTIONS}
    options.setdefault("mode", mode)
    return {"backends": {STUDENT_BACKEND: {"type": "local", "model": model}},
            "judges": [{"name": judge, "type": "pairwise", "backend": STUDENT_BACKEND, "scoring": "logprob",
                        "comparison": "pointwise", "prompt": prompt, "instructions": description,
                        **options}]}


def student_judge(config: dict[str, Any]) -> RubricJudge:
    """The student's rubric judge, built only to render its requests (no model is loaded); for a
    pairwise student, the rubric judge its pairwise judge rates each answer with."""
    reward = RewardConfig.model_validate(config)
    judge_config: JudgeConfig = reward.judges[0]

    render_only = cast(Any, SimpleNamespace(backends={STUDENT_BACKEND: None}))
    if judge_config.type == "pairwise":
        rater = PairwiseJudge(judge_config, render_only).rater
        if rater is None:
            raise ConfigError("a pairwise student judges each answer alone (comparison: pointwise)")
        return rater
    return RubricJudge(judge_config, render_only)


def student_request(judge: RubricJudge, row: Judged) -> CompletionRequest:
    criteria = judge.rubric_for(row.sample).criteria  # the config's, and the row's own items r1, r2, ...
    criterion = next((c for c in criteria if c.name == row.criterion), None)
    if criterion is None:
        raise ConfigError(f"criterion '{row.criterion}' is not in the student's rubric "
                          f"({[c.name for c in criteria]})")
    return judge.logprob_request(row.sample, row.rollout, criterion)


def candidate_ids(tokenizer: Any, candidate: str) -> list[int]:
    """The single-token spellings of a verdict token, as the local engine sums them."""
    bare = candidate.lstrip(" ")
    singles: list[int] = []
    for variant in dict.fromkeys((bare, " " + bare, candidate)):
        ids = tokenizer.encode(variant, add_special_tokens=False)
        if len(ids) == 1 and ids[0] not in singles:
            singles.append(ids[0])
    if not singles:
        singles = [tokenizer.encode(candidate, add_special_tokens=False)[0]]
    return singles


def encode_rows(tokenizer: Any, judge: RubricJudge, rows: list[Judged], *, soft: bool,
                max_prompt_tokens: int) -> list[tuple[list[int], list[list[int]], list[float]]]:
    """(prompt ids, ids of each verdict token, target distribution) per row."""
    encoded = []
    for row in rows:
        request = student_request(judge, row)
        tokens = list(request.candidate_tokens or verdict_tokens(row.kind))
        ids = tokenizer(render_prompt(request, tokenizer), add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_tokens:
            ids = ids[-max_prompt_tokens:]
        encoded.append((ids, [candidate_ids(tokenizer, token) for token in tokens],
                        target_distribution(row, tokens, soft=soft)))
    return encoded


#: one training unit: its prompts (ids, ids of each verdict token) and its target: a rubric row
#: is one prompt and the teacher's verdict distribution, a pair two prompts (a, b) and [P(a better)]
Unit = tuple[list[tuple[list[int], list[list[int]]]], list[float]]


def encode_pairs(tokenizer: Any, judge: RubricJudge, pairs: list[JudgedPair], *, soft: bool,
                 max_prompt_tokens: int) -> list[Unit]:
    """Each pair as its two prompts (answer a, answer b, each judged alone on the student's one
    criterion) and the target [P(a better)] (hard targets: 1 / 0; a tie stays 0.5)."""
    units: list[Unit] = []
    for pair in pairs:
        rows = [Judged(pair.sample, rollout, CRITERION_NAME, "check", 0.5) for rollout in (pair.a, pair.b)]
        encoded = encode_rows(tokenizer, judge, rows, soft=True, max_prompt_tokens=max_prompt_tokens)
        target = pair.verdict if soft or pair.verdict == 0.5 else float(pair.verdict > 0.5)
        units.append(([(ids, sets) for ids, sets, _ in encoded], [min(1.0, max(0.0, target))]))
    return units


def length_batches(order: list[int], lengths: list[int], batch_size: int,
                   shuffle: random.Random) -> list[list[int]]:
    """Shuffled batches of rows of similar length (less padding), in shuffled order.

    >>> batches = length_batches(list(range(6)), [5, 1, 4, 2, 6, 3], 2, random.Random(0))
    >>> sorted(sorted(batch) for batch in batches)
    [[0, 4], [1, 3], [2, 5]]
    """
    shuffle.shuffle(order)
    # sort a shuffled list by length: rows of equal length are still in a random order
    by_length = sorted(order, key=lambda index: lengths[index])
    batches = [by_length[start:start + batch_size] for start in range(0, len(by_length), batch_size)]
    shuffle.shuffle(batches)
    return batches


def verdict_log_probs(logits: Any, candidate_sets: list[list[int]]) -> Any:
    """Log-probabilities over the verdict tokens only, from one position's logits."""
    import torch

    log_probs = torch.log_softmax(logits.float(), dim=-1)
    masses = torch.stack([log_probs[ids].logsumexp(0) for ids in candidate_sets])
    return torch.log_softmax(masses, dim=-1)


def train_student(base_model: Path, rows: list[Judged] | list[JudgedPair], judge_config: dict[str, Any],
                  out_dir: Path, settings: TrainSettings, console: Console | None = None, *,
                  adapter_dir: Path | None = None) -> TrainResult:
    """Fine-tune `base_model` on `rows` (a rubric teacher's verdicts, or a pairwise teacher's
    comparisons: the Bradley-Terry loss) and write merged weights and the tokenizer to `out_dir`;
    a LoRA student's adapter also goes to `adapter_dir` when given (megabytes, not the model's
    hundreds: the form a student ships in, `merge_student` turns it back into `out_dir`'s folder).
    With a `console`, the steps are shown there as SFT and GRPO show theirs (step, loss, time left:
    `judgerl.train.monitors.StepProgress`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgerl.train.monitors import StepProgress

    quiet_unactionable_warnings()  # peft's merge reads a deprecated transformers attribute
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    judge = student_judge(judge_config)
    pairwise = bool(rows) and isinstance(rows[0], JudgedPair)
    units: list[Unit]
    if pairwise:
        units = encode_pairs(tokenizer, judge, cast(list[JudgedPair], rows), soft=settings.soft_targets,
                             max_prompt_tokens=settings.max_prompt_tokens)
    else:
        units = [([(ids, sets)], target) for ids, sets, target in
                 encode_rows(tokenizer, judge, cast(list[Judged], rows), soft=settings.soft_targets,
                             max_prompt_tokens=settings.max_prompt_tokens)]
    lengths = sorted(len(ids) for prompts, _ in units for ids, _ in prompts) or [0]
    log.info("student prompts: %d %s, %d-%d tokens (median %d)", len(units), "pairs" if pairwise else "rows",
             lengths[0], lengths[-1], lengths[len(lengths) // 2])
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if settings.method == "lora":
        from peft import LoraConfig, get_peft_model

        from judgerl.train.policy import top_layers

        layers: list[int] | None = None
        targets: list[str] | str = "all-linear"
        if settings.lora_layers is not None:
            layers, targets = top_layers(model, settings.lora_layers)
        model = get_peft_model(model, LoraConfig(r=settings.lora_rank, lora_alpha=2 * settings.lora_rank,
                                                 lora_dropout=0.0, target_modules=targets,
                                                 layers_to_transform=layers, task_type="CAUSAL_LM"))
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.rate(), weight_decay=0.0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = TrainResult(rows=len(units), steps=0, seconds=0.0,
                         trainable_parameters=sum(p.numel() for p in trainable))
    started = time.perf_counter()
    model.train()
    total_steps = settings.epochs * math.ceil(len(units) / settings.batch_size)
    with (StepProgress(console, "distill", total_steps, epochs=settings.epochs) if console is not None
          else contextlib.nullcontext()) as progress:
        _train_epochs(model, units, optimizer, settings, pad_id, result, started, progress)
    result.seconds = time.perf_counter() - started
    if settings.method == "lora":
        if adapter_dir is not None:
            model.save_pretrained(adapter_dir)
        model = model.merge_and_unload()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "distillation.json").write_text(json.dumps({
        "base_model": str(base_model), "method": settings.method, "epochs": settings.epochs,
        "learning_rate": settings.rate(), "prompt": judge.options.prompt,
        "lora_layers": settings.lora_layers, "batch_size": settings.batch_size,
        "soft_targets": settings.soft_targets, "rows": len(units),
        "teacher": "pairwise" if pairwise else "rubric",
        "steps": result.steps, "train_seconds": round(result.seconds, 2),
        "trainable_parameters": result.trainable_parameters}, indent=2), encoding="utf-8")
    return result


def merge_student(base_model: Path, adapter_dir: Path, out_dir: Path) -> TrainResult:
    """A LoRA student from its adapter (`train_student(adapter_dir=...)`, or one shipped in a
    package): merged into `base_model` and written to `out_dir` as training writes it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError("not a LoRA adapter folder (no adapter_config.json)", path=str(adapter_dir))
    quiet_unactionable_warnings()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    model = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    # a float16 adapter is loaded into the float32 LoRA layers (PEFT casts it on load)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return TrainResult(rows=0, steps=0, seconds=time.perf_counter() - started)


def _train_epochs(model: Any, units: list[Unit], optimizer: Any, settings: TrainSettings, pad_id: int,
                  result: TrainResult, started: float, progress: StepProgress | None) -> None:
    """The training loop: `settings.epochs` passes over `units` in length-bucketed batches; each
    step's loss is appended to `result` (and shown by `progress`)."""
    import torch

    order = list(range(len(units)))
    shuffle = random.Random(settings.seed)
    for epoch in range(settings.epochs):
        if epoch:
            log.info("epoch %d/%d done: %d steps, mean loss of its last 10 steps %.4f, %.0fs",
                     epoch, settings.epochs, result.steps,
                     sum(result.losses[-10:]) / len(result.losses[-10:]),
                     time.perf_counter() - started)
        widths = [max(len(ids) for ids, _ in prompts) for prompts, _ in units]
        for batch_order in length_batches(order, widths, settings.batch_size, shuffle):
            batch = [units[index] for index in batch_order]
            prompts = [prompt for unit_prompts, _ in batch for prompt in unit_prompts]
            width = max(len(ids) for ids, _ in prompts)
            input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(prompts), width), dtype=torch.long)
            for index, (ids, _) in enumerate(prompts):
                input_ids[index, :len(ids)] = torch.tensor(ids)  # right padding: positions stay 0..n-1
                mask[index, :len(ids)] = 1
            # only the answer positions need the vocabulary projection (the largest matrix)
            last = sorted({len(ids) - 1 for ids, _ in prompts})
            logits = model(input_ids=input_ids, attention_mask=mask,
                           logits_to_keep=torch.tensor(last)).logits
            predicted = [verdict_log_probs(logits[index, last.index(len(ids) - 1)], candidate_sets)
                         for index, (ids, candidate_sets) in enumerate(prompts)]
            loss = torch.zeros(())
            position = 0
            for unit_prompts, target in batch:
                if len(unit_prompts) == 2:  # a pair: Bradley-Terry on the two answers' log-odds of pass
                    strength_a = predicted[position][0] - predicted[position][1]
                    strength_b = predicted[position + 1][0] - predicted[position + 1][1]
                    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(
                        strength_a - strength_b, torch.tensor(target[0]))
                else:
                    loss = loss - (torch.tensor(target) * predicted[position]).sum()
                position += len(unit_prompts)
            loss = loss / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            result.steps += 1
            result.losses.append(float(loss.detach()))
            if progress is not None:
                progress.step(result.losses[-1], epoch=epoch)
