"""The model-free half of prefix KV reuse (backends/local/prefix_cache.py): the batch plan and the LRU.

The forward passes on top of it are tested against the uncached path on the real packaged model
in tests/test_local_backend.py.
"""

from __future__ import annotations

import random

import pytest
import torch

from judgerl.backends.local.prefix_cache import Group, PrefixStore, common_prefix, pack_suffixes, plan_groups


def kv(tokens: int, layers: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fake key/values of `tokens` positions: [1, heads=1, tokens, dim=2] per layer, valued by position."""
    positions = torch.arange(tokens, dtype=torch.float32)[None, None, :, None].expand(1, 1, tokens, 2)
    return [(positions.clone(), -positions.clone()) for _ in range(layers)]


def test_common_prefix_on_long_sequences() -> None:
    a = list(range(5000))
    assert common_prefix(a, a) == 5000
    assert common_prefix(a, [*a[:1234], -1, *a[1235:]]) == 1234
    assert common_prefix(a, [7]) == 0
    assert common_prefix((1, 2), [1, 2, 3]) == 2


def test_few_shot_batch_runs_as_one_group_on_the_shared_prefix() -> None:
    shots = list(range(1000, 1300))  # the same instructions + worked examples in every request
    rows = [[*shots, question, question + 1, 7, 7] for question in range(0, 16, 2)]
    assert plan_groups(rows, lambda row: 0) == [Group(list(range(8)), 300)]


def test_pairs_sharing_a_few_more_tokens_run_on_the_cached_examples_without_extra_passes() -> None:
    # a few-shot batch as the demo judge sends it: the examples (cached), then a question asked of
    # two answers; a pass per question (to compute its 20-80 shared tokens) costs more than it saves
    shots = list(range(1000, 1900))
    rows = [[*shots, *([question] * (20 + 20 * question)), answer, *([7] * 45)]
            for question in range(4) for answer in (1, 2)]
    groups = plan_groups(rows, lambda row: 900)
    assert {group.prefix for group in groups} == {900} and len(groups) <= 2
    assert sorted(row for group in groups for row in group.rows) == list(range(8))


def test_itemized_batch_groups_rows_by_answer_and_keeps_every_row_once() -> None:
    guideline = list(range(10_000, 11_000))  # guideline + contract: shared by every answer of a prompt
    rows, answer_of = [], []
    for answer in range(3):
        body = [20_000 + answer] * 500  # the answer: shared by its comment x dimension requests
        for request in range(4):
            rows.append(guideline + body + [30_000 + request] * (40 + request))
            answer_of.append(answer)
    shuffled = list(range(len(rows)))
    random.Random(3).shuffle(shuffled)
    groups = plan_groups([rows[i] for i in shuffled], lambda row: 0)
    assert sorted(row for group in groups for row in group.rows) == list(range(len(rows)))
    assert len(groups) == 3
    for group in groups:
        assert group.prefix == 1500  # guideline + contract + this answer
        assert len({answer_of[shuffled[row]] for row in group.rows}) == 1


def test_short_or_unshared_prefixes_run_plain_and_a_prefix_leaves_a_token_to_read() -> None:
    assert plan_groups([[1, 2, 3], [1, 2, 4], [9]], lambda row: 0) == [Group([0, 1, 2], 0)]
    same = list(range(400))
    groups = plan_groups([same, same, [*same, 5]], lambda row: 0)
    assert groups == [Group([0, 1, 2], 399)]  # every row keeps >= 1 token after the prefix
    assert plan_groups([], lambda row: 0) == []


def test_a_cached_prefix_is_used_even_by_a_single_row() -> None:
    row = list(range(200))
    assert plan_groups([row], lambda r: 0) == [Group([0], 0)]
    assert plan_groups([row], lambda r: 150) == [Group([0], 150)]
    assert plan_groups([row], lambda r: 500) == [Group([0], 199)]  # capped at len - 1


def test_store_finds_the_longest_match_and_drops_covered_prefixes() -> None:
    store = PrefixStore(max_tokens=1000)
    store.put(list(range(100)), kv(100))
    store.put(list(range(50)) + [-1] * 30, kv(80))
    cached, have = store.lookup(list(range(120)))
    assert have == 100 and cached is not None and cached[0][0].shape[2] == 100
    cached, have = store.lookup(list(range(60)))
    assert have == 60  # a longer entry provides the first 60 positions
    assert store.lookup([-5, -6]) == (None, 0)
    assert store.match(list(range(50)) + [-1] * 10) == 60
    store.put(list(range(150)), kv(150))  # covers the 100-token entry, which goes
    assert len(store) == 2 and store.tokens == 230
    assert store.nbytes == 230 * 2 * 2 * 2 * 4  # tokens x layers x (keys, values) x dim x float32


def test_store_evicts_least_recently_used_and_zero_disables() -> None:
    store = PrefixStore(max_tokens=250)
    store.put([1] * 100, kv(100))
    store.put([2] * 100, kv(100))
    store.lookup([1] * 100)  # [1]*100 is now the most recently used
    store.put([3] * 100, kv(100))
    assert store.match([1] * 100) == 100 and store.match([2] * 100) == 0 and store.match([3] * 100) == 100
    store.put([4] * 300, kv(300))  # larger than the whole budget: not kept
    assert store.match([4] * 300) == 0 and store.tokens == 200
    off = PrefixStore(max_tokens=0)
    off.put([1] * 10, kv(10))
    assert len(off) == 0
    with pytest.raises(ValueError):
        PrefixStore(max_tokens=-1)


def test_suffixes_pack_into_a_trie_whose_parents_come_first() -> None:
    # two answers x two criteria after a group's prefix: each answer's tokens once, then the criteria
    answer_a, answer_b, criteria = [11, 12, 13], [21, 22], ([31, 32], [41])
    suffixes = [[*answer, *criterion] for answer in (answer_a, answer_b) for criterion in criteria]
    packed = pack_suffixes(suffixes)
    assert len(packed.tokens) == 3 + 2 + 1 + 2 + 2 + 1
    assert packed.saved == sum(map(len, suffixes)) - len(packed.tokens) == 5
    for row, suffix in enumerate(suffixes):  # walking up from a row's end spells the row backwards
        node, spelled = packed.ends[row], []
        while node >= 0:
            assert packed.parents[node] < node
            spelled.append(packed.tokens[node])
            node = packed.parents[node]
        assert spelled[::-1] == suffix and packed.depths[packed.ends[row]] == len(suffix) - 1
    with pytest.raises(ValueError, match="at least one token"):
        pack_suffixes([[1], []])
