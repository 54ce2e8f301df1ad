"""Validation of raw `chat` records: column functions and the `with_validated_message` transformation.

A record is valid when its value is a JSON object with exactly the string
fields `author`, `data` and `timestamp` (`YYYY-MM-DD HH:MM:SS`), a non-blank
author of at most 64 characters that meets the API's name rules (built from
config/contract.py's AUTHOR_* data, as the API's check is) and a non-blank text
of at most 2000. Everything is a native Spark expression (the VARIANT type for
JSON), so the relay has no Python on its hot path; the checks a valid record
goes through are the cheap ones, and only a record that fails one pays for
finding out which rule it broke.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from config import contract

_STRING_FIELDS = contract.MESSAGE_FIELDS
_HAS_TEXT = r"(?U)\S"  # a character that is not (Unicode) white space: found at once in any real text
_EXPECTED_SHAPE = "OBJECT<" + ", ".join(f"{f}: STRING" for f in sorted(_STRING_FIELDS)) + ">"


def parsed_value(value: Column) -> Column:
    """The Kafka value as VARIANT, or null when it is not JSON."""
    return F.try_parse_json(value.cast("string"))


def _field(v: Column, name: str) -> Column:
    return F.try_variant_get(v, f"$.{name}", "variant")


def _is_string(v: Column, name: str) -> Column:
    return F.schema_of_variant(_field(v, name)) == F.lit("STRING")


def field_text(v: Column, name: str) -> Column:
    return F.try_variant_get(v, f"$.{name}", "string")


def message_id(headers: Column, partition: Column, offset: Column) -> Column:
    """The `message_id` header (the first one), or a stable id from the Kafka coordinates for records without one."""
    key = F.lit(contract.MESSAGE_ID_HEADER)
    first = F.get(headers, 0)
    # the API writes it as the only header: look at the first one before searching them all
    from_header = F.when(first["key"] == key, first["value"]).otherwise(
        F.get(F.filter(headers, lambda h: h["key"] == key), 0)["value"]
    )
    return F.coalesce(
        from_header.cast("string"),
        F.concat(F.lit("kafka-"), partition.cast("string"), F.lit("-"), offset.cast("string")),
    )


def header_text(headers: Column, name: str) -> Column:
    """The text of the first header `name` of a Kafka record, or null when there is none (or it is empty)."""
    value = F.get(F.filter(headers, lambda h: h["key"] == F.lit(name)), 0)["value"].cast("string")
    return F.when(value != F.lit(""), value)


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    reason = F.when(checks[0][0], F.lit(checks[0][1]))
    for condition, text in checks[1:]:
        reason = reason.when(condition, F.lit(text))
    return reason


def _java_chars(chars: str) -> str:
    return "".join(f"\\x{{{ord(ch):X}}}" for ch in chars)


def _java_categories(categories) -> str:
    return "".join(f"\\p{{{c}}}" for c in categories)


# contract.author_problem's rules as Java regexes (rlike finds a match anywhere), in its order
_AUTHOR_RULES = [
    (
        "["
        + _java_categories(contract.AUTHOR_CONTROL_CATEGORIES)
        + f"[\\p{{{contract.AUTHOR_SPACE_CATEGORY}}}&&[^ ]]]",
        "control",
    ),
    ("[" + _java_chars(contract.AUTHOR_FORBIDDEN_CHARS) + "]", "forbidden"),
    (
        "["
        + _java_chars(contract.AUTHOR_BIDI_CONTROLS + contract.AUTHOR_HIDDEN_CHARS)
        + "]|^["
        + _java_categories(contract.AUTHOR_INVISIBLE_CATEGORIES)
        + _java_chars(contract.AUTHOR_BLANK_CHARS)
        + "]*$",
        "invisible",
    ),
]
_AUTHOR_ANY_PROBLEM = "|".join(pattern for pattern, _ in _AUTHOR_RULES)

# YYYY-MM-DD HH:MM:SS of a day that exists in the proleptic Gregorian calendar (what try_to_timestamp
# accepts, year 0 and Feb 29 of leap years included), ASCII digits, nothing after it (\z, not $)
_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_TIMESTAMP = (
    r"^(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)"
    r"|02-(?:0[1-9]|1\d|2[0-8]))|" + _LEAP_YEAR + r"-02-29) (?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\z"
)


def is_timestamp(ts: Column) -> Column:
    """`ts` is a contract timestamp: one regex, no date parsing (which costs more than the rest of the checks)."""
    return ts.rlike(_TIMESTAMP)


def author_problem(author: Column) -> Column:
    """What is wrong with `author` under the name rules (contract.author_problem's words), or null; one regex
    for a good name, the rule's own only for a bad one."""
    problem = _first_reason(
        [
            (author.rlike(pattern), contract.AUTHOR_PROBLEMS[rule].format(field="author"))
            for pattern, rule in _AUTHOR_RULES
        ]
    )
    return F.when(author.rlike(_AUTHOR_ANY_PROBLEM), problem)


def _content_reason(author: Column, data: Column, ts: Column) -> Column:
    """The first content rule a record of the right shape breaks, in the order of the reasons' list."""
    author_checks = [
        (~author.rlike(_HAS_TEXT), "author is empty"),
        (
            F.char_length(author) > contract.MAX_AUTHOR_CHARS,
            f"author longer than {contract.MAX_AUTHOR_CHARS} characters",
        ),
    ]
    other_checks = [
        (~data.rlike(_HAS_TEXT), "data is empty"),
        (F.char_length(data) > contract.MAX_DATA_CHARS, f"data longer than {contract.MAX_DATA_CHARS} characters"),
        (~is_timestamp(ts), "timestamp is not YYYY-MM-DD HH:MM:SS"),
    ]
    # coalesce stops at its first non-null argument: a good record's author is matched by one regex only
    return F.coalesce(_first_reason(author_checks), author_problem(author), _first_reason(other_checks))


def _reason(value: Column, v: Column, shape: Column, author: Column, data: Column, ts: Column) -> Column:
    """The reject reason from the parsed value `v` and its `shape` (schema_of_variant).

    The usual record has exactly the expected shape: then only its content is
    checked. Only a record of another shape goes through the structural checks,
    which name what is wrong with it (each costs a walk of the variant).
    """
    structural = [
        (value.isNull(), "empty record"),
        (v.isNull(), "value is not JSON"),
        (shape.startswith("OBJECT") == F.lit(False), "value is not a JSON object"),
    ]
    for name in _STRING_FIELDS:
        structural += [
            (_field(v, name).isNull() | F.is_variant_null(_field(v, name)), f"missing field {name}"),
            (~_is_string(v, name), f"field {name} must be a string"),
        ]
    structural += [(shape != F.lit(_EXPECTED_SHAPE), "unexpected fields (only author, data, timestamp)")]
    content = _content_reason(author, data, ts)
    return F.when(shape == F.lit(_EXPECTED_SHAPE), content).otherwise(F.coalesce(_first_reason(structural), content))


def reject_reason(value: Column) -> Column:
    """Why a raw record is not a valid chat message, or null when it is valid."""
    v = parsed_value(value)
    author, data, ts = (field_text(v, f) for f in _STRING_FIELDS)
    return _reason(value, v, F.schema_of_variant(v), author, data, ts)


def with_validated_message(raw_df: DataFrame) -> DataFrame:
    """Add `message_id`, `author`, `data`, `timestamp` and `reject_reason` to raw Kafka records.

    Expects the Kafka source's columns `value`, `headers`, `partition`, `offset`.
    For a rejected record the message fields may be null. The value is parsed
    once, in its own projection (Spark does not merge a projection into the
    next when that would repeat an expensive expression), and its shape computed once.
    """
    return (
        raw_df.withColumn("_variant", parsed_value(F.col("value")))
        .withColumn("_shape", F.schema_of_variant(F.col("_variant")))
        .withColumn("message_id", message_id(F.col("headers"), F.col("partition"), F.col("offset")))
        .withColumn("author", field_text(F.col("_variant"), "author"))
        .withColumn("data", field_text(F.col("_variant"), "data"))
        .withColumn("timestamp", field_text(F.col("_variant"), "timestamp"))
        .withColumn(
            "reject_reason",
            _reason(
                F.col("value"), F.col("_variant"), F.col("_shape"), F.col("author"), F.col("data"), F.col("timestamp")
            ),
        )
        .drop("_variant", "_shape")
    )


def filter_valid(df: DataFrame) -> DataFrame:
    return df.where(F.col("reject_reason").isNull())
