"""stack/demo_data.py: the generated traffic (checked in Spark against the real validation and
moderation, not against the generator's own idea of them) and its delivery to Kafka."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyspark.sql.functions as F
import pytest

from config.contract import MAX_AUTHOR_CHARS
from config.settings import REPO_ROOT
from pipelines.moderation import with_moderation
from pipelines.validation import field_text, parsed_value, reject_reason
from pipelines.wordlists import STAND_INS, load_word_lists
from stack import demo_data
from stack.broker import free_port
from stack.demo_data import (
    CLEAN,
    COMBINABLE,
    MALFORMED_KINDS,
    PROFANE,
    Plan,
    Progress,
    generate,
    load_profane_words,
    obfuscated,
    parse_args,
    plan,
    send,
    summarize,
)
from stack.topics import create_topics
from tests.conftest import records_in

NOW = datetime(2026, 11, 27, 18, 30, 15, tzinfo=UTC)
DAYS = 7


@pytest.fixture(scope="module")
def records():
    """The default mix: 5000 records, 83 users."""
    return generate(5000, 83, DAYS, 0.06, 0.01, seed=11, now=NOW)


def body(record) -> dict:
    return json.loads(record.value)


def profane_counts(records) -> Counter:
    return Counter(r.author for r in records if r.label == PROFANE)


# -- the generator, without Kafka or Spark ---------------------------------------------


def test_the_same_seed_and_time_give_the_same_records_and_a_later_run_new_ids():
    first = generate(400, 20, DAYS, 0.06, 0.05, seed=5, now=NOW)
    assert generate(400, 20, DAYS, 0.06, 0.05, seed=5, now=NOW) == first
    assert [body(r)["data"] for r in generate(400, 20, DAYS, 0.06, 0.0, seed=6, now=NOW)] != [
        body(r)["data"] for r in generate(400, 20, DAYS, 0.06, 0.0, seed=5, now=NOW)
    ]
    later = generate(400, 20, DAYS, 0.06, 0.05, seed=5, now=NOW + timedelta(hours=1))
    assert [(r.label, r.author, r.key) for r in later] == [(r.label, r.author, r.key) for r in first]
    assert [body(r)["data"] for r in later if r.is_valid] == [body(r)["data"] for r in first if r.is_valid]
    assert later[-1].sent_at > NOW and not {r.message_id for r in later} & {r.message_id for r in first}


def test_exactly_n_records_in_chronological_order_over_the_last_days(records):
    assert len(records) == 5000
    times = [r.sent_at for r in records]
    assert times == sorted(times)
    assert NOW - timedelta(days=DAYS) < times[0] and times[-1] <= NOW
    assert times[-1] - times[0] > timedelta(days=DAYS - 0.5)  # spread over the whole span
    for r in records:
        if r.is_valid:
            assert body(r)["timestamp"] == r.sent_at.strftime("%Y-%m-%d %H:%M:%S")


def test_traffic_follows_a_daily_rhythm(records):
    per_hour = Counter(r.sent_at.hour for r in records)
    evening = sum(per_hour[h] for h in range(17, 22)) / 5
    night = sum(per_hour[h] for h in range(2, 6)) / 4
    assert evening > 5 * night > 0


@pytest.mark.parametrize("n, profane_share, malformed_share", [(5000, 0.06, 0.01), (2000, 0.25, 0.1), (300, 0, 0)])
def test_the_shares_are_as_asked(n, profane_share, malformed_share):
    summary = summarize(generate(n, 30, DAYS, profane_share, malformed_share, seed=2, now=NOW))
    malformed = round(n * malformed_share)
    assert (summary.records, summary.valid) == (n, n - malformed)
    assert summary.profane == round((n - malformed) * profane_share)
    assert plan(n, 30, profane_share, malformed_share) == Plan(n, summary.valid, summary.profane, malformed, 30)
    if malformed >= len(MALFORMED_KINDS):  # every kind, in turn
        assert set(summary.malformed) == set(MALFORMED_KINDS)
        assert max(summary.malformed.values()) - min(summary.malformed.values()) <= 1


def test_users_have_varied_names_and_a_long_tail_of_activity(records):
    per_user = Counter(r.author for r in records if r.is_valid)
    assert len(per_user) == 83
    names = list(per_user)
    assert all(0 < len(n) <= MAX_AUTHOR_CHARS and n == unicodedata.normalize("NFC", n).strip() for n in names)
    assert len({n.casefold() for n in names}) == len(names)
    assert sum(not n.isascii() for n in names) >= 10
    assert any(" " in n for n in names)
    assert any(unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "HANGUL")) for n in names for ch in n)
    counts = sorted(per_user.values(), reverse=True)
    assert counts[0] >= 5 * statistics.median(counts)  # a few very chatty users
    assert counts[-1] == 1  # someone said one thing only


def test_a_few_trolls_collect_three_strikes_and_most_users_never_swear(records):
    authors = {r.author for r in records if r.is_valid}
    profane = profane_counts(records)
    trolls = [a for a, count in profane.items() if count >= 3]
    assert 1 <= len(trolls) < len(authors) / 4
    assert len(authors - set(profane)) > len(authors) / 2


def test_messages_are_varied_in_two_languages(records):
    texts = [body(r)["data"] for r in records if r.is_valid]
    lengths = [len(t) for t in texts]
    assert min(lengths) <= 3 and max(lengths) >= 200 and len(set(lengths)) >= 50
    assert len(set(texts)) >= len(texts) / 4
    spanish = sum(any(mark in t for mark in "¿¡ñáéíóú") or " el " in f" {t} " for t in texts)
    english = sum(" the " in f" {t.lower()} " or " I " in f" {t} " for t in texts)
    assert spanish > len(texts) / 4 and english > len(texts) / 8
    assert any("@" in t for t in texts) and any("\n" in t for t in texts)


def test_every_record_has_its_own_message_id_and_valid_ones_are_keyed_by_author(records):
    ids = [r.message_id for r in records]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    assert all([name for name, _ in r.headers] == ["message_id"] for r in records)
    for r in records:
        if r.is_valid:
            assert r.key == r.author.encode("utf-8") == body(r)["author"].encode("utf-8")
            assert list(body(r)) == ["author", "data", "timestamp"]


def test_the_summary_counts_what_was_generated(records):
    summary = summarize(records)
    labels = Counter(r.label for r in records)
    assert (summary.clean, summary.profane) == (labels[CLEAN], labels[PROFANE])
    assert summary.malformed == {k: labels[k] for k in MALFORMED_KINDS}
    assert summary.users == 83
    assert summary.users_with_3_profane == sum(1 for c in profane_counts(records).values() if c >= 3)
    assert (summary.first, summary.last) == (records[0].sent_at, records[-1].sent_at)


@pytest.mark.parametrize(
    "argv, error",
    [
        (["-n", "0"], "argument -n: 0 is less than 1"),
        (["-n", "lots"], "'lots' is not a whole number"),
        (["-n", "600000"], "is more than 500,000"),
        (["--profane-share", "1.5"], "is not a share between 0 and 1"),
        (["--malformed-share", "-0.1"], "is not a share between 0 and 1"),
        (["-n", "10", "--users", "11"], "argument --users: 11 is more than 10"),
        (["--days", "0"], "is not a number of days"),
        (["--timeout", "0"], "must be more than 0 seconds"),
        (["--bootstrap", "kafka:ninety"], "argument --bootstrap: 'kafka:ninety' is not HOST:PORT"),
        (["--bootstrap", "a:9092,"], "argument --bootstrap: '' is not HOST:PORT"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_message(argv, error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def test_defaults(monkeypatch):
    monkeypatch.setenv("CHAT_KAFKA_BOOTSTRAP", "kafka.example:9092")
    args = parse_args([])
    assert (args.n, args.users, args.days, args.profane_share, args.malformed_share) == (5000, 83, 7, 0.06, 0.01)
    assert args.bootstrap == "kafka.example:9092" and args.topic == "chat" and isinstance(args.seed, int)
    assert parse_args(["--bootstrap", "k1:9092, [::1]:9093"]).bootstrap == "k1:9092, [::1]:9093"
    assert [parse_args(["-n", str(n)]).users for n in (5, 600, 60_000)] == [5, 20, 300]


def test_progress_reports_each_tenth_at_most_every_two_seconds():
    lines = []
    progress = Progress(1000, lines.append)
    for acknowledged, elapsed in [(50, 0.5), (100, 1.0), (150, 2.5), (200, 3.0), (300, 3.5), (450, 6.0), (1000, 7.0)]:
        progress(acknowledged, elapsed)
    assert lines == ["150/1000 sent (15%), 60 records/s", "450/1000 sent (45%), 75 records/s"]


# -- checked by the real validation and moderation, in Spark -----------------------------


def test_labels_agree_with_the_validation_and_the_moderation(spark, records):
    """Clean records are valid and not flagged, profane ones valid and flagged, malformed ones
    rejected for the reason of their kind: over two mixes, in one DataFrame."""
    mixed = records + generate(3000, 40, 3, 0.3, 0.05, seed=23, now=NOW)
    df = spark.createDataFrame(
        [(i, r.label, r.value) for i, r in enumerate(mixed)], "i int, label string, value binary"
    )
    checked = (
        df.withColumn("reason", reject_reason(F.col("value")))
        .withColumn("data", field_text(parsed_value(F.col("value")), "data"))
        .transform(lambda d: with_moderation(d, load_word_lists()))
        .select("i", "label", "reason", "is_profane", "data")
    )
    wrong = []
    for row in checked.collect():
        expected = (None, row.label == PROFANE) if row.label in (CLEAN, PROFANE) else (MALFORMED_KINDS[row.label],)
        actual = (
            (row.reason, row.is_profane)
            if row.label in (CLEAN, PROFANE)
            else ((row.reason or "")[: len(MALFORMED_KINDS[row.label])],)
        )
        if actual != expected:
            wrong.append((row.label, row.reason, row.is_profane, row.data))
    assert len(mixed) == 8000
    assert not wrong, wrong[:20]


def test_every_listed_word_is_flagged_however_the_generator_writes_it(spark):
    words = load_profane_words()
    listed = sorted({w for ws in words.by_language.values() for w in ws})
    ways = (
        [()]
        + [(how,) for how in demo_data.OBFUSCATIONS]
        + [("separator", "upper")]
        + [(a, b) for a in COMBINABLE for b in COMBINABLE if a < b]
        + [(a, "upper") for a in COMBINABLE]
    )
    rng = random.Random(1)
    texts = [
        f"{prefix}{obfuscated(word, hows, rng, words.allow)}{suffix}"
        for word in listed
        for hows in ways
        for prefix, suffix in [("", ""), ("qué ", "!!"), ("@ana ", ", ok")]
    ]
    df = spark.createDataFrame([(t,) for t in texts], "data string")
    missed = [r.data for r in with_moderation(df, load_word_lists()).where(~F.col("is_profane")).collect()]
    assert len(listed) > 150
    assert not missed, missed[:20]


def test_a_written_word_that_is_allow_listed_stays_plain():
    written = {obfuscated("ass", ("stand_in",), random.Random(seed)) for seed in range(50)}
    guarded = {obfuscated("ass", ("stand_in",), random.Random(seed), allow=("A55",)) for seed in range(50)}
    assert "a55" in written and guarded == written - {"a55"} | {"ass"}
    with pytest.raises(ValueError, match="separator"):
        obfuscated("mierda", ("separator", "repeat"), random.Random(0))


# -- Kafka ---------------------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str) -> list:
    return records_in(bootstrap, topic)


@pytest.mark.integration
def test_sent_records_come_back_from_kafka_in_order_with_their_ids(kafka_only):
    topic = "demo-data-send-test"
    create_topics(kafka_only, topics=(topic,))
    sent = generate(400, 30, DAYS, 0.1, 0.05, seed=9, now=NOW)
    progress = []
    send(sent, kafka_only, topic, progress=lambda done, _: progress.append(done), chunk=150)
    got = read_topic(kafka_only, topic)
    assert [(m.key, m.value, m.headers) for m in got] == [(r.key, r.value, list(r.headers)) for r in sent]
    assert len({dict(m.headers)["message_id"] for m in got}) == 400
    assert all(m.key == json.loads(m.value)["author"].encode() for m, r in zip(got, sent) if r.is_valid)
    assert progress == [150, 300, 400]


@pytest.mark.integration
def test_the_command_sends_and_summarises(kafka_only, capsys):
    topic = "demo-data-cli-test"
    create_topics(kafka_only, topics=(topic,))
    argv = ["-n", "300", "--seed", "4", "--bootstrap", kafka_only, "--topic", topic]
    assert demo_data.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo-data: sending 300 records (")
    assert out[0].endswith(f"to {topic} at {kafka_only} (seed 4)")
    assert out[1].startswith(f"demo-data: done: 300 records acknowledged by {topic} in ")
    assert any("valid messages from" in line for line in out) and any("malformed:" in line for line in out)
    assert len(read_topic(kafka_only, topic)) == 300


@pytest.mark.integration
def test_a_missing_topic_is_one_clear_error(kafka_only, capsys):
    argv = ["-n", "10", "--bootstrap", kafka_only, "--topic", "no-such-topic", "--timeout", "2"]
    assert demo_data.main(argv) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"demo-data: error: topic 'no-such-topic' not found on Kafka at {kafka_only} within 2s (make up creates it)"
    ]


def test_kafka_down_is_one_line_and_exit_code_1():
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stack.demo_data", "-n", "20", "--bootstrap", bootstrap, "--timeout", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"demo-data: error: cannot reach Kafka at {bootstrap} within 2s (")
    assert lines[0].endswith("): is the stack up (make up)?")
    assert time.monotonic() - started < 30


def test_the_generator_loads_no_spark():
    code = "import sys, stack.demo_data as d; d.load_profane_words(); print('pyspark' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_stand_ins_are_the_moderations_own():
    """The generator writes a stand-in only from the table the moderation folds back (pipelines/wordlists.py)."""
    rng = random.Random(3)
    for word in ("mierda", "puta", "asshole", "tits"):
        for _ in range(30):
            written = obfuscated(word, ("stand_in",), rng)
            assert len(written) == len(word)
            for plain, ch in zip(word, written):
                assert ch == plain or ch in STAND_INS[plain], (word, written)
