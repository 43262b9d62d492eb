"""A small pipeline sweep with known accuracies and known teacher costs, for the cost and W&B report tests.

Four jobs (effort low/high x dataset size 2/4, seed 0), laid out as ``-m`` writes them: generate/dataset
(rows.jsonl + dataset.json), train/manifest.json (supervised tokens, parameter count), eval/metrics.json.
Every row's prompt is 40 characters and its answer + reasoning 20 (low) or 80 (high) characters, so at 4
characters per token a dataset of n rows holds 10 n input and 5 n / 20 n output tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill_lab.artifacts.dataset import DatasetInfo

ACCURACY = {("low", 2): 0.50, ("low", 4): 0.70, ("high", 2): 0.60, ("high", 4): 0.72}
SUPERVISED = {("low", 2): 100, ("low", 4): 200, ("high", 2): 400, ("high", 4): 800}
OUT_CHARS = {"low": 20, "high": 80}
PARAMS = 1000
EXTRA_SPLITS = 4  # test 2 + ood 2 rows besides the train rows


def rows(effort: str, size: int, usage: dict[str, int] | None = None) -> list[dict]:
    out = []
    for i in range(size + EXTRA_SPLITS):
        split = "train" if i < size else ("test" if i < size + 2 else "ood")
        reasoning = "r" * (OUT_CHARS[effort] - 8)
        out.append({"id": f"{effort}-{size}-{i}", "prompt_id": f"p{i}", "sample_index": 0, "task": "addition",
                    "category": "reasoning", "split": split,
                    "messages": [{"role": "user", "content": "u" * 40},
                                 {"role": "assistant", "content": "12345678", "reasoning_content": reasoning}],
                    "reference": "1", "verified": True, "teacher": {}, "usage": usage or {},
                    "cost_usd": 0.0, "stop_reason": "end_turn", "request_id": None, "created_at": "x"})
    return out


def metrics(acc: float, dataset_dir: str) -> dict:
    def block(a):
        return {"n": 2, "accuracy": a, "accuracy_ci": [max(0.0, a - 0.1), min(1.0, a + 0.1)]}

    student, teacher = {"test": acc, "ood": acc / 2}, {"test": 1.0, "ood": 1.0}
    models = {m: {"overall": block(sum(a.values()) / 2),
                  "splits": {s: {**block(v), "categories": {"reasoning": block(v)}} for s, v in a.items()}}
              for m, a in (("student", student), ("teacher", teacher))}
    retention = {"student": {"overall": {"value": None},
                             "splits": {s: {"all": {"value": student[s]}, "categories": {"reasoning": {"value": student[s]}}}
                                        for s in student}}}
    return {"schema_version": 1, "dataset_dir": dataset_dir, "models": models, "retention": retention}


def fabricate(root: Path, paid_usd_per_row: float = 0.0, extra_usd: dict | None = None) -> Path:
    sweep = root / "multirun" / "effort" / "fixture"
    n = 0
    for effort in ("low", "high"):
        for size in (2, 4):
            job = sweep / str(n)
            (job / ".hydra").mkdir(parents=True)
            (job / ".hydra" / "overrides.yaml").write_text(
                f"- stage=pipeline\n- teacher.effort={effort}\n- recipe.size={size}\n- seed=0\n")
            ds = job / "generate" / "dataset"
            ds.mkdir(parents=True)
            rs = rows(effort, size)
            (ds / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
            DatasetInfo(recipe="arithmetic", size=size, test_size=2, ood_size=2, recipe_seed=0,
                        teacher_provider="oracle", teacher_model="oracle-v1", effort=effort,
                        rows={"train": size, "test": 2, "ood": 2},
                        cost_usd=paid_usd_per_row * len(rs)).write(ds)
            (job / "train").mkdir()
            (job / "train" / "manifest.json").write_text(json.dumps({
                "stage": "train", "config": {}, "host": "fixture-host",
                "summary": {"final_loss": 0.5, "supervised_tokens": SUPERVISED[(effort, size)],
                            "params_total": PARAMS, "params_trainable": 10, "machine": "Fixture CPU, 2 cores",
                            **({"extra_usd": extra_usd} if extra_usd else {})}}))
            (job / "eval").mkdir()
            (job / "eval" / "metrics.json").write_text(json.dumps(metrics(ACCURACY[(effort, size)], str(ds))))
            cfg = {"stage": "pipeline", "seed": 0, "student": {"name": "tiny"},
                   "teacher": {"provider": "oracle", "model": "oracle-v1", "effort": effort}, "recipe": {"size": size}}
            (job / "manifest.json").write_text(json.dumps({"stage": "pipeline", "config": cfg,
                                                           "timings_s": {"total": 10.0 * (n + 1)}, "summary": {}}))
            n += 1
    return sweep


def projected_usd(effort: str, size: int, price_in: float, price_out: float) -> float:
    n = size + EXTRA_SPLITS
    return (10 * n * price_in + (OUT_CHARS[effort] // 4) * n * price_out) / 1e6
