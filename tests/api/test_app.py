"""api/__init__.py (the app factory), api/errors.py, api/health.py and api/spec.py (no broker)."""

from __future__ import annotations

import re

import pyarrow as pa
import yaml
from deltalake import write_deltalake

from api import create_app
from config import contract
from tests.api.conftest import MODERATION_ARROW_SCHEMA, SPEC


def test_the_factory_takes_its_defaults_from_config_and_a_tests_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("CHAT_SESSION_TTL_S", "77")
    monkeypatch.setenv("CHAT_KAFKA_BOOTSTRAP", "k1:9092,k2:9092")
    config = create_app({"START_FEED": False, "DATA_DIR": tmp_path, "KAFKA_BOOTSTRAP": "elsewhere:1"}).config
    assert (config["SESSION_TTL_S"], config["KAFKA_BOOTSTRAP"]) == (77, "elsewhere:1")
    assert (config["MAX_AUTHOR_CHARS"], config["MAX_DATA_CHARS"]) == (
        contract.MAX_AUTHOR_CHARS,
        contract.MAX_DATA_CHARS,
    )


def test_huge_body_is_a_413_json_error(client, ana):
    response = client.post("/messages", data=b"x" * (65 * 1024), content_type="application/json", headers=ana)
    assert response.status_code == 413
    assert response.get_json()["error"].startswith("request body too large")


def test_unknown_endpoint_and_method_are_json(client):
    assert client.get("/nope").get_json() == {"error": "no such endpoint", "code": "not_found"}
    response = client.delete("/messages")
    assert (response.status_code, response.get_json()) == (
        405,
        {"error": "method not allowed here", "code": "method_not_allowed"},
    )


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


def test_the_document_caps_a_notices_poll_at_the_contracts_token_count():
    body = SPEC["paths"]["/notices/poll"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["tokens"]["maxItems"] == contract.MAX_POLL_TOKENS


def test_health_reports_the_version_of_the_moderation_snapshot(client, tmp_path):
    """README: /health reports the snapshot's table version: none before the ledger made the table, then
    the version read (the table written here with deltalake, as a ledger commit would add versions)."""
    snapshot = client.application.extensions["chat_moderation"].snapshot
    assert client.get("/health").get_json()["snapshot"]["version"] is None
    schema = MODERATION_ARROW_SCHEMA
    for version, author in enumerate(("ana", "bob")):
        row = [[author], [1], [0], [False], [None], [None], [None], [version]]
        write_deltalake(str(snapshot.table_path), pa.table(row, schema=schema), mode="append")
        assert snapshot.refresh() is True
        reported = client.get("/health").get_json()["snapshot"]
        assert (reported["version"], reported["users"], reported["error"]) == (version, version + 1, None)
