"""judgerl: reinforcement fine-tuning with an LLM as the judge.

The curated public API: the values that flow through a run, the reward pipeline, and the
config loader. Everything else is reached through its module (judgerl.judges, judgerl.checks,
judgerl.backends, judgerl.adapters, judgerl.train, ...).
"""

from judgerl import moved
from judgerl.config import RewardConfig, load_reward_config
from judgerl.errors import (
    BackendError,
    ConfigError,
    DataError,
    FailureBudgetExceeded,
    FatalBackendError,
    JudgeParseError,
    JudgerlError,
)
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Reward, Rollout, Sample, Score, Verdict
from judgerl.version import __version__

moved.install()  # old module paths still import, for one release (judgerl/moved.py)

__all__ = [
    "BackendError",
    "ConfigError",
    "DataError",
    "FailureBudgetExceeded",
    "FatalBackendError",
    "JudgeParseError",
    "JudgerlError",
    "Reward",
    "RewardConfig",
    "RewardPipeline",
    "Rollout",
    "Sample",
    "Score",
    "Verdict",
    "__version__",
    "load_reward_config",
]
