"""RL rollout throughput: the rl stage's own rollouts (TRL's GRPOTrainer generating with HF ``generate``,
KV cache, one batch of prompts_per_step x group_size sampled completions) against llama.cpp
(``llama-cpp-python``) serving the same student exported to GGUF (``stages/train/gguf_export.py``).

Same prompt token ids (held-out additions, rendered with the student's chat template, thinking on), same
number of completions, same token budget, temperature 1 (no top-k / top-p), same CPU and thread count.
Tokens counted on both sides: every sampled token, the end-of-turn token included. Prints completion
tokens/s of each and the ratio (goal: HF rollouts >= 1x llama.cpp at the rollout batch size).

llama.cpp is run two ways (the second with and without a unified KV buffer, ``kv_unified``):
- ``sequential``: the high-level ``Llama.create_completion``, one completion after another (what its
  server gives one client: it serves one request at a time);
- ``batched``: llama.cpp's own batched decoding through the low-level API (the ``batched`` example's
  scheme): all B sequences in one context (``n_seq_max = B``), one ``llama_decode`` a step over one
  token of every unfinished sequence, each sampled from its logits by a ``dist`` sampler. That is the
  best llama.cpp offers for B rollouts, and the figure the goal is checked against.

llama-cpp-python is not installed by the project (no wheel for this platform: it builds from source with
the machine's cc and cmake, several minutes): ``pip install 'llama-cpp-python>=0.3,<0.4'``. Without it
the script prints the HF figure and says that llama.cpp was not run. ``--profile N`` adds the N ops
that took the most CPU time in the HF rollout batch (torch.profiler).

``--rollout-precision fp32,bf16`` builds the rl stage's trainer once per ``rl.rollout_precision`` (bf16:
a bf16 copy of the merged weights, ``stages/rl/rollout_precision.py``), ``--gguf-dtype f32,bf16`` exports
one GGUF per precision, and ``--repeats N`` runs every HF and llama.cpp configuration N times,
interleaved; the ratios are taken between the best of the repeats, per HF precision against each GGUF
precision's best llama.cpp way, and overall.

    .venv/bin/python benchmarks/rl_rollout_throughput.py                         # tiny student
    .venv/bin/python benchmarks/rl_rollout_throughput.py student=smollm2_135m --prompts 4 --group 4 \\
        --max-new-tokens 64 --threads 1 --rollout-precision fp32,bf16 --gguf-dtype f32,bf16 \\
        --llama-cpp batched,batched_unified --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import tempfile
import time
from pathlib import Path

import torch


def machine(threads: int) -> dict:
    """The machine in the project's words (``run_cost.machine``) plus what this run's figures depend on."""
    from distill_lab.artifacts.run_cost import machine as describe
    from distill_lab.backends.precision import cpu_flags

    simd = sorted(f for f in cpu_flags() or () if f.startswith(("avx", "amx", "fma")))
    return {"machine": describe(), "simd_flags": simd, "threads": threads, "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def hf_rollouts(cfg, prompts_per_step: int, group: int, work: Path, profile: int = 0) -> dict:
    """The rl stage's trainer (its exact generation path) built once; ``out["run"]()`` times one rollout batch."""
    from distill_lab.stages.rl.prompts import RLPrompt
    from distill_lab.stages.rl.run import build_trainer, render_prompts, stop_ids
    from distill_lab.students.loader import load_student
    from distill_lab.tasks.base import get_family

    model, tok = load_student(cfg.student, for_training=True)
    stops = stop_ids(tok, model)
    model.generation_config.eos_token_id = stops
    fam = get_family("addition")
    ps = [RLPrompt(p.prompt_id, "addition", p.reference, p.messages())
          for p in fam.generate("test", prompts_per_step, random.Random(0))]
    texts = render_prompts(tok, ps)
    t0 = time.perf_counter()
    trainer = build_trainer(cfg, model, tok, ps, texts, stops, work / "ck", False)
    build_s = time.perf_counter() - t0
    prompt_ids = [tok(t)["input_ids"] for t in texts for _ in range(group)]  # TRL repeats each prompt G times
    t0 = time.perf_counter()
    trainer._generate_single_turn(prompt_ids[:2], None, {}, group)  # warm-up (and the bf16 copy's first refresh)
    warm_s = time.perf_counter() - t0

    def run() -> dict:
        torch.manual_seed(0)  # every repeat draws from one RNG state (llama.cpp's side: dist sampler, seed 0)
        t0 = time.perf_counter()
        completion_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, group)
        wall = time.perf_counter() - t0
        n = sum(len(c) for c in completion_ids)
        return {"tokens": n, "wall_s": round(wall, 2), "tokens_per_s": round(n / wall, 1),
                "load_avg_1m_after": round(os.getloadavg()[0], 2)}

    out = {"prompt_ids": prompt_ids, "stops": stops, "model": model, "tokenizer": tok, "run": run,
           "rollout_weights": trainer.rollout_weights,  # merged LoRA or not (rl.merge_for_rollouts)
           "rollout_precision": trainer.rollout_precision, "rollout_precision_why": trainer.rollout_precision_why,
           "build_s": round(build_s, 2), "warmup_s": round(warm_s, 2),
           "completions": len(prompt_ids), "prompt_tokens": sum(map(len, prompt_ids))}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer._generate_single_turn(prompt_ids, None, {}, group)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=profile))
    return out


