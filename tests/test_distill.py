"""Judge distillation: a scripted teacher with a hidden rule, a tiny real student that learns it.

The teacher is a scripted backend (no model) that gives P(PASS) = 0.95 when the answer it is shown
mentions a refund and 0.05 otherwise; it judges synthetic support replies through the real rubric
judge and runtime, so the journal is the one a user's run writes. The student is a tiny Llama
(built here with a tokenizer trained on the task's words, so the test runs in seconds on a CPU),
fine-tuned by `judgerl distill`, loaded back by the `local` backend, and measured on held-out
samples it never saw.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
import yaml

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.distill.agreement import DistillGateError, Thresholds
from judgerl.distill.command import distill
from judgerl.distill.examples import judged_from_journal, split_by_sample
from judgerl.distill.rejudge import (
    recorded_from_completions,
    recorded_from_journal,
    rejudge,
    write_rejudge_report,
)
from judgerl.distill.student import (
    TrainSettings,
    render_prompt,
    student_judge,
    student_judge_config,
    student_request,
)
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample
from tiny_policy import build_corpus_model_dir

CRITERION = {"name": "offers_refund", "kind": "check",
             "description": "The reply offers the customer a refund."}
OPENINGS = ["Thanks for writing to us.", "Sorry about the trouble with your order.", "Hello and thank you.",
            "We read your message.", "Apologies for the delay."]
MIDDLES = ["We will send a refund today.", "A full refund is on its way.", "You will get a refund soon.",
           "We will look into it.", "Our team is checking the parcel.", "Please send us a photo."]
QUESTIONS = ["My parcel arrived broken.", "The shoes do not fit.", "I was charged twice.",
             "The box was empty.", "My order never came.", "The lamp does not work."]
ANSWER_RE = re.compile(r"<<<ANSWER_\w+>>>\n(.*)\n<<<END_ANSWER_\w+>>>", re.DOTALL)


def hidden_rule(answer: str) -> bool:
    return "refund" in answer


def teacher_responder(request: CompletionRequest) -> Completion:
    match = ANSWER_RE.search(request.messages[-1]["content"])
    assert match is not None
    p_pass = 0.95 if hidden_rule(match.group(1)) else 0.05
    return Completion(text="PASS" if p_pass > 0.5 else "FAIL", model="teacher", usage=Usage(300, 1),
                      candidate_logprobs={"PASS": math.log(p_pass), "FAIL": math.log(1 - p_pass)})


def synthetic_items(samples: int, answers_per_sample: int, seed: int = 0) -> list[tuple[Sample, Rollout]]:
    rng = random.Random(seed)
    items = []
    for index in range(samples):
        sample = Sample(id=f"q{index}", messages=[{"role": "user", "content": rng.choice(QUESTIONS)}])
        for k in range(answers_per_sample):
            answer = f"{rng.choice(OPENINGS)} {rng.choice(MIDDLES)}"
            items.append((sample, Rollout(sample_id=sample.id, completion=answer, id=f"q{index}#{k}")))
    return items


def teacher_config(journal: Path) -> dict:
    return {"backends": {"teacher": {"type": "scripted"}}, "runtime": {"journal_path": str(journal)},
            "judges": [{"name": "support", "type": "rubric", "backend": "teacher", "scoring": "logprob",
                        "criteria": [CRITERION]}]}


def write_teacher_journal(tmp_path: Path, samples: int = 60,
                          answers_per_sample: int = 3) -> tuple[Path, Path]:
    journal = tmp_path / "teacher" / "journal.jsonl"
    config = teacher_config(journal)
    config_path = tmp_path / "teacher" / "reward.yaml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    backend = ScriptedBackend(teacher_responder, model="teacher")
    with RewardPipeline.from_config(config, backends={"teacher": backend}) as pipeline:
        pipeline.score_batch_sync(synthetic_items(samples, answers_per_sample))
    return journal, config_path


def build_student_base(folder: Path) -> Path:
    """A tiny Llama whose tokenizer knows the task's words (trained on them), with a long context."""
    judge = student_judge(student_judge_config("support", [CRITERION], model="unused"))
    corpus = [render_prompt(student_request(judge, row), type("T", (), {"chat_template": None})())
              for row in _rows_for_corpus(judge)] + OPENINGS + MIDDLES + QUESTIONS + ["PASS", "FAIL"]
    return build_corpus_model_dir(folder, corpus)


