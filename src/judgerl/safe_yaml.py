"""The one YAML loader of judgerl: `yaml.safe_load` with bounds on alias expansion and nesting.

Why: `yaml.safe_load` never runs code, but it still accepts two kinds of bomb. Aliases are
loaded as shared references, so a "billion laughs" file of a few hundred bytes loads in
milliseconds and then expands to gigabytes the first time anything walks it (the cache key and
the request body of every judge call serialise `extra_body`); and deep nesting makes PyYAML's
recursive composer raise `RecursionError`, a traceback instead of a message. Every YAML file and
`--set` value judgerl reads goes through `load_yaml`, which refuses both while composing, before
anything is built: at most `MAX_DEPTH` levels of nesting, and at most `MAX_ALIAS_NODES` nodes
added by aliases (a recursive alias is refused too). Ordinary anchors (`<<: *defaults`) are
well inside the bound.

Errors are `YAMLLimitError`, a `yaml.YAMLError`, so callers that already turn YAML errors into a
`ConfigError` naming the file report these the same way.
"""

from __future__ import annotations

from typing import Any

import yaml

#: deepest nesting of mappings and lists accepted (a reward config needs about 6)
MAX_DEPTH = 100
#: most nodes that aliases may add to a document when expanded (anchors used a few times are fine)
MAX_ALIAS_NODES = 10_000


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over one of the loader's bounds (nesting depth, alias expansion)."""


class BoundedSafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that counts nesting depth and the nodes aliases expand to while composing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._alias_nodes = 0
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in its expansion (itself included)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise YAMLLimitError(f"alias *{event.anchor} refers to a node that contains it "
                                     f"(a recursive structure){_where(event)}")
            self._alias_nodes += size
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise YAMLLimitError(f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes "
                                     f"(a 'billion laughs' document?){_where(event)}")
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YAMLLimitError(f"nested more than {MAX_DEPTH} levels deep{_where(self.peek_event())}")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in _children(node))
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def load_yaml(text: str) -> Any:
    """Parse one YAML document safely and within bounds; raises `yaml.YAMLError` (or `YAMLLimitError`).

    >>> load_yaml("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    >>> load_yaml("[" * 200 + "]" * 200)
    Traceback (most recent call last):
    ...
    judgerl.safe_yaml.YAMLLimitError: nested more than 100 levels deep (line 1, column 101)
    """
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "BoundedSafeLoader", "YAMLLimitError", "load_yaml"]
