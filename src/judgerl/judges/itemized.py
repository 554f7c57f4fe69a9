"""The itemized rubric judge: every item of a structured answer scored on the rubric (type `itemized_rubric`).

Why: when the answer is a list (review comments on a contract, findings of an audit, extracted
claims), one overall grade hides which items are good. The contract review case study scores
each comment 1-5 on TargetDocument_Grounding, Reference_Consistency and Actionability, takes the
mean of the three per comment (Comment_Score) and the mean over comments (Aggregate_Score). This
judge does that generically: it parses the answer as JSON, takes the items at `items_path`, shows
them to the judge in ONE call (each in its own fence, under an id "c1".."cn"), and parses a
verdict per item and criterion.

Criteria use the rubric judge's format (judges/rubric.py: `kind: likert` with levels 1-5, or
`kind: check` pass/fail, with weights). Scoring:
- item value = weighted mean of its normalised criteria (level k -> (k-1)/4, pass 1, fail 0);
- Score.value = mean of the item values; `details["items"]` keeps every item's scores and
  justifications, and `details["aggregate_raw"]` the mean on the 1-5 scale when all criteria are
  Likert with equal weights (the seed's Aggregate_Score).
Parsing is strict (judges/parsing.py rules): every shown id exactly once, no other id, every
criterion present with a valid score; otherwise one re-ask, then unscored.

`scoring: logprob` (judges/logprob.py) asks one one-token question per item and criterion
instead: the expected level Σ k·P(k) of a Likert criterion, P(pass) of a check. The requests of
one answer differ only in their last lines (item, criterion), so a backend that reuses prompt
prefixes (the local one) pays for the task's documents once. No parsing can fail; a call that
fails, or a judge with no probability on the verdict tokens, leaves the answer unscored. There
is no written justification in this mode (use `generate` where per-dimension justifications
are wanted).

Edge rules, decided without a judge call: an empty answer gets `empty_answer_score`; an answer
that is not JSON or has no items at `items_path` gets `no_items_score` (default 0: a policy
failure, not a judge failure). Items beyond `max_items` are not shown and count as 0.

Template placeholders (itemized_rubric.txt): {question} {reference} {items} {count} {ids}
{criteria} {answer_format}; {items} is required. itemized_rubric_logprob.txt: {question}
{reference} {item} {item_id} {count} {criterion} {instruction} {choices}; {item} is required.

Scope (`scope`), for agents whose rollouts are trajectories (judgerl.trajectory): `answer`
(default) shows the task and the items; `trajectory` shows, instead of the task alone, the
whole run as a fenced transcript (judges/transcript.py: every message, tool call and tool result
between markers that no part of it can close), so that each item is graded against what the
tools actually returned (template itemized_rubric_trajectory.txt: {transcript} and {items}
required, {tools} {reference} {count} {ids} {criteria} {answer_format}). The items still come
from the final answer; that answer is not repeated in the transcript (its items are shown,
each in its own fence), so the transcript ends with the last message before it, and its budget
`max_transcript_chars` follows transcript.py's rule (the task and that last message are kept
whole). A single-turn rollout is a transcript of the prompt alone. Scope `trajectory` needs
`scoring: generate`.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judgerl.backends.base import CompletionRequest
from judgerl.checks.json_items import load_items, parse_path
from judgerl.errors import JudgeParseError
from judgerl.judges.base import PointwiseJudge, TokenSet
from judgerl.judges.calling import CallLog, call_and_parse, record_judgment
from judgerl.judges.logprob import LIKERT_TOKENS, verdict_instruction, verdict_parser, verdict_tokens
from judgerl.judges.options import (
    NO_REFERENCE,
    choose_prompt,
    data_error,
    is_empty,
    labelled_reason,
    parse_options,
    question_block,
    reference_block,
)
from judgerl.judges.parsing import (
    CriterionResult,
    CriterionSpec,
    criteria_schema,
    find_last_json_object,
    match_ids,
    parse_rubric,
    validate_answer,
)
from judgerl.judges.rubric import CriteriaOptions, Criterion, describe_criteria
from judgerl.judges.templates import fence
from judgerl.judges.transcript import Transcript, render_transcript, tools_block, trajectory_of
from judgerl.types import Rollout, Sample, Score

if TYPE_CHECKING:
    from judgerl.config import JudgeConfig
    from judgerl.runtime.model_runtime import ModelRuntime

PLACEHOLDERS = {"question", "reference", "items", "count", "ids", "criteria", "answer_format"}
LOGPROB_PLACEHOLDERS = {"question", "reference", "item", "item_id", "count", "criterion", "instruction",
                        "choices"}
TRAJECTORY_PLACEHOLDERS = {"transcript", "tools", "reference", "items", "count", "ids", "criteria",
                           "answer_format"}


class ItemizedOptions(CriteriaOptions):
    """Options of `type: itemized_rubric`; `criteria` (the rubric) is applied to every item."""

    items_path: str = Field(default="comments", description="where the items are in the JSON answer "
                            "(comments, or [*] for a top-level list)")
    item_fields: list[str] | None = Field(default=None, description="fields of each item shown to the "
                                          "judge (default: the whole item)")
    use_reference: bool = Field(default=False, description="show the sample's reference answer; a sample "
                                "without one is unscored")
    allow_fence: bool = Field(default=True, description="accept an answer that is one ```json block")
    no_items_score: float = Field(default=0.0, ge=0, le=1, description="score, without a call, of an "
                                  "answer that is not JSON or has no items")
    max_items: int = Field(default=20, ge=1, description="items shown to the judge; the rest count as 0")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of the judgment")
    scope: Literal["answer", "trajectory"] = Field(
        default="answer", description="what the judge sees besides the items: the task, or the whole "
        "trajectory as a fenced transcript")
    max_transcript_chars: int = Field(default=24_000, ge=500, description="scope trajectory: the "
                                      "transcript's budget in characters")

    @model_validator(mode="after")
    def _transcripts_are_generated(self) -> ItemizedOptions:
        if self.scope == "trajectory" and self.scoring != "generate":
            raise ValueError("scope 'trajectory' needs scoring: generate (logprob scoring asks one "
                             "item at a time)")
        return self

    @field_validator("items_path")
    @classmethod
    def _valid_path(cls, path: str) -> str:
        parse_path(path)  # a ValueError names the bad character
        return path


def item_ids(count: int) -> list[str]:
    """The ids items are shown under.

    >>> item_ids(3)
    ['c1', 'c2', 'c3']
    """
    return [f"c{index + 1}" for index in range(count)]


def answer_format(ids: list[str], criteria: list[Criterion]) -> str:
    """The JSON shape the judge must answer with, spelled out for these ids and criteria.

    >>> print(answer_format(["c1"], [Criterion(name="useful", description="Is it useful?")]))
    {"items": [
      {"id": "c1", "criteria": {"useful": {"rationale": "<one sentence>", "score": <true or false>}}}
    ]}
    """
    def entry(item: str) -> str:
        fields = ", ".join(
            f'"{criterion.name}": {{"rationale": "<one sentence>", "score": '
            f'<{"true or false" if criterion.kind == "check" else "an integer 1-5"}>}}'
            for criterion in criteria)
        return f'  {{"id": "{item}", "criteria": {{{fields}}}}}'

    return '{"items": [\n' + ",\n".join(entry(item) for item in ids) + "\n]}"


def itemized_schema(ids: list[str], specs: list[CriterionSpec]) -> dict[str, Any]:
    """The JSON Schema of the answer `parse_itemized` accepts: one entry per shown id, each with
    exactly the configured criteria (that each id comes once is the parser's check).

    >>> schema = itemized_schema(["c1", "c2"], [CriterionSpec("useful", "check")])
    >>> schema["properties"]["items"]["items"]["properties"]["id"]
    {'type': 'string', 'enum': ['c1', 'c2']}
    """
    entry = {"type": "object", "properties": {"id": {"type": "string", "enum": list(ids)},
                                              "criteria": criteria_schema(specs)},
             "required": ["id", "criteria"], "additionalProperties": False}
    return {"type": "object", "properties": {"items": {"type": "array", "items": entry, "minItems": len(ids),
                                                       "maxItems": len(ids)}},
            "required": ["items"], "additionalProperties": False}


class _ItemEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    criteria: dict[str, Any]


class _ItemizedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[_ItemEntry]


def parse_itemized(text: str, ids: list[str], specs: list[CriterionSpec],
                   ) -> dict[str, dict[str, CriterionResult]]:
    """Parse `{"items": [{"id": "c1", "criteria": {"<name>": {"score": ..., "rationale": ...}}}]}`.

    Matched by id, never by position: every id exactly once, no unknown id; each entry's criteria
    follow the rubric parser's rules (exactly the configured criteria, booleans for checks,
    integers 1..5 for Likert).

    >>> specs = [CriterionSpec("grounded", "likert")]
    >>> answer = ('{"items": [{"id": "c2", "criteria": {"grounded": {"score": 1}}},'
    ...           ' {"id": "c1", "criteria": {"grounded": {"score": 5, "rationale": "exact quote"}}}]}')
    >>> {key: result["grounded"].value for key, result in parse_itemized(answer, ["c1", "c2"], specs).items()}
    {'c1': 1.0, 'c2': 0.0}
    >>> parse_itemized('{"items": [{"id": "c1", "criteria": {"grounded": {"score": 6}}}]}', ["c1"], specs)
    Traceback (most recent call last):
    ...
    judgerl.errors.JudgeParseError: item 'c1': criterion 'grounded' score: Input should be less than or \
