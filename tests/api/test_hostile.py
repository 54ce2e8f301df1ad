"""Hand-picked hostile requests get a JSON 4xx naming what is wrong, never a 5xx: malformed and deeply
nested JSON, wrong types, huge bodies, invalid UTF-8, control characters, lone surrogates, very long names,
path tricks, wrong methods, wrong Content-Type, bad Authorization, odd numbers in the query.

They go through raw WSGI environs where the test client would normalise the input, and need no broker:
they must be refused before Kafka (test_fuzz.py fuzzes what api/openapi.yaml documents).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from tests.api.conftest import ADMIN, SPEC, assert_json_answer, make_app, sign_in, token_for

USER = "ana"


@dataclass(frozen=True)
class Hostile:
    """A request as it reaches the app. `path` and `query` go into the environ as they are (PATH_INFO is
    the already percent-decoded path, as a WSGI server passes it; bytes stand for raw bytes on the wire)."""

    method: str
    path: str
    query: bytes = b""
    body: bytes | None = None
    content_type: str | None = "application/json"
    auth: str | None = "user"  # "user", "other", "moderator", "admin", None, or a literal Authorization value
    environ: dict = field(default_factory=dict)  # overrides; bytes for wsgi.input are wrapped in a stream


@dataclass(frozen=True)
class TableTarget:
    app: object
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Nothing listens on its Kafka port: an input wrongly let through would come back as a 503 here."""
    app = make_app(tmp_path_factory.mktemp("hostile"))
    client = app.test_client()
    # the holder of CHAT_ADMIN_TOKEN signed in as the moderator `moderator`: a moderator's token
    moderator = client.post("/moderators/sign_in", json={"name": "moderator", "secret": ADMIN}).get_json()["token"]
    yield TableTarget(app, {"user": token_for(client, USER), "other": token_for(client, "bob"), "moderator": moderator})
    app.extensions["chat_producer"].close()


def send(target: TableTarget, request: Hostile) -> tuple[int, dict, bytes]:
    headers = {}
    if request.auth in ("user", "other", "moderator"):
        headers["Authorization"] = f"Bearer {target.tokens[request.auth]}"
    elif request.auth == "admin":
        headers["Authorization"] = f"Bearer {ADMIN}"
    elif request.auth is not None:
        headers["Authorization"] = request.auth
    builder = EnvironBuilder(
        method=request.method,
        path="/",
        headers=headers,
        data=request.body if request.body is not None else b"",
        content_type=request.content_type if request.body is not None else None,
    )
    environ = builder.get_environ()
    builder.close()
    environ["PATH_INFO"] = request.path
    environ["QUERY_STRING"] = request.query.decode("latin-1")  # WSGI: the raw bytes, one char each
    environ.update({k: io.BytesIO(v) if k == "wsgi.input" else v for k, v in request.environ.items()})
    body, status, response_headers = run_wsgi_app(target.app, environ, buffered=True)
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return int(status.split()[0]), dict(response_headers), data


def post_message(body: bytes, **kw) -> Hostile:
    return Hostile("POST", "/messages", body=body, **kw)


def sign_in_as(body: bytes, **kw) -> Hostile:
    return Hostile("POST", "/sessions", body=body, auth=None, **kw)


def moderator_sign_in(body: bytes, **kw) -> Hostile:
    return Hostile("POST", "/moderators/sign_in", body=body, auth=None, **kw)


def read(query: bytes, path: str = "/messages", **kw) -> Hostile:
    return Hostile("GET", path, query=query, **kw)


def deep(depth: int) -> bytes:
    return b'{"data": ' + b"[" * depth + b"]" * depth + b"}"


