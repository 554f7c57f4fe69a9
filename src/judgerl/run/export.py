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

The score check, and its tolerance. The reference is the evaluation of the shipped weights
(`eval/rft` unless another label evaluated exactly these weights). The export is evaluated with
the same reward config(s), k, temperature, top_p, max_new_tokens and seed, on the first `limit`
prompts of that evaluation, and compared with the reference's rows for the same prompts. For each
figure (training-judge reward, held-out reward, schema validity) the difference of the means must
stay within `max(atol, z * se)`. `se` is the larger of two estimates of the standard error of
the difference: (a) from sampling, for two independent k-sample means of the same model:
sqrt(sum_i s_i^2 (1/k_ref + 1/k_export)) / n over the n prompts, s_i^2 the within-prompt variance
of both sides' answers pooled; (b) paired: the standard deviation of the n per-prompt differences
over sqrt(n), which also sees what (a) cannot (a non-deterministic judge, greedy answers that
drift in a bfloat16 export). z = 3 gives about one false alarm in 370 per figure under the null;
`atol` (0.05) is the floor. With greedy decoding (temperature 0) and float32 weights the check is
stronger: every answer must be the very same text as in the reference evaluation. The logits
check compares the relative max |export - checkpoint| with LOGIT_TOLERANCE of the export dtype.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgerl.atomic import staged_folder
from judgerl.errors import ConfigError, JudgerlError
from judgerl.run.folder import RunFolder, read_json, read_rows, read_run_folder
from judgerl.types import Sample

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
#: largest relative logit difference (max |export - checkpoint| / max |checkpoint|) per export dtype
LOGIT_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}
PROVENANCE = "judgerl_export.json"
SCORED = ("ok", "gated")


class ExportCheckFailed(JudgerlError):
    """The exported model does not behave like the run's checkpoint; `.check` holds the figures."""

    def __init__(self, message: str, check: CheckResult) -> None:
        super().__init__(message)
        self.check = check


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


# -- the check ---------------------------------------------------------------------------------


@dataclass
class Comparison:
    """One figure of the export against the reference evaluation, on the same prompts."""

    figure: str
    reference: float | None
    export: float | None
    tolerance: float
    se: float | None
    n: int

    @property
    def difference(self) -> float | None:
        if self.reference is None or self.export is None:
            return None
        return self.export - self.reference

    @property
    def passed(self) -> bool:
        if (self.reference is None) != (self.export is None):
            return False
        return self.difference is None or abs(self.difference) <= self.tolerance


