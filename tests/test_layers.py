"""The package's folders are its layers: no module imports a higher layer, and no imports go in a circle.

Why a test: the layering (docs/architecture.md, "Layers") is what lets a reader change the judges
without reading the trainer, or the runtime without reading the judges. It decays one convenient
import at a time, and a function-level import hides it from every reader. This test parses every
module under `src/judgerl` with `ast` (nothing is imported or run), collects every `import` and
`from ... import` at any depth (module level, inside functions, under `if TYPE_CHECKING`), and fails
when a module imports one of a higher layer, or when modules import each other in a circle.

The order below is written once here and once in docs/architecture.md; the test checks that the two
agree.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "src" / "judgerl"

#: lowest first; a module may import its own layer and those before it. A module belongs to the
#: layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("judgerl.errors", "judgerl.types", "judgerl.config", "judgerl.data", "judgerl.version",
              "judgerl.trajectory", "judgerl.atomic", "judgerl.safe_yaml", "judgerl.aggregate",
              "judgerl.rubric_items")),
    ("models", ("judgerl.models",)),
    ("backends", ("judgerl.backends",)),
    ("runtime", ("judgerl.runtime",)),
    ("checks", ("judgerl.checks",)),
    ("judges", ("judgerl.judges",)),
    ("reward", ("judgerl.reward",)),
    ("adapters", ("judgerl.adapters",)),
    ("validate", ("judgerl.validate",)),
    ("train", ("judgerl.train",)),
    ("run", ("judgerl.run",)),
    ("distill", ("judgerl.distill",)),
    ("entry", ("judgerl.cli", "judgerl", "judgerl.moved")),
)

@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}: {self.why}"


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package folder."""
    root_name = package_dir.name
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (root_name, *path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that `name` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    root = name.split(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from judgerl.x import y` imports the module judgerl.x.y when there is one
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                       for alias in node.names]
        for target in targets:
            if target.split(".")[0] != root:
                continue
            while target not in known and "." in target:  # `import judgerl.a.b` of a name, not a module
                target = target.rpartition(".")[0]
            if target != name:
                found.add(target)
    return found


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    modules = module_files(package_dir)
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def layer_of(module: str, layers: tuple[tuple[str, tuple[str, ...]], ...]) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            # the root package names only itself: a new top-level module must be given a layer
            names_it = module == prefix or ("." in prefix and module.startswith(prefix + "."))
            if names_it and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            if children:
                child = children.pop()
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check_layers(package_dir: Path, layers: tuple[tuple[str, tuple[str, ...]], ...]) -> list[Violation]:
    """Every upward import, every module in no layer, and every circle, as violations."""
    graph = import_graph(package_dir)
    violations: list[Violation] = []
    for importer, targets in sorted(graph.items()):
        importer_layer = layer_of(importer, layers)
        if importer_layer is None:
            violations.append(Violation(importer, "-", "the module is in no layer: add it to LAYERS"))
            continue
        for imported in sorted(targets):
            imported_layer = layer_of(imported, layers)
            if imported_layer is not None and imported_layer > importer_layer:
                lower, higher = layers[importer_layer][0], layers[imported_layer][0]
                violations.append(Violation(importer, imported,
                                            f"layer {lower!r} imports the higher layer {higher!r}"))
    for component in circles(graph):
        violations.append(Violation(component[0], " -> ".join(component), "these modules import each other"))
    return violations


# -- the package ---------------------------------------------------------------------------------


def test_no_module_imports_a_higher_layer_and_no_circles() -> None:
    violations = check_layers(PACKAGE_DIR, LAYERS)
    assert not violations, "\n".join(map(str, violations))


def test_the_architecture_note_lists_the_same_layers() -> None:
    note = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\d+\. \*\*(\w+)\*\*", note, flags=re.MULTILINE)
    assert listed == [name for name, _ in LAYERS]


# -- the checker itself can fail -----------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    for relative, text in files.items():
        path = package / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


TOY_LAYERS = (("low", ("pkg.low",)), ("high", ("pkg.high",)), ("entry", ("pkg",)))


def test_checker_finds_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high.b import g\n    return g\n",
        "high/__init__.py": "",
        "high/b.py": "from pkg.low import a\n",
    })
    violations = check_layers(package, TOY_LAYERS)
    assert any(v.importer == "pkg.low.a" and v.imported == "pkg.high.b" for v in violations)


def test_checker_finds_a_circle_and_a_relative_import(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": "",
        "high/__init__.py": "",
        "high/b.py": "from . import c\n",
        "high/c.py": "from pkg.high.b import thing\n",
    })
    violations = check_layers(package, TOY_LAYERS)
    assert [v.imported for v in violations] == ["pkg.high.b -> pkg.high.c"]


def test_checker_finds_a_module_in_no_layer(tmp_path: Path) -> None:
    package = write_package(tmp_path, {"__init__.py": "", "stray.py": "", "low/__init__.py": ""})
    layers = (("low", ("pkg.low",)),)
    assert [v.importer for v in check_layers(package, layers)] == ["pkg", "pkg.stray"]


def test_checker_passes_a_clean_package(tmp_path: Path) -> None:
    package = write_package(tmp_path, {
        "__init__.py": "from pkg.high.b import x\n",
        "low/__init__.py": "",
        "low/a.py": "",
        "high/__init__.py": "",
        "high/b.py": "from ..low import a\nimport pkg.low.a\n",
    })
    assert check_layers(package, TOY_LAYERS) == []


@pytest.mark.parametrize("module, layer", [("judgerl.cli", "entry"), ("judgerl", "entry"),
                                           ("judgerl.reward.pipeline", "reward"),
                                           ("judgerl.errors", "core")])
def test_layer_of_takes_the_longest_prefix(module: str, layer: str) -> None:
    index = layer_of(module, LAYERS)
    assert index is not None and LAYERS[index][0] == layer


def test_old_import_paths_still_work() -> None:
    """Each old path of judgerl/moved.py imports as the very module of its new home (one release of
    grace), with a DeprecationWarning; and no file is left at an old path (git then sees the moves)."""
    import importlib
    import sys
    import warnings

    from judgerl.moved import MOVED

    modules = module_files(PACKAGE_DIR)
    for old, new in MOVED.items():
        assert old not in modules, f"{old} is a file again: remove it or take it out of MOVED"
        assert new in modules, f"{old} points to {new}, which does not exist"
        first_time = old not in sys.modules
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__.name == new  # the new module keeps its own name (reloads, tools)
        if first_time:
            assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    from judgerl.reward.runtime import JudgeRuntime, ModelRuntime  # the names users had

    from judgerl.runtime.model_runtime import ModelRuntime as new_runtime

    assert JudgeRuntime is ModelRuntime is new_runtime
    from judgerl.scoring import score_file

    assert score_file.__module__ == "judgerl.run.score"
