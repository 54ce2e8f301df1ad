"""api/auth.py and api/sessions.py: sessions that hold a name, signed tokens, sign-out everywhere (no broker)."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.api.conftest import ADMIN, make_app, sign_in


def test_a_session_holds_its_name_until_it_ends(client):
    first = client.post("/sessions", json={"author": " ana "})
    assert first.status_code == 201
    body = first.get_json()
    assert (
        body["author"] == "ana"
        and body["token"]
        and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body["expires_at"])
    )
    taken = client.post("/sessions", json={"author": "ana"})
    assert taken.status_code == 409 and "in use by another session" in taken.get_json()["error"]
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert client.delete("/sessions", headers=headers).status_code == 204
    assert client.get("/messages", headers=headers).status_code == 401  # the token died with its session
    assert client.post("/sessions", json={"author": "ana"}).status_code == 201


def test_a_long_poll_whose_session_ends_meanwhile_gets_a_401(tmp_path):
    app = make_app(tmp_path)
    headers = sign_in(app.test_client(), "ana")
    # each long poll says when it has passed its sign-in check and begun to wait
    waiting = {"feed": threading.Event(), "notices": threading.Event()}
    for name, tail in (("feed", app.extensions["chat_feed"]), ("notices", app.extensions["chat_moderation"].notices)):
        read = tail.read

        def waits(*args, _read=read, _began=waiting[name], **kwargs):
            _began.set()
            return _read(*args, **kwargs)

        tail.read = waits
    answers = {}
    client = app.test_client()
    feed_cursor = client.get("/messages", headers=headers).get_json()["cursor"]
    notices_cursor = client.get("/users/ana/notices", headers=headers).get_json()["cursor"]
    paths = {
        "feed": f"/messages?after={feed_cursor}&wait=2",
        "notices": f"/users/ana/notices?after={notices_cursor}&wait=2",
    }

    def poll(path):
        answers[path] = app.test_client().get(path, headers=headers)

    threads = [threading.Thread(target=poll, args=(path,)) for path in paths.values()]
    for t in threads:
        t.start()
    for began in waiting.values():
        assert began.wait(30)
    assert app.test_client().delete("/sessions", headers=headers).status_code == 204
    for t in threads:
        t.join(30)
    assert {path: r.status_code for path, r in answers.items()} == {paths["feed"]: 401, paths["notices"]: 401}


def test_an_expired_session_frees_the_name_and_its_token_stops_working(tmp_path):
    with make_app(tmp_path, SESSION_TTL_S=1).test_client() as client:
        headers = sign_in(client, "ana")
        assert client.get("/messages", headers=headers).status_code == 200
        time.sleep(1.1)
        expired = client.get("/messages", headers=headers)
        assert expired.status_code == 401 and "expired" in expired.get_json()["error"]
        assert client.post("/sessions", json={"author": "ana"}).status_code == 201


def test_a_sign_out_in_another_process_ends_the_token_there_at_once(tmp_path):
    # two apps on one DATA_DIR are two API processes: each remembers the sessions it found live
    first, second = make_app(tmp_path).test_client(), make_app(tmp_path).test_client()
    headers = sign_in(first, "ana")
    for client in (first, second, first, second):
        assert client.get("/messages", headers=headers).status_code == 200
    assert second.delete("/sessions", headers=headers).status_code == 204
    ended = first.get("/messages", headers=headers)
    assert ended.status_code == 401 and "ended or expired" in ended.get_json()["error"]
    assert first.post("/sessions", json={"author": "ana"}).status_code == 201


def test_a_session_in_use_is_renewed_and_keeps_its_name(tmp_path):
    client, other = make_app(tmp_path, SESSION_TTL_S=1).test_client(), make_app(tmp_path, SESSION_TTL_S=1).test_client()
    headers = sign_in(client, "ana")
    until = time.monotonic() + 2.5  # 2.5 TTLs of steady use
    while time.monotonic() < until:
        assert client.get("/messages", headers=headers).status_code == 200
        time.sleep(0.1)
    assert other.post("/sessions", json={"author": "ana"}).status_code == 409
    assert other.get("/messages", headers=headers).status_code == 200


def test_sessions_outlive_an_api_restart_and_a_forged_token_is_refused(tmp_path):
    with make_app(tmp_path).test_client() as client:
        headers = sign_in(client, "ana")
    with make_app(tmp_path).test_client() as client:  # same DATA_DIR: same secret, same sessions
        assert client.get("/messages", headers=headers).status_code == 200
        assert client.post("/sessions", json={"author": "ana"}).status_code == 409
        token = headers["Authorization"].split()[1]
        payload, _, signature = token.rpartition(".")
        forged = client.get("/messages", headers={"Authorization": f"Bearer {payload}.{signature[::-1]}"})
        assert forged.status_code == 401 and "not one this API issued" in forged.get_json()["error"]


@pytest.mark.parametrize(
    "header, error",
    [
        (None, "sign in first: POST /sessions, then send Authorization: Bearer <token>"),
        ("Basic YW5hOnB3", "the Authorization header must be `Bearer <token>`"),
        ("Bearer ", "the Authorization header must be `Bearer <token>`"),
        ("Bearer not-a-token", "the token is not one this API issued; sign in again with POST /sessions"),
        (f"Bearer {ADMIN}", "the token is not one this API issued; sign in again with POST /sessions"),
    ],
)
def test_messages_need_a_valid_bearer_token(client, header, error):
    headers = {"Authorization": header} if header else {}
    for response in (
        client.post("/messages", json={"data": "hola"}, headers=headers),
        client.get("/messages", headers=headers),
    ):
        assert (response.status_code, response.get_json()) == (401, {"error": error})
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, "author is required"),
        ({"author": "a" * 65}, "author is too long (65 characters, at most 64)"),
        ({"author": "ana", "token": "x"}, "unknown field(s): token"),
        ({"author": "ana/notices"}, "author must not contain '/' (it names a user in URLs such as /users/<author>)"),
        (
            {"author": "\u200b\u200b"},
            "author must have visible characters and no text-direction or zero-width characters",
        ),
        (
            {"author": "ana\u202enib"},
            "author must have visible characters and no text-direction or zero-width characters",
        ),
        (["ana"], 'body must be a JSON object {"author": ...}'),
    ],
)
def test_bad_sign_ins_get_a_clear_error(client, body, error):
    response = client.post("/sessions", json=body)
    assert (response.status_code, response.get_json()) == (400, {"error": error})


def test_a_session_opened_elsewhere_a_moment_ago_is_waited_for_not_refused(tmp_path):
    """Host b reads `chat_sessions` a moment after host a: a token a has just issued names where its claim is,
    and b waits until it has read that far (through either door) instead of answering 401."""
    from api.asgi import ChatAsgi
    from tests.api.asgi_client import Request, run
    from tests.api.session_log import LocalSessionLog

    a = make_app(tmp_path, SESSION_LOG=LocalSessionLog())
    b = make_app(tmp_path, SESSION_LOG=LocalSessionLog())  # same secret (DATA_DIR), its own view of the log
    for door in ("flask", "asgi"):
        token = a.test_client().post("/sessions", json={"author": f"ana-{door}"}).get_json()["token"]
        author, value, at = a.config["SESSION_LOG"].records[-1]
        b_log = b.config["SESSION_LOG"]
        late = threading.Timer(0.3, b_log.append, args=(author, json.loads(value)))  # b reads it later
        late.start()
        if door == "flask":
            status = b.test_client().get("/messages", headers={"Authorization": f"Bearer {token}"}).status_code
        else:
            status = run(
                ChatAsgi(b), Request("GET", "/messages", headers=[(b"authorization", f"Bearer {token}".encode())])
            ).status
        late.join()
        assert status == 200, door
