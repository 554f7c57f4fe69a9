"""The OpenAI-compatible backend: request bodies, response parsing, error classification.

Over real HTTP to the fake server on loopback, one attempt per call (no runtime here).
"""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import pytest

from fake_openai import FakeOpenAIServer, Reply
from judgerl.backends import build_backend
from judgerl.backends.base import CompletionRequest
from judgerl.backends.openai_compat import HTTPAnswer, OpenAICompatBackend, environment_proxy
from judgerl.backends.scripted import ScriptedBackend
from judgerl.config import BackendConfig
from judgerl.errors import BackendError, ConfigError, FatalBackendError

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def request(**fields: object) -> CompletionRequest:
    return CompletionRequest(messages=[{"role": "user", "content": "rate this answer"}], **fields)


@pytest.fixture
async def backend(fake_openai: FakeOpenAIServer):
    backend = OpenAICompatBackend(fake_openai.url, "judge-model", timeout_s=2.0, supports_json_mode=True)
    yield backend
    await backend.aclose()


async def test_completion_fields_and_body(fake_openai: FakeOpenAIServer,
                                          backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(text='{"score": 4}', usage={"prompt_tokens": 31, "completion_tokens": 7}))
    completion = await backend.complete(request(max_tokens=64, temperature=0.2, seed=7, stop=["\n\n"],
                                                json_mode=True))
    assert completion.text == '{"score": 4}' and completion.finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (31, 7)
    sent = fake_openai.chat_requests[0].body
    assert sent["model"] == "judge-model" and sent["max_tokens"] == 64 and sent["seed"] == 7
    assert sent["stop"] == ["\n\n"] and sent["temperature"] == 0.2
    assert sent["response_format"] == {"type": "json_object"}
    assert "logprobs" not in sent
    assert fake_openai.chat_requests[0].headers["content-type"] == "application/json"


def test_structured_output_switch_and_its_old_names() -> None:
    """One switch, `structured_output`; the old supports_json_* options map onto it."""
    strict = {"type": "json_schema", "json_schema": {"name": "judgment", "schema": SCHEMA, "strict": True}}
    default = OpenAICompatBackend("http://127.0.0.1:9/v1", "m")  # json_schema by default
    assert default.build_body(request(json_mode=True, response_schema=SCHEMA))["response_format"] == strict
    assert "response_format" not in default.build_body(request())  # a request that asks for no JSON
    llamacpp = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", server="llamacpp")
    assert llamacpp.build_body(request(json_mode=True, response_schema=SCHEMA))["response_format"] == {
        "type": "json_object", "schema": SCHEMA}
    none = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", structured_output="none")
    assert "response_format" not in none.build_body(request(json_mode=True, response_schema=SCHEMA))
    loose = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", structured_output="json_object")
    assert loose.build_body(request(json_mode=True, response_schema=SCHEMA))["response_format"] == {
        "type": "json_object"}
    # the old names
    assert OpenAICompatBackend("http://127.0.0.1:9/v1", "m", supports_json_mode=True).structured_output \
        == "json_schema"
    assert OpenAICompatBackend("http://127.0.0.1:9/v1", "m", supports_json_mode=True,
                               supports_json_schema=False).structured_output == "json_object"
    assert OpenAICompatBackend("http://127.0.0.1:9/v1", "m", supports_json_mode=False).structured_output \
        == "none"
    with pytest.raises(ConfigError, match="replaced by structured_output"):
        build_backend(BackendConfig(type="vllm", model="m", structured_output="none",
                                    supports_json_mode=True))
    with pytest.raises(ConfigError, match="structured_output"):
        build_backend(BackendConfig(type="vllm", model="m", structured_output="yes"))


def test_body_extras_and_max_tokens_field() -> None:
    backend = OpenAICompatBackend("http://127.0.0.1:9/v1", "m", extra_body={"top_k": 5},
                                  max_tokens_field="max_completion_tokens")
    body = backend.build_body(request(max_tokens=9, extra={"repetition_penalty": 1.1}))
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.1


async def test_logprobs_are_parsed(fake_openai: FakeOpenAIServer, backend: OpenAICompatBackend) -> None:
    top = {"PASS": -0.2, " PASS": -3.0, "FAIL": -1.9}
    fake_openai.script(Reply(text="PASS", logprobs=[("PASS", -0.2, top)]))
    completion = await backend.complete(request(logprobs=True, top_logprobs=3,
                                                candidate_tokens=["PASS", "FAIL"]))
    sent = fake_openai.chat_requests[0].body
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3
    assert completion.logprobs is not None and len(completion.logprobs) == 1
    first = completion.logprobs[0]
    assert (first.token, first.logprob) == ("PASS", -0.2) and first.top["FAIL"] == -1.9
    assert completion.candidate_logprobs is not None
    assert math.isclose(completion.candidate_logprobs["PASS"], math.log(math.exp(-0.2) + math.exp(-3.0)))
    assert completion.candidate_logprobs["FAIL"] == -1.9


