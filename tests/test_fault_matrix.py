"""The fault matrix of the reward runtime: one test per fault, over real HTTP on loopback.

Each row scripts the fake OpenAI server (tests/fake_openai.py) and calls it through
`JudgeRuntime` + `OpenAICompatBackend`, checking the outcome (an answer, or an error with the
reason), the number of HTTP attempts, and the timing of retries. Rows that need a judge (garbage
or NaN verdicts, group ids, swapped pairwise parses, the failure budget) live with the judges.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time

import aiohttp
import pytest

from fake_openai import FakeOpenAIServer, Reply
from judgerl.backends.base import CompletionRequest
from judgerl.backends.openai_compat import OpenAICompatBackend
from judgerl.config import RuntimeConfig
from judgerl.errors import FatalBackendError
from judgerl.reward.journal import RECENT_ENTRIES
from judgerl.reward.runtime import JudgeRuntime

FAST = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "max_attempts": 3, "deadline_s": 20.0}


def make_runtime(server: FakeOpenAIServer, *, timeout_s: float = 5.0, max_concurrency: int = 8,
                 **runtime: object) -> JudgeRuntime:
    backend = OpenAICompatBackend(server.url, "judge-model", timeout_s=timeout_s,
                                  max_concurrency=max_concurrency)
    return JudgeRuntime({"judge": backend}, RuntimeConfig(**{**FAST, **runtime}))


def request(text: str = "judge this") -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": text}], max_tokens=16)


def gap_after_429(server: FakeOpenAIServer) -> float:
    first, second = server.chat_requests[:2]
    assert first.status == 429 and first.finished is not None
    return second.arrived - first.finished


@pytest.mark.parametrize(("headers", "wait_s"), [
    ({"Retry-After": "0.3"}, 0.3),
    ({"Retry-After": "1"}, 1.0),
    ({"retry-after-ms": "150"}, 0.15),
    ({"retry-after-ms": "80.5", "Retry-After": "9"}, 0.0805),
], ids=["seconds-fractional", "seconds", "ms", "ms-wins-over-seconds"])
async def test_429_retry_after_is_honoured(fake_openai: FakeOpenAIServer, headers: dict[str, str],
                                           wait_s: float) -> None:
    fake_openai.script(Reply(status=429, headers=headers), Reply(text="fine"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.completion is not None and result.completion.text == "fine"
    assert result.attempts == 2 and fake_openai.request_count == 2
    assert gap_after_429(fake_openai) >= wait_s - 0.01
    assert gap_after_429(fake_openai) < wait_s + 1.0  # honoured, not replaced by a long backoff


async def test_429_retry_after_http_date(fake_openai: FakeOpenAIServer) -> None:
    target = math.floor(time.time()) + 2
    date = email.utils.formatdate(target, usegmt=True)
    fake_openai.script(Reply(status=429, headers={"Retry-After": date}), Reply(text="fine"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.attempts == 2
    # the retry arrived at the date the server named (1 s resolution), not before
    assert fake_openai.chat_requests[1].arrived_wall >= target - 0.05
    assert gap_after_429(fake_openai) <= 3.0  # up to 2 s of window, then up to 0.5 s of release jitter


async def test_429_retry_after_above_cap_fails_only_that_call(fake_openai: FakeOpenAIServer) -> None:
    """Issue 17, case 2: one over-cap Retry-After fails its own call and holds no other call."""
    fake_openai.script(Reply(status=429, headers={"Retry-After": "86400"}))
    runtime = make_runtime(fake_openai, retry_after_cap_s=2.0)
    started = time.monotonic()
    first = await runtime.complete("judge", request("a"))
    later = await asyncio.gather(*(runtime.complete("judge", request(f"b{i}")) for i in range(20)))
    await runtime.aclose()
    assert time.monotonic() - started < 1.0
    assert all(result.ok and result.attempts == 1 for result in later), [r.error for r in later]
    assert first.reason == "retry_after_too_long" and first.attempts == 1
    assert "86400" in (first.error or "")
    assert fake_openai.request_count == 21


async def test_no_request_inside_a_retry_after_window(fake_openai: FakeOpenAIServer) -> None:
    """One call's 429 pauses every call of that backend until the window ends."""
    fake_openai.script(Reply(status=429, headers={"retry-after-ms": "400"}))
    fake_openai.default = Reply(text="ok", delay_s=0.05)
    runtime = make_runtime(fake_openai, max_concurrency=4)
    results = await asyncio.gather(*(runtime.complete("judge", request(f"q{i}")) for i in range(12)))
    await runtime.aclose()
    assert all(result.ok for result in results)
    rejected = next(r for r in fake_openai.chat_requests if r.status == 429)
    assert rejected.finished is not None
    window = (rejected.finished + 0.02, rejected.finished + 0.4)  # 20 ms: requests already on the wire
    inside = [r.index for r in fake_openai.chat_requests if window[0] <= r.arrived < window[1]]
    assert inside == []
    assert sum(result.attempts for result in results) == 13 == fake_openai.request_count


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_server_error_then_success(fake_openai: FakeOpenAIServer, status: int) -> None:
    fake_openai.script(Reply(status=status, error="temporary"), Reply(text="fine"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    snapshot = runtime.stats.snapshot()
    await runtime.aclose()
    assert result.ok and result.attempts == 2
    assert snapshot["attempt_errors"] == {f"http_{status}": 1} and snapshot["attempts"] == 2


async def test_server_error_every_time_gives_up_after_max_attempts(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(status=503, error="down")
    runtime = make_runtime(fake_openai, max_attempts=4)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert not result.ok and result.reason == "http_503" and result.attempts == 4
    assert "down" in (result.error or "") and fake_openai.request_count == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_fatal_and_not_retried(fake_openai: FakeOpenAIServer, status: int) -> None:
    fake_openai.script(Reply(status=status, error=f"the server's reason {status}"))
    runtime = make_runtime(fake_openai)
    with pytest.raises(FatalBackendError) as caught:
        await runtime.complete("judge", request())
    await runtime.aclose()
    assert caught.value.status == status and f"the server's reason {status}" in str(caught.value)
    assert fake_openai.request_count == 1


async def test_slower_than_timeout_leaks_no_task_or_connection(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text="late", delay_s=1.5)
    runtime = make_runtime(fake_openai, timeout_s=0.2, max_attempts=2)
    started = time.monotonic()
    result = await runtime.complete("judge", request())
    elapsed = time.monotonic() - started
    assert not result.ok and result.reason == "timeout" and result.attempts == 2
    assert elapsed < 1.2  # two 0.2 s attempts plus a short backoff, not the server's 1.5 s
    assert asyncio.all_tasks() == {asyncio.current_task()}
    # the client hung up both timed-out connections (seen by the server), before any aclose()
    assert await asyncio.to_thread(fake_openai.wait_until, lambda s: s.open_connections == 0, 3.0)
    assert fake_openai.client_disconnects == 2
    await runtime.aclose()


async def test_deadline_bounds_the_whole_call(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text="late", delay_s=1.0)
    runtime = make_runtime(fake_openai, timeout_s=0.3, max_attempts=10, deadline_s=0.5)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.reason == "deadline_exceeded" and result.attempts == 2
    assert result.latency_s < 0.9


async def test_connection_reset_then_success(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(Reply(reset=True), Reply(text="fine"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.attempts == 2
    assert runtime.stats.snapshot()["attempt_errors"] == {"connection_error": 1}


async def test_connection_reset_every_time(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(reset=True)
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.reason == "connection_error" and result.attempts == 3


@pytest.mark.parametrize("reply", [
    Reply(body='{"choices": [{"message": {"content": "hal'),
    Reply(cut_after=25),
], ids=["truncated-json-body", "body-cut-short"])
async def test_truncated_json_is_retried(fake_openai: FakeOpenAIServer, reply: Reply) -> None:
    fake_openai.script(reply, Reply(text="fine"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.completion is not None and result.completion.text == "fine"
    assert result.attempts == 2


async def test_truncated_json_every_time_is_a_bad_response(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(body='{"choices": [')
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.reason == "bad_response" and "not valid JSON" in (result.error or "")
    assert result.attempts == 3


async def test_empty_choices(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(Reply(choices=[]), Reply(text="fine"))
    fake_openai.default = Reply(choices=[])
    runtime = make_runtime(fake_openai)
    first = await runtime.complete("judge", request("a"))
    second = await runtime.complete("judge", request("b"))
    await runtime.aclose()
    assert first.ok and first.attempts == 2
    assert second.error == "bad_response: no choices (after 3 attempts)" and second.attempts == 3


async def test_finish_reason_length_is_returned_not_retried(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(Reply(text='{"score": 4, "rationale": "the answer quo', finish_reason="length"))
    runtime = make_runtime(fake_openai)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.attempts == 1 and result.completion is not None
    assert result.completion.finish_reason == "length"
    assert result.completion.text.endswith("quo")  # the judge's parser decides what it is worth


async def test_one_failure_in_64_keeps_the_other_63(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.responder = lambda req: (Reply(status=500, error="poisoned") if "item 17" in req.prompt
                                         else Reply(text=f"score for {req.prompt}"))
    runtime = make_runtime(fake_openai, max_concurrency=16, max_attempts=2)
    results = await asyncio.gather(*(runtime.complete("judge", request(f"item {i}")) for i in range(64)))
    snapshot = runtime.stats.snapshot()
    await runtime.aclose()
    failed = [index for index, result in enumerate(results) if not result.ok]
    assert failed == [17] and results[17].reason == "http_500"
    for index, result in enumerate(results):
        if index != 17:
            assert result.completion is not None and result.completion.text == f"score for item {index}"
            assert result.attempts == 1
    assert results[17].attempts == 2
    assert snapshot["attempts"] == 65 == fake_openai.request_count
    assert snapshot["ok"] == 63 and snapshot["errors"] == {"http_500": 1}


async def test_a_window_that_opens_while_the_request_is_on_its_way_holds_it(fake_openai: FakeOpenAIServer):
    """Issue 17, case 11: the gate is checked again at send time, once the connection is in hand.

    Another call's 429 is simulated by closing the gate from aiohttp's `on_request_start` hook,
    which runs after the runtime's own check and before the connection is taken and the request
    written: the request must wait for the window, and it is still one attempt.
    """
    closed_at: list[float] = []
    runtime_ref: list[JudgeRuntime] = []

    async def close_gate_once(_session: object, _context: object, _params: object) -> None:
        if not closed_at:
            closed_at.append(time.monotonic())
            runtime_ref[0].retry_after_gate("judge").close_for(0.4)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(close_gate_once)
    backend = OpenAICompatBackend(fake_openai.url, "judge-model", timeout_s=5.0, trace_configs=[trace])
    runtime = JudgeRuntime({"judge": backend}, RuntimeConfig(**FAST))
    runtime_ref.append(runtime)
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.ok and result.attempts == 1
    assert fake_openai.request_count == 1
    assert fake_openai.chat_requests[0].arrived >= closed_at[0] + 0.4, "sent inside the window"


async def test_calls_held_by_a_window_are_released_with_jitter(fake_openai: FakeOpenAIServer):
    """Issue 17, case 11: 16 calls waiting on one Retry-After window do not all fire at once."""
    fake_openai.script(Reply(status=429, headers={"Retry-After": "1"}))
    backend = OpenAICompatBackend(fake_openai.url, "judge-model", timeout_s=5.0, max_concurrency=16)
    runtime = JudgeRuntime({"judge": backend}, RuntimeConfig(**FAST), rng=random.Random(17))
    first = asyncio.ensure_future(runtime.complete("judge", request("first")))
    assert await asyncio.to_thread(fake_openai.wait_until, lambda s: s.request_count == 1, 5.0)
    await asyncio.sleep(0.1)  # the 429 has been read: the gate is closed for 1 s
    held = [asyncio.ensure_future(runtime.complete("judge", request(f"q{i}"))) for i in range(15)]
    results = await asyncio.gather(first, *held)
    await runtime.aclose()
    assert all(result.ok for result in results)
    window_end = fake_openai.chat_requests[0].finished + 1.0
    released = sorted(r.arrived for r in fake_openai.chat_requests[1:])
    assert len(released) == 16 and released[0] >= window_end - 0.05
    assert released[-1] - released[0] >= 0.1, "the release is spread, not a burst"
    busiest = max(sum(1 for t in released if start <= t < start + 0.02) for start in released)
    assert busiest <= 5, f"{busiest} of 16 calls fired within 20 ms"
    assert released[-1] <= window_end + 0.25 + 0.1, "at most a quarter of the window of jitter"


def test_the_in_memory_journal_is_bounded_without_a_journal_file() -> None:
    """Issue 17, case 10: with `journal_path: null` memory does not grow with every judgment."""
    runtime = JudgeRuntime({}, RuntimeConfig(journal_path=None))
    for index in range(5000):
        runtime.record({"sample_id": f"s{index}", "outcome": "ok" if index % 5 else "unscored",
                        "raw_outputs": ["x" * 200]})
    entries = runtime.journal_entries
    assert len(entries) == RECENT_ENTRIES == 1000
    assert entries[0]["sample_id"] == "s4000" and entries[-1]["sample_id"] == "s4999"
    assert runtime.journal.written == 5000
    assert runtime.journal.outcomes == {"ok": 4000, "unscored": 1000}
    asyncio.run(runtime.aclose())
