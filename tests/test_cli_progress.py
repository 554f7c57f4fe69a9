"""Hugging Face progress bars are hidden when judgerl's output goes to a log, kept on a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from judgerl.cli import quiet_progress_bars_when_logged
quiet_progress_bars_when_logged()
from datasets.utils import are_progress_bars_disabled
import transformers.utils.logging as hf_logging
print(hf_logging.is_progress_bar_enabled(), not are_progress_bars_disabled())
"""


def _run(env_value: str | None) -> str:
    names = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    if env_value is not None:
        env.update(dict.fromkeys(names, env_value))
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return done.stdout.strip()


def test_progress_bars_are_hidden_when_stderr_is_a_log() -> None:
    assert _run(None) == "False False"


def test_the_users_setting_wins() -> None:
    assert _run("0") == "True True"
