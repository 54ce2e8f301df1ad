"""warehouse/tables.py: the schemas as Spark parses their DDL, and the tables as created (readable by deltalake)."""

from __future__ import annotations

import pyspark.sql.types as T
import pytest
from deltalake import DeltaTable as DeltaLakeTable

from warehouse import paths
from warehouse.tables import ALL_SCHEMAS, COMMENTS, SCHEMAS, TABLE_PROPERTIES, ensure_tables, register_tables, schema

EVERY_FORM = """
    id          string not null,   -- a comment, with a comma
    flag        boolean,
    n           int not null,
    big         bigint,
    rate        double not null,
    at          timestamp,
    raw         binary,
    words       array<string> not null,
    counts      array<bigint>,
    pairs       array<struct<term: string, hits: bigint>> not null
"""


def test_the_ddl_is_read_as_spark_reads_it(spark):
    without_comments = "\n".join(line.split("--")[0] for line in EVERY_FORM.splitlines())
    assert schema(EVERY_FORM) == T._parse_datatype_string(without_comments)
    assert [f.nullable for f in schema(EVERY_FORM)] == [False, True, False, True, False, True, True, False, True, False]


@pytest.mark.parametrize("name", sorted(ALL_SCHEMAS))
def test_each_table_schema_is_its_ddl_as_spark_reads_it(spark, name):
    table = ALL_SCHEMAS[name]
    ddl = ", ".join(f"{f.name} {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'}" for f in table)
    assert T._parse_datatype_string(ddl) == table == schema(ddl)


def test_an_unknown_type_is_refused():
    with pytest.raises(ValueError, match=r"type 'varchar\(3\)' is none of string, boolean"):
        schema("x varchar(3)")


@pytest.mark.integration
def test_tables_are_created_with_their_schema_comment_and_properties_and_registered(spark, tmp_path):
    warehouse = tmp_path / "warehouse"
    ensure_tables(spark, warehouse)
    for name, table_schema in SCHEMAS.items():
        location = paths.table_path(name, warehouse)
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
        assert detail.description == COMMENTS[name]
        assert {k: detail.properties.get(k) for k in TABLE_PROPERTIES} == TABLE_PROPERTIES
        assert spark.read.format("delta").load(str(location)).schema == table_schema
        assert DeltaLakeTable(str(location)).protocol().min_reader_version == 1  # the API's deltalake reads it
    assert register_tables(spark, warehouse, database="chat_tables_test") == [
        f"chat_tables_test.{name}" for name in paths.ALL_TABLES if name in SCHEMAS
    ]  # user_stats does not exist yet: not registered
    assert spark.table("chat_tables_test.messages").count() == 0
