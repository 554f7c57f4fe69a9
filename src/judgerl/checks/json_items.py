"""Checks on the list of items inside a JSON answer: how many there are, and whether they repeat.

Why: structured-output tasks (review comments, extracted entities, test cases) ask for a list,
and two cheap ways to please a judge are writing too many items and writing the same item
several times in other words. These checks bound the count (with a soft penalty, like `length`)
and penalise near-duplicates before any judge call. They share a tiny path syntax to find the
items, also used by `quote_grounding` and the itemized judge:

    comments            the value under key "comments"
    comments[*].quote   the "quote" of every element of the "comments" list
    [*]                 every element of a top-level list
    a.b[0]              key "a", key "b", first element

An answer that is not JSON, or has no list where the path says, scores 0 with a rationale (the
schema gate usually catches it first). An empty list scores `empty_score` (default 0: an answer
with no items has nothing to reward).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import Field

from judgerl.checks.base import BaseCheck, CheckOptions, clamp01, option_error
from judgerl.checks.json_checks import parse_json
from judgerl.types import Rollout, Sample, Score

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[(\*|\d+)\]|\.")
WILDCARD = "*"


class PathError(ValueError):
    """The JSON does not have the shape the path describes (no list where `[*]` is)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def parse_path(path: str) -> list[str | int]:
    """The steps of a path: keys (str), indexes (int) and WILDCARD.

    >>> parse_path("comments[*].text_excerpt")
    ['comments', '*', 'text_excerpt']
    >>> parse_path("[*]"), parse_path("a.b[0]"), parse_path("")
    (['*'], ['a', 'b', 0], [])
    >>> parse_path("a..b")
    Traceback (most recent call last):
    ...
    ValueError: bad path 'a..b' at character 2
    """
    steps: list[str | int] = []
    position, expect_step = 0, True
    text = path.strip().removeprefix("$").lstrip(".")
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None or (match.group(0) == "." and expect_step):
            raise ValueError(f"bad path {path!r} at character {position}")
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not expect_step:
                raise ValueError(f"bad path {path!r} at character {position}")
            steps.append(key)
        elif index is not None:
            steps.append(WILDCARD if index == WILDCARD else int(index))
        expect_step = match.group(0) == "."
        position = match.end()
    if expect_step and text:
        raise ValueError(f"bad path {path!r}: it ends with '.'")
    return steps


def select(data: Any, steps: list[str | int]) -> list[Any]:
    """The values a parsed path reaches; a missing key gives MISSING (one per item that lacks it).

    >>> data = {"comments": [{"q": "a"}, {"x": 1}]}
    >>> select(data, parse_path("comments[*].q"))
    ['a', MISSING]
    >>> select(data, parse_path("comments"))[0][1]
    {'x': 1}
    >>> select({"comments": "none"}, parse_path("comments[*]"))
    Traceback (most recent call last):
    ...
    judgerl.checks.json_items.PathError: 'comments' is not a list
    """
    current = [data]
    walked = ""
    for step in steps:
        found: list[Any] = []
        for node in current:
            if step == WILDCARD:
                if not isinstance(node, list):
                    raise PathError(f"{walked or 'the answer'!r} is not a list")
                found.extend(node)
            elif isinstance(step, int):
                inside = isinstance(node, list) and -len(node) <= step < len(node)
                found.append(node[step] if inside else MISSING)
            else:
                found.append(node[step] if isinstance(node, dict) and step in node else MISSING)
        current = found
        if step == WILDCARD or isinstance(step, int):
            walked += f"[{step}]"
        else:
            walked += f".{step}" if walked else str(step)
    return current


def list_at(data: Any, path: str) -> list[Any]:
    """The list of items at `path` (a trailing `[*]` is optional): `comments` or `comments[*]`.

    >>> list_at({"comments": [1, 2]}, "comments"), list_at([3], "[*]"), list_at([4], "")
    ([1, 2], [3], [4])
    >>> list_at({"items": []}, "comments")
    Traceback (most recent call last):
    ...
    judgerl.checks.json_items.PathError: no list at 'comments'
    """
    steps = parse_path(path)
    if steps and steps[-1] == WILDCARD:
        return select(data, steps)
    values = select(data, steps)
    if len(values) != 1 or not isinstance(values[0], list):
        raise PathError(f"no list at {path!r}")
    return list(values[0])


