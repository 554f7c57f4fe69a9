"""What every deterministic check shares: the callable contract and strict option parsing.

A check is a pure function `(sample, rollout) -> Score`. It is built once from its config
(options validated here, so a typo such as `mx: 10` fails at load time with the field named,
not silently at step 3,000), then called for every rollout without touching the network,
the clock or any global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from judgerl.config import CheckConfig, parse_model
from judgerl.errors import ConfigError
from judgerl.types import Rollout, Sample, Score


class Check(Protocol):
    """A deterministic reward component. `name` is the Score's name."""

    name: str

    def __call__(self, sample: Sample, rollout: Rollout) -> Score: ...


class CheckOptions(BaseModel):
    """Base of each check's options: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


OptionsT = TypeVar("OptionsT", bound=CheckOptions)


class BaseCheck:
    """Holds a check's name and validated options; subclasses implement `__call__`.

    `summary` and `Options` document the check type (CHECK_TYPES lists them for the docs).
    """

    summary: ClassVar[str] = ""
    Options: ClassVar[type[CheckOptions]] = CheckOptions

    def __init__(self, name: str, options: Any, base_dir: Path | None = None) -> None:
        self.name = name
        self.options = options
        self.base_dir = base_dir or Path.cwd()

    @classmethod
    def from_config(cls, config: CheckConfig, base_dir: Path) -> BaseCheck:
        options = parse_options(cls.Options, config.options, config.name)
        return cls(config.name, options, base_dir)

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:  # pragma: no cover - abstract
        raise NotImplementedError

    def reads_trajectory(self) -> bool:
        """Whether this check reads a tool-using rollout's trajectory, not only its final answer."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, options={self.options!r})"


def parse_options(model: type[OptionsT], options: dict[str, Any], check_name: str) -> OptionsT:
    """Validate a check's options; errors name `checks.<name>.<field>`.

    >>> class O(CheckOptions):
    ...     max: int = 3
    >>> parse_options(O, {"max": 5}, "len").max
    5
    >>> parse_options(O, {"mx": 5}, "len")
    Traceback (most recent call last):
    ...
    judgerl.errors.ConfigError: field 'checks.len.mx': Extra inputs are not permitted
    """
    return parse_model(model, options, prefix=f"checks.{check_name}")


def option_error(check_name: str, option: str, message: str) -> ConfigError:
    """A ConfigError for a check option that pydantic alone cannot judge (a bad regex, a file)."""
    return ConfigError(message, field=f"checks.{check_name}.{option}")


def clamp01(value: float) -> float:
    """Keep a score inside [0, 1].

    >>> clamp01(-0.2), clamp01(0.5), clamp01(1.7)
    (0.0, 0.5, 1.0)
    """
    return min(1.0, max(0.0, float(value)))
