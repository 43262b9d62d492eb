"""Voting across distilled students (``report/vote.py``) on eval runs with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distill_lab.errors import ConfigError
from distill_lab.stages.report.vote import build_vote, load_member, vote, vote_table
from distill_lab.stats import answer_value


def _run(root: Path, name: str, answers: dict[str, str | None], tokens: int = 10, split: str = "test",
         category: str = "reasoning", truth: dict[str, str] | None = None) -> str:
    """An eval run whose student answered prompt i with ``answers[i]``; right when its value is the truth."""
    d = root / name
    d.mkdir(parents=True)
    lines = []
    for pid, ans in answers.items():
        ref = (truth or {}).get(pid, pid.removeprefix("p"))
        right = ans is not None and answer_value(ans) == answer_value(ref)  # the verifier reads the value
        lines.append({"model": "student", "prompt_id": pid, "split": split, "category": category,
                      "task": "addition", "kind": "greedy", "sample_index": 0, "extracted": ans, "correct": right,
                      "output_tokens": tokens})
        lines.append({**lines[-1], "model": "teacher", "extracted": ref, "correct": True})  # not a voter
    (d / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return str(d)


def _answers(wrong: set[int], wrong_value: str, n: int = 10, fmt=str) -> dict[str, str | None]:
    return {f"p{i}": (wrong_value if i in wrong else fmt(i)) for i in range(n)}


def test_the_vote_beats_every_member(tmp_path):
    # each member is wrong on 3 different prompts (70 %): two right votes out-vote one wrong on every prompt
    runs = [_run(tmp_path, "a", _answers({0, 1, 2}, "999")),
            _run(tmp_path, "b", _answers({3, 4, 5}, "998")),
            _run(tmp_path, "c", _answers({6, 7, 8}, "997", fmt=lambda i: f"{i:,}.0" if i else "0"), tokens=30)]
    data = build_vote(runs, tmp_path / "out")
    row = next(r for r in data["rows"] if r["split"] == "test" and r["category"] == "all")
    assert row["ensemble"]["mean"] == 1.0 and row["best"] == pytest.approx(0.7)
    assert row["members_mean"] == pytest.approx(0.7) and row["best_member"] == "a"  # the first of equals
    assert row["ensemble_minus_best"]["mean"] == pytest.approx(0.3)
    assert row["ensemble_minus_best"]["ci"][0] > 0  # paired over the same 10 prompts: 3 differ, all one way
    assert row["ensemble"]["ci"][0] < 1.0  # never zero width
    assert row["ties"] == 0 and row["no_answer"] == 0
    assert row["tokens_ensemble"] == 10 * (10 + 10 + 30) and row["tokens_best"] == 100
    md = (tmp_path / "out" / "vote.md").read_text()
    assert "| test | all | 10 | 100.0 [" in md and "500 / 100 (5.0x)" in md and "highest accuracy" in md


def test_a_tie_goes_to_the_more_accurate_member(tmp_path):
    # 2 members disagree only on p0; b is right more often elsewhere (9/10 vs 8/10): b's answer wins the tie
    a = _run(tmp_path, "a", {**_answers({1}, "999"), "p0": "555"})  # wrong on p0 and p1: 8/10
    b = _run(tmp_path, "b", _answers(set(), ""))  # all right
    for order in ([a, b], [b, a]):
        ens = vote([load_member(p) for p in order])
        assert ens[("test", "p0")]["tie"] and ens[("test", "p0")]["value"] == ("number", 0)
        assert ens[("test", "p0")]["correct"] is True
        assert ens[("test", "p1")]["correct"] is True  # the same tie, the same rule
    # equally accurate members: the one listed first wins
    c = _run(tmp_path, "c", _answers({0}, "555"))
    d = _run(tmp_path, "d", _answers({1}, "777"))
    ens = vote([load_member(c), load_member(d)])
    assert ens[("test", "p0")]["value"] == ("number", 555) and not ens[("test", "p0")]["correct"]
    ens = vote([load_member(d), load_member(c)])
    assert ens[("test", "p0")]["correct"]


def test_grouping_by_value_and_unparsed_answers(tmp_path):
    truth = {"p0": "1000"}
    a = _run(tmp_path, "a", {"p0": "1,000"}, truth=truth)
    b = _run(tmp_path, "b", {"p0": "999"}, truth=truth)
    c = _run(tmp_path, "c", {"p0": "1000"}, truth=truth)
    ens = vote([load_member(p) for p in (b, a, c)])
    assert ens[("test", "p0")]["votes"] == 2 and ens[("test", "p0")]["correct"] and not ens[("test", "p0")]["tie"]
    # an answer that could not be extracted does not vote; none at all: the ensemble is wrong there
    n1, n2 = _run(tmp_path, "n1", {"p0": None}, truth=truth), _run(tmp_path, "n2", {"p0": None}, truth=truth)
    ens = vote([load_member(n1), load_member(n2), load_member(b)])
    assert ens[("test", "p0")]["value"] == ("number", 999) and ens[("test", "p0")]["votes"] == 1
    ens = vote([load_member(n1), load_member(n2)])
    assert ens[("test", "p0")]["value"] is None and ens[("test", "p0")]["correct"] is False


def test_seed_members_widen_the_interval_against_the_members_mean(tmp_path):
    runs = [_run(tmp_path, f"s{i}", _answers(set(range(i * 3)), "999", n=20)) for i in range(3)]  # 100, 85, 70 %
    members = [load_member(p) for p in runs]
    over_prompts = next(r for r in vote_table(members) if r["category"] == "all")["ensemble_minus_mean"]
    over_seeds = next(r for r in vote_table(members, seeds=True) if r["category"] == "all")["ensemble_minus_mean"]
    assert over_prompts["mean"] == pytest.approx(over_seeds["mean"])
    assert over_seeds["n_seeds"] == 3 and over_prompts["n_seeds"] == 1
    assert over_seeds["ci"][1] - over_seeds["ci"][0] > over_prompts["ci"][1] - over_prompts["ci"][0]


def test_categories_get_their_own_rows(tmp_path):
    def two_cats(name, wrong):
        d = Path(_run(tmp_path, name, _answers(wrong, "999")))
        rows = [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]
        for r in rows:
            r["category"] = "reasoning" if int(r["prompt_id"][1:]) < 5 else "knowledge"
        (d / "samples.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
        return str(d)

    rows = vote_table([load_member(two_cats(n, w)) for n, w in (("a", {0}), ("b", {0, 6}), ("c", {7}))])
    by = {(r["split"], r["category"]): r for r in rows}
    assert set(by) == {("test", "all"), ("test", "knowledge"), ("test", "reasoning")}
    assert by[("test", "reasoning")]["ensemble"]["mean"] == pytest.approx(0.8)  # p0: two wrong "999"s win
    assert by[("test", "knowledge")]["ensemble"]["mean"] == 1.0


def test_bad_members_are_refused_with_the_folder_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty has no samples.jsonl"):
        load_member(tmp_path / "empty")
    a = _run(tmp_path, "a", {"p0": "0"})
    b = _run(tmp_path, "b", {"p1": "1"})
    with pytest.raises(ConfigError, match="no prompt in common"):
        vote([load_member(a), load_member(b)])
    with pytest.raises(ConfigError, match="at least 2"):
        vote([load_member(a)])


def test_the_report_stage_votes(tmp_path):
    from distill_lab.app import compose_config
    from distill_lab.stages.common import run_stage

    runs = [_run(tmp_path, n, _answers(w, "999")) for n, w in (("a", {0}), ("b", {1}), ("c", {2}))]
    cfg = compose_config([f"report.vote_runs=[{','.join(runs)}]", f"run_dir={tmp_path / 'rep'}"], stage="report")
    res = run_stage("report", cfg, tmp_path / "rep")
    assert res.objective == 1.0 and res.summary["best_member_accuracy"] == pytest.approx(0.9)
    assert (tmp_path / "rep" / "vote.md").is_file()
    with pytest.raises(ConfigError, match="report.vote_runs"):
        compose_config([f"report.vote_runs=[{runs[0]}]"], stage="report")
    with pytest.raises(ConfigError, match="report.vote_over"):
        compose_config(["report.vote_over=effort", "report.sweep_dir=x"], stage="report")
    with pytest.raises(ConfigError, match="report.vote_over"):
        compose_config(["report.vote_over=seed"], stage="report")  # no sweep to vote across
    with pytest.raises(ConfigError, match="report.vote_seeds"):
        compose_config(["report.vote_seeds=true"], stage="report")


def test_the_sweep_report_votes_across_each_cells_seeds(tmp_path):
    from distill_lab.stages.report.sweep import write_report
    from tests.test_report_contrasts import _sweep

    res = write_report(_sweep(tmp_path), tmp_path / "out", vote_over="seed")
    votes = json.loads(Path(res["artifacts"]["sweep_json"]).read_text())["votes"]
    assert len(votes) == 4 and all(v["members"] == ["seed 0", "seed 1"] for v in votes)
    row = next(r for r in votes[0]["rows"] if r["category"] == "all")
    assert row["n_members"] == 2 and row["ensemble_minus_mean"]["n_seeds"] == 2
    assert row["no_answer"] == row["prompts"] == 40  # these fixture samples carry no extracted answer: no votes
    md = Path(res["artifacts"]["sweep_md"]).read_text()
    assert "## Voting across seeds (report.vote_over=seed)" in md and "`seed 0`, `seed 1`" in md
    assert "votes" not in json.loads(Path(write_report(_sweep(tmp_path / "b"), tmp_path / "out2")["artifacts"]
                                          ["sweep_json"]).read_text())


def test_the_member_chosen_on_the_other_split_undoes_in_sample_selection(tmp_path):
    """``lucky`` is best on test by luck (8/10 there, 3/10 on ood); ``steady`` is better on ood (7/10). In-sample,
    ensemble - best compares with lucky on test; the held-out variant picks steady on ood and compares on test
    (and picks lucky on test to compare on ood), so it is not biased towards the member that got lucky."""
    from distill_lab.stages.report.vote import Member, vote_markdown

    right = {"lucky": {"test": range(0, 8), "ood": range(0, 3)}, "steady": {"test": range(0, 6), "ood": range(0, 7)},
             "other": {"test": [0, 1, 2, 3, 8, 9], "ood": range(0, 6)}}
    members = []
    for name, sets in right.items():
        m = Member(name, str(tmp_path / name))
        for split, ok in sets.items():
            for i in range(10):
                m.answers[(split, f"{split}{i}")] = {"value": ("number", i) if i in ok else ("text", f"{name}-wrong"),
                                                     "correct": i in ok, "category": "reasoning", "tokens": 5}
        members.append(m)
    ens = vote(members)
    rows = {r["split"]: r for r in vote_table(members) if r["category"] == "all"}
    for split, best, chosen, chosen_acc in (("test", "lucky", "steady", 0.6), ("ood", "steady", "lucky", 0.3)):
        r = rows[split]
        ens_acc = np.mean([e["correct"] for k, e in ens.items() if k[0] == split])
        assert r["best_member"] == best and r["chosen_elsewhere"] == chosen
        assert r["chosen_on"] == [{"test": "ood", "ood": "test"}[split]]
        assert r["chosen_elsewhere_accuracy"] == pytest.approx(chosen_acc)
        assert r["ensemble_minus_chosen_elsewhere"]["mean"] == pytest.approx(ens_acc - chosen_acc)
        assert r["ensemble_minus_chosen_elsewhere"]["mean"] > r["ensemble_minus_best"]["mean"]
    md = "\n".join(vote_markdown(list(rows.values()), [m.name for m in members]))
    assert "| member chosen on the other split | ensemble − it (pt) |" in md
    assert "steady (on ood; 60.0 here)" in md and "Selection bias" in md and "favours the best member" in md
    one = [Member(m.name, m.path, {k: v for k, v in m.answers.items() if k[0] == "test"}) for m in members]
    r1 = next(r for r in vote_table(one) if r["category"] == "all")
    assert r1["chosen_elsewhere"] is None and r1["ensemble_minus_chosen_elsewhere"] is None
