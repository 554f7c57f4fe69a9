"""Benchmark: probability-weighted judging vs generate-then-parse on the embedded local model.

Why: on a CPU a small judge is only usable if a judgment is one forward pass, not a generated,
parsed text. This script measures that claim on the same judgments, and how good the default
judge is on the vendored LLMBar natural pairs.

    .venv/bin/python bench/local_judge.py                 # 200 judgments each way + LLMBar (100 pairs)
    .venv/bin/python bench/local_judge.py --n 40 --pairs 20   # quicker
    .venv/bin/python bench/local_judge.py --designs       # compare prompt / token designs

What it prints:
1. the same N pointwise judgments ("does this answer follow the instruction?", LLMBar outputs,
   then the built-in probes) scored (a) by the probabilities of the verdict tokens, one forward
   pass each, batched, and (b) by generating up to `--gen-tokens` tokens and parsing the first
   verdict word; judgments/s of each, the ratio, their agreement and (b)'s parse failures;
2. the default pairwise judge's accuracy on LLMBar natural (both orders, P(A) vs P(B));
3. with `--designs`: several prompt/token designs on the built-in right-vs-wrong probes (paired
   accuracy, AUC) and on LLMBar pairs.

The machine's cores may be shared: timings are the wall time of this process and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgerl.backends.base import CompletionRequest
from judgerl.backends.local import LocalBackend

LLMBAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "judge-validation" / \
    "llmbar-natural" / "dataset.json"

#: (question, clearly right answer, clearly wrong answer)
PROBES: list[tuple[str, str, str]] = [
    ("What is the capital of France?", "Paris", "London"),
    ("How many legs does a spider have?", "Eight", "Three"),
    ("What is 2 + 2?", "4", "7"),
    ("What color is the sky on a clear day?", "Blue", "Green"),
    ("Which planet is known as the Red Planet?", "Mars", "Jupiter"),
    ("At what temperature does water boil at sea level, in Celsius?", "100 degrees", "12 degrees"),
    ("Who wrote 'Romeo and Juliet'?", "William Shakespeare", "Albert Einstein"),
    ("What is the largest ocean on Earth?", "The Pacific Ocean", "The Sahara Desert"),
    ("How many days are in a week?", "Seven", "Twelve"),
    ("What is the opposite of hot?", "Cold", "Fast"),
    ("What do bees make?", "Honey", "Steel"),
    ("What is the chemical symbol for water?", "H2O", "NaCl"),
    ("Which animal is known as the king of the jungle?", "The lion", "The goldfish"),
    ("What is the capital of Japan?", "Tokyo", "Cairo"),
    ("How many hours are in a day?", "24", "3"),
    ("What is the first letter of the English alphabet?", "A", "Z"),
    ("What is frozen water called?", "Ice", "Smoke"),
    ("Which is the closest star to Earth?", "The Sun", "The Moon"),
    ("What is 10 times 10?", "100", "11"),
    ("What language is mainly spoken in Spain?", "Spanish", "Japanese"),
]


@dataclass
class Design:
    """A way to ask the model for a verdict: a prompt builder and the two verdict tokens."""

    name: str
    build: Callable[[str, str], list[dict[str, str]]]
    tokens: tuple[str, str]  # (good, bad)
    chat_template: bool = True
    prefix: str = ""

    def request(self, question: str, answer: str) -> CompletionRequest:
        return CompletionRequest(messages=self.build(question, answer), max_tokens=1,
                                 candidate_tokens=list(self.tokens),
                                 extra={"chat_template": self.chat_template, "assistant_prefix": self.prefix})


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


POINTWISE_DESIGNS = [
    Design("passfail-chat", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\n\nIs the answer correct? Reply with PASS or FAIL."), ("PASS", "FAIL")),
    Design("yesno-chat", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\n\nIs the answer correct? Reply with Yes or No."), ("Yes", "No")),
    Design("ab-chat", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\n\nIs the answer correct?\nA. correct\nB. incorrect\n"
        "Reply with A or B."),
        ("A", "B")),
    Design("truefalse-chat", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\n\nTrue or false: the answer is correct. Reply with True or False."),
        ("True", "False")),
    Design("yesno-claim-chat", lambda q, a: _user(
        f"Is it true that the answer to \"{q}\" is \"{a}\"? Reply with Yes or No."), ("Yes", "No")),
    Design("yesno-system-chat", lambda q, a: [
        {"role": "system", "content": "You are a strict grader. You check whether answers are correct "
                                      "and reply with one word: Yes or No."},
        {"role": "user", "content": f"Question: {q}\nAnswer: {a}\n\nIs the answer correct?"}], ("Yes", "No")),
    Design("passfail-raw", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\nIs the answer correct? Reply with PASS or FAIL.\nVerdict:"),
        ("PASS", "FAIL"), chat_template=False),
    Design("yesno-raw", lambda q, a: _user(
        f"Question: {q}\nAnswer: {a}\nIs the answer correct? Yes or No?\nReply:"), ("Yes", "No"),
        chat_template=False),
]


#: worked examples for the few-shot designs (none of them is among the probes)
SHOTS = [("What is the capital of Italy?", "Rome", True),
         ("How many wheels does a bicycle have?", "Five", False),
         ("What is 3 + 3?", "6", True), ("What color is grass?", "Purple", False)]


def _fewshot_raw(q: str, a: str) -> list[dict[str, str]]:
    shots = "".join(f"Question: {sq}\nAnswer: {sa}\nCorrect: {'Yes' if ok else 'No'}\n\n"
                    for sq, sa, ok in SHOTS)
    return _user(f"Decide whether each answer is correct.\n\n{shots}Question: {q}\nAnswer: {a}\nCorrect:")


def _fewshot_chat(q: str, a: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You check answers. Reply Yes if the answer is correct, "
                                              "No if it is not."}]
    for sq, sa, ok in SHOTS:
        messages += [{"role": "user", "content": f"Question: {sq}\nAnswer: {sa}\nIs the answer correct?"},
                     {"role": "assistant", "content": "Yes" if ok else "No"}]
    return [*messages, {"role": "user", "content": f"Question: {q}\nAnswer: {a}\nIs the answer correct?"}]


#: the reference designs show the judge a correct answer (here: the probe's right answer)
REFERENCE = {q: right for q, right, _ in PROBES}
REF_SHOTS = [("Rome", "Rome", True), ("Eight", "Five", False), ("6", "six", True), ("Green", "Purple", False)]


def _reference_raw(q: str, a: str) -> list[dict[str, str]]:
    shots = "".join(f"Reference: {ref}\nAnswer: {ans}\nSame meaning: {'Yes' if ok else 'No'}\n\n"
                    for ref, ans, ok in REF_SHOTS)
    return _user(f"Does the answer mean the same as the reference?\n\n{shots}"
                 f"Reference: {REFERENCE.get(q, '')}\nAnswer: {a}\nSame meaning:")


def _reference_chat(q: str, a: str) -> list[dict[str, str]]:
    return _user(f"Question: {q}\nReference answer: {REFERENCE.get(q, '')}\nAnswer: {a}\n\n"
                 "Does the answer agree with the reference answer? Reply with Yes or No.")


POINTWISE_DESIGNS += [
    Design("yesno-fewshot-raw", _fewshot_raw, ("Yes", "No"), chat_template=False),
    Design("yesno-fewshot-chat", _fewshot_chat, ("Yes", "No")),
    Design("yesno-reference-chat", _reference_chat, ("Yes", "No")),
    Design("yesno-reference-fewshot-raw", _reference_raw, ("Yes", "No"), chat_template=False),
]


def _pair_prompt(instruction: str, first: str, second: str) -> str:
    return (f"Which output follows the instruction better?\n\n## Instruction\n{instruction}\n\n"
            f"## Output A\n{first}\n\n## Output B\n{second}\n\nReply with A or B.")


PAIRWISE_DESIGNS = [
    Design("ab-chat", lambda i, pair: _user(_pair_prompt(i, *pair.split("\x00"))), ("A", "B")),
    Design("ab-chat-prefix", lambda i, pair: _user(_pair_prompt(i, *pair.split("\x00"))), ("A", "B"),
           prefix="The better output is Output"),
    Design("12-chat", lambda i, pair: _user(_pair_prompt(i, *pair.split("\x00"))
                                            .replace("Output A", "Output 1").replace("Output B", "Output 2")
                                            .replace("Reply with A or B", "Reply with 1 or 2")), ("1", "2")),
    Design("ab-raw", lambda i, pair: _user(_pair_prompt(i, *pair.split("\x00")) + "\nAnswer:"), ("A", "B"),
           chat_template=False),
]

DEFAULT_POINTWISE = "yesno-fewshot-raw"
DEFAULT_PAIRWISE = "ab-chat"


def p_first(candidate_logprobs: dict[str, float], tokens: tuple[str, str]) -> float:
    """P(first token) normalised over the two tokens."""
    good, bad = (math.exp(candidate_logprobs[token]) for token in tokens)
    return good / (good + bad)


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


async def gather_all(backend: LocalBackend, requests: list[CompletionRequest]) -> list[Any]:
    return await asyncio.gather(*(backend.complete(request) for request in requests))


def load_llmbar(pairs: int) -> list[dict[str, Any]]:
    return json.loads(LLMBAR.read_text())[:pairs]


# ------------------------------------------------------------------------------ designs


async def run_designs(backend: LocalBackend, pairs: int) -> None:
    print("\n== pointwise designs on the built-in probes (20 right vs 20 wrong answers) ==")
    print(f"{'design':<20} {'paired acc':>10} {'AUC':>6} {'mean P right':>13} {'mean P wrong':>13} {'s':>6}")
    for design in POINTWISE_DESIGNS:
        started = time.perf_counter()
        requests = [design.request(q, a) for q, right, wrong in PROBES for a in (right, wrong)]
        completions = await gather_all(backend, requests)
        probs = [p_first(c.candidate_logprobs, design.tokens) for c in completions]
        right, wrong = probs[0::2], probs[1::2]
        paired = sum(r > w for r, w in zip(right, wrong, strict=True)) / len(right)
        print(f"{design.name:<20} {paired:>10.2f} {auc(right, wrong):>6.2f} {sum(right) / len(right):>13.3f} "
              f"{sum(wrong) / len(wrong):>13.3f} {time.perf_counter() - started:>6.1f}")
    data = load_llmbar(pairs)
    print(f"\n== pairwise designs on LLMBar natural ({len(data)} pairs, both orders) ==")
    print(f"{'design':<20} {'accuracy':>9} {'consistent':>11} {'mean P(first)':>14} {'s':>6}")
    for design in PAIRWISE_DESIGNS:
        started = time.perf_counter()
        accuracy, consistent, bias = await pairwise_accuracy(backend, design, data)
        print(f"{design.name:<20} {accuracy:>9.2f} {consistent:>11.2f} {bias:>14.3f} "
              f"{time.perf_counter() - started:>6.1f}")


async def pairwise_accuracy(backend: LocalBackend, design: Design,
                            data: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Accuracy vs the label, share of pairs whose two orders agree, mean P(first shown)."""
    requests = []
    for row in data:
        requests.append(design.request(row["input"], f"{row['output_1']}\x00{row['output_2']}"))
        requests.append(design.request(row["input"], f"{row['output_2']}\x00{row['output_1']}"))
    completions = await gather_all(backend, requests)
    if not data:
        raise ValueError("no LLMBar pairs to compare (--pairs 0)")
    correct = consistent = 0
    firsts: list[float] = []
    for index, row in enumerate(data):
        forward = p_first(completions[2 * index].candidate_logprobs, design.tokens)
        backward = p_first(completions[2 * index + 1].candidate_logprobs, design.tokens)
        firsts += [forward, backward]
        p_one = (forward + (1 - backward)) / 2
        correct += (1 if p_one > 0.5 else 2) == row["label"]
        consistent += (forward > 0.5) == (backward < 0.5)
    return correct / len(data), consistent / len(data), sum(firsts) / len(firsts)


