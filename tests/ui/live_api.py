"""The real chat API (``api.create_app()``) on a free loopback port, for the UI's tests, with Kafka,
the Spark relay and the ledger replaced by in-memory stand-ins below the app.

* :class:`InMemoryKafka` is the app's producer (a ``ChatProducer`` whose ``publish`` is the only
  change): a message sent to `chat` is relayed at once to the app's feed as the relay publishes it
  on `chat_controlled` (the `message_id`, `chat_position` and `profane` headers; profane words
  masked) and counted for its author's rate limit, as the API's tail reads it from `chat`; a moderator's
  unblock on `chat_actions` becomes the ledger's "unblocked" notice, and a slow mode reaches the app.
* `chat_sessions` and `chat_accounts` are the API's own stand-ins (tests/api/session_log.py), kept across a
  restart.
* :meth:`LiveApi.strike` publishes a strike notice as the ledger does, with the contract's text.
* :class:`Recorder` sits in front of the app (WSGI) and records every request and its answer.

Where the real app cannot be made to give an answer (a malformed body, an error without JSON),
:class:`Double` serves it, and every JSON body it sends is checked against ``api/openapi.yaml``.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema
import requests
import yaml
from flask import Flask, Response
from werkzeug.serving import make_server

from api import create_app
from api.producer import ChatProducer
from config import contract
from tests.api.session_log import LocalSessionLog

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "moderators-token-for-the-ui-tests"
PROFANE_WORDS = ("darn", "heck")
"""What the stand-in relay finds profane (the real one uses conf/wordlists)."""


def now() -> str:
    return datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT)


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``; a wait that never ends is pytest-timeout's to report."""
    while not condition():
        time.sleep(0.02)


# -- the OpenAPI document ---------------------------------------------------------------

SPEC: dict[str, Any] = yaml.safe_load((REPO_ROOT / "api" / "openapi.yaml").read_text(encoding="utf-8"))


def json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: references resolved, ``nullable`` as a null type."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return json_schema(target)
    schema = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def schema_errors(body: Any, path: str, method: str, status: int) -> list[str]:
    """How ``body`` breaks the schema of the ``status`` answer of ``method path`` in api/openapi.yaml."""
    answer = json_schema(SPEC["paths"][path][method.lower()]["responses"][str(status)])
    schema = answer["content"]["application/json"]["schema"]
    return [error.message for error in jsonschema.Draft7Validator(schema).iter_errors(body)]


# -- recording what reaches the app -----------------------------------------------------


@dataclass
class Exchange:
    """One request as it reached the app, and its answer once given."""

    method: str
    path: str  # decoded
    raw_uri: str  # as sent: percent-encoded, with the query
    query: dict[str, str]
    token: str | None
    body: bytes
    language: str | None = None  # the Accept-Language header
    forwarded_for: str | None = None  # the X-Forwarded-For header
    status: int | None = None
    answer: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def answer_json(self) -> Any:
        return json.loads(self.answer or b"null")


class Recorder:
    """WSGI middleware in front of the app: records every request, in arrival order, and its answer."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        exchange = Exchange(
            method=environ["REQUEST_METHOD"],
            path=environ["PATH_INFO"].encode("latin-1").decode("utf-8"),
            raw_uri=environ.get("RAW_URI", ""),
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
            token=token.strip() if scheme.lower() == "bearer" else None,
            body=body,
            language=environ.get("HTTP_ACCEPT_LANGUAGE"),
            forwarded_for=environ.get("HTTP_X_FORWARDED_FOR"),
        )
        self.exchanges.append(exchange)

        def recording_start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            exchange.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        chunks = self.app(environ, recording_start_response)
        try:
            answer = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        exchange.answer = answer
        return [answer]

    def requests(self, method: str, path: str) -> list[Exchange]:
        return [e for e in list(self.exchanges) if (e.method, e.path) == (method, path)]


@contextmanager
def serve(app: Callable[..., Any]) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port (threaded, as gunicorn's threads would); yields its URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- Kafka, the relay and the ledger, in memory ---------------------------------------------


class InMemoryKafka(ChatProducer):
    """The app's producer; what it publishes is handed on as the relay and the ledger would."""

    def __init__(self, live: LiveApi) -> None:
        super().__init__("in-memory")
        self.live = live

    def publish(self, topic: str, key: str, value: dict, headers: list, what: str) -> None:
        if topic == contract.TOPIC_CHAT:
            self.live.relay(value, dict(headers)[contract.MESSAGE_ID_HEADER].decode())
        elif topic == contract.TOPIC_ACTIONS:
            self.live.apply_action(value)
        else:
            raise AssertionError(f"the API does not publish to {topic}")

    def is_connected(self) -> bool:
        return True

    def close(self) -> None:
        pass


