"""api/flood.py's repeated-message spam: which texts are "nearly the same", the window and its one strike, the
verdict on the record in `chat`, and what readers and the sender get, through two apps standing for two API
processes on one Kafka (an in-process stand-in that keeps every header and hands `chat` to each app's counter
when told)."""

from __future__ import annotations

import json

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from kafka.future import Future
from kafka.producer.future import RecordMetadata

from api.asgi import ChatAsgi
from api.flood import RepeatWindow, Spam, normalised, record_headers, text_key
from api.producer import ChatProducer
from config import contract, settings
from tests.api.conftest import make_app, sign_in
from tests.api.test_flood import Clock, post_asgi

# -- "nearly the same" ------------------------------------------------------------------------------------


def test_case_accents_wide_forms_spacing_punctuation_invisibles_and_repeated_letters_are_set_aside():
    same = [
        "Buy cheap coins at example.com!",
        "buy CHEAP   coins at example.com",
        "  BUY cheap coins at example . com!!!",
        "Buuuy cheap coins at example.com",
        "Ｂｕｙ ｃｈｅａｐ coins at example.com",  # fullwidth forms
        "buy chéap coins\tat\nexample.com",
        "buy ch\u200beap coins at example—com",  # a zero-width space, an em dash
    ]
    assert {normalised(text) for text in same} == {"buy cheap coins at example com"}
    assert len({text_key(text) for text in same}) == 1
    assert normalised("¡Hola, QUÉ tal! 😀😀😀") == "hola que tal 😀"
    assert normalised("李小龙  你好！") == "李小龙 你好"


def test_other_words_other_symbols_and_other_punctuation_are_other_texts():
    texts = [
        "buy cheap coins at example.com",
        "buy cheap coins at example.org",
        "buy cheap coin at example.com",
        "🔥 sale",
        "💰 sale",
        "???",
        "!!!",
        "? ?",
    ]
    assert len({normalised(text) for text in texts}) == len(texts)
    assert len({text_key(text) for text in texts}) == len(texts)
    # a text of punctuation only keeps it (collapsed and squeezed): repeating it is still repeating
    assert normalised("!!!!!") == normalised("!") == "!"


# -- the window -------------------------------------------------------------------------------------------


def test_the_third_copy_in_the_window_is_spam_and_only_the_first_spam_of_the_window_a_strike():
    clock = Clock()
    window = RepeatWindow(3, 30.0, clock)
    verdicts = []
    for i, text in enumerate(["Buy coins!", "buy coins", "hello", "BUY  COINS", "buy coins!!", "other"]):
        verdicts.append(window.judge("ana", f"m{i}", text))
        clock.now += 1
    assert verdicts == [None, None, None, Spam(3, 30.0, True), Spam(4, 30.0, False), None]
    assert verdicts[3].reason == "repeat:3/30s"
    assert window.judge("bob", "b0", "buy coins") is None  # another author's copies are theirs
    # a second text repeated within the same window: spam, but the window's strike is spent
    assert window.judge("ana", "o0", "other") is None
    assert window.judge("ana", "o1", "Other!") == Spam(3, 30.0, False)
    clock.now += 25  # m0 and m1 have left the window; m3 (the strike, 28 s before) still holds it
    assert window.judge("ana", "x0", "buy coins") == Spam(3, 30.0, False)  # m3, m4 and this one
    clock.now += 30  # everything has left
    assert [window.judge("ana", f"y{i}", "buy coins") for i in range(3)] == [None, None, Spam(3, 30.0, True)]


def test_a_message_kafka_did_not_take_does_not_count():
    window = RepeatWindow(2, 30.0, Clock())
    assert window.judge("ana", "m0", "hola") is None
    window.release("ana", "m0")
    assert window.judge("ana", "m1", "hola") is None
    assert window.judge("ana", "m2", "HOLA") == Spam(2, 30.0, True)


def test_messages_read_from_chat_count_once_and_their_strike_holds_the_window():
    clock = Clock()
    window = RepeatWindow(3, 30.0, clock)
    window.seen("ana", "p0", clock.now - 40, "buy coins", False)  # older than the window: not counted
    window.seen("ana", "p1", clock.now - 5, "buy coins", False)
    window.seen("ana", "p1", clock.now - 5, "buy coins", False)  # read again (a rewind): once
    window.seen("ana", "p2", clock.now - 4, "an advert", True)  # another process's spam strike
    assert window.judge("ana", "m0", "Buy coins") is None  # the second copy
    assert window.judge("ana", "m1", "buy coins") == Spam(3, 30.0, False)  # spam; the strike was p2's


