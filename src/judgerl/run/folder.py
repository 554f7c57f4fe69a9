"""The run folder (RUN_DIR) and its one reader.

Why one module: the report, the export, the model card and the workflow all read the same folder,
and two readers had come to disagree (one unwrapped `stages.json`'s `"stages"`, the other kept the
whole file). Here is the layout, written once, and `read_run_folder`, the only code that reads the
shared parts of it:

    recipe.yaml                                 the recipe as run (every path absolute)
    stages.json                                 {"stages": {name: {status, seconds, outputs}}}
    validation/report.json                      the judge validation (validation.json before)
    sft/, rft/                                  training outputs (metrics.jsonl, checkpoint-N/)
    eval/<label>/summary.json, samples.jsonl    one evaluated model per label
    export/ (README.md, judgerl_export.json)    the exported model, its card and provenance
    report.html, plots/                         the report

Each part is optional: a run stopped early, or run stage by stage, has only some of them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgerl.data import read_json
from judgerl.errors import ConfigError, DataError, JudgerlError

if TYPE_CHECKING:
    from judgerl.train.recipe import Recipe

log = logging.getLogger(__name__)

STAGES_FILE = "stages.json"
#: the export's provenance file, in the export folder
PROVENANCE = "judgerl_export.json"
#: the validation report's name, newest first
VALIDATION_FILES = ("report.json", "validation.json")
#: labels shown first, in this order, by reports and tables
CANONICAL_ORDER = ("base", "sft", "rft")


def ordered_labels(labels: Iterable[str]) -> list[str]:
    """base, sft, rft first (in that order), then the others alphabetically.

    >>> ordered_labels(["rft", "zeta", "base", "api"])
    ['base', 'rft', 'api', 'zeta']
    """
    labels = list(labels)
    known = [label for label in CANONICAL_ORDER if label in labels]
    return known + sorted(label for label in labels if label not in CANONICAL_ORDER)


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a JSONL file (none if it is missing); a torn last line (a killed run) is
    skipped, other bad lines are errors."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                log.warning("%s: ignoring a torn last line", path)
                break
            raise DataError(f"not JSON: {exc.msg}", path=str(path), line=number) from exc
    return rows


def read_objects(path: Path) -> list[dict[str, Any]]:
    """`read_rows`, where every row must be a JSON object."""
    rows = read_rows(path)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataError("expected a JSON object per line", path=str(path), line=number)
    return rows


def read_stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The `"stages"` of RUN_DIR/stages.json: {stage: {status, seconds, finished_at, outputs}}."""
    path = run_dir / STAGES_FILE
    if not path.is_file():
        return {}
    content = read_json(path)
    stages = content.get("stages") if isinstance(content, dict) else None
    if not isinstance(stages, dict):
        raise DataError('expected {"stages": {...}}', path=str(path))
    return stages


def load_eval_summaries(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """{label: summary} for every RUN_DIR/eval/<label>/summary.json, base/sft/rft first."""
    found = {}
    for path in sorted(Path(run_dir, "eval").glob("*/summary.json")):
        summary = read_json(path)
        if not isinstance(summary, dict):
            raise DataError("an evaluation summary must be a JSON object", path=str(path))
        found[path.parent.name] = summary
    return {label: found[label] for label in ordered_labels(found)}


@dataclass
class RunFolder:
    """What the shared parts of a run folder hold (each piece optional)."""

    run_dir: Path
    recipe: Recipe | None = None
    recipe_raw: dict[str, Any] | None = None
    recipe_error: str | None = None
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    validation_path: Path | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rft_dir(self) -> Path:
        """The GRPO output: RUN_DIR/rft, else where the recipe put it."""
        own = self.run_dir / "rft"
        if own.is_dir() or self.recipe is None:
            return own
        return self.recipe.output_dir

    @property
    def export_dir(self) -> Path | None:
        folder = self.run_dir / "export"
        return folder if folder.is_dir() else None

    @property
    def model_card(self) -> Path | None:
        card = self.run_dir / "export" / "README.md"
        return card if card.is_file() else None


def read_run_folder(run_dir: str | os.PathLike[str]) -> RunFolder:
    """Read recipe.yaml, eval/*/summary.json, the validation report and stages.json of a run.

    A recipe that does not validate is kept raw (`recipe_raw`, with `recipe_error`): the model
    card still shows it; what needs a valid recipe says so.
    """
    from judgerl.config import read_yaml

    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"run directory {run} does not exist", field="RUN_DIR")
    folder = RunFolder(run_dir=run, summaries=load_eval_summaries(run), stages=read_stages(run))
    recipe_path = run / "recipe.yaml"
    if recipe_path.is_file():
        from judgerl.train.recipe import load_recipe

        folder.recipe_raw = read_yaml(recipe_path)
        try:
            folder.recipe = load_recipe(recipe_path)
        except JudgerlError as exc:
            folder.recipe_error = str(exc)
            log.warning("%s does not validate: %s", recipe_path, exc)
    for name in VALIDATION_FILES:
        path = run / "validation" / name
        if path.is_file():
            folder.validation, folder.validation_path = read_json(path), path
            break
    return folder
