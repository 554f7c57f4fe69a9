"""The rubric judge: one answer at a time against criteria from the config (type `rubric`).

Why two kinds of criterion: a boolean pass/fail checklist ("names the governing law clause") is
the recommended default because judges agree with themselves and with people far more often on
yes/no questions than on fine scales; Likert dimensions (1-5, each level described) are there
for qualities that are really graded. The score is the weighted mean of the criteria, each
normalised to [0, 1] (pass=1, fail=0, level k -> (k-1)/4), and every criterion's score and
rationale is kept in `Score.details` and the journal.

Two ways to score (`scoring`):
- `generate`: one call; the judge writes a JSON verdict for all criteria, parsed strictly, with
  one re-ask on a malformed answer; still malformed -> unscored.
- `logprob`: one call per criterion with `max_tokens=1`; P(pass) or the expected Likert level is
  read from the token probabilities (judges/logprob.py). Optional `rationale: true` adds one
  generated, free-text rationale per answer for the journal (it never changes the score).

Template placeholders: rubric.txt uses {question} {answer} {reference} {criteria}
{answer_format}; rubric_logprob.txt uses {question} {answer} {reference} {criterion}
{instruction} {choices}. {answer} is required.

Three scopes (`scope`), for agents whose rollouts are trajectories (judgerl.trajectory):
- `answer` (default): the final answer alone, exactly as for a single-turn rollout;
- `trajectory`: one verdict for the whole run, read as a transcript (judges/transcript.py) in
  which every message, tool call and tool result is fenced (template rubric_trajectory.txt);
- `turns`: each assistant turn with text (and, with `include_tool_call_turns`, each turn that
  only calls tools) judged in its context, the transcript up to it (rubric_turn.txt). The score
  is the `turn_aggregate` of the turns' scores: `mean` (default: every turn counts alike) or
  `min` (the worst turn decides: one rude reply spoils the run); every turn's score and criteria
  are kept in `Score.details["turns"]` (message index in the trajectory, value, criteria) for
  engines that take per-turn rewards. One unscored turn makes the whole score unscored.
A single-turn rollout is, for these scopes, a trajectory of one assistant message. Both fit the
transcript into `max_transcript_chars` (the rule is in transcript.py: the task and the judged
turn / final answer are never left out) and score either way:
- `scoring: generate` (templates rubric_trajectory.txt / rubric_turn.txt): {transcript}
  (required) {tools} {reference} {criteria} {answer_format}, one JSON verdict per call;
- `scoring: logprob` (rubric_trajectory_logprob.txt / rubric_turn_logprob.txt): {transcript}
  (required) {tools} {reference} {criterion} {instruction} {choices}, one call per criterion
  (per judged turn for `turns`), read exactly as for an answer. The criterion comes after the
  transcript, so the calls of one transcript share their prefix (the local backend computes it
  once). This is what lets a small embedded judge score trajectories at all.
Either way a failed call makes the judgment unscored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from judgerl.backends.base import Completion, CompletionRequest
from judgerl.judges.base import PointwiseJudge, TokenSet
from judgerl.judges.calling import CallLog, call_and_parse, judgment_inputs, record_judgment
from judgerl.judges.logprob import LIKERT_TOKENS, verdict_instruction, verdict_parser, verdict_tokens
from judgerl.judges.options import (
    JudgeOptions,
    choose_prompt,
    is_empty,
    parse_options,
    question_block,
    reference_block,
)
from judgerl.judges.parsing import CriterionSpec, parse_rubric, rubric_schema
from judgerl.judges.templates import fence, load_prompt
from judgerl.judges.transcript import Transcript, render_transcript, tools_block, trajectory_of
from judgerl.types import Rollout, Sample, Score

if TYPE_CHECKING:
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"


class Criterion(BaseModel):
    """One rubric line: a pass/fail `check` (default) or a 1-5 `likert` dimension with levels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="identifier, used as the JSON key")
    kind: Literal["check", "likert"] = Field(default="check")
    description: str = Field(min_length=1, description="what the judge checks")
    weight: float = Field(default=1.0, ge=0)
    levels: dict[int, str] | None = Field(default=None, description="likert only: 1..5 -> description")

    @model_validator(mode="after")
    def _levels_match_kind(self) -> Criterion:
        if self.kind == "likert":
            if not self.levels or sorted(self.levels) != [1, 2, 3, 4, 5]:
                raise ValueError(f"likert criterion '{self.name}' needs `levels` with exactly the keys 1-5")
        elif self.levels is not None:
            raise ValueError(f"`levels` is only for likert criteria ('{self.name}' is a check)")
        return self


