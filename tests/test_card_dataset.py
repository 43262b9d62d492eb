"""The dataset card: counts, lengths per effort, filters, cost, and the thinking-length histogram."""

from __future__ import annotations

import random

from distill_lab.artifacts.rows import make_row
from distill_lab.stages.generate.card import HISTOGRAM, length_stats, write_card
from distill_lab.stages.generate.config import FamilySpec, RecipeConfig
from distill_lab.stages.generate.recipe import build_problems
from distill_lab.tasks import get_family
from distill_lab.teachers.base import TeacherReply


def _rows():
    res = build_problems(RecipeConfig(families=[FamilySpec(name="addition"), FamilySpec(name="capitals", params={"n_facts": 10})],
                                      size=20, test_size=4, ood_size=2))
    rows = []
    for effort in ("low", "high"):
        fp = {"provider": "oracle", "model": "oracle-v1", "effort": effort}
        for ps in res.problems.values():
            for p in ps:
                reasoning, answer = get_family(p.task).oracle(p, effort)
                reply = TeacherReply(content=answer, reasoning=reasoning, usage={"output_tokens": 7}, cost_usd=0.001)
                rows.append(make_row(p, 0, fp, reply, True))
    return res, rows


class ByteTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(text.encode())}


def test_card_lists_counts_lengths_filters_and_cost(tmp_path):
    res, rows = _rows()
    path = write_card(rows, tmp_path, recipe_stats=res.stats, filters={"kept": 52, "max_tokens": 3})
    text = path.read_text()
    assert path == tmp_path / "README.md"
    assert "| addition | 20 | 4 | 2 | 26 |" in text  # 10 + 2 + 1 per effort, two efforts
    assert "| knowledge | 20 | 4 | 2 | 26 |" in text and "| **total** | 40 | 8 | 4 | 52 |" in text
    assert "| max_tokens | 3 |" in text and "| kept | 52 |" in text
    assert "recipe member `family:capitals`, weight 1.0" in text
    assert "- capitals: facts_taught 10, heldout 3, heldout_taught 3, share_taught 1.00" in text
    assert "- total: $0.0520" in text and "- output_tokens: 364" in text
    assert "## Lengths per teacher effort (words)" in text
    stats, thinking, unit = length_stats(rows)
    assert unit == "words" and set(stats) == {"low", "high"}
    assert stats["low"]["thinking"]["mean"] < stats["high"]["thinking"]["mean"]
    assert f"| high | thinking | 26 | {stats['high']['thinking']['mean']:.1f} |" in text
    png = (tmp_path / HISTOGRAM).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert f"![thinking length by effort]({HISTOGRAM})" in text


def test_card_counts_tokens_with_a_tokenizer_and_reports_shortfall(tmp_path):
    res, rows = _rows()
    stats, thinking, unit = length_stats(rows, ByteTokenizer())
    assert unit == "tokens"
    expected = [len((r["messages"][-1]["reasoning_content"] or "").encode()) for r in rows
                if r["teacher"]["effort"] == "high"]
    assert thinking["high"] == expected
    recipe_stats = {**res.stats, "shortfall": {"train": {"requested": 30, "realised": 20, "short": ["family:x"]}}}
    text = write_card(rows, tmp_path, recipe_stats=recipe_stats, filters={}, tokenizer=ByteTokenizer()).read_text()
    assert "## Lengths per teacher effort (tokens)" in text
    assert "- train: 20 of 30 (ran short: family:x)" in text


def test_card_shows_rejected_rows_as_their_own_split(tmp_path):
    _, rows = _rows()
    rows[0] = {**rows[0], "split": "rejected"}
    random.Random(0).shuffle(rows)
    text = write_card(rows, tmp_path, recipe_stats=None, filters=None).read_text()
    assert "| task | train | test | ood | rejected | total |" in text
    assert "| **total** | 39 | 8 | 4 | 1 | 52 |" in text
