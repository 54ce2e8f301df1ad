"""pipelines/validation.py: which raw `chat` records are messages, and why the others are not."""

from __future__ import annotations

import functools
import json
import sys
import unicodedata

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from api.errors import ApiError
from api.validation import clean_author
from config import contract
from pipelines.validation import filter_valid, is_timestamp, message_id, with_validated_message
from tests.pipelines.author_names import ACCEPTED, REFUSED
from tests.pipelines.records import raw_df

OK_TS = "2026-11-27 10:00:00"


def msg(author="ana", data="hola", timestamp=OK_TS, **extra) -> bytes:
    body = {"author": author, "data": data, "timestamp": timestamp, **extra}
    return json.dumps(body, ensure_ascii=False).encode()


def reasons(spark, values):
    out = raw_df(spark, values).transform(with_validated_message).orderBy("offset")
    return [r.reject_reason for r in out.select("reject_reason").collect()]


def test_valid_messages_keep_their_fields_and_id(spark):
    values = [msg(), msg("Zoë 🌍", "¿qué tal? ñandú — 你好 👋🏽", OK_TS), msg(data="línea 1\nlínea 2")]
    actual = (
        raw_df(spark, values)
        .transform(with_validated_message)
        .select("message_id", "author", "data", "timestamp", "reject_reason")
    )
    expected = spark.createDataFrame(
        [
            ("m0", "ana", "hola", OK_TS, None),
            ("m1", "Zoë 🌍", "¿qué tal? ñandú — 你好 👋🏽", OK_TS, None),
            ("m2", "ana", "línea 1\nlínea 2", OK_TS, None),
        ],
        "message_id string, author string, data string, timestamp string, reject_reason string",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "empty record"),
        (b"not json at all", "value is not JSON"),
        (b'{"author": "ana", "data": ', "value is not JSON"),
        (b'["ana", "hola"]', "value is not a JSON object"),
        (b'"just a string"', "value is not a JSON object"),
        (b'{"data": "hola", "timestamp": "2026-11-27 10:00:00"}', "missing field author"),
        (b'{"author": "ana", "timestamp": "2026-11-27 10:00:00"}', "missing field data"),
        (b'{"author": "ana", "data": "hola"}', "missing field timestamp"),
        (b'{"author": null, "data": "hola", "timestamp": "2026-11-27 10:00:00"}', "missing field author"),
        (b'{"author": 42, "data": "hola", "timestamp": "2026-11-27 10:00:00"}', "field author must be a string"),
        (b'{"author": "ana", "data": ["x"], "timestamp": "2026-11-27 10:00:00"}', "field data must be a string"),
        (b'{"author": "ana", "data": "hola", "timestamp": 1764237600}', "field timestamp must be a string"),
        (msg(room="general"), "unexpected fields (only author, data, timestamp)"),
        (msg(author="   "), "author is empty"),
        (msg(author="x" * 65), "author longer than 64 characters"),
        (msg(data=""), "data is empty"),
        (msg(data=" \n "), "data is empty"),
        (msg(data="a" * 2001), "data longer than 2000 characters"),
        (msg(timestamp="2026-11-27T10:00:00Z"), "timestamp is not YYYY-MM-DD HH:MM:SS"),
        (msg(timestamp="2026-13-45 99:00:00"), "timestamp is not YYYY-MM-DD HH:MM:SS"),
        ("\udcff".encode("utf-8", "surrogateescape"), "value is not JSON"),
    ],
)
def test_invalid_records_get_a_reason(spark, value, reason):
    assert reasons(spark, [value]) == [reason]


def test_the_timestamp_check_accepts_exactly_what_sparks_own_parser_does(spark):
    """is_timestamp (one regex) against the contract's pattern plus Spark's datetime parser, on every month and
    day number around the calendar's edges (leap years by 4, 100 and 400, year 0) and odd writings."""
    years = ["0000", "0001", "0004", "0100", "0400", "1582", "1900", "1996", "2000", "2023", "2024", "2100", "9999"]
    texts = [f"{y}-{m:02d}-{d:02d} 10:00:00" for y in years for m in range(14) for d in range(33)]
    for clock in ["00:00:00", "23:59:59", "24:00:00", "23:60:00", "23:59:60", "9:00:00", "09:0:00", "10:00:00.5"]:
        texts.append(f"2026-11-27 {clock}")
    texts += [
        "2026-11-27 10:00:00\n",
        "2026-11-27 10:00:00 ",
        " 2026-11-27 10:00:00",
        "2026-11-27T10:00:00",
        "2026-11-27  10:00:00",
        "２０２６-11-27 10:00:00",
        "2026-1-27 10:00:00",
        "+2026-11-27 10:00:00",
        "12026-11-27 10:00:00",
        "2026/11/27 10:00:00",
        "",
    ]
    spark_reads_it = (
        F.col("ts").rlike(contract.TIMESTAMP_PATTERN)
        & F.try_to_timestamp(F.col("ts"), F.lit(contract.SPARK_TIMESTAMP_FORMAT)).isNotNull()
    )
    rows = (
        spark.createDataFrame([(t,) for t in texts], "ts string")
        .select("ts", is_timestamp(F.col("ts")).alias("ours"), spark_reads_it.alias("spark"))
        .collect()
    )
    assert [(r.ts, r.ours, r.spark) for r in rows if r.ours != r.spark] == []
    accepted = {r.ts for r in rows if r.ours}
    assert {"2024-02-29 10:00:00", "2000-02-29 10:00:00", "0000-02-29 10:00:00"} <= accepted
    assert not {"1900-02-29 10:00:00", "2100-02-29 10:00:00", "2023-04-31 10:00:00"} & accepted
    assert len(accepted) == 13 * 365 + 6 + 2  # the days of 13 years (6 of them leap) and two good clocks


