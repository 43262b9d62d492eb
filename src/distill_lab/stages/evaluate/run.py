"""The ``eval`` stage: base student, distilled student and teacher on the same held-out prompts.

Prompts: the rows of ``eval.splits`` in ``eval.dataset_dir`` (the teacher's answers are those rows'
assistant turns) and/or the external JSONL ``eval.suite_file`` (teacher answers from its ``teacher_answer``
field, or asked live from the ``teacher`` group with ``eval.teacher_live=true``). Models: ``base``
(the student without adapter, when ``eval.include_base``), ``student`` (with ``eval.adapter_dir``),
and ``teacher`` (its answers, scored with the same verifier). Each student output is generated with
the chat template and thinking on; the thinking is stripped before the family's extractor/verifier
sees the answer.

Greedy decoding gives ``accuracy``; with ``eval.n_samples > 1`` (and ``eval.temperature > 0``) n
sampled outputs per prompt give ``pass_at_k`` (unbiased estimator) and ``majority_accuracy``; with one
sample those equal the greedy figures. The teacher's sample 0 is its "greedy" answer and all its rows
are its samples.

Artifacts in the run directory:
  ``metrics.json``  the schema below
  ``samples.jsonl`` one line per output: model, prompt_id, split, category, task, kind, sample_index,
                    prompt, reference, output, thinking, answer, extracted, correct, score, think_unclosed,
                    output_tokens, thinking_chars, answer_chars, runaway, style_similarity

``metrics.json`` is the typed record ``distill_lab.artifacts.metrics.EvalMetrics`` (its schema is
documented there); reports read it through that type.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.manifest import config_dict
from distill_lab.artifacts.metrics import EvalMetrics
from distill_lab.errors import ConfigError
from distill_lab.stages.common import StageResult
from distill_lab.stages.evaluate.aggregate import build_metrics
from distill_lab.stages.evaluate.config import EvalConfig
from distill_lab.stages.evaluate.decode import Generation, generate, render
from distill_lab.stages.evaluate.extract import score_output, split_thinking
from distill_lab.stages.evaluate.placement import place_model, use_bf16
from distill_lab.stages.evaluate.prompts import EvalPrompt, load_heldout, load_suite
from distill_lab.stats import rouge_l_f1

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


def load_prompts(ec: EvalConfig) -> list[EvalPrompt]:
    if not ec.dataset_dir and not ec.suite_file:
        raise ConfigError("eval.dataset_dir: required (a dataset folder from `generate`), or set eval.suite_file "
                          "or a benchmark: eval/suite=gsm8k")
    prompts: list[EvalPrompt] = []
    if ec.dataset_dir:
        prompts += load_heldout(ec.dataset_dir, list(ec.splits), ec.max_prompts)
    if ec.suite_file:
        prompts += load_suite(ec.suite_file, ec.max_prompts)
    seen: set[str] = set()
    for p in prompts:
        if p.prompt_id in seen:
            raise ValueError(f"prompt_id {p.prompt_id!r} appears twice (dataset and suite overlap?)")
        seen.add(p.prompt_id)
    return prompts


def make_record(model: str, p: EvalPrompt, kind: str, sample_index: int, text: str, *,
                n_tokens: int | None, runaway: bool) -> dict[str, Any]:
    teacher = p.teacher_outputs[0] if p.teacher_outputs else None
    teacher_answer = split_thinking(teacher).answer if teacher is not None and model != "teacher" else None
    s = score_output(text, p.task, p.reference, teacher_answer)
    style = rouge_l_f1(text, teacher) if model != "teacher" and teacher is not None else None
    return {
        "model": model, "prompt_id": p.prompt_id, "split": p.split, "category": p.category,
        "task": p.task or "generic", "kind": kind, "sample_index": sample_index,
        "prompt": p.user_text, "reference": p.reference, "output": text,
        "thinking": s.parsed.thinking, "answer": s.parsed.answer, "extracted": s.extracted,
        "correct": s.correct, "score": s.score, "think_unclosed": s.parsed.think_unclosed,
        "output_tokens": n_tokens, "thinking_chars": len(s.parsed.thinking), "answer_chars": len(s.parsed.answer),
        "runaway": runaway, "style_similarity": style,
    }


def teacher_records(prompts: list[EvalPrompt], tokenizer: Any | None = None) -> list[dict[str, Any]]:
    """The teacher's answers as records (sample 0 is its greedy answer); tokens counted with the
    student's tokenizer so lengths compare."""
    out = []
    for p in prompts:
        for i, text in enumerate(p.teacher_outputs):
            n_tok = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else None
            for kind in (("greedy", "sample") if i == 0 else ("sample",)):
                out.append(make_record("teacher", p, kind, i, text, n_tokens=n_tok, runaway=False))
    return out


