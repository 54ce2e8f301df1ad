"""A ledger batch's cost in steady state: the real `Ledger.process_batch`, batch after batch, on one warm JVM
(README "Delta tables", issue 14 item 2).

    python -m bench.ledger_batch [--messages 1000] [--users 200] [--warmup 3] [--reps 20] [--ab KEY=VALUE ...]

A real broker and the ledger's micro-batch query (bench/object_store.py's `Variant`, on local disk): each round
sends one batch of demo traffic to `chat` and the ledger takes it as one micro-batch. A batch's figure is its
foreachBatch time (`addBatch`: the ledger's Spark jobs and Delta commits, its notices), the checkpoint's offset and
commit logs apart; the split by step is the ledger's own StepClock. With `--ab`, `--b-table-property` or
`--b-ledger`, a second lakehouse (`b`) takes the same records, with those Spark settings, with those properties on
its tables, or with pipelines/ledger.py as it is at a git commit (a code change measured against its parent), the two
in alternating order in the same run, so both see the same noise. `--a-table-property` sets properties of variant a's
tables (e.g. `delta.checkpointInterval=10`, as tables were made before the checkpoints left the ledger's batch), and
`--b-checkpoint-interval SECONDS` runs the streams process's real maintenance thread (pipelines/maintenance.py's
Scheduler, Delta checkpoints only) on b's tables beside the batches; each variant's figures then say how many commits
a cold reader of its tables replayed at most after the last checkpoint (sampled after every round) and which batches
ran while a checkpoint was being written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from pyspark.sql import SparkSession

from bench.object_store import Variant, at_least, restored_environment, traffic
from bench.steady import load_average
from config.settings import REPO_ROOT
from stack import demo_data
from stack.broker import KafkaBroker, free_port
from stack.topics import create_topics


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method: between the smallest and the largest value)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def figure(seconds: list[float]) -> dict:
    """p50, p99, min, max and every run, in seconds."""
    return {
        "p50_s": round(statistics.median(seconds), 3),
        "p99_s": round(percentile(seconds, 99), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "runs_s": [round(s, 3) for s in seconds],
    }


def summary(runs: list[dict]) -> dict:
    """A variant's figures from its measured batches: the batch, its checkpoint logs, each step's median."""
    steps: dict[str, list[float]] = {}
    for run in runs:
        for name, seconds in run["steps"].items():
            steps.setdefault(name, []).append(seconds)
    return {
        "batch": figure([r["batch"] for r in runs]),
        "checkpoint_logs": figure([r["checkpoint_logs"] for r in runs]),
        "step_median_s": {name: round(statistics.median(s), 3) for name, s in steps.items()},
        "runs": runs,
    }


@contextlib.contextmanager
def spark_settings(spark: SparkSession, settings: dict[str, str]):
    """The session's SQL settings `settings` for the duration of the block, the previous values after it."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def ledger_at(commit: str) -> types.ModuleType:
    """pipelines/ledger.py as it is at `commit`, as a module of its own (the rest of the code is this checkout's)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:pipelines/ledger.py"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"ledger_at_{commit}")
    module.__package__, module.__file__ = "pipelines", str(REPO_ROOT / "pipelines" / "ledger.py")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{commit}:pipelines/ledger.py", "exec"), module.__dict__)
    return module


def set_table_properties(spark: SparkSession, warehouse: Path, properties: dict[str, str]) -> None:
    """`properties` on each of the ledger's tables under `warehouse`."""
    from warehouse import paths
    from warehouse.tables import SCHEMAS

    pairs = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    for name in SCHEMAS:
        spark.sql(f"ALTER TABLE delta.`{paths.table_path(name, warehouse)}` SET TBLPROPERTIES ({pairs})")


def replayed(spark: SparkSession, warehouse: Path) -> int:
    """The most commits a cold reader of one of the ledger's tables under `warehouse` replays after its last
    checkpoint, now."""
    from pipelines.maintenance import commits_since_checkpoint
    from warehouse import paths
    from warehouse.tables import SCHEMAS

    return max(commits_since_checkpoint(spark, paths.table_path(name, warehouse))[1] for name in SCHEMAS)


