"""bench/baseline.py and bench/kafka_limits.py.

The baseline must do exactly the relay's work, so its validation, masking and
output records are compared with the Spark code itself (pipelines/validation.py,
pipelines/moderation.py, pipelines/relay.py) on demo traffic, on every case of
tests/pipelines/test_moderation.py and on generated tricky texts. The Kafka tests run the
loop and Kafka's own performance tools against the real broker.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, TopicPartition

import tests.pipelines.test_moderation as moderation_tests
from bench import baseline, kafka_limits
from bench.baseline import BaselineError, Masker, controlled_record, parse_message, python_regex, run_baseline
from bench.kafka_limits import ToolError, broker_limit, parse_consumer_summary, parse_producer_summary
from config import contract
from pipelines.moderation import with_moderation
from pipelines.relay import build_relay
from pipelines.validation import with_validated_message
from pipelines.wordlists import load_word_lists
from stack import demo_data
from stack.demo_data import CLEAN, PROFANE, DemoRecord, generate, obfuscated, random_obfuscations
from tests.pipelines.records import RAW_SCHEMA

NOW = datetime(2026, 11, 27, 18, 30, 15, tzinfo=UTC)
TS = "2026-11-27 10:00:00"
ZWSP, ACUTE, TILDE = "\u200b", "\u0301", "\u0303"


@pytest.fixture(scope="module")
def word_lists():
    return load_word_lists()


@pytest.fixture(scope="module")
def masker(word_lists):
    return Masker(word_lists)


def msg(**fields) -> bytes:
    body = {"author": "ana", "data": "hola", "timestamp": TS}
    body.update(fields)
    return json.dumps(body, ensure_ascii=False).encode()


def raw(data: bytes) -> bytes:
    return b'{"author":"a","timestamp":"' + TS.encode() + b'","data":"' + data + b'"}'


# Raw values at the edges of pipelines/validation.py; Spark's verdict on each is the reference.
EDGE_VALUES = [
    None,
    b"",
    b"null",
    b'"s"',
    b"12",
    b"[1]",
    b"{'author':'a'}",
    b"\xef\xbb\xbf" + msg(),
    b"\x0c" + msg(),
    b"  \n" + msg() + b"\n",
    msg() + b" x",
    msg() + b"{}",
    msg() + b" {",
    msg() + b"]",
    msg() + b"\x00",
    raw(b"line\nbreak"),
    raw(b"\\u0000"),
    raw(b"\\/"),
    raw(b"\\x41"),
    raw(b"\\ud800"),
    raw(b"\\ud83d\\ude00"),
    raw(b"\\ude00\\ud83d"),
    raw(b"x\xff"),
    raw(b"x\xed\xa0\x80y"),
    raw(b"\xed\xa0y"),
    raw(b"\xed\xbf\xbf"),
    raw(b"\xed\xa0"),
    raw(b"\xed"),
    raw(b"\xed\x9f\xbf"),
    raw(b"\xed\xa0\x80\xed\xb0\x80"),
    raw(b"\xc3\x28"),
    raw(b"\xe2\x82"),
    raw(b"\xf0\x9f\x98z"),
    raw(b"\xc0\xaf"),
    raw(b"\xf8\x88\x80\x80\x80"),
    raw(b"\xf4\x90\x80\x80"),
    raw(b"\xe0\x80\x80"),
    raw(b"\x80"),
    b'{"author":"a","author":"b","data":"x","timestamp":"' + TS.encode() + b'"}',
    msg()[:-1] + b', "n": {"a": 1, "a": 2}}',
    msg()[:-1] + b', "n": NaN}',
    msg()[:-1] + b', "n": 01}',
    msg()[:-1] + b', "n": 123456789012345678901234567890}',
    b'{"author":"a","data":1e400,"timestamp":"x"}',
    msg()[:-1] + b",}",
    msg(author=None),
    msg(author=1),
    msg(author=True),
    msg(author=[]),
    msg(author={}),
    msg(data=None),
    msg(extra=None),
    msg(room="general"),
    b'{"author":"a","data":"x"}',
    b'{"data":"x","timestamp":"t"}',
    msg(author=""),
    msg(author="\u00a0"),
    msg(author="\u3000"),
    msg(author="\x85"),
    msg(author="\u200b"),
    msg(author="\x1c"),
    msg(author="\u180e"),
    msg(data="\u2028\u2029 \t"),
    msg(data="\n"),
    msg(author="x" * 64),
    msg(author="x" * 65),
    msg(author="😀" * 64),
    msg(author="😀" * 65),
    msg(data="é" * 2000),
    msg(data="😀" * 2001),
    *(
        msg(timestamp=ts)
        for ts in (
            "2026-11-27 10:00:00\n",
            "0000-01-01 00:00:00",
            "2026-02-29 10:00:00",
            "2024-02-29 10:00:00",
            "2026-11-27 23:59:60",
            "2026-11-27 24:00:00",
            "２０２６-11-27 10:00:00",
            "2026-11-27T10:00:00",
            "9999-12-31 23:59:59",
            "2026-13-01 10:00:00",
            "2026-00-10 10:00:00",
            "2026-04-31 10:00:00",
        )
    ),
    msg(data="qué m1erda, JODER"),
    msg(data="x\ufdd0y\ufdd1z mierda"),
    msg(author="Zoë 🌍", data="¡f*ck! <b>x</b>"),
]


def demo_values(n: int = 2000, seed: int = 5) -> list[bytes]:
    """Raw values of demo traffic with a large share of profane and malformed records (every kind)."""
    return [r.value for r in generate(n, 40, 7, 0.3, 0.15, seed, NOW)]


def tricky_texts(word_lists, n: int = 1500, seed: int = 3) -> list[str]:
    """Listed words written every way the matcher tolerates (and some it does not), glued to
    letters, digits, marks, invisible characters, punctuation, emoji and other listed words."""
    rng = random.Random(seed)
    words = word_lists.profane
    glue = [
        " ",
        " ",
        "",
        ".",
        "-",
        "_",
        ",",
        "!",
        "¿",
        "*",
        "@",
        "$",
        "1",
        "a",
        "ñ",
        "é",
        ZWSP,
        "\u00ad",
        ACUTE,
        TILDE,
        "😡",
        "❤️",
        "👍🏽",
        "你",
        "Δ",
        "\n",
        "\u2060",
        "\ufeff",
        "s",
        "es",
        "\ufdd0",
    ]
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 4)):
            word = rng.choice(words + word_lists.allow)
            parts.append(obfuscated(word, random_obfuscations(rng), rng) if rng.random() < 0.7 else word)
            parts.append("".join(rng.choices(glue, k=rng.randint(0, 3))))
        texts.append("".join(parts))
    return texts


def listed_word_variants(word_lists) -> list[str]:
    """Every listed word as is, in upper case, repeated, with an invisible character, a plural, a `*`."""
    out = []
    for w in word_lists.profane:
        vowel = next((i for i, c in enumerate(w) if c in "aeiou"), None)
        out += [
            w,
            w.upper(),
            w[0] * 3 + w[1:],
            w[0] + ZWSP + w[1:],
            w + "s",
            w + "es",
            f"«{w}»",
            w if vowel is None else w[:vowel] + "*" + w[vowel + 1 :],
        ]
    return out


# ---------------------------------------------------------------------------------------------
# Masking


def test_python_regex_rewrites_only_javas_hex_escapes():
    assert python_regex(r"[\x{21}\x{2A}a\-]\x{303}\x{1F600}\p{Cf}*+") == r"[\u0021\u002Aa\-]\u0303\U0001F600\p{Cf}*+"
    assert python_regex(r"\\x{41}") == r"\\x{41}"  # an escaped backslash, then text


MODERATION_TESTS = [
    "test_no_match_inside_a_word",
    "test_punctuation_emoji_and_edges_are_boundaries",
    "test_case_and_accent_insensitive",
    "test_enye_stays_strict",
    "test_repeated_letters",
    "test_digit_and_symbol_stand_ins",
    "test_stand_in_symbols_alone_are_not_words",
    "test_invisible_characters_inside_a_word",
    "test_one_separator_between_letters",
    "test_optional_plural",
    "test_masking_keeps_everything_else",
    "test_null_empty_and_clean_texts",
    "test_very_long_texts",
    "test_allow_list_words_are_never_masked",
    "test_allow_list_is_what_exempts_them",
]


def test_masker_gives_every_expected_result_of_the_moderation_tests(monkeypatch, word_lists):
    """The cases of tests/pipelines/test_moderation.py (checked there in Spark), replayed through the Masker."""
    recorded: dict[str, list] = {}
    for name in MODERATION_TESTS:
        monkeypatch.setattr(
            moderation_tests,
            "check",
            lambda spark, lists, cases, name=name: recorded.setdefault(name, []).append((lists, cases)),
        )
        getattr(moderation_tests, name)(None, word_lists)
    assert set(recorded) == set(MODERATION_TESTS)
    wrong, count = [], 0
    for name, calls in recorded.items():
        for lists, cases in calls:
            m = Masker(lists)
            for text, expected, terms in cases:
                if text is None:
                    continue  # a null data is a rejected record before masking
                count += 1
                if m.mask(text) != (expected, bool(terms)):
                    wrong.append((name, text, m.mask(text), expected))
    assert count > 150
    assert wrong == []


def test_masker_equals_the_relays_masking(spark, word_lists, masker):
    texts = (
        [message["data"] for message, _ in map(parse_message, demo_values(3000, seed=9)) if message]
        + tricky_texts(word_lists)
        + listed_word_variants(word_lists)
        + ["", " ", "x\ufdd0y\ufdd1z", "\ufdd1mierda\ufdd0"]
    )
    df = spark.createDataFrame(list(enumerate(texts)), "id int, data string").transform(
        lambda d: with_moderation(d, word_lists)
    )
    spark_out = {r.id: (r.masked_data, r.is_profane) for r in df.select("id", "masked_data", "is_profane").collect()}
    ours = [masker.mask(text) for text in texts]
    wrong = [(text, ours[i], spark_out[i]) for i, text in enumerate(texts) if ours[i] != spark_out[i]]
    assert len(texts) > 4000 and sum(p for _, p in spark_out.values()) > 2000
    assert wrong == []


# ---------------------------------------------------------------------------------------------
# Validation and the output record


def raw_df(spark, values: list[bytes | None]):
    """Raw records at partition 0, offset i; every third one without a message_id header."""
    rows = [(v, [] if i % 3 == 2 else [("message_id", f"m{i}".encode())], 0, i) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RAW_SCHEMA)


def test_parse_message_gives_the_relays_verdict_and_reason(spark):
    values = EDGE_VALUES + demo_values()
    rows = raw_df(spark, values).transform(with_validated_message).orderBy("offset").collect()
    expected = [
        (
            {"author": r.author, "data": r.data, "timestamp": r.timestamp} if r.reject_reason is None else None,
            r.reject_reason,
        )
        for r in rows
    ]
    actual = [parse_message(v) for v in values]
    wrong = [(v, a, e) for v, a, e in zip(values, actual, expected) if a != e]
    assert wrong == []
    assert {reason for _, reason in expected} >= {
        None,
        "value is not JSON",
        "value is not a JSON object",
        "data is empty",
        "author is empty",
        "missing field author",
    }


def test_controlled_record_equals_the_relays_output(spark, word_lists, masker):
    values = EDGE_VALUES + demo_values(seed=6)
    df = raw_df(spark, values)
    relayed = build_relay(df, word_lists).collect()
    # the relay also names the matched words (its `terms` header, for the API's instant notices); the baseline,
    # which masks without naming them, is compared on everything else
    assert all([h.key for h in r.headers][-1] == contract.TERMS_HEADER for r in relayed)
    spark_rows = [
        (r.key.encode(), json.loads(r.value), [(h.key, bytes(h.value)) for h in r.headers[:-1]]) for r in relayed
    ]
    ours = [
        controlled_record(r.value, [(h.key, bytes(h.value)) for h in r.headers], r.partition, r.offset, masker)
        for r in df.orderBy("offset").collect()
    ]
    ours = [(o.key, json.loads(o.value), o.headers) for o in ours if o is not None]

    def position(row):
        return int(dict(row[2])["chat_position"].split(b":")[1])

    assert sorted(ours, key=position) == sorted(spark_rows, key=position)
    assert len(ours) > 1000
    assert any(dict(h)["message_id"] == f"kafka-0-{position((k, v, h))}".encode() for k, v, h in ours)


def test_controlled_record_is_compact_utf8_json_keyed_by_author(masker):
    out = controlled_record(msg(author="Zoë", data="¡qué mierda! 😀"), [("message_id", b"id-1")], 3, 41, masker)
    assert out.key == "Zoë".encode()
    assert out.value == '{"author":"Zoë","data":"¡qué ******! 😀","timestamp":"2026-11-27 10:00:00"}'.encode()
    assert out.headers == [("message_id", b"id-1"), ("chat_position", b"3:41"), ("profane", b"true")]
    assert out.profane
    assert controlled_record(b"garbage", [], 0, 0, masker) is None


# ---------------------------------------------------------------------------------------------
# Kafka's performance tools: output parsing (no Kafka)

PRODUCER_OUTPUT = """\
[2026-11-27 23:41:10,123] INFO ProducerConfig values: (org.apache.kafka.clients.producer.ProducerConfig)
98431 records sent, 19686.2 records/sec (3.75 MB/sec), 120.3 ms avg latency, 503.0 ms max latency.
200000 records sent, 21012.5 records/sec (4.01 MB/sec), 98.12 ms avg latency, 503.00 ms max latency, 71 ms 50th, \
250 ms 95th, 390 ms 99th, 480 ms 99.9th.
"""
CONSUMER_OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, \
fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
WARNING: Exiting before consuming the expected number of messages: timeout (3000 ms) exceeded.
2026-11-27 23:41:29:651, 2026-11-27 23:41:34:180, 3.8147, 0.8423, 20000, 4415.9859, 919, 3610, 1.0567, 5540.1662
"""


def test_parse_producer_summary_takes_the_final_line():
    assert parse_producer_summary(PRODUCER_OUTPUT) == {
        "records": 200000,
        "msgs_per_s": 21012.5,
        "mb_per_s": 4.01,
        "avg_ms": 98.12,
        "max_ms": 503.0,
        "p50_ms": 71.0,
        "p95_ms": 250.0,
        "p99_ms": 390.0,
        "p999_ms": 480.0,
    }
    with pytest.raises(ToolError, match="no summary line"):
        parse_producer_summary(PRODUCER_OUTPUT.splitlines()[1])


def test_parse_consumer_summary_skips_a_warning_line():
    assert parse_consumer_summary(CONSUMER_OUTPUT) == {
        "records": 20000,
        "mb": 3.8147,
        "msgs_per_s_with_join": 4415.9859,
        "mb_per_s_with_join": 0.8423,
        "rebalance_ms": 919.0,
        "fetch_ms": 3610.0,
        "msgs_per_s": 5540.1662,
        "mb_per_s": 1.0567,
    }
    with pytest.raises(ToolError, match="no header line"):
        parse_consumer_summary("nothing")
    with pytest.raises(ToolError, match="no result line"):
        parse_consumer_summary(CONSUMER_OUTPUT.splitlines()[0])


