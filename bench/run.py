"""`make bench`: the whole benchmark suite on this machine; writes bench/results/latest.json and prints a table.

    python -m bench.run [--quick] [--only NAME ...] [--out FILE]

Nothing here touches the chat's own data: every part runs on a broker, a
stack or a warehouse of its own under var/bench/ (removed afterwards, except
the synthetic statistics tables, kept for the next run). Run it alone: it
needs the whole machine, and it says so (`machine_load`) when something else
used the cores meanwhile.

1. `broker`: Kafka alone, with its own performance tools, a warm-up run and three
   measured ones: `broker_limit_msgs_per_s`.
2. `pipelines`: a backlog of realistic chat records (stack/demo_data.py) in
   `chat`, then on that backlog: the ledger into Delta (`ledger_msgs_per_s`),
   the plain kafka-python loop (`baseline_msgs_per_s`), and on one Spark JVM,
   per trigger, a warm-up pass then alternating passes of the relay and of
   Spark's own source → sink with no transform (`relay_msgs_per_s`,
   `relay_floor_msgs_per_s`, `relay_vs_floor`); what each part of the relay's
   work costs per record (`validation_cost`).
3. `cluster`: the relay and the floor with 1 and 2 partitions on a Spark
   standalone cluster of two one-core workers (`relay_cluster`, the 2/1 ratios).
4. `stack`: the whole chat (`python -m stack.up`): POST→GET latency at a
   steady rate with the slowest 1% explained (`e2e_latency_ms`), the
   moderation feedback (`warning_latency_ms`, `block_latency_ms`,
   `block_ui_latency_ms` in Chromium, `unblock_latency_ms`), the API's POST
   rate, the stack's memory (`stack_rss_mib`), how fresh Delta `messages` is at
   50 msg/s (bench/ledger.py: `delta_freshness_ms`, `ledger_batch_seconds`), and
   last one user flooding while 20 chat (bench/flood.py: `flood_normal_p99_ratio`,
   `flood_share`).
5. `stats`: the statistics job on 1 and 10 million messages (`stats_seconds`).

A throughput figure is the median of at least three measured windows after a
warm-up (bench/steady.py); its spread is printed, and one over 15 % is flagged
`unstable`. Ratios are taken within the run, so the machine's day-to-day
noise mostly cancels out of them. --quick uses small sizes to check that
everything works (its numbers mean little).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.steady import MachineMonitor, steady_figure, window_rates
from config import contract, settings

PARTS = ("broker", "pipelines", "cluster", "stack", "stats")
RESULTS_DIR = settings.REPO_ROOT / "bench" / "results"

FULL = {
    "records": 500_000,  # the backlog the relay and the floor read in each pass
    "ledger_records": 100_000,
    "baseline_records": 200_000,
    "limit_records": 1_000_000,
    "passes": 3,
    "broker_runs": 3,
    "triggers": ["realtime", "microbatch"],
    "validation_records": 200_000,
    "e2e_seconds": 300,
    "e2e_rate": 200,
    "block_users": 5,
    "feedback_users": 3,
    "api_seconds": 20,
    "stats_sizes": [1_000_000, 10_000_000],
}
QUICK = {
    "records": 60_000,
    "ledger_records": 5_000,
    "baseline_records": 10_000,
    "limit_records": 100_000,
    "passes": 3,
    "broker_runs": 3,
    "triggers": ["realtime", "microbatch"],
    "validation_records": 20_000,
    "e2e_seconds": 10,
    "e2e_rate": 50,
    "block_users": 1,
    "feedback_users": 1,
    "api_seconds": 4,
    "stats_sizes": [20_000, 200_000],
}
BASELINE_WINDOWS = 5

# (key, target, higher is better, unit)
TARGETS = [
    ("relay_vs_floor", 0.75, True, "×"),
    ("relay_vs_baseline", 10.0, True, "×"),
    ("relay_vs_broker_limit", 0.30, True, "×"),
    ("relay_msgs_per_s", 100_000, True, "msg/s"),
    ("e2e_latency_p99_ms", 50, False, "ms"),
    ("block_latency_p99_ms", 3000, False, "ms"),
    ("delta_freshness_p99_ms", 3000, False, "ms"),
    ("stack_rss_mib", 4096, False, "MiB"),
    ("stats_10m_seconds", 120, False, "s"),
    ("stats_scaling_1m_to_10m", 10.0, False, "×"),
    ("api_posts_per_s", 3000, True, "POST/s"),
    ("flood_normal_p99_ratio", 1.5, False, "×"),
    ("flood_normal_p99_ms", 100, False, "ms"),
]
# the throughput figures measured in windows: (key in results, what), printed with their spread (the relay's
# and the floor's are printed per trigger: `relay` and `relay_floor` are the default trigger's)
STEADY_FIGURES = [
    ("broker_limit", "Kafka alone (ProducerPerformance, acks=all)"),
    ("baseline", "kafka-python consume → validate → mask → produce"),
    ("ledger", "the ledger into Delta"),
]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  bench  {text}", flush=True)


def machine() -> dict:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "?",
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "java": java[0] if java else "?",
        "platform": platform.platform(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def average_record_size(records) -> int:
    return round(sum(len(r.value) for r in records) / len(records))


# -- hooks: figures other modules measure -----------------------------------------------------------


@dataclass(frozen=True)
class PipelinesContext:
    """What a pipelines hook gets: the bench's Spark session and broker, with the backlog in `topic`."""

    spark: object
    bootstrap: str
    topic: str
    records: int
    valid: int
    work: Path
    quick: bool


