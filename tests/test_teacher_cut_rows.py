"""A teacher reply cut by the API at its output limit (Anthropic ``stop_reason: max_tokens``, OpenAI
``finish_reason: length``) is recorded as such and never measured as the teacher's whole answer.

Over the local fake APIs (real protocol, 127.0.0.1): the fakes cut every prompt whose a + b is divisible by
a number; which rows must be cut is recomputed here from the prompt text. Then:
- every row records ``truncated`` (and the normalised ``stop_reason``), train and held-out alike;
- generate's summary counts the cut rows per split whatever the filters did with them;
- the eval budget (``auto`` and a number) and the pipeline's early check refuse a split holding a cut teacher
  answer, naming the split and a prompt; ``eval.allow_truncation=true`` runs and records the count, flagged;
- the rl completion budget refuses a cut teacher answer too.
"""

from __future__ import annotations

from collections import Counter

import pytest

from distill_lab.artifacts.rows import cut_by_api, load_rows, with_defaults
from distill_lab.errors import ConfigError
from distill_lab.stages.evaluate.prompts import load_heldout
from distill_lab.stages.evaluate.run import budgets_for, teacher_records
from distill_lab.stages.generate.run import run
from distill_lab.stages.rl.prompts import check_budget, load_prompts
from distill_lab.students.budget import check_dataset_budgets
from distill_lab.students.loader import load_tokenizer
from tests.conftest import compose_config
from tests.fake_api.anthropic_server import AnthropicFake, Behaviour
from tests.fake_api.anthropic_server import State as AState
from tests.fake_api.harness import SECRET, gen_config
from tests.fake_api.openai_server import OpenAIFake
from tests.fake_api.openai_server import State as OState

EVERY = 3


def _sum_of(row) -> int:
    a, b = map(int, row["messages"][0]["content"][len("What is "):-1].split(" + "))
    return a + b


@pytest.fixture(params=["anthropic", "openai_compat"])
def cut_dataset(request, tmp_path, monkeypatch):
    """A dataset whose rows with a + b divisible by EVERY the API cut; (dataset dir, generate result)."""
    if request.param == "anthropic":
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        srv = AnthropicFake(AState(behaviour=Behaviour(max_tokens_every=EVERY))).start()
    else:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-or-test-0123456789abcdef")
        srv = OpenAIFake(OState(length_every=EVERY)).start()
    try:
        out = tmp_path / "ds"
        res = run(gen_config(request.param, srv.url, out, size=12, test=6, ood=6), tmp_path)
    finally:
        srv.stop()
    return out, res


def test_cut_rows_are_flagged_counted_and_refused_by_the_eval_budget(cut_dataset, tmp_path):
    out, res = cut_dataset
    rows = load_rows(out)
    want = Counter()
    for r in rows:
        cut = _sum_of(r) % EVERY == 0
        assert r["truncated"] is cut and (r["stop_reason"] == "max_tokens") is cut, r
        if cut:
            want[r["origin_split"]] += 1
    assert want["train"] and (want["test"] or want["ood"]), want  # the draw cut rows of both kinds
    # counted per split in the summary, the cut train rows moved out by the default filter, held-out ones kept
    assert res.summary["teacher_truncated"] == dict(want)
    assert all(r["split"] == "rejected" for r in rows if r["truncated"] and r["origin_split"] == "train")
    heldout_cut = [r for r in rows if r["truncated"] and r["split"] in ("test", "ood")]
    assert len(heldout_cut) == want["test"] + want["ood"]

    # the eval budget: auto and an ample number are both refused, naming a cut split and a cut prompt
    tok = load_tokenizer(compose_config(["student=tiny"], stage="eval").student)
    prompts = load_heldout(out, ["test", "ood"])
    for budget in ("auto", "100000"):
        cfg = compose_config(["student=tiny", f"eval.dataset_dir={out}", f"eval.max_new_tokens={budget}"],
                             stage="eval")
        with pytest.raises(ConfigError, match=r"eval\.max_new_tokens.*cut.*teacher\.max_tokens") as e:
            budgets_for(cfg.eval, prompts, tok)
        assert heldout_cut[0]["prompt_id"] in str(e.value) or any(
            r["prompt_id"] in str(e.value) for r in heldout_cut)
        with pytest.raises(ConfigError, match=r"eval\.max_new_tokens.*cut"):  # the pipeline, before training
            check_dataset_budgets(cfg.eval, cfg.student, str(out))
    # allowed: the run goes on, the count is recorded and the split flagged
    cfg = compose_config(["student=tiny", f"eval.dataset_dir={out}", "eval.allow_truncation=true"], stage="eval")
    budgets = budgets_for(cfg.eval, prompts, tok)
    for split in ("test", "ood"):
        assert budgets[split].teacher_truncated == want[split]
        assert budgets[split].below_teacher is (want[split] > 0)
    # the teacher's own record of a cut answer is a truncated outcome, never parsed as its answer
    recs = {r["prompt_id"]: r for r in teacher_records(prompts) if r["kind"] == "greedy"}
    assert {pid for pid, r in recs.items() if r["truncated"]} == {r["prompt_id"] for r in heldout_cut}
    assert all(recs[r["prompt_id"]]["outcome"] == "truncated" for r in heldout_cut)


