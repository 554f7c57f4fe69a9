"""The LLM judges and the registry that builds them from a reward config's `judges:` list.

Why a registry: the config names a judge by `type` (rubric, pairwise, group, itemized_rubric,
panel); this module maps that name to a class and validates the judge's own options there, so
that a typo is reported as `judges.<name>.<field>` when the config is loaded, not as a failed call
in the middle of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from judgerl.errors import ConfigError
from judgerl.judges.base import ComparingJudge, Judge, PointwiseJudge
from judgerl.judges.group import GroupJudge
from judgerl.judges.itemized import ItemizedRubricJudge
from judgerl.judges.pairwise import PairwiseJudge
from judgerl.judges.panel import MEMBER_TYPES, PanelJudge
from judgerl.judges.rubric import RubricJudge

if TYPE_CHECKING:
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

JUDGE_TYPES: dict[str, type[Judge]] = {
    "rubric": RubricJudge,
    "pairwise": PairwiseJudge,
    "group": GroupJudge,
    "itemized_rubric": ItemizedRubricJudge,
    "panel": PanelJudge,
}
assert set(JUDGE_TYPES) == {*MEMBER_TYPES, "panel"}, "a new judge type is also a panel member type"


def needs_own_backend(config: JudgeConfig) -> bool:
    """Whether the judge calls a backend of its own (`backend`); a panel's members name theirs."""
    return config.type != "panel"


def build_judge(config: JudgeConfig, runtime: ModelRuntime, base_dir: Path | None = None) -> Judge:
    """Build the judge `config.type` names; relative paths (prompt_file) resolve against `base_dir`."""
    judge_type = JUDGE_TYPES.get(config.type)
    if judge_type is None:
        raise ConfigError(f"unknown judge type '{config.type}'; known: {sorted(JUDGE_TYPES)}",
                          field=f"judges.{config.name}.type")
    if needs_own_backend(config) and config.backend not in runtime.backends:
        raise ConfigError(f"backend '{config.backend}' is not defined (defined: {sorted(runtime.backends)})",
                          field=f"judges.{config.name}.backend")
    return judge_type(config, runtime, base_dir=base_dir)  # type: ignore[call-arg]


__all__ = ["JUDGE_TYPES", "ComparingJudge", "GroupJudge", "ItemizedRubricJudge", "Judge", "PairwiseJudge",
           "PanelJudge", "PointwiseJudge", "RubricJudge", "build_judge", "needs_own_backend"]
