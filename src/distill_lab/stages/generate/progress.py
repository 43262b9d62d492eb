"""Progress of a generate run: a live bar on a terminal, plain log lines elsewhere (Slurm, CI, pipes).

On a terminal (stderr is a TTY) a rich bar shows done / failed / in flight, tokens and dollars. Anywhere
else a rich bar would leave one truncated line at the end, so the same numbers go to the log as one line
every ``every_s`` seconds and once at the end: ``done/total``, failures, retries *with their reasons*
(``429``, ``529``, ``connect``, ``dropped``, ``malformed``...), dollars and requests per second.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("distill_lab.stages.generate")

def quiet_http_logs() -> None:
    """One INFO line per request from httpx drowned a run's log: kept to warnings (``console.QUIET_LOGGERS``;
    also for a stage run in-process, without the entry point's ``console.configure``)."""
    from distill_lab.console import quiet_loggers

    quiet_loggers()


@dataclass
class Tally:
    done: int = 0
    failed: int = 0
    in_flight: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    retry_reasons: Counter = field(default_factory=Counter)  # label (429, connect, dropped...) -> retries
    failure_reasons: Counter = field(default_factory=Counter)  # label -> requests given up


def progress_line(t: Tally, total: int, elapsed: float) -> str:
    pct = 100.0 * (t.done + t.failed) / total if total else 100.0
    rate = (t.done + t.failed) / elapsed if elapsed > 0 else 0.0
    retries = f" {dict(t.retry_reasons)}" if t.retry_reasons else ""
    failed = f" {dict(t.failure_reasons)}" if t.failure_reasons else ""
    return (f"{t.done + t.failed}/{total} requests ({pct:.0f}%): {t.done} rows, {t.failed} failed{failed}, "
            f"{t.in_flight} in flight, {t.retries} retries{retries}, ${t.cost_usd:,.4f}, {rate:.2f} requests/s")


class Progress:
    def __init__(self, total: int, enabled: bool, description: str = "generate", every_s: float = 10.0,
                 tty: bool | None = None):
        self.total, self.enabled, self.description, self.every_s = total, enabled, description, every_s
        self._bar = None
        self._t0 = time.monotonic()
        self._last_line = self._t0
        self._tally: Tally | None = None
        if not enabled:
            return
        if tty is None:
            from distill_lab.console import interactive

            tty = interactive()
        if tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     transient=False)
            self._task = self._bar.add_task(description, total=total, stats="")
            self._bar.start()

    def update(self, t: Tally) -> None:
        if not self.enabled:
            return
        self._tally = t
        if self._bar is None:
            now = time.monotonic()
            if now - self._last_line >= self.every_s:
                self._last_line = now
                log.info("%s: %s", self.description, progress_line(t, self.total, now - self._t0))
            return
        stats = (f"failed {t.failed} | in flight {t.in_flight} | retries {t.retries} | "
                 f"tok in {t.input_tokens:,} out {t.output_tokens:,} | ${t.cost_usd:,.4f}")
        self._bar.update(self._task, completed=t.done + t.failed, stats=stats)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled and self._tally is not None:
            log.info("%s: %s", self.description,
                     progress_line(self._tally, self.total, time.monotonic() - self._t0))
