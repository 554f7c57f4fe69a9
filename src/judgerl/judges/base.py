"""What every judge is, seen from the pipeline: `score_group(sample, rollouts) -> list[Score]`.

Three shapes of judge exist (ARCHITECTURE.md, "Contracts that matter"):
- pointwise (`score`): one answer at a time, e.g. the rubric judge;
- pairwise (`compare`): which of two answers is better, turned into per-rollout scores by
  win rate against a reference or round robin inside the group;
- group (`score_group`): all k answers of one prompt in one call, matched by id.
The pipeline only calls `score_group`, so it treats all three alike. Judges never retry or
talk to a model directly: they go through the `ModelRuntime`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from judgerl.errors import FatalBackendError
from judgerl.types import Rollout, Sample, Score, Verdict

if TYPE_CHECKING:
    from judgerl.backends.base import CompletionRequest
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime


@dataclass(frozen=True)
class TokenSet:
    """One set of candidates a judge reads: where they are configured and whether they can change."""

    judge: str
    candidates: tuple[str, ...]
    #: the options that set them ("pass_token / fail_token"); empty: fixed by the judge (A / B, 1-5)
    fields: str = ""


class Judge(ABC):
    """Base of all judges. `name` is the reward component it produces."""

    kind: str = "judge"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime) -> None:
        self.config = config
        self.runtime = runtime
        self.name = config.name
        self.weight = config.weight
        self.backend_name = config.backend

    @abstractmethod
    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        """One Score per rollout, in the order of `rollouts`."""

    def reads_trajectory(self) -> bool:
        """Whether this judge reads a tool-using rollout's trajectory, not only its final answer."""
        return False

    def parts(self) -> list[Judge]:
        """The judges this one calls through under their own names (a panel's members); none here."""
        return []

    def verdict_token_sets(self) -> list[TokenSet]:
        """The candidate tokens a logprob judge reads (judges/verdict_tokens.py checks them against
        its backend's tokenizer before the run); none for a judge that parses generated text."""
        return []

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """A well-formed, neutral answer to one of this judge's requests (for `--dry-run`)."""
        raise NotImplementedError(f"judge type '{self.kind}' has no dry-run answer")


class PointwiseJudge(Judge):
    """Scores one answer at a time; a group is scored concurrently.

    One answer's failure is that answer's: if scoring it raises (rendering, parsing, a bug),
    its score is unscored with the reason and the others are scored. A `FatalBackendError`
    still stops the batch: every other call would fail the same way.
    """

    @abstractmethod
    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        """Score one rollout."""

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        results = await asyncio.gather(*(self.score(sample, rollout) for rollout in rollouts),
                                       return_exceptions=True)
        scores = []
        for result in results:
            if isinstance(result, FatalBackendError) or not isinstance(result, (Score, Exception)):
                raise result  # FatalBackendError, CancelledError and other BaseExceptions
            if isinstance(result, Exception):
                detail = str(result)[:300] or type(result).__name__
                result = Score.unscored(self.name, f"judge_error: judge '{self.name}' raised "
                                                   f"{type(result).__name__}: {detail}")
            scores.append(result)
        return scores


class ComparingJudge(Judge):
    """Compares two answers; see judges/pairwise.py for how a group becomes scores."""

    @abstractmethod
    async def compare(self, sample: Sample, a: str, b: str) -> Verdict:
        """Which of a and b is better, judged in both orders."""
