"""Third-party warnings a judgerl user cannot act on, hidden where judgerl triggers them.

Why a module: TRL and peft read a transformers attribute that transformers has deprecated
(`is_gradient_checkpointing`), and transformers warns on every training run, LoRA merge and
export. The message names code that is neither the user's nor judgerl's, so it is noise on the
way to the one line that matters. Only the exact messages listed here are hidden.
"""

from __future__ import annotations

import warnings

#: (category, message regex) of the hidden warnings
UNACTIONABLE_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r".*`is_gradient_checkpointing` is deprecated"),
    (FutureWarning, r".*`gradient_checkpointing_enable` is deprecated"),  # TRL calls it on the policy
)


def quiet_unactionable_warnings() -> None:
    """Hide the third-party deprecation warnings listed above (and nothing else)."""
    for category, message in UNACTIONABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
