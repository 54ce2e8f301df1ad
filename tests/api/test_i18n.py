"""api/i18n.py: the API's errors and notices in Spanish and English by Accept-Language, through both doors
(the Flask app and the ASGI app around it), and the catalog's two languages kept in step."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable

import jsonschema
import pytest

from api import i18n
from api.asgi import ChatAsgi
from api.errors import UNCATALOGUED
from config import contract
from tests.api.asgi_client import Request, run
from tests.api.conftest import ADMIN, SPEC, make_app, token_for
from tests.api.test_asgi import asgi_request
from tests.api.test_hostile import Hostile, TableTarget, send
from tests.api.test_notices import notice
from tests.ui.live_api import json_schema as resolve

SPANISH = "es-MX,es;q=0.9,en;q=0.5"
ENGLISH = "en-GB,es;q=0.8"
NOW = "2026-12-01 10:00:00"


def template_pattern(template: str) -> re.Pattern:
    """A pattern that matches exactly the texts `template` gives, whatever its parameters."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append("(.+?)")
    return re.compile("".join(parts), re.DOTALL)


def assert_worded(code: str, language: str, text: str) -> None:
    assert template_pattern(i18n.ERRORS[language][code]).fullmatch(text), (code, language, text)


# -- the catalog ------------------------------------------------------------------------------------------


def test_both_languages_have_the_same_codes_and_parameters():
    assert set(i18n.ERRORS) == set(i18n.LANGUAGES) == {"en", "es"}
    english, spanish = i18n.ERRORS["en"], i18n.ERRORS["es"]
    assert set(english) == set(spanish)
    for code in english:
        assert i18n.parameters(english[code]) == i18n.parameters(spanish[code]), code
        assert english[code] != spanish[code], f"{code} is not translated"


def test_the_english_texts_are_the_contracts():
    """The texts the relay and the ledger share with the API read the same in the API's English."""
    for rule, text in contract.AUTHOR_PROBLEMS.items():
        assert i18n.error_text(f"author_{rule}", "en", {"field": "user"}) == text.format(field="user")
    since = i18n.error_text("blocked_since", "en", {"author": "ana", "strikes": 3, "since": NOW})
    assert since == contract.blocked_error("ana", 3, NOW)
    assert i18n.error_text("blocked", "en", {"author": "ana", "strikes": 3}) == contract.blocked_error("ana", 3, None)


def test_a_language_the_api_does_not_speak_gets_english():
    params = {"author": "ana"}
    assert i18n.error_text("unknown_user", "fr", params) == i18n.error_text("unknown_user", "en", params)
    assert contract.notice_text("warning", 1, 3, ["x"], "fr") == contract.notice_text("warning", 1, 3, ["x"])


# -- Accept-Language --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, language",
    [
        (None, "en"),
        ("", "en"),
        ("es", "es"),
        ("es-MX", "es"),
        ("ES-es", "es"),
        ("en", "en"),
        ("fr", "en"),
        ("*", "en"),
        ("fr, es;q=0.1", "es"),  # the only language spoken here that the client takes
        ("es;q=0.5, en;q=0.8", "en"),  # ranked by q, not by order
        ("en;q=0.5, es-AR;q=0.9", "es"),
        ("en-US,es;q=0.9", "en"),
        ("es;q=0.5, en;q=0.5", "es"),  # a tie goes to the first listed
        ("en;q=0.5, es;q=0.5", "en"),
        ("es;q=0", "en"),  # q=0: not acceptable
        ("es;q=0, en;q=0", "en"),
        ("es;q=0.5, *", "en"),  # `*` (anything else) ranked above Spanish
        ("es;q=abc", "en"),  # malformed q-values drop their entry
        ("es;q=1.5", "en"),
        ("es;q=-1", "en"),
        ("es;q=0.8x, en;q=0.1", "en"),
        ("es;q=abc, en;q=0.1", "en"),
        (";;;,,,", "en"),
        ("\x00\xff garbage", "en"),
        ("es" + ",x" * 10_000, "es"),
    ],
)
def test_the_language_of_an_accept_language_header(header, language):
    assert i18n.negotiate(header) == language


# -- every error, in both languages, through both doors ------------------------------------------------


