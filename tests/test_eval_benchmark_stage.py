"""The eval stage on public benchmark suites (fixture files in each hub schema), end to end: through
``hf`` (a tiny student that memorized a boxed one half) and through ``openai_compat`` against a local
OpenAI-compatible server, with the teacher asked live under a spend cap, the R1 sampled protocol, the
report's benchmark table and W&B. Expected grades are derived here from the fixtures, independently of
the package's graders where possible."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_lab.stages.common import run_stage
from distill_lab.stages.evaluate.suites.config import SuiteConfig
from distill_lab.stages.evaluate.suites.loader import suite_prompts
from tests.bench_support import FILES, MEMORIZED, bench_memorizer_dir, fixture
from tests.conftest import REPO, compose_config
from tests.fake_api.bench_server import BenchFake, State

FAST = ["student=tiny", "eval.progress=false", "eval.bootstrap=200", "hardware.threads=1"]
HALF_FORMS = {"\\frac{1}{2}", "0.5", "1/2"}


def _samples(d: Path) -> list[dict]:
    return [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("suite, expected", [("math500", [True, True, True, False]),
                                             ("gsm8k", [True, True, False, False])])
def test_hf_backend_grades_equal_forms_equal(tmp_path, suite, expected):
    cfg0 = compose_config(["student=tiny"], stage="eval")
    adapter = bench_memorizer_dir(cfg0.student)
    cfg = compose_config([*FAST, f"eval/suite={suite}", f"eval.suite.path={fixture(suite)}", f"eval.adapter_dir={adapter}",
                          "eval.suite.max_new_tokens=80", "eval.suite.stop=[END]"], stage="eval")
    run_stage("eval", cfg, tmp_path / "e")
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    st = [s for s in _samples(tmp_path / "e") if s["model"] == "student" and s["kind"] == "greedy"]
    # the student says \frac{1}{2} to everything: right where the gold is one half in any form
    assert [s["reference"] in HALF_FORMS for s in st] == expected == [s["correct"] for s in st]
    right = [s for s in st if s["correct"]]
    assert right and all(s["output"] == MEMORIZED.split(" END extra")[0] + " " for s in right)  # cut after thinking
    b = m["benchmark"]
    assert b["suite"] == suite and b["protocol"] == "greedy" and b["backend"]["student"]["backend"] == "hf"
    assert b["models"]["student"]["accuracy"] == pytest.approx(sum(expected) / 4)
    assert b["models"]["student"]["truncation_share"] == 0.0 and b["models"]["student"]["no_closed_thinking_share"] == 0.0
    # the random-init base runs into the budget: truncated, so wrong, whatever it wrote
    assert b["models"]["base"]["truncation_share"] == 1.0 and b["models"]["base"]["accuracy"] == 0.0
    assert b["models"]["base"]["tokens_per_answer"] == 80
    assert m["models"]["student"]["splits"]["test"]["accuracy"] == b["models"]["student"]["accuracy"]


@pytest.mark.parametrize("suite", ["aime24", "aime25", "gpqa_diamond", "ifeval"])
def test_hf_backend_runs_every_other_suite(tmp_path, suite):
    """The random-init base through hf on the other suites: every output runs into the 12-token budget, so
    every one is graded wrong without being parsed, and the hygiene shares say why."""
    cfg = compose_config([*FAST, f"eval/suite={suite}", f"eval.suite.path={fixture(suite)}",
                          "eval.suite.max_new_tokens=12"], stage="eval")
    run_stage("eval", cfg, tmp_path / "e")
    b = json.loads((tmp_path / "e" / "metrics.json").read_text())["benchmark"]
    recs = _samples(tmp_path / "e")
    n = len(_items(suite))
    assert len(recs) == n and {r["model"] for r in recs} == {"base"}
    assert all(r["truncated"] and not r["correct"] and r["extracted"] is None and r["output_tokens"] == 12
               for r in recs)
    base = b["models"]["base"]
    assert (base["n"], base["accuracy"], base["truncation_share"], base["tokens_per_answer"]) == (n, 0.0, 1.0, 12)
    assert b["backend"]["base"]["backend"] == "hf" and b["grader"] == cfg.eval.suite.grader


def test_hf_lora_student_and_its_base_from_one_model(tmp_path):
    """With a peft adapter the base answers with the adapter disabled: its outputs equal those of the base
    loaded on its own, and differ from the adapted student's."""
    import torch
    from peft import LoraConfig, get_peft_model

    from distill_lab.students import load_student

    common = [*FAST, "eval/suite=math500", f"eval.suite.path={fixture('math500')}", "eval.suite.max_new_tokens=8"]
    base, _ = load_student(compose_config(["student=tiny"], stage="eval").student)
    torch.manual_seed(0)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    for name, prm in lora.named_parameters():  # a large random adapter, so outputs visibly change
        if "lora_B" in name:
            torch.nn.init.normal_(prm, std=1.0)
    lora.save_pretrained(str(tmp_path / "adapter"))
    run_stage("eval", compose_config([*common, f"eval.adapter_dir={tmp_path / 'adapter'}"], stage="eval"),
              tmp_path / "with_adapter")
    run_stage("eval", compose_config(common, stage="eval"), tmp_path / "base_only")

    def outputs(d, model):
        return {r["prompt_id"]: r["output"] for r in _samples(tmp_path / d) if r["model"] == model}

    assert outputs("with_adapter", "base") == outputs("base_only", "base")
    assert outputs("with_adapter", "student") != outputs("with_adapter", "base")
    b = json.loads((tmp_path / "with_adapter" / "metrics.json").read_text())["benchmark"]
    assert set(b["models"]) == {"base", "student"}


