"""Per-sample evidence in the sweep report (stages/report/samples.py): cells computed from the runs'
samples.jsonl, truncation shares in the tables, 'not recoverable' where samples are missing, the red flag
for budgets below the teacher, and the packed evidence the report regenerates from alone."""

from __future__ import annotations

import json
import shutil

import pytest

from distill_lab.stages.common import run_stage
from distill_lab.stages.report.samples import greedy_shares, load_sweep_samples, pack_evidence
from distill_lab.stages.report.sweep import SweepError, write_report
from tests.conftest import compose_config
from tests.test_sweep import fabricate_pipeline_sweep

N = 10  # prompts per split in the fabricated samples


def _samples(job, seed: int, right: int, cut: int, unclosed: int) -> None:
    """Student greedy records per split: ``right`` correct, then ``cut`` truncated, then ``unclosed`` with an
    unclosed think block (and never closed: also not truncated), the rest plainly wrong; the teacher right."""
    recs = []
    for split in ("test", "ood"):
        for i in range(N):
            trunc = right <= i < right + cut
            unc = right + cut <= i < right + cut + unclosed
            recs.append({"model": "student", "seed": seed, "prompt_id": f"{split}{i}", "split": split, "kind": "greedy",
                         "task": "addition", "category": "reasoning", "prompt": f"What is {i} + 1?",
                         "output": "x", "correct": i < right, "truncated": trunc, "unclosed_thinking": trunc or unc,
                         "extracted": None if trunc else str(i + 1)})
            recs.append({"model": "teacher", "prompt_id": f"{split}{i}", "split": split, "kind": "greedy",
                         "task": "addition", "category": "reasoning", "prompt": f"What is {i} + 1?", "output": "y",
                         "correct": True, "runaway": False, "think_unclosed": False})  # an older record's fields
    (job / "eval" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _jobs(sweep):
    out = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        items = dict(line[2:].split("=", 1) for line in (job / ".hydra" / "overrides.yaml").read_text().splitlines())
        out[job] = (items["teacher.effort"], int(items["recipe.size"]), int(items["seed"]))
    return out


@pytest.fixture
def sweep(tmp_path):
    """12 runs (effort low/high x size 100/300 x seeds 0-2); samples with a known number right and cut per run
    (deliberately not what metrics.json says); the cell (high, 300) has no samples."""
    sw = fabricate_pipeline_sweep(tmp_path / "src")
    for job, (effort, size, seed) in _jobs(sw).items():
        if (effort, size) == ("high", 300):
            continue
        _samples(job, seed, right=2 + seed, cut=3 if effort == "high" else 0, unclosed=1)
    return sw


def test_cells_are_computed_from_the_samples_with_truncation_shares(sweep, tmp_path):
    write_report(sweep, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "sweep.json").read_text())
    cells = {(c["effort"], c["size"]): c for c in data["cells"]}
    # accuracy from the samples (seeds 0-2: 2, 3, 4 of 10 right), not metrics.json's fabricated value
    assert cells[("low", 100)]["student_test_accuracy"]["mean"] == pytest.approx(0.3)
    # pooled over the cell's 3 runs x 10 outputs: 9 cut of 30; unclosed thinking: the cut ones and one more each
    assert cells[("high", 100)]["student_test_truncated"]["mean"] == pytest.approx(9 / 30)
    assert cells[("high", 100)]["student_ood_unclosed_thinking"]["mean"] == pytest.approx(12 / 30)
    assert cells[("low", 300)]["student_test_truncated"]["mean"] == 0.0
    assert cells[("high", 300)]["samples"] == "0/3" and "student_test_truncated" not in cells[("high", 300)]
    md = (tmp_path / "out" / "sweep.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| effort | size |"))
    assert "truncated test %" in header and "unclosed think OOD %" in header
    row = next(line for line in md.splitlines() if line.startswith("| high | 100 |"))
    assert "| 30.0 | 30.0 | 40.0 | 40.0 | 3/3 |" in row
    # retention from the samples too (teacher 100 %: a Wilson interval where every seed agrees, never zero-width)
    assert "| 100.0 [72.2, 100.0] | 30.0 [2.6, 65.3] |" in row
    missing = next(line for line in md.splitlines() if line.startswith("| high | 300 |"))
    assert missing.count("not recoverable") == 4 and "0/3" in missing
    assert "Budgets not checked against the teacher" in md  # fabricated runs carry no budgets


