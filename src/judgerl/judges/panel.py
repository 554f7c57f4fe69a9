"""A panel of judges (type `panel`): several judges, each on its own backend or model, combined.

Why: one judge model is one set of biases. A panel of smaller judges from different families agrees
with people better than one large judge, at a fraction of the cost (PoLL, arXiv 2404.18796). And
when the judges of a panel disagree, the reward is least trustworthy: the panel then abstains (the
rollout is unscored, `panel_disagreement`) instead of averaging the disagreement away.

Each member is an ordinary judge config (rubric, itemized_rubric, group, pairwise) with its own
`backend`; its name in the journal, the accounting and its requests' tag is `<panel>/<member>`.
The members of one judgment run concurrently (asyncio.gather) through the one `ModelRuntime`, so
each backend keeps its own concurrency, RPM/TPM limits, retries, breaker and cache.

For one rollout, the members that answered give values v_1..v_n in [0, 1] (a member that failed,
or raised, is unscored and counts against the quorum). Then, in this order:

1. quorum: n < `quorum` (default: a majority of the members, floor(m/2) + 1) -> unscored
   `panel_quorum: ...` with every member's reason;
2. abstention: `abstain_if.spread_above` s and spread = max(v) - min(v) > s, or
   `abstain_if.stdev_above` d and the population standard deviation of v > d -> unscored
   `panel_disagreement: ...`, every member's score in `Score.details["members"]`;
3. combine: `mean` = sum(v) / n; `median` = the middle value (the mean of the two middle ones
   for even n); `min` = min(v) (the strictest member decides); `majority` = the share of votes
   for pass, where a member votes pass when v_i >= `pass_threshold` (default 0.5): 2 of 3 members
   passing gives 0.667 (a graded reward: GRPO reads differences), `details["majority"]` says which
   side won (pass / fail / tie).

A pairwise panel (every member a pairwise judge, all with the same `mode`) combines each
comparison's P(a better) the same way (`prob_a`, or 1 / 0.5 / 0 for a verdict a / tie / b; for
`majority` each member's verdict is its vote: a = 1, tie = 0.5, b = 0); its winner is a above
0.5 + `tie_margin`, b below 0.5 - `tie_margin`, else a tie. `min` is refused for pairwise panels
(it is not symmetric in a and b). Its `score_group` combines the members' own per-rollout
scores (win rates in round robin, P(better) against the reference or baseline) by the same rules.

A member's `FatalBackendError` (a bad key, an unknown model) still stops the run, as for any
judge: a misconfigured member must not silently shrink the panel for a whole run.

The journal gets every member's judgment as usual (under `<panel>/<member>`) and one combined
entry per rollout (`judge_kind: panel`, `scores.value`, `scores.members`, `inputs`), which is what
`judgerl distill` reads when the panel is the teacher.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from judgerl.config import JudgeConfig, parse_model
from judgerl.errors import ConfigError, FatalBackendError
from judgerl.judges.base import ComparingJudge, Judge, PointwiseJudge
from judgerl.judges.calling import judgment_inputs
from judgerl.judges.group import GroupJudge
from judgerl.judges.itemized import ItemizedRubricJudge
from judgerl.judges.options import parse_options
from judgerl.judges.pairwise import PairwiseJudge
from judgerl.judges.rubric import RubricJudge
from judgerl.types import Rollout, Sample, Score, Verdict, Winner

if TYPE_CHECKING:
    from judgerl.backends.base import CompletionRequest
    from judgerl.runtime.model_runtime import ModelRuntime

Combine = Literal["mean", "median", "majority", "min"]
_WINNER_VALUE = {"a": 1.0, "tie": 0.5, "b": 0.0}
#: the member names a panel refuses: they would read as paths in the journal's `<panel>/<member>`
_MEMBER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_\-.]*$"


class AbstainIf(BaseModel):
    """When the members disagree too much to give a reward: either rule (or both) may be set."""

    model_config = ConfigDict(extra="forbid")

    spread_above: float | None = Field(default=None, ge=0, le=1, description="abstain when max - min "
                                       "of the members' values is above this")
    stdev_above: float | None = Field(default=None, ge=0, le=0.5, description="abstain when the "
                                      "population standard deviation of the members' values is above this")


class PanelOptions(BaseModel):
    """Options of `type: panel`."""

    model_config = ConfigDict(extra="forbid")

    members: list[dict[str, Any]] = Field(min_length=1, description="the judges of the panel: each a "
                                          "judge config with its own `backend`")
    combine: Combine = Field(default="mean", description="mean | median | majority | min")
    quorum: int | None = Field(default=None, ge=1, description="members that must answer (default: a "
                               "majority, floor(m/2) + 1)")
    abstain_if: AbstainIf | None = Field(default=None, description="unscored panel_disagreement when "
                                         "the members' values spread more than this")
    pass_threshold: float = Field(default=0.5, ge=0, le=1, description="majority: a member votes pass "
                                  "at or above this value")
    tie_margin: float = Field(default=0.05, ge=0, lt=0.5, description="pairwise panels: |P(a better) - "
                              "0.5| within this is a tie")
    description: str | None = Field(default=None, min_length=1, description="what the panel judges, in "
                                    "one sentence (the criterion of a student distilled from it)")

    @field_validator("quorum")
    @classmethod
    def _quorum_fits(cls, quorum: int | None, info: ValidationInfo) -> int | None:
        members = info.data.get("members") or []
        if quorum is not None and quorum > len(members):
            raise ValueError(f"quorum {quorum} is more than the {len(members)} members")
        return quorum

    @property
    def needed(self) -> int:
        """The quorum in force (the configured one, else a majority of the members)."""
        return self.quorum if self.quorum is not None else len(self.members) // 2 + 1


def spread(values: list[float]) -> float:
    """max - min of the members' values (0 for one value).

    >>> spread([0.9, 0.1, 0.5])
    0.8
    """
    return max(values) - min(values) if values else 0.0


def combine_values(values: list[float], rule: Combine, *, pass_threshold: float = 0.5,
                   votes: list[float] | None = None) -> float:
    """The panel's value from its answering members' values (see the module docstring).

    `votes` (pairwise panels, rule majority): each member's vote (a = 1, tie = 0.5, b = 0) in place of
    the pass / fail vote read from its value.

    >>> values = [0.9, 0.6, 0.2]
    >>> [round(combine_values(values, rule), 4) for rule in ("mean", "median", "min", "majority")]
    [0.5667, 0.6, 0.2, 0.6667]
    >>> combine_values([0.9, 0.2], "median"), combine_values([0.7, 0.4], "majority")
    (0.55, 0.5)
    """
    if not values:
        raise ValueError("no member value to combine")
    if rule == "mean":
        return sum(values) / len(values)
    if rule == "median":
        return float(statistics.median(values))
    if rule == "min":
        return min(values)
    cast = votes if votes is not None else [1.0 if value >= pass_threshold else 0.0 for value in values]
    return sum(cast) / len(cast)


class MemberRuntime:
    """The panel's `ModelRuntime` as one member sees it: every request it makes carries the member's
    `cache_scope` (`<panel>/<member>`), so two members never share a cache entry or an in-flight
    call, even on backends with the same model name asked the same question. Everything else (limits,
    retries, breaker, journal, accounting) is the one runtime's."""

    def __init__(self, runtime: ModelRuntime, scope: str) -> None:
        self._runtime = runtime
        self.scope = scope

    async def complete(self, backend_name: str, request: CompletionRequest, **options: Any) -> Any:
        return await self._runtime.complete(backend_name, replace(request, cache_scope=self.scope), **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


def _member_detail(score: Score) -> dict[str, Any]:
    detail: dict[str, Any] = {"value": score.value, "status": score.status}
    if score.reason:
        detail["reason"] = score.reason
    if score.rationale:
        detail["rationale"] = score.rationale
    return detail


#: the judge types a panel's member may have: every type of the registry (judges/__init__.py, which
#: adds `panel` to these) but a panel
MEMBER_TYPES: dict[str, type[Judge]] = {
    "rubric": RubricJudge,
    "pairwise": PairwiseJudge,
    "group": GroupJudge,
    "itemized_rubric": ItemizedRubricJudge,
}


def panel_shape(config: JudgeConfig) -> str:
    """pointwise | pairwise | group: what a panel with these members is, from their types (before
    any is built); a bad member list is a ConfigError naming `judges.<panel>.members...`."""
    members = config.options.get("members")
    prefix = f"judges.{config.name}.members"
    unknown = sorted(set(config.options) - set(PanelOptions.model_fields))
    if unknown:  # first: a misspelt `members` would read as "no members"
        raise ConfigError(f"unknown option for a panel; known: {sorted(PanelOptions.model_fields)}",
                          field=f"judges.{config.name}.{unknown[0]}")
    if not isinstance(members, list) or not members:
        raise ConfigError("a panel needs a non-empty list of member judges", field=prefix)
    known = MEMBER_TYPES
    classes = []
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            raise ConfigError("each member is a judge config (a mapping)", field=f"{prefix}.{index}")
        member_type = member.get("type")
        if member_type == "panel":
            raise ConfigError("a panel's member cannot itself be a panel", field=f"{prefix}.{index}.type")
        if member_type not in known:
            raise ConfigError(f"unknown judge type {member_type!r}; known: {sorted(known)}",
                              field=f"{prefix}.{index}.type")
        classes.append(known[member_type])
    comparing = [issubclass(judge_class, ComparingJudge) for judge_class in classes]
    if all(comparing):
        return "pairwise"
    if any(comparing):
        index = comparing.index(True)
        raise ConfigError("a panel's members are all pairwise judges or none is (a pairwise member's "
                          "score is a win rate, not a quality score)", field=f"{prefix}.{index}.type")
    return "pointwise" if all(issubclass(c, PointwiseJudge) for c in classes) else "group"


def member_failure(member: Judge, error: BaseException) -> str:
    """A member that raised is that member's unscored (the reason), never the panel's crash; a
    `FatalBackendError` (bad key, unknown model) and a cancellation still stop the run."""
    if isinstance(error, FatalBackendError) or not isinstance(error, Exception):
        raise error
    return f"judge_error: member '{member.name}' raised {type(error).__name__}: {str(error)[:300]}"


class PanelJudge(Judge):
    """A panel of member judges whose scores are combined, or abstained from when they disagree.

    `PanelJudge(config, runtime)` builds the shape its members call for: `PointwisePanel` (every
    member pointwise: rubric, itemized rubric), `PairwisePanel` (every member pairwise) or
    `GroupPanel` (some member is a group judge), so the validation probe asks it the questions its
    members can answer.
    """

    kind = "panel"

    def __new__(cls, config: JudgeConfig, runtime: ModelRuntime, *,
                base_dir: Path | None = None) -> PanelJudge:
        if cls is PanelJudge:
            cls = {"pointwise": PointwisePanel, "pairwise": PairwisePanel,
                   "group": GroupPanel}[panel_shape(config)]
        return super().__new__(cls)

    def __init__(self, config: JudgeConfig, runtime: ModelRuntime, *, base_dir: Path | None = None) -> None:
        super().__init__(config, runtime)
        self.backend_name = ""
        if "backend" in config.model_fields_set:
            raise ConfigError("a panel has no backend of its own; each member names its `backend`",
                              field=f"judges.{config.name}.backend")
        panel_shape(config)
        self.options = parse_options(PanelOptions, config)
        self.members: list[Judge] = []
        #: each member's short name (its key in details), in the order of `members`
        self.member_names: list[str] = []
        self._build_members(config, runtime, base_dir)
        if self.options.abstain_if is not None and self.options.abstain_if.spread_above is None \
                and self.options.abstain_if.stdev_above is None:
            raise ConfigError("abstain_if needs spread_above or stdev_above",
                              field=f"judges.{config.name}.abstain_if")

    def _build_members(self, config: JudgeConfig, runtime: ModelRuntime, base_dir: Path | None) -> None:
        seen: dict[str, int] = {}
        identities: dict[str, int] = {}
        for index, raw in enumerate(self.options.members):
            where = f"judges.{config.name}.members.{index}"
            name = raw.get("name", raw.get("backend"))
            if not isinstance(name, str) or not name:
                raise ConfigError("a member needs a `name` (or a `backend`, its default name)",
                                  field=f"{where}.name")
            if not re.match(_MEMBER_NAME, name):
                raise ConfigError(f"member name {name!r}: letters, digits, '_', '-' and '.' only",
                                  field=f"{where}.name")
            if name in seen:
                raise ConfigError(f"member name '{name}' is also the name of member {seen[name]}; each "
                                  "member needs its own name", field=f"{where}.name")
            seen[name] = index
            if "weight" in raw:
                raise ConfigError("a member has no weight of its own: the panel's `weight` is its weight "
                                  "in the reward", field=f"{where}.weight")
            if "backend" not in raw:
                raise ConfigError("each member names its own `backend`", field=f"{where}.backend")
            identity = repr(sorted((key, repr(value)) for key, value in raw.items() if key != "name"))
            sampled = raw.get("scoring", "generate") == "generate" and float(raw.get("temperature") or 0) > 0
            if identity in identities and not sampled:
                raise ConfigError(f"member {index} is the same judge as member {identities[identity]} (same "
                                  "type, backend and options, not sampled): it would answer alike; vary its "
                                  "backend, model, prompt or criteria, or sample it (temperature > 0)",
                                  field=f"{where}")
            identities[identity] = index
            full = f"{config.name}/{name}"
            member_config: JudgeConfig = parse_model(JudgeConfig, {**raw, "name": full}, prefix=where)
            if member_config.backend not in runtime.backends:
                raise ConfigError(f"backend '{member_config.backend}' is not defined (defined: "
                                  f"{sorted(runtime.backends)})", field=f"{where}.backend")
            try:
                member_class = MEMBER_TYPES[member_config.type]
                member = member_class(member_config, MemberRuntime(runtime, full),  # type: ignore[arg-type]
                                      base_dir=base_dir)  # type: ignore[call-arg]
            except ConfigError as exc:
                field = exc.field or ""
                own = f"judges.{full}"
                field = where + field[len(own):] if field.startswith(own) else f"{where}.{field}".rstrip(".")
                raise ConfigError(exc.detail, path=exc.path, field=field) from exc
            self.members.append(member)
            self.member_names.append(name)
        if isinstance(self, PairwisePanel):
            modes = [member.options.mode for member in self.members]
            for index, mode in enumerate(modes):
                if mode != modes[0]:
                    raise ConfigError(f"every pairwise member of a panel has the same `mode` (member 0: "
                                      f"{modes[0]}, this one: {mode}): their scores are combined rollout "
                                      "by rollout", field=f"judges.{config.name}.members.{index}.mode")
            if self.options.combine == "min":
                raise ConfigError("combine: min is not symmetric in a and b; a pairwise panel takes mean, "
                                  "median or majority", field=f"judges.{config.name}.combine")
        quorum = self.options.needed
        if quorum > len(self.members):  # (checked by the options too; here for the default)
            raise ConfigError(f"quorum {quorum} is more than the {len(self.members)} members",
                              field=f"judges.{config.name}.quorum")

    # -- what the pipeline asks ----------------------------------------------------------------

    def reads_trajectory(self) -> bool:
        return any(member.reads_trajectory() for member in self.members)

    def parts(self) -> list[Judge]:
        """The member judges (the dry run answers each of them by name)."""
        return list(self.members)

    def dry_run_answer(self, request: CompletionRequest) -> str:
        """The answer of the member whose request this is (requests carry the member's name as tag)."""
        for member in self.members:
            if member.name == request.tag:
                return member.dry_run_answer(request)
        raise KeyError(f"dry run: panel '{self.name}' has no member named '{request.tag}'")

    async def _members_score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[list[Score]]:
        """Every member's scores for `rollouts`, concurrently; a member that raises (other than a
        FatalBackendError) or returns the wrong number of scores is unscored for each rollout."""
        results = await asyncio.gather(*(member.score_group(sample, rollouts) for member in self.members),
                                       return_exceptions=True)
        per_member: list[list[Score]] = []
        for member, result in zip(self.members, results, strict=True):
            if isinstance(result, BaseException):
                reason = member_failure(member, result)
                result = [Score.unscored(member.name, reason) for _ in rollouts]
            elif len(result) != len(rollouts):
                reason = f"judge_error: member '{member.name}' returned {len(result)} scores for " \
                         f"{len(rollouts)} rollouts"
                result = [Score.unscored(member.name, reason) for _ in rollouts]
            per_member.append(list(result))
        return per_member

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        """One combined Score per rollout, in order; every member scores the whole group once."""
        if not rollouts:
            return []
        per_member = await self._members_score_group(sample, rollouts)
        return [self._combined_score(sample, rollout, {name: scores[index] for name, scores
                                                       in zip(self.member_names, per_member, strict=True)})
                for index, rollout in enumerate(rollouts)]

    # -- combining -----------------------------------------------------------------------------

    def decide(self, values: dict[str, float | None], reasons: dict[str, str | None],
               votes: dict[str, float] | None = None) -> tuple[float | None, str | None, dict[str, Any]]:
        """(value or None, reason, figures) for the members' values of one judgment."""
        answered = {name: value for name, value in values.items() if value is not None}
        figures: dict[str, Any] = {"combine": self.options.combine, "quorum": self.options.needed,
                                   "answered": len(answered), "members_total": len(values)}
        if len(answered) < self.options.needed:
            failed = "; ".join(f"{name}: {reasons.get(name) or 'unscored'}"
                               for name, value in values.items() if value is None)
            return None, (f"panel_quorum: {len(answered)} of {len(values)} members answered (quorum "
                          f"{self.options.needed}): {failed}"), figures
        numbers = list(answered.values())
        figures["spread"] = spread(numbers)
        figures["stdev"] = statistics.pstdev(numbers) if len(numbers) > 1 else 0.0
        rule = self.options.abstain_if
        shown = ", ".join(f"{name}={value:.3f}" for name, value in answered.items())
        if rule is not None:
            if rule.spread_above is not None and figures["spread"] > rule.spread_above:
                return None, (f"panel_disagreement: spread {figures['spread']:.3f} > {rule.spread_above:g} "
                              f"({shown})"), figures
            if rule.stdev_above is not None and figures["stdev"] > rule.stdev_above:
                return None, (f"panel_disagreement: stdev {figures['stdev']:.3f} > {rule.stdev_above:g} "
                              f"({shown})"), figures
        cast = [votes[name] for name in answered] if votes is not None else None
        value = combine_values(numbers, self.options.combine, pass_threshold=self.options.pass_threshold,
                               votes=cast)
        if self.options.combine == "majority" and cast is not None:  # pairwise: votes for a (a tie: 1/2)
            figures["votes_a"] = sum(cast)
            figures["majority"] = "a" if value > 0.5 else "b" if value < 0.5 else "tie"
        elif self.options.combine == "majority":
            figures["votes_pass"] = sum(1 for number in numbers if number >= self.options.pass_threshold)
            figures["majority"] = "pass" if value > 0.5 else "fail" if value < 0.5 else "tie"
        return min(1.0, max(0.0, value)), None, figures

    def _combined_score(self, sample: Sample, rollout: Rollout, scores: dict[str, Score]) -> Score:
        values = {name: score.value for name, score in scores.items()}
        value, reason, figures = self.decide(values, {name: score.reason for name, score in scores.items()})
        members = {name: _member_detail(score) for name, score in scores.items()}
        rationale = "\n".join(f"[{name}] {score.rationale}" for name, score in scores.items()
                              if score.rationale)
        self._record(sample, [rollout], value, reason, figures, members, rationale)
        details = {"members": members, **figures}
        if value is None:
            assert reason is not None
            return Score.unscored(self.name, reason, **details)
        return Score(self.name, value, rationale=rationale, details=details)

    def _record(self, sample: Sample, rollouts: list[Rollout], value: float | None, reason: str | None,
                figures: dict[str, Any], members: dict[str, Any], rationale: str,
                extra_scores: dict[str, Any] | None = None) -> None:
        """The combined judgment's journal entry (each member journals its own judgments)."""
        self.runtime.record({
            "time": time.time(), "judge": self.name, "judge_kind": "panel", "sample_id": sample.id,
            "rollout_ids": [rollout.id for rollout in rollouts],
            "scores": {"value": value, **(extra_scores or {}), **figures,
                       "members": {name: detail.get("value") for name, detail in members.items()}},
            "member_reasons": {name: detail["reason"] for name, detail in members.items()
                               if "reason" in detail},
            "rationale": rationale, "outcome": "ok" if value is not None else "unscored", "reason": reason,
            "calls": 0, "tokens": 0, "cached": False, "inputs": judgment_inputs(sample, rollouts)})


class PointwisePanel(PanelJudge, PointwiseJudge):
    """A panel of pointwise members: `score` asks every member about one answer."""

    async def score(self, sample: Sample, rollout: Rollout) -> Score:
        return (await self.score_group(sample, [rollout]))[0]

    async def score_group(self, sample: Sample, rollouts: list[Rollout]) -> list[Score]:
        return await PanelJudge.score_group(self, sample, rollouts)


class GroupPanel(PanelJudge):
    """A panel with a group judge among its members: only whole groups are scored."""


class PairwisePanel(PanelJudge, ComparingJudge):
    """A panel of pairwise members: `compare` combines their verdicts on one pair."""

    async def compare(self, sample: Sample, a: str, b: str) -> Verdict:
        results = await asyncio.gather(*(member.compare(sample, a, b)  # type: ignore[attr-defined]
                                         for member in self.members), return_exceptions=True)
        verdicts: dict[str, Verdict] = {}
        for name, member, result in zip(self.member_names, self.members, results, strict=True):
            if isinstance(result, BaseException):
                result = Verdict.unscored(member_failure(member, result))
            verdicts[name] = result
        values: dict[str, float | None] = {}
        votes: dict[str, float] = {}
        for name, verdict in verdicts.items():
            if verdict.winner is None:
                values[name] = None
                continue
            values[name] = verdict.prob_a if verdict.prob_a is not None else _WINNER_VALUE[verdict.winner]
            votes[name] = _WINNER_VALUE[verdict.winner]
        value, reason, figures = self.decide(values, {name: v.reason for name, v in verdicts.items()},
                                             votes=votes if self.options.combine == "majority" else None)
        members = {name: {"winner": verdict.winner, "value": values[name], "status": verdict.status,
                          **({"reason": verdict.reason} if verdict.reason else {})}
                   for name, verdict in verdicts.items()}
        rationale = "\n".join(f"[{name}] {v.rationale}" for name, v in verdicts.items() if v.rationale)
        pair = [Rollout(sample.id, a, id="a"), Rollout(sample.id, b, id="b")]
        if value is None:
            assert reason is not None
            self._record(sample, pair, None, reason, figures, members, rationale,
                         {"winner": None, "prob_a": None})
            return Verdict.unscored(reason, members=members, **figures)
        margin = self.options.tie_margin
        winner: Winner = "a" if value > 0.5 + margin else "b" if value < 0.5 - margin else "tie"
        self._record(sample, pair, value, None, figures, members, rationale,
                     {"winner": winner, "prob_a": value})
        return Verdict(winner, prob_a=value, rationale=rationale, details={"members": members, **figures})