# ------------------------------------------------------------------------------ openai_compat
def _items(name: str):
    return suite_prompts(SuiteConfig(name=name, path=str(fixture(name)),
                                     prompt_template="{question} {choices}" if name == "gpqa_diamond" else "{question}",
                                     grader={"gpqa_diamond": "choice", "ifeval": "ifeval"}.get(name, "math")))[1]


def _key(prompt: str, items) -> str:
    return next(i for i, it in items.items() if it.question in prompt)


OTHER_FORM = {"\\frac{1}{2}": "0.5", "0.5": "1/2", "1/2": "\\dfrac{1}{2}"}


def make_reply(suite: str):
    """What each served model says on ``suite``: the student right in another form than the gold (wrong on
    golds that are not one half, except integers it gets right), the base right but only inside a thinking
    that the budget cuts on the first question, the teacher right."""
    items = _items(suite)
    ids = list(items)

    def reply(model, prompt, body):
        it = items[_key(prompt, items)]
        first = it.id == ids[0]
        if suite == "ifeval":
            answer = {"ifeval-1000": "the sea is calm and wide and grey", "ifeval-1001":
                      "A cat is a small furry animal. Is there anything else I can help with?",
                      "ifeval-1002": "Red."}[it.id]  # the last one misses its keywords
            # commas and capitals inside the thinking must not count against the lowercase / no-comma checks
            return "Hmm, Let me Think, Carefully.", answer, None
        if suite == "gpqa_diamond":
            letter = it.reference if model != "base" else "ABCD"[("ABCD".index(it.reference) + 1) % 4]
            return "The options, considered.", f"Reasoned.\n\nAnswer: {letter}", None
        gold = it.reference
        if model == "base" and first:
            return f"the answer is \\boxed{{{gold}}} " + "and more " * 500, "", None  # cut inside the thinking
        shown = OTHER_FORM.get(gold, gold) if model == "student" else gold
        return "Working it out.", f"The answer is $\\boxed{{{shown}}}$.", None

    return reply


@pytest.fixture
def server():
    srv = BenchFake(State(models=("student", "base", "teacher"))).start()
    yield srv
    srv.stop()


def _oa(url: str, suite: str, *extra: str) -> list[str]:
    return [*FAST, f"eval/suite={suite}", f"eval.suite.path={fixture(suite)}", "eval.backend.name=openai_compat",
            f"eval.backend.base_url={url}/v1", "eval.backend.student_model=student", "eval.backend.base_model=base",
            "eval.backend.retry_base_s=0.01", "eval.backend.retry_cap_s=0.05", "eval.suite.max_new_tokens=200", *extra]


TEACHER = ["teacher=openai_compat", "teacher.model=teacher", "teacher.api_key_env=null", "teacher.max_tokens=200",
           "teacher.prices.input=100", "teacher.prices.output=400", "generate.progress=false",
           "generate.retry_base_s=0.01", "generate.retry_cap_s=0.05"]


