"""Every request api/openapi.yaml allows, and many it does not, gets a JSON answer and never a 5xx.

schemathesis fuzzes every operation of the document against the real app in-process, through both doors
the API has: the Flask app (WSGI) and the ASGI app around it that serves the long-polls natively (what
gunicorn's uvicorn workers run), with a
real Kafka broker (so a valid POST /messages is a 202, not a Kafka-down 503): positive cases (valid per
the document, with a live session's token) must get a documented status and a body matching the
documented schema; negative cases (invalid per the document, or with the token dropped or garbled)
must get a 4xx. Runs are bounded (`MAX_EXAMPLES` per campaign) and derandomized, so CI sees the same
requests every time. test_hostile.py sends the hand-picked hostile requests.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.auths import AuthStorage
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.asgi import ChatAsgi
from api.chat import publish_slow_mode
from api.spec import SPEC_PATH
from config import contract
from tests.api.conftest import ADMIN, SPEC, assert_json_answer, make_app, token_for

HOSTS = ("localhost", "testserver")  # the Host of Flask's and of schemathesis's ASGI test clients
USER = "ana"  # signed in for the whole run, and known to the moderation state (one warning)
MAX_EXAMPLES = 50  # per campaign: about 800 requests in all

# negative cases must be refused with a 4xx; 413 (a `data` over maxLength, as documented) is a refusal too
SCHEMA = schemathesis.openapi.from_path(
    SPEC_PATH,
    config=schemathesis.Config.from_dict(
        {
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
                }
            }
        }
    ),
)
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [*POSITIVE_CHECKS, negative_data_rejection]


# -- the fuzzer --------------------------------------------------------------------------------------


def bearer(token_for) -> AuthStorage:
    """Schemathesis puts `Authorization: Bearer <token_for()>` on each case, except on negative cases
    that drop or garble the credentials on purpose."""
    storage = AuthStorage()

    class Bearer:
        def get(self, case, ctx):
            return token_for()

        def set(self, case, token, ctx):
            case.headers["Authorization"] = f"Bearer {token}"

    storage.auth(refresh_interval=None)(Bearer)
    return storage


def seed_moderation_state(app) -> None:
    """Make USER known (one warning notice, so GET /users/<USER> is a 200 and its notices are not empty)
    and put one moderated message of theirs in the feed, as the background consumers would on reading
    `chat_notices` and `chat_controlled` (START_FEED is off: the tests feed them by hand, as test_notices.py does)."""
    board = app.extensions["chat_moderation"].notices
    warning = {
        "id": "m1:strike",
        "author": USER,
        "kind": "warning",
        "strike": 1,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": "m1",
        "text": contract.notice_text("warning", 1, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": "2026-11-27 10:00:00",
        "partition": 0,
        "offset": 1,
    }
    assert set(contract.NOTICE_FIELDS) <= set(warning)
    board.add_record(json.dumps(warning).encode(), [])
    app.extensions["chat_feed"].add_record(
        json.dumps({"author": USER, "data": "qué ******", "timestamp": "2026-11-27 10:00:00"}).encode(),
        [(contract.MESSAGE_ID_HEADER, b"m1"), (contract.CHAT_POSITION_HEADER, b"0:1")],
    )


@dataclass
class FuzzTarget:
    app: object
    user_token: str
    door: str  # "wsgi" (the Flask app) or "asgi" (api/asgi.py in front of it)
    fresh_tokens: itertools.count = field(default_factory=itertools.count)

    def fresh_token(self) -> str:
        """A token of a new session (for DELETE /sessions, which ends the session it is sent with)."""
        return token_for(self.app.test_client(), f"fuzz-{next(self.fresh_tokens)}")


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def fuzz_target(request, tmp_path_factory, kafka_only):
    # an app per door: the examples are the same for both (derandomized), and a name one door's sessions
    # hold would be a 409 at the other
    app = make_app(
        tmp_path_factory.mktemp(f"fuzz-{request.param}"),
        KAFKA_BOOTSTRAP=kafka_only,
        KAFKA_SEND_TIMEOUT_S=10.0,
        ALLOWED_HOSTS=HOSTS,
        SIGN_UP_LIMIT=10_000,  # every generated sign-up comes from the one test client address
        # nor do the fuzzed moderators' tokens and secrets lock that address out: every campaign meets the
        # checks behind the guess throttle (tests/api/test_admin_throttle.py and test_moderators.py test it)
        ADMIN_GUESS_LIMIT=1_000_000,
    )
    seed_moderation_state(app)
    # Stopped (never started) tails answer a long-poll at once: `wait` is still parsed and checked,
    # but a generated `wait=29.9` does not hold the run for half a minute.
    app.extensions["chat_feed"].stop()
    app.extensions["chat_moderation"].notices.stop()
    yield FuzzTarget(app, token_for(app.test_client(), USER), request.param)
    # the campaigns set slow modes on the shared broker's `chat_actions`: lift it for the apps of later tests (as
    # PUT /chat/slow_mode does)
    publish_slow_mode(app.extensions["chat_producer"], 0, by="tests/api/test_fuzz.py")
    app.extensions["chat_producer"].close()


@pytest.fixture(scope="module")
def health_app(tmp_path_factory, kafka_only):
    """GET /health is 200 only when the feed and the notices are reading Kafka: this app starts them."""
    app = make_app(
        tmp_path_factory.mktemp("fuzz-health"),
        KAFKA_BOOTSTRAP=kafka_only,
        KAFKA_SEND_TIMEOUT_S=10.0,
        START_FEED=True,
        ALLOWED_HOSTS=HOSTS,
    )
    feed, moderation = app.extensions["chat_feed"], app.extensions["chat_moderation"]
    deadline = time.monotonic() + 120
    while (health := app.test_client().get("/health")).status_code != 200:  # read and caught up
        assert time.monotonic() < deadline, health.get_json()
        time.sleep(0.1)
    yield app
    feed.stop()
    moderation.notices.stop()
    moderation.snapshot.stop()
    app.extensions["chat_producer"].close()


@dataclass(frozen=True)
class Campaign:
    operation: str  # "METHOD /path" as in the document
    mode: GenerationMode
    auth: str | None = None  # "user", "admin", "fresh" (a new session per case) or None
    author: str | None = None  # a fixed {author} path parameter; generated when None
    # negative only: the valid token is sent as given, so the path, query or body is what is broken
    # (otherwise schemathesis may drop or garble the credentials too, and auth answers first)
    keep_token: bool = False
    expect: frozenset[int] = frozenset()  # statuses the campaign must meet at least once

    @property
    def id(self) -> str:
        parts = [
            self.mode.value,
            self.operation,
            f"as {self.auth}" if self.auth else "",
            f"author={self.author}" if self.author else "",
            "(token kept)" if self.keep_token else "(token fuzzed)" if self.mode is N and self.auth else "",
        ]
        return " ".join(p for p in parts if p)


P, N = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
CAMPAIGNS = [
    Campaign("POST /sessions", P, expect=frozenset({201})),
    Campaign("POST /sessions", N, expect=frozenset({400})),
    Campaign("DELETE /sessions", P, "fresh", expect=frozenset({204})),
    Campaign("DELETE /sessions", N, "fresh", expect=frozenset({401})),  # only the token can be broken
    Campaign("POST /messages", P, "user", expect=frozenset({202})),
    Campaign("POST /messages", N, "user", keep_token=True, expect=frozenset({400})),
    Campaign("POST /messages", N, "user", expect=frozenset({401})),
    Campaign("GET /messages", P, "user", expect=frozenset({200})),
    Campaign("GET /messages", N, "user", keep_token=True, expect=frozenset({400})),
    Campaign("GET /messages", N, "user", expect=frozenset({401})),
    Campaign("GET /users/{author}", P, expect=frozenset({404})),
    Campaign("GET /users/{author}", P, author=USER, expect=frozenset({200})),
    Campaign("GET /users/{author}", N, expect=frozenset({400})),
    # the right moderators' token first (under the default guess limit, the fuzzed ones below would lock it out)
    Campaign("PUT /chat/slow_mode", P, "admin", expect=frozenset({202})),
    Campaign("GET /admin/holds", P, "admin", expect=frozenset({200})),
    Campaign("DELETE /admin/holds/{address}", P, "admin", expect=frozenset({404})),
    Campaign("DELETE /admin/holds/{address}", N, "admin", keep_token=True, expect=frozenset({400})),
    Campaign("PUT /chat/slow_mode", N, "admin", keep_token=True, expect=frozenset({400})),
    Campaign("GET /users/{author}/notices", P, "admin", expect=frozenset({200})),
    Campaign("GET /users/{author}/notices", P, "user", author=USER, expect=frozenset({200})),
    Campaign("GET /users/{author}/notices", N, "admin", keep_token=True, expect=frozenset({400})),
    Campaign("GET /users/{author}/notices", N, "admin", expect=frozenset({401})),
    Campaign("POST /notices/poll", P, expect=frozenset({200})),
    Campaign("POST /notices/poll", N, expect=frozenset({400})),
    Campaign("POST /users/{author}/unblock", P, "admin", expect=frozenset({404})),
    Campaign("POST /users/{author}/unblock", P, "admin", author=USER, expect=frozenset({202})),
    Campaign("POST /users/{author}/unblock", N, "admin", keep_token=True, expect=frozenset({400})),
    Campaign("POST /users/{author}/unblock", N, "admin", expect=frozenset({401})),
    Campaign("PUT /chat/slow_mode", N, "admin", expect=frozenset({401})),
    Campaign("GET /admin/holds", N, "admin", expect=frozenset({401})),
    Campaign("DELETE /admin/holds/{address}", N, "admin", expect=frozenset({401})),
    Campaign("GET /moderators/me", P, "admin", expect=frozenset({200})),
    Campaign("GET /moderators/me", P, "user", expect=frozenset({403})),  # a chatter's token
    Campaign("GET /moderators/me", N, "admin", expect=frozenset({401})),
    Campaign("GET /moderators/blocked", P, "admin", expect=frozenset({200})),
    Campaign("GET /moderators/blocked", P, "user", expect=frozenset({403})),  # a chatter's token
    Campaign("GET /moderators/blocked", N, "admin", keep_token=True, expect=frozenset({400})),
    Campaign("GET /moderators/blocked", N, "admin", expect=frozenset({401})),
    Campaign("POST /moderators/sign_in", P, expect=frozenset({403})),  # no generated secret is a moderator's
    Campaign("POST /moderators/sign_in", N, expect=frozenset({400})),
    Campaign("POST /accounts", P, expect=frozenset({201})),
    Campaign("POST /accounts", N, expect=frozenset({400})),
    # nothing in these three can be made invalid (no body, no credentials, no parameter but an Accept-Language
    # header, which is never refused): positive only
    Campaign("GET /chat/settings", P, expect=frozenset({200})),
    Campaign("GET /health", P, expect=frozenset({200})),
    Campaign("GET /openapi.yaml", P, expect=frozenset({200})),
]
GENERATED: dict[str, Counter] = {}
ASGI_DOORS: dict[int, ChatAsgi] = {}  # one ASGI app around each Flask app


def test_every_operation_of_the_document_has_campaigns_in_both_modes():
    documented = {f"{method.upper()} {path}" for path, ops in SPEC["paths"].items() for method in ops}
    assert {c.operation for c in CAMPAIGNS} == documented
    without_negative = documented - {c.operation for c in CAMPAIGNS if c.mode is N}
    assert without_negative == {"GET /chat/settings", "GET /health", "GET /openapi.yaml"}
    # really nothing to negate there: no body, no parameter but Accept-Language (any text is read, never refused)
    for label in without_negative:
        operation = SCHEMA[label.split()[1]][label.split()[0]]
        assert {p.name for p in operation.iter_parameters()} <= {"Accept-Language"} and not operation.body, label


@pytest.fixture(scope="module")
def fuzz_report(request):
    """Print how many requests each campaign sent, and their statuses, once the campaigns have run."""
    yield GENERATED
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is None or capture is None or not GENERATED:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("schemathesis requests per campaign (status: count):")
        for name, statuses in GENERATED.items():
            shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            reporter.write_line(f"  {sum(statuses.values()):4d}  {name}  ({shown})")
        reporter.write_line(f"  {sum(sum(s.values()) for s in GENERATED.values()):4d}  in all")


@pytest.mark.integration
@pytest.mark.parametrize("campaign", CAMPAIGNS, ids=lambda c: c.id)
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(campaign, fuzz_target, fuzz_report, request):
    door = fuzz_target.door
    method, path = campaign.operation.split(" ", 1)
    operation = SCHEMA[path][method]
    app = request.getfixturevalue("health_app") if path == "/health" else fuzz_target.app
    if door == "asgi":
        if id(app) not in ASGI_DOORS:
            ASGI_DOORS[id(app)] = ChatAsgi(app)
        app = ASGI_DOORS[id(app)]
    token_for = {"user": lambda: fuzz_target.user_token, "admin": lambda: ADMIN, "fresh": fuzz_target.fresh_token}.get(
        campaign.auth
    )
    strategy = operation.as_strategy(
        generation_mode=campaign.mode,
        auth_storage=bearer(token_for) if token_for and not campaign.keep_token else None,
        headers={"Authorization": f"Bearer {token_for()}"} if campaign.keep_token else None,
        path_parameters={"author": campaign.author} if campaign.author else None,
    )
    checks = POSITIVE_CHECKS if campaign.mode is P else NEGATIVE_CHECKS
    statuses = fuzz_report.setdefault(f"{door} {campaign.id}", Counter())

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case):
        response = case.call(app=app)
        statuses[response.status_code] += 1
        content_type = (response.headers.get("content-type") or [None])[0]
        assert_json_answer(response.status_code, content_type, response.content, f"{case.method} {case.formatted_path}")
        case.validate_response(response, checks=checks)

    fuzz()
    assert sum(statuses.values()) > 0
    assert campaign.expect <= set(statuses), f"{campaign.id}: expected {sorted(campaign.expect)} among {statuses}"
