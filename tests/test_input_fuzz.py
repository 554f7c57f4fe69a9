"""Property-based fuzzing of what comes from outside (issue 17): input files and server bodies.

Text is arbitrary Unicode with lone surrogates mixed in (hypothesis leaves them out by default),
and values nest from not at all to far past Python's recursion limit. Whatever comes in:

- the loader never raises for a row: each non-blank line is a (sample, rollout) pair or a
  `DataError` naming the file and that line, and every pair's text can be encoded as UTF-8;
- the pipeline scores every pair it is given (a real rubric judge renders and fences the text),
  and every reward can be written as JSON in UTF-8;
- the reward server answers 200 (one number per query item, in [0, 1]), 413 or 422, never 500.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from adapter_fakes import write_config
from judgerl.adapters.openrlhf import create_app, server_config
from judgerl.data import load_rollouts
from judgerl.errors import DataError
from judgerl.judges.templates import fence, fence_tag, marker_end
from judgerl.reward.pipeline import RewardPipeline

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: any code point, with surrogates (which `st.characters()` leaves out) as likely as the rest
any_char = st.one_of(st.characters(exclude_categories=()),
                     st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()))
texts = st.text(any_char, max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=12)


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of `depth` nested arrays around `leaf` (built as text: no recursion to build it)."""
    return "[" * depth + leaf + "]" * depth


@st.composite
def rollout_lines(draw: st.DrawFn) -> str:
    """One line of a rollouts file: mostly the right shape, with fields, text and depth perturbed."""
    kind = draw(st.sampled_from(["row", "row", "row", "deep", "value", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=30)).replace(b"\n", b" ").decode("latin-1")
    if kind == "value":
        return json.dumps(draw(json_values))
    row: dict[str, Any] = {"id": draw(st.one_of(texts, st.integers(0, 3))),
                           "prompt": draw(st.one_of(texts, st.just([{"role": "user", "content": "hi"}]))),
                           "completion": draw(texts)}
    if draw(st.booleans()):
        row["reference"] = draw(st.one_of(texts, st.integers(), json_values))
    if draw(st.booleans()):
        row["meta"] = draw(json_values)
    line = json.dumps(row)  # ensure_ascii: a surrogate becomes the escape a real file would hold
    if kind == "deep":
        depth = draw(st.sampled_from([5, 99, 101, 150, 999, 5000]))
        line = line[:-1] + ', "nested": ' + nested(depth) + "}"
    return line


def _is_blank(raw: bytes) -> bool:
    """A line the loader skips: valid UTF-8 with nothing but (Unicode) white space."""
    try:
        return not raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


@pytest.fixture(scope="module")
def rubric_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewardPipeline]:
    with RewardPipeline.from_config(write_config(tmp_path_factory.mktemp("fuzz"))) as pipeline:
        yield pipeline


@FUZZ
@given(st.lists(rollout_lines(), min_size=1, max_size=8))
def test_loader_and_pipeline_take_any_input_row(tmp_path_factory: pytest.TempPathFactory,
                                                rubric_pipeline: RewardPipeline, lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("rows") / "rollouts.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    pairs, errors = load_rollouts(path)
    raw_lines = path.read_bytes().split(b"\n")[:-1]
    line_count = len(raw_lines)
    blank = sum(1 for raw in raw_lines if _is_blank(raw))
    assert len(pairs) + len(errors) == line_count - blank
    for error in errors:
        assert isinstance(error, DataError) and error.path == str(path)
        assert error.line is not None and 1 <= error.line <= line_count
    for sample, rollout in pairs:
        for text in (rollout.completion, sample.reference or "", *(m["content"] for m in sample.messages)):
            text.encode("utf-8")  # never a lone surrogate past the loader
    rewards = rubric_pipeline.score_batch_sync(pairs, enforce_budget=False)
    assert len(rewards) == len(pairs)
    for reward in rewards:
        json.dumps(reward.to_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")
        assert reward.status in ("ok", "gated", "unscored")


@FUZZ
@given(texts, st.sampled_from(["ANSWER", "QUESTION", "REFERENCE"]))
def test_fence_takes_any_text(text: str, label: str) -> None:
    tag = fence_tag(text, label)
    assert tag.isalpha() and tag.islower() and marker_end(tag) not in text
    assert fence(text, label).splitlines()[0] == f"<<<{label}_{tag}>>>"


# -- the server body --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(rubric_pipeline: RewardPipeline) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(rubric_pipeline, token=None, max_batch=16, max_body_bytes=64 * 1024)
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A /get_reward body: near-valid, with any text, any labels, odd fields or deep nesting."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "deep", "value", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "value":
        return json.dumps(draw(json_values)).encode()
    count = draw(st.integers(1, 5))
    queries = draw(st.lists(texts, min_size=count, max_size=count))
    body: dict[str, Any] = {"query": queries}
    if draw(st.booleans()):
        body["prompts"] = [query[: draw(st.integers(0, 5))] for query in queries]
    if draw(st.booleans()):
        body["labels"] = draw(st.lists(json_values, min_size=count, max_size=count))
    text = json.dumps(body)
    if kind == "deep":
        text = text[:-1] + ', "extra": ' + nested(draw(st.sampled_from([50, 101, 3000, 100_000]))) + "}"
    return text.encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_server_answers_any_body_with_200_413_or_422(server_url: str, body: bytes) -> None:
    response = httpx.post(f"{server_url}/get_reward", content=body,
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code in (200, 413, 422), (response.status_code, response.text[:300])
    data = response.json()
    if response.status_code != 200:
        assert isinstance(data["error"], str)
        return
    queries = json.loads(body)["query"]
    assert len(data["rewards"]) == len(queries)
    for value in data["rewards"]:
        assert isinstance(value, float) and 0.0 <= value <= 1.0
    for values in data["extra_logs"].values():
        assert len(values) == len(queries)


def test_the_fuzz_alphabet_holds_surrogates() -> None:
    """The strategies above are only worth something if they produce lone surrogates."""
    example = find(texts, lambda text: any(0xD800 <= ord(char) <= 0xDFFF for char in text))
    assert len(example) >= 1


formula_tokens = st.sampled_from(["a", "b", "1", "0", "2.5", "1e999", "9", "+", "-", "*", "/", "**", "%",
                                  "//", "&", "@", "(", ")", ",", "min", "max", "clip", "not", "lo=", "x", "[",
                                  "]"])


@FUZZ
@given(st.lists(formula_tokens, max_size=30).map(" ".join),
       st.fixed_dictionaries({"a": st.floats(0, 1), "b": st.floats(0, 1)}))
def test_a_formula_is_refused_at_load_or_gives_a_number_or_a_row_error(text: str, values: dict) -> None:
    """Issue 17, case 4: nothing gets past `Formula(...)` that can raise anything else later."""
    from judgerl.aggregate import Formula, FormulaEvaluationError
    from judgerl.errors import ConfigError

    try:
        formula = Formula(text, {"a", "b"})
    except ConfigError as exc:
        assert exc.field == "aggregate.formula"
        return
    try:
        value = formula(values)
    except FormulaEvaluationError:
        return
    assert 0.0 <= value <= 1.0
