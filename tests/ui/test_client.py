"""ui/client.py against the real API (tests/ui/live_api.py): sessions, sending, looking up a user.

Texts the tests expect come from the API's own answers or from config.contract.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config import contract
from stack.broker import free_port
from tests.ui.live_api import ADMIN_TOKEN, Answer, Double, LiveApi, schema_errors, session_grant
from tests.ui.samples import AWKWARD_NAMES
from ui.client import (
    ApiUnreachable,
    ChatApiError,
    ChatSession,
    NameInUse,
    SendError,
    SessionLost,
    api_code,
    fetch_blocked,
    fetch_chat_settings,
    fetch_user,
    moderator_name,
    moderator_sign_in,
    open_session,
    send_message,
    sign_up,
    unblock_user,
    user_url,
)
from ui.i18n import text
from ui.models import BlockedList, BlockedUser, ChatSettings, FeedMessage, Standing, UserRecord
from ui.render import block_reason, join_failure


def joined(url: str, author: str) -> ChatSession:
    """A session opened for ``author``, as the UI opens one on join."""
    session = ChatSession(url, author)
    session.open()
    return session


# -- sessions ------------------------------------------------------------------------------


def test_open_session_returns_the_token_and_the_normalised_name(live: LiveApi) -> None:
    grant = open_session(live.url, "  zoe\u0301 ")
    assert grant.author == "zo\u00e9"  # NFC and trimmed, as the API says
    assert live.tokens_of("zo\u00e9") == [grant.token]
    assert re.fullmatch(contract.TIMESTAMP_PATTERN, grant.expires_at)
    session = ChatSession(live.url, "zoe\u0301")
    with pytest.raises(NameInUse) as info:  # held by the first session
        session.open()
    assert str(info.value) == live.last_error("POST", "/sessions")
    assert (info.value.status, info.value.api_error) == (409, live.last_error("POST", "/sessions"))
    assert session.token is None and live.session_log == [("open", "zo\u00e9")]


def test_open_session_errors(live: LiveApi, double: tuple[Double, str]) -> None:
    with pytest.raises(ChatApiError) as info:
        open_session(live.url, "x" * (contract.MAX_AUTHOR_CHARS + 1))
    assert str(info.value) == live.last_error("POST", "/sessions")  # the API's explanation
    assert (info.value.status, info.value.api_error) == (400, live.last_error("POST", "/sessions"))
    assert not isinstance(info.value, NameInUse)

    fake, url = double
    fake.answer("POST", "/malformed/sessions", Answer(201, {"token": 5, "author": "alice"}, conforms=False))
    with pytest.raises(ChatApiError, match="malformed reply"):
        open_session(f"{url}/malformed", "alice")
    with pytest.raises(ApiUnreachable, match="cannot reach") as unreachable:
        open_session(f"http://127.0.0.1:{free_port()}", "alice")
    assert unreachable.value.status is None


def test_chat_session_close_frees_the_name_and_stays_closed(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    token = session.token
    session.close()
    assert live.session_log == [("open", "alice"), ("delete", "alice")]
    assert live.requests_with("DELETE", "/sessions") == [token]
    assert live.holders() == [] and session.closed and session.token is None
    # Closed for good: a request does not open a new session for the name.
    with pytest.raises(SessionLost):
        session.request("GET", f"{live.url}/messages")
    with pytest.raises(SessionLost):
        session.renew(token)  # type: ignore[arg-type]
    assert live.holders() == []
    session.close()  # twice is fine, and sends nothing
    assert len(live.requests_with("DELETE", "/sessions")) == 1
    joined(live.url, "alice")  # the name is free for someone else


def test_chat_session_close_when_already_expired(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    live.expire("alice")
    session.close()  # the 401 is not an error: the session is over either way
    assert session.closed and live.session_log == [("open", "alice")]
    assert [e.status for e in live.recorder.requests("DELETE", "/sessions")] == [401]


def test_chat_session_threads_hitting_a_401_share_one_new_session(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    stale = session.token
    live.expire("alice")
    assert stale is not None
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(session.renew(stale))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and tokens[0] != stale
    assert live.tokens_of("alice") == tokens[:1]
    assert live.session_log == [("open", "alice")] * 2


# -- sending -----------------------------------------------------------------------------------


def test_send_message_returns_the_echo(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    echo = send_message(session, "hi <b>there</b>")
    assert echo is not None
    assert (echo.author, echo.data) == ("alice", "hi <b>there</b>")
    (served,), _ = live.feed.read(None, 0, 10)
    assert FeedMessage.from_json(served.as_json()) == echo  # what the feed serves, under the same id
    # Only the text is sent: the API knows the author from the token.
    assert live.posts == [{"data": "hi <b>there</b>"}]
    assert live.requests_with("POST", "/messages") == live.tokens_of("alice")


@pytest.mark.parametrize(
    ("data", "status"), [("x" * (contract.MAX_DATA_CHARS + 1), 413), ("   ", 400), ("a\x00b", 400)]
)
def test_send_message_reports_the_api_error(live: LiveApi, data: str, status: int) -> None:
    with pytest.raises(SendError) as info:
        send_message(joined(live.url, "alice"), data)
    error = live.last_error("POST", "/messages")
    assert str(info.value) == f"Message not sent: {error}"
    assert (info.value.problem, info.value.status, info.value.api_error) == ("refused", status, error)
    assert not info.value.blocked and not info.value.session_lost
    assert live.messages == []


def test_send_message_when_blocked(live: LiveApi) -> None:
    """The relay's verdicts block at once: the third profane message is accepted, the next is refused."""
    session = joined(live.url, "mallory")
    for _ in range(contract.STRIKE_LIMIT):
        assert send_message(session, "darn it") is not None
    with pytest.raises(SendError) as info:
        send_message(session, "hi")
    error = live.last_error("POST", "/messages")
    assert error.startswith("mallory is blocked")
    assert str(info.value) == f"Message not sent: {error}"
    assert info.value.status == 403 and info.value.blocked
    assert info.value.api_error == error
    assert [m["data"] for m in live.messages] == ["darn it"] * contract.STRIKE_LIMIT  # "hi" never reached Kafka


