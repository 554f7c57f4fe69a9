"""Prefix KV reuse for the local backend: which rows of a batch share a prefix, and an LRU of prefix KV.

Why: judge requests repeat long token prefixes. Every probe of a few-shot judge starts with the
same instructions and worked examples; an itemized rubric sends several requests per answer
(comment x dimension) that share the guideline, the contract and the answer and differ only in
their last few dozen tokens. Recomputing the keys/values of that shared text for every request
makes a probability-weighted judgment cost a full prompt's forward pass. A causal model's
key/values at positions 0..m-1 depend only on tokens 0..m-1, so they can be computed once and
reused by every request (and every later batch) that starts with the same m tokens.

This module is the model-free half: `plan_groups` decides, for one batch of token rows, which rows
run as one group on top of a shared prefix of how many tokens (and which run as plain padded
rows), by a small cost model over the rows sorted by their tokens; `PrefixStore` keeps the
key/values of recent prefixes, bounded by the total number of cached tokens (least recently used
entries go first), and finds the longest cached match of a token sequence (any entry sharing m
leading tokens provides the key/values of those m positions). The forward passes are in
backends/local/engine.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: a prefix's key/values: one (keys, values) pair per layer, each [1, heads, tokens, head_dim]
PrefixKV = list[tuple[Any, Any]]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences.

    >>> common_prefix([1, 2, 3, 4], [1, 2, 9])
    2
    >>> common_prefix([], [1])
    0
    """
    limit = min(len(a), len(b))
    if tuple(a[:limit]) == tuple(b[:limit]):
        return limit
    low, high = 0, limit  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if tuple(a[:middle]) == tuple(b[:middle]):
            low = middle
        else:
            high = middle
    return low


@dataclass
class Group:
    """Rows of a batch (indices into it) run together; `prefix` leading tokens come from the prefix
    cache (all rows share them); 0 means a plain left-padded pass over the whole rows."""

    rows: list[int]
    prefix: int = 0


def plan_groups(rows: Sequence[Sequence[int]], cached: Callable[[Sequence[int]], int], *,
                min_prefix: int = 16, pass_cost: int = 128) -> list[Group]:
    """Split a batch into groups that share a prefix, minimising the tokens run through the model.

    Rows are sorted by their tokens, so rows with a common prefix are neighbours; a dynamic
    programme over contiguous runs of the sorted rows picks, for each run, either a shared prefix
    (its length is the run's longest common prefix, at most each row's length - 1 so every row
    keeps a token to read the next-token distribution from) or plain padded rows. The cost of a
    run on a prefix is the prefix tokens not already cached (`cached(row)` gives the longest
    cached match; the previous run's prefix, if it ran on one, is reusable too), plus rows x the longest
    suffix (padding costs as much as tokens), plus `pass_cost` per forward pass; a plain run costs
    rows x its longest row. Prefixes shorter than `min_prefix` are not worth a pass. The plain
    rows of all runs become one group (one padded pass).

    >>> shared = list(range(400))
    >>> batch = [shared + [500, 1], [7, 8, 9], shared + [600, 2, 3]]
    >>> plan_groups(batch, lambda row: 0)
    [Group(rows=[0, 2], prefix=400), Group(rows=[1], prefix=0)]
    >>> plan_groups([[1, 2], [1, 3]], lambda row: 0)  # too short to be worth it
    [Group(rows=[0, 1], prefix=0)]
    """
    count = len(rows)
    if count == 0:
        return []
    order = sorted(range(count), key=lambda index: tuple(rows[index]))
    lengths = [len(rows[index]) for index in order]
    adjacent = [common_prefix(rows[order[k]], rows[order[k + 1]]) for k in range(count - 1)]
    hits = [cached(rows[index]) for index in order]
    infinity = float("inf")
    # best[j][state]: cost of the first j sorted rows, the last run plain (0) or on a prefix (1);
    # choice[j][state] = (start of the last run, state before it, its prefix)
    best = [[infinity, infinity] for _ in range(count + 1)]
    choice: list[list[tuple[int, int, int]]] = [[(0, 0, 0), (0, 0, 0)] for _ in range(count + 1)]
    best[0][0] = 0.0
    for end in range(1, count + 1):
        shared = 1 << 60
        longest = 0
        shortest = 1 << 60
        for start in range(end - 1, -1, -1):  # the last run = sorted rows start..end-1
            longest = max(longest, lengths[start])
            shortest = min(shortest, lengths[start])
            if start < end - 1:
                shared = min(shared, adjacent[start])
            runs = end - start
            prefix = min(shared if runs > 1 else hits[start], shortest - 1)
            for before in (0, 1):
                if best[start][before] == infinity:
                    continue
                plain = best[start][before] + runs * longest
                if plain < best[end][0]:
                    best[end][0], choice[end][0] = plain, (start, before, 0)
                if prefix < min_prefix:
                    continue
                reused = hits[start]
                if before == 1 and start > 0:  # the previous run's prefix is computed by then
                    reused = max(reused, min(adjacent[start - 1], choice[start][1][2]))
                computed = prefix - min(prefix, reused)
                cost = (best[start][before] + pass_cost * (2 if computed else 1) + computed
                        + runs * (longest - prefix))
                if cost < best[end][1]:
                    best[end][1], choice[end][1] = cost, (start, before, prefix)
    groups: list[Group] = []
    plain_rows: list[int] = []
    end, state = count, (0 if best[count][0] <= best[count][1] else 1)
    while end > 0:
        start, before, prefix = choice[end][state]
        members = sorted(order[start:end])
        if state == 1:
            groups.append(Group(members, prefix))
        else:
            plain_rows += members
        end, state = start, before
    groups.reverse()
    if plain_rows:
        groups.append(Group(sorted(plain_rows), 0))
    return groups


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    kv: PrefixKV


