"""What the Kafka broker alone sustains on this machine, measured with Kafka's own performance tools.

    python -m bench.kafka_limits [--bootstrap HOST:PORT] [--record-size 100] [--records 1000000]
                                 [--partitions P] [--topic bench_limit] [--keep-topic]

Runs `org.apache.kafka.tools.ProducerPerformance` and then
`org.apache.kafka.tools.ConsumerPerformance` from the cached jars
(`var/jars/kafka`, `make jars`) against a running broker: the producer writes
`records` random payloads of `record_size` bytes to a freshly created topic
(by default with as many partitions as `chat`), unthrottled, with acks=all
like the API and the relay, linger.ms=5 and batch.size=256 KiB, no
compression; then the consumer reads them back, in a new consumer group. It is
the practical ceiling for records of that size on this broker, what the relay
and the plain-Python baseline (bench/baseline.py) are compared with.

The numbers are the tools' own. Producer: messages/s and MiB/s over the whole
run, and the latency from send() to acknowledgement (avg, max, p50/p95/p99/
p99.9). Consumer: messages/s and MiB/s while fetching (`fetch.*`, without the
consumer group's join), and with the join (`*_with_join`). MB in the tools is
MiB (1024 × 1024 bytes), of values only for the producer, of keys and values
for the consumer (the producer tool sends no key, so they match).

The broker shares the machine with the tools (and with whatever else runs):
on 2 cores the producer and the broker compete for CPU, so the figures are
what this machine sustains, not what the broker could on its own hardware.
The topic is deleted afterwards unless `--keep-topic`.

Progress goes to stderr; stdout gets one readable line and the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from config import contract, settings
from stack.broker import java_bin
from stack.demo_data import positive_int

PRODUCER_TOOL = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_TOOL = "org.apache.kafka.tools.ConsumerPerformance"
DEFAULT_TOPIC = "bench_limit"
# a chat record's value, {"author": ..., "data": ..., "timestamp": ...}: the demo traffic
# (stack/demo_data.py) averages about 100 bytes (a long message reaches a few KB); the records
# of chat and chat_controlled also carry a key (the author) and headers (message_id, ~50 bytes)
DEFAULT_RECORD_SIZE = 100
# The producer's settings: acks=all like the API and the relay; enable.idempotence=true is the
# Java client's default with acks=all (written out so that the result says so).
PRODUCER_SETTINGS: dict[str, str] = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "5",
    "batch.size": str(256 * 1024),
    "compression.type": "none",
}
TOOL_HEAP = "512m"
# The tools print their results on stdout; their logs (WARN and up) go to stderr, which is shown
# when a tool fails. (conf/kafka-log4j2.properties is the broker's: INFO on stdout.)
_TOOLS_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDERR
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""

_NUMBER = r"(\d+(?:\.\d+)?)"
# the final line; the periodic ones lack the percentiles
_PRODUCER_SUMMARY = re.compile(
    rf"^(\d+) records sent, {_NUMBER} records/sec \({_NUMBER} MB/sec\), {_NUMBER} ms avg latency, "
    rf"{_NUMBER} ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.?\s*$",
    re.M,
)
_CONSUMER_HEADER = "start.time, end.time, data.consumed.in.MB"


class ToolError(RuntimeError):
    """A Kafka performance tool failed or printed no result."""


def _say(text: str) -> None:
    print(f"kafka-limits: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Topics


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="chat-bench",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )


def recreate_topic(
    bootstrap: str, topic: str, partitions: int = 1, replication_factor: int = 1, timeout_s: float = 60.0
) -> None:
    """Create `topic` empty, with `partitions` partitions: delete it first if it exists."""
    deadline = time.monotonic() + timeout_s
    admin = _admin(bootstrap, min(timeout_s, 30.0))
    try:
        if topic in admin.list_topics():
            try:
                admin.delete_topics([topic])
            except UnknownTopicOrPartitionError:
                pass  # deleted by someone else meanwhile
        while True:
            try:
                admin.create_topics(
                    [NewTopic(name=topic, num_partitions=partitions, replication_factor=replication_factor)]
                )
                break
            except TopicAlreadyExistsError:  # the deletion is still going on
                if time.monotonic() > deadline:
                    raise KafkaError(f"topic {topic} still exists {timeout_s:g}s after its deletion") from None
                time.sleep(0.2)
        while topic not in admin.list_topics():
            if time.monotonic() > deadline:
                raise KafkaError(f"topic {topic} not visible {timeout_s:g}s after its creation")
            time.sleep(0.1)
    finally:
        admin.close()


def chat_partitions(bootstrap: str, timeout_s: float = 10.0) -> int:
    """How many partitions `chat` has on that broker (CHAT_TOPIC_PARTITIONS when it has no `chat` topic)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="chat-bench",
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
    )
    try:
        return len(consumer.partitions_for_topic(contract.TOPIC_CHAT) or ()) or settings.load().topic_partitions
    finally:
        consumer.close()


