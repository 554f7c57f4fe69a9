"""The journal (JSONL, flushed per record) and the accounting snapshot."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import Price, RuntimeConfig
from judgerl.errors import BackendError, DataError
from judgerl.runtime.journal import Journal, read_journal
from judgerl.runtime.model_runtime import ModelRuntime


def test_each_record_is_on_disk_before_the_next(tmp_path: Path) -> None:
    runtime = ModelRuntime({}, RuntimeConfig(journal_path="runs/journal.jsonl"), base_dir=tmp_path)
    path = tmp_path / "runs" / "journal.jsonl"
    runtime.record({"sample_id": "s1", "outcome": "ok", "scores": {"q": 0.8}})
    # read by another file handle while the runtime is still open (what a SIGKILL would leave)
    assert [json.loads(line)["sample_id"] for line in path.read_text().splitlines()] == ["s1"]
    runtime.record({"sample_id": "s2", "outcome": "unscored", "reason": "timeout"})
    assert len(path.read_text().splitlines()) == 2
    assert [entry["sample_id"] for entry in runtime.journal_entries] == ["s1", "s2"]
    asyncio.run(runtime.aclose())


def test_journal_is_thread_safe(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    threads = [threading.Thread(target=lambda t=t: [journal.write({"t": t, "i": i, "pad": "x" * 500})
                                                    for i in range(200)]) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    journal.close()
    entries = read_journal(tmp_path / "j.jsonl")
    assert len(entries) == 800 and len({(e["t"], e["i"]) for e in entries}) == 800


def test_read_journal_skips_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert read_journal(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(DataError, match="line 2"):
        read_journal(path)


async def test_accounting_snapshot() -> None:
    def answer(request: CompletionRequest) -> Completion:
        if "fail" in request.messages[0]["content"]:
            raise BackendError("http_503: down", retryable=True, status=503)
        return Completion("ok", "judge-m", Usage(prompt_tokens=1000, completion_tokens=200))

    backend = ScriptedBackend(answer, model="judge-m", latency_s=0.05)
    config = RuntimeConfig(max_attempts=2, backoff_base_s=0.01,
                           prices={"judge-m": Price(input_per_mtok=3.0, output_per_mtok=15.0)})
    runtime = ModelRuntime({"judge": backend}, config)
    requests = [CompletionRequest(messages=[{"role": "user", "content": text}])
                for text in ("a", "b", "a", "fail")]
    await asyncio.gather(*(runtime.complete("judge", item) for item in requests))
    snapshot = runtime.stats.snapshot()
    assert snapshot["calls"] == 4 and snapshot["backend_calls"] == 3 and snapshot["dedup_hits"] == 1
    assert snapshot["ok"] == 2 and snapshot["failed"] == 1
    assert snapshot["attempts"] == 4 and snapshot["errors"] == {"http_503": 1}
    assert snapshot["prompt_tokens"] == 2000 and snapshot["completion_tokens"] == 400
    assert snapshot["cost_usd"] == pytest.approx(2 * (1000 * 3.0 + 200 * 15.0) / 1e6)
    assert snapshot["latency_p50_s"] is not None and snapshot["latency_p95_s"] >= snapshot["latency_p50_s"]
    json.dumps(snapshot)  # JSON-ready
