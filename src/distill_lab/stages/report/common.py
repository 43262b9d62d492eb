"""What the single-run report and the sweep report share: the seed document's retention figures."""

from __future__ import annotations

SEED_RETENTION: dict[str, tuple[str, float, float]] = {
    "style": ("Writing style", 0.85, 0.95),
    "format": ("Format/structure", 0.90, 0.95),
    "knowledge": ("Common knowledge", 0.70, 0.85),
    "reasoning": ("Novel reasoning", 0.40, 0.60),
    "edge_case": ("Edge cases", 0.30, 0.50),
}


def seed_cell(category: str) -> str:
    """The seed's figure for a category, as a table cell (``–`` for a category it has none for)."""
    seed = SEED_RETENTION.get(category)
    return f"{seed[0]}: {seed[1]:.0%}–{seed[2]:.0%}" if seed else "–"
