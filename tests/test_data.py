"""Tests for data loading (JSONL, JSON arrays, saved HF datasets) and the JSONL writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgerl.data import (
    JsonlWriter,
    load_rollouts,
    load_rollouts_strict,
    load_samples,
    load_samples_strict,
    write_jsonl,
)
from judgerl.errors import DataError
from judgerl.types import Reward

DATA = Path(__file__).parent / "data"


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# -- samples --------------------------------------------------------------------------------------


def test_mixed_file_keeps_good_rows_and_reports_bad_ones():
    result = load_samples(DATA / "mixed_samples.jsonl")
    assert [sample.id for sample in result.samples] == ["q1", "row-2", "q7", "8"]
    errors = {error.line: error for error in result.errors}
    assert sorted(errors) == [4, 5, 6, 7, 10, 11, 12]
    assert errors[4].field == "messages"
    assert str(errors[4]).endswith("mixed_samples.jsonl, line 4, field 'messages': "
                                   "expected a list of {role, content} (non-empty), got a string")
    assert "not valid JSON" in str(errors[5]) and errors[5].field is None
    assert errors[6].field == "id" and "duplicate id 'q1' (first on line 1)" in str(errors[6])
    assert "expected a JSON object, got a list" in str(errors[7])
    assert errors[10].field == "messages.0.content"
    assert errors[11].field == "messages" and "missing" in str(errors[11])
    assert "not both" in str(errors[12])


def test_sample_fields_reference_aliases_and_metadata():
    samples = {sample.id: sample for sample in load_samples(DATA / "mixed_samples.jsonl").samples}
    q1 = samples["q1"]
    assert q1.messages[0] == {"role": "system", "content": "Be brief."}
    assert q1.prompt == "Capital of France?"
    assert q1.reference == "Paris"
    assert q1.metadata == {"topic": "geo"}
    plain = samples["row-2"]
    assert plain.messages == [{"role": "user", "content": "2 + 2 = ?"}]
    assert plain.reference == "4"
    assert plain.metadata == {}
    parts = samples["q7"]
    assert parts.prompt == "Résumé en français"
    assert json.loads(parts.reference) == {"label": "fr"}
    nested = samples["8"]
    assert nested.prompt == "TRL conversational prompt"
    assert nested.reference == "ok"
    assert nested.metadata == {"source": "bedrock"}


def test_first_reference_alias_wins_and_others_stay_metadata(tmp_path):
    path = write_rows(tmp_path / "s.jsonl", [{"prompt": "p", "reference": "R", "answer": "A"}])
    sample = load_samples(path).samples[0]
    assert sample.reference == "R"
    assert sample.metadata == {"answer": "A"}


def test_custom_field_names(tmp_path):
    path = write_rows(tmp_path / "s.jsonl", [{"uid": "a", "question": "Why?", "gold": "Because",
                                             "answer": "kept"}])
    sample = load_samples(path, prompt_field="question", id_field="uid", reference_field="gold").samples[0]
    assert (sample.id, sample.prompt, sample.reference) == ("a", "Why?", "Because")
    assert sample.metadata == {"answer": "kept"}


def test_bad_id_and_reference_types(tmp_path):
    path = write_rows(tmp_path / "s.jsonl", [{"id": ["x"], "prompt": "p"}, {"id": "", "prompt": "p"},
                                            {"prompt": "p", "reference": True}])
    result = load_samples(path)
    assert result.samples == []
    assert [(error.line, error.field) for error in result.errors] == [(1, "id"), (2, "id"), (3, "reference")]


def test_unicode_bom_and_bad_bytes(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"prompt": "日本語 ✓"}, ensure_ascii=False).encode()
                     + b"\n" + b'{"prompt": "\xff\xfe"}\n')
    result = load_samples(path)
    assert [sample.prompt for sample in result.samples] == ["日本語 ✓"]
    assert result.errors[0].line == 2 and "not UTF-8" in str(result.errors[0])


def test_strict_raises_first_error_with_a_summary():
    with pytest.raises(DataError) as info:
        load_samples_strict(DATA / "mixed_samples.jsonl")
    error = info.value
    assert (error.line, error.field) == (4, "messages")
    assert "7 of 11 rows are bad" in str(error)


def test_strict_returns_samples_and_refuses_empty_files(tmp_path):
    good = write_rows(tmp_path / "good.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    assert [sample.id for sample in load_samples_strict(good)] == ["row-1", "row-2"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert load_samples(empty).samples == []
    with pytest.raises(DataError, match="no samples"):
        load_samples_strict(empty)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_samples(tmp_path / "nope.jsonl")


def test_json_array_reports_real_line_numbers(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('[\n  {"id": "a", "prompt": "x"},\n  {"id": "b",\n   "prompt": 3},\n'
                    '  {"prompt": "y"}\n]\n')
    result = load_samples(path)
    assert [sample.id for sample in result.samples] == ["a", "row-5"]
    assert [(error.line, error.field) for error in result.errors] == [(3, "prompt")]


def test_json_array_syntax_error_keeps_earlier_rows(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('[{"prompt": "x"},\n {"prompt": oops}]')
    result = load_samples(path)
    assert len(result.samples) == 1
    assert result.errors[0].line == 2 and "not valid JSON" in str(result.errors[0])


def test_json_file_holding_jsonl_is_read_as_jsonl(tmp_path):
    path = write_rows(tmp_path / "s.json", [{"prompt": "a"}, {"prompt": "b"}])
    assert len(load_samples(path).samples) == 2


def test_saved_hugging_face_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": "a", "prompt": "Hello", "reference": "Hi", "level": 1},
            {"id": "b", "prompt": "", "reference": None, "level": 2}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    result = load_samples(tmp_path / "single")
    assert [(s.id, s.prompt, s.reference, s.metadata) for s in result.samples] == [
        ("a", "Hello", "Hi", {"level": 1}), ("b", "", None, {"level": 2})]

    split = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                                  "test": datasets.Dataset.from_list([{"prompt": 5}])})
    split.save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(DataError, match="choose a split") as info:
        load_samples(tmp_path / "dict")
    assert info.value.field == "split"
    assert [s.id for s in load_samples(tmp_path / "dict", split="train").samples] == ["a"]
    bad = load_samples(tmp_path / "dict", split="test")
    assert (bad.errors[0].line, bad.errors[0].field) == (1, "prompt")


def test_folder_that_is_not_a_dataset(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="save_to_disk"):
        load_samples(tmp_path)


# -- rollouts -------------------------------------------------------------------------------------


def test_rollouts_mixed_file():
    pairs, errors = load_rollouts(DATA / "rollouts.jsonl")
    assert [(sample.id, rollout.id, rollout.completion) for sample, rollout in pairs] == [
        ("q1", "q1/0", "Paris"), ("q1", "q1/1", "Lyon"), ("q2", "r-q2", "4"),
        ("q5", "q5/0", "Hello"), ("q6", "q6/0", "")]
    assert pairs[0][0] is pairs[1][0]
    assert pairs[0][0].metadata == {"policy": "base"}
    assert pairs[1][1].metadata == {"policy": "rft"}
    assert pairs[2][0].reference == "4"
    assert [(error.line, error.field) for error in errors] == [
        (4, "rollout_id"), (5, "id"), (6, "completion"), (7, "completion")]
    assert "duplicate rollout id 'r-q2' (first on line 3)" in str(errors[0])
    assert "different prompt" in str(errors[1])
    assert "no assistant message" in str(errors[3])


def test_rollouts_strict():
    with pytest.raises(DataError) as info:
        load_rollouts_strict(DATA / "rollouts.jsonl")
    assert info.value.line == 4 and "4 of 9 rows are bad" in str(info.value)


def test_rollout_bad_completion_type(tmp_path):
    path = write_rows(tmp_path / "r.jsonl", [{"prompt": "p", "completion": 42}])
    errors = load_rollouts(path).errors
    assert errors[0].field == "completion" and "got a int" not in str(errors[0])
    assert "expected a string or a chat list" in str(errors[0])


# -- writing --------------------------------------------------------------------------------------


def test_jsonl_writer_appends_and_flushes_each_row(tmp_path):
    path = tmp_path / "deep" / "rewards.jsonl"
    writer = JsonlWriter(path)
    writer.write({"id": "a", "text": "é"})
    assert path.read_text(encoding="utf-8") == '{"id": "a", "text": "é"}\n'  # visible before close
    writer.write(Reward(sample_id="s", rollout_id="r", value=None, status="unscored", reason="timeout"))
    writer.close()
    with JsonlWriter(path, fsync=True) as again:
        again.write({"id": "b"})
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row.get("id") for row in rows] == ["a", None, "b"]
    assert rows[1]["value"] is None and rows[1]["reason"] == "timeout"
    with pytest.raises(ValueError, match="closed"):
        writer.write({"late": True})


def test_jsonl_writer_refuses_nan(tmp_path):
    with JsonlWriter(tmp_path / "r.jsonl") as writer, pytest.raises(ValueError):
        writer.write({"reward": float("nan")})


def test_write_jsonl_replaces_and_round_trips(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")
    rows = [{"id": str(i), "prompt": f"p{i}"} for i in range(3)]
    assert write_jsonl(path, rows) == 3
    assert [sample.prompt for sample in load_samples_strict(path)] == ["p0", "p1", "p2"]
    assert not (tmp_path / "out.jsonl.tmp").exists()


def test_a_one_line_json_array_without_ids_is_reported_as_the_input_guide_says(tmp_path):
    """docs/guides/input-files.md: rows of a one-line array share the default id row-1."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"prompt": "a", "completion": "x"}, {"prompt": "b", "completion": "y"}]))
    result = load_rollouts(path)
    assert [sample.id for sample, _ in result.pairs] == ["row-1"]
    assert "id 'row-1' was used earlier" in str(result.errors[0])
