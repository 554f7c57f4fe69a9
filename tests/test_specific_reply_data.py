"""The demo's `specific-reply` labelled set: reproducible from its script, loadable, split by
scenario, and not separable by any single word of the reply (the labels are about substance)."""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from pathlib import Path

from judgerl.validate.datasets import AnswerItem, load_labelled_file

FOLDER = Path(__file__).resolve().parents[1] / "src" / "judgerl" / "data" / "specific-reply"


def _generator():
    spec = importlib.util.spec_from_file_location("specific_reply_generate", FOLDER / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_files_are_what_the_script_writes(tmp_path: Path) -> None:
    _generator().write(tmp_path)
    for name in ("train.jsonl", "held_out.jsonl"):
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), name
    assert (FOLDER / "LICENSE").is_file() and "Written for judgerl" in (FOLDER / "README.md").read_text()


def test_rows_load_in_the_validate_format_and_hold_out_whole_scenarios() -> None:
    train = load_labelled_file(FOLDER / "train.jsonl")
    held = load_labelled_file(FOLDER / "held_out.jsonl")
    assert len(train) >= 250 and len(held) >= 80
    assert all(isinstance(item, AnswerItem) and item.score in (0.0, 1.0) for item in [*train, *held])
    assert not {item.category for item in train} & {item.category for item in held}
    assert not {item.prompt for item in train} & {item.prompt for item in held}
    for rows in (train, held):
        share = sum(item.score or 0 for item in rows) / len(rows)
        assert 0.35 < share < 0.55


def test_no_single_word_of_the_reply_tells_the_labels_apart() -> None:
    """The best one-word rule ("pass iff the reply contains W", or its negation) stays far from
    what a judge must reach: apologies, courtesy and topic words occur on both sides."""
    items = [item for item in load_labelled_file(FOLDER / "train.jsonl") if isinstance(item, AnswerItem)]
    words = [set(re.findall(r"[a-z']+", item.answer.lower())) for item in items]
    labels = [item.score == 1 for item in items]
    best = 0.0
    for word in Counter(w for bag in words for w in bag):
        hits = sum((word in bag) == label for bag, label in zip(words, labels, strict=True))
        best = max(best, hits / len(items), 1 - hits / len(items))
    assert best < 0.75, best
