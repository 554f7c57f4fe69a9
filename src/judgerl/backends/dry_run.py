"""The scripted backend behind `judgerl score --dry-run`: every judge gets a neutral, well-formed
answer, so a config can be tried end to end (checks, gates, prompts, aggregation, output files)
without calling or paying for a model.
"""

from __future__ import annotations

import math
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

    def _answer(self, request: CompletionRequest) -> str | Completion:
        if request.candidate_tokens:
            share = math.log(1 / len(request.candidate_tokens))
            return Completion(text=request.candidate_tokens[0], model=self.model, usage=Usage(0, 1),
                              candidate_logprobs=dict.fromkeys(request.candidate_tokens, share))
        if request.tag not in self.judges:
            raise KeyError(f"dry run: no judge named '{request.tag}' is attached to this backend")
        return self.judges[request.tag].dry_run_answer(request)
