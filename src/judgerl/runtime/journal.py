"""The journal: one JSON line per judgment, written and flushed as it happens.

Why: every judgment must be traceable (prompt hash, judge and prompt version, raw output, parsed
scores, rationale, latency, tokens, attempts, outcome), and nothing may be lost when a run is
killed. Each `write` appends one line and flushes it to the OS, so a SIGKILL loses at most the
line being written. A lock makes it safe from several threads and tasks.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from judgerl.errors import DataError


class Journal:
    """Append-only JSONL file (optional) plus the in-memory list of entries."""

    def __init__(self, path: str | Path | None = None, *, keep_in_memory: bool = True) -> None:
        self.path = Path(path) if path else None
        self.entries: list[dict[str, Any]] = []
        self.keep_in_memory = keep_in_memory
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, entry: dict[str, Any]) -> None:
        entry = dict(entry)
        entry.setdefault("ts", round(time.time(), 3))
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock:
            if self.keep_in_memory:
                self.entries.append(entry)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Read a journal back; a torn last line (a killed run) is skipped."""
    entries = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break  # the torn last line of a killed run: not a finished judgment
            raise DataError(f"not valid JSON: {exc}", path=str(path), line=number) from exc
    return entries
