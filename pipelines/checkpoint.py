"""What a streaming query's checkpoint says: the query's id, and where a micro-batch ends in a topic.

Reads the files Spark writes under the checkpoint location: `metadata` (the
query id, kept for the checkpoint's life) and the offset log `offsets/<batch>`
("v1", the batch's metadata, then one line per source: its end offsets as
JSON, `{"topic": {"partition": offset}}` for a Kafka source).
"""

from __future__ import annotations

import json
from pathlib import Path

from config.object_store import Location, is_object


def read_text(location: Location) -> str:
    """A small file's text, from a path or (through the running Spark session's Hadoop file system, which has
    the S3A settings) from an s3a:// location; OSError when it is not there."""
    if not is_object(location):
        return Path(location).read_text()
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession() or SparkSession._instantiatedSession
    if spark is None:
        raise OSError(f"no Spark session to read {location}")
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(str(location))
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(path):
        raise FileNotFoundError(str(location))
    stream = fs.open(path)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
    finally:
        stream.close()


def query_id(checkpoint: Location) -> str:
    """The id of the query that owns `checkpoint` (a new checkpoint is a new query)."""
    return json.loads(read_text(checkpoint / "metadata"))["id"]


def end_offsets(checkpoint: Location, batch_id: int, topic: str) -> dict[int, int] | None:
    """Where batch `batch_id` ends in `topic` ({partition: offset}, exclusive), from the offset log;
    None when the log holds no such batch or no Kafka source reading `topic`."""
    try:
        lines = read_text(checkpoint / "offsets" / str(batch_id)).splitlines()
    except OSError:
        return None
    for line in lines[2:]:
        try:
            offsets = json.loads(line).get(topic)
        except (ValueError, AttributeError):  # "-": a source without offsets; not an object: another source
            continue
        if isinstance(offsets, dict):
            return {int(p): int(o) for p, o in offsets.items()}
    return None