@pytest.mark.parametrize("suite", sorted(FILES))
def test_openai_compat_every_suite_with_the_teacher(tmp_path, server, suite):
    server.state.reply = make_reply(suite)
    cfg = compose_config([*_oa(server.url, suite), *TEACHER, f"teacher.base_url={server.url}/v1",
                          "eval.teacher_live=true", "eval.teacher_max_cost_usd=5"], stage="eval")
    run_stage("eval", cfg, tmp_path / "e")
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    b = m["benchmark"]
    items = _items(suite)
    n = len(items)
    got = {(s["model"], s["prompt_id"]): s for s in _samples(tmp_path / "e") if s["kind"] == "greedy"}
    if suite == "ifeval":
        want = {"student": [True, True, False], "teacher": [True, True, False], "base": [True, True, False]}
        ife = b["models"]["student"]["ifeval"]
        assert ife["prompt_strict"] == pytest.approx(2 / 3) and ife["inst_strict"] == pytest.approx(4 / 5)
    elif suite == "gpqa_diamond":
        want = {"student": [True] * n, "teacher": [True] * n, "base": [False] * n}
        assert {got["student", i]["extracted"] for i in items} <= set("ABCD")
    else:
        gold_half = [it.reference in HALF_FORMS or it.reference.isdigit() for it in items.values()]
        want = {"student": gold_half, "teacher": [True] * n, "base": [False] + [True] * (n - 1)}
        if suite == "math500":  # written \frac vs gold 0.5, 0.5 vs gold 1/2, \dfrac vs gold \frac: all equal
            assert [got["student", i]["correct"] for i in items] == [True, True, True, True]
        assert got["base", next(iter(items))]["truncated"]  # its right answer was inside the cut thinking
    for model, w in want.items():
        assert [got[model, i]["correct"] for i in items] == w, model
        assert b["models"][model]["accuracy"] == pytest.approx(sum(w) / n), model
    assert b["models"]["student"]["tokens_per_answer"] > 0
    assert b["backend"]["student"] == {"backend": "openai_compat", "model": "student", "base_url": f"{server.url}/v1"}
    live = b["teacher_live"]
    assert live["answered"] == live["requests"] == n and 0 < live["cost_usd"] <= 5 and live["stopped"] is None
    # every student/base request carried the suite's budget and no server-side stop
    reqs = [r for r in server.state.requests if r["model"] in ("student", "base")]
    assert len(reqs) == 2 * n and all(r["max_tokens"] == 200 and "stop" not in r for r in reqs)
    assert {r["messages"][-1]["content"] for r in reqs} == {p.user_text for p in suite_prompts(cfg.eval.suite)[0]}


def test_r1_protocol_mean_pass_at_1_and_consensus_by_value(tmp_path, server):
    forms = ["\\frac{1}{2}", "0.5", "1/2", "7"]  # sample k (seed 10 + k) says forms[k]

    def reply(model, prompt, body):
        return "t", f"\\boxed{{{forms[(body['seed'] - 10) % 4]}}}", None

    server.state.reply = reply
    cfg = compose_config([*_oa(server.url, "math500", "eval=r1", "eval.n_samples=4", "eval.seed=10",
                               "eval.include_base=false")], stage="eval")
    run_stage("eval", cfg, tmp_path / "e")
    b = json.loads((tmp_path / "e" / "metrics.json").read_text())["benchmark"]
    s = b["models"]["student"]
    assert b["protocol"] == "sampled" and b["n_samples"] == 4 and s["n_outputs"] == 16
    # golds 1/2, 0.5, 1/2, 3: three of four samples right on the first three, none on the last
    assert s["accuracy"] == s["mean_pass_at_1"] == pytest.approx(9 / 16)
    assert s["pass_at_k"]["4"] == pytest.approx(3 / 4) and s["pass_at_k"]["1"] == pytest.approx(9 / 16)
    # the three forms of one half are one vote of three against "7": consensus right on three prompts
    assert s["cons_at_n"] == pytest.approx(3 / 4)
    assert s["greedy_accuracy"] is None and s["accuracy_ci"][0] <= 9 / 16 <= s["accuracy_ci"][1]
    reqs = server.state.requests
    assert {(r["temperature"], r["top_p"]) for r in reqs} == {(0.6, 0.95)} and len(reqs) == 16


