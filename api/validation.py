"""Checks on what clients send, with messages a person can act on."""

from __future__ import annotations

import json
import re
import unicodedata

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from api.errors import ApiError
from config import contract

# the characters of Unicode categories Cc (controls) and Cs (surrogates), as one compiled class: a
# character-by-character unicodedata loop cost more than the rest of a POST's checks together
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_BUT_NEWLINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _has_control_chars(text: str, allow_newlines: bool) -> bool:
    return (_CONTROL_BUT_NEWLINES if allow_newlines else _CONTROL).search(text) is not None


# right-to-left overrides, embeddings and isolates: they make a name display as another one
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_author(value, max_chars: int, field: str = "author") -> str:
    if value is None:
        raise ApiError(400, "field_required", field=field)
    if not isinstance(value, str):
        raise ApiError(400, "field_not_string", field=field)
    author = unicodedata.normalize("NFC", value.strip())
    if not author:
        raise ApiError(400, "field_empty", field=field)
    if len(author) > max_chars:
        raise ApiError(400, "field_too_long", field=field, length=len(author), maximum=max_chars)
    if (rule := contract.author_problem_rule(author)) is not None:
        raise ApiError(400, f"author_{rule}", field=field)
    return author


_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether `text` holds a lone surrogate (JSON's `\\ud800` escapes decode to one): it has no UTF-8 form, so
    it can be neither hashed nor compared as bytes."""
    return _SURROGATE.search(text) is not None


def clean_field(value, field: str, max_chars: int) -> str:
    """A required, non-empty string of at most `max_chars` characters with a UTF-8 form (400 otherwise)."""
    if value is None:
        raise ApiError(400, "field_required", field=field)
    if not isinstance(value, str):
        raise ApiError(400, "field_not_string", field=field)
    if not value:
        raise ApiError(400, "field_empty", field=field)
    if len(value) > max_chars:
        raise ApiError(400, "field_too_long", field=field, length=len(value), maximum=max_chars)
    if has_surrogates(value):
        raise ApiError(400, "data_control", field=field)
    return value


def clean_text(value, max_chars: int) -> str:
    if value is None:
        raise ApiError(400, "field_required", field="data")
    if not isinstance(value, str):
        raise ApiError(400, "field_not_string", field="data")
    if not value.strip():
        raise ApiError(400, "field_empty", field="data")
    if len(value) > max_chars:
        raise ApiError(413, "field_too_long", field="data", length=len(value), maximum=max_chars)
    if _has_control_chars(value, allow_newlines=True):
        raise ApiError(400, "data_control", field="data")
    return value


def json_object(request, *fields: str) -> dict:
    """The request's JSON body: an object with no keys other than `fields` (400 otherwise)."""
    if not request.is_json:
        raise ApiError(400, "json_required")
    if (
        request.content_length is None
        and request.max_content_length is not None
        and len(request.get_data()) >= request.max_content_length
    ):
        # a streamed (chunked) body is cut at the limit by werkzeug, not refused: what was cut off
        # must not be mistaken for the whole body
        raise RequestEntityTooLarge()
    try:
        body = request.get_json()
    except BadRequest:
        raise ApiError(400, "json_invalid") from None
    except RecursionError:  # the parser recurses once per [ or {
        raise ApiError(400, "json_too_deep") from None
    return _object_with(body, fields)


def require_json(content_type: str | None) -> None:
    """400 unless the Content-Type is JSON (as werkzeug's `request.is_json`)."""
    mimetype = (content_type or "").split(";")[0].strip().lower()
    if not (mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))):
        raise ApiError(400, "json_required")


def parse_json_body(content_type: str | None, data: bytes, fields: tuple[str, ...]) -> dict:
    """`json_object` for a body read by hand (the native ASGI handlers): the same checks, the same errors."""
    require_json(content_type)
    try:
        body = json.loads(data)
    except ValueError:
        raise ApiError(400, "json_invalid") from None
    except RecursionError:
        raise ApiError(400, "json_too_deep") from None
    return _object_with(body, fields)


def parse_message_body(body: dict, max_author: int, max_text: int) -> tuple[str | None, str]:
    """(author or None when the body leaves it to the session, text)."""
    author = None if body.get("author") is None else clean_author(body["author"], max_author)
    return author, clean_text(body.get("data"), max_text)


def parse_wait(raw: str | None, max_wait: float) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        # float() also takes "1_0", " 1" and non-ASCII digits ("٣"): not numbers as a query writes them
        if not raw.isascii() or "_" in raw or raw != raw.strip():
            raise ValueError(raw)
        wait = float(raw)
    except ValueError:
        raise ApiError(400, "wait_not_number") from None
    if not 0 <= wait <= max_wait or wait != wait:
        raise ApiError(400, "wait_out_of_range", maximum=max_wait)
    return wait


def parse_limit(raw: str | None, default: int = 100, maximum: int = 500) -> int:
    if raw is None or raw == "":
        return default
    # isdigit() alone also takes "²" (int() fails) and "٣"; int() refuses more than 4,300 digits
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= maximum:
        raise ApiError(400, "limit_out_of_range", maximum=maximum)
    return int(raw)


def _object_with(body, fields: tuple[str, ...]) -> dict:
    """`body` when it is a JSON object with no field but `fields`, else a 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "body_not_object", fields=", ".join(f'"{f}": ...' for f in fields))
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, "unknown_fields", fields=", ".join(unknown))
    return body