def test_the_rule_needs_two_copies_and_a_window():
    with pytest.raises(ValueError):
        RepeatWindow(1, 30.0)
    with pytest.raises(ValueError):
        RepeatWindow(3, 0)


@pytest.mark.parametrize(
    "name, value", [("CHAT_SPAM_REPEATS", "1"), ("CHAT_SPAM_REPEATS", "three"), ("CHAT_SPAM_WINDOW_S", "0")]
)
def test_spam_settings_out_of_bounds_are_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=name):
        settings.load()


def test_the_verdict_travels_in_the_records_headers_after_its_id():
    assert record_headers("m1", None) == [("message_id", b"m1")]
    assert record_headers("m1", Spam(4, 30.0, False)) == [
        ("message_id", b"m1"),
        ("spam", b"repeat:4/30s"),
        ("spam_strike", b"false"),
    ]


# -- through the API: two processes, one `chat` -------------------------------------------------------------


class Chat(ChatProducer):
    """`chat` in memory, every header kept; `deliver()` hands what is new to every app's counter."""

    def __init__(self, clock: Clock) -> None:
        super().__init__("in-memory")
        self.clock = clock
        self.records: list[ConsumerRecord] = []
        self.apps: list = []
        self.delivered = 0

    def publish(self, topic, key, value, headers, what, wait=True):
        assert topic == contract.TOPIC_CHAT, topic
        offset = len(self.records)
        raw = json.dumps(value).encode()
        ts = int(self.clock() * 1000)
        self.records.append(
            ConsumerRecord(topic, 0, None, offset, ts, 0, key.encode(), raw, list(headers), None, 0, 0, 0)
        )
        return 0, offset

    def send_future(self, topic, key, value, headers, what):
        """The ASGI door's way to send (api/asgi.py): acknowledged at once."""
        partition, offset = self.publish(topic, key, value, headers, what)
        future = Future()
        future.success(RecordMetadata(topic, partition, None, offset, 0, None, 0, 0, 0))
        return future

    def sends_at_once(self, topic: str) -> bool:
        return True

    def deliver(self) -> None:
        for rec in self.records[self.delivered :]:
            for app in self.apps:
                app.extensions["chat_flood"].counter.handle(rec)
        self.delivered = len(self.records)

    def verdicts(self) -> list[tuple[str, dict]]:
        """(text, the record's spam headers) of every record in `chat`."""
        return [
            (json.loads(r.value)["data"], {k: v.decode() for k, v in r.headers if k != contract.MESSAGE_ID_HEADER})
            for r in self.records
        ]

    def as_relayed(self, rec: ConsumerRecord) -> tuple[bytes, list]:
        """The record as the relay publishes it to `chat_controlled` (tests/pipelines/test_spam.py runs the
        real relay on such records): its headers, then the spam verdict passed on."""
        message_id = dict(rec.headers)[contract.MESSAGE_ID_HEADER]
        spam = [(k, v) for k, v in rec.headers if k in (contract.SPAM_HEADER, contract.SPAM_STRIKE_HEADER)]
        return rec.value, [
            (contract.MESSAGE_ID_HEADER, message_id),
            (contract.CHAT_POSITION_HEADER, f"0:{rec.offset}".encode()),
            (contract.PROFANE_HEADER, b"false"),
            (contract.TERMS_HEADER, b"[]"),
            *spam,
        ]


@pytest.fixture
def two_processes(tmp_path):
    clock = Clock()
    chat = Chat(clock)
    apps = [make_app(tmp_path, RATE_LIMIT_MESSAGES=100, SPAM_REPEATS=3, SPAM_WINDOW_S=30.0) for _ in range(2)]
    for app in apps:
        app.extensions["chat_producer"] = chat
        flood = app.extensions["chat_flood"]
        flood.window.clock = flood.repeats.clock = clock
    chat.apps = apps
    return chat, clock, apps


