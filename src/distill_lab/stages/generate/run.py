"""The ``generate`` stage: a recipe's prompts -> the teacher -> a dataset folder (rows contract).

Steps: validate the teacher's config and key (before anything is sent), list the (prompt, sample)
pairs, skip those already in the journal (``<dataset>/shards``: the resume state), send the rest
through the engine (or the Message Batches API with ``teacher.batch=true``), then filter every row
(``rejected`` split with a reason) and write ``rows.jsonl`` + ``hf/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.dataset import DatasetInfo
from distill_lab.artifacts.rows import cut_by_api, row_id, save_dataset
from distill_lab.console import interactive
from distill_lab.errors import ConfigError
from distill_lab.exit_codes import EXIT_FAILED, EXIT_STOPPED, GenerationFailed
from distill_lab.stages.common import StageResult, StageStopped
from distill_lab.stages.generate.budget import check_cap, check_folder, interleave_splits
from distill_lab.stages.generate.card import write_card
from distill_lab.stages.generate.checks import check_oracle_can_answer
from distill_lab.stages.generate.engine import EngineResult, WorkItem, run_requests
from distill_lab.stages.generate.filters import apply_filters
from distill_lab.stages.generate.progress import quiet_http_logs
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.stages.generate.shards import Journal, read_failures, read_rows
from distill_lab.teachers.base import Teacher
from distill_lab.teachers.registry import build_teacher
from distill_lab.tracking.loggers import open_run

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


class GenerationStopped(StageStopped):
    """The API refused to go on (spend limit): what was generated is saved; re-run to resume."""

    exit_code = EXIT_STOPPED


def check_api_key(cfg: Config) -> None:
    """A remote teacher needs its key in the environment: fail before anything starts."""
    t = cfg.teacher
    if t.provider == "oracle" or not t.api_key_env:
        return
    if not os.environ.get(t.api_key_env, "").strip():
        raise ConfigError(f"teacher.api_key_env: the environment variable {t.api_key_env} is not set "
                          f"(the {t.provider} teacher reads its API key from it)")


def _remove_empty(out_dir: Path) -> None:
    shards = out_dir / "shards"
    if shards.is_dir() and not any(p for p in shards.iterdir() if p.name != ".lock" and p.stat().st_size):
        for p in shards.iterdir():
            p.unlink()
        shards.rmdir()
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()


def split_of(item: WorkItem) -> str:
    return item.problem.split


def work_items(teacher: Teacher, problems, samples_per_prompt: int, *,
               by_effort: dict[str, Teacher] | None = None,
               assignment: dict[str, list[str]] | None = None) -> list[WorkItem]:
    """The (prompt, sample) requests. A mixed-effort recipe passes a teacher per effort and each prompt's
    efforts (``effort_mix.assign_efforts``): one request per prompt, effort and sample, sent to that
    effort's teacher (so the effort reaches every provider's request as a plain run's would)."""
    if by_effort is None or assignment is None:
        fp = teacher.fingerprint()
        return [WorkItem(p, k, row_id(p.prompt_id, k, fp)) for p in problems for k in range(samples_per_prompt)]
    fps = {e: t.fingerprint() for e, t in by_effort.items()}
    return [WorkItem(p, k, row_id(p.prompt_id, k, fps[e]), teacher=by_effort[e])
            for p in problems for e in assignment[p.prompt_id] for k in range(samples_per_prompt)]


def _teachers(cfg: Config, problems: dict[str, list]) -> tuple[Teacher, dict[str, Teacher] | None,
                                                                dict[str, list[str]] | None, dict[str, Any] | None]:
    """The run's teacher; with ``recipe.effort_mix`` also one per effort, each prompt's efforts and the
    mix's stats (``effort_mix.py``). The run's teacher is then the most detailed effort's."""
    from distill_lab.stages.generate.effort_mix import (
        assign_efforts,
        check_recipe_mix,
        effort_teacher_config,
        mix_stats,
    )

    r = cfg.recipe
    mix = check_recipe_mix(r.effort_mix, r.effort_assign, r.effort_mix_duplicate)
    if mix is None:
        return build_teacher(cfg.teacher), None, None, None
    assignment = assign_efforts(problems, mix, r.effort_assign, r.effort_mix_duplicate)
    by_effort = {e: build_teacher(effort_teacher_config(cfg.teacher, e)) for e in mix.efforts}
    stats = mix_stats(mix, str(r.effort_mix), r.effort_assign, r.effort_mix_duplicate, problems, assignment)
    log.info("generate: effort mix %s (%s), per split %s", mix.label, r.effort_assign, stats["realised"])
    return by_effort[mix.top], by_effort, assignment, stats


