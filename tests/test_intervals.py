"""One interval over seeds and prompts (``stats.two_level_interval``): its coverage on simulated studies
with a known effect, against the per-seed t-interval it replaces, and its degenerate and boundary cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm

from distill_lab.stats import seed_interval, t_quantile, two_level_interval, wilson_interval

N_STUDIES = 300
N_BOOT = 600  # per interval; the coverage test's cost is N_STUDIES intervals of this many replicates


def _truth(mu: float, seed_sd: float, prompt_sd: float) -> float:
    """E[accuracy] over new seeds and new prompts of the logit model below (Gauss-Hermite, 60 x 60 nodes)."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    return float((w[:, None] * w[None, :] * expit(mu + seed_sd * x[:, None] + prompt_sd * x[None, :])).sum())


def _study(rng, seeds: int, prompts: int, mu: float, seed_sd: float, prompt_sd: float,
           noise: bool = True, effect: float = 0.0, arm_seed_sd: float = 0.0):
    """Answers [arms, seeds, prompts]: logit = mu + seed effect + prompt difficulty (+ the effect and an
    arm-specific seed deviation in arm 0). Both arms share the seeds (LoRA init) and the prompts."""
    a = seed_sd * rng.standard_normal((seeds, 1))
    b = prompt_sd * rng.standard_normal((1, prompts))
    arms = []
    for k, eff in enumerate((effect, 0.0)):
        logit = mu + eff + a + b + (arm_seed_sd * rng.standard_normal((seeds, 1)) if k == 0 else 0.0)
        p = expit(logit)
        arms.append((rng.random(p.shape) < p).astype(float) if noise else (p > 0.5).astype(float))
    return np.stack(arms)


def _coverage(ci_of, truth, studies) -> tuple[float, float]:
    """Share of studies whose interval holds the truth, and the share of zero-width intervals."""
    hit = zero = 0
    for y in studies:
        ci = ci_of(y)
        hit += ci is not None and ci[0] <= truth <= ci[1]
        zero += ci is not None and ci[0] == ci[1]
    return hit / len(studies), zero / len(studies)


def _new(y):
    return two_level_interval([y[0]], "mean", n_resamples=N_BOOT)["ci"]


def _old(y):  # the sweep report's former interval: Student t over the seeds' accuracies
    return seed_interval(list(y[0].mean(axis=1)), 0.95, 0.0, 1.0)["ci"]


def test_coverage_of_a_mean_where_prompts_vary_most_and_the_seed_t_interval_fails():
    rng = np.random.default_rng(11)
    mu, seed_sd, prompt_sd = 0.3, 0.15, 2.0  # a few points between seeds, a wide spread of prompt difficulty
    truth = _truth(mu, seed_sd, prompt_sd)
    studies = [_study(rng, 5, 40, mu, seed_sd, prompt_sd) for _ in range(N_STUDIES)]
    new, new_zero = _coverage(_new, truth, studies)
    old, _ = _coverage(_old, truth, studies)
    assert 0.90 <= new <= 0.99 and new_zero == 0
    assert old < 0.85  # the seeds share the prompts: their spread does not see the prompts' variance


def test_coverage_where_seeds_agree_and_the_seed_t_interval_has_zero_width():
    # every seed gives the same answer to a prompt (the answer depends on the prompt only): the seeds agree
    rng = np.random.default_rng(12)
    mu, prompt_sd = -0.5, 1.2
    truth = float(norm.cdf(mu / prompt_sd))  # P(a new prompt is answered right) = P(mu + difficulty > 0)
    studies = [_study(rng, 3, 40, mu, 0.0, prompt_sd, noise=False) for _ in range(N_STUDIES)]
    new, new_zero = _coverage(_new, truth, studies)
    old, old_zero = _coverage(_old, truth, studies)
    assert 0.90 <= new <= 0.99 and new_zero == 0
    assert old_zero == 1.0 and old < 0.2


def test_coverage_of_a_paired_contrast_with_seed_effects_and_paired_beats_unpaired():
    rng = np.random.default_rng(13)
    mu, seed_sd, prompt_sd, effect = 0.0, 0.4, 1.2, 0.6
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    # arm 0 has its own seed deviation (sd 0.2) on top of the shared seed effect
    sd0 = np.hypot(seed_sd, 0.2)
    truth = (float((w[:, None] * w[None, :] * expit(mu + effect + sd0 * x[:, None] + prompt_sd * x[None, :])).sum())
             - _truth(mu, seed_sd, prompt_sd))
    studies = [_study(rng, 3, 40, mu, seed_sd, prompt_sd, effect=effect, arm_seed_sd=0.2) for _ in range(N_STUDIES)]
    paired = [two_level_interval([y[0], y[1]], "diff", n_resamples=N_BOOT) for y in studies]
    unpaired = [two_level_interval([y[0], y[1]], "diff", paired_seeds=False, paired_prompts=False,
                                   n_resamples=N_BOOT) for y in studies]
    cover = np.mean([r["ci"][0] <= truth <= r["ci"][1] for r in paired])
    assert 0.90 <= cover <= 0.99
    width = lambda rs: np.median([r["ci"][1] - r["ci"][0] for r in rs])  # noqa: E731
    assert width(paired) < 0.75 * width(unpaired)  # pairing on seeds and prompts removes their shared variance
    # the unpaired analysis of a paired design wastes the pairing: it detects the effect less often
    assert np.mean([r["ci"][0] > 0 for r in paired]) > np.mean([r["ci"][0] > 0 for r in unpaired]) + 0.1


