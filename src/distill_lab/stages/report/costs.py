"""Each sweep run's cost record (``artifacts/run_cost.RunCost``) from what the run left on disk.

- teacher spend: ``dataset.json``'s ``cost_usd`` when the teacher was paid; otherwise, with
  ``report.projected_price_model`` set, the dataset rows' tokens priced at that model's list prices
  (``teachers/cost.projected_cost``), labelled projected;
- supervised tokens, the student's parameter count and the machine: the train manifest's summary
  (``supervised_tokens``, ``params_total``, ``machine``; the manifest's ``host`` when older runs lack it);
- wall time: the run's manifest (``timings_s.total``);
- other spend (voting samples, RL rollouts): ``extra_usd`` in any stage manifest's summary
  (``{"name": usd}``), summed into ``total_usd``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distill_lab.artifacts.jsonio import read_jsonl
from distill_lab.artifacts.rows import load_rows
from distill_lab.artifacts.run_cost import RunCost, count_tokens, train_flops
from distill_lab.teachers.cost import projected_cost


class CostError(ValueError):
    """A run's cost cannot be projected; the message names the run and what is missing."""


def _manifest(path: Path) -> dict[str, Any]:
    """A manifest's record, {} when the stage left none; an unreadable one is an error naming it (a silent
    {} would report the run as costing nothing)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise CostError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); the run's cost cannot be read") from None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _answer_tokens(samples: Path) -> float | None:
    """The student's mean output tokens per greedy answer in an eval's ``samples.jsonl`` (None: no such file or
    no token counts recorded)."""
    if not samples.is_file():
        return None
    n = [r["output_tokens"] for r in read_jsonl(samples)
         if r.get("model") == "student" and r.get("kind") == "greedy" and _num(r.get("output_tokens")) is not None]
    return sum(n) / len(n) if n else None


def run_cost(job_dir: Path, dataset_dir: str | Path | None, paid_usd: float | None, *,
             price_model: str | None = None, chars_per_token: float = 4.0) -> RunCost:
    """The cost record of the job in ``job_dir`` (a pipeline job or a single stage's run folder)."""
    job_dir = Path(job_dir)
    train = _manifest(job_dir / "train" / "manifest.json") or _manifest(job_dir / "manifest.json")
    top = _manifest(job_dir / "manifest.json")
    tsum = train.get("summary") or {}
    cost = RunCost(supervised_tokens=_num(tsum.get("supervised_tokens")),
                   params=int(tsum["params_total"]) if _num(tsum.get("params_total")) else None,
                   wall_s=_num((top.get("timings_s") or {}).get("total")),
                   machine=tsum.get("machine") or top.get("host") or train.get("host"))
    cost.train_flops = train_flops(cost.params, cost.supervised_tokens)
    rollouts = _num((_manifest(job_dir / "rl" / "manifest.json").get("summary") or {}).get("rollout_tokens"))
    cost.rl_rollout_tokens = int(rollouts) if rollouts is not None else None
    cost.answer_tokens = _answer_tokens(job_dir / "eval" / "samples.jsonl")
    for sub in ("", "generate", "train", "eval"):
        extra = (_manifest(job_dir / sub / "manifest.json").get("summary") or {}).get("extra_usd") or {}
        cost.extra_usd.update({k: float(v) for k, v in extra.items() if _num(v) is not None})
    if paid_usd:
        cost.teacher_usd, cost.teacher_usd_kind = float(paid_usd), "paid"
    if price_model and cost.teacher_usd_kind != "paid":
        if not dataset_dir or not (Path(dataset_dir) / "rows.jsonl").is_file():
            raise CostError(f"{job_dir}: report.projected_price_model={price_model} needs the run's dataset rows, "
                            f"and {dataset_dir or 'no dataset folder'} has no rows.jsonl")
        counts = count_tokens(load_rows(dataset_dir), chars_per_token)
        try:
            usd = projected_cost(price_model, counts.input_tokens, counts.output_tokens,
                                 counts.cache_write_tokens, counts.cache_read_tokens)
        except ValueError as e:
            raise CostError(f"report.projected_price_model: {e}") from None
        cost.teacher_usd, cost.teacher_usd_kind, cost.price_model = usd, "projected", price_model
        cost.teacher_input_tokens, cost.teacher_output_tokens = counts.input_tokens, counts.output_tokens
        cost.token_source = counts.source
    elif paid_usd is not None and cost.teacher_usd_kind != "paid":
        cost.teacher_usd, cost.teacher_usd_kind = 0.0, "none"
    return cost


def cell_costs(runs: list[Any]) -> dict[str, Any]:
    """A cell's cost figures, means over its runs (``Run.cost`` dicts); {} when no run has a cost record."""
    recs = [r.cost for r in runs if getattr(r, "cost", None)]
    if not recs:
        return {}

    def avg(key: str) -> float | None:
        vals = [c[key] for c in recs if isinstance(c.get(key), int | float)]
        return sum(vals) / len(vals) if vals else None

    kinds = sorted({c.get("teacher_usd_kind") or "none" for c in recs})
    models = sorted({c["price_model"] for c in recs if c.get("price_model")})
    machines = sorted({c["machine"] for c in recs if c.get("machine")})
    return {"teacher_usd": avg("teacher_usd"), "teacher_usd_kind": kinds[0] if len(kinds) == 1 else "mixed",
            "price_model": ", ".join(models) or None, "teacher_input_tokens": avg("teacher_input_tokens"),
            "teacher_output_tokens": avg("teacher_output_tokens"), "train_flops": avg("train_flops"),
            "total_usd": avg("total_usd"), "wall_s": avg("wall_s"), "machine": "; ".join(machines) or None,
            "rl_rollout_tokens": avg("rl_rollout_tokens"), "answer_tokens": avg("answer_tokens")}
