"""A real OpenAI-compatible server in the tests: llama.cpp's (llama-cpp-python[server]) on the
packaged SmolLM2-135M GGUF, on a loopback port.

Why: the fake server checks what judgerl sends; only a real server shows that it is understood.
This runs the quickstart's rubric judge (generate, the answer's schema enforced by the server's
grammar: no row unscored; logprob: the default PASS / FAIL refused before the run with the pair
that works, then every row scored with it), the quickstart's pairwise judge, and the validation
suite through `endpoint: completions` beside the in-process backend on the same rows, comparing
their verdicts judgment by judgment.

Slow, and skipped when `llama_cpp` is not importable: llama-cpp-python builds llama.cpp from source
(about 15 minutes on 2 cores), so CI's setup does not install it; `JUDGERL_SETUP_LLAMA_SERVER=1
scripts/setup` does (see docs/guides/judge-servers.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed "
                    "(JUDGERL_SETUP_LLAMA_SERVER=1 scripts/setup builds it)")

from judgerl.errors import ConfigError
from judgerl.models.packaged import packaged_gguf
from judgerl.reward.pipeline import RewardPipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
VALIDATION = ROOT / "examples" / "validation"
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited ({process.returncode}): "
                               f"{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the llama.cpp server did not answer within {START_TIMEOUT_S} s: "
                       f"{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on the packaged GGUF, 127.0.0.1 only; yields its /v1 URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    gguf = packaged_gguf("smollm2-135m-instruct")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--seed", "0",
               "--n_threads", str(min(2, os.cpu_count() or 1)), "--verbose", "false"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def server_overrides(url: str, tmp_path: Path, *, backend: str = "judge") -> list[str]:
    return [f"backends.{backend}.type=llamacpp", f"backends.{backend}.base_url={url}",
            f"backends.{backend}.model=smollm2-135m", f"backends.{backend}.max_concurrency=2",
            f"backends.{backend}.timeout_s=300",
            f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
            f"runtime.journal_path={tmp_path / 'journal.jsonl'}"]


def score(config: Path, overrides: list[str], tmp_path: Path) -> list[dict[str, Any]]:
    """`judgerl score` as a user runs it; the rewards written."""
    output = tmp_path / "rewards.jsonl"
    command = [sys.executable, "-m", "judgerl.cli", "score", "-c", str(config), "-i",
               str(QUICKSTART / "rollouts.jsonl"), "-o", str(output), "--no-resume"]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200, env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in output.read_text().splitlines() if line.strip()]


def judged(rewards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [reward for reward in rewards if reward["status"] != "gated"]


def test_quickstart_rubric_generate_with_the_schema_scores_every_rollout(llama_server: str,
                                                                         tmp_path: Path) -> None:
    rewards = score(QUICKSTART / "reward_rubric.yaml", server_overrides(llama_server, tmp_path), tmp_path)
    assert len(rewards) == 8 and len(judged(rewards)) == 6  # 2 of the 8 fail the schema gate
    unscored = [reward for reward in rewards if reward["status"] == "unscored"]
    assert unscored == [], unscored
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert {entry["outcome"] for entry in journal if entry.get("judge") == "quality"} == {"ok"}


def test_quickstart_rubric_logprob_refuses_pass_and_scores_with_yes_no(llama_server: str,
                                                                       tmp_path: Path) -> None:
    overrides = [*server_overrides(llama_server, tmp_path), "judges.0.scoring=logprob"]
    refused = r"'PASS' splits into 'P' \+ 'ASS'.*pass_token: \"Yes\" / fail_token: \"No\""
    rubric = str(QUICKSTART / "reward_rubric.yaml")
    with RewardPipeline.from_config(rubric, overrides=overrides) as pipeline, \
            pytest.raises(ConfigError, match=refused):
        pipeline.loop_thread().run(pipeline.check_verdict_tokens())
    rewards = score(QUICKSTART / "reward_rubric.yaml",
                    [*overrides, 'judges.0.pass_token="Yes"', 'judges.0.fail_token="No"'], tmp_path)
    assert len(judged(rewards)) == 6
    assert [reward for reward in rewards if reward["status"] == "unscored"] == []


def test_quickstart_pairwise_judge(llama_server: str, tmp_path: Path) -> None:
    rewards = score(QUICKSTART / "reward_pairwise.yaml", server_overrides(llama_server, tmp_path), tmp_path)
    assert judged(rewards)
    assert [reward for reward in rewards if reward["status"] == "unscored"] == []


def journal_scores(path: Path) -> dict[str, float]:
    """P(pass) of each judgment in a journal, by the hash of the prompt it judged."""
    found = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("outcome") == "ok" and entry.get("prompt_hash") \
                and isinstance(entry.get("scores"), dict):
            found[entry["prompt_hash"]] = float(entry["scores"]["value"])
    return found


@pytest.mark.timeout(3600)  # the suite twice: about 10 minutes a path on 2 busy cores
def test_validation_suite_through_completions_matches_in_process(llama_server: str, tmp_path: Path) -> None:
    """examples/validation on the server (endpoint completions, the prompt rendered as in-process)
    and in-process, same rows: the same prompts are judged, and the verdicts compared."""
    from judgerl.backends.openai_compat import OpenAICompatBackend
    from judgerl.validate.runner import run_validation

    reports, journals = {}, {}
    for path in ("local", "server"):
        journal = tmp_path / f"{path}.jsonl"
        overrides = [f"runtime.journal_path={journal}"]
        backends = None
        if path == "server":
            backends = {"local": OpenAICompatBackend(llama_server, "smollm2-135m", endpoint="completions",
                                                     server="llamacpp", timeout_s=300, max_concurrency=2)}
        reports[path] = run_validation(VALIDATION / "reward.yaml", VALIDATION / "suite.yaml",
                                       overrides=overrides, backends=backends, other_backends=backends)
        journals[path] = journal_scores(journal)
    local, server = journals["local"], journals["server"]
    shared = sorted(set(local) & set(server))
    assert len(shared) >= 0.9 * len(local), "the two paths judged different prompts"
    same_side = sum((local[key] > 0.5) == (server[key] > 0.5) for key in shared) / len(shared)
    gap = max(abs(local[key] - server[key]) for key in shared)
    figures = {path: {section.name: section.figures for section in report.sections}
               for path, report in reports.items()}
    print(json.dumps({"judgments": len(shared), "same_side_of_0.5": round(same_side, 3),
                      "max_abs_p_gap": round(gap, 4), "sections": figures}, default=str))
    # the figures are bench/judge_server_agreement.py's; here: the same prompts, close probabilities
    assert gap < 0.1  # the same model on the same text: only numerics differ (Q4_1 kernels vs float32)
