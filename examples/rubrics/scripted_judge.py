"""A scripted rubric judge for tests and offline tries: word overlap, NOT a model.

Why: the row-rubric example must run in CI without a model, yet every rollout must get item
verdicts that depend on the answer and on the prompt's own rubric (a constant answer cannot
name r1..rn, which differ per row). This responder reads the rubric judge's request and
answers as a judge would, by a fixed rule: an item is met when at least half of its content
words (five letters or more, compared on their first five letters) occur in the answer.
A pitfall item ("[pitfall: ...] recommends aspirin") is met, i.e. the mistake is present, by
the same rule. It answers the explicit JSON format, the implicit 1-10 format and (with a
PASS/FAIL log-probability pair) one-token `scoring: logprob` questions.

Config: `backends: {judge: {type: scripted, responder: scripted_judge.py:respond}}`.
"""

from __future__ import annotations

import json
import math
import re

from judgerl.backends.base import Completion, CompletionRequest, TokenLogprob, Usage

_WORD = re.compile(r"[a-z]{5,}")
_FENCED = re.compile(r"<<<ANSWER_(\w+)>>>\n(.*?)\n<<<END_ANSWER_\1>>>", re.DOTALL)
_LINE = re.compile(r"^- (\w+) \((?:pass/fail|1-5)\): (.*)$", re.MULTILINE)
_IMPLICIT = re.compile(r"^- \[(.+?), weight (-?[\d.]+)\] (.*)$", re.MULTILINE)
_PITFALL = "[pitfall: true if the answer does this] "


def met(criterion: str, answer: str) -> bool:
    """At least half of the criterion's content words occur in the answer (5-letter stems).

    >>> met("Mentions that kidney function changes the dose", "Adjust the dose to kidney function.")
    True
    """
    words = {word[:5] for word in _WORD.findall(criterion.removeprefix(_PITFALL).lower())}
    words -= {"answe", "menti", "state", "expla", "descr", "inclu", "recom", "sugge", "wheth"}
    if not words:
        return False
    seen = {word[:5] for word in _WORD.findall(answer.lower())}
    return len(words & seen) * 2 >= len(words)


def respond(request: CompletionRequest) -> str | Completion:
    text = request.messages[-1]["content"]
    fenced = _FENCED.search(text)
    answer = fenced.group(2) if fenced else ""
    if request.candidate_tokens:  # scoring: logprob, one criterion
        criterion = text.rsplit("Criterion: ", 1)[-1].split("\n", 1)[0]
        criterion = re.sub(r"^\w+ \((?:pass/fail|1-5)\): ", "", criterion)
        yes = met(criterion, answer)
        top = {"PASS": math.log(0.9 if yes else 0.1), "FAIL": math.log(0.1 if yes else 0.9)}
        token = "PASS" if yes else "FAIL"
        return Completion(text=token, model="scripted-overlap", usage=Usage(len(text) // 4, 1),
                          logprobs=[TokenLogprob(token, top[token], top)])
    if '"score": <an integer 1-10>' in text:  # mode: implicit
        items = [(float(weight), met(criterion, answer)) for _, weight, criterion in _IMPLICIT.findall(text)]
        positive = sum(weight for weight, _ in items if weight > 0) or 1.0
        fraction = max(0.0, min(1.0, sum(weight for weight, yes in items if yes) / positive))
        return json.dumps({"rationale": f"{fraction:.0%} of the weighted criteria by word overlap",
                           "score": 1 + round(9 * fraction)})
    criteria = {}
    for name, criterion in _LINE.findall(text):
        yes = met(criterion, answer)
        criteria[name] = {"rationale": "words found in the answer" if yes else "words not found",
                          "score": yes}
    return json.dumps({"criteria": criteria})
