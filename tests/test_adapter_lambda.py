"""Contract tests for the Amazon Nova RFT reward Lambda, called the way Lambda calls it."""

from __future__ import annotations

import json
import time

import pytest

from adapter_fakes import make_pipeline, write_config
from judgerl.adapters import clear_pipelines
from judgerl.adapters.aws_lambda import handle, lambda_handler


class FakeContext:
    """The parts of a Lambda context object the handler reads."""

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.aws_request_id = "req-123"
        self.function_name = "judgerl-reward"
        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def chat(question: str, answer: str, role: str = "assistant") -> list[dict]:
    return [{"role": "user", "content": question}, {"role": role, "content": answer}]


EVENT = json.dumps([
    {"id": "a", "messages": chat("2+2?", "it is 4"), "reference_answer": "4"},
    {"id": "b", "messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": [{"text": "2+2?"}]},
                             {"role": "nova_assistant", "content": [{"text": "five"}]}],
     "metadata": {"reference_answer": "4", "my_key": "sample-001"}},
    {"id": "c", "messages": [{"role": "user", "content": "2+2?"}]},
    {"id": "d"},
    {"id": "e", "messages": chat("q", "JUDGE-FAIL"), "metadata": {"reference_answer": {"compliant": "No"}}},
    {"id": "f", "messages": chat("q", "BAD")},
])


def metrics(result: dict) -> dict[str, tuple[float, str]]:
    return {metric["name"]: (metric["value"], metric["type"]) for metric in result["metrics_list"]}


def test_one_result_per_id_in_order_with_metrics():
    pipeline, judge, _backend = make_pipeline()
    with pipeline:
        results = handle(json.loads(EVENT), FakeContext(), pipeline=pipeline)
    assert [result["id"] for result in results] == ["a", "b", "c", "d", "e", "f"]
    assert [result["aggregate_reward_score"] for result in results] == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    for result in results:
        assert set(result) == {"id", "aggregate_reward_score", "metrics_list"}
        assert isinstance(result["aggregate_reward_score"], float)
        for metric in result["metrics_list"]:
            assert set(metric) == {"name", "value", "type"} and metric["type"] in ("Metric", "Reward")
            assert isinstance(metric["value"], float)
    a, b, c, d, e, f = map(metrics, results)
    assert a["quality"] == (1.0, "Reward") and a["format"] == (1.0, "Metric")
    assert a["unscored"] == (0.0, "Metric") and a["invalid_sample"] == (0.0, "Metric")
    assert b["quality"] == (0.0, "Reward"), "nova_assistant + list-of-parts content + nested reference"
    assert c == {"invalid_sample": (1.0, "Metric")}, "no assistant turn: invalid, scored 0"
    assert d == {"invalid_sample": (1.0, "Metric")}, "no messages: invalid, scored 0"
    assert e["unscored"] == (1.0, "Metric"), "a judge failure is reported, not hidden"
    assert f["gated"] == (1.0, "Metric")
    seen = {completion: (reference, prompt) for _sid, completion, reference, prompt in judge.seen}
    assert seen["five"] == ("4", "2+2?")
    assert seen["JUDGE-FAIL"][0] == '{"compliant": "No"}', "a structured reference is passed as JSON"
    assert "BAD" not in seen, "the gated sample never reached the judge"


def test_the_batch_is_scored_concurrently():
    pipeline, _judge, _backend = make_pipeline(latency_s=0.3)
    event = [{"id": str(i), "messages": [{"role": "user", "content": f"q{i}"},
                                         {"role": "assistant", "content": "good"}]} for i in range(8)]
    with pipeline:
        started = time.monotonic()
        results = handle(event, FakeContext(), pipeline=pipeline)
        elapsed = time.monotonic() - started
    assert [result["aggregate_reward_score"] for result in results] == [1.0] * 8
    assert elapsed < 1.2, f"8 judge calls of 0.3 s each took {elapsed:.2f} s: not concurrent"


def test_duplicate_ids_still_get_one_result_each():
    pipeline, _judge, _backend = make_pipeline()
    sample = {"id": "same", "messages": chat("q", "good")}
    with pipeline:
        results = handle([sample, dict(sample)], None, pipeline=pipeline)
    assert [result["id"] for result in results] == ["same", "same"]


def test_deadline_reports_the_rest_unscored(monkeypatch):
    monkeypatch.setenv("JUDGERL_LAMBDA_MARGIN_S", "0")
    pipeline, _judge, _backend = make_pipeline(latency_s=3.0, failure_policy="neutral")
    event = [{"id": "slow", "messages": chat("q", "x")}]
    with pipeline:
        started = time.monotonic()
        results = handle(event, FakeContext(remaining_ms=600), pipeline=pipeline)
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, "the handler returned before Lambda would kill it"
    assert results[0]["aggregate_reward_score"] == 0.5, "neutral policy value for the unscored sample"
    assert metrics(results[0])["unscored"] == (1.0, "Metric")


