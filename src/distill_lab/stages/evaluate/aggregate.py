"""Per-sample records -> the blocks of ``metrics.json`` (schema: ``distill_lab.artifacts.metrics``).

A record is one output of one model on one prompt: ``kind`` is ``greedy`` (the accuracy pass; for the
teacher, its sample 0) or ``sample`` (the n sampled outputs behind pass@k and majority vote). When a
model has no ``sample`` records for a prompt, its greedy output is its only sample. Category blocks leave
out the probes' control tasks (reported in the family blocks only).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from distill_lab import stats as M
from distill_lab.artifacts.metrics import SAMPLE_METRICS
from distill_lab.tasks import is_control

MODEL_ORDER = ("base", "student", "teacher")


def _by_prompt(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"greedy": None, "samples": []})
    for r in records:
        slot = out[r["prompt_id"]]
        if r["kind"] == "greedy":
            slot["greedy"] = r
        else:
            slot["samples"].append(r)
    for pid, slot in out.items():
        assert slot["greedy"] is not None, f"prompt {pid}: no greedy record"
        if not slot["samples"]:
            slot["samples"] = [slot["greedy"]]
    return out


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    return M.mean(vals)


def block(records: list[dict[str, Any]], *, confidence: float, pass_k: list[int]) -> dict[str, Any]:
    """Metrics of one model on one group of prompts."""
    prompts = _by_prompt(records)
    greedy = [p["greedy"] for p in prompts.values()]
    n = len(greedy)
    correct = sum(bool(r["correct"]) for r in greedy)
    ci = M.wilson_interval(correct, n, confidence)
    n_samples = min((len(p["samples"]) for p in prompts.values()), default=0)
    pk: dict[str, float] = {}
    for k in pass_k:
        if 1 <= k <= n_samples:
            vals = [M.pass_at_k(len(p["samples"]), sum(bool(s["correct"]) for s in p["samples"]), k)
                    for p in prompts.values()]
            pk[str(k)] = sum(vals) / len(vals)
    maj_correct = []
    for p in prompts.values():
        winner = M.majority_vote([s["extracted"] for s in p["samples"]])
        hit = next((s for s in p["samples"] if winner is not None and s["extracted"] == winner), None)
        maj_correct.append(bool(hit and hit["correct"]))
    fmt_ok = [(not r["think_unclosed"]) and r["extracted"] is not None for r in greedy]
    return {
        "n": n,
        "correct": correct,
        "accuracy": M.accuracy([r["correct"] for r in greedy]),
        "accuracy_ci": list(ci) if ci else None,
        "n_samples": n_samples,
        "pass_at_k": pk,
        "majority_accuracy": M.accuracy(maj_correct),
        "score": M.mean([_score(r) for r in greedy]),
        "format": {
            "think_closed": M.accuracy([not r["think_unclosed"] for r in greedy]),
            "has_thinking": M.accuracy([bool(r["thinking_chars"]) for r in greedy]),
            "answer_parsed": M.accuracy([r["extracted"] is not None for r in greedy]),
            "compliant": M.accuracy(fmt_ok),
        },
        "lengths": {
            "output_tokens": _mean_of(greedy, "output_tokens"),
            "thinking_chars": _mean_of(greedy, "thinking_chars"),
            "answer_chars": _mean_of(greedy, "answer_chars"),
        },
        "runaway_share": M.accuracy([bool(r["runaway"]) for r in greedy]),  # = truncated_share (older readers)
        **{metric.name: metric.compute(greedy) for metric in SAMPLE_METRICS},
    }


def _group(records: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[str(r[key])].append(r)
    return dict(sorted(out.items()))


def _categories(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records by category, without the probes' controls (``tasks.is_control``: facts never taught, a
    hint removed...): a category figure is what its probes measure; a control is read per family."""
    return _group([r for r in records if not is_control(r.get("task"))], "category")


