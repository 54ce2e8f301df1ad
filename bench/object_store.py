"""The lakehouse on local disk against S3 (S3Proxy on loopback): the ledger's batch time and the statistics job's time
on the same data, in one warm JVM (README "Object storage").

    python -m bench.object_store [--messages 3000] [--users 300] [--warmup 2] [--reps 4] [--work DIR] [--json FILE]

The ledger is the real one (`Ledger.process_batch` in a micro-batch query on `chat` and `chat_actions` of a real
broker, its notices sent to `chat_notices`), so each batch also writes Spark's offset and commit logs to its
checkpoint, local or s3a://. Each round sends one batch of demo traffic to `chat`; then the local and the S3 ledger
each take it as one micro-batch (their own checkpoints, so the same records), in alternating order so the machine's
noise hits both. The statistics job is `pipelines/user_stats.py`'s `run()`, as `make stats` runs it, without the
JVM start, on the tables the two ledgers filled. Figures: median, min–max and the ratio S3/local.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from bench.steady import load_average
from config import contract
from config.object_store import CHECKPOINT_FILE_MANAGER, is_object, parse_object_location
from stack import demo_data
from stack.broker import KafkaBroker, free_port
from stack.s3proxy import S3Proxy
from stack.topics import create_topics

BUCKET = "bench-lake"
VARIANTS = ("local", "s3")
# what the report shows of a micro-batch: the ledger's work (foreachBatch: the Delta reads and commits, the
# notices), the offset and commit logs written to its checkpoint, the two together, and the whole trigger (with
# the Kafka source's own offset look-ups, the same for both)
BATCH_PARTS = ("batch", "foreach_batch", "checkpoint_logs", "trigger")
CHECKPOINT_FILE_MANAGER_CONF = "spark.sql.streaming.checkpointFileManagerClass"


def figure(seconds: list[float]) -> dict:
    """Median, min, max and every run, in seconds."""
    return {
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "runs_s": [round(s, 3) for s in seconds],
    }


def compare(local: list[float], s3: list[float]) -> dict:
    """Both variants' figures and S3/local: of the medians, and of each interleaved pair."""
    pairs = [b / a for a, b in zip(local, s3, strict=True) if a > 0]
    return {
        "local": figure(local),
        "s3": figure(s3),
        "ratio_s3_local": round(statistics.median(s3) / statistics.median(local), 3),
        "pair_ratios": [round(r, 3) for r in pairs],
    }


def traffic(messages: int, users: int, batches: int) -> list[list]:
    """`batches` rounds of `messages` demo records for `chat` (6 % profane, 1 % malformed), the same on every run."""
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    records = demo_data.generate(messages * batches, users, 1.0, 0.06, 0.01, seed=25, now=now)
    return [records[b * messages : (b + 1) * messages] for b in range(batches)]


