"""API behaviour without a broker: sessions and tokens, validation, error format, Kafka unavailable,
the OpenAPI document."""

from __future__ import annotations

import re
import time

import pytest
import yaml

from api import create_app
from stack.broker import free_port

ADMIN = "admin-token-for-tests"


def make_app(tmp_path, **config):
    # nothing listens on this port: every produce must fail as "Kafka unavailable"
    return create_app(
        {
            "TESTING": True,
            "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "START_FEED": False,
            "KAFKA_SEND_TIMEOUT_S": 2.0,
            "DATA_DIR": tmp_path,
            "ADMIN_TOKEN": ADMIN,
            **config,
        }
    )


@pytest.fixture
def client(tmp_path):
    with make_app(tmp_path).test_client() as c:
        yield c


def sign_in(client, author: str) -> dict:
    response = client.post("/sessions", json={"author": author})
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


@pytest.fixture
def ana(client) -> dict:
    return sign_in(client, "ana")


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
    import threading

    app = make_app(tmp_path)
    headers = sign_in(app.test_client(), "ana")
    answers = {}

    def poll(path):
        answers[path] = app.test_client().get(path, headers=headers)

    threads = [
        threading.Thread(target=poll, args=(path,))
        for path in ("/messages?after=x.0&wait=2", "/users/ana/notices?after=x.0&wait=2")
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert app.test_client().delete("/sessions", headers=headers).status_code == 204
    for t in threads:
        t.join(10)
    assert {path: r.status_code for path, r in answers.items()} == {
        "/messages?after=x.0&wait=2": 401,
        "/users/ana/notices?after=x.0&wait=2": 401,
    }


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


def test_the_author_is_the_sessions_and_another_is_refused(client, ana):
    response = client.post("/messages", json={"author": "bob", "data": "hola"}, headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "signed in as 'ana': you cannot send as 'bob'"},
    )
    response = client.get("/messages?user=bob", headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "signed in as 'ana': you cannot read as 'bob'"},
    )
    assert client.get("/messages?user=ana", headers=ana).status_code == 200


def test_notices_are_for_their_user_or_a_moderator(client, ana):
    assert client.get("/users/ana/notices").status_code == 401
    assert client.get("/users/ana/notices", headers=ana).get_json()["notices"] == []
    other = client.get("/users/bob/notices", headers=ana)
    assert other.status_code == 403 and "only read your own notices" in other.get_json()["error"]
    assert client.get("/users/bob/notices", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_unblock_needs_the_moderators_token(client, ana, tmp_path):
    assert client.post("/users/ana/unblock").status_code == 401
    response = client.post("/users/ana/unblock", headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "this needs the moderators' token (CHAT_ADMIN_TOKEN)"},
    )
    unknown = client.post("/users/nobody/unblock", headers={"Authorization": f"Bearer {ADMIN}"})
    assert (unknown.status_code, unknown.get_json()) == (
        404,
        {"error": "unknown user 'nobody': no message from them has been recorded yet"},
    )
    with make_app(tmp_path, ADMIN_TOKEN="").test_client() as off:
        response = off.post("/users/ana/unblock", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403 and "CHAT_ADMIN_TOKEN" in response.get_json()["error"]


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"author": "ana"}, 400, "data is required"),
        ({"author": "", "data": "hola"}, 400, "author must not be empty"),
        ({"author": "   ", "data": "hola"}, 400, "author must not be empty"),
        ({"author": 7, "data": "hola"}, 400, "author must be a string"),
        ({"author": "ana", "data": 7}, 400, "data must be a string"),
        ({"author": "ana", "data": None}, 400, "data is required"),
        ({"author": "ana", "data": ""}, 400, "data must not be empty"),
        ({"author": "ana", "data": " \n\t "}, 400, "data must not be empty"),
        ({"author": "a" * 65, "data": "hola"}, 400, "author is too long (65 characters, at most 64)"),
        ({"author": "ana", "data": "x" * 2001}, 413, "data is too long (2001 characters, at most 2000)"),
        ({"author": "ana\nbob", "data": "hola"}, 400, "author must not contain control characters or line breaks"),
        ({"author": "ana", "data": "bell\x07"}, 400, "data must not contain control characters"),
        ({"author": "ana", "data": "hola", "room": "x"}, 400, "unknown field(s): room"),
        (["ana", "hola"], 400, 'body must be a JSON object {"data": ..., "author": ...}'),
        ("hola", 400, 'body must be a JSON object {"data": ..., "author": ...}'),
    ],
)
def test_bad_messages_get_a_clear_error(client, ana, body, status, error):
    response = client.post("/messages", json=body, headers=ana)
    assert (response.status_code, response.get_json()) == (status, {"error": error})


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, "author is required"),
        ({"author": "a" * 65}, "author is too long (65 characters, at most 64)"),
        ({"author": "ana", "token": "x"}, "unknown field(s): token"),
        ({"author": "ana/notices"}, "author must not contain '/' (it names a user in URLs such as /users/<author>)"),
        ({"author": "\u200b\u200b"}, "author must have visible characters and no text-direction controls"),
        ({"author": "ana\u202enib"}, "author must have visible characters and no text-direction controls"),
        (["ana"], 'body must be a JSON object {"author": ...}'),
    ],
)
def test_bad_sign_ins_get_a_clear_error(client, body, error):
    response = client.post("/sessions", json=body)
    assert (response.status_code, response.get_json()) == (400, {"error": error})


