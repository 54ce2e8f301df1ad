"""ui/guard.py around the real app (ui.app.app under an in-process uvicorn): a page on another site cannot open
the websocket or post to the UI, a rebound DNS name gets a 400, and every answer forbids sniffing and framing."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import uvicorn
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import ui.app
from config.hosts import host_allowed, origin_allowed
from stack.broker import free_port

ALLOWED_ORIGIN = ui.app.SETTINGS.ui_allowed_origins[0]  # the UI's own page, as configured
FOREIGN = "http://evil.example"


@pytest.fixture(scope="module")
def ui_url() -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(ui.app.app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, name="test-ui", daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join()


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/websocket/"


def test_the_settings_default_to_the_uis_own_names_and_page():
    s = ui.app.SETTINGS
    assert {"127.0.0.1", "localhost", "::1"} <= set(s.ui_allowed_hosts)
    assert f"http://127.0.0.1:{s.ui_port}" in s.ui_allowed_origins
    assert "*" not in s.ui_allowed_hosts + s.ui_allowed_origins


def test_a_websocket_from_a_foreign_origin_is_refused(ui_url):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(ui_url), origin=FOREIGN, open_timeout=10)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as sandboxed:  # a sandboxed frame or a local file sends "null"
        connect(ws_url(ui_url), origin="null", open_timeout=10)
    assert sandboxed.value.response.status_code == 403


def test_a_websocket_from_the_configured_origin_is_accepted(ui_url):
    # the handshake is answered and the socket lives (no "init" is sent: a session would start the feed's
    # poller in this process, which other tests count)
    with connect(ws_url(ui_url), origin=ALLOWED_ORIGIN, open_timeout=10) as ws:
        assert ws.response.status_code == 101
        assert ws.ping().wait(10)


def test_a_rebinding_host_is_refused(ui_url):
    response = requests.get(ui_url + "/", headers={"Host": "evil.example:8000"}, timeout=10)
    assert response.status_code == 400
    assert "evil.example" in response.text and "CHAT_UI_ALLOWED_HOSTS" in response.text
    # the websocket too: the browser resolved evil.example to this machine and names it in Host
    port = int(ui_url.rpartition(":")[2])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://evil.example:{port}/websocket/", sock=sock, origin=f"http://evil.example:{port}")
    assert refused.value.response.status_code == 403
    sock.close()


def test_a_foreign_page_cannot_post_to_the_ui(ui_url):
    response = requests.post(ui_url + "/session/x/upload/y", headers={"Origin": FOREIGN}, timeout=10)
    assert response.status_code == 403 and "CHAT_UI_ALLOWED_ORIGINS" in response.text


def test_every_answer_forbids_sniffing_and_framing(ui_url):
    page = requests.get(ui_url + "/", timeout=10)
    assert page.status_code == 200 and 'id="join_area"' in page.text
    script = next(part.split('"')[0] for part in page.text.split('src="')[1:] if part.split('"')[0].endswith(".js"))
    asset = requests.get(f"{ui_url}/{script.lstrip('/')}", timeout=10)
    refused = requests.get(ui_url + "/", headers={"Host": "evil.example"}, timeout=10)
    assert asset.status_code == 200 and refused.status_code == 400
    for response in (page, asset, refused):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        (None, True),  # not a browser's cross-site request
        ("http://127.0.0.1:8000", True),
        ("HTTP://LocalHost:8000/", True),
        ("http://[::1]:8000", True),
        ("http://127.0.0.1:8001", False),
        ("https://127.0.0.1:8000", False),
        ("http://127.0.0.1:8000.evil.example", False),
        ("http://evil.example", False),
        ("null", False),
        ("", False),
    ],
)
def test_origins_match_scheme_name_and_port(value, allowed):
    origins = ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000")
    assert origin_allowed(value, origins) is allowed
    assert origin_allowed(value, ("*",)) is True


def test_hosts_match_the_name_whatever_the_port():
    allowed = ("127.0.0.1", "localhost", "::1")
    assert host_allowed("127.0.0.1:8000", allowed) and host_allowed("[::1]:8000", allowed)
    assert host_allowed("LOCALHOST", allowed)
    assert not host_allowed("evil.example:8000", allowed) and not host_allowed("127.0.0.1.evil.example", allowed)
    assert not host_allowed(None, allowed) and not host_allowed("", allowed)
    assert host_allowed("anything", ("*",))
