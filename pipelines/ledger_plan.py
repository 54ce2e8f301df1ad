"""The ledger's plan: from one micro-batch of `chat` and `chat_actions` records to what each table and
topic receives. Pure DataFrame functions, no I/O: pipelines/ledger.py writes their results.

Each valid message is recorded with its verdict; each profane message, and each spam strike the API
marked on the record (`spam_strike` header), of a user not yet blocked is a strike, numbered from the
strikes before the batch, so a replay numbers them the same; the STRIKE_LIMIT-th strike blocks the user;
what a blocked user still sends is `withheld`, what the API marked as spam is `spam` (with its reason).
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from config import contract
from pipelines.kafka_io import header
from pipelines.moderation import with_moderation
from pipelines.validation import header_text, with_validated_message
from pipelines.wordlists import WordLists
from warehouse.tables import ACCOUNTS_SCHEMA, MESSAGES_SCHEMA, STRIKES_SCHEMA

STRIKE_LIMIT = contract.STRIKE_LIMIT
# a record of `chat_actions`, as the API writes it
ACTION_SCHEMA = "id string, action string, author string, by string, timestamp string, seconds int, keys array<string>"
# what parse_actions gives
PARSED_ACTION_SCHEMA = (
    f"{ACTION_SCHEMA}, partition int, offset bigint, is_valid boolean, is_slow_mode boolean, is_account boolean"
)
# the moderated messages of a batch: the columns of `messages` but the verdict and the batch, the Kafka time,
# and whether the API marked the message as its author's spam strike
MODERATED_COLUMNS = [
    *(c for c in MESSAGES_SCHEMA.names if c not in ("verdict", "ingested_at", "batch_id")),
    "kafka_timestamp",
    "is_spam_strike",
]


# -- column functions ---------------------------------------------------------------


def sent_at(timestamp: Column) -> Column:
    """A message's (or an action's) `YYYY-MM-DD HH:MM:SS` text as a timestamp."""
    return F.to_timestamp(timestamp, contract.SPARK_TIMESTAMP_FORMAT)


def try_sent_at(timestamp: Column) -> Column:
    """sent_at, null (not a failed batch) for a text that is not such a time."""
    return F.try_to_timestamp(timestamp, F.lit(contract.SPARK_TIMESTAMP_FORMAT))


def raw_text(value: Column) -> Column:
    """The raw Kafka value as text where it is valid UTF-8, else null (the bytes are kept beside it)."""
    return F.when(F.is_valid_utf8(value.cast("string")), value.cast("string"))


def notice_text(kind: str, strike: Column, terms: Column, category: str | None = None) -> Column:
    """`contract.notice_text(kind, strike, STRIKE_LIMIT, terms, category=category)` as a column: the template of
    `kind` (of the spam texts for SPAM_CATEGORY) filled in."""
    texts = (
        contract.SPAM_NOTICE_TEXTS_BY_LANGUAGE[contract.DEFAULT_LANGUAGE]
        if category == contract.SPAM_CATEGORY
        else contract.NOTICE_TEXTS
    )
    pattern = texts[kind].replace("%", "%%")
    for position, name in enumerate(("strike", "limit", "terms"), start=1):
        pattern = pattern.replace("{" + name + "}", f"%{position}$s")
    return F.format_string(pattern, strike.cast("string"), F.lit(str(STRIKE_LIMIT)), F.array_join(terms, ", "))


def notice_kind(strike_number: Column) -> Column:
    return F.when(strike_number >= STRIKE_LIMIT, "blocked").otherwise("warning")


def verdict(is_profane: Column, is_withheld: Column, spam_reason: Column) -> Column:
    return (
        F.when(is_withheld, "withheld")
        .when(spam_reason.isNotNull(), contract.SPAM_VERDICT)
        .when(is_profane, "profane")
        .otherwise("clean")
    )


def spam_reason(headers: Column) -> Column:
    """The API's spam verdict on a `chat` record (its `spam` header), or null."""
    return header_text(headers, contract.SPAM_HEADER)


def is_spam_strike(headers: Column) -> Column:
    """Whether the API made the record its author's spam strike of the window (`spam_strike` "true")."""
    return F.coalesce(
        spam_reason(headers).isNotNull() & (header_text(headers, contract.SPAM_STRIKE_HEADER) == "true"), F.lit(False)
    )


def is_unblock(action: Column, action_id: Column, author: Column) -> Column:
    """Whether a parsed `chat_actions` record is an unblock the ledger applies: with an id and an author."""
    return F.coalesce((action == "unblock") & (F.length(action_id) > 0) & (F.length(author) > 0), F.lit(False))


