"""The cross-rank reward call (adapters/trl_ranks.py): the pure gather / cut logic, then the real
collectives in two processes over gloo on loopback, without accelerate or TRL.

The two-process tests check what the TRL run relies on: the main process scores the ranks' rows
once, in rank order; each rank gets exactly its slice back (rewards and `log_extra` columns);
only the main process logs metrics; and a failure on the main process makes every rank raise
instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from judgerl.adapters.trl_ranks import (
    MainProcessFailed,
    Ranks,
    cut_results,
    launched_ranks,
    merge_batches,
    rank_slices,
    run_on_main,
    score_across_ranks,
)

# -- pure logic ------------------------------------------------------------------------------


def test_rank_slices_cover_the_batch_in_rank_order() -> None:
    assert rank_slices([2, 3]) == [slice(0, 2), slice(2, 5)]
    assert rank_slices([]) == []


def test_merge_keeps_rank_order_and_refuses_different_columns() -> None:
    parts = [{"prompts": ["p0", "p0"], "id": ["a", "a"], "completion_ids": None},
             {"prompts": ["p0", "p1"], "id": ["a", "b"], "completion_ids": None}]
    assert merge_batches(parts) == {"prompts": ["p0", "p0", "p0", "p1"], "id": ["a", "a", "a", "b"],
                                    "completion_ids": None}
    with pytest.raises(ValueError, match="rank 1 sent the columns"):
        merge_batches([{"prompts": ["x"], "id": ["a"]}, {"prompts": ["y"]}])


def test_cut_results_gives_each_rank_its_rows_and_checks_lengths() -> None:
    cut = cut_results([0.1, 0.2, 0.3, None], {"status": ["ok", "ok", "ok", "unscored"]}, [3, 1])
    assert cut == [([0.1, 0.2, 0.3], {"status": ["ok", "ok", "ok"]}), ([None], {"status": ["unscored"]})]
    with pytest.raises(ValueError, match="3 rewards for 4 rows"):
        cut_results([1, 2, 3], {}, [2, 2])
    with pytest.raises(ValueError, match="log_extra column 's' has 1 values for 2 rows"):
        cut_results([1, 2], {"s": ["x"]}, [1, 1])


def test_launched_ranks_reads_the_launcher_environment() -> None:
    assert launched_ranks({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert launched_ranks({"WORLD_SIZE": "4", "RANK": "3"}) == Ranks(rank=3, world_size=4)
    assert not Ranks(rank=3, world_size=4).is_main
    with pytest.raises(ValueError, match="outside"):
        launched_ranks({"WORLD_SIZE": "2", "RANK": "2"})


async def test_without_a_process_group_it_says_how_to_launch() -> None:
    async def never(*args: Any, **kwargs: Any) -> list[float | None]:
        raise AssertionError("not called")

    with pytest.raises(RuntimeError, match=r"torch\.distributed is not initialized"):
        await score_across_ranks(never, ["p"], ["c"], None, {}, Ranks(rank=1, world_size=2))


# -- two real processes over gloo ------------------------------------------------------------

ROWS = {0: (["p0", "p0", "p0"], ["a", "bb", "ccc"]), 1: (["p0", "p1", "p1"], ["dddd", "e", "ff"])}


def _failing_gate() -> None:
    raise RuntimeError("gate failed")


def _worker(rank: int, port: int, mode: str, out_dir: str) -> None:
    """One rank: join the gloo group, call the reward across ranks, write what it saw as JSON."""
    import torch.distributed as dist

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": "2"})
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    seen: dict[str, Any] = {"score_calls": [], "metrics": [], "extras": []}

    async def score(prompts: list[Any], completions: list[Any], completion_ids: Any = None,
                    **kwargs: Any) -> list[float | None]:
        seen["score_calls"].append({"prompts": prompts, "completions": completions, "ids": completion_ids,
                                    "columns": sorted(key for key in kwargs if key not in ("log_metric",
                                                                                           "log_extra"))})
        if mode == "fail":
            raise ValueError("judge is down")
        await asyncio.sleep(0.05)  # the main process awaits while the other rank waits in the collective
        kwargs["log_metric"]("reward/len/mean", sum(map(len, completions)) / len(completions))
        kwargs["log_extra"]("status", [f"len {len(text)}" for text in completions])
        return [float(len(text)) for text in completions]

    prompts, completions = ROWS[rank]
    kwargs = {"id": [f"{p}-id" for p in prompts], "trainer_state": object(),
              "log_metric": lambda name, value: seen["metrics"].append([name, value]),
              "log_extra": lambda column, values: seen["extras"].append([column, values])}
    try:
        ids = [[rank, index] for index in range(len(prompts))]
        if mode == "gate":
            run_on_main(_failing_gate, Ranks(rank, 2))
        else:
            seen["values"] = asyncio.run(score_across_ranks(score, prompts, completions, ids, kwargs,
                                                            Ranks(rank, 2)))
    except Exception as exc:  # recorded for the test to check on every rank
        seen["error"] = f"{type(exc).__name__}: {exc}"
        seen["trace"] = traceback.format_exc()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(seen), encoding="utf-8")
    dist.destroy_process_group()


def run_two(mode: str, tmp_path: Path) -> dict[int, dict[str, Any]]:
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.start_processes(_worker, args=(port, mode, str(tmp_path)), nprocs=2, join=False,
                                 start_method="spawn")
    for process in context.processes:
        process.join(120)
    assert all(process.exitcode == 0 for process in context.processes), "a rank hung or crashed"
    return {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)}


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_main_scores_once_and_each_rank_gets_its_slice(tmp_path: Path) -> None:
    seen = run_two("ok", tmp_path)
    assert seen[1]["score_calls"] == []  # the other rank never scores
    [call] = seen[0]["score_calls"]
    assert call["prompts"] == ["p0", "p0", "p0", "p0", "p1", "p1"]  # rank order: the group p0 is whole
    assert call["completions"] == ["a", "bb", "ccc", "dddd", "e", "ff"]
    assert call["ids"] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert call["columns"] == ["id", "trainer_state"]
    assert seen[0]["values"] == [1.0, 2.0, 3.0] and seen[1]["values"] == [4.0, 1.0, 2.0]
    # the metric is the global batch's, logged once; the extra column is cut per rank
    assert seen[0]["metrics"] == [["reward/len/mean", 13 / 6]] and seen[1]["metrics"] == []
    assert seen[0]["extras"] == [["status", ["len 1", "len 2", "len 3"]]]
    assert seen[1]["extras"] == [["status", ["len 4", "len 1", "len 2"]]]


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_a_failure_on_the_main_process_raises_on_every_rank(tmp_path: Path) -> None:
    seen = run_two("fail", tmp_path)
    assert seen[0]["error"] == "ValueError: judge is down"
    assert seen[1]["error"].startswith("MainProcessFailed: the main process (rank 0) could not score")
    assert "ValueError: judge is down" in seen[1]["error"]
    assert issubclass(MainProcessFailed, Exception)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_run_on_main_shares_a_failure_of_the_gate(tmp_path: Path) -> None:
    seen = run_two("gate", tmp_path)
    assert seen[0]["error"] == "RuntimeError: gate failed"
    assert seen[1]["error"] == ("MainProcessFailed: the main process (rank 0) failed: "
                                "RuntimeError: gate failed")
