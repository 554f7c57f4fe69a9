"""`judgerl report RUN_DIR`: one self-contained HTML page that says whether training helped.

Why: the decision after an RFT run ("deploy or not") needs, at a glance, schema validity and
judge scores per model (base vs SFT vs RFT), whether the gain holds under a held-out judge, the
reward curve and what the judge cost, whether the judge passed validation, and real answers with
the judge's reasons. This module reads whatever parts of the run directory exist (see the layout
in run/folder.py) and skips the rest:

    eval/<label>/summary.json, samples.jsonl    tables, bar charts, best and worst answers
    rft/metrics.jsonl (sft/metrics.jsonl)       curves: any numeric key per step is plotted
    validation/report.json                      pass/fail per section, figures vs thresholds
    export/ (README.md)                         links to the exported model and its card
    stages.json                                 which stages finished
    plan.json                                   `judgerl plan`'s forecast, compared with the spend

Plots are PNGs drawn with matplotlib's Agg canvas (no display, no pyplot state), saved under
RUN_DIR/plots/ and embedded as base64 data URIs, so report.html opens offline, alone, with no
script, stylesheet or font from anywhere. Every text from the run (answers, rationales,
prompts, labels) is HTML-escaped: a completion is data, never markup. The page and each of its
sections are Jinja2 templates (`judgerl/run/templates/`) with autoescape on; this module reads
the run, draws the plots and hands the templates plain values.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup

from judgerl.errors import JudgerlError
from judgerl.run.folder import RunFolder, read_objects, read_run_folder
from judgerl.run.plan import PLAN_FILE, actual_spend, forecast_vs_actual

log = logging.getLogger(__name__)

MAX_SAMPLES_SHOWN = 3  # best and worst answers per model
#: the page's table of contents: (anchor, title)
NAV = (("evaluation", "Evaluation"), ("training", "Training"), ("judge-cost", "Judge cost"),
       ("validation", "Judge validation"), ("samples", "Samples"))
MAX_TEXT = 2000  # characters of an answer or rationale shown
MAX_EXTRA_CURVES = 16
REWARD_KEYS = ("reward_mean", "reward", "rewards/judgerl/mean", "train/reward")
REWARD_STD_KEYS = ("reward_std", "rewards/judgerl/std", "train/reward_std")
UNSCORED_KEYS = ("unscored_share", "reward/unscored_frac", "unscored_frac", "unscored")
COST_KEYS = ("cost", "cost_usd", "judge/cost_usd", "judge_cost_usd")
TOKEN_KEYS = ("judge/total_tokens", "judge_tokens", "tokens")
HELDOUT_KEYS = ("held_out_mean", "heldout_mean", "heldout/reward_mean")
NOT_CURVES = {"step", "time", "epoch", "global_step"}
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]


# -- reading the run ---------------------------------------------------------------------------


@dataclass
class RunData:
    """Everything the report shows; each part is empty when its stage did not run."""

    run_dir: Path
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    sft_metrics: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    validation_path: Path | None = None
    stages: dict[str, Any] = field(default_factory=dict)
    export_dir: Path | None = None
    model_card: Path | None = None
    plan: dict[str, Any] | None = None  # RUN_DIR/plan.json: `judgerl plan`'s forecast, when saved
    #: the training reward's judges (their components are headed "judge: <name>")
    judges: tuple[str, ...] = ()


def load_run(run_dir: str | os.PathLike[str]) -> RunData:
    folder = read_run_folder(run_dir)
    run = folder.run_dir
    data = RunData(run_dir=run, summaries=folder.summaries, validation=folder.validation,
                   validation_path=folder.validation_path, stages=folder.stages,
                   export_dir=folder.export_dir, model_card=folder.model_card,
                   judges=judge_names(folder))
    for label in data.summaries:
        data.samples[label] = read_objects(run / "eval" / label / "samples.jsonl")
    data.metrics = read_objects(run / "rft" / "metrics.jsonl")
    data.sft_metrics = read_objects(run / "sft" / "metrics.jsonl")
    plan_path = run / PLAN_FILE
    if plan_path.is_file():
        try:
            data.plan = json.loads(plan_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read: %s", plan_path, exc)
    return data


def judge_names(folder: RunFolder) -> tuple[str, ...]:
    """The judges of the run's training reward (from RUN_DIR/recipe.yaml), to tell judge components
    from checks; none when the run folder has no valid recipe or its reward config is gone."""
    if folder.recipe is None:
        return ()
    try:
        return tuple(judge.name for judge in folder.recipe.training_reward_config().judges)
    except JudgerlError as exc:
        log.warning("results table: the run's reward config could not be read (%s); components "
                    "are shown without telling judges from checks", exc)
        return ()


# -- the results table -------------------------------------------------------------------------


@dataclass
class ResultsTable:
    """The run's results in one table, one row per evaluated model (base, sft, rft first):
    training reward (mean), best-of-k, held-out judge (mean), then the mean of each reward
    component (a judge's component headed "judge: <name>"). Every figure is read from the
    evaluation's summary.json, nothing is recomputed; the report's page shows this table and
    `judgerl run` / `judgerl demo` print it, both through `formatted_rows`."""

    columns: list[str]
    rows: list[list[Any]]  # the label, then figures (None where the evaluation has none)

    def formatted_rows(self) -> list[list[str]]:
        """Each figure as the report prints it (3 decimals, "–" when missing)."""
        return [[str(row[0]), *(num(value) for value in row[1:])] for row in self.rows]


def results_table(summaries: dict[str, dict[str, Any]], judges: Iterable[str] = ()) -> ResultsTable:
    """The results table of these evaluation summaries (label -> summary.json).

    >>> table = results_table({"base": {"k": 4, "reward_mean": 0.5, "best_of_k": 0.75,
    ...                                 "heldout": {"reward_mean": 0.6},
    ...                                 "components": {"length": 1.0, "tone": 0.25}}}, judges=["tone"])
    >>> table.columns
    ['model', 'training reward (mean)', 'best-of-4', 'held-out judge (mean)', 'length', 'judge: tone']
    >>> table.formatted_rows()
    [['base', '0.500', '0.750', '0.600', '1.000', '0.250']]
    """
    judges = set(judges)
    ks = {s.get("k") for s in summaries.values()}
    best = f"best-of-{next(iter(ks))}" if len(ks) == 1 and None not in ks else "best-of-k"
    components = list(dict.fromkeys(name for s in summaries.values() for name in s.get("components") or {}))
    columns = ["model", "training reward (mean)", best, "held-out judge (mean)",
               *(f"judge: {name}" if name in judges else name for name in components)]
    rows = [[label, s.get("reward_mean"), s.get("best_of_k"), _heldout(s, "reward_mean"),
             *((s.get("components") or {}).get(name) for name in components)]
            for label, s in summaries.items()]
    return ResultsTable(columns, rows)


def run_results(run_dir: str | os.PathLike[str]) -> ResultsTable:
    """The results table of a run folder (empty rows when nothing was evaluated yet)."""
    folder = read_run_folder(run_dir)
    return results_table(folder.summaries, judge_names(folder))


# -- metrics parsing ---------------------------------------------------------------------------


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a metrics row, nested keys joined with '/'.

    >>> flatten({"step": 1, "reward_mean": 0.5, "components": {"schema": 1}, "note": "x", "ok": True})
    {'step': 1.0, 'reward_mean': 0.5, 'components/schema': 1.0}
    """
    flat: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


def series(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """{key: [(step, value), ...]} for every numeric key; the step is `step` or the row number.

    A step logged twice (a resumed run) keeps its last value.
    """
    found: dict[str, dict[float, float]] = {}
    for number, row in enumerate(rows, start=1):
        flat = flatten(row)
        step = flat.get("step", float(number))
        for key, value in flat.items():
            if key not in NOT_CURVES:
                found.setdefault(key, {})[step] = value
    return {key: sorted(points.items()) for key, points in found.items()}


def _first(curves: dict[str, Any], keys: Iterable[str]) -> str | None:
    return next((key for key in keys if key in curves), None)


def component_curves(curves: dict[str, Any]) -> dict[str, str]:
    """{component name: key} for per-component means: components/<name> or reward/<name>[/mean].

    >>> component_curves({"components/schema": [], "reward/quality/mean": [], "reward/quality/std": [],
    ...                   "reward/unscored_frac": [], "loss": []})
    {'schema': 'components/schema', 'quality': 'reward/quality/mean'}
    """
    found: dict[str, str] = {}
    for key in curves:
        match = re.fullmatch(r"(?:components|reward)/(.+?)(?:/mean)?", key)
        if not match or key.endswith("/std"):
            continue
        name = match.group(1)
        if name in {"unscored_frac", "gated_frac", "unscored_share", "gated_share"} or "/" in name:
            continue
        found.setdefault(name, key)
    return found


# -- plots -------------------------------------------------------------------------------------


@dataclass
class Plot:
    """A drawn PNG: saved under RUN_DIR/plots/ and embedded in the page (templates/macros.html)."""

    name: str  # file name under plots/
    caption: str
    png: bytes

    @property
    def base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")


def _figure(width: float = 7.5, height: float = 3.6) -> Any:
    # A bare Figure renders with the Agg canvas: no pyplot, no display, no global state.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _integer_steps(*axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def _bar_labels(axis: Any, bars: Any, digits: int = 2, fontsize: int = 8) -> None:
    for bar in bars:
        height = bar.get_height()
        if not math.isnan(height):
            axis.annotate(
                f"{height:.{digits}f}",
                (bar.get_x() + bar.get_width() / 2, height),
                ha="center",
                va="bottom",
                fontsize=fontsize,
                xytext=(0, 2),
                textcoords="offset points",
            )


def bar_plot(
    name: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    ylabel: str,
    unit_range: bool = True,
) -> Plot | None:
    """One bar per model; a missing value is left out (shown as 'n/a')."""
    if not any(value is not None for value in values):
        return None
    figure = _figure(max(4.0, 1.2 * len(labels) + 2), 3.4)
    axis = figure.add_subplot()
    heights = [math.nan if value is None else value for value in values]
    bars = axis.bar(
        labels,
        [0 if math.isnan(h) else h for h in heights],
        color=[COLORS[index % len(COLORS)] for index in range(len(labels))],
    )
    missing = [bar for bar, height in zip(bars, heights, strict=True) if math.isnan(height)]
    for bar in missing:
        axis.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom", fontsize=8)
    _bar_labels(axis, [bar for bar in bars if bar not in missing], digits=3, fontsize=9)
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    if unit_range:
        axis.set_ylim(0, 1.08)
    axis.grid(axis="y", alpha=0.3)
    return Plot(name, title, _png(figure))


def grouped_plot(
    name: str,
    title: str,
    groups: Sequence[str],
    series_values: dict[str, Sequence[float | None]],
    *,
    ylabel: str = "mean score (0-1)",
) -> Plot | None:
    """Bars grouped by `groups` (x axis), one colour per series (a model or a figure)."""
    if not groups or not any(v is not None for values in series_values.values() for v in values):
        return None
    count = max(1, len(series_values))
    width = 0.8 / count
    figure = _figure(max(5.0, 0.9 * len(groups) * max(1, count / 2) + 2.5), 3.8)
    axis = figure.add_subplot()
    for index, (label, values) in enumerate(series_values.items()):
        positions = [group + (index - (count - 1) / 2) * width for group in range(len(groups))]
        heights = [math.nan if value is None else value for value in values]
        bars = axis.bar(
            positions, heights, width=width * 0.95, label=label, color=COLORS[index % len(COLORS)]
        )
        if len(groups) * count <= 24:
            _bar_labels(axis, bars)
    axis.set_xticks(
        range(len(groups)),
        groups,
        rotation=20 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
    )
    axis.set_ylim(0, 1.12)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, ncols=min(4, count), loc="upper left")
    return Plot(name, title, _png(figure))


def reward_curve_plot(curves: dict[str, list[tuple[float, float]]]) -> Plot | None:
    reward_key = _first(curves, REWARD_KEYS)
    components = component_curves(curves)
    if reward_key is None and not components:
        return None
    figure = _figure(8.0, 3.8)
    left, right = figure.subplots(1, 2)
    if reward_key is not None:
        steps, values = zip(*curves[reward_key], strict=True)
        left.plot(
            steps,
            values,
            marker="o",
            markersize=3,
            color=COLORS[0],
            label="reward" if reward_key in ("reward", "reward_mean") else f"reward ({reward_key})",
        )
        std_key = _first(curves, REWARD_STD_KEYS)
        if std_key is not None:
            spread = dict(curves[std_key])
            lower = [value - spread.get(step, 0.0) for step, value in curves[reward_key]]
            upper = [value + spread.get(step, 0.0) for step, value in curves[reward_key]]
            left.fill_between(steps, lower, upper, alpha=0.2, color=COLORS[0], label="± std")
        heldout_key = _first(curves, HELDOUT_KEYS)
        if heldout_key is not None:
            held_steps, held_values = zip(*curves[heldout_key], strict=True)
            left.plot(
                held_steps, held_values, marker="s", markersize=3, color=COLORS[1], label="held-out judge"
            )
        left.legend(fontsize=8)
    left.set_title("Reward per step")
    left.set_xlabel("step")
    left.grid(alpha=0.3)
    for index, (component, key) in enumerate(components.items()):
        steps, values = zip(*curves[key], strict=True)
        right.plot(
            steps, values, marker="o", markersize=3, label=component, color=COLORS[index % len(COLORS)]
        )
    right.set_title("Components per step (mean)")
    right.set_xlabel("step")
    _integer_steps(left, right)
    right.grid(alpha=0.3)
    if components:
        right.legend(fontsize=8)
    return Plot("reward_curve.png", "Reward and components over training steps", _png(figure))


def unscored_cost_plot(curves: dict[str, list[tuple[float, float]]]) -> Plot | None:
    unscored_key = _first(curves, UNSCORED_KEYS)
    cost_key = _first(curves, COST_KEYS)
    if cost_key is not None and not any(value for _, value in curves[cost_key]):
        cost_key = None  # no price table: all zero; tokens say more
    spend_key = cost_key or _first(curves, TOKEN_KEYS)
    if unscored_key is None and spend_key is None:
        return None
    figure = _figure(8.0, 3.2)
    left, right = figure.subplots(1, 2)
    for axis, key, title, color in (
        (left, unscored_key, "Unscored share per step", COLORS[3]),
        (right, spend_key, "Judge cost per step (USD)" if cost_key else "Judge tokens per step", COLORS[2]),
    ):
        axis.grid(alpha=0.3)
        axis.set_xlabel("step")
        if key is None:
            axis.text(
                0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="gray"
            )
            axis.set_title(title)
            continue
        steps, values = zip(*curves[key], strict=True)
        axis.plot(steps, values, marker="o", markersize=3, color=color)
        axis.set_title(title)
    left.set_ylim(bottom=0)
    _integer_steps(left, right)
    return Plot("unscored_cost.png", "Unscored share and judge cost (or tokens) per step", _png(figure))


def extra_curves_plot(
    curves: dict[str, list[tuple[float, float]]], used: set[str], name: str, title: str
) -> Plot | None:
    """Small multiples of every other numeric key (loss, KL, length, hacking signals, ...)."""
    keys = [key for key in curves if key not in used and len(curves[key]) > 0][:MAX_EXTRA_CURVES]
    if not keys:
        return None
    columns = min(4, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = _figure(2.4 * columns + 1, 2.0 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, key in enumerate(keys):
        axis = axes[index // columns][index % columns]
        steps, values = zip(*curves[key], strict=True)
        axis.plot(steps, values, marker="o", markersize=2, color=COLORS[index % len(COLORS)])
        axis.set_title(key if len(key) <= 28 else "…" + key[-27:], fontsize=8)
        axis.tick_params(labelsize=7)
        _integer_steps(axis)
        axis.grid(alpha=0.3)
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(title, fontsize=10)
    return Plot(name, title, _png(figure))


def validation_plot(report: dict[str, Any]) -> Plot | None:
    """Per section: each figure as a bar, its threshold as a tick, red when it failed."""
    sections = [section for section in validation_sections(report) if section["figures"]]
    if not sections:
        return None
    total = sum(len(section["figures"]) for section in sections)
    figure = _figure(8.0, 0.32 * total + 0.7 * len(sections) + 0.6)
    axes = figure.subplots(
        len(sections), 1, squeeze=False, height_ratios=[len(s["figures"]) + 1 for s in sections]
    )
    for axis, section in zip((row[0] for row in axes), sections, strict=True):
        names = list(section["figures"])
        values = [section["figures"][name] for name in names]
        colors = [
            "#c44e52"
            if name in section["failed"]
            else "#55a868"
            if name in section["thresholds"]
            else "#8c8c8c"
            for name in names
        ]
        positions = list(range(len(names)))
        axis.barh(positions, [0 if value is None else value for value in values], color=colors)
        for position, name in zip(positions, names, strict=True):
            threshold = section["thresholds"].get(name)
            if threshold is not None:
                axis.plot(
                    [threshold["bound"]] * 2, [position - 0.4, position + 0.4], color="black", linewidth=2
                )
            interval = section["intervals"].get(name)
            if interval:
                axis.plot(interval, [position, position], color="black", linewidth=1)
        axis.set_yticks(positions, names, fontsize=8)
        axis.invert_yaxis()
        axis.set_title(f"{section['name']}: {section['status']}", fontsize=9, loc="left")
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(axis="x", alpha=0.3)
    figure.suptitle(
        "Judge validation (bar: figure, black tick: threshold, line: 95% CI; red: failed)", fontsize=9
    )
    return Plot("validation.png", "Judge validation figures against their thresholds", _png(figure))


# -- validation report (read generically) --------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def validation_sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Normalised sections: name, status, figures, intervals, thresholds, failed figures.

    Accepts `sections` as a list of dicts with `name` or a mapping name -> section; figures come
    from `figures` (or `metrics`), else from the section's own numeric keys.
    """
    raw = report.get("sections", {})
    items = (
        list(raw.items())
        if isinstance(raw, dict)
        else [
            (str(section.get("name", f"section {index + 1}")), section)
            for index, section in enumerate(raw)
            if isinstance(section, dict)
        ]
    )
    sections = []
    for name, section in items:
        if not isinstance(section, dict):
            continue
        source = section.get("figures", section.get("metrics"))
        if not isinstance(source, dict):
            source = {
                key: value
                for key, value in section.items()
                if _number(value) is not None and key not in {"seconds", "threshold"}
            }
        figures = {
            str(key): _number(value)
            for key, value in source.items()
            if _number(value) is not None or value is None
        }
        intervals = {}
        for key, value in (section.get("intervals") or {}).items():
            if isinstance(value, (list, tuple)) and len(value) == 2:
                low, high = _number(value[0]), _number(value[1])
                if low is not None and high is not None:
                    intervals[str(key)] = [low, high]
        thresholds = {
            str(item["figure"]): item
            for item in section.get("thresholds") or []
            if isinstance(item, dict) and "figure" in item and _number(item.get("bound")) is not None
        }
        failed = {str(item.get("figure")) for item in section.get("failures") or [] if isinstance(item, dict)}
        passed = section.get("passed", section.get("pass", section.get("ok")))
        status = (
            "skipped"
            if section.get("skipped")
            else "passed"
            if passed is True
            else "FAILED"
            if passed is False
            else "no verdict"
        )
        sections.append(
            {
                "name": str(name),
                "status": status,
                "figures": figures,
                "intervals": intervals,
                "thresholds": thresholds,
                "failed": failed,
                "skipped": section.get("skipped"),
                "counts": section.get("counts") if isinstance(section.get("counts"), dict) else {},
                "notes": [str(note) for note in section.get("notes") or []],
            }
        )
    return sections


# -- html --------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included).

    >>> esc('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    return html.escape(str(value), quote=True)


def num(value: Any, digits: int = 3) -> str:
    """A figure for a table cell.

    >>> num(0.12345), num(None), num(12), num(0.000123)
    ('0.123', '–', '12', '0.000123')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.3g}"
    return esc(value)


def _clip(text: Any) -> str:
    text = "" if text is None else str(text)
    return (
        text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n… ({len(text) - MAX_TEXT} more characters)"
    )


# -- sections ------------------------------------------------------------------------------------


def _heldout(summary: dict[str, Any], key: str) -> Any:
    return (summary.get("heldout") or {}).get(key)


def _judge(summary: dict[str, Any], key: str) -> Any:
    return (summary.get("judge") or {}).get(key)


def evaluation_section(data: RunData, plots: list[Plot]) -> str:
    """The evaluation: the overview table and plots, per-component and per-criterion scores,
    best-of-k, the held-out judge and the judge's use (templates/evaluation.html)."""
    summaries = data.summaries
    if not summaries:
        return render_template("evaluation.html", overview=[])
    overview_plots = _overview_plots(summaries)
    breakdowns = [part for part in (
        _score_breakdown(summaries, key="components", column="component", title="Per-component scores",
                         plot_title="Per-component scores per model"),
        _score_breakdown(summaries, key="criteria", column="criterion", title="Per-criterion judge scores",
                         plot_title="Per-criterion judge scores per model"),
    ) if part is not None]
    plots += [*overview_plots, *(part["plot"] for part in breakdowns)]
    return render_template(
        "evaluation.html", labels=list(summaries), results=results_table(summaries, data.judges),
        overview=_overview_rows(summaries),
        overview_plots=overview_plots, breakdowns=breakdowns, best_of_k=_best_of_k_rows(summaries),
        heldout=_heldout_rows(summaries), judge_use=_judge_use_rows(summaries),
    )


Rows = list[list[Any]]


def _overview_rows(summaries: dict[str, dict[str, Any]]) -> Rows:
    return [
        [label, s.get("model", ""), s.get("k"), s.get("prompts"), s.get("samples"), s.get("reward_mean"),
         s.get("schema_validity"), _heldout(s, "reward_mean"), s.get("unscored_share"),
         s.get("completion_tokens_mean")]
        for label, s in summaries.items()
    ]


def _overview_plots(summaries: dict[str, dict[str, Any]]) -> list[Plot]:
    drawn = [
        bar_plot("schema_validity.png", "Schema validity per model", list(summaries),
                 [s.get("schema_validity") for s in summaries.values()], ylabel="share of valid answers"),
        grouped_plot(
            "judge_scores.png", "Aggregate reward and judge score per model",
            ["mean reward", "mean of k", "best of k", "held-out judge"],
            {label: [s.get("reward_mean"), s.get("mean_of_k"), s.get("best_of_k"), _heldout(s, "reward_mean")]
             for label, s in summaries.items()},
        ),
    ]
    return [plot for plot in drawn if plot is not None]


def _score_breakdown(summaries: dict[str, dict[str, Any]], *, key: str, column: str, title: str,
                     plot_title: str) -> dict[str, Any] | None:
    """The plot and the rows of the summaries' `key` scores (components or judge criteria)."""
    names = list(dict.fromkeys(name for s in summaries.values() for name in s.get(key) or {}))
    values = {label: [(s.get(key) or {}).get(name) for name in names] for label, s in summaries.items()}
    plot = grouped_plot(f"{key}.png", plot_title, names, values)
    if plot is None:
        return None
    rows = [[name, *[(s.get(key) or {}).get(name) for s in summaries.values()]] for name in names]
    return {"title": title, "column": column, "plot": plot, "rows": rows}


def _best_of_k_rows(summaries: dict[str, dict[str, Any]]) -> Rows:
    return [
        [label, s.get("k"), s.get("mean_of_k"), s.get("best_of_k"),
         _minus(s.get("best_of_k"), s.get("mean_of_k")), s.get("prompts_scored")]
        for label, s in summaries.items()
    ]


def _heldout_rows(summaries: dict[str, dict[str, Any]]) -> Rows:
    if not any(s.get("heldout") for s in summaries.values()):
        return []
    return [
        [label, s.get("reward_mean"), _heldout(s, "reward_mean"),
         _minus(s.get("reward_mean"), _heldout(s, "reward_mean")), _heldout(s, "mean_of_k"),
         _heldout(s, "best_of_k"), _heldout(s, "unscored_share")]
        for label, s in summaries.items()
    ]


def _judge_use_rows(summaries: dict[str, dict[str, Any]]) -> Rows:
    if not any(s.get("judge") for s in summaries.values()):
        return []
    keys = ("calls", "cache_hits", "failed", "total_tokens", "cost_usd", "latency_p50_s")
    return [[label, *[_judge(s, key) for key in keys]] for label, s in summaries.items()]


def _minus(a: Any, b: Any) -> float | None:
    return round(a - b, 6) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


def training_section(data: RunData, plots: list[Plot]) -> str:
    """GRPO's curves (reward, held-out, unscored and cost, the other logged figures), the
    reward-hacking alarms and the SFT baseline's curves (templates/training.html)."""
    curves = series(data.metrics)
    shown: list[Plot] = []
    steps = sorted({step for points in curves.values() for step, _ in points})
    if data.metrics:
        drawn = (reward_curve_plot(curves), unscored_cost_plot(curves))
        shown += [plot for plot in drawn if plot is not None]
        plotted = (REWARD_KEYS, REWARD_STD_KEYS, HELDOUT_KEYS, UNSCORED_KEYS, COST_KEYS, TOKEN_KEYS)
        used = {key for key in (_first(curves, keys) for keys in plotted) if key}
        used |= set(component_curves(curves).values())
        other = extra_curves_plot(curves, used, "training_other.png", "Other logged figures per step")
        shown += [other] if other is not None else []
    sft_plot = (extra_curves_plot(series(data.sft_metrics), set(), "sft_curves.png", "SFT baseline training")
                if data.sft_metrics else None)
    plots += [*shown, *([sft_plot] if sft_plot is not None else [])]
    alarms = [(row.get("step"), alarm) for row in data.metrics for alarm in row.get("alarms") or []]
    if not data.metrics and not data.sft_metrics:
        return render_template("training.html", logged_steps=0, sft_plot=None)
    return render_template("training.html", logged_steps=len(data.metrics),
                           first_step=steps[0] if steps else None, last_step=steps[-1] if steps else None,
                           plots=shown, alarms=alarms, sft_plot=sft_plot)


def judge_cost_section(data: RunData) -> str:
    """What the training judge spent (from the metrics), and the forecast of `judgerl plan` against
    it when one was saved in the run folder (templates/judge_cost.html)."""
    spent = actual_spend(data.metrics)
    last = data.metrics[-1] if data.metrics else {}
    usd, tokens = last.get("judge/budget_usd"), last.get("judge/budget_tokens")
    budget = ", ".join(item for item in (f"${usd:g}" if isinstance(usd, (int, float)) else "",
                                         f"{tokens:.0f} tokens" if isinstance(tokens, (int, float)) else "")
                       if item)
    rows = forecast_vs_actual(data.plan, spent) if data.plan is not None else []
    return render_template("judge_cost.html", spent=spent, budget=budget, rows=rows,
                           plan_file=PLAN_FILE if data.plan is not None else None)


def validation_section(data: RunData, plots: list[Plot]) -> str:
    """The judge validation's verdict, failures, per-section figures against their thresholds and
    plot (templates/validation.html)."""
    report = data.validation
    if not isinstance(report, dict):
        return render_template("validation.html", report=None)
    plot = validation_plot(report)
    if plot is not None:
        plots.append(plot)
    failures = [item.get("message") or item if isinstance(item, dict) else item
                for item in report.get("failures") or []]
    full_report = bool(data.validation_path and (data.validation_path.parent / "report.md").is_file())
    return render_template("validation.html", report=report, failures=failures,
                           sections=validation_sections(report), plot=plot, full_report=full_report)


def samples_section(data: RunData) -> str:
    """Per model, the best and worst scored answers (templates/samples.html)."""
    groups = []
    for label, rows in data.samples.items():
        scored = [
            row for row in rows if row.get("status") in ("ok", "gated") and row.get("reward") is not None
        ]
        if not scored:
            continue
        ranked = sorted(scored, key=lambda row: float(row["reward"]), reverse=True)
        best = ranked[:MAX_SAMPLES_SHOWN]
        worst = [row for row in ranked[::-1][:MAX_SAMPLES_SHOWN] if row not in best]
        reasons: dict[str, int] = {}
        for row in rows:
            if row.get("status") == "unscored":
                key = str(row.get("reason") or "unknown")[:120]
                reasons[key] = reasons.get(key, 0) + 1
        groups.append({
            "label": label,
            "shown": [("best", row) for row in best] + [("worst", row) for row in worst],
            "unscored_count": sum(reasons.values()),
            "unscored_reasons": sorted(reasons.items(), key=lambda item: -item[1]),
        })
    return render_template("samples.html", groups=groups)


def export_section(data: RunData) -> str:
    if data.export_dir is None:
        return ""
    return render_template("export.html", model_card=data.model_card is not None)


def stages_section(data: RunData) -> str:
    if not data.stages:
        return ""
    rows = []
    for name, stage in data.stages.items():
        stage = stage if isinstance(stage, dict) else {"status": stage}
        rows.append([name, stage.get("status", ""), stage.get("finished_at", "")])
    return render_template("stages.html", rows=rows)


# -- templates -------------------------------------------------------------------------------------


@functools.cache
def templates() -> Any:
    """The Jinja2 environment over `judgerl/run/templates/`: autoescape on for every template, so a
    value from the run is text unless a builder here marks it as already-escaped markup."""
    from jinja2 import Environment, PackageLoader

    # a key missing from a row of the run (an older run, a partial row) renders as empty text
    environment = Environment(loader=PackageLoader("judgerl.run", "templates"), autoescape=True,
                              keep_trailing_newline=True)
    environment.filters["num"] = lambda value, digits=3: Markup(num(value, digits))
    environment.filters["clip"] = _clip
    return environment


def render_template(name: str, **values: Any) -> str:
    return str(templates().get_template(name).render(**values))


# -- entry point -----------------------------------------------------------------------------------


def render_report(run_dir: str | os.PathLike[str], *, output: str | os.PathLike[str] | None = None) -> Path:
    """Write RUN_DIR/report.html (and RUN_DIR/plots/*.png); return the HTML path."""
    data = load_run(run_dir)
    plots: list[Plot] = []
    sections = [
        stages_section(data),
        evaluation_section(data, plots),
        training_section(data, plots),
        judge_cost_section(data),
        validation_section(data, plots),
        samples_section(data),
        export_section(data),
    ]
    plot_dir = data.run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    for plot in plots:
        (plot_dir / plot.name).write_bytes(plot.png)
    from judgerl.version import __version__

    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = render_template(
        "report.html",
        title=f"judgerl report: {data.run_dir.resolve().name}",
        subtitle=f"run directory {data.run_dir} · generated {generated} · {len(plots)} plots",
        version=__version__,
        nav=NAV,
        sections=[Markup(section) for section in sections if section],
    )
    target = Path(output) if output is not None else data.run_dir / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
