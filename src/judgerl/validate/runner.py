"""`run_validation`: build the judge from the reward config, run each section of the suite on it,
check the thresholds, and return (and optionally write) the report.

Why here and not in the CLI: training and the workflow run the same validation before their
first step (`gate_or_raise(run_validation(...))`), and tests drive it with scripted backends.
The judge is the real one, built by `RewardPipeline.from_config`, and all its calls run on the
pipeline's own loop, through the runtime (limits, retries, journal). By default the cache and
the in-flight deduplication are turned off, so that validation measures the judge, not a copy of
its earlier answers (`use_cache: true` in the suite turns them back on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from judgerl.backends.base import Backend
from judgerl.config import RewardConfig, load_reward_config
from judgerl.errors import ConfigError
from judgerl.judges.adversarial import load_adversarial_set
from judgerl.judges.base import Judge
from judgerl.judges.panel import PanelJudge
from judgerl.reward.pipeline import RewardPipeline
from judgerl.validate.datasets import load_source, pairs_only
from judgerl.validate.gate import check_section, gate_or_raise
from judgerl.validate.probe import JudgeProbe
from judgerl.validate.report import SectionResult, ValidationReport, write_report
from judgerl.validate.sections import Tick
from judgerl.validate.sections.agreement import agreement_units, collect, summarize
from judgerl.validate.sections.attacks import build_attacks, run_attacks
from judgerl.validate.sections.consistency import run_consistency
from judgerl.validate.sections.human_labels import run_human_labels
from judgerl.validate.sections.panel import panel_figures
from judgerl.validate.sections.position import run_position
from judgerl.validate.sections.regression import run_regression
from judgerl.validate.sections.verbosity import run_verbosity
from judgerl.validate.suite import (
    AgreementSection,
    AttackProbe,
    ConsistencySection,
    DataSource,
    HumanLabelsSection,
    PositionProbe,
    RegressionSection,
    Section,
    Suite,
    VerbosityProbe,
    load_regression_items,
    load_suite,
)

T = TypeVar("T")
#: progress(section_name, done, total): called as judgments finish (from the judge's loop thread)
Progress = Callable[[str, int, int], None]


def prepare_config(source: RewardConfig | str | Path | dict[str, Any], overrides: list[str] | None,
                   *, use_cache: bool) -> RewardConfig:
    """Load the reward config; without `use_cache`, turn off the judge cache and the dedup."""
    if isinstance(source, RewardConfig):
        config = source.model_copy(deep=True)
        config.locate(source.base_dir, source.source)
    else:
        config = load_reward_config(source if isinstance(source, dict) else str(source), overrides)
    if not use_cache:
        config.runtime = config.runtime.model_copy(update={"cache_path": None, "dedup": False})
    return config


def pick_judge(pipeline: RewardPipeline, name: str | None, *, where: str,
               suite_path: str | None = None) -> Judge:
    """The judge `name` (a field `where` of the suite at `suite_path`) of the pipeline's config."""
    if not pipeline.judges:
        raise ConfigError("the reward config has no judge to validate", path=pipeline.config.source,
                          field="judges")
    if name is None:
        return pipeline.judges[0]
    for judge in pipeline.judges:
        if judge.name == name:
            return judge
    config = pipeline.config.source
    raise ConfigError(f"no judge named '{name}' in the reward config{f' {config}' if config else ''} "
                      f"(judges: {[judge.name for judge in pipeline.judges]})",
                      path=suite_path or config, field=where)


class _Runner:
    """Runs coroutines on one pipeline's loop and counts progress for one section."""

    def __init__(self, pipeline: RewardPipeline, progress: Progress | None) -> None:
        self.pipeline = pipeline
        self.progress = progress

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.pipeline.loop_thread().run(coro)

    def ticker(self, section: str, total: int) -> Tick:
        done = [0]

        def tick(count: int) -> None:
            done[0] += count
            if self.progress is not None:
                self.progress(section, done[0], total)

        if self.progress is not None:
            self.progress(section, 0, total)
        return tick


