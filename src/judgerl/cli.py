"""The `judgerl` command: score, rubrics, plan, validate, train, sft, evaluate, report, run, serve,
distill, rejudge, demo, init, version (and `--version`).

Each command is a thin wrapper: it parses options, calls the module that does the work and
turns judgerl's errors into a clear message and a non-zero exit (no traceback for a bad
config or input; a traceback only for a bug).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from judgerl.errors import JudgerlError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Reinforcement fine-tuning with an LLM as the judge.")
console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a config field: --set judges.0.weight=2 (repeatable).")]


def quiet_progress_bars_when_logged() -> None:
    """Hide Hugging Face progress bars ("Loading weights", "Writing model shards", "Tokenizing train
    dataset") when stderr is not a terminal: in a log file each redraw is a line of noise. The
    variables set by the user win; they must be set before transformers / datasets are imported,
    which the commands do lazily."""
    if not sys.stderr.isatty():
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers, huggingface_hub
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # datasets (TRL's tokenizing)


def _print_version(value: bool) -> None:
    if value:
        from judgerl.version import version_text

        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _before_every_command(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print judgerl's version and the key packages' (torch, transformers, TRL, ...), then exit.",
    )] = False,
) -> None:
    quiet_progress_bars_when_logged()


@app.command("version")
def version_command() -> None:
    """Print judgerl's version and the installed versions of the key optional packages."""
    _print_version(True)


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
    batch_size: Annotated[int, typer.Option(
        min=1, help="Rollouts per batch (failure budget per batch).")] = 256,
    resume: Annotated[bool, typer.Option(
        help="Keep the final rows (ok, gated) already in --output and score the rest; "
             "--no-resume starts the output afresh.")] = True,
    keep_unscored: Annotated[bool, typer.Option(
        "--keep-unscored", help="On a rerun, keep unscored rows of --output as they are "
                                "instead of scoring them again.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Replace every backend by the scripted one: no model is called.")] = False,
) -> None:
    """Score a file of rollouts with a reward config; rewards are written as they finish.

    A rerun with the same --output resumes: ok and gated rows are final and kept; unscored rows
    (judge down, circuit open, bad row data) are scored again unless --keep-unscored.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from judgerl.config import load_reward_config
    from judgerl.data import load_rollouts
    from judgerl.errors import BudgetExhausted, DataError, FailureBudgetExceeded
    from judgerl.reward.pipeline import RewardPipeline
    from judgerl.run.score import score_file

    reward_config = load_reward_config(config, overrides or [])
    items, errors = load_rollouts(input)
    for error in errors[:20]:
        console.print(f"[yellow]skipped:[/] {error}", highlight=False)
    if len(errors) > 20:
        console.print(f"[yellow]... and {len(errors) - 20} more bad rows[/]")
    if not items:
        raise DataError("no valid rollouts to score", path=str(input))
    with RewardPipeline.from_config(reward_config, dry_run=dry_run) as pipeline, Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("scoring", total=len(items))
        try:
            summary = score_file(pipeline, items, output, batch_size=batch_size, resume=resume,
                                 keep_unscored=keep_unscored, progress=lambda n: progress.advance(task, n))
        except (BudgetExhausted, FailureBudgetExceeded) as exc:
            stopped: BudgetExhausted | FailureBudgetExceeded | None = exc
            summary = exc.summary  # type: ignore[attr-defined]
        else:
            stopped = None
        progress.advance(task, summary.skipped)
    print_summary(summary, output, bad_rows=len(errors))
    if isinstance(stopped, BudgetExhausted):
        console.print(f"[bold red]stopped by the budget:[/] {summary.not_scored} rows not scored (not "
                      f"written; a rerun with a raised budget scores them). {stopped}", highlight=False)
        raise typer.Exit(2)
    if stopped is not None:
        console.print(f"[bold red]error:[/] {stopped}", highlight=False)
        console.print(f"stopped by the failure budget: the {summary.total} rows above are in {output}; "
                      f"{summary.not_scored} rows not scored yet. Fix the judge (see the reasons), then "
                      "rerun the same command: it keeps the final rows and scores the rest.",
                      highlight=False)
        raise typer.Exit(2)


@app.command()
@friendly_errors
def rubrics(
    config: Annotated[Path, typer.Option("--config", "-c", help="Reward config YAML (its backends).")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Prompts JSONL (references used).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The prompts with a `rubric` column.")],
    k: Annotated[int, typer.Option("-k", help="Rubric items per prompt.")] = 7,
    backend: Annotated[str | None, typer.Option(
        help="The backend to ask (default: the first judge's).")] = None,
    template: Annotated[Path | None, typer.Option(
        help="Your own generation template instead of the shipped rubric_generation.txt.")] = None,
    overrides: SetOption = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Generate a rubric for rows that already carry a valid one.")] = False,
    resume: Annotated[bool, typer.Option(
        help="Keep the rubrics a killed run already wrote (--no-resume starts afresh).")] = True,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the first prompt and count the rows to do; no model is called.")] = False,
) -> None:
    """Write a rubric (RaR's essential / important / optional / pitfall items) for each prompt."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from judgerl.config import load_reward_config
    from judgerl.run.rubrics import generate_rubrics

    reward_config = load_reward_config(config, overrides or [])
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=dry_run) as progress:
        task = progress.add_task("rubrics", total=None)
        summary = generate_rubrics(reward_config, input, output, k=k, backend=backend, template=template,
                                   dry_run=dry_run, overwrite=overwrite, resume=resume,
                                   progress=lambda n: progress.advance(task, n))
    for problem in summary.bad_rows[:20]:
        console.print(f"[yellow]bad row:[/] {problem}", highlight=False)
    if dry_run:
        console.print(summary.dry_run_prompt or "(nothing to generate)", highlight=False, markup=False)
        console.print(f"dry run: {summary.generated} of {summary.rows} rows would be sent "
                      f"({summary.kept} keep their rubric); no call was made", highlight=False)
        return
    for failure in summary.failed[:20]:
        console.print(f"[red]failed:[/] {failure}", highlight=False)
    stats = summary.stats
    console.print(f"rubrics -> {output}: generated {summary.generated}, kept {summary.kept}, "
                  f"failed {len(summary.failed)} (a rerun tries them again), rows {summary.rows}; "
                  f"items dropped (duplicate, unusable, beyond k) {summary.dropped_items}", highlight=False)
    if stats:
        console.print(f"calls {stats.get('backend_calls', 0)} (cache hits {stats.get('cache_hits', 0)}) · "
                      f"tokens {stats.get('prompt_tokens', 0)} in / "
                      f"{stats.get('completion_tokens', 0)} out · "
                      f"cost ${stats.get('cost_usd', 0.0):.4f}", highlight=False)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def validate(
    config: Annotated[Path, typer.Option("--config", "-c", help="Reward config YAML (the judge).")],
    suite: Annotated[Path, typer.Option("--suite", "-s", help="Validation suite YAML.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Folder for validation.json and .md (default runs/validation).")] = None,
    overrides: SetOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Replace every backend by a neutral stand-in: no model is called; checks that "
                          "the suite and config run (thresholds shown, not enforced).")] = False,
) -> None:
    """Measure a judge (consistency, agreement, human labels, regression, bias); exit 1 if a threshold fails.

    --set applies to the reward config; --set suite.<field>=<value> to the suite.
    """
    from judgerl.validate.command import validate_command

    status = validate_command(config, suite, output, overrides or [], console, dry_run=dry_run)
    if status:
        raise typer.Exit(status)


