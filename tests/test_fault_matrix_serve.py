"""The fault matrix, `judgerl serve` rows (issue 17): bodies and clients the reward server must
survive, over real HTTP and raw sockets on 127.0.0.1.

The server runs as `judgerl serve` runs it (`server_config`: the guarded h11 protocol) in a
background thread, in front of a real pipeline (a length check and a rubric judge on the
scripted backend, so prompts are rendered and fenced as for a real judge).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from adapter_fakes import make_pipeline, write_config
from judgerl.adapters.http_guard import GuardedServer, raise_fd_limit
from judgerl.adapters.openrlhf import create_app, server_config
from judgerl.reward.pipeline import RewardPipeline
from judgerl.runtime.journal import RECENT_ENTRIES


@contextmanager
def serving(app: Any, **limits: Any) -> Iterator[int]:
    """Run `app` with `judgerl serve`'s uvicorn config on a free loopback port; yield the port."""
    with serving_config(app, **limits) as (port, _config):
        yield port


@contextmanager
def serving_config(app: Any, **limits: Any) -> Iterator[tuple[int, uvicorn.Config]]:
    """`serving`, yielding the port and the uvicorn config (its protocol's gate counts connections)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(app, host="127.0.0.1", port=port, log_level="warning", **limits)
    server = GuardedServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port, config
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[RewardPipeline]:
    with RewardPipeline.from_config(write_config(tmp_path)) as built:
        yield built


@pytest.fixture
def served(pipeline: RewardPipeline) -> Iterator[str]:
    with serving(create_app(pipeline, token=None)) as port:
        yield f"http://127.0.0.1:{port}"


def post_raw(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/get_reward", content=body, headers={"content-type": "application/json"},
                      timeout=30)


# -- case 5: a lone surrogate is that item's failure --------------------------------------------


@pytest.mark.parametrize("where", ["query", "prompt", "label"])
def test_case05_a_lone_surrogate_is_that_items_failure_not_a_500(served: str, where: str):
    prompts = ["Q: capital of France? A:", "Q: 2+2? A:", "Q: colour of the sky? A:"]
    answers = [" Paris is the capital.", " It is four.", " The sky is blue."]
    body: dict[str, Any] = {"query": [p + a for p, a in zip(prompts, answers, strict=True)],
                            "prompts": list(prompts), "labels": ["Paris", "4", "blue"]}
    if where == "query":
        body["query"][1] = body["query"][1] + " \ud800"
    elif where == "prompt":
        body["prompts"][1] = "Q: 2+2\udfff? A:"
        body["query"][1] = body["prompts"][1] + answers[1]
    else:
        body["labels"][1] = "4\ud83d"
    response = post_raw(served, json.dumps(body).encode())  # ensure_ascii: the escape \ud800
    assert response.status_code == 200, response.text
    logs = response.json()["extra_logs"]
    assert logs["unscored"] == [0.0, 1.0, 0.0]
    assert response.json()["rewards"][0] == 1.0 and response.json()["rewards"][2] == 1.0


def test_case05_the_unscored_reason_says_why(pipeline: RewardPipeline):
    from judgerl.types import Rollout, Sample

    sample = Sample("s", [{"role": "user", "content": "Hi"}])
    [bad, good] = pipeline.score_batch_sync([(sample, Rollout("s", "bad \ud800", id="s/0")),
                                             (sample, Rollout("s", "a fine answer", id="s/1"))])
    assert bad.status == "unscored"
    assert bad.reason.startswith("invalid_text: rollout 's/0', field 'completion'")
    assert "lone surrogate at character 4" in bad.reason
    assert good.status == "ok"


# -- case 6: deeply nested bodies are 422 -----------------------------------------------------


@pytest.mark.parametrize("depth", [150, 100_000])
def test_case06_a_deeply_nested_body_is_422_not_500(served: str, depth: int):
    labels = "[" * depth + "]" * depth
    body = ('{"query": ["Q: hi A: hello"], "prompts": ["Q: hi A:"], "labels": [' + labels + "]}").encode()
    response = post_raw(served, body)
    assert response.status_code == 422, response.text
    assert "nested more than 100 levels deep" in response.json()["error"]
    assert post_raw(served, json.dumps({"query": ["Q: hi A: hello there"]}).encode()).status_code == 200


# -- case 10: memory stays bounded in a long-running server ---------------------------------------


def test_case10_a_long_running_server_keeps_bounded_state(served: str, pipeline: RewardPipeline):
    batch = {"query": [f"Q: item {i}? A: answer {i} for you" for i in range(64)]}
    with httpx.Client(timeout=30) as client:
        for _round in range(40):  # 2,560 judgments
            response = client.post(f"{served}/get_reward", json=batch)
            assert response.status_code == 200
            batch["query"] = [text + "!" for text in batch["query"]]  # new texts: no cache, no dedup
    runtime = pipeline.runtime
    assert len(runtime.journal_entries) == RECENT_ENTRIES, "the in-memory journal grew with every judgment"
    assert runtime.journal.written == 2560
    backend = runtime.backends["judge"]
    assert len(backend.calls) <= backend.keep_calls


# -- also seen: slow clients ------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.05)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset); never blocks long."""
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def trickle_until_closed(sock: socket.socket, payload: bytes, *, seconds: float, every: float = 0.1) -> float:
    """Send `payload` one byte every `every` s until the server hangs up; return when (or inf)."""
    started = time.monotonic()
    for byte in (payload[i:i + 1] for i in range(len(payload))):
        if time.monotonic() - started > seconds:
            break
        try:
            sock.sendall(byte)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
        if closed_by_server(sock):
            return time.monotonic() - started
        time.sleep(every)
    return float("inf")


