"""The API in-process (Flask's test client), with no broker: nothing listens on its Kafka port.

Sessions and accounts go to in-process stand-ins of `chat_sessions` and `chat_accounts` (tests/api/session_log.py),
one per data directory:
apps made on the same DATA_DIR stand for API processes (or hosts) sharing one Kafka."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from api import create_app, i18n
from api.spec import SPEC_PATH
from stack.balancer import ApiHost
from stack.broker import free_port
from tests.api.session_log import LocalSessionLog

ADMIN = "admin-token-for-tests"
SPEC = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))  # api/openapi.yaml
# Delta `user_moderation` as the API reads it, for tables the tests write with deltalake as a ledger commit would
MODERATION_ARROW_SCHEMA = pa.schema(
    [
        ("author", pa.string()),
        ("messages", pa.int64()),
        ("strikes", pa.int32()),
        ("is_blocked", pa.bool_()),
        ("blocked_at", pa.timestamp("us", "UTC")),
        ("blocked_partition", pa.int32()),
        ("blocked_offset", pa.int64()),
        ("last_batch_id", pa.int64()),
    ]
)


SESSION_LOGS: dict[str, LocalSessionLog] = {}
ACCOUNT_LOGS: dict[str, LocalSessionLog] = {}


def session_log(data_dir) -> LocalSessionLog:
    """The sessions log every app on `data_dir` shares (the stand-in of one Kafka topic)."""
    return SESSION_LOGS.setdefault(str(data_dir), LocalSessionLog())


def account_log(data_dir) -> LocalSessionLog:
    """The accounts log every app on `data_dir` shares (the stand-in of `chat_accounts`)."""
    return ACCOUNT_LOGS.setdefault(str(data_dir), LocalSessionLog())


def make_app(tmp_path, **config):
    """An app on DATA_DIR `tmp_path` whose every produce fails as "Kafka unavailable" (sessions and accounts go
    to the data directory's LocalSessionLogs), guest names on (the tests sign in without a password), cheap
    password hashes; `config` overrides."""
    return create_app(
        {
            "TESTING": True,
            "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "START_FEED": False,
            "KAFKA_SEND_TIMEOUT_S": 2.0,
            "DATA_DIR": tmp_path,
            "WAREHOUSE_DIR": tmp_path / "warehouse",
            "ADMIN_TOKEN": ADMIN,
            "SESSION_LOG": session_log(tmp_path),
            "ACCOUNT_LOG": account_log(tmp_path),
            "GUEST_NAMES": True,
            "PASSWORD_HASH_PROFILE": "CHEAPEST",
            **config,
        }
    )


def token_for(client, author: str) -> str:
    """The token of a new session of `author`."""
    response = client.post("/sessions", json={"author": author})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["token"]


def sign_in(client, author: str) -> dict:
    """`Authorization` for a new session of `author`."""
    return {"Authorization": f"Bearer {token_for(client, author)}"}


def coded(body) -> dict:
    """An error answer without its `code`, once that is checked to be one of api/i18n.py's codes."""
    assert isinstance(body, dict) and body.get("code") in i18n.CODES, body
    return {k: v for k, v in body.items() if k != "code"}


def assert_json_answer(status: int, content_type: str | None, body: bytes, what: str) -> None:
    """No 5xx; a 4xx is JSON `{"error": "<non-empty string>", "code": "<a catalog code>"}` and nothing else."""
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if 400 <= status < 500:
        assert (content_type or "").split(";")[0].strip() == "application/json", (
            f"{what}: {content_type} {body[:300]!r}"
        )
        error = json.loads(body)
        assert isinstance(error, dict) and set(error) == {"error", "code"}, f"{what}: {error!r}"
        assert error["code"] in i18n.CODES, f"{what}: {error!r}"
        assert isinstance(error["error"], str) and error["error"].strip(), f"{what}: {error!r}"


@pytest.fixture
def client(tmp_path):
    with make_app(tmp_path).test_client() as c:
        yield c


@pytest.fixture
def ana(client) -> dict:
    return sign_in(client, "ana")


@contextmanager
def api_hosts(home: Path, bootstrap: str, env: dict[str, str]) -> Iterator[list[ApiHost]]:
    """Two API processes ("hosts" a and b, gunicorn as `make up` runs it) on one broker, sharing only Kafka and a
    secret, with the settings `env`; healthy when yielded, stopped after."""
    secret = secrets.token_urlsafe(32)
    pair = [ApiHost(name, home / name, bootstrap, secret, env=env) for name in ("a", "b")]
    for host in pair:
        host.start()
    try:
        for host in pair:
            host.wait_healthy()
        yield pair
    finally:
        for host in pair:
            host.stop()


def eventually(what, check, timeout_s: float = 30):
    """`check()`'s first truthy result, asked every 0.2 s; fails with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return result