@dataclass(frozen=True)
class StackContext:
    """What a stack hook gets: the running chat (stack/harness.py's ChatStack) and a folder of its own."""

    stack: object
    work: Path
    quick: bool


@dataclass(frozen=True)
class Hook:
    """A figure another module measures: `call(module, context)` returns keys for the results, run when
    `module.function` is on this branch (else the results say it was not measured, and why)."""

    part: str  # "pipelines" or "stack": which context `call` gets
    module: str
    function: str
    measures: str
    call: Callable[[object, object], dict]


def _api_figures(api_load, ctx: StackContext) -> dict:
    seconds = 4 if ctx.quick else 15
    compared = api_load.api_workers_compared(ctx.stack.kafka_bootstrap, ctx.work / "api", seconds=seconds)
    by_workers = {
        str(r["workers"]): r["posts_per_s"]
        for name, r in compared.items()
        if isinstance(r, dict) and name.startswith("uvicorn") and "workers" in r
    }
    wrk = api_load.wrk_posts_per_s(ctx.stack.api_url, seconds=seconds)
    return {
        "api_workers": compared,
        "api_posts_per_s_by_workers": by_workers,
        "api_posts_per_s": by_workers.get("1"),
        "api_wrk": wrk,
        "api_wrk_requests_per_s": wrk["requests_per_s"],
    }


def _capacity_figures(capacity, ctx: StackContext) -> dict:
    levels = (20, 100) if ctx.quick else (100, 1000, 5000)
    return {"capacity": capacity.capacity(ctx.stack.api_url, levels)}


HOOKS = [
    # the API helper's: 1 vs 2 API workers, and wrk (an established tool) beside the project's generator
    Hook("stack", "bench.api_load", "api_workers_compared", "api_posts_per_s for 1 and 2 workers", _api_figures),
    Hook("stack", "bench.capacity", "capacity", "capacity at 100 / 1,000 / 5,000 readers", _capacity_figures),
    # the ledger helper's: how long a ledger batch takes, how fresh Delta is behind Kafka
    Hook(
        "stack",
        "bench.ledger",
        "bench_figures",
        "ledger_batch_seconds, delta_freshness_ms",
        lambda module, ctx: module.bench_figures(ctx),
    ),
    Hook("stack", "bench.maintenance", "bench_figures", "the tables' maintenance", lambda m, ctx: m.bench_figures(ctx)),
    # last: the flood leaves a backlog of messages behind it in the stack's topics and tables
    Hook(
        "stack",
        "bench.flood",
        "bench_figures",
        "one user flooding while 20 chat: flood_normal_p99_ratio, flood_share",
        lambda module, ctx: module.bench_figures(ctx),
    ),
    # the moderation helper's: the moderation engine's throughput, as a ratio measured in the same run
    Hook(
        "pipelines",
        "bench.moderation",
        "bench_figures",
        "the moderation throughput ratio",
        lambda module, ctx: module.bench_figures(ctx),
    ),
]