def run_validation(config: RewardConfig | str | Path | dict[str, Any],
                   suite: Suite | str | Path | dict[str, Any], *,
                   backends: dict[str, Backend] | None = None,
                   other_backends: dict[str, Backend] | None = None,
                   overrides: list[str] | None = None, suite_overrides: list[str] | None = None,
                   output_dir: str | Path | None = None,
                   progress: Progress | None = None, dry_run: bool = False) -> ValidationReport:
    """Run every enabled section of `suite` against the judge of `config`; never raises on a
    failed threshold (see `gate_or_raise`), only on bad input.

    `backends` replaces the reward config's backends (tests, dry runs); `other_backends` does the
    same for the second config of an agreement section; `dry_run` replaces every backend of both
    by the neutral stand-in (`RewardPipeline.from_config(dry_run=True)`: no model is called, the
    report says so). `overrides` apply to the reward config,
    `suite_overrides` to the suite (dotted `a.b=value`). With `output_dir`, `validation.json` and
    `validation.md` are written there.
    """
    started = time.monotonic()
    suite = suite if isinstance(suite, Suite) else load_suite(
        suite if isinstance(suite, dict) else str(suite), suite_overrides)
    reward_config = prepare_config(config, overrides, use_cache=suite.use_cache)
    with RewardPipeline.from_config(reward_config, backends=backends, dry_run=dry_run) as pipeline:
        judge = pick_judge(pipeline, suite.judge, where="judge", suite_path=suite.source)
        probe = JudgeProbe(judge, pass_threshold=suite.pass_threshold)
        runner = _Runner(pipeline, progress)
        runner.run(pipeline.check_verdict_tokens())  # before any section: a refused token stops here
        report = ValidationReport(judge=judge.name, judge_kind=probe.kind, config=reward_config.source,
                                  suite=suite.source, dry_run=dry_run)
        _check_panel_section(suite, judge)
        for name, section in suite.sections():
            section_started = time.monotonic()
            context = SectionContext(name, suite, probe, runner, other_backends, progress, dry_run)
            result = _run_section(section, context)
            result.seconds = time.monotonic() - section_started
            check_section(result, section.thresholds(name))
            report.sections.append(result)
            if name == "human_labels" and isinstance(judge, PanelJudge):
                report.sections.append(_panel_result(result, judge, suite))
        report.runtime = pipeline.runtime_stats()
    report.seconds = time.monotonic() - started
    if output_dir is not None:
        write_report(report, output_dir)
    return report


def _check_panel_section(suite: Suite, judge: Judge) -> None:
    """A `panel:` section gates a panel judge's figures, which human_labels measures: refuse it
    (before any call) for another kind of judge or without human labels."""
    if suite.panel is None or not suite.panel.enabled:
        return
    if not isinstance(judge, PanelJudge):
        raise ConfigError(f"`panel` gates a panel judge's figures; '{judge.name}' is a {judge.kind} judge",
                          path=suite.source, field="panel")
    if suite.human_labels is None or not suite.human_labels.enabled:
        raise ConfigError("a panel's figures are measured on the human_labels items: add a human_labels "
                          "section", path=suite.source, field="panel")


def _panel_result(human: SectionResult, judge: PanelJudge, suite: Suite) -> SectionResult:
    """The panel's own figures, from the human-labels section's items, checked against `panel:`."""
    result = panel_figures(human, judge.member_names, pass_threshold=suite.pass_threshold)
    result.seconds = 0.0
    gated = suite.panel is not None and suite.panel.enabled
    check_section(result, suite.panel.thresholds("panel") if gated and suite.panel is not None else [])
    return result


def validate_and_gate(config: RewardConfig | str | Path | dict[str, Any],
                      suite: Suite | str | Path | dict[str, Any], **options: Any) -> ValidationReport:
    """`run_validation(config, suite, **options)`, then `gate_or_raise`: what training calls.

    Returns the report when every threshold holds; raises `ValidationGateError` otherwise.
    """
    return gate_or_raise(run_validation(config, suite, **options))


@dataclass(frozen=True)
class SectionContext:
    """What every section runner gets besides its own section: its name in the suite, the suite,
    the judge under test (as a probe), the runner on the pipeline's loop, and for agreement the
    backends of a second reward config."""

    name: str
    suite: Suite
    probe: JudgeProbe
    runner: _Runner
    other_backends: dict[str, Backend] | None
    progress: Progress | None
    dry_run: bool = False

    def load(self, data: DataSource) -> Any:
        """The section's data rows (errors name `<section>.data`)."""
        return load_source(data, self.suite.base_dir, where=f"{self.name}.data")


def _consistency(section: ConsistencySection, ctx: SectionContext) -> SectionResult:
    items = ctx.load(section.data)
    units = len(items) * (1 if ctx.probe.kind == "pairwise" else 2) * section.repeats
    return ctx.runner.run(run_consistency(section, ctx.probe, items, tick=ctx.runner.ticker(ctx.name, units),
                                          name=ctx.name))


def _human_labels(section: HumanLabelsSection, ctx: SectionContext) -> SectionResult:
    items = ctx.load(section.data)
    return ctx.runner.run(run_human_labels(section, ctx.probe, items, ctx.suite.bootstrap,
                                           tick=ctx.runner.ticker(ctx.name, len(items)), name=ctx.name))


