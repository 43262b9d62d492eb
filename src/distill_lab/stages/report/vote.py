"""Voting across distilled students: eval runs on the same prompts combined by majority vote per prompt.

``distill-lab report report.vote_runs=[runA,runB,runC]`` (eval run folders, or pipeline job folders with an
``eval/`` inside; a pipeline's ``<job>/eval_rl`` is the SFT+RL student of that job) writes ``vote.md`` /
``vote.json``; the sweep report with ``report.vote_over=seed`` adds, per cell, the vote of its seeds'
students, and with ``report.vote_over=stage`` the vote of its runs' SFT and SFT+RL students together (each
run that ran ``rl`` gives two members, its SFT student from ``eval/`` and its SFT+RL one from ``eval_rl/``). Members can differ in anything (seeds, efforts, sizes,
SFT vs SFT+RL) as long as they answered the same held-out prompts; the vote uses the prompts every
member answered.

The vote, per prompt (``stats.majority_vote``, beside the eval's own vote over samples of one student):
each member's greedy answer counts once, grouped by value (``stats.answer_value``: ``"1,234"`` and
``"1234.0"`` are one vote); an answer that could not be extracted does not vote. Ties go to the answer of
the tied member with the highest accuracy of its own on that split (then to the member listed first).
The winning group's verdict is that of its most accurate member (for families that verify more than the
extracted value). No extractable answer from any member: the ensemble is wrong on that prompt.

Reported per split and capability category: the ensemble's accuracy (Wilson), the best single member
and the members' mean, ensemble - best and ensemble - members' mean with paired intervals. The best member is
picked on the same prompts it is compared on (selection bias favouring it), so ensemble - the member chosen on
the other split (most accurate on the other held-out split's prompts: test <-> ood) is reported beside it, also
with a paired interval
(``stats.two_level_interval``: over prompts, the same resample for both sides; with ``vote_seeds`` /
``vote_over=seed`` the members are seeds of one configuration, and ensemble - members' mean also
resamples which seed's student stands for a single run; the ensemble itself is that of these seeds),
and the cost: generated tokens of the ensemble (members x their greedy outputs) beside the best member's.

Reads ``samples.jsonl`` through ``report/samples.py`` (model ``student``, else ``base``; greedy, sample 0).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distill_lab.errors import ConfigError
from distill_lab.stages.report.samples import (
    RL_LABEL,
    RL_MODEL,
    first_greedy,
    rl_samples_path,
    run_records,
    samples_path,
)
from distill_lab.stages.report.sweep_runs import cell_key, cell_label
from distill_lab.stages.report.tables import markdown_table
from distill_lab.stats import answer_value, majority_vote, two_level_interval


@dataclass
class Member:
    name: str
    path: str
    # (split, prompt_id) -> {"value", "correct", "category", "tokens"}
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def load_member(path: str | Path, name: str | None = None, model: str | None = None) -> Member:
    """One voter: the greedy answers of an eval run's student (its base model when it has no student), or of
    ``model`` (``student_rl``: a pipeline job's SFT+RL student, from its ``eval_rl/``)."""
    path = Path(path)
    records = run_records(path)
    if records is None:
        raise ConfigError(f"report.vote_runs: {path} has no samples.jsonl (nor eval/samples.jsonl)")
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in first_greedy(records):
        rows[r.get("model", "student")].append(r)
    if model is None:
        model = "student" if rows.get("student") else "base" if rows.get("base") else None
    if model is None or not rows.get(model):
        raise ConfigError(f"report.vote_runs: {samples_path(path)} holds no greedy "
                          f"{model or 'student (or base)'} answers")
    m = Member(name or path.name, str(path))
    for r in rows[model]:
        m.answers[(r["split"], r["prompt_id"])] = {
            "value": answer_value(r.get("extracted")), "correct": bool(r["correct"]),
            "category": r.get("category") or "", "tokens": r.get("output_tokens")}
    return m


def _names(paths: list[str]) -> list[str]:
    """Short distinct member names: the folder, or the path below the common parent when folders repeat."""
    names = [Path(p).name for p in paths]
    if len(set(names)) == len(names):
        return names
    parts = [Path(p).parts for p in paths]
    k = 0
    while all(len(x) > k + 1 for x in parts) and len({x[k] for x in parts}) == 1:
        k += 1
    return ["/".join(x[k:]) for x in parts]


def vote(members: list[Member]) -> dict[tuple[str, str], dict[str, Any]]:
    """The ensemble's answer per prompt every member answered: value, correct, votes for it, tie."""
    if len(members) < 2:
        raise ConfigError(f"report.vote_runs: a vote needs at least 2 members, got {len(members)}")
    common = set.intersection(*(set(m.answers) for m in members))
    if not common:
        raise ConfigError("report.vote_runs: the members answered no prompt in common: "
                          + ", ".join(m.path for m in members))
    acc = {(i, s): np.mean([m.answers[k]["correct"] for k in common if k[0] == s])
           for i, m in enumerate(members) for s in {k[0] for k in common}}
    out = {}
    for key in sorted(common):
        split = key[0]
        values = [m.answers[key]["value"] for m in members]
        prio = [acc[(i, split)] for i in range(len(members))]
        winner = majority_vote(values, prio)
        counts = defaultdict(int)
        for v in values:
            if v is not None:
                counts[v] += 1
        tie = winner is not None and sum(c == counts[winner] for c in counts.values()) > 1
        if winner is None:
            correct = False
        else:  # the verdict of the most accurate member that gave the winning value
            best = max((i for i, v in enumerate(values) if v == winner), key=lambda i: (prio[i], -i))
            correct = members[best].answers[key]["correct"]
        out[key] = {"value": winner, "correct": correct, "votes": counts.get(winner, 0) if winner else 0,
                    "tie": tie, "category": members[0].answers[key]["category"]}
    return out


def _rows(members: list[Member], ens: dict[tuple[str, str], dict[str, Any]], *, seeds: bool,
          confidence: float) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, e in ens.items():
        groups[(key[0], "all")].append(key)
        groups[(key[0], e["category"])].append(key)
    rows = []
    for (split, cat), keys in sorted(groups.items(), key=lambda kv: (kv[0][0] != "test", kv[0][0],
                                                                      kv[0][1] != "all", kv[0][1])):
        if cat != "all" and len({ens[k]["category"] for k in ens if k[0] == split}) < 2:
            continue  # one category: its row is the split's
        e = np.array([[float(ens[k]["correct"]) for k in keys]])  # [1, prompts]
        c = np.array([[float(m.answers[k]["correct"]) for k in keys] for m in members])  # [members, prompts]
        accs = c.mean(axis=1)
        best = int(np.argmax(accs))  # the first of equally accurate members
        kw = dict(confidence=confidence)
        if seeds:  # a single run is one of these seeds: resample which, and the prompts
            vs_mean = two_level_interval([np.repeat(e, len(members), axis=0), c], "diff", **kw)
        else:
            vs_mean = two_level_interval([e, c.mean(axis=0, keepdims=True)], "diff", **kw)
        # ensemble - best member picks the member on these very prompts (in-sample selection: it favours the
        # best member). The held-out variant picks it on the other split(s) (test <-> ood, every category) and
        # compares on this one; no other split: none.
        elsewhere = [k for k in ens if k[0] != split]
        chosen = held = None
        if elsewhere:
            acc_else = np.array([[float(m.answers[k]["correct"]) for k in elsewhere] for m in members]).mean(axis=1)
            chosen = int(np.argmax(acc_else))  # the first of equally accurate members
            held = two_level_interval([e, c[chosen:chosen + 1]], "diff", **kw)
        tokens = [[m.answers[k]["tokens"] for k in keys] for m in members]
        known = all(t is not None for ts in tokens for t in ts)
        rows.append({
            "split": split, "category": cat, "prompts": len(keys), "n_members": len(members),
            "ensemble": two_level_interval([e], "mean", **kw),
            "best_member": members[best].name, "best": float(accs[best]), "members_mean": float(accs.mean()),
            "member_accuracy": {m.name: float(a) for m, a in zip(members, accs, strict=True)},
            "ensemble_minus_best": two_level_interval([e, c[best:best + 1]], "diff", **kw),
            "ensemble_minus_mean": vs_mean,
            "chosen_elsewhere": members[chosen].name if chosen is not None else None,
            "chosen_on": sorted({k[0] for k in elsewhere}),
            "chosen_elsewhere_accuracy": float(accs[chosen]) if chosen is not None else None,
            "ensemble_minus_chosen_elsewhere": held,
            "ties": sum(ens[k]["tie"] for k in keys), "no_answer": sum(ens[k]["value"] is None for k in keys),
            "tokens_ensemble": int(sum(sum(ts) for ts in tokens)) if known else None,
            "tokens_best": int(sum(tokens[best])) if known else None})
    return rows


def vote_table(members: list[Member], *, seeds: bool = False, confidence: float = 0.95) -> list[dict[str, Any]]:
    """The vote of ``members`` and its rows per split and category (see the module docstring)."""
    return _rows(members, vote(members), seeds=seeds, confidence=confidence)


TIE_RULE = ("ties go to the answer of the tied member with the highest accuracy of its own on the split "
            "(then to the member listed first); answers grouped by value; a member without an extractable "
            "answer does not vote")


def vote_markdown(rows: list[dict[str, Any]], names: list[str], *, seeds: bool = False,
                  title: str = "Voting across students", level: str = "#") -> list[str]:
    if not rows:
        return []

    def pct(x):
        return "–" if x is None else f"{100 * x:.1f}"

    def iv(st):
        if not st or st.get("mean") is None:
            return "–"
        ci = st.get("ci")
        return f"{100 * st['mean']:+.1f}" + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")

    def acc(st):
        ci = st.get("ci")
        return pct(st["mean"]) + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")

    lines = [f"{level} {title}", "",
             f"{len(names)} members: " + ", ".join(f"`{n}`" for n in names) + ". "
             f"Majority vote per prompt: {TIE_RULE}. Accuracy in %, differences in points with paired "
             "intervals (the same prompts on both sides" + (", and which seed's student stands for a single run"
                                                             if seeds else "") + "; "
             "`stats.two_level_interval`). Cost: tokens the members generated for their greedy answers "
             "(the ensemble pays every member's).", ""]
    lines += markdown_table(
        ["split", "category", "prompts", "ensemble %", "best member", "best %", "members' mean %",
         "ensemble − best (pt)", "member chosen on the other split", "ensemble − it (pt)", "ensemble − mean (pt)",
         "ties", "no answer", "tokens: ensemble / best"],
        ([r["split"], r["category"], r["prompts"], acc(r["ensemble"]), r["best_member"], pct(r["best"]),
          pct(r["members_mean"]), iv(r["ensemble_minus_best"]),
          "–" if not r.get("chosen_elsewhere") else f"{r['chosen_elsewhere']} (on {', '.join(r['chosen_on'])}; "
          f"{pct(r['chosen_elsewhere_accuracy'])} here)", iv(r.get("ensemble_minus_chosen_elsewhere")),
          iv(r["ensemble_minus_mean"]), r["ties"], r["no_answer"],
          "–" if r["tokens_ensemble"] is None else f"{r['tokens_ensemble']} / {r['tokens_best']} "
          f"({r['tokens_ensemble'] / max(1, r['tokens_best']):.1f}x)"] for r in rows))
    lines += ["", SELECTION_NOTE]
    return lines


SELECTION_NOTE = (
    "Selection bias: \"best member\" is the member most accurate on the very prompts it is compared on, so "
    "ensemble − best favours the best member (a member lucky on these prompts looks better than it would on new "
    "ones): read it as a bound that is biased against the ensemble. \"Member chosen on the other split\" is "
    "picked as the most accurate on the other held-out split's prompts (test ↔ ood, all categories; "
    "`report/vote.py`) and compared here, as a user who picks one student on one split would find it: no "
    "in-sample selection, though chosen on another distribution. With one split there is none (–).")


def build_vote(paths: list[str], out_dir: Path, *, seeds: bool = False, confidence: float = 0.95) -> dict[str, Any]:
    """``vote.md`` and ``vote.json`` for the eval runs ``paths``."""
    members = [load_member(p, n) for p, n in zip(paths, _names([str(p) for p in paths]), strict=True)]
    rows = vote_table(members, seeds=seeds, confidence=confidence)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vote.md").write_text("\n".join(vote_markdown(rows, [m.name for m in members], seeds=seeds)) + "\n")
    data = {"members": [{"name": m.name, "path": m.path} for m in members], "seeds": seeds, "tie_rule": TIE_RULE,
            "rows": rows}
    (out_dir / "vote.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    return data


def run_vote(cfg: Any, run_dir: Path):
    """The ``report`` stage with ``report.vote_runs`` set."""
    from distill_lab.stages.common import StageResult

    out_dir = Path(cfg.report.output_dir or run_dir)
    data = build_vote(list(cfg.report.vote_runs), out_dir, seeds=cfg.report.vote_seeds,
                      confidence=cfg.eval.confidence)
    print((out_dir / "vote.md").read_text())
    top = next((r for r in data["rows"] if r["category"] == "all"), None)
    return StageResult(artifacts={"vote_md": str(out_dir / "vote.md"), "vote_json": str(out_dir / "vote.json")},
                       summary={"members": len(data["members"]),
                                "ensemble_accuracy": top["ensemble"]["mean"] if top else None,
                                "best_member_accuracy": top["best"] if top else None},
                       objective=top["ensemble"]["mean"] if top else None)


VOTE_OVER = ("seed", "stage")


def seed_votes(runs: list[Any], keys: list[str], confidence: float = 0.95, over: str = "seed") -> list[dict[str, Any]]:
    """The sweep report's ``report.vote_over``: per cell (the runs equal in effort, size and the other swept
    ``keys``), ``seed``: the vote of its seeds' students, with intervals also over seeds; ``stage``: the vote
    of its runs' SFT and SFT+RL students (two members per run that ran ``rl``; runs without ``eval_rl/`` are
    left out), intervals over prompts. Cells with fewer than two members are left out (named in ``skipped``)."""
    if over not in VOTE_OVER:
        raise ConfigError(f"report.vote_over: must be one of {', '.join(VOTE_OVER)}, got {over!r}")
    cells: dict[tuple, list[Any]] = defaultdict(list)
    for r in runs:
        if r.status == "ok":
            cells[cell_key(r, keys)].append(r)
    out = []
    for key, rs in cells.items():
        label = cell_label(key)
        usable = sorted((r for r in rs if samples_path(r.path)), key=lambda r: (r.seed is None, r.seed))
        if over == "stage":
            usable = [r for r in usable if rl_samples_path(r.path)]
            if not usable:
                out.append({"cell": label, "skipped": "no run with an SFT+RL eval (eval_rl/samples.jsonl)"})
                continue
            members = [load_member(r.path, f"{stage}, seed {r.seed}" if r.seed is not None else f"{stage}, {r.job}",
                                   model)
                       for r in usable for stage, model in (("SFT", "student"), (RL_LABEL, RL_MODEL))]
        else:
            if len(usable) < 2:
                out.append({"cell": label, "skipped": f"{len(usable)} run(s) with samples.jsonl; a vote needs 2"})
                continue
            members = [load_member(r.path, f"seed {r.seed}" if r.seed is not None else r.job) for r in usable]
        out.append({"cell": label, "members": [m.name for m in members],
                    "rows": vote_table(members, seeds=over == "seed", confidence=confidence)})
    return out


def seed_votes_markdown(cells: list[dict[str, Any]], over: str = "seed") -> list[str]:
    if not cells:
        return []
    what = ("the students of its seeds vote" if over == "seed"
            else f"each run's SFT student and its {RL_LABEL} student (`eval_rl/`) vote together")
    lines = ["", f"## Voting across {'seeds' if over == 'seed' else f'SFT and {RL_LABEL}'} (report.vote_over={over})",
             "", f"Per cell, {what} per prompt (`report/vote.py`)."]
    for c in cells:
        if "skipped" in c:
            lines += ["", f"### {c['cell']}", "", f"No vote: {c['skipped']}."]
        else:
            lines += ["", *vote_markdown(c["rows"], c["members"], seeds=over == "seed", title=c["cell"],
                                         level="###")]
    return lines