def test_cut_train_rows_kept_by_the_filters_are_refused_by_the_rl_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-or-test-0123456789abcdef")
    srv = OpenAIFake(OState(length_every=EVERY)).start()
    try:
        out = tmp_path / "ds"
        res = run(gen_config("openai_compat", srv.url, out, "generate.filters=[empty_answer]", size=12, test=0,
                             ood=0), tmp_path)
    finally:
        srv.stop()
    rows = load_rows(out, split="train")
    n_cut = sum(_sum_of(r) % EVERY == 0 for r in rows)
    assert n_cut and res.summary["teacher_truncated"] == {"train": n_cut}  # counted with the filter off too
    assert "max_tokens" not in res.summary["outcomes"]
    tok = load_tokenizer(compose_config(["student=tiny"], stage="rl").student)
    prompts, _ = load_prompts(out, "train")
    with pytest.raises(ConfigError, match=rf"rl\.max_completion_tokens: the teacher's API cut {n_cut} "):
        check_budget(prompts, tok, 100000, allow_short=False)
    assert check_budget(prompts, tok, 100000, allow_short=True) > 0


def test_imported_rows_get_truncated_from_their_stop_reason():
    base = {"split": "train", "origin_split": None}
    assert with_defaults({**base, "stop_reason": "length"})["truncated"] is True
    assert with_defaults({**base, "stop_reason": "max_tokens"})["truncated"] is True
    assert with_defaults({**base, "stop_reason": "end_turn"})["truncated"] is False
    assert cut_by_api({"truncated": True, "stop_reason": None}) and not cut_by_api({"stop_reason": None})


def test_the_rl_budget_counts_answers_as_the_eval_budget_does():
    """One measure for both budgets: the turn as the student's chat template renders it. A template that
    writes an (empty) think block before every answer costs its tags even when the teacher gave no thinking
    (a plain tokenization of the answer text would count 6 tokens fewer on the tiny byte-level tokenizer)."""
    from distill_lab.stages.rl.prompts import RLPrompt
    from distill_lab.students.budget import answer_tokens

    tok = load_tokenizer(compose_config(["student=tiny"], stage="rl").student)
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}<think>\n"
                         "{{ m.reasoning_content or '' }}\n</think>\n\n{% endif %}{{ m.content }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    ask = [{"role": "user", "content": "What is 2 + 3?"}]
    turns = [{"role": "assistant", "content": "The answer is 5.", "reasoning_content": None},
             {"role": "assistant", "content": "5", "reasoning_content": "2 plus 3"}]
    p = RLPrompt("p0", "addition", "5", ask, teacher_turns=turns)
    longest = check_budget([p], tok, 100000, allow_short=False)
    assert longest == max(answer_tokens(tok, [*ask, t]) for t in turns) == len("The answer is 5.") + 7



def test_the_report_says_why_a_split_is_flagged():
    """A split flagged because the teacher's API cut its answers is not reported as a budget below them."""
    from types import SimpleNamespace

    from distill_lab.stages.report.single import budget_lines

    m = SimpleNamespace(extra={}, eval={})
    cut = {"max_new_tokens": 40, "source": "auto", "teacher_longest": 32, "margin": 1.25, "below_teacher": True,
           "teacher_cut_share": 0.0, "teacher_truncated": 2}
    low = {**cut, "max_new_tokens": 20, "source": "explicit", "teacher_cut_share": 0.5, "teacher_truncated": 0}
    lines = budget_lines(m, {"budgets": {"test": cut, "ood": low}, "budget_cut": ["test", "ood"]})
    text = "\n".join(lines)
    assert "2 of the teacher's answers were cut by the teacher's API" in text and "40 < 32" not in text
    assert "max_new_tokens 20 < 32" in text