@dataclass
class CheckResult:
    """Figures of the post-export check; `passed` is the verdict."""

    logits: dict[str, Any] | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    exact_text: bool = False
    text_mismatches: list[dict[str, Any]] = field(default_factory=list)
    compared_answers: int = 0
    reference_label: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        logits_ok = self.logits is None or bool(self.logits.get("passed"))
        return logits_ok and all(item.passed for item in self.comparisons) and not self.text_mismatches

    def describe(self) -> str:
        """The figures, one line each, failures marked."""
        lines = []
        if self.logits is not None:
            item = self.logits
            lines.append(
                f"{'ok  ' if item['passed'] else 'FAIL'} logits vs checkpoint: max relative difference "
                f"{item['max_relative_diff']:.3g} (tolerance {item['tolerance']:.3g}, {item['dtype']}), "
                f"top-1 agreement {item['top1_agreement']:.3f} over {item['tokens']} tokens"
            )
        for item in self.comparisons:
            shown = "n/a" if item.difference is None else f"{item.difference:+.4f}"
            lines.append(
                f"{'ok  ' if item.passed else 'FAIL'} {item.figure}: export {_fmt(item.export)} vs "
                f"eval/{self.reference_label} {_fmt(item.reference)} (difference {shown}, tolerance "
                f"{item.tolerance:.4f}, se {_fmt(item.se)}, {item.n} prompts)"
            )
        if self.exact_text:
            status = "FAIL" if self.text_mismatches else "ok  "
            lines.append(
                f"{status} greedy answers identical to eval/{self.reference_label}: "
                f"{self.compared_answers - len(self.text_mismatches)}/{self.compared_answers}"
            )
            for item in self.text_mismatches[:3]:
                lines.append(
                    f"     {item['prompt_id']}#{item['k']}: expected {item['reference'][:80]!r}, "
                    f"got {item['export'][:80]!r}"
                )
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference_label": self.reference_label,
            "logits": self.logits,
            "comparisons": [
                {**asdict(item), "difference": item.difference, "passed": item.passed}
                for item in self.comparisons
            ],
            "exact_text": self.exact_text,
            "compared_answers": self.compared_answers,
            "text_mismatches": self.text_mismatches[:20],
            "notes": self.notes,
        }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def check_export(
    export_dir: str | os.PathLike[str],
    run: RunFiles | str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    reference: str | None = None,
    limit: int = 8,
    data: str | os.PathLike[str] | None = None,
    backends: dict[str, Any] | None = None,
    heldout_backends: dict[str, Any] | None = None,
    atol: float = 0.05,
    z: float = 3.0,
    raise_on_fail: bool = True,
) -> CheckResult:
    """Load the export back with plain transformers; compare its logits with the checkpoint it came
    from, and its scores (through judgerl.run.evaluate) with the run's evaluation of that checkpoint.

    `source` defaults to the checkpoint named in the export's judgerl_export.json; `reference` to
    that file's reference label, else "rft". Raises ExportCheckFailed unless `raise_on_fail=False`.
    """
    export = Path(export_dir)
    files = run if isinstance(run, RunFiles) else read_run(run)
    provenance = read_json(export / PROVENANCE) if (export / PROVENANCE).is_file() else {}
    source = (
        Path(source)
        if source is not None
        else (Path(provenance["checkpoint"]) if provenance.get("checkpoint") else None)
    )
    label = reference or (provenance.get("selection") or {}).get("reference_label")
    label = label or ("rft" if "rft" in files.summaries else None)
    result = CheckResult(reference_label=label)
    rows = _reference_rows(files.run_dir, label) if label else []
    samples = _check_samples(files, rows, limit, data, result.notes)
    if source is not None and samples:
        result.logits = compare_logits(export, source, samples, rows)
    elif source is None:
        result.notes.append("no source checkpoint known: logits not compared")
    if not rows:
        result.notes.append("no reference evaluation (eval/rft/samples.jsonl): scores not compared")
    elif samples:
        _compare_scores(result, export, files, samples, rows, backends, heldout_backends, atol, z)
    if raise_on_fail and not result.passed:
        raise ExportCheckFailed("the export does not match the run:\n" + result.describe(), result)
    return result


def _reference_rows(run_dir: Path, label: str) -> list[dict[str, Any]]:

    return read_rows(run_dir / "eval" / label / "samples.jsonl")


def _check_samples(
    files: RunFiles,
    rows: list[dict[str, Any]],
    limit: int,
    data: str | os.PathLike[str] | None,
    notes: list[str],
) -> list[Sample]:
    """The first `limit` prompts of the reference evaluation, as Samples from the data file.

    The data file is `data`, else the recipe's `data.eval` (with its system prompt); prompts
    missing from it are rebuilt from the rows (the last user turn only, noted).
    """
    from judgerl.data import load_samples_strict

    known: dict[str, Sample] = {}
    if data is not None:
        known = {sample.id: sample for sample in load_samples_strict(data)}
    elif files.recipe is not None and files.recipe.data.eval:
        from judgerl.train.splits import load_split

        known = {sample.id: sample for sample in load_split(files.recipe, "eval")}
    order: list[str] = []
    prompts: dict[str, str] = {}
    for row in rows:
        prompt_id = str(row.get("prompt_id"))
        if prompt_id not in prompts:
            order.append(prompt_id)
            prompts[prompt_id] = str(row.get("prompt", ""))
    if not order:  # no reference: the logits are still compared on the data file's prompts
        return list(known.values())[:limit]
    samples, rebuilt = [], 0
    for prompt_id in order[:limit]:
        if prompt_id in known:
            samples.append(known[prompt_id])
        else:
            rebuilt += 1
            samples.append(Sample(id=prompt_id, messages=[{"role": "user", "content": prompts[prompt_id]}]))
    if rebuilt:
        notes.append(
            f"{rebuilt} prompts rebuilt from samples.jsonl (last user turn only, no reference): "
            "pass --data with the evaluation file for a faithful check"
        )
    return samples


