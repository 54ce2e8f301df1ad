"""pipelines/report.py: what the statistics report shows, on the hand-computed dataset of stats_data.py:
the users table, the cards, the data of each chart, the running total of blocked users, the log scale."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser

import pytest
from matplotlib.colors import to_rgba
from matplotlib.dates import date2num

from pipelines.report import (
    BLOCKED,
    CHART_FONTS,
    STRIKE,
    ReportData,
    chart_font_files,
    chart_hour_of_day,
    chart_messages_per_hour,
    chart_moderation_over_time,
    chart_rate_distribution,
    chart_top_offenders,
    hour_of_day_series,
    messages_per_hour_series,
    missing_glyphs,
    moderation_series,
    offenders_series,
    rate_distribution_series,
    render_report,
)
from pipelines.user_stats import report_data, user_stats
from tests.pipelines.stats_data import EXPECTED, LI, ZOE, at, by_hour, sources
from warehouse.tables import USER_STATS_SCHEMA


@pytest.fixture(scope="module")
def data(spark) -> ReportData:
    messages, strikes, moderation = sources(spark)
    stats = user_stats(messages, strikes, moderation)
    return report_data(stats, messages, strikes, moderation, {"messages": 3, "user_stats": 4}, 1, top=15)


class TableRows(HTMLParser):
    """The text of each cell of the page's table, row by row (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, text):
        if self._cell is not None:
            self._cell.append(text)


def table_rows(data: ReportData) -> list[list[str]]:
    parser = TableRows()
    parser.feed(render_report(data, generated_at=datetime(2026, 11, 28, 12, 0)))
    return parser.rows


def test_the_users_table_ranks_by_strikes_with_the_computed_rates(data):
    rows = table_rows(data)
    assert rows[0][:5] == ["author", "messages", "profane", "rate", "strikes"]
    assert rows[1:] == [
        [ZOE, "5", "4", "80.0%", "3", "2026-11-26 11:20", "2026-11-26 10:00", "2026-11-26 11:30", "1", "10:00",
         "mierda (2), culo (1), joder (1), puta (1)"],
        ["bob", "2", "1", "50.0%", "1", "–", "2026-11-27 23:59", "2026-11-28 00:00", "2", "00:00", "shit (2)"],
        ["ana", "3", "0", "0.0%", "0", "–", "2026-11-25 09:10", "2026-11-26 21:05", "2", "09:00", ""],
        [LI, "1", "0", "0.0%", "0", "–", "2026-11-27 03:00", "2026-11-27 03:00", "1", "03:00", ""],
    ]  # fmt: skip


def test_the_cards_total_the_dataset(data):
    page = render_report(data, generated_at=datetime(2026, 11, 28, 12, 0))
    cards = re.findall(r'<div class="card">([^<]*)<b>([^<]*)</b></div>', page)
    assert cards == [
        ("users", "4"),
        ("messages", "11"),
        ("profane", "5 (45.5%)"),
        ("strikes", "4"),
        ("blocked users", "1"),
        ("rejected records", "1"),
    ]
    assert "chat.messages VERSION AS OF 3" in page and "chat.user_stats VERSION AS OF 4" in page
    assert "Messages from 2026-11-25 09:10 – 2026-11-28 00:00 UTC · generated 2026-11-28 12:00:00 UTC" in page


HOURS = [at(25, 9), at(26, 9), at(26, 10), at(26, 11), at(26, 21), at(27, 3), at(27, 23), at(28, 0)]


def bars(ax) -> list[tuple]:
    """(x, bottom, height) of each vertical bar, in drawing order."""
    return [(round(p.get_x(), 6), p.get_y(), p.get_height()) for p in ax.patches]


def test_messages_per_hour_stacks_the_profane_on_the_clean(data):
    clean, profane = [1, 1, 1, 0, 1, 1, 0, 1], [0, 0, 2, 2, 0, 0, 1, 0]
    assert messages_per_hour_series(data.activity) == {"hours": HOURS, "clean": clean, "profane": profane}
    [ax] = chart_messages_per_hour(data.activity).axes
    xs = [round(x, 6) for x in date2num(HOURS)]
    assert bars(ax) == [*zip(xs, [0] * 8, clean), *zip(xs, clean, profane)]


def test_activity_by_hour_of_day_adds_the_days_up(data):
    clean, profane = by_hour({0: 1, 3: 1, 9: 2, 10: 1, 21: 1}), by_hour({10: 2, 11: 2, 23: 1})
    assert hour_of_day_series(data.activity) == {"clean": clean, "profane": profane}
    [ax] = chart_hour_of_day(data.activity).axes
    assert [p.get_height() for p in ax.patches] == clean + profane


def test_top_offenders_worst_at_the_top_coloured_by_block(data):
    series = offenders_series(data.offenders)
    assert series == {
        "names": ["bob", ZOE],
        "profane": [1, 4],
        "blocked": [False, True],
        "labels": ["  1 strike · 50% of messages", "  3 strikes · blocked · 80% of messages"],
    }
    [ax] = chart_top_offenders(data.offenders).axes
    assert [p.get_width() for p in ax.patches] == [1, 4]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bob", ZOE]
    assert [t.get_text() for t in ax.texts] == series["labels"]
    assert [p.get_facecolor() for p in ax.patches] == [to_rgba(STRIKE), to_rgba(BLOCKED)]