def test_slow_headers_are_cut_off(pipeline: RewardPipeline):
    with serving(create_app(pipeline, token=None), header_timeout_s=0.6) as port:
        sock = connect(port)
        headers = b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
        closed_after = trickle_until_closed(sock, headers, seconds=5.0)
        sock.close()
        assert closed_after < 2.0, "a client trickling its headers holds the connection"
        assert closed_after >= 0.5, "closed before the header timeout"


def test_a_silent_connection_is_cut_off(pipeline: RewardPipeline):
    with serving(create_app(pipeline, token=None), header_timeout_s=0.5, idle_timeout_s=0.8) as port:
        sock = connect(port)
        started = time.monotonic()
        while not closed_by_server(sock):
            assert time.monotonic() < started + 5, "a connection that sends nothing stays open"
        sock.close()
        assert time.monotonic() - started >= 0.7, "closed before the idle timeout"


def test_a_client_slow_to_send_its_first_byte_is_served_when_no_one_waits(pipeline: RewardPipeline):
    """A busy client (its own loop behind) may send its request long after the connection opened:
    past the header timeout, it is still answered while no other connection waits for a slot."""
    with serving(create_app(pipeline, token=None), header_timeout_s=0.3) as port:
        sock = connect(port)
        time.sleep(1.0)  # over three header timeouts without a byte
        body = json.dumps({"query": ["Q: hi A: hello there"]}).encode()
        sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sock.settimeout(10)
        reply = sock.recv(65536)
        sock.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_silent_connections_are_cut_at_the_header_timeout_when_others_wait(pipeline: RewardPipeline):
    with serving_config(create_app(pipeline, token=None), header_timeout_s=0.5,
                        max_connections=3) as (port, config):
        silent = [connect(port) for _ in range(3)]
        time.sleep(0.1)
        waiting = connect(port)
        body = json.dumps({"query": ["Q: hi A: hello there"]}).encode()
        waiting.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
        started = time.monotonic()
        waiting.settimeout(10)
        reply = waiting.recv(65536)
        took = time.monotonic() - started
        closed = [closed_by_server(sock) for sock in silent]
        for sock in [*silent, waiting]:
            sock.close()
        gate = config.http_protocol_class.gate
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert all(closed), "the silent connections holding the slots were kept"
    assert gate.silent_closed == 3
    assert took < 5, f"the waiting client was answered after {took:.1f}s"


