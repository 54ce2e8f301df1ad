"""Schemas of the Delta tables, their creation and their registration by name for SQL.

Every table written here stays readable by the `deltalake` package the API
uses: deletion vectors are switched off explicitly (and column mapping and v2
checkpoints are never switched on), so the protocol stays at reader version 1.
"""

from __future__ import annotations

from pathlib import Path

import pyspark.sql.types as T
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from warehouse import paths

# Table properties every table gets at creation.
TABLE_PROPERTIES = {
    # readable by the API's deltalake package: see the module docstring
    "delta.enableDeletionVectors": "false",
    "delta.checkpointPolicy": "classic",
    # durability, set on purpose rather than left to defaults: a checkpoint (a Parquet summary of the
    # log) keeps reading the table cheap with a commit per ledger batch; the streams process's maintenance
    # thread writes one every CHAT_DELTA_CHECKPOINT_INTERVAL_S (pipelines/maintenance.py), outside the ledger's
    # batches, so a commit writes one itself only every 1000 commits (in the batch, 0.5-2 s more: README
    # "A ledger batch"), a fallback for when that thread is off; the log is kept 30 days, so `VERSION AS OF`
    # and DESCRIBE HISTORY reach back that far; files a commit removed stay 7 days before VACUUM may delete
    # them, so readers of older versions are safe
    "delta.checkpointInterval": "1000",
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
}

# Layout: liquid clustering by what analysts filter on (a time range, one author). OPTIMIZE
# (pipelines/maintenance.py) clusters the ledger's small files so such a filter skips most of them by their
# min/max statistics; no partitions by date, which would cut a small chat's table into tiny files per day.
CLUSTERING = {
    paths.MESSAGES: ("sent_at", "author"),
    paths.STRIKES: ("struck_at", "author"),
    paths.REJECTED_MESSAGES: ("seen_at",),
}
# TABLE_PROPERTIES that changed since tables were first made: a table made before gains them at the ledger's start
# (it was made with a checkpoint every 10 commits, each written inside a ledger batch).
UPDATED_PROPERTIES = ("delta.checkpointInterval",)
# Properties of one table, on top of TABLE_PROPERTIES; a table made before gains them at the ledger's start.
LAYOUT_PROPERTIES = {
    # the ledger MERGEs this table every batch: it compacts in that MERGE's own commit (Delta's auto
    # compaction), since an OPTIMIZE beside a MERGE that read the same files fails one of the two
    paths.USER_MODERATION: {"delta.autoOptimize.autoCompact": "true"},
}

_TYPES = {
    "string": T.StringType,
    "boolean": T.BooleanType,
    "int": T.IntegerType,
    "bigint": T.LongType,
    "double": T.DoubleType,
    "timestamp": T.TimestampType,
    "binary": T.BinaryType,
}


def _split(text: str, sep: str = ",") -> list[str]:
    """`text` split at each `sep` outside angle brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        depth += (ch == "<") - (ch == ">")
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    return [*parts, "".join(current)]


def _data_type(text: str) -> T.DataType:
    text = text.strip().lower()
    if text.startswith("array<") and text.endswith(">"):
        return T.ArrayType(_data_type(text[len("array<") : -1]))
    if text.startswith("struct<") and text.endswith(">"):
        fields = (field.split(":", 1) for field in _split(text[len("struct<") : -1]))
        return T.StructType([T.StructField(name.strip(), _data_type(kind)) for name, kind in fields])
    if text not in _TYPES:
        raise ValueError(f"type {text!r} is none of {', '.join(_TYPES)}, array<…>, struct<…>")
    return _TYPES[text]()


def schema(ddl: str) -> T.StructType:
    """A schema from Spark DDL columns, `name type [NOT NULL]`, comma-separated (`--` starts a comment).

    The subset of DDL the tables use, parsed without a JVM, so that the schemas are plain constants."""
    text = "\n".join(line.split("--", 1)[0] for line in ddl.splitlines())
    fields = []
    for column in filter(str.strip, _split(text)):
        name, kind = column.split(None, 1)
        required = kind.lower().split()[-2:] == ["not", "null"]
        kind = kind.rsplit(None, 2)[0] if required else kind
        fields.append(T.StructField(name, _data_type(kind), nullable=not required))
    return T.StructType(fields)


MESSAGES_SCHEMA = schema("""
    message_id        string not null,
    author            string not null,
    data              string not null,         -- the original text, for audit
    masked_data       string not null,         -- what readers see
    is_profane        boolean not null,
    terms             array<string> not null,
    verdict           string not null,         -- clean | profane | withheld (sent by a user who was
                                               -- already blocked: recorded, not served) | spam (a repeat
                                               -- of one text: recorded, not served; see spam_reason)
    sent_at           timestamp not null,      -- the message's timestamp (UTC)
    ingested_at       timestamp,               -- when Kafka got it
    kafka_partition   int not null,
    kafka_offset      bigint not null,
    batch_id          bigint not null,
    spam_reason       string                   -- verdict spam: why (e.g. repeat:3/30s, the 3rd copy in 30 s)
