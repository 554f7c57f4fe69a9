"""The `judgerl` command: score, validate, train, sft, evaluate, report, run, serve, demo.

Each command is a thin wrapper: it parses options, calls the module that does the work and
turns judgerl's errors into a clear message and a non-zero exit (no traceback for a bad
config or input; a traceback only for a bug).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from judgerl.errors import JudgerlError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Reinforcement fine-tuning with an LLM as the judge.")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config field: --set judges.0.weight=2 (repeatable).")]


def friendly_errors(function: F) -> F:
    """Print judgerl errors as one red line and exit 2; let bugs show their traceback."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except JudgerlError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly_errors
def score(
    config: Annotated[Path, typer.Option("--config", "-c", help="Reward config YAML.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Rollouts JSONL.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Rewards JSONL (appended, resumable).")],
    overrides: SetOption = None,
    batch_size: Annotated[int, typer.Option(help="Rollouts per batch (failure budget per batch).")] = 256,
    resume: Annotated[bool, typer.Option(help="Skip rollouts already in --output.")] = True,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Replace every backend by the scripted one: no model is called.")] = False,
) -> None:
    """Score a file of rollouts with a reward config; rewards are written as they finish."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from judgerl.config import load_reward_config
    from judgerl.data import load_rollouts
    from judgerl.errors import DataError
    from judgerl.reward.pipeline import RewardPipeline
    from judgerl.scoring import score_file

    reward_config = load_reward_config(config, overrides or [])
    items, errors = load_rollouts(input)
    for error in errors[:20]:
        console.print(f"[yellow]skipped:[/] {error}", highlight=False)
    if len(errors) > 20:
        console.print(f"[yellow]... and {len(errors) - 20} more bad rows[/]")
    if not items:
        raise DataError("no valid rollouts to score", path=str(input))
    backends = dry_run_backends(reward_config) if dry_run else None
    with RewardPipeline.from_config(reward_config, backends=backends) as pipeline, Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("scoring", total=len(items))
        summary = score_file(pipeline, items, output, batch_size=batch_size, resume=resume,
                             progress=lambda n: progress.advance(task, n))
        progress.advance(task, summary.skipped)
    print_summary(summary, output, bad_rows=len(errors))


def dry_run_backends(reward_config: Any) -> dict[str, Any]:
    """Scripted stand-ins for every configured backend (judges get well-formed answers)."""
    from judgerl.backends.dry_run import DryRunBackend

    return {name: DryRunBackend() for name in reward_config.backends}


def print_summary(summary: Any, output: Path, *, bad_rows: int = 0) -> None:
    table = Table(title=f"rewards -> {output}")
    for column in ("component", "mean", "std", "n"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for row in summary.rows():
        table.add_row(*row)
    console.print(table)
    counts = ", ".join(f"{status}: {count}" for status, count in sorted(summary.status_counts.items()))
    console.print(f"scored {summary.total} ({counts or 'none'}); skipped (already in output) "
                  f"{summary.skipped}; bad input rows {bad_rows}")
    stats = summary.runtime
    if stats:
        console.print(" · ".join(f"{key}: {_fmt(value)}" for key, value in stats.items()
                                 if not isinstance(value, dict)), highlight=False)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