class CheckpointLog:
    """What the maintenance thread wrote: each checkpoint's table, version, commits before and when (monotonic)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ended: list[tuple[float, str]] = []

    def __call__(self, text: str) -> None:
        self.lines.append(text)
        if " at version " in text:
            self.ended.append((time.monotonic(), text))

    def written_during(self, start: float, end: float, seconds: list[float]) -> bool:
        """Whether a checkpoint was being written in [start, end]; `seconds`: their durations, in order."""
        return any(t - s <= end and t >= start for (t, _), s in zip(self.ended, seconds, strict=True))


def run(
    messages: int,
    users: int,
    warmup: int,
    reps: int,
    work: Path,
    ab: dict[str, str],
    b_ledger: str | None = None,
    b_tables: dict[str, str] | None = None,
    a_tables: dict[str, str] | None = None,
    b_checkpoint_interval_s: float = 0,
) -> dict:
    """The batches measured under `work` (a fresh folder); the result as main prints it."""
    with restored_environment():
        return _run(
            messages, users, warmup, reps, work, ab, b_ledger, b_tables or {}, a_tables or {}, b_checkpoint_interval_s
        )


def _run(
    messages: int,
    users: int,
    warmup: int,
    reps: int,
    work: Path,
    ab: dict[str, str],
    b_ledger: str | None,
    b_tables: dict[str, str],
    a_tables: dict[str, str],
    b_checkpoint_interval_s: float,
) -> dict:
    from pipelines.maintenance import Scheduler

    load_before = load_average()
    work.mkdir(parents=True, exist_ok=True)
    rounds = traffic(messages, users, warmup + reps)
    names = ("a", "b") if ab or b_ledger or b_tables or a_tables or b_checkpoint_interval_s else ("a",)
    settings = {"a": {}, "b": ab}
    broker = KafkaBroker(work / "kafka", free_port(), free_port(), work / "kafka" / "kafka.log")
    broker.start()
    try:
        create_topics(broker.bootstrap)
        from pipelines.session import get_spark

        started = time.monotonic()
        spark = get_spark("bench-ledger-batch")
        spark.sparkContext.setLogLevel("ERROR")
        variants = {
            name: Variant(spark, name, broker.bootstrap, work / name, work / name / "warehouse", work / name / "ckpt")
            for name in names
        }
        if b_tables:
            set_table_properties(spark, variants["b"].warehouse, b_tables)
        if a_tables:
            set_table_properties(spark, variants["a"].warehouse, a_tables)
        if b_ledger:
            b = variants["b"]
            b.ledger = ledger_at(b_ledger).Ledger(spark, b.warehouse, b.bootstrap, b.ledger.word_lists, b.checkpoint)
        measured: dict[str, list[dict]] = {name: [] for name in names}
        replays: dict[str, list[int]] = {name: [] for name in names}
        loads_during = []
        checkpoints = CheckpointLog()
        scheduler = None
        if b_checkpoint_interval_s:
            # as pipelines/streams.py runs it, Delta checkpoints only, on b's tables, beside the batches of both
            scheduler = Scheduler(spark, variants["b"].warehouse, 0, 0, b_checkpoint_interval_s, log=checkpoints)
            scheduler.start()
        with contextlib.redirect_stdout(sys.stderr):  # the ledger's own log lines
            for i, records in enumerate(rounds):
                demo_data.send(records, broker.bootstrap)
                for name in names if i % 2 == 0 else reversed(names):  # interleaved, each first in turn
                    batch_started = time.monotonic()
                    with spark_settings(spark, settings[name]):
                        batch = variants[name].ledger_batch()
                    batch_ended = time.monotonic()
                    if batch["rows"] != len(records):
                        raise RuntimeError(f"{name}: the batch took {batch['rows']} records, not {len(records)}")
                    clock = variants[name].ledger.last_clock
                    run_ = {
                        "batch": round(batch["foreach_batch"], 3),
                        "checkpoint_logs": round(batch["checkpoint_logs"], 3),
                        "steps": {step: round(s, 3) for step, s in clock.seconds.items()},
                        "window": (batch_started, batch_ended),
                    }
                    print(f"ledger-batch: {name} round {i}: {run_}", flush=True)
                    if i >= warmup:
                        measured[name].append(run_)
                if i >= warmup:
                    for name in names:
                        replays[name].append(replayed(spark, variants[name].warehouse))
                loads_during.append(load_average()[0])
        if scheduler is not None:
            scheduler.stop()
        written = checkpoint_outcomes(checkpoints)
        for name in names:
            for run_ in measured[name]:
                start, end = run_.pop("window")
                run_["beside_checkpoint"] = checkpoints.written_during(start, end, [s for _, s in written])
        elapsed = time.monotonic() - started
        messages_rows = {name: variants[name].messages_rows() for name in names}
        spark.stop()
    finally:
        broker.stop()
    result = {
        "messages_per_batch": messages,
        "users": users,
        "warmup": warmup,
        "reps": reps,
        "table_records": messages * (warmup + reps),
        "messages_rows": messages_rows,
        "ab_settings": ab,
        "b_ledger": b_ledger,
        "b_table_properties": b_tables,
        "a_table_properties": a_tables,
        "b_checkpoint_interval_s": b_checkpoint_interval_s,
        "b_checkpoints": [{"line": line, "seconds": s} for line, s in written],
        "variants": {name: {**summary(measured[name]), "replayed_commits_max": max(replays[name])} for name in names},
        "load_before": load_before,
        "load_during": {"min": min(loads_during), "max": max(loads_during)},
        "load_after": load_average(),
        "seconds": round(elapsed, 1),
    }
    if len(names) == 2:
        a, b = (result["variants"][n]["batch"]["runs_s"] for n in names)
        result["ratio_b_a_p50"] = round(statistics.median(b) / statistics.median(a), 3)
        result["pair_ratios_b_a"] = [round(y / x, 3) for x, y in zip(a, b, strict=True) if x > 0]
    return result


def checkpoint_outcomes(checkpoints: CheckpointLog) -> list[tuple[str, float]]:
    """Each checkpoint the maintenance thread logged, with its seconds (from its log line)."""
    return [(text, float(text.rsplit(" in ", 1)[1].rstrip("s"))) for _, text in checkpoints.ended]


def table(result: dict) -> str:
    lines = [
        f"{'variant':8} {'batch p50':>10} {'p99':>7} {'min-max':>13} {'ckpt logs p50':>14} {'replayed':>8}  step medians"
    ]
    for name, v in result["variants"].items():
        b = v["batch"]
        steps = ", ".join(f"{k} {s:.2f}" for k, s in v["step_median_s"].items())
        lines.append(
            f"{name:8} {b['p50_s']:>10.2f} {b['p99_s']:>7.2f} {b['min_s']:>6.2f}-{b['max_s']:<6.2f} "
            f"{v['checkpoint_logs']['p50_s']:>14.2f} {v['replayed_commits_max']:>8}  {steps}"
        )
    if "ratio_b_a_p50" in result:
        what = [f"pipelines/ledger.py at {result['b_ledger']}"] if result["b_ledger"] else []
        what += [str(result["ab_settings"])] if result["ab_settings"] else []
        what += [f"table properties {result['b_table_properties']}"] if result["b_table_properties"] else []
        if result["b_checkpoint_interval_s"]:
            what += [f"the maintenance thread's Delta checkpoints every {result['b_checkpoint_interval_s']:g}s"]
        if result["a_table_properties"]:
            what += [f"a's table properties {result['a_table_properties']}"]
        lines.append(f"b = a with {' and '.join(what)}; p50 b/a {result['ratio_b_a_p50']}")
    if result["b_checkpoint_interval_s"]:
        beside = {n: sum(r["beside_checkpoint"] for r in v["runs"]) for n, v in result["variants"].items()}
        lines.append(
            f"b's maintenance thread wrote {len(result['b_checkpoints'])} checkpoints; batches beside one: {beside}"
        )
    lines.append(
        f"{result['messages_per_batch']:,} messages a batch, {result['reps']} measured after {result['warmup']} "
        f"warm-up; load before {result['load_before']}, during {result['load_during']}, after {result['load_after']}"
    )
    return "\n".join(lines)


def setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger_batch", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=at_least(10), default=1000, help="records per ledger batch")
    parser.add_argument("--users", type=at_least(2), default=200)
    parser.add_argument("--warmup", type=at_least(0), default=3, help="ledger batches before the measured ones")
    parser.add_argument("--reps", type=at_least(1), default=20, help="measured batches (of each variant)")
    parser.add_argument(
        "--ab", type=setting, action="append", default=[], metavar="KEY=VALUE", help="a Spark setting of variant b"
    )
    parser.add_argument("--b-ledger", metavar="COMMIT", help="variant b runs pipelines/ledger.py as at this commit")
    parser.add_argument(
        "--b-table-property",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a table property of variant b's tables",
    )
    parser.add_argument(
        "--a-table-property",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a table property of variant a's tables",
    )
    parser.add_argument(
        "--b-checkpoint-interval",
        type=float,
        default=0,
        metavar="SECONDS",
        help="the maintenance thread writes Delta checkpoints of b's tables this often (0: no thread)",
    )
    parser.add_argument("--work", type=Path, default=None, help="a fresh folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result there")
    args = parser.parse_args(argv)
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        parser.error(f"--work {args.work} is not empty: the bench starts from empty tables")
    with tempfile.TemporaryDirectory(prefix="bench-ledger-batch-") as tmp:
        result = run(
            args.messages,
            args.users,
            args.warmup,
            args.reps,
            args.work or Path(tmp),
            dict(args.ab),
            args.b_ledger,
            dict(args.b_table_property),
            dict(args.a_table_property),
            args.b_checkpoint_interval,
        )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