def test_limits_are_inclusive_and_count_characters_not_bytes(spark):
    assert reasons(spark, [msg(author="ñ" * 64, data="😀" * 2000)]) == [None]


def test_records_without_message_id_get_a_stable_id_from_kafka_coordinates(spark):
    df = raw_df(spark, [msg(), msg()], with_header=False).transform(with_validated_message)
    assert [r.message_id for r in df.orderBy("offset").collect()] == ["kafka-0-0", "kafka-0-1"]


def test_filter_valid_keeps_only_messages(spark):
    df = raw_df(spark, [msg(), b"garbage", None, msg(data="adiós")]).transform(with_validated_message)
    assert [r.data for r in filter_valid(df).orderBy("offset").collect()] == ["hola", "adiós"]


def test_message_id_is_the_header_or_the_kafka_coordinates(spark):
    df = spark.createDataFrame(
        [
            ([("other", b"x"), ("message_id", "id-ñ-😀".encode())], 0, 7),
            ([("other", b"x")], 1, 8),
            ([], 2, 9),
            (None, 3, 10),
        ],
        "headers array<struct<key:string,value:binary>>, partition int, offset long",
    )
    actual = df.select(message_id(F.col("headers"), F.col("partition"), F.col("offset")).alias("id"))
    expected = spark.createDataFrame([("id-ñ-😀",), ("kafka-1-8",), ("kafka-2-9",), ("kafka-3-10",)], "id string")
    assert_df_equality(actual, expected, ignore_nullable=True)


# ---------------------------------------------------------------------------------------------
# Author names: the relay refuses exactly what the API refuses (config/contract.py AUTHOR_*)


def api_verdict(name: str) -> str | None:
    """The API's error for `name`, or None when it takes the name as it is."""
    try:
        cleaned = clean_author(name, contract.MAX_AUTHOR_CHARS)
    except ApiError as exc:
        return exc.message
    assert cleaned == name, f"{name!r} is not as the API sends names: the table must hold stripped NFC names"
    return None


ANY = object()
# Unicode's general categories (Java's regex knows each as \p{..})
CATEGORIES = [
    "Lu",
    "Ll",
    "Lt",
    "Lm",
    "Lo",
    "Mn",
    "Mc",
    "Me",
    "Nd",
    "Nl",
    "No",
    "Pc",
    "Pd",
    "Ps",
    "Pe",
    "Pi",
    "Pf",
    "Po",
    "Sm",
    "Sc",
    "Sk",
    "So",
    "Zs",
    "Zl",
    "Zp",
    "Cc",
    "Cf",
    "Cs",
    "Co",
    "Cn",
]


