"""What every answer carries and every request must name: only configured Host values are served (a page
on another site that rebinds its DNS name to this machine gets a 400), and no answer may be sniffed into
another content type or framed by another page."""

from __future__ import annotations

from flask import Flask, request

from api.errors import ApiError

SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
)


def host_name(host: str) -> str:
    """The name of a Host header value, without its port: `127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else host


def check_host(host: str | None, allowed: tuple[str, ...]) -> None:
    """400 unless `host` names one of `allowed` (`*` allows any)."""
    if "*" in allowed:
        return
    if not host:
        raise ApiError(400, "send a Host header naming this API")
    if host_name(host) not in allowed:
        raise ApiError(400, f"the Host {host[:100]!r} is not one this API serves (CHAT_API_ALLOWED_HOSTS)")


def init_app(app: Flask) -> None:
    allowed = tuple(app.config["ALLOWED_HOSTS"])

    @app.before_request
    def _host_is_ours():
        check_host(request.headers.get("Host"), allowed)

    @app.after_request
    def _security_headers(response):
        for name, value in SECURITY_HEADERS:
            response.headers.setdefault(name, value)
        return response