def test_greedy_shares_and_older_records():
    recs = [{"model": "student", "split": "test", "kind": "greedy", "correct": False, "runaway": True},
            {"model": "student", "split": "test", "kind": "greedy", "correct": True, "think_unclosed": False},
            {"model": "student", "split": "test", "kind": "sample", "correct": False, "runaway": True},
            {"model": "student", "split": "test", "kind": "greedy", "correct": False, "think_unclosed": True}]
    sh = greedy_shares(recs, "student", "test")
    assert (sh["n"], sh["correct"], sh["truncated_n"], sh["unclosed_thinking_n"]) == (3, 1, 1, 1)
    assert sh["outcomes"] == {"truncated": 1, "correct": 1, "unclosed_thinking": 1}
    assert greedy_shares(recs, "base") is None


def test_budget_below_the_teacher_is_flagged_in_red_in_the_table_and_the_plot(sweep, tmp_path):
    import matplotlib.image as mpimg

    def red_pixels(png):
        img = mpimg.imread(png)
        return int(((img[..., 0] > 0.9) & (img[..., 1] < 0.2) & (img[..., 2] < 0.2)).sum())

    write_report(sweep, tmp_path / "plain")
    for job, (effort, size, _seed) in _jobs(sweep).items():
        m = json.loads((job / "eval" / "metrics.json").read_text())
        cut = effort == "high" and size == 100
        m["budgets"] = {s: {"max_new_tokens": 176 if cut else 237, "teacher_longest": 189, "source": "explicit",
                            "below_teacher": cut and s == "ood", "teacher_cut_share": 0.575 if cut and s == "ood" else 0}
                        for s in ("test", "ood")}
        m["truncation_allowed"] = cut
        (job / "eval" / "metrics.json").write_text(json.dumps(m))
    write_report(sweep, tmp_path / "flagged")
    md = (tmp_path / "flagged" / "sweep.md").read_text()
    assert "🔴 **Truncation allowed: a budget below the teacher's own answers.** effort high, size 100: ood" in md
    assert any(line.startswith("| 🔴 high | 100 |") for line in md.splitlines())
    assert not any(line.startswith("| 🔴 low") for line in md.splitlines())
    assert "Budgets not checked" not in md
    assert red_pixels(tmp_path / "plain" / "accuracy_vs_size.png") == 0
    assert red_pixels(tmp_path / "flagged" / "accuracy_vs_size.png") > 50


def test_a_split_flagged_because_the_teachers_api_cut_its_answers_has_its_own_line(sweep, tmp_path):
    """budgets carry ``teacher_truncated`` (students/budget.py): a split flagged because the teacher's API cut
    some of its answers, with a budget not below the teacher's longest, is not called a budget below them."""
    for job, (effort, size, _seed) in _jobs(sweep).items():
        m = json.loads((job / "eval" / "metrics.json").read_text())
        api, low = (effort, size) == ("low", 100), (effort, size) == ("high", 100)
        m["budgets"] = {s: {"max_new_tokens": 176 if low else 237, "teacher_longest": 189, "source": "auto",
                            "below_teacher": (api and s == "test") or (low and s == "ood"),
                            "teacher_cut_share": 0.5 if low and s == "ood" else 0.0,
                            "teacher_truncated": 2 if api and s == "test" else 0} for s in ("test", "ood")}
        m["truncation_allowed"] = api or low
        (job / "eval" / "metrics.json").write_text(json.dumps(m))
    write_report(sweep, tmp_path / "out")
    md = (tmp_path / "out" / "sweep.md").read_text()
    below = next(line for line in md.splitlines() if "a budget below the teacher's own answers" in line)
    assert "effort high, size 100: ood" in below and "effort low" not in below
    api = next(line for line in md.splitlines() if "the teacher's API cut some of its own answers" in line)
    assert api.startswith("🔴 ") and "effort low, size 100: test" in api and "effort high" not in api
    assert "higher teacher.max_tokens" in api
    cells = {(c["effort"], c["size"]): c for c in json.loads((tmp_path / "out" / "sweep.json").read_text())["cells"]}
    assert cells[("low", 100)]["budget_api_cut"] == ["test"] and cells[("low", 100)]["budget_below"] == []
    assert any(line.startswith("| 🔴 low | 100 |") for line in md.splitlines())  # the row is still flagged