def test_candidate_tokens_ask_for_top_logprobs() -> None:
    body = OpenAICompatBackend("http://127.0.0.1:9/v1", "m").build_body(request(candidate_tokens=["A", "B"]))
    assert body["logprobs"] is True and body["top_logprobs"] == 20


async def test_api_key_from_environment(fake_openai: FakeOpenAIServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGERL_TEST_KEY", "sk-test-123")
    backend = OpenAICompatBackend(fake_openai.url, "m", api_key_env="JUDGERL_TEST_KEY",
                                  headers={"x-team": "rl"})
    await backend.complete(request())
    await backend.aclose()
    headers = fake_openai.chat_requests[0].headers
    assert headers["authorization"] == "Bearer sk-test-123" and headers["x-team"] == "rl"


async def test_an_api_key_read_from_a_file_with_its_newline_still_works(
        fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key from a file or a mounted secret ends with a newline; it used to reach the header, and
    every judgment was unscored `judge_error: ValueError: Forbidden control character ...`."""
    monkeypatch.setenv("JUDGERL_TEST_KEY", "sk-test-123\n")
    backend = OpenAICompatBackend(fake_openai.url, "m", api_key_env="JUDGERL_TEST_KEY")
    await backend.complete(request())
    await backend.aclose()
    assert fake_openai.chat_requests[0].headers["authorization"] == "Bearer sk-test-123"
    monkeypatch.setenv("JUDGERL_TEST_KEY", "  ")
    with pytest.raises(ConfigError, match="JUDGERL_TEST_KEY is empty"):
        OpenAICompatBackend(fake_openai.url, "m", api_key_env="JUDGERL_TEST_KEY")
    monkeypatch.setenv("JUDGERL_TEST_KEY", "sk-one\nsk-two")
    with pytest.raises(ConfigError, match="control character"):
        OpenAICompatBackend(fake_openai.url, "m", api_key_env="JUDGERL_TEST_KEY")


def test_missing_api_key_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGERL_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="JUDGERL_NO_SUCH_KEY"):
        OpenAICompatBackend("http://127.0.0.1:9/v1", "m", api_key_env="JUDGERL_NO_SUCH_KEY")


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses(fake_openai: FakeOpenAIServer, backend: OpenAICompatBackend,
                                  status: int) -> None:
    fake_openai.script(Reply(status=status, error="busy", headers={"Retry-After": "2"}))
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    error = caught.value
    assert not isinstance(error, FatalBackendError)
    assert error.retryable and error.status == status and error.retry_after == 2.0
    assert str(error).startswith(f"http_{status}: busy")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_fatal_statuses_carry_the_server_message(fake_openai: FakeOpenAIServer,
                                                       backend: OpenAICompatBackend, status: int) -> None:
    fake_openai.script(Reply(status=status, error="model 'judge-model' does not exist"))
    with pytest.raises(FatalBackendError, match="does not exist") as caught:
        await backend.complete(request())
    assert caught.value.status == status and not caught.value.retryable


async def test_context_length_400_concerns_one_request(fake_openai: FakeOpenAIServer,
                                                       backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(status=400, error="This model's maximum context length is 4096 tokens"))
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    assert not isinstance(caught.value, FatalBackendError) and not caught.value.retryable
    assert str(caught.value).startswith("context_length:")


async def test_a_content_filter_400_concerns_one_request(fake_openai: FakeOpenAIServer,
                                                        backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(status=400, body={"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy.", "param": "prompt", "code": "content_filter", "status": 400}}))
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    assert not isinstance(caught.value, FatalBackendError) and not caught.value.retryable
    assert str(caught.value).startswith("content_filter: The response was filtered")


async def test_a_refusal_is_that_prompts_failure_and_not_retried(fake_openai: FakeOpenAIServer) -> None:
    """OpenAI's structured outputs answer a prompt the model declines with `message.refusal`; it
    used to be a retryable bad_response (5 paid attempts, each counted against the breaker)."""
    from judgerl.config import RuntimeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

    fake_openai.default = Reply(choices=[{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I can't assist with that request."}}])
    backend = OpenAICompatBackend(fake_openai.url, "m")
    runtime = ModelRuntime({"judge": backend}, RuntimeConfig(max_attempts=5, backoff_base_s=0.0))
    result = await runtime.complete("judge", request())
    await runtime.aclose()
    assert result.reason == "refusal" and "can't assist" in result.error
    assert result.attempts == 1 and len(fake_openai.chat_requests) == 1


async def test_other_4xx_is_not_retryable(fake_openai: FakeOpenAIServer,
                                          backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(status=413, error="too large"))
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    assert not caught.value.retryable and not isinstance(caught.value, FatalBackendError)


@pytest.mark.parametrize(("reply", "message"), [
    (Reply(body="not json at all"), "bad_response: body is not valid JSON"),
    (Reply(body='{"choices": [{"message": {"content": "cut'), "bad_response: body is not valid JSON"),
    (Reply(body=[1, 2]), "bad_response: body is not a JSON object"),
    (Reply(choices=[]), "bad_response: no choices"),
    (Reply(choices=[{"index": 0, "message": {"role": "assistant", "content": None}}]),
     "bad_response: no message content"),
    (Reply(reset=True), "connection_error"),
    (Reply(cut_after=10), "connection_error"),
])
async def test_bad_responses_are_retryable(fake_openai: FakeOpenAIServer, backend: OpenAICompatBackend,
                                           reply: Reply, message: str) -> None:
    fake_openai.script(reply)
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    assert caught.value.retryable and str(caught.value).startswith(message)


async def test_finish_reason_length_is_kept(fake_openai: FakeOpenAIServer,
                                            backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(text="half an answ", finish_reason="length"))
    completion = await backend.complete(request())
    assert completion.finish_reason == "length" and completion.text == "half an answ"


async def test_timeout_and_refused_connection() -> None:
    with FakeOpenAIServer() as server:
        server.default = Reply(delay_s=1.0)
        slow = OpenAICompatBackend(server.url, "m", timeout_s=0.1)
        with pytest.raises(BackendError, match=r"^timeout") as caught:
            await slow.complete(request())
        assert caught.value.retryable
        await slow.aclose()
        url = server.url
    refused = OpenAICompatBackend(url, "m", timeout_s=1.0)  # the server is gone
    with pytest.raises(BackendError, match=r"^connection_error") as caught:
        await refused.complete(request())
    assert caught.value.retryable
    await refused.aclose()


def test_from_config_and_registry(tmp_path) -> None:
    config = BackendConfig(type="vllm", model="qwen", max_concurrency=3, rpm=120, timeout_s=7,
                           supports_json_mode=True, api_key="k")
    backend = build_backend(config, tmp_path)
    assert isinstance(backend, OpenAICompatBackend)
    assert backend.base_url == "http://127.0.0.1:8000/v1" and backend.max_concurrency == 3
    assert backend.limits.rpm == 120 and backend.limits.timeout_s == 7
    assert backend.structured_output == "json_schema"
    with pytest.raises(ConfigError, match="base_url"):
        build_backend(BackendConfig(type="openai", model="gpt"), tmp_path)
    with pytest.raises(ConfigError, match="unknown option") as caught:
        build_backend(BackendConfig(type="openai", model="gpt", base_url="http://127.0.0.1:1/v1",
                                    temprature=1))
    assert caught.value.field == "temprature"
    with pytest.raises(ConfigError, match="unknown backend type 'gpt4'"):
        build_backend(BackendConfig(type="gpt4"), tmp_path)


async def test_scripted_from_config(tmp_path) -> None:
    backend = build_backend(BackendConfig(type="scripted", answer={"score": 5}, latency_s=0.01), tmp_path)
    assert isinstance(backend, ScriptedBackend)
    completion = await backend.complete(request())
    assert completion.text == '{"score": 5}'
    with pytest.raises(ConfigError) as caught:
        build_backend(BackendConfig(type="scripted", answr="x"), tmp_path)
    assert caught.value.field == "answr"


def test_network_guard_blocks_non_loopback() -> None:
    import socket

    from conftest import NetworkAccessBlocked, _blocked_attempts

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(NetworkAccessBlocked):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never reached
    assert _blocked_attempts == ["('192.0.2.1', 443)"]
    _blocked_attempts.clear()  # expected here; any other test that tries fails at teardown


async def test_plain_text_error_body_is_the_message(fake_openai: FakeOpenAIServer,
                                                    backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(status=502, body="upstream judge is down", headers={"retry-after-ms": "150"}))
    with pytest.raises(BackendError) as caught:
        await backend.complete(request())
    assert str(caught.value) == "http_502: upstream judge is down"
    assert caught.value.retryable and caught.value.retry_after == 0.15


async def test_connections_are_bounded_and_kept_alive(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.default = Reply(text="ok", delay_s=0.05)
    backend = OpenAICompatBackend(fake_openai.url, "m", max_concurrency=3)
    completions = await asyncio.gather(*(backend.complete(request()) for _ in range(12)))
    assert [completion.text for completion in completions] == ["ok"] * 12
    # never more than max_concurrency requests or connections at the server; the 3 are reused
    assert fake_openai.max_concurrent == 3 and fake_openai.total_connections == 3
    await backend.aclose()
    assert await asyncio.to_thread(fake_openai.wait_until, lambda s: s.open_connections == 0, 3.0)


async def test_trace_configs_see_every_request_and_answer(fake_openai: FakeOpenAIServer) -> None:
    sent: list[str] = []
    statuses: list[int] = []
    trace = aiohttp.TraceConfig()

    async def on_sent(_session: object, _context: object,
                      params: aiohttp.TraceRequestHeadersSentParams) -> None:
        sent.append(str(params.url))

    async def on_end(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
        statuses.append(params.response.status)

    trace.on_request_headers_sent.append(on_sent)
    trace.on_request_end.append(on_end)
    fake_openai.script(Reply(status=429, headers={"Retry-After": "1"}), Reply(text="fine"))
    backend = OpenAICompatBackend(fake_openai.url, "m", trace_configs=[trace])
    with pytest.raises(BackendError, match=r"^http_429"):
        await backend.complete(request())
    assert (await backend.complete(request())).text == "fine"
    await backend.aclose()
    assert sent == [fake_openai.url + "/chat/completions"] * 2 and statuses == [429, 200]


def test_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://api.example.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    assert environment_proxy("https://api.example.com/v1/chat/completions") == "http://proxy.internal:3128"
    assert environment_proxy("http://api.example.com/v1/chat/completions") is None  # no HTTP_PROXY
    assert environment_proxy("https://127.0.0.1:8000/v1/chat/completions") is None  # NO_PROXY


def test_error_text_uses_the_declared_charset() -> None:
    answer = HTTPAnswer(500, {"content-type": "text/plain; charset=latin-1"}, "überlastet".encode("latin-1"))
    assert answer.text == "überlastet"
    assert HTTPAnswer(500, {"content-type": "text/plain; charset=nonsense"}, b"busy").text == "busy"


async def test_redirects_are_not_followed(fake_openai: FakeOpenAIServer,
                                          backend: OpenAICompatBackend) -> None:
    fake_openai.script(Reply(status=307, body="", headers={"location": "/v1/elsewhere"}))
    with pytest.raises(BackendError, match=r"^bad_response") as caught:
        await backend.complete(request())
    assert caught.value.status == 307 and fake_openai.request_count == 1


async def test_fake_server_timing_splits_hold_and_turnaround(fake_openai: FakeOpenAIServer,
                                                             backend: OpenAICompatBackend) -> None:
    """The throughput benchmark explains its figure with these server-side timings."""
    fake_openai.concurrency_limit = 1
    fake_openai.default = Reply(text="ok", delay_s=0.05)
    started = time.monotonic()
    for _ in range(3):
        await backend.complete(request())
        await asyncio.sleep(0.02)  # the client's turnaround, at least
    timing = fake_openai.stats()["timing"]
    assert started < timing["first_arrival"] < timing["last_finish"] < time.monotonic()
    assert 0.05 <= timing["hold_mean_s"] < 0.15
    assert 0.02 <= timing["refill_gap_mean_s"] < 0.5  # 2 refills of the one slot
    # one slot: the chain is every call, and its parts add up to first arrival -> last finish
    assert timing["chain_links"] == 2 and timing["chain_first_arrival"] == timing["first_arrival"]
    assert timing["chain_gap_s"] == pytest.approx(2 * timing["refill_gap_mean_s"])
    assert timing["chain_first_arrival"] + timing["chain_hold_s"] + timing["chain_gap_s"] == pytest.approx(
        timing["last_finish"])


async def test_fake_server_chain_follows_the_slot_that_ended_last(fake_openai: FakeOpenAIServer,
                                                                  backend: OpenAICompatBackend) -> None:
    """Two slots, five calls in three rounds: the chain is the last call's, back to the first round
    (the 5th, 3rd and 1st arrivals), and its parts add up to its first arrival -> the last finish."""
    fake_openai.concurrency_limit = 2
    fake_openai.default = Reply(text="ok", delay_s=0.03)
    slots = asyncio.Semaphore(2)

    async def one() -> None:
        async with slots:
            await backend.complete(request())

    await asyncio.gather(*(one() for _ in range(5)))
    timing = fake_openai.stats()["timing"]
    arrivals = sorted(r.arrived for r in fake_openai.chat_requests)
    assert fake_openai.stats()["status_counts"] == {"200": 5}
    assert timing["chain_links"] == 2  # ceil(5 / 2) rounds on the deciding slot
    assert timing["chain_first_arrival"] == arrivals[0]  # index 4 -> 2 -> 0
    assert timing["chain_hold_s"] >= 3 * 0.03
    assert timing["chain_first_arrival"] + timing["chain_hold_s"] + timing["chain_gap_s"] == pytest.approx(
        timing["last_finish"])
