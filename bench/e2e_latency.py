"""POST-to-GET latency through the running stack, at a steady rate: writers post, another user long-polls.

    python -m bench.e2e_latency --api http://127.0.0.1:5000 [--rate 200] [--seconds 300] [--data-dir var]

The latency of a message is the time from its `POST /messages` returning 202
to the message arriving in the answer to ANOTHER user's long-poll
`GET /messages?user=…&after=<cursor>&wait=…`: API → Kafka `chat` → Spark relay
(masking) → `chat_controlled` → the API's feed → the reader.

The posts follow a fixed schedule (message i is due at start + i/rate), shared
by a few writer threads, each with its own keep-alive connection and author, so
one slow answer does not delay the next message; a send that starts more than
one interval after it was due is counted in `late_sends` (the load generator
fell behind), and `achieved_rate` says what was really sent. One warm-up
message goes through first (Spark compiles the query's code for the first
record), the clock waits until the ledger has recorded it, and the first
`--ramp` seconds at full rate are not counted either (see `measure`). Every accepted id is matched with the reader's
arrivals; those not seen `drain_s` seconds after the last post are reported
as `missing` (with a few of their ids), never waited for forever. With the
stack's data directory, the slowest 1% are explained: each message's trip split
at its Kafka records' timestamps, set against the relay's and the ledger's
batches read from their checkpoints (`explain_slowest`).

Prints one readable line, then the result as one JSON line (latencies in ms).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from bench.api_load import ApiClient, BenchError, error_key, latency_summary, quote_author, sleep_until
from config import contract, settings


class _Reader(threading.Thread):
    """Long-polls GET /messages as `user`, noting when each message of the bench's writers arrives."""

    def __init__(self, api_url: str, user: str, author_prefix: str, wait_s: float):
        super().__init__(name="bench-e2e-reader", daemon=True)
        self.client = ApiClient(api_url, timeout_s=wait_s + 10)
        self.user = user
        self.author_prefix = author_prefix
        self.wait_s = wait_s
        self.arrivals: dict[str, float] = {}  # message id -> perf_counter() when its GET answer came
        self.errors: Counter[str] = Counter()
        self.failure: BaseException | None = None
        self._halt = threading.Event()
        self.client.sign_in(user)
        status, body = self.client.get_json("/messages", user=user, limit=1)
        if status != 200 or not body:
            self.client.close()
            raise BenchError(f"GET /messages as {user} answered {status}: {body}")
        self.cursor = body["cursor"]

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                try:
                    status, body = self.client.get_json(
                        "/messages", user=self.user, after=self.cursor, wait=self.wait_s, limit=500
                    )
                except OSError as exc:
                    self.errors[error_key(exc)] += 1
                    self._halt.wait(0.1)
                    continue
                now = time.perf_counter()
                if status != 200 or not body:
                    self.errors[str(status)] += 1
                    self._halt.wait(0.5)
                    continue
                for m in body["messages"]:
                    self.note(m, now)
                self.cursor = body["cursor"]
        except BaseException as exc:  # noqa: BLE001 - reported by measure(), never left to the thread
            self.failure = exc
        finally:
            self.client.close()

    def note(self, message: dict, now: float) -> None:
        """One message of a GET answer received at `now` (perf_counter()); bench/flood.py notes more."""
        if message["author"].startswith(self.author_prefix):
            self.arrivals.setdefault(message["id"], now)

    def stop(self) -> None:
        self._halt.set()
        self.join(self.wait_s + 15)


class _Schedule:
    """Message i is due at `start + i / rate`; writers take the next due message in turn."""

    def __init__(self, start: float, rate: float, count: int):
        self.start, self.rate, self.count = start, rate, count
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, float] | None:
        with self._lock:
            if self._next >= self.count:
                return None
            i = self._next
            self._next += 1
        return i, self.start + i / self.rate


@dataclass(frozen=True)
class StackView:
    """Where to look inside the running stack for `explain_slowest`: its Kafka and its data directory."""

    kafka_bootstrap: str
    data_dir: Path

    def checkpoint(self, query: str) -> Path:
        """The checkpoint of one of the streams' queries (pipelines/streams.py: `relay`, `ledger`)."""
        return dataclasses.replace(settings.load(), data_dir=self.data_dir).checkpoint_dir / query


