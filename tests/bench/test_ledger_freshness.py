"""bench/ledger.py: the freshness figures from small synthetic runs (a missing id included), the watcher on a
real Delta table written with `deltalake`, the wiring into bench/run.py, and one short run on the real stack."""

from __future__ import annotations

import pyarrow as pa
import pytest
import requests
from deltalake import write_deltalake

from bench import ledger, run
from bench.api_load import quote_author
from bench.flood import Phase
from bench.ledger import DeltaWatcher, batches_of, summarize

T0 = 1_800_000_000.0  # epoch seconds of the synthetic run's start
PHASE = Phase(T0 + 10, 10.0, 2)  # measured: 202s from T0+10 to T0+30


def synthetic_run():
    """A warm-up message, then 40 measured ones (2 a second): batch b starts at T0 + 5b and runs 3 s; a message is
    readable 0.2 s after its batch ends. Batch 2 took the warm-up message only."""
    batches = [(b, T0 + 5 * b, T0 + 5 * b + 3) for b in range(1, 8)]
    posted, seen = {"warm": T0 + 8.0}, {"warm": (T0 + 13.2, 2)}
    for i in range(40):
        sent = PHASE.start + i * 0.5
        b = int((sent - T0) // 5) + 1  # the first batch that starts after the 202
        posted[f"m{i}"] = sent
        seen[f"m{i}"] = (T0 + 5 * b + 3.2, b)
    return posted, seen, batches


def test_freshness_is_from_each_202_to_the_first_poll_that_read_it_over_the_measured_messages():
    posted, seen, batches = synthetic_run()
    result = summarize(posted, seen, batches, PHASE)
    f = result["delta_freshness_ms"]
    fresh = sorted((seen[i][0] - posted[i]) * 1000 for i in posted if i != "warm")
    assert f["samples"] == f["posted"] == 40 and f["missing"] == 0 and f["missing_ids"] == []
    assert f["max"] == pytest.approx(fresh[-1]) and f["p50"] == pytest.approx(fresh[19], abs=300)
    assert 3200 < f["p50"] < f["p99"] <= 8200  # between 0 and 5 s of wait, then 3.2 s
    assert len(f["window_p99_ms"]["windows"]) == 2
    assert f["met"] is False and "error" not in f  # p99 over 3 s
    # the batches that recorded the measured messages (3 to 6), not the warm-up's
    b = result["ledger_batch_seconds"]
    assert b["batches"] == 4 and b["p50"] == pytest.approx(3.0) and b["p99"] == pytest.approx(3.0)
    assert b["messages_per_batch"]["p50"] == 10
    split = result["split_ms"]
    assert split["messages"] == 40
    assert 0 < split["waiting_for_batch"]["p50"] < 5000
    assert split["batch_start_to_readable"]["max"] == pytest.approx(3200)


def test_a_missing_id_is_counted_named_and_makes_an_error_of_the_result():
    posted, seen, batches = synthetic_run()
    del seen["m7"], seen["warm"]  # a measured message and the warm-up never readable
    f = summarize(posted, seen, batches, PHASE)["delta_freshness_ms"]
    assert f["missing"] == 2 and f["missing_ids"] == ["warm", "m7"]  # in the order they were posted
    assert f["samples"] == 39 and f["posted"] == 40
    assert "2 of 41 posted messages never became readable" in f["error"] and "met" not in f
    flat = run.derived({"delta_freshness_ms": f})
    assert "delta_freshness_p99_ms" not in flat  # no target figure from a run that lost messages


def test_a_batch_not_yet_committed_in_the_checkpoint_is_left_out():
    seen = {"a": (T0, 1), "b": (T0, 2), "c": (T0, 3)}
    batches = [(1, T0 - 4, T0 - 1), (2, T0 - 3, None), (3, T0 - 2, T0), (4, T0, T0 + 1)]
    assert batches_of(["a", "b", "c", "unknown"], seen, batches) == {1: (T0 - 4, T0 - 1), 3: (T0 - 2, T0)}


def test_the_watcher_reads_only_what_versions_after_its_start_add(tmp_path):
    table = tmp_path / "messages"
    write_deltalake(table, pa.table({"message_id": ["old"], "batch_id": [0], "author": ["x"]}))
    watcher = DeltaWatcher(table, poll_s=0.05)
    watcher.start(timeout_s=5)
    try:
        write_deltalake(
            table, pa.table({"message_id": ["a", "b"], "batch_id": [7, 7], "author": ["x", "y"]}), mode="append"
        )
        assert ledger._await(lambda: {"a", "b"} <= set(watcher.seen), 10)
    finally:
        watcher.stop()
    assert watcher.failure is None
    assert set(watcher.seen) == {"a", "b"}  # "old" was there before it started
    assert {batch for _, batch in watcher.seen.values()} == {7}
    assert watcher.polls > 0 and [v for v, _ in watcher.versions] == [1]


def test_the_watcher_says_when_the_table_does_not_exist(tmp_path):
    with pytest.raises(ledger.BenchError, match="not a Delta table"):
        DeltaWatcher(tmp_path / "messages").start(timeout_s=0.5)


def test_run_takes_the_freshness_target_and_reports_a_hooks_error_keeping_its_figures(monkeypatch):
    flat = run.derived({"delta_freshness_ms": {"p99": 2500.0, "missing": 0}})
    rows = {r["figure"]: r for r in run.target_rows(flat)}
    assert rows["delta_freshness_p99_ms"]["met"] is True and rows["delta_freshness_p99_ms"]["target"] == 3000
    assert any(h.module == "bench.ledger" and run.hook_module(h) is ledger for h in run.HOOKS)

    figures = {"delta_freshness_ms": {"p99": 1.0, "missing": 1}, "ledger_batch_seconds": {}, "errors": "1 missing"}
    hook = run.Hook("stack", "bench.ledger", "bench_figures", "freshness", lambda module, ctx: dict(figures))
    monkeypatch.setattr(run, "HOOKS", [hook])
    results: dict = {"hooks": {}, "errors": {}}
    run.run_hooks("stack", None, results)
    assert results["errors"] == {"bench.ledger.bench_figures": "1 missing"}
    assert results["delta_freshness_ms"] == figures["delta_freshness_ms"] and "errors" not in results["hooks"]
    assert results["hooks"]["bench.ledger.bench_figures"] == "measured: delta_freshness_ms, ledger_batch_seconds"


@pytest.mark.integration
def test_a_short_run_on_the_stack_finds_every_posted_message_in_delta(chat_stack, tmp_path):
    result = ledger.bench_figures(run.StackContext(chat_stack, tmp_path, quick=True))
    f, b, load = result["delta_freshness_ms"], result["ledger_batch_seconds"], result["ledger_load"]
    assert "errors" not in result and f["missing"] == 0, f
    assert load["post_errors"] == {} and f["samples"] == f["posted"] >= 0.9 * 50 * 12
    assert 0 < f["p50"] <= f["p99"] <= f["max"]
    # each measured message was matched to the ledger batch that recorded it, and those batches timed
    assert load["split_ms"]["messages"] == f["samples"] and b["batches"] >= 1 and b["p50"] > 0
    assert load["machine"]["seconds"] > 0 and "foreign" in load["machine"] and "warning" in load["machine"]

    # the API, reading Delta by itself (its snapshot of user_moderation, refreshed every 0.5 s), counts every
    # accepted message of the bench's writers
    def recorded() -> int:
        return sum(
            requests.get(f"{chat_stack.api_url}/users/{quote_author(a)}", timeout=10).json()["messages"]
            for a in load["authors"]
        )

    assert ledger._await(lambda: recorded() == load["accepted"], 10, step_s=0.5), (recorded(), load["accepted"])


def test_the_readable_line_names_missing_ids_and_a_busy_machine():
    posted, seen, batches = synthetic_run()
    del seen["m3"]
    result = summarize(posted, seen, batches, PHASE)
    result["ledger_load"] = {
        "rate": 2.0,
        "split_ms": result.pop("split_ms"),
        "load_average": {"before": [0.5, 0.4, 0.3], "during_max": 1.2},
        "late_sends": 0,
        "post_errors": {},
        "machine": {"warning": "other processes used 0.50 cores"},
    }
    line = ledger.format_result(result)
    assert "39 of 40" in line and "MISSING 1: m3" in line and "BUSY MACHINE: other processes used 0.50 cores" in line