def test_packed_evidence_regenerates_the_report_alone(sweep, tmp_path):
    (sweep.parent / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params: {}\n")
    for job in _jobs(sweep):  # the dataset path as the eval stage records it: inside the sweep folder
        m = json.loads((job / "eval" / "metrics.json").read_text())
        m["dataset_dir"] = str(job / "generate" / "dataset")
        (job / "eval" / "metrics.json").write_text(json.dumps(m))
    from distill_lab.stages.report.grid import record_launch

    # the grid's launch record travels too: the regenerated report expects the same jobs
    record_launch(sweep, "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", {"seed": "0,1,2"},
                  ["teacher.effort=low,medium,high", "recipe.size=20"])
    write_report(sweep, tmp_path / "from_folder")
    assert "of the grid (1 launch recorded in launches/)" in (tmp_path / "from_folder" / "sweep.md").read_text()
    cfg = compose_config([f"report.sweep_dir={sweep}", f"report.pack_evidence={tmp_path / 'study' / 'samples.jsonl.gz'}",
                          f"report.output_dir={tmp_path / 'cli'}"], stage="report")
    res = run_stage("report", cfg, tmp_path / "rep")
    packed = tmp_path / "study" / "samples.jsonl.gz"
    assert res.artifacts["evidence"] == str(packed) and res.summary["evidence_bytes"] == packed.stat().st_size
    before = load_sweep_samples(sweep)
    shutil.move(str(sweep), str(tmp_path / "gone"))  # the sweep folder is no longer there: the pack alone
    write_report(packed, tmp_path / "from_pack")
    a = json.loads((tmp_path / "from_folder" / "sweep.json").read_text())
    b = json.loads((tmp_path / "from_pack" / "sweep.json").read_text())
    assert b["sweep_dir"] == str(packed)
    assert a["cells"] == b["cells"]  # effort and size read from the packed dataset.json files, samples restored
    md_a = (tmp_path / "from_folder" / "sweep.md").read_text().splitlines()[1:]
    md_b = (tmp_path / "from_pack" / "sweep.md").read_text().splitlines()[1:]
    assert md_a == md_b
    after = load_sweep_samples(packed)
    assert after.keys() == before.keys() and len(after) == 9
    assert all(after[k].records == before[k].records and after[k].effort == before[k].effort for k in after)
    # the runs without samples travel with their metrics only; the same evidence packs to the same bytes
    a1 = pack_evidence(tmp_path / "gone", tmp_path / "a1.jsonl.gz")
    pack_evidence(tmp_path / "gone", tmp_path / "a2.jsonl.gz")
    assert a1["samples"] == 9 * 40 and a1["runs_without_samples"] == ["9", "10", "11"]
    assert (tmp_path / "a1.jsonl.gz").read_bytes() == (tmp_path / "a2.jsonl.gz").read_bytes()


def test_bad_packed_files_are_named(tmp_path):
    with pytest.raises(SweepError, match="no such packed evidence file"):
        write_report(tmp_path / "none.jsonl.gz", tmp_path / "o")
    bad = tmp_path / "bad.jsonl.gz"
    import gzip

    with gzip.open(bad, "wt") as f:
        f.write('{"type": "file", "path": "../../etc/x", "text": ""}\n')
    with pytest.raises(SweepError, match="no header line"):
        write_report(bad, tmp_path / "o")
    with gzip.open(bad, "wt") as f:
        f.write('{"type": "evidence", "version": 1}\n{"type": "file", "path": "../../etc/x", "text": ""}\n')
    with pytest.raises(SweepError, match="a packed path leaves the folder: '../../etc/x'"):
        write_report(bad, tmp_path / "o")
    for body, needle in (('{"type": "sample", "run": "j1", "record": {}}', r":2: a sample of run 'j1', whose 'run'"),
                         ('{"type": "file", "text": ""}', r":2: a 'file' line needs string fields path, text"),
                         ('{"type": "samples"}', r":2: unknown line type 'samples'")):
        with gzip.open(bad, "wt") as f:
            f.write('{"type": "evidence", "version": 1}\n' + body + "\n")
        with pytest.raises(SweepError, match=needle):
            write_report(bad, tmp_path / "o")
    assert not (tmp_path / "o" / "sweep.md").exists()


def test_the_family_table_shows_truncated_and_unclosed_thinking_shares():
    from distill_lab.stages.report.families import families_markdown, run_families

    block = {"n": 20, "accuracy": 0.2, "score": 0.2, "format": {"answer_parsed": 0.5},
             "truncated_share": 0.35, "unclosed_thinking_share": 0.4}
    fams = run_families({"student": {"splits": {"ood": {"families": {"addition": block}}}}})
    assert fams["ood/addition"]["student_truncated"] == 0.35
    row = {"families": {k: {w: {"mean": v, "ci": None} for w, v in d.items() if w != "n"} for k, d in fams.items()}}
    md = families_markdown([row], lambda r: "cell")
    assert "| student truncated | student unclosed think |" in md[5]
    assert md[-1].endswith("| 35.0 | 40.0 |")


def test_contrasts_family_figures_and_votes_read_the_pack_as_the_folder(sweep, tmp_path):
    """One reading of samples (report/samples.py) for contrasts, family figures and votes: the packed evidence
    gives each of them exactly what the folder gives."""
    write_report(sweep, tmp_path / "from_folder", vote_over="seed")
    packed = tmp_path / "samples.jsonl.gz"
    pack_evidence(sweep, packed)
    shutil.move(str(sweep), str(tmp_path / "gone"))
    write_report(packed, tmp_path / "from_pack", vote_over="seed")
    a = json.loads((tmp_path / "from_folder" / "sweep.json").read_text())
    b = json.loads((tmp_path / "from_pack" / "sweep.json").read_text())
    assert a["contrasts"] and a["contrasts"] == b["contrasts"]
    assert any(c["kind"] == "effort" for c in a["contrasts"])
    votes = [v for v in a["votes"] if "rows" in v]
    assert len(votes) == 3 and a["votes"] == b["votes"]
    fam = {(c["effort"], c["size"]): c.get("families") for c in a["cells"]}
    # low/100: seeds 0-2 right on 2, 3, 4 of 10: the family figure from the samples, not metrics.json
    assert fam[("low", 100)]["test/addition"]["student_accuracy"]["mean"] == pytest.approx(0.3)
    assert [c.get("families") for c in a["cells"]] == [c.get("families") for c in b["cells"]]


def test_the_readers_share_one_normalisation_and_one_error(tmp_path):
    """Older records (``task`` only, no ``kind``) and newer ones read alike by contrasts, family figures and votes;
    a broken line is named by file and line wherever it is read."""
    from distill_lab.stages.report.samples import answers, family_answers, read_samples, run_answers
    from distill_lab.stages.report.vote import load_member

    old = {"model": "student", "prompt_id": "p1", "split": "test", "category": "reasoning", "task": "addition",
           "correct": True, "extracted": "2", "runaway": False}
    new = {**old, "prompt_id": "p2", "family": "addition", "kind": "greedy", "sample_index": 0, "score": 0.5,
           "correct": False, "extracted": None}
    extra = {**new, "prompt_id": "p2", "kind": "sample", "sample_index": 1, "correct": True}  # not a greedy answer
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (old, new, extra)))
    recs = read_samples(tmp_path / "samples.jsonl")
    assert answers(recs) == {("student", "test", "p1"): ("reasoning", 1.0, 1.0),
                             ("student", "test", "p2"): ("reasoning", 0.0, 0.5)}
    assert run_answers(tmp_path) == answers(recs)
    assert family_answers(recs) == {("student", "test", "addition"): {"p1": (1.0, 1.0, 1.0, None),
                                                                 "p2": (0.0, 0.5, 0.0, None)}}
    m = load_member(tmp_path)
    assert {k: v["correct"] for k, v in m.answers.items()} == {("test", "p1"): True, ("test", "p2"): False}
    with open(tmp_path / "samples.jsonl", "a") as f:
        f.write("{broken\n")
    with pytest.raises(ValueError, match=r"samples\.jsonl:4: not valid JSON"):
        load_member(tmp_path)
    with pytest.raises(ValueError, match=r"samples\.jsonl:4: not valid JSON"):
        run_answers(tmp_path)


