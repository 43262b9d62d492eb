"""The eval stage on a public benchmark (``eval/suite=...``): base, student and teacher answer the suite's
questions through the chosen backend, the suite's grader scores the answers, and ``metrics.json`` gains a
``benchmark`` block beside the usual per-split blocks.

Protocols: greedy (``eval.greedy=true``, one answer per question) and sampled (``eval.n_samples=n`` at
``eval.temperature``/``eval.top_p``; ``eval=r1`` is DeepSeek-R1's T=0.6, top-p 0.95). With samples the
headline accuracy is the mean pass@1 over the n samples (R1's figure), with ``cons@n`` (the majority
answer, math answers grouped by value) beside it; greedy alone reports greedy accuracy.

Hygiene: an output cut by the suite's token budget is wrong (its answer is never read, and nothing is
ever read from inside the thinking); the truncation share, the share of outputs without a closed
thinking block and the tokens per answer are reported beside accuracy; IFEval checks see the answer
with the thinking removed.

``benchmark`` block (in ``metrics.json``)::

  {"suite": name, "source": hub id or path, "grader": str, "max_new_tokens": int, "stop": [...],
   "protocol": "greedy" | "sampled", "n_samples": int, "backend": {MODEL: {...}},
   "models": {MODEL: {"n", "n_outputs", "accuracy", "accuracy_ci", "greedy_accuracy", "mean_pass_at_1",
                      "pass_at_k": {k: v}, "cons_at_n", "truncation_share", "no_closed_thinking_share",
                      "unclosed_thinking_share", "tokens_per_answer", "ifeval": {...} | null}}}
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab import stats as M
from distill_lab.errors import ConfigError
from distill_lab.stages.evaluate.backends import Output, Sampling
from distill_lab.stages.evaluate.extract import split_thinking
from distill_lab.stages.evaluate.graders import check_ifeval_ready, grade, math_equal
from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.stages.evaluate.suites.specs import BenchItem
from distill_lab.teachers.cost import max_request_cost, usage_cost

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ records
def bench_record(model: str, p: EvalPrompt, item: BenchItem, grader: str, kind: str, i: int, out: Output,
                 teacher_answer: str | None = None) -> dict[str, Any]:
    """One graded output, in the eval stage's record shape (plus ``truncated`` and the grade's detail)."""
    parsed = split_thinking(out.text)
    if out.truncated:  # cut by the budget: wrong, whatever its partial answer says
        g_extracted, correct, detail = None, False, {}
    elif not parsed.answer:
        g_extracted, correct, detail = None, False, {}
    else:
        g = grade(grader, parsed.answer, item)
        g_extracted, correct, detail = g.extracted, g.correct, g.detail
    return {
        "model": model, "prompt_id": p.prompt_id, "split": p.split, "category": p.category, "task": grader,
        "kind": kind, "sample_index": i, "prompt": p.user_text, "reference": p.reference, "output": out.text,
        "thinking": parsed.thinking, "answer": parsed.answer, "extracted": g_extracted, "correct": correct,
        "score": float(correct), "think_unclosed": parsed.think_unclosed, "think_closed": parsed.think_opened
        and not parsed.think_unclosed, "output_tokens": out.n_tokens, "thinking_chars": len(parsed.thinking),
        "answer_chars": len(parsed.answer), "runaway": out.truncated, "truncated": out.truncated,
        "style_similarity": None, "grade": detail or None, "family": grader,
        "unclosed_thinking": parsed.think_unclosed, "completion_tokens": out.n_tokens,
        "outcome": ("truncated" if out.truncated else "unclosed_thinking" if parsed.think_unclosed
                    else "correct" if correct else "wrong"),
    }


def records_for(model: str, prompts: list[EvalPrompt], items: dict[str, BenchItem], grader: str,
                greedy: list[list[Output]] | None, samples: list[list[Output]] | None) -> list[dict[str, Any]]:
    """Records of one model: its greedy outputs (kind greedy) and samples (kind sample); without a greedy
    pass, sample 0 also stands as the greedy record (the per-split blocks need one per prompt)."""
    recs = []
    for j, p in enumerate(prompts):
        it = items[p.prompt_id]
        if greedy is not None:
            recs.append(bench_record(model, p, it, grader, "greedy", 0, greedy[j][0]))
        if samples is not None:
            for i, o in enumerate(samples[j]):
                r = bench_record(model, p, it, grader, "sample", i, o)
                recs.append(r)
                if greedy is None and i == 0:
                    recs.append({**r, "kind": "greedy"})
    return recs


# ------------------------------------------------------------------------------------ metrics
def _consensus_correct(outs: list[dict[str, Any]], grader: str) -> bool:
    """cons@n: the most frequent extracted answer (math answers grouped by value, first seen wins ties)
    is correct. IFEval has no single answer to vote on: None there."""
    groups: list[list[dict[str, Any]]] = []
    for r in outs:
        if r["extracted"] is None:
            continue
        for grp in groups:
            same = math_equal(grp[0]["extracted"], r["extracted"]) if grader == "math" else grp[0]["extracted"] == r["extracted"]
            if same:
                grp.append(r)
                break
        else:
            groups.append([r])
    if not groups:
        return False
    best = max(groups, key=len)  # max keeps the first of equal lengths
    return bool(best[0]["correct"])


def bench_model_block(recs: list[dict[str, Any]], grader: str, *, sampled: bool, has_greedy: bool, pass_k: list[int],
                      confidence: float, n_resamples: int, seed: int) -> dict[str, Any]:
    by_prompt: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in recs:
        slot = by_prompt.setdefault(r["prompt_id"], {"greedy": [], "sample": []})
        slot[r["kind"]].append(r)
    greedy = [s["greedy"][0] for s in by_prompt.values() if s["greedy"]]
    samples = {pid: (s["sample"] or s["greedy"]) for pid, s in by_prompt.items()}
    outputs = [r for s in samples.values() for r in s]
    if not sampled:  # greedy only: the greedy records are the outputs
        outputs = greedy
    n_s = min((len(v) for v in samples.values()), default=0)
    per_prompt = [M.mean([float(r["correct"]) for r in v]) or 0.0 for v in samples.values()]
    mean_p1 = M.mean(per_prompt)
    g_correct = sum(bool(r["correct"]) for r in greedy)
    g_acc = M.accuracy([r["correct"] for r in greedy])
    if sampled:
        acc = mean_p1
        ci = M.bootstrap_ci([per_prompt], lambda x: M.mean(x), n_resamples=n_resamples, confidence=confidence, seed=seed)
    else:
        acc = g_acc
        ci = M.wilson_interval(g_correct, len(greedy), confidence)
    pk = {}
    for k in sorted(set(pass_k) | {1}):
        if sampled and 1 <= k <= n_s:
            vals = [M.pass_at_k(len(v), sum(bool(r["correct"]) for r in v), k) for v in samples.values()]
            pk[str(k)] = sum(vals) / len(vals)
    cons = None
    if sampled and grader != "ifeval":
        cons = M.accuracy([_consensus_correct(v, grader) for v in samples.values()])
    ifeval = None
    if grader == "ifeval":
        graded = [r for r in outputs if r.get("grade")]
        inst_s = [x for r in graded for x in r["grade"]["strict"]]
        inst_l = [x for r in graded for x in r["grade"]["loose"]]
        ifeval = {"prompt_strict": M.accuracy([r["correct"] for r in outputs]),
                  "prompt_loose": M.accuracy([bool(r.get("grade") and r["grade"]["loose_all"]) for r in outputs]),
                  "inst_strict": M.accuracy(inst_s), "inst_loose": M.accuracy(inst_l)}
    toks = [r["output_tokens"] for r in outputs if r["output_tokens"] is not None]
    return {
        "n": len(by_prompt), "n_outputs": len(outputs), "n_samples": n_s if sampled else 1,
        "accuracy": acc, "accuracy_ci": list(ci) if ci else None,
        "greedy_accuracy": g_acc if has_greedy else None,
        "mean_pass_at_1": mean_p1 if sampled else None, "pass_at_k": pk, "cons_at_n": cons,
        "truncation_share": M.accuracy([r["truncated"] for r in outputs]),
        "no_closed_thinking_share": M.accuracy([not r["think_closed"] for r in outputs]),
        "unclosed_thinking_share": M.accuracy([r["think_unclosed"] for r in outputs]),
        "tokens_per_answer": M.mean(toks) if toks else None,
        "ifeval": ifeval,
    }


# ------------------------------------------------------------------------------------ models
def _sampling(cfg: Config) -> tuple[Sampling | None, Sampling | None]:
    ec, sc = cfg.eval, cfg.eval.suite
    common = dict(temperature=ec.temperature, top_p=ec.top_p, max_new_tokens=sc.max_new_tokens, seed=ec.seed,
                  stop=tuple(sc.stop))
    greedy = Sampling(n=1, greedy=True, **common) if ec.greedy else None
    sampled = Sampling(n=ec.n_samples, greedy=False, **common) if ec.n_samples > 1 else None
    if greedy is None and sampled is None:
        raise ConfigError("eval.greedy: false needs eval.n_samples > 1 (nothing to generate otherwise)")
    return greedy, sampled


def _run_backend(backend: Any, prompts: list[EvalPrompt], greedy: Sampling | None, sampled: Sampling | None):
    msgs = [p.messages for p in prompts]
    g = backend.generate(msgs, greedy) if greedy else None
    s = backend.generate(msgs, sampled) if sampled else None
    return g, s


def model_backends(cfg: Config):
    """Yield (model name, backend, cleanup) for base and student per ``eval.backend``."""
    ec, bc = cfg.eval, cfg.eval.backend
    if bc.name == "openai_compat":
        from distill_lab.stages.evaluate.backends import OpenAICompatBackend

        if bc.student_model:
            yield "student", OpenAICompatBackend(bc, bc.student_model, progress=ec.progress)
        if ec.include_base and bc.base_model:
            yield "base", OpenAICompatBackend(bc, bc.base_model, progress=ec.progress)
        return
    from distill_lab.stages.evaluate.backends import HFBackend
    from distill_lab.stages.evaluate.placement import use_bf16
    from distill_lab.stages.runtime import load_placed_student

    bf16 = use_bf16(cfg)
    kw = dict(batch_size=ec.batch_size, bf16=bf16, progress=ec.progress)
    if ec.adapter_dir:
        model, tok = load_placed_student(cfg, ec.adapter_dir)
        yield "student", HFBackend(model, tok, label="student", **kw)
        if ec.include_base and hasattr(model, "disable_adapter"):
            with model.disable_adapter():
                yield "base", HFBackend(model, tok, label="base", **kw)
            return
        del model
    if ec.include_base:
        model, tok = load_placed_student(cfg)
        yield "base", HFBackend(model, tok, label="base", **kw)


# ------------------------------------------------------------------------------------ teacher
def teacher_outputs(cfg: Config, prompts: list[EvalPrompt], n: int) -> tuple[list[list[Output]], dict[str, Any]]:
    """The teacher's ``n`` answers per prompt through ``Teacher.complete``: ``generate.concurrency`` in
    flight, retryable errors retried ``teacher.max_retries`` times with the teachers' backoff, and the
    spend capped by ``eval.teacher_max_cost_usd``: a request starts only while the spend so far, the worst
    cases of the requests in flight and its own worst case fit under the cap, so the cap is never crossed.
    Prompts the cap (or an error) left without all ``n`` answers get the ones they have."""
    import asyncio

    from distill_lab.tasks.base import Problem
    from distill_lab.teachers.base import TeacherError
    from distill_lab.teachers.registry import build_teacher
    from distill_lab.teachers.retry import Backoff

    ec, tc = cfg.eval, cfg.teacher
    cap = ec.teacher_max_cost_usd
    teacher = build_teacher(tc)
    work = []
    for j, p in enumerate(prompts):
        system = next((m["content"] for m in p.messages if m["role"] == "system"), None)
        prob = Problem(prompt_id=p.prompt_id, task="freeform", category=p.category, split=p.split,
                       prompt=p.user_text, reference=p.reference, system=system, meta={"source": "eval"})
        work += [(j, k, prob, max_request_cost(teacher.worst_input_tokens(prob), tc.max_tokens, tc.prices)) for k in range(n)]
    worst_total = sum(w[3] for w in work)
    log.info("eval: teacher %s, %d requests; worst case $%.4f, cap %s", tc.model, len(work), worst_total, cap)
    got: dict[tuple[int, int], Output] = {}
    st = {"spent": 0.0, "reserved": 0.0, "in_flight": 0, "failed": 0, "stopped": None, "errors": []}
    backoff = Backoff(base_s=cfg.generate.retry_base_s, cap_s=cfg.generate.retry_cap_s)

    async def go() -> None:
        cond = asyncio.Condition()
        queue = list(reversed(work))

        async def admit(worst: float) -> bool:
            async with cond:
                while cap is not None and st["spent"] + st["reserved"] + worst > cap:
                    if st["in_flight"] == 0:
                        st["stopped"] = (f"eval.teacher_max_cost_usd={cap} reached: the next request could cost up "
                                         f"to ${worst:.4f} (spent ${st['spent']:.4f})")
                        return False
                    await cond.wait()
                st["reserved"] += worst
                st["in_flight"] += 1
                return True

        async def settle(worst: float, cost: float) -> None:
            async with cond:
                st["reserved"] -= worst
                st["in_flight"] -= 1
                st["spent"] += cost
                cond.notify_all()

        async def one(j: int, k: int, prob: Any, worst: float) -> None:
            cost = 0.0
            try:
                for attempt in range(1, tc.max_retries + 2):
                    try:
                        reply = await teacher.complete(prob, k)
                    except TeacherError as e:
                        if e.kind == "spend_limit":
                            st["stopped"] = f"the teacher's API reports its spend limit ({e.reason})"
                            return
                        if e.kind == "retryable" and attempt <= tc.max_retries:
                            await asyncio.sleep(backoff.delay(attempt, e.retry_after))
                            continue
                        st["failed"] += 1
                        st["errors"].append(f"{prob.prompt_id}#{k}: {e.reason}")
                        return
                    cost = usage_cost(reply.usage, tc.prices)
                    if reply.reasoning and not reply.extra.get("thinking_unclosed") and reply.content:
                        text = f"<think>\n{reply.reasoning}\n</think>\n\n{reply.content}"
                    elif reply.reasoning:  # never closed, or cut before any answer
                        text = f"<think>\n{reply.reasoning}"
                    else:
                        text = reply.content
                    got[j, k] = Output(text, int(reply.usage.get("output_tokens") or 0) or None,
                                       truncated=reply.stop_reason == "max_tokens")
                    return
            finally:
                await settle(worst, cost)

        async def worker() -> None:
            while queue and st["stopped"] is None:
                j, k, prob, worst = queue.pop()
                if not await admit(worst):
                    return
                await one(j, k, prob, worst)

        try:
            await teacher.preflight()
            await asyncio.gather(*(worker() for _ in range(min(cfg.generate.concurrency, max(1, len(work))))))
        finally:
            await teacher.aclose()

    asyncio.run(go())
    outs = [[got[j, k] for k in range(n) if (j, k) in got] for j in range(len(prompts))]
    summary = {"teacher": {"provider": tc.provider, "model": tc.model, "effort": tc.effort_name},
               "requests": len(work), "answered": len(got), "cost_usd": round(st["spent"], 6),
               "max_cost_usd": cap, "worst_case_usd": round(worst_total, 6), "stopped": st["stopped"],
               "failed": st["failed"], "errors": st["errors"][:5]}
    return outs, summary


# ------------------------------------------------------------------------------------ the run
def run_benchmark(cfg: Config, run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, float]]:
    """Generate, grade and aggregate one suite; returns (records, benchmark block, timings)."""
    from distill_lab.stages.evaluate.suites.loader import source_name, suite_prompts

    ec, sc = cfg.eval, cfg.eval.suite
    greedy, sampled = _sampling(cfg)
    if ec.backend.name == "hf" and not ec.include_base and not ec.adapter_dir:
        raise ConfigError("eval.adapter_dir: nothing to evaluate (include_base=false and no adapter_dir)")
    if sc.grader == "math":
        try:
            import math_verify  # noqa: F401
        except ImportError as e:
            raise RuntimeError(f"eval/suite={sc.name} grades with math-verify: pip install "
                               f"'distill_lab[bench]' ({e})") from None
    prompts, items = suite_prompts(sc)
    if sc.grader == "ifeval":
        check_ifeval_ready(list(items.values()))
    if ec.teacher_live:  # the teacher's key and settings, before any generation (it is asked last)
        import asyncio

        from distill_lab.teachers.registry import build_teacher

        asyncio.run(build_teacher(cfg.teacher).aclose())
    records: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    backends: dict[str, Any] = {}
    for name, backend in model_backends(cfg):
        t = time.perf_counter()
        g, s = _run_backend(backend, prompts, greedy, sampled)
        timings[name] = time.perf_counter() - t
        backends[name] = backend.describe()
        records += records_for(name, prompts, items, sc.grader, g, s)
    if not backends:
        raise ConfigError("eval.backend.student_model: no model to evaluate (set it, or base_model with "
                          "eval.include_base=true)")
    live = None
    if ec.teacher_live:
        t = time.perf_counter()
        n_teacher = sampled.n if sampled else 1
        outs, live = teacher_outputs(cfg, prompts, n_teacher)
        timings["teacher"] = time.perf_counter() - t
        answered = [(p, o) for p, o in zip(prompts, outs, strict=True) if o]
        tp = [p for p, _ in answered]
        if tp:
            to = [o for _, o in answered]
            if sampled and any(len(o) < n_teacher for o in to):  # a partial prompt: only full sets of samples
                keep = [j for j, o in enumerate(to) if len(o) == n_teacher]
                tp, to = [tp[j] for j in keep], [to[j] for j in keep]
            records += records_for("teacher", tp, items, sc.grader, None if sampled else to, to if sampled else None)
        backends["teacher"] = {"backend": "teacher", "model": cfg.teacher.model, "provider": cfg.teacher.provider}
    kw = dict(pass_k=list(ec.pass_k) + ([sampled.n] if sampled else []), confidence=ec.confidence,
              n_resamples=ec.bootstrap, seed=ec.seed)
    models = {}
    for m in ("base", "student", "teacher"):
        rs = [r for r in records if r["model"] == m]
        if rs:
            models[m] = bench_model_block(rs, sc.grader, sampled=sampled is not None, has_greedy=greedy is not None
                                          and m != "teacher", **kw)
    block = {"suite": sc.name, "source": source_name(sc), "grader": sc.grader, "max_new_tokens": sc.max_new_tokens,
             "stop": list(sc.stop), "protocol": "sampled" if sampled else "greedy",
             "n_samples": sampled.n if sampled else 1,
             "sampling": {"temperature": ec.temperature, "top_p": ec.top_p} if sampled else {"temperature": 0.0},
             "backend": backends, "models": models, "teacher_live": live}
    return records, block, timings
