"""A sign-up through a real API process on a real broker lands in Delta `accounts` through the ledger: once, also
when its `chat_actions` record is replayed or sent again, without the password hash `chat_accounts` keeps, and
never in `moderator_actions`; a warehouse from before the table gains it when the ledger starts."""

from __future__ import annotations

import json
import secrets

import pyspark.sql.functions as F
import pytest
import requests
from deltalake import DeltaTable as DeltaLakeTable

from config import contract
from pipelines.ledger import Ledger
from pipelines.wordlists import load_word_lists
from stack.balancer import ApiHost
from warehouse import paths
from warehouse.tables import ACCOUNTS_SCHEMA, SCHEMAS, ensure_table, ensure_tables

pytestmark = pytest.mark.integration


def topic_records(spark, bootstrap: str, topic: str, contains: str):
    """The records of `topic` whose value contains `contains`, as the ledger's Kafka source gives them."""
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        .load()
        .where(F.col("value").cast("string").contains(contains))
    )


def test_a_sign_up_lands_in_delta_accounts_once_without_its_hash(spark, kafka_only, tmp_path):
    host = ApiHost("a", tmp_path / "api", kafka_only, secrets.token_urlsafe(32))
    host.start()
    try:
        host.wait_healthy()
        name = f"Zoë-{secrets.token_hex(3)}"
        answer = requests.post(
            f"{host.url}/accounts",
            json={"author": name, "password": "correct horse"},
            # an address of its own: sign-ups are counted per address by every API process on the broker
            headers={"X-Forwarded-For": f"10.77.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
    finally:
        host.stop()

    tag = json.dumps(name, ensure_ascii=False)  # the name as it stands in the records' JSON
    (signup,) = [json.loads(r.value) for r in topic_records(spark, kafka_only, contract.TOPIC_ACCOUNTS, tag).collect()]
    assert signup["op"] == "signup" and signup["hash"].startswith("$argon2id$")
    batch = topic_records(spark, kafka_only, contract.TOPIC_ACTIONS, tag).localCheckpoint()
    (action,) = [json.loads(r.value) for r in batch.collect()]
    assert action["action"] == contract.ACCOUNT_ACTION and action["id"] == signup["id"]

    # a warehouse from before the accounts table: the ledger's start adds it
    warehouse = tmp_path / "warehouse"
    for table in SCHEMAS:
        if table != paths.ACCOUNTS:
            ensure_table(spark, table, warehouse)
    assert not (paths.table_path(paths.ACCOUNTS, warehouse) / "_delta_log").exists()
    ensure_tables(spark, warehouse)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "metadata").write_text(json.dumps({"id": "accounts-test"}))
    ledger = Ledger(spark, warehouse, kafka_only, load_word_lists(), checkpoint)

    ledger.process_batch(batch, 0)
    ledger.process_batch(batch, 0)  # the batch replayed after a crash
    ledger.process_batch(batch.unionByName(batch), 1)  # the action again (an API announcing it twice)
    rows = spark.read.format("delta").load(str(paths.table_path(paths.ACCOUNTS, warehouse)))
    assert rows.schema == ACCOUNTS_SCHEMA
    (row,) = rows.collect()
    assert (row.account_id, row.author, row.name_keys, row.batch_id) == (signup["id"], name, signup["keys"], 0)
    assert row.created_at.strftime(contract.TIMESTAMP_FORMAT) == action["timestamp"]
    assert signup["hash"] not in json.dumps(row.asDict(), default=str)
    assert spark.read.format("delta").load(str(paths.table_path(paths.MODERATOR_ACTIONS, warehouse))).isEmpty()
    # the API's deltalake package reads it as well
    assert DeltaLakeTable(str(paths.table_path(paths.ACCOUNTS, warehouse))).to_pyarrow_table().num_rows == 1