def test_malformed_json_is_a_400(client, ana):
    response = client.post(
        "/messages", data=b'{"author": "ana", "data": ', content_type="application/json", headers=ana
    )
    assert (response.status_code, response.get_json()) == (400, {"error": "body is not valid JSON (UTF-8)"})


def test_json_content_type_is_required(client, ana):
    response = client.post(
        "/messages", data=b'{"author": "ana", "data": "hola"}', content_type="text/plain", headers=ana
    )
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.get_json()["error"]


def test_huge_body_is_a_413_json_error(client, ana):
    response = client.post("/messages", data=b"x" * (65 * 1024), content_type="application/json", headers=ana)
    assert response.status_code == 413
    assert response.get_json()["error"].startswith("request body too large")


def test_kafka_unavailable_is_a_503_not_an_acceptance(client, ana):
    response = client.post("/messages", json={"data": "hola"}, headers=ana)
    assert response.status_code == 503
    assert "Kafka" in response.get_json()["error"]
    assert "id" not in response.get_json()


def test_unknown_endpoint_and_method_are_json(client):
    assert client.get("/nope").get_json() == {"error": "no such endpoint"}
    response = client.delete("/messages")
    assert (response.status_code, response.get_json()) == (405, {"error": "method not allowed here"})


@pytest.mark.parametrize(
    "query, error",
    [
        ("user=%20", "user must not be empty"),
        ("user=ana&wait=soon", "wait must be a number of seconds"),
        ("user=ana&wait=31", "wait must be between 0 and 30 seconds"),
        ("user=ana&wait=-1", "wait must be between 0 and 30 seconds"),
        ("user=ana&wait=nan", "wait must be between 0 and 30 seconds"),
        ("user=ana&limit=0", "limit must be a whole number from 1 to 500"),
        ("user=ana&limit=x", "limit must be a whole number from 1 to 500"),
        ("user=ana&after=nonsense", "after must be a cursor returned by GET /messages"),
    ],
)
def test_bad_reads_get_a_clear_error(client, ana, query, error):
    response = client.get(f"/messages?{query}", headers=ana)
    assert (response.status_code, response.get_json()) == (400, {"error": error})


def test_read_from_an_empty_feed_returns_a_cursor(client, ana):
    body = client.get("/messages", headers=ana).get_json()
    assert body["messages"] == [] and body["cursor"]
    again = client.get(f"/messages?after={body['cursor']}&wait=0", headers=ana).get_json()
    assert again == {"messages": [], "cursor": body["cursor"]}


def test_health_names_kafka_as_down(client):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded" and "kafka" in body["down"]
    assert body["kafka"]["reachable"] is False
    assert body["sessions"] == {"live": 0}


def test_openapi_document_describes_every_route(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.data)
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == documented


@pytest.fixture
def gunicorn_api(tmp_path):
    """The API under gunicorn with api.KeepAliveThreadWorker and 2 threads (Kafka unreachable); yields its port."""
    import os
    import subprocess
    import sys

    from stack.broker import port_open

    port = free_port()
    env = {**os.environ, "CHAT_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "CHAT_DATA_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "api.KeepAliveThreadWorker",
            "-w",
            "1",
            "--threads",
            "2",
            "--keep-alive",
            "5",
            "-b",
            f"127.0.0.1:{port}",
            "api:create_app()",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(15)


def test_keepalive_worker_answers_many_connections_with_few_threads(gunicorn_api):
    import http.client

    def get(conn) -> int:
        conn.request("GET", "/openapi.yaml")
        response = conn.getresponse()
        response.read()
        return response.status

    first = http.client.HTTPConnection("127.0.0.1", gunicorn_api, timeout=10)
    assert [get(first) for _ in range(5)] == [200] * 5  # one connection, one thread, five requests
    # two threads, both holding an idle keep-alive connection: a third connection is still answered at once,
    # and so are the first two afterwards
    second = http.client.HTTPConnection("127.0.0.1", gunicorn_api, timeout=10)
    assert get(second) == 200
    third = http.client.HTTPConnection("127.0.0.1", gunicorn_api, timeout=10)
    began = time.monotonic()
    assert get(third) == 200
    assert time.monotonic() - began < 1.0
    assert (get(first), get(second), get(third)) == (200, 200, 200)
    for conn in (first, second, third):
        conn.close()
    fourth = http.client.HTTPConnection("127.0.0.1", gunicorn_api, timeout=10)  # closed ones free their threads
    assert get(fourth) == 200
    fourth.close()
