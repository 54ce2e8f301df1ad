"""How fresh Delta `messages` is behind the chat: each message's POST (its 202) → readable in the table, at a
steady rate through the real API, with the ledger's batches that recorded it (issue 14, items 3 and 5).

    python -m bench.ledger [--api URL --data-dir DIR] [--quick] [--rate 50] [--seconds 120]

A few signed-in writers post at `rate` messages/s on one schedule (bench/e2e_latency.py's); a watcher
polls the table every `poll_s` with the `deltalake` package, as the API reads `user_moderation` (no
Spark), and reads only the Parquet files each new version adds (`message_id`, `batch_id`): an id is
readable from the first poll that finds it. The clock starts once a warm-up message is in Delta, then
`warmup_s` at full rate are not counted; the measured seconds are cut into windows whose p99s are given
with their spread. Every posted id must be found within `drain_s` of the last post: those that are not
are listed as `missing`, an error of the result. Each message's freshness is split at the start of the
ledger batch that recorded it (its `batch_id`; the batches' times from the ledger's checkpoint, as
bench/e2e_latency.py reads them): waiting for a batch, then the batch until the table shows it.

Without --api it starts a chat of its own (stack/harness.py, as `make bench` does) and removes it.
Prints one readable line, then the result as one JSON line. See README, "Delta freshness".
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.api_load import ApiClient, BenchError, error_key, latency_summary, sleep_until
from bench.e2e_latency import StackView, _await, _recorded_messages, _Schedule, checkpoint_batches
from bench.flood import Phase, windowed
from bench.steady import _warning, cpu_times, load_average, usage_between
from config import settings
from config.object_store import is_object
from warehouse import paths

FULL = {"rate": 50.0, "warmup_s": 20.0, "window_s": 30.0, "windows": 4, "writers": 3, "drain_s": 180.0}
QUICK = {"rate": 50.0, "warmup_s": 3.0, "window_s": 4.0, "windows": 3, "writers": 3, "drain_s": 120.0}
TARGET_P99_MS = 3000  # issue 14 item 3: readable in Delta within 3 s p99 at 50 messages/s
MISSING_SHOWN = 10


# ---------------------------------------------------------------------------------------------
# Watching the table


@dataclass
class DeltaWatcher:
    """Polls a Delta table every `poll_s` in a thread: message id → (epoch s of the first poll that read it, its
    batch_id). Files in the table when it starts are not read: only what later versions add."""

    table: Path
    poll_s: float = 0.15
    seen: dict[str, tuple[float, int]] = field(default_factory=dict)
    polls: int = 0
    versions: list[tuple[int, float]] = field(default_factory=list)  # (version, epoch s first seen)
    loads: list[float] = field(default_factory=list)  # 1-minute load average, every `load_every_s`
    load_every_s: float = 5.0
    failure: BaseException | None = None
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, timeout_s: float = 300.0) -> None:
        from deltalake import DeltaTable

        uri = str(self.table)
        if not _await(lambda: DeltaTable.is_deltatable(uri), timeout_s, step_s=0.5):
            raise BenchError(f"{self.table} is not a Delta table after {timeout_s:g}s: is the ledger running?")
        self._dt = DeltaTable(uri)
        self._version = self._dt.version()
        self._files = set(self._dt.file_uris())
        self._thread = threading.Thread(target=self._run, name="bench-delta-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pyarrow.parquet as pq

        next_load = 0.0
        try:
            while not self._halt.wait(self.poll_s):
                if time.monotonic() >= next_load:
                    self.loads.append(load_average()[0])
                    next_load = time.monotonic() + self.load_every_s
                self._dt.update_incremental()
                now = time.time()
                self.polls += 1
                version = self._dt.version()
                if version == self._version:
                    continue
                self._version = version
                self.versions.append((version, now))
                files = set(self._dt.file_uris())
                for uri in sorted(files - self._files):
                    rows = pq.read_table(uri, columns=["message_id", "batch_id"]).to_pydict()
                    for mid, batch in zip(rows["message_id"], rows["batch_id"]):
                        self.seen.setdefault(mid, (now, batch))
                self._files = files
        except BaseException as exc:  # noqa: BLE001 - reported by measure(), never left to the thread
            self.failure = exc

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(30)


# ---------------------------------------------------------------------------------------------
# The figures (pure: from what the run recorded)


def batches_of(ids: Sequence[str], seen: dict[str, tuple[float, int]], batches) -> dict[int, tuple[float, float]]:
    """The ledger batches that recorded `ids`: batch id → (start, end) epoch s, from `checkpoint_batches`' rows
    (a batch not yet committed in the checkpoint is left out)."""
    wanted = {seen[i][1] for i in ids if i in seen}
    return {b: (s, e) for b, s, e in batches if b in wanted and e is not None}


def summarize(
    posted: dict[str, float],
    seen: dict[str, tuple[float, int]],
    batches: Sequence[tuple[int, float, float | None]],
    phase: Phase,
) -> dict:
    """Every figure of a run from what it recorded: `posted` (message id → epoch s of its 202, the warm-up's
    too), `seen` (id → epoch s first readable in Delta, its batch_id), the ledger's batches (`checkpoint_batches`)
    and the measured `phase` (epoch s; a message counts in the window its 202 came in).

    `delta_freshness_ms` is over the measured messages; every posted id not seen is `missing` (with up to
    MISSING_SHOWN of them) and makes `error`: never left out silently."""
    measured = [i for i, t in posted.items() if phase.window_of(t) is not None]
    found = [i for i in measured if i in seen]
    fresh = {i: (seen[i][0] - posted[i]) * 1000 for i in found}
    per_window: list[list[float]] = [[] for _ in range(phase.windows)]
    for i, ms in fresh.items():
        per_window[phase.window_of(posted[i])].append(ms)
    missing = sorted((i for i in posted if i not in seen), key=posted.get)
    window_p99 = [latency_summary(w, quantiles=(99,))["p99"] for w in per_window]
    freshness = {
        **latency_summary(list(fresh.values())),
        "samples": len(found),
        "posted": len(measured),
        "missing": len(missing),
        "missing_ids": missing[:MISSING_SHOWN],
        "window_p99_ms": {**windowed([x for x in window_p99 if x is not None]), "unit": "ms"},
        "target_p99_ms": TARGET_P99_MS,
    }
    if missing:
        freshness["error"] = (
            f"{len(missing)} of {len(posted)} posted messages never became readable in Delta messages"
            f" (e.g. {', '.join(missing[:3])})"
        )
    else:
        freshness["met"] = freshness["p99"] is not None and freshness["p99"] <= TARGET_P99_MS
    spans = batches_of(found, seen, batches)
    durations = [e - s for s, e in spans.values()]
    wait = [(spans[seen[i][1]][0] - posted[i]) * 1000 for i in found if seen[i][1] in spans]
    after = [(seen[i][0] - spans[seen[i][1]][0]) * 1000 for i in found if seen[i][1] in spans]
    return {
        "delta_freshness_ms": freshness,
        "ledger_batch_seconds": {
            **latency_summary(durations, quantiles=(50, 99)),
            "batches": len(durations),
            "messages_per_batch": latency_summary(list(Counter(seen[i][1] for i in found).values()), quantiles=(50,)),
        },
        # where the freshness goes: waiting for the ledger's next batch, then that batch until the table shows it
        "split_ms": {
            "waiting_for_batch": latency_summary(wait),
            "batch_start_to_readable": latency_summary(after),
            "messages": len(wait),
        },
    }


# ---------------------------------------------------------------------------------------------
# The run


def measure(
    api_url: str,
    messages_table: Path,
    ledger_checkpoint: Path,
    *,
    rate: float = 50.0,
    warmup_s: float = 20.0,
    window_s: float = 30.0,
    windows: int = 4,
    writers: int = 3,
    drain_s: float = 180.0,
    poll_s: float = 0.15,
    ledger_timeout_s: float = 300.0,
    progress=lambda line: None,
) -> dict:
    """Post at `rate` for `warmup_s` + `windows` × `window_s`, watching `messages_table`; returns
    `{"ledger_load", "delta_freshness_ms", "ledger_batch_seconds"}` (see `summarize`)."""
    if rate <= 0 or window_s <= 0 or windows < 1 or warmup_s < 0 or writers < 1:
        raise ValueError("rate and window_s must be > 0, windows and writers >= 1, warmup_s >= 0")
    load_before = load_average()
    run = secrets.token_hex(3)
    authors = [f"bench-fresh-{run}-w{k}" for k in range(writers)]
    clients = [ApiClient(api_url) for _ in authors]
    watcher = DeltaWatcher(messages_table, poll_s)
    posted: dict[str, float] = {}  # id -> epoch s of its 202
    lags: list[float] = []
    errors: Counter[str] = Counter()
    failures: list[BaseException] = []
    try:
        for author, client in zip(authors, clients):
            client.sign_in(author)
        watcher.start()
        # one message into Delta before the clock starts: a fresh ledger's first batch compiles its code
        began = time.time()
        status, body = clients[0].post_json("/messages", {"data": "freshness warm-up"})
        if status != 202 or not body:
            raise BenchError(f"the warm-up POST answered {status}: {body}")
        posted[body["id"]] = time.time()
        if not _await(lambda: _recorded_messages(clients[0], authors[0]) >= 1, ledger_timeout_s, step_s=0.5):
            raise BenchError(f"the ledger did not record the warm-up message in {ledger_timeout_s:g}s")
        progress(f"warm-up message in Delta after {time.time() - began:.1f}s; posting at {rate:g}/s")

        cpu_start = cpu_times()  # the bench's process tree (with its stack, when it started one) against the rest
        wall_offset = time.time() - time.perf_counter()
        begin = time.perf_counter() + 0.05
        count = round(rate * (warmup_s + window_s * windows))
        schedule = _Schedule(begin, rate, count)
        phase = Phase(begin + warmup_s + wall_offset, window_s, windows)  # in epoch seconds

        def write(k: int) -> None:
            try:
                while (slot := schedule.take()) is not None:
                    i, due = slot
                    sleep_until(due)
                    lags.append(time.perf_counter() - due)
                    try:
                        status, body = clients[k].post_json("/messages", {"data": f"freshness probe {i}"})
                    except OSError as exc:
                        errors[error_key(exc)] += 1
                        continue
                    if status == 202 and body and "id" in body:
                        posted[body["id"]] = time.time()
                    else:
                        errors[str(status)] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below, never left to the thread
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(k,), daemon=True) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        posting_ended = time.time()
        machine = usage_between(cpu_start, cpu_times())
        if failures:
            raise BenchError(f"a writer failed: {failures[0]!r}") from failures[0]
        progress(f"{len(posted):,} accepted; waiting up to {drain_s:g}s for all of them in Delta")
        _await(lambda: watcher.failure is not None or all(i in watcher.seen for i in posted), drain_s, step_s=0.2)
        drained_s = time.time() - posting_ended
    finally:
        for c in clients:
            c.close()
        watcher.stop()
    if watcher.failure is not None:
        raise BenchError(f"reading Delta failed: {watcher.failure!r}") from watcher.failure
    seen = dict(watcher.seen)
    # the checkpoint marks a batch done just after its Delta commits: wait for the batches that recorded ours
    needed = {seen[i][1] for i in posted if i in seen}
    _await(lambda: needed <= {b for b, _, e in checkpoint_batches(ledger_checkpoint) if e is not None}, 60, 0.5)
    figures = summarize(posted, seen, checkpoint_batches(ledger_checkpoint), phase)
    interval = 1 / rate
    figures["ledger_load"] = {
        "rate": rate,
        "achieved_rate": round(figures["delta_freshness_ms"]["posted"] / (window_s * windows), 2),
        "warmup_s": warmup_s,
        "window_s": window_s,
        "windows": windows,
        "writers": writers,
        "authors": authors,
        "accepted": len(posted),
        "post_errors": dict(sorted(errors.items())),
        "late_sends": sum(1 for x in lags if x > interval),
        "send_lag_ms": latency_summary([x * 1000 for x in lags], quantiles=(50, 99)),
        "drain_s": round(drained_s, 1),
        "poll_s": poll_s,
        "polls": watcher.polls,
        "versions_seen": len(watcher.versions),
        "split_ms": figures.pop("split_ms"),
        "load_average": {
            "before": load_before,
            "during_max": max(watcher.loads, default=None),
            "during_mean": round(sum(watcher.loads) / len(watcher.loads), 2) if watcher.loads else None,
            "after": load_average(),
        },
        # cores used while posting: `ours` the bench's process tree, `foreign` everything else (other work)
        "machine": {**machine, "warning": _warning(machine)},
    }
    return figures


def bench_figures(ctx) -> dict:
    """bench/run.py's hook: the freshness on the bench's stack (a StackContext). A missing id is also returned
    under `errors`, which bench/run.py reports as this hook's failure (the figures are kept)."""
    sizes = QUICK if ctx.quick else FULL
    stack = ctx.stack
    result = measure(
        stack.api_url,
        stack.data_dir / "warehouse" / paths.MESSAGES,  # stack/harness.py's stacks keep their warehouse there
        StackView(stack.kafka_bootstrap, stack.data_dir).checkpoint("ledger"),
        **sizes,
        progress=lambda line: print(f"{time.strftime('%H:%M:%S')}  bench  ledger: {line}", flush=True),
    )
    print(f"{time.strftime('%H:%M:%S')}  bench  {format_result(result)}", flush=True)
    if "error" in result["delta_freshness_ms"]:
        result["errors"] = result["delta_freshness_ms"]["error"]
    return result


