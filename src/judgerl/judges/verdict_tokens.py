"""Verdict tokens that exist: a logprob judge's candidates checked against its model's tokenizer.

Why: `scoring: logprob` reads the probabilities of the verdict tokens ("PASS" / "FAIL", "Yes" /
"No", "A" / "B", "1".."5") at the first answer position. The local backend scores a candidate
of several tokens whole, but an API (OpenAI-compatible servers) returns the top
log-probabilities of the first generated token only: where the judge's tokenizer splits "PASS"
into "P" + "ASS", no listed token is "PASS", and every row would come back unscored ("no
probability mass"). So before the first judgment the pipeline asks each such backend how its
model splits every candidate (`Backend.token_pieces`: the `tokenizer` option or the server's
tokenize endpoint) and refuses a judge whose candidate is several tokens, naming a pair that is
one token each for that tokenizer. A candidate counts as one token when either it or it after
a space is one token (the API's token " PASS" and "PASS" both count, see judges/logprob.py).
When the backend cannot tell, the run goes on with a warning that says how to check.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from judgerl.errors import ConfigError
from judgerl.judges.base import Judge, TokenSet

if TYPE_CHECKING:
    from judgerl.backends.base import Backend

__all__ = ["COMMON_PAIRS", "TokenSet", "check_token_set", "check_verdict_tokens", "working_pair"]

log = logging.getLogger(__name__)

#: pass / fail pairs tried, in order, when a judge's own pair does not work
COMMON_PAIRS = [("Yes", "No"), ("YES", "NO"), ("yes", "no"), ("PASS", "FAIL"), ("Pass", "Fail"),
                ("True", "False"), ("true", "false"), ("Y", "N"), ("A", "B")]


async def split_of(backend: Backend, candidate: str) -> list[str] | None:
    """The shortest split of `candidate` (bare or after a space) for the backend's model; None:
    the backend cannot tell."""
    bare = candidate.strip()
    best: list[str] | None = None
    for variant in (bare, " " + bare):
        pieces = await backend.token_pieces(variant)
        if pieces is None:
            return None
        if best is None or len(pieces) < len(best):
            best = pieces
    return best


async def working_pair(backend: Backend) -> tuple[str, str] | None:
    """The first of `COMMON_PAIRS` whose two words are one token each for the backend's model."""
    for pair in COMMON_PAIRS:
        splits = [await split_of(backend, word) for word in pair]
        if all(split is not None and len(split) == 1 for split in splits):
            return pair
    return None


def _shown(pieces: list[str]) -> str:
    return " + ".join(repr(piece) for piece in pieces)


async def check_token_set(backend: Backend, backend_name: str, token_set: TokenSet) -> str | None:
    """A problem with one judge's candidates on `backend` (None: every candidate is one token, or
    the backend scores whole strings). Raises nothing; `check_verdict_tokens` decides."""
    if backend.scores_whole_candidates:
        return None
    splits = {candidate: await split_of(backend, candidate) for candidate in token_set.candidates}
    if any(split is None for split in splits.values()):
        log.warning("judge '%s': cannot check that its verdict tokens %s are one token each for the "
                    "model behind backend '%s' (it has no `tokenizer` option and the server answers no "
                    "tokenize request); an API reads the first answer token only, so a candidate of "
                    "several tokens leaves every row unscored. Set the backend's `tokenizer` to check.",
                    token_set.judge, list(token_set.candidates), backend_name)
        return None
    split = {candidate: pieces for candidate, pieces in splits.items()
             if pieces is not None and len(pieces) > 1}
    if not split:
        return None
    what = "; ".join(f"{candidate!r} splits into {_shown(pieces)}" for candidate, pieces in split.items())
    problem = (f"judge '{token_set.judge}': {what} for the tokenizer of backend '{backend_name}', whose "
               "API returns the probabilities of the first answer token only, so every row would be "
               "unscored")
    if token_set.fields:
        pair = await working_pair(backend)
        if pair is not None:
            return (f'{problem}; use pass_token: "{pair[0]}" / fail_token: "{pair[1]}" (one token each '
                    "here; quoted: YAML reads a bare Yes / No as true / false)")
        return f"{problem}; set {token_set.fields} to words that are one token each for this model"
    return f"{problem}; this judge's tokens are fixed: score it with the local backend or scoring: generate"


async def check_verdict_tokens(judges: list[Judge], backends: dict[str, Backend]) -> None:
    """Refuse, before any judgment, a logprob judge whose candidates its API cannot score.

    Raises `ConfigError` naming every problem and a working pair; logs a warning where a backend
    cannot tell how its model splits the candidates.
    """
    problems = []
    for judge in [part for top in judges for part in (top.parts() or [top])]:  # a panel: its members
        backend = backends.get(judge.backend_name)
        if backend is None:
            continue
        for token_set in judge.verdict_token_sets():
            problem = await check_token_set(backend, judge.backend_name, token_set)
            if problem is not None:
                problems.append(problem)
    if problems:
        raise ConfigError("verdict tokens that the judge's model cannot score: " + " | ".join(problems),
                          field="judges")
