"""Moved to `judgerl.run.score` (judgerl score); this path re-exports it for one release."""

from judgerl.run.score import (  # noqa: F401
    RewardWriter,
    ScoreSummary,
    read_finished,
    reward_key,
    score_file,
)
