"""Where validation items come from: the vendored human-labelled sets, the user's own labelled
file, or items written inline in the suite.

Why a module: the same probes (accuracy against humans, position bias, verbosity) should run on
public data with one command and on the user's own data without code. Two vendored sets ship
inside the package, in `judgerl/data/judge-validation/` (licences and provenance in docs/guides/validation.md
there), so they work from a wheel with no download and nothing beside the checkout:

- `llmbar-natural`: 100 instruction-following pairs from LLMBar, `label` 1 or 2 names the better
  output;
- `evalbiasbench`: 80 pairs in 6 bias types from OffsetBias' EvalBiasBench. Its label is 1 in
  every row, so the loader swaps every other pair of each type (`balance=True`) to keep an "always A" judge
  from scoring 100 %.

The packaged folder is used unless a suite names its own (`data_dir:`) or `$JUDGERL_VALIDATION_DATA`
points to a folder of the same layout (a user's own, newer copy of the sets); judgerl never searches
outside its own files.

A user labelled file is JSONL, one object per line, all rows of one kind:

- pairwise preference: `{"prompt": ..., "answer_a": ..., "answer_b": ..., "label": "a"|"b"|"tie"}`
- score: `{"prompt": ..., "answer": ..., "score": <number on your scale>}`

with optional `"id"`, `"reference"` (a reference answer shown to the judge) and `"category"`.
A bad row raises `DataError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judgerl.data import read_json
from judgerl.errors import ConfigError, DataError
from judgerl.rubric_items import RubricError, parse_rubric_items
from judgerl.trajectory import TrajectoryError, final_answer, parse_trajectory

if TYPE_CHECKING:
    from judgerl.validate.suite import DataSource

Label = Literal["a", "b", "tie"]
BUILTIN_DATASETS = ("llmbar-natural", "evalbiasbench")
ENV_VAR = "JUDGERL_VALIDATION_DATA"
PACKAGED_DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "judge-validation"
_SWAP = {"a": "b", "b": "a", "tie": "tie"}


@dataclass(frozen=True)
class PairItem:
    """Two answers to one prompt; `label` names the better one (None when unlabelled)."""

    id: str
    prompt: str
    a: str
    b: str
    label: Label | None = None
    reference: str | None = None
    category: str | None = None
    #: the runs that led to `a` and `b` when the labelled answers are trajectories
    trajectory_a: list[dict[str, Any]] | None = field(default=None, repr=False)
    trajectory_b: list[dict[str, Any]] | None = field(default=None, repr=False)

    def swapped(self) -> PairItem:
        """The same pair shown in the other order (the label follows its answer).

        >>> PairItem("x", "q", "good", "bad", "a").swapped()
        PairItem(id='x', prompt='q', a='bad', b='good', label='b', reference=None, category=None)
        """
        label = _SWAP[self.label] if self.label is not None else None
        return replace(self, a=self.b, b=self.a, label=label,  # type: ignore[arg-type]
                       trajectory_a=self.trajectory_b, trajectory_b=self.trajectory_a)

    @property
    def better(self) -> str | None:
        return {"a": self.a, "b": self.b}.get(self.label or "")

    @property
    def worse(self) -> str | None:
        return {"a": self.b, "b": self.a}.get(self.label or "")


@dataclass(frozen=True)
class AnswerItem:
    """One answer to one prompt; `score` is a human score (None when unlabelled)."""

    id: str
    prompt: str
    answer: str
    score: float | None = None
    reference: str | None = None
    category: str | None = None
    trajectory: list[dict[str, Any]] | None = field(default=None, repr=False)
    #: the prompt's own rubric (judgerl.rubric_items), items possibly labelled `met`
    rubric: list[dict[str, Any]] | None = field(default=None, repr=False)


Item = PairItem | AnswerItem


# --------------------------------------------------------------------------- locating


def find_data_dir(explicit: str | Path | None = None) -> Path:
    """The `judge-validation` folder: `explicit`, `$JUDGERL_VALIDATION_DATA`, or the packaged one."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_dir():
            raise ConfigError("judge-validation data folder not found", path=str(path))
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env)
        for candidate in (root, root / "judge-validation"):
            if _is_data_dir(candidate):
                return candidate
        raise ConfigError(f"${ENV_VAR}={env} holds no judge-validation data "
                          f"(expected llmbar-natural/ or evalbiasbench/ in it or in judge-validation/)")
    return PACKAGED_DATA_DIR


