"""Eval generation throughput: batched (left padding, KV cache) vs one prompt at a time.

Same student, same prompts, same greedy settings; prints wall time, generated tokens per second and
the ratio batched / one-at-a-time (target >= 3x).

    .venv/bin/python benchmarks/eval_throughput.py                          # tiny student, 32 prompts
    .venv/bin/python benchmarks/eval_throughput.py student=smollm2_135m --prompts 16 --max-new-tokens 48 --bf16
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for the student group (default student=tiny)")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (the fast path on this CPU)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from distill_lab.app import conf_path
    from distill_lab.config import register_configs, validate
    from distill_lab.stages.evaluate.decode import generate
    from distill_lab.students import load_student
    from distill_lab.students.chat import render_prompt
    from distill_lab.tasks.base import get_family

    if args.threads:
        torch.set_num_threads(args.threads)
    register_configs()
    overrides = args.overrides or ["student=tiny"]
    with initialize_config_dir(config_dir=str(conf_path()), version_base="1.3"):
        cfg = validate(compose("config", overrides=["stage=eval", *overrides]))
    model, tok = load_student(cfg.student)
    fam = get_family("addition")
    problems = fam.generate("test", args.prompts, random.Random(0))
    prompts = [render_prompt(tok, p.messages()) for p in problems]
    kw = dict(max_new_tokens=args.max_new_tokens, bf16=args.bf16)

    generate(model, tok, prompts[:2], max_new_tokens=4, batch_size=2, bf16=args.bf16)  # warm-up
    rows = {}
    for name, bs in (("batched", args.batch_size), ("one_at_a_time", 1)):
        t0 = time.perf_counter()
        out = generate(model, tok, prompts, batch_size=bs, **kw)
        wall = time.perf_counter() - t0
        ntok = sum(g[0].n_tokens for g in out)
        rows[name] = {"batch_size": bs, "wall_s": round(wall, 2), "new_tokens": ntok,
                      "tokens_per_s": round(ntok / wall, 1),
                      "runaway_share": round(sum(g[0].runaway for g in out) / len(out), 3)}
        print(f"{name:>14}: batch {bs:>3}  {wall:7.2f} s  {ntok:6d} tokens  {ntok / wall:8.1f} tok/s  "
              f"runaway {rows[name]['runaway_share']:.0%}", flush=True)
    ratio = rows["batched"]["tokens_per_s"] / rows["one_at_a_time"]["tokens_per_s"]
    speedup = rows["one_at_a_time"]["wall_s"] / rows["batched"]["wall_s"]
    print(f"ratio batched / one-at-a-time: {ratio:.2f}x tokens/s, {speedup:.2f}x wall time "
          f"(student {cfg.student.name}, {args.prompts} prompts, max_new_tokens {args.max_new_tokens}, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, {torch.get_num_threads()} threads)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"student": cfg.student.name, "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
                       "bf16": args.bf16, "threads": torch.get_num_threads(), **rows,
                       "ratio_tokens_per_s": round(ratio, 2), "ratio_wall": round(speedup, 2)}, f, indent=2)


if __name__ == "__main__":
    main()
