"""One exception tree, so callers can catch judgerl's errors apart from everyone else's.

Errors about user input always name where the problem is (file, line, field), because a
message like "invalid value" costs an ML engineer an hour on a 50k-row file.
"""

from __future__ import annotations


class JudgerlError(Exception):
    """Base of every error judgerl raises on purpose."""


class ConfigError(JudgerlError):
    """A config or recipe is invalid; the message names the file and the field."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None) -> None:
        self.path = path
        self.field = field
        where = ", ".join(part for part in (path, f"field '{field}'" if field else None) if part)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(JudgerlError):
    """A row of input data is invalid; the message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        parts = [path or "<input>"]
        if line is not None:
            parts.append(f"line {line}")
        if field:
            parts.append(f"field '{field}'")
        super().__init__(f"{', '.join(parts)}: {message}")


class BackendError(JudgerlError):
    """A model call failed. `retryable` says whether the runtime may try again."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class FatalBackendError(BackendError):
    """A call that can never succeed as configured (400/401/403/404): stop the run early."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


class JudgeParseError(JudgerlError):
    """The judge answered, but not in the expected, typed form."""


class FailureBudgetExceeded(JudgerlError):
    """Too many judgments in a batch were unscored to train on the rest."""

    def __init__(self, failed: int, total: int, budget: float, reasons: dict[str, int],
                 example: str | None = None) -> None:
        self.failed = failed
        self.total = total
        self.budget = budget
        self.reasons = reasons
        top = ", ".join(f"{reason} ({count})" for reason, count in
                        sorted(reasons.items(), key=lambda kv: -kv[1])[:5])
        super().__init__(
            f"{failed} of {total} judgments unscored ({failed / max(total, 1):.0%}), over the failure "
            f"budget of {budget:.0%}; reasons: {top or 'none recorded'}"
            + (f"; for example: {example}" if example else "")
        )


class ValidationGateError(JudgerlError):
    """The judge missed a threshold of its validation suite; `failures` lists the figures.

    Raised by `judgerl.validate.gate_or_raise` before training, so that no policy is trained on a
    judge that was measured and found wanting. `report` is the full `ValidationReport`.
    """

    def __init__(self, judge: str, failures: list[str], *, report: object = None) -> None:
        self.judge = judge
        self.failures = list(failures)
        self.report = report
        count = f"{len(failures)} figure{'s' if len(failures) != 1 else ''}"
        super().__init__(f"judge '{judge}' failed validation ({count}): " + "; ".join(failures))