def load_items(completion: str, path: str, allow_fence: bool = True) -> tuple[list[Any] | None, str | None]:
    """(items, None) from a JSON answer, or (None, why) when it is not JSON or has no list there.

    >>> load_items('{"comments": [{"a": 1}]}', "comments")
    ([{'a': 1}], None)
    >>> load_items('comments: none', "comments")[1]
    'not valid JSON: Expecting value: line 1 column 1 (char 0)'
    """
    value, problem = parse_json(completion, allow_fence)
    if problem:
        return None, problem
    try:
        return list_at(value, path), None
    except PathError as exc:
        return None, str(exc)


def check_path_option(name: str, option: str, path: str) -> None:
    """Reject a malformed path when the config is loaded, naming `checks.<name>.<option>`."""
    try:
        parse_path(path)
    except ValueError as exc:
        raise option_error(name, option, str(exc)) from exc


# --------------------------------------------------------------------------------------------
# item_count


class ItemCountOptions(CheckOptions):
    path: str = Field(default="comments", description="where the list is (e.g. comments or [*])")
    min: int | None = Field(default=None, ge=0, description="fewest items that score 1")
    max: int | None = Field(default=None, ge=0, description="most items that score 1")
    tolerance: float | None = Field(
        default=None, ge=0, description="items outside the range over which the score falls to 0; "
        "default half the bound crossed (at least 1); 0 makes the range hard")
    empty_score: float = Field(default=0.0, ge=0, le=1, description="score of an empty list")
    allow_fence: bool = Field(default=True, description="unwrap an answer that is one ```json block")


