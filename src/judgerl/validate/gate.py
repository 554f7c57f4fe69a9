"""The gate: a judge that does not meet the suite's thresholds does not get to train a policy.

Why separate from the sections: the sections measure, the gate decides. `check_section` turns a
section's figures and its thresholds into failures (a figure that could not be computed never
passes); `gate_or_raise` is what training and the workflow call before the first step, and it
raises `ValidationGateError` listing every failing figure, so the run stops with the numbers
that stopped it.
"""

from __future__ import annotations

from judgerl.errors import ValidationGateError
from judgerl.validate.report import Failure, SectionResult, ValidationReport
from judgerl.validate.suite import Threshold


def check_section(result: SectionResult, thresholds: list[Threshold]) -> list[Failure]:
    """Record `thresholds` on `result` and return (and store) the ones its figures miss."""
    result.thresholds = list(thresholds)
    failures = []
    for threshold in thresholds:
        if result.skipped or threshold.figure in result.not_applicable:
            continue
        value = result.gate_values.get(threshold.figure, result.figures.get(threshold.figure))
        if not threshold.holds(value):
            failures.append(Failure(result.name, threshold.figure, value, threshold.kind, threshold.bound))
    result.failures = failures
    return failures


def gate_or_raise(report: ValidationReport) -> ValidationReport:
    """Return the report when every threshold holds; else raise `ValidationGateError`.

    >>> from judgerl.validate.report import SectionResult, ValidationReport
    >>> section = SectionResult("bias.position", "judge", figures={"consistency_rate": 0.25})
    >>> _ = check_section(section, [Threshold(section="bias.position", figure="consistency_rate",
    ...                                       kind="min", bound=0.8)])
    >>> try:
    ...     gate_or_raise(ValidationReport("judge", "pairwise", None, None, sections=[section]))
    ... except ValidationGateError as error:
    ...     print(error.failures)
    ['bias.position: consistency_rate = 0.250 (needs >= 0.8)']
    """
    if report.passed:
        return report
    raise ValidationGateError(report.judge, [failure.message for failure in report.failures], report=report)
