"""`judgerl score` end to end: real HTTP to a fake judge on loopback, the scripted backend, the
dry run, clear errors, and crash safety (SIGKILL midway, rerun, nothing judged twice)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
ROLLOUTS = EXAMPLES / "rollouts.jsonl"
runner = CliRunner()


def rubric_judge(request: RecordedRequest) -> Reply:
    """A fake judge that checks the fenced answer against the reference it was shown."""
    prompt = request.prompt
    answer = re.search(r"<<<ANSWER_\w+>>>\n(.*?)\n<<<END_ANSWER_\w+>>>", prompt, re.S).group(1)
    correct = ("Paris" in answer and "Lyon" not in answer) or "100 degrees Celsius" in answer
    verdict = {"criteria": {
        "correct": {"rationale": "matches the reference" if correct else "wrong", "score": correct},
        "calibrated": {"rationale": "fine", "score": True},
        "concise": {"rationale": "short", "score": 5 if correct else 2},
    }}
    return Reply(text=json.dumps(verdict))


def read_rewards(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_id = {row["rollout_id"]: row for row in rows}
    assert len(by_id) == len(rows), "each rollout must appear exactly once"
    return by_id


def test_score_rubric_example_over_real_http(fake_openai: FakeOpenAIServer, tmp_path: Path):
    fake_openai.responder = rubric_judge
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, [
        "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
        "--set", f"backends.judge.base_url={fake_openai.url}",
        "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
        "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}",
    ])
    assert result.exit_code == 0, result.output
    rewards = read_rewards(output)
    assert len(rewards) == 8
    # the two answers that are not JSON are gated without a judge call
    assert {k for k, r in rewards.items() if r["status"] == "gated"} == {"capital-fr/2", "boiling/3"}
    assert len(fake_openai.chat_requests) == 6
    assert rewards["capital-fr/0"]["value"] > rewards["capital-fr/1"]["value"]
    assert rewards["boiling/0"]["value"] > rewards["boiling/1"]["value"]
    assert rewards["boiling/2"]["components"]["safety"] == 0.0, "a phone number is PII"
    quality = rewards["capital-fr/0"]["details"]["scores"]["quality"]
    assert quality["details"]["criteria"]["correct"]["value"] == 1.0
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == 6 and all(entry["outcome"] == "ok" for entry in journal)
    assert "reward" in result.output and "gated: 2" in result.output


def test_score_with_the_scripted_backend_and_dry_run(tmp_path: Path):
    scripted = runner.invoke(app, ["score", "-c", str(EXAMPLES / "reward_scripted.yaml"), "-i", str(ROLLOUTS),
                                   "-o", str(tmp_path / "scripted.jsonl")])
    assert scripted.exit_code == 0, scripted.output
    assert len(read_rewards(tmp_path / "scripted.jsonl")) == 8
    for config in ("reward_rubric.yaml", "reward_pairwise.yaml", "reward_group.yaml"):
        output = tmp_path / f"dry-{config}.jsonl"
        result = runner.invoke(app, ["score", "-c", str(EXAMPLES / config), "-i", str(ROLLOUTS),
                                     "-o", str(output), "--dry-run"])
        assert result.exit_code == 0, (config, result.output)
        statuses = {row["status"] for row in read_rewards(output).values()}
        assert statuses <= {"ok", "gated"}, (config, statuses)


def test_bad_config_names_the_field(tmp_path: Path):
    result = runner.invoke(app, ["score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS),
                                 "-o", str(tmp_path / "out.jsonl"), "--set", "judges.0.weight=heavy"])
    assert result.exit_code == 2
    assert "judges.0.weight" in result.output


def test_bad_input_rows_are_reported_and_good_rows_scored(tmp_path: Path):
    rows = ROLLOUTS.read_text().splitlines()
    bad = tmp_path / "mixed.jsonl"
    lines = [rows[0], '{"id": "x", "completion": "no prompt"}', "{not json", rows[4]]
    bad.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["score", "-c", str(EXAMPLES / "reward_scripted.yaml"), "-i", str(bad),
                                 "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "line 2" in result.output and "line 3" in result.output
    assert set(read_rewards(output)) == {"capital-fr/0", "boiling/0"}


def test_sigkill_midway_then_rerun_judges_nothing_twice(tmp_path: Path):
    template = json.loads(ROLLOUTS.read_text().splitlines()[0])
    rollouts = tmp_path / "many.jsonl"
    with rollouts.open("w") as handle:
        for index in range(40):
            row = dict(template, id=f"q{index}", rollout_id=f"q{index}/0",
                       completion=json.dumps({"answer": f"Paris {index}", "confidence": "high"}))
            handle.write(json.dumps(row) + "\n")
    output, cache = tmp_path / "rewards.jsonl", tmp_path / "cache.sqlite"
    command = [sys.executable, "-m", "judgerl.cli", "score", "-c", str(EXAMPLES / "reward_rubric.yaml"),
               "-i", str(rollouts), "-o", str(output), "--batch-size", "8",
               "--set", f"runtime.cache_path={cache}", "--set", "backends.judge.max_concurrency=2"]
    with FakeOpenAIServer(latency_s=0.15) as server:
        server.responder = rubric_judge
        command += ["--set", f"backends.judge.base_url={server.url}"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if output.exists() and len(output.read_text().splitlines()) >= 10:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished_before = set(read_rewards(output))
        assert 10 <= len(finished_before) < 40, "the kill must land midway"
        first_run_requests = len(server.chat_requests)

        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        second_run = server.chat_requests[first_run_requests:]

    rewards = read_rewards(output)
    assert set(rewards) == {f"q{index}/0" for index in range(40)}
    asked_again = {re.search(r"Paris (\d+)", request.prompt).group(1) for request in second_run}
    finished_numbers = {rollout_id.split("/")[0][1:] for rollout_id in finished_before}
    assert not asked_again & finished_numbers, "a finished judgment was requested again"
    assert len(second_run) <= 40 - len(finished_before)


def test_a_real_run_scores_again_the_rows_a_dry_run_wrote(fake_openai: FakeOpenAIServer, tmp_path: Path):
    """A dry run's judge scores are the stand-in's: a real run on the same output must not keep
    them as final (it did, silently: 'skipped (final, already in output) 8', no judge called)."""
    output = tmp_path / "rewards.jsonl"

    def score(*extra: str):
        return runner.invoke(app, [
            "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
            "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
            "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}", *extra])

    dry = score("--dry-run")
    assert dry.exit_code == 0, dry.output
    assert all(row["details"]["dry_run"] is True for row in read_rewards(output).values())
    again = score("--dry-run")  # a second dry run keeps the dry run's rows
    assert again.exit_code == 0 and "skipped (final, already in output) 8" in again.output, again.output
    fake_openai.responder = rubric_judge
    real = score("--set", f"backends.judge.base_url={fake_openai.url}")
    assert real.exit_code == 0, real.output
    assert "8 written by a dry run, scored again" in real.output, real.output
    assert len(fake_openai.chat_requests) == 6, "the 6 judged rows are judged for real"
    rewards = read_rewards(output)
    assert len(rewards) == 8 and not any("dry_run" in row["details"] for row in rewards.values())
    assert rewards["capital-fr/0"]["value"] > rewards["capital-fr/1"]["value"], "real verdicts, not 0.5s"
    later = score("--dry-run")  # a real run's rows are final for a later dry run too
    assert "skipped (final, already in output) 8" in later.output, later.output


def test_dry_run_refuses_a_typo_in_a_backend(tmp_path: Path):
    """A dry run "shows that the config loads": a backend's unknown type, unknown option or bad
    URL passed it (scored, exit 0) and stopped only the real run."""
    base = "judges:\n  - {name: q, type: rubric, criteria: [{name: a, description: b}]}\n"
    url = "base_url: 'http://127.0.0.1:9/v1'"
    cases = {
        f"type: opnai, {url}, model: m": ("backends.judge.type", "opnai"),
        f"type: openai, {url}, modle: m": ("backends.judge.modle", "unknown option"),
        "type: openai, base_url: '127.0.0.1:9/v1', model: m": ("backends.judge.base_url", "http://"),
        "type: local, dtyp: float32": ("backends.judge.dtyp", "unknown option"),
    }
    for backend, (field, words) in cases.items():
        config = tmp_path / "reward.yaml"
        config.write_text(f"backends:\n  judge: {{{backend}}}\n{base}")
        output = tmp_path / "dry.jsonl"
        result = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS), "-o", str(output),
                                     "--dry-run"])
        assert result.exit_code == 2, (backend, result.output)
        assert f"field '{field}'" in result.output and words in result.output, (backend, result.output)
        assert "Traceback" not in result.output and not output.exists()
    # no key is needed for a dry run: an unset api_key_env is left to the real run
    config.write_text(f"backends:\n  judge: {{type: openai, {url}, model: m, "
                      f"api_key_env: JUDGERL_TEST_UNSET_KEY}}\n{base}")
    result = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS), "-o", str(output),
                                 "--dry-run"])
    assert result.exit_code == 0, result.output


def test_the_failure_budget_stop_keeps_and_says_what_was_written(tmp_path: Path):
    """A judge URL that refuses connections crosses the failure budget: the run stops (exit 2)
    with the summary of the rows it wrote and how to go on, not one bare error line."""
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, [
        "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
        "--batch-size", "4", "--set", f"backends.judge.base_url=http://127.0.0.1:{port}/v1",
        "--set", "runtime.max_attempts=1", "--set", f"runtime.cache_path={tmp_path / 'cache.sqlite'}",
        "--set", f"runtime.journal_path={tmp_path / 'journal.jsonl'}",
    ])
    assert result.exit_code == 2, result.output
    rewards = read_rewards(output)
    assert len(rewards) == 4, "the first batch is written; the second is not started"
    assert "over the failure budget" in result.output and f"127.0.0.1:{port}" in result.output
    assert "unscored by reason: connection_error" in result.output, "the summary of what was written"
    assert f"the 4 rows above are in {output}; 4 rows not scored yet" in " ".join(result.output.split())


def config_error(tmp_path: Path, config_text: str, *options: str) -> str:
    """`judgerl score` with a reward config of `config_text`: it must exit 2 (a config error, no
    traceback); the output with its line breaks folded."""
    config = tmp_path / "reward.yaml"
    config.write_text(config_text)
    result = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS),
                                 "-o", str(tmp_path / "o.jsonl"), *options])
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_a_misspelt_judge_type_is_named_before_its_missing_backend(tmp_path: Path):
    """`type: rubrik` in a config without `backends:` was reported as "backend 'judge' is not
    defined", sending the user after the wrong line."""
    text = config_error(tmp_path, "judges:\n  - {name: q, type: rubrik,\n"
                                  "     criteria: [{name: a, description: b}]}\n", "--dry-run")
    assert "field 'judges.q.type': unknown judge type 'rubrik'" in text


