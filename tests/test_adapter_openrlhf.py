"""Contract tests for the OpenRLHF-compatible reward server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from adapter_fakes import make_pipeline, write_config
from judgerl.adapters.openrlhf import create_app, resolve_token
from judgerl.config import load_reward_config
from judgerl.errors import ConfigError
from judgerl.reward.pipeline import RewardPipeline

TOKEN = "s3cret-token"


@contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` with uvicorn in a background thread on a free loopback port; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def served():
    pipeline, judge, backend = make_pipeline(latency_s=0.3)
    app = create_app(pipeline, token=TOKEN, max_batch=8, max_body_bytes=4096)
    with pipeline, running(app) as url:
        yield url, judge, backend


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(*completions: str, prompt: str = "Q: 2+2? A:", label: str = "4") -> dict:
    return {"query": [prompt + completion for completion in completions],
            "prompts": [prompt] * len(completions), "labels": [label] * len(completions)}


def test_get_reward_shapes_order_and_unscored(served):
    url, judge, _backend = served
    response = httpx.post(f"{url}/get_reward", json=body(" it is 4", " five", "BAD", " JUDGE-FAIL"),
                          headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == {"rewards", "scores", "extra_logs"}
    assert data["rewards"] == [1.0, 0.5, 0.0, 0.0]
    assert data["scores"] == data["rewards"]
    logs = data["extra_logs"]
    assert logs["unscored"] == [0.0, 0.0, 0.0, 1.0], "the unscored item is reported as such"
    assert logs["gated"] == [0.0, 0.0, 1.0, 0.0]
    assert logs["quality"] == [1.0, 0.0, 0.0, 0.0] and logs["format"] == [1.0, 1.0, 0.0, 1.0]
    assert all(len(values) == 4 for values in logs.values())
    completions = sorted(seen[1] for seen in judge.seen)
    assert completions == [" JUDGE-FAIL", " five", " it is 4"], "the prompt prefix is stripped"
    assert {seen[2] for seen in judge.seen} == {"4"}, "labels are the reference"
    assert len({seen[0] for seen in judge.seen}) == 1, "same prompt and label -> one group"


def test_query_only_requests_work(served):
    url, judge, _backend = served
    response = httpx.post(f"{url}/get_reward", json={"query": ["a good answer"]}, headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert response.json()["rewards"] == [1.0]
    assert judge.seen[0][1] == "a good answer"


@pytest.mark.parametrize("headers, params", [
    ({}, {}),
    ({"Authorization": "Bearer wrong"}, {}),
    ({"Authorization": f"Basic {TOKEN}"}, {}),
])
def test_auth_is_required(served, headers, params):
    url, _judge, backend = served
    response = httpx.post(f"{url}/get_reward", json=body(" 4"), headers=headers, params=params, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "missing or wrong bearer token"
    assert response.headers["www-authenticate"] == "Bearer"
    assert backend.calls == [], "nothing is judged for an unauthenticated request"


def test_token_in_the_url_is_refused(served):
    """OpenRLHF prints the URL on every non-2xx answer: a secret there would land in training logs."""
    url, _judge, backend = served
    response = httpx.post(f"{url}/get_reward", params={"token": TOKEN}, json=body(" 4"), timeout=10)
    assert response.status_code == 401
    assert backend.calls == []


@pytest.mark.parametrize("networks, token, status", [
    (["127.0.0.0/8"], None, 200),      # OpenRLHF's stock client: no headers, let in by address
    (["127.0.0.1"], TOKEN, 200),       # a bare address is a /32
    (["10.0.0.0/8"], None, 401),       # loopback is not in 10/8
    (["fd00::/8", "10.0.0.0/8", "127.0.0.1/32"], None, 200),  # any of several
])
def test_allowed_networks_let_headerless_clients_in(networks, token, status):
    pipeline, _judge, backend = make_pipeline()
    with pipeline, running(create_app(pipeline, token=token, allow_networks=networks)) as url:
        response = httpx.post(f"{url}/get_reward", json=body(" it is 4"), timeout=10)
        assert response.status_code == status, response.text
        if status == 401:
            assert "not in an allowed network" in response.json()["error"]
            assert backend.calls == []
        with_token = httpx.post(f"{url}/get_reward", json=body(" it is 4"), timeout=10,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert with_token.status_code == (200 if token or status == 200 else 401)


def test_bad_network_is_a_config_error():
    pipeline, _judge, _backend = make_pipeline()
    with pipeline, pytest.raises(ConfigError, match=r"10\.0\.0\.0/8"):
        create_app(pipeline, token=None, allow_networks=["10.0.0/33"])


def test_health_needs_no_auth(served):
    url, _judge, _backend = served
    response = httpx.get(f"{url}/health", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_limits_and_bad_bodies_are_clear_4xx(served):
    url, _judge, backend = served
    too_big = httpx.post(f"{url}/get_reward", json={"query": ["x" * 5000]}, headers=AUTH, timeout=10)
    assert too_big.status_code == 413 and "4096 bytes" in too_big.json()["error"]

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    streamed = httpx.post(f"{url}/get_reward", content=chunks(), headers=AUTH, timeout=10)
    assert streamed.status_code == 413, "a chunked body without Content-Length is capped too"
    too_many = httpx.post(f"{url}/get_reward", json={"query": ["a"] * 9}, headers=AUTH, timeout=10)
    assert too_many.status_code == 413
    assert "batch of 9 items is over the limit of 8" in too_many.json()["error"]
    not_json = httpx.post(f"{url}/get_reward", content=b"{nope", headers=AUTH, timeout=10)
    assert not_json.status_code == 422 and "not valid JSON" in not_json.json()["error"]
    wrong_type = httpx.post(f"{url}/get_reward", json={"query": "one string"}, headers=AUTH, timeout=10)
    assert wrong_type.status_code == 422 and "field 'query'" in wrong_type.json()["error"]
    mismatch = httpx.post(f"{url}/get_reward", json={"query": ["a", "b"], "prompts": ["a"]}, headers=AUTH,
                          timeout=10)
    assert mismatch.status_code == 422 and "'prompts' has 1 items" in mismatch.json()["error"]
    assert backend.calls == [], "no bad request reached the judge"


async def test_concurrent_requests_overlap(served):
    url, _judge, backend = served  # each judge call takes 0.3 s
    async with httpx.AsyncClient(timeout=10) as client:
        async def one(tag: str) -> tuple[float, float]:
            started = time.monotonic()
            response = await client.post(f"{url}/get_reward", json=body(f" {tag} 4", prompt=f"{tag}:"),
                                         headers=AUTH)
            assert response.status_code == 200 and response.json()["rewards"] == [1.0]
            return started, time.monotonic()

        began = time.monotonic()
        (start_a, end_a), (start_b, end_b) = await asyncio.gather(one("a"), one("b"))
    total = time.monotonic() - began
    assert len(backend.calls) == 2
    assert max(start_a, start_b) < min(end_a, end_b), "the two requests were in flight at the same time"
    assert total < 0.55, f"two 0.3 s requests served concurrently should take ~0.3 s, took {total:.2f} s"


def test_one_unscored_rollout_is_a_200_and_the_budget_is_over_the_window():
    """OpenRLHF ≥ 0.9.1 sends one rollout a request: a 503 for one would end the run."""
    pipeline, _judge, _backend = make_pipeline(failure_budget=0.4, failure_policy="neutral")
    app = create_app(pipeline, token=None, budget_window=10, budget_min_items=5)
    with pipeline, running(app) as url:
        single = httpx.post(f"{url}/get_reward", json=body(" JUDGE-FAIL"), timeout=10)
        assert single.status_code == 200, single.text
        assert single.json()["rewards"] == [0.5] and single.json()["extra_logs"]["unscored"] == [1.0]
        for _ in range(4):
            assert httpx.post(f"{url}/get_reward", json=body(" 4"), timeout=10).status_code == 200
        statuses = [httpx.post(f"{url}/get_reward", json=body(" JUDGE-FAIL"), timeout=10).status_code
                    for _ in range(3)]
        # window: 1 failed + 4 ok, then 2/6 = 33% (200), then 3/7 = 43% > 40% (503)
        assert statuses == [200, 503, 503]
        outage = httpx.post(f"{url}/get_reward", json=body(" JUDGE-FAIL"), timeout=10)
    data = outage.json()
    assert outage.status_code == 503 and "failure budget" in data["error"]
    assert data["failed"] == 5 and data["total"] == 9 and data["reasons"] == {"judge_error": 5}


@pytest.mark.parametrize("labels", [[""], ["  "], None])
def test_empty_label_is_a_clear_422_when_the_reward_needs_a_reference(tmp_path, labels):
    from judgerl.reward.pipeline import RewardPipeline

    config = tmp_path / "reward.yaml"
    config.write_text("checks:\n  - {name: exact, type: match}\n", encoding="utf-8")
    with RewardPipeline.from_config(str(config)) as pipeline, \
            running(create_app(pipeline, token=None)) as url:
        payload = {"query": ["Q: capital? A: Paris"], "prompts": ["Q: capital? A:"]}
        if labels is not None:
            payload["labels"] = labels
        response = httpx.post(f"{url}/get_reward", json=payload, timeout=10)
        assert response.status_code == 422
        error = response.json()["error"]
        assert ("'labels[0]' is empty" if labels else "'labels' is missing") in error
        assert "check 'exact'" in error and "--data.label_key" in error
        ok = httpx.post(f"{url}/get_reward", json={**payload, "labels": ["paris"]}, timeout=10)
        assert ok.status_code == 200 and ok.json()["rewards"] == [1.0]


def test_empty_label_is_no_reference_when_none_is_needed(served):
    url, judge, _backend = served
    response = httpx.post(f"{url}/get_reward", json=body(" a good answer", label=""), headers=AUTH,
                          timeout=10)
    assert response.status_code == 200 and response.json()["rewards"] == [1.0]
    assert judge.seen[0][2] is None, "'' is no reference, not an empty one"


def test_token_must_be_set_unless_no_auth(monkeypatch):
    monkeypatch.delenv("JUDGERL_SERVER_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="--no-auth"):
        resolve_token(token_env="JUDGERL_SERVER_TOKEN", no_auth=False)
    assert resolve_token(token_env="JUDGERL_SERVER_TOKEN", no_auth=False,
                         allow_networks=["10.0.0.0/8"]) is None
    assert resolve_token(token_env="JUDGERL_SERVER_TOKEN", no_auth=True) is None
    monkeypatch.setenv("MY_TOKEN", " abc ")
    assert resolve_token(token_env="MY_TOKEN", no_auth=False) == "abc"


def test_serve_command_refuses_to_start_without_a_token(tmp_path, monkeypatch):
    from judgerl.cli import app

    monkeypatch.delenv("JUDGERL_SERVER_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["serve", "--config", str(write_config(tmp_path))])
    assert result.exit_code == 2
    assert "JUDGERL_SERVER_TOKEN" in result.output


@pytest.mark.parametrize(("option", "value"), [
    ("--group-size", "0"), ("--budget-window", "0"), ("--group-timeout-s", "-1"), ("--port", "70000"),
    ("--max-batch", "0"), ("--max-body-mb", "-1")])
def test_serve_refuses_an_option_out_of_range_naming_it(tmp_path, option, value):
    """These used to start (a service answering 413 to everything) or end in a ValueError /
    OverflowError traceback; now the option is named before anything starts."""
    from judgerl.cli import app

    result = CliRunner().invoke(app, ["serve", "--config", str(write_config(tmp_path)), "--no-auth",
                                      option, value])
    assert result.exit_code == 2 and option in result.output, result.output
    assert isinstance(result.exception, SystemExit), result.exception


def test_serve_command_runs_the_server(tmp_path, monkeypatch):
    """`judgerl serve` end to end: the CLI starts uvicorn; a real request gets a reward."""
    monkeypatch.setenv("JUDGERL_SERVER_TOKEN", TOKEN)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    from judgerl.cli import app

    thread = threading.Thread(target=CliRunner().invoke, daemon=True, args=(app, [
        "serve", "--config", str(write_config(tmp_path)), "--port", str(port)]))
    servers: list[uvicorn.Server] = []
    original_run = uvicorn.Server.run

    def capture(self, *args, **kwargs):
        servers.append(self)
        return original_run(self, *args, **kwargs)

    monkeypatch.setattr(uvicorn.Server, "run", capture)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not (servers and servers[0].started):
            assert time.monotonic() < deadline, "judgerl serve did not start"
            time.sleep(0.05)
        response = httpx.post(f"http://127.0.0.1:{port}/get_reward", headers=AUTH, timeout=10,
                              json={"query": ["Q: hi A: hello there"], "prompts": ["Q: hi A:"]})
        assert response.status_code == 200, response.text
        assert response.json()["rewards"] == [1.0]
        assert servers[0].config.host == "127.0.0.1", "loopback unless told otherwise"
    finally:
        if servers:
            servers[0].should_exit = True
        thread.join(timeout=10)


def test_a_spent_judge_budget_is_a_503_without_retry_after(tmp_path):
    """The spending budget is a stop, like the failure budget: 503, no Retry-After, the spend named."""
    config = load_reward_config(write_config(tmp_path), ["runtime.budget_tokens=1"])
    pipeline = RewardPipeline.from_config(config)
    with pipeline, running(create_app(pipeline, token=None)) as url:
        answer = httpx.post(f"{url}/get_reward", json=body(" 4"), timeout=10)
    assert answer.status_code == 503, answer.text
    assert "Retry-After" not in answer.headers
    data = answer.json()
    assert data["budget_exhausted"] is True and "spending budget" in data["error"]
    assert isinstance(data["spend"], dict)
