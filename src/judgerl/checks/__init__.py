"""Deterministic checks: cheap, pure reward components that run before any judge call.

Each check type is a small class configured from a `CheckConfig` (its extra keys are the
options, validated strictly: an unknown or bad option raises `ConfigError` naming
`checks.<name>.<option>`). A built check is a callable `(sample, rollout) -> Score` whose
score is named after the check.

>>> from pathlib import Path
>>> from judgerl.config import CheckConfig
>>> from judgerl.types import Rollout, Sample
>>> check = build_check(CheckConfig(name="short", type="length", unit="words", max=5), Path("."))
>>> check(Sample(id="s", messages=[]), Rollout("s", "Yes, it is.")).value
1.0
>>> sorted(CHECK_TYPES)  # doctest: +NORMALIZE_WHITESPACE
['item_count', 'item_duplicates', 'json_schema', 'json_valid', 'language', 'length', 'match',
 'quote_grounding', 'safety', 'tool_arguments', 'tool_calls', 'tool_grounding',
 'tool_results_authentic']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgerl.checks.base import BaseCheck, Check, CheckOptions
from judgerl.checks.grounding import QuoteGroundingCheck
from judgerl.checks.json_checks import JsonSchemaCheck, JsonValidCheck
from judgerl.checks.json_items import ItemCountCheck, ItemDuplicatesCheck
from judgerl.checks.language import LanguageCheck
from judgerl.checks.length import LengthCheck
from judgerl.checks.match import MatchCheck
from judgerl.checks.safety import SafetyCheck
from judgerl.checks.tool_use import (
    ToolArgumentsCheck,
    ToolCallsCheck,
    ToolGroundingCheck,
    ToolResultsAuthenticCheck,
)
from judgerl.config import CheckConfig
from judgerl.errors import ConfigError

CHECK_TYPES: dict[str, type[BaseCheck]] = {
    "json_valid": JsonValidCheck,
    "json_schema": JsonSchemaCheck,
    "length": LengthCheck,
    "language": LanguageCheck,
    "safety": SafetyCheck,
    "match": MatchCheck,
    "quote_grounding": QuoteGroundingCheck,
    "item_count": ItemCountCheck,
    "item_duplicates": ItemDuplicatesCheck,
    "tool_arguments": ToolArgumentsCheck,
    "tool_calls": ToolCallsCheck,
    "tool_grounding": ToolGroundingCheck,
    "tool_results_authentic": ToolResultsAuthenticCheck,
}


def build_check(config: CheckConfig, base_dir: Path) -> Check:
    """Build a check from its config; relative files (schemas, word lists) resolve against base_dir."""
    check_type = CHECK_TYPES.get(config.type)
    if check_type is None:
        raise ConfigError(f"unknown check type {config.type!r}; known: {', '.join(sorted(CHECK_TYPES))}",
                          field=f"checks.{config.name}.type")
    return check_type.from_config(config, Path(base_dir))


def describe_check_types() -> list[dict[str, Any]]:
    """Every check type with its summary and options (name, type, default, description), for docs.

    >>> [row["type"] for row in describe_check_types()][:2]
    ['json_valid', 'json_schema']
    """
    rows = []
    for name, check_type in CHECK_TYPES.items():
        options = []
        for field_name, field in check_type.Options.model_fields.items():
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            options.append({"name": field.alias or field_name,
                            "type": str(field.annotation).replace("typing.", ""),
                            "default": default, "description": field.description or ""})
        rows.append({"type": name, "summary": check_type.summary, "options": options})
    return rows


__all__ = ["CHECK_TYPES", "BaseCheck", "Check", "CheckOptions", "build_check", "describe_check_types"]