def is_slow_mode(action: Column, action_id: Column, seconds: Column) -> Column:
    """Whether a parsed `chat_actions` record is a slow-mode change to record: with an id and a valid interval."""
    return F.coalesce(
        (action == contract.SLOW_MODE_ACTION)
        & (F.length(action_id) > 0)
        & seconds.between(0, contract.MAX_SLOW_MODE_S),
        F.lit(False),
    )


def is_account(action: Column, action_id: Column, author: Column, keys: Column, timestamp: Column) -> Column:
    """Whether a parsed `chat_actions` record is a new account to record: an id, a name, keys and a time."""
    return F.coalesce(
        (action == contract.ACCOUNT_ACTION)
        & (F.length(action_id) > 0)
        & (F.length(author) > 0)
        & (F.size(keys) > 0)
        & try_sent_at(timestamp).isNotNull(),
        F.lit(False),
    )


def batch_column(batch_id: int) -> Column:
    return F.lit(batch_id).cast("long")


# -- the records of a batch -----------------------------------------------------------


def with_rejections(raw_df: DataFrame) -> DataFrame:
    """Validated records, the Kafka record time renamed `kafka_timestamp` (the message has its own)."""
    return raw_df.withColumnRenamed("timestamp", "kafka_timestamp").transform(with_validated_message)


