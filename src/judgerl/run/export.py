"""`judgerl export`: a trained run becomes a model folder that serving engines load, with its evidence.

Why: the run ends in deployment. vLLM, TGI, Ollama (after conversion) and managed services load a
plain Hugging Face folder (safetensors + config + generation config + tokenizer + chat template),
or a base model plus a LoRA adapter; none of them reads TRL checkpoints (optimizer state, RNG
state, trainer state). This module picks the checkpoint to ship, writes that folder, writes the
model card (`model_card.py`) and `judgerl_export.json` (provenance: run, checkpoint, hashes of the
weights), and then checks the export: it is loaded back with plain transformers and must
(1) give the same logits as the checkpoint it came from and (2) score like the run's final
evaluation on a few held-out prompts. A failed check leaves the folder at `<output>.rejected`
and raises `ExportCheckFailed` with the difference.

Which checkpoint (`checkpoint=`):
- "last": `rft/final` when it holds a model (what training saved at the end), else the highest
  `rft/checkpoint-N`;
- "best": the checkpoint with the highest held-out judge score among the evaluations in
  `eval/<label>/` whose model is a checkpoint of this run (the held-out judge's mean reward when
  every such evaluation has one, else the training judge's mean reward). Without such
  evaluations, `best_model_checkpoint` of the newest `trainer_state.json` (TRL's choice by
  `trainer.save_best_by`). Without either, "best" is an error, not a silent "last";
- a path: that checkpoint or model folder.

The check of the exported folder is `judgerl.run.export_check`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgerl.atomic import staged_folder
from judgerl.errors import ConfigError
from judgerl.run.export_check import LOGIT_TOLERANCE, CheckResult, ExportCheckFailed, check_export
from judgerl.run.folder import PROVENANCE, RunFolder, read_json, read_run_folder

log = logging.getLogger(__name__)

#: files of a peft adapter folder worth shipping (optimizer / scheduler / RNG / trainer state are not)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
)


# -- the run -----------------------------------------------------------------------------------


#: what an export reads from a run folder (the one reader is judgerl.run.folder)
RunFiles = RunFolder
read_run = read_run_folder


# -- which checkpoint --------------------------------------------------------------------------


@dataclass
class Selection:
    """The checkpoint to ship, why it was chosen, and the evaluation that describes it."""

    path: Path
    rule: str
    reference_label: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # candidate folder -> score (rule "best")


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def numbered_checkpoints(rft_dir: Path) -> list[Path]:
    """`checkpoint-N` folders, oldest first."""
    found = [
        path
        for path in rft_dir.glob("checkpoint-*")
        if path.is_dir() and path.name.split("-", 1)[1].isdigit()
    ]
    return sorted(found, key=lambda path: int(path.name.split("-", 1)[1]))


def weights_digest(folder: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 of every weight file (safetensors / bin) in a folder: {file name: hex digest}."""
    digests = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.suffix in (".safetensors", ".bin") and path.name != "training_args.bin":
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            digests[path.name] = digest.hexdigest()
    return digests


def _evaluated_folder(summary: dict[str, Any], run_dir: Path) -> Path | None:
    """The local folder an evaluation sampled from (its `model` field), or None (an endpoint)."""
    from judgerl.models.policy import resolve_spec

    model = summary.get("model")
    if not isinstance(model, str):
        return None
    for candidate in (Path(model).expanduser(), run_dir / model):
        if candidate.is_dir():
            try:
                return resolve_spec(candidate).resolve()
            except ConfigError:
                return None
    return None