def format_result(r: dict) -> str:
    f, b, load = r["delta_freshness_ms"], r["ledger_batch_seconds"], r["ledger_load"]
    split = load["split_ms"]
    line = (
        f"delta_freshness: POST→readable in Delta ms p50 {f['p50']}  p99 {f['p99']}  max {f['max']} "
        f"({f['samples']:,} of {f['posted']:,} at {load['rate']:g}/s, window p99s {f['window_p99_ms']['windows']}); "
        f"waiting for a batch p50 {split['waiting_for_batch']['p50']} ms, batch start → readable p50 "
        f"{split['batch_start_to_readable']['p50']} ms; ledger batches p50 {b['p50']} s p99 {b['p99']} s "
        f"({b['batches']}); load average {load['load_average']['before'][0]} before, "
        f"{load['load_average']['during_max']} at most during"
    )
    if load["machine"]["warning"]:
        line += f"; BUSY MACHINE: {load['machine']['warning']}"
    if f["missing"]:
        line += f"; MISSING {f['missing']}: {', '.join(f['missing_ids'])}"
    if load["late_sends"]:
        line += f"; WRITERS FELL BEHIND: {load['late_sends']} sends late"
    if load["post_errors"]:
        line += f"; POST errors {load['post_errors']}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="a running chat's API (default: start one of its own); with --data-dir")
    parser.add_argument("--data-dir", type=Path, help="that chat's CHAT_DATA_DIR (its warehouse and checkpoints)")
    parser.add_argument("--quick", action="store_true", help="short windows: checks the bench works")
    parser.add_argument("--rate", type=float, help="messages per second")
    parser.add_argument("--warmup", type=float, help="seconds at full rate before the measured windows")
    parser.add_argument("--window", type=float, help="seconds per window")
    parser.add_argument("--windows", type=int, help="measured windows")
    args = parser.parse_args(argv)
    if (args.api is None) != (args.data_dir is None):
        parser.error("--api and --data-dir go together")
    sizes = dict(QUICK if args.quick else FULL)
    for key, value in (("rate", args.rate), ("warmup_s", args.warmup), ("window_s", args.window)):
        if value is not None:
            sizes[key] = value
    if args.windows is not None:
        sizes["windows"] = args.windows

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  ledger  {line}", file=sys.stderr, flush=True)

    stack = None
    if args.api is None:
        from stack.harness import UNLIMITED_POSTS, start_stack

        work = settings.load().data_dir / "bench" / f"ledger-{os.getpid()}"
        say(f"starting the whole chat of its own in {work}")
        stack = start_stack(work, env=UNLIMITED_POSTS)  # its writers post faster than a person, as make bench's
        api_url, data_dir = stack.api_url, stack.data_dir
        table = data_dir / "warehouse" / paths.MESSAGES
    else:
        api_url, data_dir = args.api, args.data_dir
        table = paths.table_path(paths.MESSAGES, paths.warehouse_dir(data_dir))
        if is_object(table):
            parser.error(f"the warehouse is on object storage ({table}): this bench reads a local one")
    try:
        result = measure(
            api_url,
            Path(table),
            StackView(settings.load().kafka_bootstrap, data_dir).checkpoint("ledger"),
            **sizes,
            progress=say,
        )
    finally:
        if stack is not None:
            from stack.harness import stop_stack

            stop_stack(stack)
            shutil.rmtree(stack.data_dir, ignore_errors=True)
    print(format_result(result))
    print(json.dumps({"bench": "ledger", **result}, ensure_ascii=False), flush=True)
    return 0 if not result["delta_freshness_ms"]["missing"] and not result["ledger_load"]["post_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
