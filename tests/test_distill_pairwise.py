"""Distilling a pairwise teacher: a scripted head-to-head judge with a hidden rule, a tiny real
Bradley-Terry student that learns it, scored as a `comparison: pointwise` pairwise judge.

The teacher is a scripted backend (no model) behind the real pairwise judge (both orders, the
position swap) and runtime, so its journal is the one a user's run writes: it prefers the answer
that mentions a refund (P(A) = 0.95 when only A does, 0.05 when only B does, 0.5 otherwise). The
student is a tiny Llama (tests/tiny_policy.py, its tokenizer trained on the task's words), trained
by `judgerl distill` with the pairwise loss on its own pointwise verdict logits, loaded back by the
`local` backend and measured on pairs
of questions it never saw.
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
from judgerl.distill.agreement import DistillGateError, Thresholds, measure_pair_agreement
from judgerl.distill.command import distill
from judgerl.distill.examples import (
    JudgedPair,
    balanced,
    pairs_from_journal,
    pairs_from_labelled,
    split_by_sample,
)
from judgerl.distill.student import (
    STUDENT_BACKEND,
    TrainSettings,
    render_prompt,
    student_judge,
    student_pairwise_config,
)
from judgerl.errors import DataError
from judgerl.judges.pairwise import CRITERION_NAME
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample
from test_distill import CRITERION, MIDDLES, OPENINGS, QUESTIONS, hidden_rule, synthetic_items
from tiny_policy import build_corpus_model_dir

DESCRIPTION = CRITERION["description"]
FENCED = re.compile(r"<<<ANSWER_([AB])_\w+>>>\n(.*?)\n<<<END_ANSWER_\1_\w+>>>", re.DOTALL)
FAST = TrainSettings(method="full", epochs=4, learning_rate=3e-3, batch_size=8)


def pairwise_teacher(request: CompletionRequest) -> Completion:
    """Head to head, logprob: P(A) from the hidden rule on the two answers as shown."""
    answers = dict(FENCED.findall(request.messages[-1]["content"]))
    first, second = hidden_rule(answers["A"]), hidden_rule(answers["B"])
    p_first = 0.95 if first and not second else 0.05 if second and not first else 0.5
    return Completion(text="A" if p_first >= 0.5 else "B", model="teacher", usage=Usage(400, 1),
                      candidate_logprobs={"A": math.log(p_first), "B": math.log(1 - p_first)})


def write_pairwise_journal(tmp_path: Path, samples: int, answers_per_sample: int) -> tuple[Path, Path]:
    journal = tmp_path / "teacher" / "journal.jsonl"
    config = {"backends": {"teacher": {"type": "scripted"}}, "runtime": {"journal_path": str(journal)},
              "judges": [{"name": "prefers", "type": "pairwise", "backend": "teacher", "scoring": "logprob",
                          "mode": "round_robin", "instructions": DESCRIPTION}]}
    config_path = tmp_path / "teacher" / "reward.yaml"
    config_path.parent.mkdir(parents=True)
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    backend = ScriptedBackend(pairwise_teacher, model="teacher")
    with RewardPipeline.from_config(config, backends={"teacher": backend}) as pipeline:
        pipeline.score_batch_sync(synthetic_items(samples, answers_per_sample, seed=1))
    return journal, config_path


def build_pairwise_student_base(folder: Path) -> Path:
    """The tiny Llama with a tokenizer trained on the student's own pointwise prompts."""
    judge = student_judge(student_pairwise_config("prefers", DESCRIPTION, model="unused"))
    no_template = type("T", (), {"chat_template": None})()
    prompts = [render_prompt(judge.logprob_request(sample, rollout, judge.options.criteria[0]), no_template)
               for sample, rollout in synthetic_items(4, 2)]
    return build_corpus_model_dir(folder, prompts + OPENINGS + MIDDLES + QUESTIONS + ["PASS", "FAIL"])