def _rows_for_corpus(judge):  # a few rendered prompts so the template's words become tokens
    from judgerl.distill.examples import Judged

    return [Judged(sample, rollout, CRITERION["name"], "check", 1.0)
            for sample, rollout in synthetic_items(4, 2)]


def test_the_journal_records_what_distillation_needs(tmp_path: Path) -> None:
    journal, _ = write_teacher_journal(tmp_path, samples=3, answers_per_sample=2)
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == 6
    entry = entries[0]
    assert entry["inputs"]["answers"] and entry["inputs"]["messages"][0]["role"] == "user"
    assert entry["requests"][0]["candidate_tokens"] == ["PASS", "FAIL"]
    assert "Answer to grade" in entry["requests"][0]["messages"][-1]["content"]
    verdict = entry["scores"]["criteria"]["offers_refund"]["value"]
    assert verdict == pytest.approx(0.95 if hidden_rule(entry["inputs"]["answers"][0]) else 0.05)


def test_the_teachers_time_is_its_endpoints_not_the_queue_in_front_of_it(tmp_path: Path) -> None:
    # one slot and 0.1 s a call: 6 judgments queue; each costs the endpoint 0.1 s, whatever it waited
    journal = tmp_path / "journal.jsonl"
    backend = ScriptedBackend(teacher_responder, model="teacher", latency_s=0.1, max_concurrency=1)
    with RewardPipeline.from_config(teacher_config(journal), backends={"teacher": backend}) as pipeline:
        pipeline.score_batch_sync(synthetic_items(3, 2))
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    fresh = [entry for entry in entries if not entry["cached"]]  # a shared (deduplicated) answer cost nothing
    assert len(entries) == 6 and len(fresh) >= 4 and all(entry["service_s"] >= 0.1 for entry in fresh)
    assert max(entry["latency_s"] - entry["service_s"] for entry in fresh) >= 0.3, "someone queued"
    _, judged = judged_from_journal(journal)
    assert sorted(row.teacher.latency_s for row in judged if row.teacher.latency_s is not None) == sorted(
        entry["service_s"] for entry in fresh)


def test_split_by_sample_keeps_every_rollout_of_a_sample_on_one_side(tmp_path: Path) -> None:
    journal, _ = write_teacher_journal(tmp_path, samples=20, answers_per_sample=3)
    _, rows = judged_from_journal(journal)
    train, held = split_by_sample(rows, held_out=0.25)
    assert {r.sample.id for r in train}.isdisjoint({r.sample.id for r in held})
    assert len(train) + len(held) == len(rows) == 60
    assert len({r.sample.id for r in held}) == 5
    for sample_id in {r.sample.id for r in held}:
        assert sum(r.sample.id == sample_id for r in held) == 3


def test_the_training_prompt_is_the_one_the_local_backend_renders(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from judgerl.backends.local import LocalBackend

    base = build_student_base(tmp_path / "base")
    judge = student_judge(student_judge_config("support", [CRITERION], model=str(base)))
    row = _rows_for_corpus(judge)[0]
    request = student_request(judge, row)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    assert render_prompt(request, tokenizer) == LocalBackend(str(base)).render(request)


def test_a_tiny_student_learns_the_teachers_hidden_rule(tmp_path: Path) -> None:
    journal, config = write_teacher_journal(tmp_path, samples=60, answers_per_sample=3)
    base = build_student_base(tmp_path / "base")
    result = distill(out_dir=tmp_path / "student", base_model=str(base), journal=journal, config=config,
                     settings=TrainSettings(method="full", epochs=4, learning_rate=3e-3, batch_size=8))
    report = result.report
    (criterion,) = report.criteria
    assert report.held_out_samples == 12 and criterion.rows == 36
    assert criterion.accuracy is not None and criterion.accuracy >= 0.9
    assert criterion.kappa is not None and criterion.kappa >= 0.8
    assert report.passed and result.report_paths["plot"].stat().st_size > 0
    snippet = yaml.safe_load(result.snippet.read_text(encoding="utf-8"))
    assert snippet["backends"]["student"] == {"type": "local", "model": "model"}
    assert snippet["judges"][0]["scoring"] == "logprob"
    assert (result.model_dir / "config.json").is_file()
    assert not (result.model_dir / "adapter_config.json").exists()


def test_a_student_below_the_thresholds_is_refused(tmp_path: Path) -> None:
    """An untrained student (learning rate ~0) cannot reach kappa 0.99: the CLI refuses it, exit 1."""
    from typer.testing import CliRunner

    from judgerl.cli import app

    journal, config = write_teacher_journal(tmp_path, samples=20, answers_per_sample=2)
    base = build_student_base(tmp_path / "base")
    with pytest.raises(DistillGateError, match="refused for training"):
        distill(out_dir=tmp_path / "student", base_model=str(base), journal=journal, config=config,
                settings=TrainSettings(method="full", epochs=1, learning_rate=1e-9),
                thresholds=Thresholds(min_accuracy=0.99, min_kappa=0.99))
    assert "**Refused**" in (tmp_path / "student" / "agreement.md").read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["distill", "--journal", str(journal), "--config", str(config),
                                      "--output", str(tmp_path / "cli"), "--base-model", str(base),
                                      "--method", "full", "--epochs", "1", "--learning-rate", "1e-9",
                                      "--min-kappa", "0.99"])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert (tmp_path / "cli" / "model" / "config.json").is_file()


