"""What every answer carries and every request must name: only configured Host values are served (a page
on another site that rebinds its DNS name to this machine gets a 400), and no answer may be sniffed into
another content type or framed by another page."""

from __future__ import annotations

from flask import Flask, request

from api.errors import ApiError
from config.hosts import SECURITY_HEADERS, host_allowed


def check_host(host: str | None, allowed: tuple[str, ...]) -> None:
    """400 unless `host` names one of `allowed` (`*` allows any)."""
    if host_allowed(host, allowed):
        return
    if not host:
        raise ApiError(400, "host_required")
    raise ApiError(400, "host_not_allowed", host=host[:100])


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