def hook_module(hook: Hook):
    """The hook's module when `module.function` is on this branch, else None."""
    if importlib.util.find_spec(hook.module) is None:
        return None
    module = importlib.import_module(hook.module)
    return module if callable(getattr(module, hook.function, None)) else None


def run_hooks(part: str, context: object, results: dict) -> None:
    for hook in (h for h in HOOKS if h.part == part):
        name = f"{hook.module}.{hook.function}"
        module = hook_module(hook)
        if module is None:
            results["hooks"][name] = f"not on this branch: {hook.measures} not measured"
            say(f"hook {name} is not on this branch: {hook.measures} not measured")
            continue
        say(f"hook {name}: {hook.measures}")
        try:
            figures = hook.call(module, context)
        except Exception as exc:  # noqa: BLE001 - one failing hook must not lose the others' figures
            results["hooks"][name] = f"failed: {exc!r}"[:2000]
            results["errors"][name] = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
            say(f"hook {name} failed: {exc}")
            continue
        # a hook that measured but found something wrong (bench.ledger: a message never in Delta) says so under
        # `errors`: reported as this hook's failure, its figures kept
        if "errors" in figures:
            results["errors"][name] = figures.pop("errors")
            say(f"hook {name} found an error: {results['errors'][name]}")
        results["hooks"][name] = f"measured: {', '.join(figures)}"
        results.update(figures)


# -- the parts ---------------------------------------------------------------------------------------


def part_broker(bootstrap: str, record_size: int, sizes: dict, results: dict, partitions: int) -> None:
    from bench.kafka_limits import broker_limit

    runs = []
    for n in range(sizes["broker_runs"] + 1):
        label = "warm-up" if n == 0 else f"run {n}/{sizes['broker_runs']}"
        limit = broker_limit(bootstrap, record_size, sizes["limit_records"], partitions=partitions)
        say(f"broker limit {label}: {limit['producer_msgs_per_s']:,.0f} msg/s produced (acks=all)")
        runs.append(limit)
    measured = runs[1:]
    results["broker_limit"] = {
        **steady_figure([r["producer_msgs_per_s"] for r in measured]),
        "consumer": steady_figure([r["consumer_msgs_per_s"] for r in measured]),
        "warmup": runs[0],
        "runs": measured,
    }
    results["broker_limit_msgs_per_s"] = results["broker_limit"]["value"]


def send_backlog(records, bootstrap: str) -> None:
    from stack import demo_data

    demo_data.send(records, bootstrap)


def part_baseline(bootstrap: str, records: int, partitions: int, results: dict) -> None:
    from bench.baseline import run_baseline
    from bench.kafka_limits import recreate_topic
    from bench.steady import OutputCounter

    recreate_topic(bootstrap, "bench_baseline", partitions)
    with OutputCounter(bootstrap, "bench_baseline") as counter:
        base = run_baseline(bootstrap, contract.TOPIC_CHAT, "bench_baseline", expected=records)
    scale = base["records"] / base["valid"]
    rates = [r * scale for r in window_rates(counter.samples, BASELINE_WINDOWS)]
    results["baseline"] = {**steady_figure(rates), "run": base}
    results["baseline_msgs_per_s"] = results["baseline"]["value"]
    say(
        f"baseline: {results['baseline_msgs_per_s']:,} msg/s (windows {results['baseline']['windows']}, "
        f"spread {results['baseline']['spread']:.0%})"
    )


