"""Benchmark: distil a pairwise teacher with a hidden rule into a pointwise student; print agreement.

Why: `judgerl distill` of a pairwise teacher claims a Bradley-Terry student (each answer judged
alone, P(a better) = sigmoid(s_a - s_b)) that prefers the answers the teacher prefers. This script
measures it: a scripted head-to-head teacher (no model: it prefers the answer that follows a
hidden rule, both orders asked, with a fixed per-call latency standing in for an API judge)
compares synthetic support replies in a round robin through the real pairwise judge and journal;
`judgerl distill` trains the student (the packaged 135M model with LoRA by default) on the
journaled comparisons, and the student is scored on held-out pairs through the `local` backend.

Prints: held-out accuracy and Cohen's kappa on the preferred side (teacher ties left out and
counted), AUC and ECE of the student's P(a better), comparisons/s of the student here and of the
teacher (from its journal), and the training time.

    python bench/distill_pairwise_judge.py             # packaged 135M, LoRA, rule "mentions a number"
    python bench/distill_pairwise_judge.py --tiny      # seconds: a tiny random Llama, CI smoke
"""

from __future__ import annotations

import math
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from distill_judge import RULES, hidden_rule_args, journal_teacher, tiny_base

from judgerl.backends.base import Completion, CompletionRequest, Usage
from judgerl.distill.agreement import Thresholds
from judgerl.distill.command import distill
from judgerl.distill.student import TrainSettings

FENCED = re.compile(r"<<<ANSWER_([AB])_\w+>>>\n(.*?)\n<<<END_ANSWER_\1_\w+>>>", re.DOTALL)


def teacher(rule: str):
    check = RULES[rule][2]

    def respond(request: CompletionRequest) -> Completion:
        answers = dict(FENCED.findall(request.messages[-1]["content"]))
        first, second = check(answers.get("A", "")), check(answers.get("B", ""))
        p_first = 0.95 if first and not second else 0.05 if second and not first else 0.5
        return Completion(text="A" if p_first >= 0.5 else "B", model="scripted-teacher", usage=Usage(450, 1),
                          candidate_logprobs={"A": math.log(p_first), "B": math.log(1 - p_first)})

    return respond


def write_journal(folder: Path, rule: str, samples: int, answers: int, latency_s: float,
                  seed: int) -> tuple[Path, Path]:
    judge = {"name": "prefers", "type": "pairwise", "backend": "teacher", "scoring": "logprob",
             "mode": "round_robin", "instructions": RULES[rule][1]}
    return journal_teacher(folder, judge, teacher(rule), samples, answers, latency_s, seed)


def main() -> int:
    args, method, rule = hidden_rule_args(__doc__.split("\n\n")[0], answers=3,
                                          answers_help="answers per sample (round robin: all pairs)",
                                          tiny_samples=30, tiny_answers=3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        journal, config = write_journal(folder, rule, args.samples, args.answers, args.teacher_latency_s,
                                        args.seed)
        teacher_s = time.perf_counter() - started
        base = str(tiny_base(folder / "tiny-base")) if args.tiny else args.base_model
        settings = TrainSettings(method=method, epochs=args.epochs, learning_rate=args.learning_rate,
                                 lora_layers=args.lora_layers, seed=args.seed)
        result = distill(out_dir=folder / "student", base_model=base, journal=journal, config=config,
                         settings=settings, thresholds=Thresholds(), enforce_gate=False)
    report = result.report
    (side,) = report.criteria
    fmt = lambda value, digits=3: "n/a" if value is None else f"{value:.{digits}f}"  # noqa: E731
    print(f"distill (pairwise teacher): base {'tiny random Llama' if args.tiny else args.base_model}, "
          f"{method}, rule '{rule}', {result.train_rows} training pairs, {report.held_out_rows} held-out "
          f"pairs ({report.held_out_samples} samples, {side.teacher_ties} teacher ties left out), "
          f"{args.epochs} epoch(s)")
    print(f"training time          : {result.training.seconds:.1f} s ({result.training.steps} steps, "
          f"{result.training.trainable_parameters} trainable parameters)")
    print(f"held-out accuracy      : {fmt(side.accuracy)}")
    print(f"held-out kappa         : {fmt(side.kappa)}")
    print(f"held-out AUC           : {fmt(side.auc)}")
    print(f"held-out ECE           : {fmt(side.ece)}")
    print(f"student comparisons/s  : {fmt(report.student_judgments_per_s, 2)} "
          f"(local, {args.threads} threads)")
    teacher_rate = 1 / report.teacher_latency_s if report.teacher_latency_s else None
    print(f"teacher comparisons/s  : {fmt(teacher_rate, 2)} one at a time "
          f"({fmt(report.teacher_latency_s)} s per comparison, both orders, in its journal; simulated "
          f"latency {args.teacher_latency_s} s per call; the journal took {teacher_s:.1f} s "
          "with concurrency)")
    print(f"peak memory (RSS)      : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")
    verdict = "passed" if report.passed else "refused: " + "; ".join(report.failures)
    print(f"gate                   : {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
