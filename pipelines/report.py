"""The statistics job's HTML report: one self-contained file, charts drawn by matplotlib and inlined as SVG.

Nothing is loaded from the network when the report is opened: the styles are
inline and every chart is an `<svg>` element in the page. Chart text is kept
as text (not paths), named in fonts that cover every script and emoji
(CHART_FONTS), and never parsed as math: a user name is plain text in every
chart. Every user-supplied string is HTML-escaped.
"""

from __future__ import annotations

import functools
import html
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from config import contract

HOURS = 24
HOUR_WIDTH = 1 / 24 * 0.9  # a bar per clock hour on a date axis (whose unit is the day), with a gap
CLEAN, PROFANE, BLOCKED, STRIKE = "#4C78A8", "#E45756", "#B279A2", "#F58518"
# Latin, Greek and Cyrillic; CJK; emoji and symbols (monochrome: matplotlib measures no colour font).
# Debian's fonts-noto-cjk and fonts-symbola (the Makefile installs them); without them the charts
# fall back to matplotlib's own font, and the browser to its own.
CHART_FONTS = ("DejaVu Sans", "Noto Sans CJK JP", "Symbola")
CHART_STYLE = {
    "svg.fonttype": "none",  # text stays text: the browser draws it, in the fonts named here
    "text.parse_math": False,  # a name such as `$\\frac$` is a name, not a formula matplotlib must parse
    "font.family": list(CHART_FONTS),
}


@dataclass
class ReportData:
    versions: dict  # table -> Delta version the report was built from
    totals: dict  # users, messages, profane_messages, strikes, blocked, first_seen, last_seen
    rejected: int | None  # rows in rejected_messages (None: no table yet)
    activity: list  # rows (hour, messages, profane_messages), by hour
    offenders: list  # user_stats rows with profane messages, worst first
    rate_histogram: list  # rows (bin, users)
    moderation: list  # rows (hour, strikes, blocks), by hour
    top_users: list  # user_stats rows for the table
    rate_bins: int = 20  # bands of the rate histogram (bin i: [i/bins, (i+1)/bins))


# -- drawing ---------------------------------------------------------------------------------


@functools.cache
def chart_font_files() -> dict[str, str]:
    """The file of each CHART_FONTS family found on this machine."""
    found = {}
    for family in CHART_FONTS:
        try:
            found[family] = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
    return found


def missing_glyphs(text: str) -> set[str]:
    """The characters of `text` that no chart font on this machine can draw (they would show as boxes)."""
    charmaps = [FT2Font(path).get_charmap() for path in chart_font_files().values()]
    return {ch for ch in text if not ch.isspace() and not any(ord(ch) in charmap for charmap in charmaps)}


def _charted(draw):
    """Draw a chart in the charts' style (fonts, text as text, no math in names)."""

    @functools.wraps(draw)
    def styled(*args, **kwargs) -> Figure:
        with matplotlib.rc_context(CHART_STYLE):
            return draw(*args, **kwargs)

    return styled


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(CHART_STYLE), warnings.catch_warnings():
        # a glyph no chart font has: the browser falls back to its own fonts for it
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from font", category=UserWarning)
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _figure(width: float = 9.0, height: float = 3.4) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of messages and users
    return fig, ax


def _no_data(ax, text: str = "no data yet") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888")
    ax.set_xticks([])
    ax.set_yticks([])


# -- what each chart plots (plain lists, so that the tests can check them) --------------------------


def messages_per_hour_series(activity: list) -> dict:
    """Per clock hour: the clean and the profane messages (stacked)."""
    return {
        "hours": [r["hour"] for r in activity],
        "clean": [r["messages"] - r["profane_messages"] for r in activity],
        "profane": [r["profane_messages"] for r in activity],
    }


def hour_of_day_series(activity: list) -> dict:
    """Per hour of the day (0-23, UTC), all days added up: the clean and the profane messages."""
    messages, profane = [0] * HOURS, [0] * HOURS
    for r in activity:
        messages[r["hour"].hour] += r["messages"]
        profane[r["hour"].hour] += r["profane_messages"]
    return {"clean": [m - p for m, p in zip(messages, profane)], "profane": profane}


def offenders_series(offenders: list) -> dict:
    """Per offender, worst at the top (so last): name (cut to 24 characters), profane messages, blocked, label."""
    rows = list(reversed(offenders))
    return {
        "names": [r["author"] if len(r["author"]) <= 24 else r["author"][:23] + "…" for r in rows],
        "profane": [r["profane_messages"] for r in rows],
        "blocked": [bool(r["is_blocked"]) for r in rows],
        "labels": [
            f"  {r['strikes']} strike{'s' if r['strikes'] != 1 else ''}"
            + (" · blocked" if r["is_blocked"] else "")
            + f" · {r['profanity_rate']:.0%} of messages"
            for r in rows
        ],
    }


def rate_distribution_series(histogram: list, bins: int) -> dict:
    """Users per band of the profanity rate (band i starts at i × 100/bins %), and whether the y axis is
    logarithmic: when one band (the clean users, usually) holds over 20 times the next largest."""
    users = [0] * bins
    for r in histogram:
        users[r["bin"]] = r["users"]
    return {
        "band_starts": [i * 100 / bins for i in range(bins)],
        "users": users,
        "log_scale": max(users) > 20 * max(1, sorted(users)[-2]),
    }


