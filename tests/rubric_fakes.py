"""Shared pieces of the row-rubric tests: the example's scripted judge and a reward config using it.

The scripted judge (examples/rubrics/scripted_judge.py) is word overlap, not a model: it answers
the rubric judge's real request (explicit JSON, implicit 1-10, one-token logprob) so that every
layer from the data to the reward runs for real without a model.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rubrics"


def scripted_judge() -> Any:
    spec = importlib.util.spec_from_file_location("rubrics_scripted_judge", EXAMPLE / "scripted_judge.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUBRIC = [
    {"criterion": "Says the dose must be adjusted for kidney function", "weight": 5, "category": "essential"},
    {"criterion": "Names creatinine clearance as the measure", "weight": 3, "category": "important"},
    {"criterion": "Suggests asking a pharmacist", "weight": 1, "category": "optional"},
    {"criterion": "Recommends doubling the dose", "weight": -2, "category": "pitfall"},
]
GOOD = "Adjust the dose for kidney function, measured by creatinine clearance; a pharmacist can help."
PITFALL = "Adjust the dose for kidney function; when in doubt, recommends doubling the dose."


def write_reward(folder: Path, *, options: str = "", name: str = "reward.yaml") -> Path:
    """A real reward YAML: a row-rubric judge on the scripted overlap judge."""
    path = folder / name
    path.write_text(textwrap.dedent(f"""\
        backends:
          judge: {{type: scripted, responder: {EXAMPLE / 'scripted_judge.py'}:respond}}
        runtime: {{max_attempts: 1}}
        judges:
          - name: rubric
            type: rubric
            backend: judge
        """) + "".join(f"    {line}\n" for line in options.splitlines() if line)
        + "failure_policy: unscored\nfailure_budget: null\n", encoding="utf-8")
    return path
