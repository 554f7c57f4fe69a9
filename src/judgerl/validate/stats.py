"""The few statistics judge validation reports, in plain Python so they need no numpy or scipy.

Why hand-written: validation runs wherever the reward runs (a laptop, a Lambda, CI), and the
figures it needs are small and well defined: percent agreement, Cohen's kappa (optionally
weighted), Fleiss' kappa (a panel's members), Spearman's rho with average ranks for ties, and
percentile bootstrap confidence intervals. Pulling scipy in for these would add a heavy
dependency to the core package. Each function returns None where the figure is undefined (no
items, a constant column) instead of a made-up number, and the doctests pin the values against
textbook examples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from typing import Literal, TypeVar

T = TypeVar("T")
KappaWeights = Literal["linear", "quadratic"]


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, None for no values.

    >>> mean([1, 2, 3]), mean([])
    (2.0, None)
    """
    return sum(values) / len(values) if values else None


def share(count: int, total: int) -> float | None:
    """count / total, None when there is nothing to count.

    >>> share(1, 4), share(0, 0)
    (0.25, None)
    """
    return count / total if total else None


def percent_agreement(x: Sequence[Hashable], y: Sequence[Hashable]) -> float | None:
    """Share of positions where the two raters gave the same label.

    >>> percent_agreement(["a", "b", "a", "tie"], ["a", "b", "b", "tie"])
    0.75
    """
    _same_length(x, y)
    if not x:
        return None
    return sum(1 for left, right in zip(x, y, strict=True) if left == right) / len(x)


def cohen_kappa(x: Sequence[Hashable], y: Sequence[Hashable], *,
                weights: KappaWeights | None = None,
                categories: Sequence[Hashable] | None = None) -> float | None:
    """Cohen's kappa: agreement corrected for chance; None when chance agreement is total.

    Unweighted kappa treats labels as unordered. With `weights` ("linear" or "quadratic") the
    labels are ordinal, ordered as in `categories` (default: sorted), and near misses count
    partly. Example from Cohen (1960)-style tables (scikit-learn gives the same values):

    >>> round(cohen_kappa(["y", "y", "n", "n", "y"], ["y", "n", "n", "n", "y"]), 4)
    0.6154
    >>> round(cohen_kappa([1, 2, 3, 4, 5], [1, 2, 3, 5, 4], weights="quadratic"), 4)
    0.9
    >>> cohen_kappa(["a", "a"], ["a", "a"]) is None    # no variation: kappa is undefined
    True
    """
    _same_length(x, y)
    if not x:
        return None
    labels = list(categories) if categories is not None else sorted(set(x) | set(y), key=_sort_key)
    index = {label: position for position, label in enumerate(labels)}
    missing = (set(x) | set(y)) - set(index)
    if missing:
        raise ValueError(f"labels not in categories: {sorted(missing, key=_sort_key)}")
    size, total = len(labels), len(x)
    observed = [[0.0] * size for _ in range(size)]
    for left, right in zip(x, y, strict=True):
        observed[index[left]][index[right]] += 1 / total
    rows = [sum(row) for row in observed]
    cols = [sum(observed[i][j] for i in range(size)) for j in range(size)]

    def disagreement(i: int, j: int) -> float:
        if weights is None:
            return 0.0 if i == j else 1.0
        distance = abs(i - j) / max(size - 1, 1)
        return distance if weights == "linear" else distance ** 2

    observed_d = sum(disagreement(i, j) * observed[i][j] for i in range(size) for j in range(size))
    expected_d = sum(disagreement(i, j) * rows[i] * cols[j] for i in range(size) for j in range(size))
    if expected_d == 0:
        return None
    return 1 - observed_d / expected_d