def test_a_name_used_twice_is_named(tmp_path: Path):
    text = config_error(tmp_path, "checks:\n  - {name: size, type: length, max: 40}\n"
                                  "  - {name: size, type: json_valid}\n")
    assert "names must be unique: 'size' is used more than once" in text


def test_a_missing_prompt_file_names_the_config_and_its_key(tmp_path: Path):
    """It named the missing file as if it were the bad file, under the field 'judges.q'."""
    text = config_error(tmp_path, "backends:\n  judge: {type: scripted}\n"
                                  "judges:\n  - {name: q, type: rubric, "
                                  "criteria: [{name: a, description: b}], prompt_file: my.txt}\n")
    expected = (f"{tmp_path / 'reward.yaml'}, field 'judges.q.prompt_file': "
                f"prompt file not found: {tmp_path / 'my.txt'}")
    assert expected in text, text


def test_rows_of_another_input_in_the_output_are_said(tmp_path: Path):
    """An output reused for another input kept the earlier rows silently: 16 rows in a file
    whose summary said 8 were scored and none skipped."""
    output = tmp_path / "rewards.jsonl"
    other = tmp_path / "other.jsonl"
    other.write_text("".join(line.replace('"id": "', '"id": "other-') + "\n"
                             for line in ROLLOUTS.read_text().splitlines() if line.strip()))
    for rollouts in (other, ROLLOUTS):
        result = runner.invoke(app, ["score", "-c", str(EXAMPLES / "reward_scripted.yaml"),
                                     "-i", str(rollouts), "-o", str(output)])
        assert result.exit_code == 0, result.output
    assert len(output.read_text().splitlines()) == 16
    assert "also holds 8 rows whose rollout is not in this input" in " ".join(result.output.split())


