"""`judgerl train` in two processes under `accelerate launch` (gloo, CPU): real TRL, real HTTP judge.

The launch is `ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2`: accelerate
1.15's `--cpu --num_processes 2` starts ONE process unless given an MPI hostfile (its simple
launcher), while `--multi_gpu` starts two through torchrun and `ACCELERATE_USE_CPU` makes
transformers' `TrainingArguments` set up the gloo process group on CPU (`DistributedType.MULTI_CPU`).

TRL hands each rank its share of the generation batch, and with 3 prompts x 4 completions over
2 ranks of 6 rows the second prompt's completions are split over both ranks. The group judge is
the fake OpenAI-compatible server on loopback (it records every request and the most requests
it held at once). The test checks what issue 18 asks of a multi-process run: every group request
holds all 4 completions of one prompt, the judge's `max_concurrency` holds for the whole run,
one journal holds the whole global batch, and the logged metrics are the global batch's.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from tiny_policy import build_tiny_model_dir

ROOT = Path(__file__).resolve().parents[1]
PAIR = re.compile(r"Answer ([AB]):\n<<<ANSWER_[AB]_[a-z]+>>>\n(.*?)\n<<<END_ANSWER_[AB]_[a-z]+>>>",
                  re.S)
ANSWER = re.compile(r"Answer (r\d+):\n<<<ANSWER_R\d+_[a-z]+>>>\n(.*?)\n<<<END_ANSWER_R\d+_[a-z]+>>>",
                    re.S)
GENERATIONS = 4
MAX_CONCURRENCY = 2


def shown_answers(request: RecordedRequest) -> dict[str, str]:
    """id -> answer text, as the group judge showed them."""
    return dict(ANSWER.findall(request.messages[-1]["content"]))


def group_score(answer: str) -> int:
    """The fake judge's 1-10 score: a function of the answer alone, so the test can recompute it."""
    return 1 + len(answer) % 10


def responder(request: RecordedRequest) -> Reply:
    answers = shown_answers(request)
    body = {"scores": [{"id": key, "score": group_score(text), "rationale": "fake"}
                       for key, text in answers.items()]}
    return Reply(text=json.dumps(body), delay_s=0.3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_recipe(root: Path, server: FakeOpenAIServer, *, failure_budget: float = 1.0) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"Say something short about {word}.", "reference": word}
            for i, word in enumerate(["cats", "dogs", "Paris", "rain", "tea", "snow"])]
    (root / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    reward = {
        "backends": {"judge": {"type": "openai", "base_url": server.url, "model": "fake",
                               "max_concurrency": MAX_CONCURRENCY, "timeout_s": 30}},
        "runtime": {"journal_path": str(root / "journal.jsonl"), "max_attempts": 2},
        "judges": [{"name": "rank", "type": "group", "backend": "judge"}],
        "failure_budget": failure_budget,
    }
    recipe = {"model": {"name_or_path": str(root / "model"), "lora": {"enabled": False}},
              "data": {"train": str(root / "train.jsonl"), "shuffle": False}, "reward": reward,
              "rollout": {"number_generation": GENERATIONS, "max_new_tokens": 8},
              # 12 completions a step = 3 prompts; 6 rows per rank: prompt 2 is split over the ranks
              "trainer": {"max_steps": 2, "global_batch_size": 12, "per_device_batch_size": 6,
                          "save_steps": 100, "learning_rate": 5e-3},
              "monitors": {"progress": False},
              "logging": {"output_dir": str(root / "out")}}
    path = root / "recipe.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")  # JSON is YAML
    return path


def launch(target: list[str], log: Path) -> subprocess.CompletedProcess[str]:
    """`accelerate launch` two CPU processes running `target` (a script, or `-m module ...`)."""
    accelerate = Path(sys.executable).parent / "accelerate"
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               *target]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true", "ACCELERATE_USE_CPU": "true"}
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                            cwd=str(log.parent))
    log.write_text(result.stdout + "\n---stderr---\n" + result.stderr, encoding="utf-8")
    return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mp")
    build_tiny_model_dir(root / "model")
    with FakeOpenAIServer() as server:
        server.responder = responder
        result = launch(["-m", "judgerl.cli", "train", str(write_recipe(root, server))], root / "launch.log")
        requests = list(server.chat_requests)
        stats = server.stats()
    assert result.returncode == 0, result.stderr[-4000:]
    assert (result.stdout + result.stderr).count("trained 2 steps") == 1  # rank 0 reports for the run
    return {"root": root, "requests": requests, "stats": stats, "out": root / "out"}


