"""The reward service's group assembly and /metrics, over real HTTP on 127.0.0.1.

Why: verl ≥ 0.9 and OpenRLHF ≥ 0.9.1 send one rollout a request, from many workers; a group judge
must still see the k rollouts of a prompt together. These tests send a group's rollouts in
separate, concurrent requests and check what the judge saw, what an incomplete group gets, and
what `/metrics` reports.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from adapter_fakes import make_group_pipeline, make_pipeline
from judgerl.adapters.openrlhf import create_app
from test_adapter_openrlhf import running

PROMPT = "Q: name a colour. A:"


async def send(url: str, completions: list[str], *, prompt: str = PROMPT, extra: dict | None = None,
               delays: list[float] | None = None) -> list[httpx.Response]:
    """One request per completion, concurrently (as separate OpenRLHF workers would)."""
    async with httpx.AsyncClient(timeout=20) as client:
        async def one(index: int, completion: str) -> httpx.Response:
            await asyncio.sleep(delays[index] if delays else 0.0)
            payload = {"query": [prompt + completion], "prompts": [prompt], "labels": [""], **(extra or {})}
            return await client.post(f"{url}/get_reward", json=payload)

        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(completions))))


def test_rollouts_sent_apart_are_judged_as_one_group():
    pipeline, judge, backend = make_group_pipeline(latency_s=0.05)
    answers = [" red", " dark blue", " green", " ochre"]
    with pipeline, running(create_app(pipeline, token=None, group_size=4, group_timeout_s=10)) as url:
        responses = asyncio.run(send(url, answers, delays=[0.0, 0.05, 0.1, 0.15]))
    assert [response.status_code for response in responses] == [200] * 4
    assert [response.json()["rewards"] for response in responses] == [[0.0], [1.0], [0.0], [0.0]]
    assert [sorted(group) for group in judge.groups] == [sorted(answers)], "one call for the whole group"
    assert len(backend.calls) == 1


def test_groups_are_kept_apart_by_prompt_and_by_given_keys():
    pipeline, judge, _backend = make_group_pipeline()
    with pipeline, running(create_app(pipeline, token=None, group_size=2, group_timeout_s=10)) as url:
        async def both() -> None:
            await asyncio.gather(send(url, [" a", " bb"], prompt="P1:"),
                                 send(url, [" ccc", " d"], prompt="P2:"))
            # verl-style: the caller names the group (uid) and its size; prompts may differ in markup
            await asyncio.gather(
                send(url, [" x"], prompt="<s>P3:", extra={"group_keys": ["uid-7"], "group_size": 3}),
                send(url, [" yy"], prompt="P3:", extra={"group_keys": ["uid-7"], "group_size": 3}),
                send(url, [" zzz"], prompt="P3:", extra={"group_keys": ["uid-7"], "group_size": 3}))

        asyncio.run(both())
    assert sorted(sorted(group) for group in judge.groups) == [
        [" a", " bb"], [" ccc", " d"], [" x", " yy", " zzz"]]


def test_an_incomplete_group_is_unscored_for_a_whole_group_judge():
    pipeline, judge, _backend = make_group_pipeline(failure_policy="neutral")
    with pipeline, running(create_app(pipeline, token=None, group_size=4, group_timeout_s=0.3)) as url:
        responses = asyncio.run(send(url, [" red", " blue"]))
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    for response in responses:
        assert response.status_code == 200
        assert response.json()["rewards"] == [0.5] and response.json()["extra_logs"]["unscored"] == [1.0]
    assert judge.groups == [], "a partial group is never judged as if it were whole"
    assert 'judgerl_groups_total{outcome="incomplete"} 1' in metrics
    assert 'judgerl_unscored_total{reason="group_incomplete"} 2' in metrics


def test_an_incomplete_group_is_scored_per_rollout_for_pointwise_judges():
    pipeline, judge, _backend = make_pipeline()
    with pipeline, running(create_app(pipeline, token=None, group_size=4, group_timeout_s=0.3)) as url:
        responses = asyncio.run(send(url, [" a good one", " meh"]))
    assert [response.json()["rewards"] for response in responses] == [[1.0], [0.5]]  # format 1, quality 0
    assert sorted(seen[1] for seen in judge.seen) == [" a good one", " meh"]


def test_group_keys_must_match_the_query():
    pipeline, _judge, _backend = make_group_pipeline()
    with pipeline, running(create_app(pipeline, token=None, group_size=2)) as url:
        response = httpx.post(f"{url}/get_reward", json={"query": ["a"], "group_keys": ["k", "l"]},
                              timeout=10)
        bad_size = httpx.post(f"{url}/get_reward", json={"query": ["a"], "group_size": 0}, timeout=10)
    assert response.status_code == 422 and "'group_keys' has 2 items" in response.json()["error"]
    assert bad_size.status_code == 422 and "group_size" in bad_size.json()["error"]


def test_metrics_report_requests_rollouts_reasons_latency_and_judge_calls():
    pipeline, _judge, _backend = make_pipeline()
    app = create_app(pipeline, token="t0ken", allow_networks=[])
    auth = {"Authorization": "Bearer t0ken"}
    with pipeline, running(app) as url:
        for completion in (" it is 4", " JUDGE-FAIL", "BAD"):
            httpx.post(f"{url}/get_reward", json={"query": ["Q:" + completion], "prompts": ["Q:"],
                                                  "labels": ["4"]}, headers=auth, timeout=10)
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401, "costs are not public"
        response = httpx.get(f"{url}/metrics", headers=auth, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'judgerl_requests_total{code="200"} 3' in text
    assert 'judgerl_rollouts_total{status="ok"} 1' in text
    assert 'judgerl_rollouts_total{status="gated"} 1' in text
    assert 'judgerl_unscored_total{reason="judge_error"} 1' in text
    assert "judgerl_requests_in_flight 0" in text
    assert re.search(r"^judgerl_request_seconds_count 3$", text, re.M)
    assert re.search(r"^judgerl_judge_calls_total 2$", text, re.M)
    assert "judgerl_group_wait_seconds_count 0" in text
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if not line.startswith("#"):
            assert re.fullmatch(r'[a-z_0-9]+(\{[a-z]+="[^"]*"\})? (-?[\d.e+-]+|NaN|\+Inf)', line), line


@pytest.mark.parametrize("group_size", [1, 3])
def test_many_concurrent_single_rollout_clients(group_size):
    """24 prompts x 3 rollouts from 72 concurrent requests: every one answered, groups whole."""
    pipeline, judge, _backend = make_group_pipeline(latency_s=0.02)
    app = create_app(pipeline, token=None, group_size=group_size, group_timeout_s=10)
    with pipeline, running(app) as url:
        async def all_prompts() -> list[list[httpx.Response]]:
            return list(await asyncio.gather(*(send(url, [" a", " bb", " c"], prompt=f"P{i}:")
                                               for i in range(24))))

        results = asyncio.run(all_prompts())
    assert all(response.status_code == 200 for responses in results for response in responses)
    expected = [[" a", " bb", " c"]] * 24 if group_size == 3 else [[" a"], [" bb"], [" c"]] * 24
    assert sorted(sorted(group) for group in judge.groups) == sorted(expected)


def test_stopping_the_server_answers_held_rollouts_at_once():
    """SIGTERM (uvicorn's should_exit): groups still waiting are judged as they are, not after 60 s."""
    import socket
    import threading
    import time

    import uvicorn

    from judgerl.adapters.openrlhf import draining_server

    pipeline, judge, _backend = make_group_pipeline(failure_policy="neutral")
    app = create_app(pipeline, token=None, group_size=4, group_timeout_s=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = draining_server(uvicorn.Config(app, log_level="warning", access_log=False), app.state.assembler)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    with pipeline:
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

        async def stop_while_held() -> list[httpx.Response]:
            held = asyncio.ensure_future(send(url, [" red", " blue"]))
            await asyncio.sleep(0.5)
            server.should_exit = True
            return await held

        started = time.monotonic()
        responses = asyncio.run(stop_while_held())
        elapsed = time.monotonic() - started
        thread.join(timeout=20)
        sock.close()
    assert elapsed < 10, f"held requests waited {elapsed:.1f} s: the shutdown did not flush the groups"
    assert [response.json()["extra_logs"]["unscored"] for response in responses] == [[1.0], [1.0]]
    assert judge.groups == [], "an incomplete group is not judged by a whole-group judge"
    assert not thread.is_alive()
