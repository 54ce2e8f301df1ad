"""What each part of the relay's per-record work costs, in µs per record, on demo traffic in one Spark task.

    python -m bench.validation_cost [--records 200000] [--repeats 5]

The raw records (stack/demo_data.py: 6% profane, 1% malformed) are cached in
memory in one partition, then each variant below is computed for every record
with Spark's `noop` sink, `repeats` times after one warm-up pass (the JIT): the
median time minus the plain scan's, per record, is the variant's cost.
Variants build on each other (JSON parsing, then the shape, then the fields...),
so the differences between them are the costs of the shape check, the field
checks, the header handling, the validation as a whole, the masking, the output
record. No Kafka: this is the transformation's CPU alone, what `make bench`'s
relay-versus-floor ratio is made of.

Prints one line per variant, then the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from bench.steady import spread
from pipelines import validation
from pipelines.relay import build_relay
from pipelines.wordlists import load_word_lists

RAW_SCHEMA = "value binary, headers array<struct<key:string,value:binary>>, partition int, offset long"


def raw_records_df(spark: SparkSession, records: int, work: Path) -> DataFrame:
    """`records` demo records shaped like the Kafka source's rows, cached in memory in one partition."""
    from stack import demo_data

    demo = demo_data.generate(records, 300, 7, 0.06, 0.01, seed=11, now=datetime.now(UTC))
    rows = [(r.value, list(r.headers), 0, i) for i, r in enumerate(demo)]
    path = work / "raw.parquet"
    spark.createDataFrame(rows, RAW_SCHEMA).coalesce(1).write.mode("overwrite").parquet(str(path))
    df = spark.read.parquet(str(path)).coalesce(1).cache()
    df.count()
    return df


def variants(word_lists) -> list[tuple[str, Callable[[DataFrame], DataFrame]]]:
    """(name, DataFrame → DataFrame), each doing a little more of the relay's work than the one before."""
    v = validation

    def parsed(df: DataFrame) -> DataFrame:
        return df.withColumn("_v", v.parsed_value(F.col("value")))

    return [
        ("scan", lambda df: df.select("value")),
        ("as text", lambda df: df.select(F.col("value").cast("string").alias("s"))),
        ("parse JSON", lambda df: parsed(df).select(F.is_variant_null("_v"))),
        ("+ shape", lambda df: parsed(df).select(F.schema_of_variant("_v"))),
        (
            "+ fields",
            lambda df: parsed(df).select(
                F.schema_of_variant("_v"), *(v.field_text(F.col("_v"), f) for f in ("author", "data", "timestamp"))
            ),
        ),
        (
            "header id",
            lambda df: df.select(v.message_id(F.col("headers"), F.col("partition"), F.col("offset"))),
        ),
        ("validation", lambda df: df.transform(v.with_validated_message)),
        ("validation, valid only", lambda df: df.transform(v.with_validated_message).transform(v.filter_valid)),
        ("relay", lambda df: build_relay(df, word_lists)),
    ]


def time_variant(df: DataFrame, repeats: int) -> list[float]:
    """Seconds to compute `df` for every record, `repeats` times after a warm-up pass."""
    df.write.format("noop").mode("overwrite").save()
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        df.write.format("noop").mode("overwrite").save()
        out.append(time.perf_counter() - started)
    return out


def measure(spark: SparkSession, records: int = 200_000, repeats: int = 5, progress=lambda _: None) -> dict:
    """`{"records", "repeats", "variants": {name: {"us_per_record", "seconds", "spread"}}}`; µs are net of the scan."""
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as work:
        raw = raw_records_df(spark, records, Path(work))
        times = {}
        for name, build in variants(load_word_lists()):
            times[name] = time_variant(build(raw), repeats)
            progress(f"{name}: {statistics.median(times[name]):.3f}s")
        raw.unpersist()
    scan = statistics.median(times["scan"])
    return {
        "records": records,
        "repeats": repeats,
        "variants": {
            name: {
                "us_per_record": round((statistics.median(t) - scan) / records * 1e6, 2),
                "seconds": [round(x, 3) for x in t],
                "spread": spread(t),
            }
            for name, t in times.items()
        },
    }


def format_result(result: dict) -> str:
    return "\n".join(
        f"{name:<24} {v['us_per_record']:7.2f} µs/record  (spread {v['spread']:.0%})"
        for name, v in result["variants"].items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from pipelines.session import get_spark

    spark = get_spark("bench-validation-cost", master="local[1]", extra={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    try:
        result = measure(spark, args.records, args.repeats, progress=lambda line: print(line, file=sys.stderr))
    finally:
        spark.stop()
    print(format_result(result))
    print(json.dumps({"bench": "validation_cost", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