def test_send_message_over_the_rate_limit_says_why_and_when(live: LiveApi) -> None:
    live.app.extensions["chat_flood"].window.limit = 1
    session = joined(live.url, "alice")
    assert send_message(session, "one") is not None
    with pytest.raises(SendError) as info:
        send_message(session, "two")
    error = live.last_error("POST", "/messages")
    assert error.startswith("not sent: you are sending too fast")
    assert (info.value.status, info.value.code, info.value.api_error) == (429, "rate_limited", error)
    assert info.value.slowed and not info.value.blocked and not info.value.session_lost
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 5
    assert [m["data"] for m in live.messages] == ["one"]


def test_send_message_within_the_slow_mode_and_the_chat_settings(live: LiveApi) -> None:
    assert fetch_chat_settings(live.url) == ChatSettings(0, 5, 5.0, guest_names=True)  # an API without accounts: guests
    live.slow_mode(45)
    assert fetch_chat_settings(live.url) == ChatSettings(45, 5, 5.0, guest_names=True)
    session = joined(live.url, "alice")
    assert send_message(session, "one") is not None
    with pytest.raises(SendError) as info:
        send_message(session, "two")
    assert (info.value.status, info.value.code) == (429, "slow_mode")
    assert info.value.retry_after is not None and 40 <= info.value.retry_after <= 45


def test_chat_settings_the_api_cannot_give_are_none(double: tuple[Double, str]) -> None:
    fake, url = double
    fake.answer("GET", "/broken/chat/settings", Answer(200, {"slow_mode_s": -1, "rate_limit": {}}, conforms=False))
    fake.answer("GET", "/down/chat/settings", Answer(503, text="<html>Service Unavailable</html>"))
    assert fetch_chat_settings(f"{url}/broken") is None
    assert fetch_chat_settings(f"{url}/down") is None
    assert fetch_chat_settings(f"http://127.0.0.1:{free_port()}") is None