def moderation_series(moderation: list) -> dict:
    """Per clock hour: the strikes, and the running total of blocked users, which holds until the end of
    the last hour (so its steps have one more point)."""
    hours = [r["hour"] for r in moderation]
    blocked, total = [], 0
    for r in moderation:
        total += r["blocks"]
        blocked.append(total)
    return {
        "hours": hours,
        "strikes": [r["strikes"] for r in moderation],
        "blocked_at": hours + [hours[-1] + timedelta(hours=1)] if hours else [],
        "blocked": blocked + blocked[-1:],
    }


# -- charts ---------------------------------------------------------------------------------------


def _hour_bars(ax, hours: list, heights: list, color: str, label: str, bottom: list | None = None) -> None:
    """A bar per clock hour on a date axis."""
    ax.bar(hours, heights, width=HOUR_WIDTH, align="edge", color=color, label=label, bottom=bottom)


@_charted
def chart_messages_per_hour(activity: list) -> Figure:
    fig, ax = _figure()
    if not activity:
        _no_data(ax)
    else:
        series = messages_per_hour_series(activity)
        _hour_bars(ax, series["hours"], series["clean"], CLEAN, "clean")
        _hour_bars(ax, series["hours"], series["profane"], PROFANE, "profane", bottom=series["clean"])
        ax.set_ylabel("messages per hour")
        ax.legend(frameon=False, loc="upper left")
        fig.autofmt_xdate()
    ax.set_title("Messages per hour (UTC)", loc="left")
    return fig


@_charted
def chart_hour_of_day(activity: list) -> Figure:
    fig, ax = _figure(height=3.0)
    if not activity:
        _no_data(ax)
    else:
        series = hour_of_day_series(activity)
        ax.bar(range(HOURS), series["clean"], color=CLEAN, label="clean")
        ax.bar(range(HOURS), series["profane"], bottom=series["clean"], color=PROFANE, label="profane")
        ax.set_xticks(range(0, HOURS, 2), [f"{h:02d}" for h in range(0, HOURS, 2)])
        ax.set_xlabel("hour of day (UTC)")
        ax.set_ylabel("messages")
        ax.legend(frameon=False, loc="upper left")
    ax.set_title("Activity by hour of day, all days together", loc="left")
    return fig


@_charted
def chart_top_offenders(offenders: list) -> Figure:
    fig, ax = _figure(height=max(2.5, 0.32 * len(offenders) + 1.2))
    ax.grid(axis="y", alpha=0)
    ax.grid(axis="x", alpha=0.3)
    if not offenders:
        _no_data(ax, "no profane messages")
    else:
        series = offenders_series(offenders)
        positions = range(len(series["names"]))
        bars = ax.barh(positions, series["profane"], color=[BLOCKED if b else STRIKE for b in series["blocked"]])
        ax.set_yticks(positions, series["names"])
        for bar, label in zip(bars, series["labels"]):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8, color="#444")
        ax.set_xlabel("profane messages")
        ax.set_xlim(0, max(series["profane"]) * 1.6)
        ax.legend(
            handles=[Patch(color=BLOCKED, label="blocked"), Patch(color=STRIKE, label="not blocked")],
            frameon=False,
            loc="lower right",
        )
    ax.set_title("Top offenders", loc="left")
    return fig


@_charted
def chart_rate_distribution(histogram: list, bins: int) -> Figure:
    fig, ax = _figure(height=3.0)
    if not histogram:
        _no_data(ax)
    else:
        series = rate_distribution_series(histogram, bins)
        step = 100 / bins
        colors = [CLEAN if i == 0 else PROFANE for i in range(bins)]
        ax.bar(series["band_starts"], series["users"], width=step * 0.9, align="edge", color=colors)
        ax.set_xlim(0, 100)
        ax.set_xlabel("profanity rate: share of a user's messages that were profane (%)")
        ax.set_ylabel("users")
        if series["log_scale"]:
            ax.set_yscale("symlog")  # most users are clean: keep the tail visible
    ax.set_title("How profane are users? Distribution of profanity rates", loc="left")
    return fig


@_charted
def chart_moderation_over_time(moderation: list) -> Figure:
    fig, ax = _figure()
    if not moderation:
        _no_data(ax, "no strikes yet")
    else:
        series = moderation_series(moderation)
        _hour_bars(ax, series["hours"], series["strikes"], STRIKE, "strikes per hour")
        ax.set_ylabel("strikes per hour")
        twin = ax.twinx()
        twin.step(
            series["blocked_at"],
            series["blocked"],
            where="post",
            color=BLOCKED,
            linewidth=2,
            label="blocked users (cumulative)",
        )
        twin.set_ylabel("blocked users")
        twin.set_ylim(bottom=0, top=max(1, series["blocked"][-1]) * 1.1)
        twin.yaxis.set_major_locator(MaxNLocator(integer=True))
        twin.spines[["top"]].set_visible(False)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], frameon=False, loc="upper left")
        fig.autofmt_xdate()
    ax.set_title("Strikes and blocks over time (UTC)", loc="left")
    return fig