LONG = "n" * 10_000
NOT_JSON = "body is not valid JSON (UTF-8)"
NOT_OBJECT = 'body must be a JSON object {"data": ..., "author": ...}'
TOO_LARGE = "request body too large (at most 65536 bytes)"
CONTROL_DATA = "data must not contain control characters"
CONTROL_AUTHOR = "author must not contain control characters or line breaks"
SEND_JSON = "send JSON with Content-Type: application/json"
NOT_BEARER = "the Authorization header must be `Bearer <token>`"
NOT_ISSUED = "the token is not one this API issued; sign in again with POST /sessions"
BAD_WAIT = "wait must be between 0 and 30 seconds"
NOT_A_NUMBER = "wait must be a number of seconds"
BAD_LIMIT = "limit must be a whole number from 1 to 500"
BAD_CURSOR = "after must be a cursor returned by GET /messages"
BAD_QUERY = "the query string is not valid UTF-8"
NO_ENDPOINT = "no such endpoint"
NOT_A_MODERATOR = "this needs a moderator's token (POST /moderators/sign_in) or CHAT_ADMIN_TOKEN"

HOSTILE = [
    # malformed, truncated and non-object JSON
    pytest.param(post_message(b'{"data": '), 400, NOT_JSON, id="truncated JSON"),
    pytest.param(post_message(b'{"data": "hola"'), 400, NOT_JSON, id="unclosed object"),
    pytest.param(post_message(b'{"data": "hola",}'), 400, NOT_JSON, id="trailing comma"),
    pytest.param(post_message(b"{'data': 'hola'}"), 400, NOT_JSON, id="single quotes"),
    pytest.param(post_message(b'{"data": "hola"}{"data": "x"}'), 400, NOT_JSON, id="two documents"),
    pytest.param(post_message(b""), 400, NOT_JSON, id="empty body"),
    pytest.param(post_message(b'["hola"]'), 400, NOT_OBJECT, id="JSON list"),
    pytest.param(post_message(b'"hola"'), 400, NOT_OBJECT, id="JSON string"),
    pytest.param(post_message(b"42"), 400, NOT_OBJECT, id="JSON number"),
    pytest.param(post_message(b"null"), 400, NOT_OBJECT, id="JSON null"),
    pytest.param(post_message(b"true"), 400, NOT_OBJECT, id="JSON true"),
    pytest.param(post_message(b"[" * 60_000), 400, "nested too deeply", id="60k open brackets"),
    pytest.param(post_message(deep(5_000)), 400, "nested too deeply", id="data nested 5000 deep"),
    pytest.param(post_message(b'{"data": ' + b"1" * 5_000 + b"}"), 400, NOT_JSON, id="5000-digit number"),
    pytest.param(sign_in_as(b'{"author": '), 400, NOT_JSON, id="sign-in truncated JSON"),
    pytest.param(sign_in_as(b"null"), 400, 'body must be a JSON object {"author": ...}', id="sign-in JSON null"),
    pytest.param(sign_in_as(b"[" * 60_000), 400, "nested too deeply", id="sign-in 60k open brackets"),
    # wrong types for each field
    pytest.param(post_message(b'{"data": 7}'), 400, "data must be a string", id="data number"),
    pytest.param(post_message(b'{"data": true}'), 400, "data must be a string", id="data boolean"),
    pytest.param(post_message(b'{"data": ["hola"]}'), 400, "data must be a string", id="data list"),
    pytest.param(post_message(b'{"data": {"text": "hola"}}'), 400, "data must be a string", id="data object"),
    pytest.param(post_message(b'{"data": NaN}'), 400, "data must be a string", id="data NaN"),
    pytest.param(post_message(b'{"data": null}'), 400, "data is required", id="data null"),
    pytest.param(post_message(b'{"data": "hola", "author": 7}'), 400, "author must be a string", id="author number"),
    pytest.param(
        post_message(b'{"data": "hola", "author": ["ana"]}'), 400, "author must be a string", id="author list"
    ),
    pytest.param(post_message(b'{"data": "hola", "author": {}}'), 400, "author must be a string", id="author object"),
    pytest.param(
        post_message(b'{"data": "hola", "author": false}'), 400, "author must be a string", id="author boolean"
    ),
    pytest.param(sign_in_as(b'{"author": 7}'), 400, "author must be a string", id="sign-in author number"),
    pytest.param(sign_in_as(b'{"author": ["ana"]}'), 400, "author must be a string", id="sign-in author list"),
    pytest.param(sign_in_as(b'{"author": null}'), 400, "author is required", id="sign-in author null"),
    # huge bodies
    pytest.param(post_message(b'{"data": "' + b"x" * (64 * 1024) + b'"}'), 413, TOO_LARGE, id="64 KiB+ body"),
    pytest.param(sign_in_as(b'{"author": "' + b"x" * (64 * 1024) + b'"}'), 413, TOO_LARGE, id="sign-in 64 KiB+ body"),
    pytest.param(
        post_message(b'{"data": "hola"}', environ={"CONTENT_LENGTH": str(10**12)}),
        413,
        TOO_LARGE,
        id="Content-Length of a terabyte",
    ),
    # a chunked upload (no Content-Length; gunicorn sets wsgi.input_terminated): a valid object, then
    # padding past 64 KiB; werkzeug hands over the first 64 KiB, which alone would parse
    pytest.param(
        post_message(
            b"",
            environ={
                "CONTENT_LENGTH": "",
                "wsgi.input_terminated": True,
                "HTTP_TRANSFER_ENCODING": "chunked",
                "wsgi.input": b'{"data": "hola"}' + b" " * (64 * 1024),
            },
        ),
        413,
        TOO_LARGE,
        id="chunked 64 KiB+ body",
    ),
    pytest.param(
        post_message(b'{"data": "' + b"x" * 2001 + b'"}'),
        413,
        "data is too long (2001 characters, at most 2000)",
        id="data of 2001 characters",
    ),
    # a password with a lone surrogate has no UTF-8 form to hash: a 400, not argon2's UnicodeEncodeError (a 500)
    pytest.param(
        sign_in_as(b'{"author": "zed", "password": "long enough \\ud800"}'),
        400,
        "password must not contain control characters",
        id="sign-in password lone surrogate",
    ),
    pytest.param(
        Hostile("POST", "/accounts", body=b'{"author": "zed", "password": "\\udfff long enough"}', auth=None),
        400,
        "password must not contain control characters",
        id="sign-up password lone surrogate",
    ),
    # a moderator's sign-in
    pytest.param(moderator_sign_in(b'{"name": '), 400, NOT_JSON, id="moderator sign-in truncated JSON"),
    pytest.param(
        moderator_sign_in(b"null"),
        400,
        'body must be a JSON object {"name": ..., "secret": ...}',
        id="moderator sign-in JSON null",
    ),
    pytest.param(moderator_sign_in(b"[" * 60_000), 400, "nested too deeply", id="moderator sign-in 60k brackets"),
    pytest.param(
        moderator_sign_in(b'{"name": 7, "secret": "x"}'), 400, "name must be a string", id="moderator name number"
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": ["x"]}'),
        400,
        "secret must be a string",
        id="moderator secret list",
    ),
    pytest.param(moderator_sign_in(b'{"name": "moderator"}'), 400, "secret is required", id="moderator no secret"),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": "x", "role": "admin"}'),
        400,
        "unknown field(s): role",
        id="moderator sign-in extra field",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": "\\ud800"}'),
        400,
        "secret must not contain control characters",
        id="moderator secret lone surrogate",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "\\udfff", "secret": "x"}'),
        400,
        "name must not contain control characters",
        id="moderator name lone surrogate",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": "' + b"x" * 1025 + b'"}'),
        400,
        "secret is too long (1025 characters, at most 1024)",
        id="moderator secret of 1025 characters",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": "' + b"x" * (64 * 1024) + b'"}'),
        413,
        TOO_LARGE,
        id="moderator sign-in 64 KiB+ body",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator\\u0000", "secret": "x"}'),
        403,
        "wrong moderator name or secret",
        id="moderator name with NUL",
    ),
    pytest.param(
        moderator_sign_in(b'{"name": "moderator", "secret": "x"}', content_type="text/plain"),
        400,
        SEND_JSON,
        id="moderator sign-in text/plain",
    ),
    # invalid UTF-8, control characters, lone surrogates
    pytest.param(post_message(b'{"data": "\xff\xfe"}'), 400, NOT_JSON, id="invalid UTF-8 in data"),
    # Python's JSON decoder reads bytes with surrogatepass: the surrogate gets through to the data check
    pytest.param(post_message(b'{"data": "\xed\xa0\x80"}'), 400, CONTROL_DATA, id="UTF-8-encoded surrogate"),
    pytest.param(sign_in_as(b'{"author": "\xc3"}'), 400, NOT_JSON, id="truncated UTF-8 in author"),
    pytest.param(post_message(b'{"data": "a\x00b"}'), 400, NOT_JSON, id="raw NUL byte inside a JSON string"),
    pytest.param(post_message(b'{"data": "a\\u0000b"}'), 400, CONTROL_DATA, id="NUL in data"),
    pytest.param(post_message(b'{"data": "bell \\u0007"}'), 400, CONTROL_DATA, id="BEL in data"),
    pytest.param(post_message(b'{"data": "\\u001b[2J clear screen"}'), 400, CONTROL_DATA, id="ESC in data"),
    pytest.param(post_message(b'{"data": "del \\u007f"}'), 400, CONTROL_DATA, id="DEL in data"),
    pytest.param(post_message(b'{"data": "nel \\u0085"}'), 400, CONTROL_DATA, id="C1 NEL in data"),
    pytest.param(post_message(b'{"data": "line\\r\\nfeed"}'), 400, CONTROL_DATA, id="CR in data"),
    pytest.param(post_message(b'{"data": "\\ud800"}'), 400, CONTROL_DATA, id="lone high surrogate in data"),
    pytest.param(post_message(b'{"data": "x \\udfff"}'), 400, CONTROL_DATA, id="lone low surrogate in data"),
    pytest.param(post_message(b'{"data": "hola", "author": "ana\\u0000"}'), 400, CONTROL_AUTHOR, id="NUL in author"),
    pytest.param(post_message(b'{"data": "hola", "author": "\\ud800"}'), 400, CONTROL_AUTHOR, id="surrogate in author"),
    pytest.param(sign_in_as(b'{"author": "a\\u0000b"}'), 400, CONTROL_AUTHOR, id="sign-in NUL in author"),
    pytest.param(sign_in_as(b'{"author": "\\u001b[31mred"}'), 400, CONTROL_AUTHOR, id="sign-in ESC in author"),
    pytest.param(sign_in_as(b'{"author": "a\\tb"}'), 400, CONTROL_AUTHOR, id="sign-in tab in author"),
    pytest.param(sign_in_as(b'{"author": "a\\u2028b"}'), 400, CONTROL_AUTHOR, id="sign-in line separator in author"),
    pytest.param(sign_in_as(b'{"author": "\\udc80"}'), 400, CONTROL_AUTHOR, id="sign-in surrogate in author"),
    pytest.param(
        post_message(b'{"data": "hola", "\\ud800": 1}'),
        400,
        "unknown field(s): \\ud800",
        id="surrogate in an unknown key",
    ),
    pytest.param(
        sign_in_as(b'{"author": "x", "\\ud800\\u0000": 1}'),
        400,
        "unknown field(s): \\ud800\x00",
        id="sign-in surrogate and NUL in an unknown key",
    ),
    # very long names
    pytest.param(
        post_message(json.dumps({"data": "hola", "author": LONG}).encode()),
        400,
        "author is too long (10000 characters, at most 64)",
        id="10k-character author in a message",
    ),
    pytest.param(
        sign_in_as(json.dumps({"author": LONG}).encode()),
        400,
        "author is too long (10000 characters, at most 64)",
        id="sign-in 10k-character author",
    ),
    pytest.param(
        Hostile("GET", f"/users/{LONG}"),
        400,
        "author is too long (10000 characters, at most 64)",
        id="10k-character name in the path",
    ),
    pytest.param(
        Hostile("GET", f"/users/{LONG}/notices"),
        400,
        "author is too long (10000 characters, at most 64)",
        id="10k-character name in the notices path",
    ),
    pytest.param(
        Hostile("POST", f"/users/{LONG}/unblock", auth="admin"),
        400,
        "author is too long (10000 characters, at most 64)",
        id="10k-character name to unblock",
    ),
    pytest.param(
        read(b"user=" + LONG.encode()),
        400,
        "user is too long (10000 characters, at most 64)",
        id="10k-character user= in the query",
    ),
    pytest.param(read(b"after=" + LONG.encode()), 400, BAD_CURSOR, id="10k-character after="),
    pytest.param(read(b"after=a." + b"9" * 10_000), 400, BAD_CURSOR, id="cursor with a 10k-digit position"),
    pytest.param(
        read(b"after=" + b"9" * 10_000, path=f"/users/{USER}/notices"),
        400,
        "after must be a cursor returned by GET /users/<author>/notices",
        id="10k-character notices after=",
    ),
    # path tricks (PATH_INFO is already percent-decoded by the server)
    # a name is one path segment: more segments match no route
    pytest.param(Hostile("GET", "/users/../../etc/passwd"), 404, NO_ENDPOINT, id="/users/..%2F..%2Fetc%2Fpasswd"),
    pytest.param(
        Hostile("GET", "/users/../notices"),
        403,
        "signed in as 'ana': you can only read your own notices",
        id="/users/%2e%2e/notices",
    ),
    pytest.param(
        Hostile("GET", "/users/bob/notices"),
        403,
        "signed in as 'ana': you can only read your own notices",
        id="/users/bob%2Fnotices is bob's notices",
    ),
    pytest.param(Hostile("GET", "/users/a\x00b"), 400, CONTROL_AUTHOR, id="/users/a%00b"),
    pytest.param(Hostile("GET", "/users/a\x00b/notices"), 400, CONTROL_AUTHOR, id="/users/a%00b/notices"),
    pytest.param(Hostile("GET", "/users/\x1b[31m"), 400, CONTROL_AUTHOR, id="ESC in the path"),
    pytest.param(Hostile("GET", "/users/a\nb"), 400, CONTROL_AUTHOR, id="/users/a%0Ab"),
    pytest.param(Hostile("GET", "/users/a\nb/notices"), 400, CONTROL_AUTHOR, id="/users/a%0Ab/notices"),
    pytest.param(Hostile("GET", "/users/%ff"), 404, "unknown user '%ff'", id="a literal %ff in the name"),
    pytest.param(
        Hostile("GET", "/users/\xff\xfe"), 404, "unknown user '\ufffd\ufffd'", id="invalid UTF-8 bytes in the path"
    ),
    pytest.param(Hostile("GET", "/users//ana"), 404, NO_ENDPOINT, id="double slash inside"),
    # werkzeug routes a leading // as /: the same endpoint, and it still wants a session
    pytest.param(Hostile("GET", "//messages", auth=None), 401, "sign in first", id="double slash in front"),
    pytest.param(Hostile("GET", "/messages//"), 404, NO_ENDPOINT, id="double slash at the end"),
    pytest.param(Hostile("GET", "/messages/"), 404, NO_ENDPOINT, id="/messages/ trailing slash"),
    pytest.param(
        Hostile("POST", "/sessions/", body=b'{"author": "zed"}', auth=None),
        404,
        NO_ENDPOINT,
        id="/sessions/ trailing slash",
    ),
    pytest.param(Hostile("GET", "/health/"), 404, NO_ENDPOINT, id="/health/ trailing slash"),
    pytest.param(Hostile("GET", "/users/"), 404, NO_ENDPOINT, id="/users/ with no name"),
    pytest.param(Hostile("GET", "/users/ana/"), 404, NO_ENDPOINT, id="/users/ana/ trailing slash"),
    # wrong or missing Content-Type
    pytest.param(post_message(b'{"data": "hola"}', content_type="text/plain"), 400, SEND_JSON, id="text/plain"),
    pytest.param(post_message(b'{"data": "hola"}', content_type=None), 400, SEND_JSON, id="no Content-Type"),
    pytest.param(
        post_message(b"data=hola", content_type="application/x-www-form-urlencoded"), 400, SEND_JSON, id="form-encoded"
    ),
    pytest.param(
        post_message(b"--x\r\n\r\nhola\r\n--x--", content_type="multipart/form-data; boundary=x"),
        400,
        SEND_JSON,
        id="multipart",
    ),
    pytest.param(
        post_message(b'{"data": "hola"}', content_type="application/jsonx"), 400, SEND_JSON, id="application/jsonx"
    ),
    pytest.param(sign_in_as(b'{"author": "zed"}', content_type="text/html"), 400, SEND_JSON, id="sign-in text/html"),
    # bad credentials
    pytest.param(
        read(b"", auth=None),
        401,
        "sign in first: POST /sessions, then send Authorization: Bearer <token>",
        id="no Authorization",
    ),
    pytest.param(read(b"", auth="garbage"), 401, NOT_BEARER, id="Authorization garbage"),
    pytest.param(read(b"", auth="Basic YW5hOnB3"), 401, NOT_BEARER, id="Authorization Basic"),
    pytest.param(read(b"", auth="Bearer"), 401, NOT_BEARER, id="Bearer without a token"),
    pytest.param(read(b"", auth="Bearer\tx"), 401, NOT_BEARER, id="Bearer, tab, token"),
    pytest.param(read(b"", auth="x" * 10_240), 401, NOT_BEARER, id="10 KB Authorization"),
    pytest.param(read(b"", auth="Bearer " + "x" * 10_240), 401, NOT_BEARER, id="Bearer 10 KB token"),
    pytest.param(read(b"", auth="Bearer not-a-token"), 401, NOT_ISSUED, id="Bearer garbage"),
    pytest.param(read(b"", auth="Bearer \x00\x01"), 401, NOT_ISSUED, id="Bearer control characters"),
    pytest.param(read(b"", auth="Bearer \xff\xfe"), 401, NOT_ISSUED, id="Bearer latin-1 bytes"),
    pytest.param(read(b"", auth=f"Bearer {ADMIN}"), 401, NOT_ISSUED, id="moderators' token as a session"),
    pytest.param(post_message(b'{"data": "hola"}', auth="Bearer e30.e30"), 401, NOT_ISSUED, id="forged token"),
    pytest.param(read(b"", auth="moderator"), 401, NOT_ISSUED, id="a moderator's token as a session"),
    pytest.param(Hostile("GET", "/moderators/me", auth="user"), 403, NOT_A_MODERATOR, id="moderators/me as a user"),
    pytest.param(
        Hostile("GET", "/moderators/me", auth="Bearer e30.e30"), 403, NOT_A_MODERATOR, id="moderators/me forged token"
    ),
    pytest.param(
        Hostile("GET", "/moderators/me", auth="Bearer " + "x" * 10_240), 401, NOT_BEARER, id="moderators/me 10 KB token"
    ),
    pytest.param(Hostile("GET", "/moderators/me", auth=None), 401, "sign in first", id="moderators/me no token"),
    pytest.param(
        Hostile("GET", "/moderators/blocked", auth="user"), 403, NOT_A_MODERATOR, id="moderators/blocked as a user"
    ),
    pytest.param(
        Hostile("GET", "/moderators/blocked", auth="Bearer e30.e30"),
        403,
        NOT_A_MODERATOR,
        id="moderators/blocked forged token",
    ),
    pytest.param(Hostile("GET", "/moderators/blocked", auth=None), 401, "sign in first", id="blocked no token"),
    pytest.param(
        read(b"limit=" + b"9" * 5_000, path="/moderators/blocked", auth="moderator"),
        400,
        "limit must be a whole number from 1 to 500",
        id="blocked limit of 5000 digits",
    ),
    pytest.param(
        read(b"limit=%D9%A3", path="/moderators/blocked", auth="admin"), 400, BAD_LIMIT, id="blocked limit Arabic digit"
    ),
    pytest.param(read(b"limit=\xff", path="/moderators/blocked", auth="admin"), 400, BAD_QUERY, id="blocked raw bytes"),
    pytest.param(
        Hostile("POST", f"/users/{USER}/unblock", auth="user"),
        403,
        NOT_A_MODERATOR,
        id="unblock as a user",
    ),
    pytest.param(
        Hostile("POST", f"/users/{USER}/unblock", auth="Bearer " + "x" * 10_240),
        401,
        NOT_BEARER,
        id="unblock with a 10 KB token",
    ),
    # odd values in the query
    pytest.param(read(b"wait=1e309"), 400, BAD_WAIT, id="wait=1e309"),
    pytest.param(read(b"wait=nan"), 400, BAD_WAIT, id="wait=nan"),
    pytest.param(read(b"wait=inf"), 400, BAD_WAIT, id="wait=inf"),
    pytest.param(read(b"wait=-inf"), 400, BAD_WAIT, id="wait=-inf"),
    pytest.param(read(b"wait=-1e-9"), 400, BAD_WAIT, id="wait=-1e-9"),
    pytest.param(read(b"wait=30.000001"), 400, BAD_WAIT, id="wait=30.000001"),
    pytest.param(read(b"wait=" + b"9" * 10_000), 400, BAD_WAIT, id="wait of 10k digits"),
    pytest.param(read(b"wait=0x10"), 400, NOT_A_NUMBER, id="wait=0x10"),
    pytest.param(read(b"wait=1_0"), 400, NOT_A_NUMBER, id="wait=1_0"),
    pytest.param(read(b"wait=%201"), 400, NOT_A_NUMBER, id="wait with a space"),
    pytest.param(read(b"wait=%D9%A3"), 400, NOT_A_NUMBER, id="wait Arabic-Indic digit"),
    pytest.param(read(b"wait=%00"), 400, NOT_A_NUMBER, id="wait NUL"),
    pytest.param(read(b"limit=99999999999999999999"), 400, BAD_LIMIT, id="limit=99999999999999999999"),
    pytest.param(read(b"limit=" + b"9" * 5_000), 400, BAD_LIMIT, id="limit of 5000 digits"),
    pytest.param(read(b"limit=0"), 400, BAD_LIMIT, id="limit=0"),
    pytest.param(read(b"limit=-1"), 400, BAD_LIMIT, id="limit=-1"),
    pytest.param(read(b"limit=1.5"), 400, BAD_LIMIT, id="limit=1.5"),
    pytest.param(read(b"limit=+5"), 400, BAD_LIMIT, id="limit=+5"),
    pytest.param(read(b"limit=%C2%B2"), 400, BAD_LIMIT, id="limit superscript two"),
    pytest.param(read(b"limit=%D9%A3"), 400, BAD_LIMIT, id="limit Arabic-Indic digit"),
    pytest.param(read(b"user=a%00b"), 400, "user must not contain control characters or line breaks", id="user NUL"),
    pytest.param(read(b"user=%1B%5B2J"), 400, "user must not contain control characters or line breaks", id="user ESC"),
    pytest.param(read(b"user=%20"), 400, "user must not be empty", id="user blank"),
    pytest.param(read(b"after=%00"), 400, BAD_CURSOR, id="after NUL"),
    pytest.param(read(b"after=.%00"), 400, BAD_CURSOR, id="after dot NUL"),
    pytest.param(read(b"user=\xff"), 400, BAD_QUERY, id="raw invalid UTF-8 in user="),
    pytest.param(read(b"wait=\xff"), 400, BAD_QUERY, id="raw invalid UTF-8 in wait="),
    pytest.param(read(b"user=\xed\xa0\x80"), 400, BAD_QUERY, id="raw UTF-8-encoded surrogate in user="),
    pytest.param(read(b"\xff=1"), 400, BAD_QUERY, id="raw invalid UTF-8 in a parameter name"),
    pytest.param(read(b"wait=1e309", path=f"/users/{USER}/notices"), 400, BAD_WAIT, id="notices wait=1e309"),
    pytest.param(read(b"wait=nan", path=f"/users/{USER}/notices"), 400, BAD_WAIT, id="notices wait=nan"),
    pytest.param(read(b"after=\xff", path=f"/users/{USER}/notices"), 400, BAD_QUERY, id="notices raw invalid UTF-8"),
    pytest.param(read(b"x=\xff", path=f"/users/{USER}"), 400, BAD_QUERY, id="user page raw invalid UTF-8"),
]