async def _generate(cfg: Config, items: list[WorkItem], teacher: Teacher, journal: Journal,
                    spent_before: float, others: list[Teacher] | None = None) -> EngineResult:
    others = [t for t in (others or []) if t is not teacher]
    try:
        await teacher.preflight()  # free checks (key, model capabilities) before any paid request
        for t in others:  # a mixed-effort run: every effort's settings checked before any paid request
            await t.preflight()
        if cfg.teacher.batch:
            from distill_lab.stages.generate.batch import run_batches
            from distill_lab.teachers.base import TeacherError

            try:
                return await run_batches(cfg, teacher, items, journal, spent_before=spent_before)
            except TeacherError as e:  # a Message Batches endpoint refused: one line, not a traceback
                url = str(getattr(teacher, "client", None) and teacher.client.base_url).rstrip("/")
                if e.status in (404, 405):
                    fix = (f"{url}/v1/messages/batches answered {e.status} ({e}): this server has no Message "
                           "Batches API; set teacher.batch=false (or point teacher.base_url at the Anthropic API)")
                elif e.status in (401, 403):
                    env = cfg.teacher.api_key_env or "the API key variable"
                    fix = f"the Message Batches API refused the key in {env} ({e.status} {e}); set a valid key"
                else:
                    fix = (f"the Message Batches API failed ({e.reason}); batches already created are recorded "
                           "and collected by a re-run of the same command")
                raise GenerationFailed(fix) from None
        return await run_requests(cfg, teacher, items, journal, spent_before=spent_before)
    finally:
        await teacher.aclose()
        for t in others:
            await t.aclose()


