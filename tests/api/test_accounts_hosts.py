"""The sign-in and sign-up limits over two API processes with data directories of their own (two "hosts") on one
real Kafka broker: a brute force spread over both is throttled at the limit, give or take the guesses one host
answers before it has read the other's latest miss record from `chat_accounts`. Every process on the broker
counts these records, so each test comes from an address of its own (X-Forwarded-For, which the API takes from
127.0.0.1)."""

from __future__ import annotations

import secrets

import pytest
import requests

from tests.api.conftest import api_hosts, eventually

pytestmark = pytest.mark.integration

LIMIT = 6
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def hosts(kafka_only, tmp_path_factory):
    env = {"CHAT_SIGN_IN_LIMIT": str(LIMIT), "CHAT_SIGN_UP_LIMIT": str(LIMIT), "CHAT_SIGN_IN_WINDOW_S": "600"}
    with api_hosts(tmp_path_factory.mktemp("throttled-hosts"), kafka_only, env) as pair:
        yield pair


def new_address() -> dict:
    return {"X-Forwarded-For": f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"}


def sign_in(url: str, author: str, password: str, address: dict) -> requests.Response:
    return requests.post(f"{url}/sessions", json={"author": author, "password": password}, headers=address, timeout=60)


def sign_up(url: str, author: str, address: dict) -> requests.Response:
    return requests.post(f"{url}/accounts", json={"author": author, "password": PASSWORD}, headers=address, timeout=60)


def test_a_brute_force_spread_over_two_hosts_is_throttled_at_the_limit(hosts):
    a, b = hosts
    name = f"ana-{secrets.token_hex(3)}"
    created = sign_up(a.url, name, new_address())
    assert created.status_code == 201, created.text
    guesser = new_address()
    statuses = [sign_in((a, b)[n % 2].url, name, f"guess number {n}", guesser).status_code for n in range(3 * LIMIT)]
    assert set(statuses) == {401, 429}, statuses
    # per process alone it would take 2 x LIMIT; a guess one host answers before it read the other's record of
    # the guess before (milliseconds) may still pass: the documented overshoot
    assert LIMIT <= statuses.count(401) <= LIMIT + 2, statuses
    assert statuses[-LIMIT:] == [429] * LIMIT, statuses
    for host in hosts:  # locked on both, the right password included
        refused = sign_in(host.url, name.upper(), PASSWORD, new_address())
        assert (refused.status_code, refused.json()["code"]) == (429, "too_many_attempts")
        assert 0 < int(refused.headers["Retry-After"]) <= 600


def test_sign_ups_from_one_address_are_counted_over_both_hosts(hosts):
    a, b = hosts
    tag, address = secrets.token_hex(3), new_address()
    statuses = [sign_up((a, b)[n % 2].url, f"new-{tag}-{n}", address).status_code for n in range(2 * LIMIT)]
    assert LIMIT <= statuses.count(201) <= LIMIT + 2 and statuses[-LIMIT + 2 :] == [429] * (LIMIT - 2), statuses
    for host in hosts:
        eventually(
            f"{host.name} refuses sign-ups from the address",
            lambda h=host: sign_up(h.url, f"late-{tag}", address).status_code == 429,
        )
    assert sign_up(b.url, f"other-{tag}", new_address()).status_code == 201
