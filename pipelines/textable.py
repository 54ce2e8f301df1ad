"""Plain-text tables for terminals: columns aligned by display width (CJK and emoji take two cells), and no
value able to drive the terminal (escape sequences and control characters are taken out)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

MAX_CELL = 60  # display cells; longer values are cut with an ellipsis

# a value printed raw could retitle or clear the terminal, move the cursor over other rows, or (on some
# terminals) set the clipboard: ESC sequences (CSI, OSC/DCS/SOS/PM/APC strings up to their terminator, the
# two-character ones) and their one-character C1 forms
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every C0 and C1 control but tab and newline


def printable(text: str) -> str:
    """`text` without terminal escape sequences and control characters (tab and newline stay)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def _cell_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Cf", "Mn", "Me"):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F") or ord(ch) >= 0x1F300:
        return 2
    return 1


def display_width(text: str) -> int:
    return sum(_cell_width(ch) for ch in text)


def clip(text: str, width: int = MAX_CELL) -> str:
    """`text` on one line, printable (no escape sequence), cut to at most `width` display cells."""
    text = " ".join(text.split()) if any(c in text for c in "\n\r\t") else text
    text = printable(text)
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * (width - display_width(text))
    return gap + text if right else text + gap


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]], align_right: set[int] = frozenset()) -> str:
    """Headers, a rule and the rows; cells are strings, columns in `align_right` are right-aligned."""
    headers = [printable(" ".join(str(h).split())) for h in headers]
    body = [[clip(str(c)) for c in row] for row in rows]
    widths = [max([display_width(h)] + [display_width(r[i]) for r in body]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(_pad(h, w, i in align_right) for i, (h, w) in enumerate(zip(headers, widths))).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(_pad(c, w, i in align_right) for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in body]
    return "\n".join(lines)
