"""Benchmark: distil a teacher judge with a hidden rule into a small local student; print agreement.

Why: `judgerl distill` claims a student that gives the teacher's verdicts, at a fraction of its
cost. This script makes that claim measurable: a scripted teacher (no model: a hidden rule, with
a fixed per-call latency standing in for an API judge) judges synthetic support replies through
the real rubric judge and journal; `judgerl distill` trains the student (the packaged 135M model
with LoRA by default), and the student is scored on held-out samples through the `local` backend.

Prints: held-out accuracy, Cohen's kappa, AUC and ECE against the teacher, the student's
judgments/s here and the teacher's (from its journal), and the training time.

    python bench/distill_judge.py                      # packaged 135M, LoRA, rule "mentions a number"
    python bench/distill_judge.py --method full --samples 120
    python bench/distill_judge.py --tiny               # seconds: a tiny random Llama, CI smoke
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.backends.scripted import ScriptedBackend
from judgerl.distill.agreement import Thresholds
from judgerl.distill.command import distill
from judgerl.distill.student import TrainSettings
from judgerl.reward.pipeline import RewardPipeline
from judgerl.types import Rollout, Sample

QUESTIONS = ["My parcel arrived broken.", "The shoes do not fit.", "I was charged twice.",
             "The box was empty.", "My order never came.", "The lamp does not work.",
             "I want to change my address.", "The colour is not the one I ordered."]
OPENINGS = ["Thanks for writing to us.", "Sorry about the trouble with your order.",
            "Hello and thank you.", "We read your message.", "Apologies for the delay.",
            "We are sorry to hear that."]
WITH_NUMBER = ["We will send a refund within 3 days.", "Your case number is 4411.",
               "Expect the new parcel in 5 days.", "Call us at 0800 123 456.",
               "You will get 20 euros back.", "It ships on the 12th."]
WITHOUT_NUMBER = ["We will send a refund soon.", "Your case is open.", "Expect the new parcel next week.",
                  "Call us any time.", "You will get the money back.", "It ships shortly."]
RULES = {
    "number": ("mentions_number", "The reply gives a concrete number (a date, amount, delay or reference).",
               lambda answer: re.search(r"\d", answer) is not None),
    "refund": ("offers_refund", "The reply offers the customer a refund.", lambda answer: "refund" in answer),
}
ANSWER_RE = re.compile(r"<<<ANSWER_\w+>>>\n(.*)\n<<<END_ANSWER_\w+>>>", re.DOTALL)


def synthetic_items(samples: int, answers: int, seed: int) -> list[tuple[Sample, Rollout]]:
    rng = random.Random(seed)
    items = []
    for index in range(samples):
        sample = Sample(id=f"q{index}", messages=[{"role": "user", "content": rng.choice(QUESTIONS)}])
        for k in range(answers):
            middle = rng.choice(WITH_NUMBER if rng.random() < 0.5 else WITHOUT_NUMBER)
            items.append((sample, Rollout(sample_id=sample.id, completion=f"{rng.choice(OPENINGS)} {middle}",
                                          id=f"q{index}#{k}")))
    return items


def teacher(rule: str):
    check = RULES[rule][2]

    def respond(request: CompletionRequest) -> Completion:
        match = ANSWER_RE.search(request.messages[-1]["content"])
        p_pass = 0.95 if match and check(match.group(1)) else 0.05
        return Completion(text="PASS" if p_pass > 0.5 else "FAIL", model="scripted-teacher",
                          usage=Usage(350, 1),
                          candidate_logprobs={"PASS": math.log(p_pass), "FAIL": math.log(1 - p_pass)})

    return respond


def write_journal(folder: Path, rule: str, samples: int, answers: int, latency_s: float,
                  seed: int) -> tuple[Path, Path]:
    name, description, _ = RULES[rule]
    judge = {"name": "support", "type": "rubric", "backend": "teacher", "scoring": "logprob",
             "criteria": [{"name": name, "kind": "check", "description": description}]}
    return journal_teacher(folder, judge, teacher(rule), samples, answers, latency_s, seed)


def journal_teacher(folder: Path, judge: dict, responder: Callable[[CompletionRequest], Completion],
                    samples: int, answers: int, latency_s: float, seed: int) -> tuple[Path, Path]:
    """Judge the synthetic items with a scripted teacher (`judge` on backend `teacher`) through the
    real pipeline; returns (its journal, its reward config file)."""
    journal = folder / "teacher-journal.jsonl"
    config = {"backends": {"teacher": {"type": "scripted"}}, "runtime": {"journal_path": str(journal)},
              "judges": [judge]}
    config_path = folder / "teacher.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    backend = ScriptedBackend(responder, model="scripted-teacher", latency_s=latency_s)
    with RewardPipeline.from_config(config, backends={"teacher": backend}) as pipeline:
        pipeline.score_batch_sync(synthetic_items(samples, answers, seed))
    return journal, config_path


def tiny_base(folder: Path) -> Path:
    """A tiny random Llama with a tokenizer trained on the task's words (for --tiny only)."""
    from judgerl.judges.templates import load_prompt

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_policy import build_corpus_model_dir

    corpus = [load_prompt("rubric_student").text, *QUESTIONS, *OPENINGS, *WITH_NUMBER, *WITHOUT_NUMBER,
              "PASS", "FAIL", *(description for _, description, _ in RULES.values())]
    return build_corpus_model_dir(folder, corpus)