def load_export(export_dir: str | os.PathLike[str], dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of an export with plain transformers (peft on top for an adapter export)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgerl.models.policy import adapter_base, is_adapter_dir, resolve_spec

    folder = Path(export_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if is_adapter_dir(folder):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(resolve_spec(adapter_base(folder)), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(folder))
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype or "auto")
    return model.eval(), tokenizer


def compare_logits(
    export: Path, source: Path, samples: Sequence[Sample], rows: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Next-token logits of the export and of the checkpoint (base + adapter, unmerged, float32) on
    the prompts followed by the reference answers (teacher forcing): a merge error or a changed
    weight shows up here whatever the judge and the sampling."""
    import torch

    from judgerl.models.policy import load_policy

    model, tokenizer = load_export(export)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    model = model.float()
    reference = load_policy(source, merge_adapter=False, dtype="float32", device="cpu")
    answers = {}
    for row in rows:
        answers.setdefault(str(row.get("prompt_id")), str(row.get("completion") or ""))
    worst, scale, agree, tokens = 0.0, 0.0, 0, 0
    try:
        with torch.inference_mode():
            for sample in samples:
                text = reference.render(sample.messages) + answers.get(sample.id, "")
                ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
                ids_ref = reference.tokenizer(text, return_tensors="pt", add_special_tokens=False)[
                    "input_ids"
                ]
                if not torch.equal(ids, ids_ref):
                    return {
                        "passed": False,
                        "dtype": dtype,
                        "max_relative_diff": math.inf,
                        "tolerance": 0.0,
                        "top1_agreement": 0.0,
                        "tokens": 0,
                        "error": "the export's tokenizer encodes "
                        f"prompt {sample.id!r} differently from the checkpoint's",
                    }
                got = model(input_ids=ids).logits[0]
                want = reference.model(input_ids=ids).logits[0]
                worst = max(worst, float((got - want).abs().max()))
                scale = max(scale, float(want.abs().max()))
                agree += int((got.argmax(-1) == want.argmax(-1)).sum())
                tokens += int(ids.shape[1])
    finally:
        reference.close()
    relative = worst / scale if scale else worst
    tolerance = LOGIT_TOLERANCE.get(dtype, LOGIT_TOLERANCE["float32"])
    return {
        "passed": relative <= tolerance,
        "dtype": dtype,
        "max_abs_diff": worst,
        "max_relative_diff": relative,
        "tolerance": tolerance,
        "top1_agreement": agree / tokens if tokens else 0.0,
        "tokens": tokens,
    }


def _compare_scores(
    result: CheckResult,
    export: Path,
    files: RunFiles,
    samples: list[Sample],
    rows: list[dict[str, Any]],
    backends: dict[str, Any] | None,
    heldout_backends: dict[str, Any] | None,
    atol: float,
    z: float,
) -> None:
    from judgerl.models.policy import SamplingConfig
    from judgerl.run.evaluate import ModelSpec, evaluate_models, find_schema_check

    label = result.reference_label
    summary = files.summaries.get(label or "", {})
    reward, heldout = _recipe_reward_configs(files)
    if reward is None:
        result.notes.append(
            "the run has no valid recipe.yaml (its reward config is unknown): scores not "
            f"compared ({files.recipe_error or 'recipe.yaml missing'})"
        )
        return
    if summary.get("heldout") and heldout is None:
        result.notes.append(
            "the reference has held-out scores but the recipe names no held-out reward config"
        )
    k = int(summary.get("k") or 1)
    temperature = float(summary.get("temperature", 0.8))
    sampling = SamplingConfig(
        k=k,
        temperature=temperature,
        top_p=float(summary.get("top_p", 0.95)),
        max_new_tokens=int(summary.get("max_new_tokens", 256)),
        seed=int(summary.get("seed", 0)),
        batch_size=8,
    )
    with tempfile.TemporaryDirectory(prefix="judgerl-export-check-") as scratch:
        evaluate_models(
            {"export": ModelSpec(source=str(export))},
            samples,
            reward,
            k=k,
            heldout_reward_config=heldout if summary.get("heldout") else None,
            out_dir=scratch,
            sampling=sampling,
            backends=backends,
            heldout_backends=heldout_backends,
            resume=False,
            schema_check_name=summary.get("schema_check"),
        )

        mine = read_rows(Path(scratch) / "eval" / "export" / "samples.jsonl")
    ids = {sample.id for sample in samples}
    theirs = [row for row in rows if str(row.get("prompt_id")) in ids]
    schema = summary.get("schema_check") or find_schema_check(reward)
    figures = {"reward_mean": _reward, "heldout_reward_mean": _heldout_reward}
    if schema:
        figures["schema_validity"] = lambda row: (
            None
            if row.get("status") == "generation_failed"
            else float((row.get("components") or {}).get(schema) == 1.0)
        )
    for name, value in figures.items():
        comparison = compare_figure(name, theirs, mine, value, atol=atol, z=z)
        if comparison.reference is not None or comparison.export is not None:
            result.comparisons.append(comparison)
    provenance = read_json(export / PROVENANCE) if (export / PROVENANCE).is_file() else {}
    dtype = provenance.get("dtype") or "float32"
    if temperature == 0 and dtype == "float32":
        _compare_texts(result, theirs, mine)
    elif temperature == 0:
        result.notes.append(f"greedy, but the export is {dtype}: texts may differ, scores are compared")


def _compare_texts(result: CheckResult, theirs: list[dict[str, Any]], mine: list[dict[str, Any]]) -> None:
    """Greedy float32 sampling must give the very same answers: record every one that differs."""
    result.exact_text = True
    expected = {(str(row["prompt_id"]), int(row["k"])): row.get("completion") for row in theirs}
    for row in mine:
        key = (str(row["prompt_id"]), int(row["k"]))
        if key in expected:
            result.compared_answers += 1
            if expected[key] != row.get("completion"):
                result.text_mismatches.append({"prompt_id": key[0], "k": key[1], "reference": expected[key],
                                               "export": row.get("completion")})


def _reward(row: dict[str, Any]) -> float | None:
    if row.get("status") in SCORED and row.get("reward") is not None:
        return float(row["reward"])
    return None


def _heldout_reward(row: dict[str, Any]) -> float | None:
    return _reward(row.get("heldout") or {})


def compare_figure(
    name: str,
    reference_rows: Sequence[dict[str, Any]],
    export_rows: Sequence[dict[str, Any]],
    value: Any,
    *,
    atol: float = 0.05,
    z: float = 3.0,
) -> Comparison:
    """The mean of a per-answer figure on both sides and the noise bound of their difference.

    >>> ref = [{"prompt_id": "a", "v": 0.0}, {"prompt_id": "a", "v": 1.0}]
    >>> out = [{"prompt_id": "a", "v": 1.0}, {"prompt_id": "a", "v": 1.0}]
    >>> c = compare_figure("v", ref, out, lambda row: row["v"], atol=0.0, z=3.0)
    >>> round(c.difference, 3), round(c.se, 3), c.passed   # s^2([0, 1, 1, 1]) = 0.25; se = sqrt(0.25 * 1)
    (0.5, 0.5, True)
    """
    per_prompt: dict[str, list[list[float]]] = {}
    for side, rows in enumerate((reference_rows, export_rows)):
        for row in rows:
            number = value(row)
            if number is not None:
                per_prompt.setdefault(str(row.get("prompt_id")), [[], []])[side].append(float(number))
    both = {key: sides for key, sides in per_prompt.items() if sides[0] and sides[1]}
    reference = [number for sides in both.values() for number in sides[0]]
    export = [number for sides in both.values() for number in sides[1]]
    if not both:
        ref_all = [number for sides in per_prompt.values() for number in sides[0]]
        out_all = [number for sides in per_prompt.values() for number in sides[1]]
        return Comparison(
            name,
            statistics.fmean(ref_all) if ref_all else None,
            statistics.fmean(out_all) if out_all else None,
            atol,
            None,
            0,
        )
    variance = 0.0
    estimable = True
    for sides in both.values():
        pooled = sides[0] + sides[1]
        if len(pooled) < 3:
            estimable = False
            break
        # each side's mean over its k answers has variance s^2/k; the difference of two, twice that
        variance += statistics.variance(pooled) * (1 / len(sides[0]) + 1 / len(sides[1]))
    within = math.sqrt(variance) / len(both) if estimable else None
    # The paired estimate (spread of the per-prompt differences) also sees noise the within-prompt
    # one cannot: greedy answers that drift in a lower-precision export, a non-deterministic judge.
    differences = [statistics.fmean(sides[1]) - statistics.fmean(sides[0]) for sides in both.values()]
    paired = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else None
    estimates = [value for value in (within, paired) if value is not None]
    se = max(estimates) if estimates else None
    tolerance = max(atol, z * se) if se is not None else atol
    return Comparison(
        name,
        round(statistics.fmean(reference), 6),
        round(statistics.fmean(export), 6),
        round(tolerance, 6),
        None if se is None else round(se, 6),
        len(both),
    )


def _recipe_reward_configs(files: RunFiles) -> tuple[Any | None, Any | None]:
    """(training reward config, held-out reward config) of the run's recipe; None without one."""
    if files.recipe is None:
        return None, None
    return files.recipe.training_reward_config(), files.recipe.held_out_reward_config()
