"""A hand-computed dataset for the statistics job, its report and the SQL shell: the ledger's three tables
(a clean user, a blocked one, a single-message one, Unicode names) and the `user_stats` rows they give."""

from __future__ import annotations

from datetime import datetime

from pipelines.user_stats import user_stats, write_stats
from warehouse import paths
from warehouse.tables import (
    MESSAGES_SCHEMA,
    REJECTED_MESSAGES_SCHEMA,
    STRIKES_SCHEMA,
    USER_MODERATION_SCHEMA,
    ensure_tables,
)

ZOE, LI = "Zoë 🌍", "李小龙"


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second)


def by_hour(counts: dict[int, int]) -> list[int]:
    return [counts.get(h, 0) for h in range(24)]


# (author, sent_at, verdict, terms); is_profane = bool(terms)
MESSAGES = [
    ("ana", at(25, 9, 10), "clean", []),  # ana: never profane, two active days
    ("ana", at(26, 21, 5), "clean", []),
    ("ana", at(26, 9, 30), "clean", []),
    (ZOE, at(26, 10, 0), "profane", ["mierda"]),  # Zoë: three strikes, blocked at 11:20
    (ZOE, at(26, 10, 5), "clean", []),
    (ZOE, at(26, 10, 10), "profane", ["mierda", "joder"]),
    (ZOE, at(26, 11, 20), "profane", ["puta"]),
    (ZOE, at(26, 11, 30), "withheld", ["culo"]),  # after the block: recorded, not served
    (LI, at(27, 3, 0), "clean", []),  # a single message
    ("bob", at(27, 23, 59, 59), "profane", ["shit", "shit"]),  # one strike; active on two dates
    ("bob", at(28, 0, 0, 1), "clean", []),
]
STRIKES = [(ZOE, at(26, 10, 0), 1), (ZOE, at(26, 10, 10), 2), (ZOE, at(26, 11, 20), 3), ("bob", at(27, 23, 59, 59), 1)]
MODERATION = [
    ("ana", 3, 0, False, None),
    (ZOE, 5, 3, True, at(26, 11, 20)),
    (LI, 1, 0, False, None),
    ("bob", 2, 1, False, None),
]

EXPECTED = [  # computed by hand from the rows above
    # author, messages, profane, rate, withheld, strikes, blocked, blocked_at, first, last, days, by hour, busiest, terms
    ("ana", 3, 0, 0.0, 0, 0, False, None, at(25, 9, 10), at(26, 21, 5), 2, by_hour({9: 2, 21: 1}), 9, []),
    (
        "bob",
        2,
        1,
        0.5,
        0,
        1,
        False,
        None,
        at(27, 23, 59, 59),
        at(28, 0, 0, 1),
        2,
        by_hour({23: 1, 0: 1}),
        0,
        [("shit", 2)],
    ),
    (
        ZOE,
        5,
        4,
        0.8,
        1,
        3,
        True,
        at(26, 11, 20),
        at(26, 10, 0),
        at(26, 11, 30),
        1,
        by_hour({10: 3, 11: 2}),
        10,
        [("mierda", 2), ("culo", 1), ("joder", 1), ("puta", 1)],
    ),
    (LI, 1, 0, 0.0, 0, 0, False, None, at(27, 3, 0), at(27, 3, 0), 1, by_hour({3: 1}), 3, []),
]


def message_rows():
    return [
        (f"m{i}", author, f"text {i}", f"masked {i}", bool(terms), terms, verdict, sent, sent, 0, i, 1, None)
        for i, (author, sent, verdict, terms) in enumerate(MESSAGES)
    ]


def strike_rows():
    return [
        (f"s{i}", author, ["x"], number, struck, 0, i, 1, None) for i, (author, struck, number) in enumerate(STRIKES)
    ]


def moderation_rows():
    return [
        (
            author,
            messages,
            strikes,
            blocked,
            blocked_at,
            0 if blocked else None,
            6 if blocked else None,
            at(25, 0),
            at(28, 0),
            at(28, 0),
            1,
        )
        for author, messages, strikes, blocked, blocked_at in MODERATION
    ]


def sources(spark):
    """The three tables as DataFrames."""
    return (
        spark.createDataFrame(message_rows(), MESSAGES_SCHEMA),
        spark.createDataFrame(strike_rows(), STRIKES_SCHEMA),
        spark.createDataFrame(moderation_rows(), USER_MODERATION_SCHEMA),
    )


def build_warehouse(spark, data_dir):
    """The tables in Delta under `data_dir`, with one rejected record and a `user_stats` from an earlier run."""
    warehouse = paths.warehouse_dir(data_dir)
    ensure_tables(spark, warehouse)
    for name, rows, schema in (
        (paths.MESSAGES, message_rows(), MESSAGES_SCHEMA),
        (paths.STRIKES, strike_rows(), STRIKES_SCHEMA),
        (paths.USER_MODERATION, moderation_rows(), USER_MODERATION_SCHEMA),
        (
            paths.REJECTED_MESSAGES,
            [(b"{", "{", "value is not JSON", None, 0, 99, None, at(28, 0), 1)],
            REJECTED_MESSAGES_SCHEMA,
        ),
    ):
        spark.createDataFrame(rows, schema).write.format("delta").mode("append").save(str(warehouse / name))
    write_stats(
        spark,
        user_stats(
            *(
                spark.read.format("delta").load(str(warehouse / n))
                for n in (paths.MESSAGES, paths.STRIKES, paths.USER_MODERATION)
            )
        ),
        warehouse,
    )
    return data_dir
