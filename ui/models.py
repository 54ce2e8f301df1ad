"""What the UI knows, as plain values: messages and the store that keeps them, notices, a user's record,
and a session's moderation ``Standing`` folded from them. No HTTP, no Shiny and no wording here:
``ui.render`` puts these values into words, in each reader's language (``ui.i18n``).

The API's JSON shapes are in ``api/openapi.yaml``; the strike limit and notice kinds come from
``config.contract``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeGuard

from config import contract

HISTORY_LIMIT = 500
"""How many recent messages the store keeps."""

NoticeKind = Literal["warning", "blocked", "unblocked"]
"""The kinds of notice the UI words itself; a notice of any other kind is shown with the API's text."""
FeedState = Literal["connecting", "connected", "unreachable", "malformed", "problem"]
BlockSource = Literal["record", "refusal", "notice"]
"""Where a session learnt that its user is blocked: ``GET /users/<author>``,
a 403 from the API, or a ``blocked`` notice."""
# a better source's explanation of a block replaces a worse one's, never the other way round
_BLOCK_SOURCE_RANK: dict[BlockSource, int] = {"record": 1, "refusal": 2, "notice": 3}


def _is_int(value: object) -> TypeGuard[int]:
    """An ``int`` from JSON (``True``/``False`` are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class FeedMessage:
    """One chat message as the API returns it (all fields are plain strings)."""

    id: str
    author: str
    data: str
    timestamp: str

    @classmethod
    def from_json(cls, obj: object) -> FeedMessage | None:
        """Build a message from one API JSON object, or None if it is malformed."""
        if not isinstance(obj, Mapping):
            return None
        fields = [obj.get(key) for key in ("id", "author", "data", "timestamp")]
        if not all(isinstance(value, str) for value in fields) or not fields[0]:
            return None
        return cls(*fields)


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """The feed poller's connection state; ``detail`` is the API's error text for a ``problem``."""

    state: FeedState
    detail: str = ""

    @property
    def connected(self) -> bool:
        return self.state == "connected"


class MessageStore:
    """The recent messages, in arrival order, de-duplicated by ``id``.

    Thread-safe. Every newly stored message gets a sequence number (1, 2, ...);
    :meth:`version` is the latest one, so a reader that remembers the last
    sequence number it displayed can ask for just the newer messages.
    """

    def __init__(self, limit: int = HISTORY_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._lock = threading.Lock()
        self._limit = limit
        self._messages: deque[tuple[int, FeedMessage]] = deque(maxlen=limit)
        # ids are remembered a while after their messages leave the window: a re-read tail may overlap them
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seen_limit = limit * 4
        self._seq = 0

    @property
    def limit(self) -> int:
        return self._limit

    def add(self, messages: Iterable[FeedMessage]) -> int:
        """Store the messages not seen before; return how many were new."""
        added = 0
        with self._lock:
            for message in messages:
                if message.id in self._seen:
                    continue
                self._seen[message.id] = None
                if len(self._seen) > self._seen_limit:
                    self._seen.popitem(last=False)
                self._seq += 1
                self._messages.append((self._seq, message))
                added += 1
        return added

    def version(self) -> int:
        """The sequence number of the newest message (0 while empty)."""
        with self._lock:
            return self._seq

    def since(self, seq: int) -> list[tuple[int, FeedMessage]]:
        """The stored messages newer than ``seq``, oldest first, with their numbers."""
        with self._lock:
            return [item for item in self._messages if item[0] > seq]

    def messages(self) -> list[FeedMessage]:
        """All stored messages, oldest first."""
        with self._lock:
            return [message for _, message in self._messages]

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)


@dataclass(frozen=True, slots=True)
class Notice:
    """One moderation notice sent to a user: a warning, the block, or a
    moderator lifting the block (``unblocked``: back to 0 strikes).

    The UI words a notice of a known kind from ``kind``, ``strike``, ``limit`` and
    ``terms``, in the reader's language; ``text`` (the API's English) is only shown
    for a kind it does not know. ``strike`` counts from 1 (0 after an unblock);
    the user is blocked at ``limit`` strikes.
    """

    id: str
    author: str
    kind: str
    strike: int
    limit: int
    text: str
    timestamp: str
    terms: tuple[str, ...] = ()
    message_id: str | None = None
    category: str | None = None  # "spam" for a repeated-message strike; absent for profanity

    @property
    def blocked(self) -> bool:
        """True for the notice that tells the user they are blocked."""
        return self.kind == "blocked"

    @property
    def unblocked(self) -> bool:
        """True for the notice that tells the user a moderator unblocked them."""
        return self.kind == "unblocked"

    @classmethod
    def from_json(cls, obj: object) -> Notice | None:
        """Build a notice from one API JSON object, or None if it is malformed.

        ``id``, ``author``, ``kind`` (any non-empty string), ``strike``, ``text``
        and ``timestamp`` are required; a missing ``limit`` is taken as the
        contract's ``STRIKE_LIMIT``, missing or odd ``terms`` as none.
        """
        if not isinstance(obj, Mapping):
            return None
        notice_id, author, kind = obj.get("id"), obj.get("author"), obj.get("kind")
        strike, limit = obj.get("strike"), obj.get("limit", contract.STRIKE_LIMIT)
        text, timestamp = obj.get("text"), obj.get("timestamp")
        if not (isinstance(notice_id, str) and notice_id and isinstance(author, str)):
            return None
        if not (isinstance(kind, str) and kind) or not _is_int(strike) or strike < 0:
            return None
        if not isinstance(text, str) or not isinstance(timestamp, str):
            return None
        if not _is_int(limit) or limit < 1:
            limit = contract.STRIKE_LIMIT
        raw_terms = obj.get("terms")
        terms = tuple(t for t in raw_terms if isinstance(t, str)) if isinstance(raw_terms, list) else ()
        category = obj.get("category")
        message_id = obj.get("message_id")
        return cls(
            id=notice_id,
            author=author,
            kind=kind,
            strike=strike,
            limit=limit,
            text=text,
            timestamp=timestamp,
            terms=terms,
            category=category if isinstance(category, str) and category else None,
            message_id=message_id if isinstance(message_id, str) else None,
        )


@dataclass(frozen=True, slots=True)
class NoticeBatch:
    """Notices not delivered before, oldest first.

    ``backlog`` is True for the notices the API already kept when following
    started (the user's earlier warnings), False for ones that arrived since.
    """

    notices: tuple[Notice, ...]
    backlog: bool


@dataclass(frozen=True, slots=True)
class UserRecord:
    """``GET /users/<author>``: how many strikes a user has, and whether they are blocked."""

    author: str
    strikes: int = 0
    is_blocked: bool = False
    blocked_at: str | None = None

    @classmethod
    def from_json(cls, obj: object) -> UserRecord | None:
        """Build the record from the API's JSON, or None if it is malformed."""
        if not isinstance(obj, Mapping):
            return None
        author, strikes = obj.get("author"), obj.get("strikes")
        is_blocked, blocked_at = obj.get("is_blocked"), obj.get("blocked_at")
        if not isinstance(author, str) or not _is_int(strikes) or strikes < 0:
            return None
        if not isinstance(is_blocked, bool):
            return None
        return cls(author, strikes, is_blocked, blocked_at if isinstance(blocked_at, str) else None)


@dataclass(frozen=True, slots=True)
class BlockedUser:
    """One user of ``GET /moderators/blocked``: blocked now, with the strike notices that blocked them (as far as
    the API still has them)."""

    author: str
    strikes: int
    blocked_at: str | None = None
    notices: tuple[Notice, ...] = ()

    @classmethod
    def from_json(cls, obj: object) -> BlockedUser | None:
        """Build the entry from the API's JSON, or None if it is malformed (a malformed notice is left out)."""
        if not isinstance(obj, Mapping):
            return None
        author, strikes, blocked_at, notices = (
            obj.get("author"),
            obj.get("strikes"),
            obj.get("blocked_at"),
            obj.get("notices"),
        )
        if not (isinstance(author, str) and author) or not _is_int(strikes) or strikes < 0:
            return None
        parsed = tuple(n for n in map(Notice.from_json, notices if isinstance(notices, list) else []) if n)
        return cls(author, strikes, blocked_at if isinstance(blocked_at, str) else None, parsed)


@dataclass(frozen=True, slots=True)
class BlockedList:
    """``GET /moderators/blocked``: the blocked users listed (newest block first) and how many there are in all."""

    users: tuple[BlockedUser, ...]
    total: int

    @classmethod
    def from_json(cls, obj: object) -> BlockedList | None:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("blocked"), list):
            return None
        users = tuple(u for u in map(BlockedUser.from_json, obj["blocked"]) if u is not None)
        total = obj.get("total")
        return cls(users, total if _is_int(total) and total >= len(users) else len(users))


