"""Two API processes with data directories of their own (two "hosts"), sharing only a real Kafka broker and
CHAT_SECRET_KEY: a cursor and a session one issued are honoured by the other, also after a restart; a
sign-out on one is refused on the other; two hosts racing for a free name grant it exactly once.
`chat_controlled` is written the way the relay writes it (no Spark here)."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from kafka import KafkaProducer

from config import contract
from stack.harness import GUEST_NAMES
from tests.api.conftest import ADMIN, api_hosts, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(kafka_only, tmp_path_factory):
    # guests for the sessions' tests, moderators and many sign-ups from one address for the accounts' tests
    env = {**GUEST_NAMES, "CHAT_ADMIN_TOKEN": ADMIN, "CHAT_SIGN_UP_LIMIT": "1000"}
    with api_hosts(tmp_path_factory.mktemp("hosts"), kafka_only, env) as pair:
        yield pair


@pytest.fixture(scope="module")
def relay(kafka_only):
    """Publishes to `chat_controlled` as the relay does; returns the message ids."""
    producer = KafkaProducer(bootstrap_servers=kafka_only, acks="all")

    def publish(author: str, count: int) -> list[str]:
        ids = []
        for n in range(count):
            message_id = str(uuid.uuid4())
            producer.send(
                contract.TOPIC_CONTROLLED,
                key=author.encode(),
                value=json.dumps({"author": author, "data": f"hola {n}", "timestamp": "2026-12-01 10:00:00"}).encode(),
                headers=[(contract.MESSAGE_ID_HEADER, message_id.encode()), (contract.PROFANE_HEADER, b"false")],
            ).get(timeout=10)
            ids.append(message_id)
        return ids

    yield publish
    producer.close()


def sign_in(url: str, author: str) -> dict:
    response = requests.post(f"{url}/sessions", json={"author": author}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def read_until(url: str, headers: dict, cursor: str, count: int) -> tuple[list[str], str]:
    """Long-poll `url` from `cursor` until `count` messages came (each at most once is checked by the caller)."""
    ids: list[str] = []
    deadline = time.monotonic() + 60
    while len(ids) < count:
        assert time.monotonic() < deadline, ids
        body = requests.get(f"{url}/messages", params={"after": cursor, "wait": 5}, headers=headers, timeout=30).json()
        ids += [m["id"] for m in body["messages"]]
        cursor = body["cursor"]
    return ids, cursor


def test_a_cursor_from_one_host_is_answered_by_the_other_and_after_a_restart(hosts, relay):
    a, b = hosts
    headers = sign_in(a.url, f"reader-{secrets.token_hex(3)}")
    writer = f"writer-{secrets.token_hex(3)}"
    cursor = requests.get(f"{a.url}/messages", headers=headers, timeout=30).json()["cursor"]
    first = relay(writer, 5)
    seen, cursor = read_until(b.url, headers, cursor, 5)  # a's cursor, b's answer
    second = relay(writer, 4)
    more, cursor = read_until(a.url, headers, cursor, 4)  # b's cursor, a's answer
    assert (seen, more) == (first, second)
    a.stop()
    a.start()  # the process that issued nothing of this any more: a fresh start on its data directory
    a.wait_healthy()
    third = relay(writer, 3)
    after_restart, cursor = read_until(a.url, headers, cursor, 3)
    assert after_restart == third
    again = requests.get(f"{b.url}/messages", params={"after": cursor}, headers=headers, timeout=30).json()
    assert again["messages"] == []  # nothing twice, nothing skipped
    forged = requests.get(f"{b.url}/messages", params={"after": cursor[:-2] + "xx"}, headers=headers, timeout=30)
    assert forged.status_code == 400 and forged.json() == {
        "error": "after must be a cursor returned by GET /messages",
        "code": "bad_cursor",
    }


def test_a_restarted_host_reloads_the_last_500_messages_and_answers_an_older_cursor_from_the_oldest(hosts, relay):
    """README: at start the API loads the last 500 messages of `chat_controlled`; a cursor older than what
    it keeps is answered from the oldest message kept (not refused, not from the topic's beginning)."""
    a, _ = hosts
    headers = sign_in(a.url, f"reader-{secrets.token_hex(3)}")
    old_cursor = requests.get(f"{a.url}/messages", headers=headers, timeout=30).json()["cursor"]
    sent = relay(f"writer-{secrets.token_hex(3)}", 520)
    a.stop()
    a.start()
    a.wait_healthy()
    deadline = time.monotonic() + 60
    while not (health := requests.get(f"{a.url}/health", timeout=10).json())["feed"]["caught_up"]:
        assert time.monotonic() < deadline, health
        time.sleep(0.2)
    latest = requests.get(f"{a.url}/messages", params={"limit": 500}, headers=headers, timeout=30).json()
    assert [m["id"] for m in latest["messages"]] == sent[-500:]
    older = requests.get(f"{a.url}/messages", params={"after": old_cursor, "limit": 500}, headers=headers, timeout=30)
    assert older.status_code == 200, older.text
    assert [m["id"] for m in older.json()["messages"]] == sent[-500:]  # from the oldest kept, 20 fewer


def test_a_session_from_one_host_works_on_the_other_and_a_sign_out_is_refused_everywhere(hosts):
    a, b = hosts
    name = f"ana-{secrets.token_hex(3)}"
    headers = sign_in(a.url, name)
    assert requests.get(f"{b.url}/messages", headers=headers, timeout=30).status_code == 200
    taken = requests.post(f"{b.url}/sessions", json={"author": name}, timeout=30)
    assert taken.status_code == 409 and "in use by another session" in taken.json()["error"]
    assert requests.delete(f"{a.url}/sessions", headers=headers, timeout=30).status_code == 204
    signed_out = time.monotonic()
    while (status := requests.get(f"{b.url}/messages", headers=headers, timeout=30).status_code) == 200:
        assert time.monotonic() - signed_out < 30
    print(f"\nsign-out on host a refused on host b after {1000 * (time.monotonic() - signed_out):.0f} ms")
    assert status == 401
    assert requests.post(f"{b.url}/sessions", json={"author": name}, timeout=30).status_code == 201


def test_two_hosts_racing_for_free_names_grant_each_once(hosts):
    a, b = hosts
    names = [f"race-{secrets.token_hex(4)}" for _ in range(30)]

    def claim(args):
        url, name = args
        return name, requests.post(f"{url}/sessions", json={"author": name}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, [(host.url, name) for name in names for host in (a, b)]))
    granted = Counter(name for name, status in results if status == 201)
    refused = Counter(name for name, status in results if status == 409)
    assert granted == Counter(names) and refused == Counter(names), results