def test_teacher_spend_is_capped(tmp_path, server):
    base = make_reply("math500")

    def reply(model, prompt, body):  # the teacher's answers cost 150 output tokens each ($0.06 at $400/M)
        r, c, _ = base(model, prompt, body)
        return r, c, 150 if model == "teacher" else None

    server.state.reply = reply
    common = [*_oa(server.url, "math500", "eval.include_base=false"), *TEACHER, f"teacher.base_url={server.url}/v1",
              "eval.teacher_live=true", "generate.concurrency=1"]
    cfg = compose_config([*common, "eval.teacher_max_cost_usd=0.2"], stage="eval")
    run_stage("eval", cfg, tmp_path / "e")
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    live = m["teacher_live"]
    assert live["answered"] < live["requests"] == 4 and live["cost_usd"] <= 0.2
    assert "eval.teacher_max_cost_usd=0.2 reached" in live["stopped"]
    assert m["benchmark"]["models"]["teacher"]["n"] == live["answered"]
    # the same run without a cap asks for everything
    run_stage("eval", compose_config(common, stage="eval"), tmp_path / "e2")
    live2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())["teacher_live"]
    assert live2["answered"] == 4 and live2["stopped"] is None and live2["cost_usd"] > live["cost_usd"]


def test_report_and_wandb_show_the_benchmark_table(tmp_path, server, monkeypatch):
    from distill_lab.tracking.wandb_reader import find_runs, read_run, read_table

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    dirs = []
    for suite in ("math500", "gpqa_diamond"):
        server.state.reply = make_reply(suite)
        cfg = compose_config([*_oa(server.url, suite), "logger=wandb"], stage="eval")
        run_stage("eval", cfg, tmp_path / suite)
        dirs.append(tmp_path / suite)
    run = read_run(find_runs(tmp_path / "math500")[0])
    assert run.summary["eval/bench/math500/student/accuracy"] == 1.0
    assert run.summary["eval/bench/math500/base/truncation_share"] == 0.25
    table = read_table(run, "eval/benchmark")
    assert table["columns"][:3] == ["suite", "model", "protocol"] and len(table["data"]) == 2
    rep = run_stage("report", compose_config([f"report.eval_dirs=[{dirs[0]},{dirs[1]}]", "report.plots=false"],
                                             stage="report"), tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Public benchmarks" in md
    assert "| math500 | student | openai_compat | 4 × 1 | 100.0% [" in md
    assert "| math500 | base | openai_compat | 4 × 1 | 75.0% [" in md and "| 25.0% |" in md
    assert "| gpqa_diamond | base | openai_compat | 3 × 1 | 0.0% [" in md
    # a benchmark keeps its published budget: named, never flagged as unchecked against a teacher
    assert "the benchmark's published budget" in md and "🔴" not in md
    rj = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["model"] for r in rj["runs"][0]["benchmark"]] == ["base", "student"]
    assert rep.artifacts["report_md"].endswith("report.md")


@pytest.mark.slow  # two CLI subprocesses (imports alone take seconds each); the stage tests cover the same run
def test_cli_runs_a_suite_against_a_local_server(tmp_path, server):
    server.state.reply = make_reply("gsm8k")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "distill_lab.cli", "eval", *_oa(server.url, "gsm8k"), f"run_dir={tmp_path / 'e'}"]
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    b = json.loads((tmp_path / "e" / "metrics.json").read_text())["benchmark"]
    assert b["models"]["student"]["accuracy"] == 1.0  # 1/2 for gold 0.5, \\dfrac{1}{2} for 1/2, 3, 2400
    bad = subprocess.run([*args[:-1], "eval.backend.base_url=localhost:8000", f"run_dir={tmp_path / 'bad'}"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "eval.backend.base_url: must be an http(s) URL" in bad.stdout + bad.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()


def test_a_missing_teacher_key_stops_before_any_generation(tmp_path, server, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    from distill_lab.config import ConfigError

    cfg = compose_config([*_oa(server.url, "math500"), "teacher=anthropic", "eval.teacher_live=true"], stage="eval")
    with pytest.raises(ConfigError, match="teacher.api_key_env: the environment variable ANTHROPIC_API_KEY"):
        run_stage("eval", cfg, tmp_path / "e")
    assert server.state.requests == [] and not (tmp_path / "e" / "metrics.json").exists()
