"""The reward config: one YAML file that describes backends, checks, judges and aggregation.

Loading goes through pydantic so that a mistake is reported with the file and the dotted field
(`judges.0.criteria.2.weight: Input should be a valid number`), and any field can be overridden
from the command line as `a.b.c=value` (the value is parsed as YAML: `3`, `true`, `[1, 2]`).

Component-specific fields (a length check's `min`, a rubric's `criteria`) are kept as extra
fields here and validated by the component that owns them (checks/, judges/, backends/), so
that each module documents its own options where they are defined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from judgerl.errors import ConfigError
from judgerl.safe_yaml import load_yaml


class FileBacked(BaseModel):
    """A model read from a YAML file: it remembers the file, and relative paths inside it (schemas,
    data, caches) are resolved against the file's folder, so a config runs from any directory."""

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file are resolved against."""
        return self._base_dir

    @property
    def source(self) -> str | None:
        """The file it was read from (None for a dict)."""
        return self._source

    def path(self, value: str | Path) -> Path:
        """`value` resolved against the file's folder (absolute paths are kept)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    def locate(self, base_dir: Path, source: str | None) -> None:
        self._base_dir = base_dir
        self._source = source


class BackendConfig(BaseModel):
    """A model endpoint. `type`: openai | scripted | local | bedrock; other keys go to the backend."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="openai, scripted, local or bedrock")
    model: str | None = Field(default=None, description="model name sent to the endpoint")
    max_concurrency: int = Field(default=16, ge=1, description="calls in flight at once")
    rpm: float | None = Field(default=None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(default=None, gt=0, description="tokens per minute limit")
    timeout_s: float = Field(default=60.0, gt=0, description="per-attempt timeout")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Price(BaseModel):
    """USD per million tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


class RuntimeConfig(BaseModel):
    """How judge calls are made: retries, deadlines, circuit breaker, cache, journal, prices."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=5, ge=1, description="HTTP attempts per logical call")
    deadline_s: float = Field(default=300.0, gt=0, description="total time for one logical call")
    retry_after_cap_s: float = Field(default=60.0, ge=0,
                                     description="a longer Retry-After fails that call fast (and only it)")
    retry_after_jitter_s: float = Field(
        default=0.5, ge=0, description="calls held by a Retry-After window each wait a random extra "
        "delay of up to this (and up to a quarter of the window) when it ends, so they do not all fire "
        "at once")
    backoff_base_s: float = Field(default=0.5, ge=0, description="first backoff (full jitter)")
    backoff_max_s: float = Field(default=20.0, ge=0, description="largest backoff")
    breaker_window: int = Field(default=20, ge=1, description="recent calls the breaker looks at")
    breaker_failure_ratio: float = Field(default=0.8, gt=0, le=1,
                                         description="failure share that opens the breaker")
    breaker_cooldown_s: float = Field(default=30.0, ge=0, description="how long it stays open")
    cache_path: str | None = Field(default=None, description="SQLite cache file; null = no cache")
    journal_path: str | None = Field(default=None, description="JSONL journal of every judgment")
    prices: dict[str, Price] = Field(default_factory=dict, description="model name -> price")
    dedup: bool = Field(default=True, description="identical calls in flight at once are made once")
    rate_burst_s: float = Field(default=1.0, gt=0,
                                description="seconds of RPM / TPM quota that may be spent at once")
    budget_usd: float | None = Field(
        default=None, gt=0, description="USD this process may spend on model calls (at `prices`); a call "
        "that would cross it is not made and its judgment is unscored `budget_exhausted`")
    budget_tokens: int | None = Field(
        default=None, gt=0, description="tokens (prompt + completion) this process may spend on model "
        "calls; a call that would cross it is not made (`budget_exhausted`)")


class CheckConfig(BaseModel):
    """A deterministic check. Extra keys are the check's own options (see checks/)."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: str = Field(description="json_schema, json_valid, length, language, safety, match")
    weight: float = Field(default=1.0, ge=0)
    gate: bool = Field(default=False, description="a hard check: failing it skips the judge")
    gate_threshold: float = Field(default=1.0, ge=0, le=1,
                                  description="the check fails the gate below this score")
    gate_score: float = Field(default=0.0, ge=0, le=1, description="the reward when gated")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class JudgeConfig(BaseModel):
    """An LLM judge. Extra keys are the judge's own options (see judges/)."""

    model_config = ConfigDict(extra="allow")

    name: str
    type: str = Field(description="rubric, pairwise or group")
    backend: str = Field(default="judge", description="a key of `backends`")
    weight: float = Field(default=1.0, ge=0)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class AggregateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["weighted", "formula"] = "weighted"
    formula: str | None = Field(default=None, description="e.g. 'schema * quality'")