def test_a_folder_output_or_a_zero_batch_size_is_an_error_not_a_traceback(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = str(EXAMPLES / "reward_scripted.yaml")
    folder = runner.invoke(app, ["score", "-c", config, "-i", str(ROLLOUTS), "-o", "."])
    assert folder.exit_code == 2 and "is a folder; --output must be a file" in folder.output, folder.output
    zero = runner.invoke(app, ["score", "-c", config, "-i", str(ROLLOUTS), "-o", "r.jsonl",
                               "--batch-size", "0"])
    assert zero.exit_code == 2 and "batch-size" in zero.output, zero.output
    assert not (tmp_path / "r.jsonl").exists()


def test_a_row_without_the_reference_or_baseline_a_judge_needs_names_file_line_and_field(tmp_path: Path):
    """The judges said "no reference answer for this sample": no file, no line, no field, and not
    under the `data_error` reason a check gives the same gap."""
    rows = tmp_path / "rollouts.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in [
        {"id": "a", "prompt": "q", "reference": "r", "baseline": "b", "completion": "x"},
        {"id": "b", "prompt": "q2", "completion": "x"},
        {"id": "c", "prompt": "q3", "reference": "r", "baseline": 5, "completion": "x"}]))
    config = tmp_path / "reward.yaml"
    config.write_text("backends:\n  judge: {type: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
                      "judges:\n  - {name: vs_base, type: pairwise, mode: baseline}\n"
                      "  - {name: vs_ref, type: pairwise, mode: reference}\n"
                      "  - {name: q, type: rubric, use_reference: true,\n"
                      "     criteria: [{name: c, description: d}]}\n"
                      "  - {name: g, type: group, use_reference: true}\n"
                      "failure_budget: null\n")
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, ["score", "-c", str(config), "-i", str(rows), "-o", str(output), "--dry-run"])
    assert result.exit_code == 0, result.output
    rewards = read_rewards(output)
    assert rewards["a/0"]["status"] == "ok"
    scores = rewards["b/0"]["details"]["scores"]
    for judge, field in (("vs_base", "baseline"), ("vs_ref", "reference"), ("q", "reference"),
                         ("g", "reference")):
        reason = scores[judge]["reason"]
        assert reason.startswith(f"data_error: {rows}, line 2, field '{field}': "), reason
    base = rewards["c/0"]["details"]["scores"]["vs_base"]["reason"]
    assert base.startswith(f"data_error: {rows}, line 3, field 'baseline'") and "expected a string" in base
    assert "unscored by reason: data_error (2)" in result.output