def to_rejected_rows(validated_df: DataFrame, batch_id: int) -> DataFrame:
    """`rejected_messages` rows: the records that are not valid messages, with the reason."""
    return validated_df.where(F.col("reject_reason").isNotNull()).select(
        F.col("value").alias("raw_value"),
        raw_text(F.col("value")).alias("raw_text"),
        F.col("reject_reason").alias("reason"),
        # the header only: an id made up from coordinates would mean nothing here
        F.when(~F.col("message_id").startswith("kafka-"), F.col("message_id")).alias("message_id"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        "kafka_timestamp",
        F.current_timestamp().alias("seen_at"),
        batch_column(batch_id).alias("batch_id"),
    )


def to_moderated_rows(validated_df: DataFrame, word_lists: WordLists) -> DataFrame:
    """The valid messages, once each (by message id), with their moderation: MODERATED_COLUMNS."""
    return (
        validated_df.where(F.col("reject_reason").isNull())
        .dropDuplicates(["message_id"])
        .withColumn("sent_at", sent_at(F.col("timestamp")))
        .withColumns({"spam_reason": spam_reason(F.col("headers")), "is_spam_strike": is_spam_strike(F.col("headers"))})
        .withColumnsRenamed({"partition": "kafka_partition", "offset": "kafka_offset"})
        .transform(lambda df: with_moderation(df, word_lists))
        .select(*MODERATED_COLUMNS)
    )


def prior_strikes_since_unblock(
    strikes_df: DataFrame, actions_df: DataFrame, authors_df: DataFrame, batch_id: int
) -> DataFrame:
    """(author, prior_strikes) from the `strikes` and `moderator_actions` tables: the strikes of the batches
    before this one since each author's last unblock (an unblock clears the strikes of its own batch too).
    Right after a crash as well: it reads only earlier batches."""
    cleared = (
        actions_df.where((F.col("batch_id") < batch_id) & (F.col("action") == "unblock"))
        .groupBy("author")
        .agg(F.max("batch_id").alias("cleared"))
    )
    return (
        strikes_df.where(F.col("batch_id") < batch_id)
        .join(authors_df, "author")
        .join(cleared, "author", "left")
        .where(F.col("cleared").isNull() | (F.col("batch_id") > F.col("cleared")))
        .groupBy("author")
        .agg(F.count("*").cast("int").alias("prior_strikes"))
    )


def with_strikes(moderated_df: DataFrame, prior_strikes_df: DataFrame) -> DataFrame:
    """Number the strikes per author in Kafka order, given each author's strikes before this batch. A message
    is an offence when it is profane or the API's spam strike; one message is one strike at most.

    Adds `prior_strikes`, `is_withheld` (the author was blocked before this message),
    `is_strike`, `strike_number` (null when not a strike) and `category` (`spam` for a spam strike).
    """
    order = Window.partitionBy("author").orderBy("kafka_partition", "kafka_offset")
    is_offence = F.col("is_profane") | F.col("is_spam_strike")
    offences_before = F.coalesce(
        F.sum(is_offence.cast("int")).over(order.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)
    )
    return (
        moderated_df.join(F.broadcast(prior_strikes_df), "author", "left")
        .withColumn("prior_strikes", F.coalesce("prior_strikes", F.lit(0)))
        .withColumn("is_withheld", F.col("prior_strikes") + offences_before >= STRIKE_LIMIT)
        .withColumn("is_strike", is_offence & ~F.col("is_withheld"))
        .withColumn(
            "strike_number", F.when(F.col("is_strike"), (F.col("prior_strikes") + offences_before + 1).cast("int"))
        )
        .withColumn("category", F.when(F.col("is_strike") & F.col("is_spam_strike"), F.lit(contract.SPAM_CATEGORY)))
    )


def to_message_rows(struck_df: DataFrame, batch_id: int) -> DataFrame:
    """`messages` rows: every valid message with its verdict."""
    return struck_df.withColumns(
        {
            "verdict": verdict(F.col("is_profane"), F.col("is_withheld"), F.col("spam_reason")),
            "ingested_at": F.col("kafka_timestamp"),
            "batch_id": batch_column(batch_id),
        }
    ).select(*MESSAGES_SCHEMA.names)


def to_strike_rows(struck_df: DataFrame, batch_id: int) -> DataFrame:
    """`strikes` rows: one per strike."""
    return (
        struck_df.where("is_strike")
        .withColumns({"struck_at": F.col("sent_at"), "batch_id": batch_column(batch_id)})
        .select(*STRIKES_SCHEMA.names)
    )


def to_moderation_updates(struck_df: DataFrame, batch_id: int) -> DataFrame:
    """One row per author of the batch: the state after it (merged into `user_moderation`)."""
    blocking = F.col("strike_number") == STRIKE_LIMIT
    return (
        struck_df.groupBy("author")
        .agg(
            F.count("*").alias("messages"),
            F.max(F.greatest(F.col("prior_strikes"), F.coalesce("strike_number", F.lit(0))))
            .cast("int")
            .alias("strikes"),
            F.max(F.when(blocking, F.col("sent_at"))).alias("blocked_at"),
            F.max(F.when(blocking, F.col("kafka_partition"))).alias("blocked_partition"),
            F.max(F.when(blocking, F.col("kafka_offset"))).alias("blocked_offset"),
            F.min("sent_at").alias("first_seen"),
            F.max("sent_at").alias("last_seen"),
        )
        .withColumn("is_blocked", F.col("strikes") >= STRIKE_LIMIT)
        .withColumn("batch_id", batch_column(batch_id))
    )


def to_notice_records(strikes_df: DataFrame) -> DataFrame:
    """Kafka records for `chat_notices` from `strikes` rows: a warning per strike, "blocked" for the last one."""
    kind = notice_kind(F.col("strike_number"))
    notice_id = F.concat(F.col("message_id"), F.lit(":strike"))
    spam = F.col("category") == F.lit(contract.SPAM_CATEGORY)
    texts = {
        (k, c): notice_text(k, F.col("strike_number"), F.col("terms"), c)
        for k in ("blocked", "warning")
        for c in (None, contract.SPAM_CATEGORY)
    }
    text = (
        F.when(spam & (kind == "blocked"), texts[("blocked", contract.SPAM_CATEGORY)])
        .when(spam, texts[("warning", contract.SPAM_CATEGORY)])
        .when(kind == "blocked", texts[("blocked", None)])
        .otherwise(texts[("warning", None)])
    )
    body = F.struct(
        notice_id.alias("id"),
        "author",
        kind.alias("kind"),
        F.col("strike_number").alias("strike"),
        F.lit(STRIKE_LIMIT).alias("limit"),
        "terms",
        "message_id",
        text.alias("text"),
        F.date_format("struck_at", contract.SPARK_TIMESTAMP_FORMAT).alias("timestamp"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.col("batch_id").alias("batch"),
        "category",  # left out of the JSON when null (a strike for the words in `terms`)
    )
    return strikes_df.select(
        F.col("author").alias("key"),
        F.to_json(body).alias("value"),
        F.array(header(contract.NOTICE_ID_HEADER, notice_id)).alias("headers"),
    )


# -- the moderators' actions ------------------------------------------------------------


def parse_actions(records_df: DataFrame) -> DataFrame:
    """`chat_actions` records as actions (PARSED_ACTION_SCHEMA); `is_valid` marks the unblocks to apply,
    `is_slow_mode` the slow-mode changes to record, `is_account` the new accounts."""
    return (
        records_df.select(F.from_json(F.col("value").cast("string"), ACTION_SCHEMA).alias("a"), "partition", "offset")
        .select("a.*", "partition", "offset")
        .withColumn("is_valid", is_unblock(F.col("action"), F.col("id"), F.col("author")))
        .withColumn("is_slow_mode", is_slow_mode(F.col("action"), F.col("id"), F.col("seconds")))
        .withColumn(
            "is_account", is_account(F.col("action"), F.col("id"), F.col("author"), F.col("keys"), F.col("timestamp"))
        )
    )


def to_action_rows(unblocks_df: DataFrame, state_df: DataFrame, batch_id: int) -> DataFrame:
    """`moderator_actions` rows for valid unblocks, given the authors' `user_moderation` rows before them:
    the first unblock of an author in the batch clears their strikes and block, a second one nothing more."""
    first = F.row_number().over(Window.partitionBy("author").orderBy("partition", "offset")) == 1
    return unblocks_df.join(state_df.select("author", "strikes", "is_blocked"), "author", "left").select(
        F.col("id").alias("action_id"),
        "action",
        "author",
        F.col("by").alias("requested_by"),
        sent_at(F.col("timestamp")).alias("requested_at"),
        F.when(first, F.coalesce("strikes", F.lit(0))).otherwise(0).cast("int").alias("strikes_cleared"),
        (first & F.coalesce("is_blocked", F.lit(False))).alias("was_blocked"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        batch_column(batch_id).alias("batch_id"),
        F.lit(None).cast("int").alias("seconds"),
    )


def to_slow_mode_rows(slow_modes_df: DataFrame, batch_id: int) -> DataFrame:
    """`moderator_actions` rows for valid slow-mode changes: chat-wide (author "*"), nothing cleared."""
    return slow_modes_df.select(
        F.col("id").alias("action_id"),
        "action",
        F.lit(contract.WHOLE_CHAT).alias("author"),
        F.col("by").alias("requested_by"),
        sent_at(F.col("timestamp")).alias("requested_at"),
        F.lit(0).alias("strikes_cleared"),
        F.lit(False).alias("was_blocked"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        batch_column(batch_id).alias("batch_id"),
        F.col("seconds").cast("int").alias("seconds"),
    )


def to_unblocked_notices(unblocks_df: DataFrame, batch_id: int, until: dict[int, int] | None) -> DataFrame:
    """Kafka records for `chat_notices`: "unblocked" for each valid unblock. `until`: the end offsets of
    `chat` in this batch; what a user sent while blocked, up to there, stays withheld (the API hides it,
    as the ledger recorded it)."""
    notice_id = F.concat(F.col("id"), F.lit(":unblocked"))
    until_map = (
        F.create_map(*[c for p, o in sorted(until.items()) for c in (F.lit(str(p)), F.lit(o).cast("long"))])
        if until
        else F.lit(None).cast("map<string,bigint>")
    )
    body = F.struct(
        notice_id.alias("id"),
        "author",
        F.lit("unblocked").alias("kind"),
        F.lit(0).alias("strike"),
        F.lit(STRIKE_LIMIT).alias("limit"),
        F.array().cast("array<string>").alias("terms"),
        F.lit(None).cast("string").alias("message_id"),
        F.lit(contract.notice_text("unblocked")).alias("text"),
        "timestamp",
        F.col("id").alias("action_id"),
        batch_column(batch_id).alias("batch"),
        until_map.alias("until"),
    )
    return unblocks_df.select(
        F.col("author").alias("key"),
        F.to_json(body, {"ignoreNullFields": "false"}).alias("value"),
        F.array(header(contract.NOTICE_ID_HEADER, notice_id)).alias("headers"),
    )


# -- the accounts ---------------------------------------------------------------------------------------


def to_account_rows(accounts_df: DataFrame, batch_id: int) -> DataFrame:
    """`accounts` rows from valid `account` actions, once per account id (its first record in Kafka order: an API
    that sent it again after a failure, or a replayed batch, adds nothing); the MERGE on `account_id` keeps
    earlier batches' rows."""
    first = Window.partitionBy("id").orderBy("partition", "offset")
    return (
        accounts_df.where("is_account")
        .withColumn("n", F.row_number().over(first))
        .where(F.col("n") == 1)
        .select(
            F.col("id").alias("account_id"),
            "author",
            F.col("keys").alias("name_keys"),
            try_sent_at(F.col("timestamp")).alias("created_at"),
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            batch_column(batch_id).alias("batch_id"),
        )
        .select(*ACCOUNTS_SCHEMA.names)
    )