class PrefixStore:
    """Key/values of recently used prefixes, at most `max_tokens` tokens in all (0 disables).

    Entries are keyed by their token sequence. `lookup` finds the entry sharing the most leading
    tokens with a sequence; `put` adds an entry, drops entries that are prefixes of it (it holds
    their key/values too) and evicts the least recently used ones beyond the budget. The stored
    tensors are never modified: callers slice and expand them into new cache objects.
    """

    def __init__(self, max_tokens: int) -> None:
        if max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], _Entry] = OrderedDict()

    @property
    def tokens(self) -> int:
        """Tokens held, all entries together."""
        return sum(len(key) for key in self._entries)

    @property
    def nbytes(self) -> int:
        """Memory held by the cached tensors."""
        return sum(int(tensor.numel()) * int(tensor.element_size())
                   for entry in self._entries.values() for pair in entry.kv for tensor in pair)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` the store can provide (no LRU update)."""
        return max((common_prefix(key, tokens) for key in self._entries), default=0)

    def lookup(self, tokens: Sequence[int]) -> tuple[PrefixKV | None, int]:
        """The entry sharing the most leading tokens with `tokens` and that count (marked as used);
        (None, 0) when none shares any."""
        best_key: tuple[int, ...] | None = None
        best = 0
        for key in self._entries:
            shared = common_prefix(key, tokens)
            if shared > best:
                best_key, best = key, shared
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        return self._entries[best_key].kv, best

    def put(self, tokens: Sequence[int], kv: PrefixKV) -> None:
        """Keep `kv` as the key/values of `tokens` (not kept when it alone exceeds the budget)."""
        key = tuple(tokens)
        if not key or len(key) > self.max_tokens:
            return
        covered = [other for other in self._entries if len(other) <= len(key) and key[:len(other)] == other]
        for other in covered:  # prefixes of the new entry: the new one holds their key/values too
            del self._entries[other]
        self._entries[key] = _Entry(key, kv)
        self._entries.move_to_end(key)
        total = self.tokens
        while total > self.max_tokens and self._entries:
            evicted, _ = self._entries.popitem(last=False)
            total -= len(evicted)

    def clear(self) -> None:
        self._entries.clear()


@dataclass
class PackedSuffixes:
    """Suffixes of a group packed as a trie, flattened so that a parent comes before its children.

    Scoring rows often share more than their group's prefix: the criteria of one answer share the
    question and the answer, and only the criterion line differs. Packed this way, each distinct
    token (with its distinct history) runs once; a token attends to the group's prefix, its
    ancestors and itself, at position prefix + depth. `ends[row]` is the node of the row's last token.
    """

    tokens: list[int]
    parents: list[int]  # -1: the first token of a suffix
    depths: list[int]
    ends: list[int]

    @property
    def whole(self) -> int:
        """Tokens of all suffixes, each run whole."""
        return sum(self.depths[end] + 1 for end in self.ends)

    @property
    def saved(self) -> int:
        """Tokens the packing saves over running every suffix whole."""
        return self.whole - len(self.tokens)


def pack_suffixes(suffixes: Sequence[Sequence[int]]) -> PackedSuffixes:
    """The trie of non-empty token suffixes, flattened in order of first appearance.

    >>> packed = pack_suffixes([[5, 6, 7], [5, 6, 8], [5, 6, 7]])
    >>> packed.tokens, packed.parents, packed.ends, packed.saved
    ([5, 6, 7, 8], [-1, 0, 1, 1], [2, 3, 2], 5)
    """
    packed = PackedSuffixes([], [], [], [])
    children: list[dict[int, int]] = []
    roots: dict[int, int] = {}
    for suffix in suffixes:
        if not suffix:
            raise ValueError("every suffix needs at least one token (the one the verdict is read after)")
        level, parent = roots, -1
        for depth, token in enumerate(suffix):
            node = level.get(token)
            if node is None:
                node = len(packed.tokens)
                packed.tokens.append(int(token))
                packed.parents.append(parent)
                packed.depths.append(depth)
                children.append({})
                level[token] = node
            level, parent = children[node], node
        packed.ends.append(parent)
    return packed