class Variant:
    """One lakehouse (a warehouse and the ledger's checkpoint, local or on S3) and its ledger."""

    def __init__(self, spark: SparkSession, name: str, bootstrap: str, data_dir: Path, warehouse, checkpoint):
        from pipelines.ledger import Ledger
        from pipelines.wordlists import load_word_lists
        from warehouse.tables import ensure_tables

        self.spark, self.name, self.bootstrap, self.data_dir = spark, name, bootstrap, data_dir
        self.warehouse, self.checkpoint = warehouse, checkpoint
        with self.settings():
            ensure_tables(spark, warehouse)
        self.ledger = Ledger(spark, warehouse, bootstrap, load_word_lists(), checkpoint)

    @contextlib.contextmanager
    def settings(self):
        """CHAT_WAREHOUSE_DIR set to this variant's (the statistics job finds its tables there), and the checkpoint
        file manager a process of this variant uses (Spark's default on local disk)."""
        os.environ["CHAT_WAREHOUSE_DIR"] = str(self.warehouse)
        if is_object(self.warehouse):
            self.spark.conf.set(CHECKPOINT_FILE_MANAGER_CONF, CHECKPOINT_FILE_MANAGER)
        else:
            self.spark.conf.unset(CHECKPOINT_FILE_MANAGER_CONF)
        yield

    def ledger_batch(self) -> dict:
        """Run the ledger's query until it has taken what Kafka holds beyond its checkpoint (one micro-batch, as
        pipelines/ledger.py's start_ledger builds it but triggered once); that batch's durations in seconds."""
        from pipelines.kafka_io import read_topics

        with self.settings():
            query = (
                read_topics(self.spark, self.bootstrap, [contract.TOPIC_CHAT, contract.TOPIC_ACTIONS])
                .writeStream.queryName(f"bench-ledger-{self.name}")
                .foreachBatch(self.ledger.process_batch)
                .option("checkpointLocation", str(self.checkpoint))
                .trigger(availableNow=True)
                .start()
            )
            query.awaitTermination()
        done = [p for p in query.recentProgress if p["numInputRows"] > 0]
        if len(done) != 1:
            raise RuntimeError(f"{self.name}: expected one batch with input, got {len(done)}")
        ms = done[0]["durationMs"]
        logs = ms.get("walCommit", 0) + ms.get("commitOffsets", 0)
        return {
            "batch_id": done[0]["batchId"],
            "rows": done[0]["numInputRows"],
            "batch": (ms["addBatch"] + logs) / 1000,
            "foreach_batch": ms["addBatch"] / 1000,
            "checkpoint_logs": logs / 1000,
            "trigger": ms["triggerExecution"] / 1000,
        }

    def messages_rows(self) -> int:
        """The rows of Delta `messages` in this lake (both lakes must hold the same)."""
        from warehouse import paths

        return self.spark.read.format("delta").load(str(paths.table_path(paths.MESSAGES, self.warehouse))).count()

    def stats(self) -> dict:
        """`make stats`'s job on this warehouse (its printed summary kept out of the bench's output)."""
        from pipelines import user_stats

        with self.settings(), contextlib.redirect_stdout(io.StringIO()):
            started = time.monotonic()
            built = user_stats.run(self.spark, self.data_dir, self.data_dir / "reports" / "user_stats.html")
            seconds = time.monotonic() - started
        return {"seconds": seconds, "users": built["users"]}


