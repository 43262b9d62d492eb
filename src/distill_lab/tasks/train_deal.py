"""How a recipe deals its train rows among its members, the part the generate stage and the report's design
check share: the edge-case members rescaled to ``recipe.edge_case_share`` of the total, the others to the rest,
each keeping its weight within its side."""

from __future__ import annotations


def edge_share_weights(weights: list[float], is_edge: list[bool], share: float) -> list[float]:
    """``weights`` rescaled so the members with ``is_edge`` hold ``share`` of the total (the caller checks
    that both sides exist where their part is above 0)."""
    out = [0.0] * len(weights)
    for side, part in ((True, share), (False, 1 - share)):
        idx = [i for i, e in enumerate(is_edge) if e is side]
        tot = sum(weights[i] for i in idx)
        for i in idx:
            out[i] = part * weights[i] / tot
    return out
