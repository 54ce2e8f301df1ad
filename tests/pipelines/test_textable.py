"""pipelines/textable.py: plain-text tables aligned by display width."""

from __future__ import annotations

import pytest

from pipelines.textable import clip, display_width, format_table, printable
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


HOSTILE = "ana\x1b]0;pwned\x07\x1b[2Jx"  # retitles the terminal, then clears it


def test_values_cannot_drive_the_terminal():
    table = format_table(["author\x1b[31m", "n"], [[HOSTILE, "1"], ["bob\x9b2J\x1b]52;c;cHduZWQ=\x1b\\!", "2"]])
    assert "\x1b" not in table and "\x07" not in table and "\x9b" not in table
    assert "pwned" not in table and "cHduZWQ=" not in table  # an OSC string goes with its escape
    assert table.splitlines()[0].split() == ["author", "n"]
    assert [line.split() for line in table.splitlines()[2:]] == [["anax", "1"], ["bob!", "2"]]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, "anax"),
        ("a\x1b[1;31mred\x1b[0m", "ared"),
        ("\x1bcreset\x1b(Bok", "resetok"),  # two-character escapes
        ("bell\x07 null\x00 del\x7f c1\x85\x9d8;;http://x\x9c", "bell null del c1"),
        ("open \x1b]0;never ended", "open "),  # an unterminated string is dropped to the end, as a terminal would
        ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
        ("ñandú 李 🌍", "ñandú 李 🌍"),
    ],
)
def test_printable_takes_out_escape_sequences_and_controls(text, shown):
    assert printable(text) == shown


def test_sql_errors_are_printed_without_escape_sequences(capsys):
    from pyspark.errors import PySparkException

    from pipelines.sql import run_statement

    class RefusingSpark:  # Spark's answer to a statement it cannot run, quoting the value
        def sql(self, statement):
            raise PySparkException(message=f"[CAST_INVALID_INPUT] The value '{HOSTILE}' cannot be cast")

    assert run_statement(RefusingSpark(), "SELECT 1", 10) is False
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "The value 'anax' cannot be cast" in err