@pytest.mark.parametrize("request_, status, error", HOSTILE)
def test_hostile_requests_get_a_json_4xx(table, request_, status, error):
    got, headers, body = send(table, request_)
    assert_json_answer(got, headers.get("Content-Type"), body, request_.path)
    assert got == status, body[:300]
    assert error in json.loads(body)["error"]
    if got == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")


def documented_routes() -> list[tuple[str, frozenset[str]]]:
    """Each path of the document (with `ana` for {author}) and the methods it documents."""
    return [(path.replace("{author}", USER), frozenset(m.upper() for m in ops)) for path, ops in SPEC["paths"].items()]


WRONG_METHODS = [
    pytest.param(path, method, id=f"{method} {path}")
    for path, allowed in documented_routes()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "BREW")
    if method not in allowed
]


@pytest.mark.parametrize("path, method", WRONG_METHODS)
def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(table, path, method):
    got, headers, body = send(table, Hostile(method, path, body=b'{"data": "hola"}'))
    assert_json_answer(got, headers.get("Content-Type"), body, f"{method} {path}")
    expected = set(dict(documented_routes())[path])
    assert (got, json.loads(body)) == (405, {"error": "method not allowed here", "code": "method_not_allowed"})
    assert {m.strip() for m in headers["Allow"].split(",")} - {"HEAD", "OPTIONS"} == expected