@app.command()
@friendly_errors
def train(
    recipe: Annotated[Path, typer.Argument(help="Training recipe YAML (see judgerl.train.recipe).")],
    overrides: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
    skip_validation: Annotated[bool, typer.Option(
        "--skip-validation", help="Train without running the recipe's judge-validation gate.")] = False,
) -> None:
    """GRPO with the recipe's judge reward (TRL), with monitors and checkpoints."""
    from judgerl.adapters.trl_ranks import launched_ranks
    from judgerl.train.grpo import train as run_grpo
    from judgerl.train.recipe import load_recipe

    result = run_grpo(load_recipe(recipe, overrides or []), resume=resume, skip_validation=skip_validation,
                      console=console)
    ranks = launched_ranks()
    if ranks is not None and not ranks.is_main:
        return  # under accelerate launch, rank 0 reports for the run
    console.print(f"trained {result.global_step} steps in {result.seconds:.0f}s -> {result.final_dir}; "
                  f"metrics: {result.metrics_path}; hacking alarms: {len(result.alarms)}", highlight=False)


@app.command()
@friendly_errors
def sft(
    recipe: Annotated[Path, typer.Argument(help="Training recipe YAML (the same as for `train`).")],
    overrides: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint.")] = False,
) -> None:
    """Supervised fine-tuning on the reference answers: the baseline for RFT."""
    from judgerl.train.recipe import load_recipe
    from judgerl.train.sft import sft as run_sft

    result = run_sft(load_recipe(recipe, overrides or []), resume=resume, console=console)
    console.print(f"SFT {result.global_step} steps in {result.seconds:.0f}s -> {result.final_dir}",
                  highlight=False)