def test_an_override_of_an_item_of_a_missing_list_says_so(tmp_path: Path):
    """`--set judges.0.weight=2` on a config without judges read "field 'judges': Input should be a
    valid list", about a list the user never wrote."""
    text = config_error(tmp_path, "checks:\n  - {name: size, type: length, max: 40}\n",
                        "--set", "judges.0.weight=2")
    assert "override 'judges.0.weight': the config has no list 'judges'" in text


def test_config_errors_read_without_pydantics_value_error_prefix(tmp_path: Path):
    text = config_error(tmp_path, "backends:\n  judge: {type: scripted}\n"
                                  "judges:\n  - {name: q, type: rubric,\n"
                                  "     criteria: [{name: a, description: b}, {name: a, description: c}]}\n")
    assert "field 'judges.q.criteria': criterion names must be unique" in text and "Value error" not in text


def test_a_logprob_judge_on_a_server_without_logprobs_is_counted_under_its_reason(
        fake_openai: FakeOpenAIServer, tmp_path: Path):
    """The reason read "on_topic: parse_error: ...; polite: parse_error: ...", so the summary
    counted the failures under "on_topic", a criterion's name, instead of "parse_error"."""
    fake_openai.default = Reply(text="Yes")  # no logprobs in the answer
    config = tmp_path / "reward.yaml"
    config.write_text(f"backends:\n  judge: {{type: openai, base_url: '{fake_openai.url}', model: m}}\n"
                      "judges:\n  - {name: helpful, type: rubric, scoring: logprob,\n"
                      "     criteria: [{name: on_topic, description: a}, {name: polite, description: b}]}\n"
                      "failure_budget: null\n")
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "unscored by reason: parse_error (7)" in result.output, result.output  # + 1 empty answer
    reason = read_rewards(output)["capital-fr/0"]["reason"]
    assert reason.startswith("parse_error: on_topic: the backend returned no log-probabilities"), reason
    assert "; polite: the backend returned no log-probabilities" in reason


