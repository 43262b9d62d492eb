"""Batch mode (``teacher.batch=true``): the Message Batches API at the batch price.

Create a batch of the missing requests (``custom_id`` = row id), record its id in
``<journal>/batches.json`` at once, poll until it ends, stream its results and append each succeeded
one to the journal. A re-run first collects every batch recorded but not yet collected (it polls the
same batch: nothing is paid twice), then sends only what is still missing. Errored (other than
invalid requests) and expired results are resubmitted in a new batch, up to
``generate.batch_max_rounds`` batches per run. The spend cap admits as many requests as fit with
each one at its worst-case batch price.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anthropic

from distill_lab.stages.generate.engine import EngineResult, WorkItem, build_row
from distill_lab.stages.generate.progress import Progress, Tally
from distill_lab.stages.generate.shards import Journal
from distill_lab.teachers.anthropic import AnthropicTeacher, classify_status_error, parse_message
from distill_lab.teachers.base import TeacherError
from distill_lab.teachers.cost import max_request_cost, usage_cost
from distill_lab.teachers.retry import Backoff

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)
T = TypeVar("T")
STATE = "batches.json"


MAX_REQUESTS = 100_000  # the API's limits per batch: requests, and bytes of the create body
MAX_BYTES = 200 * 1024 * 1024  # below the 256 MB limit


def chunks(requests: list[dict[str, Any]], max_requests: int = MAX_REQUESTS,
           max_bytes: int = MAX_BYTES) -> list[list[dict[str, Any]]]:
    """Split batch requests so that each batch stays within the API's size limits."""
    out: list[list[dict[str, Any]]] = [[]]
    size = 0
    for q in requests:
        n = len(json.dumps(q))
        if out[-1] and (len(out[-1]) >= max_requests or size + n > max_bytes):
            out.append([])
            size = 0
        out[-1].append(q)
        size += n
    return [c for c in out if c]


def load_state(root: Path) -> list[dict[str, Any]]:
    path = root / STATE
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text())["batches"]
    except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{path}: unreadable batch state ({e}); it lists the batches to collect") from None


def save_state(root: Path, batches: list[dict[str, Any]]) -> None:
    path, tmp = root / STATE, root / (STATE + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"batches": batches}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


async def _call(fn: Callable[[], Awaitable[T]], retries: int, backoff: Backoff, res: EngineResult) -> T:
    """One batch-endpoint call, retried like a message request."""
    attempt = 0
    while True:
        attempt += 1
        res.sent += 1
        try:
            return await fn()
        except anthropic.APIStatusError as e:
            err = classify_status_error(e)
        except (anthropic.APIConnectionError, anthropic.APIResponseValidationError, json.JSONDecodeError) as e:
            err = TeacherError(f"connection: {type(e).__name__}: {e}", kind="retryable")
        if err.kind != "retryable" or attempt > retries:
            raise err
        res.tally.retries += 1
        await asyncio.sleep(backoff.delay(attempt, err.retry_after))


async def run_batches(cfg: Config, teacher: AnthropicTeacher, items: list[WorkItem], journal: Journal,
                      *, spent_before: float = 0.0) -> EngineResult:
    g, t = cfg.generate, cfg.teacher
    client = teacher.client  # one client; each request's params carry its own teacher's effort (mixed effort)
    backoff = Backoff(base_s=g.retry_base_s, cap_s=g.retry_cap_s)
    res = EngineResult(tally=Tally())
    tally = res.tally
    by_id = {it.id: it for it in items}
    written = {r["id"] for r in journal.rows()}
    failed: set[str] = set()  # fatal results: not resubmitted
    last_error: dict[str, str] = {}
    batches = load_state(journal.root)
    bar = Progress(len(items), g.progress, "generate (batch)")
    t0 = time.perf_counter()

    async def collect(entry: dict[str, Any]) -> None:
        bid = entry["id"]
        while True:
            b = await _call(lambda: client.messages.batches.retrieve(bid), t.max_retries, backoff, res)
            if b.processing_status == "ended":
                break
            await asyncio.sleep(t.batch_poll_seconds)
        results = await _call(lambda: client.messages.batches.results(bid), t.max_retries, backoff, res)
        async for r in results:
            cid, kind = r.custom_id, r.result.type
            item = by_id.get(cid)
            if item is None or cid in written:
                continue  # another recipe's request, or already written: never twice
            if kind == "succeeded":
                reply = parse_message(r.result.message.model_dump(), bid)  # batch results carry no request-id
                cost = usage_cost(reply.usage, t.prices, batch=True)
                fp = (item.teacher or teacher).fingerprint()
                journal.append(build_row(item.problem, item.sample_index, fp, reply, cfg.recipe.verify, cost))
                written.add(cid)
                tally.done += 1
                tally.input_tokens += reply.usage.get("input_tokens", 0)
                tally.output_tokens += reply.usage.get("output_tokens", 0)
                tally.cost_usd += cost
            elif kind == "errored":
                e = r.result.error.error
                last_error[cid] = f"batch errored: {e.type}: {e.message}"
                if e.type == "invalid_request_error":
                    failed.add(cid)
            else:
                last_error[cid] = f"batch {kind}"
        entry["collected"] = True
        save_state(journal.root, batches)
        bar.update(tally)

    try:
        for entry in batches:
            if not entry.get("collected"):
                log.info("batch mode: resuming batch %s (created earlier, not yet collected)", entry["id"])
                await collect(entry)
        for _ in range(g.batch_max_rounds):
            pending = [it for it in items if it.id not in written and it.id not in failed]
            if not pending:
                break
            admitted, budget = [], (None if g.max_cost_usd is None
                                    else g.max_cost_usd - spent_before - tally.cost_usd)
            for it in pending:
                worst = max_request_cost(teacher.worst_input_tokens(it.problem), t.max_tokens, t.prices, batch=True)
                if budget is not None:
                    if worst > budget:
                        res.stopped = f"generate.max_cost_usd={g.max_cost_usd} reached (batch admitted {len(admitted)})"
                        break
                    budget -= worst
                admitted.append(it)
            if not admitted:
                break
            new = []
            for chunk in chunks([{"custom_id": it.id, "params": (it.teacher or teacher).request_params(it.problem)}
                                 for it in admitted]):
                b = await _call(lambda chunk=chunk: teacher.create_batch(chunk),
                                t.max_retries, backoff, res)
                entry = {"id": b.id, "custom_ids": [q["custom_id"] for q in chunk], "collected": False,
                         "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                batches.append(entry)
                save_state(journal.root, batches)  # at once: a crash from here on resumes this batch
                new.append(entry)
                log.info("batch mode: created batch %s with %d requests", b.id, len(chunk))
            for entry in new:
                await collect(entry)
            if res.stopped:
                break
        for it in items:
            if it.id not in written:
                if it.id in last_error:
                    journal.record_failure({"id": it.id, "prompt_id": it.problem.prompt_id,
                                            "sample_index": it.sample_index, "reason": last_error[it.id],
                                            "attempts": None, "status": None, "request_id": None,
                                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                    tally.failed += 1
                    res.failures[last_error[it.id].split(":")[0]] += 1
                else:
                    res.skipped += 1
    finally:
        bar.close()
        res.wall_s = time.perf_counter() - t0
    return res
