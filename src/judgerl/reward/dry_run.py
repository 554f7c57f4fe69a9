"""Dry run: every judge gets a neutral, well-formed answer, so a reward config can be tried end to end
(checks, gates, prompts, aggregation, output files) without calling or paying for a model.

Why in the reward layer: a dry-run answer is written by the judge that asked
(`Judge.dry_run_answer`), so the stand-in backend must know the pipeline's judges.
`RewardPipeline.from_config(..., dry_run=True)` puts one `DryRunBackend` in place of every
configured backend and hands it the judges it serves; `judgerl score --dry-run` and
`judgerl evaluate --dry-run` only pass the flag.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend

if TYPE_CHECKING:
    from judgerl.judges.base import Judge


class DryRunBackend(ScriptedBackend):
    """Answers each judge through `judge.dry_run_answer`; logprob requests get a uniform split."""

    def __init__(self) -> None:
        super().__init__(self._answer, model="dry-run")
        self.judges: dict[str, Judge] = {}

    def serve(self, judges: Iterable[Judge]) -> None:
        """Answer for these judges (each by its own `dry_run_answer`)."""
        for judge in judges:
            self.judges[judge.name] = judge
            self.serve(judge.parts())  # a panel's members ask under their own names

    def _answer(self, request: CompletionRequest) -> str | Completion:
        if request.candidate_tokens:
            share = math.log(1 / len(request.candidate_tokens))
            return Completion(text=request.candidate_tokens[0], model=self.model, usage=Usage(0, 1),
                              candidate_logprobs=dict.fromkeys(request.candidate_tokens, share))
        if request.tag not in self.judges:
            raise KeyError(f"dry run: no judge named '{request.tag}' is attached to this backend")
        return self.judges[request.tag].dry_run_answer(request)
