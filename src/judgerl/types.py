"""The values that flow through judgerl: samples in, rollouts scored, rewards out.

They are plain dataclasses so that every layer (checks, judges, runtime, adapters) can share
them without importing each other. See ARCHITECTURE.md, "Data flow".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ScoreStatus = Literal["ok", "unscored"]
RewardStatus = Literal["ok", "gated", "unscored"]
Winner = Literal["a", "b", "tie"]


@dataclass
class Sample:
    """One prompt: chat messages, an optional reference answer and any extra columns."""

    id: str
    messages: list[dict[str, str]]
    reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user turn: what the answer must respond to."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return message.get("content", "")
        return self.messages[-1]["content"] if self.messages else ""


@dataclass
class Rollout:
    """One completion written by the policy for a sample.

    `location` says where it was read from (`rollouts.jsonl, line 7`) when it came from a file,
    so that a failure caused by that row names the file and the line.

    A tool-using agent's rollout also has a `trajectory`: the messages it wrote after the prompt,
    in the normal form of `judgerl.trajectory` (assistant turns with `tool_calls`, `tool`
    results), with the `tools` it could call (OpenAI `tools` schemas); `completion` is then its
    final answer (the last assistant text). A single-turn rollout has neither (None).
    """

    sample_id: str
    completion: str
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    location: str | None = None
    trajectory: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.sample_id


@dataclass
class Score:
    """One component of a reward, in [0, 1], or None when it could not be scored.

    `status == "unscored"` always goes with `value is None` and a `reason`.
    `details` keeps sub-scores (per rubric criterion, probabilities, ...).
    """

    name: str
    value: float | None
    rationale: str = ""
    status: ScoreStatus = "ok"
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is None and self.status == "ok":
            raise ValueError(f"score {self.name!r}: value None needs status 'unscored'")
        if self.value is not None and not (0.0 <= self.value <= 1.0):
            raise ValueError(f"score {self.name!r}: value {self.value} is outside [0, 1]")

    @classmethod
    def unscored(cls, name: str, reason: str, **details: Any) -> Score:
        return cls(name=name, value=None, status="unscored", reason=reason, details=dict(details))

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class Verdict:
    """A pairwise judgment: which of answers a and b is better, or None when unscored."""

    winner: Winner | None
    prob_a: float | None = None
    rationale: str = ""
    status: ScoreStatus = "ok"
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unscored(cls, reason: str, **details: Any) -> Verdict:
        return cls(winner=None, status="unscored", reason=reason, details=dict(details))


@dataclass
class Reward:
    """The final reward of one rollout, with every component kept.

    `value` is None exactly when `status == "unscored"` under the `unscored` failure policy.
    """

    sample_id: str
    rollout_id: str
    value: float | None
    components: dict[str, float | None] = field(default_factory=dict)
    rationale: str = ""
    status: RewardStatus = "ok"
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollout_id(sample_id: str, index: int | str) -> str:
    """The id of a sample's `index`-th rollout, the one form every consumer uses.

    >>> rollout_id("q7", 2)
    'q7#2'
    """
    return f"{sample_id}#{index}"
