"""The validation suite file: which probes to run on a judge, on which items, with which thresholds.

Why a file: the thresholds a judge must meet are part of an experiment's definition, like the
reward config; writing them down lets `judgerl train` refuse a judge that does not meet them and
lets a reviewer see what was checked. Every section is optional; a section that is present runs,
reports its figures and checks each threshold it sets. A threshold is a field named `min_<figure>`
or `max_<figure>` (null = report the figure without gating on it); the defaults below are
deliberately modest and meant to be tightened for a real task.

```yaml
judge: quality                 # which judge of the reward config (default: the first one)
pass_threshold: 0.5            # a pointwise score at or above this is a "pass" verdict
consistency: {data: {dataset: llmbar-natural, limit: 10}, repeats: 3, max_changed_share: 0.2}
agreement: {other: {judge: quality_v2}, data: {...}, min_kappa: 0.4}
human_labels: {data: {dataset: llmbar-natural, limit: 50}, min_accuracy: 0.6}
regression: {file: regression.yaml, min_pass_rate: 1.0}
bias:
  position: {data: {dataset: evalbiasbench, limit: 12}, min_consistency_rate: 0.8}
  verbosity: {data: {dataset: llmbar-natural, limit: 10}, max_padded_win_rate: 0.2}
  attacks: {data: {dataset: llmbar-natural, limit: 5}, max_false_positive_rate: 0.05}
panel: {max_abstention_rate: 0.2, min_members_kappa: 0.4}   # a panel judge: gates its own figures
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from judgerl.config import FileBacked, load_file_backed
from judgerl.errors import ConfigError

DEFAULT_OPENERS = [":", "Solution", "Thought process:", "Let's think step by step.", "Answer:"]


class Threshold(BaseModel):
    """One gate on one figure: `figure >= bound` (kind min) or `figure <= bound` (kind max)."""

    section: str
    figure: str
    kind: Literal["min", "max"]
    bound: float

    def holds(self, value: float | None) -> bool:
        """A figure that could not be computed (None) never meets a threshold.

        >>> Threshold(section="s", figure="kappa", kind="min", bound=0.4).holds(0.5)
        True
        >>> Threshold(section="s", figure="rate", kind="max", bound=0.1).holds(None)
        False
        """
        if value is None:
            return False
        return value >= self.bound if self.kind == "min" else value <= self.bound

    def describe(self) -> str:
        return f"{'>=' if self.kind == 'min' else '<='} {self.bound:g}"


class DataSource(BaseModel):
    """Items for a section: a vendored set or JSONL file (`dataset`), or inline rows (`items`)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, description="llmbar-natural, evalbiasbench, or a "
                                "labelled JSONL file (relative to the suite file)")
    items: list[dict[str, Any]] | None = Field(default=None, description="rows in the labelled-file "
                                               "format, written in the suite")
    limit: int | None = Field(default=None, ge=1, description="use only the first N items")
    max_chars: int | None = Field(default=None, ge=1, description="skip items whose prompt and "
                                  "answers together are longer (keeps CPU runs short); before `limit`")
    biases: list[str] | None = Field(default=None, description="evalbiasbench: keep these bias types")
    data_dir: str | None = Field(default=None, description="another copy of the judge-validation "
                                 "folder (default: the one shipped in the package)")

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.dataset is None) == (self.items is None):
            raise ValueError("give exactly one of `dataset` or `items`")
        if self.items is not None and not self.items:
            raise ValueError("`items` is empty")
        return self