""")

STRIKES_SCHEMA = schema("""
    message_id        string not null,
    author            string not null,
    terms             array<string> not null,
    strike_number     int not null,
    struck_at         timestamp not null,
    kafka_partition   int not null,
    kafka_offset      bigint not null,
    batch_id          bigint not null,
    category          string                   -- spam: for repeated messages; null: for the words in terms
""")

USER_MODERATION_SCHEMA = schema("""
    author            string not null,
    messages          bigint not null,
    strikes           int not null,
    is_blocked        boolean not null,
    blocked_at        timestamp,
    blocked_partition int,                     -- Kafka position (in `chat`) of the strike that blocked
    blocked_offset    bigint,                  -- the user: later messages are withheld
    first_seen        timestamp not null,
    last_seen         timestamp not null,
    updated_at        timestamp not null,
    last_batch_id     bigint not null
""")

REJECTED_MESSAGES_SCHEMA = schema("""
    raw_value         binary,
    raw_text          string,                  -- the value as UTF-8 text, where it is text
    reason            string not null,
    message_id        string,
    kafka_partition   int not null,
    kafka_offset      bigint not null,
    kafka_timestamp   timestamp,
    seen_at           timestamp not null,
    batch_id          bigint not null
""")

MODERATOR_ACTIONS_SCHEMA = schema("""
    action_id         string not null,
    action            string not null,         -- "unblock" or "slow_mode"
    author            string not null,         -- "*" for a chat-wide action (slow_mode)
    requested_by      string,
    requested_at      timestamp,               -- when the API took the request (UTC)
    strikes_cleared   int not null,            -- the user's strikes just before
    was_blocked       boolean not null,
    kafka_partition   int not null,            -- in `chat_actions`
    kafka_offset      bigint not null,
    batch_id          bigint not null,         -- the ledger batch that applied it
    seconds           int                      -- slow_mode: the interval set (0: lifted); null for an unblock
""")

# One row per account, from the `account` actions the API puts on `chat_actions` (never `chat_accounts`, which holds
# the password hashes): no secret and no address here.
ACCOUNTS_SCHEMA = schema("""
    account_id        string not null,
    author            string not null,         -- the name as registered (what readers see)
    name_keys         array<string> not null,  -- its canonical keys (api/names.py): look-alikes share one
    created_at        timestamp not null,      -- when the API granted it (UTC)
    kafka_partition   int not null,            -- in `chat_actions`
    kafka_offset      bigint not null,
    batch_id          bigint not null          -- the ledger batch that recorded it
""")

# Built by the statistics job (pipelines/user_stats.py), replaced as a whole on every run. Delta has
# no NOT NULL inside arrays: the nested fields are nullable, though the job never writes a null there.
USER_STATS_SCHEMA = schema("""
    author            string not null,
    messages          bigint not null,         -- every recorded message, withheld ones included
    profane_messages  bigint not null,
    profanity_rate    double not null,         -- profane_messages / messages, 0 … 1
    withheld_messages bigint not null,         -- sent after the block: recorded, not served
    strikes           bigint not null,         -- rows in `strikes` (all time)
    is_blocked        boolean not null,
    blocked_at        timestamp,
    first_seen        timestamp not null,
    last_seen         timestamp not null,
    active_days       int not null,            -- distinct UTC dates with a message
    messages_by_hour  array<bigint> not null,  -- 24 counts, hour of day UTC
    busiest_hour      int not null,            -- 0 … 23, the earliest on a tie
    top_terms         array<struct<term: string, hits: bigint>> not null  -- up to 5, most frequent first