def mask(text: str) -> tuple[str, bool]:
    """The text with each profane word as asterisks, and whether there was one."""
    pattern = re.compile(r"\b(" + "|".join(PROFANE_WORDS) + r")\b", re.IGNORECASE)
    return pattern.sub(lambda m: "*" * len(m.group(0)), text), bool(pattern.search(text))


@dataclass
class Topics:
    """What the in-memory Kafka holds: `chat`, `chat_controlled` and `chat_notices` (one partition each)."""

    chat: list[dict[str, str]] = field(default_factory=list)
    controlled: list[tuple[bytes, list[tuple[str, bytes]]]] = field(default_factory=list)
    notices: list[tuple[bytes, list[tuple[str, bytes]]]] = field(default_factory=list)


class LiveApi:
    """The real API app, served by :func:`serve` through a :class:`Recorder`; see the module docstring."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = {
            "START_FEED": False,
            "KAFKA_BOOTSTRAP": "in-memory:9092",
            "DATA_DIR": tmp_path,
            "WAREHOUSE_DIR": tmp_path / "warehouse",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "ADMIN_TOKEN": ADMIN_TOKEN,
            # `chat_sessions` and `chat_accounts` in memory, kept across a restart as the topics are
            "SESSION_LOG": LocalSessionLog(),
            "ACCOUNT_LOG": LocalSessionLog(),
            # as on test stacks: guests join under a name; the accounts tests turn it off (the `accounts` fixture)
            "GUEST_NAMES": True,
            "PASSWORD_HASH_PROFILE": "CHEAPEST",
        }
        self.topics = Topics()
        self._lock = threading.Lock()
        self._strikes: dict[str, int] = {}
        self._batch = 0
        self.app = self._make_app()
        self.recorder = Recorder(self.app)
        self.url = ""  # set by the fixture once served

    def _make_app(self) -> Flask:
        app = create_app(dict(self.config))
        app.extensions["chat_producer"] = InMemoryKafka(self)
        # the notices board has read all `chat_notices` held when it started (here: nothing, or a replay)
        app.extensions["chat_moderation"].notices.caught_up = True
        return app

    @property
    def feed(self) -> Any:
        return self.app.extensions["chat_feed"]

    @property
    def moderation(self) -> Any:
        return self.app.extensions["chat_moderation"]

    # -- the stand-ins below the app ---------------------------------------------------

    def relay(self, message: dict[str, str], message_id: str) -> None:
        """`chat` → `chat_controlled`, as the relay does it: masked, with its position and verdict."""
        with self._lock:
            offset = len(self.topics.chat)
            self.topics.chat.append(message)
            masked, profane = mask(message["data"])
            value = json.dumps({**message, "data": masked}, ensure_ascii=False).encode()
            headers = [
                (contract.MESSAGE_ID_HEADER, message_id.encode()),
                (contract.CHAT_POSITION_HEADER, f"0:{offset}".encode()),
                (contract.PROFANE_HEADER, b"true" if profane else b"false"),
            ]
            self.topics.controlled.append((value, headers))
            self.feed.add_record(value, headers)
        # the API's tail reads `chat` too: every message counts for its author's rate limit
        self.app.extensions["chat_flood"].counter.add(message["author"], message_id, time.time())

    def say(self, author: str, data: str) -> str:
        """A message put on `chat` by another client of another API process (no session here); its id."""
        message_id = str(uuid.uuid4())
        self.app.extensions["chat_producer"].send(message_id, {"author": author, "data": data, "timestamp": now()})
        return message_id

    def _notify(self, body: dict[str, Any]) -> dict[str, Any]:
        """Publish a notice on `chat_notices` as the ledger does (the `notice_id` header)."""
        with self._lock:
            record = (json.dumps(body, ensure_ascii=False).encode(), [(contract.NOTICE_ID_HEADER, body["id"].encode())])
            self.topics.notices.append(record)
            self.moderation.notices.add_record(*record)
        return body

    def _next_batch(self) -> int:
        with self._lock:
            self._batch += 1
            return self._batch

    def strike(self, author: str, terms: tuple[str, ...] = ("darn",), text: str | None = None) -> dict[str, Any]:
        """The ledger's strike notice for a profane message of ``author`` (blocked at the limit); the notice.
        Its ``text`` is the contract's unless given (the UI words notices itself)."""
        with self._lock:
            strike = self._strikes[author] = self._strikes.get(author, 0) + 1
            offset = len(self.topics.chat)  # the struck message's place in `chat`
            self.topics.chat.append({"author": author, "data": " ".join(terms), "timestamp": now()})
        kind = "blocked" if strike >= contract.STRIKE_LIMIT else "warning"
        message_id = str(uuid.uuid4())
        return self._notify(
            {
                "id": f"{message_id}:strike",
                "author": author,
                "kind": kind,
                "strike": strike,
                "limit": contract.STRIKE_LIMIT,
                "terms": list(terms),
                "message_id": message_id,
                "text": contract.notice_text(kind, strike, contract.STRIKE_LIMIT, terms) if text is None else text,
                "timestamp": now(),
                "partition": 0,
                "offset": offset,
                "batch": self._next_batch(),
            }
        )

    def apply_action(self, action: dict[str, Any]) -> None:
        """A moderator's action on `chat_actions`: a slow mode, as every API process's tail hands it to its
        follower; an unblock, as the ledger applies it (the "unblocked" notice)."""
        if self.app.extensions["chat_flood"].slow_mode.apply(action):
            return
        assert action["action"] == "unblock", action
        with self._lock:
            self._strikes[action["author"]] = 0
            until = {"0": len(self.topics.chat)}
        self._notify(
            {
                "id": f"{action['id']}:unblocked",
                "author": action["author"],
                "kind": "unblocked",
                "strike": 0,
                "limit": contract.STRIKE_LIMIT,
                "terms": [],
                "message_id": None,
                "text": contract.notice_text("unblocked"),
                "timestamp": action["timestamp"],
                "action_id": action["id"],
                "batch": self._next_batch(),
                "until": until,
            }
        )

    def slow_mode(self, seconds: int) -> dict[str, Any]:
        """A moderator sets the chat's slow mode through the API (0 lifts it); the action."""
        response = requests.put(
            f"{self.url}/chat/slow_mode",
            json={"seconds": seconds},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return response.json()

    def unblock(self, author: str) -> dict[str, Any]:
        """A moderator unblocks ``author`` through the API; the notice the ledger then sends."""
        response = requests.post(
            f"{self.url}/users/{author}/unblock", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10
        )
        assert response.status_code == 202, response.text
        action_id = response.json()["id"]
        return next(json.loads(v) for v, _ in self.topics.notices if json.loads(v).get("action_id") == action_id)

    def restart(self) -> None:
        """A new run of the API on the same data (sessions and secret kept): a new feed and notices board,
        which read the recent tail of `chat_controlled` and all of `chat_notices` again, as at a start."""
        old, self.app = self.app, self._make_app()
        with self._lock:
            for record in self.topics.controlled[-self.app.config["FEED_HISTORY"] :]:
                self.feed.add_record(*record)
            for record in self.topics.notices:
                self.moderation.notices.add_record(*record)
        self.recorder.app = self.app
        self._release(old)

    def release(self) -> None:
        """Shutting down: long-polls of `GET /messages` end now, and later ones at once."""
        self._release(self.app)

    @staticmethod
    def _release(app: Flask) -> None:
        app.extensions["chat_feed"].stop()
        app.extensions["chat_moderation"].notices.stop()

    def fail_next(self, obj: Any, method: str, times: int) -> None:
        """The next ``times`` calls of ``obj.method`` (a part below the app) raise: the app answers 500."""
        original = getattr(obj, method)
        left = [times]

        def failing(*args: Any, **kwargs: Any) -> Any:
            if left[0] > 0:
                left[0] -= 1
                raise RuntimeError(f"{method} broke (a test's stand-in)")
            return original(*args, **kwargs)

        setattr(obj, method, failing)

    # -- sessions, as the app's session store has them -----------------------------------

    def _sessions(self) -> list[tuple[str, str, float]]:
        """(author, session id, expires at) of every session that holds a name, as `chat_sessions` says."""
        holders = self.app.extensions["chat_auth"].store.board.holders
        return sorted((author, h.session_id, h.expires_at) for author, h in dict(holders).items())

    def holders(self) -> list[str]:
        """The names held by live sessions."""
        return [author for author, _, expires_at in self._sessions() if expires_at > time.time()]

    def expire(self, author: str) -> None:
        """End ``author``'s session behind the UI's back, as its time running out would."""
        store = self.app.extensions["chat_auth"].store
        for name, session_id, _ in self._sessions():
            if name == author:
                store.close(name, session_id)

    def open_session(self, author: str) -> str:
        """Someone else signs in as ``author``; their token."""
        response = requests.post(f"{self.url}/sessions", json={"author": author}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def _claims(self, token: str) -> tuple[str, str]:
        return self.app.extensions["chat_auth"].claims(token)

    def tokens_of(self, author: str) -> list[str]:
        """The tokens the API issued that name ``author``'s live session."""
        live = {(a, s) for a, s, expires_at in self._sessions() if expires_at > time.time()}
        issued = [e.answer_json()["token"] for e in self.recorder.requests("POST", "/sessions") if e.status == 201]
        return [t for t in issued if self._claims(t)[0] == author and self._claims(t) in live]

    @property
    def session_log(self) -> list[tuple[str, str]]:
        """("open" | "delete", author) of every session opened or ended through the API, in order."""
        log = []
        for e in list(self.recorder.exchanges):
            if (e.method, e.path, e.status) == ("POST", "/sessions", 201):
                log.append(("open", e.answer_json()["author"]))
            elif (e.method, e.path, e.status) == ("DELETE", "/sessions", 204) and e.token:
                log.append(("delete", self._claims(e.token)[0]))
        return log

    # -- what the UI sent --------------------------------------------------------------

    def requests_with(self, method: str, path: str) -> list[str | None]:
        """The bearer tokens (None: none) of every ``method path`` request received."""
        return [e.token for e in self.recorder.requests(method, path)]

    @property
    def posts(self) -> list[Any]:
        """The JSON body of every ``POST /messages``, accepted or not."""
        return [e.json() for e in self.recorder.requests("POST", "/messages")]

    @property
    def get_log(self) -> list[dict[str, str]]:
        """The query of every ``GET /messages``."""
        return [e.query for e in self.recorder.requests("GET", "/messages")]

    def notices_requests(self) -> list[Exchange]:
        """Every ``POST /notices/poll``, in arrival order (its answer once it has one)."""
        return self.recorder.requests("POST", "/notices/poll")

    @property
    def notices_log(self) -> list[dict[str, Any]]:
        """The JSON body of every ``POST /notices/poll``: ``tokens``, and ``after`` and ``wait`` but on a first read.
        A poll the UI cut (it closes a waiting poll's connection when it follows someone new) before its body was
        sent has none: the app answered it 400, and it is left out."""
        return [e.json() for e in self.notices_requests() if e.body]

    @property
    def user_uris(self) -> list[str]:
        """The raw request URIs under ``/users/``, as sent (percent-encoded)."""
        return [e.raw_uri for e in list(self.recorder.exchanges) if e.raw_uri.startswith("/users/")]

    def last_error(self, method: str, path: str) -> str:
        """The API's ``error`` text in its last answer to ``method path``."""
        return self.recorder.requests(method, path)[-1].answer_json()["error"]

    @property
    def messages(self) -> list[dict[str, str]]:
        """Every message on `chat`, as the API (or another client) put it there."""
        return list(self.topics.chat)


# -- a double, where the real app cannot give the answer --------------------------------------


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON, or a callable of the request's JSON body giving it
    text: str | None = None  # a body that is not JSON (a proxy's error page)
    conforms: bool = True  # whether the JSON body keeps api/openapi.yaml


class Double:
    """A few routes of the API, answering what the test says. Every JSON body it sends is checked
    against api/openapi.yaml: one that should keep the contract must, one that should break it must
    (``mismatches`` lists the ones that did not, for the fixture to fail on)."""

    def __init__(self) -> None:
        self.flask = Flask("double")
        self.mismatches: list[str] = []
        signing_in = Answer(201, lambda body: session_grant(body["author"]))
        for route in ("/sessions", "/<path:prefix>/sessions"):  # under any prefix a test gives the double
            self.answer("POST", route, signing_in)

    def answer(self, method: str, route: str, answer: Answer) -> None:
        """Answer ``method route`` (a Flask route, perhaps under a prefix of the API's paths) with ``answer``."""
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        spec_path = max((p for p in SPEC["paths"] if path.endswith(p)), key=len)

        def view(**_: Any) -> Any:
            from flask import request

            if answer.text is not None:
                return Response(answer.text, status=answer.status, mimetype="text/html")
            body = answer.body(request.get_json(silent=True)) if callable(answer.body) else answer.body
            errors = schema_errors(body, spec_path, method, answer.status)
            if bool(errors) == answer.conforms:
                self.mismatches.append(f"{method} {spec_path} {answer.status}: {body!r} {errors}")
            return Response(json.dumps(body), status=answer.status, mimetype="application/json")

        self.flask.add_url_rule(route, f"{method} {route}", view, methods=[method])


def session_grant(author: str) -> dict[str, str]:
    return {"token": secrets.token_urlsafe(16), "author": author, "expires_at": now()}
