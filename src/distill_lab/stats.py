"""Statistics for evaluation: accuracy, Wilson intervals, unbiased pass@k, majority vote, bootstrap.

Pure functions over plain Python values (no torch), so the report and the tests can recompute every
number in ``metrics.json`` independently.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from statistics import NormalDist, stdev
from typing import Any


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.959964 for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def accuracy(correct: Sequence[bool | int]) -> float | None:
    """Share of true values; None for an empty sequence."""
    return sum(bool(c) for c in correct) / len(correct) if correct else None


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for ``k`` successes in ``n`` trials; None when ``n == 0``."""
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    z = z_value(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at the boundaries the interval touches 0 or 1 exactly; elsewhere clamp rounding noise
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct: 1 - C(n-c, k) / C(n, k).

    Computed as a product (Chen et al., 2021) so large ``n`` does not overflow.
    """
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k: need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent non-None answer; ties go to the tied answer that appeared first.

    None (an answer that could not be extracted) never wins; all-None gives None.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    for a in answers:  # first occurrence among the tied answers
        if a is not None and votes[a] == top:
            return a
    raise AssertionError("unreachable")


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        raise ValueError("quantile of an empty sequence")
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    columns: Sequence[Sequence[float]],
    statistic: Callable[..., float | None],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ``statistic(*columns)`` resampling rows (prompts) jointly.

    ``columns`` are paired per prompt (e.g. student and teacher correctness of the same prompt); each
    resample draws prompt indices with replacement and applies the same indices to every column.
    Resamples where the statistic is undefined (None, e.g. a ratio over a zero teacher score) are
    dropped; None when fewer than half of them are defined or there are no rows.
    """
    if not columns or not columns[0]:
        return None
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError(f"bootstrap_ci: columns differ in length: {[len(c) for c in columns]}")
    if n_resamples < 1:
        raise ValueError("bootstrap_ci: n_resamples must be >= 1")
    rng = random.Random(seed)
    stats: list[float] = []
    for _ in range(n_resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        value = statistic(*[[c[i] for i in idx] for c in columns])
        if value is not None and math.isfinite(value):
            stats.append(value)
    if len(stats) < n_resamples / 2:
        return None
    stats.sort()
    alpha = (1 - confidence) / 2
    return quantile(stats, alpha), quantile(stats, 1 - alpha)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ratio_of_means(num: Sequence[float], den: Sequence[float]) -> float | None:
    """mean(num) / mean(den); None when the denominator's mean is 0 or there are no rows."""
    if not num or not den:
        return None
    d = sum(den) / len(den)
    return None if d == 0 else (sum(num) / len(num)) / d


def diff_of_means(a: Sequence[float], b: Sequence[float]) -> float | None:
    """mean(a) - mean(b)."""
    if not a or not b:
        return None
    return sum(a) / len(a) - sum(b) / len(b)


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 over whitespace tokens (longest common subsequence); 1.0 for two empty texts."""
    c, r = candidate.split(), reference.split()
    if not c and not r:
        return 1.0
    if not c or not r:
        return 0.0
    # LCS by dynamic programming over one row: O(len(c) * len(r)) time, O(len(r)) memory
    prev = [0] * (len(r) + 1)
    for x in c:
        cur = [0] * (len(r) + 1)
        for j, y in enumerate(r, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return 2 * p * rec / (p + rec)


# ------------------------------------------------------------------ intervals over seeds (Student t)
def _t_cdf(x: float, df: int) -> float:
    """CDF of Student's t with ``df`` degrees of freedom (Simpson integration of the density)."""
    if x < 0:
        return 1.0 - _t_cdf(-x, df)
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(t: float) -> float:
        return math.exp(logc - (df + 1) / 2 * math.log1p(t * t / df))

    n = 2000  # even
    h = x / n
    s = pdf(0.0) + pdf(x) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
    return 0.5 + s * h / 3


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t (bisection on the CDF); ``t_quantile(0.975, 2)`` = 4.303. About 60 ms a
    call, and a sweep report asks for the same few (p, df) hundreds of times: cached."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile: need 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def seed_interval(values: list[float], confidence: float = 0.95, lo: float | None = 0.0,
                  hi: float | None = None) -> dict[str, Any]:
    """Mean over seeds with a Student-t interval (null for fewer than two seeds), clipped to the
    quantity's range [lo, hi] (an accuracy cannot fall below 0 or rise above 1)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "ci": None}
    m = mean(vals)
    if len(vals) < 2:
        return {"mean": m, "std": None, "n": 1, "ci": None}
    sd = stdev(vals)
    half = t_quantile(0.5 + confidence / 2, len(vals) - 1) * sd / math.sqrt(len(vals))
    low, high = m - half, m + half
    low = max(low, lo) if lo is not None else low
    high = min(high, hi) if hi is not None else high
    return {"mean": m, "std": sd, "n": len(vals), "ci": [low, high]}
