"""`make bench`: the whole benchmark suite on this machine; writes bench/results/latest.json and prints a table.

    python -m bench.run [--quick] [--only NAME ...] [--out FILE]

Nothing here touches the chat's own data: every part runs on a broker, a
stack or a warehouse of its own under var/bench/ (removed afterwards, except
the synthetic statistics tables, kept for the next run).

1. Kafka alone, with its own performance tools: `broker_limit_msgs_per_s`.
2. A backlog of realistic chat records (stack/demo_data.py) in `chat`, then,
   one after the other on that same backlog: the plain kafka-python loop
   (`baseline_msgs_per_s`), the Spark relay in micro-batch and in real-time
   mode (`relay_msgs_per_s` is the default mode's), and the ledger into Delta
   (`ledger_msgs_per_s`).
3. The whole chat (`python -m stack.up`): POST→GET latency at a steady rate
   (`e2e_latency_ms`), third strike to 403 (`block_latency_ms`), and POSTs per
   second with 32 clients (`api_posts_per_s`).
4. The statistics job on 1 and 10 million messages (`stats_seconds`).

Each figure that has a baseline is also given as a ratio against it, measured
in the same run, so the machine's noise mostly cancels out. --quick uses small
sizes to check that everything works (its numbers mean little).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from config import contract, settings

PARTS = ("broker", "pipelines", "stack", "stats")
RESULTS_DIR = settings.REPO_ROOT / "bench" / "results"

FULL = {
    "records": 200_000,
    "limit_records": 1_000_000,
    "e2e_seconds": 60,
    "e2e_rate": 50,
    "block_users": 5,
    "api_seconds": 20,
    "stats_sizes": [1_000_000, 10_000_000],
}
QUICK = {
    "records": 20_000,
    "limit_records": 100_000,
    "e2e_seconds": 10,
    "e2e_rate": 20,
    "block_users": 1,
    "api_seconds": 4,
    "stats_sizes": [20_000, 200_000],
}

# (key, target, higher is better, unit)
TARGETS = [
    ("relay_msgs_per_s", 100_000, True, "msg/s"),
    ("relay_vs_baseline", 5.0, True, "×"),
    ("relay_vs_broker_limit", 0.30, True, "×"),
    ("e2e_latency_p99_ms", 100, False, "ms"),
    ("block_latency_p99_ms", 3000, False, "ms"),
    ("stats_10m_seconds", 120, False, "s"),
    ("stats_scaling_1m_to_10m", 10.0, False, "×"),
    ("api_posts_per_s", 3000, True, "POST/s"),
]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  bench  {text}", flush=True)


def machine() -> dict:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def average_record_size(records) -> int:
    return round(sum(len(r.value) for r in records) / len(records))


# -- the parts ---------------------------------------------------------------------------------------


def part_broker_and_pipelines(work: Path, sizes: dict, results: dict, parts: set[str]) -> None:
    from stack import demo_data
    from stack.broker import KafkaBroker, free_port
    from stack.topics import create_topics

    broker = KafkaBroker(work / "kafka", free_port(), free_port(), work / "kafka.log")
    say(f"starting a broker of its own ({broker.home})")
    broker.start()
    partitions = settings.load().topic_partitions
    try:
        create_topics(broker.bootstrap, partitions=partitions)
        records = demo_data.generate(
            sizes["records"], users=300, days=7, profane_share=0.06, malformed_share=0.01, seed=1, now=datetime.now(UTC)
        )
        record_size = average_record_size(records)
        valid = sum(1 for r in records if r.label in (demo_data.CLEAN, demo_data.PROFANE))
        results["backlog"] = {
            "records": len(records),
            "valid": valid,
            "avg_record_bytes": record_size,
            "partitions": partitions,
        }
        if "broker" in parts:
            from bench.kafka_limits import broker_limit

            say(f"Kafka's own producer/consumer tools: {sizes['limit_records']:,} records of {record_size} bytes")
            limit = broker_limit(broker.bootstrap, record_size, sizes["limit_records"], partitions=partitions)
            results["broker_limit"] = limit
            results["broker_limit_msgs_per_s"] = round(limit["producer_msgs_per_s"])
            say(
                f"broker limit: {limit['producer_msgs_per_s']:,.0f} msg/s produced (acks=all), "
                f"{limit['consumer_msgs_per_s']:,.0f} msg/s consumed"
            )
        if "pipelines" not in parts:
            return
        say(f"backlog: {len(records):,} records ({valid:,} valid, {record_size} bytes on average) into chat")
        demo_data.send(records, broker.bootstrap)
        from bench.baseline import run_baseline
        from bench.kafka_limits import recreate_topic

        say("baseline: kafka-python consume → mask → produce")
        recreate_topic(broker.bootstrap, "bench_baseline", partitions)
        base = run_baseline(broker.bootstrap, contract.TOPIC_CHAT, "bench_baseline", expected=len(records))
        results["baseline"] = base
        results["baseline_msgs_per_s"] = round(base["msgs_per_s"])
        say(f"baseline: {base['msgs_per_s']:,.0f} msg/s")

        from bench.pipelines_throughput import ledger_throughput, relay_throughput
        from pipelines.session import get_spark

        spark = get_spark("bench-pipelines")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            for trigger in ("microbatch", "realtime"):
                say(f"relay ({trigger}) on the backlog")
                relay = relay_throughput(spark, broker.bootstrap, trigger, valid, partitions)
                results[f"relay_{trigger}"] = relay
                say(
                    f"relay ({trigger}): {relay['msgs_per_s']:,} msg/s sustained "
                    f"(first output after {relay['first_output_after_s']}s)"
                )
            default = settings.load().relay_trigger
            results["relay_msgs_per_s"] = results[f"relay_{default}"]["msgs_per_s"]
            results["relay_default_trigger"] = default
            say("ledger on the backlog (into a fresh warehouse)")
            ledger = ledger_throughput(spark, broker.bootstrap, len(records))
            results["ledger"] = ledger
            results["ledger_msgs_per_s"] = ledger["msgs_per_s"]
            say(f"ledger: {ledger['msgs_per_s']:,} msg/s over {ledger['batches']} batch(es)")
        finally:
            spark.stop()
    finally:
        broker.stop()


def part_stack(work: Path, sizes: dict, results: dict) -> None:
    from bench import api_load, block_latency, e2e_latency
    from stack.harness import start_stack, stop_stack

    say("starting the whole chat (python -m stack.up) on free ports")
    stack = start_stack(work / "stack")
    try:
        say(f"e2e latency: {sizes['e2e_rate']} messages/s for {sizes['e2e_seconds']}s")
        e2e = e2e_latency.measure(stack.api_url, rate=sizes["e2e_rate"], seconds=sizes["e2e_seconds"])
        results["e2e_latency_ms"] = e2e
        say(f"e2e latency: p50 {e2e['p50']:.0f} ms, p99 {e2e['p99']:.0f} ms, missing {e2e['missing']}")
        say(f"block latency: {sizes['block_users']} users")
        block = block_latency.measure(stack.api_url, users=sizes["block_users"])
        results["block_latency_ms"] = block
        say(f"block latency: p50 {block['p50']:.0f} ms, p99 {block['p99']:.0f} ms")
        say(f"API: 32 clients posting for {sizes['api_seconds']}s")
        api = api_load.api_posts_per_s(stack.api_url, clients=32, seconds=sizes["api_seconds"])
        results["api"] = api
        results["api_posts_per_s"] = api["posts_per_s"]
        say(f"API: {api['posts_per_s']:,.0f} POST/s")
    finally:
        stop_stack(stack)


def part_stats(work: Path, sizes: dict, results: dict) -> None:
    from bench.stats_scale import build_tables, time_stats_job
    from pipelines.session import get_spark

    stats_dir = settings.load().data_dir / "bench" / "stats"
    spark = get_spark("bench-stats-data")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for n in sizes["stats_sizes"]:
            t = time.monotonic()
            build_tables(spark, stats_dir / str(n), n)
            say(f"statistics: {n:,} synthetic messages in Delta ({time.monotonic() - t:.0f}s; kept for next time)")
    finally:
        spark.stop()
    seconds = {}
    for n in sizes["stats_sizes"]:
        say(f"statistics job (spark-submit) on {n:,} messages")
        run = time_stats_job(stats_dir / str(n))
        seconds[str(n)] = run["seconds"]
        results.setdefault("stats", {})[str(n)] = run
        say(f"statistics on {n:,}: {run['seconds']}s ({run['job_seconds']}s inside the job, {run['users']:,} users)")
    small, large = (str(n) for n in sizes["stats_sizes"])
    results["stats_seconds"] = {**seconds, "ratio": round(seconds[large] / seconds[small], 2)}


# -- the summary -----------------------------------------------------------------------------------


def derived(results: dict) -> dict:
    """Ratios and the flat figures the targets are stated in."""
    out = {}
    relay, base, limit = (
        results.get(k) for k in ("relay_msgs_per_s", "baseline_msgs_per_s", "broker_limit_msgs_per_s")
    )
    if relay and base:
        out["relay_vs_baseline"] = round(relay / base, 2)
    if relay and limit:
        out["relay_vs_broker_limit"] = round(relay / limit, 3)
    if "e2e_latency_ms" in results:
        out["e2e_latency_p99_ms"] = results["e2e_latency_ms"]["p99"]
    if "block_latency_ms" in results:
        out["block_latency_p99_ms"] = results["block_latency_ms"]["p99"]
    stats = results.get("stats_seconds")
    if stats and "10000000" in stats:
        out["stats_10m_seconds"] = stats["10000000"]
        if "1000000" in stats:
            out["stats_scaling_1m_to_10m"] = stats["ratio"]
    if "relay_msgs_per_s" in results:
        out["relay_msgs_per_s"] = results["relay_msgs_per_s"]
    if "api_posts_per_s" in results:
        out["api_posts_per_s"] = results["api_posts_per_s"]
    return out


def target_rows(flat: dict) -> list[dict]:
    rows = []
    for key, target, higher, unit in TARGETS:
        value = flat.get(key)
        if value is None:
            rows.append({"figure": key, "target": target, "unit": unit, "value": None, "met": None})
            continue
        met = value >= target if higher else value <= target
        # how far from the target: >1 means better than the target
        factor = (value / target) if higher else (target / value if value else float("inf"))
        rows.append(
            {"figure": key, "target": target, "unit": unit, "value": value, "met": met, "vs_target": round(factor, 3)}
        )
    return rows


def print_table(results: dict, rows: list[dict]) -> None:
    from pipelines.textable import format_table

    lines = []
    for r in rows:
        sign = "≥" if next(t for t in TARGETS if t[0] == r["figure"])[2] else "≤"
        value = "–" if r["value"] is None else f"{r['value']:,}"
        met = "n/a" if r["met"] is None else ("met" if r["met"] else f"missed ({r['vs_target']:.2f}× of target)")
        lines.append([r["figure"], value, f"{sign} {r['target']:,} {r['unit']}", met])
    print()
    print(format_table(["figure", "measured", "target", ""], lines, align_right={1}))
    others = [
        ("broker_limit_msgs_per_s", "Kafka alone (producer, acks=all)"),
        ("baseline_msgs_per_s", "kafka-python loop"),
        ("ledger_msgs_per_s", "ledger into Delta"),
    ]
    for key, what in others:
        if key in results:
            print(f"{key}: {results[key]:,} ({what})")
    for trigger in ("microbatch", "realtime"):
        if f"relay_{trigger}" in results:
            print(f"relay {trigger}: {results[f'relay_{trigger}']['msgs_per_s']:,} msg/s")
    if "stats_seconds" in results:
        print(f"stats_seconds: {results['stats_seconds']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the suite works, quickly")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        help="run only these parts; the other figures already in the results file are kept",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/results/latest.json; quick runs: bench/results/quick.json)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    parts = set(args.only or PARTS)
    out = args.out or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    work = settings.load().data_dir / "bench" / f"run-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine(), "quick": args.quick, "sizes": sizes, "errors": {}}
    if args.only and out.exists():  # re-running some parts: keep the other parts' figures from the file
        previous = json.loads(out.read_text())
        if previous.get("quick") == args.quick:
            results = {**previous, "machine": results["machine"], "errors": {}}
            results.setdefault("rerun", []).append(f"{results['machine']['date']}: {' '.join(args.only)}")
    started = time.monotonic()
    say(
        f"on {results['machine']['cores']} cores; {'quick sizes' if args.quick else 'full sizes'}; "
        f"parts: {', '.join(p for p in PARTS if p in parts)}"
    )
    steps = [
        (
            "broker+pipelines",
            lambda: part_broker_and_pipelines(work, sizes, results, parts),
            bool(parts & {"broker", "pipelines"}),
        ),
        ("stack", lambda: part_stack(work, sizes, results), "stack" in parts),
        ("stats", lambda: part_stats(work, sizes, results), "stats" in parts),
    ]
    for name, step, wanted in steps:
        if not wanted:
            continue
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others' figures
            say(f"{name} failed: {exc}")
            results["errors"][name] = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
    shutil.rmtree(work, ignore_errors=True)
    flat = derived(results)
    results.update(flat)
    results["targets"] = target_rows(flat)
    results["seconds"] = round(time.monotonic() - started)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results, results["targets"])
    say(f"results in {out} ({results['seconds']}s)")
    if results["errors"]:
        say(f"failed parts: {', '.join(results['errors'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
