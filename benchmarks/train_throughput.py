"""Training throughput: distill_lab's trainer vs TRL's SFTTrainer, same student, rows, LoRA, batch, precision.

    .venv/bin/python benchmarks/train_throughput.py [--students tiny,smollm2_135m] [--rows 400]
        [--precision bf16,fp32] [--packing no,yes] [--threads 2] [--repeats N] [--json out.json]

The parent builds one oracle dataset (the real generate stage) whose rows range from short to long
(MIX_FAMILIES: 114-404 tokens for SmolLM2, mean 251, like the issue's 40-450), then runs each
(student, precision, packing, trainer) case in its own child process (so peak RSS is per case) for
one epoch over the rows (batch 8, LoRA r16 alpha 32 on all linear layers, lr 1e-3, max_length 512).
Both trainers get the same token ids and the same assistant-only masks (TRL receives them
pre-tokenized as ``input_ids`` + ``assistant_masks``). Printed: supervised (real, loss-bearing) tokens
per second of training time (model loading excluded), peak RSS, and the ratio ours / TRL per case.

``ours`` runs at the precision asked for (``hardware.precision`` forced, no automatic choice) with the
backend ``--kernels`` (default auto: ``cpu_fast``), and checks the run's summary says so. After the
cases, each trainer's best precision is compared with the other's (``best_vs_best``).

Trainers (``--impls``): ``ours`` (defaults: unpacked batches are padding-free), ``trl`` (SFTTrainer
defaults apart from what is set above: unpacked batches padded to their longest row) and ``trl_pf``
(``padding_free=True``, TRL's own padding-free unpacked mode; unpacked only). Gradient checkpointing is
set the same for all (``--grad-ckpt``; TRL's own default would be on).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
BATCH, LR, MAX_LEN = 8, 1e-3, 512
MIX_FAMILIES = ("[{name:addition,params:{digits:1,ood_digits:2}},{name:addition,params:{digits:6,ood_digits:7}},"
                "{name:multiplication,params:{digits:3,ood_digits:4}},"
                "{name:ordering,params:{min_hops:2,max_hops:8,ood_hops:[9,10]}},"
                "{name:word_problems,params:{min_steps:2,max_steps:6,ood_steps:[7,8]}}]")


def compose(overrides: list[str], stage: str):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from distill_lab.app import conf_path
    from distill_lab.config import register_configs, validate

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_path()), version_base="1.3"):
        return validate(hcompose("config", overrides=[f"stage={stage}", *overrides]))


def make_dataset(out: Path, rows: int) -> Path:
    from distill_lab.stages.common import run_stage

    if not (out / "dataset" / "rows.jsonl").is_file():
        # short and long families, so rows range from a one-line sum to a long multi-step trace
        cfg = compose(["teacher=oracle", f"recipe.families={MIX_FAMILIES}", f"recipe.size={rows}",
                       "recipe.test_size=0", "recipe.ood_size=0",
                       "teacher.effort=high", f"run_dir={out}", "generate.progress=false"], "generate")
        run_stage("generate", cfg, out)
    return out / "dataset"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_ours(args) -> dict:
    from distill_lab.stages.common import run_stage

    prec = "bf16-mixed" if args.precision == "bf16" else "32-true"  # forced: no fallback, no auto
    run = Path(tempfile.mkdtemp(prefix="bench-ours-", dir=args.scratch))
    cfg = compose([f"student={args.student}", "hardware=cpu", f"hardware.precision={prec}",
                   f"hardware.kernels={args.kernels}", f"hardware.threads={args.threads}",
                   f"train.dataset_dir={args.data}", f"run_dir={run}", f"train.batch_size={BATCH}",
                   "train.epochs=1", f"optimizer.lr={LR}", "optimizer.warmup_steps=0",
                   f"data.max_length={MAX_LEN}", f"data.packing={str(args.packing == 'yes').lower()}",
                   "student.lora.r=16", "student.lora.alpha=32",
                   f"train.gradient_checkpointing={str(args.grad_ckpt == 'yes').lower()}"], "train")
    res = run_stage("train", cfg, run)
    log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert res.summary["precision"] == prec, res.summary["precision"]  # the precision asked for is the one that ran
    return {"supervised_tokens": res.summary["supervised_tokens"], "time_s": sum(r["time_s"] for r in log),
            "steps": len(log), "padding_share": res.summary["padding_share"], "peak_rss_mb": peak_rss_mb(),
            "backend": res.summary["backend"]["backend"], "precision_ran": res.summary["precision"]}


def child_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from distill_lab.artifacts.rows import load_rows
    from distill_lab.stages.train.features import build_examples
    from distill_lab.students import load_student

    torch.set_num_threads(args.threads)
    cfg = compose([f"student={args.student}", f"data.max_length={MAX_LEN}"], "train")
    model, tok = load_student(cfg.student, dtype="float32")
    examples, stats = build_examples(load_rows(args.data, split="train"), tok, cfg.data)
    ds = Dataset.from_list([{"input_ids": e.input_ids, "assistant_masks": [int(x != -100) for x in e.labels]}
                            for e in examples])
    supervised = sum(sum(1 for x in e.labels[1:] if x != -100) for e in examples)

    class Clock(TrainerCallback):
        t0 = t1 = None

        def on_train_begin(self, *a, **k):
            Clock.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            Clock.t1 = time.perf_counter()

    sft = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-", dir=args.scratch), per_device_train_batch_size=BATCH,
                    num_train_epochs=1, learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0,
                    # rows are already cut to MAX_LEN; TRL refuses padding_free + max_length without packing
                    max_length=None if args.child == "trl_pf" else MAX_LEN, packing=args.packing == "yes",
                    padding_free=args.packing == "yes" or args.child == "trl_pf", bf16=args.precision == "bf16",
                    use_cpu=True, save_strategy="no", report_to=[], logging_steps=10_000,
                    dataloader_num_workers=0, seed=0, gradient_checkpointing=args.grad_ckpt == "yes")
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=sft, train_dataset=ds, processing_class=tok, peft_config=peft,
                         callbacks=[Clock()])
    trainer.train()
    return {"supervised_tokens": supervised, "time_s": Clock.t1 - Clock.t0, "steps": trainer.state.global_step,
            "padding_share": None, "peak_rss_mb": peak_rss_mb()}


def run_child(impl: str, student: str, precision: str, packing: str, data: Path, threads: int,
              grad_ckpt: str, kernels: str = "auto") -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as scratch:  # run dirs and TRL output, removed after
        cmd = [sys.executable, __file__, "--child", impl, "--students", student, "--precision", precision,
               "--packing", packing, "--data", str(data), "--threads", str(threads), "--grad-ckpt", grad_ckpt,
               "--kernels", kernels,
               "--scratch", scratch]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{impl}/{student}/{precision}/{packing} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def best_vs_best(results: list[dict]) -> list[dict]:
    """Per student and packing: ours at its fastest precision against TRL at its fastest (what a user who
    picks each trainer's best setting on this machine gets)."""
    out = []
    for key in sorted({(r["student"], r["packing"]) for r in results}):
        rows = [r for r in results if (r["student"], r["packing"]) == key and "ours" in r and "trl" in r]
        if not rows:
            continue
        ours = max(rows, key=lambda r: r["ours"]["tokens_per_s"])
        trl = max(rows, key=lambda r: r["trl"]["tokens_per_s"])
        out.append({"student": key[0], "packing": key[1], "ours_precision": ours["precision"],
                    "ours": ours["ours"]["tokens_per_s"], "trl_precision": trl["precision"],
                    "trl": trl["trl"]["tokens_per_s"],
                    "ratio": ours["ours"]["tokens_per_s"] / trl["trl"]["tokens_per_s"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", default="tiny,smollm2_135m")
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--precision", default="bf16,fp32")
    ap.add_argument("--packing", default="no,yes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impls", default="ours,trl,trl_pf")
    ap.add_argument("--grad-ckpt", default="no", choices=["no", "yes"],
                    help="gradient checkpointing for both trainers (TRL's own default is on)")
    ap.add_argument("--kernels", default="auto", choices=["auto", "reference", "cpu_fast"],
                    help="our trainer's backend (hardware.kernels)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--repeats", type=int, default=1,
                    help="run each case's trainers this many times, interleaved (ours, trl, ours, trl, ...); "
                         "tokens/s and ratios are then medians (this VM's speed drifts by 10-15%%)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.student, args.data = args.students, Path(args.data)
        res = (child_ours if args.child == "ours" else child_trl)(args)  # trl, trl_pf
        print("RESULT " + json.dumps(res), flush=True)
        return

    data = Path(args.data) if args.data else make_dataset(Path(tempfile.mkdtemp(prefix="bench-data-")), args.rows)
    results = []
    print(f"{'student':<14}{'prec':<6}{'packed':<8}{'impl':<6}{'sup tok/s':>11}{'time s':>9}{'steps':>7}"
          f"{'peak RSS MB':>13}{'pad share':>11}")
    for student in args.students.split(","):
        for precision in args.precision.split(","):
            for packing in args.packing.split(","):
                row = {"student": student, "precision": precision, "packing": packing}
                impls = [i for i in args.impls.split(",") if not (i == "trl_pf" and packing == "yes")]
                runs: dict[str, list[dict]] = {i: [] for i in impls}  # trl_pf: TRL packs padding-free already
                for _ in range(args.repeats):
                    for impl in impls:
                        r = run_child(impl, student, precision, packing, data, args.threads, args.grad_ckpt,
                                      args.kernels)
                        r["tokens_per_s"] = r["supervised_tokens"] / r["time_s"]
                        runs[impl].append(r)
                        pad = f"{r['padding_share']:.3f}" if r["padding_share"] is not None else "-"
                        print(f"{student:<14}{precision:<6}{packing:<8}{impl:<6}{r['tokens_per_s']:>11.1f}"
                              f"{r['time_s']:>9.1f}{r['steps']:>7}{r['peak_rss_mb']:>13.0f}{pad:>11}", flush=True)
                for impl, rs in runs.items():
                    row[impl] = {"tokens_per_s": median([r["tokens_per_s"] for r in rs]),
                                 "peak_rss_mb": max(r["peak_rss_mb"] for r in rs), "runs": rs}
                for peer in ("trl", "trl_pf"):
                    if "ours" in row and peer in row:
                        # repeat k of ours against repeat k of the peer: neighbours in time, so drift cancels
                        pairs = [o["tokens_per_s"] / p["tokens_per_s"]
                                 for o, p in zip(runs["ours"], runs[peer], strict=True)]
                        row[f"ratio_{peer}"] = median(pairs)
                        row[f"ratio_{peer}_runs"] = pairs
                        row[f"rss_ratio_{peer}"] = row["ours"]["peak_rss_mb"] / row[peer]["peak_rss_mb"]
                        spread = f" (runs: {', '.join(f'{x:.2f}' for x in pairs)})" if len(pairs) > 1 else ""
                        print(f"  -> ours / {peer}: {row[f'ratio_{peer}']:.2f}x supervised tokens/s{spread}, "
                              f"peak RSS {row[f'rss_ratio_{peer}']:.2f}x", flush=True)
                results.append(row)
    best = best_vs_best(results)
    for b in best:
        print(f"{b['student']}, packed={b['packing']}: ours at its best precision ({b['ours_precision']}, "
              f"{b['ours']:.1f} sup tok/s) / TRL at its best ({b['trl_precision']}, {b['trl']:.1f}): "
              f"{b['ratio']:.2f}x", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": args.rows, "threads": args.threads, "repeats": args.repeats,
                                               "cases": results, "best_vs_best": best},
                                              indent=1))


if __name__ == "__main__":
    main()