def delete_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> None:
    """Delete `topic` if it exists."""
    admin = _admin(bootstrap, timeout_s)
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic])
    except UnknownTopicOrPartitionError:
        pass
    finally:
        admin.close()


# ---------------------------------------------------------------------------------------------
# The tools


def tool_command(main_class: str, args: Sequence[str], log_config: Path, jars: Path | None = None) -> list[str]:
    """The java command line for one of Kafka's tools, on the classpath of the cached Kafka jars."""
    jars = Path(jars) if jars else settings.load().jars_dir / "kafka"
    if not any(jars.glob("kafka-tools-*.jar")):
        raise ToolError(f"no kafka-tools jar in {jars}: run `make jars` first")
    return [
        java_bin(),
        f"-Xmx{TOOL_HEAP}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        str(jars / "*"),
        main_class,
        *args,
    ]


def run_tool(main_class: str, args: Sequence[str], timeout_s: float, jars: Path | None = None) -> str:
    """Run a Kafka tool; return its stdout. Raises ToolError (with the output's tail) when it fails."""
    name = main_class.rsplit(".", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp:
        log_config = Path(tmp) / "tools-log4j2.properties"
        log_config.write_text(_TOOLS_LOG4J2)
        try:
            result = subprocess.run(
                tool_command(main_class, args, log_config, jars),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"{name} did not finish within {timeout_s:g}s:\n{_tail(exc.stdout, exc.stderr)}") from None
    if result.returncode != 0:
        raise ToolError(f"{name} exited with code {result.returncode}:\n{_tail(result.stdout, result.stderr)}")
    return result.stdout


def _tail(stdout: str | bytes | None, stderr: str | bytes | None, lines: int = 20) -> str:
    def text(out):
        return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")

    parts = [
        f"--- {label} (last {lines} lines)\n" + "\n".join(text(out).splitlines()[-lines:])
        for label, out in (("stdout", stdout), ("stderr", stderr))
        if text(out).strip()
    ]
    return "\n".join(parts) or "(no output)"


def parse_producer_summary(output: str) -> dict:
    """The numbers of ProducerPerformance's final line (`N records sent, X records/sec (Y MB/sec), ...`)."""
    found = _PRODUCER_SUMMARY.findall(output)
    if not found:
        raise ToolError(f"ProducerPerformance printed no summary line:\n{_tail(output, None)}")
    sent, rate, mb, avg, max_ms, p50, p95, p99, p999 = found[-1]
    return {
        "records": int(sent),
        "msgs_per_s": float(rate),
        "mb_per_s": float(mb),
        "avg_ms": float(avg),
        "max_ms": float(max_ms),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "p999_ms": float(p999),
    }


def parse_consumer_summary(output: str) -> dict:
    """The numbers of ConsumerPerformance's result: the comma-separated line under its header line."""
    lines = output.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.startswith(_CONSUMER_HEADER))
    except StopIteration:
        raise ToolError(f"ConsumerPerformance printed no header line:\n{_tail(output, None)}") from None
    names = [name.strip() for name in lines[at].split(",")]
    for line in lines[at + 1 :]:  # a WARNING line may come between the header and the values
        values = [value.strip() for value in line.split(",")]
        if len(values) != len(names):
            continue
        row = dict(zip(names, values))
        try:
            return {
                "records": int(row["data.consumed.in.nMsg"]),
                "mb": float(row["data.consumed.in.MB"]),
                "msgs_per_s_with_join": float(row["nMsg.sec"]),
                "mb_per_s_with_join": float(row["MB.sec"]),
                "rebalance_ms": float(row["rebalance.time.ms"]),
                "fetch_ms": float(row["fetch.time.ms"]),
                "msgs_per_s": float(row["fetch.nMsg.sec"]),
                "mb_per_s": float(row["fetch.MB.sec"]),
            }
        except (KeyError, ValueError):
            continue
    raise ToolError(f"ConsumerPerformance printed no result line:\n{_tail(output, None)}")


# ---------------------------------------------------------------------------------------------
# The measurement


