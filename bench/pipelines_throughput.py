"""Sustained throughput of the two Spark queries on a backlog in `chat`: the relay and the ledger.

    python -m bench.pipelines_throughput --bootstrap HOST:PORT --expected-valid N --records M [--what relay|ledger]

The relay runs exactly as in production (pipelines/relay.py: validate, mask,
Kafka sink with acks=all) from `chat` into a fresh topic, with a fresh
checkpoint, in real-time mode or in back-to-back micro-batches. Throughput is
counted where it matters, in the output topic: its end offset is sampled every
100 ms, and the rate is the records written between the first sample that saw
output and the moment the last one arrived, so Spark's start-up and the
query's first compilation are left out (they are reported apart).

The ledger (pipelines/ledger.py, foreachBatch into Delta) runs on the same
backlog into a fresh warehouse; its rate is the records of `chat` it consumed
divided by the time from the start of its first batch to the end of its last,
taken from the query's progress reports.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from pyspark.sql import SparkSession

from bench.kafka_limits import recreate_topic
from config import settings
from pipelines.ledger import start_ledger
from pipelines.relay import start_relay
from pipelines.wordlists import load_word_lists


def topic_size(consumer: KafkaConsumer, topic: str) -> int:
    """Records in `topic` (end minus beginning offsets), asked through an open consumer."""
    partitions = consumer.partitions_for_topic(topic) or set()
    ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    begins = consumer.beginning_offsets(list(ends))
    return sum(ends[tp] - begins[tp] for tp in ends)


def relay_throughput(
    spark: SparkSession, bootstrap: str, trigger: str, expected: int, partitions: int = 1, timeout_s: float = 900
) -> dict:
    """Run the relay over the `chat` backlog until `expected` records are in its output topic."""

    target = f"bench_relay_{trigger}"
    recreate_topic(bootstrap, target, partitions)
    checkpoint = Path(tempfile.mkdtemp(prefix=f"bench-relay-{trigger}-"))
    started = time.monotonic()
    query = start_relay(
        spark,
        bootstrap,
        checkpoint,
        trigger,
        load_word_lists(),
        target_topic=target,
        query_name=f"bench_relay_{trigger}",
    )
    first_seen_at = first_count = None
    count = 0
    # one connection for all the samples: a new client every 100 ms would load the cores being measured
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        while count < expected:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"relay ({trigger}) wrote {count} of {expected} records in {timeout_s:.0f}s")
            if query.exception() is not None:
                raise RuntimeError(f"relay ({trigger}) failed: {query.exception()}")
            time.sleep(0.1)
            count = topic_size(consumer, target)
            if first_seen_at is None and count > 0:
                first_seen_at, first_count = time.monotonic(), count
        done_at = time.monotonic()
    finally:
        query.stop()
        consumer.close()
    sustained_s = done_at - first_seen_at
    return {
        "trigger": trigger,
        "records": count,
        "expected": expected,
        "msgs_per_s": round((count - first_count) / sustained_s) if sustained_s > 0 else None,
        "sustained_seconds": round(sustained_s, 2),
        "first_output_after_s": round(first_seen_at - started, 2),
        "total_seconds": round(done_at - started, 2),
    }


def ledger_throughput(spark: SparkSession, bootstrap: str, records: int, timeout_s: float = 1800) -> dict:
    """Run the ledger over the `chat` backlog (`records` records) into a fresh warehouse."""

    work = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    started = time.monotonic()
    query = start_ledger(spark, bootstrap, work / "warehouse", work / "checkpoint", load_word_lists(), trigger_s=0)
    consumed = 0
    try:
        while consumed < records:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"the ledger consumed {consumed} of {records} records in {timeout_s:.0f}s")
            if query.exception() is not None:
                raise RuntimeError(f"the ledger failed: {query.exception()}")
            time.sleep(0.5)
            batches = [p for p in query.recentProgress if p["numInputRows"] > 0]
            consumed = sum(p["numInputRows"] for p in batches)
        done_at = time.monotonic()
    finally:
        query.stop()
    first_start = _epoch(batches[0]["timestamp"])
    last_end = _epoch(batches[-1]["timestamp"]) + batches[-1]["durationMs"]["triggerExecution"] / 1000
    busy_s = last_end - first_start
    return {
        "records": consumed,
        "batches": len(batches),
        "msgs_per_s": round(consumed / busy_s),
        "batch_seconds": round(busy_s, 2),
        "total_seconds": round(done_at - started, 2),
        "largest_batch": max(p["numInputRows"] for p in batches),
    }


def _epoch(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=settings.load().kafka_bootstrap)
    parser.add_argument("--expected-valid", type=int, required=True, help="valid messages in the chat backlog")
    parser.add_argument("--records", type=int, required=True, help="records in the chat backlog")
    parser.add_argument("--what", choices=("relay", "ledger", "both"), default="both")
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    from pipelines.session import get_spark

    spark = get_spark("bench-pipelines")
    spark.sparkContext.setLogLevel("ERROR")
    results = {}
    if args.what in ("relay", "both"):
        for trigger in ("microbatch", "realtime"):
            results[f"relay_{trigger}"] = relay_throughput(
                spark, args.bootstrap, trigger, args.expected_valid, args.partitions
            )
            print(f"relay ({trigger}): {results[f'relay_{trigger}']}", flush=True)
    if args.what in ("ledger", "both"):
        results["ledger"] = ledger_throughput(spark, args.bootstrap, args.records)
        print(f"ledger: {results['ledger']}", flush=True)
    print(json.dumps(results))
    spark.stop()


if __name__ == "__main__":
    main()
