"""Benchmark: probability-weighted judging vs generate-then-parse on the embedded local model.

Why: on a CPU a small judge is only usable if a judgment is one forward pass, not a generated,
parsed text. This script measures that claim on the same judgments, and how good the default
judge is on the vendored LLMBar natural pairs.

    .venv/bin/python bench/local_judge.py                 # 200 judgments each way + LLMBar (100 pairs)
    .venv/bin/python bench/local_judge.py --items probes --n 200 --pairs 0 --gen-tokens 64
    .venv/bin/python bench/local_judge.py --items probes --n 200 --pairs 0 --gen-tokens 64 --criteria 2
    .venv/bin/python bench/local_judge.py --pairs-only --pairs 16   # only the LLMBar pair figures
    .venv/bin/python bench/local_judge.py --prompts       # compare judge prompts (probes, demo criteria)
    .venv/bin/python bench/local_judge.py --designs       # compare raw prompt / token designs
    .venv/bin/python bench/local_judge.py --tiny          # smoke run (CI): it works, figures not meaningful

What it prints:
1. the same N pointwise judgments, rendered by the rubric judge (`scoring: logprob`) in the setup
   shipped for the embedded judge (`--setup`, default: the rubric_logprob_fewshot prompt, plain
   text, Yes/No, as in the demo's reward), on the built-in probes (or LLMBar outputs), scored
   (a) by the probabilities of the verdict tokens, one forward pass each, batched, and (b) by
   generating up to `--gen-tokens` tokens from the same prompt and parsing the first verdict
   word; judgments/s of each, the ratio, their agreement and (b)'s parse failures. Both sides
   run on the same backend with the same batching and the same prefix KV cache (shared
   prompt prefixes computed once; `--prefix-cache-tokens 0` switches it off for both).
   `--criteria 2` judges half as many answers on two criteria each (a rubric's shape: the
   requests of one answer share all but the criterion line);
   `--design NAME` renders the probes with a raw design of 4. instead of the rubric judge
   (short prompts without fences: how the figures before the judge's template were taken);
2. the default pairwise judge's accuracy on LLMBar natural (both orders, P(A) vs P(B)), each
   output judged alone by the rubric setup, and the real `PairwiseJudge` class (`scoring:
   logprob`) on the same pairs in comparison `pointwise` (each answer alone with the `--setup`
   template and tokens, the judge's default criterion unless `--pointwise-instructions`) and,
   with `--judge-head-to-head`, `head_to_head` (its shipped default prompt, chat template on,
   both orders);
3. with `--prompts`: judge prompt / token / template choices through the rubric judge, on the
   probes (right vs wrong answer) and on the demo's own tone criteria (friendly, on_topic) with
   the demo's data (reference replies vs rude and off-topic ones): AUC per criterion;
4. with `--designs`: several raw prompt/token designs on the probes (paired accuracy, AUC) and on
   LLMBar pairs.

The machine's cores may be shared: timings are the wall time of this process and noisy; set the
glibc malloc variables of `judgerl.backends.local.RECOMMENDED_MALLOC_ENV` before starting.
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
from judgerl.backends.local import DEFAULT_PREFIX_CACHE_TOKENS, LocalBackend
from judgerl.config import JudgeConfig, read_yaml
from judgerl.judges.logprob import p_pass
from judgerl.judges.pairwise import PairwiseJudge
from judgerl.judges.rubric import RubricJudge
from judgerl.runtime.model_runtime import ModelRuntime
from judgerl.types import Rollout, Sample
from judgerl.validate.datasets import find_data_dir
from judgerl.validate.probe import orders_from_details, winner_from_scores

LLMBAR = find_data_dir() / "llmbar-natural" / "dataset.json"

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

DEFAULT_PAIRWISE = "ab-chat"


# ------------------------------------------------------------------------------ judge setups


@dataclass
class JudgeItem:
    """One pointwise judgment: an answer to a question, judged on one criterion of the judge."""

    question: str
    answer: str
    reference: str | None
    criterion: str
    good: bool | None = None  # the expected verdict, where known


@dataclass
class JudgeSetup:
    """How the rubric judge (`scoring: logprob`) asks the local model: a prompt template (a shipped
    name or a file), the verdict tokens, the chat template on or off (the backend's
    `chat_template` option) and whether the reference answer is shown (`use_reference`)."""

    name: str
    prompt: str
    tokens: tuple[str, str] = ("Yes", "No")
    chat_template: bool = False
    use_reference: bool = False

    def judge(self, backend: LocalBackend, criteria: list[dict[str, Any]]) -> RubricJudge:
        source = {"prompt_file": self.prompt} if self.prompt.endswith(".txt") else {"prompt": self.prompt}
        config = JudgeConfig(name="bench", type="rubric", backend="judge", scoring="logprob",
                             criteria=criteria, pass_token=self.tokens[0], fail_token=self.tokens[1],
                             use_reference=self.use_reference, **source)
        return RubricJudge(config, ModelRuntime({"judge": backend}))

    def requests(self, judge: RubricJudge, items: list[JudgeItem]) -> list[CompletionRequest]:
        """The judge's own rendering of each item (what `judgerl` sends in production)."""
        criteria = {criterion.name: criterion for criterion in judge.options.criteria}
        requests = []
        for index, item in enumerate(items):
            sample = Sample(id=f"item-{index}", messages=[{"role": "user", "content": item.question}],
                            reference=item.reference)
            request = judge.logprob_request(sample, Rollout(sample.id, item.answer), criteria[item.criterion])
            request.extra["chat_template"] = self.chat_template
            requests.append(request)
        return requests