class Section(BaseModel):
    """Fields every section shares."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false skips the section")
    max_unscored_share: float | None = Field(default=None, ge=0, le=1,
                                             description="share of judgments the judge failed to give")

    def thresholds(self, section: str) -> list[Threshold]:
        """Every `min_*` / `max_*` field that is set, as a threshold on the figure it names."""
        found = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None or not (name.startswith("min_") or name.startswith("max_")):
                continue
            found.append(Threshold(section=section, figure=name[4:], kind=name[:3], bound=float(value)))
        return found


class ConsistencySection(Section):
    """The same items judged `repeats` times (the judge cache is off)."""

    data: DataSource
    repeats: int = Field(default=3, ge=2, le=50)
    max_changed_share: float | None = Field(default=0.2, ge=0, le=1,
                                            description="share of items whose verdict changes")
    max_mean_spread: float | None = Field(default=0.15, ge=0, le=1,
                                          description="mean over items of (max - min) score")


class OtherJudge(BaseModel):
    """The second judge of an agreement section: a judge of this config, or of another one."""

    model_config = ConfigDict(extra="forbid")

    judge: str | None = Field(default=None, description="judge name (default: the first judge of "
                              "`config`)")
    config: str | None = Field(default=None, description="another reward config (relative to the suite)")
    overrides: list[str] = Field(default_factory=list, description="dotted overrides for that config")

    @model_validator(mode="after")
    def _something(self) -> OtherJudge:
        if self.judge is None and self.config is None:
            raise ValueError("name a `judge`, a `config`, or both")
        return self


class AgreementSection(Section):
    """Two judges on the same items."""

    other: OtherJudge
    data: DataSource
    min_percent_agreement: float | None = Field(default=None, ge=0, le=1)
    min_kappa: float | None = Field(default=0.4, ge=-1, le=1, description="Cohen's kappa on verdicts")
    min_spearman: float | None = Field(default=None, ge=-1, le=1, description="Spearman rho on scores")


class HumanLabelsSection(Section):
    """Agreement with people: accuracy on preference pairs, Spearman and kappa on scores."""

    data: DataSource
    min_accuracy: float | None = Field(default=0.6, ge=0, le=1, description="pairs: judge == human")
    min_spearman: float | None = Field(default=None, ge=-1, le=1, description="scores")
    min_kappa: float | None = Field(default=None, ge=-1, le=1, description="scores, on the human scale")
    scale: tuple[float, float] | None = Field(default=None, description="scores: the human scale "
                                              "(low, high); default: the lowest and highest label")
    kappa_weights: Literal["linear", "quadratic"] | None = Field(default=None)
    gate_on: Literal["point", "ci_low"] = Field(default="point", description="ci_low gates on the "
                                                "lower end of the bootstrap interval")


class RegressionSection(Section):
    """Known-good and known-bad answers with the verdict each must get."""

    file: str | None = Field(default=None, description="YAML file with an `items` list")
    items: list[dict[str, Any]] | None = None
    min_pass_rate: float | None = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_source(self) -> RegressionSection:
        if (self.file is None) == (self.items is None):
            raise ValueError("give exactly one of `file` or `items`")
        return self


class RegressionItem(BaseModel):
    """One regression case: an answer (`answer`) or a pair (`a`, `b`) and what it must get."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    reference: str | None = None
    answer: str | None = None
    a: str | None = None
    b: str | None = None
    expect: Literal["pass", "fail", "a", "b", "tie"] | None = Field(
        default=None, description="an answer: pass or fail; a pair: a, b or tie")
    min_score: float | None = Field(default=None, ge=0, le=1)
    max_score: float | None = Field(default=None, ge=0, le=1)
    note: str = ""

    @model_validator(mode="after")
    def _shape(self) -> RegressionItem:
        is_pair = self.a is not None or self.b is not None
        if is_pair and (self.a is None or self.b is None or self.answer is not None):
            raise ValueError("a pair needs both `a` and `b` and no `answer`")
        if not is_pair and self.answer is None:
            raise ValueError("give `answer`, or `a` and `b`")
        if is_pair:
            bounded = self.min_score is not None or self.max_score is not None
            if self.expect not in ("a", "b", "tie") or bounded:
                raise ValueError("a pair needs `expect: a | b | tie` (and no min_score / max_score)")
        elif self.expect in ("a", "b", "tie"):
            raise ValueError("an answer takes `expect: pass | fail`")
        elif self.expect is None and self.min_score is None and self.max_score is None:
            raise ValueError("say what the answer must get: `expect`, `min_score` or `max_score`")
        return self


class PositionProbe(Section):
    """Pairs asked in both orders: does the verdict follow the answer or the position?"""

    data: DataSource
    min_consistency_rate: float | None = Field(default=0.8, ge=0, le=1)


class VerbosityProbe(Section):
    """The worse answer of each labelled pair, padded or turned into a long list, against the better."""

    data: DataSource
    styles: list[Literal["padded", "list"]] = Field(default_factory=lambda: ["padded", "list"], min_length=1)
    max_padded_win_rate: float | None = Field(default=0.2, ge=0, le=1)
    max_win_rate_increase: float | None = Field(default=None, ge=-1, le=1)


class AttackProbe(Section):
    """Answers that do not answer (openers, lone tokens, the adversarial set) must not pass."""

    data: DataSource | None = Field(default=None, description="questions (with a good answer) for "
                                    "the opener attacks; none = adversarial set only")
    openers: list[str] = Field(default_factory=lambda: list(DEFAULT_OPENERS))
    adversarial_set: bool | str = Field(default=True, description="true: the shipped set; a path: "
                                        "your own file of the same shape; false: none")
    adversarial_limit: int | None = Field(default=None, ge=1)
    tool_results: bool | None = Field(default=None, description="also plant each adversarial completion "
                                      "in a tool result of a trajectory whose final answer does not "
                                      "answer; default: when the judge reads trajectories (pointwise "
                                      "and group judges)")
    max_false_positive_rate: float | None = Field(default=0.05, ge=0, le=1)

    @model_validator(mode="after")
    def _something(self) -> AttackProbe:
        if self.data is None and self.adversarial_set is False:
            raise ValueError("no attacks to run: give `data` or keep `adversarial_set`")
        if self.data is not None and not self.openers:
            raise ValueError("`data` gives questions for the `openers`, but `openers` is empty")
        return self


