"""api/moderators.py and api/auth.py: named moderators (CHAT_MODERATORS_FILE) sign in with their secret, act under
their own names (the `by` of their `chat_actions` records, which the ledger copies into Delta `moderator_actions`),
and a chatter's session token is a 403 on every moderator endpoint; CHAT_ADMIN_TOKEN still works, as `moderator`.
Every request goes through both doors: the Flask app and the ASGI app around it (api/asgi.py). The light tests
send the actions to test_flood.py's in-process stand-in of `chat` and `chat_actions`; the integration test at the
end reads them back from a real broker's `chat_actions`."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from kafka import KafkaConsumer

from api.accounts import hasher_for
from api.asgi import ChatAsgi
from api.moderators import file_line
from config import contract
from tests.api.asgi_client import Request, run
from tests.api.conftest import ADMIN, MODERATION_ARROW_SCHEMA, make_app, token_for
from tests.api.test_flood import SharedKafka
from tests.api.test_notices import notice, served
from tests.conftest import records_in

SECRETS = {"mia": "mia's secret of the tests", "noor": "noor's secret of the tests"}


def moderators_file(path) -> str:
    """A CHAT_MODERATORS_FILE as an operator writes it (0600), with both moderators and a comment."""
    cheap = hasher_for("CHEAPEST")
    lines = ["# the chat's moderators", *(file_line(name, secret, cheap) for name, secret in SECRETS.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


class Doors:
    """One app (moderators from a real file) with its two doors; `call` answers (status, JSON body) either way."""

    def __init__(self, tmp_path, bootstrap: str | None = None, **config):
        """`bootstrap`: a real broker's, for the app's producer; else the in-process stand-in."""
        kafka = {"KAFKA_BOOTSTRAP": bootstrap, "KAFKA_SEND_TIMEOUT_S": 10.0} if bootstrap else {}
        self.app = make_app(tmp_path, MODERATORS_FILE=moderators_file(tmp_path / "moderators"), **kafka, **config)
        if bootstrap is None:
            self.kafka = SharedKafka()
            self.app.extensions["chat_producer"] = self.kafka
            self.kafka.apps = [self.app]
        self.asgi = ChatAsgi(self.app)
        # a known user with a warning: unblocking them is a 202
        self.app.extensions["chat_moderation"].notices.add_record(notice("ana", "warning", 1, "m1", 1), [])
        self.ana = token_for(self.app.test_client(), "ana")

    def call(self, door: str, method: str, path: str, token: str | None = None, body=None, client="127.0.0.1"):
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if door == "wsgi":
            answer = self.app.test_client().open(
                path, method=method, headers=headers, json=body, environ_base={"REMOTE_ADDR": client}
            )
            return answer.status_code, answer.get_json(silent=True)
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            raw += [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
        path, _, query = path.partition("?")
        answer = run(self.asgi, Request(method, path, query.encode(), raw, data, client=(client, 40000)))
        return answer.status, json.loads(answer.body) if answer.body else None

    def sign_in(self, door: str, name: str, secret: str | None = None, client="127.0.0.1") -> str:
        status, body = self.call(
            door, "POST", "/moderators/sign_in", body={"name": name, "secret": secret or SECRETS[name]}, client=client
        )
        assert status == 201 and body["name"] == name, body
        return body["token"]

    def actions(self) -> list[dict]:
        return [json.loads(r.value) for r in self.kafka.topics[contract.TOPIC_ACTIONS]]


DOORS = pytest.mark.parametrize("door", ["wsgi", "asgi"])


@DOORS
def test_two_named_moderators_act_each_under_their_own_name(tmp_path, door):
    doors = Doors(tmp_path)
    mia, noor = doors.sign_in(door, "mia"), doors.sign_in(door, "noor")
    assert mia != noor
    status, unblock = doors.call(door, "POST", "/users/ana/unblock", mia)
    assert (status, unblock["by"], unblock["author"]) == (202, "mia", "ana")
    status, slow = doors.call(door, "PUT", "/chat/slow_mode", noor, {"seconds": 20})
    assert (status, slow["by"]) == (202, "noor")
    status, again = doors.call(door, "POST", "/users/ana/unblock", noor)
    assert (status, again["by"]) == (202, "noor")
    # what the ledger reads from `chat_actions`: the moderator's name in `by`, copied into moderator_actions
    assert [(a["action"], a["by"]) for a in doors.actions()] == [
        ("unblock", "mia"),
        ("slow_mode", "noor"),
        ("unblock", "noor"),
    ]
    assert doors.actions() == [unblock, slow, again]
    assert doors.call(door, "GET", "/moderators/me", mia) == (200, {"name": "mia"})
    assert doors.call(door, "GET", "/moderators/me", noor) == (200, {"name": "noor"})
    assert doors.call(door, "GET", "/admin/holds", mia) == (200, {"holds": []})
    # a moderator reads anyone's notices (GET /users/<a>/notices is native on the ASGI door)
    status, notices = doors.call(door, "GET", "/users/ana/notices", mia)
    assert (status, [n["kind"] for n in notices["notices"]]) == (200, ["warning"])


@DOORS
def test_the_shared_admin_token_still_works_and_acts_as_moderator(tmp_path, door):
    doors = Doors(tmp_path)
    status, unblock = doors.call(door, "POST", "/users/ana/unblock", ADMIN)
    assert (status, unblock["by"]) == (202, "moderator")
    assert doors.call(door, "GET", "/moderators/me", ADMIN) == (200, {"name": "moderator"})
    # its holder may sign in with it too, as the moderator `moderator` (a UI asks every moderator the same way)
    token = doors.sign_in(door, "moderator", ADMIN)
    status, slow = doors.call(door, "PUT", "/chat/slow_mode", token, {"seconds": 0})
    assert (status, slow["by"]) == (202, "moderator")
    # without the file, CHAT_ADMIN_TOKEN alone is moderation as before
    alone = make_app(tmp_path / "alone")
    assert alone.test_client().get("/moderators/me", headers={"Authorization": f"Bearer {ADMIN}"}).get_json() == {
        "name": "moderator"
    }


@DOORS
def test_a_chatters_token_is_a_403_on_every_moderator_endpoint_and_no_guess(tmp_path, door):
    doors = Doors(tmp_path, ADMIN_GUESS_LIMIT=2)
    for method, path, body in [
        ("POST", "/users/ana/unblock", None),
        ("PUT", "/chat/slow_mode", {"seconds": 5}),
        ("GET", "/admin/holds", None),
        ("DELETE", "/admin/holds/192.0.2.1", None),
        ("GET", "/moderators/me", None),
        ("GET", "/moderators/blocked", None),
    ]:
        status, answer = doors.call(door, method, path, doors.ana, body)
        assert (status, answer["code"]) == (403, "moderator_token_required"), path
    assert doors.call(door, "GET", "/moderators/me")[0] == 401
    assert doors.actions() == []
    # six refusals, yet the address is not locked out (limit 2): a session token is no guess at a moderator's
    assert doors.call(door, "POST", "/users/ana/unblock", doors.sign_in(door, "mia"))[0] == 202


@DOORS
def test_a_wrong_secret_is_a_403_and_counts_toward_the_guess_throttle(tmp_path, door):
    doors = Doors(tmp_path, ADMIN_GUESS_LIMIT=3, ADMIN_LOCKOUT_S=120)
    wrong = {"name": "mia", "secret": "not mia's secret at all"}
    unknown = {"name": "nobody", "secret": SECRETS["mia"]}
    for body in (wrong, unknown):  # the same answer for an unknown name as for a wrong secret
        status, answer = doors.call(door, "POST", "/moderators/sign_in", body=body)
        assert (status, answer) == (
            403,
            {"error": "wrong moderator name or secret", "code": "bad_moderator_credentials"},
        )
    assert doors.call(door, "POST", "/users/ana/unblock", "a-guessed-token")[0] == 403  # the third miss
    status, locked = doors.call(door, "POST", "/moderators/sign_in", body={"name": "mia", "secret": SECRETS["mia"]})
    assert (status, locked["code"]) == (429, "admin_guesses_locked")  # the right secret too, while locked out
    assert doors.sign_in(door, "mia", client="10.0.0.9")  # another address is not held off
    assert doors.actions() == []


def test_a_moderators_token_is_no_session_and_ends_with_its_secret_its_time_or_the_key(tmp_path):
    doors = Doors(tmp_path, SECRET_KEY="k" * 40)
    mia = doors.sign_in("wsgi", "mia")
    assert doors.call("wsgi", "GET", "/messages", mia)[0] == 401  # not a chatter's session
    assert doors.call("wsgi", "GET", "/moderators/me", doors.ana)[0] == 403  # nor a session a moderator's token
    # restarted with mia's secret changed: her old token no longer speaks for her; noor's still does
    noor = doors.sign_in("wsgi", "noor")
    cheap = hasher_for("CHEAPEST")
    changed = (("mia", cheap.hash("mia's new secret of the tests")), ("noor", cheap.hash(SECRETS["noor"])))
    same_hash_noor = make_app(tmp_path / "b", SECRET_KEY="k" * 40, MODERATORS_FILE=tmp_path / "moderators")
    restarted = make_app(tmp_path / "c", SECRET_KEY="k" * 40, MODERATORS=changed)
    me = lambda app, token: app.test_client().get("/moderators/me", headers={"Authorization": f"Bearer {token}"})  # noqa: E731
    assert me(same_hash_noor, noor).get_json() == {"name": "noor"}  # the same file on another process
    assert (me(restarted, mia).status_code, me(restarted, mia).get_json()["code"]) == (403, "moderator_token_required")
    # taken out of the file: her tokens end
    assert me(make_app(tmp_path / "d", SECRET_KEY="k" * 40, MODERATORS=changed[1:]), mia).status_code == 403
    # another API secret: no token of this one is good there
    assert (
        me(make_app(tmp_path / "e", SECRET_KEY="x" * 40, MODERATORS_FILE=tmp_path / "moderators"), noor).status_code
        == 403
    )
    # expired
    brief = make_app(
        tmp_path / "f", SECRET_KEY="k" * 40, MODERATORS_FILE=tmp_path / "moderators", MODERATOR_TOKEN_TTL_S=-1
    )
    client = brief.test_client()
    token = client.post("/moderators/sign_in", json={"name": "mia", "secret": SECRETS["mia"]}).get_json()["token"]
    assert me(brief, token).status_code == 403


def test_sign_in_refuses_bad_bodies_before_checking_anything(tmp_path):
    client = Doors(tmp_path).app.test_client()
    for body, code in [
        ({"name": "mia"}, "field_required"),
        ({"name": 7, "secret": "x"}, "field_not_string"),
        ({"name": "", "secret": "x"}, "field_empty"),
        ({"name": "m" * 41, "secret": "x"}, "field_too_long"),
        ({"name": "mia", "secret": "x" * 1025}, "field_too_long"),
        ({"name": "mia", "secret": "x", "role": "admin"}, "unknown_fields"),
        (["mia", "x"], "body_not_object"),
    ]:
        answer = client.post("/moderators/sign_in", json=body)
        assert (answer.status_code, answer.get_json()["code"]) == (400, code), body


def test_without_moderators_sign_in_is_switched_off(tmp_path):
    with make_app(tmp_path, ADMIN_TOKEN="").test_client() as off:
        answer = off.post("/moderators/sign_in", json={"name": "mia", "secret": SECRETS["mia"]})
        assert (answer.status_code, answer.get_json()["code"]) == (403, "moderation_off")
        assert off.get("/moderators/me", headers={"Authorization": "Bearer x"}).get_json()["code"] == "moderation_off"


def test_the_api_does_not_start_on_a_bad_moderators_file(tmp_path):
    path = tmp_path / "moderators"
    path.write_text("mia:mia's secret in clear\n", encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(
        SystemExit, match=r"line 1: mia's secret must be an argon2id hash .*python -m api.moderators mia"
    ):
        make_app(tmp_path, MODERATORS_FILE=path)
    moderators_file(path)
    path.chmod(0o644)
    with pytest.raises(SystemExit, match=r"CHAT_MODERATORS_FILE: .* is open to other users .*chmod 600"):
        make_app(tmp_path, MODERATORS_FILE=path)
    path.chmod(0o600)
    line = file_line("moderator", "the shared one's own secret", hasher_for("CHEAPEST"))
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="names 'moderator', the name CHAT_ADMIN_TOKEN's actions are recorded under"):
        make_app(tmp_path, MODERATORS_FILE=path)
    assert make_app(tmp_path, MODERATORS_FILE=path, ADMIN_TOKEN="").test_client()  # without the shared token: fine
    with pytest.raises(SystemExit, match="does not exist"):
        make_app(tmp_path, MODERATORS_FILE=tmp_path / "missing")


def test_the_command_writes_a_line_the_api_signs_in_with(tmp_path):
    with pytest.raises(SystemExit, match="16 to 1024 characters, got 5"):
        file_line("mia", "short")
    with pytest.raises(SystemExit, match="1 to 40 letters"):
        file_line("mia:root", SECRETS["mia"])
    line = file_line("mia", SECRETS["mia"])  # the default profile, as an operator runs it
    assert line.startswith("mia:$argon2id$") and SECRETS["mia"] not in line
    path = tmp_path / "moderators"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (line + "\n").encode())
    os.close(fd)
    client = make_app(tmp_path, MODERATORS_FILE=path).test_client()
    assert client.post("/moderators/sign_in", json={"name": "mia", "secret": SECRETS["mia"]}).status_code == 201


def actions_in_kafka(bootstrap: str) -> dict[str, dict]:
    """Every action in the broker's `chat_actions`, by id, as the ledger reads them."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = consumer.partitions_for_topic(contract.TOPIC_ACTIONS)
    finally:
        consumer.close()
    records = [r for p in sorted(partitions) for r in records_in(bootstrap, contract.TOPIC_ACTIONS, p)]
    return {action["id"]: action for action in (json.loads(r.value) for r in records if r.value)}


