"""What the CPU contract review study's RFT runs had to learn from, read from a finished study folder.

Why: `judgerl demo --task contract-review` prints what came out (base, SFT, RFT with the checks
only, RFT with the checks + the judge, scored by a judge not trained on). When RFT does not move
beyond the spread over seeds, the reason must be measured, not guessed. GRPO learns from the
differences between the answers of one prompt, so this prints, per arm and over every seed's
training steps: the share of groups whose answers all got the same reward (no gradient from them),
the share of rollouts gated by the schema, the share cut at the token limit, the mean training
reward over the first and last steps, and the judge's mean item score on the rollouts it judged.

    python bench/contract_study_signal.py runs/contract-review      # after the study
    python bench/contract_study_signal.py --tiny                     # smoke run (CI): a made-up folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ARMS = ("checks", "judge")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if "reward" in row and "step" in row]


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def arm_signal(run_dir: Path, arm: str, edge: int = 3) -> dict[str, Any] | None:
    """The figures of one arm over every seed folder that has its metrics."""
    runs = [read_metrics(path) for path in sorted(run_dir.glob(f"seed-*/rft-{arm}/metrics.jsonl"))]
    runs = [rows for rows in runs if rows]
    if not runs:
        return None
    steps = [row for rows in runs for row in rows]

    def figure(key: str, rows: list[dict[str, Any]]) -> float | None:
        return mean([float(row[key]) for row in rows if isinstance(row.get(key), (int, float))])

    return {
        "seeds": len(runs),
        "steps": len(steps),
        "zero_std_groups": figure("frac_reward_zero_std", steps),
        "gated": figure("reward/gated_frac", steps),
        "clipped": figure("completions/clipped_ratio", steps),
        "reward_first": mean([v for rows in runs for v in [figure("reward", rows[:edge])] if v is not None]),
        "reward_last": mean([v for rows in runs for v in [figure("reward", rows[-edge:])] if v is not None]),
        "judge_items": figure("reward/issues/mean", steps),
    }


def print_table(run_dir: Path) -> int:
    found = {arm: arm_signal(run_dir, arm) for arm in ARMS}
    if not any(found.values()):
        print(f"no RFT metrics under {run_dir}/seed-*/rft-*/metrics.jsonl", file=sys.stderr)
        return 1
    print(f"RFT training signal in {run_dir} (means over every step of every seed; first/last: the "
          "first and last 3 steps of each run)")
    header = ("arm", "seeds", "steps", "groups, one reward", "gated", "cut at limit", "reward first",
              "reward last", "judge items")
    print(" | ".join(header))
    for arm, figures in found.items():
        if figures is None:
            continue
        cells = [arm, str(figures["seeds"]), str(figures["steps"])]
        for key in ("zero_std_groups", "gated", "clipped", "reward_first", "reward_last", "judge_items"):
            value = figures[key]
            cells.append("n/a" if value is None else f"{value:.3f}")
        print(" | ".join(cells))
    return 0


def tiny_folder(root: Path) -> Path:
    for arm, rewards in (("checks", [0.1, 0.2, 0.3, 0.4]), ("judge", [0.2, 0.2, 0.3, 0.5])):
        folder = root / "seed-0" / f"rft-{arm}"
        folder.mkdir(parents=True)
        judged = {"reward/issues/mean": 0.3} if arm == "judge" else {}
        rows = [{"step": step + 1, "reward": reward, "frac_reward_zero_std": 0.5, "reward/gated_frac": 0.25,
                 "completions/clipped_ratio": 0.125, **judged} for step, reward in enumerate(rewards)]
        text = "".join(json.dumps(row) + "\n" for row in rows)
        (folder / "metrics.jsonl").write_text(text, encoding="utf-8")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a study folder (judgerl demo --task "
                                                               "contract-review --run-dir)")
    parser.add_argument("--tiny", action="store_true", help="a made-up folder: the script runs")
    args = parser.parse_args()
    if args.tiny:
        with tempfile.TemporaryDirectory() as tmp:
            return print_table(tiny_folder(Path(tmp)))
    if args.run_dir is None:
        parser.error("give the study folder")
    return print_table(args.run_dir)


if __name__ == "__main__":
    sys.exit(main())