def part_pipelines(work: Path, sizes: dict, results: dict, parts: set[str]) -> None:
    """The broker of the bench, the backlog, and every part that runs on them."""
    from stack import demo_data
    from stack.broker import KafkaBroker, free_port
    from stack.topics import create_topics

    broker = KafkaBroker(work / "kafka", free_port(), free_port(), work / "kafka.log")
    say(f"starting a broker of its own ({broker.home})")
    broker.start()
    partitions = settings.load().topic_partitions
    monitor: MachineMonitor = results["_monitor"]
    try:
        create_topics(broker.bootstrap, partitions=partitions)
        t = time.monotonic()
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
        say(f"backlog: {len(records):,} records generated ({time.monotonic() - t:.0f}s)")
        if "broker" in parts:
            monitor.mark("broker")
            say(f"Kafka's own producer/consumer tools: {sizes['limit_records']:,} records of {record_size} bytes")
            part_broker(broker.bootstrap, record_size, sizes, results, partitions)
        if not parts & {"pipelines", "cluster"}:
            return
        monitor.mark("backlog")
        ledger_records = sizes["ledger_records"]
        send_backlog(records[:ledger_records], broker.bootstrap)
        from pipelines.session import get_spark

        spark = get_spark("bench-pipelines")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            if "pipelines" in parts:
                from bench.pipelines_throughput import ledger_throughput

                monitor.mark("ledger")
                say(f"ledger on the first {ledger_records:,} records: a warm-up pass, then {sizes['passes']}")
                ledger = ledger_throughput(spark, broker.bootstrap, ledger_records, sizes["passes"], progress=say)
                results["ledger"] = {**ledger["figure"], "warmup": ledger["warmup"], "passes": ledger["passes"]}
                results["ledger_msgs_per_s"] = results["ledger"]["value"]
            monitor.mark("backlog")
            t = time.monotonic()
            send_backlog(records[ledger_records:], broker.bootstrap)
            say(
                f"backlog: {len(records):,} records ({valid:,} valid, {record_size} bytes on average) in chat "
                f"({time.monotonic() - t:.0f}s)"
            )
            del records
            if "pipelines" in parts:
                monitor.mark("baseline")
                say(
                    f"baseline: kafka-python consume → validate → mask → produce, {sizes['baseline_records']:,} records"
                )
                part_baseline(broker.bootstrap, sizes["baseline_records"], partitions, results)
                part_relay(spark, broker.bootstrap, sizes, results)
                monitor.mark("validation cost")
                part_validation_cost(spark, sizes, results)
                monitor.mark("pipelines hooks")
                run_hooks(
                    "pipelines",
                    PipelinesContext(
                        spark,
                        broker.bootstrap,
                        contract.TOPIC_CHAT,
                        results["backlog"]["records"],
                        valid,
                        work,
                        results["quick"],
                    ),
                    results,
                )
            if "cluster" in parts:
                copy_to_partitions(spark, broker.bootstrap, contract.TOPIC_CHAT, CLUSTER_SOURCE_2P, 2)
        finally:
            spark.stop()
        if "cluster" in parts:
            monitor.mark("cluster")
            part_cluster(work, broker.bootstrap, sizes, results)
    finally:
        broker.stop()


def part_relay(spark, bootstrap: str, sizes: dict, results: dict) -> None:
    from bench.pipelines_throughput import relay_and_floor

    monitor: MachineMonitor = results["_monitor"]
    backlog = results["backlog"]
    for trigger in sizes["triggers"]:
        monitor.mark(f"relay and floor ({trigger})")
        say(f"relay and floor ({trigger}): a warm-up pass of each, then {sizes['passes']} of each, alternating")
        out = relay_and_floor(
            spark,
            bootstrap,
            backlog["records"],
            backlog["valid"],
            triggers=[trigger],
            passes=sizes["passes"],
            progress=say,
        )[trigger]
        results[f"relay_{trigger}"] = out
        say(
            f"relay ({trigger}): {out['relay']['value']:,} msg/s (spread {out['relay']['spread']:.0%}), "
            f"floor {out['floor']['value']:,} (spread {out['floor']['spread']:.0%}): "
            f"{out['relay_vs_floor']['value']:.2f}× the floor"
        )
    default = settings.load().relay_trigger
    if f"relay_{default}" in results:
        chosen = results[f"relay_{default}"]
        results["relay_default_trigger"] = default
        results["relay"] = chosen["relay"]
        results["relay_floor"] = chosen["floor"]
        results["relay_msgs_per_s"] = chosen["relay"]["value"]
        results["relay_floor_msgs_per_s"] = chosen["floor"]["value"]
        results["relay_vs_floor"] = chosen["relay_vs_floor"]["value"]


def part_validation_cost(spark, sizes: dict, results: dict) -> None:
    from bench.validation_cost import format_result, measure

    say(f"validation cost: each part of the relay's work on {sizes['validation_records']:,} records in one task")
    cost = measure(spark, sizes["validation_records"], repeats=sizes["passes"])
    results["validation_cost"] = cost
    for line in format_result(cost).splitlines():
        say(f"  {line}")


CLUSTER_SOURCE_2P = "bench_chat_2p"