PASSWORD = "correct horse battery"
MODERATOR = {"Authorization": f"Bearer {ADMIN}"}


def sign_up(url: str, author: str) -> requests.Response:
    return requests.post(f"{url}/accounts", json={"author": author, "password": PASSWORD}, timeout=60)


def account_session(url: str, author: str) -> requests.Response:
    return requests.post(f"{url}/sessions", json={"author": author, "password": PASSWORD}, timeout=60)


def test_two_hosts_racing_for_one_name_spelled_two_ways_grant_it_once(hosts):
    a, b = hosts
    tags = [secrets.token_hex(3) for _ in range(12)]
    # the same name on each host at once, spelled with a Latin and a Cyrillic а
    pairs = [(f"Lucía-{t}", f"LUCÍА-{t}") for t in tags]

    def race(args):
        url, name = args
        answer = sign_up(url, name)
        return name, answer.status_code, answer.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(race, [job for latin, cyrillic in pairs for job in ((a.url, latin), (b.url, cyrillic))])
        )
    by_name = {name: (status, body) for name, status, body in results}
    for latin, cyrillic in pairs:
        statuses = sorted((by_name[latin][0], by_name[cyrillic][0]))
        assert statuses == [201, 409], (latin, cyrillic, by_name[latin], by_name[cyrillic])
        winner = latin if by_name[latin][0] == 201 else cyrillic
        loser = cyrillic if winner == latin else latin
        assert by_name[loser][1]["code"] == "name_taken"
        for host in (a, b):  # the loser's spelling signs in to the winner's account, on either host
            session = account_session(host.url, loser)
            assert session.status_code == 201, session.text
            assert session.json()["author"] == winner
            headers = {"Authorization": f"Bearer {session.json()['token']}"}
            assert requests.delete(f"{host.url}/sessions", headers=headers, timeout=30).status_code == 204


