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
        self.detail = message
        where = ", ".join(part for part in (path, f"field '{field}'" if field else None) if part)
        super().__init__(f"{where}: {message}" if where else message)

    def located(self, path: str | None, *, prefix: str | None = None) -> ConfigError:
        """This error, naming `path` when it names no file yet, and its field under `prefix`.

        Components (checks, judges, backends) validate their own options without knowing the
        file they came from; whoever built them from a file calls this so that every message
        names the file.

        >>> str(ConfigError("must be >= 0", field="maximum").located("reward.yaml", prefix="checks.len"))
        "reward.yaml, field 'checks.len.maximum': must be >= 0"
        >>> str(ConfigError("bad", path="a.yaml", field="checks.x.y").located("b.yaml", prefix="checks.x"))
        "a.yaml, field 'checks.x.y': bad"
        """
        field = self.field
        if prefix and field and not field.startswith(prefix + ".") and field != prefix:
            field = f"{prefix}.{field}"
        elif prefix and not field:
            field = prefix
        if self.path is not None and field == self.field:
            return self
        located = ConfigError(self.detail, path=self.path or path, field=field)
        located.__cause__ = self.__cause__ or self
        return located


class DataError(JudgerlError):
    """A row of input data is invalid; the message names the file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
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


class SendGateClosed(BackendError):
    """Nothing was sent: a Retry-After window of the backend opened after the runtime let the call
    go and before its request was written (backends check the gate at send time). The runtime
    waits for the window to end and sends it then; it is not an attempt and not a failure."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        super().__init__(f"retry_after_window: the backend asked for a pause of {wait_s:.3g}s more",
                         retryable=True)


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


class BudgetExhausted(JudgerlError):
    """The process's spending budget (`runtime.budget_usd` / `runtime.budget_tokens`) is used up.

    The runtime made no call that would have crossed it; the judgments it refused are unscored
    with reason `budget_exhausted`. `spend` is the runtime's accounting at that moment (calls,
    tokens, USD), `rewards` (when set) the batch that was being scored, so a caller keeps every
    finished row. Raise the budget and rerun (or resume) to go on.
    """

    def __init__(self, detail: str, spend: dict[str, object] | None = None) -> None:
        self.detail = detail
        self.spend = dict(spend or {})
        self.rewards: list[object] = []
        super().__init__(detail)


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