def copy_to_partitions(spark, bootstrap: str, source: str, target: str, partitions: int) -> None:
    """`source`'s records into a new `target` of `partitions` partitions, record i into partition i mod n."""
    import pyspark.sql.functions as F

    from bench.kafka_limits import recreate_topic
    from pipelines.kafka_io import write_records

    recreate_topic(bootstrap, target, partitions)
    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", source)
        .option("includeHeaders", "true")
        .load()
    )
    write_records(
        raw.select("key", "value", "headers", (F.col("offset") % partitions).cast("int").alias("partition")),
        bootstrap,
        target,
    )


def part_cluster(work: Path, bootstrap: str, sizes: dict, results: dict) -> None:
    """The relay and the floor with 1 and 2 partitions on a Spark standalone cluster of two one-core workers,
    each configuration in a driver of its own (one SparkContext per process)."""
    from stack.cluster import SparkStandalone

    backlog = results["backlog"]
    cluster = SparkStandalone(work / "spark", workers=2, cores=1, memory="1g")
    say("starting a Spark standalone master and two workers of one core each")
    cluster.start()
    out: dict = {"workers": 2, "cores_per_worker": 1, "trigger": settings.load().relay_trigger}
    try:
        for partitions, source in ((1, contract.TOPIC_CHAT), (2, CLUSTER_SOURCE_2P)):
            say(f"cluster: relay and floor on {partitions} partition(s) of {source}")
            argv = [
                sys.executable, "-m", "bench.pipelines_throughput", "--master", cluster.master_url,
                "--bootstrap", bootstrap, "--records", str(backlog["records"]), "--valid", str(backlog["valid"]),
                "--source", source, "--partitions", str(partitions), "--passes", str(sizes["passes"]),
                "--triggers", out["trigger"],
            ]  # fmt: skip
            run = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            for line in run.stderr.splitlines():
                if line[:2].isdigit() and "msg/s" in line:
                    say(f"  {line[10:]}")
            if run.returncode != 0:
                raise RuntimeError(f"the cluster run on {partitions} partition(s) failed:\n{run.stderr[-3000:]}")
            out[f"{partitions}p"] = json.loads(run.stdout.strip().splitlines()[-1])[out["trigger"]]
    finally:
        cluster.stop()
    for what in ("relay", "floor"):
        one, two = out["1p"][what]["value"], out["2p"][what]["value"]
        out[f"{what}_2p_vs_1p"] = round(two / one, 2)
    results["relay_cluster"] = out
    results["relay_cluster_1p_msgs_per_s"] = out["1p"]["relay"]["value"]
    results["relay_cluster_2p_msgs_per_s"] = out["2p"]["relay"]["value"]
    results["relay_cluster_2p_vs_1p"] = out["relay_2p_vs_1p"]
    results["floor_cluster_2p_vs_1p"] = out["floor_2p_vs_1p"]
    say(
        f"cluster: relay {out['1p']['relay']['value']:,} → {out['2p']['relay']['value']:,} msg/s with 2 partitions "
        f"({out['relay_2p_vs_1p']}×); floor {out['1p']['floor']['value']:,} → {out['2p']['floor']['value']:,} "
        f"({out['floor_2p_vs_1p']}×)"
    )


