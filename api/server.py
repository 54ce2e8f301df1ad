"""The API's HTTP server: uvicorn workers under gunicorn (conf/gunicorn.conf.py names `ChatWorker`).

uvicorn has no timeout for reading a request: a client that sends a request line and nothing more holds
its connection for ever (the keep-alive timer stops at the first byte). `GuardedHttpToolsProtocol` gives
each request `request_timeout_s` to arrive whole, headers and body, and answers 408 (or closes) past it;
past `limit_concurrency` connections it answers a JSON 503 instead of uvicorn's plain-text one.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from api import i18n
from api.asgi import json_bytes, request_language
from api.errors import ApiError
from config import settings
from config.hosts import SECURITY_HEADERS


def _json_answer(status: int, reason: str, error: ApiError) -> bytes:
    # no request has been read: its language is unknown, the answer is in the default one
    language = i18n.DEFAULT_LANGUAGE
    body = json_bytes(error.body(language))
    extra = "".join(f"{name}: {value}\r\n" for name, value in SECURITY_HEADERS)
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"content-language: {language}\r\n"
        f"{extra}connection: close\r\n\r\n"
    ).encode() + body


async def service_unavailable(scope, receive, send) -> None:
    language = request_language(scope)
    body = json_bytes(ApiError(503, "connection_limit").body(language))
    headers = [
        *((name.lower().encode(), value.encode()) for name, value in i18n.language_headers(language).items()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"retry-after", b"1"),
        *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a read timeout per request and a JSON 503 past the connection cap."""

    request_timeout_s = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the cap is checked here (on_headers_complete) so that the answer past it is JSON
        self.connection_cap, self.limit_concurrency = self.limit_concurrency, None
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_headers = True

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._arm()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        cap = self.connection_cap
        if cap is not None and (len(self.connections) > cap or len(self.tasks) >= cap):
            app, self.app = self.app, service_unavailable
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.request_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._reading_headers:  # no request yet for the app: say why the connection ends
            error = ApiError(408, "request_timeout", seconds=self.request_timeout_s)
            self.transport.write(_json_answer(408, "Request Timeout", error))
        self.transport.close()  # a body that stalls: the app sees the client go


class ChatWorker(UvicornWorker):
    """gunicorn's uvicorn worker with uvloop, httptools behind `GuardedHttpToolsProtocol`, the lifespan
    (which stops the Kafka tail), proxy headers from the balancer, and the connection cap from the settings."""

    def __init__(self, *args, **kwargs):
        s = settings.load()
        protocol = type("ChatHttpProtocol", (GuardedHttpToolsProtocol,), {"request_timeout_s": s.api_request_timeout_s})
        self.CONFIG_KWARGS = {
            "loop": "uvloop",
            "http": protocol,
            "lifespan": "on",
            "proxy_headers": True,
            "access_log": False,
            "limit_concurrency": s.api_max_connections,
        }
        super().__init__(*args, **kwargs)