def _is_data_dir(path: Path) -> bool:
    return any((path / name).is_dir() for name in BUILTIN_DATASETS)


# --------------------------------------------------------------------------- vendored sets


def load_llmbar_natural(path: str | Path | None = None, *, limit: int | None = None) -> list[PairItem]:
    """LLMBar natural pairs; `path` is the dataset.json file or the data folder."""
    file = _dataset_file(path, "llmbar-natural", "dataset.json")
    rows = read_json(file)
    if not isinstance(rows, list):
        raise DataError("expected a JSON list of rows", path=str(file))
    items = []
    for position, row in enumerate(rows[:limit] if limit is not None else rows):
        where = f"row {position}"
        label = _required(row, "label", file, where)
        if label not in (1, 2):
            raise DataError(f"{where}: label must be 1 or 2, got {label!r}", path=str(file), field="label")
        items.append(PairItem(
            id=f"llmbar-natural-{position}", prompt=_required(row, "input", file, where),
            a=_required(row, "output_1", file, where), b=_required(row, "output_2", file, where),
            label="a" if label == 1 else "b", category="llmbar-natural"))
    return items


def load_evalbiasbench(path: str | Path | None = None, *, limit: int | None = None,
                       biases: Iterable[str] | None = None, balance: bool = True) -> list[PairItem]:
    """EvalBiasBench pairs, interleaved across bias types so that a small `limit` covers them all.

    `biases` keeps only those bias types (e.g. ["length bias"]). With `balance`, every other
    pair of each type is swapped, since the better response is always first in the file.
    """
    file = _dataset_file(path, "evalbiasbench", "biasbench.json")
    data = read_json(file)
    if not isinstance(data, dict):
        raise DataError("expected a JSON object from bias type to rows", path=str(file))
    wanted = set(biases) if biases is not None else None
    if wanted is not None and not wanted <= set(data):
        raise ConfigError(f"unknown bias type(s) {sorted(wanted - set(data))}; known: {sorted(data)}",
                          path=str(file), field="biases")
    per_type: list[list[PairItem]] = []
    for bias, rows in data.items():
        if wanted is not None and bias not in wanted:
            continue
        items = []
        for position, row in enumerate(rows):
            where = f"{bias!r} row {position}"
            label = _required(row, "label", file, where)
            if label not in (1, 2):
                raise DataError(f"{where}: label must be 1 or 2, got {label!r}", path=str(file),
                                field="label")
            item = PairItem(
                id=f"evalbiasbench-{_slug(bias)}-{position}",
                prompt=_required(row, "instruction", file, where),
                a=_required(row, "response1", file, where), b=_required(row, "response2", file, where),
                label="a" if label == 1 else "b", category=bias)
            items.append(item.swapped() if balance and position % 2 else item)
        per_type.append(items)
    interleaved = [item for group in zip_longest(*per_type) for item in group if item is not None]
    return interleaved[:limit] if limit is not None else interleaved


def _dataset_file(path: str | Path | None, name: str, filename: str) -> Path:
    if path is None:
        return find_data_dir() / name / filename
    path = Path(path)
    for candidate in (path, path / filename, path / name / filename):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no {name} data ({filename}) at this path", path=str(path))



def _required(row: Any, field: str, file: Path, where: str) -> Any:
    if not isinstance(row, dict) or field not in row:
        raise DataError(f"{where}: missing field", path=str(file), field=field)
    value = row[field]
    if field != "label" and not isinstance(value, str):
        raise DataError(f"{where}: expected text, got {type(value).__name__}", path=str(file), field=field)
    return value


def _slug(text: str) -> str:
    return "-".join(text.replace("_", " ").split())


# --------------------------------------------------------------------------- user files


