"""Accounts (issue 19) in-process: sign-up and sign-in, one name per person however it is spelled, blocks that
stick, the sign-in throttles, address holds, and two API processes racing for one name (through the in-process
stand-in of `chat_accounts`; tests/api/test_api_hosts.py races real hosts on a real broker)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime

import pytest

from api.accounts import AccountBoard, AccountStore, hasher_for
from api.errors import ApiError
from api.producer import refused
from config import contract
from tests.api.conftest import ADMIN, account_log, make_app

PASSWORD = "correct horse battery"
MODERATOR = {"Authorization": f"Bearer {ADMIN}"}

# every spelling issue 19 tried, and more: each is the blocked `troll7049` (or `Lucía`) to a reader
TROLL_VARIANTS = [
    "troll7049",  # the same spelling
    "TROLL7049",  # capitals
    "Troll7049",
    "troII7049",  # two capital I for the l's
    "tro1l7049",  # a digit one for an l
    "troll7O49",  # a capital O for the zero
    "ｔｒｏｌｌ７０４９",  # fullwidth forms
    "trоll7049",  # Cyrillic о
    "troll\u200d7049",  # a zero-width joiner inside
    "troll7049\ufe0f",  # a variation selector
]
LUCIA_VARIANTS = ["Lucíа", "lucía", "LUCÍA", "Lucı\u0301a", "Luci\u0301a", "Ｌｕｃíａ"]


def now_utc() -> str:
    return datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT)


def at(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def sign_up(client, author: str, password: str = PASSWORD, address: str = "10.0.0.1"):
    return client.post("/accounts", json={"author": author, "password": password}, **at(address))


def sign_in(client, author: str, password: str = PASSWORD, address: str = "10.0.0.1"):
    return client.post("/sessions", json={"author": author, "password": password}, **at(address))


def block(app, author: str) -> None:
    """The ledger's block notice for `author`, as the notices board reads it from `chat_notices`."""
    notice = {
        "id": f"{author}-m3:strike",
        "author": author,
        "kind": "blocked",
        "strike": 3,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": f"{author}-m3",
        "text": contract.notice_text("blocked", 3, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": now_utc(),
    }
    app.extensions["chat_moderation"].notices.add_record(json.dumps(notice).encode(), [])


def warn(app, author: str) -> None:
    """A warning notice: `author` is an author of the chat's history."""
    notice = {
        "id": f"{author}-m1:strike",
        "author": author,
        "kind": "warning",
        "strike": 1,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": f"{author}-m1",
        "text": contract.notice_text("warning", 1, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": now_utc(),
    }
    app.extensions["chat_moderation"].notices.add_record(json.dumps(notice).encode(), [])


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    with app.test_client() as c:
        yield c


# -- sign-up and sign-in ----------------------------------------------------------------------------------


def test_sign_up_then_sign_in_under_any_spelling_gives_the_registered_one(client):
    answer = sign_up(client, "troll7049")
    assert (answer.status_code, answer.get_json()) == (201, {"author": "troll7049"})
    for spelling in ("troll7049", "TROLL7049", "troII7049"):
        session = sign_in(client, spelling)
        assert session.status_code == 201, session.get_json()
        assert session.get_json()["author"] == "troll7049"
        headers = {"Authorization": f"Bearer {session.get_json()['token']}"}
        assert client.delete("/sessions", headers=headers).status_code == 204


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(client):
    assert sign_up(client, "ana maría").status_code == 201
    wrong = sign_in(client, "ana maría", "not the password")
    unknown = sign_in(client, "nobody here", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json() == {"error": "wrong name or password", "code": "bad_credentials"}


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short", "password_too_short"),
        ("x" * 257, "password_too_long"),
        (None, "field_required"),
        (7, "field_not_string"),
    ],
)
def test_bad_passwords_are_refused_and_nothing_is_kept(client, app, tmp_path, password, code):
    answer = client.post("/accounts", json={"author": "zoe", "password": password})
    assert (answer.status_code, answer.get_json()["code"]) == (400, code)
    assert account_log(tmp_path).records == []
    assert sign_up(client, "zoe").status_code == 201


def test_the_password_is_kept_only_as_an_argon2_hash_and_never_logged(client, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    assert sign_up(client, "zoe").status_code == 201
    assert sign_in(client, "zoe").status_code == 201
    assert sign_in(client, "zoe", "a wrong one!").status_code == 401
    records = [json.loads(v) for _, v, _ in account_log(tmp_path).records if v is not None]
    signup = next(r for r in records if r["op"] == "signup")
    assert signup["hash"].startswith("$argon2id$")
    assert all(PASSWORD not in json.dumps(r) for r in records)
    assert PASSWORD not in caplog.text and "a wrong one!" not in caplog.text


def test_the_chat_settings_say_which_forms_to_show(tmp_path):
    with make_app(tmp_path, GUEST_NAMES=False, PASSWORD_MIN_CHARS=12).test_client() as client:
        settings = client.get("/chat/settings").get_json()
    assert (settings["guest_names"], settings["password_min_chars"]) == (False, 12)


# -- one name per person -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", TROLL_VARIANTS)
def test_every_spelling_of_an_account_is_refused(client, variant):
    assert sign_up(client, "troll7049").status_code == 201
    answer = sign_up(client, variant, address="10.0.0.2")
    assert answer.status_code == 409
    body = answer.get_json()
    assert body["code"] == "name_taken" and "or one that looks like it" in body["error"]


@pytest.mark.parametrize("variant", LUCIA_VARIANTS)
def test_lucia_and_her_look_alikes_are_one_account(client, variant):
    assert sign_up(client, "Lucía").status_code == 201
    assert sign_up(client, variant, address="10.0.0.2").status_code == 409
    assert sign_in(client, variant).get_json()["author"] == "Lucía"


def test_zero_width_characters_inside_a_name_are_refused_before_any_key(client):
    answer = sign_up(client, "tro\u200bll7049")
    assert (answer.status_code, answer.get_json()["code"]) == (400, "author_invisible")


def test_different_names_are_different_accounts(client):
    for name in ("Lucia", "Lucía", "troll7050", "ana", "ano"):
        assert sign_up(client, name).status_code == 201, name


# -- blocks follow the key ---------------------------------------------------------------------------------


def test_a_blocked_account_signs_in_but_cannot_post_and_no_variant_comes_back(app, client):
    assert sign_up(client, "troll7049").status_code == 201
    block(app, "troll7049")
    session = sign_in(client, "troll7049")
    assert session.status_code == 201
    headers = {"Authorization": f"Bearer {session.get_json()['token']}"}
    sent = client.post("/messages", json={"data": "hola"}, headers=headers)
    assert (sent.status_code, sent.get_json()["code"]) == (403, "blocked_since")
    for variant in TROLL_VARIANTS:
        assert sign_up(client, variant, address="10.0.0.9").status_code == 409, variant
        guest = client.post("/sessions", json={"author": variant}, **at("10.0.0.9"))
        assert (guest.status_code, guest.get_json()["code"]) == (409, "name_taken"), variant
    # signed in again under a capitalised spelling, the session is the registered (blocked) name
    assert client.delete("/sessions", headers=headers).status_code == 204
    again = sign_in(client, "TROLL7049")
    assert again.get_json()["author"] == "troll7049"
    headers = {"Authorization": f"Bearer {again.get_json()['token']}"}
    assert client.post("/messages", json={"data": "hola"}, headers=headers).status_code == 403


def test_authors_of_the_history_keep_their_names(app, client):
    warn(app, "Lucía")  # wrote before accounts existed
    block(app, "troll7049")  # blocked before accounts existed
    assert sign_up(client, "LUCÍA").status_code == 409  # a look-alike of an author of the history
    assert sign_up(client, "troll7049").status_code == 409  # a blocked author's own name
    assert sign_up(client, "TROLL7049").status_code == 409
    answer = sign_up(client, "Lucía")  # her own spelling
    assert (answer.status_code, answer.get_json()) == (201, {"author": "Lucía"})


def test_guests_take_no_name_an_account_or_a_blocked_author_holds(app, client):
    assert sign_up(client, "ana").status_code == 201
    block(app, "troll7049")
    for name in ("ana", "ANA", "аnа", "troII7049"):
        answer = client.post("/sessions", json={"author": name})
        assert (answer.status_code, answer.get_json()["code"]) == (409, "name_taken"), name
    warn(app, "bob")
    assert client.post("/sessions", json={"author": "bob"}).status_code == 201  # a name of the history
    assert client.post("/sessions", json={"author": "carol"}).status_code == 201


def test_without_guest_names_a_session_needs_a_password(tmp_path):
    with make_app(tmp_path, GUEST_NAMES=False).test_client() as client:
        answer = client.post("/sessions", json={"author": "ana"})
        assert (answer.status_code, answer.get_json()["code"]) == (400, "password_required")
        assert sign_up(client, "ana").status_code == 201
        assert sign_in(client, "ana").status_code == 201


# -- throttles ---------------------------------------------------------------------------------------------


def test_a_brute_force_run_against_one_account_is_throttled(tmp_path):
    app = make_app(tmp_path, SIGN_IN_LIMIT=5, SIGN_IN_WINDOW_S=120)
    client = app.test_client()
    assert sign_up(client, "ana").status_code == 201
    statuses = []
    for n in range(20):  # from many addresses, so only the account's own limit stops them
        answer = sign_in(client, "ana", f"guess number {n}", address=f"10.1.0.{n}")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.get_json()["code"] == "too_many_attempts"
            assert 1 <= int(answer.headers["Retry-After"]) <= 120
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    # the right password too, while locked (else the answer would tell when a guess was right), under any spelling
    assert sign_in(client, "ana", address="10.2.0.1").status_code == 429
    assert sign_in(client, "ANA", address="10.2.0.1").status_code == 429
    # another account is not locked
    assert sign_up(client, "bob", address="10.3.0.1").status_code == 201
    assert sign_in(client, "bob", address="10.3.0.1").status_code == 201


def test_one_address_guessing_many_accounts_is_throttled(tmp_path):
    client = make_app(tmp_path, SIGN_IN_LIMIT=3, SIGN_IN_WINDOW_S=60).test_client()
    assert sign_up(client, "ana", address="10.9.0.1").status_code == 201
    statuses = [sign_in(client, f"user{n}", "guess guess", address="10.0.0.66").status_code for n in range(6)]
    assert statuses == [401, 401, 401, 429, 429, 429]
    assert sign_in(client, "ana", address="10.0.0.66").status_code == 429
    assert sign_in(client, "ana", address="10.0.0.67").status_code == 201


def test_sign_ups_from_one_address_are_throttled(tmp_path):
    client = make_app(tmp_path, SIGN_UP_LIMIT=3, SIGN_IN_WINDOW_S=60).test_client()
    statuses = [sign_up(client, f"user{n}", address="10.0.0.5").status_code for n in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert sign_up(client, "user9", address="10.0.0.6").status_code == 201


# -- address holds -----------------------------------------------------------------------------------------


def test_a_block_holds_sign_ups_from_the_addresses_the_user_signed_in_from_until_a_moderator_lifts_it(tmp_path):
    a, b = make_app(tmp_path), make_app(tmp_path)  # two API processes on one accounts log
    ca, cb = a.test_client(), b.test_client()
    assert sign_up(ca, "troll7049", address="10.0.0.5").status_code == 201
    assert sign_in(ca, "troll7049", address="10.0.0.5").status_code == 201
    assert cb.post("/sessions", json={"author": "guesty"}, **at("10.0.0.8")).status_code == 201
    for app in (a, b):  # every process reads the ledger's notices
        block(app, "troll7049")
        block(app, "guesty")
    for client in (ca, cb):
        for address in ("10.0.0.5", "10.0.0.8"):
            held = sign_up(client, "brand new name", address=address)
            assert (held.status_code, held.get_json()["code"]) == (403, "address_held")
            assert 86_000 < int(held.headers["Retry-After"]) <= 86_400
    assert sign_up(cb, "someone else", address="10.0.0.6").status_code == 201
    holds = ca.get("/admin/holds", headers=MODERATOR).get_json()["holds"]
    assert [(h["address"], h["authors"]) for h in holds] == [("10.0.0.5", ["troll7049"]), ("10.0.0.8", ["guesty"])]
    assert cb.get("/admin/holds", headers=MODERATOR).get_json()["holds"] == holds
    assert ca.delete("/admin/holds/10.0.0.5", headers=MODERATOR).status_code == 204
    assert [h["address"] for h in cb.get("/admin/holds", headers=MODERATOR).get_json()["holds"]] == ["10.0.0.8"]
    assert sign_up(cb, "brand new name", address="10.0.0.5").status_code == 201
    gone = cb.delete("/admin/holds/10.0.0.5", headers=MODERATOR)
    assert (gone.status_code, gone.get_json()["code"]) == (404, "no_hold")
    assert ca.get("/admin/holds").status_code == 401
    assert (
        ca.delete("/admin/holds/10.0.0.8", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}).status_code == 403
    )


def test_holds_can_be_switched_off(tmp_path):
    app = make_app(tmp_path, SIGNUP_HOLD_S=0)
    client = app.test_client()
    assert client.post("/sessions", json={"author": "guesty"}, **at("10.0.0.8")).status_code == 201
    block(app, "guesty")
    assert sign_up(client, "brand new name", address="10.0.0.8").status_code == 201
    assert client.get("/admin/holds", headers=MODERATOR).get_json() == {"holds": []}


# -- two processes, one log ---------------------------------------------------------------------------------


def test_two_processes_racing_for_one_key_grant_it_once(tmp_path):
    a, b = make_app(tmp_path), make_app(tmp_path)
    for round_ in range(5):
        names = (f"Lucía{round_}", f"Lucíа{round_}")  # the second with a Cyrillic а
        answers: dict[str, int] = {}
        start = threading.Barrier(2)

        def race(app, name, start=start, answers=answers):
            start.wait()
            answers[name] = sign_up(app.test_client(), name).status_code

        threads = [threading.Thread(target=race, args=(app, name)) for app, name in zip((a, b), names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers.values()) == [201, 409], answers
        winner = next(n for n, s in answers.items() if s == 201)
        for app in (a, b):  # both processes agree on who holds it
            assert app.extensions["chat_accounts"].store.owner(names[0]).author == winner
        assert sign_in(b.test_client(), names[0]).get_json()["author"] == winner


def test_the_first_sign_up_of_a_key_in_the_log_wins_on_every_board():
    def record(author: str, account_id: str, keys: list[str]) -> bytes:
        return json.dumps(
            {"op": "signup", "id": account_id, "author": author, "keys": keys, "hash": "h", "at": 1}
        ).encode()

    log_ = [
        record("troll7049", "1", ["troll7o49"]),
        b"not json",
        json.dumps({"op": "signup", "id": "x"}).encode(),  # not a sign-up: skipped
        record("troII7049", "2", ["troll7o49", "troii7o49"]),
        record("troii7049", "3", ["troii7o49"]),  # free: the loser above held nothing
    ]
    boards = [AccountBoard(), AccountBoard()]
    for board in boards:
        for offset, value in enumerate(log_):
            board.apply(contract.ACCOUNTS_KEY, value, 0, offset, 1.0)
    for board in boards:
        assert board.granted == {"1": True, "2": False, "3": True}
        assert sorted(board.accounts) == ["troii7049", "troll7049"]
        assert board.by_key == {"troll7o49": "troll7049", "troii7o49": "troii7049"}


def test_the_accounts_topic_keeps_every_record_in_one_order():
    assert contract.TOPIC_ACCOUNTS in contract.TOPICS
    # never compacted: a losing sign-up must not erase the winner's record, however they are keyed
    assert contract.TOPIC_CONFIGS[contract.TOPIC_ACCOUNTS]["cleanup.policy"] == "delete"
    assert contract.TOPIC_CONFIGS[contract.TOPIC_ACCOUNTS]["retention.ms"] == "-1"


# -- the accounts log failing ------------------------------------------------------------------------------


class UnreadLog:
    """A log that takes records and is never read back (Kafka acknowledged, the tail stalled)."""

    def append(self, key, record, wait=True):
        return (0, 0)


def test_a_sign_up_the_log_never_hands_back_is_a_503_not_an_account():
    store = AccountStore(AccountBoard(), UnreadLog(), hasher_for("CHEAPEST"), settle_timeout_s=0.2)
    with pytest.raises(ApiError) as caught:
        store.sign_up("ana", PASSWORD)
    assert (caught.value.status, caught.value.code) == (503, "accounts_log_timeout")
    assert store.board.accounts == {}


def test_an_account_record_kafka_refuses_is_named_as_such():
    error = refused("account record")
    assert (error.status, error.code) == (503, "kafka_refused_account")


# -- the UI's feed readers ---------------------------------------------------------------------------------

READER_TOKEN = "reader-credential-of-the-test-0123456789"


def test_a_feed_reader_signs_in_with_the_reader_token_alone_and_no_account_takes_its_name(tmp_path):
    with make_app(tmp_path, GUEST_NAMES=False, READER_TOKEN=READER_TOKEN).test_client() as client:
        assert client.post("/sessions", json={"author": "ui-reader-0a1b2c3d"}).status_code == 401
        assert sign_in(client, "ui-reader-0a1b2c3d", "not the token, long enough").status_code == 401
        granted = sign_in(client, "ui-reader-0a1b2c3d", READER_TOKEN)
        assert granted.status_code == 201, granted.get_json()
        token = granted.get_json()["token"]
        assert client.get("/messages", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert sign_up(client, "UI-Reader-x").status_code == 409  # no account, so no blocked user, reads as one
        assert sign_up(client, "ui-reader-0a1b2c3d").status_code == 409
    with make_app(tmp_path / "no-token", GUEST_NAMES=False).test_client() as client:
        assert sign_in(client, "ui-reader-0a1b2c3d", "").status_code in (400, 401)
        assert client.post("/sessions", json={"author": "ui-reader-0a1b2c3d"}).status_code == 401
    with make_app(tmp_path / "guests", GUEST_NAMES=True).test_client() as client:  # test stacks: a guest reader
        assert client.post("/sessions", json={"author": "ui-reader-0a1b2c3d"}).status_code == 201
