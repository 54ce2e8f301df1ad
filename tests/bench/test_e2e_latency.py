"""bench/e2e_latency.py's explanation of the slowest 1%: trips split at their Kafka records, set against the
relay's and the ledger's batches (pure, then once against the running stack)."""

from __future__ import annotations

import os

import pytest

from bench import e2e_latency
from bench.e2e_latency import checkpoint_batches, explain_trips

T0 = 1_800_000_000.0  # epoch seconds of the run's start


def trip(mid: str, at: float, relay_ms: float, delivery_ms: float, ack_ms: float = 2.0):
    """(sent, arrived, chat, controlled) times of one message whose `chat` record was taken at `at`."""
    chat = T0 + at
    sent = chat + ack_ms / 1000
    controlled = chat + relay_ms / 1000
    arrived = controlled + delivery_ms / 1000
    return mid, sent, arrived, chat, controlled


def explain(trips, relay_batches=(), ledger_batches=()):
    sent, arrived, chat, controlled = {}, {}, {}, {}
    for mid, s, a, c, k in trips:
        sent[mid], arrived[mid] = s, a
        if c is not None:
            chat[mid], controlled[mid] = c, k
    return explain_trips(sent, arrived, chat, controlled, list(relay_batches), list(ledger_batches), T0)


def test_each_slow_message_gets_the_stage_that_took_longest_or_the_relays_batch_boundary():
    fast = [trip(f"f{i}", 0.5 + i * 0.01, 4, 6) for i in range(297)]
    slow = [
        trip("held", 30.2, 1500, 5),  # its record came while the relay moved from one batch to the next
        trip("relay", 10.0, 300, 5),
        trip("delivery", 20.0, 5, 400),
    ]
    relay_batches = [(0, T0 - 100, T0 + 30.0), (1, T0 + 30.4, None)]
    result = explain(fast + slow, relay_batches)

    assert result["count"] == 3  # 1% of 300
    assert result["causes"] == {"relay batch boundary": 1, "relay": 1, "delivery": 1}
    assert [m["cause"] for m in result["messages"]] == ["relay batch boundary", "delivery", "relay"]
    held = result["messages"][0]
    assert held["ms"] == pytest.approx(1500 + 5 - 2) and held["relay_ms"] == pytest.approx(1500)
    assert held["delivery_ms"] == pytest.approx(5) and held["api_ack_ms"] == pytest.approx(2)
    assert result["relay_boundaries_at_s"] == [30.0]
    assert result["stages_of_all"]["relay_ms"]["p50"] == pytest.approx(4)
    assert result["not_found_in_kafka"] == 0


def test_slow_messages_are_set_against_the_time_the_ledger_was_busy():
    # ledger batches run 10 s of the run's 100 s; the slow messages all came during one
    ledger = [(7, T0 + 40, T0 + 45), (8, T0 + 60, T0 + 65), (9, T0 - 50, T0 - 40)]
    fast = [trip(f"f{i}", 1 + i * 0.5, 4, 6) for i in range(198)]
    slow = [trip("a", 41.0, 200, 5), trip("b", 62.0, 5, 180)]
    last = trip("last", 100.0, 4, 6)
    result = explain(fast + slow + [last], ledger_batches=ledger)

    assert result["count"] == 2 and result["during_ledger_batch"] == 2
    assert result["ledger_batches"] == 2  # the one before the run does not count
    assert result["ledger_busy_share"] == pytest.approx(10 / 100.01, abs=0.001)
    assert result["latency_in_ledger_batches_ms"]["max"] > result["latency_outside_ledger_batches_ms"]["max"]
    assert result["ledger_batch_seconds"]["p50"] == pytest.approx(5)


def test_a_message_whose_records_are_not_in_kafka_is_counted_unknown():
    result = explain([("lost", T0 + 1, T0 + 3, None, None)] + [trip(f"f{i}", 1, 4, 6) for i in range(99)])
    assert result["causes"] == {"unknown (a record not found in Kafka)": 1}
    assert result["not_found_in_kafka"] == 1


def test_checkpoint_batches_read_the_plan_and_commit_files(tmp_path):
    for folder, batch, mtime in [("offsets", 0, 100), ("offsets", 1, 200), ("commits", 0, 150), ("offsets", 2, 300)]:
        (tmp_path / folder).mkdir(exist_ok=True)
        path = tmp_path / folder / str(batch)
        path.write_text("v1")
        os.utime(path, (mtime, mtime))
    (tmp_path / "offsets" / ".1.crc").write_text("x")  # Spark's checksum files are not batches
    (tmp_path / "commits" / "1").write_text("v1")
    os.utime(tmp_path / "commits" / "1", (250, 250))
    assert checkpoint_batches(tmp_path) == [(0, 100, 150), (1, 200, 250), (2, 300, None)]
    assert checkpoint_batches(tmp_path / "missing") == []


@pytest.mark.integration
def test_every_message_of_a_run_against_the_stack_is_found_in_kafka_and_split(chat_stack):
    result = e2e_latency.measure(
        chat_stack.api_url,
        rate=20,
        seconds=5,
        drain_s=30,
        ramp_s=1,
        explain=e2e_latency.StackView(chat_stack.kafka_bootstrap, chat_stack.data_dir),
    )
    explained = result["slowest_explained"]
    assert result["missing"] == 0 and explained["not_found_in_kafka"] == 0
    assert explained["count"] == 1 and sum(explained["causes"].values()) == 1
    [slowest] = explained["messages"]
    assert slowest["ms"] == pytest.approx(result["max"], abs=0.2)
    # the stages add up to the trip, to the rounding of Kafka's millisecond timestamps
    assert slowest["relay_ms"] + slowest["delivery_ms"] - slowest["api_ack_ms"] == pytest.approx(slowest["ms"], abs=2)
    assert slowest["relay_ms"] >= 0 and slowest["api_ack_ms"] >= -1
    # the view reads the stack's own checkpoints: the ledger has recorded the run's messages in batches
    ledger = e2e_latency.checkpoint_batches(chat_stack.data_dir / "checkpoints" / "ledger")
    assert ledger and all(end is None or end >= start for _, start, end in ledger)
    assert explained["ledger_batches"] <= len(ledger)