def test_profanity_rates_per_band_and_the_switch_to_a_log_scale(data):
    series = rate_distribution_series(data.rate_histogram, data.rate_bins)
    assert series["band_starts"] == [5.0 * i for i in range(20)]
    assert series["users"] == [2] + [0] * 9 + [1] + [0] * 5 + [1] + [0] * 3  # ana and Li; bob 50 %; Zoë 80 %
    assert series["log_scale"] is False
    [ax] = chart_rate_distribution(data.rate_histogram, data.rate_bins).axes
    assert [p.get_height() for p in ax.patches] == series["users"] and ax.get_yscale() == "linear"
    # a band of more than 20 times the next largest switches to a log scale (and exactly 20 times does not)
    for histogram, log_scale in [
        ([{"bin": 0, "users": 41}, {"bin": 3, "users": 2}], True),
        ([{"bin": 0, "users": 40}, {"bin": 3, "users": 2}], False),
        ([{"bin": 0, "users": 21}], True),
        ([{"bin": 0, "users": 20}], False),
    ]:
        assert rate_distribution_series(histogram, 20)["log_scale"] is log_scale, histogram
        [ax] = chart_rate_distribution(histogram, 20).axes
        assert ax.get_yscale() == ("symlog" if log_scale else "linear")


def test_strikes_per_hour_and_the_running_total_of_blocked_users(data):
    series = moderation_series(data.moderation)
    assert series == {
        "hours": [at(26, 10), at(26, 11), at(27, 23)],
        "strikes": [2, 1, 1],
        "blocked_at": [at(26, 10), at(26, 11), at(27, 23), at(28, 0)],  # held to the end of the last hour
        "blocked": [0, 1, 1, 1],
    }
    ax, twin = chart_moderation_over_time(data.moderation).axes
    assert [p.get_height() for p in ax.patches] == [2, 1, 1]
    [line] = twin.get_lines()
    assert list(line.get_ydata()) == [0, 1, 1, 1]
    more = [
        {"hour": at(1, 8), "strikes": 4, "blocks": 1},
        {"hour": at(1, 9), "strikes": 0, "blocks": 0},
        {"hour": at(2, 20), "strikes": 6, "blocks": 2},
    ]
    assert moderation_series(more)["blocked"] == [1, 1, 3, 3]
    ax, twin = chart_moderation_over_time(more).axes
    assert list(twin.get_lines()[0].get_ydata()) == [1, 1, 3, 3] and twin.get_ylim() == (0, pytest.approx(3.3))


def test_report_is_self_contained_and_escapes_user_text(spark):
    hostile = "<img src=x onerror=alert(1)>"
    row = spark.createDataFrame([(hostile, *EXPECTED[2][1:])], USER_STATS_SCHEMA).first()
    data = ReportData(
        versions={"messages": 7},
        totals={
            "users": 1,
            "messages": 5,
            "profane_messages": 4,
            "strikes": 3,
            "blocked": 1,
            "first_seen": at(26, 10),
            "last_seen": at(26, 11, 30),
        },
        rejected=2,
        activity=[],
        offenders=[row],
        rate_histogram=[],
        moderation=[],
        top_users=[row],
    )
    page = render_report(data, generated_at=datetime(2026, 11, 27, 12, 0))
    assert page.count("<svg") == 5
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report must not load anything"
    assert "<script" not in page
    assert "chat.messages VERSION AS OF 7" in page and "no data yet" in page


def offender(spark, name: str):
    return spark.createDataFrame([(name, *EXPECTED[2][1:])], USER_STATS_SCHEMA).first()


def test_names_that_look_like_math_are_drawn_as_plain_text(spark):
    # matplotlib used to parse `$…$` in a tick label as mathtext and raise: no report while such a user offended
    names = ["$\\frac$", "$a^{$", "a_b$c$", "100$ and $2"]
    rows = [offender(spark, name) for name in names]
    page = render_report(
        ReportData(
            versions={},
            totals={
                "users": 4,
                "messages": 20,
                "profane_messages": 16,
                "strikes": 12,
                "blocked": 4,
                "first_seen": at(26, 10),
                "last_seen": at(26, 11),
            },
            rejected=0,
            activity=[],
            offenders=rows,
            rate_histogram=[],
            moderation=[],
            top_users=rows,
        ),
        generated_at=datetime(2026, 11, 27, 12, 0),
    )
    svg = page[page.index("Top offenders") :]
    for name in names:
        assert f">{name}</text>" in svg.replace("&amp;", "&"), name
    [ax] = chart_top_offenders(rows).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == list(reversed(names))


def test_every_script_and_emoji_in_names_has_a_chart_font_that_draws_it():
    # the Makefile installs Debian's fonts-noto-cjk and fonts-symbola for `make stats` and `make test`
    assert set(chart_font_files()) == set(CHART_FONTS), "a chart font is not installed: make fonts"
    for name in ("张伟", "山田 太郎", "김민준", "Zoë 🌍", "Iñaki", "Ольга", "🖕🏽", "Ναταλία"):
        assert missing_glyphs(name) == set(), name
    assert missing_glyphs("\U000f0000") == {"\U000f0000"}  # a private-use character no font has: reported


def test_chart_text_names_the_fonts_that_cover_every_script(spark):
    [ax] = chart_top_offenders([offender(spark, "张伟 🌍")]).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["张伟 🌍"]
    page = render_report(
        ReportData(
            versions={},
            totals={
                "users": 1,
                "messages": 5,
                "profane_messages": 4,
                "strikes": 3,
                "blocked": 1,
                "first_seen": at(26, 10),
                "last_seen": at(26, 11),
            },
            rejected=0,
            activity=[],
            offenders=[offender(spark, "张伟 🌍")],
            rate_histogram=[],
            moderation=[],
            top_users=[],
        ),
        generated_at=datetime(2026, 11, 27, 12, 0),
    )
    label = page[: page.index(">张伟 🌍</text>")]
    style = label[label.rindex("<text") :]
    assert "font-family: " + ", ".join(f"'{f}'" for f in CHART_FONTS) in style