class PanelSection(BaseModel):
    """Thresholds on a panel judge's own figures (validate/sections/panel.py), which are measured on
    the human_labels items whenever the judge validated is a panel; this entry only gates them, so it
    is no `Section` (it has no runner and no data of its own)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: the figures are reported, not gated")
    thresholds = Section.thresholds

    max_abstention_rate: float | None = Field(default=None, ge=0, le=1,
                                              description="share of items the panel abstained on")
    max_quorum_failure_rate: float | None = Field(default=None, ge=0, le=1)
    min_members_percent_agreement: float | None = Field(default=None, ge=0, le=1)
    min_members_kappa: float | None = Field(default=None, ge=-1, le=1,
                                            description="mean Cohen's kappa over every two members")
    min_fleiss_kappa: float | None = Field(default=None, ge=-1, le=1)


class BiasSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: PositionProbe | None = None
    verbosity: VerbosityProbe | None = None
    attacks: AttackProbe | None = None


class Bootstrap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resamples: int = Field(default=1000, ge=100, le=100_000)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    seed: int = 0


class Suite(FileBacked):
    """A whole validation suite."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    judge: str | None = Field(default=None, description="judge of the reward config to validate")
    pass_threshold: float = Field(default=0.5, ge=0, le=1,
                                  description="a score at or above this is a pass")
    use_cache: bool = Field(default=False, description="let the judge cache answer repeated calls "
                            "(off: validation measures the judge, not the cache)")
    bootstrap: Bootstrap = Field(default_factory=Bootstrap)
    consistency: ConsistencySection | None = None
    agreement: AgreementSection | None = None
    human_labels: HumanLabelsSection | None = None
    regression: RegressionSection | None = None
    bias: BiasSection | None = None
    panel: PanelSection | None = Field(default=None, description="thresholds on a panel judge's figures "
                                       "(measured with human_labels)")

    def sections(self) -> list[tuple[str, Section]]:
        """The enabled sections, in the order they run, with their report names."""
        found: list[tuple[str, Section | None]] = [
            ("consistency", self.consistency), ("agreement", self.agreement),
            ("human_labels", self.human_labels), ("regression", self.regression)]
        if self.bias is not None:
            found += [("bias.position", self.bias.position), ("bias.verbosity", self.bias.verbosity),
                      ("bias.attacks", self.bias.attacks)]
        return [(name, section) for name, section in found if section is not None and section.enabled]

    def thresholds(self) -> list[Threshold]:
        found = [threshold for name, section in self.sections() for threshold in section.thresholds(name)]
        if self.panel is not None and self.panel.enabled:
            found += self.panel.thresholds("panel")
        return found

    def resolve(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.base_dir / path


def load_suite(source: str | Path | dict[str, Any], overrides: list[str] | None = None) -> Suite:
    """Load a suite from YAML or a dict; relative paths resolve against the suite file's folder."""
    suite = load_file_backed(Suite, source, overrides)
    if not suite.sections():
        raise ConfigError("the suite has no enabled section (consistency, agreement, human_labels, "
                          "regression, bias)", path=suite.source)
    return suite


def load_regression_items(section: RegressionSection, suite: Suite) -> list[RegressionItem]:
    """The regression cases, from `file` (a YAML list or `{items: [...]}`) or inline `items`."""
    if section.file is not None:
        path = suite.resolve(section.file)
        if not path.is_file():
            raise ConfigError("regression file not found", path=str(path), field="regression.file")
        import yaml

        from judgerl.safe_yaml import load_yaml

        try:
            raw = load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", path=str(path)) from exc
        rows = raw.get("items") if isinstance(raw, dict) else raw
        source, prefix = str(path), "items"
    else:
        rows, source, prefix = section.items, suite.source, "regression.items"
    if not isinstance(rows, list) or not rows:
        raise ConfigError("expected a non-empty list of regression items", path=source, field=prefix)
    items = []
    for position, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ConfigError("each item must be a mapping", path=source, field=f"{prefix}.{position}")
        try:
            items.append(RegressionItem.model_validate(row))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            field = f"{prefix}.{position}" + (f".{where}" if where else "")
            label = f" (id '{row['id']}')" if isinstance(row.get("id"), str) else ""
            raise ConfigError(f"{error['msg']}{label}", path=source, field=field) from None
    ids = [item.id for item in items]
    duplicated = sorted({item_id for item_id in ids if ids.count(item_id) > 1})
    if duplicated:
        raise ConfigError(f"duplicated id(s): {duplicated}", path=source, field=prefix)
    return items
