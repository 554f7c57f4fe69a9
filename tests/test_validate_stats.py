"""Validation's plain-Python statistics, its loaders for the vendored and user sets, and suite parsing.

The statistics are checked against independent formulas (hypothesis) and known values; the
loaders against the sets shipped inside the package (found as users would find them) and
against bad user files, whose errors must name the file, line and field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import judgerl
from judgerl.errors import ConfigError, DataError
from judgerl.validate import stats
from judgerl.validate.datasets import (
    AnswerItem,
    PairItem,
    find_data_dir,
    load_evalbiasbench,
    load_labelled_file,
    load_llmbar_natural,
    load_source,
)
from judgerl.validate.suite import DataSource, load_regression_items, load_suite

# --------------------------------------------------------------------------- statistics


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=3, max_size=30, unique=True),
       st.randoms(use_true_random=False))
def test_spearman_without_ties_matches_the_rank_difference_formula(values: list[int], rng) -> None:
    other = list(values)
    rng.shuffle(other)
    n = len(values)
    ranks_x, ranks_y = stats.rank(values), stats.rank(other)
    expected = 1 - 6 * sum((a - b) ** 2 for a, b in zip(ranks_x, ranks_y, strict=True)) / (n * (n * n - 1))
    assert stats.spearman(values, other) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc")), min_size=1, max_size=40))
def test_kappa_is_at_most_one_and_one_exactly_on_full_agreement(rows: list[tuple[str, str]]) -> None:
    x, y = [r[0] for r in rows], [r[1] for r in rows]
    kappa = stats.cohen_kappa(x, y)
    if kappa is None:  # only when chance agreement is total: both raters used one label
        assert len(set(x)) == 1 and set(x) == set(y)
        return
    assert -1.0 <= kappa <= 1.0 + 1e-12
    assert math.isclose(stats.cohen_kappa(x, x) or 1.0, 1.0)


def test_kappa_known_table_and_weighted_near_misses() -> None:
    # 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5, kappa = 0.4
    x = ["yes"] * 25 + ["no"] * 25
    y = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert stats.cohen_kappa(x, y) == pytest.approx(0.4)
    near = stats.cohen_kappa([1, 2, 3, 4], [2, 3, 4, 4], weights="quadratic")
    far = stats.cohen_kappa([1, 2, 3, 4], [4, 4, 1, 1], weights="quadratic")
    assert near is not None and far is not None and near > 0.5 > 0 > far


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate() -> None:
    data = [1.0] * 30 + [0.0] * 10
    first = stats.bootstrap_ci(data, stats.mean, seed=7)
    assert first == stats.bootstrap_ci(data, stats.mean, seed=7)
    assert first is not None and first[0] < 0.75 < first[1]
    assert first[1] - first[0] < 0.35
    assert stats.bootstrap_ci([1.0, 1.0], lambda xs: None) is None  # statistic never defined


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        stats.spearman([1, 2], [1])


# --------------------------------------------------------------------------- vendored sets


def test_vendored_sets_load_with_limits_and_balanced_labels() -> None:
    llmbar = load_llmbar_natural(limit=5)
    assert len(llmbar) == 5 and all(item.label in ("a", "b") for item in llmbar)
    assert len(load_llmbar_natural()) == 100
    bias = load_evalbiasbench()
    assert len(bias) == 80
    labels = [item.label for item in bias]
    assert 30 <= labels.count("a") <= 50, "EvalBiasBench's label is always 1: the loader must swap half"
    first_six = load_evalbiasbench(limit=6)
    assert len({item.category for item in first_six}) == 6, "a small limit covers every bias type"
    only_length = load_evalbiasbench(biases=["length bias"])
    assert {item.category for item in only_length} == {"length bias"} and len(only_length) == 17
    with pytest.raises(ConfigError, match="unknown bias"):
        load_evalbiasbench(biases=["no such bias"])


def test_max_chars_keeps_short_items_before_the_limit() -> None:
    source = DataSource(dataset="llmbar-natural", max_chars=400, limit=5)
    items = load_source(source, Path.cwd(), where="human_labels.data")
    assert len(items) == 5 and all(len(i.prompt) + len(i.a) + len(i.b) <= 400 for i in items)
    with pytest.raises(ConfigError, match="at most 10 characters"):
        load_source(DataSource(dataset="llmbar-natural", max_chars=10), Path.cwd(), where="x")


def test_data_dir_is_the_packaged_one_unless_the_environment_names_another(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JUDGERL_VALIDATION_DATA", raising=False)
    packaged = find_data_dir()
    package_root = Path(judgerl.__file__).resolve().parent
    assert packaged.is_relative_to(package_root)
    assert (packaged / "llmbar-natural" / "LICENSE").is_file()
    assert (packaged / "evalbiasbench" / "LICENSE").is_file()
    own = tmp_path / "mine" / "judge-validation" / "llmbar-natural"
    own.mkdir(parents=True)
    rows = json.loads((packaged / "llmbar-natural" / "dataset.json").read_text(encoding="utf-8"))[:3]
    (own / "dataset.json").write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv("JUDGERL_VALIDATION_DATA", str(tmp_path / "mine"))  # the folder above works too
    assert find_data_dir() == own.parent
    assert len(load_llmbar_natural()) == 3
    monkeypatch.setenv("JUDGERL_VALIDATION_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="JUDGERL_VALIDATION_DATA"):
        find_data_dir()


# --------------------------------------------------------------------------- user labelled files


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_labelled_file_pairs_and_scores(tmp_path: Path) -> None:
    pairs = load_labelled_file(write_jsonl(tmp_path / "p.jsonl", [
        {"id": "x", "prompt": "2+2?", "answer_a": "4", "answer_b": "5", "label": "a"},
        {"prompt": "3+3?", "answer_a": "7", "answer_b": "6", "label": "b", "category": "math"}]))
    assert pairs == [PairItem("x", "2+2?", "4", "5", "a"),
                     PairItem("row-2", "3+3?", "7", "6", "b", None, "math")]
    scores = load_labelled_file(write_jsonl(tmp_path / "s.jsonl", [
        {"prompt": "2+2?", "answer": "4", "score": 5},
        {"prompt": "2+2?", "answer": "5", "score": 1}]), limit=1)
    assert scores == [AnswerItem("row-1", "2+2?", "4", 5.0)]


@pytest.mark.parametrize(("rows", "line", "field"), [
    ([{"prompt": "q", "answer_a": "x", "answer_b": "y", "label": "a"},
      {"prompt": "q", "answer_a": "x", "answer_b": "y", "label": "first"}], 2, "label"),
    ([{"prompt": "q", "answer": "x", "score": 1}, {"prompt": "q", "answer": "x"}], 2, "score"),
    ([{"prompt": "q", "answer": "x", "score": 1, "grade": 3}], 1, "grade"),
])
def test_bad_labelled_rows_name_file_line_and_field(tmp_path: Path, rows: list[dict], line: int,
                                                    field: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as caught:
        load_labelled_file(path)
    assert caught.value.path == str(path) and caught.value.line == line and caught.value.field == field


def test_unparseable_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "q", "answer": "a", "score": 1}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        load_labelled_file(path)


# --------------------------------------------------------------------------- suite file


def test_suite_thresholds_come_from_min_and_max_fields(tmp_path: Path) -> None:
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(
        "consistency: {data: {dataset: llmbar-natural, limit: 2}, repeats: 4, max_mean_spread: null}\n"
        "bias:\n  attacks: {adversarial_set: true, max_false_positive_rate: 0.1}\n", encoding="utf-8")
    suite = load_suite(suite_path, overrides=["consistency.max_changed_share=0.3"])
    thresholds = {(t.section, t.figure): (t.kind, t.bound) for t in suite.thresholds()}
    assert thresholds == {("consistency", "changed_share"): ("max", 0.3),
                          ("bias.attacks", "false_positive_rate"): ("max", 0.1)}
    assert suite.consistency is not None and suite.consistency.repeats == 4


@pytest.mark.parametrize(("text", "field"), [
    ("consistency: {data: {dataset: x}, repeats: 1}", "consistency.repeats"),
    ("consistency: {data: {dataset: x, items: [{}]}}", "consistency.data"),
    ("regression: {items: []}\nbogus: 1", "bogus"),
    ("bias: {position: {data: {dataset: x}, min_consistency: 0.9}}", "bias.position.min_consistency"),
])
def test_suite_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    assert caught.value.path == str(path) and caught.value.field == field


def test_empty_suite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no enabled section"):
        load_suite({"consistency": {"enabled": False, "data": {"dataset": "llmbar-natural"}}})


def test_regression_items_are_validated_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "regression.yaml"
    path.write_text("items:\n"
                    "  - {id: ok, prompt: q, answer: x, expect: pass}\n"
                    "  - {id: pair, prompt: q, a: x, b: y, expect: pass}\n", encoding="utf-8")
    suite = load_suite({"regression": {"file": str(path)}})
    assert suite.regression is not None
    with pytest.raises(ConfigError) as caught:
        load_regression_items(suite.regression, suite)
    assert caught.value.field == "items.1" and "pair" in str(caught.value)
