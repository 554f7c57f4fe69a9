"""Combining reward components: a weighted mean, or a formula such as `schema * quality`.

Formulas are evaluated with a tiny whitelist over Python's own parser (numbers, component
names, + - * / **, parentheses, min, max, clip), so a config file can never run code.

Everything that can be known about a formula is checked when the config loads (`Formula(...)`
raises `ConfigError`): only the operators and functions listed above, functions called (never
used as values) with a valid number of positional arguments, finite numeric constants no larger
than `MAX_CONSTANT`, constant exponents no larger than `MAX_EXPONENT`, constant sub-expressions
that evaluate (so `9**9**9` and `1e999` are refused), and at most `MAX_FORMULA_CHARS` characters,
`MAX_NODES` nodes and `MAX_DEPTH` levels (so evaluation can never run out of stack). What only
the values can decide (a division by a component that is 0, an overflow, a NaN) raises
`FormulaEvaluationError` when the row is scored; the pipeline makes that row unscored with the
reason, and the other rows are scored.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

from judgerl.errors import ConfigError

#: longest formula text accepted
MAX_FORMULA_CHARS = 2000
#: most syntax nodes (names, numbers, operators, calls) in one formula
MAX_NODES = 500
#: deepest nesting of operations (bounds the recursion of the evaluator)
MAX_DEPTH = 32
#: largest absolute value of a number written in a formula
MAX_CONSTANT = 1e6
#: largest absolute value of a constant exponent (components live in [0, 1])
MAX_EXPONENT = 100.0

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _clip(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


#: name -> (function, fewest positional arguments, most positional arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    "min": (min, 2, 64), "max": (max, 2, 64), "clip": (_clip, 1, 3),
}
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


class FormulaEvaluationError(ArithmeticError):
    """A formula could not be computed for one row's values (division by zero, overflow, NaN)."""


