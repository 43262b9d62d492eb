"""Generation budgets checked against the teacher (students/budget.py, the eval stage, the pipeline).

Expected token counts are computed here independently of the package: the tiny student's tokenizer is
byte-level with ``<think>``, ``</think>`` and ``<|im_end|>`` as single tokens, and its ChatML template
renders an assistant turn as ``<think>\\n{reasoning}\\n</think>\\n\\n{content}<|im_end|>``, so the
teacher's answer costs len(reasoning) + len(content) + 7 tokens (ASCII)."""

from __future__ import annotations

import json
import math

import pytest

from distill_lab.artifacts.rows import load_rows
from distill_lab.errors import ConfigError
from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.extract import score_output
from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.stages.evaluate.run import make_record
from distill_lab.students.budget import resolve_budgets
from tests.conftest import compose_config
from tests.eval_support import write_oracle_dataset


def _expected_longest(dataset_dir) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in load_rows(dataset_dir):
        if r["split"] in ("test", "ood"):
            a = r["messages"][-1]
            n = len(a["reasoning_content"].encode()) + len(a["content"].encode()) + 7
            out[r["split"]] = max(out.get(r["split"], 0), n)
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("budget") / "dataset"
    write_oracle_dataset(d)
    return d


def _eval_cfg(dataset, *extra):
    return compose_config(["student=tiny", f"eval.dataset_dir={dataset}", "eval.progress=false", "eval.bootstrap=20",
                           "hardware.threads=1", *extra], stage="eval")


def test_auto_is_the_default_and_derives_each_splits_budget_from_the_teachers_longest_answer(dataset, tmp_path):
    cfg = _eval_cfg(dataset)
    assert cfg.eval.max_new_tokens == "auto" and cfg.eval.budget_margin == 1.25
    longest = _expected_longest(dataset)
    assert longest["ood"] > longest["test"]  # 4-digit traces are longer: each split gets its own budget
    run_stage("eval", cfg, tmp_path / "eval")
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for split in ("test", "ood"):
        b = m["budgets"][split]
        assert b["teacher_longest"] == longest[split] and b["source"] == "auto"
        assert b["max_new_tokens"] == math.ceil(longest[split] * 1.25) and not b["below_teacher"]
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    for s in samples:
        if s["model"] != "teacher":
            assert s["max_new_tokens"] == math.ceil(longest[s["split"]] * 1.25)
            assert s["output_tokens"] <= s["max_new_tokens"]
        else:  # the teacher's own lengths, in the same measure as the budget
            assert s["output_tokens"] <= longest[s["split"]] and s["truncated"] is False
    assert max(s["output_tokens"] for s in samples if s["model"] == "teacher" and s["split"] == "ood") == longest["ood"]
    manifest = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert manifest["summary"]["max_new_tokens"]["ood"]["max_new_tokens"] == math.ceil(longest["ood"] * 1.25)


def test_budget_margin_scales_auto(dataset):
    from distill_lab.stages.evaluate.run import budgets_for, load_prompts
    from distill_lab.students.loader import load_tokenizer

    cfg = _eval_cfg(dataset, "eval.budget_margin=2.0")
    b = budgets_for(cfg.eval, load_prompts(cfg.eval), load_tokenizer(cfg.student))
    assert {s: x.max_new_tokens for s, x in b.items()} == {s: 2 * n for s, n in _expected_longest(dataset).items()}


def test_an_explicit_budget_below_the_teacher_is_refused_before_any_model_is_loaded(dataset, tmp_path, monkeypatch):
    import distill_lab.students as students

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the budget check")

    monkeypatch.setattr(students, "load_student", no_model)
    longest = _expected_longest(dataset)
    cfg = _eval_cfg(dataset, f"eval.max_new_tokens={longest['test']}")  # enough for test, not for ood
    with pytest.raises(ConfigError) as e:
        run_stage("eval", cfg, tmp_path / "eval")
    msg = str(e.value)
    assert msg.startswith("eval.max_new_tokens:")
    assert f"split 'ood': {longest['test']} < {longest['ood']} tokens" in msg and "split 'test'" not in msg
    assert "eval.allow_truncation=true" in msg
    assert not (tmp_path / "eval" / "samples.jsonl").exists()