def test_groups_whole_limits_global_one_journal(two_process_run: dict[str, Any]) -> None:
    root, out, requests = two_process_run["root"], two_process_run["out"], two_process_run["requests"]
    completions = read_jsonl(out / "completions.jsonl")
    assert len(completions) == 2 * 12 and {row["step"] for row in completions} == {1, 2}

    # TRL did split a prompt's completions over the ranks (else this test proves nothing) ...
    ranks_of = defaultdict(set)
    for row in completions:
        ranks_of[(row["step"], row["sample_id"])].add(row["rank"])
    assert {rank for ranks in ranks_of.values() for rank in ranks} == {0, 1}
    assert any(ranks == {0, 1} for ranks in ranks_of.values())

    # ... yet every group request shows all 4 completions of one prompt
    assert len(requests) == 2 * 3
    groups = defaultdict(list)
    for row in completions:
        groups[(row["step"], row["sample_id"])].append(row["completion"])
    shown = sorted(sorted(shown_answers(request).values()) for request in requests)
    assert all(len(answers) == GENERATIONS for answers in shown)
    assert shown == sorted(sorted(answers) for answers in groups.values())

    # the judge's limit held for the run as a whole (two per-rank pipelines could hold 4 at once)
    assert two_process_run["stats"]["max_concurrent"] == MAX_CONCURRENCY

    # one journal, written by the main process, covering the global batch
    journals = sorted(path.name for path in root.rglob("*journal*"))
    assert journals == ["journal.jsonl"]
    entries = read_jsonl(root / "journal.jsonl")
    assert len(entries) == 2 * 3
    assert sorted(rid for entry in entries for rid in entry["rollout_ids"]) == sorted(
        row["rollout_id"] for row in completions)
    # run-folder files come from the main process only
    assert not list(out.glob("completions.rank*")) and not list(out.glob("metrics.rank*"))
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1

    # every reward is the fake judge's score of that completion, normalised
    for row in completions:
        assert row["reward"] == pytest.approx((group_score(row["completion"]) - 1) / 9)


def test_metrics_describe_the_global_batch(two_process_run: dict[str, Any]) -> None:
    out = two_process_run["out"]
    completions = read_jsonl(out / "completions.jsonl")
    rows = read_jsonl(out / "metrics.jsonl")
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        batch = [item for item in completions if item["step"] == row["step"]]
        values = [item["reward"] for item in batch]
        # judgerl's own figures, logged by the main process over all 12 rollouts
        assert row["reward/rank/mean"] == pytest.approx(mean(values), abs=1e-6)
        assert row["reward/unscored_frac"] == 0.0
        assert row["judge/calls"] == 3
        # TRL's reward mean over what each rank returned: right only if each rank got its own slice
        assert row["reward"] == pytest.approx(mean(values), abs=1e-5)


# -- the TRL adapter in a user's own script: a round-robin pairwise judge ------------------------


def pair_responder(request: RecordedRequest) -> Reply:
    """The longer answer wins (a tie when equally long), whichever order it is shown in."""
    shown = dict(PAIR.findall(request.messages[-1]["content"]))
    a, b = len(shown["A"]), len(shown["B"])
    winner = "A" if a > b else ("B" if b > a else "tie")
    return Reply(text=json.dumps({"rationale": "fake", "winner": winner}), delay_s=0.05)


def win_rate(answer: str, group: list[str], index: int) -> float:
    """What round robin gives `answer` (at `index`) against the rest of its whole group."""
    results = [1.0 if len(answer) > len(other) else (0.0 if len(answer) < len(other) else 0.5)
               for position, other in enumerate(group) if position != index]
    return sum(results) / len(results)


