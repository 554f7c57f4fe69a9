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

Rubrics written for each prompt (judgerl.rubric_items): a row may carry its own items in the
column `rubric_field` (default `rubric`, read from `Sample.metadata`); they are judged as checks
`r1`, `r2`, ... next to the config's `criteria` (which may then be empty), a pitfall shown as
"[pitfall: true if the answer does this] ...". `mode: explicit` gives a verdict per item:
`items_per_call` items per JSON answer (default all), or one one-token question each with
`scoring: logprob` (a judge without criteria of its own then uses rubric_items_logprob.txt,
whose instruction comes before the item, so an answer's questions differ in their last line
only). `mode: implicit` asks one 1-10 score given every item and weight
(rubric_implicit.txt: {question} {answer} {reference} {criteria} {answer_format}; value
(k - 1) / 9). The value is sum w_i v_i / sum of the positive w_i, clipped to [0, 1]. A bad row
rubric is that row's unscored `data_error` naming the file, line and field, with no call made.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from judgerl.backends.base import Completion, CompletionRequest
from judgerl.judges.base import PointwiseJudge, TokenSet
from judgerl.judges.calling import CallLog, call_and_parse, judgment_inputs, record_judgment
from judgerl.judges.logprob import LIKERT_TOKENS, verdict_instruction, verdict_parser, verdict_tokens
from judgerl.judges.options import (
    NO_REFERENCE,
    JudgeOptions,
    choose_prompt,
    data_error,
    is_empty,
    labelled_reason,
    parse_options,
    question_block,
    reference_block,
)
from judgerl.judges.parsing import (
    CriterionSpec,
    find_last_json_object,
    parse_rubric,
    rubric_schema,
    validate_answer,
)
from judgerl.judges.templates import fence, load_prompt
from judgerl.judges.transcript import Transcript, render_transcript, tools_block, trajectory_of
from judgerl.rubric_items import (
    DEFAULT_MAX_ITEMS,
    RubricError,
    RubricItem,
    parse_rubric_items,
    rubric_reward,
)
from judgerl.types import Rollout, Sample, Score

if TYPE_CHECKING:
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
#: the names a row rubric's items are shown under (r1, r2, ...); config criteria may not use them
ROW_ITEM_NAME = re.compile(r"^r[0-9]+$")


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
        if criteria and sum(criterion.weight for criterion in criteria) <= 0:  # empty: the rows' rubrics
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
    # -- rubrics written for each prompt (a row's own items, judgerl.rubric_items) -------------
    criteria: list[Criterion] = Field(default_factory=list, description="the rubric of every prompt "
                                      "(may be empty when the rows carry their own)")
    rubric_field: str | None = Field(default="rubric", validate_default=True,
                                     description="the row column (metadata key) with "
                                     "the prompt's own rubric items; null: ignore row rubrics")
    mode: Literal["explicit", "implicit"] = Field(
        default="explicit", description="explicit: a verdict per criterion, then the weighted sum; "
        "implicit: one holistic 1-10 score given all criteria")
    items_per_call: int | None = Field(default=None, ge=1, description="explicit generate: criteria per "
                                       "judge call (default: all in one JSON answer; 1: a call per item)")
    max_items: int = Field(default=DEFAULT_MAX_ITEMS, ge=1, description="most items a row's rubric may have "
                           "(more is that row's data error)")

    @field_validator("rubric_field")
    @classmethod
    def _something_to_judge(cls, rubric_field: str | None, info: ValidationInfo) -> str | None:
        criteria = info.data.get("criteria") or []
        if not criteria and rubric_field is None:
            raise ValueError("give `criteria`, or a `rubric_field` the rows carry their rubric in")
        reserved = [c.name for c in criteria if ROW_ITEM_NAME.match(c.name)]
        if rubric_field is not None and reserved:
            raise ValueError(f"criterion names r1, r2, ... are the row rubric's items; rename {reserved}")
        return rubric_field

    @field_validator("mode")
    @classmethod
    def _implicit_is_generated(cls, mode: str, info: ValidationInfo) -> str:
        generated_answer = info.data.get("scoring") == "generate" and info.data.get("scope") == "answer"
        if mode == "implicit" and not generated_answer:
            raise ValueError("mode implicit is one generated 1-10 score of the answer: it needs "
                             "scoring: generate and scope: answer")
        return mode

    @field_validator("items_per_call")
    @classmethod
    def _batches_are_generated(cls, items_per_call: int | None, info: ValidationInfo) -> int | None:
        if items_per_call is not None and info.data.get("scoring") != "generate":
            raise ValueError("items_per_call is for scoring: generate (logprob asks one item per call)")
        return items_per_call

    @model_validator(mode="after")
    def _rationale_is_for_answers(self) -> RubricOptions:
        if self.scope != "answer" and self.rationale:
            raise ValueError(f"`rationale` is for scope answer (scope '{self.scope}' would explain the "
                             "final answer alone)")
        return self