def test_the_boundary_a_budget_equal_to_the_longest_answer_passes():
    lengths = {"test": [("a", 10), ("b", 30)], "ood": [("c", 50)]}
    ok = resolve_budgets(50, ["test", "ood"], lengths, margin=1.25, allow_truncation=False, fallback=256)
    assert ok["ood"].max_new_tokens == 50 and not ok["ood"].below_teacher
    with pytest.raises(ConfigError, match=r"split 'ood': 49 < 50 tokens"):
        resolve_budgets(49, ["test", "ood"], lengths, margin=1.25, allow_truncation=False, fallback=256)
    cut = resolve_budgets(20, ["test", "ood"], lengths, margin=1.25, allow_truncation=True, fallback=256)
    assert cut["test"].below_teacher and cut["test"].teacher_cut_share == 0.5 and cut["ood"].teacher_cut_share == 1.0
    # a split without teacher answers: auto takes the fallback, recorded as unchecked
    none = resolve_budgets("auto", ["test", "x"], lengths, margin=1.25, allow_truncation=False, fallback=77)
    assert none["test"].max_new_tokens == 38 and none["x"].max_new_tokens == 77
    assert none["x"].source == "no teacher answers" and none["x"].teacher_longest is None


def test_allow_truncation_runs_records_the_cut_and_never_parses_a_truncated_output(dataset, tmp_path):
    cfg = _eval_cfg(dataset, "eval.max_new_tokens=20", "eval.allow_truncation=true")
    run_stage("eval", cfg, tmp_path / "eval")
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["truncation_allowed"] is True
    assert all(m["budgets"][s]["below_teacher"] and m["budgets"][s]["teacher_cut_share"] == 1.0 for s in ("test", "ood"))
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    base = [s for s in samples if s["model"] == "base"]
    assert base and all(s["max_new_tokens"] == 20 for s in base)
    cut = [s for s in base if s["truncated"]]
    assert cut, "the random-init base never stops within 20 tokens"
    assert all(s["outcome"] == "truncated" and s["extracted"] is None and not s["correct"] for s in cut)
    share = m["models"]["base"]["splits"]["test"]["truncated_share"]
    assert share == sum(s["truncated"] for s in base if s["split"] == "test") / sum(s["split"] == "test" for s in base)
    # the report flags the cut budget in red: a warning line per split, shares in the tables, a red plot marker
    rcfg = compose_config([f"report.eval_dirs=[{tmp_path / 'eval'}]"], stage="report")
    run_stage("report", rcfg, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "🔴 **Truncation allowed on test: max_new_tokens 20 < " in md and "🔴 **Truncation allowed on ood" in md
    assert "| base truncated | base unclosed think |" in md
    row = next(line for line in md.splitlines() if line.startswith("| test | 5 |"))
    assert row.rstrip().endswith(f"| {100 * share:.1f}% | {row.split('|')[-2].strip()} |")
    import matplotlib.image as mpimg

    img = mpimg.imread(next((tmp_path / "report").glob("accuracy_*.png")))
    assert ((img[..., 0] > 0.9) & (img[..., 1] < 0.2) & (img[..., 2] < 0.2)).sum() > 20  # the red label


def test_a_truncated_answer_is_its_own_outcome_and_never_read_as_a_number():
    cut = "<think>\nColumn 1: 5 + 8 = 13.\n</think>\n\nThe answer is 102"  # 1023 cut mid-number
    assert score_output(cut, "addition", "1023").extracted == "102"  # what the old reading did
    s = score_output(cut, "addition", "1023", truncated=True)
    assert s.extracted is None and not s.correct and s.score == 0.0
    # even a cut output whose prefix happens to be the right number is wrong
    assert not score_output("The answer is 102", "addition", "102", truncated=True).correct
    p = EvalPrompt("p1", "addition", "reasoning", "ood", [{"role": "user", "content": "What is 1000 + 23?"}], "1023")
    r = make_record("student", p, "greedy", 0, cut, n_tokens=20, runaway=True, seed=3, max_new_tokens=20)
    assert (r["outcome"], r["truncated"], r["extracted"], r["correct"], r["seed"]) == ("truncated", True, None, False, 3)
    unclosed = make_record("student", p, "greedy", 0, "<think>\nColumn 1", n_tokens=5, runaway=False)
    assert unclosed["outcome"] == "unclosed_thinking" and unclosed["unclosed_thinking"] and not unclosed["truncated"]
    ok = make_record("student", p, "greedy", 0, "The answer is 1023.", n_tokens=5, runaway=False)
    assert ok["outcome"] == "correct" and ok["family"] == "addition"


def test_the_effort_study_at_176_tokens_is_refused_before_training_and_runs_with_auto(tmp_path):
    small = ["student=tiny", "recipe.size=8", "recipe.test_size=2", "recipe.ood_size=2", "train.max_steps=1",
             "train.batch_size=2", "eval.progress=false", "eval.bootstrap=20", "hardware.threads=1"]
    cfg = compose_config(["experiment=effort_x_size", *small], stage="pipeline")
    assert cfg.eval.max_new_tokens == "auto"  # the study's config as committed
    high = compose_config(["experiment=effort_x_size", *small, "teacher.effort=high", "eval.max_new_tokens=176"],
                          stage="pipeline")
    with pytest.raises(ConfigError, match=r"eval\.max_new_tokens: 176 is below .*split 'ood': 176 < \d+ tokens"):
        run_stage("pipeline", high, tmp_path / "refused")
    assert (tmp_path / "refused" / "generate").is_dir() and not (tmp_path / "refused" / "train").exists()
    low = compose_config(["experiment=effort_x_size", *small, "teacher.effort=low"], stage="pipeline")
    run_stage("pipeline", low, tmp_path / "auto")
    m = json.loads((tmp_path / "auto" / "eval" / "metrics.json").read_text())
    assert {s: b["source"] for s, b in m["budgets"].items()} == {"test": "auto", "ood": "auto"}
    assert m["budgets"]["ood"]["max_new_tokens"] == math.ceil(m["budgets"]["ood"]["teacher_longest"] * 1.25)


@pytest.mark.slow  # SmolLM2's tokenizer (converted once into the student cache) and 280 oracle rows
def test_the_effort_study_at_176_is_refused_naming_the_teachers_189_token_ood_answer(tmp_path):
    """The review's numbers, through the pipeline's own check: with SmolLM2 the teacher's longest
    high-effort OOD answer is 189 tokens (end of turn included); 176 is refused before any training."""
    cfg = compose_config(["experiment=effort_x_size", "teacher.effort=high", "eval.max_new_tokens=176"],
                         stage="pipeline")
    with pytest.raises(ConfigError, match=r"split 'ood': 176 < 189 tokens.*23 of its 40 answers would be cut") as e:
        run_stage("pipeline", cfg, tmp_path / "run")
    assert "split 'test'" not in str(e.value)  # the longest high-effort test answer is 156: it fits
    assert not (tmp_path / "run" / "train").exists()


@pytest.mark.parametrize("override, field", [
    ("eval.max_new_tokens=0", "eval.max_new_tokens"), ("eval.max_new_tokens=autoo", "eval.max_new_tokens"),
    ("eval.budget_margin=0.9", "eval.budget_margin"), ("eval.fallback_max_new_tokens=0", "eval.fallback_max_new_tokens"),
    ("report.pack_evidence=x.jsonl.gz", "report.pack_evidence")])
def test_bad_budget_and_evidence_settings_name_their_field(override, field):
    from distill_lab.app import compose_config as compose

    with pytest.raises(ConfigError, match=rf"^{field}:"):
        compose(["student=tiny", override], stage="report" if override.startswith("report") else "eval")
