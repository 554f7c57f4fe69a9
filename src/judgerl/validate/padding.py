"""Longer, emptier versions of an answer, for the verbosity probe.

Why programmatic: judges are known to prefer longer answers and answers formatted as long lists,
even when the extra text says nothing. To measure that, the worse answer of a labelled pair is
made longer without making it better: wrapped in content-free filler (`padded`) or split into a
long bulleted list with generic points (`list`). Neither adds a fact, so a judge that now
prefers it over the better answer is rewarding length, not content. Both are deterministic.
"""

from __future__ import annotations

import re

FILLER = [
    "This answer has been written carefully and thoroughly, taking every relevant aspect of the "
    "question into account.",
    "It is worth looking at the question from several angles, because a complete answer needs to "
    "consider the full context in which it is asked.",
    "Each point above has been reviewed for accuracy, relevance and clarity, so that the reader can "
    "rely on it with confidence.",
    "In practice, this kind of detailed and structured explanation is what experts recommend, and it "
    "reflects established best practice.",
]
LIST_POINTS = [
    "Every step has been double-checked for correctness.",
    "The answer covers all aspects of the question.",
    "The reasoning is structured, complete and easy to follow.",
    "The explanation follows widely accepted best practice.",
    "Nothing relevant has been left out.",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """Split into sentences (and lines).

    >>> sentences("One. Two!\\nThree")
    ['One.', 'Two!', 'Three']
    """
    parts = []
    for line in text.splitlines():
        parts += [part.strip() for part in _SENTENCE.split(line) if part.strip()]
    return parts


def padded(text: str, min_chars: int = 0) -> str:
    """The answer between a confident opener and filler paragraphs, at least `min_chars` long.

    >>> out = padded("Lyon is the capital of France.", min_chars=400)
    >>> len(out) >= 400, "Lyon is the capital of France." in out
    (True, True)
    """
    first = sentences(text)[0] if sentences(text) else text
    parts = ["Great question! Here is a thorough and complete answer.", text]
    index = 0
    while index < len(FILLER) or len("\n\n".join(parts)) < min_chars:
        parts.append(FILLER[index % len(FILLER)])
        index += 1
    parts.append(f"In summary: {first}")
    return "\n\n".join(parts)


def as_long_list(text: str, min_chars: int = 0) -> str:
    """The answer's sentences as bullets plus generic points, at least `min_chars` long.

    >>> print(as_long_list("Lyon. It is big.", min_chars=0).splitlines()[2])
    - Lyon.
    """
    bullets = [f"- {sentence}" for sentence in sentences(text)] or [f"- {text}"]
    lines = ["Here is a detailed, structured answer:", "", *bullets, "", "Additional key points:"]
    index = 0
    while index < len(LIST_POINTS) or len("\n".join(lines)) < min_chars:
        lines.append(f"- {LIST_POINTS[index % len(LIST_POINTS)]}")
        index += 1
    return "\n".join(lines)


STYLES = {"padded": padded, "list": as_long_list}


def make_variant(style: str, worse: str, better: str) -> str:
    """`worse` in `style`, made at least twice as long as the longer of the two answers.

    >>> len(make_variant("padded", "No.", "Yes, because x.")) >= 2 * len("Yes, because x.")
    True
    """
    return STYLES[style](worse, min_chars=2 * max(len(worse), len(better)))
