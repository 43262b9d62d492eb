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


def wilson_interval(k: float, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for ``k`` successes in ``n`` trials (statsmodels' ``proportion_confint``);
    None when ``n == 0``. ``k`` may be fractional (a pooled mean times the number of prompts)."""
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    # at the boundaries the interval touches 0 or 1 exactly; elsewhere clamp rounding noise
    return (0.0 if k == 0 else max(0.0, float(lo)), 1.0 if k == n else min(1.0, float(hi)))


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


def majority_vote(answers: Sequence[Hashable | None], priority: Sequence[float] | None = None) -> Hashable | None:
    """The most frequent non-None answer; ties go to the tied answer given by the voter with the highest
    ``priority`` (e.g. the voter's own accuracy), and without priorities (or among equal ones) to the tied
    answer that appeared first.

    None (an answer that could not be extracted) never wins; all-None gives None.
    """
    if priority is not None and len(priority) != len(answers):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(priority)} priorities")
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    tied = [(-(priority[i] if priority is not None else 0.0), i, a) for i, a in enumerate(answers)
            if a is not None and votes[a] == top]
    return min(tied, key=lambda t: (t[0], t[1]))[2]


def answer_value(answer: str | None) -> Hashable | None:
    """The value an extracted answer stands for, so that votes group equal values: a number by its exact
    value (``"1,234"``, ``"1234.0"`` and ``"+1234"`` are one vote; fractions ``"3/4"`` too), anything else
    as its whitespace-collapsed, case-folded text. Written here because the task families' answers are
    plain numbers and words (math-verify, which parses LaTeX, is an optional extra of the benchmarks)."""
    if answer is None:
        return None
    text = " ".join(str(answer).split())
    num = text.replace(",", "").replace("_", "")
    try:
        from fractions import Fraction

        return ("number", Fraction(num))
    except (ValueError, ZeroDivisionError):
        return ("text", text.casefold())


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
@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t (scipy): ``t_quantile(0.975, 2)`` = 4.303."""
    if not 0.5 <= p < 1 or not df > 0:
        raise ValueError(f"t_quantile: need 0.5 <= p < 1 and df > 0, got p={p}, df={df}")
    from scipy.stats import t

    return float(t.ppf(p, df))


def seed_interval(values: list[float], confidence: float = 0.95, lo: float | None = 0.0,
                  hi: float | None = None) -> dict[str, Any]:
    """Mean over seeds with a Student-t interval (null for fewer than two seeds), clipped to the
    quantity's range [lo, hi] (an accuracy cannot fall below 0 or rise above 1).

    Sees only the spread between seeds: it collapses to zero width when the seeds agree and ignores the
    prompts' sampling variance. The reports use ``two_level_interval`` where the per-prompt answers exist;
    this stays for figures that only exist per run (a train loss, runs without ``samples.jsonl``)."""
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


# ------------------------------------------------- one interval over seeds and prompts (two-level bootstrap)
# Every run of a sweep answers the same held-out prompts, so a figure is a table Y[seed, prompt] (or
# Y[seed, cell, prompt] when a figure pools cells of one seed, e.g. an effort contrast over sizes) and its
# variance has two sources: which seeds trained the students and which prompts were drawn. The interval
# below resamples both. Written here because no maintained package bootstraps crossed random factors
# with a small-sample calibration (scipy.stats.bootstrap resamples one level; statsmodels' MixedLM does
# not fit crossed binary outcomes with 2-3 groups reliably); the quantiles come from scipy, the
# degenerate cases from statsmodels' Wilson / Newcombe intervals.

STATISTICS = ("mean", "diff", "ratio")


def _apply(statistic: str, m: Any) -> Any:
    """The statistic of the arms' means ``m[..., arm]``."""
    import numpy as np

    if statistic == "mean":
        return m[..., 0]
    if statistic == "diff":
        return m[..., 0] - m[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m[..., 1] > 0, m[..., 0] / np.where(m[..., 1] > 0, m[..., 1], 1.0), np.nan)


def _as_3d(arm: Any) -> Any:
    import numpy as np

    a = np.asarray(arm, dtype=float)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] < 1 or a.shape[2] < 1:
        raise ValueError(f"two_level_interval: an arm must be [seeds, prompts] or [seeds, cells, prompts] with "
                         f"at least one of each, got shape {a.shape}")
    return a


def _means(y: Any, mask: Any, ws: Any, wp: Any) -> Any:
    """Mean of one arm per replicate: ``ws`` [B, seeds] and ``wp`` [B, prompts] hold how often each seed /
    prompt was drawn (None: every one once)."""
    import numpy as np

    def over_prompts(x):
        return x.sum(-1)[None] if wp is None else np.einsum("skp,bp->bsk", x, wp)

    num, den = over_prompts(y).sum(-1), over_prompts(mask).sum(-1)  # [B or 1, seeds]
    if ws is not None:
        num, den = (num * ws).sum(-1), (den * ws).sum(-1)
    else:
        num, den = num.sum(-1), den.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


@lru_cache(maxsize=64)
def _draws(seed: int, stream: int, n: int, b: int) -> Any:
    """Counts of ``b`` resamples with replacement of ``n`` units: [b, n], read-only. A function of the
    seed, the stream (which level and arm) and the sizes only, so it is cached: a report computes hundreds
    of intervals over the same seeds and prompts, and the draws were most of their cost."""
    import numpy as np

    rng = np.random.default_rng([seed, stream, n, b])
    out = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(float)
    out.flags.writeable = False
    return out


def two_level_interval(arms: Sequence[Any], statistic: str = "mean", *, paired_seeds: bool = True,
                       paired_prompts: bool = True, value_range: tuple[float, float] = (0.0, 1.0),
                       confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any] | None:
    """One interval over both sources of variance: training seeds and prompts.

    ``arms``: one array per side of the statistic (``mean``: one; ``diff`` a - b, ``ratio`` a / b: two),
    each ``[seeds, prompts]`` or ``[seeds, cells, prompts]`` of per-answer values in ``value_range``
    (1/0 correctness or a graded score), NaN where an answer is missing. ``paired_seeds``: the arms'
    seed axes are the same seeds (a LoRA init and data order shared: an effort contrast at one seed);
    ``paired_prompts``: the same prompts (the same resample is applied to both arms). Unpaired arms get
    independent resamples of that level.

    Method, in order:

    1. Two-level bootstrap: each replicate draws seeds with replacement, then prompts with replacement;
       every seed of the replicate (and, paired, both arms) uses the same prompt draw, because the
       prompts are crossed with the seeds, not nested in them. Percentile interval of the replicates.
    2. Small-sample calibration: a bootstrap over n units has (n-1)/n of the unbiased variance and its
       percentiles behave like a normal quantile, far too narrow with 2-3 seeds (Student's t has 12.7
       at one degree of freedom, not 1.96). The percentile interval's two arms around the estimate are
       stretched by ``t_df / z * sqrt(V / V_boot)``: V = S/(S-1) V_seeds + P/(P-1) V_prompts, each from a
       one-level bootstrap of that level alone, and df their Welch-Satterthwaite degrees of freedom.
       With many seeds and prompts the factor tends to 1 (the plain percentile interval).
    3. Degenerate cases never give a zero width: a single mean whose seeds all agree (or one seed) gets
       the Wilson interval of the pooled mean over the distinct prompts (every seed answered the same
       prompts, so they are the independent unit); a contrast whose replicates are all equal gets
       Newcombe's hybrid score interval (a difference) or the ratio of the arms' Wilson bounds (a ratio).
    4. The interval is clipped to the statistic's range: ``value_range`` for a mean, +-its width for a
       difference, [0, max / mean of b] for a ratio (what a perfect arm a would give).

    Measured coverage of a 95 % interval (``tests/test_intervals.py``, 300 simulated studies, 40 prompts,
    logit model with seed effects and prompt difficulty; 2026-12-03): 97 % with prompts dominant (5 seeds;
    the per-seed t-interval: 76 %), 94 % where every seed answers a prompt alike (t-interval: zero width,
    0 %), 99 % for a paired contrast (3 seeds; a third narrower than the unpaired analysis). Below nominal
    where 2 seeds carry most of the variance (88 %; 91 % with 3 seeds): the Satterthwaite df then
    overstates what one seed-to-seed difference tells.

    Deterministic for a given ``seed``. Returns ``{"mean", "ci", "method", "n_seeds", "n_prompts", "df"}``,
    None when there is no data (or a ratio is undefined in most replicates).
    """
    import numpy as np
    from scipy.stats import norm
    from scipy.stats import t as student_t

    if statistic not in STATISTICS:
        raise ValueError(f"two_level_interval: statistic must be one of {STATISTICS}, got {statistic!r}")
    need = 1 if statistic == "mean" else 2
    if len(arms) != need:
        raise ValueError(f"two_level_interval: {statistic!r} takes {need} arm(s), got {len(arms)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ys = [_as_3d(a) for a in arms]
    if paired_seeds and len({y.shape[0] for y in ys}) > 1:
        raise ValueError(f"two_level_interval: paired seeds need the same seeds in every arm, got "
                         f"{[y.shape[0] for y in ys]}")
    if paired_prompts and len({y.shape[2] for y in ys}) > 1:
        raise ValueError(f"two_level_interval: paired prompts need the same prompts in every arm, got "
                         f"{[y.shape[2] for y in ys]}")
    masks = [~np.isnan(y) for y in ys]
    ys = [np.nan_to_num(y) for y in ys]
    if any(m.sum() == 0 for m in masks):
        return None
    vlo, vhi = value_range
    point_means = np.array([_means(y, m, None, None)[0] for y, m in zip(ys, masks, strict=True)])
    est = float(_apply(statistic, point_means))
    n_seeds = [y.shape[0] for y in ys]
    n_prompts = [int(m.any(axis=(0, 1)).sum()) for m in masks]
    out: dict[str, Any] = {"mean": est if math.isfinite(est) else None, "ci": None, "method": None,
                           "n_seeds": min(n_seeds), "n_prompts": n_prompts[0] if len(set(n_prompts)) == 1
                           else n_prompts, "df": None}
    if not math.isfinite(est):
        return out
    if statistic == "mean":
        rng_lo, rng_hi = vlo, vhi
    elif statistic == "diff":
        rng_lo, rng_hi = vlo - vhi, vhi - vlo
    else:
        rng_lo, rng_hi = (0.0, vhi / point_means[1]) if vlo >= 0 else (-math.inf, math.inf)

    def clip(lo: float, hi: float) -> list[float]:
        return [float(min(max(lo, rng_lo), est)), float(max(min(hi, rng_hi), est))]

    unit = vlo == 0.0 and vhi == 1.0

    def pooled_wilson(i: int) -> tuple[float, float] | None:
        """Wilson over arm i's distinct prompts, at the arm's pooled mean."""
        p = min(max(float(point_means[i]), 0.0), 1.0)
        return wilson_interval(p * n_prompts[i], n_prompts[i], confidence)

    seed_means = _means(ys[0], masks[0], np.eye(n_seeds[0]), None) if statistic == "mean" else None
    if statistic == "mean" and unit and (n_seeds[0] == 1 or np.ptp(seed_means) == 0):
        out.update(ci=clip(*pooled_wilson(0)), method="wilson (pooled over seeds)" if n_seeds[0] > 1
                   else "wilson (one seed)", df=None)
        return out

    b = n_resamples
    ws = ([_draws(seed, 0, n_seeds[0], b)] * len(ys) if paired_seeds
          else [_draws(seed, 10 + i, n, b) for i, n in enumerate(n_seeds)])
    wp = ([_draws(seed, 1, ys[0].shape[2], b)] * len(ys) if paired_prompts
          else [_draws(seed, 20 + i, y.shape[2], b) for i, y in enumerate(ys)])
    ws = [w if w.shape[1] > 1 else None for w in ws]

    def replicate(use_seeds: bool, use_prompts: bool) -> Any:
        m = np.stack([_means(y, mk, ws[i] if use_seeds else None, wp[i] if use_prompts else None)
                      for i, (y, mk) in enumerate(zip(ys, masks, strict=True))], axis=-1)
        v = _apply(statistic, np.broadcast_to(m, (b, len(ys))))
        return v[np.isfinite(v)]

    both = replicate(True, True)
    if both.size < b / 2:
        return out
    alpha = (1 - confidence) / 2
    q_lo, q_hi = np.quantile(both, [alpha, 1 - alpha])
    v_boot = float(both.var())
    s, p = min(n_seeds), min(ys[0].shape[2], *(y.shape[2] for y in ys))
    v_seeds = float(replicate(True, False).var()) * s / (s - 1) if s > 1 and ws[0] is not None else 0.0
    v_prompts = float(replicate(False, True).var()) * p / (p - 1) if p > 1 else 0.0
    v = v_seeds + v_prompts
    if v_boot <= 1e-15 or v <= 1e-15:  # every replicate equal: a degenerate contrast
        if not unit:
            out.update(ci=clip(est, est), method="degenerate (every replicate equal)")
            return out
        (a_lo, a_hi), (b_lo, b_hi) = pooled_wilson(0), pooled_wilson(1)
        if statistic == "diff":
            from statsmodels.stats.proportion import confint_proportions_2indep

            lo, hi = confint_proportions_2indep(
                float(point_means[0]) * n_prompts[0], n_prompts[0], float(point_means[1]) * n_prompts[1],
                n_prompts[1], compare="diff", method="newcomb", alpha=1 - confidence)
            out.update(ci=clip(float(lo), float(hi)), method="newcombe (every replicate equal)")
        else:
            out.update(ci=clip(a_lo / b_hi if b_hi > 0 else 0.0, a_hi / b_lo if b_lo > 0 else math.inf),
                       method="wilson ratio (every replicate equal)")
        return out
    denom = (v_seeds ** 2 / (s - 1) if s > 1 else 0.0) + (v_prompts ** 2 / (p - 1) if p > 1 else 0.0)
    df = v * v / denom if denom > 0 else math.inf
    stretch = (float(student_t.ppf(1 - alpha, df)) if math.isfinite(df) else float(norm.ppf(1 - alpha))) \
        / float(norm.ppf(1 - alpha)) * math.sqrt(v / v_boot)
    out.update(ci=clip(est - (est - q_lo) * stretch, est + (q_hi - est) * stretch),
               method="two-level bootstrap" if s > 1 and ws[0] is not None else "bootstrap over prompts (one seed)",
               df=df)
    return out
