"""metrics.json blocks from hand-built per-sample records with known values."""

from __future__ import annotations

import math

import pytest

from distill_lab.stages.evaluate.aggregate import build_metrics
from distill_lab.stats import wilson_interval

# prompt -> (split, category)
PROMPTS = {"t0": ("test", "reasoning"), "t1": ("test", "reasoning"), "t2": ("test", "knowledge"),
           "t3": ("test", "knowledge"), "o0": ("ood", "reasoning"), "o1": ("ood", "reasoning")}
GREEDY = {  # model -> correctness per prompt
    "teacher": {"t0": 1, "t1": 1, "t2": 1, "t3": 0, "o0": 1, "o1": 1},
    "student": {"t0": 1, "t1": 0, "t2": 1, "t3": 0, "o0": 0, "o1": 0},
    "base": {"t0": 0, "t1": 0, "t2": 0, "t3": 0, "o0": 0, "o1": 0},
}
# student samples: (extracted, correct) x 3 per prompt; reference answer "A" for every prompt
SAMPLES = {
    "t0": [("A", 1), ("A", 1), ("B", 0)],  # majority A: right; c=2
    "t1": [("B", 0), ("A", 1), ("C", 0)],  # three-way tie: first (B) wins -> wrong; c=1
    "t2": [(None, 0), ("A", 1), (None, 0)],  # unparsed never wins: A -> right; c=1
    "t3": [("B", 0), ("B", 0), ("A", 1)],  # majority B -> wrong; c=1
    "o0": [("B", 0), ("C", 0), ("D", 0)],  # c=0
    "o1": [("A", 1), ("B", 0), ("B", 0)],  # majority B -> wrong; c=1
}


def rec(model, pid, kind, i, correct, extracted, **kw):
    split, cat = PROMPTS[pid]
    r = {"model": model, "prompt_id": pid, "split": split, "category": cat, "task": "addition", "kind": kind,
         "sample_index": i, "correct": bool(correct), "extracted": extracted, "think_unclosed": False,
         "thinking_chars": 10, "answer_chars": 5, "output_tokens": 20, "runaway": False,
         "style_similarity": None if model == "teacher" else 0.5}
    r.update(kw)
    return r


@pytest.fixture(scope="module")
def metrics():
    records = []
    for model, per in GREEDY.items():
        for pid, ok in per.items():
            extra = {}
            if model == "base":  # the base never closes its think block and runs away on test prompts
                extra = {"think_unclosed": PROMPTS[pid][0] == "test", "runaway": PROMPTS[pid][0] == "test",
                         "output_tokens": 64, "answer_chars": 0}
            records.append(rec(model, pid, "greedy", 0, ok, "A" if ok else ("B" if model != "base" else None), **extra))
    for pid, ss in SAMPLES.items():
        for i, (ext, ok) in enumerate(ss):
            records.append(rec("student", pid, "sample", i, ok, ext))
    return build_metrics(records, confidence=0.95, pass_k=[1, 2, 3, 5], n_resamples=400, seed=0)


def test_accuracy_and_wilson_per_split(metrics):
    st = metrics["models"]["student"]["splits"]["test"]
    assert (st["n"], st["correct"], st["accuracy"]) == (4, 2, 0.5)
    assert st["accuracy_ci"] == pytest.approx(list(wilson_interval(2, 4)))
    assert metrics["models"]["teacher"]["splits"]["test"]["accuracy"] == 0.75
    assert metrics["models"]["teacher"]["splits"]["ood"]["accuracy"] == 1.0
    assert metrics["models"]["base"]["overall"]["accuracy"] == 0.0
    assert metrics["models"]["student"]["overall"]["correct"] == 2
    assert metrics["models"]["student"]["categories"]["reasoning"]["n"] == 4
    assert metrics["models"]["student"]["splits"]["test"]["categories"]["knowledge"]["accuracy"] == 0.5
    assert metrics["models"]["student"]["families"]["addition"]["n"] == 6


def test_pass_at_k_and_majority(metrics):
    st = metrics["models"]["student"]["splits"]["test"]
    c = [2, 1, 1, 1]
    assert st["n_samples"] == 3
    assert st["pass_at_k"]["1"] == pytest.approx(sum(x / 3 for x in c) / 4)
    assert st["pass_at_k"]["2"] == pytest.approx(sum(1 - math.comb(3 - x, 2) / 3 for x in c) / 4)
    assert st["pass_at_k"]["3"] == 1.0
    assert "5" not in st["pass_at_k"]  # k > n_samples is not reported
    assert st["majority_accuracy"] == pytest.approx(2 / 4)  # t0 and t2
    assert metrics["models"]["student"]["splits"]["ood"]["majority_accuracy"] == 0.0
    # without sampled records the greedy output is the only sample
    t = metrics["models"]["teacher"]["splits"]["test"]
    assert t["n_samples"] == 1 and t["pass_at_k"] == {"1": 0.75} and t["majority_accuracy"] == 0.75


def test_format_lengths_runaway(metrics):
    b = metrics["models"]["base"]
    assert b["splits"]["test"]["format"]["think_closed"] == 0.0
    assert b["splits"]["ood"]["format"]["think_closed"] == 1.0
    assert b["splits"]["test"]["format"]["answer_parsed"] == 0.0
    assert b["splits"]["test"]["runaway_share"] == 1.0
    assert b["overall"]["runaway_share"] == pytest.approx(4 / 6)
    assert b["overall"]["lengths"]["output_tokens"] == 64
    assert metrics["models"]["student"]["overall"]["format"]["compliant"] == 1.0
    assert metrics["models"]["student"]["overall"]["style_similarity"] == 0.5
    assert metrics["models"]["teacher"]["overall"]["style_similarity"] is None


def test_retention_and_gain_values_with_cis(metrics):
    r = metrics["retention"]["student"]
    assert r["splits"]["test"]["all"]["value"] == pytest.approx(0.5 / 0.75)
    assert r["splits"]["test"]["categories"]["reasoning"]["value"] == pytest.approx(0.5)
    assert r["splits"]["test"]["categories"]["knowledge"]["value"] == pytest.approx(1.0)
    assert r["splits"]["ood"]["all"]["value"] == 0.0
    assert r["overall"]["value"] == pytest.approx((2 / 6) / (5 / 6))
    assert r["categories"]["reasoning"]["n"] == 4
    lo, hi = r["splits"]["test"]["all"]["ci"]
    assert 0 <= lo <= 0.5 / 0.75 <= hi
    assert metrics["retention"]["base"]["overall"]["value"] == 0.0
    g = metrics["gain"]
    assert g["splits"]["test"]["all"]["value"] == pytest.approx(0.5)
    assert g["splits"]["ood"]["all"]["value"] == 0.0
    assert g["splits"]["ood"]["all"]["ci"] == [0.0, 0.0]
    glo, ghi = g["splits"]["test"]["all"]["ci"]
    assert 0 <= glo < 0.5 < ghi <= 1


def test_no_gain_without_base():
    records = [rec("student", "t0", "greedy", 0, 1, "A"), rec("teacher", "t0", "greedy", 0, 1, "A")]
    m = build_metrics(records, confidence=0.95, pass_k=[1], n_resamples=50, seed=0)
    assert m["gain"] is None and set(m["models"]) == {"student", "teacher"}
    assert m["retention"]["student"]["overall"]["value"] == 1.0