def record_times(bootstrap: str, topic: str, ids: set[str], timeout_s: float = 120.0) -> dict[str, float]:
    """Message id → the Kafka timestamp (epoch s; CreateTime: when its producer took it) of the first record of
    `topic` with that `message_id` header, for the ids in `ids`; the whole topic is read once."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: dict[str, float] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000, max_records=5000).values():
                for r in batch:
                    raw = dict(r.headers).get(contract.MESSAGE_ID_HEADER)
                    mid = raw.decode("utf-8", "replace") if raw is not None else None
                    if mid in ids and mid not in found:
                        found[mid] = r.timestamp / 1000
        return found
    finally:
        consumer.close()


def checkpoint_batches(checkpoint: Path) -> list[tuple[int, float, float | None]]:
    """(batch id, offsets time, commit time) of a streaming query's batches from its checkpoint (epoch s, from
    the files' times; commit None for a batch not done). A micro-batch's `offsets/<id>` is written when it is
    planned, so the pair spans the batch; a real-time batch's offsets are known only when it ends, so both
    files come together at its end."""

    def times(folder: str) -> dict[int, float]:
        directory = checkpoint / folder
        if not directory.is_dir():
            return {}
        return {int(p.name): p.stat().st_mtime for p in directory.iterdir() if p.name.isdigit()}

    started, ended = times("offsets"), times("commits")
    return [(b, started[b], ended.get(b)) for b in sorted(started)]


# a change of real-time batch holds the records that arrive around it for a second or two
BOUNDARY_MARGIN_S = 2.0


def explain_slowest(view: StackView, sent: dict[str, float], arrived: dict[str, float], counted_from: float) -> dict:
    """Where the slowest 1% of the messages lost their time, against all the messages.

    `sent` and `arrived` are epoch seconds of each message's 202 and of its arrival at the reader. Each
    message's trip is split with the Kafka timestamps of its records: `relay_ms` (its `chat` record taken
    by the API's producer → its `chat_controlled` record taken by the relay's producer: the relay's fetch
    and work) and `delivery_ms` (that → the reader has it: the sink's send, the API's feed, the long-poll);
    `api_ack_ms` is the API's producer taking the record → the 202 at the writer (the acknowledgement wait,
    which overlaps the relay's stage). Each slow message gets one cause: `relay batch boundary` when its
    `chat` record came within BOUNDARY_MARGIN_S of the end of one of the relay's batches (Spark holds the
    records that arrive while it commits one batch and starts the next), else the stage that took longer (`relay` or
    `delivery`); `during_ledger_batch` counts those whose trip overlapped a ledger batch, to be read against
    `ledger_busy_share` (the share of the run during which a ledger batch was running)."""
    ids = set(sent)
    return explain_trips(
        sent,
        arrived,
        record_times(view.kafka_bootstrap, contract.TOPIC_CHAT, ids),
        record_times(view.kafka_bootstrap, contract.TOPIC_CONTROLLED, ids),
        checkpoint_batches(view.checkpoint("relay")),
        checkpoint_batches(view.checkpoint("ledger")),
        counted_from,
    )


def explain_trips(
    sent: dict[str, float],
    arrived: dict[str, float],
    chat: dict[str, float],
    controlled: dict[str, float],
    relay_batches: list[tuple[int, float, float | None]],
    ledger_batches: list[tuple[int, float, float | None]],
    counted_from: float,
) -> dict:
    """`explain_slowest` on what it read: message id → epoch s of the 202 (`sent`), of the arrival, of the
    `chat` and `chat_controlled` records; the relay's and the ledger's batches (`checkpoint_batches`)."""
    ledger_batches = [(b, s, e) for b, s, e in ledger_batches if e is not None]
    end_of_run = max(arrived.values(), default=counted_from)
    boundaries = [(end - BOUNDARY_MARGIN_S, end + BOUNDARY_MARGIN_S) for _, _, end in relay_batches if end is not None]
    in_run = [(s, e) for _, s, e in ledger_batches if e >= counted_from and s <= end_of_run]
    busy = sum(min(e, end_of_run) - max(s, counted_from) for s, e in in_run)

    def overlaps(a: float, b: float, spans) -> bool:
        return any(s <= b and a <= e for s, e in spans)

    trips = {}
    for mid, t in sent.items():
        c, k = chat.get(mid), controlled.get(mid)
        trip = {"ms": (arrived[mid] - t) * 1000, "sent_at_s": round(t - counted_from, 2)}
        if c is not None and k is not None:
            trip.update(
                relay_ms=(k - c) * 1000,
                delivery_ms=(arrived[mid] - k) * 1000,
                api_ack_ms=(t - c) * 1000,
                boundary=overlaps(c, c, boundaries),
                ledger=overlaps(c, arrived[mid], in_run),
            )
        trips[mid] = trip
    ranked = sorted(trips.values(), key=lambda x: -x["ms"])
    slowest = ranked[: max(1, len(ranked) // 100)]

    def cause(trip: dict) -> str:
        if "relay_ms" not in trip:
            return "unknown (a record not found in Kafka)"
        if trip["boundary"]:
            return "relay batch boundary"
        return "relay" if trip["relay_ms"] >= trip["delivery_ms"] else "delivery"

    def stages(group: list[dict]) -> dict:
        known = [t for t in group if "relay_ms" in t]
        return {
            name: latency_summary([t[name] for t in known], quantiles=(50, 99))
            for name in ("relay_ms", "delivery_ms", "api_ack_ms")
        }

    in_ledger = [t["ms"] for t in trips.values() if t.get("ledger")]
    outside = [t["ms"] for t in trips.values() if "ledger" in t and not t["ledger"]]
    return {
        "count": len(slowest),
        "causes": dict(Counter(cause(t) for t in slowest).most_common()),
        "during_ledger_batch": sum(1 for t in slowest if t.get("ledger")),
        "ledger_busy_share": round(busy / max(1e-9, end_of_run - counted_from), 3),
        "ledger_batches": len(in_run),
        "ledger_batch_seconds": latency_summary([e - s for s, e in in_run], quantiles=(50, 99)),
        "latency_in_ledger_batches_ms": latency_summary(in_ledger, quantiles=(50, 99)),
        "latency_outside_ledger_batches_ms": latency_summary(outside, quantiles=(50, 99)),
        "relay_boundaries_at_s": [round(a + BOUNDARY_MARGIN_S - counted_from, 1) for a, _ in boundaries],
        "stages_of_slowest": stages(slowest),
        "stages_of_all": stages(list(trips.values())),
        "not_found_in_kafka": sum(1 for t in trips.values() if "relay_ms" not in t),
        "messages": [
            {k: round(v, 1) if isinstance(v, float) else v for k, v in t.items()} | {"cause": cause(t)}
            for t in slowest[:50]
        ],
    }


def format_explanation(e: dict) -> str:
    causes = ", ".join(f"{n} {what}" for what, n in e["causes"].items())
    return (
        f"slowest 1% ({e['count']}): {causes}; {e['during_ledger_batch']} during a ledger batch "
        f"(a ledger batch ran {e['ledger_busy_share']:.0%} of the time, {e['ledger_batches']} batches, "
        f"p50 {e['ledger_batch_seconds']['p50'] or '–'} s); p99 {e['latency_in_ledger_batches_ms']['p99']} ms during "
        f"ledger batches vs {e['latency_outside_ledger_batches_ms']['p99']} ms outside; relay stage p50 "
        f"{e['stages_of_slowest']['relay_ms']['p50']} ms, delivery p50 {e['stages_of_slowest']['delivery_ms']['p50']} ms "
        f"(all messages: {e['stages_of_all']['relay_ms']['p50']} / {e['stages_of_all']['delivery_ms']['p50']} ms)"
    )


def _recorded_messages(client: ApiClient, author: str) -> int:
    """How many of the author's messages the ledger has recorded in Delta (0 while it has none)."""
    status, body = client.get_json(f"/users/{quote_author(author)}")
    return body.get("messages", 0) if status == 200 and body else 0