def part_stack(work: Path, sizes: dict, results: dict) -> None:
    from bench import api_load, block_latency, e2e_latency, feedback
    from bench.memory import MemorySampler
    from stack.harness import UNLIMITED_POSTS, start_stack, stop_stack

    monitor: MachineMonitor = results["_monitor"]
    say("starting the whole chat (python -m stack.up) on free ports")
    # the capacity bench's thousands of readers all come from this machine's one address: the per-address
    # cap on long-polls (there against one client holding everyone's places) would refuse most of them
    stack = start_stack(work / "stack", env={"CHAT_API_LONG_POLLS_PER_CLIENT": "0", **UNLIMITED_POSTS})
    try:
        with MemorySampler(stack.process.pid) as memory:
            monitor.mark("e2e latency")
            say(f"e2e latency: {sizes['e2e_rate']} messages/s for {sizes['e2e_seconds']}s, the ledger running")
            e2e = e2e_latency.measure(
                stack.api_url,
                rate=sizes["e2e_rate"],
                seconds=sizes["e2e_seconds"],
                explain=e2e_latency.StackView(stack.kafka_bootstrap, stack.data_dir),
            )
            results["e2e_latency_ms"] = e2e
            say(e2e_latency.format_result(e2e))
            if "slowest_explained" in e2e:
                say(e2e_latency.format_explanation(e2e["slowest_explained"]))
            monitor.mark("feedback")
            say(f"block latency: {sizes['block_users']} users")
            block = block_latency.measure(stack.api_url, users=sizes["block_users"])
            results["block_latency_ms"] = block
            say(block_latency.format_result(block))
            say(f"feedback: warning, blocked and unblocked notices for {sizes['feedback_users']} users")
            results.update(feedback.measure_notices(stack.api_url, stack.admin_token, sizes["feedback_users"]))
            say(f"feedback: the block in Chromium through the UI for {sizes['feedback_users']} users")
            results["block_ui_latency_ms"] = feedback.measure_block_ui(
                stack.ui_url, stack.api_url, work / "browser", sizes["feedback_users"]
            )
            for key in ("warning_latency_ms", "block_ui_latency_ms", "unblock_latency_ms"):
                say(f"{key}: p50 {results[key]['p50']} ms, p99 {results[key]['p99']} ms")
            monitor.mark("api")
            if hook_module(HOOKS[0]) is None:  # until the API helper's comparison is on this branch
                say(f"API: 32 clients posting for {sizes['api_seconds']}s (the project's generator)")
                api = api_load.api_posts_per_s(stack.api_url, clients=32, seconds=sizes["api_seconds"])
                results["api"] = api
                results["api_posts_per_s"] = api["posts_per_s"]
                say(f"API: {api['posts_per_s']:,.0f} POST/s")
            monitor.mark("stack hooks")
            run_hooks("stack", StackContext(stack, work / "hooks", results["quick"]), results)
        results["stack_memory"] = memory.result()
        results["stack_rss_mib"] = results["stack_memory"]["rss_mib"]
        say(
            f"stack memory: RSS {results['stack_rss_mib']:,} MiB at most (PSS {results['stack_memory']['pss_mib']:,}) "
            f"over {memory.samples} readings"
        )
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
    fresh = results.get("delta_freshness_ms")
    if fresh and not fresh.get("missing"):  # a p99 over the found ids alone would flatter a run that lost some
        out["delta_freshness_p99_ms"] = fresh["p99"]
    stats = results.get("stats_seconds")
    if stats and "10000000" in stats:
        out["stats_10m_seconds"] = stats["10000000"]
        if "1000000" in stats:
            out["stats_scaling_1m_to_10m"] = stats["ratio"]
    for key in (
        "relay_msgs_per_s",
        "relay_vs_floor",
        "api_posts_per_s",
        "stack_rss_mib",
        "flood_normal_p99_ratio",
        "flood_normal_p99_ms",
    ):
        if key in results:
            out[key] = results[key]
    return out


def unstable_figures(results: dict) -> list[str]:
    """The throughput figures whose windows spread more than bench/steady.py's SPREAD_LIMIT."""
    found = [key for key, _ in STEADY_FIGURES if isinstance(results.get(key), dict) and results[key].get("unstable")]
    for trigger in ("realtime", "microbatch"):
        for what in ("relay", "floor"):
            if results.get(f"relay_{trigger}", {}).get(what, {}).get("unstable"):
                found.append(f"relay_{trigger}.{what}")
    for p in ("1p", "2p"):
        for what in ("relay", "floor"):
            if results.get("relay_cluster", {}).get(p, {}).get(what, {}).get("unstable"):
                found.append(f"relay_cluster.{p}.{what}")
    if results.get("flood", {}).get("flooder", {}).get("accepted_per_s", {}).get("unstable"):
        found.append("flood.flooder.accepted_per_s")
    return sorted(set(found))


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