def test_a_failing_tool_raises_with_its_output_tail():
    with pytest.raises(ToolError, match=r"ProducerPerformance exited with code \d+:\n--- std(out|err).*"):
        kafka_limits.run_tool(kafka_limits.PRODUCER_TOOL, ["--num-records", "1"], timeout_s=120)


def test_missing_jars_are_reported(tmp_path):
    with pytest.raises(ToolError, match="make jars"):
        kafka_limits.tool_command(kafka_limits.PRODUCER_TOOL, [], tmp_path / "log.properties", jars=tmp_path)


# ---------------------------------------------------------------------------------------------
# Against the real broker


def fresh(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def read_all(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        return sum(ends.values())
    finally:
        consumer.close()


@pytest.mark.integration
def test_run_baseline_relays_every_valid_record_once_masked_with_its_headers(kafka_only, masker):
    source, target = fresh("bench_in"), fresh("bench_out")
    kafka_limits.recreate_topic(kafka_only, source, partitions=2)
    kafka_limits.recreate_topic(kafka_only, target, partitions=2)
    records = generate(400, 30, 7, 0.3, 0.1, 17, NOW)
    records.append(DemoRecord(b"eve", msg(author="eve", data="sin cabecera, joder"), (), PROFANE, "eve", NOW))
    demo_data.send(records, kafka_only, source)
    valid = [r for r in records if r.label in (CLEAN, PROFANE)]

    result = run_baseline(kafka_only, source, target, expected=len(records), timeout_s=120)

    assert (result["records"], result["valid"], result["invalid"], result["produced"]) == (
        len(records),
        len(valid),
        len(records) - len(valid),
        len(valid),
    )
    assert result["profane"] == sum(r.label == PROFANE for r in records)
    assert result["msgs_per_s"] > 0 and result["seconds"] > 0 and result["partitions"] == 2
    assert result["settings"]["producer"]["acks"] == "all"

    sources = {(r.partition, r.offset): r for r in read_all(kafka_only, source)}
    out = read_all(kafka_only, target)
    assert len(out) == len(valid)
    by_id = {dict(r.headers)["message_id"]: r for r in records if r.headers}
    ids = [dict(o.headers)["message_id"] for o in out]
    assert len(set(ids)) == len(ids)
    for o in out:
        headers = dict(o.headers)
        partition, offset = map(int, headers["chat_position"].decode().split(":"))
        src = sources[(partition, offset)]
        body, original = json.loads(o.value), json.loads(src.value)
        assert o.key == original["author"].encode() == src.key
        assert body.keys() == original.keys()
        assert (body["author"], body["timestamp"]) == (original["author"], original["timestamp"])
        assert body["data"] == masker.mask(original["data"])[0]
        if src.headers:
            assert headers["message_id"] == dict(src.headers)["message_id"]
            label = by_id[headers["message_id"]].label
        else:
            assert headers["message_id"] == f"kafka-{partition}-{offset}".encode()
            label = PROFANE
        if label == PROFANE:
            assert body["data"] != original["data"] and "*" in body["data"]
        else:
            assert body["data"] == original["data"]
    kafka_limits.delete_topic(kafka_only, source)
    kafka_limits.delete_topic(kafka_only, target)


@pytest.mark.integration
def test_run_baseline_times_out_when_the_source_has_too_few_records(kafka_only):
    source, target = fresh("bench_in"), fresh("bench_out")
    kafka_limits.recreate_topic(kafka_only, source)
    kafka_limits.recreate_topic(kafka_only, target)
    demo_data.send(generate(5, 2, 1, 0, 0, 1, NOW), kafka_only, source)
    with pytest.raises(BaselineError, match="5 of 10 records consumed"):
        run_baseline(kafka_only, source, target, expected=10, timeout_s=3)
    with pytest.raises(BaselineError, match="not found"):
        run_baseline(kafka_only, fresh("missing"), target, expected=1, timeout_s=2)


@pytest.mark.integration
def test_baseline_command_prints_a_readable_line_and_json(kafka_only, capsys):
    source, target = fresh("bench_in"), fresh("bench_out")
    assert (
        baseline.main(
            ["--bootstrap", kafka_only, "--records", "300", "--partitions", "1", "--source", source, "--target", target]
        )
        == 0
    )
    readable, line = capsys.readouterr().out.strip().splitlines()
    result = json.loads(line)
    assert readable.startswith("Python baseline") and result["records"] == 300 and result["msgs_per_s"] > 0
    assert 0 < result["invalid"] < 300
    consumer = KafkaConsumer(bootstrap_servers=kafka_only)
    try:
        assert not {source, target} & consumer.topics()  # deleted afterwards
    finally:
        consumer.close()


@pytest.mark.integration
def test_broker_limit_measures_with_kafkas_own_tools(kafka_only):
    topic = fresh("bench_limit")
    result = broker_limit(kafka_only, record_size=100, num_records=20_000, topic=topic, partitions=2, keep_topic=True)
    assert (result["records"], result["record_size"], result["partitions"]) == (20_000, 100, 2)
    for key in (
        "producer_msgs_per_s",
        "producer_mb_per_s",
        "producer_p99_ms",
        "consumer_msgs_per_s",
        "consumer_mb_per_s",
        "consumer_msgs_per_s_with_join",
    ):
        assert result[key] > 0, key
    assert result["producer_p50_ms"] <= result["producer_p99_ms"] <= result["producer_max_ms"]
    assert result["settings"]["producer"]["acks"] == "all"
    assert end_offsets(kafka_only, topic) == 20_000
    kafka_limits.delete_topic(kafka_only, topic)


@pytest.mark.integration
def test_kafka_limits_command_prints_a_readable_line_and_json(kafka_only, capsys):
    topic = fresh("bench_limit")
    assert kafka_limits.main(["--bootstrap", kafka_only, "--records", "2000", "--topic", topic]) == 0
    readable, line = capsys.readouterr().out.strip().splitlines()
    assert readable.startswith("Kafka alone, 2,000 records of 100 B")
    assert json.loads(line)["records"] == 2000
    consumer = KafkaConsumer(bootstrap_servers=kafka_only)
    try:
        assert topic not in consumer.topics()
    finally:
        consumer.close()


def test_broker_limit_rejects_nonsense_before_touching_kafka():
    with pytest.raises(ValueError, match="at least 1"):
        broker_limit("127.0.0.1:1", record_size=0)
    with pytest.raises(ValueError, match="at least 1"):
        run_baseline("127.0.0.1:1", "a", "b", expected=0)


def test_tool_command_uses_the_cached_kafka_jars(tmp_path):
    cmd = kafka_limits.tool_command(kafka_limits.CONSUMER_TOOL, ["--help"], tmp_path / "log4j2.properties")
    assert cmd[-2:] == [kafka_limits.CONSUMER_TOOL, "--help"]
    assert cmd[cmd.index("-cp") + 1].endswith("kafka/*")
    assert f"-Dlog4j2.configurationFile={tmp_path / 'log4j2.properties'}" in cmd
