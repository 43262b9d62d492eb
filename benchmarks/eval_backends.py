"""Eval backends side by side: ``hf`` (batched generate here) and ``openai_compat`` (HTTP to a server) on
the same prompts, each against the same speed limit of a local OpenAI-compatible server.

    .venv/bin/python benchmarks/eval_backends.py [--prompts 64] [--answer-tokens 128] [--tokens-per-s 100]
        [--slots 16] [--batch-size 16] [--threads 1] [student=tiny] [--json out.json]

The server (``tests/fake_api/bench_server.py``, its own process) decodes every answer at
``--tokens-per-s`` tokens/s with at most ``--slots`` answers at once: its limit is slots x tokens/s
generated tokens per second. ``openai_compat`` sends the prompts with concurrency = slots; ``hf``
generates the same number of tokens per answer (``max_new_tokens`` = answer tokens, no stop) on the
student here. For each, the script prints generated tokens/s and the ratio to the server's limit:
for ``openai_compat`` how much of the server the client uses (target >= 0.9), for ``hf`` how the local
generate compares with a server of that speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.fake_api (the server module) when run as a script


def start_server(tokens_per_s: float, slots: int, answer_tokens: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_api.bench_server", "--port", "0", "--tokens-per-s",
                             str(tokens_per_s), "--slots", str(slots), "--answer-tokens", str(answer_tokens)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), f"fake server did not start: {line!r}"
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for the student (default student=tiny)")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--answer-tokens", type=int, default=128)
    ap.add_argument("--tokens-per-s", type=float, default=100.0)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from hydra import compose, initialize_config_dir

    from distill_lab.app import conf_path
    from distill_lab.config import register_configs, validate
    from distill_lab.stages.evaluate.backends import HFBackend, OpenAICompatBackend, Sampling
    from distill_lab.stages.evaluate.suites.config import EvalBackendConfig, SuiteConfig
    from distill_lab.stages.evaluate.suites.loader import suite_prompts
    from distill_lab.students import load_student

    torch.set_num_threads(args.threads)
    sc = SuiteConfig(name="math500", path=str(REPO / "tests/fixtures/benchmarks/math500.jsonl"),
                     prompt_template="{question}\nPlease reason step by step, and put your final answer within \\boxed{}.")
    base = suite_prompts(sc)[0]
    msgs = [[{"role": "user", "content": f"{base[i % len(base)].user_text} (#{i})"}] for i in range(args.prompts)]
    s = Sampling(n=1, greedy=True, temperature=0.0, top_p=1.0, max_new_tokens=args.answer_tokens, seed=0)
    limit = args.slots * args.tokens_per_s
    proc, url = start_server(args.tokens_per_s, args.slots, args.answer_tokens)
    rows = []
    try:
        cfg = EvalBackendConfig(name="openai_compat", base_url=f"{url}/v1", student_model="student",
                                concurrency=args.slots)
        be = OpenAICompatBackend(cfg, "student")
        be.generate(msgs[:2], s)  # warm-up: connections, imports
        t0 = time.perf_counter()
        out = be.generate(msgs, s)
        wall = time.perf_counter() - t0
        ntok = sum(o[0].n_tokens or 0 for o in out)
        rows.append({"backend": "openai_compat", "concurrency": args.slots, "wall_s": round(wall, 2),
                     "tokens": ntok, "tokens_per_s": round(ntok / wall, 1), "ratio_to_limit": round(ntok / wall / limit, 3)})
    finally:
        proc.kill()
        proc.wait()
    register_configs()
    with initialize_config_dir(config_dir=str(conf_path()), version_base="1.3"):
        ecfg = validate(compose("config", overrides=["stage=eval", *(args.overrides or ["student=tiny"])]))
    model, tok = load_student(ecfg.student)
    hf = HFBackend(model, tok, batch_size=args.batch_size, bf16=False, progress=False, label=ecfg.student.name)
    hf.generate(msgs[:2], Sampling(n=1, greedy=True, temperature=0, top_p=1, max_new_tokens=4, seed=0))  # warm-up
    t0 = time.perf_counter()
    out = hf.generate(msgs, s)
    wall = time.perf_counter() - t0
    ntok = sum(o[0].n_tokens or 0 for o in out)
    rows.append({"backend": f"hf ({ecfg.student.name}, batch {args.batch_size}, {args.threads} thread(s))",
                 "concurrency": args.batch_size, "wall_s": round(wall, 2), "tokens": ntok,
                 "tokens_per_s": round(ntok / wall, 1), "ratio_to_limit": round(ntok / wall / limit, 3)})
    print(f"server limit: {args.slots} slots x {args.tokens_per_s:g} tokens/s = {limit:g} tokens/s; "
          f"{args.prompts} prompts x {args.answer_tokens} tokens")
    print(f"{'backend':44} {'wall s':>7} {'tokens':>7} {'tokens/s':>9} {'ratio to limit':>15}")
    for r in rows:
        print(f"{r['backend']:44} {r['wall_s']:7.2f} {r['tokens']:7d} {r['tokens_per_s']:9.1f} {r['ratio_to_limit']:15.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"limit_tokens_per_s": limit, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