def _spread_text(figure: dict) -> str:
    s = figure.get("spread")
    text = "–" if s is None else f"{s:.0%}"
    return f"{text} UNSTABLE" if figure.get("unstable") else text


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
    steady = []
    for key, what in STEADY_FIGURES:
        if isinstance(results.get(key), dict) and "value" in results[key]:
            f = results[key]
            steady.append([key, f"{f['value']:,}", " / ".join(f"{w:,}" for w in f["windows"]), _spread_text(f), what])
    for trigger in ("realtime", "microbatch"):
        out = results.get(f"relay_{trigger}")
        if out:
            default = " (default)" if results.get("relay_default_trigger") == trigger else ""
            for what in ("floor", "relay"):
                f = out[what]
                steady.append(
                    [f"{what} {trigger}{default}", f"{f['value']:,}", " / ".join(f"{w:,}" for w in f["windows"]),
                     _spread_text(f), f"relay ÷ floor {out['relay_vs_floor']['value']}" if what == "relay" else ""]
                )  # fmt: skip
    cluster = results.get("relay_cluster")
    if cluster:
        for p in ("1p", "2p"):
            for what in ("floor", "relay"):
                f = cluster[p][what]
                steady.append(
                    [f"cluster {what} {p}", f"{f['value']:,}", " / ".join(f"{w:,}" for w in f["windows"]),
                     _spread_text(f), f"2p ÷ 1p {cluster[f'{what}_2p_vs_1p']}" if p == "2p" else ""]
                )  # fmt: skip
    flood = results.get("flood")
    if isinstance(flood, dict) and "flooder" in flood:
        f = flood["flooder"]["accepted_per_s"]
        share = flood["feed"]["share"]
        steady.append(
            [
                "flood: the flooder's 202s",
                f"{f['value']:,}",
                " / ".join(f"{w:,}" for w in f["windows"]),
                _spread_text(f),
                f"429/s {flood['flooder']['refused_per_s']['value']:,}; "
                f"feed share {'–' if share is None else f'{share:.0%}'}",
            ]
        )
    if steady:
        print()
        print(format_table(["throughput (msg/s)", "median", "windows", "spread", ""], steady, align_right={1}))
    if "stats_seconds" in results:
        print(f"stats_seconds: {results['stats_seconds']}")
    for part, load in results.get("machine_load", {}).items():
        if load.get("warning"):
            print(f"WARNING during {part}: {load['warning']} (load average up to {load.get('load_average_max')})")


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
    results: dict = {"machine": machine(), "quick": args.quick, "sizes": sizes, "errors": {}, "hooks": {}}
    if args.only and out.exists():  # re-running some parts: keep the other parts' figures from the file
        previous = json.loads(out.read_text())
        if previous.get("quick") == args.quick:
            results = {**previous, "machine": results["machine"], "errors": {}, "hooks": previous.get("hooks", {})}
            results.setdefault("rerun", []).append(f"{results['machine']['date']}: {' '.join(args.only)}")
    started = time.monotonic()
    monitor = MachineMonitor()
    results["_monitor"] = monitor
    results["machine_before"] = monitor.before()
    say(
        f"on {results['machine']['cores']} cores; {'quick sizes' if args.quick else 'full sizes'}; "
        f"parts: {', '.join(p for p in PARTS if p in parts)}; load average {results['machine_before']['load_average']}"
    )
    if results["machine_before"]["warning"]:
        say(f"WARNING: the machine is not quiet: {results['machine_before']['warning']}; the figures will say so")
    monitor.start()
    steps = [
        ("broker+pipelines", lambda: part_pipelines(work, sizes, results, parts), bool(parts & {"broker", "pipelines", "cluster"})),
        ("stack", lambda: part_stack(work, sizes, results), "stack" in parts),
        ("stats", lambda: part_stats(work, sizes, results), "stats" in parts),
    ]  # fmt: skip
    try:
        for name, step, wanted in steps:
            if not wanted:
                continue
            monitor.mark(name)
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one failing part must not lose the others' figures
                say(f"{name} failed: {exc}")
                results["errors"][name] = "".join(traceback.format_exception_only(exc)).strip()[-2000:]
    finally:
        monitor.stop()
        del results["_monitor"]
    results["machine_load"] = {**results.get("machine_load", {}), **monitor.parts}
    shutil.rmtree(work, ignore_errors=True)
    flat = derived(results)
    results.update(flat)
    results["targets"] = target_rows(flat)
    results["unstable"] = unstable_figures(results)
    results["busy_parts"] = sorted(p for p, load in results["machine_load"].items() if load.get("warning"))
    results["seconds"] = round(time.monotonic() - started)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print_table(results, results["targets"])
    if results["unstable"]:
        say(f"UNSTABLE (windows spread over 15%): {', '.join(results['unstable'])}")
    say(f"results in {out} ({results['seconds']}s)")
    if results["errors"]:
        say(f"failed parts: {', '.join(results['errors'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
