"""Accounts across API processes, in-process (two apps on one stand-in of `chat_accounts`): the new account told to
the ledger on `chat_actions` without secrets, the sign-in and sign-up throttles counted by every process, and the
bounded memory of the addresses users signed in from. tests/api/test_accounts_hosts.py runs the throttles on a
real broker."""

from __future__ import annotations

import json
import threading

from api.accounts import AccountBoard, SharedThrottle
from api.errors import ApiError
from config import contract
from tests.api.conftest import account_log, make_app
from tests.api.test_accounts import PASSWORD, block, sign_in, sign_up


def kept_actions(app) -> list[dict]:
    return app.extensions["chat_accounts"].store.actions.actions


def log_records(tmp_path) -> list[dict]:
    return [json.loads(v) for _, v, _ in account_log(tmp_path).records if v is not None]


# -- the ledger is told of each new account, without secrets ---------------------------------------------


def test_a_sign_up_tells_the_ledger_its_id_name_keys_and_time_and_nothing_secret(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    assert sign_up(client, "Lucía", address="10.0.0.7").status_code == 201
    assert sign_up(client, "LUCÍA", address="10.0.0.8").status_code == 409  # refused: nothing told
    (action,) = kept_actions(app)
    account = app.extensions["chat_accounts"].store.owner("Lucía")
    assert action == {
        "id": account.account_id,
        "action": contract.ACCOUNT_ACTION,
        "author": "Lucía",
        "keys": list(account.keys),
        "by": "sign-up",
        "timestamp": action["timestamp"],
    }
    assert len(action["timestamp"]) == 19 and action["timestamp"][10] == " "
    text = json.dumps(action, ensure_ascii=False)
    assert "argon2" not in text and PASSWORD not in text and "10.0.0.7" not in text
    # the log notes that it was told, so no process tells it again at a sign-in
    assert {"op": "announced", "id": account.account_id} in log_records(tmp_path)
    assert sign_in(client, "lucía").status_code == 201
    assert len(kept_actions(app)) == 1


class RefusingActions:
    """`chat_actions` while Kafka refuses, then takes, the records."""

    def __init__(self) -> None:
        self.up = False
        self.actions: list[dict] = []

    def record(self, action: dict) -> None:
        if not self.up:
            raise ApiError(503, "kafka_refused_action")
        self.actions.append(action)


def test_an_account_kafka_would_not_announce_stands_and_its_next_sign_in_on_any_process_announces_it(tmp_path):
    actions = RefusingActions()
    a, b = make_app(tmp_path, ACTION_LOG=actions), make_app(tmp_path, ACTION_LOG=actions)
    answer = sign_up(a.test_client(), "zoe")
    assert (answer.status_code, answer.get_json()) == (201, {"author": "zoe"})  # the account is in `chat_accounts`
    assert actions.actions == []
    actions.up = True

    def sign_in_and_out(app, name):
        client = app.test_client()
        session = sign_in(client, name)
        assert session.status_code == 201, session.get_json()
        assert (
            client.delete("/sessions", headers={"Authorization": f"Bearer {session.get_json()['token']}"}).status_code
            == 204
        )

    sign_in_and_out(b, "ZOE")  # another process: it told the ledger
    assert [x["author"] for x in actions.actions] == ["zoe"]
    for app in (a, b):  # and every process knows it was told
        sign_in_and_out(app, "zoe")
    assert len(actions.actions) == 1


# -- the throttles are shared by every process --------------------------------------------------------------


def test_a_brute_force_spread_over_two_processes_is_throttled_at_the_limit(tmp_path):
    a, b = make_app(tmp_path, SIGN_IN_LIMIT=4), make_app(tmp_path, SIGN_IN_LIMIT=4)
    assert sign_up(a.test_client(), "ana", address="10.9.9.9").status_code == 201
    statuses = []
    for n in range(10):  # each process in turn, each guess from a new address: only the account's limit counts
        client = (a, b)[n % 2].test_client()
        statuses.append(sign_in(client, "ana", f"guess number {n}", address=f"10.1.0.{n}").status_code)
    assert statuses == [401] * 4 + [429] * 6
    for app in (a, b):  # locked on both, the right password included, under any spelling
        refused = sign_in(app.test_client(), "ANA", address="10.2.0.1")
        assert (refused.status_code, refused.get_json()["code"]) == (429, "too_many_attempts")
    misses = [r for r in log_records(tmp_path) if r["op"] == contract.ACCOUNT_MISS_OP and r["kind"] == "sign_in"]
    assert len(misses) == 4
    assert {r["account"] for r in misses} == {"ana"} and all(
        set(r) == {"op", "kind", "account", "address", "at", "by"} for r in misses
    )
    assert all("guess" not in json.dumps(r) for r in log_records(tmp_path))


def test_guesses_sent_at_once_to_one_process_are_throttled_at_the_limit_give_or_take_one(tmp_path):
    app = make_app(tmp_path, SIGN_IN_LIMIT=5)
    assert sign_up(app.test_client(), "ana", address="10.9.9.9").status_code == 201
    start = threading.Barrier(20)
    statuses: list[int] = []

    def guess(n: int) -> None:
        client = app.test_client()
        start.wait()
        statuses.append(sign_in(client, "ana", f"guess number {n}", address=f"10.1.1.{n}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # two hashes at a time: the one in the slot beside the limit-th may still be verified
    assert 5 <= statuses.count(401) <= 6 and statuses.count(429) == 20 - statuses.count(401), statuses


def test_sign_ups_from_one_address_are_counted_over_every_process(tmp_path):
    a, b = make_app(tmp_path, SIGN_UP_LIMIT=3), make_app(tmp_path, SIGN_UP_LIMIT=3)
    statuses = [sign_up((a, b)[n % 2].test_client(), f"user{n}", address="10.0.0.5").status_code for n in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    assert sign_up(b.test_client(), "user9", address="10.0.0.6").status_code == 201


def test_a_process_started_later_reads_the_recent_misses_and_not_the_old_ones(tmp_path):
    a = make_app(tmp_path, SIGN_IN_LIMIT=3, SIGN_IN_WINDOW_S=60)
    client = a.test_client()
    for _ in range(2):
        assert sign_in(client, "nobody", "guess guess", address="10.0.0.66").status_code == 401
    old = {"op": contract.ACCOUNT_MISS_OP, "kind": "sign_in", "account": "nobody", "address": "10.0.0.66"}
    account_log(tmp_path).append(contract.ACCOUNTS_KEY, {**old, "at": 1.0, "by": "a process long gone"})
    b = make_app(tmp_path, SIGN_IN_LIMIT=3, SIGN_IN_WINDOW_S=60)  # reads the log from the start
    assert sign_in(b.test_client(), "nobody", "guess guess", address="10.0.0.66").status_code == 401
    assert sign_in(b.test_client(), "nobody", "guess guess", address="10.0.0.66").status_code == 429
    assert sign_in(client, "nobody", "guess guess", address="10.0.0.66").status_code == 429


def test_a_throttle_locks_at_the_limit_for_a_window_and_keeps_little():
    now = [1000.0]
    throttle = SharedThrottle(3, 60, clock=lambda: now[0])
    throttle.missed("k", 990.0)  # another process's, read late
    throttle.missed("k")
    throttle.check("k")
    throttle.missed("k", 900.0)  # out of the window: not counted
    throttle.check("k")
    throttle.missed("k")
    try:
        throttle.check("k")
        raise AssertionError("not locked")
    except ApiError as exc:
        assert (exc.status, exc.headers["Retry-After"]) == (429, "60")
    now[0] += 60
    throttle.check("k")  # the lock and the misses have left the window
    for n in range(5):
        throttle.missed(f"other{n}")
    assert max(len(t) for t in throttle._misses.values()) <= 3
    throttle.MAX_KEYS = 4
    now[0] += 61
    throttle.missed("new")  # full: the keys whose misses left the window are forgotten
    assert throttle.sizes() == (1, 0)


def test_a_bad_miss_record_is_skipped(tmp_path):
    app = make_app(tmp_path, SIGN_UP_LIMIT=1)
    bad = {"op": contract.ACCOUNT_MISS_OP, "kind": "sign_up", "address": 7, "at": "soon", "by": "x"}
    account_log(tmp_path).append(contract.ACCOUNTS_KEY, bad)
    assert sign_up(app.test_client(), "ana", address="10.0.0.1").status_code == 201


# -- the addresses users signed in from: the latest sign-in, within the retention, bounded --------------


def test_the_latest_sign_in_from_an_address_is_kept_and_old_ones_are_forgotten():
    now = [10_000_000.0]
    board = AccountBoard(seen_retention_s=1000, clock=lambda: now[0])

    def seen(address, author, when):
        value = json.dumps({"op": "seen", "address": address, "author": author, "at": when}).encode()
        board.apply(contract.ACCOUNTS_KEY, value, 0, 0, when)

    seen("10.0.0.1", "ana", now[0] - 500)
    seen("10.0.0.1", "ana", now[0] - 100)
    seen("10.0.0.1", "ana", now[0] - 300)  # an older one read later: the latest stays
    seen("10.0.0.2", "bob", now[0] - 2000)  # older than the retention: not kept
    assert board.seen == {"10.0.0.1": {"ana": now[0] - 100}}
    now[0] += 950
    board.prune_seen(now[0])
    assert board.seen == {} and board.sizes()["account_address_sign_ins"] == 0
    board.MAX_SEEN = 10
    for n in range(25):
        seen(f"10.1.0.{n}", "eve", now[0] - 25 + n)
    assert board.seen_pairs <= 10 and "10.1.0.24" in board.seen and "10.1.0.0" not in board.seen


def test_a_block_holds_the_address_of_a_sign_in_after_the_first_one(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    assert sign_up(client, "troll7049", address="10.0.0.5").status_code == 201
    for address in ("10.0.0.5", "10.0.0.6"):
        session = sign_in(client, "troll7049", address=address)
        assert session.status_code == 201
        headers = {"Authorization": f"Bearer {session.get_json()['token']}"}
        assert client.delete("/sessions", headers=headers).status_code == 204
    block(app, "troll7049")
    for address in ("10.0.0.5", "10.0.0.6"):
        held = sign_up(client, "brand new", address=address)
        assert (held.status_code, held.get_json()["code"]) == (403, "address_held")
    sizes = client.get("/health").get_json()["memory"]
    assert sizes["account_addresses"] == 2 and sizes["account_address_sign_ins"] == 2


READER_TOKEN = "reader-credential-of-the-test-0123456789"


def test_a_feed_readers_sign_ins_note_no_address(tmp_path):
    app = make_app(tmp_path, GUEST_NAMES=False, READER_TOKEN=READER_TOKEN)
    client = app.test_client()
    for n in range(3):
        reader = sign_in(client, f"ui-reader-{n}", READER_TOKEN, address="10.0.0.3")
        assert reader.status_code == 201
    assert sign_up(client, "ana", address="10.0.0.3").status_code == 201
    assert sign_in(client, "ana", address="10.0.0.3").status_code == 201
    assert [r["author"] for r in log_records(tmp_path) if r["op"] == "seen"] == ["ana"]
    seen = app.extensions["chat_accounts"].store.board.seen
    assert list(seen) == ["10.0.0.3"] and list(seen["10.0.0.3"]) == ["ana"]