def evaluate_model(name: str, model: Any, tokenizer: Any, prompts: list[EvalPrompt], ec: EvalConfig, *,
                   bf16: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Greedy outputs (and n sampled outputs when ``ec.n_samples > 1``) of one model, as records."""
    texts = [render(tokenizer, p.messages) for p in prompts]
    common = dict(max_new_tokens=ec.max_new_tokens, batch_size=ec.batch_size, bf16=bf16, progress=progress)
    greedy = generate(model, tokenizer, texts, desc=f"{name} greedy", **common)

    def rec(p: EvalPrompt, kind: str, i: int, g: Generation) -> dict[str, Any]:
        return make_record(name, p, kind, i, g.text, n_tokens=g.n_tokens, runaway=g.runaway)

    records = [rec(p, "greedy", 0, gs[0]) for p, gs in zip(prompts, greedy, strict=True)]
    if ec.n_samples > 1:
        sampled = generate(model, tokenizer, texts, num_return_sequences=ec.n_samples, do_sample=True,
                           temperature=ec.temperature, top_p=ec.top_p, seed=ec.seed,
                           desc=f"{name} x{ec.n_samples}", **common)
        for p, gs in zip(prompts, sampled, strict=True):
            records += [rec(p, "sample", i, g) for i, g in enumerate(gs)]
    return records


def assemble_metrics(records: list[dict[str, Any]], ec: EvalConfig, *, student: str,
                     eval_config: dict[str, Any] | None = None) -> EvalMetrics:
    """The whole ``metrics.json`` record from the per-output records."""
    counts: dict[str, int] = {}
    for _pid, split in sorted({(r["prompt_id"], r["split"]) for r in records}):
        counts[split] = counts.get(split, 0) + 1
    core = build_metrics(records, confidence=ec.confidence, pass_k=sorted(set(ec.pass_k) | {ec.n_samples}),
                         n_resamples=ec.bootstrap, seed=ec.seed)
    return EvalMetrics(eval=eval_config or {}, dataset_dir=ec.dataset_dir, adapter_dir=ec.adapter_dir,
                       student=student, prompts=counts, **core)


def write_outputs(run_dir: Path, metrics: EvalMetrics, records: list[dict[str, Any]]) -> None:
    """``metrics.json`` and ``samples.jsonl`` into ``run_dir``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics.write(run_dir)
    with open(run_dir / "samples.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def log_metrics(cfg: Config, metrics: EvalMetrics, records: list[dict[str, Any]], run_dir: Path) -> None:
    """Accuracies, retention and gain as scalars, and the greedy samples as a table (``logger`` group)."""
    from distill_lab.tracking.loggers import open_run

    with open_run(cfg, "eval", run_dir) as lg:
        if not lg.enabled:
            return
        scalars: dict[str, float] = {}
        for m in metrics.model_names():
            for s in metrics.splits():
                b = metrics.block(m, s) or {}
                for key in ("accuracy", "majority_accuracy", "runaway_share"):
                    if b.get(key) is not None:
                        scalars[f"eval/{m}/{s}/{key}"] = b[key]
        for m in metrics.retention:
            for s in metrics.splits():
                st = metrics.retention_stat(m, s)
                if st and st["value"] is not None:
                    scalars[f"eval/retention/{m}/{s}"] = st["value"]
        for s in metrics.splits():
            st = metrics.gain_stat(s)
            if st and st["value"] is not None:
                scalars[f"eval/gain/{s}"] = st["value"]
        bench = metrics.extra.get("benchmark")
        if bench:  # public benchmark: the report's table, as scalars and a table
            from distill_lab.artifacts.benchmark import COLUMNS, benchmark_rows, benchmark_scalars, table_rows

            scalars.update(benchmark_scalars(bench))
            lg.log_table("eval/benchmark", COLUMNS, table_rows(benchmark_rows(bench)))
        lg.log_metrics(scalars)
        cols = ["model", "split", "category", "task", "prompt", "reference", "output", "extracted", "correct"]
        lg.log_table("eval/samples", cols, [[r[c] for c in cols] for r in records if r["kind"] == "greedy"])


def run(cfg: Config, run_dir: Path) -> StageResult:
    import torch

    ec = cfg.eval
    if not ec.include_base and not ec.adapter_dir and ec.suite is None:
        raise ConfigError("eval.adapter_dir: nothing to evaluate (include_base=false and no adapter_dir)")
    old_threads = torch.get_num_threads()
    if cfg.hardware.threads:
        torch.set_num_threads(cfg.hardware.threads)
    try:
        return _run(cfg, Path(run_dir))
    finally:
        torch.set_num_threads(old_threads)


def _run(cfg: Config, run_dir: Path) -> StageResult:
    from distill_lab.students import load_student

    ec = cfg.eval
    if ec.suite is not None:  # a public benchmark (benchmark.py)
        return _run_suite(cfg, run_dir)
    bf16 = use_bf16(cfg)
    prompts = load_prompts(ec)
    live = None
    if ec.teacher_live:
        from distill_lab.stages.evaluate.live_teacher import ask_teacher

        live = ask_teacher(cfg, prompts)
        log.info("eval: asked the teacher live for %d prompts (cost %.4f USD)", live["asked"], live["cost_usd"])
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p.split] = counts.get(p.split, 0) + 1
    log.info("eval: %d prompts %s", len(prompts), counts)
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    tokenizer = None
    if ec.adapter_dir:
        model, tokenizer = load_student(cfg.student, adapter_dir=ec.adapter_dir)
        model = place_model(model, cfg)
        t = time.perf_counter()
        records += evaluate_model("student", model, tokenizer, prompts, ec, bf16=bf16, progress=ec.progress)
        timings["student"] = time.perf_counter() - t
        if ec.include_base and hasattr(model, "disable_adapter"):  # peft: the base is the same weights
            t = time.perf_counter()
            with model.disable_adapter():
                records += evaluate_model("base", model, tokenizer, prompts, ec, bf16=bf16, progress=ec.progress)
            timings["base"] = time.perf_counter() - t
        del model
    if ec.include_base and "base" not in timings:
        model, tokenizer = load_student(cfg.student)
        model = place_model(model, cfg)
        t = time.perf_counter()
        records += evaluate_model("base", model, tokenizer, prompts, ec, bf16=bf16, progress=ec.progress)
        timings["base"] = time.perf_counter() - t
        del model
    records += teacher_records(prompts, tokenizer)
    metrics = assemble_metrics(records, ec, student=cfg.student.name, eval_config=config_dict(cfg)["eval"])
    metrics.extra["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    if live is not None:
        metrics.extra["teacher_live"] = live
    write_outputs(run_dir, metrics, records)
    log_metrics(cfg, metrics, records, run_dir)
    summary = {m: {s: metrics.accuracy(m, s) for s in metrics.splits() if metrics.block(m, s)}
               for m in metrics.model_names()}
    objective = metrics.accuracy("student", "test")
    log.info("eval: accuracy %s in %.1fs", summary, time.perf_counter() - t0)
    return StageResult(artifacts={"metrics": str(run_dir / "metrics.json"), "samples": str(run_dir / "samples.jsonl")},
                       summary={"accuracy": summary}, objective=objective)


def _run_suite(cfg: Config, run_dir: Path) -> StageResult:
    from distill_lab.stages.evaluate.benchmark import run_benchmark

    ec = cfg.eval
    t0 = time.perf_counter()
    records, bench, timings = run_benchmark(cfg, run_dir)
    metrics = assemble_metrics(records, ec, student=cfg.student.name, eval_config=config_dict(cfg)["eval"])
    metrics.extra["benchmark"] = bench
    metrics.extra["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    if bench.get("teacher_live"):
        metrics.extra["teacher_live"] = bench["teacher_live"]
    write_outputs(run_dir, metrics, records)
    log_metrics(cfg, metrics, records, run_dir)
    acc = {m: b["accuracy"] for m, b in bench["models"].items()}
    log.info("eval: %s %s accuracy %s in %.1fs", bench["suite"], bench["protocol"], acc, time.perf_counter() - t0)
    return StageResult(artifacts={"metrics": str(run_dir / "metrics.json"), "samples": str(run_dir / "samples.jsonl")},
                       summary={"benchmark": bench["suite"], "accuracy": acc}, objective=acc.get("student"))