def export_gguf(model, tok, work: Path, dtype: str) -> Path:
    """The student as llama.cpp gets it: LoRA merged into the base weights, written by ``write_gguf``."""
    from distill_lab.stages.train.gguf_export import write_gguf

    hf_dir = work / "hf"
    base = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    base.save_pretrained(str(hf_dir))
    tok.save_pretrained(str(hf_dir))
    return write_gguf(hf_dir, work / "student.gguf", dtype=dtype)


def llama_cpp_sequential(gguf: Path, prompt_ids: list[list[int]], max_new: int, threads: int) -> dict:
    """The high-level API, one completion after another (as its server serves one client)."""
    from llama_cpp import Llama

    n_ctx = max(map(len, prompt_ids)) + max_new + 8
    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=512,
                verbose=False, seed=0)
    try:
        llm.create_completion(prompt_ids[0], max_tokens=4)  # warm-up
        n, t0 = 0, time.perf_counter()
        for i, ids in enumerate(prompt_ids):
            llm.set_seed(i)  # one fixed seed would draw the same completion for the G copies of a prompt
            out = llm.create_completion(ids, max_tokens=max_new, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0)
            # completion_tokens leaves out the end-of-turn token; the HF count includes it
            n += out["usage"]["completion_tokens"] + (out["choices"][0]["finish_reason"] == "stop")
        wall = time.perf_counter() - t0
    finally:
        llm.close()
    return {"api": "Llama.create_completion, one sequence at a time", "completions": len(prompt_ids),
            "tokens": n, "wall_s": round(wall, 2), "tokens_per_s": round(n / wall, 1)}


