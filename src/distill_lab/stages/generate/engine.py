"""The request engine: a pool of workers over the missing (prompt, sample) pairs.

Per request: spend cap reservation -> rate limits -> teacher -> retry or record -> journal append.
``concurrency`` workers bound the requests in flight (a worker backing off holds its slot).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from distill_lab.artifacts.rows import make_row
from distill_lab.stages.generate.progress import Progress, Tally
from distill_lab.stages.generate.ratelimit import RateLimiter
from distill_lab.stages.generate.shards import Journal
from distill_lab.tasks.base import Problem, get_family
from distill_lab.teachers.base import Teacher, TeacherError, TeacherReply
from distill_lab.teachers.cost import SpendCap, max_request_cost, usage_cost
from distill_lab.teachers.retry import Backoff

if TYPE_CHECKING:
    from distill_lab.config import Config
from distill_lab.stages.generate.breaker import Breaker
from distill_lab.teachers.transport import short_text

log = logging.getLogger(__name__)


@dataclass
class WorkItem:
    problem: Problem
    sample_index: int
    id: str
    # the teacher this request goes to (a mixed-effort recipe has one per effort); None: the run's teacher
    teacher: Teacher | None = None


@dataclass
class EngineResult:
    tally: Tally
    stopped: str | None = None  # why new requests stopped early (cost cap, spend limit), else None
    fatal: str | None = None  # a run-wide failure (refused key, wrong URL or model...): "cause; fix"
    skipped: int = 0  # items never sent because the run stopped
    failures: Counter = field(default_factory=Counter)  # reason -> count (this run)
    wall_s: float = 0.0
    sent: int = 0  # HTTP requests made, retries included


def verdict(problem: Problem, reply: TeacherReply, verify: bool) -> bool | None:
    if not verify or problem.reference is None:
        return None
    return get_family(problem.task).verify(reply.content, problem.reference)


def build_row(problem: Problem, k: int, fp: dict[str, Any], reply: TeacherReply, verify: bool,
              cost: float) -> dict[str, Any]:
    reply.cost_usd = cost
    return make_row(problem, k, fp, reply, verdict(problem, reply, verify))


async def run_requests(cfg: Config, teacher: Teacher, items: list[WorkItem], journal: Journal,
                       *, backoff: Backoff | None = None, spent_before: float = 0.0) -> EngineResult:
    g, t = cfg.generate, cfg.teacher
    fps: dict[int, dict[str, Any]] = {}  # per teacher object: its fingerprint (the row's teacher record)
    limiter = RateLimiter(g.requests_per_minute, g.input_tokens_per_minute, g.output_tokens_per_minute)
    cap = SpendCap(None if g.max_cost_usd is None else g.max_cost_usd - spent_before)
    backoff = backoff or Backoff(base_s=g.retry_base_s, cap_s=g.retry_cap_s)
    res = EngineResult(tally=Tally())
    tally = res.tally
    queue: asyncio.Queue[WorkItem] = asyncio.Queue()
    for it in items:
        queue.put_nowait(it)
    stop = asyncio.Event()
    bar = Progress(len(items), g.progress, every_s=g.progress_every_s)
    breaker = Breaker(t, teacher.endpoint(), n_items=len(items))

    async def pause(delay: float) -> None:
        """Back off for ``delay`` seconds, or less when the run is stopping meanwhile."""
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def fail(item: WorkItem, reason: str, attempts: int, err: TeacherError | None) -> None:
        journal.record_failure({"id": item.id, "prompt_id": item.problem.prompt_id, "sample_index": item.sample_index,
                                "reason": reason, "attempts": attempts, "status": err.status if err else None,
                                "request_id": err.request_id if err else None,
                                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        tally.failed += 1
        res.failures[reason.split(":")[0]] += 1
        tally.failure_reasons[reason.split(":")[0]] += 1
        if tally.failure_reasons[reason.split(":")[0]] == 1:  # the first of its kind is shown, the rest counted
            log.warning("generate: a request failed: %s (further failures of this kind are counted in the "
                        "progress line and the summary)", short_text(reason))

    async def one(item: WorkItem) -> None:
        who = item.teacher or teacher
        est_in = who.estimate_input_tokens(item.problem)
        worst = max_request_cost(who.worst_input_tokens(item.problem), t.max_tokens, t.prices)
        if not await cap.reserve(worst):
            res.stopped = res.stopped or (f"generate.max_cost_usd={g.max_cost_usd} reached: the next request could "
                                          f"cost up to ${worst:.4f}")
            stop.set()
            queue.put_nowait(item)  # back, so that it is counted as skipped
            return
        cost, attempt = 0.0, 0
        try:
            while True:
                attempt += 1
                await limiter.acquire(est_in, t.max_tokens)
                tally.in_flight += 1
                res.sent += 1
                try:
                    reply = await who.complete(item.problem, item.sample_index)
                except TeacherError as e:
                    limiter.settle(input_reserved=est_in, input_used=0, output_reserved=t.max_tokens, output_used=0)
                    fatal = breaker.failed(e)
                    if fatal:  # every request would fail the same way: stop the run, not just this item
                        res.fatal = res.fatal or fatal
                        fail(item, f"{e.reason} (stopped the run after {attempt} attempt(s))", attempt, e)
                        stop.set()
                        return
                    if e.kind == "spend_limit":
                        res.stopped = f"the API reports the spend limit is reached ({e.reason})"
                        stop.set()
                        queue.put_nowait(item)
                        return
                    if e.kind == "retryable" and stop.is_set():  # the run is stopping: leave it for a re-run
                        queue.put_nowait(item)
                        return
                    if e.kind == "retryable" and attempt <= t.max_retries:
                        tally.retries += 1
                        tally.retry_reasons[e.label] += 1
                        if tally.retry_reasons[e.label] == 1:
                            log.warning("generate: retrying after %s (further retries of this kind are counted in "
                                        "the progress line)", short_text(e.reason))
                        if e.retry_after:
                            limiter.block_for(e.retry_after)
                        await pause(backoff.delay(attempt, e.retry_after))
                        if stop.is_set():  # stopped while backing off: leave it for a re-run
                            queue.put_nowait(item)
                            return
                        continue
                    why = "retries exhausted" if e.kind == "retryable" else "not retryable"
                    fail(item, f"{e.reason} ({why} after {attempt} attempt(s))", attempt, e)
                    return
                finally:
                    tally.in_flight -= 1
                used_in = reply.usage.get("input_tokens", 0) + reply.usage.get("cache_creation_input_tokens", 0)
                limiter.settle(input_reserved=est_in, input_used=used_in, output_reserved=t.max_tokens,
                               output_used=reply.usage.get("output_tokens", 0))
                breaker.ok()
                cost = usage_cost(reply.usage, t.prices)
                fp = fps.setdefault(id(who), who.fingerprint())
                row = build_row(item.problem, item.sample_index, fp, reply, cfg.recipe.verify, cost)
                journal.append(row)
                tally.done += 1
                tally.input_tokens += reply.usage.get("input_tokens", 0)
                tally.output_tokens += reply.usage.get("output_tokens", 0)
                tally.cost_usd += cost
                return
        finally:
            await cap.settle(worst, cost)
            bar.update(tally)

    async def worker() -> None:
        while not stop.is_set():
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(item)

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(min(g.concurrency, max(1, len(items))))))
    finally:
        bar.close()
        res.wall_s = time.perf_counter() - t0
    res.skipped = queue.qsize()
    return res