class CriteriaOptions(JudgeOptions):
    """Judges scored on a list of criteria (rubric, itemized rubric): names unique, weights positive."""

    criteria: list[Criterion] = Field(min_length=1, description="the rubric")
    pass_token: str = Field(default="PASS", min_length=1, description="logprob mode: a check's pass token")
    fail_token: str = Field(default="FAIL", min_length=1, description="logprob mode: a check's fail token")

    @field_validator("criteria")
    @classmethod
    def _unique_and_weighted(cls, criteria: list[Criterion]) -> list[Criterion]:
        names = [criterion.name for criterion in criteria]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"criterion names must be unique; repeated: {duplicated}")
        if sum(criterion.weight for criterion in criteria) <= 0:
            raise ValueError("at least one criterion needs a positive weight")
        return criteria

    @field_validator("pass_token", "fail_token", mode="before")
    @classmethod
    def _not_a_yaml_boolean(cls, token: Any) -> Any:
        if isinstance(token, bool):
            raise ValueError(f"YAML read this token as {str(token).lower()}: quote it (e.g. pass_token: "
                             '"Yes", fail_token: "No")')
        return token

    @field_validator("fail_token")
    @classmethod
    def _distinct_verdict_tokens(cls, fail_token: str, info: ValidationInfo) -> str:
        if fail_token == info.data.get("pass_token"):
            raise ValueError("pass_token and fail_token must differ")
        return fail_token


class RubricOptions(CriteriaOptions):
    """Options of `type: rubric` (on top of the shared ones in judges/options.py)."""

    use_reference: bool = Field(default=False, description="show the sample's reference answer; "
                                "a sample without one is unscored")
    rationale: bool = Field(default=False, description="logprob mode: also generate a short "
                            "rationale per answer for the journal")
    scope: Literal["answer", "trajectory", "turns"] = Field(
        default="answer", description="what is judged: the final answer, the whole trajectory, or each "
        "assistant turn in its context")
    turn_aggregate: Literal["mean", "min"] = Field(default="mean", description="scope turns: how the "
                                                   "turns' scores make the score")
    include_tool_call_turns: bool = Field(default=False, description="scope turns: also judge assistant "
                                          "turns that only call tools")
    max_transcript_chars: int = Field(default=24_000, ge=500, description="scopes trajectory / turns: "
                                      "the transcript's budget in characters")

    @model_validator(mode="after")
    def _rationale_is_for_answers(self) -> RubricOptions:
        if self.scope != "answer" and self.rationale:
            raise ValueError(f"`rationale` is for scope answer (scope '{self.scope}' would explain the "
                             "final answer alone)")
        return self


GENERATE_PLACEHOLDERS = {"question", "answer", "reference", "criteria", "answer_format"}
LOGPROB_PLACEHOLDERS = {"question", "answer", "reference", "criterion", "instruction", "choices",
                        "question_text", "answer_text"}
