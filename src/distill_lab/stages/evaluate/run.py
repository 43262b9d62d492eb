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
  ``samples.jsonl`` one line per output: model, seed, prompt_id, split, category, task (= family), kind,
                    sample_index, prompt, reference, output, thinking, answer, extracted (the parsed answer;
                    null when truncated), correct, score, outcome (correct | wrong | truncated |
                    unclosed_thinking), truncated (the budget ended it before end of turn: wrong, never
                    parsed), unclosed_thinking (= think_unclosed: the think block never closed),
                    max_new_tokens (the split's budget), prompt_tokens, output_tokens (= completion_tokens),
                    thinking_tokens, answer_tokens, thinking_chars, answer_chars, runaway, style_similarity,
                    pair_id (the item shared with a paired control, from the dataset row; null when unpaired)

Budgets (``eval.max_new_tokens``, ``students/budget.py``): ``auto`` derives each split's budget from the
teacher's longest answer on its prompts in the student's tokens; an explicit budget below it stops the
stage before any model is loaded unless ``eval.allow_truncation``. The budgets and how they were derived
are in ``metrics.json`` (``budgets``), the stage summary (its manifest) and the log.

Order (nothing paid before the config is checked): prompts; math-verify importable when a prompt has no task
family; the budgets on the answers the prompts already carry; ``eval.adapter_dir`` loaded (``ConfigError``
naming it); only then the live teacher (``eval.teacher_live``), after which the budgets are checked again on its
answers (that check needs the paid answers, so it can only follow them).

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
from distill_lab.stages.evaluate.placement import use_bf16
from distill_lab.stages.evaluate.prompts import EvalPrompt, load_heldout, load_suite
from distill_lab.stages.runtime import load_placed_student, torch_threads
from distill_lab.stats import rouge_l_f1
from distill_lab.students.budget import SplitBudget, resolve_budgets, teacher_lengths

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


def outcome_of(correct: bool, truncated: bool, unclosed: bool) -> str:
    """One output's outcome: truncated (the budget ended it) before unclosed thinking before right/wrong."""
    return "truncated" if truncated else "unclosed_thinking" if unclosed else "correct" if correct else "wrong"


def _n_tokens(tokenizer: Any | None, text: str) -> int | None:
    if tokenizer is None:
        return None
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


def make_record(model: str, p: EvalPrompt, kind: str, sample_index: int, text: str, *,
                n_tokens: int | None, runaway: bool, truncated: bool | None = None, seed: int | None = None,
                tokenizer: Any | None = None, prompt_tokens: int | None = None,
                max_new_tokens: int | None = None) -> dict[str, Any]:
    """One output as a ``samples.jsonl`` record; ``truncated`` (default: ``runaway``) outputs are wrong and
    never parsed."""
    truncated = runaway if truncated is None else truncated
    teacher = p.teacher_outputs[0] if p.teacher_outputs else None
    teacher_answer = split_thinking(teacher).answer if teacher is not None and model != "teacher" else None
    s = score_output(text, p.task, p.reference, teacher_answer, truncated=truncated)
    style = rouge_l_f1(text, teacher) if model != "teacher" and teacher is not None else None
    return {
        "model": model, "seed": seed, "prompt_id": p.prompt_id, "split": p.split, "category": p.category,
        "task": p.task or "generic", "family": p.task or "generic", "kind": kind, "sample_index": sample_index,
        "prompt": p.user_text, "reference": p.reference, "output": text,
        "thinking": s.parsed.thinking, "answer": s.parsed.answer, "extracted": s.extracted,
        "correct": s.correct, "score": s.score,
        "outcome": outcome_of(s.correct, truncated, s.parsed.think_unclosed),
        "truncated": truncated, "unclosed_thinking": s.parsed.think_unclosed, "think_unclosed": s.parsed.think_unclosed,
        "max_new_tokens": max_new_tokens, "prompt_tokens": prompt_tokens,
        "output_tokens": n_tokens, "completion_tokens": n_tokens,
        "thinking_tokens": _n_tokens(tokenizer, s.parsed.thinking), "answer_tokens": _n_tokens(tokenizer, s.parsed.answer),
        "thinking_chars": len(s.parsed.thinking), "answer_chars": len(s.parsed.answer),
        "runaway": runaway, "style_similarity": style, "pair_id": p.pair_id,
    }


def teacher_messages(p: EvalPrompt, text: str) -> list[dict[str, Any]]:
    """The prompt's conversation with the teacher's answer ``text`` as its assistant turn (reasoning apart)."""
    parsed = split_thinking(text)
    return [*p.messages, {"role": "assistant", "content": parsed.answer,
                          "reasoning_content": parsed.thinking if parsed.think_opened else None}]


def teacher_records(prompts: list[EvalPrompt], tokenizer: Any | None = None, *,
                    seed: int | None = None) -> list[dict[str, Any]]:
    """The teacher's answers as records (sample 0 is its greedy answer); tokens counted as the student would
    generate them (``students/budget.answer_tokens``: its chat template, end of turn included) so lengths
    compare with the budget. The teacher's answers are never subject to the budget; ``truncated`` marks only an
    answer the teacher's own API cut at its output limit (``EvalPrompt.teacher_cut``)."""
    from distill_lab.students.budget import answer_tokens

    out = []
    for p in prompts:
        for i, text in enumerate(p.teacher_outputs):
            n_tok = answer_tokens(tokenizer, teacher_messages(p, text)) if tokenizer is not None else None
            cut = i < len(p.teacher_cut) and p.teacher_cut[i]
            for kind in (("greedy", "sample") if i == 0 else ("sample",)):
                out.append(make_record("teacher", p, kind, i, text, n_tokens=n_tok, runaway=False, truncated=cut,
                                       seed=seed, tokenizer=tokenizer))
    return out


def budgets_for(ec: EvalConfig, prompts: list[EvalPrompt], tokenizer: Any) -> dict[str, SplitBudget]:
    """Each evaluated split's budget (``students/budget.py``); ``ConfigError`` for an explicit budget below the
    teacher's longest answer unless ``eval.allow_truncation``. Runs before any model is loaded."""
    from distill_lab.students.budget import TeacherAnswer, cut_answers

    answers = [TeacherAnswer(p.split, p.prompt_id, teacher_messages(p, t), truncated=i < len(p.teacher_cut)
                             and p.teacher_cut[i]) for p in prompts for i, t in enumerate(p.teacher_outputs)]
    splits = list(dict.fromkeys(p.split for p in prompts))
    return resolve_budgets(ec.max_new_tokens, splits, teacher_lengths(tokenizer, answers), margin=ec.budget_margin,
                           allow_truncation=ec.allow_truncation, fallback=ec.fallback_max_new_tokens,
                           cut=cut_answers(answers))


def evaluate_model(name: str, model: Any, tokenizer: Any, prompts: list[EvalPrompt], ec: EvalConfig, *,
                   bf16: bool = False, progress: bool = True, budgets: dict[str, SplitBudget] | None = None,
                   seed: int | None = None) -> list[dict[str, Any]]:
    """Greedy outputs (and n sampled outputs when ``ec.n_samples > 1``) of one model, as records; each split
    generated with its own budget (``budgets``; an integer ``ec.max_new_tokens`` where none is given)."""
    texts = [render(tokenizer, p.messages) for p in prompts]
    prompt_tokens = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def budget(split: str) -> int:
        if budgets is not None and split in budgets:
            return budgets[split].max_new_tokens
        if ec.max_new_tokens == "auto":
            raise ValueError(f"eval: no budget resolved for split {split!r} (eval.max_new_tokens=auto)")
        return int(ec.max_new_tokens)

    by_split: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_split.setdefault(p.split, []).append(i)

    def rec(i: int, kind: str, k: int, g: Generation) -> dict[str, Any]:
        p = prompts[i]
        return make_record(name, p, kind, k, g.text, n_tokens=g.n_tokens, runaway=g.runaway, seed=seed,
                           tokenizer=tokenizer, prompt_tokens=prompt_tokens[i], max_new_tokens=budget(p.split))

    greedy: dict[int, dict[str, Any]] = {}
    sampled: dict[int, list[dict[str, Any]]] = {}
    for split, idx in by_split.items():
        common = dict(max_new_tokens=budget(split), batch_size=ec.batch_size, bf16=bf16, progress=progress)
        gens = generate(model, tokenizer, [texts[i] for i in idx], desc=f"{name} {split} greedy", **common)
        for i, gs in zip(idx, gens, strict=True):
            greedy[i] = rec(i, "greedy", 0, gs[0])
        if ec.n_samples > 1:
            gens = generate(model, tokenizer, [texts[i] for i in idx], num_return_sequences=ec.n_samples,
                            do_sample=True, temperature=ec.temperature, top_p=ec.top_p, seed=ec.seed,
                            desc=f"{name} {split} x{ec.n_samples}", **common)
            for i, gs in zip(idx, gens, strict=True):
                sampled[i] = [rec(i, "sample", k, g) for k, g in enumerate(gs)]
    records = [greedy[i] for i in range(len(prompts))]
    for i in range(len(prompts)):
        records += sampled.get(i, [])
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
                for key in ("accuracy", "majority_accuracy", "runaway_share", "truncated_share",
                            "unclosed_thinking_share"):
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
        cols = ["model", "split", "category", "task", "prompt", "reference", "output", "extracted", "correct",
                "outcome", "truncated", "unclosed_thinking"]
        lg.log_table("eval/samples", cols, [[r.get(c) for c in cols] for r in records if r["kind"] == "greedy"])


def load_adapter(cfg: Config) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the student with ``eval.adapter_dir``, placed; ``ConfigError`` naming the field
    when the folder is not an adapter or checkpoint or cannot be loaded onto ``cfg.student`` (e.g. an adapter
    trained for another base)."""
    from distill_lab.students.loader import adapter_kind

    path = cfg.eval.adapter_dir
    try:
        adapter_kind(path)
        return load_placed_student(cfg, path)
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # FileNotFoundError, peft/torch load errors
        if type(e).__name__ == "OutOfMemoryError":  # torch's: the machine, not the config
            raise
        raise ConfigError(f"eval.adapter_dir: {path} cannot be loaded onto student {cfg.student.name!r}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def run(cfg: Config, run_dir: Path) -> StageResult:
    ec = cfg.eval
    if not ec.include_base and not ec.adapter_dir and ec.suite is None:
        raise ConfigError("eval.adapter_dir: nothing to evaluate (include_base=false and no adapter_dir)")
    with torch_threads(cfg.hardware.threads):
        return _run(cfg, Path(run_dir))


def _run(cfg: Config, run_dir: Path) -> StageResult:
    ec = cfg.eval
    if ec.suite is not None:  # a public benchmark (benchmark.py)
        return _run_suite(cfg, run_dir)
    bf16 = use_bf16(cfg)
    prompts = load_prompts(ec)
    if any(p.task is None for p in prompts):  # math-verify scores these rows: a broken install fails here
        from distill_lab.tasks.verdicts import require_math_verify

        require_math_verify()
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p.split] = counts.get(p.split, 0) + 1
    log.info("eval: %d prompts %s", len(prompts), counts)
    from distill_lab.students.loader import load_tokenizer

    tokenizer = load_tokenizer(cfg.student)  # the budgets are checked before any model is loaded
    # Nothing paid before the config is checked: the budgets on the answers the prompts already carry (the
    # dataset's, the suite's teacher_answer) and the adapter are checked before the live teacher is asked.
    budgets = budgets_for(ec, prompts, tokenizer)
    student = load_adapter(cfg) if ec.adapter_dir else None
    live = None
    if ec.teacher_live:
        from distill_lab.stages.evaluate.live_teacher import ask_teacher

        live = ask_teacher(cfg, prompts)
        log.info("eval: asked the teacher live for %d prompts (cost %.4f USD)", live["asked"], live["cost_usd"])
        if live["asked"]:
            # A split's budget also needs the answers the live teacher just gave (auto: its longest; a number:
            # checked against them): only the paid call gives them, so this check can only come after it.
            budgets = budgets_for(ec, prompts, tokenizer)
    for b in budgets.values():
        (log.warning if b.below_teacher or b.teacher_longest is None else log.info)("eval: max_new_tokens %s",
                                                                                   b.describe())
    t0 = time.perf_counter()
    records: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    kw = dict(bf16=bf16, progress=ec.progress, budgets=budgets, seed=cfg.seed)
    if student is not None:
        model, tokenizer = student
        student = None
        t = time.perf_counter()
        records += evaluate_model("student", model, tokenizer, prompts, ec, **kw)
        timings["student"] = time.perf_counter() - t
        if ec.include_base and hasattr(model, "disable_adapter"):  # peft: the base is the same weights
            t = time.perf_counter()
            with model.disable_adapter():
                records += evaluate_model("base", model, tokenizer, prompts, ec, **kw)
            timings["base"] = time.perf_counter() - t
        del model
    if ec.include_base and "base" not in timings:
        model, tokenizer = load_placed_student(cfg)
        t = time.perf_counter()
        records += evaluate_model("base", model, tokenizer, prompts, ec, **kw)
        timings["base"] = time.perf_counter() - t
        del model
    records += teacher_records(prompts, tokenizer, seed=cfg.seed)
    metrics = assemble_metrics(records, ec, student=cfg.student.name, eval_config=config_dict(cfg)["eval"])
    metrics.extra["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    metrics.extra["budgets"] = {s: b.to_json() for s, b in budgets.items()}
    metrics.extra["truncation_allowed"] = bool(ec.allow_truncation)
    if live is not None:
        metrics.extra["teacher_live"] = live
    write_outputs(run_dir, metrics, records)
    log_metrics(cfg, metrics, records, run_dir)
    summary = {m: {s: metrics.accuracy(m, s) for s in metrics.splits() if metrics.block(m, s)}
               for m in metrics.model_names()}
    objective = metrics.accuracy("student", "test")
    log.info("eval: accuracy %s in %.1fs", summary, time.perf_counter() - t0)
    return StageResult(artifacts={"metrics": str(run_dir / "metrics.json"), "samples": str(run_dir / "samples.jsonl")},
                       summary={"accuracy": summary, "max_new_tokens": {s: b.to_json() for s, b in budgets.items()}},
                       objective=objective)


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