def hidden_rule_args(description: str, *, answers: int, answers_help: str, tiny_samples: int,
                     tiny_answers: int) -> tuple[argparse.Namespace, str, str]:
    """The hidden-rule benches' command line (this one's and distill_pairwise_judge.py's), torch's
    threads and logging set up, `--tiny`'s defaults applied; returns (args, method, rule)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tiny random model)")
    parser.add_argument("--base-model", default="smollm2-135m-instruct")
    parser.add_argument("--method", choices=["lora", "full"], default=None)
    parser.add_argument("--rule", choices=sorted(RULES), default=None)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--answers", type=int, default=answers, help=answers_help)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--lora-layers", type=int, default=None, help="LoRA on the top N layers only")
    parser.add_argument("--teacher-latency-s", type=float, default=0.5,
                        help="the scripted teacher's simulated per-call latency (an API judge's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.tiny:
        args.samples, args.answers, args.epochs, args.teacher_latency_s = tiny_samples, tiny_answers, 3, 0.0
        args.method = args.method or "full"
        args.rule = args.rule or "refund"
        args.learning_rate = args.learning_rate or 3e-3
    method = args.method or "lora"
    rule = args.rule or "number"
    return args, method, rule


def main() -> int:
    args, method, rule = hidden_rule_args(__doc__.split("\n\n")[0], answers=2,
                                          answers_help="answers judged per sample", tiny_samples=40,
                                          tiny_answers=2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        journal, config = write_journal(folder, rule, args.samples, args.answers, args.teacher_latency_s,
                                        args.seed)
        teacher_s = time.perf_counter() - started
        base = str(tiny_base(folder / "tiny-base")) if args.tiny else args.base_model
        settings = TrainSettings(method=method, epochs=args.epochs, learning_rate=args.learning_rate,
                                 lora_layers=args.lora_layers,
                                 seed=args.seed)
        result = distill(out_dir=folder / "student", base_model=base, journal=journal, config=config,
                         settings=settings, thresholds=Thresholds(), enforce_gate=False)
    report = result.report
    (criterion,) = report.criteria
    fmt = lambda value, digits=3: "n/a" if value is None else f"{value:.{digits}f}"  # noqa: E731
    print(f"distill: base {'tiny random Llama' if args.tiny else args.base_model}, {method}, rule '{rule}', "
          f"{result.train_rows} training rows, {report.held_out_rows} held-out rows "
          f"({report.held_out_samples} samples), {args.epochs} epoch(s)")
    print(f"training time        : {result.training.seconds:.1f} s ({result.training.steps} steps, "
          f"{result.training.trainable_parameters} trainable parameters)")
    print(f"held-out accuracy    : {fmt(criterion.accuracy)}")
    print(f"held-out kappa       : {fmt(criterion.kappa)}")
    print(f"held-out AUC         : {fmt(criterion.auc)}")
    print(f"held-out ECE         : {fmt(criterion.ece)}")
    print(f"student judgments/s  : {fmt(report.student_judgments_per_s, 2)} (local, {args.threads} threads)")
    teacher_rate = 1 / report.teacher_latency_s if report.teacher_latency_s else None
    print(f"teacher judgments/s  : {fmt(teacher_rate, 2)} one at a time "
          f"({fmt(report.teacher_latency_s)} s per judgment in its journal, simulated latency "
          f"{args.teacher_latency_s} s; the teacher's journal took {teacher_s:.1f} s with concurrency)")
    print(f"peak memory (RSS)    : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB "
          "(this process: teacher, training and scoring)")
    print(f"gate                 : {'passed' if report.passed else 'refused: ' + '; '.join(report.failures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