@pytest.mark.parametrize(
    "query",
    [
        b"wait=-0",
        b"wait=0.0",
        b"wait=1e-5",
        b"wait=30",
        b"limit=500",
        b"limit=007",
        b"user=ana",
        "cursor of another process",
    ],
)
def test_edge_values_the_document_allows_are_accepted(table, query, tmp_path):
    """The other side of the table: -0 is 0, exponents and leading zeros are numbers, and a cursor another
    API process issued (same secret) reads from where it says, or from the oldest message kept."""
    if query == "cursor of another process":
        other = make_app(tmp_path, SECRET_KEY=table.app.config["SECRET_KEY"])
        other.extensions["chat_feed"].add_record(b"{}", [], offset=10**6)  # far ahead of this process
        with other.test_client() as client:
            cursor = client.get("/messages", headers=sign_in(client, "zed")).get_json()["cursor"]
        query = b"after=" + cursor.encode()
    got, headers, body = send(table, read(query))
    assert got == 200, body
    assert set(json.loads(body)) == {"messages", "cursor"}


def test_a_feed_readers_password_with_a_lone_surrogate_is_a_wrong_one(tmp_path):
    """The reader's password is compared as UTF-8 bytes with CHAT_READER_TOKEN: a lone surrogate has no such form."""
    with make_app(tmp_path, READER_TOKEN="the UI's reader token", GUEST_NAMES=False).test_client() as client:
        answer = client.post(
            "/sessions", data=b'{"author": "ui-reader-1", "password": "\\ud800"}', content_type="application/json"
        )
        assert (answer.status_code, answer.get_json()["code"]) == (401, "bad_credentials")
        right = client.post("/sessions", json={"author": "ui-reader-1", "password": "the UI's reader token"})
        assert right.status_code == 201
