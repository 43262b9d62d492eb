"""RL rollout throughput: the rl stage's own rollouts (TRL's GRPOTrainer generating with HF ``generate``,
KV cache, one batch of prompts_per_step x group_size sampled completions) against llama.cpp
(``llama-cpp-python``) serving the same student exported to GGUF (``stages/train/gguf_export.py``).

Same prompts (held-out additions, rendered with the student's chat template, thinking on), same number
of completions, same token budget, temperature 1, same CPU and thread count. Prints completion tokens/s
of each and the ratio (goal: HF rollouts >= 1x llama.cpp at the rollout batch size).

llama-cpp-python's high-level API (and its server) decodes one sequence at a time, so its figure is
the B completions generated one after another: what a client of that server gets for one rollout batch.
It is not installed by the project (no wheel for this platform: it builds from source with the machine's
cc and cmake, several minutes): ``pip install 'llama-cpp-python>=0.3,<0.4'``. Without it the script
prints the HF figure and says that llama.cpp was not run.

    .venv/bin/python benchmarks/rl_rollout_throughput.py                         # tiny student
    .venv/bin/python benchmarks/rl_rollout_throughput.py student=smollm2_135m --prompts 4 --group 4 \\
        --max-new-tokens 64 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import torch


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"), "load_avg": os.getloadavg()[0]}


def hf_rollouts(cfg, prompts_per_step: int, group: int, max_new: int, work: Path) -> dict:
    """One rollout batch through the rl stage's trainer (its exact generation path)."""
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
    trainer = build_trainer(cfg, model, tok, ps, texts, stops, work / "ck", False)
    prompt_ids = [tok(t)["input_ids"] for t in texts for _ in range(group)]  # TRL repeats each prompt G times
    trainer._generate_single_turn(prompt_ids[:2], None, {}, group)  # warm-up
    t0 = time.perf_counter()
    completion_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, group)
    wall = time.perf_counter() - t0
    n = sum(len(c) for c in completion_ids)
    return {"texts": texts, "completions": len(completion_ids), "tokens": n, "wall_s": round(wall, 2),
            "tokens_per_s": round(n / wall, 1), "model": model, "tokenizer": tok}


def llama_cpp_rollouts(model, tok, texts: list[str], group: int, max_new: int, threads: int, work: Path,
                       dtype: str) -> dict:
    from llama_cpp import Llama

    from distill_lab.stages.train.gguf_export import write_gguf

    hf_dir = work / "hf"
    base = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    base.save_pretrained(str(hf_dir))
    tok.save_pretrained(str(hf_dir))
    gguf = write_gguf(hf_dir, work / "student.gguf", dtype=dtype)
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False, seed=0)
    llm.create_completion(texts[0], max_tokens=4)  # warm-up
    n, t0 = 0, time.perf_counter()
    for text in texts:
        for _ in range(group):
            out = llm.create_completion(text, max_tokens=max_new, temperature=1.0, top_p=1.0, top_k=0,
                                        stop=["<|im_end|>"])
            n += out["usage"]["completion_tokens"]
    wall = time.perf_counter() - t0
    return {"completions": len(texts) * group, "tokens": n, "wall_s": round(wall, 2),
            "tokens_per_s": round(n / wall, 1), "gguf_dtype": dtype}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (default student=tiny)")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per rollout batch (rl.prompts_per_step)")
    ap.add_argument("--group", type=int, default=4, help="completions per prompt (rl.group_size)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gguf-dtype", default="f32", help="f32 (the HF side's precision), f16, bf16 or q8_0")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from distill_lab.app import compose_config

    cfg = compose_config([*(args.overrides or ["student=tiny"]), "hardware=cpu_fp32",
                          f"rl.prompts_per_step={args.prompts}", f"rl.group_size={args.group}",
                          f"rl.max_completion_tokens={args.max_new_tokens}"], stage="rl")
    result: dict = {"student": cfg.student.name, "batch": args.prompts * args.group,
                    "max_new_tokens": args.max_new_tokens, "machine": machine()}
    with tempfile.TemporaryDirectory() as d:
        hf = hf_rollouts(cfg, args.prompts, args.group, args.max_new_tokens, Path(d))
        model, tok, texts = hf.pop("model"), hf.pop("tokenizer"), hf.pop("texts")
        result["hf_generate"] = hf
        print(f"HF generate (rl stage rollouts): {hf['tokens']} tokens in {hf['wall_s']} s = {hf['tokens_per_s']} tok/s")
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            result["llama_cpp"] = None
            print("llama.cpp: not run (llama-cpp-python is not installed: pip install 'llama-cpp-python>=0.3,<0.4')")
        else:
            lc = llama_cpp_rollouts(model, tok, texts, args.group, args.max_new_tokens,
                                    args.threads or torch.get_num_threads(), Path(d), args.gguf_dtype)
            result["llama_cpp"] = lc
            result["ratio_hf_over_llama_cpp"] = round(hf["tokens_per_s"] / lc["tokens_per_s"], 2)
            print(f"llama.cpp ({args.gguf_dtype}): {lc['tokens']} tokens in {lc['wall_s']} s = "
                  f"{lc['tokens_per_s']} tok/s; HF / llama.cpp = {result['ratio_hf_over_llama_cpp']}x")
    print(json.dumps(result["machine"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
