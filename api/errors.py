"""Every error is JSON `{"error": "<what is wrong>"}` with the right status, never an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on: its message goes back as `error`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    # a message may quote what the client sent; a lone surrogate in it (a JSON key "\ud800") cannot be
    # encoded as UTF-8, so it goes out as the text \ud800
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def init_app(app: Flask) -> None:
    # werkzeug would answer /users//ana with a 308 redirect to /users/ana, an HTML page: no such endpoint
    app.url_map.merge_slashes = False

    @app.before_request
    def _query_string_is_utf8():
        # werkzeug decodes the query string strictly the first time a view reads request.args: raw bytes
        # that are not UTF-8 would be a UnicodeDecodeError (500) there
        try:
            request.query_string.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "the query string is not valid UTF-8 (percent-encode it)") from None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {
            404: "no such endpoint",
            405: "method not allowed here",
            413: f"request body too large (at most {app.config['MAX_CONTENT_LENGTH']} bytes)",
        }
        # keep what the exception says in headers, such as the Allow of a 405 (RFC 9110 requires it)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, messages.get(exc.code, exc.description or exc.name), headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(500, "internal error; it has been logged")