equal to 5 (score must be an integer from 1 to 5)
    """
    answer: _ItemizedModel = validate_answer(_ItemizedModel, find_last_json_object(text))
    seen = match_ids(answer.items, ids)
    results = {}
    for item in ids:
        try:
            results[item] = parse_rubric(json.dumps({"criteria": seen[item].criteria}), specs)
        except JudgeParseError as exc:
            raise JudgeParseError(f"item '{item}': {exc}") from None
    return results


def _shown_score(score: bool | float) -> str:
    """A verdict as the rationale line shows it: levels as integers, expectations to 2 places."""
    return f"{score:.2f}" if isinstance(score, float) else str(score)


class ItemizedRubricJudge(PointwiseJudge):
    """Scores every item of a JSON answer on the rubric, in one call per answer."""

    kind = "itemized_rubric"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.options = parse_options(ItemizedOptions, config)
        field = f"judges.{config.name}.prompt_file"
        if self.options.scope == "trajectory":
            self.prompt = choose_prompt(self.options.prompt_file, "itemized_rubric_trajectory", base_dir)
            self.prompt.check_placeholders(TRAJECTORY_PLACEHOLDERS, {"transcript", "items"}, field=field)
        elif self.options.scoring == "generate":
            self.prompt = choose_prompt(self.options.prompt_file, "itemized_rubric", base_dir)
            self.prompt.check_placeholders(PLACEHOLDERS, {"items"}, field=field)
        else:
            self.prompt = choose_prompt(self.options.prompt_file, "itemized_rubric_logprob", base_dir)
            self.prompt.check_placeholders(LOGPROB_PLACEHOLDERS, {"item"}, field=field)
        self.specs = [CriterionSpec(criterion.name, criterion.kind) for criterion in self.options.criteria]
        self.weights = {criterion.name: criterion.weight for criterion in self.options.criteria}

    def reads_trajectory(self) -> bool:
        return self.options.scope == "trajectory"

    # -- rendering -------------------------------------------------------------------------

    def _show(self, item: Any) -> str:
        fields = self.options.item_fields
        if fields is not None and isinstance(item, dict):
            item = {field: item[field] for field in fields if field in item}
        return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, indent=1)

    def transcript(self, sample: Sample, rollout: Rollout) -> Transcript:
        """The run up to the final answer (whose items are shown on their own), fenced."""
        trajectory = trajectory_of(rollout)
        if trajectory and trajectory[-1]["role"] == "assistant" and not trajectory[-1].get("tool_calls"):
            trajectory = trajectory[:-1]
        if not sample.messages and not trajectory:
            return Transcript(text="(no messages before the final answer)", messages=0, omitted=0)
        return render_transcript(sample, trajectory, max_chars=self.options.max_transcript_chars)

    def request(self, sample: Sample, items: list[Any], rollout: Rollout | None = None,
                ) -> tuple[CompletionRequest, list[str]]:
        """The one call for these items; scope trajectory needs the `rollout` (its transcript)."""
        ids = item_ids(len(items))
        shown = "\n\n".join(f"Item {item_id}:\n{fence(self._show(item), 'ITEM_' + item_id.upper())}"
                            for item_id, item in zip(ids, items, strict=True))
        reference = sample.reference if self.options.use_reference else None
        values = {"reference": reference_block(reference),
                  "items": shown, "count": str(len(ids)), "ids": ", ".join(ids),
                  "criteria": describe_criteria(self.options.criteria),
                  "answer_format": answer_format(ids, self.options.criteria)}
        if self.options.scope == "trajectory":
            if rollout is None:
                raise ValueError("scope trajectory: request() needs the rollout")
            values |= {"transcript": self.transcript(sample, rollout).text, "tools": tools_block(rollout)}
        else:
            values["question"] = question_block(sample)
        request = CompletionRequest(messages=self.prompt.render(values), max_tokens=self.options.max_tokens,
                                    temperature=self.options.temperature, json_mode=True,
                                    response_schema=itemized_schema(ids, self.specs), tag=self.name)
        return request, ids

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

    def logprob_request(self, sample: Sample, item_id: str, item: Any, count: int,
                        criterion: Criterion) -> CompletionRequest:
        """One item, one criterion, one verdict token; the shared part (task, reference) comes first."""
        tokens = self.criterion_tokens(criterion)
        instruction, choices = verdict_instruction(criterion.kind, tokens, subject="item")
        reference = sample.reference if self.options.use_reference else None
        values = {"question": question_block(sample), "reference": reference_block(reference),
                  "item": fence(self._show(item), "ITEM"), "item_id": item_id, "count": str(count),
                  "criterion": describe_criteria([criterion]).removeprefix("- "),
                  "instruction": instruction, "choices": choices}
        return CompletionRequest(messages=self.prompt.render(values), max_tokens=1, temperature=0.0,
                                 logprobs=True, top_logprobs=self.options.top_logprobs,
                                 candidate_tokens=tokens, tag=self.name)

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """Every shown id (read back from the answer format) passes its checks and gets 3 on Likert."""
        ids = list(dict.fromkeys(re.findall(r'"id": "(c\d+)"', request.messages[-1]["content"])))
        criteria = {criterion.name: {"rationale": "dry run",
                                     "score": True if criterion.kind == "check" else 3}
                    for criterion in self.options.criteria}
        return json.dumps({"items": [{"id": item, "criteria": criteria} for item in ids]})

    # -- scoring ---------------------------------------------------------------------------

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        if self.options.empty_answer_score is not None and is_empty(rollout.completion):
            return self._edge(sample, rollout, self.options.empty_answer_score, "empty_answer",
                              "empty answer")
        items, problem = load_items(rollout.completion, self.options.items_path, self.options.allow_fence)
        if items is None:
            return self._edge(sample, rollout, self.options.no_items_score, "no_items",
                              f"no items to judge: {problem}")
        if not items:
            return self._edge(sample, rollout, self.options.no_items_score, "no_items",
                              f"no items at {self.options.items_path}")
        if self.options.use_reference and sample.reference is None:
            return self._unscored(sample, rollout, CallLog(),
                                  data_error(sample, rollout, "reference", NO_REFERENCE))
        shown = items[: self.options.max_items]
        if self.options.scoring == "logprob":
            return await self._score_logprob(sample, rollout, shown, total=len(items))
        request, ids = self.request(sample, shown, rollout)
        outcome = await call_and_parse(self.runtime, self.backend_name, request,
                                       lambda completion: parse_itemized(completion.text, ids, self.specs))
        if outcome.value is None:
            return self._unscored(sample, rollout, outcome.log, outcome.reason or "unscored")
        return self._scored(sample, rollout, outcome.log, ids, outcome.value, total=len(items))

    async def _score_logprob(self, sample: Sample, rollout: Rollout, shown: list[Any], *,
                             total: int) -> Score:
        ids = item_ids(len(shown))
        questions = [(item_id, item, criterion) for item_id, item in zip(ids, shown, strict=True)
                     for criterion in self.options.criteria]
        outcomes = await asyncio.gather(*(
            call_and_parse(self.runtime, self.backend_name,
                           self.logprob_request(sample, item_id, item, len(shown), criterion),
                           verdict_parser(criterion.kind, self.criterion_tokens(criterion),
                                          case_sensitive=self.options.case_sensitive_tokens), reasks=0)
            for item_id, item, criterion in questions))
        log = CallLog()
        for outcome in outcomes:
            log.merge(outcome.log)
        failures = [(f"{item_id} {criterion.name}", outcome.reason or "unscored")
                    for (item_id, _, criterion), outcome in zip(questions, outcomes, strict=True)
                    if outcome.value is None]
        if failures:
            return self._unscored(sample, rollout, log, labelled_reason(failures[:3])
                                  + (f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""))
        verdicts: dict[str, dict[str, CriterionResult]] = {item_id: {} for item_id in ids}
        for (item_id, _, criterion), outcome in zip(questions, outcomes, strict=True):
            assert outcome.value is not None
            raw, value = outcome.value
            verdicts[item_id][criterion.name] = CriterionResult(criterion.name, raw, value, "")
        return self._scored(sample, rollout, log, ids, verdicts, total=total)

    # -- results ---------------------------------------------------------------------------

    def _item_value(self, results: dict[str, CriterionResult]) -> float:
        total = sum(self.weights.values())
        return sum(self.weights[name] * result.value for name, result in results.items()) / total

    def _scored(self, sample: Sample, rollout: Rollout, log: CallLog, ids: list[str],
                verdicts: dict[str, dict[str, CriterionResult]], *, total: int) -> Score:
        per_item: dict[str, dict[str, Any]] = {}
        for index, item_id in enumerate(ids):
            results = verdicts[item_id]
            per_item[item_id] = {
                "index": index, "value": self._item_value(results),
                "criteria": {spec.name: {"kind": spec.kind, "score": results[spec.name].raw,
                                         "value": results[spec.name].value,
                                         "rationale": results[spec.name].rationale}
                             for spec in self.specs}}
        not_shown = total - len(ids)
        value = sum(item["value"] for item in per_item.values()) / total  # items not shown count as 0
        value = min(1.0, max(0.0, value))
        details: dict[str, Any] = {"items": per_item, "item_count": total, "not_shown": not_shown,
                                   "prompt_version": self.prompt.version, "scoring": self.options.scoring}
        likert = all(spec.kind == "likert" for spec in self.specs)
        if likert and len(set(self.weights.values())) == 1 and not not_shown:
            raw_means = [sum(c["score"] for c in item["criteria"].values()) / len(self.specs)
                         for item in per_item.values()]
            details["comment_scores_raw"] = raw_means
            details["aggregate_raw"] = sum(raw_means) / len(raw_means)
        rationale = "\n".join(
            f"{item_id}: " + "; ".join(f"{name} {_shown_score(c['score'])}: {c['rationale']}".rstrip(": ")
                                       for name, c in item["criteria"].items())
            for item_id, item in per_item.items())
        if not_shown:
            rationale += (f"\n{not_shown} item(s) beyond max_items={self.options.max_items} "
                          "were not judged (0)")
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="ok", reason=None,
                        scores={"value": value, "items": per_item}, rationale=rationale,
                        extra={"item_ids": ids, "item_count": total, "scoring": self.options.scoring})
        return Score(self.name, value, rationale=rationale, details=details)

    def _edge(self, sample: Sample, rollout: Rollout, value: float, rule: str, rationale: str) -> Score:
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=CallLog(), outcome="ok",
                        reason=None, scores=value, rationale=rationale, extra={"edge_rule": rule})
        return Score(self.name, value, rationale=rationale, details={"edge_rule": rule})

    def _unscored(self, sample: Sample, rollout: Rollout, log: CallLog, reason: str) -> Score:
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=[rollout.id], log=log, outcome="unscored",
                        reason=reason)
        return Score.unscored(self.name, reason, prompt_version=self.prompt.version,
                              raw_outputs=list(log.raw_outputs))
