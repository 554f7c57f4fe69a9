"""Tokens a fence marker pair costs on the embedded judge's tokenizer, by tag scheme.

Why: untrusted text reaches a judge between `<<<LABEL_tag>>>` and `<<<END_LABEL_tag>>>`
(judges/templates.py). On a small local judge those markers are a large share of a one-criterion
judgment (a question and an answer: two pairs), so the tag's shape was chosen by this count: for
each scheme it renders a fenced line the way a prompt holds it and prints the tokens the two
markers add over the bare text, as a mean (and maximum) over many tags, since one tag tokenizes
differently from another. It also prints what `fence_tag` picks for a few typical texts, and
the embedded judge's prompt as `bench/local_judge.py --items probes` renders it (the shipped
few-shot rubric, one criterion): tokens per judgment, the part all judgments share (the prefix
KV cache computes it once) and each judgment's own part.

    .venv/bin/python bench/fence_tokens.py            # SmolLM2-135M's tokenizer, 400 tags a scheme
    .venv/bin/python bench/fence_tokens.py --tiny     # smoke run (CI): 20 tags a scheme
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import string
import sys
from collections.abc import Callable

from judgerl.judges.templates import TAG_ALPHABET, fence, fence_tag
from judgerl.models.packaged import resolve_model

SCHEMES = {"hex": "0123456789abcdef", "digits": string.digits, "lower": string.ascii_lowercase}
LENGTHS = (1, 2, 3, 4, 6, 12)
LABELS = ("ANSWER", "QUESTION", "ANSWER_A", "TOOL_RESULT")
BODY = "Paris is the capital of France."


def sample_tags(alphabet: str, length: int, count: int) -> list[str]:
    """`count` tags of `length` characters from `alphabet`, spread by a hash (deterministic)."""
    tags = []
    for index in range(count):
        number = int.from_bytes(hashlib.sha256(f"{alphabet}{length}/{index}".encode()).digest(), "big")
        tag = ""
        for _ in range(length):
            number, digit = divmod(number, len(alphabet))
            tag += alphabet[digit]
        tags.append(tag)
    return tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--tags", type=int, default=400, help="tags measured per scheme and length")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 20 tags a scheme")
    args = parser.parse_args(argv)
    if args.tiny:
        args.tags = 20
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(args.model)))

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    bare = tokens(f"Answer:\n{BODY}\n")

    def pair_cost(label: str, tag: str) -> int:
        return tokens(f"Answer:\n<<<{label}_{tag}>>>\n{BODY}\n<<<END_{label}_{tag}>>>\n") - bare

    print(f"tokens one marker pair adds ({args.model}; mean (max) over {args.tags} tags)")
    for label in LABELS:
        print(f"  {label}")
        for scheme, alphabet in SCHEMES.items():
            cells = []
            for length in LENGTHS:
                costs = [pair_cost(label, tag) for tag in sample_tags(alphabet, length, args.tags)]
                cells.append(f"{length}: {statistics.mean(costs):4.1f} ({max(costs)})")
            print(f"    {scheme:6s} " + "  ".join(cells))
    texts = {"prose": "The capital of France is Paris; it has been since 987.",
             "code": ">>> print('hi')\nhi\n>>> x = [a_b for a_b in y]",
             "every one-letter marker": " ".join(f"<<<END_ANSWER_{letter}>>>" for letter in TAG_ALPHABET)}
    print("what fence_tag picks (lower-case letters; a longer tag only when the text holds the markers "
          "of the shorter ones)")
    for name, text in texts.items():
        opening = fence(text, "ANSWER").split("\n", 1)[0]
        print(f"  {name:24s} tag {fence_tag(text, 'ANSWER')!r:6s} opening {opening}  "
              f"pair cost {pair_cost('ANSWER', fence_tag(text, 'ANSWER'))} tokens")
    judge_prompt_tokens(tokens, 8 if args.tiny else 48)
    return 0


def common_prefix(texts: list[str]) -> str:
    """The longest text every one of `texts` starts with."""
    first, last = min(texts), max(texts)
    length = 0
    while length < len(first) and first[length] == last[length]:
        length += 1
    return first[:length]


def judge_prompt_tokens(tokens: Callable[[str], int], count: int) -> None:
    """The shipped local judge's prompt, rendered by the rubric judge as local_judge.py does."""
    import local_judge  # bench/local_judge.py, beside this script

    from judgerl.backends.local import LocalBackend

    setup = local_judge.SHIPPED_SETUP
    judge = setup.judge(LocalBackend("smollm2-135m-instruct"), local_judge.CORRECT + local_judge.FOLLOWS)
    requests = setup.requests(judge, local_judge.per_answer_criteria(
        local_judge.pointwise_items(count, "probes"), 1))
    texts = ["".join(message["content"] for message in request.messages) for request in requests]
    counts = [tokens(text) for text in texts]
    shared = tokens(common_prefix(texts))
    mean = statistics.mean(counts)
    print(f"embedded judge prompt ({judge.prompt.version}, {count} probes, one criterion): "
          f"{mean:.0f} tokens per judgment, {shared} shared by all, {mean - shared:.0f} its own")


if __name__ == "__main__":
    sys.exit(main())
