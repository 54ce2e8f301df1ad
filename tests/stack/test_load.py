"""Load: 50 simulated users for a minute against the real stack (`make up`'s processes, a real broker,
Spark and Delta). Nothing accepted is lost or duplicated, for any reader or in Delta, and nothing is a 5xx.
How fast it goes is bench/'s business (bench/api_load.py), not this test's."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

pytestmark = pytest.mark.integration

USERS = 50
SECONDS = 60
TEXTS = (
    "hola a todos",
    "¿qué tal el día?",
    "good morning 👋",
    "ok, ahora voy",
    "¡genial! 🎉",
    "see you at 5",
    "gracias, de verdad",
    "lol",
    "¿alguien para un café? ☕",
    "vale",
)


@dataclass
class User:
    name: str
    http: requests.Session = field(default_factory=requests.Session)
    accepted: list[str] = field(default_factory=list)  # ids of its 202s, in order
    statuses: Counter = field(default_factory=Counter)  # every answer (and connection error) it got
    received: list[str] = field(default_factory=list)  # ids of the load's messages it read, in order
    cursor: str | None = None
    failure: BaseException | None = None

    def request(self, method: str, path: str, **kwargs) -> requests.Response | None:
        try:
            response = self.http.request(method, path, timeout=60, **kwargs)
        except requests.RequestException as exc:
            self.statuses[type(exc).__name__] += 1
            return None
        self.statuses[response.status_code] += 1
        return response

    def read(self, api: str, prefix: str) -> None:
        params = {"limit": 500, **({"after": self.cursor} if self.cursor else {})}
        response = self.request("GET", f"{api}/messages", params=params)
        if response is not None and response.status_code == 200:
            body = response.json()
            self.received += [m["id"] for m in body["messages"] if m["author"].startswith(prefix)]
            self.cursor = body["cursor"]


def simulate(user: User, api: str, prefix: str, start: float, end: float) -> None:
    """Sign in, read the history, then until `end`: post about once a second, and read what is new."""
    try:
        response = user.request("POST", f"{api}/sessions", json={"author": user.name})
        assert response is not None and response.status_code == 201, response
        user.http.headers["Authorization"] = f"Bearer {response.json()['token']}"
        user.read(api, prefix)
        rng = random.Random(user.name)
        time.sleep(max(0.0, start - time.monotonic()) + rng.random())
        while time.monotonic() < end:
            posted = user.request("POST", f"{api}/messages", json={"data": rng.choice(TEXTS)})
            if posted is not None and posted.status_code == 202:
                user.accepted.append(posted.json()["id"])
            user.read(api, prefix)
            time.sleep(rng.uniform(0.5, 1.5))
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        user.failure = exc


def delta_message_ids(stack, prefix: str) -> list[str]:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(str(stack.data_dir / "warehouse" / "messages")).to_pyarrow_table(
        columns=["message_id", "author"]
    )
    return table.filter(pc.starts_with(table["author"], prefix))["message_id"].to_pylist()


def test_fifty_users_for_a_minute_lose_and_duplicate_nothing(chat_stack):
    api = chat_stack.api_url
    prefix = f"load-{secrets.token_hex(3)}-"
    users = [User(f"{prefix}{i:02d}") for i in range(USERS)]
    start = time.monotonic() + 5
    end = start + SECONDS
    threads = [threading.Thread(target=simulate, args=(u, api, prefix, start, end), daemon=True) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 120)
    assert not [u.failure for u in users if u.failure], [u.failure for u in users if u.failure][:3]
    accepted = [i for u in users for i in u.accepted]
    statuses = sum((u.statuses for u in users), Counter())

    # every reader goes on reading until it has every accepted message
    deadline = time.monotonic() + 240
    wanted = set(accepted)
    for u in users:
        while not wanted <= set(u.received) and time.monotonic() < deadline:
            u.read(api, prefix)
            time.sleep(0.2)
    in_delta = []
    while time.monotonic() < deadline + 120:
        in_delta = delta_message_ids(chat_stack, prefix)
        if len(in_delta) >= len(accepted):
            break
        time.sleep(1)
    statuses = sum((u.statuses for u in users), Counter())
    print(
        f"load: {USERS} users: {len(accepted)} messages accepted, "
        f"answers {dict(sorted(statuses.items(), key=str))}; {len(in_delta)} in Delta"
    )

    assert all(u.accepted for u in users), [u.name for u in users if not u.accepted]  # the load ran, for everyone
    assert len(set(accepted)) == len(accepted)
    assert not [s for s in statuses if not isinstance(s, int) or s >= 500], statuses
    for u in users:
        assert Counter(u.received) == Counter(wanted), f"{u.name}: missing or duplicated messages"
        own = [i for i in u.received if i in set(u.accepted)]
        assert own == u.accepted, f"{u.name}: its own messages out of order"
    assert Counter(in_delta) == Counter(wanted), "Delta messages: missing or duplicated"


@pytest.mark.timeout(600)
def test_three_hundred_waiting_readers_each_get_every_message_exactly_once(chat_stack):
    """bench/capacity.py at a small scale: 300 readers long-poll at once (raw keep-alive sockets), messages
    are posted through the API and the relay, and every reader gets each of them once (by id)."""
    from bench.capacity import capacity

    level = capacity(chat_stack.api_url, levels=(300,), messages=3, interval_s=0.2)["levels"]["300"]
    assert (level["readers"], level["messages"], level["missing"], level["duplicates"]) == (300, 3, 0, 0)
    assert level["reader_errors"] == {} and level["exactly_once"]
