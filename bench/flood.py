"""One client floods the chat while 20 users chat at a normal pace: what do the others still get?

    python -m bench.flood [--api URL] [--quick] [--users 20] [--window 30] [--windows 3] [--connections 16]

Two phases back to back, on the same stack with the same users and the same reader: `calm` (the users
alone) then `flood` (the users, and one signed-in user flooding). The users each post one everyday
line every 2–4 s (a random interval) on their own keep-alive connection; one more user follows the
feed with long-polls (bench/e2e_latency.py's reader). The flooder is `wrk` (Debian's package): one
session's token on `--connections` keep-alive connections, one advertisement as fast as the answers come;
it counts every answer by status and second, and honours nothing (a 429's Retry-After included): it is
abusive, and the same bench runs with and without a rate limit in the API.

A normal message's latency is from its POST being sent to the reader having it (`send_to_seen_ms`:
what a chatter waits, the API's answer included); `after_202_ms` is bench/e2e_latency.py's measure
(from the 202). Each phase has a warm-up and then `windows` windows of `window` seconds: the figures
are over the windows together, each window's p99 and the flooder's rates per window are given with
their spread (bench/steady.py). The feed share is the flooder's part of the messages the reader got
during the flood's windows. Afterwards the bench waits for the flood's backlog to reach the reader
(`backlog_s`) and checks the counts: every normal message seen exactly once.

Without --api it starts the whole chat of its own (stack/harness.py) under var/bench/ and removes it.
Prints a short table, then the result as one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.api_load import CLEAN_TEXTS, ApiClient, BenchError, error_key, latency_summary, sleep_until
from bench.e2e_latency import _await, _Reader, _recorded_messages
from bench.steady import SPREAD_LIMIT, load_average, spread
from config import settings

# what the flooder sends: clean words, so the moderation never strikes (and blocks) it, each copy numbered
# (" #<thread>.<n>") as a spammer dodging the repeated-message rule would: the bench measures the rate limit
FLOOD_TEXT = "Great deals on phone cases today only, visit my shop and tell your friends!"
TARGET_RATIO = 1.5  # the flood's normal p99 over the calm one
TARGET_P99_MS = 100

FULL = {"users": 20, "warmup_s": 5, "window_s": 30, "windows": 3, "connections": 16, "drain_s": 120}
QUICK = {"users": 20, "warmup_s": 2, "window_s": 5, "windows": 3, "connections": 8, "drain_s": 60}

# wrk's Lua: every answer counted by wall-clock second and status, every thread's counts summed at the end
WRK_SCRIPT = """-- bench/flood.py's flooder: POST /messages with one session's token, as fast as the answers come
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local head = '%(head)s'
local threads = {}
function setup(thread) table.insert(threads, thread); thread:set("id", #threads) end
function init(args) counts = {}; sent = 0 end
function request()
  sent = sent + 1
  return wrk.format(nil, nil, nil, head .. " #" .. id .. "." .. sent .. '"}')
end
function response(status, headers, body)
  local key = os.time() .. ":" .. status
  counts[key] = (counts[key] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%%s": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format('FLOOD {"counts": {%%s}, "requests": %%d, "errors": {"connect": %%d, "read": %%d, ' ..
    '"write": %%d, "timeout": %%d}}\\n', table.concat(parts, ", "), summary.requests, e.connect, e.read,
    e.write, e.timeout))
end
"""


def wrk_script(token: str, text: str = FLOOD_TEXT) -> str:
    """The flooder's Lua script for one session's token."""
    if not re.fullmatch(r"[\w.~-]+", token):
        raise BenchError(f"unexpected characters in a session token: {token!r}")
    body = json.dumps({"data": text}, ensure_ascii=True)
    if "'" in body or "\\" in body:
        raise BenchError(f"the flood text cannot go in a Lua string as is: {text!r}")
    return WRK_SCRIPT % {"head": body.removesuffix('"}'), "token": token}


def parse_wrk_output(stdout: str) -> dict:
    """The `FLOOD {...}` line of the script's `done`: `{"counts": {second: {status: n}}, "requests", "errors"}`."""
    line = next((x for x in stdout.splitlines() if x.startswith("FLOOD ")), None)
    if line is None:
        raise BenchError(f"wrk printed no counts:\n{stdout[-2000:]}")
    raw = json.loads(line[len("FLOOD ") :])
    counts: dict[int, dict[int, int]] = {}
    for key, n in raw["counts"].items():
        second, status = key.split(":")
        counts.setdefault(int(second), {})[int(status)] = n
    return {"counts": counts, "requests": raw["requests"], "errors": raw["errors"]}


class Flooder:
    """`wrk` flooding POST /messages as one session for `seconds` (whole seconds), in a process of its own."""

    def __init__(self, api_url: str, token: str, seconds: int, connections: int = 16, threads: int = 2):
        if shutil.which("wrk") is None:
            raise BenchError("wrk is not installed (apt-get install wrk)")
        if seconds < 1 or connections < 1 or threads < 1:
            raise ValueError("seconds, connections and threads must be >= 1")
        self.seconds = seconds
        self.connections = connections
        with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-flood-", delete=False) as script:
            script.write(wrk_script(token))
        self._script = Path(script.name)
        argv = ["wrk", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds}s"]
        argv += ["--timeout", "10s", "-s", str(self._script), f"{api_url.rstrip('/')}/messages"]
        self.started = time.perf_counter()
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> dict:
        try:
            out, err = self.process.communicate(timeout=self.seconds + 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        finally:
            self._script.unlink(missing_ok=True)
        if self.process.returncode != 0:
            raise BenchError(f"wrk failed ({self.process.returncode}): {err[-2000:]}{out[-2000:]}")
        return parse_wrk_output(out)


# ---------------------------------------------------------------------------------------------
# The normal users and the reader


@dataclass
class Post:
    """One normal message: when its POST was sent and answered (perf_counter()), its status and id."""

    author: str
    sent: float
    answered: float | None
    status: int | str
    id: str | None = None


class FeedReader(_Reader):
    """bench/e2e_latency.py's reader, noting every message of the feed (author, id, arrival), repeats too."""

    def __init__(self, api_url: str, user: str, wait_s: float = 2.0):
        super().__init__(api_url, user, "", wait_s)
        self.feed: list[tuple[float, str, str]] = []  # (arrival, author, id) in order
        self.by_author: Counter[str] = Counter()

    def note(self, message: dict, now: float) -> None:
        super().note(message, now)
        self.feed.append((now, message["author"], message["id"]))
        self.by_author[message["author"]] += 1


@dataclass
class _Chatters:
    """`users` signed-in users, each posting one everyday line every 2–4 s on its own keep-alive connection."""

    api_url: str
    authors: list[str]
    seed: int = 1
    interval_s: tuple[float, float] = (2.0, 4.0)
    posts: list[Post] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    clients: list[ApiClient] = field(default_factory=list)

    def sign_in(self) -> None:
        for author in self.authors:
            client = ApiClient(self.api_url)
            client.sign_in(author)
            self.clients.append(client)

    def start(self) -> None:
        low, high = self.interval_s
        for k, (author, client) in enumerate(zip(self.authors, self.clients)):
            pace = random.Random(self.seed * 1000 + k)
            first = time.perf_counter() + pace.uniform(0, high)  # spread out: not all at once
            thread = threading.Thread(
                target=self._chat, args=(author, client, pace, first, low, high), name=f"bench-flood-user-{k}"
            )
            thread.daemon = True
            self._threads.append(thread)
            thread.start()

    def _chat(self, author: str, client: ApiClient, pace: random.Random, due: float, low: float, high: float):
        n = pace.randrange(len(CLEAN_TEXTS))
        try:
            while not self._halt.is_set():
                sleep_until(due)
                if self._halt.is_set():
                    break
                text = CLEAN_TEXTS[n % len(CLEAN_TEXTS)]
                n += 1
                sent = time.perf_counter()
                try:
                    status, body = client.post_json("/messages", {"data": text})
                except OSError as exc:
                    self.posts.append(Post(author, sent, None, error_key(exc)))
                else:
                    mid = body.get("id") if status == 202 and body else None
                    self.posts.append(Post(author, sent, time.perf_counter(), status, mid))
                due = max(due + pace.uniform(low, high), time.perf_counter())
        except BaseException as exc:  # noqa: BLE001 - reported by measure(), never left to the thread
            self.failures.append(exc)

    def stop(self) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(30)
        for client in self.clients:
            client.close()


# ---------------------------------------------------------------------------------------------
# The figures (pure: from what the run recorded)


@dataclass(frozen=True)
class Phase:
    """A phase's measured windows: `windows` windows of `window_s` from `start` (perf_counter() seconds)."""

    start: float
    window_s: float
    windows: int

    @property
    def end(self) -> float:
        return self.start + self.window_s * self.windows

    def window_of(self, t: float) -> int | None:
        if not self.start <= t < self.end:
            return None
        return min(self.windows - 1, int((t - self.start) // self.window_s))


def windowed(values: Sequence[float]) -> dict:
    """Per-window values with their spread; `unstable` past bench/steady.py's SPREAD_LIMIT (never when all are 0)."""
    s = spread(values)
    if s is None and values and all(v == 0 for v in values):
        s = 0.0
    return {
        "value": round(sorted(values)[len(values) // 2], 1) if values else None,
        "windows": [round(v, 1) for v in values],
        "spread": s,
        "unstable": s is None or s > SPREAD_LIMIT,
    }


def normal_figures(posts: Sequence[Post], arrivals: dict[str, float], phase: Phase) -> dict:
    """The normal users' messages sent in `phase`'s windows: latencies (ms) and each window's p99."""
    mine = [p for p in posts if phase.window_of(p.sent) is not None]
    accepted = [p for p in mine if p.status == 202 and p.id]
    seen = [p for p in accepted if p.id in arrivals]
    to_seen = [(arrivals[p.id] - p.sent) * 1000 for p in seen]
    per_window: list[list[float]] = [[] for _ in range(phase.windows)]
    for p, ms in zip(seen, to_seen):
        per_window[phase.window_of(p.sent)].append(ms)
    window_p99 = [latency_summary(w, quantiles=(99,))["p99"] for w in per_window]
    return {
        "send_to_seen_ms": latency_summary(to_seen),
        "after_202_ms": latency_summary([(arrivals[p.id] - p.answered) * 1000 for p in seen]),
        "post_ms": latency_summary([(p.answered - p.sent) * 1000 for p in mine if p.answered is not None]),
        "sent": len(mine),
        "accepted": len(accepted),
        "seen": len(seen),
        "errors": dict(sorted(Counter(str(p.status) for p in mine if p.status != 202).items())),
        "window_p99_ms": {**windowed([x for x in window_p99 if x is not None]), "unit": "ms"},
        "rate": round(len(mine) / (phase.window_s * phase.windows), 2),
    }


def flooder_figures(counts: dict[int, dict[int, int]], phase: Phase, wall_offset: float) -> dict:
    """The flooder's answers per second, by status, in each of `phase`'s windows. `counts` are wrk's: wall-clock
    second → status → answers; `wall_offset` is time.time() − perf_counter(). A second counts in the window
    holding its middle."""
    by_window: list[Counter[int]] = [Counter() for _ in range(phase.windows)]
    for second, statuses in counts.items():
        w = phase.window_of(second + 0.5 - wall_offset)
        if w is not None:
            by_window[w].update(statuses)
    statuses = sorted({s for c in by_window for s in c})
    per_s = {str(s): windowed([c[s] / phase.window_s for c in by_window]) for s in statuses}
    accepted = [c[202] / phase.window_s for c in by_window]
    refused = [c[429] / phase.window_s for c in by_window]
    return {
        "accepted_per_s": {**windowed(accepted), "unit": "202/s"},
        "refused_per_s": {**windowed(refused), "unit": "429/s"},
        "answers_per_s_by_status": per_s,
        "accepted": sum(c[202] for c in by_window),
        "refused": sum(c[429] for c in by_window),
        "other": sum(n for c in by_window for s, n in c.items() if s not in (202, 429)),
    }


def feed_share(feed: Sequence[tuple[float, str, str]], flooder: str, users: set[str], phase: Phase) -> dict:
    """Who the messages the reader got during `phase`'s windows came from (each message once)."""
    first: dict[str, tuple[float, str]] = {}
    for at, author, mid in feed:
        first.setdefault(mid, (at, author))
    got = Counter(
        "flooder" if author == flooder else "users" if author in users else "others"
        for at, author in first.values()
        if phase.window_of(at) is not None
    )
    total = sum(got.values())
    return {
        "messages": total,
        "flooder": got["flooder"],
        "users": got["users"],
        "others": got["others"],
        "share": round(got["flooder"] / total, 4) if total else None,
        "feed_msgs_per_s": round(total / (phase.window_s * phase.windows), 1),
    }


def summarize(
    posts: Sequence[Post],
    feed: Sequence[tuple[float, str, str]],
    counts: dict[int, dict[int, int]],
    calm: Phase,
    flood: Phase,
    *,
    flooder: str,
    users: set[str],
    wall_offset: float,
) -> dict:
    """Every figure of the run from what it recorded: the normal posts, the reader's feed (arrival, author, id;
    repeats included), wrk's counts. Also the consistency of the counts (`checks`)."""
    arrivals: dict[str, float] = {}
    times_seen: Counter[str] = Counter()
    for at, _, mid in feed:
        arrivals.setdefault(mid, at)
        times_seen[mid] += 1
    before, during = normal_figures(posts, arrivals, calm), normal_figures(posts, arrivals, flood)
    p99_calm, p99_flood = before["send_to_seen_ms"]["p99"], during["send_to_seen_ms"]["p99"]
    ratio = round(p99_flood / p99_calm, 2) if p99_calm and p99_flood is not None else None
    accepted_ids = [p.id for p in posts if p.status == 202 and p.id]
    flooder_seen = {mid for _, a, mid in feed if a == flooder}
    share = feed_share(feed, flooder, users, flood)
    return {
        "calm": before,
        "flood": during,
        "flooder": flooder_figures(counts, flood, wall_offset),
        "feed": share,
        "normal_p99_ratio": ratio,
        "ratio_met": ratio is not None and ratio <= TARGET_RATIO,
        "p99_met": p99_flood is not None and p99_flood <= TARGET_P99_MS,
        "checks": {
            "normal_accepted": len(accepted_ids),
            "normal_seen_once": sum(1 for i in accepted_ids if times_seen[i] == 1),
            "normal_missing": sum(1 for i in accepted_ids if times_seen[i] == 0),
            "repeated": sum(1 for n in times_seen.values() if n > 1),
            "flooder_accepted_total": sum(c.get(202, 0) for c in counts.values()),
            "flooder_seen_total": len(flooder_seen),
            "shares_add_up": share["flooder"] + share["users"] + share["others"] == share["messages"],
        },
    }


# ---------------------------------------------------------------------------------------------
# The run


def _settle(count, expected: int, timeout_s: float, quiet_s: float = 10.0) -> None:
    """Wait until `count()` reaches `expected`, stops growing for `quiet_s` (a filter may withhold some), or
    `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while last < expected and time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.2)
        now = count()
        if now != last:
            last, since = now, time.monotonic()


def measure(
    api_url: str,
    users: int = 20,
    warmup_s: float = 5,
    window_s: float = 30,
    windows: int = 3,
    connections: int = 16,
    *,
    drain_s: float = 120,
    seed: int = 1,
    progress=lambda line: None,
) -> dict:
    """The calm phase then the flood phase (see the module's docstring); returns `summarize`'s figures and the
    run's parameters, the flood's `backlog_s` and wrk's own `wrk` totals."""
    if users < 1 or window_s <= 0 or windows < 1 or warmup_s < 0:
        raise ValueError("users and windows must be >= 1, window_s > 0, warmup_s >= 0")
    load_before = load_average()
    run = secrets.token_hex(3)
    prefix = f"bench-flood-{run}-"
    flooder = f"{prefix}flooder"
    authors = [f"{prefix}u{k:02d}" for k in range(users)]
    reader = FeedReader(api_url, f"{prefix}reader")
    chatters = _Chatters(api_url, authors, seed=seed)
    spammer = ApiClient(api_url)
    try:
        reader.start()
        chatters.sign_in()
        spammer.sign_in(flooder)
        # one message all the way round, and recorded by the ledger, before the clock starts (as e2e_latency)
        status, body = chatters.clients[0].post_json("/messages", {"data": "warm-up probe"})
        if status != 202:
            raise BenchError(f"the warm-up POST answered {status}: {body}")
        probe = body["id"]
        if not _await(lambda: probe in reader.arrivals, 60):
            raise BenchError("the warm-up message did not reach the reader in 60s: are the streams running?")
        if not _await(lambda: _recorded_messages(chatters.clients[0], authors[0]) >= 1, 300, step_s=0.5):
            raise BenchError("the ledger did not record the warm-up message in 300s: are the streams running?")

        chatters.start()
        calm = Phase(time.perf_counter() + warmup_s, window_s, windows)
        progress(f"calm: {users} users chatting, {warmup_s:g}s warm-up then {windows} windows of {window_s:g}s")
        sleep_until(calm.end)
        # the flood's windows start on a whole wall-clock second: wrk counts by second
        wall_offset = time.time() - time.perf_counter()
        begin = time.perf_counter()
        first = math.ceil(begin + wall_offset + warmup_s)
        flood = Phase(first - wall_offset, window_s, windows)
        seconds = math.ceil(flood.end - begin) + 1
        progress(f"flood: wrk with {connections} connections as one user for {seconds}s, the users chatting on")
        wrk = Flooder(api_url, spammer.token, seconds, connections)
        flood_run = wrk.result()
        flood_ended = time.perf_counter()
        chatters.stop()
        if chatters.failures:
            raise BenchError(f"a user failed: {chatters.failures[0]!r}") from chatters.failures[0]
        accepted_ids = [p.id for p in chatters.posts if p.status == 202 and p.id]
        flooded = sum(c.get(202, 0) for c in flood_run["counts"].values())
        progress(f"draining: {len(accepted_ids)} normal messages and {flooded:,} of the flooder's accepted")
        _await(lambda: all(i in reader.arrivals for i in accepted_ids), drain_s, step_s=0.1)
        _settle(lambda: reader.by_author[flooder], flooded, drain_s)
        last_flood = max((at for at, a, _ in list(reader.feed) if a == flooder), default=flood_ended)
    finally:
        chatters.stop()
        spammer.close()
        if reader.is_alive():
            reader.stop()
        else:
            reader.client.close()
    if reader.failure is not None:
        raise BenchError(f"the reader failed: {reader.failure!r}") from reader.failure
    result = summarize(
        chatters.posts,
        reader.feed,
        flood_run["counts"],
        calm,
        flood,
        flooder=flooder,
        users=set(authors),
        wall_offset=wall_offset,
    )
    return {
        **result,
        "backlog_s": round(max(0.0, last_flood - flood_ended), 1),
        "wrk": {"requests": flood_run["requests"], "errors": flood_run["errors"], "seconds": seconds},
        "users": users,
        "warmup_s": warmup_s,
        "window_s": window_s,
        "windows": windows,
        "connections": connections,
        "reader_errors": dict(sorted(reader.errors.items())),
        "load_average": {"before": load_before, "after": load_average()},
    }


@contextlib.contextmanager
def limited_api(stack, work: Path, workers: int = 0):
    """An API host of its own with the product's settings (the per-user rate limit and the spam rule on), one
    worker per core as `make up` runs it unless `workers` says, on `stack`'s Kafka and warehouse (its streams
    and ledger); yields its URL."""
    from stack.balancer import ApiHost
    from stack.harness import GUEST_NAMES

    host = ApiHost(
        "api-flood",
        work / "api-flood",
        stack.kafka_bootstrap,
        secrets.token_urlsafe(32),
        workers=workers,
        env={"CHAT_WAREHOUSE_DIR": str(stack.data_dir / "warehouse"), **GUEST_NAMES},  # its users sign in as guests
    )
    host.start()
    try:
        host.wait_healthy()
        yield host.url
    finally:
        host.stop()


def bench_figures(ctx) -> dict:
    """bench/run.py's hook: the flood on the bench's stack (a StackContext); `flood` and the flat keys.
    The bench's stack runs its API without the rate limit (its other parts post faster than any person),
    so the flood goes through `limited_api`."""
    sizes = QUICK if ctx.quick else FULL
    with limited_api(ctx.stack, ctx.work) as url:
        result = measure(
            url, **sizes, progress=lambda line: print(f"{time.strftime('%H:%M:%S')}  bench  flood: {line}")
        )
    return {
        "flood": result,
        "flood_normal_p99_ratio": result["normal_p99_ratio"],
        "flood_normal_p99_ms": result["flood"]["send_to_seen_ms"]["p99"],
        "flood_share": result["feed"]["share"],
        "flood_accepted_per_s": result["flooder"]["accepted_per_s"]["value"],
        "flood_refused_per_s": result["flooder"]["refused_per_s"]["value"],
    }


def format_table(r: dict) -> str:
    from pipelines.textable import format_table as table

    def lat(phase: str) -> str:
        f = r[phase]["send_to_seen_ms"]
        return f"{f['p50']} / {f['p99']}"

    def windows(f: dict) -> str:
        return " / ".join(f"{w:,}" for w in f["windows"]) + (" UNSTABLE" if f["unstable"] else "")

    flooder, feed = r["flooder"], r["feed"]
    others = {k: v for k, v in flooder["answers_per_s_by_status"].items() if k not in ("202", "429")}
    ratio = r["normal_p99_ratio"]
    rows = [
        ["normal users, calm: p50 / p99 ms", lat("calm"), windows(r["calm"]["window_p99_ms"]), "per-window p99"],
        ["normal users, flood: p50 / p99 ms", lat("flood"), windows(r["flood"]["window_p99_ms"]), "per-window p99"],
        [
            "flood p99 ÷ calm p99",
            "–" if ratio is None else f"{ratio}×",
            "",
            f"target ≤ {TARGET_RATIO}× and ≤ {TARGET_P99_MS} ms: "
            + ("met" if r["ratio_met"] and r["p99_met"] else "MISSED"),
        ],
        ["flooder accepted (202/s)", f"{flooder['accepted_per_s']['value']:,}", windows(flooder["accepted_per_s"]), ""],
        ["flooder refused (429/s)", f"{flooder['refused_per_s']['value']:,}", windows(flooder["refused_per_s"]), ""],
        [
            "flooder's share of the feed",
            "–" if feed["share"] is None else f"{feed['share']:.1%}",
            "",
            f"{feed['messages']:,} messages at {feed['feed_msgs_per_s']:,}/s",
        ],
        [
            "flooder's other answers (/s)",
            ", ".join(f"{k}: {sum(v['windows']) / len(v['windows']):,.1f}" for k, v in others.items()) or "none",
            "",
            f"wrk's socket errors: {r['wrk']['errors']}" if any(r["wrk"]["errors"].values()) else "",
        ],
        ["flood backlog after the flood", f"{r['backlog_s']} s", "", "until the reader had its last message"],
        ["load average before / after", "", "", f"{r['load_average']['before']} / {r['load_average']['after']}"],
    ]
    return table(["figure", "measured", "windows", ""], rows, align_right={1})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="a running chat's API (default: start one of its own)")
    parser.add_argument("--quick", action="store_true", help="short windows: checks the bench works")
    parser.add_argument("--users", type=int)
    parser.add_argument("--warmup", type=float, help="seconds before each phase's windows")
    parser.add_argument("--window", type=float, help="seconds per window")
    parser.add_argument("--windows", type=int, help="windows per phase")
    parser.add_argument("--connections", type=int, help="the flooder's connections")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key, value in (
        ("users", args.users),
        ("warmup_s", args.warmup),
        ("window_s", args.window),
        ("windows", args.windows),
        ("connections", args.connections),
    ):
        if value is not None:
            sizes[key] = value

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  flood  {line}", file=sys.stderr, flush=True)

    stack = None
    api_url = args.api
    if api_url is None:
        from stack.harness import GUEST_NAMES, start_stack, stop_stack

        work = settings.load().data_dir / "bench" / f"flood-{os.getpid()}"
        say(f"starting the whole chat of its own in {work}")
        stack = start_stack(work, env=GUEST_NAMES)  # the product's limits; its made-up users sign in as guests
        api_url = stack.api_url
    try:
        result = measure(api_url, **sizes, progress=say)
    finally:
        if stack is not None:
            stop_stack(stack)
            shutil.rmtree(stack.data_dir, ignore_errors=True)
    print(format_table(result))
    print(json.dumps({"bench": "flood", **result}, ensure_ascii=False), flush=True)
    checks = result["checks"]
    return 0 if checks["normal_missing"] == 0 and checks["repeated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