def labelled_rows(samples: int, seed: int, *, random_labels: bool = False) -> list[dict]:
    """Pairwise labelled rows (the better answer always first unless the labels are random)."""
    rng = random.Random(seed)
    rows = []
    for index in range(samples):
        prompt = f"{rng.choice(QUESTIONS)} (order {seed}-{index})"
        for _ in range(3):
            good = f"{rng.choice(OPENINGS)} {rng.choice(MIDDLES[:3])}"
            bad = f"{rng.choice(OPENINGS)} {rng.choice(MIDDLES[3:])}"
            label = rng.choice("ab") if random_labels else "a"
            rows.append({"prompt": prompt, "answer_a": good, "answer_b": bad, "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_the_pairwise_journal_records_both_answers_and_the_swapped_probability(tmp_path: Path) -> None:
    journal, _ = write_pairwise_journal(tmp_path, samples=3, answers_per_sample=3)
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    compared = [entry for entry in entries if entry["judge_kind"] == "pairwise"]
    assert compared, "the round robin journaled no comparison"
    for entry in compared:
        a, b = entry["inputs"]["answers"]
        assert entry["inputs"]["messages"][0]["role"] == "user"
        assert len(entry["rollout_ids"]) == 2 and entry["calls"] == 2  # both orders
        expected = 0.95 if hidden_rule(a) and not hidden_rule(b) else \
            0.05 if hidden_rule(b) and not hidden_rule(a) else 0.5
        assert entry["scores"]["prob_a"] == pytest.approx(expected)
    pairs = pairs_from_journal(journal, judge="prefers")
    assert len(pairs) == len(compared)
    assert pairs[0].a.completion == compared[0]["inputs"]["answers"][0]
    assert pairs[0].teacher.tokens == 802 and pairs[0].teacher.model == "teacher"


def test_the_student_is_trained_on_the_prompt_its_pairwise_judge_renders(tmp_path: Path) -> None:
    """The snippet's pointwise pairwise judge asks the student exactly what it was trained on."""
    from judgerl.judges.pairwise import PairwiseJudge

    config = student_pairwise_config("prefers", DESCRIPTION, model="unused")
    trained = student_judge(config)
    scripted = {STUDENT_BACKEND: ScriptedBackend(pairwise_teacher)}
    with RewardPipeline.from_config(config, backends=scripted) as p:
        judge = p.judges[0]
        assert isinstance(judge, PairwiseJudge) and judge.rater is not None
        sample, rollout = synthetic_items(1, 1)[0]
        criterion = trained.options.criteria[0]
        assert criterion.name == CRITERION_NAME and criterion.description == DESCRIPTION
        asked = judge.rater.logprob_request(sample, rollout, judge.rater.options.criteria[0])
        assert trained.logprob_request(sample, rollout, criterion).messages == asked.messages


def test_a_tiny_student_learns_a_pairwise_teachers_hidden_rule(tmp_path: Path) -> None:
    journal, config = write_pairwise_journal(tmp_path, samples=60, answers_per_sample=3)
    base = build_pairwise_student_base(tmp_path / "base")
    result = distill(out_dir=tmp_path / "student", base_model=str(base), journal=journal, config=config,
                     settings=FAST)
    report = result.report
    (side,) = report.criteria
    assert report.pairwise and side.kind == "pairwise" and report.held_out_samples == 12
    assert side.teacher_ties is not None and 0 < side.teacher_ties < side.rows
    assert side.accuracy is not None and side.accuracy >= 0.9, report.to_dict()
    assert side.kappa is not None and side.kappa >= 0.8
    assert side.auc is not None and side.auc >= 0.9
    assert report.passed and result.report_paths["plot"].stat().st_size > 0
    assert report.teacher_tokens_per_judgment == 802  # both orders of the head-to-head teacher
    markdown = result.report_paths["markdown"].read_text(encoding="utf-8")
    assert "comparisons/s" in markdown and f"{side.teacher_ties} pair(s) the teacher called a tie" in markdown
    # the snippet is a pairwise judge the real pipeline loads and runs with the written student
    snippet = yaml.safe_load(result.snippet.read_text(encoding="utf-8"))
    (judge,) = snippet["judges"]
    assert (judge["type"], judge["comparison"], judge["scoring"], judge["mode"]) == \
        ("pairwise", "pointwise", "logprob", "round_robin")
    sample = Sample("new", [{"role": "user", "content": "The kettle leaks."}])
    answers = ["Hello and thank you. A full refund is on its way.",
               "We read your message. Please send us a photo.",
               "Apologies for the delay. Our team is checking the parcel."]
    with RewardPipeline.from_config(str(result.snippet)) as pipeline:
        rewards = pipeline.score_batch_sync([(sample, Rollout("new", text, id=str(k)))
                                             for k, text in enumerate(answers)])
    assert all(reward.status == "ok" for reward in rewards)
    assert rewards[0].value is not None and rewards[0].value > max(r.value or 0 for r in rewards[1:])


def test_a_pairwise_labelled_file_trains_a_student_split_by_question(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pairs.jsonl", labelled_rows(40, seed=0))
    pairs = pairs_from_labelled(path)
    assert len(pairs) == 120 and all(pair.verdict == 1.0 for pair in pairs)
    train, held = split_by_sample(pairs, held_out=0.25)
    assert {pair.sample.id for pair in train}.isdisjoint({pair.sample.id for pair in held})
    assert len({pair.sample.id for pair in held}) == 10 and len(held) == 30
    sides = [pair.verdict for pair in balanced(held)]
    assert sides.count(1.0) == sides.count(0.0) == 15  # the better answer is not always a
    base = build_pairwise_student_base(tmp_path / "base")
    result = distill(out_dir=tmp_path / "student", base_model=str(base), labelled=path,
                     description=DESCRIPTION, settings=FAST)
    (side,) = result.report.criteria
    assert side.teacher_ties == 0 and side.rows == 24  # 8 held-out questions of 40 (seed 0)
    assert side.accuracy is not None and side.accuracy >= 0.9 and result.report.passed
    assert json.loads((result.model_dir / "distillation.json").read_text())["teacher"] == "pairwise"


def test_a_student_that_cannot_learn_is_refused(tmp_path: Path) -> None:
    """No training step (0 epochs) on random labels: the CLI writes the report and exits 1."""
    from typer.testing import CliRunner

    from judgerl.cli import app

    path = write_jsonl(tmp_path / "pairs.jsonl", labelled_rows(20, seed=3, random_labels=True))
    base = build_pairwise_student_base(tmp_path / "base")
    with pytest.raises(DistillGateError, match="preferred side"):
        distill(out_dir=tmp_path / "student", base_model=str(base), labelled=path, description=DESCRIPTION,
                settings=TrainSettings(method="full", epochs=0))
    result = CliRunner().invoke(app, ["distill", "--labelled", str(path), "--description", DESCRIPTION,
                                      "--output", str(tmp_path / "cli"), "--base-model", str(base),
                                      "--method", "full", "--epochs", "0"])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert "**Refused**" in (tmp_path / "cli" / "agreement.md").read_text(encoding="utf-8")


def test_a_bad_pairwise_row_names_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    rows = labelled_rows(2, seed=0)
    del rows[1]["answer_b"]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    with pytest.raises(DataError) as caught:
        distill(out_dir=tmp_path / "out", base_model="unused", labelled=path, description=DESCRIPTION)
    message = str(caught.value)
    assert str(path) in message and "line 2" in message and "answer_b" in message


def test_pair_agreement_leaves_teacher_ties_out_and_counts_them() -> None:
    sample = Sample("s", [{"role": "user", "content": "q"}])
    pairs = [JudgedPair(sample, Rollout("s", f"x{k}", id=f"x{k}"), Rollout("s", f"y{k}", id=f"y{k}"), verdict)
             for k, verdict in enumerate([1.0, 0.0, 0.5, 0.9, 0.2])]
    report = measure_pair_agreement("p", pairs, [0.8, 0.3, 0.1, 0.4, None], student_seconds=2.0,
                                    thresholds=Thresholds())
    (side,) = report.criteria
    assert side.teacher_ties == 1 and side.accuracy == pytest.approx(2 / 3)
    assert side.auc == pytest.approx(1.0)  # P(a better) still ranks the teacher's sides right
    assert report.student_judgments_per_s == pytest.approx(2.5)
    assert any("unscored" in failure for failure in report.failures) and not report.passed


def test_a_pointwise_pairwise_teachers_journal_is_read_as_comparisons(tmp_path: Path) -> None:
    """A `comparison: pointwise` teacher journals each answer as a rubric judgment under its own name
    and each comparison as a pairwise one: its config's type decides, and the comparisons are read;
    a journal written before comparisons recorded their `inputs` is refused with a clear error."""
    from judgerl.distill.command import teacher_kind
    from judgerl.judges.pairwise import preference
    from test_distill import teacher_responder

    journal = tmp_path / "journal.jsonl"
    config = {"backends": {"teacher": {"type": "scripted"}}, "runtime": {"journal_path": str(journal)},
              "judges": [{"name": "alone", "type": "pairwise", "backend": "teacher", "scoring": "logprob",
                          "comparison": "pointwise", "mode": "round_robin", "instructions": DESCRIPTION}]}
    config_path = tmp_path / "reward.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with RewardPipeline.from_config(config, backends={"teacher": ScriptedBackend(teacher_responder)}) as p:
        p.score_batch_sync(synthetic_items(4, 3, seed=2))
    entries = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    assert {entry["judge_kind"] for entry in entries} == {"rubric", "pairwise"}
    assert teacher_kind(config_path, journal, None) == ("alone", "pairwise")
    pairs = pairs_from_journal(journal, judge="alone")
    assert len(pairs) == sum(entry["judge_kind"] == "pairwise" for entry in entries) > 0
    for pair in pairs:
        p_a, p_b = (0.95 if hidden_rule(r.completion) else 0.05 for r in (pair.a, pair.b))
        assert pair.verdict == pytest.approx(preference(p_a, p_b))
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({key: value for key, value in entry.items() if key != "inputs"}) + "\n"
                           for entry in entries), encoding="utf-8")
    with pytest.raises(DataError, match="has no `inputs`"):
        pairs_from_journal(old, judge="alone")
