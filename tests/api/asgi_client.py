"""A minimal ASGI client for the tests: one request straight into the app's coroutine, on the caller's event
loop, with the raw scope a server would build (so hostile bytes reach the app as they would), and a
`receive` that reports the client gone when told to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Answer:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class Request:
    method: str
    path: str  # as the server decoded it
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    client: tuple[str, int] = ("127.0.0.1", 40000)
    host: bytes | None = b"localhost"
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set: the client closes its connection

    def scope(self) -> dict:
        headers = ([(b"host", self.host)] if self.host is not None else []) + [(k.lower(), v) for k, v in self.headers]
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode("utf-8", "surrogateescape"),
            "root_path": "",
            "query_string": self.query,
            "headers": headers,
            "client": self.client,
            "server": ("127.0.0.1", 5000),
        }


async def call(app, request: Request) -> Answer:
    """Send `request` to `app`; the answer (status None when the app answered nothing: the client left)."""
    answer = Answer()
    body_sent = False

    async def receive():
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await request.gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    try:
        await app(request.scope(), receive, send)
    finally:
        request.gone.set()
    return answer


def run(app, request: Request) -> Answer:
    return asyncio.run(call(app, request))