@app.command()
@friendly_errors
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="Reward config YAML.")],
    host: Annotated[str, typer.Option(help="Interface to bind (loopback unless told).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 5000,
    token_env: Annotated[str, typer.Option(help="Environment variable holding the bearer token.")] = (
        "JUDGERL_SERVER_TOKEN"),
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without a token (trusted nets).")] = False,
    allow_network: Annotated[list[str] | None, typer.Option(
        "--allow-network", help="Let clients from this network in without a token, e.g. 10.0.0.0/8 "
                                "(repeatable; for OpenRLHF, whose client sends no headers).")] = None,
    special_token: Annotated[list[str] | None, typer.Option(
        "--special-token", help="Also strip this token from responses (repeatable; common chat-template "
                                "tokens are stripped by default).")] = None,
    tokenizer: Annotated[str | None, typer.Option(
        help="A tokenizer folder whose special tokens are stripped too (the policy's).")] = None,
    budget_window: Annotated[int, typer.Option(
        min=1, help="failure_budget applies over this many most recent items.")] = 256,
    group_size: Annotated[int, typer.Option(
        min=1, help="Hold rollouts of one prompt until this many arrived, then judge them together "
                    "(OpenRLHF's n_samples_per_prompt; 1 = no holding).")] = 1,
    group_timeout_s: Annotated[float, typer.Option(
        min=0.001, help="Longest a rollout is held for its group.")] = 30.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Most items per request (413 above).")] = 4096,
    max_body_mb: Annotated[float, typer.Option(
        min=0.001, help="Largest request body in MiB (413 above).")] = 32.0,
    idle_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a connection may wait before sending the first byte of its request "
                        "(the header timeout instead while connections wait for a slot).")] = 180.0,
    header_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a client has, from a request's first byte, to send its headers (then the "
                        "connection is closed).")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a client has to send a request's body after its headers.")] = 60.0,
    max_connections: Annotated[int, typer.Option(
        min=1, help="Most connections served at once; more wait in the listen backlog (never closed). "
                    "Fitted under the open-file limit.")] = 16384,
    backlog: Annotated[int, typer.Option(
        min=1, help="Listen backlog: connections waiting to be accepted (capped by net.core.somaxconn).",
    )] = 16384,
    max_pending_mb: Annotated[float, typer.Option(
        min=0.001, help="Request bodies held at once, in MiB (read or being judged); a request past it "
                        "gets 503 with Retry-After.")] = 1024.0,
    overrides: SetOption = None,
) -> None:
    """OpenRLHF-compatible reward server: POST /get_reward, GET /health (judgerl.adapters.openrlhf)."""
    from judgerl.adapters.openrlhf import serve as run_server

    run_server(config, host=host, port=port, token_env=token_env, no_auth=no_auth, overrides=overrides or [],
               max_batch=max_batch, max_body_bytes=int(max_body_mb * 1024 * 1024),
               allow_networks=allow_network or [], special_tokens=special_token or [], tokenizer=tokenizer,
               budget_window=budget_window, group_size=group_size, group_timeout_s=group_timeout_s,
               header_timeout_s=header_timeout, body_timeout_s=body_timeout, max_connections=max_connections,
               backlog=backlog, max_pending_bytes=int(max_pending_mb * 1024 * 1024),
               idle_timeout_s=idle_timeout)


