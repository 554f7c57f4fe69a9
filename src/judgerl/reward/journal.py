"""The journal: one JSON line per judgment, written and flushed as it happens.

Why: every judgment must be traceable (prompt hash, judge and prompt version, raw output, parsed
scores, rationale, latency, tokens, attempts, outcome), and nothing may be lost when a run is
killed. Each `write` appends one line and flushes it to the OS, so a SIGKILL loses at most the
line being written. A lock makes it safe from several threads and tasks.

Memory stays bounded however long the process runs (a training run or `judgerl serve` makes
millions of judgments): the file is the record; in memory the journal keeps only the most recent
`keep_in_memory` entries (a ring, default `RECENT_ENTRIES`) and counters (`written`, and
`outcomes`: judgments per outcome), with or without a `journal_path`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any, TextIO

from judgerl.errors import ConfigError, DataError

#: entries kept in memory by default (the most recent ones; the file keeps them all)
RECENT_ENTRIES = 1000
JOURNAL_FIELD = "runtime.journal_path"


class Journal:
    """Append-only JSONL file (optional), the most recent entries in memory, and counters."""

    def __init__(self, path: str | Path | None = None, *, keep_in_memory: int = RECENT_ENTRIES) -> None:
        if keep_in_memory < 0:
            raise ValueError("keep_in_memory must be >= 0")
        self.path = Path(path) if path else None
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep_in_memory)
        self.written = 0
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if self.path is not None:
            if self.path.is_dir():
                raise ConfigError(f"{self.path} is a folder; give a file name for the JSONL journal",
                                  field=JOURNAL_FIELD)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # backslashreplace: a lone surrogate (only ever inside a JSON string) is written as
                # its JSON escape, so every line stays valid UTF-8 and valid JSON
                self._file = self.path.open("a", encoding="utf-8", errors="backslashreplace")
            except OSError as exc:
                raise ConfigError(f"cannot open {self.path} for the journal: {exc}",
                                  field=JOURNAL_FIELD) from exc

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The most recent entries (at most `keep_in_memory`), oldest first."""
        with self._lock:
            return list(self.recent)

    def write(self, entry: dict[str, Any]) -> None:
        entry = dict(entry)
        entry.setdefault("ts", round(time.time(), 3))
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock:
            self.written += 1
            outcome = entry.get("outcome")
            if isinstance(outcome, str):
                self.outcomes[outcome] += 1
            if self.recent.maxlen:
                self.recent.append(entry)
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
