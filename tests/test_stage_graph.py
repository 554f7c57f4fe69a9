"""The study's stage graph: dependencies, stages side by side in worker processes, failures."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from judgerl.errors import ConfigError
from judgerl.run.stage_graph import Stage, StageResult, check_graph, run_stages, threads_per_worker


def record(folder: str, name: str, seconds: float) -> dict[str, float]:
    """A stage that sleeps, and writes when it started and ended (read by the tests)."""
    started = time.time()
    time.sleep(seconds)
    span = {"start": started, "end": time.time(), "pid": os.getpid()}
    Path(folder, f"{name}.json").write_text(json.dumps(span))
    return span


def fail(message: str) -> None:
    raise ValueError(message)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def spans(folder: Path) -> dict[str, dict[str, float]]:
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


def test_stages_run_side_by_side_and_after_what_they_need(tmp_path: Path) -> None:
    started: list[str] = []
    finished: list[StageResult] = []
    stages = [Stage("a", record, (str(tmp_path), "a", 1.0)),
              Stage("b", record, (str(tmp_path), "b", 1.0)),
              Stage("c", record, (str(tmp_path), "c", 0.1), after=("a", "b"))]
    run = run_stages(stages, workers=2, on_start=lambda stage: started.append(stage.name),
                     on_done=finished.append)
    seen = spans(tmp_path)
    assert set(run.results) == {"a", "b", "c"} and started[:2] == ["a", "b"] and started[2] == "c"
    assert seen["a"]["pid"] != seen["b"]["pid"] != os.getpid(), "each in a worker process"
    # a and b overlap in time; c starts only after both ended
    assert seen["a"]["start"] < seen["b"]["end"] and seen["b"]["start"] < seen["a"]["end"]
    assert seen["c"]["start"] >= max(seen["a"]["end"], seen["b"]["end"])
    assert run.wall_seconds >= 1.0 + 0.1  # (it also counts the workers' start: torch is imported there)
    assert [result.name for result in finished][-1] == "c"
    assert all(result.seconds >= 0.1 for result in finished) and run.results["c"].value["pid"] > 0


def test_one_worker_runs_the_stages_here_in_order(tmp_path: Path) -> None:
    stages = [Stage("a", record, (str(tmp_path), "a", 0.05)), Stage("b", record, (str(tmp_path), "b", 0.05))]
    run_stages(stages, workers=1)
    seen = spans(tmp_path)
    assert seen["a"]["pid"] == seen["b"]["pid"] == os.getpid()
    assert seen["b"]["start"] >= seen["a"]["end"]


def test_each_worker_gets_its_share_of_the_cores() -> None:
    run = run_stages([Stage("a", torch_threads), Stage("b", torch_threads)], workers=2)
    assert run.results["a"].value == run.results["b"].value == threads_per_worker(2)
    assert threads_per_worker(2, cores=2) == 1 and threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(4, cores=2) == 1


def test_a_failed_stage_stops_what_needs_it_and_is_raised_with_its_name(tmp_path: Path) -> None:
    stages = [Stage("slow", record, (str(tmp_path), "slow", 1.0)),
              Stage("broken", fail, ("the data is bad",)),
              Stage("after broken", record, (str(tmp_path), "after", 0.0), after=("broken",)),
              Stage("later", record, (str(tmp_path), "later", 0.0))]
    with pytest.raises(ValueError, match="the data is bad") as caught:
        run_stages(stages, workers=2)
    assert "(in stage 'broken')" in caught.value.__notes__
    seen = spans(tmp_path)
    assert "slow" in seen, "the stage already running finished (its output is kept)"
    assert "after" not in seen and "later" not in seen, "nothing new starts after a failure"


@pytest.mark.parametrize(("stages", "message"), [
    ([Stage("a", time.sleep, (0,)), Stage("a", time.sleep, (0,))], "listed twice"),
    ([Stage("a", time.sleep, (0,), after=("b",)), Stage("b", time.sleep, (0,))],
     "needs b, not listed before it"),
])
def test_a_graph_with_repeated_or_unknown_stages_is_refused(stages: list[Stage], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_graph(stages)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        run_stages([Stage("a", time.sleep, (0,))], workers=0)
