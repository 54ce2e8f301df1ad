"""pipelines/textable.py: plain-text tables aligned by display width."""

from __future__ import annotations

from pipelines.textable import clip, display_width, format_table
from tests.pipelines.stats_data import LI


def test_text_tables_align_wide_characters():
    table = format_table(["author", "n"], [[LI, "1"], ["ana", "22"]], align_right={1})
    widths = {display_width(line) for line in table.splitlines()}
    assert display_width(LI) == 6 and len(widths) == 1, table


def test_cells_are_cut_by_display_width_on_one_line():
    assert clip("a\nb\tc") == "a b c"
    assert clip("李小龙李小龙", width=7) == "李小龙…"  # six cells and the ellipsis
    assert clip("abc", width=3) == "abc"
    assert display_width("e\u0301🌍") == 3  # a combining mark takes no cell, an emoji two