def weighted_mean(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted mean over the components that have weight.

    >>> weighted_mean({"a": 1.0, "b": 0.0}, {"a": 3, "b": 1})
    0.75
    """
    total = sum(weights[name] for name in values)
    if total <= 0:
        raise FormulaEvaluationError("all weights of the components present are zero")
    return sum(values[name] * weights[name] for name in values) / total


class Formula:
    """A parsed and fully validated aggregate formula.

    >>> Formula("schema * quality", {"schema", "quality"})({"schema": 1.0, "quality": 0.5})
    0.5
    >>> Formula("max(a, b) - 0.1", {"a", "b"})({"a": 0.2, "b": 0.7})
    0.6
    >>> Formula("a % 2", {"a"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    judgerl.errors.ConfigError: field 'aggregate.formula': formula 'a % 2': operator '%' is not allowed; ...
    >>> Formula("min(1, a / b)", {"a", "b"})({"a": 0.5, "b": 0.0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    judgerl.reward.aggregate.FormulaEvaluationError: formula 'min(1, a / b)' failed ...: division by zero
    """

    field = "aggregate.formula"

    def __init__(self, text: str, names: set[str]) -> None:
        self.text = text
        if len(text) > MAX_FORMULA_CHARS:
            raise self._error(f"{len(text):,} characters long; at most {MAX_FORMULA_CHARS:,} are allowed")
        try:
            self._tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise self._error(f"not an expression: {exc.msg}") from exc
        except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
            raise self._error(f"cannot be parsed ({type(exc).__name__})") from exc
        self.names = self._check(self._tree.body, names)

    def _error(self, detail: str) -> ConfigError:
        shown = self.text if len(self.text) <= 80 else self.text[:60] + " ..."
        return ConfigError(f"formula '{shown}': {detail}", field=self.field)

    # -- validation (config time) ------------------------------------------------------------

    def _check(self, root: ast.AST, names: set[str]) -> set[str]:
        """Walk the tree (iteratively: no recursion on untrusted input) and refuse what cannot run."""
        used: set[str] = set()
        count = 0
        stack: list[tuple[ast.AST, int, bool]] = [(root, 1, False)]
        while stack:
            node, depth, is_callee = stack.pop()
            count += 1
            if count > MAX_NODES:
                raise self._error(f"more than {MAX_NODES} terms; simplify it")
            if depth > MAX_DEPTH:
                raise self._error(f"nested more than {MAX_DEPTH} levels deep; simplify it")
            children: list[ast.AST] = []
            if isinstance(node, ast.Constant):
                self._check_constant(node.value)
            elif isinstance(node, ast.Name):
                if is_callee:
                    continue
                if node.id in names:
                    used.add(node.id)
                elif node.id in _FUNCTIONS:
                    raise self._error(f"'{node.id}' is a function; call it, e.g. {node.id}(a, b)")
                else:
                    raise self._error(f"unknown component '{node.id}'; known: {sorted(names)}")
            elif isinstance(node, ast.BinOp):
                symbol = _SYMBOLS.get(type(node.op))
                if symbol is None:
                    raise self._error(f"operator '{_operator_text(node.op)}' is not allowed; "
                                      "use + - * / ** min max clip")
                if isinstance(node.op, ast.Pow):
                    self._check_exponent(node.right)
                children = [node.left, node.right]
            elif isinstance(node, ast.UnaryOp):
                if type(node.op) not in _UNARY:
                    raise self._error(f"operator '{_operator_text(node.op)}' is not allowed; "
                                      "use + - * / ** min max clip")
                children = [node.operand]
            elif isinstance(node, ast.Call):
                children = self._check_call(node)
            else:
                raise self._error(f"'{type(node).__name__}' is not allowed; "
                                  "use numbers, component names, + - * / **, min, max, clip")
            stack.extend((child, depth + 1, isinstance(node, ast.Call) and child is node.func)
                         for child in children)
        self._check_constant_parts(root)
        return used

    def _check_constant(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._error(f"{value!r} is not a number")
        if not math.isfinite(value) or abs(value) > MAX_CONSTANT:
            raise self._error(f"the number {value!r} is out of range (at most {MAX_CONSTANT:g} "
                              "in absolute value)")

    def _check_exponent(self, exponent: ast.AST) -> None:
        value = _constant_value(exponent)
        if value is not None and abs(value) > MAX_EXPONENT:
            raise self._error(f"the exponent {value:g} is out of range (at most {MAX_EXPONENT:g})")

    def _check_call(self, node: ast.Call) -> list[ast.AST]:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise self._error(f"only {sorted(_FUNCTIONS)} may be called")
        name = node.func.id
        if node.keywords:
            raise self._error(f"{name}() takes positional arguments only, e.g. clip(x, 0.2, 0.8)")
        _function, fewest, most = _FUNCTIONS[name]
        if not fewest <= len(node.args) <= most:
            wanted = f"{fewest} to {most}" if name == "clip" else f"at least {fewest}"
            raise self._error(f"{name}() needs {wanted} arguments, got {len(node.args)}")
        return [node.func, *node.args]

    def _check_constant_parts(self, root: ast.AST) -> None:
        """Evaluate every sub-expression that uses no component: it must give a finite number."""
        for node in ast.walk(root):
            if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) and not any(
                    isinstance(inner, ast.Name) and inner.id not in _FUNCTIONS for inner in ast.walk(node)):
                try:
                    value = self._eval(node, {})
                except (ArithmeticError, ValueError, TypeError) as exc:
                    raise self._error(f"'{ast.unparse(node)}' cannot be computed: {_describe(exc)}") from exc
                if not math.isfinite(value):
                    raise self._error(f"'{ast.unparse(node)}' is {value}")

    # -- evaluation (scoring time) -----------------------------------------------------------

    def __call__(self, values: Mapping[str, float]) -> float:
        """The formula for one row's component values, clipped to [0, 1]."""
        try:
            result = self._eval(self._tree.body, values)
        except (ArithmeticError, ValueError, TypeError) as exc:  # ZeroDivision, Overflow, complex powers
            raise FormulaEvaluationError(f"formula '{self.text}' failed for these values: "
                                         f"{_describe(exc)}") from exc
        if not math.isfinite(result):
            raise FormulaEvaluationError(f"formula '{self.text}' gave {result} for these values")
        return max(0.0, min(1.0, result))

    def _eval(self, node: ast.AST, values: Mapping[str, float]) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(values[node.id])
        if isinstance(node, ast.BinOp):
            result = _BINARY[type(node.op)](self._eval(node.left, values), self._eval(node.right, values))
            if isinstance(result, complex):  # a negative number to a fractional power
                raise ValueError(f"{ast.unparse(node)} is not a real number")
            return float(result)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, values))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            function = _FUNCTIONS[node.func.id][0]
            return float(function(*(self._eval(arg, values) for arg in node.args)))
        raise TypeError(f"unsupported expression {type(node).__name__}")  # refused by _check


def _constant_value(node: ast.AST) -> float | None:
    """The value of a literal number, possibly signed; None for anything else."""
    sign = 1.0
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return sign * float(node.value)
    return None


def _describe(exc: BaseException) -> str:
    """A short, plain account of an arithmetic failure."""
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, OverflowError):
        return "the result is too large (overflow)"
    return str(exc)


def _operator_text(op: ast.AST) -> str:
    return {ast.Mod: "%", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
            ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.Not: "not",
            ast.Invert: "~"}.get(type(op), type(op).__name__)
