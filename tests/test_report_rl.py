"""SFT and SFT+RL in the reports: a pipeline sweep whose jobs have ``eval/`` and ``eval_rl/`` (as
``pipeline rl.enabled=true`` writes them) -> the sweep report's SFT+RL arm and its paired contrast with SFT,
recomputed here from the samples; the packed evidence round trip; the single-run report's side-by-side;
voting over SFT and SFT+RL students (``report.vote_over=stage`` and ``report.vote_runs``)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from distill_lab.stages.evaluate.config import EvalConfig
from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.stages.evaluate.run import assemble_metrics, make_record, teacher_records, write_outputs
from distill_lab.stages.report.contrasts import N_BOOT
from distill_lab.stages.report.samples import pack_evidence
from distill_lab.stages.report.sweep import write_report
from distill_lab.stats import two_level_interval
from tests.test_sweep import _config, _dataset, _overrides

N = 10  # prompts per split
# (effort, seed) -> prompts (of p0..p9) each model gets right on test; ood: the SFT student's set shifted
SFT = {("low", 0): range(0, 4), ("low", 1): range(0, 5), ("high", 0): range(0, 7), ("high", 1): range(0, 6)}
RL = {("low", 0): range(0, 6), ("low", 1): [0, 1, 2, 3, 4, 7], ("high", 0): range(0, 7), ("high", 1): range(0, 8)}
BASE = range(0, 2)


def _prompt(i: int, split: str) -> EvalPrompt:
    a, b = 100 + i + (50 if split == "ood" else 0), 200 + i
    return EvalPrompt(f"{split}{i}", "addition", "reasoning" if i < 5 else "edge_case", split,
                      [{"role": "user", "content": f"What is {a} + {b}?"}], str(a + b),
                      [f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is {a + b}."])


def _eval_run(d: Path, ds: Path, seed: int, student: dict[str, list[int]], base: dict[str, list[int]]) -> None:
    """An eval run written by the eval stage's own record and metrics writers: the student right on
    ``student[split]`` (wrong ones all answer 999: one shared wrong value), the base on ``base[split]``."""
    ps = [_prompt(i, s) for s in ("test", "ood") for i in range(N)]
    records = teacher_records(ps, seed=seed)
    for p in ps:
        i = int(p.prompt_id.removeprefix(p.split))
        for model, right, wrong in (("student", student, "999"), ("base", base, "998")):
            ans = p.reference if i in right[p.split] else wrong
            records.append(make_record(model, p, "greedy", 0, f"<think>\nadding\n</think>\n\nThe answer is {ans}.",
                                       n_tokens=10 + i, runaway=False, seed=seed))
    m = assemble_metrics(records, EvalConfig(dataset_dir=str(ds), adapter_dir=str(d.parent / "adapter"), bootstrap=100),
                         student="tiny", eval_config={"max_new_tokens": 64, "n_samples": 1, "confidence": 0.95})
    write_outputs(d, m, records)


def make_sweep(root: Path) -> Path:
    """Efforts low/high x seeds 0/1, size 50; each job with eval/ (SFT student, base, teacher) and eval_rl/ (the
    RL'd student; its base deliberately all wrong, to show the report reads the base from eval/ only)."""
    sweep = root / "multirun"
    for j, (effort, seed) in enumerate(SFT):
        job = sweep / str(j)
        _overrides(job, ["stage=pipeline", f"teacher.effort={effort}", "recipe.size=50", f"seed={seed}",
                         "rl.enabled=true"])
        ds = job / "generate" / "dataset"
        _dataset(ds, effort, 50, {"train": 50, "test": N, "ood": N}, 0.0)
        both = {s: list(BASE) for s in ("test", "ood")}
        _eval_run(job / "eval", ds, seed, {s: list(SFT[(effort, seed)]) for s in ("test", "ood")}, both)
        _eval_run(job / "eval_rl", ds, seed, {s: list(RL[(effort, seed)]) for s in ("test", "ood")},
                  {"test": [], "ood": []})
        (job / "manifest.json").write_text(json.dumps({"stage": "pipeline", "config": _config(effort, 50, seed),
                                                       "timings_s": {"total": 1.0}, "summary": {}}))
    return sweep


def _arm(effort: str, table: dict) -> np.ndarray:
    return np.array([[float(i in table[(effort, s)]) for i in range(N)] for s in (0, 1)])


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path / "src")