def model_metrics(records: list[dict[str, Any]], *, confidence: float, pass_k: list[int]) -> dict[str, Any]:
    """``overall`` + per split (each with its categories and families) + per category + per family."""
    def b(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return block(rs, confidence=confidence, pass_k=pass_k)

    splits = {}
    for s, rs in _group(records, "split").items():
        splits[s] = {**b(rs), "categories": {c: b(x) for c, x in _categories(rs).items()},
                     "families": {f: b(x) for f, x in _group(rs, "task").items()}}
    return {
        "overall": b(records),
        "splits": splits,
        "categories": {c: b(x) for c, x in _categories(records).items()},
        "families": {f: b(x) for f, x in _group(records, "task").items()},
    }


def _score(r: dict[str, Any]) -> float:
    """A record's graded score (the family's ``score``), its correctness where it has none."""
    return float(r["score"]) if r.get("score") is not None else float(bool(r["correct"]))


def _value(r: dict[str, Any], key: str) -> float:
    return _score(r) if key == "score" else float(bool(r["correct"]))


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]], key: str = "correct") -> tuple[list[float], list[float]]:
    """Greedy correctness (or score) of two models on the prompts both answered, in a fixed order."""
    ga = {r["prompt_id"]: _value(r, key) for r in a if r["kind"] == "greedy"}
    gb = {r["prompt_id"]: _value(r, key) for r in b if r["kind"] == "greedy"}
    common = sorted(set(ga) & set(gb))
    return [ga[p] for p in common], [gb[p] for p in common]


def comparison(a: list[dict[str, Any]], b: list[dict[str, Any]], stat: Callable[..., float | None], *,
               n_resamples: int, confidence: float, seed: int, key: str = "correct") -> dict[str, Any]:
    """``stat(a, b)`` on paired greedy correctness (or score) with a bootstrap CI over prompts."""
    xa, xb = _paired(a, b, key)
    ci = M.bootstrap_ci([xa, xb], stat, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {"value": stat(xa, xb), "ci": list(ci) if ci else None, "n": len(xa),
            "a_accuracy": M.mean(xa), "b_accuracy": M.mean(xb)}


def comparisons(a: list[dict[str, Any]], b: list[dict[str, Any]], stat: Callable[..., float | None], *,
                n_resamples: int, confidence: float, seed: int, key: str = "correct") -> dict[str, Any]:
    """The comparison overall, per category, and per split (all categories and each category)."""
    def c(x: list[dict[str, Any]], y: list[dict[str, Any]]) -> dict[str, Any]:
        return comparison(x, y, stat, n_resamples=n_resamples, confidence=confidence, seed=seed, key=key)

    b_split, b_cat = _group(b, "split"), _categories(b)
    out: dict[str, Any] = {"overall": c(a, b), "categories": {}, "splits": {}}
    for cat, rs in _categories(a).items():
        out["categories"][cat] = c(rs, b_cat.get(cat, []))
    for s, rs in _group(a, "split").items():
        bs = b_split.get(s, [])
        bs_cat = _categories(bs) if bs else {}
        out["splits"][s] = {"all": c(rs, bs),
                            "categories": {cat: c(x, bs_cat.get(cat, [])) for cat, x in _categories(rs).items()}}
    return out


def build_metrics(records: list[dict[str, Any]], *, confidence: float, pass_k: list[int], n_resamples: int,
                  seed: int) -> dict[str, Any]:
    """``models``, ``retention`` (model / teacher, per model, on accuracy), ``score_retention`` (the
    same on the families' graded scores) and ``gain`` (student - base, on accuracy)."""
    by_model = _group(records, "model")
    models = {m: model_metrics(by_model[m], confidence=confidence, pass_k=pass_k)
              for m in sorted(by_model, key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 9, m))}
    kw = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    retention, score_retention = {}, {}
    if "teacher" in by_model:
        for m in by_model:
            if m != "teacher":
                retention[m] = comparisons(by_model[m], by_model["teacher"], M.ratio_of_means, **kw)
                score_retention[m] = comparisons(by_model[m], by_model["teacher"], M.ratio_of_means,
                                                 key="score", **kw)
    gain = None
    if "student" in by_model and "base" in by_model:
        gain = comparisons(by_model["student"], by_model["base"], M.diff_of_means, **kw)
    return {"models": models, "retention": retention, "score_retention": score_retention, "gain": gain}
