"""Both streaming queries of the chat in one Spark application: the relay and the ledger (what `make up` runs).

One JVM for both, each query with its own checkpoint; README "Configuration" lists the settings.

    python -m pipelines.streams
    spark-submit --properties-file conf/spark-defaults.conf pipelines/streams.py
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file by spark-submit: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQuery

from config import contract, settings
from pipelines.ledger import start_ledger
from pipelines.maintenance import Scheduler
from pipelines.relay import start_relay
from pipelines.supervise import run_queries
from pipelines.wordlists import load_word_lists


def main() -> int:
    s = settings.load()
    word_lists = load_word_lists()
    maintenance: list[Scheduler] = []
    print(
        f"streams: starting Spark ({s.spark_master}), Kafka {s.kafka_bootstrap}, data {s.data_dir}; "
        f"{len(word_lists.profane)} listed words, {len(word_lists.allow)} allowed",
        flush=True,
    )

    def start(spark: SparkSession) -> list[StreamingQuery]:
        relay = start_relay(spark, s.kafka_bootstrap, s.checkpoint_dir / "relay", s.relay_trigger, word_lists)
        ledger = start_ledger(
            spark, s.kafka_bootstrap, s.warehouse_dir, s.checkpoint_dir / "ledger", word_lists, s.ledger_trigger_s
        )
        print(
            f"streams: relay ({s.relay_trigger}) {contract.TOPIC_CHAT} -> {contract.TOPIC_CONTROLLED}; "
            f"ledger (every {s.ledger_trigger_s:g}s) -> Delta {s.warehouse_dir}",
            flush=True,
        )
        # after start_ledger: the tables exist and have their layout
        maintenance.append(
            Scheduler(
                spark, s.warehouse_dir, s.maintenance_interval_s, s.vacuum_interval_s, s.delta_checkpoint_interval_s
            )
        )
        maintenance[0].start()
        return [relay, ledger]

    try:
        # the ledger's micro-batches are small: few shuffle partitions, and AQE coalesces the rest
        return run_queries("chat-streams", start, s.run_dir / "streams.ready", {"spark.sql.shuffle.partitions": "2"})
    finally:
        for scheduler in maintenance:
            scheduler.stop(timeout_s=0)


if __name__ == "__main__":
    sys.exit(main())
