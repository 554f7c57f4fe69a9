"""The tools a policy may call while it trains: Python functions named in the recipe.

Why a module: TRL's `GRPOTrainer(tools=[...])` runs a tool-calling loop (generate, parse the
calls with the tokenizer's response schema, call the functions, append the results, generate
again), and it wants Python callables whose JSON schema it builds from type hints and a
Google-style docstring. A recipe is YAML, so it names each function as `file.py:function`
(relative to the recipe's folder) or `package.module:function`; this module imports them, with
errors that name the recipe field, and gives the same schemas TRL shows the policy, for the
reward's tool checks (`Rollout.tools`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from judgerl.errors import ConfigError
from judgerl.train.recipe import Recipe


def load_tool(spec: str, resolve: Callable[[str], Path], *, field: str, source: str | None = None,
              ) -> Callable[..., Any]:
    """The function `spec` names (`file.py:function` or `package.module:function`)."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise ConfigError(f"{spec!r} is not 'file.py:function' or 'package.module:function'",
                          path=source, field=field)
    if where.endswith(".py"):
        file = resolve(where)
        if not file.is_file():
            raise ConfigError(f"no file {file}", path=source, field=field)
        module_name = "judgerl_tools_" + hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(module_name, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"cannot import {file}", path=source, field=field)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module  # TRL may pickle or re-inspect the functions
            module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise ConfigError(f"cannot import {where}: {exc}", path=source, field=field) from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"{where} has no function {name!r}", path=source, field=field)
    return function


def tool_schemas(functions: list[Callable[..., Any]], *, source: str | None = None,
                 field: str = "rollout.tools") -> list[dict[str, Any]]:
    """The OpenAI schema of each function, as TRL builds it (`transformers.utils.get_json_schema`)."""
    from transformers.utils import get_json_schema

    schemas = []
    for index, function in enumerate(functions):
        try:
            schema = get_json_schema(function)
        except Exception as exc:  # transformers raises its own parsing exceptions, one per problem
            raise ConfigError(f"{function.__name__}: TRL cannot build a tool schema from it ({exc}); it "
                              "needs type hints and a Google-style docstring with an Args: block",
                              path=source, field=f"{field}.{index}") from exc
        function_schema = {key: value for key, value in schema["function"].items() if key != "return"}
        schemas.append({"type": "function", "function": function_schema})
    return schemas


def recipe_tools(recipe: Recipe) -> list[Callable[..., Any]]:
    """The functions of `rollout.tools`, imported (an empty list when there are none)."""
    return [load_tool(spec, recipe.path, field=f"rollout.tools.{index}", source=recipe.source)
            for index, spec in enumerate(recipe.rollout.tools)]


__all__ = ["load_tool", "recipe_tools", "tool_schemas"]
