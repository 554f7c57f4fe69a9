"""examples/support_agent: the shipped trajectories are what the fake tools give, and the reward ranks
them as a person would on everything the deterministic parts can see (good > the rest)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from judgerl.backends.base import Completion, CompletionRequest
from judgerl.backends.scripted import ScriptedBackend
from judgerl.cli import app
from judgerl.data import load_rollouts_strict
from judgerl.reward.pipeline import RewardPipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support_agent"
KINDS = ("good", "lazy", "hallucinating", "injected")


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_trajectories", EXAMPLE / "make_trajectories.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_trajectories_are_what_the_fake_tools_give(tmp_path: Path) -> None:
    module = generator()
    assert module.write(tmp_path / "trajectories.jsonl") == 160
    shipped = (EXAMPLE / "trajectories.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "trajectories.jsonl").read_text(encoding="utf-8") == shipped
    tasks = (EXAMPLE / "tasks.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(tasks) == 40 and len({json.loads(line)["order_id"] for line in tasks}) == 40


def approving_judge(request: CompletionRequest) -> Completion:
    """Scripted: puts all its mass on Yes for every criterion it is asked about (the example's judges
    score from verdict-token probabilities), so the ranking below comes from the checks alone."""
    assert request.candidate_tokens == ["Yes", "No"] and request.max_tokens == 1
    return Completion(text="Yes", model="scripted", candidate_logprobs={"Yes": 0.0, "No": -1000.0})


def test_the_reward_ranks_good_above_lazy_hallucinating_and_injected(tmp_path: Path) -> None:
    items = load_rollouts_strict(EXAMPLE / "trajectories.jsonl")
    backend = ScriptedBackend(approving_judge)
    overrides = [f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
                 f"runtime.journal_path={tmp_path / 'journal.jsonl'}"]
    with RewardPipeline.from_config(str(EXAMPLE / "reward.yaml"), backends={"judge": backend},
                                    overrides=overrides) as pipeline:
        rewards = pipeline.score_batch_sync(items)
    by_task: dict[str, dict[str, Any]] = {}
    for (sample, rollout), reward in zip(items, rewards, strict=True):
        by_task.setdefault(sample.id, {})[rollout.metadata["kind"]] = reward
    assert len(by_task) == 40
    for task, kinds in by_task.items():
        good, lazy, hallucinating, injected = (kinds[kind] for kind in KINDS)
        assert good.status == "ok" and good.value == 1.0, (task, good)
        assert lazy.status == "gated" and injected.status == "gated", task
        assert hallucinating.status == "ok" and hallucinating.components["grounded"] < 1.0, task
        assert good.value > hallucinating.value > lazy.value == injected.value == 0.0, task
        assert len(good.components) == 6
    # the per-turn tone judge judged both text turns of each run that passed the gate; the opening turn
    # of a good and a hallucinating run of one task is the same request, judged once (the runtime's dedup)
    turn_requests = [request for request in backend.calls
                     if "THE TURN TO GRADE" in request.messages[-1]["content"]]
    assert len(turn_requests) == 40 * 3
    # the trajectory rubric asks each of its 3 criteria once per run that passed the gate
    assert len(backend.calls) - len(turn_requests) == 40 * 2 * 3
    assert len(good.details["scores"]["tone"]["details"]["turns"]) == 2


def test_judgerl_score_runs_on_the_example(tmp_path: Path) -> None:
    output = tmp_path / "rewards.jsonl"
    result = CliRunner().invoke(app, ["score", "-c", str(EXAMPLE / "reward.yaml"),
                                      "-i", str(EXAMPLE / "trajectories.jsonl"), "-o", str(output),
                                      "--dry-run",
                                      "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
                                      "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 160
    status = {row["rollout_id"]: row["status"] for row in rows}
    assert status["t01/good"] == "ok" and status["t01/lazy"] == "gated" and status["t01/injected"] == "gated"