def test_send_message_renews_an_expired_session_and_retries_once(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    old = session.token
    live.expire("alice")
    echo = send_message(session, "still here")
    assert echo is not None and echo.author == "alice"
    (new,) = live.tokens_of("alice")
    assert session.token == new != old
    assert live.requests_with("POST", "/messages") == [old, new]  # the 401, then the retry
    assert [m["data"] for m in live.messages] == ["still here"]  # sent once
    assert live.session_log == [("open", "alice"), ("open", "alice")]


def test_send_message_when_the_name_was_taken_meanwhile(live: LiveApi) -> None:
    session = joined(live.url, "alice")
    live.expire("alice")
    live.open_session("alice")  # someone else is alice now
    with pytest.raises(SendError) as info:
        send_message(session, "hi")
    assert info.value.session_lost and not info.value.blocked and info.value.problem == "session_lost"
    assert "your session expired" in str(info.value) and "in use by someone else" in str(info.value)
    assert len(live.requests_with("POST", "/messages")) == 1  # no retry without a session
    assert live.messages == []


def test_send_message_without_an_error_body(double: tuple[Double, str]) -> None:
    """An error that is not the API's JSON (a proxy's page) is described by its status."""
    fake, url = double
    fake.answer("POST", "/messages", Answer(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(SendError) as info:
        send_message(joined(url, "alice"), "hi")
    assert str(info.value).startswith("Message not sent: HTTP 502")
    assert info.value.status == 502 and info.value.api_error is None


@pytest.fixture
def held() -> Iterator[threading.Event]:
    """Released at the end of the test: a double's answer waits for it."""
    release = threading.Event()
    yield release
    release.set()


def test_send_message_when_the_api_does_not_answer_in_time(double: tuple[Double, str], held: threading.Event) -> None:
    fake, url = double

    def never_in_time(body: object) -> dict[str, str]:
        held.wait()
        return {"error": "too late", "code": "kafka_refused_message"}

    fake.answer("POST", "/messages", Answer(503, never_in_time))
    session = joined(url, "alice")
    with pytest.raises(SendError) as info:
        send_message(session, "hi", timeout=0.2)
    assert str(info.value) == f"The chat server at {url} did not answer in time; your message may not have been sent."
    assert info.value.status is None and info.value.problem == "timeout"


def test_send_message_when_the_api_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SendError) as info:
        send_message(ChatSession(url, "alice"), "hi")
    assert str(info.value) == f"Cannot reach the chat server at {url}. Your message was not sent."
    assert info.value.status is None and not info.value.blocked and info.value.problem == "unreachable"


# -- looking up a user ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("author", "path"),
    [
        ("alice", "alice"),
        ("bob smith", "bob%20smith"),
        ("a/b", "a%2Fb"),
        ("../admin", "..%2Fadmin"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),
        ("zoë 🦊", "zo%C3%AB%20%F0%9F%A6%8A"),
        ("50% off?#&=+", "50%25%20off%3F%23%26%3D%2B"),
    ],
)
def test_user_url_encodes_the_name_as_one_segment(author: str, path: str) -> None:
    assert user_url("http://api/", author) == f"http://api/users/{path}"
    assert user_url("http://api", author, "notices") == f"http://api/users/{path}/notices"


def assert_one_segment(uri: str, prefix: str, suffix: str, author: str) -> None:
    """``uri`` is ``prefix + <author as one encoded path segment> + suffix``."""
    assert uri.startswith(prefix) and uri.endswith(suffix)
    segment = uri[len(prefix) : len(uri) - len(suffix)]
    assert "/" not in segment and urllib.parse.unquote(segment) == author


@pytest.mark.parametrize("author", AWKWARD_NAMES)
def test_fetch_user_sends_the_name_encoded(live: LiveApi, author: str) -> None:
    live.strike(author)
    record = fetch_user(live.url, author)
    # The API routed the request to this very user...
    assert record == UserRecord(author, strikes=1, is_blocked=False, blocked_at=None)
    # ...because on the wire the name is one percent-encoded path segment.
    (uri,) = live.user_uris
    assert_one_segment(uri, "/users/", "", author)


def test_fetch_user_unknown_user_is_not_blocked(live: LiveApi) -> None:
    assert fetch_user(live.url, "newcomer") == UserRecord("newcomer", 0, False, None)
    assert [e.status for e in live.recorder.requests("GET", "/users/newcomer")] == [404]


def test_fetch_user_blocked_is_worded_as_the_api_refuses_them(live: LiveApi) -> None:
    notices = [live.strike("mallory") for _ in range(contract.STRIKE_LIMIT)]
    record = fetch_user(live.url, "mallory")
    assert record.is_blocked and record.strikes == contract.STRIKE_LIMIT
    assert record.blocked_at == notices[-1]["timestamp"]
    # the UI's wording from the record alone says what the API's own 403 says: since when, after how many strikes
    assert block_reason(Standing().with_user(record)) == text(
        "blocked.reason_since", strikes=contract.STRIKE_LIMIT, since=record.blocked_at
    )
    with pytest.raises(SendError):
        send_message(joined(live.url, "mallory"), "hi")
    error = live.last_error("POST", "/messages")
    assert f"since {record.blocked_at} UTC" in error and f"after {contract.STRIKE_LIMIT} strikes" in error


def test_fetch_user_errors(live: LiveApi, double: tuple[Double, str]) -> None:
    fake, url = double
    body = {"author": "alice", "strikes": "many"}
    fake.answer("GET", "/broken/users/<author>", Answer(200, body, conforms=False))
    assert schema_errors(body, "/users/{author}", "get", 200)
    with pytest.raises(ChatApiError, match="malformed"):
        fetch_user(f"{url}/broken", "alice")

    live.fail_next(live.moderation.snapshot, "get", 1)  # the Delta snapshot breaks: the API answers 500
    with pytest.raises(ChatApiError) as info:
        fetch_user(live.url, "alice")
    assert str(info.value) == f"HTTP 500 from GET /users/<author>: {live.last_error('GET', '/users/alice')}"
    assert (info.value.status, info.value.api_error) == (500, live.last_error("GET", "/users/alice"))
    with pytest.raises(ChatApiError, match="cannot reach"):
        fetch_user(f"http://127.0.0.1:{free_port()}", "alice")


def test_the_double_keeps_the_contract_where_it_should() -> None:
    """The double's own sign-in answer is a valid POST /sessions answer (the check behind every double)."""
    assert schema_errors(session_grant("alice"), "/sessions", "post", 201) == []
    assert schema_errors({"token": 5, "author": "alice"}, "/sessions", "post", 201) != []


# -- the user's language -------------------------------------------------------------------------


def test_every_request_for_a_user_says_their_language(live: LiveApi) -> None:
    """Accept-Language goes with each request the UI makes for a user, and follows a switch."""
    session = ChatSession(live.url, "alice", language="es")
    session.open()
    send_message(session, "hola")
    session.request("GET", user_url(live.url, "alice", "notices"), timeout=5).close()
    fetch_user(live.url, "alice", language=session.language)
    session.language = "en"  # the user switched
    send_message(session, "hello")
    live.expire("alice")
    send_message(session, "renewed")  # the 401, a new session, the retry: all in English
    session.close()
    assert [(e.method, e.path, e.language) for e in live.recorder.exchanges] == [
        ("POST", "/sessions", "es"),
        ("POST", "/messages", "es"),
        ("GET", "/users/alice/notices", "es"),
        ("GET", "/users/alice", "es"),
        ("POST", "/messages", "en"),
        ("POST", "/messages", "en"),
        ("POST", "/sessions", "en"),
        ("POST", "/messages", "en"),
        ("DELETE", "/sessions", "en"),
    ]


def test_a_session_without_a_language_sends_none(live: LiveApi) -> None:
    """The feed's own reader is nobody: no Accept-Language (requests' default is none)."""
    session = joined(live.url, "ui-reader-0a1b2c3d")
    session.request("GET", f"{live.url}/messages", timeout=5).close()
    session.close()
    assert [e.language for e in live.recorder.exchanges] == [None, None, None]


# -- accounts (issue 19), against the real API ------------------------------------------------------------

PASSWORD = "correct horse battery"


def test_sign_up_then_sign_in_under_the_registered_spelling(live: LiveApi, accounts: Any) -> None:
    assert fetch_chat_settings(live.url) == ChatSettings(0, 5, 5.0, guest_names=False, password_min_chars=10)
    assert sign_up(live.url, "  Luci\u0301a ", PASSWORD, language="es") == "Luc\u00eda"
    session = ChatSession(live.url, "LUC\u00cdA", language="es")
    session.open(PASSWORD)
    assert session.author == "Luc\u00eda" and session.signed_in  # the spelling its owner registered
    assert session.token in live.tokens_of("Luc\u00eda")
    echo = send_message(session, "hola")
    assert echo is not None and echo.author == "Luc\u00eda"
    # each password went in its request's body, and only there
    sent = [(e.path, e.json(), e.language) for e in live.recorder.exchanges if e.method == "POST"]
    assert sent[:2] == [
        ("/accounts", {"author": "  Luci\u0301a ", "password": PASSWORD}, "es"),
        ("/sessions", {"author": "LUC\u00cdA", "password": PASSWORD}, "es"),
    ]
    assert PASSWORD not in repr(vars(session))  # not kept for a renewal
    session.close()
    assert live.holders() == []


@pytest.mark.parametrize(
    ("variant", "status", "code"),
    [
        ("LUCÍA", 409, "name_taken"),  # another case
        ("Luc\u00ed\u0430", 409, "name_taken"),  # a Cyrillic а
        ("Luci\u0301a", 409, "name_taken"),  # NFD
        ("Lucía", 409, "name_taken"),  # the same
        ("Lu\u200bcía", 400, "author_invisible"),  # a zero-width space inside
    ],
)
def test_signing_up_a_taken_name_or_a_look_alike_is_refused(
    live: LiveApi, accounts: Any, variant: str, status: int, code: str
) -> None:
    assert sign_up(live.url, "Lucía", PASSWORD) == "Lucía"
    with pytest.raises(ChatApiError) as info:
        sign_up(live.url, variant, "another good password")
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.api_error == live.last_error("POST", "/accounts")
    assert not isinstance(info.value, NameInUse)  # not "in use for now": taken for good
    assert join_failure(info.value, account=True) == text(
        "account.name_taken" if status == 409 else "join.name_rejected"
    )


def test_sign_up_refusals_carry_their_code_and_when_to_try_again(live: LiveApi, accounts: Any) -> None:
    with pytest.raises(ChatApiError) as short:
        sign_up(live.url, "ana", "short")
    assert (short.value.status, short.value.code, short.value.retry_after) == (400, "password_too_short", None)
    # mallory signs in from here and is blocked: sign-ups from this address are held
    assert sign_up(live.url, "mallory", PASSWORD) == "mallory"
    open_session(live.url, "mallory", password=PASSWORD)
    for _ in range(contract.STRIKE_LIMIT):
        live.strike("mallory")
    with pytest.raises(ChatApiError) as held:
        sign_up(live.url, "mall0ry-2", PASSWORD)
    assert (held.value.status, held.value.code) == (403, "address_held")
    assert held.value.retry_after is not None and 0 < held.value.retry_after <= live.app.config["SIGNUP_HOLD_S"]
    for error in (short.value, held.value):
        assert PASSWORD not in str(error) and PASSWORD not in repr(error.args)


@pytest.mark.parametrize(("name", "password"), [("ana", "wrong password!"), ("nobody", PASSWORD)])
def test_wrong_credentials_get_one_answer_then_a_throttle(
    live: LiveApi, accounts: Any, name: str, password: str
) -> None:
    sign_up(live.url, "ana", PASSWORD)
    session = ChatSession(live.url, name)
    with pytest.raises(ChatApiError) as info:
        session.open(password)
    assert (info.value.status, info.value.code) == (401, "bad_credentials")
    assert password not in str(info.value)
    assert session.token is None and not session.signed_in and live.holders() == []
    for _ in range(live.app.config["SIGN_IN_LIMIT"]):
        try:
            open_session(live.url, name, password=password)
        except ChatApiError as exc:
            throttled = exc
    assert (throttled.status, throttled.code) == (429, "too_many_attempts")
    assert throttled.retry_after is not None and 0 < throttled.retry_after <= live.app.config["SIGN_IN_WINDOW_S"]


def test_a_signed_in_session_that_ends_is_over_and_no_guest_takes_its_place(live: LiveApi, accounts: Any) -> None:
    sign_up(live.url, "ana", PASSWORD)
    session = ChatSession(live.url, "ana")
    session.open(PASSWORD)
    stale = session.token
    live.expire("ana")
    with pytest.raises(SendError) as info:
        send_message(session, "still here?")
    assert info.value.problem == "session_ended" and info.value.session_lost and not info.value.blocked
    # no new session was asked for without the password
    assert [e.json() for e in live.recorder.requests("POST", "/sessions")] == [{"author": "ana", "password": PASSWORD}]
    assert live.messages == []
    with pytest.raises(SessionLost) as lost:
        session.renew(stale)  # type: ignore[arg-type]
    assert lost.value.signed_in
    session.close()


def test_a_guest_cannot_take_an_accounts_name(live: LiveApi) -> None:
    sign_up(live.url, "ana", PASSWORD)
    with pytest.raises(ChatApiError) as info:
        open_session(live.url, "ANA")
    assert (info.value.status, info.value.code) == (409, "name_taken")
    assert not isinstance(info.value, NameInUse)


def test_without_guest_names_a_guest_is_refused(live: LiveApi, accounts: Any) -> None:
    with pytest.raises(ChatApiError) as info:
        open_session(live.url, "guest")
    assert (info.value.status, info.value.code) == (400, "password_required")


def test_a_guest_session_still_renews_itself(live: LiveApi) -> None:
    session = joined(live.url, "guest")
    assert not session.signed_in
    live.expire("guest")
    assert send_message(session, "renewed") is not None
    assert live.session_log == [("open", "guest"), ("open", "guest")]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"error": "That name is taken", "code": "name_taken"}, "name_taken"),
        ({"error": "name_taken", "message": "That name is taken"}, "name_taken"),  # the contract's wording
        ({"error": "That name is taken"}, None),
        ({"error": 5}, None),
        ([], None),
    ],
)
def test_the_error_code_is_read_from_either_shape(body: object, code: str | None) -> None:
    response = requests.Response()
    response.status_code = 409
    response._content = json.dumps(body).encode()
    assert api_code(response) == code


