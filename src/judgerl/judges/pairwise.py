"""The pairwise judge: which of two answers is better, asked in both orders (type `pairwise`).

Why both orders: LLM judges prefer a position (often the first answer) regardless of content.
Each comparison is asked as (a, b) and as (b, a), concurrently; after un-swapping, two verdicts
that disagree are a tie, so a judge that always says "A" gives ties, not wins. If either order
fails (a backend error, or an answer that is still malformed after one re-ask) the verdict is
unscored: half a judgment is never turned into a win.

In `scoring: logprob` mode each order is one token: P(A) / (P(A) + P(B)); the probability that
a is better is the mean of both orders (un-swapped), and the verdict is a tie within
`tie_margin` of 0.5.

Turning a group into scores (`mode`):
- `reference`: each rollout against `sample.reference` (no reference -> unscored);
- `baseline`: each rollout against `sample.metadata[baseline_field]` (e.g. the base model's
  answer; missing -> unscored);
- `round_robin`: every pair of rollouts; a rollout's score is its win rate.
A win is 1, a tie 0.5, a loss 0; in logprob mode the probability that the rollout is better is
used instead (a graded win). In round robin an unscored pair is left out of both rollouts'
rates, and a rollout with no scored pair is unscored. Identical answers tie without a call; an
empty answer (when `empty_answer_score` is set) loses to any non-empty answer without a call.

Each comparison's journal entry (`judge_kind: pairwise`) records what was judged (`inputs`: the
sample's messages and reference, the answers a and b in that order) beside `scores.prob_a`
(P(a better) after the position swap) or `scores.winner`, so `judgerl distill` can train a student
on the teacher's comparisons.

Template placeholders (pairwise.txt, pairwise_logprob.txt): {question} {answer_a} {answer_b}
{instructions} {choices}; {answer_a} and {answer_b} are required.

`scope: trajectory` compares whole runs of a tool-using agent: each rollout's answer is its
trajectory as a fenced transcript (judges/transcript.py, within `max_transcript_chars`; a
single-turn rollout is a one-message transcript), so tool calls and results are compared too and
stay data. The reference and baseline answers stay text.

How a pair is judged (`comparison`):
- `head_to_head` (default): both answers in one prompt, asked in both orders (above);
- `pointwise`: each answer is judged ALONE, once, by the rubric judge's logprob path
  (judges/rubric.py, one pass/fail criterion whose description is `instructions`, rendered with
  the rubric logprob templates, e.g. `prompt: rubric_logprob_fewshot`), giving p = P(pass); then
  P(a better) = p_a (1 - p_b) / (p_a (1 - p_b) + p_b (1 - p_a)) (`preference`: a passes and b
  fails, given that exactly one passes), a tie within `tie_margin` of 0.5. No answer is ever shown
  next to another, so the verdict cannot depend on the order (position-consistent by
  construction; both "orders" of a verdict's `by_order` are the same). Why: a small judge asked
  head to head mostly names the first answer (bench/local_judge.py). The function is increasing
  in p_a and decreasing in p_b, so a round-robin win rate ranks the group exactly as P(pass)
  does; near p = 0.5 it is about 0.5 + (p_a - p_b), where the linear 0.5 + (p_a - p_b) / 2 would
  halve the small differences a small judge gives (its P(pass) stays near 0.5). Each distinct
  answer of a group (and the reference / baseline) is scored once and cached and journaled like
  any rubric judgment (journal `judge_kind: rubric`, under this judge's name), so a round robin
  over k answers costs k calls instead of k*(k-1), reference mode k+1 instead of 2k. An answer
  whose call fails makes each of its comparisons unscored (never a made-up score). Needs
  `scoring: logprob`; `pass_token` / `fail_token` are the verdict tokens (Yes / No for the
  few-shot template).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator

from judgerl.backends.base import Completion, CompletionRequest
from judgerl.config import JudgeConfig
from judgerl.judges.base import ComparingJudge, TokenSet
from judgerl.judges.calling import CallLog, CallOutcome, call_and_parse, judgment_inputs, record_judgment
from judgerl.judges.logprob import candidate_mass, pairwise_prob_first
from judgerl.judges.options import (
    JudgeOptions,
    choose_prompt,
    data_error,
    is_empty,
    labelled_reason,
    parse_options,
    question_block,
)
from judgerl.judges.parsing import PairwiseAnswer, pairwise_schema, parse_pairwise
from judgerl.judges.rubric import LOGPROB_PLACEHOLDERS, RubricJudge
from judgerl.judges.templates import fence
from judgerl.judges.transcript import as_transcript
from judgerl.types import Rollout, Sample, Score, Verdict, Winner

if TYPE_CHECKING:
    from judgerl.runtime.model_runtime import ModelRuntime

DEFAULT_INSTRUCTIONS = ("Decide which answer responds to the question better: correct first, then "
                        "complete and faithful to what was asked, then clear and concise.")
#: comparison pointwise: the default criterion each answer is judged on alone
DEFAULT_CRITERION = ("The answer responds to the question: it is correct, complete and faithful to "
                     "what was asked.")
#: comparison pointwise: the name of the one criterion as the judge reads it
CRITERION_NAME = "good_answer"
PLACEHOLDERS = {"question", "answer_a", "answer_b", "instructions", "choices"}
_VALUE = {"a": 1.0, "tie": 0.5, "b": 0.0}


class PairwiseOptions(JudgeOptions):
    """Options of `type: pairwise` (on top of the shared ones in judges/options.py)."""

    mode: Literal["reference", "baseline", "round_robin"] = Field(default="reference")
    comparison: Literal["head_to_head", "pointwise"] = Field(
        default="head_to_head", description="head_to_head: both answers in one prompt, both orders; "
        "pointwise: each answer judged alone (P(pass) on `instructions`), the pair decided by the two "
        "probabilities")
    baseline_field: str = Field(default="baseline", description="mode baseline: metadata key")
    instructions: str | None = Field(
        default=None, min_length=1, description="what 'better' means for this task (comparison "
        "pointwise: the pass/fail criterion each answer is judged on alone)")
    pass_token: str | None = Field(default=None, min_length=1, description="comparison pointwise: "
                                   "the pass token (default PASS)")
    fail_token: str | None = Field(default=None, min_length=1, description="comparison pointwise: "
                                   "the fail token (default FAIL)")
    allow_tie: bool = Field(default=True, description="may the judge answer 'tie'")
    tie_margin: float = Field(default=0.05, ge=0, lt=0.5,
                              description="logprob mode: |P(a better) - 0.5| within this is a tie")
    scope: Literal["answer", "trajectory"] = Field(default="answer", description="compare final answers, "
                                                   "or whole trajectories as transcripts")
    max_transcript_chars: int = Field(default=24_000, ge=500, description="scope trajectory: each "
                                      "transcript's budget in characters")

    @field_validator("comparison")
    @classmethod
    def _pointwise_reads_probabilities(cls, comparison: str, info: ValidationInfo) -> str:
        if comparison == "pointwise" and info.data.get("scoring") != "logprob":
            raise ValueError("comparison: pointwise needs scoring: logprob (each answer alone is one "
                             "P(pass) read from the verdict tokens' probabilities)")
        return comparison

    @field_validator("pass_token", "fail_token")
    @classmethod
    def _tokens_only_pointwise(cls, token: str | None, info: ValidationInfo) -> str | None:
        if token is not None and info.data.get("comparison", "head_to_head") != "pointwise":
            raise ValueError("pass_token / fail_token are for comparison: pointwise (head_to_head reads "
                             "the tokens A and B)")
        return token

    @property
    def criterion(self) -> str:
        """comparison pointwise: the criterion each answer is judged on alone."""
        return self.instructions or DEFAULT_CRITERION


def _pair_inputs(sample: Sample, a: str, b: str, rollout_ids: list[str]) -> dict[str, object]:
    """What a comparison judged, for the journal: the question, the reference and both answers in
    the order a, b (the verdict's `prob_a` is P(a better) after the position swap), so the judgment
    can be replayed or distilled (`judgerl distill` of a pairwise teacher)."""
    ids = rollout_ids if len(rollout_ids) == 2 else ["a", "b"]
    return judgment_inputs(sample, [Rollout(sample.id, a, id=ids[0]), Rollout(sample.id, b, id=ids[1])])


def _unswap(answer: PairwiseAnswer, swapped: bool) -> Winner:
    if answer.winner == "tie":
        return "tie"
    first_won = answer.winner == "A"
    return ("b" if first_won else "a") if swapped else ("a" if first_won else "b")


def combine_orders(first: Winner, second: Winner) -> Winner:
    """Two un-swapped verdicts: the same winner stands; anything else is a tie.

    >>> combine_orders("a", "a"), combine_orders("a", "b"), combine_orders("a", "tie")
    ('a', 'tie', 'tie')
    """
    return first if first == second else "tie"


def preference(p_a: float, p_b: float) -> float:
    """comparison pointwise: P(a better) from each answer's P(pass), judged alone.

    P(a better) = p_a (1 - p_b) / (p_a (1 - p_b) + p_b (1 - p_a)): the chance that a passes and b
    fails, given that exactly one of them passes; equivalently sigmoid(logit p_a - logit p_b), a
    Bradley-Terry model whose strengths are the judge's log-odds of pass. 0.5 when both are equal
    (or both 0, or both 1).

    >>> round(preference(0.9, 0.3), 4), preference(0.0, 0.0), preference(0.5, 0.5), preference(1.0, 0.2)
    (0.9545, 0.5, 0.5, 1.0)
    >>> round(preference(0.55, 0.45), 3)  # near 0.5, about 0.5 + (p_a - p_b)
    0.599
    """
    a_only, b_only = p_a * (1.0 - p_b), p_b * (1.0 - p_a)
    if a_only + b_only <= 0.0:
        return 0.5
    return min(1.0, max(0.0, a_only / (a_only + b_only)))


class PairwiseJudge(ComparingJudge):
    """Compares two answers in both orders; turns a group into win rates."""

    kind = "pairwise"

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.options = parse_options(PairwiseOptions, config)
        self.rater: RubricJudge | None = None
        if self.options.comparison == "pointwise":
            self.rater = RubricJudge(self._rater_config(config), runtime, base_dir=base_dir)
            self.prompt = self.rater.prompt
            # a distilled student's template shows the answer unfenced (as the rubric judge allows)
            required = {"answer_text"} if "answer_text" in self.prompt.placeholders else {"answer"}
            self.prompt.check_placeholders(LOGPROB_PLACEHOLDERS, required,
                                           field=f"judges.{config.name}.prompt_file")
            return
        default = "pairwise" if self.options.scoring == "generate" else "pairwise_logprob"
        self.prompt = choose_prompt(self.options.prompt_file, default, base_dir)
        self.prompt.check_placeholders(PLACEHOLDERS, {"answer_a", "answer_b"},
                                       field=f"judges.{config.name}.prompt_file")

    def _rater_config(self, config: JudgeConfig) -> JudgeConfig:
        """comparison pointwise: the rubric judge (one check, logprob) that judges each answer alone.

        It has this judge's name and backend (its calls and journal entries are this judge's),
        never shows the reference (in reference mode the reference is the other answer, judged
        alone like any answer), and leaves empty answers to this judge's edge rules.
        """
        options = self.options
        return JudgeConfig(
            name=config.name, type="rubric", backend=config.backend, weight=config.weight,
            scoring="logprob", prompt_file=options.prompt_file, top_logprobs=options.top_logprobs,
            case_sensitive_tokens=options.case_sensitive_tokens, empty_answer_score=None,
            use_reference=False, pass_token=options.pass_token or "PASS",
            fail_token=options.fail_token or "FAIL",
            criteria=[{"name": CRITERION_NAME, "kind": "check", "description": options.criterion}])

    # -- one order -------------------------------------------------------------------------

    def request(self, sample: Sample, first: str, second: str) -> CompletionRequest:
        logprob = self.options.scoring == "logprob"
        choices = '"A", "B" or "tie"' if self.options.allow_tie and not logprob else '"A" or "B"'
        values = {"question": question_block(sample), "answer_a": fence(first, "ANSWER_A"),
                  "answer_b": fence(second, "ANSWER_B"),
                  "instructions": self.options.instructions or DEFAULT_INSTRUCTIONS, "choices": choices}
        messages = self.prompt.render(values)
        if logprob:
            return CompletionRequest(messages=messages, max_tokens=1, temperature=0.0, logprobs=True,
                                     top_logprobs=self.options.top_logprobs, candidate_tokens=["A", "B"],
                                     tag=self.name)
        return CompletionRequest(messages=messages, max_tokens=self.options.max_tokens,
                                 temperature=self.options.temperature, json_mode=True,
                                 response_schema=pairwise_schema(allow_tie=self.options.allow_tie),
                                 tag=self.name)

    def dry_run_answer(self, request: CompletionRequest) -> str:
        return json.dumps({"rationale": "dry run", "winner": "tie"})

    def verdict_token_sets(self) -> list[TokenSet]:
        if self.rater is not None:
            return self.rater.verdict_token_sets()
        return [TokenSet(self.name, ("A", "B"))] if self.options.scoring == "logprob" else []

    async def _one_order(self, sample: Sample, first: str, second: str) -> CallOutcome:
        request = self.request(sample, first, second)
        if self.options.scoring == "logprob":
            case_sensitive = self.options.case_sensitive_tokens

            def parse_prob(completion: Completion) -> float:
                mass = candidate_mass(completion, ["A", "B"], case_sensitive=case_sensitive)
                return pairwise_prob_first(mass)

            return await call_and_parse(self.runtime, self.backend_name, request, parse_prob, reasks=0)
        allow_tie = self.options.allow_tie
        return await call_and_parse(self.runtime, self.backend_name, request,
                                    lambda completion: parse_pairwise(completion.text, allow_tie=allow_tie))

    # -- a comparison ----------------------------------------------------------------------

    async def compare(self, sample: Sample, a: str, b: str) -> Verdict:
        return await self._compare(sample, a, b, rollout_ids=[])

    async def _compare(self, sample: Sample, a: str, b: str, *, rollout_ids: list[str],
                       rated: dict[str, Score] | None = None) -> Verdict:
        """One comparison; `rated` (comparison pointwise) holds answers already judged alone."""
        if self.rater is not None:
            if rated is None:
                ids = rollout_ids if len(rollout_ids) == 2 else ["a", "b"]
                rated = await self._rate(sample, [(ids[0], a), (ids[1], b)])
            return self._from_ratings(sample, a, b, rated[a], rated[b], rollout_ids=rollout_ids)
        forward, backward = await asyncio.gather(self._one_order(sample, a, b), self._one_order(sample, b, a))
        log = CallLog()
        log.merge(forward.log)
        log.merge(backward.log)
        failures = [(f"order {label}", outcome.reason or "unscored")
                    for label, outcome in (("a-b", forward), ("b-a", backward)) if outcome.value is None]
        if failures:
            verdict = Verdict.unscored(labelled_reason(failures), prompt_version=self.prompt.version)
        elif self.options.scoring == "logprob":
            p_forward, p_backward = forward.value, 1.0 - backward.value
            prob_a = (p_forward + p_backward) / 2
            margin = self.options.tie_margin
            winner: Winner = "a" if prob_a > 0.5 + margin else "b" if prob_a < 0.5 - margin else "tie"
            verdict = Verdict(winner, prob_a=prob_a, details={
                "prob_a_by_order": [p_forward, p_backward], "prompt_version": self.prompt.version})
        else:
            first, second = _unswap(forward.value, False), _unswap(backward.value, True)
            winner = combine_orders(first, second)
            rationale = f"order a-b: {forward.value.rationale}\norder b-a: {backward.value.rationale}"
            verdict = Verdict(winner, rationale=rationale, details={
                "by_order": [first, second], "position_consistent": first == second,
                "prompt_version": self.prompt.version})
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=rollout_ids, log=log,
                        outcome="ok" if verdict.status == "ok" else "unscored", reason=verdict.reason,
                        scores={"winner": verdict.winner, "prob_a": verdict.prob_a, **{
                            key: value for key, value in verdict.details.items() if key != "prompt_version"}},
                        rationale=verdict.rationale, extra={"scoring": self.options.scoring},
                        inputs=_pair_inputs(sample, a, b, rollout_ids))
        return verdict

    # -- comparison pointwise: each answer alone ---------------------------------------------

    async def _rate(self, sample: Sample, answers: list[tuple[str, str]]) -> dict[str, Score]:
        """Judge each distinct answer text alone, once: text -> its Score (value P(pass) or unscored).

        `answers` are (rollout id, text) pairs; an answer that occurs twice is judged once (the
        first id names it in the journal). The rubric judge's `score_group` makes a failure that
        answer's alone (unscored, with the reason)."""
        assert self.rater is not None
        distinct: dict[str, str] = {}
        for rollout_id, text in answers:
            distinct.setdefault(text, rollout_id)
        rollouts = [Rollout(sample.id, text, id=rollout_id) for text, rollout_id in distinct.items()]
        scores = await self.rater.score_group(sample, rollouts)
        return dict(zip(distinct, scores, strict=True))

    def _from_ratings(self, sample: Sample, a: str, b: str, rating_a: Score, rating_b: Score, *,
                      rollout_ids: list[str]) -> Verdict:
        """The verdict from two answers judged alone: P(a better) = preference(p_a, p_b)."""
        failures = [f"answer {label}: {rating.reason or 'unscored'}"
                    for label, rating in (("a", rating_a), ("b", rating_b)) if rating.value is None]
        if failures:
            verdict = Verdict.unscored("; ".join(failures), prompt_version=self.prompt.version)
        else:
            assert rating_a.value is not None and rating_b.value is not None
            prob_a = preference(rating_a.value, rating_b.value)
            margin = self.options.tie_margin
            winner: Winner = "a" if prob_a > 0.5 + margin else "b" if prob_a < 0.5 - margin else "tie"
            # judged alone, the verdict is the same whichever answer would have been shown first
            verdict = Verdict(winner, prob_a=prob_a, details={
                "comparison": "pointwise", "p_pass": [rating_a.value, rating_b.value],
                "by_order": [winner, winner], "position_consistent": True,
                "prompt_version": self.prompt.version})
        record_judgment(self.runtime, judge=self.name, kind=self.kind, prompt=self.prompt,
                        sample_id=sample.id, rollout_ids=rollout_ids, log=CallLog(),
                        outcome="ok" if verdict.status == "ok" else "unscored", reason=verdict.reason,
                        scores={"winner": verdict.winner, "prob_a": verdict.prob_a, **{
                            key: value for key, value in verdict.details.items() if key != "prompt_version"}},
                        extra={"scoring": self.options.scoring, "comparison": "pointwise"},
                        inputs=_pair_inputs(sample, a, b, rollout_ids))
        return verdict

    # -- a group ---------------------------------------------------------------------------

    def _empty(self, text: str) -> bool:
        return self.options.empty_answer_score is not None and is_empty(text)

    async def _versus(self, sample: Sample, rollout: Rollout, other: str, other_id: str,
                      rated: dict[str, Score] | None = None) -> Score:
        """One rollout against a fixed answer (the reference or a baseline)."""
        if self._empty(rollout.completion):
            assert self.options.empty_answer_score is not None
            return Score(self.name, self.options.empty_answer_score, rationale="empty answer",
                         details={"edge_rule": "empty_answer"})
        verdict = await self._compare(sample, rollout.completion, other, rollout_ids=[rollout.id, other_id],
                                      rated=rated)
        return self._verdict_score(verdict)

    def _verdict_score(self, verdict: Verdict) -> Score:
        if verdict.winner is None:
            return Score.unscored(self.name, verdict.reason or "unscored", **verdict.details)
        value = verdict.prob_a if verdict.prob_a is not None else _VALUE[verdict.winner]
        return Score(self.name, value, rationale=verdict.rationale,
                     details={"winner": verdict.winner, **verdict.details})

    def reads_trajectory(self) -> bool:
        return self.options.scope == "trajectory"

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        if self.options.scope == "trajectory":
            rollouts = [as_transcript(rollout, self.options.max_transcript_chars) for rollout in rollouts]
        mode = self.options.mode
        if mode == "round_robin":
            return await self._round_robin(sample, rollouts)
        if mode == "reference":
            other, other_id, field = sample.reference, "reference", "reference"
            missing = "no reference answer to compare with (mode: reference)"
        else:
            field = self.options.baseline_field
            value = sample.metadata.get(field)
            other, other_id = (value if isinstance(value, str) else None), f"baseline:{field}"
            missing = ("no baseline answer to compare with (mode: baseline): "
                       + ("missing" if value is None else f"expected a string, got {type(value).__name__}"))
        if other is None:
            return [Score.unscored(self.name, data_error(sample, rollout, field, missing))
                    for rollout in rollouts]
        rated = None
        if self.rater is not None:  # the fixed answer is judged once, not once per rollout
            judged = [(rollout.id, rollout.completion) for rollout in rollouts
                      if not self._empty(rollout.completion)]
            rated = await self._rate(sample, [*judged, (other_id, other)]) if judged else {}
        return list(await asyncio.gather(*(self._versus(sample, rollout, other, other_id, rated)
                                           for rollout in rollouts)))

    async def _pair(self, sample: Sample, first: Rollout, second: Rollout,
                    rated: dict[str, Score] | None = None) -> Verdict:
        empty_first, empty_second = self._empty(first.completion), self._empty(second.completion)
        if empty_first or empty_second:
            winner: Winner = "tie" if empty_first and empty_second else ("b" if empty_first else "a")
            return Verdict(winner, details={"edge_rule": "empty_answer"})
        if first.completion == second.completion:
            return Verdict("tie", details={"edge_rule": "identical_answers"})
        return await self._compare(sample, first.completion, second.completion,
                                   rollout_ids=[first.id, second.id], rated=rated)

    async def _round_robin(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        if len(rollouts) < 2:
            return [Score.unscored(self.name, "round_robin needs at least 2 rollouts") for _ in rollouts]
        pairs = list(itertools.combinations(range(len(rollouts)), 2))
        rated = None
        if self.rater is not None:  # k answers -> k calls (each judged alone, once), not k*(k-1)
            rated = await self._rate(sample, [(rollout.id, rollout.completion) for rollout in rollouts
                                              if not self._empty(rollout.completion)])
        verdicts = await asyncio.gather(*(self._pair(sample, rollouts[i], rollouts[j], rated)
                                          for i, j in pairs))
        results: list[list[float]] = [[] for _ in rollouts]
        reasons: list[list[str]] = [[] for _ in rollouts]
        for (i, j), verdict in zip(pairs, verdicts, strict=True):
            if verdict.winner is None:
                reasons[i].append(verdict.reason or "unscored")
                reasons[j].append(verdict.reason or "unscored")
                continue
            value = verdict.prob_a if verdict.prob_a is not None else _VALUE[verdict.winner]
            results[i].append(value)
            results[j].append(1.0 - value)
        scores = []
        for index, rollout in enumerate(rollouts):
            if self._empty(rollout.completion):
                assert self.options.empty_answer_score is not None
                scores.append(Score(self.name, self.options.empty_answer_score, rationale="empty answer",
                                    details={"edge_rule": "empty_answer"}))
            elif not results[index]:
                reason = "no scored comparison: " + "; ".join(reasons[index][:3])
                scores.append(Score.unscored(self.name, reason, unscored_pairs=len(reasons[index])))
            else:
                rate = sum(results[index]) / len(results[index])
                details: dict[str, object] = {"win_rate": rate, "comparisons": len(results[index]),
                                              "unscored_pairs": len(reasons[index])}
                if rated is not None:
                    details["p_pass"] = rated[rollout.completion].value
                scores.append(Score(self.name, min(1.0, max(0.0, rate)),
                                    rationale=f"win rate {rate:.2f} over {len(results[index])} comparisons",
                                    details=details))
        return scores
