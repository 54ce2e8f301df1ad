"""API behaviour without a broker: validation, error format, Kafka unavailable, the OpenAPI document."""
from __future__ import annotations

import re

import pytest
import yaml

from api import create_app
from stack.broker import free_port


@pytest.fixture
def client():
    # nothing listens on this port: every produce must fail as "Kafka unavailable"
    app = create_app({"TESTING": True, "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}", "START_FEED": False,
                      "KAFKA_SEND_TIMEOUT_S": 2.0})
    with app.test_client() as c:
        yield c


@pytest.mark.parametrize("body, status, error", [
    ({"author": "ana"}, 400, "data is required"),
    ({"data": "hola"}, 400, "author is required"),
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
    (["ana", "hola"], 400, 'body must be a JSON object {"author": ..., "data": ...}'),
    ("hola", 400, 'body must be a JSON object {"author": ..., "data": ...}'),
])
def test_bad_messages_get_a_clear_error(client, body, status, error):
    response = client.post("/messages", json=body)
    assert (response.status_code, response.get_json()) == (status, {"error": error})


def test_malformed_json_is_a_400(client):
    response = client.post("/messages", data=b'{"author": "ana", "data": ', content_type="application/json")
    assert (response.status_code, response.get_json()) == (400, {"error": "body is not valid JSON"})


def test_json_content_type_is_required(client):
    response = client.post("/messages", data=b'{"author": "ana", "data": "hola"}', content_type="text/plain")
    assert response.status_code == 400
    assert "Content-Type: application/json" in response.get_json()["error"]


def test_huge_body_is_a_413_json_error(client):
    response = client.post("/messages", data=b"x" * (65 * 1024), content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"].startswith("request body too large")


def test_kafka_unavailable_is_a_503_not_an_acceptance(client):
    response = client.post("/messages", json={"author": "ana", "data": "hola"})
    assert response.status_code == 503
    assert "Kafka" in response.get_json()["error"]
    assert "id" not in response.get_json()


def test_unknown_endpoint_and_method_are_json(client):
    assert client.get("/nope").get_json() == {"error": "no such endpoint"}
    response = client.delete("/messages")
    assert (response.status_code, response.get_json()) == (405, {"error": "method not allowed here"})


@pytest.mark.parametrize("query, error", [
    ("", "user is required"),
    ("user=", "user must not be empty"),
    ("user=ana&wait=soon", "wait must be a number of seconds"),
    ("user=ana&wait=31", "wait must be between 0 and 30 seconds"),
    ("user=ana&wait=-1", "wait must be between 0 and 30 seconds"),
    ("user=ana&wait=nan", "wait must be between 0 and 30 seconds"),
    ("user=ana&limit=0", "limit must be a whole number from 1 to 500"),
    ("user=ana&limit=x", "limit must be a whole number from 1 to 500"),
    ("user=ana&after=nonsense", "after must be a cursor returned by GET /messages"),
])
def test_bad_reads_get_a_clear_error(client, query, error):
    response = client.get(f"/messages?{query}")
    assert (response.status_code, response.get_json()) == (400, {"error": error})


def test_read_from_an_empty_feed_returns_a_cursor(client):
    body = client.get("/messages?user=ana").get_json()
    assert body["messages"] == [] and body["cursor"]
    again = client.get(f"/messages?user=ana&after={body['cursor']}&wait=0").get_json()
    assert again == {"messages": [], "cursor": body["cursor"]}


def test_health_names_kafka_as_down(client):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded" and "kafka" in body["down"]
    assert body["kafka"]["reachable"] is False


def test_openapi_document_describes_every_route(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.data)
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routes = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
              for rule in client.application.url_map.iter_rules()
              if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented
