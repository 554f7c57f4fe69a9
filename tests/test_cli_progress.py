"""Hugging Face progress bars are hidden when judgerl's output goes to a log, kept on a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from judgerl.cli import quiet_progress_bars_when_logged
quiet_progress_bars_when_logged()
import transformers.utils.logging as hf_logging
print(hf_logging.is_progress_bar_enabled())
"""


def _run(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    if env_value is not None:
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = env_value
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return done.stdout.strip()


def test_progress_bars_are_hidden_when_stderr_is_a_log() -> None:
    assert _run(None) == "False"


def test_the_users_setting_wins() -> None:
    assert _run("0") == "True"
