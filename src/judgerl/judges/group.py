"""The group judge: all k rollouts of one prompt scored in one call, relative to each other (type `group`).

Why: GRPO only uses the differences between the answers to one prompt, and a judge that sees
them side by side ranks them more consistently than k separate judgments, at one call per group.

Each rollout is shown under a short id ("r1".."rk", in the order given) inside its own fence,
and the judge answers `{"scores": [{"id": "r1", "score": 1..10, "rationale": "..."}]}`. Scores
are matched to rollouts by id, never by position; a missing, duplicated or unknown id makes the
whole group unscored (a failure, not a guess), after one re-ask. Scores use a 1-10 scale
(integers recommended, decimals accepted), normalised to (score - 1) / 9.

An empty answer (when `empty_answer_score` is set) is not shown to the judge and gets that score.

Template placeholders (group.txt): {question} {reference} {answers} {count} {ids} {instructions}
{answer_format}; {answers} is required.

`scope: trajectory` scores whole runs of a tool-using agent side by side: each rollout's answer
is its trajectory as a fenced transcript (judges/transcript.py, within `max_transcript_chars`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from judgerl.backends.base import CompletionRequest
from judgerl.errors import ConfigError
from judgerl.judges.base import Judge
from judgerl.judges.calling import CallLog, call_and_parse, record_judgment
from judgerl.judges.options import (
    NO_REFERENCE,
    JudgeOptions,
    choose_prompt,
    data_error,
    is_empty,
    parse_options,
    question_block,
    reference_block,
)
from judgerl.judges.parsing import group_schema, parse_group
from judgerl.judges.templates import fence
from judgerl.judges.transcript import as_transcript
from judgerl.types import Rollout, Sample, Score

if TYPE_CHECKING:
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

DEFAULT_INSTRUCTIONS = ("Judge each answer on correctness first, then completeness and faithfulness to "
                        "the question, then clarity and concision.")
PLACEHOLDERS = {"question", "reference", "answers", "count", "ids", "instructions", "answer_format"}


class GroupOptions(JudgeOptions):
    """Options of `type: group` (on top of the shared ones in judges/options.py)."""

    instructions: str = Field(default=DEFAULT_INSTRUCTIONS, min_length=1,
                              description="what makes an answer good for this task")
    use_reference: bool = Field(default=False, description="show the sample's reference answer; "
                                "a sample without one is unscored")
    max_tokens: int = Field(default=2048, ge=1, description="token limit of the judgment")
    scope: Literal["answer", "trajectory"] = Field(default="answer", description="score final answers, "
                                                   "or whole trajectories as transcripts")
    max_transcript_chars: int = Field(default=12_000, ge=500, description="scope trajectory: each "
                                      "transcript's budget in characters")


def rollout_ids(count: int) -> list[str]:
    """The short ids shown to the judge.

    >>> rollout_ids(3)
    ['r1', 'r2', 'r3']
    """
    return [f"r{index + 1}" for index in range(count)]


def answer_format(ids: list[str]) -> str:
    entries = ",\n".join(f'  {{"id": "{item}", "rationale": "<one sentence>", "score": <1-10>}}'
                          for item in ids)
    return '{"scores": [\n' + entries + "\n]}"


class GroupJudge(Judge):
    """Scores a whole group in one call; results matched by id."""

    kind = "group"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.options = parse_options(GroupOptions, config)
        if self.options.scoring != "generate":
            raise ConfigError("the group judge supports only scoring: generate",
                              field=f"judges.{config.name}.scoring")
        self.prompt = choose_prompt(self.options.prompt_file, "group", base_dir)
        self.prompt.check_placeholders(PLACEHOLDERS, {"answers"}, field=f"judges.{config.name}.prompt_file")

    def request(self, sample: Sample, rollouts: list[Rollout]) -> tuple[CompletionRequest, list[str]]:
        ids = rollout_ids(len(rollouts))
        answers = "\n\n".join(f"Answer {item}:\n{fence(rollout.completion, 'ANSWER_' + item.upper())}"
                              for item, rollout in zip(ids, rollouts, strict=True))
        reference = sample.reference if self.options.use_reference else None
        values = {"question": question_block(sample), "reference": reference_block(reference),
                  "answers": answers, "count": str(len(ids)), "ids": ", ".join(ids),
                  "instructions": self.options.instructions, "answer_format": answer_format(ids)}
        request = CompletionRequest(messages=self.prompt.render(values), max_tokens=self.options.max_tokens,
                                    temperature=self.options.temperature, json_mode=True,
                                    response_schema=group_schema(ids), tag=self.name)
        return request, ids

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """Every shown id (read back from the answer format in the prompt) gets the middle score."""
        ids = list(dict.fromkeys(re.findall(r'"id": "(r\d+)"', request.messages[-1]["content"])))
        return json.dumps({"scores": [{"id": item, "rationale": "dry run", "score": 5} for item in ids]})

    def reads_trajectory(self) -> bool:
        return self.options.scope == "trajectory"

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        if self.options.scope == "trajectory":
            rollouts = [as_transcript(rollout, self.options.max_transcript_chars) for rollout in rollouts]
        empty_score = self.options.empty_answer_score
        shown = [index for index, rollout in enumerate(rollouts)
                 if empty_score is None or not is_empty(rollout.completion)]
        scores: list[Score | None] = [None] * len(rollouts)
        for index in set(range(len(rollouts))) - set(shown):
            assert empty_score is not None
            scores[index] = Score(self.name, empty_score, rationale="empty answer",
                                  details={"edge_rule": "empty_answer"})
        if shown:
            judged = await self._judge(sample, [rollouts[i] for i in shown])
            for index, score in zip(shown, judged, strict=True):
                scores[index] = score
        return [score for score in scores if score is not None]

    async def _judge(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        ids_of_rollouts = [rollout.id for rollout in rollouts]
        if self.options.use_reference and sample.reference is None:
            reasons = [data_error(sample, rollout, "reference", NO_REFERENCE) for rollout in rollouts]
            record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                            sample_id=sample.id, rollout_ids=ids_of_rollouts, log=CallLog(),
                            outcome="unscored", reason=reasons[0])
            return [Score.unscored(self.name, reason) for reason in reasons]
        request, ids = self.request(sample, rollouts)
        outcome = await call_and_parse(self.runtime, self.backend_name, request,
                                       lambda completion: parse_group(completion.text, ids))
        shown_ids = dict(zip(ids, ids_of_rollouts, strict=True))
        if outcome.value is None:
            reason = outcome.reason or "unscored"
            record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                            sample_id=sample.id, rollout_ids=ids_of_rollouts, log=outcome.log,
                            outcome="unscored", reason=reason, extra={"shown_ids": shown_ids})
            return [Score.unscored(self.name, reason, prompt_version=self.prompt.version) for _ in rollouts]
        items = outcome.value
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=ids_of_rollouts, log=outcome.log, outcome="ok",
                        reason=None,
                        scores={item: {"score": items[item].raw, "value": items[item].value} for item in ids},
                        rationale="\n".join(f"{item}: {items[item].rationale}" for item in ids),
                        extra={"shown_ids": shown_ids})
        return [Score(self.name, items[item].value, rationale=items[item].rationale,
                      details={"id": item, "score": items[item].raw, "group_size": len(ids),
                               "prompt_version": self.prompt.version})
                for item in ids]