def test_the_sweep_report_has_an_sft_rl_arm_and_its_paired_contrast(sweep, tmp_path):
    res = write_report(sweep, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    cells = {c["effort"]: c for c in data["cells"]}
    # from the samples: low SFT 4/10, 5/10; SFT+RL 6/10, 6/10; base 2/10 from eval/ (eval_rl's base is all wrong)
    assert cells["low"]["student_test_accuracy"]["mean"] == pytest.approx(0.45)
    assert cells["low"]["student_rl_test_accuracy"]["mean"] == pytest.approx(0.6)
    assert cells["high"]["student_rl_test_accuracy"]["mean"] == pytest.approx(0.75)
    assert cells["low"]["base_test_accuracy"]["mean"] == pytest.approx(0.2)
    # the interval is the project's over seeds and prompts, on the RL'd students' own [seed, prompt] table
    want = two_level_interval([_arm("low", RL)], "mean")
    assert cells["low"]["student_rl_test_accuracy"]["ci"] == pytest.approx(want["ci"])
    assert cells["low"]["student_rl_ood_accuracy"]["mean"] == pytest.approx(0.6)  # ood: the same sets
    runs = {(r["effort"], r["seed"]): r for r in data["runs"]}
    assert runs[("low", 1)]["accuracy"]["student_rl"]["test"] == pytest.approx(0.6)

    # SFT+RL - SFT, paired on seeds and prompts: low (0.6 - 0.4 + 0.6 - 0.5) / 2 = +0.15, by hand
    rl = {(c["within"], c["split"]): c for c in data["contrasts"] if c["kind"] == "rl"}
    low = rl[("tiny, low, 50", "test")]
    assert low["mean"] == pytest.approx(0.15) and low["n_seeds"] == 2 and low["n_prompts"] == [N, N]
    hand = two_level_interval([_arm("low", RL), _arm("low", SFT)], "diff", paired_seeds=True, paired_prompts=True,
                              n_resamples=N_BOOT, seed=0)
    assert low["ci"] == pytest.approx(hand["ci"])
    assert rl[("tiny, high, 50", "test")]["mean"] == pytest.approx((0.0 + 0.2) / 2)
    assert rl[("all cells", "test")]["mean"] == pytest.approx((0.2 + 0.1 + 0.0 + 0.2) / 4)

    md = (tmp_path / "out" / "sweep.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| effort | size |"))
    assert "| SFT test % | SFT OOD % | SFT+RL test % | SFT+RL OOD % | base test % |" in header
    row = next(line for line in md if line.startswith("| low | 50 |"))
    cells_md = [c.strip() for c in row.split("|")[1:-1]]
    assert cells_md[3].startswith("45.0 [") and cells_md[5].startswith("60.0 [") and cells_md[7].startswith("20.0 [")
    assert any(line.startswith("| rl | SFT+RL - SFT | tiny, low, 50 | test | +15.0 |") for line in md)
    # per category too: low, reasoning (p0-p4): SFT+RL 5/5 and 5/5 = 100 %, edge cases (p5-p9) 1/5 and 1/5 = 20 %
    assert cells["low"]["categories"]["test/edge_case"]["student_rl"]["mean"] == pytest.approx(0.2)
    cat = next(line for line in md if line.startswith("| low | 50 | test | edge_case |"))
    assert [c.strip() for c in cat.split("|")[1:-1]][6].startswith("20.0 [")
    assert "| base % | SFT % | SFT+RL % | teacher % |" in next(line for line in md if "| category |" in line)
    assert "accuracy_plot" in res["artifacts"]


