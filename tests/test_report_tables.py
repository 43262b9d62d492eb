"""The report's one Markdown table helper and its interval cell."""

from __future__ import annotations

import pytest

from distill_lab.stages.report.tables import interval_cell, markdown_table


def test_a_table_has_a_header_a_rule_and_one_line_per_row():
    assert markdown_table(["a", "b"], [[1, "x"], [None, 2.5]]) == [
        "| a | b |", "|---|---|", "| 1 | x |", "| None | 2.5 |"]
    assert markdown_table(["only"], []) == ["| only |", "|---|"]


def test_a_row_with_the_wrong_number_of_cells_is_refused():
    with pytest.raises(ValueError, match="2 cells for 3 headers"):
        markdown_table(["a", "b", "c"], [[1, 2]])


def test_interval_cells_scale_to_percent_and_name_what_is_missing():
    assert interval_cell({"mean": 0.4567, "ci": [0.4, 0.51]}) == "45.7 [40.0, 51.0]"
    assert interval_cell({"mean": 2.5, "ci": None}, scale=1) == "2.5"
    assert interval_cell({"mean": None, "ci": [0.1, 0.2]}) == "–"
    assert interval_cell(None) == "–"
    assert interval_cell(0.123456) == "0.1235"
    assert interval_cell(7) == "7"


def test_a_cell_with_a_pipe_or_a_line_break_stays_one_cell():
    """A model's output in a failure table (``|x|``, two lines) must not split or end the row."""
    assert markdown_table(["output"], [["|x| = 3\nso 3"]]) == ["| output |", "|---|", "| \\|x\\| = 3 so 3 |"]
