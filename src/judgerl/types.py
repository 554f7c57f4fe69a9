"""The values that flow through judgerl: samples in, rollouts scored, rewards out.

They are plain dataclasses so that every layer (checks, judges, runtime, adapters) can share
them without importing each other. See ARCHITECTURE.md, "Data flow".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

#: the machine-readable reasons an unscored judgment's text carries (runtime, judges, pipeline);
#: a judge that asks one call per criterion, item or turn puts that name before it
#: ("correct: parse_error: ...", "c2 Actionability: timeout: ...", "turn 2: polite: ...")
_REASON_SLUG = re.compile(
    r"(?:^|[\s:;(])(http_\d{3}|timeout|connection_error|bad_response|circuit_open|deadline_exceeded|"
    r"retry_after_too_long|retry_after_window|context_length|content_filter|refusal|backend_error|"
    r"budget_exhausted|parse_error|judge_error|data_error|check_error|aggregate_error|invalid_text|"
    r"group_incomplete|panel_[a-z_]+|lambda_deadline|no_text_content)(?=:|$| \()")


def reason_key(reason: str | None) -> str:
    """The short reason of an unscored judgment's text, for counting by reason.

    The first known reason in the text, wherever a per-criterion name put it; else the text
    before its first colon.

    >>> reason_key("timeout: no answer within 60s (after 5 attempts) (quality)")
    'timeout'
    >>> reason_key("correct: parse_error: the backend returned no log-probabilities (quality)")
    'parse_error'
    >>> reason_key("no reference answer for this sample (use_reference is true) (quality)")
    'no reference answer for this sample (use_reference is true) (quality)'
    """
    text = reason or "unknown"
    match = _REASON_SLUG.search(text)
    return match.group(1) if match else text.split(":", 1)[0]


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