def test_a_content_filtered_judge_prompt_is_that_rows_failure_not_the_runs(fake_openai: FakeOpenAIServer,
                                                                          tmp_path: Path):
    """Azure OpenAI answers a prompt that trips its content filter with a 400 (code
    `content_filter`), OpenAI with a 400 `invalid_prompt` ("flagged as potentially violating our
    usage policy"). A policy's rollout can say anything: that row is unscored `content_filter`
    and the other rows are scored; the run used to stop at the first one (a fatal 400)."""
    flagged = {
        "capital-fr/1": {"error": {"message": "The response was filtered due to the prompt triggering Azure "
                                              "OpenAI's content management policy.", "type": None,
                                   "param": "prompt", "code": "content_filter", "status": 400}},
        "boiling/1": {"error": {"message": "Invalid prompt: your prompt was flagged as potentially violating "
                                           "our usage policy.", "type": "invalid_request_error",
                                "param": None, "code": "invalid_prompt"}},
    }
    answers = {"capital-fr/1": "Lyon is the capital.", "boiling/1": "90 degrees"}

    def judge(request: RecordedRequest) -> Reply:
        for rollout, body in flagged.items():
            if answers[rollout] in request.prompt:
                return Reply(status=400, body=body)
        return rubric_judge(request)

    fake_openai.responder = judge
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, [
        "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
        "--set", f"backends.judge.base_url={fake_openai.url}", "--set", "runtime.cache_path=null",
        "--set", "runtime.journal_path=null"])
    assert result.exit_code == 0, result.output
    rewards = read_rewards(output)
    assert len(rewards) == 8
    for rollout in flagged:
        assert rewards[rollout]["status"] == "unscored" and rewards[rollout]["value"] is None
        assert rewards[rollout]["reason"].startswith("content_filter: "), rewards[rollout]["reason"]
    assert rewards["capital-fr/1"]["reason"].count("content management policy") == 1
    assert {rollout for rollout, row in rewards.items() if row["status"] == "ok"} == {
        "capital-fr/0", "capital-fr/3", "boiling/0", "boiling/2"}
    assert len(fake_openai.chat_requests) == 6, "a filtered prompt is not retried"


def test_unscored_reasons_are_counted_by_reason_not_by_criterion_name(fake_openai: FakeOpenAIServer,
                                                                      tmp_path: Path):
    """A logprob rubric judge asks one call per criterion and names the criterion before the
    reason ("correct: parse_error: ..."). The summary and the failure budget's error count by the
    reason (`parse_error`), not by the criterion's name (they used to say "correct (6)")."""
    fake_openai.default = Reply(text="PASS")  # an answer without the log-probabilities asked for
    config = tmp_path / "reward.yaml"
    config.write_text(json.dumps({
        "backends": {"judge": {"type": "openai", "base_url": fake_openai.url, "model": "m"}},
        "runtime": {"max_attempts": 1},
        "judges": [{"name": "quality", "type": "rubric", "scoring": "logprob", "use_reference": True,
                    "criteria": [{"name": "correct", "kind": "check", "description": "same fact"}]}],
        "failure_budget": None}), encoding="utf-8")
    result = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS),
                                 "-o", str(tmp_path / "a.jsonl")])
    assert result.exit_code == 0, result.output
    assert "unscored by reason: parse_error (7)" in result.output, result.output
    rows = read_rewards(tmp_path / "a.jsonl")
    assert rows["capital-fr/0"]["reason"].startswith("parse_error: correct: the backend returned no log-prob")
    budget = runner.invoke(app, ["score", "-c", str(config), "-i", str(ROLLOUTS),
                                 "-o", str(tmp_path / "b.jsonl"), "--set", "failure_budget=0.5"])
    assert budget.exit_code == 2
    assert "reasons: parse_error (7)" in " ".join(budget.output.split()), budget.output