def test_event_as_a_dict_with_a_list():
    pipeline, _judge, _backend = make_pipeline()
    event = {"samples": [{"id": 1, "messages": [{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "good"}]}]}
    with pipeline:
        results = handle(event, None, pipeline=pipeline)
    assert results[0]["id"] == 1 and results[0]["aggregate_reward_score"] == 1.0


def test_lambda_handler_reads_the_config_from_the_deployment_package(tmp_path, monkeypatch):
    write_config(tmp_path)  # reward.yaml at the package root
    monkeypatch.delenv("JUDGERL_REWARD_CONFIG", raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    event = json.loads(json.dumps([{"id": "x", "messages": chat("hi", "hello there")}]))
    try:
        results = lambda_handler(event, FakeContext())
        again = lambda_handler(event, FakeContext())
    finally:
        clear_pipelines()
    assert results == again
    assert results[0]["aggregate_reward_score"] == 1.0
    assert metrics(results[0])["quality"] == (1.0, "Reward")
    assert metrics(results[0])["length"] == (1.0, "Metric")
    json.dumps(results)  # the response must be JSON-serialisable as Lambda returns it


def test_the_http_response_shape_wraps_the_same_results(tmp_path, monkeypatch):
    write_config(tmp_path)
    monkeypatch.delenv("JUDGERL_REWARD_CONFIG", raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    event = [{"id": "x", "messages": chat("hi", "hello there")}]
    try:
        plain = lambda_handler(event, FakeContext())
        monkeypatch.setenv("JUDGERL_LAMBDA_RESPONSE", "http")
        wrapped = lambda_handler(event, FakeContext())
    finally:
        clear_pipelines()
    assert wrapped["statusCode"] == 200 and wrapped["headers"] == {"Content-Type": "application/json"}
    assert json.loads(wrapped["body"]) == plain


def test_a_misspelt_response_shape_fails_before_any_scoring(tmp_path, monkeypatch):
    write_config(tmp_path)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    monkeypatch.setenv("JUDGERL_LAMBDA_RESPONSE", "envelope")
    with pytest.raises(ValueError, match=r"JUDGERL_LAMBDA_RESPONSE='envelope'.*\['list', 'http'\]"):
        lambda_handler([{"id": "x", "messages": chat("hi", "hello there")}], FakeContext())


def test_no_config_anywhere_is_a_clear_error(monkeypatch, tmp_path):
    from judgerl.errors import ConfigError

    monkeypatch.delenv("JUDGERL_REWARD_CONFIG", raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    with pytest.raises(ConfigError, match="JUDGERL_REWARD_CONFIG"):
        lambda_handler([], FakeContext())


def test_the_shipped_lambda_example_builds_and_exports_the_handler(monkeypatch):
    pytest.importorskip("boto3")
    import importlib.util
    from pathlib import Path

    from judgerl.reward.pipeline import RewardPipeline

    folder = Path(__file__).resolve().parents[1] / "examples" / "aws_lambda"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with RewardPipeline.from_config(str(folder / "reward.yaml")) as pipeline:
        assert pipeline.runtime.backend("judge").kind == "bedrock"
        assert pipeline.config.failure_policy == "neutral"
    spec = importlib.util.spec_from_file_location("handler", folder / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.lambda_handler is lambda_handler


def test_a_tool_call_answer_is_unscored_not_a_silent_zero():
    """An assistant turn with tool_calls and no text: unscored `no_text_content`, not judged."""
    pipeline, judge, _backend = make_pipeline(failure_policy="neutral", failure_budget=0.3)
    event = [
        {"id": "tool", "messages": [{"role": "user", "content": "weather in Paris?"},
                                    {"role": "assistant", "content": None,
                                     "tool_calls": [{"id": "c1", "type": "function",
                                                     "function": {"name": "weather", "arguments": "{}"}}]}]},
        {"id": "bedrock-tool", "messages": [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": [{"toolUse": {"name": "f"}}]}]},
        {"id": "text", "messages": chat("q", "good")},
    ]
    with pipeline:
        results = handle(event, FakeContext(), pipeline=pipeline)
    tool, bedrock_tool, text = results
    for result in (tool, bedrock_tool):
        assert result["aggregate_reward_score"] == 0.5, "the failure policy's value, not 0.0"
        assert metrics(result)["unscored"] == (1.0, "Metric")
        assert metrics(result)["invalid_sample"] == (0.0, "Metric")
    assert text["aggregate_reward_score"] == 1.0
    assert [seen[1] for seen in judge.seen] == ["good"], "tool-call answers never reach the judge"


def test_tool_call_reason_is_logged(caplog):
    pipeline, _judge, _backend = make_pipeline()
    event = [{"id": "t", "messages": [{"role": "user", "content": "q"},
                                      {"role": "assistant", "tool_calls": [{"id": "c"}]}]}]
    with pipeline, caplog.at_level("WARNING", logger="judgerl.adapters.aws_lambda"):
        results = handle(event, FakeContext(), pipeline=pipeline)
    assert results[0]["aggregate_reward_score"] == 0.0 and metrics(results[0])["unscored"] == (1.0, "Metric")
    assert "no_text_content" in caplog.text


def test_deadline_unscored_samples_do_not_fail_the_invocation(monkeypatch, caplog):
    """Out of time is this runtime's shortfall: reported (unscored + log), not a failed invocation."""
    monkeypatch.setenv("JUDGERL_LAMBDA_MARGIN_S", "0")
    pipeline, _judge, _backend = make_pipeline(latency_s=3.0, failure_policy="neutral", failure_budget=0.3)
    event = [{"id": str(i), "messages": chat(f"q{i}", "x")} for i in range(4)]
    with pipeline, caplog.at_level("WARNING", logger="judgerl.adapters.aws_lambda"):
        results = handle(event, FakeContext(remaining_ms=600), pipeline=pipeline)
    assert [result["aggregate_reward_score"] for result in results] == [0.5] * 4
    assert all(metrics(result)["unscored"] == (1.0, "Metric") for result in results)
    assert "4 of 4 samples unscored at the Lambda deadline" in caplog.text


def test_judge_failures_still_cross_the_budget():
    from judgerl.errors import FailureBudgetExceeded

    pipeline, _judge, _backend = make_pipeline(failure_policy="neutral", failure_budget=0.3)
    event = [{"id": str(i), "messages": chat("q", "JUDGE-FAIL" if i < 2 else "good")} for i in range(4)]
    with pipeline, pytest.raises(FailureBudgetExceeded):
        handle(event, FakeContext(), pipeline=pipeline)


def test_a_sample_without_the_reference_its_judge_needs_is_invalid_not_the_batchs_failure(tmp_path, caplog):
    """A sample without `reference_answer`, for a judge with `use_reference: true`, is that sample's
    data error (invalid_sample, the field named), decided before any judging: it is not sent to
    the judge and does not count against the failure budget, so such samples do not fail the
    invocation (they used to: judged, unscored for want of a reference, 2 of 4 over a budget of
    0.4), and a blank reference is no reference (it used to reach the judge as one)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from fake_openai import FakeOpenAIServer, Reply
    from judgerl.reward.pipeline import RewardPipeline

    verdict = {"criteria": {"right": {"score": True, "rationale": "matches"}}}
    with FakeOpenAIServer() as server:
        server.default = Reply(text=json.dumps(verdict))
        config = tmp_path / "reward.yaml"
        config.write_text(json.dumps({
            "backends": {"judge": {"type": "openai", "base_url": server.url, "model": "m"}},
            "runtime": {"max_attempts": 1},
            "judges": [{"name": "quality", "type": "rubric", "use_reference": True,
                        "criteria": [{"name": "right", "description": "matches the reference"}]}],
            "failure_budget": 0.4}), encoding="utf-8")
        pipeline = RewardPipeline.from_config(str(config))
        event = [{"id": "with", "messages": chat("2+2?", "4"), "reference_answer": "4"},
                 {"id": "without", "messages": chat("3+3?", "6")},
                 {"id": "no-key", "messages": chat("4+4?", "8"), "metadata": {"source": "x"}},
                 {"id": "blank", "messages": chat("5+5?", "10"), "metadata": {"reference_answer": " "}}]
        with pipeline:
            results = handle(event, FakeContext(), pipeline=pipeline)
        judged = len(server.chat_requests)
    assert [result["id"] for result in results] == ["with", "without", "no-key", "blank"]
    assert results[0]["aggregate_reward_score"] == 1.0
    assert metrics(results[0])["invalid_sample"] == (0.0, "Metric")
    for result in results[1:]:
        assert result["aggregate_reward_score"] == 0.0
        assert metrics(result) == {"invalid_sample": (1.0, "Metric")}
    assert judged == 1, "only the sample with a reference reached the judge"
    assert "field 'reference_answer' (or 'metadata.reference_answer') is missing or empty, but the " \
           "reward's judge 'quality' needs a reference answer" in caplog.text