def test_every_request_for_a_person_says_where_their_browser_is(live: LiveApi) -> None:
    """The UI forwards its user's address (X-Forwarded-For) where the API's per-address limits apply: the
    sign-up, the sign-in and what the session does (the sign-out frees a name and needs none)."""
    sign_up(live.url, "ana", PASSWORD, client_address="203.0.113.7")
    session = ChatSession(live.url, "ana", client_address="203.0.113.7")
    session.open(PASSWORD)
    send_message(session, "hola")
    session.close()
    assert [(e.method, e.path, e.forwarded_for) for e in live.recorder.exchanges] == [
        ("POST", "/accounts", "203.0.113.7"),
        ("POST", "/sessions", "203.0.113.7"),
        ("POST", "/messages", "203.0.113.7"),
        ("DELETE", "/sessions", None),
    ]


# -- moderators --------------------------------------------------------------------------------------


def test_a_moderator_signs_in_is_verified_lists_the_blocked_and_unblocks(live: LiveApi) -> None:
    grant = moderator_sign_in(live.url, "moderator", ADMIN_TOKEN, language="es", client_address="203.0.113.7")
    assert grant.name == "moderator" and grant.token != ADMIN_TOKEN and grant.expires_at
    (sent,) = live.recorder.requests("POST", "/moderators/sign_in")
    assert (sent.language, sent.forwarded_for) == ("es", "203.0.113.7")
    assert moderator_name(live.url, grant.token) == "moderator"
    assert fetch_blocked(live.url, grant.token) == BlockedList((), 0)
    for _ in range(contract.STRIKE_LIMIT):
        live.strike("zoë 🦊")
    listed = fetch_blocked(live.url, grant.token, limit=5)
    (user,) = listed.users
    assert (user.author, user.strikes, listed.total) == ("zoë 🦊", contract.STRIKE_LIMIT, 1)
    assert [n.kind for n in user.notices] == ["warning"] * (contract.STRIKE_LIMIT - 1) + ["blocked"]
    assert unblock_user(live.url, grant.token, "zoë 🦊") == 202
    assert live.requests_with("POST", "/users/zoë 🦊/unblock") == [grant.token]
    assert fetch_blocked(live.url, grant.token).users == ()
    with pytest.raises(ChatApiError) as unknown:
        unblock_user(live.url, grant.token, "nobody")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_user")