class ItemCountCheck(BaseCheck):
    """1 when the number of items is in [min, max]; a linear decay to 0 over `tolerance` outside.

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Review"}])
    >>> check = ItemCountCheck("count", ItemCountOptions(min=2, max=4, tolerance=2))
    >>> [check(s, Rollout("s", json.dumps({"comments": list(range(n))}))).value for n in (1, 2, 4, 5, 6)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    >>> score = check(s, Rollout("s", '{"comments": []}'))
    >>> score.value, score.rationale
    (0.0, 'no items at comments')
    >>> check(s, Rollout("s", "not json")).value
    0.0
    """

    summary = "the number of items in a JSON list (e.g. comments) is in [min, max]; soft penalty outside"
    Options = ItemCountOptions

    def __init__(self, name: str, options: ItemCountOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        check_path_option(name, "path", options.path)
        if options.min is None and options.max is None:
            raise option_error(name, "max", "give 'min', 'max' or both")
        if options.min is not None and options.max is not None and options.min > options.max:
            raise option_error(name, "min", f"min ({options.min}) is above max ({options.max})")

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        items, problem = load_items(rollout.completion, self.options.path, self.options.allow_fence)
        if items is None:
            return Score(self.name, 0.0, rationale=problem or "", details={"count": None})
        n = len(items)
        details = {"count": n}
        if n == 0:
            return Score(self.name, self.options.empty_score, rationale=f"no items at {self.options.path}",
                         details=details)
        low, high = self.options.min, self.options.max
        if low is not None and n < low:
            return self._outside(n, low, low - n, "below the minimum", details)
        if high is not None and n > high:
            return self._outside(n, high, n - high, "above the maximum", details)
        return Score(self.name, 1.0, rationale=f"{n} items, within range", details=details)

    def _outside(self, n: int, bound: int, distance: int, where: str, details: dict[str, Any]) -> Score:
        tolerance = self.options.tolerance if self.options.tolerance is not None else max(1.0, bound / 2)
        value = 0.0 if tolerance == 0 else clamp01(1 - distance / tolerance)
        return Score(self.name, value, details=details,
                     rationale=f"{n} items, {where} of {bound} by {distance} (tolerance {tolerance:g})")


# --------------------------------------------------------------------------------------------
# item_duplicates

_TOKEN = re.compile(r"\w+")


def normalise_text(text: str) -> str:
    """Lower case, words only, single spaces: the form in which items are compared.

    >>> normalise_text("  Unlimited   LIABILITY, for Customer! ")
    'unlimited liability for customer'
    """
    return " ".join(_TOKEN.findall(text.casefold()))


def jaccard(a: set[str], b: set[str]) -> float:
    """Token-set overlap |a & b| / |a | b| (1.0 for two empty sets).

    >>> jaccard({"a", "b", "c"}, {"a", "b", "d"})
    0.5
    """
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class ItemDuplicatesOptions(CheckOptions):
    path: str = Field(default="comments", description="where the list is (e.g. comments or [*])")
    fields: list[str] = Field(default_factory=lambda: ["comment"], min_length=1,
                              description="item fields compared (joined); an item that is not an object "
                              "is compared as its JSON text")
    threshold: float = Field(default=0.8, gt=0, le=1,
                             description="token Jaccard overlap at or above which two items are duplicates")
    empty_score: float = Field(default=0.0, ge=0, le=1, description="score of an empty list")
    allow_fence: bool = Field(default=True, description="unwrap an answer that is one ```json block")


class ItemDuplicatesCheck(BaseCheck):
    """Share of items that repeat no earlier item (equal normalised text or Jaccard >= threshold).

    >>> from judgerl.types import Sample, Rollout
    >>> s = Sample(id="s", messages=[{"role": "user", "content": "Review"}])
    >>> check = ItemDuplicatesCheck("dupes", ItemDuplicatesOptions(threshold=0.8))
    >>> answer = {"comments": [{"comment": "Liability is unlimited for Calloway."},
    ...                        {"comment": "liability is UNLIMITED for Calloway"},
    ...                        {"comment": "Renewal is automatic without notice."}]}
    >>> score = check(s, Rollout("s", json.dumps(answer)))
    >>> round(score.value, 3), score.details["duplicates"]
    (0.667, [{'index': 1, 'of': 0, 'overlap': 1.0}])
    """

    summary = "share of list items that are not near-duplicates of an earlier one (normalised text / Jaccard)"
    Options = ItemDuplicatesOptions

    def __init__(self, name: str, options: ItemDuplicatesOptions, base_dir: Path | None = None) -> None:
        super().__init__(name, options, base_dir)
        check_path_option(name, "path", options.path)

    def _text(self, item: Any) -> str:
        if not isinstance(item, dict):
            return item if isinstance(item, str) else json.dumps(item, sort_keys=True)
        parts = [item.get(field) for field in self.options.fields]
        return " ".join(part if isinstance(part, str) else json.dumps(part)
                        for part in parts if part is not None)

    def __call__(self, sample: Sample, rollout: Rollout) -> Score:
        items, problem = load_items(rollout.completion, self.options.path, self.options.allow_fence)
        if items is None:
            return Score(self.name, 0.0, rationale=problem or "", details={"count": None})
        if not items:
            return Score(self.name, self.options.empty_score, rationale=f"no items at {self.options.path}",
                         details={"count": 0, "duplicates": []})
        texts = [normalise_text(self._text(item)) for item in items]
        token_sets = [set(text.split()) for text in texts]
        duplicates = []
        for index in range(1, len(items)):
            for earlier in range(index):
                same = texts[index] == texts[earlier]
                overlap = 1.0 if same else jaccard(token_sets[index], token_sets[earlier])
                if overlap >= self.options.threshold:
                    duplicates.append({"index": index, "of": earlier, "overlap": round(overlap, 3)})
                    break
        unique = len(items) - len(duplicates)
        if duplicates:
            shown = ", ".join(f"item {d['index']} repeats item {d['of']} ({d['overlap']:.0%})"
                              for d in duplicates[:3])
            rationale = f"{unique}/{len(items)} items unique; {shown}"
        else:
            rationale = f"all {len(items)} items unique"
        return Score(self.name, unique / len(items), rationale=rationale,
                     details={"count": len(items), "duplicates": duplicates})
