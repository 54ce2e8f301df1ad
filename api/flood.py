"""Per-user rate limit, slow mode and repeated-message spam, held for a name across every API process and host.

`PostWindow` counts each author's accepted messages in a sliding window: a process adds its own
accepted posts at once (`admit`), and `ChatCounter` (a follower of `chat` in the process's Kafka tail)
adds everyone else's by record time, so a flooder gets at most the limit plus what other processes
accepted during the tail's lag. `SlowMode` follows the moderators' `slow_mode` actions on `chat_actions`.
`RepeatWindow` judges spam (the same text again and again) where each author's recent messages are known, and
the verdict travels in the record's `spam` headers, so the relay, the feed and the ledger read one fact.
README "Limits and slow mode".
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import threading
import time
import unicodedata
from dataclasses import dataclass

from flask import Flask, current_app

from api.errors import ApiError
from api.feed import header
from api.tail import Follower, Positions
from config import contract

SLOW_MODE_ACTION = contract.SLOW_MODE_ACTION
MAX_SLOW_MODE_S = contract.MAX_SLOW_MODE_S
# records of `chat` read back at a start, per partition: the recent past of each author's window
REWIND_RECORDS = 5000


class Refused(ApiError):
    """A 429 for a post over the rate limit or within the slow mode's interval; Retry-After in whole seconds."""

    def __init__(self, code: str, wait_s: float, **params: object):
        seconds = max(1, math.ceil(wait_s))
        super().__init__(429, code, headers={"Retry-After": str(seconds)}, seconds=seconds, **params)


class AuthorWindow:
    """Each author's recent messages (message id → an entry whose time `when()` gives), under one lock: what
    the rate limit's and the spam rule's windows share."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._by_author: dict[str, dict] = {}
        self._lock = threading.Lock()

    @staticmethod
    def when(entry) -> float:
        return entry

    def release(self, author: str, message_id: str) -> None:
        """Forget a message counted but not sent (Kafka refused it): it does not count."""
        with self._lock:
            sent = self._by_author.get(author)
            if sent is not None:
                sent.pop(message_id, None)
                if not sent:
                    del self._by_author[author]

    def _forget_before(self, cutoff: float) -> None:
        with self._lock:
            for author in list(self._by_author):
                kept = {i: e for i, e in self._by_author[author].items() if self.when(e) > cutoff}
                if kept:
                    self._by_author[author] = kept
                else:
                    del self._by_author[author]


class PostWindow(AuthorWindow):
    """Each author's accepted messages (message id → time, seconds since the epoch) over the last
    `window_s` (or the slow mode's interval, when longer)."""

    def __init__(self, limit: int, window_s: float, clock=time.time):
        if limit < 1 or not window_s > 0:
            raise ValueError("a rate limit needs at least one message in a window of more than 0 s")
        super().__init__(clock)
        self.limit, self.window_s = limit, window_s

    def admit(self, author: str, message_id: str, slow_mode_s: int = 0) -> None:
        """Count `message_id` for `author` now, or raise Refused (429) when that would pass the limit or
        come sooner than `slow_mode_s` after their last message. Check and count are one step."""
        now = self.clock()
        with self._lock:
            sent = self._by_author.setdefault(author, {})
            wait_rate = wait_slow = 0.0
            if slow_mode_s and sent:
                wait_slow = max(sent.values()) + slow_mode_s - now
            if len(sent) >= self.limit:  # below, the window cannot be full: no need to look
                recent = [t for t in sent.values() if t > now - self.window_s]
                if len(recent) >= self.limit:  # wait until all but limit - 1 of them have left the window
                    wait_rate = heapq.nsmallest(len(recent) - self.limit + 1, recent)[-1] + self.window_s - now
            if wait_slow > 0 and wait_slow >= wait_rate:
                raise Refused("slow_mode", wait_slow, interval=slow_mode_s)
            if wait_rate > 0:
                raise Refused("rate_limited", wait_rate, limit=self.limit, window=self.window_s)
            sent[message_id] = now

    def seen(self, author: str, message_id: str, at: float, horizon_s: float) -> None:
        """A message read from `chat` (sent through any process); one already counted is not counted again."""
        if at <= self.clock() - horizon_s:
            return
        with self._lock:
            self._by_author.setdefault(author, {}).setdefault(message_id, at)

    def prune(self, horizon_s: float) -> None:
        """Forget what is older than `horizon_s` (the longer of the window and the slow mode)."""
        self._forget_before(self.clock() - horizon_s)

    def counted(self, author: str) -> int:
        """The author's messages in the window now."""
        now = self.clock()
        with self._lock:
            return sum(1 for t in self._by_author.get(author, {}).values() if t > now - self.window_s)

    def sizes(self) -> dict:
        with self._lock:
            return {
                "rate_authors": len(self._by_author),
                "rate_messages": sum(len(s) for s in self._by_author.values()),
            }


# characters a text's key leaves out: accents and other combining marks, invisible format characters
_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})


