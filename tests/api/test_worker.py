"""The one gunicorn configuration (conf/gunicorn.conf.py) as `make up` starts it (stack/up.py): uvicorn workers
serving the ASGI app, one per core; and api.KeepAliveThreadWorker (the gthread worker the bench compares with)."""

from __future__ import annotations

import http.client
import os
import runpy
import subprocess
import time

import pytest

from stack.broker import free_port, port_open
from stack.processes import child_env
from stack.up import GUNICORN_CONF, api_argv

GTHREAD = ["-k", "api.KeepAliveThreadWorker", "-w", "1", "api:create_app()"]  # today's server, for comparisons
KEEPALIVE_S = 120  # far longer than any answer here may take: a request left to wait for it times out instead


def test_the_gunicorn_configuration_binds_where_the_settings_say(monkeypatch):
    monkeypatch.setenv("CHAT_API_HOST", "0.0.0.0")
    monkeypatch.setenv("CHAT_API_PORT", "5123")
    monkeypatch.delenv("CHAT_API_WORKERS", raising=False)
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert conf["bind"] == ["0.0.0.0:5123"]
    assert (conf["wsgi_app"], conf["worker_class"], conf["workers"]) == (
        "api.asgi:create_asgi_app()",
        "api.server.ChatWorker",
        os.cpu_count(),
    )
    monkeypatch.setenv("CHAT_API_WORKERS", "3")
    assert runpy.run_path(str(GUNICORN_CONF))["workers"] == 3
    import api
    from api.asgi import create_asgi_app
    from api.server import ChatWorker

    assert api.KeepAliveThreadWorker.__module__ == "api" and callable(create_asgi_app) and ChatWorker
    assert api_argv()[-2:] == ["-c", str(GUNICORN_CONF)]


@pytest.fixture
def gunicorn_api(tmp_path):
    """The API as `make up` runs it, but with 2 threads and a long keep-alive (Kafka unreachable); yields its port."""
    port = free_port()
    env = child_env(
        CHAT_API_HOST="127.0.0.1",
        CHAT_API_PORT=str(port),
        CHAT_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        CHAT_DATA_DIR=str(tmp_path),
        CHAT_WAREHOUSE_DIR=None,
    )
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [*api_argv(), *GTHREAD, "--threads", "2", "--keep-alive", str(KEEPALIVE_S)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(30)


def test_keepalive_worker_answers_more_connections_than_threads(gunicorn_api):
    def connect() -> http.client.HTTPConnection:
        # a request that waited for an idle connection's thread would wait KEEPALIVE_S: it times out first
        return http.client.HTTPConnection("127.0.0.1", gunicorn_api, timeout=KEEPALIVE_S / 4)

    def get(conn) -> int:
        conn.request("GET", "/openapi.yaml")
        response = conn.getresponse()
        response.read()
        return response.status

    first = connect()
    assert [get(first) for _ in range(5)] == [200] * 5  # one connection, one thread, five requests
    # two threads, both holding an idle keep-alive connection: a third connection is still answered,
    # and so are the first two afterwards
    second = connect()
    assert get(second) == 200
    third = connect()
    assert get(third) == 200
    assert (get(first), get(second), get(third)) == (200, 200, 200)
    for conn in (first, second, third):
        conn.close()
    fourth = connect()  # closed ones free their threads
    assert get(fourth) == 200
    fourth.close()
