"""The Bedrock backend, offline: botocore's Stubber answers `converse` (no AWS account, no network)."""

from __future__ import annotations

import pytest

pytest.importorskip("boto3")

from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from judgerl.backends import build_backend
from judgerl.backends.base import CompletionRequest
from judgerl.backends.bedrock import BedrockBackend, classify
from judgerl.config import BackendConfig, RuntimeConfig
from judgerl.errors import BackendError, ConfigError, FatalBackendError
from judgerl.runtime.model_runtime import ModelRuntime

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


_shared: list[BedrockBackend] = []


def stubbed_backend(**options) -> BedrockBackend:
    """A backend on one shared boto3 client (making a client costs ~0.5 s of model loading)."""
    if not _shared:
        _shared.append(BedrockBackend(MODEL, region="us-east-1"))
    return BedrockBackend(MODEL, client=_shared[0].client, **options)


def converse_response(text: str, stop: str = "end_turn", tokens: tuple[int, int] = (12, 3)) -> dict:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop,
            "usage": {"inputTokens": tokens[0], "outputTokens": tokens[1], "totalTokens": sum(tokens)},
            "metrics": {"latencyMs": 5}}


REQUEST = CompletionRequest(messages=[{"role": "system", "content": "You are a strict judge."},
                                      {"role": "user", "content": "Question: 2+2?"},
                                      {"role": "user", "content": "Answer: 4"}],
                            max_tokens=64, temperature=0.0, stop=["</verdict>"])


async def test_converse_request_and_response_mapping():
    backend = stubbed_backend(inference_config={"top_p": 0.9})
    with Stubber(backend.client) as stub:
        stub.add_response("converse", converse_response('{"score": 1}', stop="max_tokens"), expected_params={
            "modelId": MODEL,
            "system": [{"text": "You are a strict judge."}],
            "messages": [{"role": "user", "content": [{"text": "Question: 2+2?"}, {"text": "Answer: 4"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.0, "stopSequences": ["</verdict>"],
                                "topP": 0.9},
        })
        completion = await backend.complete(REQUEST)
        stub.assert_no_pending_responses()
    assert completion.text == '{"score": 1}'
    assert completion.model == MODEL
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)
    assert completion.finish_reason == "length", "max_tokens stop is a truncated answer"
    await backend.aclose()


async def test_backend_inference_config_wins_over_the_judges_defaults():
    backend = build_backend(BackendConfig(type="bedrock", model=MODEL, region="eu-west-1", temperature=0.3,
                                          max_tokens=100, max_concurrency=4, timeout_s=20))
    assert isinstance(backend, BedrockBackend)
    params = backend.build_params(CompletionRequest(messages=[{"role": "user", "content": "hi"}]))
    assert params["inferenceConfig"] == {"maxTokens": 100, "temperature": 0.3}
    assert "system" not in params
    config = backend.client.meta.config
    assert backend.client.meta.region_name == "eu-west-1"
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}, "boto3 must not retry"
    assert config.read_timeout == 20 and config.max_pool_connections == 4
    assert backend.cache_identity()["inference_config"] == {"temperature": 0.3, "maxTokens": 100}


@pytest.mark.parametrize("code, status, retryable, fatal", [
    ("ThrottlingException", 429, True, False),
    ("TooManyRequestsException", 429, True, False),
    ("ServiceUnavailableException", 503, True, False),
    ("ModelNotReadyException", 429, True, False),
    ("InternalServerException", 500, True, False),
    ("ModelTimeoutException", 408, True, False),
    ("SomethingNew", 502, True, False),
    ("ValidationException", 400, False, True),
    ("AccessDeniedException", 403, False, True),
    ("ResourceNotFoundException", 404, False, True),
    ("UnrecognizedClientException", 403, False, True),
    ("ModelErrorException", 424, False, False),
])
async def test_service_errors_are_classified(code, status, retryable, fatal):
    backend = stubbed_backend()
    with Stubber(backend.client) as stub:
        stub.add_client_error("converse", service_error_code=code, service_message="nope",
                              http_status_code=status)
        with pytest.raises(BackendError) as caught:
            await backend.complete(REQUEST)
    error = caught.value
    assert error.retryable is retryable
    assert isinstance(error, FatalBackendError) is fatal
    assert error.status == status and code in str(error)
    await backend.aclose()


def test_timeouts_and_unknown_errors_are_retryable():
    timeout = classify(ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"))
    assert timeout.retryable and timeout.status == 408
    assert classify(RuntimeError("connection reset")).retryable


async def test_the_runtime_retries_throttling_and_stops_on_fatal():
    backend = stubbed_backend()
    runtime = ModelRuntime({"judge": backend}, RuntimeConfig(max_attempts=3, backoff_base_s=0.0,
                                                            backoff_max_s=0.0))
    with Stubber(backend.client) as stub:
        stub.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("converse", converse_response("PASS"))
        result = await runtime.complete("judge", REQUEST)
        assert result.ok and result.completion.text == "PASS"
        assert result.attempts == 2, "one throttled attempt, then the answer"
        stub.add_client_error("converse", service_error_code="AccessDeniedException", http_status_code=403)
        with pytest.raises(FatalBackendError, match="AccessDeniedException"):
            await runtime.complete("judge", CompletionRequest(messages=[{"role": "user", "content": "x"}]))
        stub.assert_no_pending_responses()
    await runtime.aclose()


async def test_logprob_judging_is_a_fatal_configuration_error():
    backend = stubbed_backend()
    with pytest.raises(FatalBackendError, match="log-probabilities"):
        await backend.complete(CompletionRequest(messages=[{"role": "user", "content": "x"}], logprobs=True,
                                                 top_logprobs=5, candidate_tokens=["PASS", "FAIL"]))


def test_config_errors_name_the_field():
    from judgerl.errors import ConfigError

    with pytest.raises(ConfigError, match="model"):
        build_backend(BackendConfig(type="bedrock"))
    with pytest.raises(ConfigError, match="unknown Bedrock inference option"):
        BedrockBackend(MODEL, inference_config={"top_k": 3})


async def test_structured_output_tool_use_forces_the_verdict_tool():
    """`structured_output: tool_use`: the judge's schema is the input schema of one forced tool, and
    the tool call's input is the answer the judge parses; without a schema nothing changes."""
    from judgerl.judges.parsing import pairwise_schema, parse_pairwise

    backend = stubbed_backend(structured_output="tool_use")
    schema = pairwise_schema(allow_tie=False)
    request = CompletionRequest(messages=[{"role": "user", "content": "A or B?"}], max_tokens=64,
                                json_mode=True, response_schema=schema)
    answer = {"rationale": "B is right", "winner": "B"}
    with Stubber(backend.client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "t1", "name": "judgment", "input": answer}}]}},
            "stopReason": "tool_use", "usage": {"inputTokens": 9, "outputTokens": 5, "totalTokens": 14},
            "metrics": {"latencyMs": 5}}, expected_params={
            "modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "A or B?"}]}],
            "inferenceConfig": {"maxTokens": 64, "temperature": 0.0},
            "toolConfig": {"tools": [{"toolSpec": {"name": "judgment", "description": "Record the judgment.",
                                                   "inputSchema": {"json": schema}}}],
                           "toolChoice": {"tool": {"name": "judgment"}}}})
        completion = await backend.complete(request)
        stub.assert_no_pending_responses()
    assert parse_pairwise(completion.text, allow_tie=False).winner == "B"
    assert "toolConfig" not in backend.build_params(REQUEST)  # no schema asked: plain text
    assert "toolConfig" not in stubbed_backend().build_params(request)  # default none
    with pytest.raises(ConfigError, match=r"structured_output.*tool_use.*none"):
        build_backend(BackendConfig(type="bedrock", model=MODEL, structured_output="json_schema"))
    await backend.aclose()