def test_the_teachers_rows_travel_in_the_pack_and_price_the_projection(tmp_path):
    """The pack carries each run's dataset rows, so a report rebuilt from it alone recomputes the projected
    teacher cost from the same token counts as the folder's report."""
    from distill_lab.stages.report.samples import unpack_evidence

    sw = fabricate_pipeline_sweep(tmp_path / "sw")
    rows = "".join(json.dumps({"id": f"r{i}", "prompt_id": f"p{i}", "split": "train", "task": "addition",
                               "messages": [{"role": "user", "content": "1 + 2 = ?" * 5},
                                            {"role": "assistant", "content": "3" * (40 + i)}]}) + "\n"
                   for i in range(5))
    for job in sw.iterdir():
        if (job / "generate" / "dataset").is_dir():
            (job / "generate" / "dataset" / "rows.jsonl").write_text(rows)
    pack_evidence(sw, tmp_path / "ev.jsonl.gz")
    back = unpack_evidence(tmp_path / "ev.jsonl.gz", tmp_path / "back")
    restored = sorted(back.rglob("rows.jsonl"))
    assert len(restored) == len(list(sw.rglob("rows.jsonl"))) > 0
    assert all(p.read_text() == rows for p in restored)
    for src, out in ((sw, "a"), (tmp_path / "ev.jsonl.gz", "b")):
        write_report(src, tmp_path / out, price_model="claude-opus-4-7")
    a, b = (json.loads((tmp_path / o / "sweep.json").read_text())["cells"] for o in ("a", "b"))
    assert [c["teacher_usd"] for c in a] == [c["teacher_usd"] for c in b]
    assert all(c["teacher_usd"] > 0 for c in a)
