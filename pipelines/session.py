"""One way to get a SparkSession for every job, configured from conf/spark-defaults.conf."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pyspark.sql import SparkSession

from config import settings
from config.cluster_security import spark_auth_conf

CONF_DIR = settings.REPO_ROOT / "conf"


def spark_jars() -> list[Path]:
    """The Kafka connector and Delta jars that `make jars` resolved."""
    folder = settings.load().jars_dir / "spark"
    jars = sorted(folder.glob("*.jar"))
    if not any(j.name.startswith("spark-sql-kafka-0-10") for j in jars):
        raise RuntimeError(f"Spark's Kafka connector is not in {folder}: run `make jars` (or `make up`) first")
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
    builder = builder.config("spark.jars", ",".join(str(j) for j in spark_jars()))
    # a secured standalone cluster admits only holders of its secret (CHAT_SPARK_AUTH_SECRET_FILE; none locally)
    for key, value in {**spark_auth_conf(settings.load().spark_auth_secret_file), **(extra or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