def test_the_third_copy_across_two_processes_is_marked_and_a_differently_worded_message_is_not(two_processes):
    chat, clock, (a, b) = two_processes
    door_a, door_b = a.test_client(), b.test_client()
    ana = sign_in(door_a, "ana")
    posted = []
    for door, text in [(door_a, "Buy coins at example.com!"), (door_a, "buy coins at example.com")]:
        posted.append(door.post("/messages", json={"data": text}, headers=ana))
        clock.now += 1
    chat.deliver()  # process b has read both from `chat`
    for door, text in [
        (door_b, "BUY   coins at example . com"),
        (door_b, "buy coins at example.com!!"),
        (door_b, "coins are on sale at example.com"),
    ]:
        posted.append(door.post("/messages", json={"data": text}, headers=ana))
        clock.now += 1
    # the sender is answered as for any message
    assert [p.status_code for p in posted] == [202] * 5
    assert all(set(p.get_json()) == {"id", "author", "data", "timestamp"} for p in posted)
    assert chat.verdicts() == [
        ("Buy coins at example.com!", {}),
        ("buy coins at example.com", {}),
        ("BUY   coins at example . com", {"spam": "repeat:3/30s", "spam_strike": "true"}),
        ("buy coins at example.com!!", {"spam": "repeat:4/30s", "spam_strike": "false"}),
        ("coins are on sale at example.com", {}),
    ]
    chat.deliver()
    # process a, having read b's records, judges the next copy as b would: spam, the window's strike spent
    door_a.post("/messages", json={"data": "buy coins at example.com"}, headers=ana)
    assert chat.verdicts()[-1][1] == {"spam": "repeat:5/30s", "spam_strike": "false"}
    assert door_b.get("/chat/settings").get_json()["spam"] == {"repeats": 3, "window_s": 30.0}


def test_readers_never_get_the_spam_and_its_sender_is_told_of_the_strike_in_their_language(two_processes):
    chat, clock, (a, _) = two_processes
    client = a.test_client()
    ana, bob = sign_in(client, "ana"), sign_in(client, "bob")
    for text in ["hola a todos", "HOLA a todos!", "hola   a todos", "hola a todos...", "¿qué tal?"]:
        assert client.post("/messages", json={"data": text}, headers=ana).status_code == 202
        clock.now += 1
    moderation = a.extensions["chat_moderation"]
    moderation.notices.mark_caught_up()  # the notices board has read `chat_notices` (empty)
    feed = a.extensions["chat_feed"]
    for offset, rec in enumerate(chat.records):
        feed.add_record(*chat.as_relayed(rec), partition=0, offset=offset)
    served = client.get("/messages", headers=bob).get_json()["messages"]
    assert [m["data"] for m in served] == ["hola a todos", "HOLA a todos!", "¿qué tal?"]
    notices = client.get("/users/ana/notices", headers={**ana, "Accept-Language": "es"}).get_json()["notices"]
    strike_id = chat.records[2].headers[0][1].decode()
    assert notices == [
        {
            "id": f"{strike_id}:strike",
            "author": "ana",
            "kind": "warning",
            "strike": 1,
            "limit": contract.STRIKE_LIMIT,
            "terms": [],
            "message_id": strike_id,
            "text": "Aviso: falta 1 de 3 por spam: has enviado el mismo mensaje una y otra vez y nadie más lo ha "
            "visto. Con 3 faltas se te bloquea.",
            "timestamp": json.loads(chat.records[2].value)["timestamp"],
            "category": "spam",
        }
    ]
    assert client.get("/users/ana", headers=ana).get_json()["strikes"] == 1  # before the ledger says so


def test_the_asgi_door_marks_the_third_copy_as_the_flask_door_does(two_processes):
    chat, clock, (a, b) = two_processes
    token = sign_in(a.test_client(), "ana")["Authorization"].removeprefix("Bearer ")
    door = ChatAsgi(b)
    answers = []
    for text in ["Buy coins!", "buy coins", "BUY coins!!", "something else"]:
        answers.append(post_asgi(door, token, text))
        clock.now += 1
    assert [answer.status for answer in answers] == [202] * 4
    assert chat.verdicts() == [
        ("Buy coins!", {}),
        ("buy coins", {}),
        ("BUY coins!!", {"spam": "repeat:3/30s", "spam_strike": "true"}),
        ("something else", {}),
    ]