def test_adapter_in_a_user_script_scores_whole_pairwise_groups(tmp_path: Path) -> None:
    build_tiny_model_dir(tmp_path / "model")
    out = tmp_path / "out"
    out.mkdir()
    with FakeOpenAIServer() as server:
        server.responder = pair_responder
        result = launch([str(ROOT / "tests" / "trl_adapter_script.py"), str(tmp_path / "model"), server.url,
                         str(out)], tmp_path / "launch.log")
        requests = list(server.chat_requests)
        stats = server.stats()
    assert result.returncode == 0, result.stderr[-4000:]
    assert "rank 0: pipeline built: True" in result.stdout
    assert "rank 1: pipeline built: False" in result.stdout  # no judge backend on the other rank

    # what TRL handed each rank, in rank order, is the global batch: 3 prompts x 4, one split
    local = {rank: read_jsonl(out / f"rank{rank}.jsonl") for rank in (0, 1)}
    assert all(len(rows) == 1 and len(rows[0]["completions"]) == 6 for rows in local.values())
    prompts = local[0][0]["prompts"] + local[1][0]["prompts"]
    completions = local[0][0]["completions"] + local[1][0]["completions"]
    values = local[0][0]["values"] + local[1][0]["values"]
    assert set(local[0][0]["prompts"]) & set(local[1][0]["prompts"])  # a prompt on both ranks
    groups: dict[str, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        groups[prompt].append(index)
    assert sorted(map(len, groups.values())) == [4, 4, 4]

    # each rank got back the win rate of its own completions against their WHOLE group
    for indices in groups.values():
        group = [completions[index] for index in indices]
        for position, index in enumerate(indices):
            assert values[index] == pytest.approx(win_rate(group[position], group, position))

    # the judge compared exactly the pairs of each whole group (the split one's cross-rank pairs too)
    expected = {frozenset((completions[i], completions[j]))
                for indices in groups.values() for i in indices for j in indices
                if i < j and completions[i] != completions[j]}
    compared = set()
    for request in requests:
        shown = dict(PAIR.findall(request.messages[-1]["content"]))
        assert len(shown) == 2
        compared.add(frozenset((shown["A"], shown["B"])))
    assert compared == expected
    assert len(requests) == 2 * len(expected)  # both orders
    assert stats["max_concurrent"] == 3  # the judge's limit, for both ranks together

    # one journal (one entry per pair), written by rank 0; judgerl's metrics are the global batch's
    assert sorted(path.name for path in tmp_path.rglob("*journal*")) == ["journal.jsonl"]
    entries = read_jsonl(out / "journal.jsonl")
    assert len(entries) == len(expected)
    assert len({entry["sample_id"] for entry in entries}) == 3
    [logged] = [row for row in json.loads((out / "log_history.json").read_text()) if "judge/duel/mean" in row]
    assert logged["judge/duel/mean"] == pytest.approx(mean(values), abs=1e-6)
    assert logged["rewards/judge/mean"] == pytest.approx(mean(values), abs=1e-6)


def test_launched_without_a_process_group_is_refused_with_the_fix(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """WORLD_SIZE=2 but no process group (accelerate --multi_gpu on CPU without ACCELERATE_USE_CPU):
    each process would train alone on everything; the run stops at once and says what to set."""
    from judgerl.backends.scripted import ScriptedBackend
    from judgerl.errors import ConfigError
    from judgerl.train.grpo import GrpoRun
    from judgerl.train.recipe import load_recipe

    build_tiny_model_dir(tmp_path / "model")
    (tmp_path / "train.jsonl").write_text('{"id": "q0", "prompt": "Hi?"}\n{"id": "q1", "prompt": "Yo?"}\n')
    recipe = load_recipe({
        "model": {"name_or_path": str(tmp_path / "model"), "lora": {"enabled": False}},
        "data": {"train": str(tmp_path / "train.jsonl")},
        "reward": {"backends": {"judge": {"type": "scripted"}},
                   "judges": [{"name": "rank", "type": "group", "backend": "judge"}]},
        "rollout": {"number_generation": 4, "max_new_tokens": 4},
        "trainer": {"max_steps": 1, "global_batch_size": 8, "per_device_batch_size": 4},
        "monitors": {"progress": False},
        "logging": {"output_dir": str(tmp_path / "out"), "tensorboard": False}})
    for name in ("LOCAL_RANK", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="ACCELERATE_USE_CPU=true"):
        GrpoRun(recipe, backends={"judge": ScriptedBackend(lambda request: "{}")})


@pytest.mark.slow  # ~30 s; the same path without TRL is in test_trl_ranks.py (non-slow)
def test_a_failure_on_rank_0_stops_every_rank(tmp_path: Path) -> None:
    """The judge refuses every request (a fatal 400): rank 0's scoring raises; rank 1, waiting for
    its rewards, is told so and raises too, so the launch ends with an error instead of hanging."""
    build_tiny_model_dir(tmp_path / "model")
    with FakeOpenAIServer() as server:
        server.default = Reply(status=400, error="model not loaded")
        recipe = write_recipe(tmp_path, server)
        result = launch(["-m", "judgerl.cli", "train", str(recipe)], tmp_path / "launch.log")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "error: http_400:" in output and "model not loaded" in output  # rank 0
    assert "error: the main process (rank 0) could not score the batch: FatalBackendError: http_400" in output
    assert not (tmp_path / "out" / "final").exists()