def test_zero_width_cases_are_gone():
    # knowledge 0.0 [0.0, 0.0] and 52.5 [52.5, 52.5] under the seed t-interval: the seeds agreed
    zero = two_level_interval([np.zeros((2, 40))])
    assert zero["ci"][0] == 0.0 and zero["ci"][1] == pytest.approx(wilson_interval(0, 40)[1])
    assert zero["ci"][1] > 0.08
    assert zero["method"].startswith("wilson")
    same = np.tile((np.arange(40) < 21).astype(float), (2, 1))  # 52.5 % in both seeds, the same prompts
    st = two_level_interval([same])
    assert st["mean"] == pytest.approx(0.525)
    assert st["ci"] == pytest.approx(list(wilson_interval(21, 40)))  # over the 40 distinct prompts
    assert seed_interval([0.525, 0.525])["ci"] == [0.525, 0.525]  # what it replaces
    one = two_level_interval([np.ones((1, 40))])  # one seed, all right
    assert one["ci"][0] < 1.0 and one["ci"][1] == 1.0
    c = two_level_interval([np.ones((1, 40)), np.zeros((1, 40))], "diff")  # 100 % vs 0 %: Newcombe
    assert c["mean"] == 1.0 and c["ci"][0] < 0.9 and c["ci"][1] == 1.0 and c["method"].startswith("newcombe")
    r = two_level_interval([np.ones((2, 40)), np.ones((2, 40))], "ratio")
    assert r["mean"] == 1.0 and r["ci"][0] < 0.95 and r["ci"][1] == 1.0


def test_intervals_are_clipped_to_the_parameters_range():
    rng = np.random.default_rng(3)
    hi = (rng.random((2, 10)) < 0.95).astype(float)
    assert two_level_interval([hi])["ci"][1] <= 1.0
    lo = np.zeros((3, 10))
    lo[0, 0] = 1.0
    st = two_level_interval([lo])
    assert st["ci"][0] == 0.0 and st["ci"][1] > st["mean"]
    # retention: a student at 23.8 % of a teacher that is right everywhere cannot exceed 100 % retention
    student = np.zeros((2, 21))
    student[0, :10] = 1.0  # seed 0: 10/21, seed 1: 0/21 -> 23.8 %
    ret = two_level_interval([student, np.ones((2, 21))], "ratio")
    assert ret["mean"] == pytest.approx(0.238, abs=1e-3)
    assert 0.0 <= ret["ci"][0] and ret["ci"][1] <= 1.0
    assert seed_interval([10 / 21, 0.0])["ci"][1] > 1.0  # the t-interval it replaces: "[0.0, 103.2]"
    d = two_level_interval([np.ones((2, 5)), np.zeros((2, 5))], "diff")
    assert -1.0 <= d["ci"][0] and d["ci"][1] <= 1.0


def test_paired_and_unpaired_differ_on_a_paired_design():
    # A is right on prompts 0-29, B on 0-24, in each of 3 seeds: they differ on the same 5 prompts
    a = np.tile((np.arange(40) < 30).astype(float), (3, 1))
    b = np.tile((np.arange(40) < 25).astype(float), (3, 1))
    paired = two_level_interval([a, b], "diff")
    unpaired = two_level_interval([a, b], "diff", paired_seeds=False, paired_prompts=False)
    assert paired["mean"] == unpaired["mean"] == pytest.approx(0.125)
    assert paired["ci"][0] > 0 and unpaired["ci"][0] < 0 < unpaired["ci"][1]


def test_cells_within_a_seed_and_missing_answers():
    # two sizes per seed (cells), pooled; a missing answer (NaN) is left out, not counted wrong
    y = np.ones((2, 2, 10))
    y[0, 1, 0] = np.nan
    y[1, 0, :5] = 0.0
    st = two_level_interval([y])
    assert st["mean"] == pytest.approx(34 / 39) and st["n_prompts"] == 10 and st["n_seeds"] == 2
    assert two_level_interval([np.full((2, 3), np.nan)]) is None


def test_deterministic_and_checked():
    rng = np.random.default_rng(0)
    y = (rng.random((3, 30)) < 0.4).astype(float)
    assert two_level_interval([y], seed=5) == two_level_interval([y], seed=5)
    with pytest.raises(ValueError, match="statistic"):
        two_level_interval([y], "median")
    with pytest.raises(ValueError, match="2 arm"):
        two_level_interval([y], "diff")
    with pytest.raises(ValueError, match="same seeds"):
        two_level_interval([y, y[:2]], "diff")
    with pytest.raises(ValueError, match="shape"):
        two_level_interval([np.zeros(4)])


def test_t_quantile_is_scipys():
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert t_quantile(0.975, 2.5) < t_quantile(0.975, 2)  # fractional (Satterthwaite) degrees of freedom