def revised_responder(request: CompletionRequest) -> Completion:
    """The teacher after a rubric change: a reply asking for a photo also passes."""
    match = ANSWER_RE.search(request.messages[-1]["content"])
    assert match is not None
    p_pass = 0.95 if hidden_rule(match.group(1)) or "photo" in match.group(1) else 0.05
    return Completion(text="PASS", model="teacher", usage=Usage(300, 1),
                      candidate_logprobs={"PASS": math.log(p_pass), "FAIL": math.log(1 - p_pass)})


def test_rejudge_replays_a_journal_and_finds_the_rollouts_that_moved(tmp_path: Path) -> None:
    journal, config = write_teacher_journal(tmp_path, samples=20, answers_per_sample=3)
    recorded = recorded_from_journal(journal)
    assert len(recorded) == 60
    same = rejudge(recorded, config, backends={"teacher": ScriptedBackend(teacher_responder)})
    assert same.accuracy == 1.0 and same.kappa == pytest.approx(1.0)
    assert all(abs(row["change"]) < 1e-9 for row in same.moved)
    revised = rejudge(recorded, config, backends={"teacher": ScriptedBackend(revised_responder)})
    photo = [r for r in recorded if "photo" in r.rollout.completion and not hidden_rule(r.rollout.completion)]
    assert photo and revised.accuracy == pytest.approx(1 - len(photo) / 60)
    top = revised.moved[:len(photo)]
    assert {row["rollout_id"] for row in top} == {r.rollout.id for r in photo}
    assert all(row["change"] == pytest.approx(0.9) for row in top)
    _, md_path = write_rejudge_report(revised, tmp_path / "out")
    assert "moved most" in md_path.read_text(encoding="utf-8")


def test_rejudge_reads_a_completions_file(tmp_path: Path) -> None:
    rows = [{"step": 1, "sample_id": "q1", "rollout_id": "q1#0", "prompt": "My parcel arrived broken.",
             "completion": "A full refund is on its way.", "reward": 0.95, "status": "ok"},
            {"step": 1, "sample_id": "q1", "rollout_id": "q1#1", "prompt": "My parcel arrived broken.",
             "completion": "Please send us a photo.", "reward": 0.05, "status": "ok"},
            {"step": 1, "sample_id": "q2", "rollout_id": "q2#0", "prompt": "The box was empty.",
             "completion": "", "reward": None, "status": "unscored"}]
    path = tmp_path / "completions.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    recorded = recorded_from_completions(path)
    assert [r.old_score for r in recorded] == [0.95, 0.05]
    report = rejudge(recorded, teacher_config(tmp_path / "j.jsonl"),
                     backends={"teacher": ScriptedBackend(revised_responder)})
    assert report.rescored == 2 and report.moved[0]["rollout_id"] == "q1#1"
    assert report.moved[0]["new"] == pytest.approx(0.95)