PASSWORD_MIN_CHARS = 10
"""The shortest password the API takes when ``GET /chat/settings`` does not say (the API's setting)."""
PASSWORD_MAX_CHARS = contract.MAX_PASSWORD_CHARS
"""The longest password the API takes."""


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """``GET /chat/settings``: the chat's slow mode (0: off), the per-user rate limit, and how people join:
    under any free name (``guest_names``) or with an account, whose password has ``password_min_chars`` or more.

    ``guest_names`` is None until the API has said: the UI then offers no form yet. An API that predates
    accounts says nothing of them: only guests can join it.
    """

    slow_mode_s: int = 0
    rate_messages: int | None = None
    rate_window_s: float | None = None
    guest_names: bool | None = None
    password_min_chars: int = PASSWORD_MIN_CHARS

    @classmethod
    def from_json(cls, obj: object) -> ChatSettings | None:
        """Build the settings from the API's JSON, or None if they are malformed."""
        if not isinstance(obj, Mapping):
            return None
        slow, rate = obj.get("slow_mode_s"), obj.get("rate_limit")
        if not _is_int(slow) or slow < 0 or not isinstance(rate, Mapping):
            return None
        messages, window = rate.get("messages"), rate.get("window_s")
        if not _is_int(messages) or isinstance(window, bool) or not isinstance(window, int | float):
            return None
        guests, min_chars = obj.get("guest_names", True), obj.get("password_min_chars", PASSWORD_MIN_CHARS)
        if not isinstance(guests, bool) or not _is_int(min_chars) or not 1 <= min_chars <= PASSWORD_MAX_CHARS:
            return None
        return cls(slow, messages, float(window), guests, min_chars)


