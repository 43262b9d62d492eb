"""Spending decisions made before the first paid request: the order requests go out in, the spend cap's
minimum, and a dataset folder that already holds rows of another teacher setting.

- Order: the engine sends requests in queue order, so a run the cap stops keeps a prefix of that queue.
  ``interleave_splits`` orders the queue so that every prefix holds each split in proportion to its size
  (train, test and ood alike), not all of train first.
- Minimum cap: ``check_cap`` refuses a ``generate.max_cost_usd`` that cannot buy one row of every split at
  the requests' worst case (the cap is never crossed, so each request is admitted only if its worst case
  fits), naming the smallest cap that can; it warns when the cap holds fewer worst cases than
  ``generate.concurrency``, since the cap then limits the requests in flight.
- Other settings: ``check_folder`` refuses to buy the same prompts again beside rows of another teacher
  setting (a changed ``teacher.effort`` changes every row id) unless ``generate.mix_teacher_settings`` is on.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from distill_lab.errors import ConfigError
from distill_lab.teachers.cost import max_request_cost

if TYPE_CHECKING:
    from distill_lab.config import Config

log = logging.getLogger(__name__)


def interleave_splits(items: list, split_of) -> list:
    """``items`` reordered so that each prefix holds every split in proportion (stable within a split).

    Item ``i`` of a split with ``n`` items is placed at ``(i + 0.5) / n``: the merged order is the
    splits' items spread evenly over [0, 1].
    """
    sizes = Counter(split_of(it) for it in items)
    seen: Counter = Counter()
    keyed = []
    for k, it in enumerate(items):
        s = split_of(it)
        keyed.append(((seen[s] + 0.5) / sizes[s], k, it))
        seen[s] += 1
    return [it for _, _, it in sorted(keyed, key=lambda x: (x[0], x[1]))]


def check_cap(cfg: Config, teacher, todo: list, spent_before: float, split_of) -> None:
    """Refuse (``ConfigError``) a cap that cannot buy one row of every split still wanted; warn when it
    holds fewer worst-case requests than ``generate.concurrency``. ``todo`` is in sending order."""
    g, t = cfg.generate, cfg.teacher
    if g.max_cost_usd is None or not todo:
        return
    batch = t.batch
    worst = [max_request_cost(teacher.worst_input_tokens(it.problem), t.max_tokens, t.prices, batch=batch)
             for it in todo]
    wanted = {split_of(it) for it in todo}
    seen: set[str] = set()
    need = spent_before
    for it, w in zip(todo, worst, strict=True):
        need += w
        seen.add(split_of(it))
        if seen == wanted:
            break
    if g.max_cost_usd < need - 1e-12:
        need = math.ceil(need * 1e4) / 1e4  # named rounded up: the named cap is enough
        spent = f" (${spent_before:.4f} of it already spent on this dataset folder)" if spent_before else ""
        raise ConfigError(
            f"generate.max_cost_usd: ${g.max_cost_usd:g} cannot buy one row of each split {sorted(wanted)}: that "
            f"takes up to ${need:.4f}{spent} at the worst case of {t.max_tokens} output tokens a request; set "
            f"generate.max_cost_usd >= {need:.4f} (or lower teacher.max_tokens)")
    room = g.max_cost_usd - spent_before
    in_flight = int(room // max(worst))
    if in_flight < g.concurrency:
        log.warning("generate.max_cost_usd=$%g holds %d worst-case requests ($%.4f each), fewer than "
                    "generate.concurrency=%d: the cap keeps at most that many in flight, so the run is slower; "
                    "a higher cap or a lower teacher.max_tokens restores the concurrency",
                    g.max_cost_usd, max(in_flight, 1), max(worst), g.concurrency)


def check_folder(cfg: Config, fingerprint: dict[str, Any], journal_rows: list[dict[str, Any]],
                 wanted_prompts: set[str], wanted_ids: set[str], folder) -> None:
    """Refuse to buy again prompts this folder already holds under another teacher setting."""
    if cfg.generate.mix_teacher_settings:
        return
    other = [r for r in journal_rows if r["id"] not in wanted_ids and r.get("prompt_id") in wanted_prompts]
    if not other:
        return
    old = other[0].get("teacher") or {}
    diff = ", ".join(f"teacher.{k}: {old.get(k)!r} -> {fingerprint.get(k)!r}" for k in sorted(set(old) | set(fingerprint))
                     if old.get(k) != fingerprint.get(k)) or "the row ids differ"
    spent = sum(float(r.get("cost_usd") or 0) for r in other)
    raise ConfigError(
        f"generate.output_dir: {folder} already holds {len(other)} rows of these prompts (${spent:.4f}) from "
        f"another teacher setting ({diff}); this run would buy them all again beside them. Use a new "
        "generate.output_dir for the new setting, or set generate.mix_teacher_settings=true to add them here")
