"""A persistent, content-addressed SQLite cache of judge completions.

Why: GRPO groups repeat answers, re-runs after a crash repeat whole batches, and evaluation
re-scores the same outputs; a judge call costs money and seconds. The key is the sha256 of the
backend's identity (kind, model) and every request field that changes the output (rendered
messages, sampling parameters, JSON mode, log-probabilities), so a hit is always the answer the
same call would have produced. Values are `Completion.to_dict()` as JSON. Only answers that the
judge could parse are stored (the runtime asks the judge's parser first, see reward/runtime.py),
so a rerun never replays an unusable answer; an entry that no longer parses is dropped.

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
from judgerl.errors import ConfigError

KEY_VERSION = "judgerl-cache-v1"
CACHE_FIELD = "runtime.cache_path"


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
    # surrogatepass: a lone surrogate in a prompt must give a key, not a UnicodeEncodeError
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class CompletionCache:
    """`get(key) -> Completion | None`, `put(key, completion)`, `discard(key)`; one SQLite file.

    A path that cannot hold the cache (a folder, a file that is not SQLite, a folder that cannot
    be created) is a `ConfigError` naming `runtime.cache_path`, raised here, before any call.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a folder; give a file name for the SQLite cache",
                              field=CACHE_FIELD)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open {self.path} as the judge cache: {exc}",
                              field=CACHE_FIELD) from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS completions ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)")
            self._conn.execute("SELECT key, value FROM completions LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            self._conn.close()
            raise ConfigError(f"{self.path} is not a judgerl cache (SQLite said: {exc}); point "
                              "runtime.cache_path at a new file or delete this one",
                              field=CACHE_FIELD) from exc

    def get(self, key: str) -> Completion | None:
        """The cached completion, or None (also for an entry that cannot be read: it is dropped)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if not row:
            return None
        try:
            return Completion.from_dict(json.loads(row[0]))
        except (ValueError, TypeError, KeyError):
            self.discard(key)
            return None

    def put(self, key: str, completion: Completion) -> None:
        value = json.dumps(completion.to_dict(), ensure_ascii=False)
        if not value.isascii() and _has_surrogate(value):
            value = json.dumps(completion.to_dict())  # SQLite stores UTF-8: escape lone surrogates
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO completions (key, value, created) VALUES (?, ?, ?)",
                               (key, value, time.time()))

    def discard(self, key: str) -> bool:
        """Drop one entry (an answer that turned out to be unusable); True if there was one."""
        with self._lock:
            cursor = self._conn.execute("DELETE FROM completions WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