@contextlib.contextmanager
def restored_environment():
    """The settings this bench exports for its Spark session go when it ends (bench/run.py runs other parts after)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(messages: int, users: int, warmup: int, reps: int, work: Path) -> dict:
    """Both lakes measured under `work` (a fresh folder); the result as main prints it."""
    with restored_environment():
        return _run(messages, users, warmup, reps, work)


def _run(messages: int, users: int, warmup: int, reps: int, work: Path) -> dict:
    load_before = load_average()
    work.mkdir(parents=True, exist_ok=True)
    rounds = traffic(messages, users, warmup + reps)
    proxy = S3Proxy(work / "s3proxy", heap="256m")
    broker = KafkaBroker(work / "kafka", free_port(), free_port(), work / "kafka" / "kafka.log")
    proxy.create_bucket(BUCKET)
    proxy.start()
    broker.start()
    try:
        create_topics(broker.bootstrap)
        # the session gets the S3A jars and settings (and checks the bucket) as any chat process on s3a:// does
        os.environ.update(proxy.env())
        os.environ["CHAT_WAREHOUSE_DIR"] = f"s3a://{BUCKET}/warehouse"
        os.environ["CHAT_CHECKPOINT_DIR"] = f"s3a://{BUCKET}/checkpoints"
        from pipelines.session import get_spark

        started = time.monotonic()
        spark = get_spark("bench-object-store")
        spark.sparkContext.setLogLevel("ERROR")
        s3, local = parse_object_location(f"s3a://{BUCKET}", "bench"), work / "local"
        variants = {
            "local": Variant(spark, "local", broker.bootstrap, local, local / "warehouse", local / "checkpoints"),
            "s3": Variant(spark, "s3", broker.bootstrap, work / "s3", s3 / "warehouse", s3 / "checkpoints" / "ledger"),
        }
        loads_during = []
        ledger = {name: [] for name in VARIANTS}
        with contextlib.redirect_stdout(sys.stderr):  # the ledger's own log lines
            for i, records in enumerate(rounds):
                demo_data.send(records, broker.bootstrap)
                for name in VARIANTS if i % 2 == 0 else reversed(VARIANTS):  # interleaved, each first in turn
                    batch = variants[name].ledger_batch()
                    print(f"object-store: ledger {name:5} round {i}: {batch}", flush=True)
                    if batch["rows"] != len(records):
                        raise RuntimeError(f"{name}: the batch took {batch['rows']} records, not {len(records)}")
                    if i >= warmup:
                        ledger[name].append(batch)
                loads_during.append(load_average()[0])
            stats = {name: [] for name in VARIANTS}
            for i in range(1 + reps):  # one warm-up run each, on the tables the ledgers filled
                for name in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
                    result = variants[name].stats()
                    print(f"object-store: stats  {name:5} run {i}: {result}", flush=True)
                    if i >= 1:
                        stats[name].append(result)
                loads_during.append(load_average()[0])
        elapsed = time.monotonic() - started
        messages_rows = {name: variants[name].messages_rows() for name in VARIANTS}
        spark.stop()
    finally:
        broker.stop()
        proxy.stop()
    return {
        "messages_per_batch": messages,
        "users": users,
        "warmup": warmup,
        "reps": reps,
        "table_records": messages * (warmup + reps),
        "messages_rows": messages_rows,
        "stats_users": {name: stats[name][-1]["users"] for name in VARIANTS},
        "ledger_batch": {
            part: compare([b[part] for b in ledger["local"]], [b[part] for b in ledger["s3"]]) for part in BATCH_PARTS
        },
        "stats_job": compare([r["seconds"] for r in stats["local"]], [r["seconds"] for r in stats["s3"]]),
        "load_before": load_before,
        "load_during": {"min": min(loads_during), "max": max(loads_during)},
        "seconds": round(elapsed, 1),
        "s3": "S3Proxy on loopback (filesystem backend): no network latency, no request costs",
    }


def table(result: dict) -> str:
    """A plain table of the medians, min–max and ratios."""
    lines = [f"{'what':28} {'local s (min-max)':>24} {'s3 s (min-max)':>24} {'s3/local':>9}"]
    rows = [(f"ledger batch {part}", result["ledger_batch"][part]) for part in BATCH_PARTS]
    rows.append(("statistics job", result["stats_job"]))
    for what, f in rows:
        cells = [f"{f[v]['median_s']:.2f} ({f[v]['min_s']:.2f}-{f[v]['max_s']:.2f})" for v in VARIANTS]
        lines.append(f"{what:28} {cells[0]:>24} {cells[1]:>24} {f['ratio_s3_local']:>9.2f}")
    lines.append(
        f"{result['messages_per_batch']:,} messages a batch, {result['reps']} measured runs after {result['warmup']} "
        f"warm-up; load before {result['load_before']}, during {result['load_during']}"
    )
    return "\n".join(lines)


def at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.object_store", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=at_least(10), default=3000, help="records per ledger batch")
    parser.add_argument("--users", type=at_least(2), default=300)
    parser.add_argument("--warmup", type=at_least(0), default=2, help="ledger batches before the measured ones")
    parser.add_argument(
        "--reps", type=at_least(1), default=4, help="measured runs of each variant (3 or more for a spread)"
    )
    parser.add_argument("--work", type=Path, default=None, help="a fresh folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result there")
    args = parser.parse_args(argv)
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} is not empty: the bench starts from empty tables")
    with tempfile.TemporaryDirectory(prefix="bench-object-store-") as tmp:
        result = run(args.messages, args.users, args.warmup, args.reps, args.work or Path(tmp))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