def run(cfg: Config, run_dir: Path) -> StageResult:
    quiet_http_logs()
    check_api_key(cfg)
    if cfg.teacher.batch and cfg.teacher.provider != "anthropic":
        raise ConfigError(f"teacher.batch: batch mode needs the anthropic teacher, not {cfg.teacher.provider}")
    out_dir = Path(cfg.generate.output_dir or Path(run_dir) / "dataset")
    recipe = build_problems(cfg.recipe)
    problems = [p for s in cfg.generate.splits for p in recipe.problems[s]]
    check_oracle_can_answer(cfg, problems)
    teacher, by_effort, assignment, mix = _teachers(cfg, {s: recipe.problems[s] for s in cfg.generate.splits})
    if mix is not None:
        recipe.stats["effort_mix"] = mix
    items = work_items(teacher, problems, cfg.generate.samples_per_prompt, by_effort=by_effort,
                       assignment=assignment)
    wanted = {it.id for it in items}

    fresh = not (out_dir / "shards").exists()
    try:
        journal = Journal(out_dir / "shards", shard_rows=cfg.generate.shard_rows,
                          fsync_interval_s=cfg.generate.fsync_interval_s)
    except RuntimeError as e:  # another generate holds the folder's lock
        raise ConfigError(f"generate.output_dir: {e}") from None
    try:
        before = journal.rows()
        done = {r["id"] for r in before}
        check_folder(cfg, teacher.fingerprint(), before, {p.prompt_id for p in problems}, wanted, out_dir)
        # sent so that a run the cap stops holds every split in proportion
        todo = interleave_splits([it for it in items if it.id not in done], split_of)
        spent_before = sum(float(r.get("cost_usd") or 0) for r in before)  # the folder's spend, all settings
        check_cap(cfg, teacher, todo, spent_before, split_of)
        log.info("generate: %d requests wanted, %d already in %s, %d to send", len(items), len(items) - len(todo),
                 journal.root, len(todo))
        res = asyncio.run(_generate(cfg, todo, teacher, journal, spent_before, list((by_effort or {}).values())))
    except ConfigError:
        journal.close()
        if fresh:  # refused before anything was sent: leave no empty dataset folder behind
            _remove_empty(out_dir)
        raise
    finally:
        journal.close()
    if res.fatal:  # before anything is written: no dataset, no card, no manifest that a re-run could trust
        raise GenerationFailed(f"{res.fatal} (nothing was saved as rows; the failed requests are listed in "
                               f"{journal.root / 'failures.jsonl'})")

    # rows in the recipe's order (as prompts were listed, not as replies arrived); rows of other
    # teachers or recipes stay in the shards only
    order = {it.id: i for i, it in enumerate(items)}
    raw = sorted((r for r in read_rows(journal.root) if r["id"] in wanted), key=lambda r: order[r["id"]])
    have = {r["id"] for r in raw}
    last_failure: dict[str, str] = {}
    for f in read_failures(journal.root):
        if f["id"] in wanted and f["id"] not in have:
            last_failure[f["id"]] = f["reason"]
    # imported teacher rows pass the same filters as generated ones (no thinking, a failed check...)
    rows, outcome = apply_filters(raw + recipe.imported_rows, cfg.generate.filters, cfg.recipe.verify,
                                  cfg.generate.filter_splits)
    counts = save_dataset(rows, out_dir)
    card = write_card(rows, out_dir, recipe_stats=recipe.stats, filters=dict(outcome))
    summary = _summary(cfg, rows, recipe.stats, counts, outcome, res, len(items), len(items) - len(todo),
                       last_failure)
    dataset_info(cfg, counts, summary["cost_usd"], effort=mix["label"] if mix else None).write(out_dir)
    cut_heldout = {k: v for k, v in summary["teacher_truncated"].items() if k not in cfg.generate.filter_splits}
    if cut_heldout:
        log.warning("generate: the teacher's API cut %s held-out answers at teacher.max_tokens=%d (rows flagged "
                    "truncated); an eval budget is not derived from cut answers: raise teacher.max_tokens and "
                    "re-generate them, or evaluate with eval.allow_truncation=true", cut_heldout,
                    cfg.teacher.max_tokens)
    _print_summary(summary, out_dir, cfg.generate.progress)
    with open_run(cfg, "generate", run_dir) as wl:  # W&B / csv when a logger is configured
        wl.log_metrics({"generate/rows": len(rows), "generate/cost_usd": float(summary["cost_usd"]),
                        **{f"generate/rows_{k}": v for k, v in counts.items()},
                        **{f"generate/{k}_{e}": float(v[k]) for e, v in summary["per_effort"].items()
                           for k in ("rows", "cost_usd", "output_tokens")}})
        wl.log_artifact(card, "dataset-card", "dataset")
    if res.stopped and "spend limit" in res.stopped:
        raise GenerationStopped(f"generate stopped: {res.stopped}. {len(raw)} rows are saved in {out_dir}; "
                                "re-run the same command to resume once the limit allows.")
    incomplete = None
    if res.stopped:
        log.warning("generate stopped early: %s (%d requests not sent; re-run with a higher cap to resume)",
                    res.stopped, res.skipped)
        incomplete = (EXIT_STOPPED, f"stopped early: {res.stopped}; {len(raw)} of {len(items)} rows are saved in "
                      f"{out_dir}; re-run with a higher generate.max_cost_usd to buy the {len(items) - len(raw)} "
                      "missing ones")
    elif last_failure:
        incomplete = (EXIT_FAILED, f"{len(last_failure)} of {len(items)} requests failed "
                      f"({summary['failure_reasons']}; details in {journal.root / 'failures.jsonl'}); the "
                      f"{len(raw)} rows received are saved in {out_dir}; re-run the same command to retry the "
                      "failed ones")
    return StageResult(artifacts={"dataset": str(out_dir), "journal": str(journal.root), "card": str(card)},
                       summary=summary, incomplete=incomplete)


def dataset_info(cfg: Config, counts: dict[str, int], cost_usd: float, effort: str | None = None) -> DatasetInfo:
    """The dataset's own record (``dataset.json``): recipe, sizes, teacher and effort (a mixed-effort
    recipe's label, ``mix(low:0.5,high:0.5)``, when given), rows, spend."""
    r, t = cfg.recipe, cfg.teacher
    return DatasetInfo(recipe=r.name, size=r.size, test_size=r.test_size, ood_size=r.ood_size, recipe_seed=r.seed,
                       teacher_provider=t.provider, teacher_model=t.model, effort=effort or t.effort_name,
                       samples_per_prompt=cfg.generate.samples_per_prompt, rows=dict(counts),
                       cost_usd=float(cost_usd))


