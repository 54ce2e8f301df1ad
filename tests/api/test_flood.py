"""api/flood.py: the per-user rate limit's sliding window, the slow mode, and their 429s through both doors of
two apps standing for two API processes on one Kafka (an in-process stand-in that hands `chat` and `chat_actions`
records to each app's followers when told, so the tail's lag is the test's to choose)."""

from __future__ import annotations

import json

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.future import Future
from kafka.producer.future import RecordMetadata

from api.asgi import ChatAsgi
from api.errors import ApiError
from api.flood import REWIND_RECORDS, ChatCounter, PostWindow, Refused, SlowMode
from api.producer import ChatProducer
from config import contract
from tests.api.asgi_client import Request, run
from tests.api.conftest import ADMIN, make_app, sign_in, token_for

MODERATOR = {"Authorization": f"Bearer {ADMIN}"}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refusal(call) -> ApiError:
    with pytest.raises(Refused) as caught:
        call()
    return caught.value


def record(
    topic: str, key: str | bytes | None, value: dict | None, offset: int, at_s: float, message_id: str | None = None
):
    """A record as kafka-python's consumer hands it to a follower."""
    headers = [(contract.MESSAGE_ID_HEADER, message_id.encode())] if message_id else []
    raw = None if value is None else json.dumps(value).encode()
    return ConsumerRecord(
        topic,
        0,
        None,
        offset,
        int(at_s * 1000),
        0,
        key.encode() if isinstance(key, str) else key,
        raw,
        headers,
        None,
        0,
        0,
        0,
    )


# -- the window -------------------------------------------------------------------------------------------


def test_the_window_admits_the_limit_then_refuses_until_the_oldest_leaves_it():
    clock = Clock()
    window = PostWindow(3, 10.0, clock)
    for i in range(3):
        window.admit("ana", f"m{i}")
        clock.now += 1
    refused = refusal(lambda: window.admit("ana", "m3"))
    assert (refused.status, refused.code, refused.headers["Retry-After"]) == (429, "rate_limited", "7")
    assert refused.params == {"seconds": 7, "limit": 3, "window": 10.0}
    assert window.counted("ana") == 3  # the refused one is not counted
    window.admit("bob", "b0")  # another user is not held up
    clock.now += 7  # m0 (sent at t0) leaves the window at t0 + 10
    window.admit("ana", "m3")
    assert refusal(lambda: window.admit("ana", "m4")).headers["Retry-After"] == "1"


def test_a_message_kafka_refused_does_not_count():
    window = PostWindow(1, 5.0, Clock())
    window.admit("ana", "m0")
    window.release("ana", "m0")
    window.admit("ana", "m1")
    assert window.counted("ana") == 1


def test_messages_read_from_chat_count_once_whichever_process_took_them():
    clock = Clock()
    window = PostWindow(3, 10.0, clock)
    window.admit("ana", "mine")
    window.seen("ana", "mine", clock.now, 10)  # this process's own message, read back from `chat`
    window.seen("ana", "theirs", clock.now - 2, 10)  # taken by another process two seconds ago
    window.seen("ana", "old", clock.now - 30, 10)  # out of the window (and of the horizon): not kept
    assert window.counted("ana") == 2
    window.admit("ana", "m2")
    assert refusal(lambda: window.admit("ana", "m3")).code == "rate_limited"


def test_an_overshoot_from_other_processes_is_waited_out_whole():
    """Five messages in the window against a limit of three: a sixth waits until three have left it."""
    clock = Clock()
    window = PostWindow(3, 10.0, clock)
    for i in range(5):
        window.seen("ana", f"m{i}", clock.now - 5 + i, 10)
    assert refusal(lambda: window.admit("ana", "m5")).params["seconds"] == 7  # m2 (sent at now-3) leaves at now+7


def test_slow_mode_holds_a_user_to_one_message_every_interval():
    clock = Clock()
    window = PostWindow(100, 10.0, clock)
    window.admit("ana", "m0", slow_mode_s=30)
    clock.now += 12
    refused = refusal(lambda: window.admit("ana", "m1", slow_mode_s=30))
    assert (refused.code, refused.headers["Retry-After"], refused.params["interval"]) == ("slow_mode", "18", 30)
    window.admit("bob", "b0", slow_mode_s=30)  # bob has sent nothing lately
    clock.now += 18
    window.admit("ana", "m1", slow_mode_s=30)
    window.admit("ana", "m2", slow_mode_s=0)  # lifted


