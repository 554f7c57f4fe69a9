"""Folders written so that a killed process never leaves half of one where a reader would take it.

Why a module: the export and `materialize` (a merged model folder) both write a whole folder of
weights; each writes into a fresh sibling folder and renames it into place only when it is
complete, and removes it when anything fails. One context manager does that for both.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """A fresh folder beside `out` to write into; when the block ends normally it replaces `out`
    (an existing `out` is removed first), when it raises it is deleted.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> with staged_folder(root / "model") as folder:
    ...     _ = (folder / "weights").write_text("w")
    >>> sorted(path.name for path in root.iterdir()), (root / "model" / "weights").read_text()
    (['model'], 'w')
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
