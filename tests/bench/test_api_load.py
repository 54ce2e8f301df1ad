"""The API benchmarks (bench/api_load.py, bench/e2e_latency.py, bench/block_latency.py).

Unit tests for the percentile helper and the bench's clean texts; short runs of
each benchmark against the real stack, checking that what they report is what
the API really did.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench import block_latency, e2e_latency
from bench.api_load import CLEAN_TEXTS, ApiClient, PostConnection, api_posts_per_s, latency_summary, percentile
from config import contract
from tests.conftest import auth

# ---------------------------------------------------------------------------------------------
# Unit


def test_percentile_interpolates_between_ranks_like_numpy():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([10, 20, 30, 40], 25) == pytest.approx(17.5)


def test_percentile_of_small_samples_stays_within_them():
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([3, 1, 2], 50) == 2  # order does not matter
    five = [12.0, 30.0, 18.0, 25.0, 40.0]
    assert min(five) <= percentile(five, 1) <= percentile(five, 50) <= percentile(five, 99) <= max(five)


@pytest.mark.parametrize("q", [-1, 101, float("nan")])
def test_percentile_refuses_out_of_range(q):
    with pytest.raises(ValueError):
        percentile([1, 2, 3], q)


def test_latency_summary():
    assert latency_summary([1.0, 2.0, 3.0, 4.0]) == {"p50": 2.5, "p90": 3.7, "p99": 4.0, "max": 4.0}
    assert latency_summary([], quantiles=(50, 99)) == {"p50": None, "p99": None, "max": None}


def test_clean_texts_hold_no_listed_word():
    # the relay's matching is tolerant (repeated letters, stand-ins, accents, plurals); compare
    # each word of the texts by the same key the moderation module gives a listed word
    from pipelines.moderation import word_key
    from pipelines.wordlists import load_word_lists

    lists = load_word_lists()
    keys = {word_key(w) for w in lists.profane}
    for text in CLEAN_TEXTS + (block_latency.CLEAN_PROBE,):
        for word in re.findall(r"\w+", text):
            key = word_key(word)
            assert not {key, key.removesuffix("s"), key.removesuffix("es")} & keys, (word, text)


def test_api_client_refuses_non_http_urls():
    with pytest.raises(ValueError):
        ApiClient("ftp://example.org")


class _Echo(BaseHTTPRequestHandler):
    """Answers a POST with its path, token and body as JSON; the body's "say" picks the status and headers."""

    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        say = json.loads(body).get("say", "")
        _Echo.connections.add(self.client_address[1])
        out = json.dumps(
            {
                "path": self.path,
                "auth": self.headers["Authorization"],
                "body": body.decode(),
                "type": self.headers["Content-Type"],
            }
        ).encode()
        self.send_response(400 if say == "bad" else 202)
        if say != "no-length":
            self.send_header("Content-Length", str(len(out)))
        if say in ("close", "no-length"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Echo.connections.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def test_post_connection_reads_each_answer_on_one_connection_and_reconnects_after_close(echo_url):
    with PostConnection(echo_url, "tok") as conn:
        ok, bad, close, after = (
            conn.request_for(json.dumps({"say": say, "data": "¿qué?"}).encode())
            for say in ("", "bad", "close", "after")
        )
        answers = [conn.post(r) for r in (ok, ok, bad, ok)]
        assert [status for status, _ in answers] == [202, 202, 400, 202]
        first = json.loads(answers[0][1])
        assert first == {
            "path": "/api/messages",
            "auth": "Bearer tok",
            "type": "application/json",
            "body": json.dumps({"say": "", "data": "¿qué?"}),
        }
        assert len(_Echo.connections) == 1  # keep-alive: four requests, one connection
        assert conn.post(close)[0] == 202
        assert json.loads(conn.post(after)[1])["body"] == json.dumps({"say": "after", "data": "¿qué?"})
        assert len(_Echo.connections) == 2  # the server closed it: the next POST opened another
        status, body = conn.post(conn.request_for(b'{"say": "no-length"}'))  # a body read to the end
        assert status == 202 and json.loads(body)["body"] == '{"say": "no-length"}'


def test_post_connection_reports_a_server_that_is_gone():
    from stack.broker import free_port

    with PostConnection(f"http://127.0.0.1:{free_port()}", "tok", timeout_s=2) as conn, pytest.raises(ConnectionError):
        conn.post(conn.request_for(b"{}"))


# ---------------------------------------------------------------------------------------------
# Against the running stack


def _messages_by(api_url: str, cursor: str, prefix: str) -> dict[str, dict]:
    """Every message after `cursor` whose author starts with `prefix` and that Kafka has before a marker this
    sends now: `chat` has one partition, so once the marker is read, so is everything accepted before it."""
    reader = auth(api_url, "bench-test-reader")
    with requests.Session() as http:
        marker = http.post(f"{api_url}/messages", json={"data": "marker"}, headers=reader, timeout=20).json()["id"]
        found: dict[str, dict] = {}
        seen: set[str] = set()
        while marker not in seen:  # a marker that never comes is left to pytest-timeout
            body = http.get(
                f"{api_url}/messages", params={"after": cursor, "wait": 5, "limit": 500}, headers=reader, timeout=20
            ).json()
            cursor = body["cursor"]
            seen |= {m["id"] for m in body["messages"]}
            found.update({m["id"]: m for m in body["messages"] if m["author"].startswith(prefix)})
    return found


def _one_partition(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [described] = admin.describe_topics([contract.TOPIC_CHAT])
        return len(described["partitions"]) == 1
    finally:
        admin.close()


def _cursor(api_url: str) -> str:
    return requests.get(
        f"{api_url}/messages", params={"limit": 1}, headers=auth(api_url, "bench-test-reader"), timeout=10
    ).json()["cursor"]


@pytest.mark.integration
def test_api_load_counts_what_the_api_accepted(chat_stack):
    api = chat_stack.api_url
    cursor = _cursor(api)
    result = api_posts_per_s(api, clients=4, seconds=3, warmup_s=1)

    assert result["accepted"] > 0 and result["posts_per_s"] > 0
    assert result["no_5xx"], result
    assert result["clients"] == 4 and result["seconds"] == 3
    assert result["accepted"] == pytest.approx(result["posts_per_s"] * 3, abs=0.2)
    assert result["requests"] == result["accepted"] + sum(result["errors"].values())
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert result["accepted_total"] > result["accepted"]  # the warm-up second posted too

    # every 202 the bench counted is a message readers get (and nothing more), unmasked: clean text
    assert _one_partition(chat_stack.kafka_bootstrap)
    messages = _messages_by(api, cursor, result["author_prefix"])
    assert len(messages) == result["accepted_total"]
    assert {m["data"] for m in messages.values()} <= set(CLEAN_TEXTS)
    assert len({m["author"] for m in messages.values()}) == 4


@pytest.mark.integration
def test_e2e_latency_matches_every_id(chat_stack):
    result = e2e_latency.measure(chat_stack.api_url, rate=10, seconds=5, drain_s=30, ramp_s=1)

    assert result["sent"] == result["scheduled"] == 50
    assert result["errors"] == {}
    assert result["missing"] == 0 and result["missing_ids"] == [], result
    assert result["received"] == 50
    assert result["unexpected"] == 0
    assert result["p50"] <= result["p90"] <= result["p99"] <= result["max"]
    assert result["p50"] > 0
    # what was really sent over the time it took: never more than the schedule allowed
    assert 0 < result["achieved_rate"] <= result["rate"] == 10
    # the clock started once the ledger had recorded the warm-up message: GET /users counts it
    assert result["ledger_warmup_s"] * 1000 >= result["warmup_ms"] > 0
    [slowest] = result["slowest"]  # the slowest 1% of 50: one
    assert result["with_ramp"]["sent"] == 60 and result["with_ramp"]["max"] >= result["max"]
    assert slowest["ms"] == result["max"] and slowest["sent_at_s"] >= 0  # sent after the ramp


class _WarmUpOnly(dict):
    """Arrivals that keep only the first message noted (the warm-up probe): a reader that goes deaf."""

    def setdefault(self, key, default=None):
        return default if self else super().setdefault(key, default)


@pytest.mark.integration
def test_e2e_latency_reports_missing_messages_instead_of_hanging(chat_stack, monkeypatch):
    real_run = e2e_latency._Reader.run

    def deaf_run(reader):
        reader.arrivals = _WarmUpOnly()
        real_run(reader)

    monkeypatch.setattr(e2e_latency._Reader, "run", deaf_run)
    # a hang is left to pytest-timeout; what matters is the report
    result = e2e_latency.measure(chat_stack.api_url, rate=5, seconds=1, drain_s=2, ramp_s=0)

    assert result["sent"] == 5 and result["received"] == 0 and result["missing"] == 5
    assert len(result["missing_ids"]) == 5 and result["p50"] is None and result["max"] is None


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_block_latency_blocks_the_user(chat_stack):
    lines: list[str] = []
    result = block_latency.measure(chat_stack.api_url, users=1, timeout_s=400, progress=lines.append)

    assert result["failed"] == [], (result, lines)
    assert len(result["samples"]) == 1 and result["samples"][0] > 0
    assert result["p50"] == result["p99"] == result["max"] == result["samples"][0]
    assert result["not_blocked"] == []
    [author] = result["authors"]
    assert any(line.startswith(f"{author}: blocked") for line in lines)
    user = requests.get(f"{chat_stack.api_url}/users/{author}", timeout=10).json()
    assert user["is_blocked"] is True and user["strikes"] >= 3
    posted = requests.post(
        f"{chat_stack.api_url}/messages", json={"data": "hola"}, headers=auth(chat_stack.api_url, author), timeout=10
    )
    assert posted.status_code == 403
