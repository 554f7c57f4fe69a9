"""A persistent, content-addressed SQLite cache of judge completions.

Why: GRPO groups repeat answers, re-runs after a crash repeat whole batches, and evaluation
re-scores the same outputs; a judge call costs money and seconds. The key is the sha256 of the
backend's identity (kind, model) and every request field that changes the output (rendered
messages, sampling parameters, JSON mode, log-probabilities), so a hit is always the answer the
same call would have produced. Values are `Completion.to_dict()` as JSON.

SQLite in WAL mode with a busy timeout is safe across processes (several trainers or score runs
sharing one cache file) and, with the lock here, across threads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from judgerl.backends.base import Completion, CompletionRequest

KEY_VERSION = "judgerl-cache-v1"


def cache_key(identity: dict[str, Any], request: CompletionRequest) -> str:
    """The content address of one call.

    >>> request = CompletionRequest(messages=[{"role": "user", "content": "hi"}])
    >>> a = cache_key({"kind": "openai", "model": "m"}, request)
    >>> a == cache_key({"model": "m", "kind": "openai"}, request), len(a)
    (True, 64)
    >>> a == cache_key({"kind": "openai", "model": "other"}, request)
    False
    """
    blob = json.dumps({"v": KEY_VERSION, "backend": identity, "request": request.cache_payload()},
                      sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CompletionCache:
    """`get(key) -> Completion | None`, `put(key, completion)`; one SQLite file."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS completions ("
            " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        return Completion.from_dict(json.loads(row[0])) if row else None

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(completion.to_dict(), ensure_ascii=False)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO completions (key, value, created) VALUES (?, ?, ?)",
                               (key, value, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
