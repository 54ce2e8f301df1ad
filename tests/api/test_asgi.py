"""api/asgi.py: the API as one ASGI app (no broker). The native long-polls answer exactly what the Flask
views answer, wait without a thread, end at once when the client goes, and are limited per session and
per client address; the hand-picked hostile requests get the same answers through either door."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime

import pytest

from api.asgi import ChatAsgi
from config import contract
from tests.api.asgi_client import Request, call, run
from tests.api.conftest import ADMIN, coded, make_app, sign_in, token_for
from tests.api.test_hostile import HOSTILE, WRONG_METHODS, Hostile, TableTarget, send

NOW = datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT)  # the API leaves older profanity to the ledger


@pytest.fixture
def asgi(tmp_path):
    return ChatAsgi(make_app(tmp_path, LONG_POLLS_PER_SESSION=2, LONG_POLLS_PER_CLIENT=3))


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


def message(author: str, data: str, message_id: str, profane: bool = False, terms=(), position: int = 1):
    """(value, headers) of a `chat_controlled` record as the relay writes it."""
    value = json.dumps({"author": author, "data": data, "timestamp": NOW}).encode()
    headers = [
        (contract.MESSAGE_ID_HEADER, message_id.encode()),
        (contract.PROFANE_HEADER, b"true" if profane else b"false"),
        (contract.CHAT_POSITION_HEADER, f"0:{position}".encode()),
        (contract.TERMS_HEADER, json.dumps(list(terms)).encode()),
    ]
    return value, headers


# -- the same answers as the Flask app ------------------------------------------------------------------


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One app, reached through Flask's WSGI door and through the ASGI app around it."""
    app = make_app(tmp_path_factory.mktemp("asgi-hostile"))
    client = app.test_client()
    moderator = client.post("/moderators/sign_in", json={"name": "moderator", "secret": ADMIN}).get_json()["token"]
    tokens = {"user": token_for(client, "ana"), "other": token_for(client, "bob"), "moderator": moderator}
    return TableTarget(app, tokens), ChatAsgi(app)


def asgi_request(target: TableTarget, request: Hostile) -> Request:
    """The hostile request as a server would hand it to an ASGI app (path decoded as UTF-8)."""
    headers = []
    if request.auth in ("user", "other", "moderator"):
        headers.append((b"authorization", f"Bearer {target.tokens[request.auth]}".encode()))
    elif request.auth == "admin":
        headers.append((b"authorization", f"Bearer {ADMIN}".encode()))
    elif request.auth is not None:
        headers.append((b"authorization", request.auth.encode("utf-8", "surrogateescape")))
    if request.body is not None and request.content_type:
        headers.append((b"content-type", request.content_type.encode()))
    if "CONTENT_LENGTH" in request.environ:
        headers.append((b"content-length", request.environ["CONTENT_LENGTH"].encode()))
    elif request.body:
        headers.append((b"content-length", str(len(request.body)).encode()))
    path = request.path.encode("latin-1").decode("utf-8", "replace")
    return Request(request.method, path, request.query, headers, request.body or b"")


SAME = [p for p in HOSTILE if "wsgi.input" not in p.values[0].environ] + [
    pytest.param(Hostile(method, path, body=b'{"data": "hola"}'), 405, "", id=f"{method} {path}")
    for method, path in (p.values for p in WRONG_METHODS)
]


@pytest.mark.parametrize("request_, status, error", SAME)
def test_hostile_requests_get_the_same_answer_through_asgi(both, request_, status, error):
    target, asgi = both
    wsgi_status, wsgi_headers, wsgi_body = send(target, request_)
    answer = run(asgi, asgi_request(target, request_))
    assert (answer.status, answer.body) == (wsgi_status, wsgi_body)
    assert answer.content_type == wsgi_headers.get("Content-Type")
    assert answer.headers.get("www-authenticate") == wsgi_headers.get("WWW-Authenticate")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"


