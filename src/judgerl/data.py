"""Read samples and rollouts from files, and write result rows, with errors that say where.

Training and scoring runs start from user files of tens of thousands of rows; one bad row
must neither kill the run silently nor hide among the good ones. The loaders here keep every
good row and report every bad one as a `DataError` naming the file, the line and the field
(`rollouts.jsonl, line 7, field 'messages': expected a list of {role, content}`); the strict
variants raise the first with a count of the rest.

Inputs (one row = one JSON object):
- `.jsonl` / `.ndjson`: one object per line (blank lines skipped). A `.json` file holding an
  array is read element by element, with each element's real line number; any other `.json`
  file is read as JSONL.
- a folder written by Hugging Face `datasets` (`save_to_disk`); "line" is then the 1-based row
  number. `split` picks a split of a DatasetDict (needed when it has several).

Row fields:
- the prompt: `messages` (a list of {role, content}; content may also be a list of
  {"type": "text", "text": ...} parts) or `prompt` (a string, or a message list as in TRL's
  conversational datasets). Exactly one of them.
- `reference` (aliases `reference_answer`, `answer`, `ground_truth`, first found wins, the
  others stay metadata): a string; numbers are turned into strings and objects / lists into
  JSON text. A `metadata` object column is merged into the metadata (row columns win), and a
  reference nested in it is found too (Bedrock's Nova RFT shape). A reference that is an
  object with a `rubric` key (`{"reference": ..., "rubric": [...]}`) is split: its text is the
  reference and its rubric goes to `metadata["rubric"]` (judgerl.rubric_items), unless the row
  has a `rubric` column of its own.
- `id` (a string or an integer; default `row-<line>`). Duplicate ids are an error in sample
  files; in rollout files, rows sharing an id are rollouts of the same sample.
- anything else is kept in `Sample.metadata`.
Rollout files also need `completion` (a string, or a chat list whose last assistant message
is used) and may give `rollout_id` (default `<sample id>/<n>`, n counting from 0).
A `completion` chat list with a tool call, a `tool` message or more than one assistant message
is a trajectory (`judgerl.trajectory`): it is checked strictly (a bad one names the row and the
message: `field 'completion.3.tool_call_id'`), kept as `Rollout.trajectory`, and its last
assistant text is the `completion`; the row's `tools` column (OpenAI tool schemas) becomes
`Rollout.tools`. Any other row reads exactly as before.

Rows that cannot be handled safely are bad rows like any other (reported, skipped): a row
nested more than `MAX_JSON_DEPTH` levels deep, and a row with a lone surrogate (a `\\ud800`
escape without its pair). JSON lets a file write one, but it is not Unicode text: it cannot be
encoded as UTF-8, so it could be neither sent to a judge nor written to the output or the
journal. Refusing the row, naming the field and the character, tells the user exactly what to
fix; replacing it silently would score a text the policy never wrote.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from judgerl.errors import DataError
from judgerl.rubric_items import split_reference
from judgerl.trajectory import (
    TrajectoryError,
    final_answer,
    is_single_turn,
    parse_tools,
    parse_trajectory,
    uses_tools,
)
from judgerl.types import Rollout, Sample

REFERENCE_ALIASES = ("reference", "reference_answer", "answer", "ground_truth")
ASSISTANT_ROLES = ("assistant", "nova_assistant")
#: deepest nesting of objects and arrays accepted in one row (and in a `judgerl serve` body)
MAX_JSON_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # what a surrogate looks like in JSON text


class RowError(DataError):
    """A DataError about one row; `detail` is the message without the location."""

    def __init__(self, detail: str, *, path: str, line: int | None, field: str | None = None) -> None:
        self.detail = detail
        super().__init__(detail, path=path, line=line, field=field)


class LoadResult(NamedTuple):
    """The good samples, and one error per bad row."""

    samples: list[Sample]
    errors: list[DataError]


class RolloutLoadResult(NamedTuple):
    """(sample, rollout) pairs in file order, and one error per bad row."""

    pairs: list[tuple[Sample, Rollout]]
    errors: list[DataError]


# ---------------------------------------------------------------------------------------------
# values that cannot be handled safely


def lone_surrogate(text: str) -> int | None:
    """The index of the first surrogate code point in `text` (not valid Unicode text), or None.

    >>> lone_surrogate("fine"), lone_surrogate("ab\\ud800c")
    (None, 2)
    """
    found = _SURROGATE.search(text)
    return found.start() if found else None


def find_lone_surrogate(value: Any, field: str = "") -> tuple[str, int] | None:
    """(dotted field, index) of the first string (or object key) in `value` with a lone surrogate.

    >>> find_lone_surrogate({"messages": [{"role": "user", "content": "x\\udc00"}]})
    ('messages.0.content', 1)
    >>> find_lone_surrogate({"ok": ["a", 1, None]}) is None
    True
    """
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            index = lone_surrogate(node)
            if index is not None:
                return where or "value", index
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                index = lone_surrogate(key) if isinstance(key, str) else None
                if index is not None:
                    return (where or "value"), index
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(node, list):
            stack.extend((child, f"{where}.{index}" if where else str(index))
                         for index, child in reversed(list(enumerate(node))))
    return None


def surrogate_message(index: int) -> str:
    """Why a text with a lone surrogate at `index` is refused."""
    return (f"has a lone surrogate at character {index} (a \\uD800-\\uDFFF escape without its pair): "
            "not valid Unicode text, so it can be neither sent to a judge nor written out; fix the text")


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when objects / arrays nest more than `limit` levels deep (checked without recursion).

    >>> json_depth_exceeds([[[1]]], 3), json_depth_exceeds([[[1]]], 2)
    (False, True)
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def row_problem(value: Any, raw: str) -> tuple[str, str | None] | None:
    """(message, field) when a decoded row cannot be handled safely, else None.

    `raw` is the row's JSON text: surrogates can only come from escapes in it, so rows without
    one are not walked.
    """
    if json_depth_exceeds(value):
        return f"nested more than {MAX_JSON_DEPTH} levels deep", None
    if _ESCAPED_SURROGATE.search(raw):
        found = find_lone_surrogate(value)
        if found is not None:
            return surrogate_message(found[1]), found[0]
    return None


# ---------------------------------------------------------------------------------------------
# reading raw rows


def iter_rows(path: str | Path, *, split: str | None = None) -> Iterator[tuple[int, Any]]:
    """(line, decoded row) for each row of a JSONL / JSON array file or a saved HF dataset.

    A line that is not JSON yields a RowError in place of the row; a missing or unreadable
    file raises DataError at once (there is nothing to salvage).
    """
    path = Path(path)
    if path.is_dir():
        yield from _iter_hf_dataset(path, split)
        return
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    if path.suffix.lower() == ".json" and _first_char(path) == "[":
        yield from _iter_json_array(path)
    else:
        yield from _iter_jsonl(path)


def _first_char(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    return head[:1]


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield line_no, RowError(f"not UTF-8 text: {exc}", path=str(path), line=line_no)
                continue
            if line_no == 1:
                text = text.lstrip("\ufeff")
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line_no, RowError(f"not valid JSON: {exc.msg} (column {exc.colno})", path=str(path),
                                        line=line_no)
                continue
            except RecursionError:
                yield line_no, RowError(f"nested more than {MAX_JSON_DEPTH} levels deep", path=str(path),
                                        line=line_no)
                continue
            problem = row_problem(value, text)
            if problem is not None:
                yield line_no, RowError(problem[0], path=str(path), line=line_no, field=problem[1])
                continue
            yield line_no, value


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text: {exc}", path=str(path)) from exc
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        position = _skip_space(text, position)
        if position < len(text) and text[position] == "]":
            return
        line_no = text.count("\n", 0, position) + 1
        start = position
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            # The rest of the array cannot be split reliably: report it and stop there.
            yield exc.lineno, RowError(f"not valid JSON: {exc.msg} (the rest of the array is skipped)",
                                       path=str(path), line=exc.lineno)
            return
        except RecursionError:
            yield line_no, RowError(f"nested more than {MAX_JSON_DEPTH} levels deep (the rest of the "
                                    "array is skipped)", path=str(path), line=line_no)
            return
        problem = row_problem(value, text[start:position])
        if problem is not None:
            yield line_no, RowError(problem[0], path=str(path), line=line_no, field=problem[1])
        else:
            yield line_no, value
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position += 1
        elif position < len(text) and text[position] == "]":
            return
        else:
            line_no = text.count("\n", 0, position) + 1
            yield line_no, RowError("expected ',' or ']' between array elements (the rest is skipped)",
                                    path=str(path), line=line_no)
            return


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _iter_hf_dataset(path: Path, split: str | None) -> Iterator[tuple[int, Any]]:
    try:
        import datasets  # heavy and optional: only needed for this input format
    except ImportError as exc:
        raise DataError("reading a saved Hugging Face dataset needs `datasets` "
                        "(pip install 'judgerl[train]')", path=str(path)) from exc
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"not a dataset saved with save_to_disk: {exc}", path=str(path)) from exc
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded.keys())
        if split is None and len(names) == 1:
            split = names[0]
        if split not in loaded:
            raise DataError(f"choose a split with split=...; this dataset has {', '.join(names)}",
                            path=str(path), field="split")
        loaded = loaded[split]
    elif split is not None:
        raise DataError(f"split={split!r} given, but this is a single Dataset, not a DatasetDict",
                        path=str(path), field="split")
    for index, row in enumerate(loaded):
        yield index + 1, row


# ---------------------------------------------------------------------------------------------
# rows -> samples


@dataclasses.dataclass
class _Fields:
    prompt: str
    messages: str
    id: str
    reference: tuple[str, ...]
    completion: str = "completion"
    rollout_id: str = "rollout_id"


def _messages(value: Any, err: Any, field: str) -> list[dict[str, str]]:
    shape = "a list of {role, content}"
    if not isinstance(value, list) or not value:
        raise err(f"expected {shape} (non-empty), got {_kind(value)}", field)
    messages = []
    for index, message in enumerate(value):
        where = f"{field}.{index}"
        if not isinstance(message, dict):
            raise err(f"expected {shape}; item {index} is {_kind(message)}", where)
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role.strip():
            raise err(f"expected {shape}; 'role' must be a non-empty string", f"{where}.role")
        if isinstance(content, list):
            content = _join_parts(content, err, f"{where}.content")
        if not isinstance(content, str):
            raise err(f"expected {shape}; 'content' must be a string, got {_kind(content)}",
                      f"{where}.content")
        messages.append({"role": role, "content": content})
    return messages


def _join_parts(parts: list[Any], err: Any, field: str) -> str:
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise err("content parts must be strings or {type: text, text: ...}", field)
    return "".join(texts)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), f"a {type(value).__name__}")


def reference_text(value: Any) -> str | None:
    """A reference answer as text: strings as they are, numbers as Python writes them, structured
    values as JSON (keys sorted). Data files and every adapter go through this one function, so a
    reference reads the same whichever way it came in.

    >>> reference_text({"answer": 4}), reference_text(4), reference_text(0.5), reference_text(None)
    ('{"answer": 4}', '4', '0.5', None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _parse_sample(row: Any, line: int, path: str, fields: _Fields,
                  skip: tuple[str, ...] = ()) -> Sample:
    def err(message: str, field: str | None = None) -> RowError:
        return RowError(message, path=path, line=line, field=field)

    if not isinstance(row, dict):
        raise err(f"expected a JSON object, got {_kind(row)}")
    has_messages = row.get(fields.messages) is not None
    has_prompt = row.get(fields.prompt) is not None
    if has_messages and has_prompt:
        raise err(f"give either '{fields.messages}' or '{fields.prompt}', not both", fields.messages)
    if has_messages:
        messages = _messages(row[fields.messages], err, fields.messages)
    elif has_prompt:
        prompt = row[fields.prompt]
        if isinstance(prompt, list):
            messages = _messages(prompt, err, fields.prompt)
        elif isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            raise err(f"expected a string or a list of {{role, content}}, got {_kind(prompt)}", fields.prompt)
    else:
        raise err(f"missing: give '{fields.messages}' (chat) or '{fields.prompt}' (text)", fields.messages)

    raw_id = row.get(fields.id)
    if raw_id is None:
        sample_id = f"row-{line}"
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
        sample_id = str(raw_id)
    else:
        raise err(f"expected a non-empty string or an integer, got {_kind(raw_id)}", fields.id)

    nested = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
    reference, reference_key = None, None
    for source in (row, nested):
        for key in fields.reference:
            if source.get(key) is not None:
                reference, reference_key = source[key], key
                break
        if reference_key is not None:
            break
    reference, rubric = split_reference(reference)
    if reference is not None and isinstance(reference, bool):
        raise err("expected a string, number, object or list, got a boolean", reference_key)

    used = {fields.messages, fields.prompt, fields.id, "metadata", *skip}
    if reference_key is not None and reference_key in row:
        used.add(reference_key)
    # A reference column left empty (null, as in a Hugging Face dataset with gaps) carries nothing.
    used.update(key for key in fields.reference if key in row and row[key] is None)
    metadata = {key: value for key, value in nested.items() if key != reference_key}
    metadata.update({key: value for key, value in row.items() if key not in used})
    if rubric is not None:  # a reference object carrying the prompt's rubric (judgerl.rubric_items)
        metadata.setdefault("rubric", rubric)
    return Sample(id=sample_id, messages=messages, reference=reference_text(reference), metadata=metadata)


def _fields(prompt_field: str, messages_field: str, id_field: str, reference_field: str | None) -> _Fields:
    references = (reference_field,) if reference_field else REFERENCE_ALIASES
    return _Fields(prompt=prompt_field, messages=messages_field, id=id_field, reference=references)


def load_samples(path: str | Path, *, prompt_field: str = "prompt", messages_field: str = "messages",
                 id_field: str = "id", reference_field: str | None = None,
                 split: str | None = None) -> LoadResult:
    """Read samples; bad rows become errors (file, line, field) and good rows are kept.

    `reference_field` replaces the aliases (reference, reference_answer, answer, ground_truth).
    """
    fields = _fields(prompt_field, messages_field, id_field, reference_field)
    samples: list[Sample] = []
    errors: list[DataError] = []
    first_line: dict[str, int] = {}
    for line, row in iter_rows(path, split=split):
        if isinstance(row, DataError):
            errors.append(row)
            continue
        try:
            sample = _parse_sample(row, line, str(path), fields)
        except RowError as exc:
            errors.append(exc)
            continue
        if sample.id in first_line:
            errors.append(RowError(f"duplicate id {sample.id!r} (first on line {first_line[sample.id]})",
                                   path=str(path), line=line, field=id_field))
            continue
        first_line[sample.id] = line
        samples.append(sample)
    return LoadResult(samples, errors)


def parse_sample_row(row: Any, *, line: int, path: str) -> Sample:
    """One decoded row as a Sample (the default field names); RowError names the line and field.
    For commands that rewrite a file row by row (`judgerl rubrics`)."""
    if isinstance(row, DataError):
        raise row
    return _parse_sample(row, line, path, _fields("prompt", "messages", "id", None))


def load_samples_strict(path: str | Path, **options: Any) -> list[Sample]:
    """Like `load_samples`, but raise the first error (with the count of bad rows) if any."""
    result = load_samples(path, **options)
    _raise_first(path, result.errors, len(result.samples))
    if not result.samples:
        raise DataError("no samples in the file", path=str(path))
    return result.samples


def _raise_first(path: str | Path, errors: list[DataError], good: int) -> None:
    if not errors:
        return
    first = errors[0]
    detail = first.detail if isinstance(first, RowError) else str(first)
    summary = f" ({len(errors)} of {len(errors) + good} rows are bad; this is the first)"
    raise RowError(detail + summary, path=first.path or str(path), line=first.line,
                   field=first.field) from first


def _is_trajectory(value: Any) -> bool:
    """A chat list that uses tools or has several assistant turns (see the module docstring)."""
    return isinstance(value, list) and uses_tools(value)


Messages = list[dict[str, Any]]


def read_trajectory(value: Any, tools: Any, err: Any, field: str,
                    tools_field: str = "tools") -> tuple[str, Messages | None, Messages | None]:
    """(final answer, trajectory, tools) of a chat list that is a trajectory; errors name the message."""
    try:
        messages = parse_trajectory(value)
    except TrajectoryError as exc:
        raise err(exc.detail, exc.field(field)) from exc
    if is_single_turn(messages):
        return messages[0]["content"], None, None
    try:
        parsed_tools = parse_tools(tools) if tools is not None else None
    except TrajectoryError as exc:
        raise err(exc.detail, exc.field(tools_field)) from exc
    return final_answer(messages), messages, parsed_tools


def _completion(value: Any, err: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        messages = _messages(value, err, field)
        for message in reversed(messages):
            if message["role"] in ASSISTANT_ROLES:
                return message["content"]
        raise err("the chat list has no assistant message", field)
    if value is None:
        raise err("missing: the policy's answer (a string or a chat list)", field)
    raise err(f"expected a string or a chat list, got {_kind(value)}", field)


def load_rollouts(path: str | Path, *, prompt_field: str = "prompt", messages_field: str = "messages",
                  id_field: str = "id", reference_field: str | None = None,
                  completion_field: str = "completion", rollout_id_field: str = "rollout_id",
                  split: str | None = None) -> RolloutLoadResult:
    """Read (sample, rollout) rows; rows sharing a sample id share one Sample.

    A row whose id repeats an earlier sample with a different prompt or reference is an error.
    Extra columns go to the Sample's metadata (from the sample's first row) and to each
    Rollout's metadata (from its own row).
    """
    fields = _fields(prompt_field, messages_field, id_field, reference_field)
    fields.completion, fields.rollout_id = completion_field, rollout_id_field
    pairs: list[tuple[Sample, Rollout]] = []
    errors: list[DataError] = []
    samples: dict[str, Sample] = {}
    rollout_lines: dict[str, int] = {}
    counts: dict[str, int] = {}
    skip = (completion_field, rollout_id_field)
    for line, row in iter_rows(path, split=split):
        if isinstance(row, DataError):
            errors.append(row)
            continue

        def err(message: str, field: str | None = None, line: int = line) -> RowError:
            return RowError(message, path=str(path), line=line, field=field)

        try:
            trajectory, tools = None, None
            if isinstance(row, dict) and _is_trajectory(row.get(completion_field)):
                parsed = _parse_sample(row, line, str(path), fields, skip=(*skip, "tools"))
                completion, trajectory, tools = read_trajectory(row[completion_field], row.get("tools"), err,
                                                                completion_field)
            else:
                parsed = _parse_sample(row, line, str(path), fields, skip=skip)
                completion = _completion(row.get(completion_field), err, completion_field)
            earlier = samples.get(parsed.id)
            if earlier is not None and (earlier.messages, earlier.reference) != (parsed.messages,
                                                                                 parsed.reference):
                raise err(f"id {parsed.id!r} was used earlier with a different prompt or reference", id_field)
            raw_rollout_id = row.get(rollout_id_field)
            if raw_rollout_id is None:
                rollout_id = f"{parsed.id}/{counts.get(parsed.id, 0)}"
            elif isinstance(raw_rollout_id, (str, int)) and not isinstance(raw_rollout_id, bool):
                rollout_id = str(raw_rollout_id)
            else:
                raise err(f"expected a string or an integer, got {_kind(raw_rollout_id)}", rollout_id_field)
            if rollout_id in rollout_lines:
                raise err(f"duplicate rollout id {rollout_id!r} (first on line {rollout_lines[rollout_id]})",
                          rollout_id_field)
        except RowError as exc:
            errors.append(exc)
            continue
        sample = samples.setdefault(parsed.id, parsed)
        rollout_lines[rollout_id] = line
        counts[sample.id] = counts.get(sample.id, 0) + 1
        pairs.append((sample, Rollout(sample_id=sample.id, completion=completion, id=rollout_id,
                                      metadata=dict(parsed.metadata), location=f"{path}, line {line}",
                                      trajectory=trajectory, tools=tools)))
    return RolloutLoadResult(pairs, errors)


def load_rollouts_strict(path: str | Path, **options: Any) -> list[tuple[Sample, Rollout]]:
    """Like `load_rollouts`, but raise the first error (with the count of bad rows) if any."""
    result = load_rollouts(path, **options)
    _raise_first(path, result.errors, len(result.pairs))
    if not result.pairs:
        raise DataError("no rollouts in the file", path=str(path))
    return result.pairs


# ---------------------------------------------------------------------------------------------
# writing


def _to_jsonable(row: Any) -> Any:
    if hasattr(row, "to_dict"):
        return row.to_dict()
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    return row


def _dumps(row: Any) -> str:
    # allow_nan=False: NaN is not JSON, and a NaN reward is a bug to surface, not to write.
    return json.dumps(_to_jsonable(row), ensure_ascii=False, allow_nan=False)


class JsonlWriter:
    """Appends one JSON object per line and flushes each, so a killed run keeps what it wrote.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out" / "rewards.jsonl"
    >>> with JsonlWriter(path) as out:
    ...     out.write({"id": "a", "reward": 0.5})
    >>> path.read_text()
    '{"id": "a", "reward": 0.5}\\n'
    """

    def __init__(self, path: str | Path, *, mode: str = "a", fsync: bool = False) -> None:
        if mode not in ("a", "w"):
            raise ValueError("mode must be 'a' (append) or 'w' (truncate)")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.count = 0
        self._handle: IO[str] | None = self.path.open(mode, encoding="utf-8")

    def write(self, row: Any) -> None:
        """Write one row (a dict, or an object with `to_dict`, or a dataclass) and flush it."""
        if self._handle is None:
            raise ValueError(f"{self.path} is closed")
        self._handle.write(_dumps(row) + "\n")
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write rows to a JSONL file (replacing it atomically); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(_dumps(row) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def read_json(path: str | os.PathLike[str]) -> Any:
    """A whole JSON file; unreadable or invalid JSON is a DataError naming the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read: {exc}", path=str(path)) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg}", path=str(path), line=exc.lineno) from exc