def normalised(text: str) -> str:
    """What is left of a text when case, accents, compatibility forms (fullwidth, ligatures), spacing,
    punctuation and repeated characters are set aside: two texts with the same result are "nearly the same".
    Letters, digits and symbols (emoji) are the content; every run of anything else is one space. A text
    with no content (only punctuation) keeps its punctuation, spacing collapsed."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    out: list[str] = []
    last = " "
    for ch in folded:
        category = unicodedata.category(ch)
        if category in _DROPPED_CATEGORIES:
            continue
        if category[0] not in "LNS":
            ch = " "
        if ch != last:  # squeezes "heeey" to "hey" and a run of separators to one space
            out.append(ch)
            last = ch
    key = "".join(out).strip()
    if key:
        return key
    collapsed = " ".join(folded.split())
    return "".join(ch for i, ch in enumerate(collapsed) if i == 0 or ch != collapsed[i - 1])


def text_key(text: str) -> bytes:
    """A short digest of `normalised(text)`: what the window keeps per message."""
    return hashlib.blake2b(normalised(text).encode("utf-8"), digest_size=8).digest()


@dataclass(frozen=True)
class Spam:
    """The verdict on a message that repeats a text: the `copies`-th within `window_s`; `strike` when it is the
    author's first spam of the window (the others are withheld without a strike)."""

    copies: int
    window_s: float
    strike: bool

    @property
    def reason(self) -> str:
        return contract.spam_reason(self.copies, self.window_s)

    def headers(self) -> list[tuple[str, bytes]]:
        """The record's headers that carry the verdict (to `chat`, and by the relay on to `chat_controlled`)."""
        return [
            (contract.SPAM_HEADER, self.reason.encode("ascii")),
            (contract.SPAM_STRIKE_HEADER, b"true" if self.strike else b"false"),
        ]


def record_headers(message_id: str, spam: Spam | None) -> list[tuple[str, bytes]]:
    """A chat message's Kafka headers: its id first (the relay looks there first), then the spam verdict, if any."""
    return [(contract.MESSAGE_ID_HEADER, message_id.encode("ascii")), *(spam.headers() if spam else ())]


class RepeatWindow(AuthorWindow):
    """Each author's messages (message id → (time, text key, spam strike)) over the last `window_s`: from
    `repeats` copies of one text in the window on, a message is spam; one spam strike per author per window."""

    def __init__(self, repeats: int, window_s: float, clock=time.time):
        if repeats < 2 or not window_s > 0:
            raise ValueError("the spam rule needs at least 2 copies in a window of more than 0 s")
        super().__init__(clock)
        self.repeats, self.window_s = repeats, window_s

    @staticmethod
    def when(entry: tuple[float, bytes, bool]) -> float:
        return entry[0]

    def judge(self, author: str, message_id: str, text: str) -> Spam | None:
        """Count `message_id` for `author` now and say whether it is spam; judge and count are one step."""
        key = text_key(text)
        now = self.clock()
        with self._lock:
            sent = self._by_author.setdefault(author, {})
            recent = [entry for entry in sent.values() if entry[0] > now - self.window_s]
            copies = 1 + sum(1 for _, k, _ in recent if k == key)
            spam = None
            if copies >= self.repeats:
                spam = Spam(copies, self.window_s, strike=not any(struck for _, _, struck in recent))
            sent[message_id] = (now, key, bool(spam and spam.strike))
        return spam

    def knows(self, author: str, message_id: str) -> bool:
        with self._lock:
            return message_id in self._by_author.get(author, {})

    def seen(self, author: str, message_id: str, at: float, text: str, strike: bool) -> None:
        """A message read from `chat` (sent through any process), with its verdict's strike; one already
        counted is not counted again."""
        if at <= self.clock() - self.window_s:
            return
        key = text_key(text)
        with self._lock:
            self._by_author.setdefault(author, {}).setdefault(message_id, (at, key, strike))

    def prune(self) -> None:
        self._forget_before(self.clock() - self.window_s)

    def sizes(self) -> dict:
        with self._lock:
            return {
                "spam_authors": len(self._by_author),
                "spam_messages": sum(len(s) for s in self._by_author.values()),
            }


@dataclass(frozen=True)
class SlowModeState:
    seconds: int = 0  # 0: off
    since: str | None = None  # when the moderator set it (UTC, contract.TIMESTAMP_FORMAT)
    action_id: str | None = None


