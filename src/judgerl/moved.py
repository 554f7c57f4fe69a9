"""Old module paths, kept importable for one release after the reorganisation into layers.

Why not a re-export file at each old path: a file left there keeps git from seeing the move, so
work done on the old file in parallel would not follow it to the new one when branches merge.
Instead, `judgerl/__init__.py` installs `MovedModules`, an import hook consulted only after the
normal import system found nothing: `import judgerl.reward.runtime` gives the module
`judgerl.runtime.model_runtime` itself (same object, so every name and every monkeypatch agree),
with a DeprecationWarning naming the new path. The hook imports nothing until an old path is asked
for. Remove it in the release after next.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

#: old path -> new path
MOVED: dict[str, str] = {
    "judgerl.reward.runtime": "judgerl.runtime.model_runtime",
    "judgerl.reward.ratelimit": "judgerl.runtime.ratelimit",
    "judgerl.reward.breaker": "judgerl.runtime.breaker",
    "judgerl.reward.cache": "judgerl.runtime.cache",
    "judgerl.reward.journal": "judgerl.runtime.journal",
    "judgerl.reward.accounting": "judgerl.runtime.accounting",
    "judgerl.reward.loop": "judgerl.runtime.loop",
    "judgerl.reward.aggregate": "judgerl.aggregate",
    "judgerl.backends.dry_run": "judgerl.reward.dry_run",
    "judgerl.backends.prefix_cache": "judgerl.backends.local.prefix_cache",
    "judgerl.prompting": "judgerl.judges.templates",
    "judgerl.policy": "judgerl.models.policy",
    "judgerl.evaluate": "judgerl.run.evaluate",
    "judgerl.export": "judgerl.run.export",
    "judgerl.model_card": "judgerl.run.model_card",
    "judgerl.report": "judgerl.run.report",
    "judgerl.workflow": "judgerl.run.workflow",
    "judgerl.scoring": "judgerl.run.score",
    "judgerl.train.prompts": "judgerl.train.splits",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old path of `MOVED` and loads it as the module at its new path.

    The import system stamps the old path's spec on whatever `create_module` returns; the module's
    own spec is put back in `exec_module`, so the new module keeps its name for reloads and tools.
    """

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the release after next",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._own_specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module is the new one, already executed: only its own spec is restored."""
        module.__spec__ = self._own_specs.pop(module.__spec__.name, module.__spec__)


def install() -> None:
    """Add the hook once, after the normal finders (it only answers for paths that no longer exist)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
