"""Load a policy model and sample k answers per prompt from it, on a CPU if need be.

Why: evaluation (base vs SFT vs RFT), the workflow and the export all need the same three
things: turn a model spec into a loaded model (a Hugging Face folder, a packaged model name, a
training run's checkpoint, or a LoRA adapter checkpoint that names its base), sample k
completions per prompt with the chat template, and write a merged full model folder from an
adapter checkpoint (`materialize`, reused by `judgerl export`).

A spec is resolved in this order:
- a folder with `adapter_config.json`: a peft/TRL LoRA checkpoint; its base
  (`base_model_name_or_path`) is resolved like any spec, the adapter is applied on top;
- a folder with `config.json`: a Hugging Face model folder (a full fine-tune checkpoint too);
- a folder holding `checkpoint-N` folders (a training output dir): its highest N;
- anything else goes to `judgerl.models.resolve_model` (packaged names, `.gguf`, cached hub ids).

Generation runs under `torch.inference_mode`, with left padding and prompts batched together;
the k answers of a prompt are sampled in the same batch, as `num_return_sequences=k` lays them out, from one
prefill of the prompt (`shared_prefill.py`: the same tokens, a k-th of the prefill). The random state
is seeded once per `generate` call, so a given (seed, batch size, prompts) gives the same text.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from judgerl.atomic import staged_folder
from judgerl.errors import ConfigError
from judgerl.models.quiet import quiet_unactionable_warnings
from judgerl.models.shared_prefill import cache_argument, prefilled_cache

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class SamplingConfig:
    """How answers are sampled. temperature 0 means greedy (then the k answers are identical)."""

    k: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int | None = None
    max_new_tokens: int = 256
    seed: int = 0
    batch_size: int = 8  # prompts per forward batch (each prompt brings its k samples)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}", field="k")
        if self.max_new_tokens < 1:
            raise ConfigError(
                f"max_new_tokens must be >= 1, got {self.max_new_tokens}", field="max_new_tokens"
            )
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}", field="temperature")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}", field="top_p")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}", field="batch_size")


@dataclass
class Generation:
    """One sampled answer with its exact token count and why it stopped."""

    text: str
    completion_tokens: int
    finish_reason: str  # "stop" (end of sequence), "length" (hit max_new_tokens) or "error"
    error: str | None = None  # why no answer came back (an endpoint that failed after retries)


# -- resolving specs ---------------------------------------------------------------------------


def is_adapter_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The `checkpoint-N` subfolder with the highest N, or None."""
    found = []
    for child in Path(folder).glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def resolve_spec(spec: str | os.PathLike[str]) -> Path:
    """The folder to load for a spec: an adapter folder, a model folder, or a resolved model."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if is_adapter_dir(path) or (path / "config.json").is_file():
            return path
        checkpoint = latest_checkpoint(path)
        if checkpoint is not None:
            return resolve_spec(checkpoint)
        raise ConfigError(
            f"{path} holds no model: no config.json, no adapter_config.json and no checkpoint-N folders",
            field="model",
        )
    return _resolve_base(str(spec))


def _resolve_base(spec: str) -> Path:
    try:
        from judgerl.models.packaged import resolve_model
    except ImportError:  # the packaged-model module is optional for plain folders
        path = Path(spec).expanduser()
        if (path / "config.json").is_file():
            return path
        raise ConfigError(f"model '{spec}' is not a model folder", field="model") from None
    return resolve_model(spec)


def adapter_base(adapter_dir: str | os.PathLike[str]) -> str:
    """The base model named by an adapter checkpoint."""
    config_path = Path(adapter_dir) / "adapter_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {config_path}: {exc}", path=str(config_path)) from exc
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(
            "adapter config names no base model", path=str(config_path), field="base_model_name_or_path"
        )
    return str(base)


# -- loading -----------------------------------------------------------------------------------


class Policy:
    """A loaded causal LM and its tokenizer, ready to sample from."""

    def __init__(self, model: Any, tokenizer: Any, *, source: str, base: str | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.base = base  # the base model of an adapter checkpoint, else None
        #: each prompt prefilled once for its k answers (`models/shared_prefill.py`); False: HF's
        #: num_return_sequences, which prefills it k times (same tokens)
        self.share_prompts = True
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def is_adapter(self) -> bool:
        return self.base is not None

    def render(self, messages: Messages) -> str:
        """The prompt text: the chat template when the tokenizer has one, else a plain transcript."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{message['role']}: {message['content']}" for message in messages]
        return "\n".join([*lines, "assistant:"])

    def generate(
        self,
        prompts: Sequence[Messages],
        sampling: SamplingConfig | None = None,
        *,
        on_batch: Callable[[int, list[list[Generation]]], None] | None = None,
    ) -> list[list[Generation]]:
        """k answers for each prompt (a list of chat messages), in prompt order.

        `on_batch(first_index, generations)` is called after each batch of prompts.
        """
        import torch

        sampling = sampling or SamplingConfig()
        torch.manual_seed(sampling.seed)
        results: list[list[Generation]] = []
        for start in range(0, len(prompts), sampling.batch_size):
            chunk = prompts[start : start + sampling.batch_size]
            batch = self._generate_batch([self.render(messages) for messages in chunk], sampling)
            results.extend(batch)
            if on_batch is not None:
                on_batch(start, batch)
        return results

    def _generate_batch(self, texts: list[str], sampling: SamplingConfig) -> list[list[Generation]]:
        import torch

        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {key: value.to(self.model.device) for key, value in encoded.items()}
        greedy = sampling.temperature == 0
        knobs: dict[str, Any] = {"do_sample": not greedy}
        if not greedy:
            knobs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or 0)
        copies = 1 if greedy else sampling.k
        with torch.inference_mode():
            if copies > 1 and self.share_prompts:
                # the k copies of each prompt in a row, as num_return_sequences=k lays them out,
                # continuing from one prefill per prompt: the same tokens, a k-th of the prefill
                encoded = {key: value.repeat_interleave(copies, dim=0) for key, value in encoded.items()}
                cache = prefilled_cache(self.model, encoded["input_ids"], encoded["attention_mask"])
                if cache is not None:
                    knobs[cache_argument(self.model)] = cache
                copies = 1
            output = self.model.generate(
                **encoded,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=copies,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **knobs,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        stops = _stop_ids(self.tokenizer, self.model)
        generations = []
        for row in new_tokens.tolist():
            length = next((index for index, token in enumerate(row) if token in stops), None)
            tokens = row if length is None else row[:length]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            generations.append(
                Generation(
                    text=text,
                    completion_tokens=len(tokens) + (length is not None),
                    finish_reason="length" if length is None else "stop",
                )
            )
        if greedy:  # one greedy answer per prompt is all there is: the k answers are copies
            return [[replace(generation) for _ in range(sampling.k)] for generation in generations]
        return [generations[index : index + sampling.k] for index in range(0, len(generations), sampling.k)]

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write a full Hugging Face folder (adapter merged in), tokenizer and chat template included."""
        out = Path(out_dir)
        model = self.model
        if self.is_adapter:
            model = model.merge_and_unload()
            self.model = model
            self.base = None
        model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)
        return out

    def close(self) -> None:
        """Drop the model so its memory can be freed before the next one loads."""
        self.model = None
        import gc

        gc.collect()


def _stop_ids(tokenizer: Any, model: Any) -> set[int]:
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list):
            ids.update(item for item in source if isinstance(item, int))
    return ids


def load_policy(
    spec: str | os.PathLike[str],
    *,
    merge_adapter: bool = False,
    dtype: str | None = None,
    device: str | None = None,
) -> Policy:
    """Load a policy from a model folder, packaged name, run/checkpoint folder or LoRA checkpoint.

    `dtype`: "float32" (the CPU default), "bfloat16", "float16" or "auto". `merge_adapter` folds a
    LoRA adapter into the base weights (faster generation, no peft at sampling time).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_unactionable_warnings()
    folder = resolve_spec(spec)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, dtype or "float32", None)
    if torch_dtype is None:
        raise ConfigError(f"unknown dtype '{dtype}'", field="dtype")
    base_spec = adapter_base(folder) if is_adapter_dir(folder) else None
    model_folder = resolve_spec(base_spec) if base_spec is not None else folder
    if base_spec is not None and is_adapter_dir(model_folder):
        raise ConfigError(
            f"the base of adapter {folder} is itself an adapter ({model_folder})", field="model"
        )
    tokenizer_folder = folder if _has_tokenizer(folder) else model_folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
        model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the model in {model_folder}: {exc}", field="model") from exc
    if base_spec is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder))
        if merge_adapter:
            model = model.merge_and_unload()
            base_spec = None
    model.to(device)
    model.eval()
    log.info("loaded policy %s (%s)", spec, "adapter on " + str(model_folder) if base_spec else model_folder)
    return Policy(model, tokenizer, source=str(folder), base=str(model_folder) if base_spec else None)


def _has_tokenizer(folder: Path) -> bool:
    return any(
        (folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    )


def materialize(path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write a full, merged Hugging Face model folder for any spec (a LoRA checkpoint above all).

    The folder is written next to `out_dir` and renamed into place when complete, so a killed
    export never leaves a half-written model. An existing `out_dir` is replaced.
    """
    out = Path(out_dir)
    policy = load_policy(path, merge_adapter=True, device="cpu")
    try:
        with staged_folder(out) as staging:
            policy.save(staging)
    finally:
        policy.close()
    return out