def test_a_labelled_file_becomes_verdicts_on_one_check_grouped_by_prompt(tmp_path: Path) -> None:
    from judgerl.distill.examples import judged_from_labelled, target_distribution

    rows = [{"id": "a1", "prompt": "My parcel arrived broken.", "answer": "A refund is on its way.",
             "score": 5},
            {"id": "a2", "prompt": "My parcel arrived broken.", "answer": "Send a photo.", "score": 1},
            {"id": "a3", "prompt": "The box was empty.", "answer": "We will look into it.", "score": 2}]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    judged = judged_from_labelled(path, criterion="offers_refund")
    assert [row.verdict for row in judged] == [1.0, 0.0, 0.25]
    assert judged[0].sample.id == judged[1].sample.id != judged[2].sample.id
    assert target_distribution(judged[2], ["PASS", "FAIL"], soft=True) == [0.25, 0.75]
    assert target_distribution(judged[2], ["PASS", "FAIL"], soft=False) == [0.0, 1.0]


def test_the_student_asks_with_its_own_short_template_not_the_teachers(tmp_path: Path) -> None:
    """A teacher with the ~1000-token few-shot prompt must not make every training step that long:
    the student (and its reward snippet) use `rubric_student`, whatever the teacher's template."""
    from transformers import AutoTokenizer

    from judgerl.models import resolve_model

    teacher_options = {"prompt": "rubric_logprob_fewshot", "pass_token": "Yes", "fail_token": "No"}
    config = student_judge_config("support", [CRITERION], model="unused", extra_options=teacher_options)
    assert config["judges"][0]["prompt"] == "rubric_student"
    assert config["judges"][0]["pass_token"] == "Yes"
    judge = student_judge(config)
    row = _rows_for_corpus(judge)[0]
    request = student_request(judge, row)
    text = render_prompt(request, AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct"))))
    assert row.rollout.completion in text and row.sample.prompt in text and "Yes or No?" in text
    assert "<<<ANSWER_" not in text  # the fences' hash tags alone cost ~60 tokens
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct")))
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) < 100


def test_a_held_out_labelled_file_must_not_share_questions_with_training(tmp_path: Path) -> None:
    from judgerl.errors import ConfigError

    rows = [{"prompt": "My parcel arrived broken.", "answer": "A refund is on its way.", "score": 1},
            {"prompt": "My parcel arrived broken.", "answer": "Send a photo.", "score": 0}]
    train, held = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    held.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="also in the training file"):
        distill(out_dir=tmp_path / "out", base_model="unused", labelled=train, held_out_labelled=held,
                criterion="offers_refund", description="The reply offers a refund.")


def test_the_journal_names_the_teachers_model_and_prices_each_judgment(tmp_path: Path) -> None:
    """The agreement report can then say what a teacher judgment cost, beside the student's speed."""
    from judgerl.distill.agreement import measure_agreement
    from judgerl.runtime.journal import read_journal

    journal = tmp_path / "journal.jsonl"
    config = teacher_config(journal)
    config["runtime"]["prices"] = {"teacher": {"input_per_mtok": 2.0, "output_per_mtok": 10.0}}
    backend = ScriptedBackend(teacher_responder, model="teacher")
    with RewardPipeline.from_config(config, backends={"teacher": backend}) as pipeline:
        pipeline.score_batch_sync(synthetic_items(3, 1))
    entries = list(read_journal(journal))
    assert [entry["model"] for entry in entries] == ["teacher"] * 3
    assert entries[0]["cost_usd"] == pytest.approx((300 * 2.0 + 1 * 10.0) / 1e6)
    _, rows = judged_from_journal(journal)
    report = measure_agreement("support", rows, [row.verdict for row in rows], student_seconds=1.0,
                               thresholds=Thresholds())
    assert report.teacher_models == ["teacher"]
    assert report.teacher_cost_per_judgment == pytest.approx(610 / 1e6)
    from judgerl.distill.agreement import render_markdown

    assert "0.000610 USD per judgment" in render_markdown(report)


def test_lora_on_the_top_layers_only_trains_those_layers(tmp_path: Path) -> None:
    from judgerl.distill.student import train_student

    base = build_student_base(tmp_path / "base")  # 2 layers
    judge_config = student_judge_config("support", [CRITERION], model="unused")
    rows = _rows_for_corpus(student_judge(judge_config))
    every = train_student(base, rows, judge_config, tmp_path / "all", TrainSettings(epochs=0))
    top = train_student(base, rows, judge_config, tmp_path / "top", TrainSettings(epochs=0, lora_layers=1))
    assert 0 < top.trainable_parameters * 2 == every.trainable_parameters
    assert json.loads((tmp_path / "top" / "distillation.json").read_text())["lora_layers"] == 1