# -- the page ----------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1.2rem 0; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: .6rem 1rem; min-width: 8rem; }
.card b { display: block; font-size: 1.5rem; }
section { margin: 2rem 0; } figure { margin: 0; } svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: .9rem; } th, td { padding: .3rem .6rem; border-bottom: 1px solid #eee; } td { white-space: nowrap; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 .25rem; border-radius: 3px; }
"""


def _fmt_time(value) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "–"


def _cards(data: ReportData) -> str:
    t = data.totals
    messages = t.get("messages") or 0
    profane = t.get("profane_messages") or 0
    cards = [
        ("users", f"{t.get('users') or 0:,}"),
        ("messages", f"{messages:,}"),
        ("profane", f"{profane:,} ({profane / messages:.1%})" if messages else "0"),
        ("strikes", f"{t.get('strikes') or 0:,}"),
        ("blocked users", f"{t.get('blocked') or 0:,}"),
    ]
    if data.rejected is not None:
        cards.append(("rejected records", f"{data.rejected:,}"))
    return "".join(f'<div class="card">{html.escape(label)}<b>{html.escape(value)}</b></div>' for label, value in cards)


# The users table, in the report and in the job's printed summary
USER_COLUMNS = (
    "author",
    "messages",
    "profane",
    "rate",
    "strikes",
    "blocked since",
    "first seen",
    "last seen",
    "active days",
    "busiest hour",
    "top terms",
)
NUMERIC_USER_COLUMNS = frozenset({1, 2, 3, 4, 8, 9})


def user_cells(r) -> list[str]:
    """One user_stats row as the table's text cells."""
    blocked = (_fmt_time(r["blocked_at"]) if r["blocked_at"] else "yes") if r["is_blocked"] else "–"
    return [
        r["author"],
        f"{r['messages']:,}",
        f"{r['profane_messages']:,}",
        f"{r['profanity_rate']:.1%}",
        str(r["strikes"]),
        blocked,
        _fmt_time(r["first_seen"]),
        _fmt_time(r["last_seen"]),
        str(r["active_days"]),
        f"{r['busiest_hour']:02d}:00",
        ", ".join(f"{t['term']} ({t['hits']})" for t in r["top_terms"]),
    ]


def _users_table(rows: list) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in USER_COLUMNS) + "</tr></thead><tbody>"]
    for r in rows:
        out.append(
            "<tr>"
            + "".join(
                f'<td class="n">{html.escape(v)}</td>' if i in NUMERIC_USER_COLUMNS else f"<td>{html.escape(v)}</td>"
                for i, v in enumerate(user_cells(r))
            )
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render_report(data: ReportData, generated_at: datetime | None = None) -> str:
    generated_at = generated_at or datetime.now(UTC)
    t = data.totals
    span = (
        f"{_fmt_time(t.get('first_seen'))} – {_fmt_time(t.get('last_seen'))} UTC"
        if t.get("first_seen")
        else "no messages yet"
    )
    versions = ", ".join(f"<code>chat.{html.escape(n)} VERSION AS OF {v}</code>" for n, v in data.versions.items())
    sections = [
        (
            "Messages per hour",
            "Every message the ledger recorded, per clock hour; profane ones stacked in red.",
            _svg(chart_messages_per_hour(data.activity)),
        ),
        (
            "Activity by hour of day",
            "When people chat: all days added up per hour of the day.",
            _svg(chart_hour_of_day(data.activity)),
        ),
        (
            "Top offenders",
            "Users with the most profane messages; the label gives strikes, the block and the rate.",
            _svg(chart_top_offenders(data.offenders)),
        ),
        (
            "Profanity rates",
            f"Users per {100 / data.rate_bins:g} % band of their profanity rate; the first (blue) "
            f"band is 0–{100 / data.rate_bins:g} %.",
            _svg(chart_rate_distribution(data.rate_histogram, data.rate_bins)),
        ),
        (
            "Strikes and blocks over time",
            "Strikes given per hour, and the running total of blocked users.",
            _svg(chart_moderation_over_time(data.moderation)),
        ),
    ]
    body = "".join(
        f'<section><h2>{title}</h2><p class="sub">{text}</p><figure>{svg}</figure></section>'
        for title, text, svg in sections
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chat user statistics</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>Chat user statistics</h1>
<p class="sub">Messages from {html.escape(span)} · generated {generated_at.strftime(contract.TIMESTAMP_FORMAT)} UTC
by <code>pipelines/user_stats.py</code></p>
<div class="cards">{_cards(data)}</div>
{body}
<section><h2>Users with the most strikes</h2>{_users_table(data.top_users)}</section>
<section><h2>Data</h2><p class="sub">Built from {versions}.</p></section>
</body></html>
"""


def write_report(data: ReportData, path: Path) -> Path:
    """Render and write atomically (a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(data)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)  # NamedTemporaryFile makes it private; a report is for sharing
    os.replace(tmp.name, path)
    return path