async def test_a_validation_exception_about_one_prompt_fails_that_call_not_the_run():
    """Over real HTTP (boto3 against a loopback endpoint answering as Bedrock does): a prompt too
    long for the model, or blocked by its content filtering, is that judgment's failure
    (`context_length`, `content_filter`); they used to be fatal and stop the run. A
    ValidationException about the request's configuration still stops it."""
    import boto3
    from botocore.config import Config
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from test_adapter_openrlhf import running

    messages = {"long": "Input is too long for requested model.",
                "nova": "Input Tokens Exceeded: Number of input tokens exceeds maximum length.",
                "filtered": "Output blocked by content filtering policy",
                "config": "This model doesn't support the toolConfig.toolChoice.tool field."}

    async def converse(request):
        prompt = (await request.json())["messages"][0]["content"][0]["text"]
        return JSONResponse({"message": messages[prompt]}, status_code=400,
                            headers={"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/"})

    app = Starlette(routes=[Route("/model/{model:path}/converse", converse, methods=["POST"])])
    with running(app) as url:
        client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                              config=Config(retries={"total_max_attempts": 1}))
        backend = BedrockBackend(MODEL, client=client)
        runtime = ModelRuntime({"judge": backend}, RuntimeConfig(max_attempts=3))
        ask = lambda text: CompletionRequest(messages=[{"role": "user", "content": text}])  # noqa: E731
        results = {name: await runtime.complete("judge", ask(name)) for name in ("long", "nova", "filtered")}
        with pytest.raises(FatalBackendError, match="toolChoice"):
            await runtime.complete("judge", ask("config"))
        await runtime.aclose()
    assert {name: result.reason for name, result in results.items()} == {
        "long": "context_length", "nova": "context_length", "filtered": "content_filter"}
    assert all(result.attempts == 1 for result in results.values()), "not retried"
    assert "Input is too long for requested model" in results["long"].error


async def test_a_guardrail_stop_is_that_judgments_content_filter_not_a_reask():
    """stopReason guardrail_intervened / content_filtered: the text is the guardrail's message or
    cut short; it used to go to the judge's parser (a parse error and a paid re-ask)."""
    backend = stubbed_backend()
    runtime = ModelRuntime({"judge": backend}, RuntimeConfig(max_attempts=3, backoff_base_s=0.0))
    with Stubber(backend.client) as stub:
        for stop in ("guardrail_intervened", "content_filtered"):
            stub.add_response("converse", converse_response("Sorry, I can't help.", stop=stop))
            result = await runtime.complete("judge", CompletionRequest(messages=[{"role": "user",
                                                                                  "content": stop}]))
            assert result.reason == "content_filter" and result.attempts == 1, result.error
            assert stop in result.error
        stub.assert_no_pending_responses()
    await runtime.aclose()