def slow_mode_seconds(value) -> int:
    """A slow mode's interval from a request: a whole number of seconds from 0 (off) to MAX_SLOW_MODE_S."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SLOW_MODE_S:
        raise ApiError(400, "slow_mode_invalid", maximum=MAX_SLOW_MODE_S)
    return value


class SlowMode(Follower):
    """The chat's slow mode: the last `slow_mode` action on `chat_actions` (one key, so one partition
    and one order for every process)."""

    topic = contract.TOPIC_ACTIONS

    def __init__(self) -> None:
        super().__init__()
        self.state = SlowModeState()

    @property
    def seconds(self) -> int:
        return self.state.seconds

    def handle(self, record) -> None:
        try:
            action = json.loads(record.value) if record.value is not None else None
        except ValueError:
            action = None
        self.apply(action)
        with self._cond:
            self.positions[record.partition] = record.offset + 1
            self.changed()

    def apply(self, action) -> bool:
        """Take a moderator's action if it is a valid slow-mode change (others are the ledger's)."""
        if not isinstance(action, dict) or action.get("action") != SLOW_MODE_ACTION:
            return False
        seconds = action.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_SLOW_MODE_S:
            return False
        with self._cond:
            self.state = SlowModeState(seconds, action.get("timestamp") if seconds else None, action.get("id"))
            self.changed()
        return True

    def past(self, partition: int, offset: int) -> bool:
        """Whether this process has read `chat_actions` beyond `offset` of `partition`."""
        return self.positions.get(partition, 0) > offset


class ChatCounter(Follower):
    """Follows `chat` to count every author's accepted messages, whichever process took them, and (with a
    `RepeatWindow`) their texts and spam strikes."""

    topic = contract.TOPIC_CHAT
    PRUNE_EVERY_S = 1.0

    def __init__(self, window: PostWindow, slow_mode: SlowMode, repeats: RepeatWindow | None = None):
        super().__init__()
        self.window = window
        self.slow_mode = slow_mode
        self.repeats = repeats
        self._next_prune = 0.0

    @property
    def horizon_s(self) -> float:
        return max(self.window.window_s, self.slow_mode.seconds)

    def first_offsets(self, begins: Positions, ends: Positions) -> Positions:
        """The recent past only: older messages are out of every window."""
        return {p: max(begins.get(p, 0), end - REWIND_RECORDS) for p, end in ends.items()}

    def handle(self, record) -> None:
        if record.key is not None:
            try:
                author = record.key.decode("utf-8")
            except UnicodeDecodeError:
                author = None
            if author:
                message_id = header(record.headers, contract.MESSAGE_ID_HEADER) or f"{record.partition}:{record.offset}"
                at = record.timestamp / 1000
                self.add(author, message_id, at)
                if self.repeats is not None and at > self.repeats.clock() - self.repeats.window_s:
                    self.add_text(author, message_id, at, record.value, record.headers)
        self.positions[record.partition] = record.offset + 1

    def add(self, author: str, message_id: str, at: float) -> None:
        """A message of `chat` sent at `at` (seconds since the epoch), through whichever process."""
        self.window.seen(author, message_id, at, self.horizon_s)

    def add_text(self, author: str, message_id: str, at: float, value: bytes | None, headers) -> None:
        """The text and spam strike of a recent message of `chat`, unless this process judged it itself."""
        if self.repeats.knows(author, message_id):
            return
        try:
            message = json.loads(value) if value is not None else None
        except ValueError:
            return
        text = message.get("data") if isinstance(message, dict) else None
        if isinstance(text, str):
            strike = (
                bool(header(headers, contract.SPAM_HEADER)) and header(headers, contract.SPAM_STRIKE_HEADER) == "true"
            )
            self.repeats.seen(author, message_id, at, text, strike)

    def status(self) -> dict:
        """GET /health's part: how far `chat` has been counted (partition → next offset)."""
        return {**super().status(), "positions": {str(p): o for p, o in sorted(self.positions.items())}}

    def idle(self) -> None:
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self.PRUNE_EVERY_S
            self.window.prune(self.horizon_s)
            if self.repeats is not None:
                self.repeats.prune()


@dataclass
class Flood:
    """The process's rate limit, slow mode and spam rule (app.extensions["chat_flood"])."""

    window: PostWindow
    slow_mode: SlowMode
    counter: ChatCounter
    repeats: RepeatWindow | None = None

    def admit(self, author: str, message_id: str, text: str | None = None) -> Spam | None:
        """Count the message (429 over the rate limit or within the slow mode) and, given its text, judge
        whether it is spam: the verdict its record must carry (`record_headers`)."""
        self.window.admit(author, message_id, self.slow_mode.seconds)
        if text is None or self.repeats is None:
            return None
        return self.repeats.judge(author, message_id, text)

    def release(self, author: str, message_id: str) -> None:
        self.window.release(author, message_id)
        if self.repeats is not None:
            self.repeats.release(author, message_id)

    def settings(self) -> dict:
        """What GET /chat/settings answers."""
        state = self.slow_mode.state
        return {
            "slow_mode_s": state.seconds,
            "slow_mode_since": state.since,
            "rate_limit": {"messages": self.window.limit, "window_s": self.window.window_s},
            **(
                {"spam": {"repeats": self.repeats.repeats, "window_s": self.repeats.window_s}}
                if self.repeats is not None
                else {}
            ),
        }

    def sizes(self) -> dict:
        return {**self.window.sizes(), **(self.repeats.sizes() if self.repeats is not None else {})}


def get_flood() -> Flood:
    return current_app.extensions["chat_flood"]


def init_app(app: Flask) -> None:
    window = PostWindow(app.config["RATE_LIMIT_MESSAGES"], app.config["RATE_LIMIT_WINDOW_S"])
    slow_mode = SlowMode()
    repeats = RepeatWindow(app.config["SPAM_REPEATS"], app.config["SPAM_WINDOW_S"])
    app.extensions["chat_flood"] = Flood(window, slow_mode, ChatCounter(window, slow_mode, repeats), repeats)