class PairRow(BaseModel):
    """One line of a pairwise labelled file."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    prompt: str = Field(min_length=1)
    answer_a: str | list[dict[str, Any]] = Field(description="an answer, or a trajectory (chat messages)")
    answer_b: str | list[dict[str, Any]] = Field(description="an answer, or a trajectory (chat messages)")
    label: Label
    reference: str | None = None
    category: str | None = None


class ScoreRow(BaseModel):
    """One line of a scored labelled file (any numeric scale, e.g. 1..5 or 0..1)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    prompt: str = Field(min_length=1)
    answer: str | list[dict[str, Any]] = Field(description="an answer, or a trajectory (chat messages)")
    score: float = Field(allow_inf_nan=False)
    reference: str | None = None
    category: str | None = None
    rubric: Any = Field(default=None, description="the prompt's own rubric items; an item's `met` "
                        "(true / false) is the human's verdict on it")


def load_labelled_file(path: str | Path, *, limit: int | None = None) -> list[PairItem] | list[AnswerItem]:
    """Read a user labelled JSONL file (see the module docstring for the row shapes)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("labelled file not found", path=str(path))
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc.msg}", path=str(path), line=line_number) from exc
            if not isinstance(row, dict):
                raise DataError("each line must be a JSON object", path=str(path), line=line_number)
            rows.append({"__line": line_number, **row})
            if limit is not None and len(rows) >= limit:
                break
    if not rows:
        raise DataError("the labelled file has no rows", path=str(path))
    return rows_to_items(rows, source=str(path))


def _answer(value: str | list[dict[str, Any]], *, source: str, line: int,
            name: str) -> tuple[str, list[dict[str, Any]] | None]:
    """(answer text, trajectory or None) of a labelled answer that may be a trajectory."""
    if isinstance(value, str):
        return value, None
    try:
        trajectory = parse_trajectory(value)
    except TrajectoryError as exc:
        raise DataError(exc.detail, path=source, line=line, field=exc.field(name)) from exc
    return final_answer(trajectory), trajectory


def _rubric(value: Any, *, source: str, line: int) -> list[dict[str, Any]] | None:
    """A labelled row's rubric, checked (judgerl.rubric_items); an item's `met` must be a boolean."""
    if value is None:
        return None
    try:
        parse_rubric_items(value, field="rubric", max_items=1000)
    except RubricError as exc:
        raise DataError(exc.detail, path=source, line=line, field=exc.field) from None
    items = json.loads(value) if isinstance(value, str) else value
    for index, item in enumerate(items):
        if "met" in item and not isinstance(item["met"], bool):
            raise DataError("a human verdict `met` must be true or false", path=source, line=line,
                            field=f"rubric[{index}].met")
    return list(items)


def rows_to_items(rows: list[dict[str, Any]], *, source: str) -> list[PairItem] | list[AnswerItem]:
    """Validate labelled rows (from a file or inline in the suite) into items of one kind."""
    first = {key for key in rows[0] if key != "__line"}
    pairwise = "answer_a" in first or "label" in first
    model: type[BaseModel] = PairRow if pairwise else ScoreRow
    items: list[Any] = []
    for position, raw in enumerate(rows):
        line = raw.get("__line", position + 1)
        data = {key: value for key, value in raw.items() if key != "__line"}
        try:
            row = model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            kind = "pairwise (prompt, answer_a, answer_b, label)" if pairwise else \
                "score (prompt, answer, score)"
            raise DataError(f"{error['msg']} (rows of this file are {kind}, as its first row)",
                            path=source, line=line, field=field) from None
        item_id = row.id or f"row-{line}"  # type: ignore[attr-defined]
        if isinstance(row, PairRow):
            a, trajectory_a = _answer(row.answer_a, source=source, line=line, name="answer_a")
            b, trajectory_b = _answer(row.answer_b, source=source, line=line, name="answer_b")
            items.append(PairItem(item_id, row.prompt, a, b, row.label, row.reference, row.category,
                                  trajectory_a=trajectory_a, trajectory_b=trajectory_b))
        else:
            assert isinstance(row, ScoreRow)
            answer, trajectory = _answer(row.answer, source=source, line=line, name="answer")
            items.append(AnswerItem(item_id, row.prompt, answer, row.score, row.reference,
                                    row.category, trajectory=trajectory,
                                    rubric=_rubric(row.rubric, source=source, line=line)))
    ids = [item.id for item in items]
    duplicated = sorted({item_id for item_id in ids if ids.count(item_id) > 1})
    if duplicated:
        raise DataError(f"duplicated id(s): {duplicated[:5]}", path=source, field="id")
    return items


def load_dataset(name_or_path: str, *, limit: int | None = None, biases: Iterable[str] | None = None,
                 base_dir: Path | None = None, data_dir: str | Path | None = None,
                 ) -> list[PairItem] | list[AnswerItem]:
    """A vendored set by name (`llmbar-natural`, `evalbiasbench`) or a labelled JSONL file path."""
    if name_or_path == "llmbar-natural":
        return load_llmbar_natural(_named(data_dir, name_or_path), limit=limit)
    if name_or_path == "evalbiasbench":
        return load_evalbiasbench(_named(data_dir, name_or_path), limit=limit, biases=biases)
    path = Path(name_or_path)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise ConfigError(f"'{name_or_path}' is neither a vendored dataset {list(BUILTIN_DATASETS)} "
                          f"nor an existing file", path=str(path), field="dataset")
    return load_labelled_file(path, limit=limit)


def _named(data_dir: str | Path | None, name: str) -> Path:
    return find_data_dir(data_dir) / name


# --------------------------------------------------------------------------- for the sections


def load_source(source: DataSource, base_dir: Path, *, where: str) -> list[PairItem] | list[AnswerItem]:
    """The items a suite section's `data:` names (`where` is its field path, for errors)."""
    if source.items is not None:
        rows = [{"__line": position + 1, **row} for position, row in enumerate(source.items)]
        items = rows_to_items(rows, source=f"{where}.items")
    else:
        assert source.dataset is not None
        items = load_dataset(source.dataset, limit=None if source.max_chars else source.limit,
                             biases=source.biases, base_dir=base_dir, data_dir=source.data_dir)
    if source.max_chars is not None:
        items = [item for item in items if item_chars(item) <= source.max_chars]  # type: ignore[assignment]
        if not items:
            raise ConfigError(f"no item is at most {source.max_chars} characters long",
                              field=f"{where}.max_chars")
    return items[: source.limit] if source.limit is not None else items