def test_a_key_revoked_mid_batch_keeps_the_rows_already_judged(fake_openai: FakeOpenAIServer, tmp_path: Path):
    """A 401 in the middle of a batch (a key revoked, credentials expired) stops the run, but the
    rows whose judgments came back, and the rows decided without a judge (gated), are written:
    they were paid for. They used to be dropped with the batch the moment the 401 arrived."""
    def judge(request: RecordedRequest) -> Reply:
        if "90 degrees" in request.prompt:
            return Reply(status=401, error="key revoked", delay_s=0.1)
        reply = rubric_judge(request)
        reply.delay_s = 0.6
        return reply

    fake_openai.responder = judge
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, [
        "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
        "--set", f"backends.judge.base_url={fake_openai.url}", "--set", "runtime.cache_path=null",
        "--set", "runtime.journal_path=null"])
    assert result.exit_code == 2 and "key revoked" in result.output, result.output
    rows = read_rewards(output)
    assert {rollout: row["status"] for rollout, row in rows.items()} == {
        "capital-fr/0": "ok", "capital-fr/1": "ok", "capital-fr/2": "gated", "capital-fr/3": "ok",
        "boiling/3": "gated"}, "the capital-fr group was judged; boiling's gated row needs no judge"


def test_a_batch_size_below_one_is_refused_naming_the_option(tmp_path: Path):
    """`--batch-size 0` used to end in a ValueError traceback from range(), and `--batch-size -3`
    scored nothing and exited 0."""
    for size in ("0", "-3"):
        result = runner.invoke(app, ["score", "-c", str(EXAMPLES / "reward_scripted.yaml"), "-i",
                                     str(ROLLOUTS), "-o", str(tmp_path / "out.jsonl"), "--batch-size", size])
        assert result.exit_code == 2 and "--batch-size" in result.output, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert not (tmp_path / "out.jsonl").exists() or not (tmp_path / "out.jsonl").read_text()


def test_an_answer_stopped_by_the_content_filter_is_that_rows_failure_and_not_retried(
        fake_openai: FakeOpenAIServer, tmp_path: Path):
    """Azure OpenAI answers 200 with `finish_reason: content_filter` and no content when its filter
    stops the answer. It used to be a retryable bad_response: 5 paid attempts per row, and the
    failures opened the circuit breaker for every other row (`circuit_open`)."""
    def judge(request: RecordedRequest) -> Reply:
        if "Lyon is the capital." in request.prompt:
            return Reply(body={"choices": [{"index": 0, "finish_reason": "content_filter",
                                            "message": {"role": "assistant", "content": None}}],
                               "usage": {"prompt_tokens": 500, "completion_tokens": 0}})
        return rubric_judge(request)

    fake_openai.responder = judge
    output = tmp_path / "rewards.jsonl"
    result = runner.invoke(app, [
        "score", "-c", str(EXAMPLES / "reward_rubric.yaml"), "-i", str(ROLLOUTS), "-o", str(output),
        "--set", f"backends.judge.base_url={fake_openai.url}", "--set", "runtime.cache_path=null",
        "--set", "runtime.journal_path=null", "--set", "runtime.breaker_window=2",
        "--set", "runtime.backoff_base_s=0"])
    assert result.exit_code == 0, result.output
    rows = read_rewards(output)
    assert rows["capital-fr/1"]["status"] == "unscored"
    assert rows["capital-fr/1"]["reason"].startswith("content_filter: "), rows["capital-fr/1"]["reason"]
    assert {rollout for rollout, row in rows.items() if row["status"] == "ok"} == {
        "capital-fr/0", "capital-fr/3", "boiling/0", "boiling/1", "boiling/2"}
    assert len(fake_openai.chat_requests) == 6, "the filtered answer is not asked again"
