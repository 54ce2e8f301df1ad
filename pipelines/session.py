"""One way to get a SparkSession for every job, configured from conf/spark-defaults.conf."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from pyspark.sql import SparkSession

from config import settings
from config.cluster_security import spark_auth_conf
from config.object_store import is_object

CONF_DIR = settings.REPO_ROOT / "conf"


def spark_jars(object_store: bool = False) -> list[Path]:
    """The Kafka connector and Delta jars that `make jars` resolved; with `object_store`, Hadoop's S3A client too."""
    folder = settings.load().jars_dir / "spark"
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("spark-sql-kafka-0-10") for j in jars):
        raise RuntimeError(f"Spark's Kafka connector is not in {folder}: run `make jars` (or `make up`) first")
    if object_store:
        s3 = sorted((settings.load().jars_dir / "s3").glob("*.jar"))
        if not any(j.name.startswith("hadoop-aws") for j in s3):
            raise RuntimeError(f"Hadoop's S3A client is not in {folder.parent / 's3'}: run `make jars` first")
        jars += s3
    return jars


def launched_by_spark_submit() -> bool:
    """True in a Python driver that spark-submit started (its JVM is already running, with its master)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(app_name: str, master: str | None = None, extra: dict[str, str] | None = None) -> SparkSession:
    """Build (or reuse) the SparkSession.

    Cluster and Delta settings come from conf/spark-defaults.conf (through
    SPARK_CONF_DIR); here only what depends on this machine: the master from
    CHAT_SPARK_MASTER (unless spark-submit already chose one) and the absolute
    paths of the jars.
    """
    # PySpark turns collected timestamps into naive datetimes in the process's time zone: make that
    # zone the sessions' (UTC, conf/spark-defaults.conf), so printed and plotted times are the stored ones
    os.environ["TZ"] = "UTC"
    time.tzset()
    builder = SparkSession.builder.appName(app_name)
    # under spark-submit the JVM already runs with its --master (or spark.master from --properties-file)
    if master is not None or not launched_by_spark_submit():
        master = master or settings.load().spark_master
        os.environ.setdefault("SPARK_CONF_DIR", str(CONF_DIR))
        if master.startswith("local"):
            # one machine: the driver, its block manager and its web UI listen on loopback only
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master(master)
    s = settings.load()
    builder = builder.config("spark.jars", ",".join(str(j) for j in spark_jars(s.on_object_store)))
    # a secured standalone cluster admits only holders of its secret (CHAT_SPARK_AUTH_SECRET_FILE; none locally)
    conf = spark_auth_conf(s.spark_auth_secret_file)
    if s.on_object_store:
        s.object_store.check_reachable()
        conf.update(s.object_store.spark_conf())
    for key, value in {**conf, **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if s.on_object_store:
        check_object_locations(spark, s)
    return spark


def check_object_locations(spark: SparkSession, s: settings.Settings) -> None:
    """Write and delete a small object under each s3a:// location, so a missing bucket or a denied write stops
    the job now with the setting named, not with a stack trace at its first commit."""
    from py4j.protocol import Py4JJavaError

    jvm = spark.sparkContext._jvm
    for setting, location in (("CHAT_WAREHOUSE_DIR", s.warehouse_dir), ("CHAT_CHECKPOINT_DIR", s.checkpoint_dir)):
        if not is_object(location):
            continue
        probe = jvm.org.apache.hadoop.fs.Path(str(location / f".chat-write-check-{uuid.uuid4().hex}"))
        try:
            fs = probe.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
            fs.create(probe, True).close()
            fs.delete(probe, False)
        except Py4JJavaError as exc:
            error = exc.java_exception
            kind, text = error.getClass().getSimpleName(), str(error.getMessage() or "").splitlines()[0:1]
            if "NoSuchBucket" in kind or "UnknownStore" in kind or "does not exist" in "".join(text):
                why = f"the bucket {location.bucket} does not exist"
            elif "AccessDenied" in kind:
                why = "access denied (check the credentials and the bucket's policy)"
            else:
                why = f"{kind}: {''.join(text)[:300]}"
            spark.stop()
            raise SystemExit(f"{setting} {location}: cannot write there: {why}") from None