TRANSCRIPT_PLACEHOLDERS = {"transcript", "tools", "reference", "criteria", "answer_format"}
TRANSCRIPT_LOGPROB_PLACEHOLDERS = {"transcript", "tools", "reference", "criterion", "instruction", "choices"}
# (scope, scoring) -> (shipped template, placeholders it may use, placeholders it must use)
PROMPTS = {
    ("answer", "generate"): ("rubric", GENERATE_PLACEHOLDERS, {"answer"}),
    ("answer", "logprob"): ("rubric_logprob", LOGPROB_PLACEHOLDERS, {"answer"}),
    ("trajectory", "generate"): ("rubric_trajectory", TRANSCRIPT_PLACEHOLDERS, {"transcript"}),
    ("trajectory", "logprob"): ("rubric_trajectory_logprob", TRANSCRIPT_LOGPROB_PLACEHOLDERS, {"transcript"}),
    ("turns", "generate"): ("rubric_turn", TRANSCRIPT_PLACEHOLDERS, {"transcript"}),
    ("turns", "logprob"): ("rubric_turn_logprob", TRANSCRIPT_LOGPROB_PLACEHOLDERS, {"transcript"}),
}
# what a one-token verdict is asked about, per scope ("Does the run meet this criterion?")
SUBJECTS = {"answer": "answer", "trajectory": "run", "turns": "turn"}


def describe_criteria(criteria: list[Criterion]) -> str:
    """The criteria as the judge reads them (trusted config text).

    >>> print(describe_criteria([Criterion(name="correct", description="States the right capital.")]))
    - correct (pass/fail): States the right capital.
    """
    lines = []
    for criterion in criteria:
        if criterion.kind == "check":
            lines.append(f"- {criterion.name} (pass/fail): {criterion.description}")
        else:
            lines.append(f"- {criterion.name} (1-5): {criterion.description}")
            lines += [f"    {level}: {text}" for level, text in sorted((criterion.levels or {}).items())]
    return "\n".join(lines)


def answer_format(criteria: list[Criterion]) -> str:
    """The JSON shape the judge must answer with, spelled out for these criteria."""
    entries = []
    for criterion in criteria:
        score = "true or false" if criterion.kind == "check" else "an integer 1-5"
        entries.append(f'    "{criterion.name}": {{"rationale": "<one sentence>", "score": <{score}>}}')
    return '{"criteria": {\n' + ",\n".join(entries) + "\n}}"