#: the setup the embedded judge ships with (the demo's reward uses it; chosen with `--prompts`):
#: the few-shot template, plain text (backend `chat_template: false`), Yes/No, no reference
SHIPPED_SETUP = JudgeSetup("fewshot-plain-yesno", "rubric_logprob_fewshot")

PROMPT_SETUPS = [
    JudgeSetup("default-chat-passfail", "rubric_logprob", ("PASS", "FAIL"), chat_template=True),
    JudgeSetup("default-chat-yesno", "rubric_logprob", ("Yes", "No"), chat_template=True),
    JudgeSetup("default-plain-yesno", "rubric_logprob", ("Yes", "No")),
    JudgeSetup("fewshot-chat-yesno", "rubric_logprob_fewshot", chat_template=True),
    SHIPPED_SETUP,
    JudgeSetup("default-chat-passfail-ref", "rubric_logprob", ("PASS", "FAIL"), chat_template=True,
               use_reference=True),
    JudgeSetup("fewshot-plain-yesno-ref", "rubric_logprob_fewshot", use_reference=True),
]

CORRECT = [{"name": "correct", "description": "The answer to the question is correct."}]
FOLLOWS = [{"name": "follows", "description": "The output follows the instruction."}]

#: rude replies for the demo's `friendly` criterion (written for this benchmark)
RUDE = ["Not our problem. Stop writing to us.", "Figure it out yourself, I'm busy.",
        "That's your own fault, deal with it.", "Read the website before bothering us.",
        "We don't care. Go away.", "Stop complaining, nobody else has this issue.",
        "Ugh, another pointless question.", "Whatever. Not my job."]


def probe_items() -> list[JudgeItem]:
    """The probes, right then wrong answer, with the right answer as the reference."""
    return [JudgeItem(q, answer, right, "correct", answer == right)
            for q, right, wrong in PROBES for answer in (right, wrong)]


def demo_judge_criteria() -> list[dict[str, Any]]:
    """The criteria of the demo reward's judge (src/judgerl/demo/reward.yaml)."""
    from importlib import resources

    reward = read_yaml(Path(str(resources.files("judgerl") / "demo" / "reward.yaml")))
    return list(reward["judges"][0]["criteria"])