@dataclass
class JudgedRubric:
    """What one sample is judged on: the config's criteria and the row's own items (r1, r2, ...)."""

    criteria: list[Criterion]
    #: signed weights by criterion name (a row pitfall's is negative)
    weights: dict[str, float]
    items: dict[str, RubricItem] = field(default_factory=dict)

    @property
    def specs(self) -> list[CriterionSpec]:
        return [CriterionSpec(criterion.name, criterion.kind) for criterion in self.criteria]


class _ImplicitAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rationale: str = ""
    score: int = Field(strict=True, ge=1, le=10)


#: the JSON Schema of `_ImplicitAnswer`, sent where the backend enforces schemas
IMPLICIT_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["rationale", "score"],
                   "properties": {"rationale": {"type": "string"},
                                  "score": {"type": "integer", "enum": list(range(1, 11))}}}


def parse_implicit(text: str) -> tuple[int, str]:
    """`{"rationale": "...", "score": 1..10}` -> (score, rationale); anything else raises.

    >>> parse_implicit('{"rationale": "meets most", "score": 8}')
    (8, 'meets most')
    """
    answer = validate_answer(_ImplicitAnswer, find_last_json_object(text))
    return answer.score, answer.rationale


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
    """Scores one answer against the configured criteria and the row's own rubric items."""

    kind = "rubric"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.options = parse_options(RubricOptions, config)
        where = f"judges.{config.name}.prompt_file"
        answer_logprob = (self.options.scope, self.options.scoring) == ("answer", "logprob")
        if self.options.mode == "implicit":
            default, available, required = "rubric_implicit", IMPLICIT_PLACEHOLDERS, {"answer", "criteria"}
        else:
            default, available, required = PROMPTS[(self.options.scope, self.options.scoring)]
            if answer_logprob and not self.options.criteria:
                # a judge of row rubrics only: the instruction before the item, so that the
                # questions of one answer differ in the item's line alone (a shorter suffix after
                # the prefix the local backend shares)
                default = "rubric_items_logprob"
        self.prompt = choose_prompt(self.options.prompt_file, default, base_dir)
        if answer_logprob and self.options.mode == "explicit" and "answer_text" in self.prompt.placeholders:
            # a distilled student's template shows the texts unfenced ({answer_text}): it is a
            # trained classifier, and the fences' hash tags cost it ~60 prompt tokens per judgment
            required = {"answer_text"}
        self.prompt.check_placeholders(available, required, field=where)
        self.rationale_prompt = load_prompt("rationale")
        self.specs = [CriterionSpec(criterion.name, criterion.kind) for criterion in self.options.criteria]
        self.config_rubric = JudgedRubric(list(self.options.criteria),
                                          {c.name: c.weight for c in self.options.criteria})

    def reads_trajectory(self) -> bool:
        return self.options.scope != "answer"

    # -- the rubric of one sample ----------------------------------------------------------

    def row_rubric(self, sample: Sample) -> list[RubricItem] | None:
        """The sample's own rubric items (None: the row has none); a bad one raises RubricError."""
        key = self.options.rubric_field
        if key is None or sample.metadata.get(key) is None:
            return None
        return parse_rubric_items(sample.metadata[key], field=key, max_items=self.options.max_items)

    def rubric_for(self, sample: Sample) -> JudgedRubric:
        """The config's criteria plus the row's items (r1, r2, ...); RubricError when the row's
        rubric is bad, or when there is nothing to judge on."""
        items = self.row_rubric(sample)
        if items is None:
            if not self.options.criteria:
                raise RubricError("this row has no rubric, and the judge has no `criteria` of its own",
                                  self.options.rubric_field or "rubric")
            return self.config_rubric
        criteria = list(self.options.criteria)
        weights = {c.name: c.weight for c in criteria}
        row_items: dict[str, RubricItem] = {}
        for index, item in enumerate(items):
            name = f"r{index + 1}"
            text = (f"[pitfall: true if the answer does this] {item.criterion}" if item.pitfall
                    else item.criterion)
            criteria.append(Criterion(name=name, kind="check", description=text, weight=abs(item.weight)))
            weights[name] = item.weight
            row_items[name] = item
        if sum(weight for weight in weights.values() if weight > 0) <= 0:
            raise RubricError("every item is a pitfall: at least one needs a positive weight",
                              self.options.rubric_field or "rubric")
        return JudgedRubric(criteria, weights, row_items)

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

    def _request(self, values: dict[str, str], criterion: Criterion | None = None,
                 criteria: list[Criterion] | None = None) -> CompletionRequest:
        """A judge call on what `values` shows: a JSON verdict on `criteria` (default: the config's;
        criterion None), or a one-token verdict on `criterion`, whose probabilities are read (scoring
        logprob). The criterion comes last, so the calls of one answer share their prefix."""
        if criterion is None:
            shown = self.options.criteria if criteria is None else criteria
            values = {**values, "criteria": describe_criteria(shown), "answer_format": answer_format(shown)}
            return CompletionRequest(messages=self.prompt.render(values), max_tokens=self.options.max_tokens,
                                     temperature=self.options.temperature, json_mode=True,
                                     response_schema=rubric_schema(
                                         [CriterionSpec(c.name, c.kind) for c in shown]),
                                     tag=self.name)
        tokens = self.criterion_tokens(criterion)
        instruction, choices = verdict_instruction(criterion.kind, tokens, SUBJECTS[self.options.scope])
        values = {**values, "criterion": describe_criteria([criterion]).removeprefix("- "),
                  "instruction": instruction, "choices": choices}
        return CompletionRequest(messages=self.prompt.render(values), max_tokens=1, temperature=0.0,
                                 logprobs=True, top_logprobs=self.options.top_logprobs,
                                 candidate_tokens=tokens, tag=self.name)

    def implicit_request(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> CompletionRequest:
        """mode implicit: every criterion with its weight, one holistic 1-10 score."""
        values = {**self._common_values(sample, rollout), "criteria": describe_weighted(rubric),
                  "answer_format": IMPLICIT_FORMAT}
        return CompletionRequest(messages=self.prompt.render(values), max_tokens=self.options.max_tokens,
                                 temperature=self.options.temperature, json_mode=True,
                                 response_schema=IMPLICIT_SCHEMA, tag=self.name)

    def generate_request(self, sample: Sample, rollout: Rollout) -> CompletionRequest:
        return self._request(self._common_values(sample, rollout), criteria=self.rubric_for(sample).criteria)

    def logprob_request(self, sample: Sample, rollout: Rollout, criterion: Criterion) -> CompletionRequest:
        return self._request(self._common_values(sample, rollout), criterion)

    def transcript_request(self, sample: Sample, rollout: Rollout, focus: int | None = None,
                           criterion: Criterion | None = None) -> tuple[CompletionRequest, Transcript]:
        """The request that judges the whole trajectory (focus None) or its turn `focus`: on every
        criterion (generate), or on `criterion` alone (logprob)."""
        values, transcript = self._transcript_values(sample, rollout, focus)
        return self._request(values, criterion, criteria=self.rubric_for(sample).criteria), transcript

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
        if "check" in kinds or self.options.rubric_field:  # a row's rubric items are checks
            sets.append(TokenSet(self.name, (self.options.pass_token, self.options.fail_token),
                                 "pass_token / fail_token"))
        if "likert" in kinds:
            sets.append(TokenSet(self.name, tuple(LIKERT_TOKENS)))
        return sets

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """Every check shown passes and every Likert criterion gets 3 (read back from the answer
        format, so a row's own items are answered too); implicit: 5 of 10."""
        if self.options.mode == "implicit":
            return json.dumps({"rationale": "dry run", "score": 5})
        shown = re.findall(r'^\s*"([A-Za-z][\w\-]*)": \{"rationale": "<one sentence>", "score": <([a-z]+)',
                           request.messages[-1]["content"], flags=re.MULTILINE)
        criteria = {name: {"rationale": "dry run", "score": True if kind == "true" else 3}
                    for name, kind in shown}
        return json.dumps({"criteria": criteria})

    # -- scoring ---------------------------------------------------------------------------

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        try:
            rubric = self.rubric_for(sample)
        except RubricError as exc:
            where = rollout.location or f"sample {sample.id!r}"
            return self._unscored(sample, rollout, CallLog(), f"data_error: {where}, field '{exc.field}': "
                                  f"{exc.detail} (sample {sample.id!r}, rollout {rollout.id!r})")
        if self.options.scope != "answer":
            if self.options.use_reference and sample.reference is None:
                return self._unscored(sample, rollout, CallLog(),
                                      data_error(sample, rollout, "reference", NO_REFERENCE))
            if self.options.scope == "trajectory":
                return await self._score_trajectory(sample, rollout, rubric)
            return await self._score_turns(sample, rollout, rubric)
        if self.options.empty_answer_score is not None and is_empty(rollout.completion):
            record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                            sample_id=sample.id, rollout_ids=[rollout.id], log=CallLog(), outcome="ok",
                            reason=None, scores=self.options.empty_answer_score,
                            rationale="empty answer", extra={"edge_rule": "empty_answer"})
            return Score(self.name, self.options.empty_answer_score, rationale="empty answer",
                         details={"edge_rule": "empty_answer"})
        if self.options.use_reference and sample.reference is None:
            return self._unscored(sample, rollout, CallLog(),
                                  data_error(sample, rollout, "reference", NO_REFERENCE))
        if self.options.mode == "implicit":
            return await self._score_implicit(sample, rollout, rubric)
        return await self._score_answer(sample, rollout, rubric)

    def _chunks(self, criteria: list[Criterion]) -> list[list[Criterion]]:
        size = self.options.items_per_call or len(criteria)
        return [criteria[start:start + size] for start in range(0, len(criteria), size)]

    async def _judge(self, values: dict[str, str], rubric: JudgedRubric,
                     ) -> tuple[dict[str, dict[str, Any]] | None, CallLog, str]:
        """Judge what `values` shows on every criterion of `rubric`, by the configured scoring: (the
        criteria's scores, or None with the reason when a call failed; the calls' log). Generate:
        `items_per_call` criteria per call (default all); logprob: one one-token call each."""
        log = CallLog()
        if self.options.scoring == "generate":
            chunks = self._chunks(rubric.criteria)
            outcomes = await asyncio.gather(*(
                call_and_parse(self.runtime, self.backend_name, self._request(values, criteria=chunk),
                               self._parser([CriterionSpec(c.name, c.kind) for c in chunk]))
                for chunk in chunks))
            for outcome in outcomes:
                log.merge(outcome.log)
            failures = [outcome.reason or "unscored" for outcome in outcomes if outcome.value is None]
            if failures:
                return None, log, "; ".join(failures)
            per_criterion: dict[str, dict[str, Any]] = {}
            for chunk, outcome in zip(chunks, outcomes, strict=True):
                per_criterion.update(self._criteria_of(outcome.value, chunk))
            return per_criterion, log, ""
        criteria = rubric.criteria
        logprob_outcomes = await asyncio.gather(*(call_and_parse(self.runtime, self.backend_name,
                                                                 self._request(values, criterion),
                                                                 self._logprob_parser(criterion), reasks=0)
                                                  for criterion in criteria))
        for logprob_outcome in logprob_outcomes:
            log.merge(logprob_outcome.log)
        lp_failures = [(criterion.name, outcome.reason or "unscored")
                       for criterion, outcome in zip(criteria, logprob_outcomes, strict=True)
                       if outcome.value is None]
        if lp_failures:
            return None, log, labelled_reason(lp_failures)
        per_criterion = {}
        for criterion, logprob_outcome in zip(criteria, logprob_outcomes, strict=True):
            assert logprob_outcome.value is not None
            raw, value = logprob_outcome.value
            per_criterion[criterion.name] = {"kind": criterion.kind, "score": raw, "value": value,
                                             "rationale": ""}
        return per_criterion, log, ""

    @staticmethod
    def _parser(specs: list[CriterionSpec]) -> Callable[[Completion], Any]:
        return lambda completion: parse_rubric(completion.text, specs)

    def _parse(self, completion: Completion) -> Any:
        return parse_rubric(completion.text, self.specs)

    @staticmethod
    def _criteria_of(parsed: Any, criteria: list[Criterion]) -> dict[str, dict[str, Any]]:
        return {c.name: {"kind": c.kind, "score": parsed[c.name].raw,
                         "value": parsed[c.name].value, "rationale": parsed[c.name].rationale}
                for c in criteria}

    async def _score_answer(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> Score:
        judged = self._judge(self._common_values(sample, rollout), rubric)
        if self.options.scoring == "logprob" and self.options.rationale:
            (per_criterion, log, reason), (rationale, rationale_log) = await asyncio.gather(
                judged, self._rationale(sample, rollout, rubric))
            log.merge(rationale_log)
        else:
            (per_criterion, log, reason), rationale = await judged, ""
        if per_criterion is None:
            return self._unscored(sample, rollout, log, reason)
        return self._scored(sample, rollout, log, per_criterion, rubric, rationale=rationale)

    async def _score_implicit(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> Score:
        outcome = await call_and_parse(self.runtime, self.backend_name,
                                       self.implicit_request(sample, rollout, rubric),
                                       lambda completion: parse_implicit(completion.text))
        if outcome.value is None:
            return self._unscored(sample, rollout, outcome.log, outcome.reason or "unscored")
        level, rationale = outcome.value
        value = (level - 1) / 9
        return self._scored(sample, rollout, outcome.log, {}, rubric, rationale=rationale, value=value,
                            scope_details={"mode": "implicit", "implicit_score": level})

    async def _score_trajectory(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> Score:
        values, transcript = self._transcript_values(sample, rollout, None)
        per_criterion, log, reason = await self._judge(values, rubric)
        if per_criterion is None:
            return self._unscored(sample, rollout, log, reason)
        return self._scored(sample, rollout, log, per_criterion, rubric,
                            scope_details={"scope": "trajectory", "transcript_messages": transcript.messages,
                                           "transcript_omitted": transcript.omitted})

    async def _score_turns(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> Score:
        turns = self.judged_turns(rollout)
        if not turns:
            return self._unscored(sample, rollout, CallLog(), "no assistant turn to judge (scope turns)")
        judged = await asyncio.gather(*(self._judge(self._transcript_values(sample, rollout, turn)[0], rubric)
                                        for turn in turns))
        log = CallLog()
        for _, turn_log, _ in judged:
            log.merge(turn_log)
        failures = [(f"turn {turn}", reason)
                    for turn, (criteria, _, reason) in zip(turns, judged, strict=True) if criteria is None]
        if failures:
            return self._unscored(sample, rollout, log, labelled_reason(failures))
        per_turn = []
        for turn, (criteria, _, _) in zip(turns, judged, strict=True):
            assert criteria is not None
            per_turn.append({"message_index": turn, "value": self._weighted(criteria, rubric),
                             "criteria": criteria})
        values = [item["value"] for item in per_turn]
        value = min(values) if self.options.turn_aggregate == "min" else sum(values) / len(values)
        rationale = "\n".join(f"turn {item['message_index']}: {name}: {criterion['rationale']}"
                              for item in per_turn for name, criterion in item["criteria"].items()
                              if criterion["rationale"])
        return self._scored(sample, rollout, log, {}, rubric, rationale=rationale, value=value,
                            scope_details={"scope": "turns", "turn_aggregate": self.options.turn_aggregate,
                                           "turns": per_turn})

    def _logprob_parser(self, criterion: Criterion) -> Callable[[Completion], tuple[float, float]]:
        return verdict_parser(criterion.kind, self.criterion_tokens(criterion),
                              case_sensitive=self.options.case_sensitive_tokens)

    async def _rationale(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric) -> tuple[str, CallLog]:
        values = {**self._common_values(sample, rollout), "criteria": describe_criteria(rubric.criteria)}
        request = CompletionRequest(messages=self.rationale_prompt.render(values), max_tokens=256,
                                    temperature=self.options.temperature,
                                    tag=self.name)
        outcome = await call_and_parse(self.runtime, self.backend_name, request,
                                       lambda completion: completion.text.strip(), reasks=0)
        return (outcome.value or f"(no rationale: {outcome.reason})"), outcome.log

    # -- results ---------------------------------------------------------------------------

    @staticmethod
    def _weighted(per_criterion: dict[str, dict[str, Any]], rubric: JudgedRubric) -> float:
        """sum w_i v_i / sum of the positive w_i, clipped to [0, 1] (judgerl.rubric_items)."""
        names = list(per_criterion)
        return rubric_reward([rubric.weights[name] for name in names],
                             [per_criterion[name]["value"] for name in names])

    def _scored(self, sample: Sample, rollout: Rollout, log: CallLog,
                per_criterion: dict[str, dict[str, Any]], rubric: JudgedRubric, rationale: str = "", *,
                value: float | None = None, scope_details: dict[str, Any] | None = None) -> Score:
        value = self._weighted(per_criterion, rubric) if value is None else value
        for name, item in rubric.items.items():  # a row item's text, signed weight and category
            if name in per_criterion:
                per_criterion[name].update(row_item_detail(item))
        if not rationale:
            rationale = "\n".join(f"{_label(name, rubric)}: {item['rationale']}"
                                  for name, item in per_criterion.items() if item["rationale"])
        scope_details = dict(scope_details or {})
        if rubric.items:
            scope_details["rubric"] = {"field": self.options.rubric_field, "items": len(rubric.items),
                                       "mode": self.options.mode,
                                       "row_items": {name: row_item_detail(item)
                                                     for name, item in rubric.items.items()}}
        scores: dict[str, Any] = {"value": value, "criteria": per_criterion}
        if "turns" in scope_details:
            scores["turns"] = scope_details["turns"]
        extra: dict[str, Any] = {"scoring": self.options.scoring}
        if scope_details:
            extra.update({key: item for key, item in scope_details.items() if key != "turns"})
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="ok", reason=None,
                        scores=scores, rationale=rationale, extra=extra,
                        inputs=self._inputs(sample, rollout, rubric))
        return Score(self.name, value, rationale=rationale,
                     details={"criteria": per_criterion, "prompt_version": self.prompt.version,
                              "scoring": self.options.scoring, **scope_details})

    def _inputs(self, sample: Sample, rollout: Rollout, rubric: JudgedRubric | None) -> dict[str, Any]:
        inputs = judgment_inputs(sample, [rollout])
        if rubric is not None and rubric.items:
            inputs["rubric"] = [item.as_row() for item in rubric.items.values()]
        return inputs

    def _unscored(self, sample: Sample, rollout: Rollout, log: CallLog, reason: str) -> Score:
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="unscored",
                        reason=reason, extra={"scoring": self.options.scoring},
                        inputs=judgment_inputs(sample, [rollout]))
        return Score.unscored(self.name, reason, prompt_version=self.prompt.version,
                              raw_outputs=list(log.raw_outputs))


def row_item_detail(item: RubricItem) -> dict[str, Any]:
    """A row item as details and the journal show it: its text, signed weight, category."""
    return {"criterion": item.criterion, "weight": item.weight, "category": item.category,
            "pitfall": item.pitfall}


def _label(name: str, rubric: JudgedRubric) -> str:
    item = rubric.items.get(name)
    return name if item is None else f"{name} ({item.criterion[:60]})"


def describe_weighted(rubric: JudgedRubric) -> str:
    """mode implicit: every criterion with its weight (a pitfall's negative), as the judge reads them."""
    lines = []
    for criterion in rubric.criteria:
        item = rubric.items.get(criterion.name)
        if item is None:
            lines.append(f"- (weight {rubric.weights[criterion.name]:g}) {criterion.description}")
        else:
            kind = "PITFALL, must not happen" if item.pitfall else (item.category or "criterion")
            lines.append(f"- [{kind}, weight {item.weight:g}] {item.criterion}")
    return "\n".join(lines)


IMPLICIT_PLACEHOLDERS = {"question", "answer", "reference", "criteria", "answer_format",
                         "question_text", "answer_text"}
IMPLICIT_FORMAT = '{"rationale": "<two or three sentences>", "score": <an integer 1-10>}'