def test_slow_body_is_cut_off(pipeline: RewardPipeline):
    with serving(create_app(pipeline, token=None), header_timeout_s=5.0, body_timeout_s=0.6) as port:
        sock = connect(port)
        sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n")
        closed_after = trickle_until_closed(sock, b'{"query": [' + b" " * 480, seconds=5.0)
        sock.close()
        assert closed_after < 2.0, "a client trickling its body holds the connection"


def test_two_hundred_slow_header_connections_are_all_closed(pipeline: RewardPipeline):
    with serving(create_app(pipeline, token=None), header_timeout_s=1.0) as port:
        sockets = [connect(port) for _ in range(200)]
        for sock in sockets:
            sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        deadline = time.monotonic() + 6
        open_ones = list(sockets)
        while open_ones and time.monotonic() < deadline:
            open_ones = [sock for sock in open_ones if not closed_by_server(sock)]
        for sock in sockets:
            sock.close()
        assert not open_ones, f"{len(open_ones)} of 200 slow connections still open"


def test_connections_beyond_max_connections_wait_and_are_answered(pipeline: RewardPipeline):
    """Past the bound a connection is not closed: it waits (accepting pauses), then is answered."""
    with serving_config(create_app(pipeline, token=None), header_timeout_s=5.0, max_connections=5) as (port,
                                                                                                       config):
        idle = [connect(port) for _ in range(5)]
        time.sleep(0.2)
        waiting = connect(port)  # the kernel completes the handshake: it waits in the backlog
        body = json.dumps({"query": ["Q: hi A: hello there"]}).encode()
        waiting.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.5)
        assert not closed_by_server(waiting), "a connection over the bound was closed"
        assert config.http_protocol_class.gate.pauses >= 1, "accepting did not pause at the bound"
        assert not any(closed_by_server(sock) for sock in idle), "connections under the bound were kept"
        for sock in idle:
            sock.close()  # their slots free up: the waiting connection is let in and answered
        waiting.settimeout(10)
        reply = waiting.recv(65536)
        waiting.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        with httpx.Client(timeout=10) as client:  # one keep-alive connection, two requests
            for _ in range(2):
                response = client.post(f"http://127.0.0.1:{port}/get_reward",
                                       json={"query": ["Q: hi A: hello there"]})
                assert response.status_code == 200, response.text


# -- issue 26: a training cluster's batch at once is answered in full -------------------------------


