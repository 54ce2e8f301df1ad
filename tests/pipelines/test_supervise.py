"""pipelines/supervise.py: the ready file, a clean stop on SIGTERM, and a failed query ending the job."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pipelines.supervise import supervise


def rate_query(spark, name: str, tmp_path, sink=None):
    df = spark.readStream.format("rate-micro-batch").option("rowsPerBatch", 2).load()
    writer = df.writeStream.foreachBatch(sink) if sink else df.writeStream.format("noop")
    return (
        writer.queryName(name)
        .option("checkpointLocation", str(tmp_path / name))
        .trigger(processingTime="1 second")
        .start()
    )


def test_ready_once_running_then_a_sigterm_stops_the_queries_cleanly(spark, tmp_path):
    ready = tmp_path / "run" / "probe.ready"
    query = rate_query(spark, "probe", tmp_path)
    seen: list[str] = []

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        seen.append(ready.read_text() if ready.exists() else "")
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    stopper = threading.Thread(target=stop_when_ready)
    stopper.start()
    supervise(spark, [query], ready)
    stopper.join()
    assert seen == [f"probe {query.id}\n"]
    assert not query.isActive and not ready.exists()
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failed_query_ends_supervision_with_its_error(spark, tmp_path):
    def fail(_df, batch_id: int) -> None:
        if batch_id >= 1:
            raise ValueError("the sink broke")

    broken = rate_query(spark, "broken", tmp_path, sink=fail)
    healthy = rate_query(spark, "healthy", tmp_path)
    ready = tmp_path / "broken.ready"
    with pytest.raises(
        SystemExit, match=r"(?s)^broken: (query failed|stopped while starting): .*ValueError: the sink broke"
    ):
        supervise(spark, [broken, healthy], ready)
    assert not healthy.isActive and not ready.exists()
