"""Training rows for a distilled judge: (the prompt the student will see, the teacher's verdict).

Why a module of its own: the student must be trained on exactly the prompt it will be asked at
scoring time, so the prompt is not copied from the teacher's journal (the teacher may have used
another template or `scoring: generate`) but rendered by the student's own rubric judge
(`scoring: logprob`, one request per criterion) from what was judged: the question, the reference
and the answer, which the journal records as `inputs`. The teacher's verdict per criterion becomes
the target: P(pass) for a check (a soft target; 0/1 for hard targets), the level for a Likert one.

A pairwise teacher (which of two answers is better) gives `JudgedPair`s: the question, both
answers in the order shown and the teacher's P(a better) after its position swap (1 / 0.5 / 0 for a
verdict without probabilities: a win, a tie, a loss), from the journal's `judge_kind: pairwise`
entries or from a pairwise labelled file (`judgerl validate`'s format: prompt, answer_a, answer_b,
label). The student for such a teacher scores each answer alone (student.py).

A panel teacher (judges/panel.py) gives its combined value per rollout as P(pass) on one check named
after the panel; the rollouts it abstained on (`panel_disagreement`) or could not score
(`panel_quorum`) are left out and counted.

The held-out split is by sample id, never by rollout or criterion: every answer to one question and
every criterion of it falls on one side, so the agreement measured on held-out rows is agreement on
questions the student never saw.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from judgerl.errors import DataError
from judgerl.runtime.journal import read_journal
from judgerl.types import Rollout, Sample
from judgerl.validate.datasets import AnswerItem, PairItem, load_labelled_file

Kind = Literal["check", "likert"]
_WINNER = {"a": 1.0, "tie": 0.5, "b": 0.0}


@dataclass(frozen=True)
class TeacherCost:
    """What one journaled judgment cost the teacher: seconds at its endpoint, tokens, the model
    that answered and USD (at the run's configured prices); None where the journal does not say."""

    latency_s: float | None = None
    tokens: int | None = None
    model: str | None = None
    cost_usd: float | None = None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> TeacherCost:
        model = entry.get("model")
        return cls(teacher_seconds(entry), int(entry.get("tokens") or 0),
                   model if isinstance(model, str) else None, _number(entry.get("cost_usd")))


@dataclass(frozen=True)
class Judged:
    """One answer the teacher judged on one criterion, and its verdict."""

    sample: Sample
    rollout: Rollout
    criterion: str
    kind: Kind
    #: check: P(pass) in [0, 1]; likert: the level, 1..5 (a float when it was an expectation)
    verdict: float
    #: what the whole judgment (all criteria) cost the teacher, for the savings
    teacher: TeacherCost = TeacherCost()


@dataclass(frozen=True)
class JudgedPair:
    """Two answers to one question the teacher compared, and its P(a better) (0.5: a tie)."""

    sample: Sample
    a: Rollout
    b: Rollout
    #: P(a better) in [0, 1] after the teacher's position swap; 1 / 0.5 / 0 for win / tie / loss
    verdict: float
    teacher: TeacherCost = TeacherCost()

    def swapped(self) -> JudgedPair:
        """The same comparison with the answers the other way round (the verdict follows).

        >>> pair = JudgedPair(Sample("s", []), Rollout("s", "x", id="1"), Rollout("s", "y", id="2"), 0.75)
        >>> swapped = pair.swapped(); (swapped.a.id, swapped.verdict)
        ('2', 0.25)
        """
        return JudgedPair(self.sample, self.b, self.a, 1.0 - self.verdict, self.teacher)


def journal_judge_names(path: str | Path) -> dict[str, set[str]]:
    """Judge name -> the kinds of judgment (rubric, pairwise, panel) the journal holds for it.

    A panel's members (`<panel>/<member>`) are left out when their panel is in the journal: the
    panel is the teacher a user means when the journal holds one panel and nothing else."""
    names: dict[str, set[str]] = {}
    for entry in read_journal(path):
        if entry.get("judge_kind") in ("rubric", "pairwise", "panel"):
            names.setdefault(str(entry.get("judge")), set()).add(str(entry["judge_kind"]))
    panels = {name for name, kinds in names.items() if "panel" in kinds}
    return {name: kinds for name, kinds in names.items()
            if name in panels or name.split("/", 1)[0] not in panels}


@dataclass(frozen=True)
class PanelVerdicts:
    """A panel teacher's combined verdicts (one `Judged` per scored rollout, on the one check named
    after the panel) and how many of its judgments were left out, by reason (panel_disagreement,
    panel_quorum, ...): an abstention is not a verdict to learn from."""

    judged: list[Judged]
    left_out: dict[str, int]


def judged_from_panel_journal(path: str | Path, *, judge: str) -> PanelVerdicts:
    """The combined judgments of panel `judge` in a journal (`judge_kind: panel`), each as the
    verdict P(pass) = the panel's value on the one check `judge`; unscored ones are counted by the
    reason's first word. A judgment's cost is the sum of its members' journaled judgments of the same
    rollout (`<panel>/<member>`): what the panel cost the endpoints."""
    entries = read_journal(path)
    members: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in entries:
        if str(entry.get("judge", "")).startswith(judge + "/") and len(entry.get("rollout_ids") or []) == 1:
            members.setdefault((str(entry.get("sample_id")), str(entry["rollout_ids"][0])), []).append(entry)
    chosen = [entry for entry in entries
              if entry.get("judge_kind") == "panel" and entry.get("judge") == judge]
    if not chosen:
        raise DataError(f"no judgment of panel '{judge}' in the journal", path=str(path))
    judged: list[Judged] = []
    left_out: dict[str, int] = {}
    for number, entry in enumerate(chosen, start=1):
        value = (entry.get("scores") or {}).get("value")
        if entry.get("outcome") != "ok" or not isinstance(value, (int, float)):
            reason = str(entry.get("reason") or "unscored").split(":", 1)[0]
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        inputs = entry.get("inputs")
        if not isinstance(inputs, dict) or len(inputs.get("answers") or []) != 1:
            raise DataError(f"panel judgment {number} of '{judge}' has no `inputs` of one answer (a pairwise "
                            "panel's comparisons cannot be distilled yet)", path=str(path))
        sample = Sample(id=str(entry["sample_id"]), messages=list(inputs.get("messages") or []),
                        reference=inputs.get("reference"))
        rollout_id = str((entry.get("rollout_ids") or [""])[0])
        rollout = Rollout(sample_id=sample.id, completion=str(inputs["answers"][0]), id=rollout_id)
        costs = [TeacherCost.of(member) for member in members.get((sample.id, rollout_id), [])]
        seconds = [cost.latency_s for cost in costs if cost.latency_s is not None]
        prices = [cost.cost_usd for cost in costs if cost.cost_usd is not None]
        cost = TeacherCost(sum(seconds) if seconds else None, sum(cost.tokens or 0 for cost in costs),
                           "+".join(sorted({cost.model for cost in costs if cost.model})) or None,
                           sum(prices) if prices else None)
        judged.append(Judged(sample, rollout, judge, "check", float(value), cost))
    return PanelVerdicts(judged, left_out)


def pairs_from_journal(path: str | Path, *, judge: str) -> list[JudgedPair]:
    """The scored comparisons of pairwise judge `judge` in a journal (answers in the order shown).

    Comparisons decided without the judge (an empty answer, identical answers) are not in the
    journal; entries without `inputs` (journals written before judgerl recorded them for pairwise
    judges) cannot be replayed and are an error.
    """
    chosen = [entry for entry in read_journal(path) if entry.get("judge_kind") == "pairwise"
              and entry.get("judge") == judge and entry.get("outcome") == "ok"]
    if not chosen:
        raise DataError(f"no scored pairwise judgment of judge '{judge}'", path=str(path))
    pairs = []
    for number, entry in enumerate(chosen, start=1):
        inputs = entry.get("inputs")
        if not isinstance(inputs, dict) or len(inputs.get("answers") or []) != 2:
            raise DataError(f"pairwise judgment {number} of '{judge}' has no `inputs` (the question and "
                            "both answers); rerun the teacher with this judgerl version to record them",
                            path=str(path))
        scores = entry.get("scores") or {}
        probability = scores.get("prob_a")
        if not isinstance(probability, (int, float)):
            if scores.get("winner") not in _WINNER:
                raise DataError(f"pairwise judgment {number} of '{judge}' has neither `prob_a` nor a "
                                "winner", path=str(path), field="scores")
            probability = _WINNER[scores["winner"]]
        sample = Sample(id=str(entry["sample_id"]), messages=list(inputs.get("messages") or []),
                        reference=inputs.get("reference"))
        ids = list(entry.get("rollout_ids") or []) or ["a", "b"]
        a, b = (Rollout(sample_id=sample.id, completion=str(text), id=str(rollout_id))
                for text, rollout_id in zip(inputs["answers"], ids, strict=True))
        pairs.append(JudgedPair(sample, a, b, float(probability), TeacherCost.of(entry)))
    return pairs


def pairs_from_labelled(path: str | Path) -> list[JudgedPair]:
    """Rows of a pairwise labelled file (prompt, answer_a, answer_b, label a/b/tie) as comparisons.

    A bad row is the loader's `DataError` (file, line, field); a scored file is refused here.
    """
    items = load_labelled_file(path)
    if not isinstance(items[0], PairItem):
        raise DataError("expected pairwise rows (prompt, answer_a, answer_b, label); this file is scored",
                        path=str(path))
    pairs = []
    for item in items:
        assert isinstance(item, PairItem) and item.label is not None
        key = item.category + ":" + item.prompt if item.category else item.prompt
        sample = Sample(id=_short_id(key), messages=[{"role": "user", "content": item.prompt}],
                        reference=item.reference)
        pairs.append(JudgedPair(sample, Rollout(sample.id, item.a, id=f"{item.id}:a"),
                                Rollout(sample.id, item.b, id=f"{item.id}:b"), _WINNER[item.label]))
    return pairs


def judged_from_journal(path: str | Path, *, judge: str | None = None) -> tuple[str, list[Judged]]:
    """The scored rubric judgments of one judge in a journal, one `Judged` per criterion.

    `judge` may be left out when the journal holds one rubric judge only. Entries without
    `inputs` (journals written before judgerl recorded them) cannot be replayed and are an error.
    """
    entries = [entry for entry in read_journal(path) if entry.get("judge_kind") == "rubric"]
    names = sorted({str(entry.get("judge")) for entry in entries})
    if judge is None:
        if len(names) != 1:
            raise DataError(f"the journal holds rubric judgments of {names or 'no judge'}; "
                            "name one with --judge", path=str(path))
        judge = names[0]
    chosen = [entry for entry in entries if entry.get("judge") == judge and entry.get("outcome") == "ok"]
    if not chosen:
        raise DataError(f"no scored rubric judgment of judge '{judge}' (judges: {names})", path=str(path))
    judged: list[Judged] = []
    for number, entry in enumerate(chosen, start=1):
        inputs = entry.get("inputs")
        if not isinstance(inputs, dict) or not inputs.get("answers"):
            raise DataError(f"judgment {number} of '{judge}' has no `inputs` (the question and answer); "
                            "rerun the teacher with this judgerl version to record them", path=str(path))
        criteria = (entry.get("scores") or {}).get("criteria") or {}
        if entry.get("edge_rule") or not criteria:
            continue  # a fixed edge-rule score (empty answer): nothing the teacher judged
        # a rubric written for the prompt travels with it: each item (r1, r2, ...) is its own row,
        # rendered for the student with the item's text
        metadata = {"rubric": inputs["rubric"]} if inputs.get("rubric") else {}
        sample = Sample(id=str(entry["sample_id"]), messages=list(inputs.get("messages") or []),
                        reference=inputs.get("reference"), metadata=metadata)
        rollout = Rollout(sample_id=sample.id, completion=str(inputs["answers"][0]),
                          id=str((entry.get("rollout_ids") or [""])[0]))
        for name, item in criteria.items():
            kind: Kind = "likert" if item.get("kind") == "likert" else "check"
            verdict = float(item["value"] if kind == "check" else item["score"])
            judged.append(Judged(sample, rollout, name, kind, verdict, TeacherCost.of(entry)))
    return judge, judged


def has_item_verdicts(items: Sequence[AnswerItem | PairItem]) -> bool:
    """Whether the rows of a labelled file grade the items of per-prompt rubrics: their `rubric`
    items carry the human's `met` verdict (the format `judgerl validate` measures per item)."""
    return any(isinstance(item, AnswerItem) and item.rubric and any("met" in entry for entry in item.rubric)
               for item in items)


def judged_from_labelled_items(path: str | Path,
                               items: Sequence[AnswerItem | PairItem] | None = None) -> list[Judged]:
    """The per-item verdicts of a labelled file whose rows carry a rubric with `met` per item: each
    labelled item is its own row, criterion `r1`, `r2`, ... (its position, as the rubric judge names
    a row's items) on a sample that carries the rubric (without the verdicts) in its metadata, so
    that the student is trained on the very prompt its rubric judge renders for that item.

    A row's sample is keyed by its prompt (a rubric belongs to a prompt): rows of one prompt stay on
    one side of a split whatever their category. `items`: the file's rows when already read.
    """
    judged: list[Judged] = []
    for item in load_labelled_file(path) if items is None else items:
        if not isinstance(item, AnswerItem) or not item.rubric:
            raise DataError(f"row {item.id} has no `rubric`: in a file of rubric item verdicts every row "
                            "carries its prompt's rubric, its items' `met` the verdicts", path=str(path))
        rubric = [{key: value for key, value in entry.items() if key != "met"} for entry in item.rubric]
        sample = Sample(id=_short_id("rubric:" + item.prompt),
                        messages=[{"role": "user", "content": item.prompt}], reference=item.reference,
                        metadata={"rubric": rubric})
        rollout = Rollout(sample_id=sample.id, completion=item.answer, id=item.id)
        for number, entry in enumerate(item.rubric, start=1):
            if "met" in entry:
                judged.append(Judged(sample, rollout, f"r{number}", "check", 1.0 if entry["met"] else 0.0))
    if not judged:
        raise DataError("no rubric item carries a `met` verdict", path=str(path))
    if len({row.verdict for row in judged}) < 2:
        raise DataError("every item has the same verdict: nothing to learn", path=str(path))
    return judged


def judged_from_labelled(path: str | Path, *, criterion: str) -> list[Judged]:
    """Rows of a scored labelled file (`judgerl validate`'s format) as verdicts on one check.

    Scores already in [0, 1] are P(pass); any other scale is mapped onto [0, 1] by its min and max.
    """
    items = load_labelled_file(path)
    if not items or not isinstance(items[0], AnswerItem):
        raise DataError("expected scored rows (prompt, answer, score); this file is pairwise",
                        path=str(path))
    scores = [float(item.score) for item in items if isinstance(item, AnswerItem) and item.score is not None]
    low, high = min(scores), max(scores)
    if low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    if high <= low:
        raise DataError("every row has the same score: nothing to learn", path=str(path))
    judged = []
    for item in items:
        assert isinstance(item, AnswerItem) and item.score is not None
        sample_id = item.category + ":" + item.prompt if item.category else item.prompt
        sample = Sample(id=_short_id(sample_id), messages=[{"role": "user", "content": item.prompt}],
                        reference=item.reference)
        judged.append(Judged(sample, Rollout(sample_id=sample.id, completion=item.answer, id=item.id),
                             criterion, "check", (float(item.score) - low) / (high - low)))
    return judged


class _OfSample(Protocol):
    @property
    def sample(self) -> Sample: ...


Row = TypeVar("Row", bound=_OfSample)


def split_by_sample(judged: Iterable[Row], *, held_out: float, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """(train, held out): a sample's rows (or pairs) all go to one side, by a seeded hash of its id.

    >>> rows = [Judged(Sample(str(i), []), Rollout(str(i), "a", id=f"{i}-{k}"), "c", "check", 1.0)
    ...         for i in range(50) for k in range(3)]
    >>> train, test = split_by_sample(rows, held_out=0.3)
    >>> {r.sample.id for r in train} & {r.sample.id for r in test}
    set()
    """
    if not 0 < held_out < 1:
        raise ValueError("held_out must be between 0 and 1")
    rows = list(judged)
    ids = sorted({row.sample.id for row in rows}, key=lambda sample_id: _hash(f"{seed}:{sample_id}"))
    if len(ids) < 2:
        raise DataError("distillation needs judgments of at least two samples to hold one out")
    held = set(ids[:max(1, round(len(ids) * held_out))])
    return [row for row in rows if row.sample.id not in held], [row for row in rows if row.sample.id in held]


def balanced(pairs: Iterable[JudgedPair]) -> list[JudgedPair]:
    """Every other pair (in a fixed order) swapped, so the teacher's preferred side is a in about
    half of them: agreement on the side (kappa, AUC) is then informative even when a file always
    puts the better answer first. A student that scores answers alone gives the same verdict
    either way round, so this changes which side is called a, never who agrees.

    >>> rows = [JudgedPair(Sample(str(i), []), Rollout(str(i), "x"), Rollout(str(i), "y"), 1.0)
    ...         for i in range(4)]
    >>> [pair.verdict for pair in balanced(rows)]
    [1.0, 0.0, 1.0, 0.0]
    """
    return [pair.swapped() if index % 2 else pair for index, pair in enumerate(pairs)]


def target_distribution(row: Judged, tokens: list[str], *, soft: bool) -> list[float]:
    """The teacher's verdict as a distribution over the verdict tokens (pass/fail or levels 1-5).

    A check's soft target is [P(pass), 1 - P(pass)]; a Likert verdict is split between the two
    nearest levels so its expectation is the teacher's. Hard targets round to one token.

    >>> row = Judged(Sample("s", []), Rollout("s", "a"), "c", "likert", 3.25)
    >>> target_distribution(row, list("12345"), soft=True)
    [0.0, 0.0, 0.75, 0.25, 0.0]
    """
    if row.kind == "check":
        probability = min(1.0, max(0.0, row.verdict))
        if not soft:
            probability = 1.0 if probability >= 0.5 else 0.0
        return [probability, 1.0 - probability]
    level = min(float(len(tokens)), max(1.0, row.verdict))
    if not soft:
        level = float(math.floor(level + 0.5))
    distribution = [0.0] * len(tokens)
    low = math.floor(level)
    upper_share = level - low
    distribution[low - 1] += 1.0 - upper_share
    if upper_share > 0:
        distribution[low] += upper_share
    return distribution


def teacher_seconds(entry: dict[str, Any]) -> float | None:
    """A journaled judgment's cost in time: the backend's own seconds (`service_s`, without the
    queue in front of it) when the journal has them, else the caller's latency (older journals);
    None for an answer from the cache (it cost the endpoint nothing, and says nothing of its speed).

    >>> teacher_seconds({"latency_s": 3.1, "service_s": 1.0}), teacher_seconds({"latency_s": 3.1})
    (1.0, 3.1)
    >>> teacher_seconds({"latency_s": 0.001, "service_s": 0.0, "cached": True}) is None
    True
    """
    if entry.get("cached"):
        return None
    return _number(entry.get("service_s", entry.get("latency_s")))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _short_id(text: str) -> str:
    return "p-" + _hash(text)[:12]
