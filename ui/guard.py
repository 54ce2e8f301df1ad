"""The UI's front door (ASGI middleware around the Shiny app): only configured Host names are served (a page
that rebinds its DNS name to this machine gets a 400), only configured origins may open the websocket or send
a request from a script (any other page gets a 403), and every answer says it must not be sniffed or framed.
The matching rule is the API's (config/hosts.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from config.hosts import SECURITY_HEADERS, host_allowed, origin_allowed

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXTRA_HEADERS = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class Guard:
    """`app` behind the Host and Origin checks; `allowed_hosts` are names without ports, `allowed_origins`
    `scheme://host[:port]` (either may hold `*`)."""

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...], allowed_origins: tuple[str, ...]):
        self.app = app
        self.allowed_hosts = tuple(allowed_hosts)
        self.allowed_origins = tuple(allowed_origins)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        host = _header(scope, b"host")
        if not host_allowed(host, self.allowed_hosts):
            return 400, f"the Host {(host or '')[:100]!r} is not one this UI serves (CHAT_UI_ALLOWED_HOSTS)\n"
        origin = _header(scope, b"origin")
        if not origin_allowed(origin, self.allowed_origins):
            return 403, f"pages from {origin[:100]!r} may not use this UI (CHAT_UI_ALLOWED_ORIGINS)\n"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            status, text = refused
            if scope["type"] == "http":
                await _respond(send, status, text)
            else:  # closed before it is accepted: the server answers the handshake with a 403
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {key.lower() for key, _ in message.get("headers", ())}
                extra = [(k, v) for k, v in EXTRA_HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _respond(send: Send, status: int, text: str) -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *EXTRA_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
