"""Values the UI's tests share: sample messages and notices, hostile and awkward texts, and an HTML
parser that reads markup as a browser would."""

from __future__ import annotations

from html.parser import HTMLParser

from config import contract
from ui.models import FeedMessage, Notice, NoticeKind

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "**bold** and _em_ and `code`",
    "[link](javascript:alert(1))",
    '<a href="javascript:alert(1)">click</a>',
    "</div><script>alert(document.cookie)</script><div>",
    "&lt;already escaped&gt; &amp; \"quotes\" 'single'",
    "<span class='suggestion submit'>click me</span>",
    "<shiny-aside label=x>aside</shiny-aside>",
    "<thinking>secret</thinking>",
    "# heading\n\n- list\n> quote",
    "{{ template }} ${js} <!-- comment -->",
]

UNICODE = [
    "héllo wörld",
    "👋🏽 emoji 🎉 family 👨‍👩‍👧",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "zero\u200bwidth and combining e\u0301",
]

# Names the API accepts that must survive the trip through a URL path.
AWKWARD_NAMES = ["bob smith", ".", "..", "...", "zoë 🦊", "日本語", "50% off?#&=+", "notices"]


def msg(i: int, author: str = "alice", data: str | None = None) -> FeedMessage:
    return FeedMessage(id=f"m{i}", author=author, data=data or f"hello {i}", timestamp="2024-05-01 12:03:04")


def notice(i: int, kind: NoticeKind = "warning", strike: int = 1, text: str | None = None) -> Notice:
    """Notice ``n<i>`` to alice, with the contract's text for its kind unless ``text`` is given."""
    limit = contract.STRIKE_LIMIT
    return Notice(
        id=f"n{i}",
        author="alice",
        kind=kind,
        strike=strike,
        limit=limit,
        text=contract.notice_text(kind, strike, limit, ("darn",)) if text is None else text,
        timestamp="2024-05-01 12:03:04",
        terms=("darn",),
        message_id=None if kind == "unblocked" else f"m{i}",
    )


class Collector(HTMLParser):
    """Parses HTML like a browser would: which elements, and which text where."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text_by_class: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self.stack.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            key = self.stack[-1]
            self.text_by_class[key] = self.text_by_class.get(key, "") + data


def parse(markup: str) -> Collector:
    collector = Collector()
    collector.feed(markup)
    collector.close()
    return collector