@functools.cache
def code_points() -> tuple[int, ...]:
    """Every code point Python's Unicode assigns (surrogates aside), and every 256th of the unassigned and private
    ones (which all behave alike)."""
    return tuple(
        code
        for code in range(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and (code % 256 == 0 or unicodedata.category(chr(code)) not in ("Cn", "Co"))
    )


def api_refuses(name: str) -> bool:
    try:
        clean_author(name, contract.MAX_AUTHOR_CHARS)
    except ApiError:
        return True
    return False


def relay_reason_for(name: str) -> str | None:
    """The relay's reason for the API's refusal of `name`: its own words for an empty or long name, else the API's."""
    if not name.strip():
        return "author is empty"
    if len(name) > contract.MAX_AUTHOR_CHARS:
        return f"author longer than {contract.MAX_AUTHOR_CHARS} characters"
    return api_verdict(name)


def test_the_table_of_names_is_what_the_api_refuses():
    assert [n for n in ACCEPTED if api_verdict(n) is not None] == []
    assert [n for n in REFUSED if api_verdict(n) is None] == []


def test_the_contracts_name_rules_give_the_apis_verdict_and_words_on_every_character():
    """contract.author_problem (what the relay's regexes are built from) against the API's own check, on
    every code point alone and between two letters (code_points), and on the table."""
    names = list(ACCEPTED) + [n for n in REFUSED if n.strip() and len(n) <= contract.MAX_AUTHOR_CHARS]
    for code in code_points():
        names += [f"a{chr(code)}b", chr(code)]
    canonical = [n for n in names if n == unicodedata.normalize("NFC", n.strip()) and n]
    assert len(canonical) > 250_000
    wrong = [(n, api_verdict(n), contract.author_problem(n)) for n in canonical]
    wrong = [w for w in wrong if w[1] != w[2]]
    assert wrong == []


def author_records(names: list[str]) -> list[bytes]:
    return [msg(author=name) for name in names]


def test_the_relay_rejects_exactly_the_names_the_api_refuses_with_its_words(spark):
    names = ACCEPTED + REFUSED
    expected = [relay_reason_for(n) for n in names]
    assert reasons(spark, author_records(names)) == expected
    assert set(expected) >= {None, *(t.format(field="author") for t in contract.AUTHOR_PROBLEMS.values())}


def as_character(code: F.Column) -> F.Column:
    """The character of a code point, decoded from its UTF-16BE bytes (a surrogate pair above U+FFFF)."""

    def unit(value: F.Column) -> F.Column:
        return F.lpad(F.hex(value), 4, "0")

    above = code - 0x10000
    pair = F.concat(unit(F.shiftright(above, 10) + 0xD800), unit(above.bitwiseAND(0x3FF) + 0xDC00))
    return F.decode(F.unhex(F.when(code < 0x10000, unit(code)).otherwise(pair)), "UTF-16BE")


def test_the_relay_and_the_contract_agree_on_every_character(spark):
    """Every code point (code_points) alone and between two letters, as JSON records through the relay's validation, against
    contract.author_problem. Java 17 knows Unicode 13, Python 3.11 Unicode 14: a difference is allowed only for a
    character the two versions put in different categories (most are new in 14, unassigned for Java)."""
    probes = spark.createDataFrame([(0x41,), (0xFEFF,), (0x1F600,), (0x10FFFF,)], "id long")
    assert {r.id: r.ch for r in probes.select("id", as_character(F.col("id")).alias("ch")).collect()} == {
        0x41: "A",
        0xFEFF: "\ufeff",
        0x1F600: "😀",
        0x10FFFF: "\U0010ffff",
    }
    codes = spark.createDataFrame([(c,) for c in code_points()], "id long")
    ch = as_character(F.col("id"))
    forms = {"alone": ch, "inside": F.concat(F.lit("a"), ch, F.lit("b"))}
    names = functools.reduce(
        lambda a, b: a.unionByName(b),
        [
            codes.select(F.col("id").alias("code"), F.lit(form).alias("form"), name.alias("author"))
            for form, name in forms.items()
        ],
    )
    records = names.select(
        "code",
        "form",
        F.to_json(F.struct("author", F.lit("hola").alias("data"), F.lit(OK_TS).alias("timestamp")))
        .cast("binary")
        .alias("value"),
        F.array().cast("array<struct<key:string,value:binary>>").alias("headers"),
        F.lit(0).alias("partition"),
        F.col("code").alias("offset"),
    )
    relay = {
        (r.form, r.code): r.reject_reason
        for r in records.transform(with_validated_message).where(F.col("reject_reason").isNotNull()).collect()
    }
    python = {}  # the expected reason; ANY for a name the API would strip or normalise first: refused, in any words
    for code in code_points():
        for form, name in (("alone", chr(code)), ("inside", f"a{chr(code)}b")):
            if name == unicodedata.normalize("NFC", name.strip()):
                reason = relay_reason_for(name)
            else:
                reason = ANY if api_refuses(name) else None
            if reason is not None:
                python[(form, code)] = reason

    def same(key) -> bool:
        expected, got = python.get(key), relay.get(key)
        return got == expected or (expected is ANY and got is not None)

    differ = sorted(k for k in relay.keys() | python.keys() if not same(k))
    differ_codes = sorted({code for _, code in differ})
    java_category = {
        r.id: r.category
        for r in spark.createDataFrame([(c,) for c in differ_codes or [0]], "id long")
        .select(
            "id",
            F.coalesce(*(F.when(as_character(F.col("id")).rlike(rf"^\p{{{c}}}$"), c) for c in CATEGORIES)).alias(
                "category"
            ),
        )
        .collect()
    }
    unexplained = [
        (form, hex(code), relay.get((form, code)), python.get((form, code)), java_category[code])
        for form, code in differ
        if java_category[code] == unicodedata.category(chr(code))
    ]
    assert unexplained == []
    assert len(differ) < 1000  # the characters of one Unicode version
    assert len(relay) > 2000 and {reason for reason in relay.values()} >= {
        t.format(field="author") for t in contract.AUTHOR_PROBLEMS.values()
    }
