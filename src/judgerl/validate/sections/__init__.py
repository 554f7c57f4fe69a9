"""The validation sections, one module each: consistency, agreement, human labels, regression,
and the bias probes (position, verbosity, attacks).

Each section is an async function that runs on the reward pipeline's loop, asks a `JudgeProbe`
for judgments, and returns a `SectionResult` holding its figures; the runner checks the
thresholds. `Tick` is the progress callback (called with the number of judgments just done).
"""

from __future__ import annotations

from collections.abc import Callable

Tick = Callable[[int], None]


def no_tick(_count: int) -> None:
    """The progress callback when nobody is watching."""
