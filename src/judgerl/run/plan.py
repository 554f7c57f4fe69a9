"""`judgerl plan`: what the judge will cost and how long it will make each step, before the run.

Why in the run layer: a forecast is for a run as a whole. This module turns a recipe (its steps,
prompts per step, rollouts per prompt, answer length, training reward and held-out reward), or a
reward config with the run's shape given on the command line, or a rollout file, into the
`PlanPart`s that `judgerl.reward.plan.forecast` renders and counts; it prints the forecast as
tables, saves it as JSON (a run's `RUN_DIR/plan.json` is what the report compares the actual
spend with), and reads the actual spend of a run back (`actual_spend`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from judgerl.config import RewardConfig
from judgerl.data import load_rollouts_strict, load_samples_strict
from judgerl.errors import ConfigError
from judgerl.reward.plan import (
    ESTIMATE,
    PlanOptions,
    PlanPart,
    TokenCounter,
    forecast,
    stand_in_answers,
    structured_reference,
)
from judgerl.train.recipe import Recipe
from judgerl.train.splits import load_split
from judgerl.types import Rollout, Sample, rollout_id

#: the forecast a run's report compares the actual spend with
PLAN_FILE = "plan.json"
DEFAULT_SAMPLE = 16


def pick(rows: Sequence[Any], count: int) -> list[Any]:
    """`count` rows spread evenly over `rows` (all of them when there are no more).

    >>> pick(list(range(10)), 3)
    [0, 3, 6]
    """
    if count <= 0 or count >= len(rows):
        return list(rows)
    return [rows[index * len(rows) // count] for index in range(count)]


def policy_counter(recipe: Recipe) -> TokenCounter:
    """Stand-in answers are cut to `max_new_tokens` of the policy's own tokenizer when it is on disk."""
    from judgerl.models.packaged import resolve_model
    from judgerl.reward.plan import _load_tokenizer

    name = recipe.model.name_or_path
    try:
        folder = resolve_model(recipe.path(name) if recipe.path(name).exists() else name)
        return TokenCounter(f"tokenizer of {name}", tokenizer=_load_tokenizer(str(folder)))
    except ConfigError:
        return TokenCounter(ESTIMATE)


def _measured_answers(path: Path) -> list[Rollout]:
    return [rollout for _, rollout in load_rollouts_strict(path)]


def _groups(samples: Sequence[Sample], count: int, tokens: int, counter: TokenCounter,
            answers: list[Rollout] | None) -> list[tuple[Sample, list[Rollout]]]:
    """Each sample with `count` answers: stand-ins of `tokens` tokens, or measured answers in turn."""
    groups = []
    for index, sample in enumerate(samples):
        if answers:
            rollouts = [Rollout(sample_id=sample.id, id=rollout_id(sample.id, n),
                                completion=answers[(index * count + n) % len(answers)].completion)
                        for n in range(count)]
        else:
            rollouts = stand_in_answers(sample, count, tokens, counter)
        groups.append((sample, rollouts))
    return groups


