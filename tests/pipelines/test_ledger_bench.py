"""The ledger's benchmark functions (bench/ledger.py) on what they read: the streams' log and a Delta log.

No Spark: the table is written by the `deltalake` package, whose commits are Delta commits like the ledger's.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from bench.ledger import DeltaWatch, delta_freshness_ms, ledger_batch_seconds, log_position


def test_ledger_batch_seconds_reads_only_the_batches_logged_after_the_position(tmp_path):
    log = tmp_path / "streams.log"
    log.write_text("ledger: batch 1: 900 messages, 0 strikes, 0 unblocks, 0 rejected in 30.00s (validate 1.00s)\n")
    since = log_position(log)
    with log.open("a") as f:
        f.write("relay: batch 7: 12 records in 0.40s\n")
        for batch, seconds, messages in [(2, 0.5, 10), (3, 1.5, 40), (4, 1.0, 20)]:
            f.write(
                f"ledger: batch {batch}: {messages} messages, 1 strikes, 0 unblocks, 2 rejected in {seconds:.2f}s "
                "(validate 0.10s, moderate 0.20s)\n"
            )
        f.write("ledger: user_moderation up to batch 4 (from 0) in 2.00s\n")
    result = ledger_batch_seconds(log, since)
    assert result["batches"] == 3
    assert (result["p50"], result["max"]) == (1.0, 1.5)
    assert 1.0 < result["p99"] <= 1.5
    assert result["messages"] == {"p50": 20, "max": 40}
    assert result["slowest"] == [{"batch": 3, "seconds": 1.5, "messages": 40}]


def test_ledger_batch_seconds_of_a_log_without_batches_is_empty(tmp_path):
    log = tmp_path / "streams.log"
    log.write_text("streams: relay (…) and ledger (…) started\n")
    assert log_position(tmp_path / "absent.log") == 0
    result = ledger_batch_seconds(log)
    assert (result["batches"], result["p50"], result["p99"], result["max"], result["slowest"]) == (
        0,
        None,
        None,
        None,
        [],
    )


def wait_for(predicate, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def ids(*values: str) -> pa.Table:
    return pa.table({"message_id": list(values), "author": ["ana"] * len(values)})


def test_the_delta_watch_notes_each_new_message_once_and_not_what_a_compaction_rewrites(tmp_path):
    table = tmp_path / "messages"
    write_deltalake(table, ids("old-1", "old-2"))
    watch = DeltaWatch(table, poll_s=0.01)
    watch.start()
    try:
        write_deltalake(table, ids("new-1"), mode="append")
        write_deltalake(table, ids("new-2", "new-3"), mode="append")
        wait_for(lambda: watch.commits == 2)
        seen = dict(watch.arrivals)
        DeltaTable(table).optimize.compact()  # rewrites every row, adds no data
        wait_for(lambda: watch.commits == 3)
    finally:
        watch.stop()
    assert watch.failure is None
    assert set(seen) == {"new-1", "new-2", "new-3"}  # not what was there before it started
    assert seen["new-1"] <= seen["new-2"] == seen["new-3"]  # the rows of one commit arrive together
    assert watch.arrivals == seen


def test_the_freshness_bench_refuses_a_load_it_cannot_run(tmp_path):
    for rate, seconds, writers in [(0, 60, 4), (50, -1, 4), (50, 60, 0)]:
        with pytest.raises(ValueError, match="rate and seconds"):
            delta_freshness_ms("http://127.0.0.1:9", tmp_path, rate, seconds, writers=writers)
