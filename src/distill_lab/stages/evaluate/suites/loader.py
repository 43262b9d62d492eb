"""Load a benchmark's rows through ``datasets`` (the hub, or a local file in the hub's schema) and turn
them into eval prompts with the suite's answer-format instruction."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from distill_lab.stages.evaluate.prompts import EvalPrompt
from distill_lab.stages.evaluate.suites.config import SuiteConfig
from distill_lab.stages.evaluate.suites.specs import LETTERS, SPECS, BenchItem

log = logging.getLogger(__name__)
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def source_name(sc: SuiteConfig) -> str:
    if sc.path:
        return str(sc.path)
    return f"{sc.hub_id}" + (f" ({sc.subset})" if sc.subset else "") + f" split {sc.split}"


def load_rows(sc: SuiteConfig) -> list[dict[str, Any]]:
    """The suite's raw rows: ``eval.suite.path`` when set (a file, or a ``save_to_disk`` folder), else
    ``datasets.load_dataset(hub_id, subset, split=split)``."""
    import datasets

    if sc.path:
        p = Path(sc.path)
        if p.is_dir():
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if sc.split not in ds:
                    raise ValueError(f"eval.suite.path: {p} has splits {list(ds)}, not {sc.split!r} (eval.suite.split)")
                ds = ds[sc.split]
        elif p.is_file():
            builder = FILE_BUILDERS.get(p.suffix.lower())
            if builder is None:
                raise ValueError(f"eval.suite.path: {p}: unknown file type {p.suffix!r}; expected one of "
                                 f"{sorted(FILE_BUILDERS)} or a save_to_disk folder")
            try:
                ds = datasets.load_dataset(builder, data_files=str(p), split="train")
            except Exception as e:  # datasets wraps parse errors in several types
                raise ValueError(f"eval.suite.path: {p}: cannot be read as {builder}: {type(e).__name__}: {e}") from None
        else:
            raise FileNotFoundError(f"eval.suite.path: no such file or folder {p}")
    else:
        ds = datasets.load_dataset(sc.hub_id, sc.subset, split=sc.split, revision=sc.revision)
    return [dict(r) for r in ds]


def to_items(sc: SuiteConfig, rows: list[dict[str, Any]]) -> list[BenchItem]:
    """Rows -> items; an error names the source, the row and the column."""
    spec = SPECS[sc.name]
    where = source_name(sc)
    if not rows:
        raise ValueError(f"eval.suite: {where} has no rows")
    missing = [c for c in spec.columns if c not in rows[0]]
    if missing:
        raise ValueError(f"eval.suite: {where} is not in the {sc.name} schema: missing column(s) {missing} "
                         f"(have {sorted(rows[0])})")
    items, seen = [], set()
    for i, row in enumerate(rows[:sc.limit] if sc.limit else rows):
        try:
            item = spec.to_item(row, i, sc.choice_seed)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"eval.suite: {where} row {i}: {e}") from None
        if item.id in seen:
            raise ValueError(f"eval.suite: {where} row {i}: id {item.id!r} appears twice")
        seen.add(item.id)
        items.append(item)
    return items


def user_text(sc: SuiteConfig, item: BenchItem) -> str:
    """The question in the suite's template (plain replacement: LaTeX braces in templates stay as they are)."""
    choices = "\n".join(f"{LETTERS[j]}) {c}" for j, c in enumerate(item.choices))
    return sc.prompt_template.replace("{question}", item.question).replace("{choices}", choices)


def suite_prompts(sc: SuiteConfig) -> tuple[list[EvalPrompt], dict[str, BenchItem]]:
    """The eval prompts of a suite (split ``test``, the suite's category, no task family: the suite's
    grader scores them) and the items by prompt id."""
    items = to_items(sc, load_rows(sc))
    prompts, by_id = [], {}
    for it in items:
        msgs = ([{"role": "system", "content": sc.system_prompt}] if sc.system_prompt else [])
        msgs.append({"role": "user", "content": user_text(sc, it)})
        prompts.append(EvalPrompt(it.id, None, sc.category, "test", msgs, it.reference or None))
        by_id[it.id] = it
    log.info("eval: suite %s, %d items from %s", sc.name, len(items), source_name(sc))
    return prompts, by_id