# ------------------------------------------------------------------------------ main bench


def pointwise_items(n: int, source: str = "llmbar") -> list[tuple[str, str]]:
    """N (question, answer) items: LLMBar outputs first, then the probes (or the probes only,
    repeated up to N: the short-prompt case, where the two methods' costs differ most)."""
    items: list[tuple[str, str]] = []
    if source == "llmbar":
        for row in json.loads(LLMBAR.read_text()):
            items += [(row["input"], row["output_1"]), (row["input"], row["output_2"])]
    items += [(q, a) for q, right, wrong in PROBES for a in (right, wrong)]
    if source == "probes" and len(items) < n:  # the short probes, repeated to N judgments
        items = items * -(-n // len(items))
    return items[:n]


def parse_verdict(text: str, tokens: tuple[str, str]) -> bool | None:
    """The first verdict word in generated text: True (good), False (bad) or None (unparseable)."""
    match = re.search(rf"\b({re.escape(tokens[0])}|{re.escape(tokens[1])})\b", text, re.IGNORECASE)
    if not match:
        return None
    return match.group(1).lower() == tokens[0].lower()


async def run_bench(backend: LocalBackend, n: int, pairs: int, gen_tokens: int,
                    items_source: str = "llmbar") -> dict[str, Any]:
    design = next(d for d in POINTWISE_DESIGNS if d.name == DEFAULT_POINTWISE)
    items = pointwise_items(n, items_source)
    scoring = [design.request(q, a) for q, a in items]
    started = time.perf_counter()
    scored = await gather_all(backend, scoring)
    logprob_s = time.perf_counter() - started
    probs = [p_first(c.candidate_logprobs, design.tokens) for c in scored]

    generating = [CompletionRequest(messages=r.messages, max_tokens=gen_tokens, temperature=0.0,
                                    extra=dict(r.extra)) for r in scoring]
    started = time.perf_counter()
    generated = await gather_all(backend, generating)
    generate_s = time.perf_counter() - started
    verdicts = [parse_verdict(c.text, design.tokens) for c in generated]
    parsed = [(p > 0.5, v) for p, v in zip(probs, verdicts, strict=True) if v is not None]
    agreement = sum(a == b for a, b in parsed) / len(parsed) if parsed else float("nan")

    pair_design = next(d for d in PAIRWISE_DESIGNS if d.name == DEFAULT_PAIRWISE)
    data = load_llmbar(pairs)
    started = time.perf_counter()
    accuracy, consistent, bias = (await pairwise_accuracy(backend, pair_design, data) if data
                                  else (float("nan"),) * 3)
    pairwise_s = time.perf_counter() - started
    result = {
        "judgments": len(items), "design": design.name, "gen_tokens": gen_tokens,
        "logprob_judgments_per_s": len(items) / logprob_s,
        "generate_judgments_per_s": len(items) / generate_s,
        "ratio": generate_s / logprob_s, "agreement": agreement, "generate_unparsed": verdicts.count(None),
        "generate_tokens": sum(c.usage.completion_tokens for c in generated),
        "llmbar_pairs": len(data), "llmbar_design": pair_design.name, "llmbar_accuracy": accuracy,
        "llmbar_position_consistency": consistent, "llmbar_mean_p_first": bias, "llmbar_s": pairwise_s,
    }
    print(f"\n== {len(items)} pointwise judgments ({design.name}) ==")
    print(f"probability-weighted: {result['logprob_judgments_per_s']:.2f} judgments/s ({logprob_s:.1f} s)")
    print(f"generate-then-parse : {result['generate_judgments_per_s']:.2f} judgments/s ({generate_s:.1f} s, "
          f"max {gen_tokens} tokens, {result['generate_tokens']} generated)")
    print(f"ratio               : {result['ratio']:.1f}x")
    print(f"agreement           : {agreement:.2f} on {len(parsed)} parsed; "
          f"{result['generate_unparsed']} of {len(items)} generations had no verdict word")
    print(f"\n== default pairwise judge ({pair_design.name}) on LLMBar natural: {len(data)} pairs, "
          "both orders ==")
    print(f"accuracy {accuracy:.2f}, position-consistent {consistent:.2f}, mean P(first shown) {bias:.3f} "
          f"({pairwise_s:.1f} s)")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=200, help="pointwise judgments per method")
    parser.add_argument("--pairs", type=int, default=100, help="LLMBar pairs (max 100)")
    parser.add_argument("--gen-tokens", type=int, default=24, help="generate-then-parse max_tokens")
    parser.add_argument("--batch", type=int, default=8, help="max batch (= max_concurrency)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--items", choices=["llmbar", "probes"], default="llmbar",
                        help="pointwise items: LLMBar outputs (long) then probes, or the short probes only")
    parser.add_argument("--designs", action="store_true", help="compare prompt/token designs instead")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    backend = LocalBackend(args.model, max_concurrency=args.batch, dtype=args.dtype, threads=args.threads)
    started = time.perf_counter()
    engine = backend.load()
    print(f"model {engine.path} ({args.dtype}) ready in {time.perf_counter() - started:.1f} s")
    if args.designs:
        asyncio.run(run_designs(backend, args.pairs))
        return 0
    result = asyncio.run(run_bench(backend, args.n, args.pairs, args.gen_tokens, args.items))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
