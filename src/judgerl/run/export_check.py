"""The export check: the exported folder, loaded back with plain transformers, must give the logits
of the checkpoint it came from and score like the run's final evaluation.

Why a module of its own: writing an export and checking one are two jobs; `judgerl export` does
both (a failed check leaves the folder at `<output>.rejected` and raises `ExportCheckFailed`),
and `check_export` also runs alone on any export folder.

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

import math
import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from judgerl.errors import JudgerlError
from judgerl.run.folder import PROVENANCE, RunFolder, read_json, read_rows, read_run_folder
from judgerl.types import Sample

#: largest relative logit difference (max |export - checkpoint| / max |checkpoint|) per export dtype
LOGIT_TOLERANCE = {"float32": 1e-4, "float16": 2e-2, "bfloat16": 5e-2}
SCORED = ("ok", "gated")
RunFiles = RunFolder
read_run = read_run_folder


class ExportCheckFailed(JudgerlError):
    """The exported model does not behave like the run's checkpoint; `.check` holds the figures."""

    def __init__(self, message: str, check: CheckResult) -> None:
        super().__init__(message)
        self.check = check


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
