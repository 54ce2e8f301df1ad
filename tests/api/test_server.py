"""api/server.py under gunicorn as `make up` runs it (conf/gunicorn.conf.py), no broker: slow and idle clients
cannot hold the server (a read timeout on every request, 408), and past the connection cap a JSON 503."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from stack.broker import free_port, port_open
from stack.processes import child_env
from stack.up import api_argv

REQUEST_TIMEOUT_S = 2
CAP = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One uvicorn worker with a 2 s request timeout and room for 3 connections; yields its port."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = free_port()
    env = child_env(
        CHAT_API_HOST="127.0.0.1",
        CHAT_API_PORT=str(port),
        CHAT_API_WORKERS="1",
        CHAT_API_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
        CHAT_API_MAX_CONNECTIONS=str(CAP),
        CHAT_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        CHAT_DATA_DIR=str(tmp_path),
        CHAT_WAREHOUSE_DIR=None,
    )
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(api_argv(), env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def answer_head(raw: bytes) -> tuple[int, dict]:
    """The status and the (lower-cased) header fields of an answer."""
    lines = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return int(lines[0].split()[1]), dict(line.lower().split(": ", 1) for line in lines[1:])


def answer(raw: bytes) -> tuple[int, dict, dict]:
    status, headers = answer_head(raw)
    return status, headers, json.loads(raw.partition(b"\r\n\r\n")[2])


@pytest.mark.timeout(60)
def test_a_request_that_stops_half_way_is_answered_408_and_closed(server):
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        status, headers, body = answer(read_all(sock))
    assert (status, body) == (408, {"error": f"the request did not arrive within {REQUEST_TIMEOUT_S}s"})
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"


@pytest.mark.timeout(60)
def test_a_connection_that_sends_nothing_is_closed(server):
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        status, _, body = answer(read_all(sock))
    assert status == 408 and "did not arrive" in body["error"]


@pytest.mark.timeout(60)
def test_a_client_that_pauses_between_requests_keeps_its_connection(server):
    """A server that closes idle connections after a few seconds races a client's next request on them: sent
    as the server closes, it is lost to a reset (the load test met one with a 5 s keep-alive)."""
    request = b"GET /openapi.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
        for pause in (0, 7):
            time.sleep(pause)
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(65536)
                assert chunk, f"the server closed the connection after a {pause} s pause"
                head += chunk
            status, headers = answer_head(head)
            assert status == 200, head[:100]
            length = int(headers["content-length"])
            body = head.partition(b"\r\n\r\n")[2]
            while len(body) < length:
                body += sock.recv(65536)


@pytest.mark.timeout(60)
def test_past_the_connection_cap_a_json_503_and_the_server_recovers(server):
    idle = [socket.create_connection(("127.0.0.1", server), timeout=30) for _ in range(CAP)]
    try:
        with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
            sock.sendall(b"GET /openapi.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = answer(read_all(sock))
        assert status == 503 and "connection limit" in body["error"]
        assert headers["content-type"] == "application/json" and headers["retry-after"] == "1"
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 30
    while True:  # the idle ones are gone: served again
        with socket.create_connection(("127.0.0.1", server), timeout=30) as sock:
            sock.sendall(b"GET /openapi.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            if read_all(sock).startswith(b"HTTP/1.1 200"):
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)
