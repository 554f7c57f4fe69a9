"""Benchmark: the demo's `specific` criterion: a 135M student distilled from the labelled set vs the
embedded few-shot judge, on the same held-out rows.

Why: the demo's judge must check something no regex can: whether a support reply addresses the
specific thing the customer wrote, not a generic apology. `judgerl/data/specific-reply` holds a
labelled set written for it (train and held-out scenarios). This script distills the packaged
SmolLM2-135M student from the training part (`judgerl distill --labelled ... --held-out-file ...`)
and scores the held-out part with it and with the judge the demo has used so far (the same 135M
model, not trained, with the worked-examples prompt `rubric_logprob_fewshot`, Yes/No tokens, no
chat template), through the same reward pipeline and agreement figures.

Prints, for both judges: held-out accuracy (at P = 0.5), Cohen's kappa, AUC, ECE and judgments/s;
and the student's training time.

    python bench/specific_reply_judge.py                  # packaged 135M, LoRA
    python bench/specific_reply_judge.py --method full
    python bench/specific_reply_judge.py --tiny           # seconds: a tiny random Llama, a few rows
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from judgerl.distill.agreement import CriterionAgreement, Thresholds, measure_agreement, student_verdicts
from judgerl.distill.command import distill
from judgerl.distill.examples import judged_from_labelled
from judgerl.distill.student import TrainSettings

CRITERION = "specific"
DESCRIPTION = "The reply addresses the specific thing the customer wrote, not a generic apology."


def data_folder() -> Path:
    return Path(str(resources.files("judgerl").joinpath("data", "specific-reply")))


def fewshot_config(model: str) -> dict[str, Any]:
    """The demo's embedded judge as it stood: untrained 135M, worked examples, Yes/No, plain text."""
    return {"backends": {"judge": {"type": "local", "model": model, "max_concurrency": 16,
                                   "chat_template": False}},
            "judges": [{"name": CRITERION, "type": "rubric", "backend": "judge", "scoring": "logprob",
                        "prompt": "rubric_logprob_fewshot", "pass_token": "Yes", "fail_token": "No",
                        "criteria": [{"name": CRITERION, "kind": "check", "description": DESCRIPTION}]}]}


def subset(source: Path, target: Path, every: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text("".join(lines[::every]), encoding="utf-8")
    return target


def tiny_base(folder: Path, train: Path) -> Path:
    from judgerl.judges.templates import load_prompt

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_policy import build_corpus_model_dir

    corpus = [load_prompt("rubric_student").text, load_prompt("rubric_logprob_fewshot").text, DESCRIPTION,
              *train.read_text(encoding="utf-8").splitlines()[:60], "PASS", "FAIL", "Yes", "No"]
    return build_corpus_model_dir(folder, corpus)


def line(name: str, figures: CriterionAgreement, rate: float | None) -> str:
    fmt = lambda value, digits=3: "n/a" if value is None else f"{value:.{digits}f}"  # noqa: E731
    return (f"{name:<34}: accuracy {fmt(figures.accuracy)}  kappa {fmt(figures.kappa)}  "
            f"AUC {fmt(figures.auc)}  ECE {fmt(figures.ece)}  {fmt(rate, 2)} judgments/s")


def fewshot_line(held: Path, model: str) -> str:
    rows = judged_from_labelled(held, criterion=CRITERION)
    verdicts, seconds = student_verdicts(fewshot_config(model), rows)
    fewshot = measure_agreement(CRITERION, rows, verdicts, student_seconds=seconds, thresholds=Thresholds())
    return line("embedded few-shot judge (untrained)", fewshot.criteria[0], fewshot.student_judgments_per_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tiny random model)")
    parser.add_argument("--base-model", default="smollm2-135m-instruct")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--lora-layers", type=int, default=None, help="LoRA on the top N layers only")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-fewshot", action="store_true", help="score with the student only")
    parser.add_argument("--fewshot-only", action="store_true", help="score with the embedded judge only")
    parser.add_argument("--output", type=Path, default=None, help="keep the student folder here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train, held = data_folder() / "train.jsonl", data_folder() / "held_out.jsonl"
        base = args.base_model
        if args.tiny:
            train, held = subset(train, folder / "train.jsonl", 6), subset(held, folder / "held.jsonl", 6)
            base = str(tiny_base(folder / "tiny-base", train))
            args.epochs, args.method = 1, "full"
            args.learning_rate = args.learning_rate or 3e-3
        if args.fewshot_only:
            print(fewshot_line(held, base))
            return 0
        settings = TrainSettings(method=args.method, epochs=args.epochs, learning_rate=args.learning_rate,
                                 lora_layers=args.lora_layers,
                                 batch_size=args.batch_size, seed=args.seed)
        out = args.output or folder / "student"
        result = distill(out_dir=out, base_model=base, labelled=train, held_out_labelled=held,
                         criterion=CRITERION, description=DESCRIPTION, settings=settings,
                         thresholds=Thresholds(), enforce_gate=False)
        report = result.report
        print(f"specific-reply: {result.train_rows} training rows, {report.held_out_rows} held-out rows "
              f"({report.held_out_samples} messages of scenarios never trained on)")
        print(f"student training   : {'tiny random Llama' if args.tiny else args.base_model}, {args.method}, "
              f"{args.epochs} epoch(s), {result.training.seconds:.1f} s ({result.training.steps} steps)")
        print(line("distilled student (rubric_student)", report.criteria[0], report.student_judgments_per_s))
        if not args.skip_fewshot:
            print(fewshot_line(held, base))
        gate = "passed" if report.passed else "refused: " + "; ".join(report.failures)
        print(f"student gate       : {gate}")
        print(f"peak memory (RSS)  : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