def broker_limit(
    bootstrap: str,
    record_size: int,
    num_records: int = 1_000_000,
    topic: str = DEFAULT_TOPIC,
    partitions: int = 1,
    keep_topic: bool = False,
    timeout_s: float = 1800,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """Produce `num_records` records of `record_size` bytes to a fresh `topic` with Kafka's ProducerPerformance
    (acks=all, unthrottled), then read them back with ConsumerPerformance; return the tools' figures.

    Keys: producer_msgs_per_s, producer_mb_per_s, producer_avg_ms, producer_max_ms, producer_p50_ms,
    producer_p95_ms, producer_p99_ms, producer_p999_ms, consumer_msgs_per_s, consumer_mb_per_s (while
    fetching), consumer_msgs_per_s_with_join, consumer_mb_per_s_with_join, consumer_rebalance_ms,
    record_size, records, partitions, topic, settings. MB are MiB. Raises ToolError when a tool fails or
    moves fewer records than asked, ValueError for a size or count below 1.
    """
    if record_size < 1 or num_records < 1 or partitions < 1:
        raise ValueError("record_size, num_records and partitions must be at least 1")
    progress(f"creating topic {topic} ({partitions} partition{'s' if partitions > 1 else ''}) at {bootstrap}")
    recreate_topic(bootstrap, topic, partitions)
    try:
        props = {"bootstrap.servers": bootstrap, "client.id": "chat-bench-producer", **PRODUCER_SETTINGS}
        progress(f"ProducerPerformance: {num_records:,} records of {record_size} bytes, unthrottled")
        produced = parse_producer_summary(
            run_tool(
                PRODUCER_TOOL,
                [
                    "--topic",
                    topic,
                    "--num-records",
                    str(num_records),
                    "--record-size",
                    str(record_size),
                    "--throughput",
                    "-1",
                    "--producer-props",
                    *(f"{k}={v}" for k, v in props.items()),
                ],
                timeout_s,
            )
        )
        if produced["records"] != num_records:
            raise ToolError(
                f"ProducerPerformance had {produced['records']:,} of {num_records:,} records "
                "acknowledged (its stderr has the errors)"
            )
        progress(f"ConsumerPerformance: reading them back ({produced['msgs_per_s']:,.0f} msgs/s produced)")
        consumed = parse_consumer_summary(
            run_tool(
                CONSUMER_TOOL,
                [
                    "--bootstrap-server",
                    bootstrap,
                    "--topic",
                    topic,
                    "--messages",
                    str(num_records),
                    "--timeout",
                    "60000",
                    "--reporting-interval",
                    "60000",
                ],
                timeout_s,
            )
        )
        if consumed["records"] != num_records:
            raise ToolError(f"ConsumerPerformance read {consumed['records']:,} of {num_records:,} records")
    finally:
        if not keep_topic:
            delete_topic(bootstrap, topic)
    return {
        **{f"producer_{k}": v for k, v in produced.items() if k != "records"},
        **{f"consumer_{k}": v for k, v in consumed.items() if k not in ("records", "mb")},
        "record_size": record_size,
        "records": num_records,
        "partitions": partitions,
        "topic": topic,
        "settings": {
            "producer": {**PRODUCER_SETTINGS, "throughput": -1},
            "consumer": {"fetch.size": 1048576, "group": "a new one", "from": "earliest"},
        },
    }


def summary_line(result: dict) -> str:
    return (
        f"Kafka alone, {result['records']:,} records of {result['record_size']} B, "
        f"{result['partitions']} partition(s): produce {result['producer_msgs_per_s']:,.0f} msgs/s "
        f"({result['producer_mb_per_s']:.1f} MiB/s, p99 {result['producer_p99_ms']:.0f} ms, acks=all), "
        f"consume {result['consumer_msgs_per_s']:,.0f} msgs/s ({result['consumer_mb_per_s']:.1f} MiB/s)"
    )


# ---------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    s = settings.load()
    parser = argparse.ArgumentParser(prog="python -m bench.kafka_limits", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=s.kafka_bootstrap, help=f"Kafka bootstrap servers (default {s.kafka_bootstrap})"
    )
    parser.add_argument(
        "--record-size",
        type=positive_int,
        default=DEFAULT_RECORD_SIZE,
        metavar="BYTES",
        help=f"bytes per record (default {DEFAULT_RECORD_SIZE})",
    )
    parser.add_argument(
        "--records",
        type=positive_int,
        default=1_000_000,
        metavar="N",
        help="records to produce and consume (default 1,000,000)",
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        help="partitions of the bench topic (default: as many as `chat` has on that broker)",
    )
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"topic to (re)create (default {DEFAULT_TOPIC})")
    parser.add_argument("--keep-topic", action="store_true", help="do not delete the topic afterwards")
    args = parser.parse_args(argv)
    try:
        partitions = args.partitions or chat_partitions(args.bootstrap)
        result = broker_limit(
            args.bootstrap,
            args.record_size,
            args.records,
            args.topic,
            partitions,
            keep_topic=args.keep_topic,
            progress=_say,
        )
    except (ToolError, KafkaError) as exc:
        print(f"kafka-limits: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(summary_line(result))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
