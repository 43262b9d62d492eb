"""A live progress line: done / failed / in flight, tokens and dollars (rich; silent when disabled)."""

from __future__ import annotations

from dataclasses import dataclass, field


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


class Progress:
    def __init__(self, total: int, enabled: bool, description: str = "generate"):
        self.total, self.enabled = total, enabled
        self._bar = None
        if enabled:
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
        if self._bar is None:
            return
        stats = (f"failed {t.failed} | in flight {t.in_flight} | retries {t.retries} | "
                 f"tok in {t.input_tokens:,} out {t.output_tokens:,} | ${t.cost_usd:,.4f}")
        self._bar.update(self._task, completed=t.done + t.failed, stats=stats)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
