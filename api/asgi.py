"""The API as one ASGI application: the long-polls wait on the event loop, everything else is the Flask app.

    gunicorn -c conf/gunicorn.conf.py        # uvicorn workers (api/server.py) serving create_asgi_app()

`GET /messages`, `GET /users/{author}/notices` and `POST /notices/poll` are native coroutines: a waiting
reader is a parked coroutine woken from the Kafka tail's thread (api/tail.py `LoopSignal`), so it holds no
thread, and a reader whose connection closes is let go at once; so is `POST /messages`, which awaits Kafka's
acknowledgement on the loop (through a2wsgi's thread pool it cost throughput). They run the same checks as the Flask
views (api/validation.py, api/auth.py) and answer the same JSON, byte for byte. Every other request goes to
the Flask app (`create_app()`: blueprints, `ApiError` → JSON) through a2wsgi's thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

from a2wsgi import WSGIMiddleware
from flask import Flask
from kafka.errors import KafkaError

from api import create_app, i18n, poll
from api.auth import Auth, parse_bearer, user_or_admin
from api.errors import ApiError
from api.feed import Feed
from api.flood import Flood, record_headers
from api.messages import utc_now
from api.notices import Moderation, NoticeBoard
from api.producer import ChatProducer
from api.security import check_host
from api.tail import BadCursor, Follower
from api.validation import clean_author, parse_json_body, parse_limit, parse_message_body, parse_wait, require_json
from config import contract
from config.hosts import SECURITY_HEADERS

log = logging.getLogger(__name__)

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

NOTICES_PATH = re.compile(r"/users/([^/]+)/notices\Z")
WSGI_THREADS = 16  # threads for the Flask app: sign-ins, posts, user pages (none of them waits long)


def json_bytes(body: dict) -> bytes:
    """What Flask's jsonify writes for `body` with this app's settings (compact, UTF-8, a final newline)."""
    return (json.dumps(body, ensure_ascii=False, sort_keys=False, separators=(",", ":")) + "\n").encode("utf-8")


def request_language(scope: Scope) -> str:
    """The language the request asks for (as api/errors.request_language)."""
    return i18n.negotiate(header(scope, b"accept-language"))


async def respond_error(send: Send, error: ApiError, language: str) -> None:
    """As api/errors.error_response: the error in `language`."""
    await respond(send, error.status, json_bytes(error.body(language)), error.answer_headers(language))


ANSWER_HEADERS = [
    (b"content-type", b"application/json"),
    *((name.lower().encode(), value.encode("latin-1")) for name, value in SECURITY_HEADERS),
]


async def respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [*ANSWER_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """A request header as WSGI would give it (latin-1), the first if repeated."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def query_args(scope: Scope) -> dict[str, str]:
    """The query parameters as Flask's `request.args.get` sees them (the first value of each name)."""
    raw = scope.get("query_string", b"")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "query_not_utf8") from None
    args: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"):
        args.setdefault(name, value)
    return args


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", limit=limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def until_disconnected(receive: Receive) -> None:
    """Returns when the client has closed its connection (the request body has been read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class TooMany(ApiError):
    def __init__(self, what: str, limit: int):
        super().__init__(429, f"too_many_polls_{what}", headers={"Retry-After": "1"}, limit=limit)


class ChatAsgi:
    """The ASGI application: native long-polls, the rest to Flask. `flask` is the app it wraps."""

    def __init__(self, flask: Flask, wsgi_threads: int = WSGI_THREADS):
        self.flask = flask
        self.config = flask.config
        self.wsgi = WSGIMiddleware(flask, workers=wsgi_threads)
        self.feed: Feed = flask.extensions["chat_feed"]
        self.moderation: Moderation = flask.extensions["chat_moderation"]
        self.notices: NoticeBoard = self.moderation.notices
        self.auth: Auth = flask.extensions["chat_auth"]
        self.producer: ChatProducer = flask.extensions["chat_producer"]
        self.flood: Flood = flask.extensions["chat_flood"]
        self.allowed_hosts = tuple(self.config["ALLOWED_HOSTS"])
        self.polls_by_session: Counter[str] = Counter()
        self.polls_by_client: Counter[str] = Counter()
        self._answers: dict[tuple, bytes] = {}  # serialised feed answers, while the feed and notices stand still
        self._reads: dict[tuple, tuple[list, dict]] = {}
        self._answers_version: tuple[int, int] = (-1, -1)
        flask.extensions["chat_sizes"] = self.sizes

    def sizes(self) -> dict:
        return {
            "long_polls": sum(self.polls_by_session.values()),
            "long_poll_sessions": len(self.polls_by_session),
            "long_poll_clients": len(self.polls_by_client),
            "cached_answers": len(self._answers),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not served here
            return
        method, path = scope["method"], scope["path"]
        handler = None
        if path == "/messages":
            handler = self.get_messages if method == "GET" else self.post_message if method == "POST" else None
        elif method == "POST" and path == "/notices/poll":
            handler = self.poll_notices
        elif method == "GET" and path.startswith("/users/") and NOTICES_PATH.match(path):
            handler = self.get_notices
        if handler is None:
            query = scope.get("query_string", b"")
            if not query.isascii():  # a2wsgi takes an ASCII query string only
                try:
                    query.decode("utf-8")
                except UnicodeDecodeError:
                    await respond_error(send, ApiError(400, "query_not_utf8"), request_language(scope))
                    return
                # the same parameters for werkzeug, which decodes %XX as UTF-8
                scope = {**scope, "query_string": quote(query, safe=bytes(range(128))).encode("ascii")}
            await self.wsgi(scope, receive, send)
            return
        try:
            check_host(header(scope, b"host"), self.allowed_hosts)
            await handler(scope, receive, send)
        except ApiError as exc:
            await respond_error(send, exc, request_language(scope))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("unexpected error")
            await respond_error(send, ApiError(500, "internal"), request_language(scope))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for follower in (
                    self.feed,
                    self.notices,
                    self.auth.store.board,
                    self.flood.slow_mode,
                    self.flood.counter,
                ):
                    follower.stop()
                self.moderation.snapshot.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- waiting --------------------------------------------------------------------------------
    async def _wait(self, follower: Follower, ready: Callable[[], object], wait_s: float, receive: Receive | None):
        """`ready()` once it is truthy, or after `wait_s` seconds (its last value), waking whenever `follower`
        changes; None when the client went away meanwhile (watched through `receive`, unless None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        gone: asyncio.Task | None = None
        woken: asyncio.Future | None = None
        try:
            while True:
                woken = follower.signal().waiter()  # before looking: a change after the look wakes us
                result = ready()
                remaining = deadline - loop.time()
                if result or remaining <= 0 or follower.stopped:
                    return result
                if gone is None and receive is not None:
                    gone = asyncio.ensure_future(until_disconnected(receive))
                waiting = (woken, gone) if gone is not None else (woken,)
                done, _ = await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    return None
        finally:
            if gone is not None and not gone.done():
                gone.cancel()
            if woken is not None and not woken.done():
                woken.cancel()  # taken out of the signal's list at its next firing

    async def _session(self, token: str):
        """`auth.session_for(token)`, except that a session opened on another process or host a moment ago
        is awaited on the loop (until this process has read its claim), not on the thread."""
        try:
            return self.auth.session_for(token, wait_s=0)
        except ApiError:
            position = self.auth.unread_claim(token)  # the token checked out: it was verified just now
            if position is None:
                raise
        board = self.auth.store.board
        await self._wait(board, lambda: board.past(*position), 2.0, None)
        return self.auth.session_for(token, wait_s=0)

    def _hold(self, session: str | None, client: str) -> None:
        """Count one more long-poll for this session and client address (429 past the limits)."""
        per_session, per_client = self.config["LONG_POLLS_PER_SESSION"], self.config["LONG_POLLS_PER_CLIENT"]
        if session is not None and self.polls_by_session[session] >= per_session:
            raise TooMany("session", per_session)
        if per_client and self.polls_by_client[client] >= per_client:
            raise TooMany("client", per_client)
        if session is not None:
            self.polls_by_session[session] += 1
        self.polls_by_client[client] += 1

    def _release(self, session: str | None, client: str) -> None:
        for counter, key in ((self.polls_by_session, session), (self.polls_by_client, client)):
            if key is not None:
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]

    # -- GET /messages ------------------------------------------------------------------------
    async def get_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As api/messages.py `get_messages`, waiting on the event loop."""
        config = self.config
        args = query_args(scope)
        token = parse_bearer(header(scope, b"authorization") or "")
        user = (await self._session(token)).author
        if args.get("user") not in (None, ""):
            named = clean_author(args.get("user"), config["MAX_AUTHOR_CHARS"], field="user")
            if named != user:
                raise ApiError(403, "cannot_read_as", author=user, claimed=named)
        self._refuse_if_blocked(user)
        wait = parse_wait(args.get("wait"), config["MAX_WAIT_SECONDS"])
        limit = parse_limit(args.get("limit"))
        after = args.get("after")
        try:
            position = None if after in (None, "") else self.feed.parse_cursor(after)
        except BadCursor as exc:
            raise ApiError(400, "bad_cursor", source=exc.source) from None
        hide = self.moderation.is_withheld
        if position is None:
            messages, positions = self.feed.latest(limit, hide)
            await respond(send, 200, self._feed_answer(messages, positions))
            return
        if not wait:
            await respond(send, 200, self._answer_at(position, limit))
            return
        client = (scope.get("client") or ("?", 0))[0]
        self._hold(token, client)
        try:
            state = {"position": position}

            def ready():
                messages, after = self._read_at(state["position"], limit)
                if not messages:
                    state["position"] = after  # past the hidden ones: they do not end the wait
                return messages

            if await self._wait(self.feed, ready, wait, receive) is None:
                return  # the client has gone: nobody to answer
        finally:
            self._release(token, client)
        # the session may have ended, or the reader been blocked, while the request waited
        self.auth.session_for(token)
        self._refuse_if_blocked(user)
        await respond(send, 200, self._answer_at(state["position"], limit))

    def _cached(self, cache: dict, key: tuple, make):
        """`make()`, computed once per key while the feed and the notices stand still: every reader at the
        same cursor wakes for the same message, and all but the first find it read and serialised."""
        version = (self.feed.version, self.notices.version)
        if version != self._answers_version:
            self._answers.clear()
            self._reads.clear()
            self._answers_version = version
        value = cache.get(key)
        if value is None:
            if len(cache) >= 10_000:  # readers at ever new cursors while nothing changes: start afresh
                cache.clear()
            value = cache[key] = make()
        return value

    def _read_at(self, position: dict, limit: int) -> tuple[list, dict]:
        key = (tuple(sorted(position.items())), limit)
        return self._cached(self._reads, key, lambda: self.feed.read_now(position, limit, self.moderation.is_withheld))

    def _answer_at(self, position: dict, limit: int) -> bytes:
        """The answer for a reader at `position`, serialised once for every reader at the same cursor."""
        key = (tuple(sorted(position.items())), limit)
        return self._cached(self._answers, key, lambda: self._feed_answer(*self._read_at(position, limit)))

    def _feed_answer(self, messages, positions) -> bytes:
        return json_bytes({"messages": [m.as_json() for m in messages], "cursor": self.feed.cursor(positions)})

    def _refuse_if_blocked(self, author: str) -> None:
        if self.moderation.is_blocked(author):
            raise self.moderation.blocked_refusal(author)

    # -- POST /messages -----------------------------------------------------------------------------
    async def post_message(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As api/messages.py `post_message`; the broker's acknowledgement is awaited on the event loop."""
        config = self.config
        author = (await self._session(parse_bearer(header(scope, b"authorization") or ""))).author
        require_json(header(scope, b"content-type"))
        limit = config["MAX_CONTENT_LENGTH"]
        length = header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise ApiError(413, "body_too_large", limit=limit)
        body = parse_json_body(header(scope, b"content-type"), await read_body(receive, limit), ("data", "author"))
        claimed, data = parse_message_body(body, config["MAX_AUTHOR_CHARS"], config["MAX_DATA_CHARS"])
        if claimed is not None and claimed != author:
            raise ApiError(403, "cannot_send_as", author=author, claimed=claimed)
        self._refuse_if_blocked(author)
        message_id = str(uuid.uuid4())
        # 429 over the rate limit or within the slow mode (nothing is sent); else the spam verdict the record carries
        spam = self.flood.admit(author, message_id, data)
        message = {"author": author, "data": data, "timestamp": utc_now()}
        try:
            await self._produce(message_id, message, record_headers(message_id, spam))
        except BaseException:
            self.flood.release(author, message_id)
            raise
        await respond(send, 202, json_bytes({"id": message_id, **message}))

    async def _produce(self, message_id: str, message: dict, headers: list) -> None:
        """Send to `chat` and await Kafka's acknowledgement without holding a thread (503 when it does not come)."""
        loop = asyncio.get_running_loop()
        args = (contract.TOPIC_CHAT, message["author"], message, headers)
        what = f"message {message_id}"
        if self.producer.sends_at_once(contract.TOPIC_CHAT):
            record = self.producer.send_future(*args, what)
        else:  # connecting, or fetching the topic's metadata: seconds of blocking, on a thread
            record = await loop.run_in_executor(None, self.producer.send_future, *args, what)
        acked: asyncio.Future = loop.create_future()

        def settle(result, failed: bool) -> None:
            if not acked.done():
                acked.set_exception(result) if failed else acked.set_result(result)

        record.add_callback(lambda metadata: loop.call_soon_threadsafe(settle, metadata, False))
        record.add_errback(lambda exc: loop.call_soon_threadsafe(settle, exc, True))
        # the producer fails a record after its delivery timeout; this only guards against a silence
        guard = loop.call_later(self.producer.send_timeout_s + 2, settle, TimeoutError("no acknowledgement"), True)
        try:
            await acked
        except (KafkaError, TimeoutError) as exc:
            log.warning("%s not accepted by Kafka: %s", what, exc)
            raise ApiError(503, "kafka_refused_message") from exc
        finally:
            guard.cancel()

    # -- GET /users/{author}/notices ------------------------------------------------------------
    async def get_notices(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As api/users.py `get_notices`, waiting on the event loop."""
        config = self.config
        args = query_args(scope)
        author = clean_author(NOTICES_PATH.match(scope["path"]).group(1), config["MAX_AUTHOR_CHARS"])
        token = parse_bearer(header(scope, b"authorization") or "")
        client = (scope.get("client") or ("?", 0))[0]
        if self.auth.is_signed(token):
            await self._session(token)  # a session opened elsewhere a moment ago: read its claim first
        user_or_admin(author, token, self.auth, client)  # a wrong moderators' token counts against `client`
        wait = parse_wait(args.get("wait"), config["MAX_WAIT_SECONDS"])
        after = args.get("after")
        try:
            position = None if after in (None, "") else self.notices.parse_cursor(after)
        except BadCursor as exc:
            raise ApiError(400, "bad_cursor", source=exc.source) from None
        if wait:
            moderator = self.auth.moderator_of(token) is not None  # a moderator's polls count per address only
            self._hold(None if moderator else token, client)
            try:
                found = await self._wait(
                    self.notices, lambda: self.notices.read_many({author}, position)[0], wait, receive
                )
                if found is None:
                    return  # the client has gone
            finally:
                self._release(None if moderator else token, client)
            user_or_admin(author, token, self.auth, client)  # the session may have ended while the request waited
        notices, cursor = self.notices.read_many({author}, position)
        language = request_language(scope)
        answer = {"author": author, "notices": [n.as_json(language) for n in notices], "cursor": cursor}
        await respond(send, 200, json_bytes(answer), i18n.language_headers(language))

    # -- POST /notices/poll -------------------------------------------------------------------------
    async def poll_notices(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As api/poll.py `poll_notices`, waiting on the event loop."""
        body = await read_body(receive, poll.MAX_BODY)
        request = poll.parse_poll(header(scope, b"content-type"), body, self.notices, self.config["MAX_WAIT_SECONDS"])
        authors, refused = poll.live_authors(self.auth, request.tokens, 0)
        if unread := poll.unread_claims(self.auth, request.tokens, refused):
            board = self.auth.store.board
            await self._wait(board, lambda: all(board.past(*p) for p in unread), 2.0, None)
            authors, refused = poll.live_authors(self.auth, request.tokens, 0)
        if request.wait and authors:
            client = (scope.get("client") or ("?", 0))[0]
            self._hold(None, client)
            try:
                found = await self._wait(
                    self.notices, lambda: self.notices.read_many(authors, request.after)[0], request.wait, receive
                )
                if found is None:
                    return  # the client has gone
            finally:
                self._release(None, client)
            authors, refused = poll.live_authors(self.auth, request.tokens, 0)  # sessions may have ended meanwhile
        language = request_language(scope)
        answer = poll.answer(self.notices, authors, refused, request.after, language)
        await respond(send, 200, json_bytes(answer), i18n.language_headers(language))


def create_asgi_app(test_config: dict | None = None) -> ChatAsgi:
    """The API as gunicorn's uvicorn workers serve it (one per process: its own Kafka tail and producer)."""
    return ChatAsgi(create_app(test_config))
