"""The SQLite cache and the in-batch dedup of the runtime."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

from fake_openai import FakeOpenAIServer, Reply
from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.openai_compat import OpenAICompatBackend
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import RuntimeConfig
from judgerl.reward.cache import CompletionCache, cache_key
from judgerl.reward.runtime import JudgeRuntime


def request(text: str, **fields: object) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": text}], **fields)


async def test_cache_persists_across_runtimes(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    fake_openai.default = Reply(text="verdict", logprobs=[("verdict", -0.1, {"verdict": -0.1})])
    config = RuntimeConfig(cache_path="cache.sqlite")
    first_runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")}, config,
                                 base_dir=tmp_path)
    first = await first_runtime.complete("judge", request("q", logprobs=True))
    await first_runtime.aclose()
    second_runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")}, config,
                                  base_dir=tmp_path)
    again = await second_runtime.complete("judge", request("q", logprobs=True))
    other = await second_runtime.complete("judge", request("q", logprobs=True, temperature=0.7))
    snapshot = second_runtime.stats.snapshot()
    await second_runtime.aclose()
    assert (tmp_path / "cache.sqlite").is_file()
    assert again.cached and again.attempts == 0 and again.completion == first.completion
    assert not other.cached  # a parameter that changes the output changes the key
    assert fake_openai.request_count == 2
    assert snapshot["cache_hits"] == 1 and snapshot["calls"] == 2 and snapshot["backend_calls"] == 1


async def test_cache_key_depends_on_backend_identity_not_on_url() -> None:
    one = OpenAICompatBackend("http://127.0.0.1:1/v1", "judge-a")
    same_model_elsewhere = OpenAICompatBackend("http://127.0.0.1:2/v1", "judge-a")
    other_model = OpenAICompatBackend("http://127.0.0.1:1/v1", "judge-b")
    key = cache_key(one.cache_identity(), request("q"))
    assert key == cache_key(same_model_elsewhere.cache_identity(), request("q"))
    assert key != cache_key(other_model.cache_identity(), request("q"))
    assert key != cache_key(one.cache_identity(), request("q", max_tokens=1))


async def test_failures_are_not_cached(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    fake_openai.script(Reply(status=500), Reply(text="good"))
    runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")},
                           RuntimeConfig(cache_path=str(tmp_path / "c.sqlite"), max_attempts=1))
    failed = await runtime.complete("judge", request("q"))
    retried = await runtime.complete("judge", request("q"))
    await runtime.aclose()
    assert not failed.ok and retried.ok and not retried.cached


async def test_identical_calls_in_flight_are_made_once(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text="same", delay_s=0.1)
    runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")}, RuntimeConfig())
    batch = [request("repeated answer")] * 6 + [request("other answer")] * 2
    results = await asyncio.gather(*(runtime.complete("judge", item) for item in batch))
    snapshot = runtime.stats.snapshot()
    await runtime.aclose()
    assert all(result.ok and result.completion.text == "same" for result in results)  # type: ignore[union-attr]
    assert fake_openai.request_count == 2
    assert sum(result.deduplicated for result in results) == 6 and snapshot["dedup_hits"] == 6
    assert [result.attempts for result in results].count(1) == 2


async def test_use_cache_false_repeats_the_call(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")},
                           RuntimeConfig(cache_path=str(tmp_path / "c.sqlite")))
    results = await asyncio.gather(*(runtime.complete("judge", request("q"), use_cache=False)
                                     for _ in range(3)))
    await runtime.aclose()
    assert all(result.ok and not result.cached for result in results)
    assert fake_openai.request_count == 3


async def test_a_cancelled_leader_does_not_strand_its_followers() -> None:
    async def slow(_request: CompletionRequest) -> str:
        await asyncio.sleep(0.2)
        return "done"

    backend = ScriptedBackend(slow)
    runtime = JudgeRuntime({"judge": backend}, RuntimeConfig())
    leader = asyncio.create_task(runtime.complete("judge", request("q")))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(runtime.complete("judge", request("q")))
    await asyncio.sleep(0.01)
    leader.cancel()
    result = await follower
    assert result.ok and result.completion is not None and result.completion.text == "done"
    assert len(backend.calls) == 2  # the follower made its own call after the leader went away


def test_cache_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    code = textwrap.dedent(f"""
        import sys
        from judgerl.backends.base import Completion, Usage
        from judgerl.reward.cache import CompletionCache
        cache = CompletionCache({str(path)!r})
        for i in range(150):
            cache.put(f"{{sys.argv[1]}}-{{i}}", Completion(f"text {{i}}", "m", Usage(i, 1)))
            assert cache.get(f"{{sys.argv[1]}}-{{i}}") is not None
        cache.close()
    """)
    processes = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b", "c")]
    assert [process.wait(60) for process in processes] == [0, 0, 0]
    cache = CompletionCache(path)
    assert len(cache) == 450
    hit = cache.get("b-149")
    cache.close()
    assert hit == Completion("text 149", "m", Usage(149, 1))


async def test_a_cached_answer_the_parser_refuses_is_dropped_and_asked_again(fake_openai: FakeOpenAIServer,
                                                                            tmp_path: Path) -> None:
    """Issue 17, case 3: a cache written before parse-then-cache may hold unusable answers."""
    from judgerl.errors import JudgeParseError

    def parse(completion: Completion) -> int:
        if not completion.text.isdigit():
            raise JudgeParseError(f"not a number: {completion.text!r}")
        return int(completion.text)

    config = RuntimeConfig(cache_path=str(tmp_path / "c.sqlite"))
    fake_openai.script(Reply(text="garbage"), Reply(text="7"))
    old = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")}, config)
    assert (await old.complete("judge", request("q"))).completion.text == "garbage"  # no accept: cached
    await old.aclose()
    assert len(CompletionCache(tmp_path / "c.sqlite")) == 1

    runtime = JudgeRuntime({"judge": OpenAICompatBackend(fake_openai.url, "m")}, config)
    result = await runtime.complete("judge", request("q"), accept=parse)
    again = await runtime.complete("judge", request("q"), accept=parse)
    await runtime.aclose()
    assert result.ok and not result.cached and result.parsed == 7 and result.parse_error is None
    assert again.cached and again.parsed == 7
    assert fake_openai.request_count == 2
