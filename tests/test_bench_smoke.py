"""Every benchmark under bench/ still runs: each is started with `--tiny` (seconds, figures not meaningful).

Why: the README quotes figures that these scripts print; a script that rots (a moved data file, a
renamed option) makes a figure unreproducible without anyone noticing. A new script under bench/
is picked up here by itself and must accept `--tiny`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))

#: what each script's tiny run must print (its headline figure), when the script is known here
HEADLINES = {
    "cost_plan.py": r"largest error: calls \d+, tokens [\d.]+%",
    "distill_judge.py": r"held-out kappa\s+: (n/a|-?[\d.]+)",
    "judge_server_agreement.py": r'"same_side_of_0.5": [\d.]+',
    "distill_pairwise_judge.py": r"held-out kappa\s+: (n/a|-?[\d.]+)",
    "demo_ablation.py": r"checks\+student\s+specific\s+: mean [\d.]+  std [\d.]+  min [\d.]+  max [\d.]+",
    "fence_tokens.py": r"prose\s+tag '[a-z]+'\s+opening <<<ANSWER_[a-z]+>>>  pair cost \d+ tokens",
    "local_judge.py": r"ratio\s+: [\d.]+x",
    "reward_service.py": r"achieved/ideal [\d.]+",
    "reward_throughput.py": r"ratio to ideal [\d.]+",
    "rubric_items.py": r"explicit, all in one call\s+1.0\s+\d+",
    "shared_prompts.py": r"speed-up [\d.]+x \(shared / TRL = [\d.]+\)",
    "study_throughput.py": r"steps per minute: one process [\d.]+, two processes [\d.]+; ratio [\d.]+x",
    "specific_reply_judge.py": r"distilled student \(rubric_student\): accuracy [\d.]+  kappa -?[\d.]+",
    "train_overhead.py": r"ratio \(b\)/\(a\)\s+: [\d.]+",
}


def test_the_benchmarks_are_found() -> None:
    assert {script.name for script in SCRIPTS} >= set(HEADLINES)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_benchmark_runs_in_tiny_mode(script: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    done = subprocess.run([sys.executable, str(script), "--tiny"], capture_output=True, text=True,
                          timeout=600, env=env, cwd=BENCH.parent)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert done.stdout.strip(), "a benchmark must print its figures"
    headline = HEADLINES.get(script.name)
    if headline is not None:
        assert re.search(headline, done.stdout), done.stdout[-3000:]


def test_reward_service_drives_openrlhfs_own_client() -> None:
    """`reward_service.py --openrlhf`: OpenRLHF's SingleTurnAgentExecutor against `judgerl serve`."""
    pytest.importorskip("openrlhf", reason="needs the `engines` extra (scripts/setup installs it)")
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    done = subprocess.run([sys.executable, str(BENCH / "reward_service.py"), "--tiny", "--openrlhf", "48",
                           "--group-size", "8"], capture_output=True, text=True, timeout=600, env=env,
                          cwd=BENCH.parent)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "rollouts without a reward: 0 (goal 0)" in done.stdout, done.stdout[-3000:]
    assert re.search(r"groups: 6 complete, 0 split", done.stdout), done.stdout[-3000:]