def test_the_longer_wait_names_the_refusal():
    clock = Clock()
    window = PostWindow(2, 60.0, clock)
    window.admit("ana", "m0")
    window.admit("ana", "m1")
    assert refusal(lambda: window.admit("ana", "m2", slow_mode_s=5)).code == "rate_limited"  # 60 s > 5 s
    clock.now += 61
    window.admit("ana", "m2", slow_mode_s=5)
    assert refusal(lambda: window.admit("ana", "m3", slow_mode_s=5)).code == "slow_mode"


def test_pruning_forgets_what_left_the_horizon_and_the_authors_with_nothing_left():
    clock = Clock()
    window = PostWindow(5, 10.0, clock)
    window.admit("ana", "m0")
    clock.now += 5
    window.admit("bob", "b0")
    clock.now += 6
    window.prune(10.0)
    assert window.sizes() == {"rate_authors": 1, "rate_messages": 1}


@pytest.mark.parametrize("limit, window_s", [(0, 5.0), (-1, 5.0), (3, 0.0), (3, -2.0), (3, float("nan"))])
def test_a_window_that_cannot_admit_anything_is_refused(limit, window_s):
    with pytest.raises(ValueError):
        PostWindow(limit, window_s)


# -- the followers ------------------------------------------------------------------------------------------


def test_the_counter_reads_authors_and_ids_from_chat_records_and_starts_at_the_recent_past():
    clock = Clock()
    window, slow = PostWindow(3, 10.0, clock), SlowMode()
    counter = ChatCounter(window, slow)
    counter.handle(record(contract.TOPIC_CHAT, "ana", {"data": "x"}, 7, clock.now - 1, "id-1"))
    counter.handle(record(contract.TOPIC_CHAT, "ana", {"data": "x"}, 8, clock.now - 1, "id-1"))  # a duplicate
    counter.handle(record(contract.TOPIC_CHAT, "ana", {"data": "x"}, 9, clock.now - 1))  # no id: its position
    counter.handle(record(contract.TOPIC_CHAT, None, None, 10, clock.now))  # no key: nobody's
    counter.handle(record(contract.TOPIC_CHAT, b"\xff", None, 11, clock.now))  # a key that is not UTF-8
    assert window.counted("ana") == 2 and counter.positions == {0: 12}
    assert window.sizes()["rate_authors"] == 1
    assert counter.first_offsets({0: 0, 1: 100}, {0: REWIND_RECORDS + 50, 1: 120}) == {0: 50, 1: 100}


def test_the_counter_keeps_messages_as_long_as_the_slow_mode_needs_them():
    clock = Clock()
    window, slow = PostWindow(3, 10.0, clock), SlowMode()
    counter = ChatCounter(window, slow)
    slow.apply({"action": "slow_mode", "seconds": 60, "id": "a", "timestamp": "t"})
    counter.add("ana", "m0", clock.now - 30)
    counter.idle()
    assert refusal(lambda: window.admit("ana", "m1", slow.seconds)).params["seconds"] == 30


def test_slow_mode_follows_the_last_valid_action_and_ignores_the_others():
    slow = SlowMode()
    actions = [
        {"id": "a1", "action": "slow_mode", "seconds": 10, "timestamp": "2026-12-01 10:00:00"},
        {"id": "u1", "action": "unblock", "author": "ana", "timestamp": "2026-12-01 10:00:01"},
        {"id": "a2", "action": "slow_mode", "seconds": -3},
        {"id": "a3", "action": "slow_mode", "seconds": True},
        {"id": "a4", "action": "slow_mode", "seconds": 99_999},
        {"id": "a5", "action": "slow_mode", "seconds": "10"},
    ]
    for offset, action in enumerate(actions):
        slow.handle(record(contract.TOPIC_ACTIONS, "slow_mode", action, offset, 0))
    slow.handle(record(contract.TOPIC_ACTIONS, "slow_mode", None, 6, 0))  # a value that is no JSON object
    assert (slow.seconds, slow.state.since, slow.state.action_id) == (10, "2026-12-01 10:00:00", "a1")
    assert slow.past(0, 6) and not slow.past(0, 7)
    slow.handle(record(contract.TOPIC_ACTIONS, "slow_mode", {"id": "a6", "action": "slow_mode", "seconds": 0}, 7, 0))
    assert (slow.seconds, slow.state.since) == (0, None)


# -- two API processes on one Kafka, through both doors --------------------------------------------------------