def _await(predicate, timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)
    return True


def measure(
    api_url: str,
    rate: float = 200,
    seconds: float = 300,
    *,
    writers: int = 4,
    drain_s: float = 15.0,
    wait_s: float = 2.0,
    warmup_timeout_s: float = 60.0,
    ledger_timeout_s: float = 300.0,
    ramp_s: float = 5.0,
    explain: StackView | None = None,
) -> dict:
    """POST-returned → another reader's GET latency at a steady `rate` (messages/s) for `seconds`.

    Returns `{"p50", "p90", "p99", "max", "sent", "received", "missing", "rate", "seconds"}`
    (latencies in ms; `rate` is the target) and `min` (below 0 when the reader had the message before
    the writer had its 202), `scheduled`, `achieved_rate`, `late_sends`, `send_lag_ms` ({p50, p99,
    max} of how late sends started), `errors` (non-202 answers, by status), `missing_ids` (up to 10),
    `unexpected` (messages of the bench's authors that no 202 announced), `reader_errors`, `writers`,
    `warmup_ms`, `ledger_warmup_s`, `slowest` (the slowest 1%: when each was sent, in s from the
    start, and its latency), `ramp_s` and `with_ramp` (the latencies of the ramp and the run together).

    The clock starts in a steady state: once the warm-up message has reached the reader AND the
    ledger has recorded it in Delta (`GET /users/<author>` counts it). A freshly started ledger's
    first micro-batch compiles its code and takes a minute or more on 2 cores; measured during it,
    the relay shares the cores with that start-up, not with the ledger's usual work. Then the
    writers post at `rate` for `ramp_s` seconds before the `seconds` that count: the first seconds
    at full rate compile the relay's and the API's hot code (half of the slowest 1% of a 240 s run
    came in its first 5 s). `with_ramp` gives the figures with those messages counted too.

    With `explain` (where the stack's Kafka and checkpoints are), `slowest_explained` says where the
    slowest 1% lost their time (`explain_slowest`).
    """
    if rate <= 0 or seconds <= 0 or writers < 1:
        raise ValueError("rate and seconds must be > 0, writers >= 1")
    run = secrets.token_hex(3)
    prefix = f"bench-e2e-{run}-w"
    wall_offset = time.time() - time.perf_counter()  # perf_counter() + wall_offset = epoch seconds
    reader = _Reader(api_url, f"bench-e2e-{run}-reader", prefix, wait_s)
    clients = [ApiClient(api_url) for _ in range(writers)]
    try:
        reader.start()
        clients[0].sign_in(f"{prefix}0")
        # warm-up: one message all the way round, not counted
        began = time.perf_counter()
        status, body = clients[0].post_json("/messages", {"author": f"{prefix}0", "data": "warm-up probe"})
        if status != 202:
            raise BenchError(f"the warm-up POST answered {status}: {body}")
        probe = body["id"]
        if not _await(lambda: probe in reader.arrivals, warmup_timeout_s):
            raise BenchError(
                f"the warm-up message did not reach the reader in {warmup_timeout_s:g}s: are the streams running?"
            )
        warmup_ms = (reader.arrivals[probe] - began) * 1000
        if not _await(lambda: _recorded_messages(clients[0], f"{prefix}0") >= 1, ledger_timeout_s, step_s=0.5):
            raise BenchError(
                f"the ledger did not record the warm-up message in {ledger_timeout_s:g}s: are the streams running?"
            )
        ledger_warmup_s = time.perf_counter() - began

        count = max(1, round(rate * seconds))
        ramp = max(0, round(rate * ramp_s))
        for k, c in enumerate(clients[1:], start=1):
            c.sign_in(f"{prefix}{k}")
        schedule = _Schedule(time.perf_counter() + 0.05, rate, ramp + count)
        posted: dict[str, float] = {}  # id -> perf_counter() when its 202 came back
        ramped: dict[str, float] = {}  # the same, for the ramp's messages
        lags: list[float] = []
        errors: Counter[str] = Counter()
        failures: list[BaseException] = []
        last_done = [schedule.start]

        def write(k: int) -> None:
            author = f"{prefix}{k}"
            try:
                while (slot := schedule.take()) is not None:
                    i, due = slot
                    sleep_until(due)
                    started = time.perf_counter()
                    lags.append(started - due)
                    try:
                        status, body = clients[k].post_json(
                            "/messages", {"author": author, "data": f"latency probe {i}"}
                        )
                    except OSError as exc:
                        errors[error_key(exc)] += 1
                        continue
                    done = time.perf_counter()
                    last_done[0] = max(last_done[0], done)
                    if status == 202 and body and "id" in body:
                        (ramped if i < ramp else posted)[body["id"]] = done
                    else:
                        errors[str(status)] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below, never left to the thread
                failures.append(exc)

        threads = [
            threading.Thread(target=write, args=(k,), name=f"bench-e2e-writer-{k}", daemon=True) for k in range(writers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise BenchError(f"a writer failed: {failures[0]!r}") from failures[0]
        _await(lambda: all(i in reader.arrivals for i in itertools.chain(ramped, posted)), drain_s, step_s=0.05)
    finally:
        for c in clients:
            c.close()
        if reader.is_alive():
            reader.stop()
        else:
            reader.client.close()
    if reader.failure is not None:
        raise BenchError(f"the reader failed: {reader.failure!r}") from reader.failure

    arrivals = dict(reader.arrivals)
    latencies = [(arrivals[i] - t) * 1000 for i, t in posted.items() if i in arrivals]
    counted_from = schedule.start + ramp / rate
    # the slowest 1%, with when they were sent: do they come together (one pause) or spread out?
    slowest = sorted(
        ((round(t - counted_from, 2), round((arrivals[i] - t) * 1000, 1)) for i, t in posted.items() if i in arrivals),
        key=lambda x: -x[1],
    )[: max(1, len(posted) // 100)]
    missing = [i for i in itertools.chain(ramped, posted) if i not in arrivals]
    with_ramp = latencies + [(arrivals[i] - t) * 1000 for i, t in ramped.items() if i in arrivals]
    interval = 1 / rate
    lag_ms = [x * 1000 for x in lags]
    result = {
        **latency_summary(latencies),
        "sent": len(posted),
        "received": len(latencies),
        "missing": len(missing),
        "rate": rate,
        "seconds": seconds,
        "min": round(min(latencies), 1) if latencies else None,
        "scheduled": count,
        "achieved_rate": round(len(posted) / max(seconds, last_done[0] - counted_from), 2),
        "late_sends": sum(1 for x in lags if x > interval),
        "send_lag_ms": latency_summary(lag_ms, quantiles=(50, 99)),
        "errors": dict(sorted(errors.items())),
        "missing_ids": missing[:10],
        "unexpected": len(set(arrivals) - set(posted) - set(ramped) - {probe}),
        "reader_errors": dict(sorted(reader.errors.items())),
        "writers": writers,
        "warmup_ms": round(warmup_ms, 1),
        "ledger_warmup_s": round(ledger_warmup_s, 1),
        "slowest": [{"sent_at_s": at, "ms": ms} for at, ms in sorted(slowest)],
        "ramp_s": ramp_s,
        "with_ramp": {**latency_summary(with_ramp), "sent": len(posted) + len(ramped)},
    }
    if explain is not None:
        result["slowest_explained"] = explain_slowest(
            explain,
            {i: t + wall_offset for i, t in posted.items() if i in arrivals},
            {i: arrivals[i] + wall_offset for i in posted if i in arrivals},
            counted_from + wall_offset,
        )
    return result


def format_result(r: dict) -> str:
    line = (
        f"e2e_latency: POST->GET ms p50 {r['p50']}  p90 {r['p90']}  p99 {r['p99']}  max {r['max']}  "
        f"({r['sent']} sent at {r['achieved_rate']}/s of {r['rate']:g}/s target over {r['seconds']:g}s, "
        f"{r['received']} received, {r['missing']} missing)"
    )
    if r["late_sends"]:
        line += f"; WRITER FELL BEHIND: {r['late_sends']} sends late, up to {r['send_lag_ms']['max']} ms"
    if r["errors"]:
        line += f"; POST errors {r['errors']}"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=settings.load().api_url, help="the API's URL (default %(default)s)")
    parser.add_argument("--rate", type=float, default=200, help="messages per second")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--writers", type=int, default=4, help="writer threads sharing the schedule")
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait for the last messages")
    parser.add_argument(
        "--ramp", type=float, default=5, help="seconds at full rate before the ones that count (default %(default)s)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="the stack's CHAT_DATA_DIR: explain the slowest 1%% with its checkpoints and Kafka (--bootstrap)",
    )
    parser.add_argument("--bootstrap", default=settings.load().kafka_bootstrap, help="the stack's Kafka")
    args = parser.parse_args(argv)
    result = measure(
        args.api,
        rate=args.rate,
        seconds=args.seconds,
        writers=args.writers,
        drain_s=args.drain,
        ramp_s=args.ramp,
        explain=StackView(args.bootstrap, args.data_dir) if args.data_dir else None,
    )
    print(format_result(result))
    if "slowest_explained" in result:
        print(format_explanation(result["slowest_explained"]))
    print(json.dumps({"bench": "e2e_latency", **result}, ensure_ascii=False), flush=True)
    return 0 if result["missing"] == 0 and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
