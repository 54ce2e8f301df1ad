"""The ledger under the e2e load: how fresh Delta `messages` is for analysts, and what a ledger batch costs.

    python -m bench.ledger --api http://127.0.0.1:5000 --data-dir var [--rate 50] [--seconds 60]

`delta_freshness_ms`: from a `POST /messages` returning 202 to the message being readable in Delta
`messages`: the moment the commit that adds it is in the table's log (a reader that opens the table then
sees it). A watcher polls the log every 20 ms and reads the `message_id` of each file a new commit adds.

`ledger_batch_seconds`: the ledger's own time per micro-batch, from its log lines
(`ledger: batch N: … in 1.23s (…)`) written while the load ran.

`measure` does both over the same run: writers post at `rate` for `seconds` (after a warm-up message has
reached Delta, and `ramp_s` seconds at full rate that are not counted), then wait up to `drain_s` for the
last ones. Prints one readable line, then the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq

from bench.api_load import ApiClient, BenchError, error_key, latency_summary, sleep_until
from config import settings
from warehouse import paths

# `ledger: batch 12: 48 messages, 2 strikes, 0 unblocks, 1 rejected in 0.84s (…)`
BATCH_LINE = re.compile(r"ledger: batch (\d+): (\d+) messages, (\d+) strikes, .* in ([0-9.]+)s")


class DeltaWatch(threading.Thread):
    """Notes when each message id becomes readable in a Delta table: polls its log for new commits and reads
    the ids in the files they add (files a compaction rewrites, `dataChange: false`, are not new data)."""

    def __init__(self, table: Path, poll_s: float = 0.02):
        super().__init__(name="bench-delta-watch", daemon=True)
        self.table = Path(table)
        self.log = self.table / "_delta_log"
        self.poll_s = poll_s
        self.arrivals: dict[str, float] = {}  # message id -> perf_counter() when its commit was seen
        self.commits = 0
        self.failure: BaseException | None = None
        self._next = self._last_version() + 1
        self._halt = threading.Event()

    def _last_version(self) -> int:
        versions = [int(p.stem) for p in self.log.glob("*.json") if p.stem.isdigit()]
        return max(versions, default=-1)

    def _read_commit(self, commit: Path, seen_at: float) -> None:
        for line in commit.read_text().splitlines():
            add = json.loads(line).get("add")
            if not add or not add.get("dataChange", True):
                continue
            ids = pq.read_table(self.table / unquote(add["path"]), columns=["message_id"]).column(0).to_pylist()
            for message_id in ids:
                self.arrivals.setdefault(message_id, seen_at)
        self.commits += 1

    def run(self) -> None:
        try:
            while not self._halt.wait(self.poll_s):
                commit = self.log / f"{self._next:020d}.json"
                while commit.exists():  # a commit file appears whole (Delta writes it aside and renames it)
                    self._read_commit(commit, time.perf_counter())
                    self._next += 1
                    commit = self.log / f"{self._next:020d}.json"
        except BaseException as exc:  # noqa: BLE001 - reported by the caller, never left to the thread
            self.failure = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def log_position(log_file: Path) -> int:
    """Where the streams' log ends now: pass it as `since` to read only what is written after."""
    try:
        return Path(log_file).stat().st_size
    except OSError:
        return 0