def post_on_open_sockets(port: int, count: int, seconds: float) -> list[bytes]:
    """Open `count` connections first (all at once), then send a request on each; the first line
    of each reply (b"" where the server closed the connection)."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=seconds) for _ in range(count)]
    try:
        for index, sock in enumerate(sockets):
            body = json.dumps({"query": [f"Q: item {index}? A: good answer {index}"]}).encode()
            with contextlib.suppress(OSError):  # closed by the server: the empty reply below says so
                sock.sendall(b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                             + body)
        replies = []
        deadline = time.monotonic() + seconds
        for sock in sockets:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                replies.append(sock.recv(65536).split(b"\r\n", 1)[0])
            except OSError:
                replies.append(b"")
        return replies
    finally:
        for sock in sockets:
            sock.close()


def test_more_concurrent_clients_than_the_old_cap_are_all_answered():
    """600 connections open at once (the old cap closed all past 512), each answered 200."""
    count = 600
    if raise_fd_limit()[1] < 2 * count + 200:
        pytest.skip("needs ~1,400 open files (client and server share this process)")
    pipeline, _judge, _backend = make_pipeline(latency_s=0.2)  # each request waits for its judgment
    with pipeline, serving_config(create_app(pipeline, token=None)) as (port, config):
        started = time.monotonic()
        replies = post_on_open_sockets(port, count, seconds=60)
        took = time.monotonic() - started
        peak = config.http_protocol_class.gate.peak_active
    answered = sum(reply.startswith(b"HTTP/1.1 200") for reply in replies)
    assert answered == count, f"{count - answered} of {count} got no answer ({set(replies)})"
    assert peak > 512, f"only {peak} connections were open at once: the test did not exceed the old cap"
    assert took < 60


def test_a_burst_past_max_connections_is_answered_in_full_with_at_most_that_many_served():
    pipeline, _judge, _backend = make_pipeline(latency_s=0.05)
    with pipeline, serving_config(create_app(pipeline, token=None), max_connections=8) as (port, config):
        replies = post_on_open_sockets(port, 100, seconds=60)
        gate = config.http_protocol_class.gate
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert sum(reply.startswith(b"HTTP/1.1 200") for reply in replies) == 100, set(replies)
    assert gate.peak_active <= 8, f"{gate.peak_active} connections were served at once (max 8)"
    assert gate.peak_waiting > 0 or gate.pauses > 0, "the burst never met the bound"
    assert "judgerl_connections_max 8" in metrics
    assert f"judgerl_accept_pauses_total {gate.pauses}" in metrics
    assert "judgerl_pending_request_bytes 0" in metrics, "every request's bytes were given back"


# -- issue 26: a client that leaves is one log line, not a traceback --------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("when", ["mid_body", "while_judged"])
def test_a_client_disconnecting_mid_request_is_one_log_line(when: str):
    records = Records()
    loggers = [logging.getLogger(name) for name in ("judgerl.serve", "uvicorn.error", "uvicorn")]
    pipeline, _judge, _backend = make_pipeline(latency_s=0.4)
    with pipeline, serving(create_app(pipeline, token=None)) as port:
        for log in loggers:
            log.addHandler(records)
        level = loggers[0].level
        loggers[0].setLevel(logging.INFO)
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            body = json.dumps({"query": ["Q: hi A: good"]}).encode()
            head = (b"POST /get_reward HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body))
            sock.sendall(head + (body[:5] if when == "mid_body" else body))
            time.sleep(0.1)
            sock.close()
            deadline = time.monotonic() + 5
            while not any("disconnected" in r.getMessage() for r in records.records):
                assert time.monotonic() < deadline, [r.getMessage() for r in records.records]
                time.sleep(0.05)
            time.sleep(0.2)  # anything else it would log
        finally:
            for log in loggers:
                log.removeHandler(records)
            loggers[0].setLevel(level)
    about_it = [r for r in records.records if r.name != "judgerl.serve" or "disconnected" in r.getMessage()]
    assert len(about_it) == 1, [(r.name, r.levelname, r.getMessage()) for r in about_it]
    [line] = about_it
    assert line.exc_info is None and line.levelno <= logging.INFO
    assert ("before its request was read" if when == "mid_body" else "before its answer") in line.getMessage()


# -- issue 26: refusing for memory is 503 with Retry-After -------------------------------------------


def test_past_the_pending_bytes_bound_the_answer_is_503_with_retry_after():
    pipeline, _judge, _backend = make_pipeline(latency_s=0.6)
    body = json.dumps({"query": ["Q: hi A: good " + "x" * 60]}).encode()
    app = create_app(pipeline, token=None, max_pending_bytes=len(body) + 10)
    with pipeline, serving(app) as port:
        url = f"http://127.0.0.1:{port}/get_reward"
        headers = {"content-type": "application/json"}
        held = threading.Thread(target=httpx.post, args=(url,), kwargs={"content": body, "headers": headers,
                                                                         "timeout": 10})
        held.start()  # holds its body while judged (0.6 s)
        time.sleep(0.2)
        refused = httpx.post(url, content=body, headers=headers, timeout=10)
        held.join()
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert "try again later" in refused.json()["error"]
        again = httpx.post(url, content=body, headers=headers, timeout=10)
        assert again.status_code == 200, "the held bytes were not given back"