@app.command()
@friendly_errors
def evaluate(
    reward: Annotated[Path, typer.Option("--reward", "-r", help="Reward config YAML (the training judge).")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Held-out prompts (JSONL or a HF dataset).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory; writes eval/<label>/.")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="LABEL=PATH_OR_NAME: a model folder, packaged name, run/checkpoint or LoRA "
                              "checkpoint (repeatable).")] = None,
    endpoint: Annotated[list[str] | None, typer.Option(
        "--endpoint", help="LABEL=URL,model=NAME[,api_key_env=VAR,...]: an OpenAI-compatible server "
                           "(repeatable).")] = None,
    k: Annotated[int, typer.Option("--k", help="Answers sampled per prompt.")] = 4,
    heldout: Annotated[Path | None, typer.Option(
        "--heldout", help="A second reward config: the held-out judge.")] = None,
    schema_check: Annotated[str | None, typer.Option(
        help="Check whose 1.0 means 'valid' (default: the first json_schema / json_valid check).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer, in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.8,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts generated together.")] = 8,
    limit: Annotated[int | None, typer.Option(help="Evaluate only the first N prompts.")] = None,
    dtype: Annotated[str | None, typer.Option(help="Local models: float32 (default), bfloat16.")] = None,
    resume: Annotated[bool, typer.Option(help="Keep prompts already finished in --out.")] = True,
    overrides: SetOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Replace every judge backend by the scripted one: no judge is called.")] = False,
) -> None:
    """Sample k answers per held-out prompt from each model and score them (best-of-k, validity, held-out)."""
    from contextlib import ExitStack

    from judgerl.config import load_reward_config
    from judgerl.models.policy import SamplingConfig
    from judgerl.reward.pipeline import RewardPipeline
    from judgerl.run.evaluate import (
        evaluate_models,
        load_eval_samples,
        parse_endpoint_option,
        parse_model_option,
    )

    models = dict(parse_model_option(text, dtype=dtype) for text in model or [])
    for text in endpoint or []:
        label, spec = parse_endpoint_option(text)
        models[label] = spec
    reward_config = load_reward_config(reward, overrides or [])
    heldout_config = load_reward_config(heldout) if heldout is not None else None
    samples = load_eval_samples(data, limit=limit, warn=lambda text: console.print(f"[yellow]{text}[/]"))
    sampling = SamplingConfig(k=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                              seed=seed, batch_size=batch_size)
    with console.status("evaluating") as status:
        done: dict[str, int] = {}

        def progress(label: str, count: int) -> None:
            done[label] = done.get(label, 0) + count
            status.update(f"evaluating {label}: {done[label]} prompts scored")

        with ExitStack() as stack:
            pipelines = [stack.enter_context(RewardPipeline.from_config(config, dry_run=dry_run))
                         for config in (reward_config, heldout_config) if config is not None]
            result = evaluate_models(
                models, samples, pipelines[0], k=k, heldout_reward_config=pipelines[1] if heldout else None,
                schema_check_name=schema_check, out_dir=out, sampling=sampling, resume=resume,
                progress=progress)
    table = Table(title=f"evaluation -> {out / 'eval'}")
    for column in ("model", "reward", "mean of k", "best of k", "schema valid", "held-out", "unscored", "n"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in result.table():
        table.add_row(*row)
    console.print(table)


@app.command()
@friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (eval/, rft/, validation/, export/ ...).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="HTML file (default RUN_DIR/report.html).")] = None,
) -> None:
    """Render RUN_DIR/report.html: one self-contained page with PNG plots; prints its path."""
    from judgerl.run.report import render_report

    typer.echo(str(render_report(run_dir, output=output)))


@app.command("export")
@friendly_errors
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (rft/, eval/, recipe.yaml ...).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Export folder (default RUN_DIR/export).")] = None,
    checkpoint: Annotated[str, typer.Option(
        help="last, best (highest held-out judge score among evaluated checkpoints) or a PATH.")] = "last",
    adapter_only: Annotated[bool, typer.Option(
        "--adapter-only", help="Ship the LoRA adapter and name its base instead of merging.")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the post-export check.")] = False,
    check_only: Annotated[bool, typer.Option(
        "--check-only", help="Only check an existing export in --output (exit 1 if it fails).")] = False,
    limit: Annotated[int, typer.Option(help="Held-out prompts scored by the check.")] = 8,
    dtype: Annotated[str | None, typer.Option(
        help="Weights dtype of a merged export: float32, bfloat16, float16 (default: the base's).")] = None,
    name: Annotated[str | None, typer.Option(
        help="Served model name in the card (default judgerl-<run dir name>).")] = None,
    data: Annotated[Path | None, typer.Option(
        help="The held-out prompts file the run was evaluated on (default: the recipe's data.eval).")] = None,
    atol: Annotated[float, typer.Option(help="Check: smallest allowed score difference.")] = 0.05,
    z: Annotated[float, typer.Option(help="Check: allowed difference in standard errors.")] = 3.0,
) -> None:
    """Export a run as a Hugging Face model folder (merged LoRA) with a model card, then check it."""
    from judgerl.run.export import export_run
    from judgerl.run.export_check import ExportCheckFailed, check_export

    try:
        if check_only:
            result = check_export(output or run_dir / "export", run_dir, limit=limit, data=data,
                                  atol=atol, z=z)
            console.print(result.describe(), highlight=False)
            return
        exported = export_run(run_dir, output, checkpoint=checkpoint, merge=not adapter_only,
                              check=not no_check, limit=limit, dtype=dtype, served_model_name=name,
                              data=data, atol=atol, z=z)
    except ExportCheckFailed as exc:
        console.print(f"[bold red]export check failed[/]\n{exc.check.describe()}", highlight=False)
        raise typer.Exit(1) from exc
    if exported.check is not None:
        console.print(exported.check.describe(), highlight=False)
    console.print(f"exported {exported.checkpoint} ({exported.selection.rule}) -> {exported.output}; "
                  f"card: {exported.card}", highlight=False)
    typer.echo(str(exported.output))


