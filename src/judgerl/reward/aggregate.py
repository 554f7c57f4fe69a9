"""Combining reward components: a weighted mean, or a formula such as `schema * quality`.

Formulas are evaluated with a tiny whitelist over Python's own parser (numbers, component
names, + - * / **, parentheses, min, max, clip), so a config file can never run code.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from judgerl.errors import ConfigError

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min, "max": max, "clip": lambda x, lo=0.0, hi=1.0: max(lo, min(hi, x)),
}


def weighted_mean(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted mean over the components that have weight.

    >>> weighted_mean({"a": 1.0, "b": 0.0}, {"a": 3, "b": 1})
    0.75
    """
    total = sum(weights[name] for name in values)
    if total <= 0:
        raise ConfigError("all component weights are zero", field="weight")
    return sum(values[name] * weights[name] for name in values) / total


class Formula:
    """A parsed aggregate formula.

    >>> Formula("schema * quality", {"schema", "quality"})({"schema": 1.0, "quality": 0.5})
    0.5
    >>> Formula("max(a, b) - 0.1", {"a", "b"})({"a": 0.2, "b": 0.7})
    0.6
    """

    def __init__(self, text: str, names: set[str]) -> None:
        self.text = text
        try:
            self._tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"formula '{text}' is not an expression: {exc.msg}",
                              field="aggregate.formula") from exc
        self.names = self._check(self._tree.body, names)

    def _check(self, node: ast.AST, names: set[str]) -> set[str]:
        used: set[str] = set()
        for child in ast.walk(node):
            if isinstance(child, ast.Name):
                if child.id not in names and child.id not in _FUNCTIONS:
                    raise ConfigError(f"formula '{self.text}' uses unknown component '{child.id}'; "
                                      f"known: {sorted(names)}", field="aggregate.formula")
                if child.id in names:
                    used.add(child.id)
            elif isinstance(child, ast.Call):
                if not isinstance(child.func, ast.Name) or child.func.id not in _FUNCTIONS:
                    raise ConfigError(f"formula '{self.text}': only {sorted(_FUNCTIONS)} may be called",
                                      field="aggregate.formula")
            elif not isinstance(child, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant,
                                        ast.Load, ast.operator, ast.unaryop, ast.Call)):
                raise ConfigError(f"formula '{self.text}': '{type(child).__name__}' is not allowed",
                                  field="aggregate.formula")
        return used

    def __call__(self, values: Mapping[str, float]) -> float:
        result = self._eval(self._tree.body, values)
        if not math.isfinite(result):
            raise ValueError(f"formula '{self.text}' gave {result}")
        return max(0.0, min(1.0, result))

    def _eval(self, node: ast.AST, values: Mapping[str, float]) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, values), self._eval(node.right, values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._eval(node.operand, values)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return _FUNCTIONS[node.func.id](*(self._eval(arg, values) for arg in node.args))
        raise ConfigError(f"formula '{self.text}': unsupported expression", field="aggregate.formula")
