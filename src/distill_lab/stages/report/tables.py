"""The one way the report's renderers write a Markdown table, and the cell formats they share.

``markdown_table`` turns headers and rows into the lines of a GitHub-flavoured table; every cell goes
through ``str`` unless it is already text. ``interval_cell`` writes a ``{"mean", "ci"}`` figure (a mean
over seeds with its interval) as ``mean [lo, hi]``, scaled to % by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "–"  # a cell with nothing measured


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The header, the rule and one line per row; a row must have one cell per header. A cell's ``|`` is
    escaped and its line breaks become spaces (a model's output in a cell would otherwise split the row)."""
    headers = list(headers)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        cells = [_cell(c) for c in row]
        if len(cells) != len(headers):
            raise ValueError(f"a table row has {len(cells)} cells for {len(headers)} headers: {cells}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(c: Any) -> str:
    text = c if isinstance(c, str) else str(c)
    return " ".join(text.replace("|", "\\|").splitlines()) if "|" in text or "\n" in text else text


def interval_cell(cell: Any, scale: float = 100) -> str:
    """A figure as a cell: ``{"mean", "ci"}`` -> ``"m [lo, hi]"`` (times ``scale``, one decimal); a float
    with four significant digits; anything else as text; None or no mean -> ``–``."""
    if cell is None:
        return MISSING
    if isinstance(cell, dict):
        m, ci = cell.get("mean"), cell.get("ci")
        if m is None:
            return MISSING
        txt = f"{m * scale:.1f}"
        if ci:
            txt += f" [{ci[0] * scale:.1f}, {ci[1] * scale:.1f}]"
        return txt
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return str(cell)