@app.command()
@friendly_errors
def run(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML (with data.eval; see `judgerl train`).")],
    overrides: SetOption = None,
    skip_validation: Annotated[bool, typer.Option(
        "--skip-validation", help="Run the validation but do not stop on a failed threshold.")] = False,
    stop_after: Annotated[str | None, typer.Option(
        help="Stop after this stage: baseline_eval, validation, sft, rft, final_eval, export, report."),
    ] = None,
) -> None:
    """The whole workflow: baseline eval -> validation -> SFT -> RFT -> final eval -> export -> report.

    Resumable: a rerun continues from the first stage that did not finish.
    """
    from judgerl.run.workflow import Workflow

    workflow = Workflow(recipe, overrides or [], skip_validation=skip_validation, console=console,
                        stop_after=stop_after)
    report_path = workflow.run()
    print_results(workflow.run_dir)
    console.print(f"[bold green]report:[/] {report_path}" if report_path.is_file()
                  else f"no report yet (stopped after {stop_after}): {report_path}", highlight=False)


@app.command()
@friendly_errors
def distill(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the student model, "
                                         "reward-snippet.yaml and the agreement report.")],
    journal: Annotated[Path | None, typer.Option(help="The teacher's journal (JSONL).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="The teacher's reward config (with --journal: its criteria).")] = None,
    judge: Annotated[str | None, typer.Option(
        help="The judge to distill (when the journal holds several): a rubric judge, a pairwise "
             "one (its comparisons train a student that judges each answer alone), or a panel (its "
             "combined verdicts; the rollouts it abstained on are left out).")] = None,
    labelled: Annotated[Path | None, typer.Option(
        help="A labelled file in the format `judgerl validate` reads: scored rows (prompt, answer, "
             "score) or pairwise rows (prompt, answer_a, answer_b, label a/b/tie).")] = None,
    criterion: Annotated[str | None, typer.Option(
        help="With scored --labelled rows: the check's name (pairwise rows: the judge's name).")] = None,
    description: Annotated[str | None, typer.Option(
        help="With --labelled: what the check asks (pairwise rows: what makes an answer better, "
             "judged on each answer alone); with a pairwise --journal: overrides the teacher's "
             "instructions; with a panel: the student's one check (default: the panel's "
             "description).")] = None,
    base_model: Annotated[str, typer.Option(
        help="Packaged model name or model folder.")] = "smollm2-135m-instruct",
    method: Annotated[str, typer.Option(help="lora (default) or full fine-tuning.")] = "lora",
    epochs: Annotated[int, typer.Option(help="Passes over the training rows.")] = 3,
    learning_rate: Annotated[float | None, typer.Option(help="Default 1e-3 (LoRA), 1e-4 (full).")] = None,
    hard_targets: Annotated[bool, typer.Option(
        "--hard-targets", help="Train on 0/1 verdicts instead of the teacher's probabilities.")] = False,
    held_out: Annotated[float, typer.Option(help="Share of samples held out for the report.")] = 0.2,
    held_out_file: Annotated[Path | None, typer.Option(
        help="With --labelled: a labelled file of held-out rows for the report (then every row of "
             "--labelled trains and --held-out is not used).")] = None,
    batch_size: Annotated[int, typer.Option(help="Rows (pairwise: pairs) per training step.")] = 8,
    lora_layers: Annotated[int | None, typer.Option(
        help="LoRA on the top N layers only (faster steps); default all.")] = None,
    max_prompt_tokens: Annotated[int, typer.Option(
        help="Longer student prompts keep their last tokens.")] = 384,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="Less memory, ~30% more training time.")] = False,
    min_accuracy: Annotated[float, typer.Option(help="Gate: per-check accuracy vs the teacher.")] = 0.8,
    min_kappa: Annotated[float, typer.Option(help="Gate: per-check Cohen's kappa.")] = 0.6,
    min_spearman: Annotated[float, typer.Option(help="Gate: per-Likert-criterion Spearman.")] = 0.6,
    seed: Annotated[int, typer.Option(help="Split and training seed.")] = 0,
    prompt: Annotated[str, typer.Option(
        help="The student's template (a shipped prompt): rubric_student (the question, the answer, "
             "the criterion) or rubric_item_student (the answer and one rubric item: for items that "
             "say what to look for, ~half the tokens when the question is long).")] = "rubric_student",
) -> None:
    """Distill a judge: train a small local student on the teacher's verdicts; exit 1 if it is refused.

    Pairwise teachers (journal or labelled rows) get a Bradley-Terry student: a pointwise pairwise judge.
    """
    from judgerl.distill.agreement import DistillGateError, Thresholds
    from judgerl.distill.command import distill as run_distill
    from judgerl.distill.student import TrainSettings

    if method not in ("lora", "full"):
        raise typer.BadParameter("--method is lora or full")
    settings = TrainSettings(method=method, epochs=epochs, learning_rate=learning_rate,  # type: ignore[arg-type]
                             soft_targets=not hard_targets, seed=seed, batch_size=batch_size,
                             max_prompt_tokens=max_prompt_tokens, lora_layers=lora_layers,
                             gradient_checkpointing=gradient_checkpointing)
    thresholds = Thresholds(min_accuracy=min_accuracy, min_kappa=min_kappa, min_spearman=min_spearman)
    try:
        result = run_distill(out_dir=output, base_model=base_model, journal=journal, config=config,
                             judge=judge, labelled=labelled, criterion=criterion, description=description,
                             held_out=held_out, held_out_labelled=held_out_file, settings=settings,
                             thresholds=thresholds, console=console, prompt=prompt)
    except DistillGateError as exc:
        console.print(f"[bold red]refused:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    print((output / "agreement.md").read_text(encoding="utf-8"))
    console.print(f"student: {result.model_dir}; reward config: {result.snippet}; "
                  f"trained on {result.train_rows} rows in {result.training.seconds:.1f}s")


@app.command()
@friendly_errors
def rejudge(
    config: Annotated[Path, typer.Option("--config", "-c", help="The new reward config to replay through.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for rejudge.json and .md.")],
    journal: Annotated[Path | None, typer.Option(
        help="A journal whose judgments (with inputs) to replay.")] = None,
    judge: Annotated[str | None, typer.Option(help="The journal's judge (when it holds several).")] = None,
    completions: Annotated[Path | None, typer.Option(
        help="A completions.jsonl written by `judgerl train`.")] = None,
    component: Annotated[str | None, typer.Option(
        help="Compare one component of the new reward (default: the total).")] = None,
) -> None:
    """Replay recorded rollouts through another reward config; report agreement and what moved most."""
    from judgerl.distill import rejudge as replay

    if (journal is None) == (completions is None):
        raise typer.BadParameter("give exactly one of --journal and --completions")
    recorded = (replay.recorded_from_journal(journal, judge=judge) if journal is not None
                else replay.recorded_from_completions(completions))  # type: ignore[arg-type]
    report = replay.rejudge(recorded, config, source=str(journal or completions), component=component)
    _, md_path = replay.write_rejudge_report(report, output)
    print(md_path.read_text(encoding="utf-8"))


@app.command()
@friendly_errors
def init(
    folder: Annotated[Path, typer.Argument(help="Folder for the project (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Replace files that already exist.")] = False,
) -> None:
    """Write a starter project: a reward config, rollouts, a validation suite and a recipe."""
    from judgerl.run.starter import FILES, NEXT_COMMANDS, write_starter

    starter = write_starter(folder, force=force)
    for path in starter.files:
        console.print(f"wrote {path}  [dim]{FILES[path.name]}[/]", highlight=False)
    console.print("next, from inside the folder:" if folder == Path(".") else
                  f"next:\n  cd {folder}", highlight=False)
    for command in NEXT_COMMANDS:
        console.print(f"  {command}", highlight=False, markup=False)


@app.command()
@friendly_errors
def demo(
    run_dir: Annotated[Path | None, typer.Option(
        help="Where the demo run goes (default runs/demo; runs/demo-quick with --quick; "
             "runs/demo-fewshot[-quick] with --judge fewshot).")] = None,
    overrides: SetOption = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A few steps and prompts, and a one-epoch student on a quarter of the "
                        "labels, its gate not enforced: checks that everything works in a few "
                        "minutes.")] = False,
    judge: Annotated[str, typer.Option(
        help="student (default): first distil (or reuse from RUN_DIR/student) a 135M judge of 'the "
             "reply addresses the specific thing the customer wrote' from the packaged labelled set, "
             "gate it on held-out scenarios, and reward with it next to the checks. fewshot: the "
             "embedded few-shot tone judge instead (no distillation).")] = "student",
    task: Annotated[str, typer.Option(
        help="support (default): the customer-support demo. contract-review: the CPU-sized contract "
             "review case study (two distilled students; base, SFT, RFT with the checks only and RFT "
             "with the checks + a judge of each contract's planted issues, over --seeds; a table "
             "scored by a judge not trained on; default run dir runs/contract-review).")] = "support",
    seeds: Annotated[int | None, typer.Option(
        help="--task contract-review: how many seeds (0, 1, ...) of RFT (default 3; 1 with "
             "--quick).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="--task contract-review: stages run side by side in this many processes, each "
                    "with its share of the cores (default 2, or 1 on one core).")] = None,
    distil_students: Annotated[bool, typer.Option(
        "--distil-students", help="--task contract-review: train the two students here (about 12 "
                                  "more minutes on 2 cores) instead of merging the ones the package "
                                  "ships trained for the same data and settings.")] = False,
) -> None:
    """Run the whole workflow offline on a shipped task with the embedded local models."""
    from judgerl.run.workflow import DEMO_RECIPE, QUICK_OVERRIDES, Workflow

    if judge not in ("student", "fewshot"):
        raise typer.BadParameter("--judge is student or fewshot")
    if task not in ("support", "contract-review"):
        raise typer.BadParameter("--task is support or contract-review")
    started = time.monotonic()
    if task == "contract-review":
        from judgerl.distill.agreement import DistillGateError
        from judgerl.distill.contract_study import StudySettings, run_contract_study

        study_dir = run_dir or Path("runs/contract-review" + ("-quick" if quick else ""))
        try:
            count = seeds if seeds is not None else (1 if quick else 3)
            settings = StudySettings(seeds=tuple(range(count)), quick=quick, overrides=list(overrides or []))
            if workers is not None:
                settings.workers = workers
            settings.distil_students = distil_students
            run_contract_study(study_dir, settings, console)
        except DistillGateError as exc:
            console.print(f"[bold red]refused:[/] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        console.print(f"[bold green]case study finished in {time.monotonic() - started:.0f} s; table:[/] "
                      f"{study_dir / 'results.md'}", highlight=False)
        return
    suffix = ("-fewshot" if judge == "fewshot" else "") + ("-quick" if quick else "")
    run_dir = run_dir or Path(f"runs/demo{suffix}")
    settings = [f"workflow.run_dir={run_dir.resolve()}", *(QUICK_OVERRIDES if quick else []),
                *(overrides or [])]
    if judge == "student":
        from judgerl.distill.agreement import DistillGateError
        from judgerl.distill.demo_judge import run_student_demo

        try:
            report_path, _ = run_student_demo(run_dir, settings, console=console, quick=quick)
        except DistillGateError as exc:
            console.print(f"[bold red]refused:[/] {exc}", highlight=False)
            raise typer.Exit(1) from exc
    else:
        report_path = Workflow(DEMO_RECIPE, settings, console=console).run()
    elapsed = time.monotonic() - started
    print_results(report_path.parent)
    console.print(f"[bold green]demo finished in {elapsed:.0f} s; report:[/] {report_path}")