class RewardConfig(FileBacked):
    """The whole reward: checks -> gate -> judges -> aggregate."""

    model_config = ConfigDict(extra="forbid")

    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    checks: list[CheckConfig] = Field(default_factory=list)
    judges: list[JudgeConfig] = Field(default_factory=list)
    aggregate: AggregateConfig = Field(default_factory=AggregateConfig)
    failure_policy: Literal["unscored", "neutral", "zero"] = Field(
        default="unscored", description="reward for a judge failure: None, 0.5 or 0")
    failure_budget: float | None = Field(
        default=0.5, ge=0, le=1, description="stop a batch when more than this share is unscored")


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.0.c` in nested dicts / lists, creating dicts on the way.

    >>> d = {"a": {"b": [{"c": 1}]}}
    >>> set_dotted(d, "a.b.0.c", 2); d
    {'a': {'b': [{'c': 2}]}}
    """
    keys = dotted.split(".")
    node: Any = data
    for position, key in enumerate(keys[:-1]):
        if isinstance(node, dict) and node.get(key) is None and keys[position + 1].isdigit():
            # `judges.0.weight` on a config without judges would make `judges` a mapping {"0": ...}
            # and fail later as "judges: Input should be a valid list"
            raise ConfigError(f"override '{dotted}': the config has no list '{key}' to change an "
                              "item of (an override changes an existing item, it does not add one)",
                              field=dotted)
        node = _child(node, key, dotted, create=True, depth=position)
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last, dotted)] = value
    else:
        node[last] = value


def _index(node: list[Any], key: str, dotted: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ConfigError(f"override '{dotted}': '{key}' is not an index of a list of {len(node)}",
                          field=dotted)
    return int(key)


def _child(node: Any, key: str, dotted: str, *, create: bool, depth: int) -> Any:
    if isinstance(node, list):
        return node[_index(node, key, dotted)]
    if not isinstance(node, dict):
        raise ConfigError(f"override '{dotted}': cannot descend into a {type(node).__name__}",
                          field=dotted)
    if key not in node or node[key] is None:
        if not create:
            raise ConfigError(f"override '{dotted}': no field '{key}'", field=dotted)
        node[key] = {}
    return node[key]


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides; values are parsed as YAML.

    >>> apply_overrides({"trainer": {"max_steps": 100}}, ["trainer.max_steps=20"])
    {'trainer': {'max_steps': 20}}
    """
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override '{override}' must look like key.path=value")
        key, raw = override.split("=", 1)
        try:
            value = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{override}': the value is not valid YAML: {exc}",
                              field=key.strip()) from exc
        set_dotted(data, key.strip(), value)
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (through the bounded safe loader), with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", path=str(path))
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", path=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc}", path=str(path)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", path=str(path))
    return data


def error_message(error: Any) -> str:
    """Pydantic's message of one error, without the "Value error, " it puts before the text of
    our own validators (the user reads the text, not the exception class)."""
    return str(error["msg"]).removeprefix("Value error, ")


def validation_error(exc: ValidationError, path: str | None) -> ConfigError:
    """Turn pydantic's error into a ConfigError that names the first bad field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(f"{error_message(first)}{more}", path=path, field=field)


def parse_model(model_type: type[BaseModel], data: dict[str, Any], *, path: str | None = None,
                prefix: str = "") -> Any:
    """Validate `data` as `model_type`, raising ConfigError naming file and field."""
    try:
        return model_type.model_validate(data)
    except ValidationError as exc:
        error = validation_error(exc, path)
        if prefix and error.field:
            raise ConfigError(error_message(exc.errors()[0]), path=path,
                              field=f"{prefix}.{error.field}") from exc
        raise error from exc


FileBackedT = TypeVar("FileBackedT", bound=FileBacked)


def read_source(source: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str | None, Path]:
    """(data, file, folder) of a config given as a YAML path, or as a dict (no file; the working
    folder)."""
    if isinstance(source, dict):
        return dict(source), None, Path.cwd()
    return read_yaml(source), str(source), Path(source).resolve().parent


def build_file_backed(model_type: type[FileBackedT], data: dict[str, Any], overrides: list[str] | None,
                      path: str | None, base_dir: Path) -> FileBackedT:
    """Apply dotted overrides to `data`, validate it as `model_type` (errors name file and field)
    and remember where it came from: the last steps of loading any YAML config."""
    apply_overrides(data, overrides or [])
    model: FileBackedT = parse_model(model_type, data, path=path)
    model.locate(base_dir, path)
    return model


def load_file_backed(model_type: type[FileBackedT], source: str | Path | dict[str, Any],
                     overrides: list[str] | None = None) -> FileBackedT:
    """Read a config (YAML path or dict), apply overrides, validate and locate it."""
    data, path, base_dir = read_source(source)
    return build_file_backed(model_type, data, overrides, path, base_dir)


def load_reward_config(source: str | Path | dict[str, Any], overrides: list[str] | None = None,
                       ) -> RewardConfig:
    """Load a reward config from a YAML file or a dict, applying dotted overrides.

    Relative paths inside the file (schemas, caches) are resolved against the file's folder by
    the components that read them, through `RewardConfig.base_dir`.
    """
    config = load_file_backed(RewardConfig, source, overrides)
    check_formula(config)
    return config


def check_formula(config: RewardConfig) -> None:
    """Validate an aggregate formula in full against the config's component names (ConfigError
    naming the file and `aggregate.formula`), so that no command gets past loading with one that
    cannot run."""
    if config.aggregate.method != "formula" or not config.aggregate.formula:
        return
    from judgerl.aggregate import Formula

    names = {check.name for check in config.checks} | {judge.name for judge in config.judges}
    try:
        Formula(config.aggregate.formula, names)
    except ConfigError as exc:
        raise exc.located(config.source) from exc
