"""Delta Lake tables of the chat: their names, paths, schemas and readers.

- `warehouse.paths`: where each table lives (CHAT_WAREHOUSE_DIR or DATA_DIR/warehouse/<table>); no Spark.
- `warehouse.tables`: the Spark schemas, creation and registration by name (needs pyspark).
- `warehouse.moderation_snapshot`: the API's reader of `user_moderation` with the
  `deltalake` package (no Spark, no JVM).
"""