def recipe_parts(recipe: Recipe, *, sample: int = DEFAULT_SAMPLE, rollouts: Path | None = None,
                 answer_tokens: int | None = None) -> list[PlanPart]:
    """The training reward (every generation: global_batch_size / number_generation prompts x
    number_generation answers) and the held-out reward (every generation: held_out_sample answers).

    TRL generates (and so judges) once every `trainer.num_iterations` optimizer steps: the steps
    judged are ⌈max_steps / num_iterations⌉."""
    samples = load_split(recipe, "train")
    judged_steps = -(-recipe.trainer.max_steps // recipe.trainer.num_iterations)
    picked = pick(samples, sample)
    k = recipe.rollout.number_generation
    tokens = answer_tokens or recipe.rollout.max_new_tokens
    counter = policy_counter(recipe)
    answers = _measured_answers(rollouts) if rollouts is not None else None
    length_from = "max_new_tokens" if answer_tokens is None else "--answer-tokens"
    structured = sum(structured_reference(sample) is not None for sample in picked)
    label = (f"answers from {rollouts}" if answers else
             f"stand-ins of {tokens} tokens ({length_from}, counted by the policy's "
             f"{'tokenizer' if counter.exact else 'estimate'})"
             + (f"; {structured} rows' JSON references stand in, marked apart" if structured else ""))
    groups = _groups(picked, k, tokens, counter, answers)
    parts = [PlanPart("training reward", recipe.training_reward_config(), groups,
                      groups_per_step=recipe.trainer.global_batch_size / k, steps=judged_steps,
                      rows_total=len(samples), answers=label)]
    held_out = recipe.held_out_reward_config()
    if held_out is not None:
        per_step = min(recipe.monitors.held_out_sample, recipe.trainer.global_batch_size)
        parts.append(PlanPart("held-out reward", held_out, _groups(picked, 1, tokens, counter, answers),
                              groups_per_step=per_step, steps=judged_steps,
                              rows_total=len(samples), answers=label))
    return parts


def config_parts(config: RewardConfig, *, data: Path | None = None, rollouts: Path | None = None,
                 steps: int | None = None, prompts_per_step: int | None = None,
                 rollouts_per_prompt: int | None = None, answer_tokens: int | None = None,
                 sample: int = DEFAULT_SAMPLE) -> list[PlanPart]:
    """A reward config with the run's shape, or a rollout file alone (`judgerl score` of it: every
    row, through the whole pipeline, checks and gates included)."""
    shape = (steps, prompts_per_step, rollouts_per_prompt)
    if rollouts is not None and data is None and all(value is None for value in shape):
        pairs = load_rollouts_strict(rollouts)
        grouped: OrderedDict[str, tuple[Sample, list[Rollout]]] = OrderedDict()
        for sample_row, rollout in pairs:
            grouped.setdefault(sample_row.id, (sample_row, []))[1].append(rollout)
        groups = list(grouped.values())
        return [PlanPart(f"scoring {rollouts.name}", config, groups, groups_per_step=len(groups), steps=1,
                         rows_total=len(groups), run_checks=True, answers=f"the answers of {rollouts}")]
    missing = [flag for flag, value in zip(("--steps", "--prompts-per-step", "--rollouts-per-prompt"), shape,
                                           strict=True) if value is None]
    if missing:
        raise ConfigError(f"a reward config needs the run's shape: give {', '.join(missing)} (or a recipe, "
                          "or --rollouts alone to plan scoring that file)", field=missing[0].lstrip("-"))
    if data is None and rollouts is None:
        raise ConfigError("give the prompts to plan on: --data FILE (or --rollouts FILE)", field="data")
    if data is not None:
        samples = load_samples_strict(data)
    else:
        samples = list(OrderedDict((s.id, s) for s, _ in load_rollouts_strict(rollouts)).values())  # type: ignore[arg-type]
    answers = _measured_answers(rollouts) if rollouts is not None else None
    if answers is None and answer_tokens is None:
        raise ConfigError("give the answers' expected length: --answer-tokens N (or --rollouts FILE to "
                          "measure it)", field="answer-tokens")
    counter = TokenCounter(ESTIMATE)
    label = f"answers from {rollouts}" if answers else f"stand-ins of about {answer_tokens} tokens (estimate)"
    groups = _groups(pick(samples, sample), rollouts_per_prompt or 1, answer_tokens or 0, counter, answers)
    return [PlanPart("reward", config, groups, groups_per_step=prompts_per_step or 1, steps=steps or 1,
                     rows_total=len(samples), answers=label)]


def plan(parts: Sequence[PlanPart], options: PlanOptions | None = None) -> dict[str, Any]:
    """The forecast (see `judgerl.reward.plan.forecast`), with the parts' shapes."""
    return forecast(parts, options)


def save_plan(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# printing


def _n(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.{digits}f}"
    return f"{int(value):,}"


def _usd(value: Any) -> str:
    return "no price" if value is None else f"${value:,.4f}" if value < 100 else f"${value:,.2f}"


def print_plan(result: dict[str, Any], console: Console) -> None:
    """The forecast as three tables (judges, backends, run) and its notes."""
    for part in result["parts"]:
        console.print(f"[bold]{part['name']}[/] ({part['config']}): {part['steps']} steps x "
                      f"{_n(part['rollouts_per_step'])} rollouts a step; {part['rows_sampled']} of "
                      f"{part['rows_total']} rows rendered; {part['answers']}"
                      + ("; checks and gates run" if part["checks_run"] else ""), highlight=False)
    several = len(result["parts"]) > 1
    judges = Table(title="judge calls, tokens and cost (whole run)")
    for column in ("judge", "backend", "calls/rollout", "calls/step", "calls", "cached", "prompt tok",
                   "completion tok", "USD"):
        judges.add_column(column, justify="left" if column in ("judge", "backend") else "right")
    for row in result["judges"]:
        judges.add_row(f"{row['part']}: {row['judge']}" if several else row["judge"], row["backend"],
                       _n(row["calls_per_rollout"], 2), _n(row["calls_per_step"]), _n(row["calls"], 0),
                       _n(row["cached_calls"], 0), _n(row["prompt_tokens"]), _n(row["completion_tokens"]),
                       _usd(row["usd"]))
    total = result["total"]
    judges.add_row("[bold]total[/]", "", "", _n(total["calls_per_step"]), _n(total["calls"], 0),
                   _n(total["cached_calls"], 0), _n(total["prompt_tokens"]), _n(total["completion_tokens"]),
                   _usd(total["usd"]) if total["usd"] is not None or total["usd_priced_part"] is None
                   else f"≥ {_usd(total['usd_priced_part'])}",
                   end_section=True)
    console.print(judges)
    counted = dict.fromkeys(f"{row['backend']} ({row['model']}): {row['tokens_counted_by']}"
                            for row in result["judges"])
    console.print("tokens counted by: " + "; ".join(counted), highlight=False)
    backends = Table(title="judging time per step")
    for column in ("backend", "concurrency", "rpm", "tpm", "latency s", "calls/step", "tokens/step",
                   "judging s", "bound by"):
        backends.add_column(column, justify="left" if column in ("backend", "bound by") else "right")
    for row in result["backends"]:
        latency = "-" if row["latency_s"] is None else f"{row['latency_s']:g}"
        if row["latency_from"] == "probe":
            latency += " (probe)"
        judging = _n(row["judging_s_per_step"], 2)
        if row["judging_s_per_step"] is not None and not row["complete"]:
            judging = f"≥ {judging}"
        backends.add_row(f"{row['part']}: {row['backend']}" if several else row["backend"],
                         str(row["max_concurrency"]), _n(row["rpm"]),
                         _n(row["tpm"]), latency, _n(row["sent_calls_per_step"]), _n(row["tokens_per_step"]),
                         judging, row["bound_by"] or "-")
    console.print(backends)
    console.print(_step_line(total), highlight=False)
    budget = result.get("budget")
    if budget and "fits" in budget:
        limit = ", ".join(item for item in (
            f"${budget['budget_usd']:g}" if budget.get("budget_usd") is not None else "",
            f"{budget['budget_tokens']:,} tokens" if budget.get("budget_tokens") is not None else "") if item)
        console.print(f"budget {limit}: " + ("the forecast fits" if budget["fits"] else
                      f"[bold red]the run would stop after step {budget['last_step_within_budget']}[/]"),
                      highlight=False)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


def _step_line(total: dict[str, Any]) -> str:
    judging = total.get("judging_s_per_step")
    if judging is None and total.get("judging_at_least_s_per_step") is None:
        return ("judging time per step: unknown (give --latency-s SECONDS, or --probe N to measure it with "
                "N real calls)")
    if judging is None:
        return (f"judging time per step: at least {total['judging_at_least_s_per_step']:.2f} s from the rate "
                "limits (give --latency-s or --probe N for the rest)")
    line = f"judging time per step: {judging:.2f} s"
    if total.get("bound_by"):
        share = total["judging_share"]  # None for a step of 0 s (every call cached, no generation)
        line += (f"; generation {total['generation_s_per_step']:g} s: the step takes about "
                 f"{total['step_s']:.2f} s and is bound by {total['bound_by']} (judging "
                 f"{'none' if share is None else format(share, '.0%')} of it); the run about "
                 f"{duration(total['run_s'])}")
    else:
        line += (f"; {duration(total['judging_run_s'])} of judging over the run (give --generation-s to "
                 "compare with generation)")
    return line


def duration(seconds: float) -> str:
    """
    >>> duration(42), duration(5400), duration(200000)
    ('42 s', '1.5 h', '2.3 d')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} d"


# ---------------------------------------------------------------------------------------------
# forecast vs actual


def actual_spend(metrics: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """What a training run's judge spent, from its `metrics.jsonl` rows (`judge/*`, logged per step).

    A row logged every n steps holds the mean of those steps (TRL averages a logged metric over
    the interval), so it counts n times."""
    rows = sorted((row for row in metrics if isinstance(row.get("step"), (int, float))),
                  key=lambda row: row["step"])
    if not any("judge/calls" in row for row in rows):
        return None
    totals = {"calls": 0.0, "backend_calls": 0.0, "cache_hits": 0.0, "prompt_tokens": 0.0,
              "completion_tokens": 0.0, "total_tokens": 0.0, "cost_usd": 0.0}
    previous = 0
    for row in rows:
        weight = max(1, int(row["step"]) - previous)
        previous = int(row["step"])
        for key in totals:
            value = row.get(f"judge/{key}")
            if isinstance(value, (int, float)):
                totals[key] += value * weight
    totals["steps"] = previous
    return totals


def forecast_vs_actual(plan_result: dict[str, Any], actual: dict[str, float] | None) -> list[list[Any]]:
    """Rows (figure, forecast, actual, error) for the report: the training reward's forecast (the
    metrics log that judge's use), scaled to the steps run."""
    if actual is None:
        return []
    total = plan_result.get("total", {})
    parts = plan_result.get("parts", [])
    first = parts[0].get("name") if parts else None
    judges = [row for row in plan_result.get("judges", []) if first is not None and row.get("part") == first]
    if judges:  # the metrics hold the training reward's judge use only: compare that part alone
        priced = all(row.get("usd") is not None for row in judges)
        total = {"calls": sum(row["calls"] for row in judges),
                 "prompt_tokens": sum(row["prompt_tokens"] for row in judges),
                 "completion_tokens": sum(row["completion_tokens"] for row in judges),
                 "usd": sum(row["usd"] for row in judges) if priced else None}
    planned_steps = parts[0].get("steps", 0) if parts else 0
    scale = actual["steps"] / planned_steps if planned_steps else 1.0
    rows = []
    for label, forecast_key, actual_key in (("calls", "calls", "calls"),
                                            ("prompt tokens", "prompt_tokens", "prompt_tokens"),
                                            ("completion tokens", "completion_tokens", "completion_tokens"),
                                            ("USD", "usd", "cost_usd")):
        value = total.get(forecast_key)
        expected = None if value is None else value * scale
        real = actual.get(actual_key)
        error = None if not expected or real is None else (real - expected) / expected
        rows.append([label, expected, real, error])
    return rows