@dataclass(frozen=True, slots=True)
class Standing:
    """What a session knows of its user's moderation, folded from every source.

    Immutable: each ``with_*`` method returns the updated standing. Strikes
    only ever go up and a block stays, until an ``unblocked`` notice (a
    moderator lifted the block) starts the user again from no strikes, not
    blocked (notices are folded oldest first and delivered once each, so the
    newest decides). ``reason_source`` says what best explains the block: a
    ``blocked`` notice (kept in ``block_notice``) beats a 403 from the API, which
    beats ``GET /users/<author>`` (whose ``blocked_at`` is kept).
    """

    strikes: int = 0
    limit: int = contract.STRIKE_LIMIT
    blocked: bool = False
    reason_source: BlockSource | None = None
    block_notice: Notice | None = None
    """The ``blocked`` notice, when one explains the block."""
    blocked_at: str | None = None
    """When the user was blocked, as their record says (UTC)."""
    latest: Notice | None = None
    """The newest notice received, if any."""

    def with_user(self, record: UserRecord) -> Standing:
        """Take ``GET /users/<author>`` into account."""
        updated = replace(self, strikes=max(self.strikes, record.strikes))
        if record.is_blocked:
            updated = updated._block("record", blocked_at=record.blocked_at)
        return updated

    def with_notice(self, notice: Notice) -> Standing:
        """Take one notice into account (a ``blocked`` notice blocks, an
        ``unblocked`` one lifts the block and the strikes)."""
        if notice.unblocked:
            return Standing(strikes=notice.strike, limit=notice.limit, latest=notice)
        updated = replace(self, strikes=max(self.strikes, notice.strike), limit=notice.limit, latest=notice)
        if notice.blocked:
            updated = updated._block("notice", block_notice=notice)
        return updated

    def with_notices(self, notices: Iterable[Notice]) -> Standing:
        """Take several notices into account, oldest first."""
        standing = self
        for notice in notices:
            standing = standing.with_notice(notice)
        return standing

    def with_refusal(self) -> Standing:
        """The API refused the user as blocked (HTTP 403)."""
        return self._block("refusal")

    def _block(self, source: BlockSource, **explanation: Any) -> Standing:
        """Blocked; ``source``'s explanation is kept unless a better one is already known."""
        blocked = replace(self, blocked=True, strikes=max(self.strikes, self.limit))
        if self.reason_source is not None and _BLOCK_SOURCE_RANK[source] < _BLOCK_SOURCE_RANK[self.reason_source]:
            return blocked
        return replace(blocked, reason_source=source, **explanation)
