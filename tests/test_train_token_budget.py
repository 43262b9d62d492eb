"""``train.token_budget``: runs of different row lengths trained to the same number of supervised tokens.

Low- and high-effort rows of the same prompts differ several-fold in length; with one budget both runs
stop at the first step that reaches it (within one step's tokens above it), so an effort sweep can hold
the supervised dose constant. The summary records the dose (supervised tokens, processed tokens, rows,
steps) and, beside the full loss, the loss on the final answer's tokens (train and validation).
Bad budgets are config errors naming the field, before any step.
"""

from __future__ import annotations

import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.train.datamodule import StepSchedule
from tests.conftest import compose_config
from tests.train_support import make_dataset, step_log, train

BUDGET = 700


def test_equal_supervised_tokens_across_efforts(tmp_path):
    out = {}
    for effort in ("low", "high"):
        ds = make_dataset(tmp_path, size=24, effort=effort)
        run = tmp_path / f"run-{effort}"
        res = train(ds, run, f"train.token_budget={BUDGET}", "train.max_steps=500", "train.batch_size=2",
                    "train.val_every_n_steps=1000", "data.val_fraction=0.2")
        steps = [r for r in step_log(run) if "loss" in r]
        s = res.summary
        out[effort] = s
        trained = s["supervised_tokens_trained"]
        assert trained == sum(r["supervised_tokens"] for r in steps) == s["supervised_tokens"]
        # reached, and by the last step only: within one batch's tokens of the budget
        assert trained >= BUDGET > trained - steps[-1]["supervised_tokens"], (effort, trained)
        assert s["steps"] == len(steps) == s["token_budget"]["steps"]
        assert s["rows_seen"] == 2 * s["steps"]
        assert s["tokens_processed"] > trained  # the prompts are processed, not supervised
        # the answer-token loss beside the full loss, per step and on validation after the last step
        assert all(r["loss_answer"] is not None and 0 < r["answer_tokens"] < r["supervised_tokens"] for r in steps)
        assert s["final_loss_answer"] == steps[-1]["loss_answer"]
        assert s["val_loss_answer"] is not None and s["val_loss"] is not None
    # the efforts' rows differ in length, so the same budget takes different numbers of steps and rows
    assert out["low"]["steps"] > 2 * out["high"]["steps"]


def test_processed_unit_counts_every_row_token():
    sched = StepSchedule(num_examples=5, batch_size=2, grad_accum=1, world_size=1, seed=0)
    lengths = [10, 20, 30, 40, 50]
    steps, got = sched.steps_for_tokens(100, lambda i: lengths[i], cap=50)
    assert got == sched.tokens_through(steps, lambda i: lengths[i]) >= 100
    assert sched.tokens_through(steps - 1, lambda i: lengths[i]) < 100
    assert sched.steps_for_tokens(10**6, lambda i: lengths[i], cap=7) == (7, sched.tokens_through(7, lambda i: lengths[i]))


def test_plan_steps_by_unit():
    from distill_lab.stages.train.packing import IGNORE, Example
    from distill_lab.stages.train.run import plan_steps

    # rows of 20 tokens, 5 supervised targets each (the first token is never a target)
    ex = [Example(f"r{i}", list(range(20)), [IGNORE] * 14 + list(range(14, 20))) for i in range(6)]
    sched = StepSchedule(len(ex), batch_size=2, grad_accum=1, world_size=1, seed=0)
    sup = compose_config(["student=tiny", "train.token_budget=25", "train.batch_size=2"], stage="train")
    assert plan_steps(sup, sched, ex) == (3, {"unit": "supervised", "budget": 25, "steps": 3, "tokens": 36})
    proc = compose_config(["student=tiny", "train.token_budget=25", "train.token_budget_unit=processed",
                           "train.batch_size=2"], stage="train")
    assert plan_steps(proc, sched, ex) == (1, {"unit": "processed", "budget": 25, "steps": 1, "tokens": 40})
    off = compose_config(["student=tiny", "train.max_steps=7"], stage="train")
    assert plan_steps(off, sched, ex) == (7, None)


def test_budgets_that_cannot_be_met_are_config_errors(tmp_path):
    ds = make_dataset(tmp_path, size=24, effort="low")
    with pytest.raises(ConfigError, match=r"train\.token_budget: .*train\.max_steps=3"):
        train(ds, tmp_path / "a", "train.token_budget=100000", "train.max_steps=3")
    with pytest.raises(ConfigError, match=r"train\.token_budget: .*train\.epochs=1 pass"):
        train(ds, tmp_path / "b", "train.token_budget=100000", "train.epochs=1")
    assert not (tmp_path / "a" / "adapter").exists() and not (tmp_path / "b" / "adapter").exists()
    for bad, key in (("train.token_budget=0", "train.token_budget"), ("train.token_budget_unit=flops",
                                                                       "train.token_budget_unit"),
                     ("train.lr_grid=[]", "train.lr_grid"), ("train.lr_grid=[0.1,-1]", "train.lr_grid")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            compose_config(["student=tiny", bad], stage="train")