def test_a_chatters_token_or_a_wrong_secret_is_no_moderator(live: LiveApi) -> None:
    chatter = live.open_session("carol")
    for call in (moderator_name, fetch_blocked):
        with pytest.raises(ChatApiError) as refused:
            call(live.url, chatter)
        assert (refused.value.status, refused.value.code) == (403, "moderator_token_required")
    with pytest.raises(ChatApiError) as wrong:
        moderator_sign_in(live.url, "moderator", "not the secret")
    assert (wrong.value.status, wrong.value.code) == (403, "bad_moderator_credentials")


def test_moderator_calls_to_an_api_that_is_down_say_so() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiUnreachable):
        moderator_sign_in(down, "moderator", "secret", timeout=2)
    for call in (moderator_name, fetch_blocked):
        with pytest.raises(ApiUnreachable):
            call(down, "token", timeout=2)
    with pytest.raises(ApiUnreachable):
        unblock_user(down, "token", "ana")


def test_a_malformed_blocked_list_is_refused_and_odd_entries_left_out() -> None:
    assert BlockedList.from_json({"blocked": "x"}) is None and BlockedList.from_json([]) is None
    listed = BlockedList.from_json(
        {"blocked": [{"author": "ana", "strikes": 3, "blocked_at": None, "notices": [{"id": 1}]}, {"strikes": 1}]}
    )
    assert listed == BlockedList((BlockedUser("ana", 3, None, ()),), 1)