def _print_summary(s: dict[str, Any], out_dir: Path, console: bool) -> None:
    r = s["requests"]
    lines = [f"dataset: {out_dir}",
             f"rows per split: {s['per_split']}",
             f"outcomes: {s['outcomes']}",
             f"requests: {r['sent']} sent ({r['retries']} retries), {r['succeeded']} rows, {r['failed']} failed, "
             f"{r['resumed_from_journal']} resumed, {r['skipped']} not sent",
             f"unresolved failures: {s['failed']} {s['failure_reasons'] or ''}",
             f"tokens: {s['tokens']}",
             f"teacher answers cut by the API at teacher.max_tokens: {s['teacher_truncated'] or 'none'}",
             f"cost: ${s['cost_usd']:.4f} (this run ${s['run_cost_usd']:.4f}); wall {s['wall_s']:.1f}s, "
             f"{s['requests_per_s'] or 0:.2f} requests/s"]
    if len(s.get("per_effort") or {}) > 1:  # a mixed-effort recipe: what each effort made and cost
        lines.append("per effort: " + "; ".join(f"{e} {d['rows']} rows, ${d['cost_usd']:.4f}, {d['output_tokens']} "
                                                  "output tokens" for e, d in s["per_effort"].items()))
    if s["stopped"]:
        lines.append(f"stopped early: {s['stopped']}")
    for line in lines:
        log.info("generate: %s", line)
    if console and interactive():  # elsewhere (Slurm, CI, a pipe) the log lines above say the same
        from rich.console import Console
        from rich.panel import Panel

        Console(stderr=True).print(Panel("\n".join(lines), title="generate summary"))


def _summary(cfg: Config, rows: list[dict[str, Any]], recipe_stats: dict[str, Any], counts: dict[str, int],
             outcome: Counter, res: EngineResult, wanted: int, resumed: int,
             last_failure: dict[str, str]) -> dict[str, Any]:
    gen = [r for r in rows if r.get("teacher", {}).get("provider") == cfg.teacher.provider]
    tok = Counter()
    for r in gen:
        tok.update({k: v for k, v in r["usage"].items() if isinstance(v, int)})
    return {
        "per_effort": per_effort(gen),
        "rows": len(rows),
        "per_split": counts,
        "recipe": recipe_stats,
        "outcomes": dict(outcome),  # kept / max_tokens / empty_answer / ... / duplicate
        # rows whose answer the teacher's API cut at its output limit, per split they belong to, whatever the
        # filters did with them (a held-out one stays, and eval budgets refuse to measure the teacher by it)
        "teacher_truncated": dict(Counter(r.get("origin_split") or r["split"] for r in rows if cut_by_api(r))),
        "requests": {"wanted": wanted, "resumed_from_journal": resumed, "sent": res.sent,
                     "retries": res.tally.retries, "succeeded": res.tally.done, "failed": res.tally.failed,
                     "skipped": res.skipped},
        "failed": len(last_failure),  # wanted rows with no row, only a failure record
        "failure_reasons": dict(Counter(reason.split(":")[0] for reason in last_failure.values())),
        "stopped": res.stopped,
        "tokens": dict(tok),
        "cost_usd": round(sum(r["cost_usd"] for r in gen), 6),
        "run_cost_usd": round(res.tally.cost_usd, 6),
        "wall_s": round(res.wall_s, 3),
        "requests_per_s": round(res.sent / res.wall_s, 3) if res.wall_s > 0 else None,
        "redacted_thinking_rows": sum(1 for r in gen if r.get("redacted_thinking")),
    }


def per_effort(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """effort -> rows, rows per split, teacher cost and billed tokens of the rows made at that effort."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        e = str((r.get("teacher") or {}).get("effort"))
        d = out.setdefault(e, {"rows": 0, "per_split": Counter(), "cost_usd": 0.0, "input_tokens": 0,
                               "output_tokens": 0, "thinking_tokens": 0})
        d["rows"] += 1
        d["per_split"][r["split"]] += 1
        d["cost_usd"] += float(r.get("cost_usd") or 0.0)
        for k in ("input_tokens", "output_tokens", "thinking_tokens"):
            d[k] += int((r.get("usage") or {}).get(k) or 0)
    for d in out.values():
        d["per_split"] = dict(d["per_split"])
        d["cost_usd"] = round(d["cost_usd"], 6)
    return out
