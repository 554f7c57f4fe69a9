"""The body of `judgerl validate`: run the suite with a progress bar, print the figures, write the
report, and return the exit status (0 passed, 1 a threshold failed).

Why not in cli.py: the CLI module stays a list of thin wrappers; this is the part that knows how
a validation report should look in a terminal.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.table import Table

from judgerl.validate.report import DRY_RUN_NOTE, ValidationReport, fmt, write_report
from judgerl.validate.runner import run_validation

SUITE_PREFIX = "suite."
DEFAULT_OUTPUT = Path("runs/validation")


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """`suite.x=1` goes to the suite (as `x=1`); everything else to the reward config.

    >>> split_overrides(["suite.consistency.repeats=5", "judges.0.temperature=0.7"])
    (['judges.0.temperature=0.7'], ['consistency.repeats=5'])
    """
    config = [item for item in overrides if not item.startswith(SUITE_PREFIX)]
    suite = [item[len(SUITE_PREFIX):] for item in overrides if item.startswith(SUITE_PREFIX)]
    return config, suite


def validate_command(config: Path, suite: Path, output: Path | None, overrides: list[str],
                     console: Console, *, dry_run: bool = False) -> int:
    """Run the suite, print and write the report; 0 when every threshold held (or in a dry run,
    whose figures are a stand-in's and gate nothing), else 1."""
    config_overrides, suite_overrides = split_overrides(overrides)
    tasks: dict[str, TaskID] = {}
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:

        def progress(section: str, done: int, total: int) -> None:
            if section not in tasks:
                tasks[section] = bar.add_task(section, total=total)
            bar.update(tasks[section], completed=done, total=total)

        report = run_validation(config, suite, overrides=config_overrides, suite_overrides=suite_overrides,
                                progress=progress, dry_run=dry_run)
    json_path, md_path = write_report(report, output or DEFAULT_OUTPUT)
    print_report(report, console)
    console.print(f"report: {md_path} and {json_path}", highlight=False)
    if dry_run:
        console.print(f"[yellow]dry run:[/] {DRY_RUN_NOTE}; thresholds are shown, not enforced",
                      highlight=False)
        return 0
    return 0 if report.passed else 1


def print_report(report: ValidationReport, console: Console) -> None:
    """One table of every figure (with its interval and threshold), then the verdict."""
    table = Table(title=f"judge validation: {report.judge} ({report.judge_kind})")
    for column in ("section", "figure", "value", "95% CI", "threshold", "result"):
        table.add_column(column, justify="right" if column == "value" else "left", no_wrap=True)
    for section in report.sections:
        if section.skipped:
            table.add_row(section.name, "-", "-", "", "", f"skipped: {section.skipped}")
            continue
        gates = {threshold.figure: threshold for threshold in section.thresholds}
        failed = {failure.figure for failure in section.failures}
        for figure, value in section.figures.items():
            threshold = gates.get(figure)
            interval = section.intervals.get(figure)
            if threshold is None:
                verdict = ""
            elif figure in section.not_applicable:
                verdict = "n/a"
            else:
                verdict = "[bold red]FAIL[/]" if figure in failed else "[green]ok[/]"
            table.add_row(section.name, figure, fmt(value),
                          f"{fmt(interval[0], 2)}..{fmt(interval[1], 2)}" if interval else "",
                          threshold.describe() if threshold else "", verdict)
    console.print(table)
    if report.passed:
        console.print(f"[bold green]passed[/]: every threshold met ({report.seconds:.1f} s)")
        return
    console.print(f"[bold red]FAILED[/]: {len(report.failures)} figure(s) missed their threshold:")
    for failure in report.failures:
        console.print(f"  [red]-[/] {failure.message}", highlight=False)