@app.command()
@friendly_errors
def plan(
    recipe: Annotated[Path | None, typer.Argument(
        help="Training recipe YAML (steps, batch, rewards).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="A reward config instead of a recipe (give the run's shape).")] = None,
    overrides: SetOption = None,
    data: Annotated[Path | None, typer.Option(help="With --config: the prompts (JSONL).")] = None,
    rollouts: Annotated[Path | None, typer.Option(
        help="A rollout file: its answers (measured lengths) stand in; alone with --config, the plan "
             "of scoring that file.")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="With --config: training steps.")] = None,
    prompts_per_step: Annotated[int | None, typer.Option(
        min=1, help="With --config: prompts a step.")] = None,
    rollouts_per_prompt: Annotated[int | None, typer.Option(
        min=1, help="With --config: answers per prompt.")] = None,
    answer_tokens: Annotated[int | None, typer.Option(
        min=1, help="Stand-in answers' length (default: the recipe's max_new_tokens).")] = None,
    sample: Annotated[int, typer.Option(min=1, help="Training rows whose judge prompts are rendered.")] = 16,
    latency_s: Annotated[list[str] | None, typer.Option(
        "--latency-s", help="Expected latency of one judge call: SECONDS for every backend, or "
                            "BACKEND=SECONDS (repeatable).")] = None,
    probe: Annotated[int, typer.Option(
        min=0, help="Measure the latency with N real calls per backend (they cost money).")] = 0,
    generation_s: Annotated[float | None, typer.Option(
        min=0, help="The policy's generation time per step, to see what bounds the step.")] = None,
    tokenizer: Annotated[list[str] | None, typer.Option(
        help="BACKEND=FOLDER: count that backend's tokens with a transformers tokenizer on disk.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the forecast as JSON only.")] = False,
    save: Annotated[Path | None, typer.Option(
        help="Write the forecast JSON here (a run folder: RUN_DIR/plan.json, which the report "
             "compares with the actual spend).")] = None,
) -> None:
    """Forecast the judge's calls, tokens, cost and time per step before a run.

    See docs/guides/judge-cost.md for the formulas."""
    import json as json_module

    from judgerl.config import load_reward_config
    from judgerl.reward.plan import PlanOptions
    from judgerl.run import plan as planning
    from judgerl.train.recipe import load_recipe

    if (recipe is None) == (config is None):
        raise typer.BadParameter("give a recipe, or --config with the run's shape (or --rollouts)")
    if recipe is not None:
        parts = planning.recipe_parts(load_recipe(recipe, overrides or []), sample=sample, rollouts=rollouts,
                                      answer_tokens=answer_tokens)
    else:
        parts = planning.config_parts(load_reward_config(config, overrides or []), data=data,  # type: ignore[arg-type]
                                      rollouts=rollouts, steps=steps, prompts_per_step=prompts_per_step,
                                      rollouts_per_prompt=rollouts_per_prompt, answer_tokens=answer_tokens,
                                      sample=sample)
    options = PlanOptions(latency_s=_named_values(latency_s, "--latency-s", _seconds),
                          generation_s=generation_s, probe=probe,
                          tokenizers=_named_values(tokenizer, "--tokenizer", str, bare=False))
    result = planning.plan(parts, options)
    if save is not None:
        save = planning.save_plan(result, save / planning.PLAN_FILE if save.is_dir() else save)
    if json_output:
        typer.echo(json_module.dumps(result, indent=2, default=str))
        return
    planning.print_plan(result, console)
    if save is not None:
        console.print(f"forecast saved: {save}", highlight=False)


def _seconds(text: str) -> float:
    """A duration of 0 or more seconds (a ValueError otherwise, for `_named_values`)."""
    value = float(text)
    if not value >= 0:
        raise ValueError(f"{text} is not 0 or more seconds")
    return value


def _named_values(items: list[str] | None, option: str, kind: Any, *, bare: bool = True) -> dict[str, Any]:
    """`NAME=VALUE` items (and a bare `VALUE` for every name, as "*", when `bare`) as a dict."""
    values: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep and not bare:
            raise typer.BadParameter(f"{option} takes BACKEND=VALUE, not {item!r}")
        try:
            values[name if sep else "*"] = kind(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{option}: {item!r} is not BACKEND=NUMBER or NUMBER "
                                     "(a number of 0 or more)") from exc
    return values


def print_results(run_dir: Path) -> None:
    """The run's results table (judgerl.run.report.ResultsTable: the figures the report shows)."""
    from judgerl.run.report import run_results

    results = run_results(run_dir)
    if not results.rows:
        return
    table = Table(title=f"results on the held-out prompts ({run_dir / 'eval'})")
    for index, column in enumerate(results.columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in results.formatted_rows():
        table.add_row(*row)
    if console.is_terminal:
        console.print(table)
    else:  # a log has no width to fit: at its default 80 columns the headers would be cut short
        natural = console.measure(table, options=console.options.update_width(1000)).maximum
        Console(file=console.file, width=max(console.width, natural)).print(table)


def print_summary(summary: Any, output: Path, *, bad_rows: int = 0) -> None:
    table = Table(title=f"rewards -> {output}")
    for column in ("component", "mean", "std", "n"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for row in summary.rows():
        table.add_row(*row)
    console.print(table)
    counts = ", ".join(f"{status}: {count}" for status, count in sorted(summary.status_counts.items()))
    retried = f" ({summary.retried} unscored before, scored again)" if summary.retried else ""
    if summary.redone_dry_run:
        retried += f" ({summary.redone_dry_run} written by a dry run, scored again)"
    console.print(f"scored {summary.total}{retried} ({counts or 'none'}); skipped (final, already in "
                  f"output) {summary.skipped}; bad input rows {bad_rows}"
                  + (f"; not scored (budget) {summary.not_scored}" if summary.not_scored else ""),
                  highlight=False)
    if summary.not_in_input:
        console.print(f"[yellow]note:[/] {output} also holds {summary.not_in_input} rows whose rollout is "
                      "not in this input (kept from an earlier run; another --output, or --no-resume, "
                      "keeps the runs apart)", highlight=False)
    if summary.unscored_reasons:
        reasons = ", ".join(f"{reason} ({count})" for reason, count in
                            sorted(summary.unscored_reasons.items(), key=lambda item: -item[1]))
        console.print(f"unscored by reason: {reasons}; a rerun scores unscored rows again "
                      "(--keep-unscored keeps them)", highlight=False)
    stats = summary.runtime
    if stats:
        console.print(" · ".join(f"{key}: {_fmt(value)}" for key, value in stats.items()
                                 if not isinstance(value, dict)), highlight=False)
        spend = Table(title="judge spend")
        for column in ("calls sent", "cache hits", "prompt tokens", "completion tokens", "USD", "budget"):
            spend.add_column(column, justify="right")
        budgets = [f"${stats['budget_usd']:g}" if stats.get("budget_usd") is not None else "",
                   f"{stats['budget_tokens']} tok" if stats.get("budget_tokens") is not None else ""]
        spend.add_row(str(stats.get("attempts", 0)), str(stats.get("cache_hits", 0)),
                      str(stats.get("prompt_tokens", 0)), str(stats.get("completion_tokens", 0)),
                      f"{stats.get('cost_usd', 0.0):.4f}", " + ".join(b for b in budgets if b) or "none")
        console.print(spend)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