class SharedKafka(ChatProducer):
    """`chat` and `chat_actions` shared by the apps attached: what they send waits until `deliver()`, when
    every app's followers read it (as each process's tail would, after its lag)."""

    def __init__(self) -> None:
        super().__init__("in-memory")
        self.apps: list = []
        self.topics: dict[str, list] = {contract.TOPIC_CHAT: [], contract.TOPIC_ACTIONS: []}
        self.delivered = {topic: 0 for topic in self.topics}

    def _append(self, topic: str, key: str, value: dict, headers: list) -> tuple[int, int]:
        assert topic in self.topics, topic
        records = self.topics[topic]
        message_id = dict(headers).get(contract.MESSAGE_ID_HEADER, b"").decode() or None
        records.append(record(topic, key, value, len(records), self.clock(), message_id))
        return 0, len(records) - 1

    clock = staticmethod(lambda: 0.0)  # the record time; set per test

    def publish(self, topic, key, value, headers, what, wait=True):
        return self._append(topic, key, value, headers)

    def send_future(self, topic, key, value, headers, what):
        partition, offset = self._append(topic, key, value, headers)
        future = Future()
        future.success(RecordMetadata(topic, partition, None, offset, 0, None, 0, 0, 0))
        return future

    def sends_at_once(self, topic: str) -> bool:
        return True

    def deliver(self) -> None:
        for topic, records in self.topics.items():
            for rec in records[self.delivered[topic] :]:
                for app in self.apps:
                    flood = app.extensions["chat_flood"]
                    (flood.counter if topic == contract.TOPIC_CHAT else flood.slow_mode).handle(rec)
            self.delivered[topic] = len(records)

    def sent_by(self, author: str) -> int:
        return sum(1 for r in self.topics[contract.TOPIC_CHAT] if r.key == author.encode())


@pytest.fixture
def two_processes(tmp_path):
    kafka = SharedKafka()
    clock = Clock()
    kafka.clock = clock
    apps = [make_app(tmp_path, RATE_LIMIT_MESSAGES=3, RATE_LIMIT_WINDOW_S=10.0) for _ in range(2)]
    for app in apps:
        app.extensions["chat_producer"] = kafka
        app.extensions["chat_flood"].window.clock = clock
    kafka.apps = apps
    return kafka, clock, apps


def post_asgi(asgi: ChatAsgi, token: str, data: str = "hola", language: bytes = b"en"):
    headers = [
        (b"authorization", f"Bearer {token}".encode()),
        (b"content-type", b"application/json"),
        (b"accept-language", language),
    ]
    return run(asgi, Request("POST", "/messages", headers=headers, body=json.dumps({"data": data}).encode()))


def test_a_flooding_user_gets_the_limit_plus_what_the_other_process_took_before_its_tail_read_it(two_processes):
    kafka, clock, (a, b) = two_processes
    token = token_for(a.test_client(), "ana")  # one session, used on both processes
    door_a, door_b = a.test_client(), ChatAsgi(b)
    auth = {"Authorization": f"Bearer {token}"}
    statuses = [door_a.post("/messages", json={"data": "spam"}, headers=auth).status_code for _ in range(5)]
    statuses += [post_asgi(door_b, token).status for _ in range(5)]
    # neither tail has read the other's posts yet: each process let the limit through
    assert statuses == [202, 202, 202, 429, 429] * 2
    assert kafka.sent_by("ana") == 6
    kafka.deliver()  # the tails catch up: both now count six in the window
    assert door_a.post("/messages", json={"data": "spam"}, headers=auth).status_code == 429
    refused = post_asgi(door_b, token, language=b"es")
    assert refused.status == 429 and refused.headers["retry-after"] == "10"
    assert json.loads(refused.body) == {
        "error": "no enviado: estás enviando demasiado rápido (como máximo 3 mensajes cada 10 s); "
        "podrás volver a enviar en 10 s",
        "code": "rate_limited",
    }
    assert kafka.sent_by("ana") == 6  # nothing of the refused posts reached `chat`
    clock.now += 10
    assert door_a.post("/messages", json={"data": "again"}, headers=auth).status_code == 202


def test_signing_in_again_or_in_several_sessions_does_not_reset_the_limit(two_processes):
    kafka, clock, (a, b) = two_processes
    client = a.test_client()
    first = sign_in(client, "ana")
    for _ in range(3):
        assert client.post("/messages", json={"data": "x"}, headers=first).status_code == 202
    assert client.delete("/sessions", headers=first).status_code == 204
    second = sign_in(client, "ana")
    answer = client.post("/messages", json={"data": "x"}, headers=second)
    assert answer.status_code == 429 and answer.get_json()["code"] == "rate_limited"
    assert answer.headers["Retry-After"] == "10"
    assert kafka.sent_by("ana") == 3