def publish_block(bootstrap: str, author: str) -> None:
    """The ledger's block notice for `author` on `chat_notices`."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    notice = {
        "id": f"{uuid.uuid4()}:strike",
        "author": author,
        "kind": "blocked",
        "strike": 3,
        "limit": contract.STRIKE_LIMIT,
        "terms": ["mierda"],
        "message_id": str(uuid.uuid4()),
        "text": contract.notice_text("blocked", 3, contract.STRIKE_LIMIT, ["mierda"]),
        "timestamp": datetime.now(UTC).strftime(contract.TIMESTAMP_FORMAT),
    }
    producer.send(contract.TOPIC_NOTICES, key=author.encode(), value=json.dumps(notice).encode()).get(timeout=10)
    producer.close()


def test_a_blocked_account_stays_out_under_every_spelling_on_every_host(hosts, kafka_only):
    a, b = hosts
    tag = secrets.token_hex(3)
    name = f"troll-{tag}"
    variants = [name.upper(), name.replace("l", "I"), name.replace("o", "\u043e"), name.replace("-", "\u2010")]
    assert sign_up(a.url, name).status_code == 201
    session = account_session(b.url, name)  # signed in from this address, on host b
    assert session.status_code == 201
    headers = {"Authorization": f"Bearer {session.json()['token']}"}
    publish_block(kafka_only, name)
    for host in hosts:
        eventually(
            f"{host.name} reads the block",
            lambda h=host: requests.get(f"{h.url}/users/{name}", timeout=30).json().get("is_blocked"),
        )
    try:
        for host in hosts:
            assert (
                requests.post(f"{host.url}/messages", json={"data": "hola"}, headers=headers, timeout=30).status_code
                == 403
            )
            for variant in variants:
                refused = sign_up(host.url, variant)
                assert (refused.status_code, refused.json()["code"]) == (409, "name_taken"), (host.name, variant)
                guest = requests.post(f"{host.url}/sessions", json={"author": variant}, timeout=30)
                assert (guest.status_code, guest.json()["code"]) == (409, "name_taken"), (host.name, variant)
            # a brand-new name from the address the blocked account signed in from is held, on every host
            (held,) = eventually(  # in a tuple: a refusal is a falsy Response
                f"{host.name} holds the address",
                lambda h=host: (r := sign_up(h.url, f"fresh-{tag}")).status_code == 403 and (r,),
            )
            assert held.json()["code"] == "address_held" and int(held.headers["Retry-After"]) > 86_000
        holds = requests.get(f"{b.url}/admin/holds", headers=MODERATOR, timeout=30).json()["holds"]
        assert {"address": "127.0.0.1", "authors": [name]} == {k: v for k, v in holds[0].items() if k != "until"}
    finally:
        lifted = requests.delete(f"{a.url}/admin/holds/127.0.0.1", headers=MODERATOR, timeout=30)
    assert lifted.status_code == 204
    (granted,) = eventually(
        "host b reads the lift", lambda: (r := sign_up(b.url, f"fresh-{tag}")).status_code == 201 and (r,)
    )
    assert granted.json() == {"author": f"fresh-{tag}"}
    assert requests.get(f"{a.url}/admin/holds", headers=MODERATOR, timeout=30).json() == {"holds": []}


def test_accounts_outlive_a_restart(hosts):
    a, b = hosts
    name = f"Zoë-{secrets.token_hex(3)}"
    assert sign_up(a.url, name).status_code == 201
    b.stop()
    b.start()
    b.wait_healthy()
    session = account_session(b.url, name.upper())
    assert (session.status_code, session.json()["author"]) == (201, name)
    assert sign_up(b.url, name.lower()).status_code == 409


def test_sessions_outlive_a_restart_of_every_host(hosts):
    a, b = hosts
    headers = sign_in(b.url, f"zoe-{secrets.token_hex(3)}")
    for host in hosts:
        host.stop()
    for host in hosts:
        host.start()
    for host in hosts:
        host.wait_healthy()
        assert requests.get(f"{host.url}/messages", headers=headers, timeout=30).status_code == 200