@pytest.fixture(scope="module")
def doors(tmp_path_factory):
    """One app, reached through Flask's WSGI door and through the ASGI app around it, with the sessions the
    cases need: ana and bob, carol (signed out), dan (blocked by the ledger's notice), eve (over the rate limit)
    and fay (within the slow mode's interval)."""
    app = make_app(tmp_path_factory.mktemp("i18n"))
    client = app.test_client()
    tokens = {name: token_for(client, name) for name in ("ana", "bob", "carol", "dan", "eve", "fay")}
    assert client.delete("/sessions", headers={"Authorization": f"Bearer {tokens['carol']}"}).status_code == 204
    blocked = {
        "id": "m3:strike",
        "author": "dan",
        "kind": "blocked",
        "strike": 3,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": "m3",
        "text": contract.notice_text("blocked", 3, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": NOW,
    }
    app.extensions["chat_moderation"].notices.add_record(json.dumps(blocked).encode(), [])
    # eve has sent a window's worth of messages through other processes, fay one a second ago; slow mode is 3 s
    flood = app.extensions["chat_flood"]
    flood.window.clock = lambda: 1000.0
    for i in range(flood.window.limit):
        flood.window.seen("eve", f"eve-{i}", 1000.0, 60)
    flood.window.seen("fay", "fay-0", 999.0, 60)
    flood.slow_mode.apply({"id": "a1", "action": "slow_mode", "seconds": 3, "timestamp": NOW})
    yield TableTarget(app, {"user": tokens["ana"], "other": tokens["bob"]}), ChatAsgi(app), tokens
    app.extensions["chat_producer"].close()


Case = Callable[[dict[str, str]], Hostile]


def as_(token_name: str, make: Callable[..., Hostile], *args, **kw) -> Case:
    return lambda tokens: make(*args, auth=f"Bearer {tokens[token_name]}", **kw)


def post(path: str, body, **kw) -> Hostile:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Hostile("POST", path, body=data, **kw)


def get(path: str, query: bytes = b"", **kw) -> Hostile:
    return Hostile("GET", path, query=query, **kw)


CASES: dict[str, Case] = {
    "not_found": lambda t: get("/nope"),
    "method_not_allowed": lambda t: Hostile("PUT", "/messages", body=b"{}"),
    "body_too_large": lambda t: post("/messages", b'{"data": "' + b"x" * 70_000 + b'"}'),
    "query_not_utf8": lambda t: get("/messages", b"user=\xff"),
    "json_required": lambda t: post("/messages", {"data": "hola"}, content_type="text/plain"),
    "json_invalid": lambda t: post("/messages", b'{"data": '),
    "json_too_deep": lambda t: post("/messages", b"[" * 60_000),
    "body_not_object": lambda t: post("/messages", b"[]"),
    "unknown_fields": lambda t: post("/messages", {"data": "hola", "room": 1}),
    "field_required": lambda t: post("/sessions", {}, auth=None),
    "field_not_string": lambda t: post("/sessions", {"author": 7}, auth=None),
    "field_empty": lambda t: post("/sessions", {"author": "  "}, auth=None),
    "field_too_long": lambda t: post("/sessions", {"author": "a" * 65}, auth=None),
    "author_control": lambda t: post("/sessions", {"author": "a\nb"}, auth=None),
    "author_forbidden": lambda t: post("/sessions", {"author": "a/b"}, auth=None),
    "author_invisible": lambda t: post("/sessions", {"author": "\u200b"}, auth=None),
    "data_control": lambda t: post("/messages", {"data": "bell\x07"}),
    "wait_not_number": lambda t: get("/messages", b"wait=x"),
    "wait_out_of_range": lambda t: get("/messages", b"wait=99"),
    "limit_out_of_range": lambda t: get("/messages", b"limit=0"),
    "bad_cursor": lambda t: get("/users/ana/notices", b"after=nonsense"),
    "tokens_invalid": lambda t: post("/notices/poll", {"tokens": []}, auth=None),
    "tokens_too_many": lambda t: post("/notices/poll", {"tokens": ["x"] * 1001}, auth=None),
    "poll_after_invalid": lambda t: post("/notices/poll", {"tokens": ["x"], "after": 1}, auth=None),
    "poll_wait_invalid": lambda t: post("/notices/poll", {"tokens": ["x"], "wait": -1}, auth=None),
    "sign_in_first": lambda t: get("/messages", auth=None),
    "bad_authorization": lambda t: get("/messages", auth="Basic YW5hOnB3"),
    "token_unknown": lambda t: get("/messages", auth="Bearer not-a-token"),
    "session_ended": as_("carol", get, "/messages"),
    "name_in_use": lambda t: post("/sessions", {"author": "ana"}, auth=None),
    "cannot_send_as": lambda t: post("/messages", {"author": "bob", "data": "hola"}),
    "cannot_read_as": lambda t: get("/messages", b"user=bob"),
    "own_notices_only": lambda t: get("/users/bob/notices"),
    "moderator_token_required": lambda t: post("/users/ana/unblock", b""),
    "unknown_user": lambda t: get("/users/nobody"),
    "blocked_since": as_("dan", get, "/messages"),
    "kafka_unavailable": lambda t: post("/messages", {"data": "hola"}),
    "rate_limited": as_("eve", post, "/messages", {"data": "hola"}),
    "slow_mode": as_("fay", post, "/messages", {"data": "hola"}),
    "slow_mode_invalid": lambda t: Hostile("PUT", "/chat/slow_mode", body=b'{"seconds": -1}', auth="admin"),
    "password_too_short": lambda t: post("/accounts", {"author": "zoe", "password": "short"}, auth=None),
    "password_too_long": lambda t: post("/accounts", {"author": "zoe", "password": "x" * 257}, auth=None),
    "name_taken": lambda t: post("/accounts", {"author": "DAN", "password": "long enough"}, auth=None),
    "bad_credentials": lambda t: post("/sessions", {"author": "nobody", "password": "long enough"}, auth=None),
    "bad_moderator_credentials": lambda t: post("/moderators/sign_in", {"name": "nobody", "secret": "x"}, auth=None),
    "no_hold": lambda t: Hostile("DELETE", "/admin/holds/192.0.2.1", auth="admin"),
}
# codes no request to this app can bring about: the server's own answers (tests/api/test_server.py), the
# limits of long-polls (tests/api/test_asgi.py), a Kafka that takes a record and then fails it, an app
# without moderators (below), a state without a block time, failures nobody plans, a foreign Host (this table's
# requests name the app's own; tests/api/test_asgi.py sends others), too many wrong moderators' tokens
# (tests/api/test_admin_throttle.py)
NOT_BY_REQUEST = {
    "connection_limit",
    "request_timeout",
    "too_many_polls_session",
    "too_many_polls_client",
    "kafka_refused_message",
    "kafka_refused_action",
    "kafka_refused_session",
    "sessions_log_timeout",
    "moderation_off",
    "blocked",
    "http_error",
    "internal",
    "host_required",
    "host_not_allowed",
    "admin_guesses_locked",
    # tests/api/test_accounts.py: past the sign-in limits, a held address, an app without guest names, and the
    # accounts log failing
    "too_many_attempts",
    "address_held",
    "password_required",
    "kafka_refused_account",
    "accounts_log_timeout",
}


def test_the_cases_cover_every_code():
    assert set(CASES) | NOT_BY_REQUEST == i18n.CODES
    assert not set(CASES) & NOT_BY_REQUEST


def in_language(request: Hostile, accept_language: str | None) -> Hostile:
    if accept_language is None:
        return request
    return Hostile(**{**request.__dict__, "environ": {**request.environ, "HTTP_ACCEPT_LANGUAGE": accept_language}})


def through_asgi(target: TableTarget, asgi: ChatAsgi, request: Hostile, accept_language: str | None):
    scoped = asgi_request(target, request)
    if request.auth not in (None, "user", "other", "admin"):  # asgi_request sends a literal value as bytes
        assert (b"authorization", request.auth.encode()) in scoped.headers
    if accept_language is not None:
        scoped.headers.append((b"accept-language", accept_language.encode("latin-1")))
    return run(asgi, scoped)


@pytest.mark.parametrize("code", sorted(CASES))
def test_every_error_in_spanish_and_english_through_both_doors(doors, code):
    target, asgi, tokens = doors
    request = CASES[code](tokens)
    answers = {}
    for header, language in ((None, "en"), (ENGLISH, "en"), (SPANISH, "es"), ("fr, es;q=0.2", "es")):
        status, headers, body = send(target, in_language(request, header))
        error = json.loads(body)
        assert status >= 400 and error["code"] == code, (header, status, error)
        assert set(error) == {"error", "code"}
        assert_worded(code, language, error["error"])
        assert (headers["Content-Language"], headers["Vary"]) == (language, "Accept-Language")
        answer = through_asgi(target, asgi, request, header)
        assert (answer.status, answer.body) == (status, body), header
        assert (answer.headers["content-language"], answer.headers["vary"]) == (language, "Accept-Language")
        answers[language] = error
    assert answers["es"]["error"] != answers["en"]["error"]


def test_the_english_text_is_unchanged_without_accept_language(doors):
    target, _, _ = doors
    status, headers, body = send(target, CASES["cannot_send_as"]({}))
    assert (status, json.loads(body)) == (
        403,
        {"error": "signed in as 'ana': you cannot send as 'bob'", "code": "cannot_send_as"},
    )
    status, _, body = send(target, in_language(CASES["cannot_send_as"]({}), SPANISH))
    assert (status, json.loads(body)) == (
        403,
        {"error": "has iniciado sesión como 'ana': no puedes enviar como 'bob'", "code": "cannot_send_as"},
    )


def test_a_malformed_accept_language_gets_english(doors):
    target, asgi, tokens = doors
    for header in ("es;q=x", ";;;", "es;q=2", "klingon-xx, tlh"):
        status, headers, body = send(target, in_language(CASES["unknown_user"](tokens), header))
        assert (status, json.loads(body)["error"], headers["Content-Language"]) == (
            404,
            "unknown user 'nobody': no message from them has been recorded yet",
            "en",
        )


def test_without_moderators_the_refusal_is_in_the_requests_language(tmp_path):
    with make_app(tmp_path, ADMIN_TOKEN="").test_client() as client:
        headers = {"Authorization": f"Bearer {ADMIN}", "Accept-Language": "es"}
        response = client.post("/users/ana/unblock", headers=headers)
        assert (response.status_code, response.get_json()["code"], response.headers["Content-Language"]) == (
            403,
            "moderation_off",
            "es",
        )
        assert_worded("moderation_off", "es", response.get_json()["error"])


# -- notices -----------------------------------------------------------------------------------------------


@pytest.fixture
def noticed(tmp_path):
    """An app where ana has been warned, blocked and unblocked by the ledger."""
    app = make_app(tmp_path)
    board = app.extensions["chat_moderation"].notices
    board.add_record(notice("ana", "warning", 1, "m1", terms=["mierda", "joder"]), [])
    board.add_record(notice("ana", "blocked", 3, "m3", terms=["coño"]), [])
    board.add_record(notice("ana", "unblocked", 0), [])
    yield app
    app.extensions["chat_producer"].close()


EXPECTED = [("warning", 1, ["mierda", "joder"]), ("blocked", 3, ["coño"]), ("unblocked", 0, [])]


def texts(language: str) -> list[str]:
    return [contract.notice_text(k, s, contract.STRIKE_LIMIT, t, language) for k, s, t in EXPECTED]


def test_a_spanish_client_reads_its_notices_in_spanish_through_both_doors(noticed):
    client = noticed.test_client()
    token = token_for(client, "ana")
    auth = {"Authorization": f"Bearer {token}"}
    spanish = client.get("/users/ana/notices", headers={**auth, "Accept-Language": SPANISH})
    english = client.get("/users/ana/notices", headers=auth)
    assert [n["text"] for n in spanish.get_json()["notices"]] == texts("es")
    assert spanish.get_json()["notices"][0]["text"] == (
        "Aviso: falta 1 de 3 por mierda, joder. Tu mensaje se ha tapado. Con 3 faltas se te bloquea."
    )
    assert [n["text"] for n in english.get_json()["notices"]] == texts("en")
    assert (spanish.headers["Content-Language"], spanish.headers["Vary"]) == ("es", "Accept-Language")
    assert english.headers["Content-Language"] == "en"
    # the rest of each notice is the same in both languages
    strip = [{k: v for k, v in n.items() if k != "text"} for n in english.get_json()["notices"]]
    assert [{k: v for k, v in n.items() if k != "text"} for n in spanish.get_json()["notices"]] == strip

    asgi = ChatAsgi(noticed)
    headers = [(b"authorization", auth["Authorization"].encode()), (b"accept-language", b"es")]
    answer = run(asgi, Request("GET", "/users/ana/notices", headers=headers))
    assert (answer.status, answer.body) == (200, spanish.data)
    assert (answer.headers["content-language"], answer.headers["vary"]) == ("es", "Accept-Language")


def test_one_poll_gives_the_notices_in_the_pollers_language_through_both_doors(noticed):
    client = noticed.test_client()
    token = token_for(client, "ana")
    body = {"tokens": [token]}
    spanish = client.post("/notices/poll", json=body, headers={"Accept-Language": "es-ES"})
    assert [n["text"] for n in spanish.get_json()["notices"]] == texts("es")
    assert (spanish.headers["Content-Language"], spanish.headers["Vary"]) == ("es", "Accept-Language")
    english = client.post("/notices/poll", json=body, headers={"Accept-Language": "en;q=0.9, es;q=0.1"})
    assert [n["text"] for n in english.get_json()["notices"]] == texts("en")

    asgi = ChatAsgi(noticed)
    request = Hostile("POST", "/notices/poll", body=json.dumps(body).encode(), auth=None)
    scoped = asgi_request(TableTarget(noticed, {}), request)
    scoped.headers.append((b"accept-language", b"es-ES"))
    answer = run(asgi, scoped)
    assert (answer.status, answer.body) == (200, spanish.data)
    assert answer.headers["content-language"] == "es"


def test_a_notice_whose_numbers_are_missing_keeps_its_stored_text(tmp_path):
    """A record the API cannot word (no limit, terms not a list of words) is served with the text it carries."""
    app = make_app(tmp_path)
    board = app.extensions["chat_moderation"].notices
    odd = json.loads(notice("ana", "warning", 1, "m1"))
    odd.pop("limit")
    board.add_record(json.dumps(odd).encode(), [])
    [served], _ = board.read("ana", None, 0)
    assert served.as_json("es")["text"] == odd["text"]
    app.extensions["chat_producer"].close()


# -- api/openapi.yaml ------------------------------------------------------------------------------------


def test_the_document_lists_every_code_and_the_language_headers():
    error = SPEC["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "code"}
    assert set(error["properties"]["code"]["enum"]) == i18n.CODES | {UNCATALOGUED}
    assert SPEC["components"]["headers"]["ContentLanguage"]["schema"]["enum"] == list(i18n.LANGUAGES)
    accept = {"$ref": "#/components/parameters/AcceptLanguage"}
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if path not in ("/health", "/openapi.yaml"):
                assert accept in operation.get("parameters", []), f"{method.upper()} {path}"
            for status, response in operation["responses"].items():
                response = resolve(response)
                if status.startswith(("4", "5")) and path != "/health":
                    assert {"Content-Language", "Vary"} <= set(response.get("headers", {})), f"{path} {status}"


def assert_keeps_the_document(body, headers, method: str, path: str, status: int) -> None:
    answer = resolve(SPEC["paths"][path][method]["responses"][str(status)])
    jsonschema.validate(body, answer["content"]["application/json"]["schema"])
    for name, header in answer.get("headers", {}).items():
        if header.get("required"):
            jsonschema.validate(headers[name], header["schema"])


def test_spanish_answers_keep_the_document(doors, noticed):
    target, _, tokens = doors
    status, headers, body = send(target, in_language(CASES["cannot_read_as"](tokens), SPANISH))
    assert_keeps_the_document(json.loads(body), headers, "get", "/messages", status)
    status, headers, body = send(target, in_language(CASES["sign_in_first"](tokens), SPANISH))
    assert_keeps_the_document(json.loads(body), headers, "get", "/messages", status)
    client = noticed.test_client()
    token = token_for(client, "ana")
    answer = client.get("/users/ana/notices", headers={"Authorization": f"Bearer {token}", "Accept-Language": "es"})
    assert_keeps_the_document(answer.get_json(), answer.headers, "get", "/users/{author}/notices", 200)
    answer = client.post("/notices/poll", json={"tokens": [token]}, headers={"Accept-Language": "es"})
    assert_keeps_the_document(answer.get_json(), answer.headers, "post", "/notices/poll", 200)