def test_slow_mode_set_through_one_process_is_enforced_by_the_other_and_readable_by_anyone(two_processes):
    kafka, clock, (a, b) = two_processes
    ana = token_for(a.test_client(), "ana")
    door_b = ChatAsgi(b)
    assert b.test_client().get("/chat/settings").get_json() == {
        "slow_mode_s": 0,
        "slow_mode_since": None,
        "rate_limit": {"messages": 3, "window_s": 10.0},
        "guest_names": True,
        "password_min_chars": 10,
    }
    answer = a.test_client().put("/chat/slow_mode", json={"seconds": 30}, headers=MODERATOR)
    assert answer.status_code == 202
    action = answer.get_json()
    assert {k: action[k] for k in ("action", "seconds", "by")} == {
        "action": "slow_mode",
        "seconds": 30,
        "by": "moderator",
    }
    assert [json.loads(r.value) for r in kafka.topics[contract.TOPIC_ACTIONS]] == [action]
    kafka.deliver()
    settings = b.test_client().get("/chat/settings").get_json()
    assert (settings["slow_mode_s"], settings["slow_mode_since"]) == (30, action["timestamp"])
    assert post_asgi(door_b, ana).status == 202
    clock.now += 5
    kafka.deliver()  # process a reads ana's post from `chat`
    refused = a.test_client().post("/messages", json={"data": "x"}, headers={"Authorization": f"Bearer {ana}"})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "25"
    assert refused.get_json() == {
        "error": "not sent: slow mode is on (one message every 30 s); you can send again in 25 s",
        "code": "slow_mode",
    }
    assert a.test_client().put("/chat/slow_mode", json={"seconds": 0}, headers=MODERATOR).status_code == 202
    kafka.deliver()
    assert post_asgi(door_b, ana).status == 202  # lifted: the rate limit alone (2 of 3) holds
    assert b.test_client().get("/chat/settings").get_json()["slow_mode_s"] == 0


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"seconds": -1}, 400, "slow_mode_invalid"),
        ({"seconds": 3601}, 400, "slow_mode_invalid"),
        ({"seconds": 1.5}, 400, "slow_mode_invalid"),
        ({"seconds": "10"}, 400, "slow_mode_invalid"),
        ({"seconds": None}, 400, "slow_mode_invalid"),
        ({"seconds": True}, 400, "slow_mode_invalid"),
        ({}, 400, "field_required"),
        ({"seconds": 5, "room": "x"}, 400, "unknown_fields"),
    ],
)
def test_a_bad_slow_mode_is_refused_and_nothing_is_sent(two_processes, body, status, code):
    kafka, _, (a, _) = two_processes
    answer = a.test_client().put("/chat/slow_mode", json=body, headers=MODERATOR)
    assert (answer.status_code, answer.get_json()["code"]) == (status, code)
    assert kafka.topics[contract.TOPIC_ACTIONS] == []


def test_only_moderators_set_the_slow_mode(two_processes):
    kafka, _, (a, _) = two_processes
    client = a.test_client()
    assert client.put("/chat/slow_mode", json={"seconds": 5}).status_code == 401
    assert client.put("/chat/slow_mode", json={"seconds": 5}, headers=sign_in(client, "ana")).status_code == 403
    assert kafka.topics[contract.TOPIC_ACTIONS] == []


def test_health_reports_the_window_and_how_far_chat_is_counted(two_processes):
    kafka, _, (a, _) = two_processes
    client = a.test_client()
    assert client.post("/messages", json={"data": "x"}, headers=sign_in(client, "ana")).status_code == 202
    health = client.get("/health").get_json()
    assert (health["memory"]["rate_authors"], health["memory"]["rate_messages"]) == (1, 1)
    assert (health["rate_limit"]["positions"], health["rate_limit"]["slow_mode_s"]) == ({}, 0)
    kafka.deliver()  # the tail reads the post back: counted once, and the position moves on
    health = client.get("/health").get_json()
    assert (health["memory"]["rate_messages"], health["rate_limit"]["positions"]) == (1, {"0": 1})


def test_the_settings_and_the_slow_mode_through_the_asgi_door(two_processes):
    kafka, _, (a, b) = two_processes
    door_a, door_b = ChatAsgi(a), ChatAsgi(b)
    put = Request(
        "PUT",
        "/chat/slow_mode",
        headers=[
            (b"authorization", f"Bearer {ADMIN}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"15"),  # the WSGI side reads as many bytes as it is told
        ],
        body=b'{"seconds": 12}',
    )
    answer = run(door_a, put)
    assert answer.status == 202 and json.loads(answer.body)["seconds"] == 12
    kafka.deliver()
    settings = run(door_b, Request("GET", "/chat/settings"))
    assert settings.status == 200 and json.loads(settings.body)["slow_mode_s"] == 12