def test_only_the_configured_hosts_are_served(asgi):
    token = token_for(asgi.flask.test_client(), "ana")
    for path in ("/messages", "/health", "/users/ana/notices"):
        evil = run(asgi, Request("GET", path, headers=bearer(token), host=b"evil.example:5000"))
        assert evil.status == 400 and "is not one this API serves" in json.loads(evil.body)["error"], path
        assert evil.headers["x-content-type-options"] == "nosniff"
        good = run(asgi, Request("GET", path, headers=bearer(token), host=b"127.0.0.1:5000"))
        assert good.status in (200, 503), (path, good.body)  # /health: no Kafka here
    assert run(asgi, Request("GET", "/health", host=None)).status == 400
    spanish = run(asgi, Request("GET", "/health", headers=[(b"accept-language", b"es")], host=b"evil.example"))
    assert json.loads(spanish.body) == {
        "error": "esta API no sirve el Host 'evil.example' (CHAT_API_ALLOWED_HOSTS)",
        "code": "host_not_allowed",
    }


# -- long-polls on the event loop -----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_many_waiting_readers_hold_no_thread_and_each_gets_the_message_once(tmp_path):
    """Far more readers wait at once than the Flask door has threads (two here): every one is answered
    when the message arrives, each with it once."""
    asgi = ChatAsgi(make_app(tmp_path, LONG_POLLS_PER_CLIENT=0), wsgi_threads=2)
    feed = asgi.feed
    readers = 200
    tokens = [token_for(asgi.flask.test_client(), f"reader{n}") for n in range(readers)]

    async def scenario():
        first = await call(asgi, Request("GET", "/messages", headers=bearer(tokens[0])))
        cursor = json.loads(first.body)["cursor"]
        polls = [
            asyncio.ensure_future(
                call(asgi, Request("GET", "/messages", f"after={cursor}&wait=30".encode(), bearer(token)))
            )
            for token in tokens
        ]
        while asgi.sizes()["long_polls"] < readers:
            await asyncio.sleep(0.01)
        threading.Thread(target=feed.add_record, args=message("ana", "hola", "m1")).start()
        return await asyncio.gather(*polls)

    answers = asyncio.run(scenario())
    assert {a.status for a in answers} == {200}
    assert [[m["id"] for m in json.loads(a.body)["messages"]] for a in answers] == [["m1"]] * readers
    assert len({a.body for a in answers}) == 1  # one serialisation for every reader at the same cursor
    assert asgi.sizes()["long_polls"] == 0


@pytest.mark.timeout(60)
def test_a_long_poll_whose_client_leaves_ends_at_once_and_frees_its_place(asgi):
    token = token_for(asgi.flask.test_client(), "ana")

    async def scenario():
        first = await call(asgi, Request("GET", "/messages", headers=bearer(token)))
        cursor = json.loads(first.body)["cursor"]
        request = Request("GET", "/messages", f"after={cursor}&wait=30".encode(), bearer(token))
        poll = asyncio.ensure_future(call(asgi, request))
        while asgi.sizes()["long_polls"] < 1:
            await asyncio.sleep(0.01)
        request.gone.set()  # the client closes its connection; the wait is 30 s, the test's timeout less
        return await poll

    answer = asyncio.run(scenario())
    assert answer.status is None  # nobody left to answer
    assert asgi.sizes() == {"long_polls": 0, "long_poll_sessions": 0, "long_poll_clients": 0, "cached_answers": 0}


def test_long_polls_are_limited_per_session_and_per_client_address(asgi):
    client = asgi.flask.test_client()
    ana, bob = token_for(client, "ana"), token_for(client, "bob")

    async def scenario():
        cursor = json.loads((await call(asgi, Request("GET", "/messages", headers=bearer(ana)))).body)["cursor"]

        def poll(token, address="10.0.0.1"):
            return Request("GET", "/messages", f"after={cursor}&wait=30".encode(), bearer(token), client=(address, 1))

        waiting = [poll(ana), poll(ana)]
        tasks = [asyncio.ensure_future(call(asgi, r)) for r in waiting]
        while asgi.sizes()["long_polls"] < 2:
            await asyncio.sleep(0.01)
        third_of_ana = await call(asgi, poll(ana))
        waiting.append(poll(bob))
        tasks.append(asyncio.ensure_future(call(asgi, waiting[-1])))
        while asgi.sizes()["long_polls"] < 3:
            await asyncio.sleep(0.01)
        fourth_from_address = await call(asgi, poll(bob))
        elsewhere = poll(bob, "10.0.0.2")
        other_address = asyncio.ensure_future(call(asgi, elsewhere))
        while asgi.sizes()["long_polls"] < 4:
            await asyncio.sleep(0.01)
        for request in [*waiting, elsewhere]:
            request.gone.set()
        await asyncio.gather(*tasks, other_address)
        return third_of_ana, fourth_from_address

    per_session, per_client = asyncio.run(scenario())
    assert (per_session.status, json.loads(per_session.body)) == (
        429,
        {
            "error": "too many long-polls open for this session (at most 2); wait for one to answer",
            "code": "too_many_polls_session",
        },
    )
    assert per_session.headers["retry-after"] == "1"
    assert (per_client.status, json.loads(per_client.body)) == (
        429,
        {
            "error": "too many long-polls open from this address (at most 3); wait for one to answer",
            "code": "too_many_polls_client",
        },
    )
    assert asgi.sizes()["long_polls"] == 0