def _regression(section: RegressionSection, ctx: SectionContext) -> SectionResult:
    cases = load_regression_items(section, ctx.suite)
    return ctx.runner.run(run_regression(cases, ctx.probe, tick=ctx.runner.ticker(ctx.name, len(cases)),
                                         name=ctx.name))


def _position(section: PositionProbe, ctx: SectionContext) -> SectionResult:
    pairs = pairs_only(ctx.load(section.data), where=f"{ctx.name}.data")
    tick = ctx.runner.ticker(ctx.name, len(pairs))
    return ctx.runner.run(run_position(section, ctx.probe, pairs, tick=tick, name=ctx.name))


def _verbosity(section: VerbosityProbe, ctx: SectionContext) -> SectionResult:
    pairs = pairs_only(ctx.load(section.data), where=f"{ctx.name}.data", labelled=True)
    comparisons = len(pairs) * (1 + len(section.styles))
    tick = ctx.runner.ticker(ctx.name, comparisons)
    return ctx.runner.run(run_verbosity(section, ctx.probe, pairs, tick=tick, name=ctx.name))


def _attacks(section: AttackProbe, ctx: SectionContext) -> SectionResult:
    items = ctx.load(section.data) if section.data else []
    adversarial: list[Any] = []
    if section.adversarial_set is not False:
        path = None if section.adversarial_set is True else ctx.suite.resolve(str(section.adversarial_set))
        adversarial = load_adversarial_set(path)[: section.adversarial_limit]
    reads_trajectories = ctx.probe.judge.reads_trajectory() and ctx.probe.kind != "pairwise"
    tool_results = reads_trajectories if section.tool_results is None else section.tool_results
    if tool_results and ctx.probe.kind == "pairwise":
        raise ConfigError("tool-result attacks need a pointwise or group judge (a pairwise judge compares "
                          "answer strings)", field=f"{ctx.name}.tool_results")
    attacks = build_attacks(section, items, adversarial, tool_results=tool_results)
    tick = ctx.runner.ticker(ctx.name, len(attacks))
    return ctx.runner.run(run_attacks(section, ctx.probe, attacks, tick=tick, name=ctx.name))


def _agreement(section: AgreementSection, ctx: SectionContext) -> SectionResult:
    name, suite, probe, runner = ctx.name, ctx.suite, ctx.probe, ctx.runner
    items = ctx.load(section.data)
    other = section.other
    if other.config is None:
        other_judge = pick_judge(runner.pipeline, other.judge, where=f"{name}.other.judge",
                                 suite_path=suite.source)
        other_probe = JudgeProbe(other_judge, pass_threshold=suite.pass_threshold)
        return _agree(name, section, suite, probe, other_probe, items, runner, runner)
    other_config = prepare_config(suite.resolve(other.config), other.overrides, use_cache=suite.use_cache)
    with RewardPipeline.from_config(other_config, backends=ctx.other_backends,
                                    dry_run=ctx.dry_run and ctx.other_backends is None) as other_pipeline:
        other_judge = pick_judge(other_pipeline, other.judge, where=f"{name}.other.judge",
                                 suite_path=suite.source)
        other_probe = JudgeProbe(other_judge, pass_threshold=suite.pass_threshold)
        other_runner = _Runner(other_pipeline, ctx.progress)
        return _agree(name, section, suite, probe, other_probe, items, runner, other_runner)


def _agree(name: str, section: AgreementSection, suite: Suite, first: JudgeProbe, second: JudgeProbe,
           items: Any, first_runner: _Runner, second_runner: _Runner) -> SectionResult:
    if first.judge is second.judge:
        raise ConfigError("agreement needs two different judges; `other` names the judge being validated",
                          path=suite.source, field=f"{name}.other")
    units = agreement_units(first, second, items, f"{name}.data")
    tick = first_runner.ticker(name, 2 * len(units))
    first_judgments = first_runner.run(collect(first, units, tick=tick))
    second_judgments = second_runner.run(collect(second, units, tick=tick))
    return summarize(units, first, second, first_judgments, second_judgments, suite.bootstrap, name=name)


#: each section type of the suite and the function that runs it (one registry, like CHECK_TYPES)
SECTION_RUNNERS: dict[type[Section], Callable[[Any, SectionContext], SectionResult]] = {
    ConsistencySection: _consistency,
    AgreementSection: _agreement,
    HumanLabelsSection: _human_labels,
    RegressionSection: _regression,
    PositionProbe: _position,
    VerbosityProbe: _verbosity,
    AttackProbe: _attacks,
}


def _run_section(section: Section, ctx: SectionContext) -> SectionResult:
    run = SECTION_RUNNERS.get(type(section))
    if run is None:
        raise ConfigError(f"no runner for the section type {type(section).__name__}", field=ctx.name)
    return run(section, ctx)
