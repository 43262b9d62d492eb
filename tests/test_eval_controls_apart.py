"""The probes' controls (untaught facts, unannounced edge cases...) are reported per family but never
inside a category figure: the knowledge figure is the taught facts', whatever the untaught ones score."""

from __future__ import annotations

from distill_lab.stages.evaluate.aggregate import build_metrics


def _rec(model, pid, task, category, correct):
    return {"model": model, "prompt_id": pid, "split": "test", "category": category, "task": task,
            "kind": "greedy", "sample_index": 0, "correct": bool(correct), "extracted": "X" if correct else None,
            "think_unclosed": False, "thinking_chars": 5, "answer_chars": 5, "output_tokens": 10, "runaway": False}


def test_controls_stay_out_of_category_blocks_and_in_family_blocks():
    plan = [("k0", "capital_facts", "knowledge", 1), ("k1", "capital_facts", "knowledge", 1),
            ("u0", "capital_facts_untaught", "knowledge", 0), ("u1", "capital_facts_untaught", "knowledge", 0),
            ("m0", "capital_facts_train_phrasing", "knowledge", 0),
            ("e0", "edge_checks", "edge_case", 1), ("e1", "edge_checks_unannounced", "edge_case", 0)]
    records = [_rec(m, pid, task, cat, ok if m == "student" else 1) for m in ("student", "teacher")
               for pid, task, cat, ok in plan]
    m = build_metrics(records, confidence=0.95, pass_k=[1], n_resamples=50, seed=0)
    st = m["models"]["student"]
    assert st["categories"]["knowledge"]["n"] == 2 and st["categories"]["knowledge"]["accuracy"] == 1.0
    assert st["splits"]["test"]["categories"]["knowledge"]["accuracy"] == 1.0
    assert st["categories"]["edge_case"]["n"] == 1 and st["categories"]["edge_case"]["accuracy"] == 1.0
    fams = st["splits"]["test"]["families"]
    assert fams["capital_facts_untaught"]["accuracy"] == 0.0 and fams["capital_facts_untaught"]["n"] == 2
    assert fams["edge_checks_unannounced"]["n"] == 1 and fams["capital_facts_train_phrasing"]["n"] == 1
    ret = m["retention"]["student"]
    assert ret["categories"]["knowledge"]["n"] == 2 and ret["categories"]["knowledge"]["value"] == 1.0
    assert ret["splits"]["test"]["categories"]["knowledge"]["value"] == 1.0