def _truncate_rl(sweep: Path, effort: str, prompts: set[str]) -> None:
    """Mark the SFT+RL student's outputs on ``prompts`` (all wrong already) truncated in the ``effort`` jobs."""
    for job in (p for p in sweep.iterdir() if p.is_dir()):
        if f"teacher.effort={effort}" not in (job / ".hydra" / "overrides.yaml").read_text():
            continue
        f = job / "eval_rl" / "samples.jsonl"
        recs = [json.loads(x) for x in f.read_text().splitlines()]
        for r in recs:
            if r["model"] == "student" and r["prompt_id"] in prompts:
                r.update(truncated=True, outcome="truncated")
        f.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_the_sweep_report_shows_the_sft_rl_retention_and_shares_beside_the_sft_ones(sweep, tmp_path):
    _truncate_rl(sweep, "low", {"test8", "test9"})  # wrong for both low seeds' SFT+RL students
    write_report(sweep, tmp_path / "out")
    cells = {c["effort"]: c for c in json.loads((tmp_path / "out" / "sweep.json").read_text())["cells"]}
    low = cells["low"]
    teacher = np.ones((2, N))
    assert low["student_rl_retention_test"]["mean"] == pytest.approx(0.6)  # 0.6 / 1.0
    assert low["student_rl_retention_test"]["ci"] == pytest.approx(two_level_interval([_arm("low", RL), teacher],
                                                                                      "ratio")["ci"])
    assert low["student_rl_test_truncated"]["mean"] == pytest.approx(4 / 20) and low["student_test_truncated"]["mean"] == 0
    md = (tmp_path / "out" / "sweep.md").read_text().splitlines()
    header = [c.strip() for c in next(line for line in md if line.startswith("| effort | size |")).split("|")[1:-1]]
    row = dict(zip(header, [c.strip() for c in next(line for line in md if line.startswith("| low | 50 |")).split("|")[1:-1]],
                   strict=True))
    assert row["SFT retention test %"].startswith("45.0 [") and row["SFT+RL retention test %"].startswith("60.0 [")
    assert row["SFT truncated test %"] == "0.0" and row["SFT+RL truncated test %"] == "20.0"
    assert row["SFT+RL truncated OOD %"] == "0.0" and row["SFT+RL unclosed think test %"] == "0.0"
    assert header.index("SFT+RL retention test %") == header.index("SFT retention OOD %") + 1
    assert not any("the truncation shares are the SFT student's" in line for line in md)


def test_the_wandb_tables_carry_the_sft_rl_arm(sweep, tmp_path, monkeypatch):
    """The W&B Report's cells and runs tables (``wandb_report.sweep_tables``) and the report run's
    ``sweep/summary`` table, as logged offline, carry SFT+RL columns; a sweep without RL has none."""
    from distill_lab.stages.report.sweep import run_report
    from distill_lab.stages.report.wandb_report import sweep_tables
    from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table
    from tests.conftest import compose_config

    _truncate_rl(sweep, "low", {"test8", "test9"})
    tables = sweep_tables(write_report(sweep, tmp_path / "out"))
    cols, cells = tables["sweep/cells"]
    low = dict(zip(cols, next(c for c in cells if c[0] == "low"), strict=True))
    assert low["student_rl_test_accuracy"] == pytest.approx(0.6) and low["student_rl_ood_accuracy"] == pytest.approx(0.6)
    want = two_level_interval([_arm("low", RL)], "mean")["ci"]
    assert [low["student_rl_test_accuracy_lo"], low["student_rl_test_accuracy_hi"]] == pytest.approx(want)
    assert low["retention_test"] == pytest.approx(0.45) and low["student_rl_retention_test"] == pytest.approx(0.6)
    assert low["student_rl_test_truncated"] == pytest.approx(0.2) and low["student_test_truncated"] == 0
    rcols, rrows = tables["sweep/runs"]
    assert rcols[rcols.index("student_ood_accuracy") + 1:][:2] == ["student_rl_test_accuracy", "student_rl_ood_accuracy"]
    assert sorted(dict(zip(rcols, r, strict=True))["student_rl_test_accuracy"] for r in rrows) == pytest.approx(
        [0.6, 0.6, 0.7, 0.8])

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "report"
    cfg = compose_config(["student=tiny", "logger=wandb", f"report.sweep_dir={sweep}", f"run_dir={run_dir}"],
                         stage="report")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        run_report(cfg, run_dir)
    (rr,) = [read_run(f) for f in find_runs(run_dir)]
    table = read_table(rr, "sweep/summary")
    low = dict(zip(table["columns"], next(r for r in table["data"] if r[0] == "low"), strict=True))
    assert low["student_rl_test"] == pytest.approx(0.6) and low["student_rl_retention_test"] == pytest.approx(0.6)
    assert low["student_test"] == pytest.approx(0.45)
    for job in (p for p in sweep.iterdir() if p.is_dir()):  # the same sweep without its RL runs: no such columns
        shutil.rmtree(job / "eval_rl")
    plain = sweep_tables(write_report(sweep, tmp_path / "plain"))
    assert not [c for key in ("sweep/cells", "sweep/runs") for c in plain[key][0] if "student_rl" in c]