def item_chars(item: PairItem | AnswerItem) -> int:
    """Characters of the prompt and answer(s): what `max_chars` limits.

    >>> item_chars(PairItem("x", "2+2?", "4", "five"))
    9
    """
    if isinstance(item, PairItem):
        return len(item.prompt) + len(item.a) + len(item.b)
    return len(item.prompt) + len(item.answer)


def pairs_only(items: list[PairItem] | list[AnswerItem], *, where: str,
               labelled: bool = False) -> list[PairItem]:
    """The items as pairs, or a ConfigError saying that this section needs (labelled) pairs."""
    pairs = [item for item in items if isinstance(item, PairItem)]
    if len(pairs) != len(items):
        raise ConfigError("this section needs pairs (prompt, answer_a, answer_b, label), "
                          "not single scored answers", field=where)
    if labelled and any(item.label not in ("a", "b") for item in pairs):
        raise ConfigError("this section needs pairs labelled 'a' or 'b' (which answer is better)",
                          field=where)
    return pairs


def answers_from(items: list[PairItem] | list[AnswerItem]) -> list[AnswerItem]:
    """Single answers: answer items as they are, each pair as its two answers.

    >>> [item.id for item in answers_from([PairItem("p", "q", "x", "y", "a")])]
    ['p:a', 'p:b']
    """
    answers: list[AnswerItem] = []
    for item in items:
        if isinstance(item, AnswerItem):
            answers.append(item)
        else:
            answers += [AnswerItem(f"{item.id}:a", item.prompt, item.a, None, item.reference, item.category),
                        AnswerItem(f"{item.id}:b", item.prompt, item.b, None, item.reference, item.category)]
    return answers
