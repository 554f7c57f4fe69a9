"""`judgerl rubrics` end to end over real HTTP to a fake generator on loopback (tests/fake_openai.py):
items checked and de-duplicated, the file written back with a `rubric` column, resumable,
journaled, cost shown, `--dry-run`, and the user's own template."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from judgerl.cli import app

runner = CliRunner()
PROMPTS = [
    {"id": "dose", "prompt": "How should drug X be dosed in kidney disease?", "reference": "Lower the dose.",
     "source": "kept as it is"},
    {"id": "fail", "prompt": "Unanswerable FAILME question?"},
    {"id": "has", "prompt": "Already done?", "rubric": [{"criterion": "Says yes", "weight": 1}]},
]


def generator(request: RecordedRequest) -> Reply:
    prompt = request.prompt
    if "FAILME" in prompt:
        return Reply(text="I cannot write a rubric.")
    question = re.search(r"<<<QUESTION_\w+>>>\n(.*?)\n<<<END_QUESTION_\w+>>>", prompt, re.S).group(1)
    items = [{"criterion": f"Answers: {question}", "category": "essential", "weight": 5},
             {"criterion": "Mentions the reference's point", "category": "important"},
             {"criterion": "mentions the REFERENCE's   point", "category": "optional", "weight": 1},
             {"criterion": "Doubles the dose", "category": "pitfall", "weight": 2},
             {"criterion": "", "category": "optional"}]
    return Reply(text="Here it is:\n" + json.dumps({"items": items}),
                 usage={"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420})


def write_files(tmp_path: Path, url: str) -> tuple[Path, Path]:
    config = tmp_path / "reward.yaml"
    config.write_text(textwrap.dedent(f"""\
        backends:
          strong: {{type: openai, base_url: {url}, model: big-model}}
        runtime:
          max_attempts: 1
          journal_path: {tmp_path / 'journal.jsonl'}
          prices: {{big-model: {{input_per_mtok: 1.0, output_per_mtok: 4.0}}}}
        judges: []
        """), encoding="utf-8")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS), encoding="utf-8")
    return config, prompts


def test_generates_checks_dedups_writes_back_and_resumes(fake_openai: FakeOpenAIServer, tmp_path: Path):
    fake_openai.responder = generator
    config, prompts = write_files(tmp_path, fake_openai.url)
    output = tmp_path / "with_rubrics.jsonl"
    result = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output),
                                 "-k", "5"])
    assert result.exit_code == 1, result.output  # one row failed: reported, exit 1
    rows = {row["id"]: row for row in map(json.loads, output.read_text().splitlines())}
    assert list(rows) == ["dose", "fail", "has"], "input order, every row"
    assert rows["dose"]["source"] == "kept as it is"
    assert rows["dose"]["rubric"] == [
        {"criterion": "Answers: How should drug X be dosed in kidney disease?", "weight": 5.0,
         "category": "essential"},
        {"criterion": "Mentions the reference's point", "weight": 3.0, "category": "important"},
        {"criterion": "Doubles the dose", "weight": -2.0, "category": "pitfall"}]
    assert "rubric" not in rows["fail"]
    assert rows["has"]["rubric"] == PROMPTS[2]["rubric"], "a valid rubric is kept"
    assert "Lower the dose." in fake_openai.chat_requests[0].prompt, "the reference is shown"
    assert len(fake_openai.chat_requests) == 3, "dose once, the failing row asked and re-asked once"
    assert "failed: fail: parse_error" in result.output
    assert re.search(r"cost \$0\.00[1-9]", result.output), "the prices make a cost"
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    outcomes = {(entry["sample_id"], entry["outcome"]) for entry in journal}
    assert outcomes == {("dose", "ok"), ("fail", "unscored")}
    assert journal[0]["prompt_version"] == "rubric-generation-v1"

    again = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output)])
    assert again.exit_code == 1
    assert len(fake_openai.chat_requests) == 5, "a rerun asks only the failed row again"
    assert json.loads(output.read_text().splitlines()[0])["rubric"] == rows["dose"]["rubric"]


def test_dry_run_and_own_template(fake_openai: FakeOpenAIServer, tmp_path: Path):
    config, prompts = write_files(tmp_path, fake_openai.url)
    template = tmp_path / "mine.txt"
    template.write_text("# version: mine-1\n[user]\nRubric of {k} for {question}\n{answer_format}\n")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output),
                                 "--template", str(template), "-k", "3", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Rubric of 3 for" in result.output and "2 of 3 rows would be sent" in result.output
    assert fake_openai.chat_requests == [] and not output.exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("# version: bad-1\n[user]\nno question here\n")
    refused = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output),
                                  "--template", str(bad)])
    assert refused.exit_code == 2 and "question" in refused.output


def test_bad_input_rows_are_named_and_the_others_get_their_rubric(fake_openai: FakeOpenAIServer,
                                                                 tmp_path: Path):
    """As the rubrics guide says: a line that is not JSON is reported and left out; a row without a
    prompt is reported and written back unchanged (no rubric); the other rows get theirs."""
    fake_openai.responder = generator
    config, prompts = write_files(tmp_path, fake_openai.url)
    lines = [json.dumps(PROMPTS[0]), '{"id": "torn"', '{"id": "noprompt", "reference": "x"}']
    prompts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output),
                                 "-k", "3"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "prompts.jsonl, line 2: not valid JSON" in text and "(left out of the output)" in text
    assert "prompts.jsonl, line 3, field 'messages': missing" in text
    assert "(written back unchanged, without a rubric)" in text
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["dose", "noprompt"]
    assert len(rows[0]["rubric"]) == 3 and rows[1] == {"id": "noprompt", "reference": "x"}


def test_an_empty_input_is_an_error_not_an_empty_output(tmp_path: Path):
    config, prompts = write_files(tmp_path, "http://127.0.0.1:9/v1")
    prompts.write_text("\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output)])
    assert result.exit_code == 2, result.output
    assert "no prompts to write rubrics for" in result.output and not output.exists()
    prompts.write_text('{"id": "torn"\n', encoding="utf-8")
    result = runner.invoke(app, ["rubrics", "-c", str(config), "-i", str(prompts), "-o", str(output)])
    assert result.exit_code == 2 and "1 bad rows" in " ".join(result.output.split()), result.output
