"""The baseline: the relay's work done by a plain kafka-python loop, consume → validate → mask → produce.

    python -m bench.baseline [--bootstrap HOST:PORT] [--records 100000] [--partitions P]
                             [--source bench_baseline_in] [--target bench_baseline_out] [--reuse-source]

What a user would write instead of the Spark relay (pipelines/relay.py), and
what the relay's throughput is compared with. One Python process reads the raw
records of the source topic from the beginning (partitions assigned by hand:
no consumer group, no commits), and for each one:

- parses and validates it exactly as pipelines/validation.py does (`parse_message`,
  with the same rejection reasons); an invalid record is counted and skipped;
- masks profanity exactly as pipelines/moderation.py does (`Masker`): the SAME
  Java regex from `profanity_pattern(load_word_lists())`, run by the third-party
  `regex` module, which knows `\\p{Cf}`, possessive quantifiers and class
  intersections (`&&`, in its VERSION1 syntax); only Java's `\\x{h..h}` is
  rewritten. Each match's group 2 becomes one `*` per code point;
- produces `{"author", "data", "timestamp"}` (data masked) to the target topic,
  keyed by author, with the headers the relay writes: `message_id` (carried
  over, or `kafka-<partition>-<offset>` when absent), `chat_position`
  (`<partition>:<offset>` in the source topic) and `profane` (`true`/`false`).

The producer uses what a reasonable user would pick (acks=all and
idempotence like the API, linger 5 ms, 256 KiB batches, no compression: the
same as bench/kafka_limits.py), sends asynchronously and checks every
acknowledgement. The clock starts when the first record arrives (connection
and metadata set-up are reported apart as `startup_s`) and stops when the last
send is acknowledged. kafka-python checks and computes record CRCs in pure
Python unless the `crc32c` package is installed (its README recommends it for
throughput): `settings.crc32c` says which one ran.

The command line fills a fresh source topic with demo traffic
(stack/demo_data.py: Spanish and English, 6% profane, 1% malformed) unless
`--reuse-source`, recreates the target topic, runs the loop and deletes both
topics unless `--keep-topics`. Progress goes to stderr; stdout gets one
readable line and the result as one JSON line.

Equivalence with the relay (tests/bench/test_baseline.py): same validation
verdicts and reasons, same masked text, same key and headers. Known
differences: the output JSON is written by Python's json module, so control
characters are escaped in lower-case hex (`\\u001f`) where Spark's Jackson
writes upper case (the same JSON once parsed); and character properties
(`\\p{L}`, `\\p{Cf}`...) follow the Unicode version of the `regex` module
(newer than Java 17's Unicode 13), which matters only for characters added
since.
"""

from __future__ import annotations

import argparse
import calendar
import codecs
import contextlib
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import regex
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError

from bench.kafka_limits import chat_partitions, delete_topic, recreate_topic
from config import contract, settings
from pipelines.moderation import CLOSE_MARK, MASK_CHAR, OPEN_MARK, profanity_pattern
from pipelines.wordlists import WordLists, load_word_lists
from stack.demo_data import (
    DEFAULT_DAYS,
    DEFAULT_MALFORMED_SHARE,
    DEFAULT_PROFANE_SHARE,
    SendError,
    default_users,
    generate,
    positive_int,
    send,
)

DEFAULT_SOURCE = "bench_baseline_in"
DEFAULT_TARGET = "bench_baseline_out"
PRODUCER_SETTINGS: dict = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "compression_type": None,
}
CONSUMER_SETTINGS: dict = {
    "max_poll_records": 2000,
    "fetch_max_bytes": 50 * 1024 * 1024,
    "max_partition_fetch_bytes": 1024 * 1024,
    "enable_auto_commit": False,
}