def llama_cpp_batched(gguf: Path, prompt_ids: list[list[int]], max_new: int, threads: int, stops: list[int],
                      kv_unified: bool, seed: int = 0, greedy: bool = False) -> dict:
    """All sequences decoded together through llama.cpp's low-level API (its ``batched`` example's scheme):
    one prefill ``llama_decode`` over every prompt, then one ``llama_decode`` a step over the last token of
    every unfinished sequence, each sampled (temperature 1) by a ``dist`` sampler from its own logits."""
    import llama_cpp as L  # noqa: N812

    B = len(prompt_ids)  # noqa: N806
    n_prompt = sum(map(len, prompt_ids))
    L.llama_backend_init()
    model = L.llama_model_load_from_file(str(gguf).encode(), L.llama_model_default_params())
    if not model:
        raise RuntimeError(f"llama.cpp could not load {gguf}")
    vocab = L.llama_model_get_vocab(model)
    cp = L.llama_context_default_params()
    cp.n_seq_max, cp.kv_unified = B, kv_unified
    cp.n_ctx = B * (max(map(len, prompt_ids)) + max_new + 8)  # split per sequence when not unified
    cp.n_batch = max(n_prompt, B)
    cp.n_ubatch = min(cp.n_batch, 512)
    cp.n_threads = cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise RuntimeError("llama.cpp: could not create the context")
    batch = L.llama_batch_init(cp.n_batch, 0, 1)
    sampler = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
    # dist: a draw from the softmax of the raw logits (temperature 1); greedy: argmax (for checking the scheme)
    L.llama_sampler_chain_add(sampler, L.llama_sampler_init_greedy() if greedy else L.llama_sampler_init_dist(seed))

    def add(token: int, pos: int, seq: int) -> int:
        i = batch.n_tokens
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, 0
        batch.n_tokens += 1
        return i

    def decode() -> None:
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def run() -> tuple[int, float, float]:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        t0 = time.perf_counter()
        batch.n_tokens = 0
        logit_at = {}
        for s, ids in enumerate(prompt_ids):
            for p, t in enumerate(ids):
                i = add(t, p, s)
            batch.logits[i] = 1
            logit_at[s] = i
        decode()
        t_prefill = time.perf_counter() - t0
        n_past = [len(ids) for ids in prompt_ids]
        out: list[list[int]] = [[] for _ in range(B)]
        while logit_at:
            batch.n_tokens = 0
            nxt = {}
            for s, i in logit_at.items():
                t = L.llama_sampler_sample(sampler, ctx, i)
                out[s].append(t)
                if t in stops or L.llama_vocab_is_eog(vocab, t) or len(out[s]) == max_new:
                    continue
                nxt[s] = add(t, n_past[s], s)
                batch.logits[nxt[s]] = 1
                n_past[s] += 1
            logit_at = nxt
            if logit_at:
                decode()
        return sum(map(len, out)), time.perf_counter() - t0, t_prefill, out

    try:
        run()  # warm-up: the same batch once
        n, wall, prefill, completions = run()
    finally:
        L.llama_sampler_free(sampler)
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(model)
    return {"api": f"low-level llama_decode over {B} sequences (n_seq_max={B}, kv_unified={kv_unified})",
            "completions": B, "tokens": n, "wall_s": round(wall, 2), "prefill_s": round(prefill, 2),
            "tokens_per_s": round(n / wall, 1), "completion_ids": completions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (default student=tiny)")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per rollout batch (rl.prompts_per_step)")
    ap.add_argument("--group", type=int, default=4, help="completions per prompt (rl.group_size)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rollout-precision", default="fp32",
                    help="rl.rollout_precision of the HF side, comma-separated: fp32, bf16, auto")
    ap.add_argument("--gguf-dtype", default="f32",
                    help="GGUF precisions of the llama.cpp side, comma-separated: f32, f16, bf16, q8_0")
    ap.add_argument("--llama-cpp", default="sequential,batched,batched_unified",
                    help="llama.cpp ways to run, comma-separated: sequential, batched, batched_unified")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved repeats of every HF and llama.cpp run")
    ap.add_argument("--profile", type=int, default=0, help="print the N ops with most CPU time in the HF batch")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = args.threads or torch.get_num_threads()
    from distill_lab.app import compose_config

    precisions = [p for p in args.rollout_precision.split(",") if p]
    dtypes = [d for d in args.gguf_dtype.split(",") if d]
    ways = [w for w in args.llama_cpp.split(",") if w]
    for w in ways:
        if w not in ("sequential", "batched", "batched_unified"):
            raise SystemExit(f"--llama-cpp: unknown way {w!r} (sequential, batched, batched_unified)")
    result: dict = {"batch": args.prompts * args.group, "max_new_tokens": args.max_new_tokens,
                    "machine": machine(threads), "hf_generate": {}, "llama_cpp": None}
    with tempfile.TemporaryDirectory() as d:
        hf = {}
        for p in precisions:
            cfg = compose_config([*(args.overrides or ["student=tiny"]), "hardware=cpu_fp32",
                                  f"rl.prompts_per_step={args.prompts}", f"rl.group_size={args.group}",
                                  f"rl.max_completion_tokens={args.max_new_tokens}", f"rl.rollout_precision={p}"],
                                 stage="rl")
            result["student"] = cfg.student.name
            hf[p] = hf_rollouts(cfg, args.prompts, args.group, Path(d) / p, args.profile)
        first = hf[precisions[0]]
        model, tok, prompt_ids, stops = (first[k] for k in ("model", "tokenizer", "prompt_ids", "stops"))
        try:
            import llama_cpp
        except ImportError:
            llama_cpp = None
            print("llama.cpp: not run (llama-cpp-python is not installed: pip install 'llama-cpp-python>=0.3,<0.4')")
        ggufs = {}
        if llama_cpp is not None and ways:  # --llama-cpp '': the HF figure only
            for dt in dtypes:
                ggufs[dt] = export_gguf(copy.deepcopy(model), tok, Path(d) / f"gguf-{dt}", dt)
            result["llama_cpp"] = {"version": llama_cpp.__version__}
        runs: dict = {}
        for r in range(args.repeats):
            for p, h in hf.items():
                x = h["run"]()
                runs.setdefault(("hf", p), []).append(x)
                print(f"[{r}] HF generate (rl stage rollouts, {h['rollout_weights']} weights, {h['rollout_precision']}): "
                      f"{x['tokens']} tokens in {x['wall_s']} s = {x['tokens_per_s']} tok/s (load {x['load_avg_1m_after']})",
                      flush=True)
            for dt, gguf in ggufs.items():
                for way in ways:
                    if way == "sequential":
                        x = llama_cpp_sequential(gguf, prompt_ids, args.max_new_tokens, threads)
                    else:
                        x = llama_cpp_batched(gguf, prompt_ids, args.max_new_tokens, threads, stops,
                                              kv_unified=way == "batched_unified")
                    x.pop("completion_ids", None)
                    x["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
                    runs.setdefault((way, dt), []).append(x)
                    print(f"[{r}] llama.cpp {way} ({dt}; {x['api']}): {x['tokens']} tokens in {x['wall_s']} s = "
                          f"{x['tokens_per_s']} tok/s (load {x['load_avg_1m_after']})", flush=True)

        def best(key) -> float:
            return max(x["tokens_per_s"] for x in runs[key])

        for p, h in hf.items():
            result["hf_generate"][p] = {k: v for k, v in h.items()
                                        if k not in ("model", "tokenizer", "prompt_ids", "stops", "run")}
            result["hf_generate"][p]["runs"] = runs[("hf", p)]
        if ggufs:
            for dt in ggufs:
                result["llama_cpp"][dt] = {way: runs[(way, dt)] for way in ways}
            print(f"best of {args.repeats} repeat(s), tok/s:")
            ratios = {}
            for p in hf:
                for dt in ggufs:
                    way = max(ways, key=lambda w, dt=dt: best((w, dt)))
                    ratios[f"{p}/{dt}"] = round(best(("hf", p)) / best((way, dt)), 2)
                    print(f"  HF {p} {best(('hf', p))} / llama.cpp {dt} {way} {best((way, dt))} = {ratios[f'{p}/{dt}']}x")
            top_l = max(((w, dt) for w in ways for dt in ggufs), key=best)
            top_h = max(hf, key=lambda p: best(("hf", p)))
            result["ratios_hf_over_best_llama_cpp"] = ratios
            result["ratio_best_hf_over_best_llama_cpp"] = round(best(("hf", top_h)) / best(top_l), 2)
            print(f"best HF ({top_h}) / best llama.cpp ({top_l[0]}, {top_l[1]}) = "
                  f"{result['ratio_best_hf_over_best_llama_cpp']}x (goal >= 1x)")
    print(json.dumps(result["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