@pytest.mark.integration
def test_on_a_real_broker_each_action_in_chat_actions_carries_its_moderators_name(tmp_path, kafka_only):
    doors = Doors(tmp_path, bootstrap=kafka_only)
    try:
        mia = doors.sign_in("wsgi", "mia")
        noor = doors.sign_in("asgi", "noor")
        sent = [
            doors.call("wsgi", "POST", "/users/ana/unblock", mia),
            doors.call("asgi", "POST", "/users/ana/unblock", noor),
            doors.call("asgi", "PUT", "/chat/slow_mode", noor, {"seconds": 0}),  # 0: later tests see no slow mode
            doors.call("wsgi", "POST", "/users/ana/unblock", ADMIN),
        ]
        assert [status for status, _ in sent] == [202] * 4, sent
        in_kafka = actions_in_kafka(kafka_only)
        assert [in_kafka[answer["id"]] for _, answer in sent] == [answer for _, answer in sent]
        assert [(in_kafka[a["id"]]["action"], in_kafka[a["id"]]["by"]) for _, a in sent] == [
            ("unblock", "mia"),
            ("unblock", "noor"),
            ("slow_mode", "noor"),
            ("unblock", "moderator"),
        ]
    finally:
        doors.app.extensions["chat_producer"].close()


def moderation_table(path, rows: list[tuple]) -> None:
    """Delta `user_moderation` as the ledger leaves it (written with deltalake here): (author, strikes, blocked at)."""
    schema = MODERATION_ARROW_SCHEMA
    columns = [
        [a for a, _, _ in rows],
        [5] * len(rows),
        [s for _, s, _ in rows],
        [at is not None for _, _, at in rows],
        [at for _, _, at in rows],
        [0 if at else None for _, _, at in rows],
        [100 + i if at else None for i, (_, _, at) in enumerate(rows)],
        [1] * len(rows),
    ]
    write_deltalake(str(path), pa.table(columns, schema=schema), mode="append")