def fleiss_kappa(ratings: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa: agreement of several raters (the same number on every item) corrected for chance.

    `ratings[i]` holds every rater's label for item i. None when there is no item, fewer than two
    raters, or chance agreement is total (every label the same). The example of Fleiss (1971) as
    Wikipedia gives it: 10 items, 14 raters, 5 categories, kappa 0.210.

    >>> counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    ...           [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    >>> items = [[label for label, count in enumerate(row) for _ in range(count)] for row in counts]
    >>> round(fleiss_kappa(items), 3)
    0.21
    >>> fleiss_kappa([["pass", "pass"], ["pass", "pass"]]) is None
    True
    """
    if not ratings:
        return None
    raters = len(ratings[0])
    if any(len(item) != raters for item in ratings):
        raise ValueError("every item needs the same number of ratings")
    if raters < 2:
        return None
    labels = sorted({label for item in ratings for label in item}, key=_sort_key)
    totals = dict.fromkeys(labels, 0)
    agreement = 0.0
    for item in ratings:
        counts = dict.fromkeys(labels, 0)
        for label in item:
            counts[label] += 1
            totals[label] += 1
        agreement += (sum(count * count for count in counts.values()) - raters) / (raters * (raters - 1))
    observed = agreement / len(ratings)
    expected = sum((total / (len(ratings) * raters)) ** 2 for total in totals.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def rank(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties get the average of the ranks they span.

    >>> rank([10, 20, 20, 5])
    [2.0, 3.5, 3.5, 1.0]
    """
    order = sorted(range(len(values)), key=lambda position: values[position])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2 + 1
        for position in order[start:end + 1]:
            ranks[position] = average
        start = end + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than 2 items or a constant column.

    >>> round(pearson([1, 2, 3, 4], [2, 4, 5, 9]), 4)
    0.9648
    >>> pearson([1, 1, 1], [1, 2, 3]) is None
    True
    """
    _same_length(x, y)
    if len(x) < 2:
        return None
    mean_x, mean_y = sum(x) / len(x), sum(y) / len(y)
    dx = [value - mean_x for value in x]
    dy = [value - mean_y for value in y]
    norm = math.sqrt(sum(d * d for d in dx) * sum(d * d for d in dy))
    if norm == 0:
        return None
    return max(-1.0, min(1.0, sum(a * b for a, b in zip(dx, dy, strict=True)) / norm))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the ranks (ties averaged), as scipy computes it.

    >>> spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    0.8207826816681233
    >>> spearman([1, 2, 3], [3, 2, 1])
    -1.0
    """
    _same_length(x, y)
    return pearson(rank(x), rank(y))


def bootstrap_ci(items: Sequence[T], statistic: Callable[[Sequence[T]], float | None], *,
                 resamples: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic` over `items` (resampled with replacement).

    Resamples where the statistic is undefined (None) are dropped; None when fewer than half are
    left (or no items), because an interval from a handful of resamples would be made up.
    Seeded, so a report is reproducible.

    >>> low, high = bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], lambda xs: sum(xs) / len(xs), seed=1)
    >>> 0.3 < low < 0.75 < high <= 1.0
    True
    >>> bootstrap_ci([], lambda xs: 0.0) is None
    True
    """
    if not items or resamples < 1:
        return None
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = random.Random(seed)
    size = len(items)
    values = []
    for _ in range(resamples):
        value = statistic([items[rng.randrange(size)] for _ in range(size)])
        if value is not None and not math.isnan(value):
            values.append(value)
    if len(values) < resamples / 2:
        return None
    values.sort()
    tail = (1 - confidence) / 2
    return _quantile(values, tail), _quantile(values, 1 - tail)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method).

    >>> _quantile([0.0, 1.0, 2.0, 3.0], 0.5)
    1.5
    """
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _same_length(x: Sequence[object], y: Sequence[object]) -> None:
    if len(x) != len(y):
        raise ValueError(f"the two sequences differ in length ({len(x)} vs {len(y)})")


def _sort_key(label: Hashable) -> tuple[int, float, str]:
    """Numbers in numeric order, then everything else by its text."""
    if isinstance(label, (int, float)) and not isinstance(label, bool):
        return (0, float(label), "")
    return (1, 0.0, str(label))