def _same_weights(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    digest_a = weights_digest(a)
    return bool(digest_a) and digest_a == weights_digest(b)


def reference_label(files: RunFiles, checkpoint: Path) -> str | None:
    """The evaluation of exactly these weights ("rft" first), else "rft" if it exists, else None."""
    labels = sorted(files.summaries, key=lambda label: label != "rft")
    for label in labels:
        folder = _evaluated_folder(files.summaries[label], files.run_dir)
        if folder is not None and _same_weights(folder, checkpoint):
            return label
    return "rft" if "rft" in files.summaries else None


def select_checkpoint(files: RunFiles, which: str = "last") -> Selection:
    """The checkpoint to ship: "last", "best" or a path (see the module docstring for the rule)."""
    from judgerl.models.policy import resolve_spec

    rft = files.rft_dir
    if which not in ("last", "best"):
        path = Path(which).expanduser()
        if not path.is_absolute() and not path.exists() and (files.run_dir / path).exists():
            path = files.run_dir / path
        folder = resolve_spec(path)
        return Selection(folder, f"given: {which}", reference_label(files, folder))
    numbered = numbered_checkpoints(rft)
    if which == "last":
        final = rft / "final"
        folder = final if is_model_dir(final) else (numbered[-1] if numbered else None)
        if folder is None:
            raise ConfigError(
                f"{rft} holds no trained model (no final/ and no checkpoint-N folder)", field="--checkpoint"
            )
        rule = (
            "last: the model saved at the end of training"
            if folder == final
            else f"last: the highest checkpoint ({folder.name})"
        )
        return Selection(folder, rule, reference_label(files, folder))
    return _best(files, [*numbered, *([rft / "final"] if is_model_dir(rft / "final") else [])])


def _best(files: RunFiles, candidates: list[Path]) -> Selection:
    evaluated: dict[Path, tuple[str, dict[str, Any]]] = {}
    for label, summary in files.summaries.items():
        folder = _evaluated_folder(summary, files.run_dir)
        if folder is None:
            continue
        for candidate in candidates:
            if _same_weights(folder, candidate):
                evaluated.setdefault(candidate, (label, summary))
    if evaluated:
        heldout = all(
            (summary.get("heldout") or {}).get("reward_mean") is not None for _, summary in evaluated.values()
        )
        metric = "held-out judge mean reward" if heldout else "training judge mean reward"
        scores: dict[Path, float] = {}
        for candidate, (_, summary) in evaluated.items():
            value = (
                (summary.get("heldout") or {}).get("reward_mean") if heldout else summary.get("reward_mean")
            )
            if value is not None:
                scores[candidate] = float(value)
        if scores:
            best = max(scores, key=lambda path: (scores[path], _step(path)))
            return Selection(
                best,
                f"best: highest {metric} over {len(scores)} evaluated checkpoints",
                evaluated[best][0],
                {str(path): value for path, value in scores.items()},
            )
    for candidate in sorted(candidates, key=_step, reverse=True):
        state_path = candidate / "trainer_state.json"
        if not state_path.is_file():
            continue
        state = read_json(state_path)
        best_path = state.get("best_model_checkpoint")
        if best_path:
            folder = Path(best_path)
            folder = folder if folder.is_dir() else files.rft_dir / folder.name
            if not is_model_dir(folder):
                raise ConfigError(
                    f"trainer_state.json names {best_path} as best, but it holds no model",
                    path=str(state_path),
                    field="best_model_checkpoint",
                )
            metric = state.get("best_metric")
            return Selection(
                folder,
                f"best: trainer_state best_model_checkpoint (best_metric {metric})",
                reference_label(files, folder),
            )
    raise ConfigError(
        "--checkpoint best needs evaluations of the run's checkpoints (eval/<label>/ of "
        "rft/checkpoint-N) or a trainer_state.json with best_model_checkpoint "
        "(trainer.save_best_by); use --checkpoint last or a path",
        field="--checkpoint",
    )


def _step(path: Path) -> int:
    tail = path.name.split("-", 1)[-1]
    return int(tail) if tail.isdigit() else 1 << 30  # final/ is after every numbered checkpoint


# -- writing the folder ------------------------------------------------------------------------


def base_dtype(folder: Path) -> str:
    """The dtype the base model was published in (config `dtype` / `torch_dtype`), else float32."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return "float32"
    config = read_json(config_path)
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return dtype if dtype in LOGIT_TOLERANCE else "float32"


def write_merged(checkpoint: Path, out: Path, *, dtype: str | None = None) -> str:
    """A full model folder: the adapter merged in float32 (policy.load_policy), then cast to `dtype`.

    A full checkpoint is loaded and saved again, which drops the optimizer and trainer state.
    Returns the dtype written (default: the base model's dtype).
    """
    import torch

    from judgerl.models.policy import adapter_base, is_adapter_dir, load_policy, resolve_spec

    base = resolve_spec(adapter_base(checkpoint)) if is_adapter_dir(checkpoint) else checkpoint
    dtype = dtype or base_dtype(base)
    if dtype not in LOGIT_TOLERANCE:
        raise ConfigError(f"dtype must be one of {sorted(LOGIT_TOLERANCE)}, got {dtype!r}", field="--dtype")
    policy = load_policy(checkpoint, merge_adapter=True, dtype="float32", device="cpu")
    try:
        policy.model.to(getattr(torch, dtype))
        policy.save(out)
    finally:
        policy.close()
    return dtype


def write_adapter(checkpoint: Path, out: Path) -> None:
    """The adapter files and the tokenizer of a LoRA checkpoint (no optimizer / trainer state)."""
    from judgerl.models.policy import adapter_base, is_adapter_dir, resolve_spec

    if not is_adapter_dir(checkpoint):
        raise ConfigError(
            f"{checkpoint} is a full model, not a LoRA adapter: --adapter-only needs a LoRA run",
            field="--adapter-only",
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, out / name)
    tokenizer_source = checkpoint
    if not (checkpoint / "tokenizer_config.json").is_file():
        tokenizer_source = resolve_spec(adapter_base(checkpoint))
    for name in TOKENIZER_FILES:
        if (tokenizer_source / name).is_file():
            shutil.copy2(tokenizer_source / name, out / name)


# -- the export --------------------------------------------------------------------------------


@dataclass
class ExportResult:
    """Where the export is and what it holds."""

    output: Path
    checkpoint: Path
    selection: Selection
    merged: bool
    base_model: str
    dtype: str | None
    card: Path
    provenance: Path
    check: CheckResult | None = None


def _provenance(folder: Path, files: RunFiles, selection: Selection, *, merged: bool, base_model: str,
                dtype: str | None, served_model_name: str) -> dict[str, Any]:
    """judgerl_export.json: where the export came from (run, checkpoint, why that one), what it
    is (format, dtype, base) and the hashes that tie the weights to the run; `check` is filled in
    by the export check."""
    return {
        "format": "merged" if merged else "adapter",
        "run_dir": str(files.run_dir.resolve()),
        "checkpoint": str(selection.path.resolve()),
        "selection": {**asdict(selection), "path": str(selection.path)},
        "base_model": base_model,
        "dtype": dtype,
        "served_model_name": served_model_name,
        "weights_sha256": weights_digest(folder),
        "source_weights_sha256": weights_digest(selection.path),
        "recipe_sha256": _file_sha256(files.run_dir / "recipe.yaml"),
        "judgerl_version": _version(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "check": None,
    }


def export_run(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    checkpoint: str = "last",
    merge: bool = True,
    check: bool = True,
    limit: int = 8,
    dtype: str | None = None,
    served_model_name: str | None = None,
    data: str | os.PathLike[str] | None = None,
    backends: dict[str, Any] | None = None,
    heldout_backends: dict[str, Any] | None = None,
    atol: float = 0.05,
    z: float = 3.0,
) -> ExportResult:
    """Export a run: pick the checkpoint, write the model folder, card and provenance, then check.

    `output` defaults to RUN_DIR/export. `merge=False` ships the LoRA adapter and names its base.
    `backends` / `heldout_backends` replace the judge backends of the check (tests, dry runs).
    The folder is written next to `output` and renamed into place when complete and checked.
    """
    from judgerl.models.policy import adapter_base, is_adapter_dir
    from judgerl.run.model_card import card_inputs, render_card

    files = read_run(run_dir)
    out = Path(output) if output is not None else files.run_dir / "export"
    if out.exists() and any(out.iterdir()) and not (out / PROVENANCE).is_file():
        raise ConfigError(
            f"{out} exists and is not a judgerl export: choose an empty or new folder", field="--output"
        )
    selection = select_checkpoint(files, checkpoint)
    source = selection.path
    adapter = is_adapter_dir(source)
    base_model = adapter_base(source) if adapter else _model_name(source)
    with staged_folder(out) as staging:
        written_dtype: str | None
        if merge:
            written_dtype = write_merged(source, staging, dtype=dtype)
        else:
            write_adapter(source, staging)
            written_dtype = None
        name = served_model_name or _default_name(files.run_dir)
        inputs = card_inputs(
            files,
            selection,
            merged=merge,
            base_model=base_model,
            served_model_name=name,
            recipe_base=_recipe_model(files),
        )
        (staging / "README.md").write_text(render_card(inputs), encoding="utf-8")
        provenance = _provenance(staging, files, selection, merged=merge, base_model=base_model,
                                 dtype=written_dtype, served_model_name=name)
        _write_provenance(staging, provenance)
        result_check = None
        if check:
            result_check = check_export(
                staging,
                files,
                source=source,
                reference=selection.reference_label,
                limit=limit,
                data=data,
                backends=backends,
                heldout_backends=heldout_backends,
                atol=atol,
                z=z,
                raise_on_fail=False,
            )
            provenance["check"] = result_check.to_dict()
            _write_provenance(staging, provenance)
            if not result_check.passed:
                rejected = out.with_name(out.name + ".rejected")
                shutil.rmtree(rejected, ignore_errors=True)
                staging.rename(rejected)
                raise ExportCheckFailed(
                    f"the export does not match the run (kept in {rejected}):\n" + result_check.describe(),
                    result_check,
                )
    return ExportResult(
        output=out,
        checkpoint=source,
        selection=selection,
        merged=merge,
        base_model=base_model,
        dtype=written_dtype,
        card=out / "README.md",
        provenance=out / PROVENANCE,
        check=result_check,
    )


def _write_provenance(folder: Path, provenance: dict[str, Any]) -> None:
    (folder / PROVENANCE).write_text(json.dumps(provenance, indent=2, ensure_ascii=False), encoding="utf-8")


def _file_sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("judgerl")
    except PackageNotFoundError:
        return None


def _recipe_model(files: RunFiles) -> str | None:
    if files.recipe is not None:
        return files.recipe.model.name_or_path
    model = (files.recipe_raw or {}).get("model")
    return model.get("name_or_path") if isinstance(model, dict) else None


def _model_name(folder: Path) -> str:
    """What a full checkpoint was fine-tuned from: config `_name_or_path`, else the folder."""
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    return str(config.get("_name_or_path") or folder)


def _default_name(run_dir: Path) -> str:
    return f"judgerl-{run_dir.resolve().name}"