""")

SCHEMAS = {
    paths.MESSAGES: MESSAGES_SCHEMA,
    paths.STRIKES: STRIKES_SCHEMA,
    paths.USER_MODERATION: USER_MODERATION_SCHEMA,
    paths.REJECTED_MESSAGES: REJECTED_MESSAGES_SCHEMA,
    paths.MODERATOR_ACTIONS: MODERATOR_ACTIONS_SCHEMA,
    paths.ACCOUNTS: ACCOUNTS_SCHEMA,
}
# created by its own job, not by the ledger's ensure_tables()
ALL_SCHEMAS = {**SCHEMAS, paths.USER_STATS: USER_STATS_SCHEMA}

COMMENTS = {
    paths.MESSAGES: "every chat message with its moderation verdict (original and masked text)",
    paths.STRIKES: "one row per strike (a profane message, or spam) of a user who was not yet blocked",
    paths.USER_MODERATION: "per user: messages, strikes, blocked (3 strikes) and since when",
    paths.REJECTED_MESSAGES: "records of the chat topic that are not valid messages, with the reason",
    paths.MODERATOR_ACTIONS: "moderators' actions (unblock: strikes and block cleared), as the ledger applied them",
    paths.ACCOUNTS: "accounts (name as registered, its keys, when), without password hashes or addresses",
    paths.USER_STATS: "per user statistics, rebuilt by pipelines/user_stats.py (make stats)",
}


def ensure_table(
    spark: SparkSession, name: str, warehouse: Path | None = None, schema: T.StructType | None = None
) -> DeltaTable:
    """Create the table at its path if it does not exist yet, or add the columns a newer schema has (nullable
    ones, such as `moderator_actions.seconds`) to one that does; return it."""
    location = paths.table_path(name, warehouse)
    wanted = schema or ALL_SCHEMAS[name]
    if DeltaTable.isDeltaTable(spark, str(location)):
        table = DeltaTable.forPath(spark, str(location))
        have = {f.name for f in table.toDF().schema.fields}
        missing = [f for f in wanted.fields if f.name not in have]
        if missing:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            spark.sql(f"ALTER TABLE delta.`{location}` ADD COLUMNS ({columns})")
        ensure_layout(spark, name, location)
        return table
    builder = (
        DeltaTable.createIfNotExists(spark).location(str(location)).addColumns(wanted).comment(COMMENTS.get(name, name))
    )
    for key, value in {**TABLE_PROPERTIES, **LAYOUT_PROPERTIES.get(name, {})}.items():
        builder = builder.property(key, value)
    if name in CLUSTERING:
        builder = builder.clusterBy(*CLUSTERING[name])
    return builder.execute()


def ensure_layout(spark: SparkSession, name: str, location: Path) -> None:
    """Give a table made before its layout its clustering columns, LAYOUT_PROPERTIES and UPDATED_PROPERTIES (no
    data is rewritten: the next OPTIMIZE clusters the files)."""
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    wanted = CLUSTERING.get(name)
    if wanted and not detail.partitionColumns and tuple(detail.clusteringColumns or ()) != wanted:
        spark.sql(f"ALTER TABLE delta.`{location}` CLUSTER BY ({', '.join(wanted)})")
    wanted_properties = {**{k: TABLE_PROPERTIES[k] for k in UPDATED_PROPERTIES}, **LAYOUT_PROPERTIES.get(name, {})}
    missing = {k: v for k, v in wanted_properties.items() if detail.properties.get(k) != v}
    if missing:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE delta.`{location}` SET TBLPROPERTIES ({pairs})")


def ensure_tables(spark: SparkSession, warehouse: Path | None = None) -> None:
    for name in SCHEMAS:
        ensure_table(spark, name, warehouse)


def register_tables(spark: SparkSession, warehouse: Path | None = None, database: str = paths.DATABASE) -> list[str]:
    """Register every existing table as `chat.<name>` in this session's catalog; return the names."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    registered = []
    for name in paths.ALL_TABLES:
        location = paths.table_path(name, warehouse)
        if not DeltaTable.isDeltaTable(spark, str(location)):
            continue
        spark.sql(f"CREATE TABLE IF NOT EXISTS {database}.{name} USING DELTA LOCATION '{location}'")
        registered.append(f"{database}.{name}")
    return registered