def _say(text: str) -> None:
    print(f"baseline: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Masking: pipelines/moderation.py's regex, run by the `regex` module

_JAVA_TOKEN = re.compile(r"\\x\{([0-9A-Fa-f]+)\}|\\.", re.S)
_PREFIX = " "  # profanity_pattern: group 1 is the character before a word, so the text gets one


def python_regex(java_pattern: str) -> str:
    r"""`java_pattern` (from `profanity_pattern`) in the syntax of the `regex` module, VERSION1.

    The only Java construct it lacks is the `\x{h..h}` escape, written `\uhhhh` / `\Uhhhhhhhh` here;
    `\p{..}`, possessive quantifiers and `[[..]&&[..]]` are the same in both."""

    def token(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)  # another escape (`\-`, `\p`...), or `\\`: left as it is
        code = int(m.group(1), 16)
        return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"

    return _JAVA_TOKEN.sub(token, java_pattern)


def _stars(match: regex.Match) -> str:
    return match.group(1) + MASK_CHAR * len(match.group(2))


class Masker:
    """The relay's masking in Python: every profane word → one `*` per code point, the rest untouched."""

    def __init__(self, word_lists: WordLists | None = None):
        word_lists = word_lists or load_word_lists()
        self.pattern = regex.compile(
            python_regex(profanity_pattern(word_lists.profane, word_lists.allow)), regex.VERSION1
        )

    def mask(self, text: str) -> tuple[str, bool]:
        """(`text` masked, whether anything was). Like the relay, the internal marks U+FDD0/U+FDD1 are dropped."""
        if OPEN_MARK in text or CLOSE_MARK in text:
            text = text.replace(OPEN_MARK, "").replace(CLOSE_MARK, "")
        masked, count = self.pattern.subn(_stars, _PREFIX + text)
        return (masked[len(_PREFIX) :], True) if count else (text, False)


# ---------------------------------------------------------------------------------------------
# Validation: pipelines/validation.py's rules and reasons


def _spark_utf8_errors(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Invalid UTF-8 becomes U+FFFD as in Spark: Python's maximal-subpart rule, except that a
    surrogate written in UTF-8 (ED A0-BF [80-BF]) is one bad sequence for Java, not one per byte."""
    bad = exc.object[exc.start : exc.start + 3]
    if len(bad) >= 2 and bad[0] == 0xED and 0xA0 <= bad[1] <= 0xBF:
        return "\ufffd", exc.start + (3 if len(bad) == 3 and 0x80 <= bad[2] <= 0xBF else 2)
    return "\ufffd", exc.end


codecs.register_error("chat-spark-utf8", _spark_utf8_errors)


class _NotJson(ValueError):
    pass


def _no_constant(name: str):
    raise _NotJson(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _NotJson("duplicate key")  # Spark's VARIANT refuses duplicate keys
    return out


_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
_JSON_SPACE = " \t\n\r"
_BLANK = regex.compile(r"\p{White_Space}*")  # Java's (?U)\s
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def _parse_json(value: bytes) -> object:
    """The first JSON value of `value`, as Spark's try_parse_json reads it; _NotJson when there is none.

    Like Spark: invalid UTF-8 is replaced, whatever follows the first value is ignored, duplicate
    keys, NaN/Infinity and unpaired surrogate escapes are refused."""
    text = value.decode("utf-8", "chat-spark-utf8")
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        parsed, _ = _JSON.raw_decode(text, start)
    except (ValueError, RecursionError) as exc:
        raise _NotJson(str(exc)) from None
    if _SURROGATE_ESCAPE.search(text) and _has_surrogate(parsed):
        raise _NotJson("unpaired surrogate")
    return parsed


def _is_timestamp(text: str) -> bool:
    """`YYYY-MM-DD HH:MM:SS`, ASCII digits, an existing day of the proleptic Gregorian calendar (year 0 too)."""
    m = _TIMESTAMP.fullmatch(text)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return False
    days = (31, 29 if calendar.isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    return 1 <= day <= days


def parse_message(value: bytes | None) -> tuple[dict[str, str] | None, str | None]:
    """(`{"author", "data", "timestamp"}`, None) for a valid raw `chat` value, else (None, the reason
    pipelines/validation.py's `reject_reason` gives)."""
    if value is None:
        return None, "empty record"
    try:
        parsed = _parse_json(value)
    except _NotJson:
        return None, "value is not JSON"
    if not isinstance(parsed, dict):
        return None, "value is not a JSON object"
    for name in contract.MESSAGE_FIELDS:
        item = parsed.get(name)
        if item is None:
            return None, f"missing field {name}"
        if not isinstance(item, str):
            return None, f"field {name} must be a string"
    if len(parsed) != len(contract.MESSAGE_FIELDS):
        return None, "unexpected fields (only author, data, timestamp)"
    author, data, timestamp = (parsed[name] for name in contract.MESSAGE_FIELDS)
    if _BLANK.fullmatch(author):
        return None, "author is empty"
    if len(author) > contract.MAX_AUTHOR_CHARS:
        return None, f"author longer than {contract.MAX_AUTHOR_CHARS} characters"
    if (problem := contract.author_problem(author)) is not None:
        return None, problem
    if _BLANK.fullmatch(data):
        return None, "data is empty"
    if len(data) > contract.MAX_DATA_CHARS:
        return None, f"data longer than {contract.MAX_DATA_CHARS} characters"
    if not _is_timestamp(timestamp):
        return None, "timestamp is not YYYY-MM-DD HH:MM:SS"
    return {"author": author, "data": data, "timestamp": timestamp}, None


# ---------------------------------------------------------------------------------------------
# One record


@dataclass(frozen=True)
class ControlledRecord:
    """What the relay writes to chat_controlled for one valid record."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    profane: bool


def controlled_record(
    value: bytes | None, headers: Sequence[tuple[str, bytes | None]], partition: int, offset: int, masker: Masker
) -> ControlledRecord | None:
    """The relay's output for one raw record (None when it is invalid): pipelines/relay.py `build_relay`, but for
    the `terms` header (the words matched): the masking here does not name them."""
    message, _ = parse_message(value)
    if message is None:
        return None
    masked, profane = masker.mask(message["data"])
    message_id = next((v for k, v in headers if k == contract.MESSAGE_ID_HEADER), None)
    if message_id is None:
        message_id = f"kafka-{partition}-{offset}".encode()
    body = {"author": message["author"], "data": masked, "timestamp": message["timestamp"]}
    return ControlledRecord(
        key=message["author"].encode("utf-8"),
        value=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        headers=[
            (contract.MESSAGE_ID_HEADER, message_id),
            (contract.CHAT_POSITION_HEADER, f"{partition}:{offset}".encode()),
            (contract.PROFANE_HEADER, b"true" if profane else b"false"),
        ],
        profane=profane,
    )


# ---------------------------------------------------------------------------------------------
# The loop


class BaselineError(RuntimeError):
    pass


def run_baseline(
    bootstrap: str,
    source_topic: str,
    target_topic: str,
    expected: int,
    timeout_s: float = 600,
    word_lists: WordLists | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """Consume `expected` raw records of `source_topic` from its beginning, mask the valid ones and produce them to
    `target_topic` (which must exist); return once every send is acknowledged.

    Returns {"msgs_per_s" (source records per second), "seconds" (first record in → last
    acknowledgement), "startup_s" (connecting, metadata), "python_s" (of `seconds`, the time spent
    parsing, validating, masking and serialising), "records", "valid", "invalid", "profane",
    "produced", "partitions", "source_topic", "target_topic", "settings"}. Raises BaselineError
    when a topic is missing, Kafka cannot be reached, a send fails or `timeout_s` passes.
    """
    if expected < 1:
        raise ValueError("expected must be at least 1")
    masker = Masker(word_lists)
    began = time.monotonic()
    deadline = began + timeout_s
    with contextlib.ExitStack() as clients:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                client_id="chat-bench-baseline",
                group_id=None,
                auto_offset_reset="earliest",
                **CONSUMER_SETTINGS,
            )
            clients.callback(consumer.close)
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id="chat-bench-baseline",
                allow_auto_create_topics=False,
                max_block_ms=30_000,
                **PRODUCER_SETTINGS,
            )
            clients.callback(producer.close, timeout=10)
            partitions = _assign_from_beginning(consumer, source_topic, deadline)
            try:
                producer.partitions_for(target_topic)
            except KafkaTimeoutError:
                raise BaselineError(f"target topic {target_topic} not found") from None
            counts = _relay(
                consumer,
                producer,
                masker,
                target_topic,
                expected,
                lambda done: _check_time(done, expected, source_topic, deadline, timeout_s),
                progress,
            )
            producer.flush(timeout=max(1.0, deadline - time.monotonic()))
            done_at = time.monotonic()
        except KafkaError as exc:
            raise BaselineError(f"Kafka at {bootstrap}: {type(exc).__name__}: {exc}") from None
        if counts.failures:
            raise BaselineError(
                f"{len(counts.failures)} sends to {target_topic} failed, the first: {counts.failures[0]!r}"
            )
    seconds = done_at - counts.first_at
    return {
        "msgs_per_s": expected / seconds,
        "seconds": seconds,
        "startup_s": counts.first_at - began,
        "python_s": counts.python_s,
        "records": expected,
        "valid": counts.valid,
        "invalid": expected - counts.valid,
        "profane": counts.profane,
        "produced": counts.valid,
        "partitions": len(partitions),
        "source_topic": source_topic,
        "target_topic": target_topic,
        "settings": {
            "producer": dict(PRODUCER_SETTINGS),
            "consumer": {**CONSUMER_SETTINGS, "group": None, "from": "earliest"},
            "crc32c": "native" if importlib.util.find_spec("crc32c") else "pure Python",
        },
    }


@dataclass
class _Counts:
    first_at: float = 0.0  # when the first record arrived (time.monotonic)
    valid: int = 0
    profane: int = 0
    python_s: float = 0.0
    failures: list = field(default_factory=list)


def _relay(
    consumer: KafkaConsumer,
    producer: KafkaProducer,
    masker: Masker,
    target_topic: str,
    expected: int,
    check_time: Callable[[int], None],
    progress: Callable[[str], None],
) -> _Counts:
    """The loop: poll, turn each record into its output, send it; until `expected` records are consumed."""
    counts = _Counts()
    records = 0
    next_report = time.monotonic() + 5
    while records < expected:
        check_time(records)
        batches = consumer.poll(timeout_ms=500)
        if records == 0 and batches:
            counts.first_at = time.monotonic()
        for batch in batches.values():
            batch = batch[: expected - records]
            records += len(batch)
            started = time.perf_counter()
            outputs = [controlled_record(r.value, r.headers, r.partition, r.offset, masker) for r in batch]
            counts.python_s += time.perf_counter() - started
            for out in outputs:
                if out is not None:
                    counts.valid += 1
                    counts.profane += out.profane
                    producer.send(target_topic, key=out.key, value=out.value, headers=out.headers).add_errback(
                        counts.failures.append
                    )
        if counts.failures:
            break
        if time.monotonic() > next_report and records:
            progress(f"{records:,}/{expected:,} records, {records / (time.monotonic() - counts.first_at):,.0f}/s")
            next_report = time.monotonic() + 5
    return counts


def _check_time(records: int, expected: int, topic: str, deadline: float, timeout_s: float) -> None:
    if time.monotonic() > deadline:
        raise BaselineError(
            f"timed out after {timeout_s:g}s: {records:,} of {expected:,} records consumed from {topic}"
        )


def _assign_from_beginning(consumer: KafkaConsumer, topic: str, deadline: float) -> set[int]:
    """Assign every partition of `topic` to `consumer` (no group), at its beginning; return the partitions."""
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise BaselineError(f"source topic {topic} not found")
        time.sleep(0.2)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    return partitions


def summary_line(result: dict) -> str:
    return (
        f"Python baseline (kafka-python consume → validate → mask → produce, acks=all), "
        f"{result['records']:,} records ({result['valid']:,} valid, {result['profane']:,} profane), "
        f"{result['partitions']} partition(s): {result['msgs_per_s']:,.0f} msgs/s "
        f"({result['seconds']:.1f} s, of which {result['python_s']:.1f} s parsing and masking)"
    )


# ---------------------------------------------------------------------------------------------
# Command line


def fill_source(bootstrap: str, topic: str, records: int, partitions: int, seed: int = 7) -> None:
    """Recreate `topic` and send it `records` records of demo traffic (stack/demo_data.py)."""
    recreate_topic(bootstrap, topic, partitions)
    chunk = 100_000  # generate builds records in memory: a chunk at a time
    for start in range(0, records, chunk):
        n = min(chunk, records - start)
        batch = generate(
            n,
            default_users(n),
            DEFAULT_DAYS,
            DEFAULT_PROFANE_SHARE,
            DEFAULT_MALFORMED_SHARE,
            seed + start,
            datetime.now(UTC),
        )
        send(batch, bootstrap, topic)


def main(argv: Sequence[str] | None = None) -> int:
    s = settings.load()
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap", default=s.kafka_bootstrap, help=f"Kafka bootstrap servers (default {s.kafka_bootstrap})"
    )
    parser.add_argument(
        "--records", type=positive_int, default=100_000, metavar="N", help="source records to process (default 100,000)"
    )
    parser.add_argument(
        "--partitions",
        type=positive_int,
        help="partitions of the topics created (default: as many as `chat` has on that broker)",
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help=f"raw records topic (default {DEFAULT_SOURCE})")
    parser.add_argument("--target", default=DEFAULT_TARGET, help=f"output topic, recreated (default {DEFAULT_TARGET})")
    parser.add_argument(
        "--reuse-source",
        action="store_true",
        help="read the source topic as it is (it holds at least N records) instead of filling it",
    )
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the topics afterwards")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS", help="give up after (default 1800)")
    args = parser.parse_args(argv)
    if args.source == args.target:
        parser.error("--source and --target must differ")
    created: list[str] = []
    try:
        partitions = args.partitions or chat_partitions(args.bootstrap)
        if not args.reuse_source:
            _say(f"filling {args.source} ({partitions} partition(s)) with {args.records:,} records of demo traffic")
            created.append(args.source)
            fill_source(args.bootstrap, args.source, args.records, partitions)
        created.append(args.target)
        recreate_topic(args.bootstrap, args.target, partitions)
        _say(f"{args.source} -> {args.target}: consume, validate, mask, produce")
        result = run_baseline(args.bootstrap, args.source, args.target, args.records, args.timeout, progress=_say)
    except (BaselineError, SendError, KafkaError) as exc:
        print(f"baseline: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if not args.keep_topics:
            for topic in created:
                try:
                    delete_topic(args.bootstrap, topic)
                except KafkaError as exc:
                    _say(f"could not delete topic {topic}: {exc}")
    print(summary_line(result))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
