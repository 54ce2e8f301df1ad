"""api/messages.py (with api/validation.py): POST and GET /messages without a broker."""

from __future__ import annotations

import pytest

from tests.api.conftest import coded


def test_the_author_is_the_sessions_and_another_is_refused(client, ana):
    response = client.post("/messages", json={"author": "bob", "data": "hola"}, headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "signed in as 'ana': you cannot send as 'bob'", "code": "cannot_send_as"},
    )
    response = client.get("/messages?user=bob", headers=ana)
    assert (response.status_code, response.get_json()) == (
        403,
        {"error": "signed in as 'ana': you cannot read as 'bob'", "code": "cannot_read_as"},
    )
    assert client.get("/messages?user=ana", headers=ana).status_code == 200


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
    assert (response.status_code, coded(response.get_json())) == (status, {"error": error})


def test_malformed_json_is_a_400(client, ana):
    response = client.post(
        "/messages", data=b'{"author": "ana", "data": ', content_type="application/json", headers=ana
    )
    assert (response.status_code, response.get_json()) == (
        400,
        {"error": "body is not valid JSON (UTF-8)", "code": "json_invalid"},
    )


def test_json_content_type_is_required(client, ana):
    response = client.post(
        "/messages", data=b'{"author": "ana", "data": "hola"}', content_type="text/plain", headers=ana
    )
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.get_json()["error"]


def test_kafka_unavailable_is_a_503_not_an_acceptance(client, ana):
    response = client.post("/messages", json={"data": "hola"}, headers=ana)
    assert response.status_code == 503
    assert "Kafka" in response.get_json()["error"]
    assert "id" not in response.get_json()


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
    assert (response.status_code, coded(response.get_json())) == (400, {"error": error})


def test_read_from_an_empty_feed_returns_a_cursor(client, ana):
    body = client.get("/messages", headers=ana).get_json()
    assert body["messages"] == [] and body["cursor"]
    again = client.get(f"/messages?after={body['cursor']}&wait=0", headers=ana).get_json()
    assert again == {"messages": [], "cursor": body["cursor"]}