@pytest.mark.timeout(60)
def test_a_notices_long_poll_wakes_on_a_warning_told_at_once(asgi):
    """The relay's verdict on a profane message reaches its author's notices long-poll before the ledger
    says anything, as the warning the ledger will send (same id, strike, terms and text)."""
    asgi.notices.mark_caught_up()
    token = token_for(asgi.flask.test_client(), "ana")

    async def scenario():
        first = await call(asgi, Request("GET", "/users/ana/notices", headers=bearer(token)))
        cursor = json.loads(first.body)["cursor"]
        poll = asyncio.ensure_future(
            call(asgi, Request("GET", "/users/ana/notices", f"after={cursor}&wait=30".encode(), bearer(token)))
        )
        while asgi.sizes()["long_polls"] < 1:
            await asyncio.sleep(0.01)
        value, headers = message("ana", "qué ******", "m1", profane=True, terms=["mierda"])
        threading.Thread(target=asgi.feed.add_record, args=(value, headers)).start()
        return await poll

    answer = asyncio.run(scenario())
    assert answer.status == 200
    [notice] = json.loads(answer.body)["notices"]
    assert notice == {
        "id": "m1:strike",
        "author": "ana",
        "kind": "warning",
        "strike": 1,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": "m1",
        "text": contract.notice_text("warning", 1, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": NOW,
    }


@pytest.mark.timeout(60)
def test_a_notices_long_poll_is_woken_by_its_authors_notice_and_not_by_another_authors(asgi):
    """README: `GET /users/<author>/notices` long-polls. Bob's notice ends bob's wait and leaves ana's waiting
    (checked by order: bob's answer is in while ana's poll is still open); ana's own notice then ends hers."""
    asgi.notices.mark_caught_up()
    client = asgi.flask.test_client()
    ana, bob = token_for(client, "ana"), token_for(client, "bob")

    async def scenario():
        async def poll(author, token):
            first = await call(asgi, Request("GET", f"/users/{author}/notices", headers=bearer(token)))
            cursor = json.loads(first.body)["cursor"]
            query = f"after={cursor}&wait=30".encode()
            return asyncio.ensure_future(call(asgi, Request("GET", f"/users/{author}/notices", query, bearer(token))))

        ana_poll, bob_poll = await poll("ana", ana), await poll("bob", bob)
        while asgi.sizes()["long_polls"] < 2:
            await asyncio.sleep(0.01)
        threading.Thread(target=asgi.notices.add_record, args=(ledger_notice("bob", 1, "b1"), [])).start()
        bob_answer = await bob_poll
        for _ in range(5):  # let every coroutine the notice woke take its turn
            await asyncio.sleep(0)
        ana_waited = not ana_poll.done()
        threading.Thread(target=asgi.notices.add_record, args=(ledger_notice("ana", 1, "a1"), [])).start()
        return bob_answer, ana_waited, await ana_poll

    bob_answer, ana_waited, ana_answer = asyncio.run(scenario())
    assert bob_answer.status == 200 and [n["id"] for n in json.loads(bob_answer.body)["notices"]] == ["b1:strike"]
    assert ana_waited, "another author's notice ended ana's long-poll"
    assert ana_answer.status == 200 and [n["id"] for n in json.loads(ana_answer.body)["notices"]] == ["a1:strike"]
    assert asgi.sizes()["long_polls"] == 0


# -- POST /notices/poll ---------------------------------------------------------------------------------


def poll_request(body, content_type=b"application/json") -> Request:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", "/notices/poll", headers=[(b"content-type", content_type)], body=data)


def ledger_notice(author: str, strike: int, message_id: str) -> bytes:
    kind = "blocked" if strike >= contract.STRIKE_LIMIT else "warning"
    return json.dumps(
        {
            "id": f"{message_id}:strike",
            "author": author,
            "kind": kind,
            "strike": strike,
            "limit": contract.STRIKE_LIMIT,
            "terms": ["mierda"],
            "message_id": message_id,
            "text": contract.notice_text(kind, strike, contract.STRIKE_LIMIT, ["mierda"]),
            "timestamp": "2026-12-01 10:00:00",
        }
    ).encode()


def test_one_poll_reads_the_notices_of_every_live_token_and_nobody_elses(asgi):
    client = asgi.flask.test_client()
    ana, bob, carol = (token_for(client, name) for name in ("ana", "bob", "carol"))
    assert client.delete("/sessions", headers={"Authorization": f"Bearer {carol}"}).status_code == 204
    for author, strike, message_id in (("ana", 1, "a1"), ("bob", 1, "b1"), ("carol", 1, "c1"), ("dan", 2, "d1")):
        asgi.notices.add_record(ledger_notice(author, strike, message_id), [])
    answer = run(asgi, poll_request({"tokens": [ana, "forged", bob, carol, ADMIN]}))
    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert [(n["author"], n["id"]) for n in body["notices"]] == [("ana", "a1:strike"), ("bob", "b1:strike")]
    assert (body["authors"], body["refused"]) == (["ana", "bob"], [1, 3, 4])
    again = json.loads(run(asgi, poll_request({"tokens": [ana, bob], "after": body["cursor"]})).body)
    assert again["notices"] == []
    asgi.notices.add_record(ledger_notice("bob", 2, "b2"), [])
    newer = json.loads(run(asgi, poll_request({"tokens": [ana, bob], "after": again["cursor"], "wait": 1})).body)
    assert [n["id"] for n in newer["notices"]] == ["b2:strike"]


@pytest.mark.parametrize(
    "body, content_type, status, error",
    [
        ({"tokens": []}, b"application/json", 400, "tokens must be a non-empty list of session tokens (strings)"),
        ({"tokens": "x"}, b"application/json", 400, "tokens must be a non-empty list of session tokens (strings)"),
        ({"tokens": [1]}, b"application/json", 400, "tokens must be a non-empty list of session tokens (strings)"),
        ({"tokens": ["x"] * 1001}, b"application/json", 400, "tokens holds 1001 tokens, at most 1000"),
        ({"tokens": ["x"], "wait": 31}, b"application/json", 400, "wait must be a number of seconds between 0 and 30"),
        (
            {"tokens": ["x"], "wait": True},
            b"application/json",
            400,
            "wait must be a number of seconds between 0 and 30",
        ),
        (
            {"tokens": ["x"], "after": 5},
            b"application/json",
            400,
            "after must be a cursor (a string) returned by POST /notices/poll",
        ),
        (
            {"tokens": ["x"], "after": "m0:1.x"},
            b"application/json",
            400,
            "after must be a cursor returned by POST /notices/poll",
        ),
        ({"tokens": ["x"], "room": 1}, b"application/json", 400, "unknown field(s): room"),
        (b'{"tokens": ', b"application/json", 400, "body is not valid JSON (UTF-8)"),
        (b"[" * 60_000, b"application/json", 400, "body is not valid JSON (UTF-8): nested too deeply"),
        (b"[]", b"application/json", 400, 'body must be a JSON object {"tokens": ..., "after": ..., "wait": ...}'),
        ({"tokens": ["x"]}, b"text/plain", 400, "send JSON with Content-Type: application/json"),
        (b"x" * (256 * 1024 + 1), b"application/json", 413, "request body too large (at most 262144 bytes)"),
    ],
)
def test_bad_polls_get_a_clear_error(asgi, body, content_type, status, error):
    answer = run(asgi, poll_request(body, content_type))
    assert (answer.status, coded(json.loads(answer.body))) == (status, {"error": error})


def test_a_feed_cursor_is_no_notices_cursor_and_the_reverse(asgi):
    client = asgi.flask.test_client()
    headers = sign_in(client, "ana")
    feed_cursor = client.get("/messages", headers=headers).get_json()["cursor"]
    notices_cursor = client.get("/users/ana/notices", headers=headers).get_json()["cursor"]
    assert client.get(f"/users/ana/notices?after={feed_cursor}", headers=headers).status_code == 400
    assert client.get(f"/messages?after={notices_cursor}", headers=headers).status_code == 400
