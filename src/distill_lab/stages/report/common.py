"""What the single-run report and the sweep report share: the seed document's retention figures and the
retention-per-category chart."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

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


def bars(ax, points: list[tuple[int, float, list[float] | None]], offset: float, width: float, **kw) -> None:
    """One bar series: ``(slot, value, [lo, hi] or None)`` per bar, at ``slot + offset``, CI whiskers."""
    lo = [max(0.0, v - ci[0]) if ci else 0.0 for _, v, ci in points]
    hi = [max(0.0, ci[1] - v) if ci else 0.0 for _, v, ci in points]
    ax.bar([j + offset for j, _, _ in points], [v for _, v, _ in points], width, yerr=[lo, hi], capsize=3, **kw)


def retention_by_category_plot(categories: Iterable[str], splits: list[str],
                               stat: Callable[[str, str], tuple[float, list[float] | None] | None], title: str,
                               path: Path) -> Path:
    """Retention per category (the seed's order), a bar per split with its interval, the seed's range as a
    grey band; ``stat(split, category)`` is ``(value, [lo, hi] or None)`` or None where not measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted(set(categories), key=lambda c: (list(SEED_RETENTION).index(c) if c in SEED_RETENTION
                                                  else len(SEED_RETENTION), c))
    fig, ax = plt.subplots(figsize=(2.0 + 1.4 * len(cats), 3.2))
    width = 0.8 / max(1, len(splits))
    for j, c in enumerate(cats):
        seed = SEED_RETENTION.get(c)
        if seed:
            ax.fill_between([j - 0.45, j + 0.45], seed[1], seed[2], color="0.85", zorder=0,
                            label="seed's figure" if j == 0 else None)
    for i, s in enumerate(splits):
        points = [(j, st[0], st[1]) for j, c in enumerate(cats) if (st := stat(s, c)) is not None]
        bars(ax, points, (i - (len(splits) - 1) / 2) * width, width, label=s, zorder=2)
    ax.axhline(1.0, color="k", lw=0.6, ls="--")
    ax.set_xticks(range(len(cats)), cats)
    ax.set_ylabel("retention (student / teacher)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
