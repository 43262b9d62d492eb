"""Evaluation statistics on hand-built cases with known values."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill_lab import stats as M


@pytest.mark.parametrize(
    "k,n,lo,hi",
    [  # reference values of the 95 % Wilson score interval (z = 1.959964); 1/40 worked by hand:
        # centre (0.025 + z^2/80) / (1 + z^2/40) = 0.066620, half-width 0.062194
        (8, 10, 0.4901625, 0.9433178),
        (5, 10, 0.2365931, 0.7634069),
        (0, 10, 0.0, 0.2775328),
        (10, 10, 0.7224672, 1.0),
        (1, 40, 0.0044268, 0.1288137),
    ],
)
def test_wilson_matches_reference_values(k, n, lo, hi):
    got = M.wilson_interval(k, n, 0.95)
    assert got is not None
    assert got[0] == pytest.approx(lo, abs=1e-6)
    assert got[1] == pytest.approx(hi, abs=1e-6)


def test_wilson_edge_cases_and_width():
    assert M.wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="0 <= k <= n"):
        M.wilson_interval(3, 2)
    narrow, wide = M.wilson_interval(50, 100, 0.8), M.wilson_interval(50, 100, 0.99)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert M.z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_pass_at_k_hand_values():
    assert M.pass_at_k(2, 1, 1) == pytest.approx(0.5)
    assert M.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert M.pass_at_k(10, 0, 5) == 0.0
    assert M.pass_at_k(10, 6, 5) == 1.0  # only 4 wrong samples: every draw of 5 holds a correct one
    assert M.pass_at_k(4, 1, 4) == 1.0
    with pytest.raises(ValueError):
        M.pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        M.pass_at_k(3, 1, 4)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_closed_form(nck):
    n, c, k = nck
    closed = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert M.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-9)


def test_pass_at_1_is_the_share_correct():
    assert M.pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_majority_vote_ties_and_none():
    assert M.majority_vote(["3", "4", "4", "3"]) == "3"  # tie: first to appear wins
    assert M.majority_vote(["4", "3", "3", "4"]) == "4"
    assert M.majority_vote(["1", "2", "2"]) == "2"
    assert M.majority_vote([None, None, "5"]) == "5"  # unparsed answers never win
    assert M.majority_vote([None, None]) is None
    assert M.majority_vote([]) is None


def test_quantile_matches_numpy():
    rng = random.Random(1)
    xs = sorted(rng.random() for _ in range(37))
    for q in (0.0, 0.025, 0.5, 0.975, 1.0):
        assert M.quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_bootstrap_ci_of_a_mean_is_near_the_normal_interval():
    xs = [1.0] * 50 + [0.0] * 50
    lo, hi = M.bootstrap_ci([xs], M.mean, n_resamples=2000, seed=3)
    half = 1.959964 * math.sqrt(0.25 / 100)  # 0.098
    assert lo == pytest.approx(0.5 - half, abs=0.02)
    assert hi == pytest.approx(0.5 + half, abs=0.02)
    assert M.bootstrap_ci([xs], M.mean, n_resamples=500, seed=3) == M.bootstrap_ci([xs], M.mean, n_resamples=500, seed=3)


def test_bootstrap_ci_degenerate_and_paired():
    assert M.bootstrap_ci([[1.0] * 10, [1.0] * 10], M.ratio_of_means, n_resamples=100) == (1.0, 1.0)
    assert M.bootstrap_ci([[]], M.mean) is None
    with pytest.raises(ValueError, match="differ in length"):
        M.bootstrap_ci([[1.0], [1.0, 0.0]], M.diff_of_means)
    # teacher always wrong: the ratio is undefined in every resample
    assert M.bootstrap_ci([[1.0, 0.0], [0.0, 0.0]], M.ratio_of_means, n_resamples=50) is None
    # paired resampling: student == teacher on every prompt gives a ratio of exactly 1 in every resample
    s = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert M.bootstrap_ci([s, list(s)], M.ratio_of_means, n_resamples=300) == (1.0, 1.0)


def test_ratio_and_difference_of_means():
    assert M.ratio_of_means([1, 0, 1, 0], [1, 1, 1, 1]) == pytest.approx(0.5)
    assert M.ratio_of_means([1, 1], [0, 0]) is None
    assert M.diff_of_means([1, 1, 0, 0], [0, 0, 0, 1]) == pytest.approx(0.25)
    assert M.accuracy([True, False, True, True]) == 0.75
    assert M.accuracy([]) is None


def test_rouge_l_f1():
    assert M.rouge_l_f1("a c d", "a b c d") == pytest.approx(2 * 1.0 * 0.75 / 1.75)
    assert M.rouge_l_f1("x y", "a b") == 0.0
    assert M.rouge_l_f1("", "") == 1.0
    assert M.rouge_l_f1("same words here", "same words here") == 1.0


def test_majority_vote_ties_go_to_the_voter_with_the_highest_priority():
    assert M.majority_vote(["3", "4"], [0.5, 0.9]) == "4"
    assert M.majority_vote(["3", "4"], [0.9, 0.9]) == "3"  # equal priorities: first to appear
    assert M.majority_vote(["3", "4", "4"], [1.0, 0.0, 0.0]) == "4"  # no tie: the count decides
    assert M.majority_vote([None, "4"], [1.0, 0.0]) == "4"
    with pytest.raises(ValueError, match="priorities"):
        M.majority_vote(["3"], [1.0, 2.0])


def test_answer_value_groups_numbers_by_value_and_text_by_its_words():
    assert M.answer_value("1,234") == M.answer_value("1234.0") == M.answer_value("+1234")
    assert M.answer_value("3/4") == M.answer_value("0.75") and M.answer_value("1e3") == M.answer_value("1000")
    assert M.answer_value("1234") != M.answer_value("1235")
    assert M.answer_value(" New  York ") == M.answer_value("new york") != M.answer_value("York")
    assert M.answer_value(None) is None
