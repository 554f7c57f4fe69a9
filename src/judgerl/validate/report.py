"""What a validation run found, and how it is written: JSON for machines, Markdown for people.

Why a separate module: the HTML report, the training gate and the CLI all read the same
`ValidationReport`; the JSON file (`validation.json`) is its stable, complete form (every figure,
interval, threshold and per-item record), and `validation.md` is the short form a reviewer reads:
one table per section, the failing figures first, and the items that explain them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from judgerl.validate.suite import Threshold

MAX_EXAMPLES = 10


@dataclass
class Failure:
    """A threshold that was not met."""

    section: str
    figure: str
    value: float | None
    kind: str
    bound: float

    @property
    def message(self) -> str:
        shown = "not computed" if self.value is None else f"{self.value:.3f}"
        return f"{self.section}: {self.figure} = {shown} (needs {'>=' if self.kind == 'min' else '<='} " \
               f"{self.bound:g})"

    def __str__(self) -> str:
        return self.message


@dataclass
class SectionResult:
    """The figures of one section, the thresholds checked on them and what explains them.

    `gate_values` replaces a figure's value for the gate (e.g. the lower end of a confidence
    interval); `not_applicable` lists figures that do not exist for this data or judge, whose
    thresholds are reported as skipped instead of failed.
    """

    name: str
    judge: str
    figures: dict[str, float | None] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    breakdown: dict[str, dict[str, float | None]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gate_values: dict[str, float | None] = field(default_factory=dict)
    not_applicable: list[str] = field(default_factory=list)
    thresholds: list[Threshold] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = [threshold.model_dump() for threshold in self.thresholds]
        data["failures"] = [{**asdict(failure), "message": failure.message} for failure in self.failures]
        data["passed"] = self.passed
        return _finite(data)


@dataclass
class ValidationReport:
    """Every section's result for one judge; `passed` is false when any threshold failed."""

    judge: str
    judge_kind: str
    config: str | None
    suite: str | None
    sections: list[SectionResult] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    runtime: dict[str, Any] = field(default_factory=dict)
    #: every judge was answered by the neutral stand-in of `--dry-run`: the figures test the suite
    #: and the config, not the judge
    dry_run: bool = False

    @property
    def failures(self) -> list[Failure]:
        return [failure for section in self.sections for failure in section.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def section(self, name: str) -> SectionResult:
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(f"no section '{name}' in the report (have: {[s.name for s in self.sections]})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "judge_kind": self.judge_kind, "config": self.config, "suite": self.suite,
            "passed": self.passed, "failures": [{**asdict(f), "message": f.message} for f in self.failures],
            "started": self.started, "seconds": round(self.seconds, 3), "runtime": _finite(self.runtime),
            "sections": [section.to_dict() for section in self.sections],
            **({"dry_run": True} if self.dry_run else {}),
        }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure for a table.

    >>> fmt(0.12345), fmt(None), fmt(3.0)
    ('0.123', 'n/a', '3.000')
    """
    return "n/a" if value is None else f"{value:.{digits}f}"


def _cell(text: Any, width: int = 80) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


DRY_RUN_NOTE = ("every judgment came from a neutral stand-in, no model was called: the figures check "
                "that the suite and the reward config run, not how good the judge is")


def render_markdown(report: ValidationReport) -> str:
    """The report as Markdown: verdict, failing figures, then one table per section."""
    lines = [f"# Judge validation: `{report.judge}` ({report.judge_kind})", ""]
    lines.append(f"- reward config: `{report.config or '<dict>'}`; suite: `{report.suite or '<dict>'}`")
    lines.append(f"- result: **{'PASSED' if report.passed else 'FAILED'}** in {report.seconds:.1f} s")
    if report.dry_run:
        lines.append(f"- **dry run**: {DRY_RUN_NOTE}")
    lines.append("")
    if report.failures:
        lines += ["## Failing figures", ""]
        lines += [f"- {failure.message}" for failure in report.failures]
        lines.append("")
    for section in report.sections:
        lines += _section_markdown(section)
    return "\n".join(lines).rstrip() + "\n"


def _section_markdown(section: SectionResult) -> list[str]:
    status = "skipped" if section.skipped else ("passed" if section.passed else "FAILED")
    lines = [f"## {section.name}: {status}", ""]
    if section.skipped:
        return [*lines, f"Skipped: {section.skipped}", ""]
    if section.counts:
        lines += [", ".join(f"{key}: {value}" for key, value in section.counts.items()), ""]
    gates = {threshold.figure: threshold for threshold in section.thresholds}
    failed = {failure.figure for failure in section.failures}
    lines += ["| figure | value | 95% CI | threshold | |", "|---|---:|---|---|---|"]
    for name, value in section.figures.items():
        interval = section.intervals.get(name)
        ci = f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else ""
        threshold = gates.get(name)
        if threshold is None:
            mark, bound = "", ""
        elif name in section.not_applicable:
            mark, bound = "not applicable", threshold.describe()
        else:
            mark, bound = ("**fail**" if name in failed else "ok"), threshold.describe()
        lines.append(f"| {name} | {fmt(value)} | {ci} | {bound} | {mark} |")
    lines.append("")
    for group, values in section.breakdown.items():
        if not values:
            continue
        lines += [f"By {group}:", "", "| | value |", "|---|---:|"]
        lines += [f"| {_cell(key, 40)} | {fmt(value)} |" for key, value in values.items()]
        lines.append("")
    if section.examples:
        keys = list(section.examples[0])
        shown = min(len(section.examples), MAX_EXAMPLES)
        lines += [f"Items that explain the figures ({shown} of {len(section.examples)} shown):", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for example in section.examples[:MAX_EXAMPLES]:
            lines.append("| " + " | ".join(_cell(example.get(key, ""), 60) for key in keys) + " |")
        lines.append("")
    lines += [f"- {note}" for note in section.notes]
    if section.notes:
        lines.append("")
    return lines


def write_report(report: ValidationReport, output_dir: str | Path) -> tuple[Path, Path]:
    """Write `validation.json` and `validation.md` into `output_dir`; return both paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "validation.json", folder / "validation.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    md_path.write_text(render_markdown(report), encoding="utf-8")
    return json_path, md_path
