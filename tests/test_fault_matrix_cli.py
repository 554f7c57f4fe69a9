"""The fault matrix, `judgerl score` rows: what a run and a rerun do with faults of the judge, the
input, the config and the files around it (issue 17).

Each row runs the real command (typer's runner, in process) against the fake OpenAI server on
loopback or the scripted backend, with real files and a real SQLite cache, and checks what the
user gets: the rows of the output (each rollout exactly once), the exit code (0, or 2 with a
message naming the file, line or field: never a traceback), and what a rerun does.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer, Reply
from judgerl.cli import app

runner = CliRunner()
VERDICT = json.dumps({"criteria": {"correct": {"rationale": "matches", "score": True}}})


def write_config(folder: Path, server: FakeOpenAIServer | None = None, *, body: str = "",
                 judge: bool = True, runtime: str = "", name: str = "reward.yaml") -> Path:
    """A small reward config: an optional rubric judge (fake server or scripted) and `body`."""
    if server is not None:
        backend = (f"  judge: {{type: openai, base_url: '{server.url}', model: fake, max_concurrency: 8, "
                   "timeout_s: 5}")
    else:
        backend = f"  judge: {{type: scripted, answer: '{VERDICT}'}}"
    judges = textwrap.dedent("""\
        judges:
          - name: quality
            type: rubric
            criteria: [{name: correct, kind: check, description: right}]
        """) if judge else ""
    text = ("backends:\n" + backend + "\n"
            + "runtime: {max_attempts: 2, backoff_base_s: 0.01, backoff_max_s: 0.02, breaker_window: 10,"
            + f" breaker_cooldown_s: 30{', ' + runtime if runtime else ''}}}\n"
            + "failure_budget: null\n" + judges + textwrap.dedent(body))
    path = folder / name
    path.write_text(text)
    return path


def write_rollouts(path: Path, count: int, **fields: Any) -> Path:
    with path.open("w") as handle:
        for index in range(count):
            row = {"id": f"q{index}", "prompt": f"Question {index}?", "reference": f"answer {index}",
                   "completion": f"answer {index}", **fields}
            handle.write(json.dumps(row) + "\n")
    return path


def score(config: Path, rollouts: Path, output: Path, *args: str) -> Any:
    return runner.invoke(app, ["score", "-c", str(config), "-i", str(rollouts), "-o", str(output), *args])


def read_rewards(path: Path) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_id = {row["rollout_id"]: row for row in rows}
    assert len(by_id) == len(rows), "each rollout must appear exactly once"
    return by_id


# -- case 1: a rerun scores again what an outage left unscored ---------------------------------


def test_case01_rerun_scores_again_the_rows_an_outage_left_unscored(fake_openai: FakeOpenAIServer,
                                                                    tmp_path: Path):
    served = itertools.count()
    outage = {"requests": 25}  # the judge answers 503 to its first 25 requests, then is healthy
    fake_openai.responder = lambda _request: (Reply(status=503, error="warming up")
                                              if next(served) < outage["requests"] else Reply(text=VERDICT))
    config = write_config(tmp_path, fake_openai)
    rollouts, output = write_rollouts(tmp_path / "in.jsonl", 200), tmp_path / "out.jsonl"

    first = score(config, rollouts, output)
    assert first.exit_code == 0, first.output
    after_outage = read_rewards(output)
    unscored = {key for key, row in after_outage.items() if row["status"] == "unscored"}
    assert len(after_outage) == 200 and len(unscored) > 100, "the outage left most rows unscored"
    assert {row["reason"].split(":")[0] for key, row in after_outage.items() if key in unscored} \
        <= {"circuit_open", "http_503"}
    assert "a rerun scores unscored rows again" in first.output

    outage["requests"] = 0  # the breaker stopped the first run before 25 requests: end the outage
    second = score(config, rollouts, output)
    assert second.exit_code == 0, second.output
    recovered = read_rewards(output)
    assert len(recovered) == 200 and all(row["status"] == "ok" for row in recovered.values())
    assert f"scored {len(unscored)} ({len(unscored)} unscored before" in second.output
    assert f"skipped (final, already in output) {200 - len(unscored)}" in second.output
    for key, row in after_outage.items():  # final rows were kept as they were
        if key not in unscored:
            assert recovered[key] == row


def test_case01_keep_unscored_leaves_unscored_rows_as_they_are(fake_openai: FakeOpenAIServer,
                                                              tmp_path: Path):
    fake_openai.responder = lambda request: (Reply(status=503, error="down")
                                             if "Question 1?" in request.prompt else Reply(text=VERDICT))
    config = write_config(tmp_path, fake_openai)
    rollouts, output = write_rollouts(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
    assert score(config, rollouts, output).exit_code == 0
    before = output.read_text()
    assert read_rewards(output)["q1/0"]["status"] == "unscored"
    requests = fake_openai.request_count

    kept = score(config, rollouts, output, "--keep-unscored")
    assert kept.exit_code == 0, kept.output
    assert output.read_text() == before and fake_openai.request_count == requests
    assert "skipped (final, already in output) 3" in kept.output

    fake_openai.responder = lambda _request: Reply(text=VERDICT)  # the outage is over
    retried = score(config, rollouts, output)
    assert retried.exit_code == 0, retried.output
    assert {key: row["status"] for key, row in read_rewards(output).items()} == dict.fromkeys(
        ["q0/0", "q1/0", "q2/0"], "ok")
    assert fake_openai.request_count == requests + 1, "only the unscored row was asked again"


def test_case01_a_rerun_drops_a_torn_line_and_a_duplicated_row(tmp_path: Path):
    config = write_config(tmp_path)
    rollouts, output = write_rollouts(tmp_path / "in.jsonl", 3), tmp_path / "out.jsonl"
    assert score(config, rollouts, output).exit_code == 0
    lines = output.read_text().splitlines(keepends=True)
    output.write_text(lines[0] + lines[0] + lines[1] + lines[2][:20])  # a twice-written row, a torn one
    rerun = score(config, rollouts, output)
    assert rerun.exit_code == 0, rerun.output
    assert set(read_rewards(output)) == {"q0/0", "q1/0", "q2/0"}


# -- case 4: formulas --------------------------------------------------------------------------


@pytest.mark.parametrize(("formula", "message"), [
    ("quality % 2", "operator '%' is not allowed"),
    ("quality // 2", "operator '//' is not allowed"),
    ("quality & 1", "operator '&' is not allowed"),
    ("quality @ quality", "operator '@' is not allowed"),
    ("9**9**9", "cannot be computed"),
    ("quality * 1e999", "out of range"),
    ("min()", "min() needs at least 2 arguments"),
    ("+".join(["quality"] * 20000), "characters long"),
    ("-" * 200 + "quality", "nested more than"),
], ids=["mod", "floordiv", "and", "matmul", "huge-power", "huge-constant", "empty-min", "20000-terms",
        "deep"])
def test_case04_a_bad_formula_is_exit_2_naming_the_file_and_field(tmp_path: Path, formula: str, message: str):
    config = write_config(tmp_path, body=f"aggregate: {{method: formula, formula: {json.dumps(formula)}}}\n")
    rollouts = write_rollouts(tmp_path / "in.jsonl", 2)
    result = score(config, rollouts, tmp_path / "out.jsonl")
    assert result.exit_code == 2, result.output
    assert str(config) in result.output and "aggregate.formula" in result.output
    assert message in result.output
    assert not (tmp_path / "out.jsonl").exists(), "nothing was scored"


def test_case04_the_formula_is_checked_when_the_config_loads(tmp_path: Path):
    """Every command that loads a reward config (score, validate, train, evaluate) refuses it."""
    from judgerl.config import load_reward_config
    from judgerl.errors import ConfigError

    config = write_config(tmp_path, body="aggregate: {method: formula, formula: 'quality // 2'}\n")
    with pytest.raises(ConfigError) as caught:
        load_reward_config(config)
    assert caught.value.path == str(config) and caught.value.field == "aggregate.formula"


def test_case04_a_division_by_zero_is_that_rows_failure(tmp_path: Path):
    body = """\
        checks:
          - {name: length, type: length, unit: chars, min: 0, max: 1000}
        aggregate: {method: formula, formula: "min(1, quality / length)"}
        """
    config = write_config(tmp_path, body=body)
    rollouts = tmp_path / "in.jsonl"
    write_rollouts(rollouts, 20)
    rows = rollouts.read_text().splitlines()
    rows[12] = json.dumps({"id": "empty", "prompt": "Say nothing.", "completion": ""})
    rollouts.write_text("\n".join(rows) + "\n")
    # a length check scoring 0 for the empty answer: min=1 makes the empty completion score 0
    config.write_text(config.read_text().replace("min: 0, max: 1000", "min: 1, max: 1000, tolerance: 0"))
    output = tmp_path / "out.jsonl"
    result = score(config, rollouts, output)
    assert result.exit_code == 0, result.output
    rewards = read_rewards(output)
    assert len(rewards) == 20
    assert rewards["empty/0"]["status"] == "unscored"
    assert rewards["empty/0"]["reason"].startswith("aggregate_error: formula 'min(1, quality / length)'")
    assert "division by zero" in rewards["empty/0"]["reason"]
    assert sum(row["status"] == "ok" for row in rewards.values()) == 19


# -- case 5 and 6: input rows that cannot be handled ---------------------------------------------


def test_case05_case06_a_lone_surrogate_or_deep_nesting_is_that_rows_error(tmp_path: Path):
    config = write_config(tmp_path)
    rollouts = tmp_path / "in.jsonl"
    write_rollouts(rollouts, 4)
    rows = rollouts.read_text().splitlines()
    rows[1] = '{"id": "s", "prompt": "Hi", "completion": "broken \\ud800 text"}'  # JSON escape, no pair
    rows[2] = '{"id": "p", "prompt": "Hi \\udfff", "completion": "fine"}'
    deep = "[" * 5000 + "]" * 5000
    rows.append('{"id": "deep", "prompt": "Hi", "completion": "x", "meta": ' + deep + "}")
    rows.append('{"id": "deep2", "prompt": "Hi", "completion": "x", "meta": ' + "[" * 150 + "]" * 150 + "}")
    rollouts.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out.jsonl"
    result = score(config, rollouts, output)
    assert result.exit_code == 0, result.output
    assert "line 2, field 'completion': has a lone surrogate at character 7" in result.output
    assert "line 3, field 'prompt': has a lone surrogate at character 3" in result.output
    assert "line 5: nested more than 100 levels deep" in result.output
    assert "line 6: nested more than 100 levels deep" in result.output
    assert set(read_rewards(output)) == {"q0/0", "q3/0"}


# -- case 7: a row without a reference under a match check ----------------------------------------


def test_case07_a_row_without_reference_is_that_rows_failure_naming_file_and_line(tmp_path: Path):
    config = write_config(tmp_path, body="checks:\n  - {name: exact, type: match, mode: exact}\n")
    rollouts = tmp_path / "in.jsonl"
    write_rollouts(rollouts, 5)
    rows = rollouts.read_text().splitlines()
    rows[3] = json.dumps({"id": "noref", "prompt": "Anything?", "completion": "something"})
    rollouts.write_text("\n".join(rows) + "\n")
    output = tmp_path / "out.jsonl"
    result = score(config, rollouts, output)
    assert result.exit_code == 0, result.output
    rewards = read_rewards(output)
    assert len(rewards) == 5
    bad = rewards["noref/0"]
    assert bad["status"] == "unscored" and bad["value"] is None
    assert bad["reason"].startswith(f"data_error: {rollouts}, line 4, field 'reference': ")
    assert "needs a reference answer" in bad["reason"]
    assert all(row["status"] == "ok" for key, row in rewards.items() if key != "noref/0")
    assert "data_error (1)" in result.output


# -- case 8: files that are not what they should be: exit 2 with a message, no traceback ----------


def assert_clean_exit_2(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    for needle in needles:
        assert needle in result.output, (needle, result.output)


def test_case08_cache_path_that_is_a_folder(tmp_path: Path):
    (tmp_path / "cache").mkdir()
    config = write_config(tmp_path, runtime=f"cache_path: '{tmp_path / 'cache'}'")
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, str(config), "runtime.cache_path", "is a folder")


def test_case08_cache_path_that_is_not_sqlite(tmp_path: Path):
    (tmp_path / "cache.sqlite").write_text("this is not a database, just text\n" * 100)
    config = write_config(tmp_path, runtime=f"cache_path: '{tmp_path / 'cache.sqlite'}'")
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, str(config), "runtime.cache_path", "is not a judgerl cache")


def test_case08_journal_path_that_is_a_folder(tmp_path: Path):
    (tmp_path / "journal").mkdir()
    config = write_config(tmp_path, runtime=f"journal_path: '{tmp_path / 'journal'}'")
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, str(config), "runtime.journal_path", "is a folder")


def test_case08_yaml_nested_too_deep(tmp_path: Path):
    config = write_config(tmp_path)
    config.write_text(config.read_text() + "extra: " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, str(config), "nested more than 100 levels deep")


@pytest.mark.parametrize(("content", "needle"), [
    (b'{"sample_id": "q0", "rollout_id": "q0/0", "status": "ok", "value": 1.0}\n{"torn in the midd\n'
     b'{"sample_id": "q1", "rollout_id": "q1/0", "status": "ok", "value": 1.0}\n', "line 2: not valid JSON"),
    (b'{"sample_id": "q0", "rollout_id": "q0/0", "status": "ok"}\n\xff\xfe binary\n', "line 2: not UTF-8"),
    (b'[1, 2, 3]\n', "line 1: expected a JSON object"),
    (b'{"id": "q0", "reward": 1}\n', "line 1: a reward needs string 'sample_id'"),
], ids=["corrupt", "not-utf8", "not-objects", "not-rewards"])
def test_case08_existing_output_that_is_not_a_rewards_file(tmp_path: Path, content: bytes, needle: str):
    output = tmp_path / "out.jsonl"
    output.write_bytes(content)
    config = write_config(tmp_path)
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 2), output)
    assert_clean_exit_2(result, str(output), needle, "--no-resume")
    assert output.read_bytes() == content, "the file was left as it was"


# -- case 9: a YAML bomb in the config ---------------------------------------------------------------


def test_case09_billion_laughs_in_extra_body_is_refused_when_the_config_loads(fake_openai: FakeOpenAIServer,
                                                                            tmp_path: Path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for this, prior in zip("bcdefghi", "abcdefgh", strict=True):
        levels.append(f"{this}: &{this} [" + ",".join([f"*{prior}"] * 9) + "]")
    bomb = "\n".join("      " + line for line in levels)
    config = write_config(tmp_path, fake_openai)
    text = config.read_text().replace("timeout_s: 5}", "timeout_s: 5, extra_body: {lol: *i}}")
    config.write_text("anchors:\n" + bomb.replace("      ", "  ") + "\n" + text)
    started = time.monotonic()
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert time.monotonic() - started < 10
    assert_clean_exit_2(result, str(config), "aliases expand to more than 10,000 nodes")
    assert fake_openai.request_count == 0


# -- case 12: errors from component options name the config file --------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ("checks:\n  - {name: length, type: length, maximum: 3}\n", "checks.length.maximum"),
    ("checks:\n  - {name: exact, type: match, mode: regex, pattern: '('}\n", "checks.exact.pattern"),
], ids=["check-option", "check-regex"])
def test_case12_component_option_errors_name_the_config_file(tmp_path: Path, body: str, field: str):
    config = write_config(tmp_path, body=body)
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, f"{config}, field '{field}'")


def test_case12_judge_and_backend_option_errors_name_the_config_file(tmp_path: Path):
    config = write_config(tmp_path, judge=False, body=textwrap.dedent("""\
        judges:
          - {name: quality, type: rubric, criteria: [{name: c, kind: check, description: d}], max_tokens: -1}
        """))
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, f"{config}, field 'judges.quality.max_tokens'")
    config.write_text(config.read_text().replace("max_tokens: -1", "max_tokens: 8").replace(
        "type: scripted,", "type: scripted, latency_s: -2,"))
    result = score(config, write_rollouts(tmp_path / "in.jsonl", 1), tmp_path / "out.jsonl")
    assert_clean_exit_2(result, f"{config}, field 'backends.judge.latency_s'")


# -- also seen: two writers on one output --------------------------------------------------------


def test_a_second_writer_of_the_same_output_is_refused(fake_openai: FakeOpenAIServer, tmp_path: Path):
    # slow enough (~15 s) that the second writer starts while the first one writes, even when a
    # loaded machine takes seconds to start a Python process
    fake_openai.default = Reply(text=VERDICT, delay_s=0.3)
    config = write_config(tmp_path, fake_openai)
    rollouts, output = write_rollouts(tmp_path / "in.jsonl", 200), tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "judgerl.cli", "score", "-c", str(config), "-i", str(rollouts),
               "-o", str(output), "--batch-size", "4"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (output.exists() and output.read_text().count("\n") >= 5):
        assert time.monotonic() < deadline and first.poll() is None, "the first writer did not start"
        time.sleep(0.05)
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=120) == 0, first.stderr.read() if first.stderr else ""
    assert second.returncode == 2, second.stderr
    assert "another `judgerl score` is writing this output" in second.stderr
    assert "Traceback" not in second.stderr
    assert len(read_rewards(output)) == 200, "every rollout exactly once"