class RubricJudge(PointwiseJudge):
    """Scores one answer against the configured criteria."""

    kind = "rubric"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.options = parse_options(RubricOptions, config)
        field = f"judges.{config.name}.prompt_file"
        default, available, required = PROMPTS[(self.options.scope, self.options.scoring)]
        self.prompt = choose_prompt(self.options.prompt_file, default, base_dir)
        if (self.options.scope, self.options.scoring) == ("answer", "logprob") \
                and "answer_text" in self.prompt.placeholders:
            # a distilled student's template shows the texts unfenced ({answer_text}): it is a
            # trained classifier, and the fences' hash tags cost it ~60 prompt tokens per judgment
            required = {"answer_text"}
        self.prompt.check_placeholders(available, required, field=field)
        self.rationale_prompt = load_prompt("rationale")
        self.specs = [CriterionSpec(criterion.name, criterion.kind) for criterion in self.options.criteria]

    def reads_trajectory(self) -> bool:
        return self.options.scope != "answer"

    # -- rendering -------------------------------------------------------------------------

    def _common_values(self, sample: Sample, rollout: Rollout) -> dict[str, str]:
        reference = sample.reference if self.options.use_reference else None
        return {"question": question_block(sample), "answer": fence(rollout.completion, "ANSWER"),
                "reference": reference_block(reference),
                # unfenced, for a distilled student's own template (rubric_student)
                "question_text": sample.prompt, "answer_text": rollout.completion}

    def _transcript_values(self, sample: Sample, rollout: Rollout,
                           focus: int | None) -> tuple[dict[str, str], Transcript]:
        """The values of a transcript template: the whole run (focus None) or up to turn `focus`."""
        transcript = render_transcript(sample, trajectory_of(rollout), focus=focus,
                                       max_chars=self.options.max_transcript_chars)
        reference = sample.reference if self.options.use_reference else None
        return ({"transcript": transcript.text, "tools": tools_block(rollout),
                 "reference": reference_block(reference)}, transcript)

    def _request(self, values: dict[str, str], criterion: Criterion | None = None) -> CompletionRequest:
        """A judge call on what `values` shows: a JSON verdict on every criterion (criterion None),
        or a one-token verdict on `criterion`, whose probabilities are read (scoring logprob)."""
        if criterion is None:
            values = {**values, "criteria": describe_criteria(self.options.criteria),
                      "answer_format": answer_format(self.options.criteria)}
            return CompletionRequest(messages=self.prompt.render(values), max_tokens=self.options.max_tokens,
                                     temperature=self.options.temperature, json_mode=True,
                                     response_schema=rubric_schema(self.specs), tag=self.name)
        tokens = self.criterion_tokens(criterion)
        instruction, choices = verdict_instruction(criterion.kind, tokens, SUBJECTS[self.options.scope])
        values = {**values, "criterion": describe_criteria([criterion]).removeprefix("- "),
                  "instruction": instruction, "choices": choices}
        return CompletionRequest(messages=self.prompt.render(values), max_tokens=1, temperature=0.0,
                                 logprobs=True, top_logprobs=self.options.top_logprobs,
                                 candidate_tokens=tokens, tag=self.name)

    def generate_request(self, sample: Sample, rollout: Rollout) -> CompletionRequest:
        return self._request(self._common_values(sample, rollout))

    def logprob_request(self, sample: Sample, rollout: Rollout, criterion: Criterion) -> CompletionRequest:
        return self._request(self._common_values(sample, rollout), criterion)

    def transcript_request(self, sample: Sample, rollout: Rollout, focus: int | None = None,
                           criterion: Criterion | None = None) -> tuple[CompletionRequest, Transcript]:
        """The request that judges the whole trajectory (focus None) or its turn `focus`: on every
        criterion (generate), or on `criterion` alone (logprob)."""
        values, transcript = self._transcript_values(sample, rollout, focus)
        return self._request(values, criterion), transcript

    def judged_turns(self, rollout: Rollout) -> list[int]:
        """Indexes (in the trajectory) of the assistant turns that scope `turns` judges."""
        return [index for index, message in enumerate(trajectory_of(rollout))
                if message["role"] == "assistant"
                and (str(message.get("content") or "").strip()
                     or (self.options.include_tool_call_turns and message.get("tool_calls")))]

    def criterion_tokens(self, criterion: Criterion) -> list[str]:
        return verdict_tokens(criterion.kind, self.options.pass_token, self.options.fail_token)

    def verdict_token_sets(self) -> list[TokenSet]:
        if self.options.scoring != "logprob":
            return []
        kinds = {criterion.kind for criterion in self.options.criteria}
        sets = []
        if "check" in kinds:
            sets.append(TokenSet(self.name, (self.options.pass_token, self.options.fail_token),
                                 "pass_token / fail_token"))
        if "likert" in kinds:
            sets.append(TokenSet(self.name, tuple(LIKERT_TOKENS)))
        return sets

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """Every check passes and every Likert criterion gets 3."""
        criteria = {criterion.name: {"rationale": "dry run",
                                     "score": True if criterion.kind == "check" else 3}
                    for criterion in self.options.criteria}
        return json.dumps({"criteria": criteria})

    # -- scoring ---------------------------------------------------------------------------

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        if self.options.scope != "answer":
            if self.options.use_reference and sample.reference is None:
                return self._unscored(sample, rollout, CallLog(), "no reference answer for this sample "
                                      "(use_reference is true)")
            if self.options.scope == "trajectory":
                return await self._score_trajectory(sample, rollout)
            return await self._score_turns(sample, rollout)
        if self.options.empty_answer_score is not None and is_empty(rollout.completion):
            record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                            sample_id=sample.id, rollout_ids=[rollout.id], log=CallLog(), outcome="ok",
                            reason=None, scores=self.options.empty_answer_score,
                            rationale="empty answer", extra={"edge_rule": "empty_answer"})
            return Score(self.name, self.options.empty_answer_score, rationale="empty answer",
                         details={"edge_rule": "empty_answer"})
        if self.options.use_reference and sample.reference is None:
            return self._unscored(sample, rollout, CallLog(), "no reference answer for this sample "
                                  "(use_reference is true)")
        return await self._score_answer(sample, rollout)

    async def _judge(self, values: dict[str, str]) -> tuple[dict[str, dict[str, Any]] | None, CallLog, str]:
        """Judge what `values` shows on every criterion, by the configured scoring: (the criteria's
        scores, or None with the reason when a call failed; the calls' log)."""
        if self.options.scoring == "generate":
            outcome = await call_and_parse(self.runtime, self.backend_name, self._request(values),
                                           self._parse)
            if outcome.value is None:
                return None, outcome.log, outcome.reason or "unscored"
            return self._criteria_of(outcome.value), outcome.log, ""
        criteria = self.options.criteria
        outcomes = await asyncio.gather(*(call_and_parse(self.runtime, self.backend_name,
                                                         self._request(values, criterion),
                                                         self._logprob_parser(criterion), reasks=0)
                                          for criterion in criteria))
        log = CallLog()
        for outcome in outcomes:
            log.merge(outcome.log)
        failures = [f"{criterion.name}: {outcome.reason}"
                    for criterion, outcome in zip(criteria, outcomes, strict=True) if outcome.value is None]
        if failures:
            return None, log, "; ".join(failures)
        per_criterion: dict[str, dict[str, Any]] = {}
        for criterion, outcome in zip(criteria, outcomes, strict=True):
            assert outcome.value is not None
            raw, value = outcome.value
            per_criterion[criterion.name] = {"kind": criterion.kind, "score": raw, "value": value,
                                             "rationale": ""}
        return per_criterion, log, ""

    def _parse(self, completion: Completion) -> Any:
        return parse_rubric(completion.text, self.specs)

    def _criteria_of(self, parsed: Any) -> dict[str, dict[str, Any]]:
        return {spec.name: {"kind": spec.kind, "score": parsed[spec.name].raw,
                            "value": parsed[spec.name].value, "rationale": parsed[spec.name].rationale}
                for spec in self.specs}

    async def _score_answer(self, sample: Sample, rollout: Rollout) -> Score:
        judged = self._judge(self._common_values(sample, rollout))
        if self.options.scoring == "logprob" and self.options.rationale:
            (per_criterion, log, reason), (rationale, rationale_log) = await asyncio.gather(
                judged, self._rationale(sample, rollout))
            log.merge(rationale_log)
        else:
            (per_criterion, log, reason), rationale = await judged, ""
        if per_criterion is None:
            return self._unscored(sample, rollout, log, reason)
        return self._scored(sample, rollout, log, per_criterion, rationale=rationale)

    async def _score_trajectory(self, sample: Sample, rollout: Rollout) -> Score:
        values, transcript = self._transcript_values(sample, rollout, None)
        per_criterion, log, reason = await self._judge(values)
        if per_criterion is None:
            return self._unscored(sample, rollout, log, reason)
        return self._scored(sample, rollout, log, per_criterion,
                            scope_details={"scope": "trajectory", "transcript_messages": transcript.messages,
                                           "transcript_omitted": transcript.omitted})

    async def _score_turns(self, sample: Sample, rollout: Rollout) -> Score:
        turns = self.judged_turns(rollout)
        if not turns:
            return self._unscored(sample, rollout, CallLog(), "no assistant turn to judge (scope turns)")
        judged = await asyncio.gather(*(self._judge(self._transcript_values(sample, rollout, turn)[0])
                                        for turn in turns))
        log = CallLog()
        for _, turn_log, _ in judged:
            log.merge(turn_log)
        failures = [f"turn {turn}: {reason}"
                    for turn, (criteria, _, reason) in zip(turns, judged, strict=True) if criteria is None]
        if failures:
            return self._unscored(sample, rollout, log, "; ".join(failures))
        per_turn = []
        for turn, (criteria, _, _) in zip(turns, judged, strict=True):
            assert criteria is not None
            per_turn.append({"message_index": turn, "value": self._weighted(criteria), "criteria": criteria})
        values = [item["value"] for item in per_turn]
        value = min(values) if self.options.turn_aggregate == "min" else sum(values) / len(values)
        rationale = "\n".join(f"turn {item['message_index']}: {name}: {criterion['rationale']}"
                              for item in per_turn for name, criterion in item["criteria"].items()
                              if criterion["rationale"])
        return self._scored(sample, rollout, log, {}, rationale=rationale, value=value,
                            scope_details={"scope": "turns", "turn_aggregate": self.options.turn_aggregate,
                                           "turns": per_turn})

    def _logprob_parser(self, criterion: Criterion) -> Callable[[Completion], tuple[float, float]]:
        return verdict_parser(criterion.kind, self.criterion_tokens(criterion),
                              case_sensitive=self.options.case_sensitive_tokens)

    async def _rationale(self, sample: Sample, rollout: Rollout) -> tuple[str, CallLog]:
        values = {**self._common_values(sample, rollout),
                  "criteria": describe_criteria(self.options.criteria)}
        request = CompletionRequest(messages=self.rationale_prompt.render(values), max_tokens=256,
                                    temperature=self.options.temperature,
                                    tag=self.name)
        outcome = await call_and_parse(self.runtime, self.backend_name, request,
                                       lambda completion: completion.text.strip(), reasks=0)
        return (outcome.value or f"(no rationale: {outcome.reason})"), outcome.log

    # -- results ---------------------------------------------------------------------------

    def _weighted(self, per_criterion: dict[str, dict[str, Any]]) -> float:
        weights = {criterion.name: criterion.weight for criterion in self.options.criteria}
        total = sum(weights.values())
        value = sum(weights[name] * item["value"] for name, item in per_criterion.items()) / total
        return min(1.0, max(0.0, value))

    def _scored(self, sample: Sample, rollout: Rollout, log: CallLog,
                per_criterion: dict[str, dict[str, Any]], rationale: str = "", *,
                value: float | None = None, scope_details: dict[str, Any] | None = None) -> Score:
        value = self._weighted(per_criterion) if value is None else value
        if not rationale:
            rationale = "\n".join(f"{name}: {item['rationale']}" for name, item in per_criterion.items()
                                  if item["rationale"])
        scope_details = scope_details or {}
        scores: dict[str, Any] = {"value": value, "criteria": per_criterion}
        if "turns" in scope_details:
            scores["turns"] = scope_details["turns"]
        extra: dict[str, Any] = {"scoring": self.options.scoring}
        if scope_details:
            extra.update({key: item for key, item in scope_details.items() if key != "turns"})
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="ok", reason=None,
                        scores=scores, rationale=rationale, extra=extra,
                        inputs=judgment_inputs(sample, [rollout]))
        return Score(self.name, value, rationale=rationale,
                     details={"criteria": per_criterion, "prompt_version": self.prompt.version,
                              "scoring": self.options.scoring, **scope_details})

    def _unscored(self, sample: Sample, rollout: Rollout, log: CallLog, reason: str) -> Score:
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="unscored",
                        reason=reason, extra={"scoring": self.options.scoring},
                        inputs=judgment_inputs(sample, [rollout]))
        return Score.unscored(self.name, reason, prompt_version=self.prompt.version,
                              raw_outputs=list(log.raw_outputs))