def demo_items() -> list[JudgeItem]:
    """The demo's prompts: the reference reply (good) on every criterion, a rude reply (bad on
    `friendly`) and another prompt's reference reply (bad on `on_topic`)."""
    from importlib import resources

    folder = resources.files("judgerl") / "demo"
    rows = [json.loads(line) for name in ("train.jsonl", "eval.jsonl")
            for line in (folder / name).read_text().splitlines() if line.strip()]
    items: list[JudgeItem] = []
    for index, row in enumerate(rows):
        other = rows[(index + len(rows) // 2) % len(rows)]["reference"]
        for criterion in ("friendly", "on_topic"):
            items.append(JudgeItem(row["prompt"], row["reference"], row["reference"], criterion, True))
        items.append(JudgeItem(row["prompt"], RUDE[index % len(RUDE)], row["reference"], "friendly", False))
        items.append(JudgeItem(row["prompt"], other, row["reference"], "on_topic", False))
    return items


async def judge_probabilities(backend: LocalBackend, setup: JudgeSetup, criteria: list[dict[str, Any]],
                              items: list[JudgeItem]) -> list[float]:
    judge = setup.judge(backend, criteria)
    completions = await gather_all(backend, setup.requests(judge, items))
    return [p_first(c.candidate_logprobs, setup.tokens) for c in completions]


def separation(items: list[JudgeItem], probs: list[float], criterion: str) -> tuple[float, float, float]:
    """AUC of good vs bad answers on one criterion, and the mean P(pass) of each."""
    good = [p for item, p in zip(items, probs, strict=True) if item.criterion == criterion and item.good]
    bad = [p for item, p in zip(items, probs, strict=True) if item.criterion == criterion and not item.good]
    return auc(good, bad), sum(good) / len(good), sum(bad) / len(bad)


async def run_prompts(backend: LocalBackend) -> None:
    """Judge prompt / token / template choices through the rubric judge."""
    probes, demo = probe_items(), demo_items()
    criteria = demo_judge_criteria()
    print("\n== rubric judge setups: probes (20 right vs 20 wrong, criterion `correct`) and the demo's "
          f"criteria ({len(demo) // 4} prompts: reference reply vs rude / another prompt's reply) ==")
    print(f"{'setup':<28} {'probes AUC':>10} {'P right/wrong':>14} {'friendly AUC':>12} "
          f"{'on_topic AUC':>12} {'P good/bad':>11} {'s':>6}")
    for setup in PROMPT_SETUPS:
        started = time.perf_counter()
        probe_probs = await judge_probabilities(backend, setup, CORRECT, probes)
        demo_probs = await judge_probabilities(backend, setup, criteria, demo)
        probe_auc, right, wrong = separation(probes, probe_probs, "correct")
        friendly = separation(demo, demo_probs, "friendly")
        on_topic = separation(demo, demo_probs, "on_topic")
        good = (friendly[1] + on_topic[1]) / 2
        bad = (friendly[2] + on_topic[2]) / 2
        print(f"{setup.name:<28} {probe_auc:>10.2f} {right:>6.2f}/{wrong:<7.2f} {friendly[0]:>12.2f} "
              f"{on_topic[0]:>12.2f} {good:>5.2f}/{bad:<5.2f} {time.perf_counter() - started:>6.1f}")


def p_first(candidate_logprobs: dict[str, float], tokens: tuple[str, str]) -> float:
    """P(first token) normalised over the two tokens."""
    return p_pass({token: math.exp(candidate_logprobs[token]) for token in tokens}, *tokens)


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


async def pointwise_pair_accuracy(backend: LocalBackend, setup: JudgeSetup,
                                  data: list[dict[str, Any]]) -> float:
    """Each LLMBar output judged alone by the rubric judge (`follows`, in `setup`), the pair won by
    the higher P(pass): position-free by construction (ties count as misses)."""
    items = [JudgeItem(row["input"], row[key], None, "follows") for row in data
             for key in ("output_1", "output_2")]
    scored = await gather_all(backend, setup.requests(setup.judge(backend, FOLLOWS), items))
    probs = [p_first(c.candidate_logprobs, setup.tokens) for c in scored]
    wins = [(1 if probs[2 * i] > probs[2 * i + 1] else 2 if probs[2 * i] < probs[2 * i + 1] else 0)
            for i in range(len(data))]
    return sum(win == row["label"] for win, row in zip(wins, data, strict=True)) / len(data)


async def pairwise_judge_accuracy(backend: LocalBackend, data: list[dict[str, Any]], comparison: str,
                                  setup: JudgeSetup = SHIPPED_SETUP,
                                  instructions: str | None = None) -> dict[str, Any]:
    """The real `PairwiseJudge` (`scoring: logprob`) on LLMBar pairs, in `comparison` mode.

    head_to_head: the judge's shipped prompt (pairwise_logprob), chat template on, both orders;
    pointwise: each output judged alone with `setup`'s template, tokens and chat-template choice,
    `tie_margin: 0` (as the embedded judge's example config).
    accuracy: the verdict (ties within `tie_margin` count as misses); graded_accuracy: P(a better)
    above / below 0.5 (exactly 0.5 is a miss), the same rule as the 'alone' figure; calls: model
    calls the judge made (from its journal)."""
    options: dict[str, Any] = {"comparison": comparison}
    chat_template = True
    if comparison == "pointwise":
        source = {"prompt_file": setup.prompt} if setup.prompt.endswith(".txt") else {"prompt": setup.prompt}
        # as examples/validation/reward.yaml ships it: any difference in P(pass) decides
        options.update(source, pass_token=setup.tokens[0], fail_token=setup.tokens[1], tie_margin=0.0)
        if instructions:
            options["instructions"] = instructions
        chat_template = setup.chat_template
    judge_backend = LocalBackend(backend.model, max_concurrency=backend.max_concurrency, dtype=backend.dtype,
                                 threads=backend.threads, chat_template=chat_template,
                                 prefix_cache_tokens=backend.prefix_cache_tokens)
    runtime = ModelRuntime({"judge": judge_backend})
    judge = PairwiseJudge(JudgeConfig(name="bench", type="pairwise", backend="judge", scoring="logprob",
                                      **options), runtime)
    samples = [Sample(id=f"llmbar-{index}", messages=[{"role": "user", "content": row["input"]}])
               for index, row in enumerate(data)]
    verdicts = await asyncio.gather(*(judge.compare(sample, row["output_1"], row["output_2"])
                                      for sample, row in zip(samples, data, strict=True)))
    truth = ["a" if row["label"] == 1 else "b" for row in data]
    graded = [None if v.prob_a is None else winner_from_scores(v.prob_a, 0.5) for v in verdicts]
    figures: dict[str, Any] = {
            "accuracy": sum(v.winner == t for v, t in zip(verdicts, truth, strict=True)) / len(data),
            "graded_accuracy": sum(g == t for g, t in zip(graded, truth, strict=True)) / len(data),
            "ties": sum(v.winner == "tie" for v in verdicts) / len(data),
            "unscored": sum(v.winner is None for v in verdicts) / len(data),
            "consistent": sum(orders is not None and orders[0] == orders[1]
                              for orders in (orders_from_details(v.details) for v in verdicts)) / len(data),
            "calls": sum(entry.get("calls", 0) for entry in runtime.journal_entries),
            "p_pass": [v.details.get("p_pass") for v in verdicts],
            "prob_a_by_order": [v.details.get("prob_a_by_order") for v in verdicts]}
    return figures


# ------------------------------------------------------------------------------ main bench


def per_answer_criteria(items: list[JudgeItem], criteria: int) -> list[JudgeItem]:
    """With 2, the same number of judgments as half the answers, each judged on `correct` and
    `follows` (a rubric of two criteria, as the demo's judge asks; the requests of one answer share
    everything up to the criterion line, which the local backend packs into one trie)."""
    if criteria == 1:
        return items
    half = items[: (len(items) + 1) // 2]
    return [JudgeItem(i.question, i.answer, i.reference, name, i.good if name == i.criterion else None)
            for i in half for name in ("correct", "follows")][: len(items)]


def pointwise_items(n: int, source: str = "llmbar") -> list[JudgeItem]:
    """N items: LLMBar outputs (no reference, criterion `follows`) then the probes (with their
    reference, criterion `correct`), or the probes only, repeated up to N: the short-prompt case."""
    items: list[JudgeItem] = []
    if source == "llmbar":
        for row in json.loads(LLMBAR.read_text()):
            items += [JudgeItem(row["input"], row[key], None, "follows") for key in ("output_1", "output_2")]
    items += probe_items()
    if source == "probes" and len(items) < n:  # the short probes, repeated to N judgments
        items = items * -(-n // len(items))
    return items[:n]


def parse_verdict(text: str, tokens: tuple[str, str]) -> bool | None:
    """The first verdict word in generated text: True (good), False (bad) or None (unparseable)."""
    match = re.search(rf"\b({re.escape(tokens[0])}|{re.escape(tokens[1])})\b", text, re.IGNORECASE)
    if not match:
        return None
    return match.group(1).lower() == tokens[0].lower()


async def run_pairs(backend: LocalBackend, pairs: int, setup: JudgeSetup = SHIPPED_SETUP,
                    pointwise_instructions: str | None = None,
                    judge_head_to_head: bool = False, judge_only: bool = False) -> dict[str, Any]:
    """The pairwise figures on the first `pairs` LLMBar natural pairs (section 2 of the docstring);
    `judge_only`: only the PairwiseJudge lines."""
    pair_design = next(d for d in PAIRWISE_DESIGNS if d.name == DEFAULT_PAIRWISE)
    data = load_llmbar(pairs)
    started = time.perf_counter()
    raw = bool(data) and not judge_only
    accuracy, consistent, bias = (await pairwise_accuracy(backend, pair_design, data) if raw
                                  else (float("nan"),) * 3)
    pairwise_s = time.perf_counter() - started
    pointwise_pairs = await pointwise_pair_accuracy(backend, setup, data) if raw else float("nan")
    started = time.perf_counter()
    judge_pointwise = (await pairwise_judge_accuracy(backend, data, "pointwise", setup,
                                                     pointwise_instructions) if data else {})
    judge_pointwise_s = time.perf_counter() - started
    started = time.perf_counter()
    judge_head = (await pairwise_judge_accuracy(backend, data, "head_to_head")
                  if data and judge_head_to_head else {})
    judge_head_s = time.perf_counter() - started
    result = {
        "llmbar_pairs": len(data), "llmbar_design": pair_design.name, "llmbar_accuracy": accuracy,
        "llmbar_position_consistency": consistent, "llmbar_mean_p_first": bias, "llmbar_s": pairwise_s,
        "llmbar_pointwise_accuracy": pointwise_pairs,
        "llmbar_judge_pointwise": judge_pointwise, "llmbar_judge_head_to_head": judge_head,
    }
    if data:
        print(f"\n== default pairwise judge ({pair_design.name}) on LLMBar natural: {len(data)} pairs, "
              "both orders ==")
    if raw:
        print(f"accuracy {accuracy:.2f}, position-consistent {consistent:.2f}, "
              f"mean P(first shown) {bias:.3f} ({pairwise_s:.1f} s)")
        print(f"each output judged alone ({setup.name}, `follows`), higher P(pass) wins: accuracy "
              f"{pointwise_pairs:.2f} (position-free)")
    if data:
        for label, figures, seconds in (("comparison: head_to_head", judge_head, judge_head_s),
                                        (f"comparison: pointwise ({setup.name})", judge_pointwise,
                                         judge_pointwise_s)):
            if not figures:
                continue
            print(f"PairwiseJudge, scoring: logprob, {label}: accuracy {figures['accuracy']:.2f} "
                  f"(ties {figures['ties']:.2f}, unscored {figures['unscored']:.2f}), by P(a better) "
                  f"{figures['graded_accuracy']:.2f}, position-consistent {figures['consistent']:.2f}, "
                  f"{figures['calls']:.0f} calls ({seconds:.1f} s)")
    return result


async def run_bench(backend: LocalBackend, n: int, pairs: int, gen_tokens: int,
                    items_source: str = "llmbar", setup: JudgeSetup = SHIPPED_SETUP,
                    design: Design | None = None, criteria: int = 1,
                    pointwise_instructions: str | None = None,
                    judge_head_to_head: bool = False) -> dict[str, Any]:
    """The main comparison; `design` replaces the rubric judge's rendering by a raw prompt design
    (what the previous figures used: no fences, no judge template)."""
    items = per_answer_criteria(pointwise_items(n, items_source), criteria)
    if design is None:
        judge = setup.judge(backend, CORRECT + FOLLOWS)
        scoring = setup.requests(judge, items)
        tokens, label = setup.tokens, (f"rubric judge, {setup.name}: {judge.prompt.version}, "
                                       f"{'/'.join(setup.tokens)}, chat template "
                                       f"{'on' if setup.chat_template else 'off'}")
    else:
        scoring = [design.request(item.question, item.answer) for item in items]
        tokens, label = design.tokens, f"raw design {design.name}, not the judge's rendering"
    engine = backend.load()
    before = engine.stats.snapshot()
    started = time.perf_counter()
    scored = await gather_all(backend, scoring)
    logprob_s = time.perf_counter() - started
    middle = engine.stats.snapshot()
    probs = [p_first(c.candidate_logprobs, tokens) for c in scored]

    generating = [CompletionRequest(messages=r.messages, max_tokens=gen_tokens, temperature=0.0,
                                    extra=dict(r.extra)) for r in scoring]
    started = time.perf_counter()
    generated = await gather_all(backend, generating)
    generate_s = time.perf_counter() - started
    after = engine.stats.snapshot()
    verdicts = [parse_verdict(c.text, tokens) for c in generated]
    parsed = [(p > 0.5, v) for p, v in zip(probs, verdicts, strict=True) if v is not None]
    agreement = sum(a == b for a, b in parsed) / len(parsed) if parsed else float("nan")

    prompt_tokens = sum(c.usage.prompt_tokens for c in scored)
    result = {
        "judgments": len(items), "criteria_per_answer": criteria, "prompt": label, "gen_tokens": gen_tokens,
        "prefix_cache_tokens": engine.prefix_store.max_tokens,
        "logprob_judgments_per_s": len(items) / logprob_s,
        "generate_judgments_per_s": len(items) / generate_s,
        "ratio": generate_s / logprob_s, "agreement": agreement, "generate_unparsed": verdicts.count(None),
        "generate_tokens": sum(c.usage.completion_tokens for c in generated),
        "prompt_tokens_per_judgment": prompt_tokens / len(items),
        "logprob_prefill_tokens": middle["prefill_tokens"] - before["prefill_tokens"],
        "generate_prefill_tokens": after["prefill_tokens"] - middle["prefill_tokens"],
    }
    print(f"\n== {len(items)} pointwise judgments ({label}; {criteria} criteria per answer) ==")
    print(f"prompt              : {result['prompt_tokens_per_judgment']:.0f} tokens per judgment; prefix KV "
          f"cache {result['prefix_cache_tokens']} tokens; tokens run: {result['logprob_prefill_tokens']} "
          f"(prob-weighted) and {result['generate_prefill_tokens']} (generate prefill) of {prompt_tokens}")
    print(f"probability-weighted: {result['logprob_judgments_per_s']:.2f} judgments/s ({logprob_s:.1f} s)")
    print(f"generate-then-parse : {result['generate_judgments_per_s']:.2f} judgments/s ({generate_s:.1f} s, "
          f"max {gen_tokens} tokens, {result['generate_tokens']} generated)")
    print(f"ratio               : {result['ratio']:.1f}x")
    print(f"agreement           : {agreement:.2f} on {len(parsed)} parsed; "
          f"{result['generate_unparsed']} of {len(items)} generations had no verdict word")
    result.update(await run_pairs(backend, pairs, setup, pointwise_instructions, judge_head_to_head))
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
    parser.add_argument("--setup", default=SHIPPED_SETUP.name, choices=[s.name for s in PROMPT_SETUPS],
                        help="the rubric judge setup of the pointwise judgments")
    parser.add_argument("--design", default=None,
                        help="score with this raw pointwise design instead of the rubric judge (probes only)")
    parser.add_argument("--prefix-cache-tokens", type=int, default=DEFAULT_PREFIX_CACHE_TOKENS,
                        help="the local backend's prefix KV cache budget (0: off)")
    parser.add_argument("--criteria", type=int, choices=[1, 2], default=1,
                        help="criteria per answer: 2 judges half the answers on two criteria each")
    parser.add_argument("--pointwise-instructions", default=None,
                        help="the pairwise judge's criterion in comparison pointwise (default: the judge's)")
    parser.add_argument("--judge-head-to-head", action="store_true",
                        help="also run the real PairwiseJudge in comparison head_to_head on the pairs")
    parser.add_argument("--pairs-only", action="store_true",
                        help="only the pairwise figures on LLMBar (section 2), not the pointwise timing")
    parser.add_argument("--judge-only", action="store_true",
                        help="with --pairs-only: only the PairwiseJudge lines (no raw design, no 'alone')")
    parser.add_argument("--prompts", action="store_true", help="compare rubric judge setups instead")
    parser.add_argument("--designs", action="store_true", help="compare raw prompt/token designs instead")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--tiny", action="store_true",
                        help="a smoke run: 4 short probes, 2 LLMBar pairs, 4-token verdicts")
    args = parser.parse_args(argv)
    if args.tiny:
        args.n, args.pairs, args.gen_tokens, args.items = 4, 2, 4, "probes"
    backend = LocalBackend(args.model, max_concurrency=args.batch, dtype=args.dtype, threads=args.threads,
                           prefix_cache_tokens=args.prefix_cache_tokens)
    started = time.perf_counter()
    engine = backend.load()
    print(f"model {engine.path} ({args.dtype}) ready in {time.perf_counter() - started:.1f} s")
    if args.designs:
        asyncio.run(run_designs(backend, args.pairs))
        return 0
    if args.prompts:
        asyncio.run(run_prompts(backend))
        return 0
    setup = next(setup for setup in PROMPT_SETUPS if setup.name == args.setup)
    design = next((d for d in POINTWISE_DESIGNS if d.name == args.design), None)
    if args.design and (design is None or args.items != "probes"):
        parser.error("--design takes a pointwise design name and --items probes")
    if args.pairs_only:
        result = asyncio.run(run_pairs(backend, args.pairs, setup, args.pointwise_instructions,
                                       args.judge_head_to_head, args.judge_only))
    else:
        result = asyncio.run(run_bench(backend, args.n, args.pairs, args.gen_tokens, args.items, setup,
                                       design, args.criteria, args.pointwise_instructions,
                                       args.judge_head_to_head))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
