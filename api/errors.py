"""Every error is JSON `{"error": "<what is wrong>", "code": "<stable code>"}` with the right status, never an
HTML page; `error` is in the request's language (api/i18n.py), `code` is the same in every language."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from api import i18n

log = logging.getLogger(__name__)

# the code of an error raised with a plain text instead of a catalog code (it reads the same in every language)
UNCATALOGUED = "error"


class ApiError(Exception):
    """An error the client can act on: `code` (api/i18n.py ERRORS) and its parameters; the text goes back as
    `error` in the request's language."""

    def __init__(self, status: int, code: str, headers: dict[str, str] | None = None, **params: object):
        self.status = status
        self.code = code
        self.params = params
        self.headers = headers or {}
        super().__init__(self.text(i18n.DEFAULT_LANGUAGE))

    @property
    def message(self) -> str:
        return self.text(i18n.DEFAULT_LANGUAGE)

    def text(self, language: str) -> str:
        if self.code not in i18n.CODES:
            return self.code  # a plain text, not a code
        return i18n.error_text(self.code, language, self.params)

    def body(self, language: str) -> dict[str, str]:
        """The JSON answer in `language`."""
        # a text may quote what the client sent; a lone surrogate in it (a JSON key "\ud800") cannot be
        # encoded as UTF-8, so it goes out as the text \ud800
        text = self.text(language).encode("utf-8", "backslashreplace").decode("utf-8")
        return {"error": text, "code": self.code if self.code in i18n.CODES else UNCATALOGUED}

    def answer_headers(self, language: str) -> dict[str, str]:
        return {**self.headers, **i18n.language_headers(language)}


def request_language() -> str:
    """The language this Flask request asks for."""
    return i18n.negotiate(request.headers.get("Accept-Language"))


def error_response(error: ApiError):
    language = request_language()
    response = jsonify(error.body(language))
    response.status_code = error.status
    response.headers.update(error.answer_headers(language))
    return response


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


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
            raise ApiError(400, "query_not_utf8") from None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # keep what the exception says in headers, such as the Allow of a 405 (RFC 9110 requires it)
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        status = exc.code or 500
        code = HTTP_CODES.get(status, "http_error")
        return error_response(
            ApiError(status, code, headers, limit=app.config["MAX_CONTENT_LENGTH"], http_status=status)
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(ApiError(500, "internal"))