def at(text: str, body: bytes) -> bytes:
    """A notice of tests/api/test_notices.py's, sent at `text` (UTC)."""
    return json.dumps({**json.loads(body), "timestamp": text}).encode()


@DOORS
def test_the_blocked_list_names_whom_the_user_page_calls_blocked_newest_first_with_their_strikes(tmp_path, door):
    """The three ways the API knows of a block: the Delta snapshot, the ledger's notices since, and the third strike
    the feed served that the ledger has not announced yet; and an unblock announced after the snapshot lifts one."""
    doors = Doors(tmp_path)
    app = doors.app
    moderation, feed = app.extensions["chat_moderation"], app.extensions["chat_feed"]
    moderation.notices.caught_up = True  # the board has read what the topic held (else no instant block is told)
    # in the snapshot: carla blocked long ago, dan blocked but unblocked since (the notice is newer), eli struck once
    moderation_table(
        moderation.snapshot.table_path,
        [("carla", 3, datetime(2026, 11, 20, 8, 0, tzinfo=UTC)), ("dan", 3, datetime(2026, 11, 21, 8, 0, tzinfo=UTC))]
        + [("eli", 1, None)],
    )
    assert moderation.snapshot.refresh()
    moderation.notices.add_record(notice("dan", "unblocked", 0, batch=2), [])
    # the ledger's notices: bob blocked, unblocked, struck twice again and blocked again (the last three blocked him)
    board = moderation.notices
    for strike, kind, offset in ((1, "warning", 1), (2, "warning", 2), (3, "blocked", 3)):
        board.add_record(at("2026-11-25 09:00:00", notice("bob", kind, strike, f"b{offset}", offset, batch=3)), [])
    board.add_record(notice("bob", "unblocked", 0, batch=4), [])
    for strike, kind, offset in ((1, "warning", 11), (2, "warning", 12), (3, "blocked", 13)):
        board.add_record(at("2026-11-26 09:00:00", notice("bob", kind, strike, f"b{offset}", offset, batch=5)), [])
    # ana: two warnings, not blocked
    for strike in (1, 2):
        board.add_record(notice("ana", "warning", strike, f"a{strike}", 20 + strike, batch=6), [])
    # eve: three profane messages served, not announced by the ledger yet: blocked at the third, told at once
    for offset in (31, 32, 33):
        served(feed, "eve", offset)
    mia = doors.sign_in(door, "mia")

    status, listed = doors.call(door, "GET", "/moderators/blocked", mia)
    assert status == 200, listed
    assert [u["author"] for u in listed["blocked"]] == ["eve", "bob", "carla"]
    assert listed["total"] == 3
    for user in ("ana", "bob", "carla", "dan", "eli", "eve"):  # the same users as GET /users/<author> says
        page = doors.call(door, "GET", f"/users/{user}")[1]
        assert page["is_blocked"] == (user in ("eve", "bob", "carla")), page
        if page["is_blocked"]:
            entry = next(u for u in listed["blocked"] if u["author"] == user)
            assert (entry["strikes"], entry["blocked_at"]) == (page["strikes"], page["blocked_at"])
    eve, bob, carla = listed["blocked"]
    assert [(n["kind"], n["strike"], n["message_id"]) for n in eve["notices"]] == [
        ("warning", 1, "eve-31"),
        ("warning", 2, "eve-32"),
        ("blocked", 3, "eve-33"),
    ]
    # only the strikes since bob's unblock: those of his first block are history
    assert [(n["kind"], n["message_id"]) for n in bob["notices"]] == [
        ("warning", "b11"),
        ("warning", "b12"),
        ("blocked", "b13"),
    ]
    assert bob["blocked_at"] == "2026-11-26 09:00:00" and "strike 3 of 3" in bob["notices"][-1]["text"].lower()
    # carla's strikes are older than the notices this API has read: her block, without them
    assert (carla["strikes"], carla["blocked_at"], carla["notices"]) == (3, "2026-11-20 08:00:00", [])

    # bounded: the newest first, the total still counted
    status, first = doors.call(door, "GET", "/moderators/blocked?limit=1", mia)
    assert (status, [u["author"] for u in first["blocked"]], first["total"]) == (200, ["eve"], 3)
    # in the reader's language
    answer = doors.app.test_client().get(
        "/moderators/blocked", headers={"Authorization": f"Bearer {mia}", "Accept-Language": "es"}
    )
    assert answer.headers["Content-Language"] == "es"
    assert answer.get_json()["blocked"][1]["notices"][-1]["text"] != bob["notices"][-1]["text"]


@DOORS
def test_the_blocked_list_is_for_moderators_and_refuses_a_bad_limit(tmp_path, door):
    doors = Doors(tmp_path)
    assert doors.call(door, "GET", "/moderators/blocked", ADMIN) == (200, {"blocked": [], "total": 0})
    status, answer = doors.call(door, "GET", "/moderators/blocked", doors.ana)
    assert (status, answer["code"]) == (403, "moderator_token_required")
    status, answer = doors.call(door, "GET", "/moderators/blocked")
    assert (status, answer["code"]) == (401, "sign_in_first")
    for limit in ("0", "501", "-1", "x", "1.5"):
        status, answer = doors.call(door, "GET", f"/moderators/blocked?limit={limit}", ADMIN)
        assert (status, answer["code"]) == (400, "limit_out_of_range"), limit
    assert doors.call(door, "GET", "/moderators/blocked?limit=500", ADMIN)[0] == 200