def test_the_plot_draws_the_sft_rl_line(sweep, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distill_lab.stages.report.sweep_plots import plot
    from distill_lab.stages.report.sweep_runs import collect
    from distill_lab.stages.report.sweep_stats import aggregate

    rows = aggregate(collect(sweep))
    saved = {}
    real = plt.Figure.savefig

    def grab(fig, *a, **k):  # the figure's lines as drawn
        saved["labels"] = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
        saved["ys"] = {ln.get_label(): list(ln.get_ydata()) for ax in fig.axes[:1] for ln in ax.get_lines()
                       if not ln.get_label().startswith("_")}
        return real(fig, *a, **k)

    plt.Figure.savefig = grab
    try:
        assert plot(rows, "student", "acc", tmp_path / "a.png", "t") is not None
    finally:
        plt.Figure.savefig = real
    assert "effort=low, SFT" in saved["labels"] and "effort=low, SFT+RL" in saved["labels"]


def test_packed_evidence_carries_the_rl_samples_and_rebuilds_the_same_report(sweep, tmp_path):
    write_report(sweep, tmp_path / "from_folder", vote_over="stage")
    packed = tmp_path / "study" / "samples.jsonl.gz"
    info = pack_evidence(sweep, packed)
    lines = {sub: sum(len((sweep / str(j) / sub / "samples.jsonl").read_text().splitlines()) for j in range(4))
             for sub in ("eval", "eval_rl")}
    assert info["samples"] == lines["eval"] + lines["eval_rl"] and lines["eval_rl"] > 0  # every record of both
    with gzip.open(packed, "rt") as f:
        run_lines = [json.loads(x) for x in f if '"type": "run"' in x]
    assert {(r["run"], r["path"]) for r in run_lines} >= {("0", "0/eval"), ("0/eval_rl", "0/eval_rl")}
    shutil.move(str(sweep), str(tmp_path / "gone"))  # the pack alone
    write_report(packed, tmp_path / "from_pack", vote_over="stage")
    a = json.loads((tmp_path / "from_folder" / "sweep.json").read_text())
    b = json.loads((tmp_path / "from_pack" / "sweep.json").read_text())
    assert a["cells"] == b["cells"] and a["contrasts"] == b["contrasts"] and a["votes"] == b["votes"]
    assert b["cells"][0]["student_rl_test_accuracy"]["mean"] == pytest.approx(0.6)
    assert any(c["kind"] == "rl" for c in b["contrasts"])
    md_a = (tmp_path / "from_folder" / "sweep.md").read_text().splitlines()[1:]
    md_b = (tmp_path / "from_pack" / "sweep.md").read_text().splitlines()[1:]
    assert md_a == md_b


def test_vote_over_stage_lets_sft_and_sft_rl_students_vote(sweep, tmp_path):
    write_report(sweep, tmp_path / "out", vote_over="stage")
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    low = next(v for v in data["votes"] if v["cell"].startswith("low"))
    assert low["members"] == ["SFT, seed 0", "SFT+RL, seed 0", "SFT, seed 1", "SFT+RL, seed 1"]
    row = next(r for r in low["rows"] if r["split"] == "test" and r["category"] == "all")
    # per prompt, right answers against the one shared wrong "999": p0-p3 4:0, p4 3:1, p5 1:3, p6 0:4, p7 1:3
    assert row["ensemble"]["mean"] == pytest.approx(0.5)
    assert row["best_member"] == "SFT+RL, seed 0" and row["best"] == pytest.approx(0.6)
    assert row["members_mean"] == pytest.approx((0.4 + 0.6 + 0.5 + 0.6) / 4)
    assert row["ensemble_minus_best"]["mean"] == pytest.approx(-0.1)
    assert row["tokens_ensemble"] == 4 * sum(10 + i for i in range(N))
    md = (tmp_path / "out" / "sweep.md").read_text()
    assert "## Voting across SFT and SFT+RL (report.vote_over=stage)" in md

    # outside a sweep: the two students of one job as vote_runs
    from distill_lab.stages.report.vote import build_vote

    job = sweep / "0"
    out = build_vote([str(job / "eval"), str(job / "eval_rl")], tmp_path / "v")
    assert [m["name"] for m in out["members"]] == ["eval", "eval_rl"]
    top = next(r for r in out["rows"] if r["split"] == "test" and r["category"] == "all")
    assert top["member_accuracy"] == {"eval": pytest.approx(0.4), "eval_rl": pytest.approx(0.6)}


def test_vote_over_stage_is_a_config_value(tmp_path):
    from distill_lab.app import compose_config
    from distill_lab.errors import ConfigError

    cfg = compose_config(["report.vote_over=stage", f"report.sweep_dir={tmp_path}"], stage="report")
    assert cfg.report.vote_over == "stage"
    with pytest.raises(ConfigError, match="must be null, seed or stage"):
        compose_config(["report.vote_over=stages", f"report.sweep_dir={tmp_path}"], stage="report")


def test_the_single_report_puts_sft_sft_rl_and_base_side_by_side(sweep, tmp_path):
    from distill_lab.stages.report.single import build_report

    job = sweep / "0"  # low, seed 0: base 2/10, SFT 4/10, SFT+RL 6/10, teacher 10/10 on test
    rep = build_report([str(job / "eval"), str(job / "eval_rl")], tmp_path / "rep", plots=False)
    (side,) = rep["sft_vs_rl"]
    rows = {(r["split"], r["category"]): r for r in side["rows"]}
    top = rows[("test", "all")]
    assert [top[m]["mean"] for m in ("base", "student", "student_rl", "teacher")] == pytest.approx([0.2, 0.4, 0.6, 1.0])
    assert top["rl_minus_sft"]["mean"] == pytest.approx(0.2) and top["rl_minus_sft"]["n"] == N
    hand = two_level_interval([np.array([[float(i < 6) for i in range(N)]]), np.array([[float(i < 4) for i in range(N)]])],
                              "diff")
    assert top["rl_minus_sft"]["ci"] == pytest.approx(hand["ci"])
    assert top["rl_minus_base"]["mean"] == pytest.approx(0.4)
    # per category: reasoning p0-p4 (SFT 4/5, SFT+RL 5/5), edge_case p5-p9 (0/5, 1/5)
    assert rows[("test", "reasoning")]["rl_minus_sft"]["mean"] == pytest.approx(0.2)
    assert rows[("test", "edge_case")]["student_rl"]["mean"] == pytest.approx(0.2)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## SFT, SFT+RL and base side by side" in md
    assert "| test | all | 10 | 20.0 [" in md and "| +20.0 [" in md
    assert md.index("side by side") < md.index("## eval\n") < md.index("## eval_rl\n")
    # the SFT eval alone finds its eval_rl beside it; an eval without one gets no such section
    assert build_report([str(job / "eval")], tmp_path / "r2", plots=False)["sft_vs_rl"]
    (job / "eval_rl" / "samples.jsonl").unlink()
    assert build_report([str(job / "eval")], tmp_path / "r3", plots=False)["sft_vs_rl"] == []