def ledger_batch_seconds(log_file: Path, since: int = 0) -> dict:
    """The ledger's batches logged after byte `since` of `log_file`: `{"p50", "p99", "max"}` in seconds, with
    `batches`, `messages` ({p50, max} per batch) and `slowest` (the slowest 1 %: batch, seconds, messages)."""
    with open(log_file, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", errors="replace")
    batches = [
        (int(m.group(1)), float(m.group(4)), int(m.group(2)))
        for m in (BATCH_LINE.search(x) for x in text.splitlines())
        if m
    ]
    seconds = [s * 1000 for _, s, _ in batches]
    summary = latency_summary(seconds, quantiles=(50, 99))
    return {
        **{k: None if v is None else round(v / 1000, 3) for k, v in summary.items()},
        "batches": len(batches),
        "messages": {
            "p50": latency_summary([n for *_, n in batches], quantiles=(50,))["p50"],
            "max": max((n for *_, n in batches), default=None),
        },
        "slowest": [
            {"batch": b, "seconds": s, "messages": n}
            for b, s, n in sorted(batches, key=lambda x: -x[1])[: max(1, len(batches) // 100)]
        ],
    }


def delta_freshness_ms(
    api_url: str,
    warehouse: Path,
    rate: float = 50,
    seconds: float = 60,
    *,
    writers: int = 4,
    ramp_s: float = 5.0,
    drain_s: float = 30.0,
    warmup_timeout_s: float = 300.0,
) -> dict:
    """POST returned → readable in Delta `messages`, at a steady `rate` for `seconds`: `{"p50", "p90", "p99",
    "max"}` in ms, with `sent`, `recorded`, `missing` (not in Delta `drain_s` after the last post), `errors`,
    `late_sends`, `commits` (of `messages` during the run), `rate`, `seconds` and `warmup_s`."""
    if rate <= 0 or seconds <= 0 or writers < 1:
        raise ValueError("rate and seconds must be > 0, writers >= 1")
    prefix = f"bench-fresh-{secrets.token_hex(3)}-w"
    watch = DeltaWatch(paths.table_path(paths.MESSAGES, Path(warehouse)))
    clients = [ApiClient(api_url) for _ in range(writers)]
    posted: dict[str, float] = {}
    errors: dict[str, int] = {}
    lags: list[float] = []
    watch.start()
    try:
        for k, client in enumerate(clients):
            client.sign_in(f"{prefix}{k}")
        began = time.perf_counter()
        status, body = clients[0].post_json("/messages", {"author": f"{prefix}0", "data": "warm-up probe"})
        if status != 202:
            raise BenchError(f"the warm-up POST answered {status}: {body}")
        while body["id"] not in watch.arrivals:
            if watch.failure is not None or time.perf_counter() - began > warmup_timeout_s:
                raise BenchError(f"the warm-up message did not reach Delta in {warmup_timeout_s:g}s: {watch.failure}")
            time.sleep(0.05)
        warmup_s = time.perf_counter() - began

        ramp, count = round(rate * ramp_s), max(1, round(rate * seconds))
        start = time.perf_counter() + 0.05
        next_i = iter(range(ramp + count))
        lock = threading.Lock()

        def write(k: int) -> None:
            while True:
                with lock:
                    i = next(next_i, None)
                if i is None:
                    return
                due = start + i / rate
                sleep_until(due)
                lags.append(time.perf_counter() - due)
                try:
                    status, body = clients[k].post_json("/messages", {"author": f"{prefix}{k}", "data": f"fresh {i}"})
                except OSError as exc:
                    with lock:
                        errors[error_key(exc)] = errors.get(error_key(exc), 0) + 1
                    continue
                if status == 202 and body and "id" in body:
                    if i >= ramp:
                        posted[body["id"]] = time.perf_counter()
                else:
                    with lock:
                        errors[str(status)] = errors.get(str(status), 0) + 1

        threads = [threading.Thread(target=write, args=(k,), daemon=True) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        commits_before_drain = watch.commits
        deadline = time.perf_counter() + drain_s
        while not all(i in watch.arrivals for i in posted) and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        watch.stop()
        for client in clients:
            client.close()
    if watch.failure is not None:
        raise BenchError(f"the Delta watcher failed: {watch.failure!r}") from watch.failure
    latencies = [(watch.arrivals[i] - t) * 1000 for i, t in posted.items() if i in watch.arrivals]
    return {
        **latency_summary(latencies),
        "sent": len(posted),
        "recorded": len(latencies),
        "missing": len(posted) - len(latencies),
        "errors": errors,
        "late_sends": sum(1 for x in lags if x > 1 / rate),
        "commits": commits_before_drain,
        "rate": rate,
        "seconds": seconds,
        "warmup_s": round(warmup_s, 1),
    }


def measure(api_url: str, data_dir: Path, rate: float = 50, seconds: float = 60, **options) -> dict:
    """Both figures over one run at `rate`: `{"delta_freshness_ms": {…}, "ledger_batch_seconds": {…}}`.
    `data_dir` is the stack's data directory (its warehouse and its log/streams.log)."""
    log_file = Path(data_dir) / "log" / "streams.log"
    since = log_position(log_file)
    freshness = delta_freshness_ms(api_url, paths.warehouse_dir(Path(data_dir)), rate, seconds, **options)
    return {"delta_freshness_ms": freshness, "ledger_batch_seconds": ledger_batch_seconds(log_file, since)}


def format_result(r: dict) -> str:
    f, b = r["delta_freshness_ms"], r["ledger_batch_seconds"]
    return (
        f"delta_freshness: POST->Delta ms p50 {f['p50']}  p99 {f['p99']}  max {f['max']} ({f['recorded']} of "
        f"{f['sent']} recorded, {f['commits']} commits); ledger_batch_seconds: p50 {b['p50']}  p99 {b['p99']}  "
        f"max {b['max']} over {b['batches']} batches of {b['messages']['p50']} messages (p50)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    s = settings.load()
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=s.api_url, help="the API's URL (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=s.data_dir, help="the stack's data directory")
    parser.add_argument("--rate", type=float, default=50, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    result = measure(args.api, args.data_dir, rate=args.rate, seconds=args.seconds)
    print(format_result(result))
    print(json.dumps({"bench": "ledger", **result}, ensure_ascii=False), flush=True)
    return 0 if result["delta_freshness_ms"]["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
