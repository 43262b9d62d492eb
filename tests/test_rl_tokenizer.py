"""The rl stage loads the student's tokenizer once: the one its budget check measures the teacher's answers
with is the one training renders and decodes with (before, the base's was loaded for the check and the
adapter's again with the model)."""

from __future__ import annotations

import pytest

import distill_lab.stages.rl.run as rl_run
import distill_lab.students.loader as loader
from distill_lab.stages.common import run_stage
from tests.conftest import compose_config
from tests.train_support import make_dataset


class Stop(Exception):
    pass


def test_one_tokenizer_for_the_budget_check_and_training(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path, size=16, effort="low")
    model, tok = loader.load_student(compose_config(["student=tiny"], stage="train").student, for_training=True)
    model.save_pretrained(str(tmp_path / "adapter"))
    tok.save_pretrained(str(tmp_path / "adapter"))

    loads, seen = [], {}
    real_load, real_check = loader.load_tokenizer, rl_run.check_budget
    monkeypatch.setattr(loader, "load_tokenizer", lambda *a, **k: loads.append(a) or real_load(*a, **k))

    def check_budget(prompts, tokenizer, *a, **k):
        seen["budget"] = tokenizer
        return real_check(prompts, tokenizer, *a, **k)

    def build_trainer(cfg, model, tokenizer, *a, **k):
        seen["training"] = tokenizer
        raise Stop

    monkeypatch.setattr(rl_run, "check_budget", check_budget)
    monkeypatch.setattr(rl_run, "build_trainer", build_trainer)
    cfg = compose_config(["student=tiny", "hardware=cpu_fp32", "rl.max_completion_tokens=48", "rl.max_prompts=4",
                          f"rl.dataset_dir={ds}", f"rl.adapter_dir={tmp_path / 'adapter'}",
                          f"run_dir={tmp_path / 'rl'}"], stage="rl")
    with pytest.raises(Stop):
        run_stage("rl", cfg, tmp_path / "rl")
    assert seen["budget"] is seen["training"]
    assert len(loads) == 1
