"""POSTs per second the API accepts from concurrent clients, each on one keep-alive connection.

    python -m bench.api_load --api http://127.0.0.1:5000 [--clients 32] [--seconds 20] [--warmup 3]

Every client is a thread with its own persistent HTTP/1.1 connection, posting
`{"author", "data"}` as fast as the answers come back: a closed loop, one request
in flight per client. The load generator shares the API's cores, so the POSTs go
through `PostConnection` (prebuilt request bytes on a raw socket, only the status
line and Content-Length read back): about a fifth of `http.client`'s CPU per
request, which alone topped out near 2,400 requests/s on one core. Each client is its own
author (`bench-load-<run>-<n>`) and sends clean, everyday text, so nobody
collects a strike. After `warmup` seconds, responses that complete within the
next `seconds` are counted: the rate counts only 202s; errors are counted by
status (or `connection` / `timeout`), latency is that of the accepted POSTs.

Prints one readable line, then the result as one JSON line. This module also
holds what the other API benchmarks share: `ApiClient` (one keep-alive
connection) and the `percentile` / `latency_summary` helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config import settings

# Everyday chat lines in Spanish and English, free of every word in conf/wordlists
# (tests/test_bench_api.py checks them against the lists, and the integration test
# checks that the relay passes them through unmasked).
CLEAN_TEXTS = (
    "¿Alguien sabe a qué hora empieza la reunión de mañana?",
    "Acabo de llegar a casa, el tráfico estaba fatal hoy",
    "Qué buena pinta tiene esa paella, ¿me pasas la receta?",
    "Esta tarde vamos al parque con los niños si no llueve",
    "Me encantó la película de anoche, sobre todo el final",
    "¿Quedamos el sábado para tomar un café en el centro?",
    "Hoy he terminado el informe por fin, qué alivio 😅",
    "Mi gato se ha dormido encima del teclado otra vez 🐱",
    "Does anyone know when the next train to Madrid leaves?",
    "Just finished my run, the weather was perfect today",
    "Thanks for the recommendation, that book was great 👍",
    "I will be a few minutes late, save me a seat please",
    "Who is up for pizza after the match tonight? 🍕",
    "The new update fixed the bug I reported last week",
    "Happy birthday Lucía! Hope you have a wonderful day 🎉",
    "Good morning everyone, coffee is ready in the kitchen ☕",
)

USER_AGENT = "chat-bench/1"


class BenchError(RuntimeError):
    """A benchmark could not run as intended (the API answered something unexpected)."""


# ---------------------------------------------------------------------------------------------
# Numbers


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0–100) of `values`, interpolating linearly between the closest ranks
    (numpy's default, Hyndman–Fan type 7): always within [min, max], exact at 0, 50 and 100.
    None for no values."""
    if not 0 <= q <= 100 or math.isnan(q):
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def latency_summary(values_ms: Sequence[float], quantiles: Sequence[int] = (50, 90, 99)) -> dict:
    """`{"p50": …, "p90": …, "p99": …, "max": …}` in ms, rounded to 0.1 ms; None when there are no values."""
    out = {f"p{q}": _round(percentile(values_ms, q)) for q in quantiles}
    out["max"] = _round(max(values_ms)) if values_ms else None
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------------
# HTTP


class ApiClient:
    """One persistent (keep-alive) HTTP/1.1 connection to the API. Not thread-safe: one per thread.

    gunicorn closes a keep-alive connection after 2 s idle, and a POST on a connection the server
    has just closed is ambiguous (was it processed?), so a connection idle for more than
    `idle_reconnect_s` is replaced before the next request. A GET that fails on a reused
    connection is retried once on a new one; a POST never is (`ConnectionError` goes to the caller).
    """

    def __init__(self, api_url: str, timeout_s: float = 10.0, idle_reconnect_s: float = 1.0):
        url = urllib.parse.urlsplit(api_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {api_url!r}")
        self._scheme = url.scheme
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = url.path.rstrip("/")
        self.timeout_s = timeout_s
        self.idle_reconnect_s = idle_reconnect_s
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0
        self.token: str | None = None

    def sign_in(self, author: str) -> None:
        """Open a session for `author` (POST /sessions); later requests send its token."""
        status, body = self.post_json("/sessions", {"author": author})
        if status != 201 or not body or "token" not in body:
            raise BenchError(f"POST /sessions for {author} answered {status}: {body}")
        self.token = body["token"]

    def sign_out(self) -> None:
        """End the session (DELETE /sessions), freeing its name."""
        if self.token:
            self.request("DELETE", "/sessions")
            self.token = None

    def connect(self) -> None:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout_s)
            self._conn.connect()
            self._last_used = time.monotonic()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        params: dict | None = None,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes]:
        """(status, body) of one request. Raises `ConnectionError`/`TimeoutError` (both OSError)."""
        target = self._prefix + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        retries = 1 if method == "GET" else 0
        while True:
            if self._conn is not None and time.monotonic() - self._last_used > self.idle_reconnect_s:
                self.close()
            reused = self._conn is not None
            try:
                self.connect()
                self._conn.sock.settimeout(timeout_s or self.timeout_s)
                self._conn.request(method, target, body=body, headers=headers)
                response = self._conn.getresponse()
                data = response.read()
            except TimeoutError:
                self.close()
                raise TimeoutError(f"{method} {path}: no answer in {timeout_s or self.timeout_s:g}s") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and retries > 0:
                    retries -= 1
                    continue
                raise ConnectionError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            self._last_used = time.monotonic()
            if response.will_close:
                self.close()
            return response.status, data

    def post_json(self, path: str, payload: dict) -> tuple[int, dict | None]:
        status, data = self.request("POST", path, json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        return status, _json_or_none(data)

    def get_json(self, path: str, timeout_s: float | None = None, **params) -> tuple[int, dict | None]:
        status, data = self.request("GET", path, params=params or None, timeout_s=timeout_s)
        return status, _json_or_none(data)


class PostConnection:
    """POSTs of prepared bodies on one keep-alive connection, as cheaply as Python allows: each request
    is built once, and of the response only the status, Content-Length and `Connection: close` are read.
    For a load generator talking to a known server (no chunked responses, no redirects); not thread-safe.

    Like `ApiClient`, a connection idle for more than `idle_reconnect_s` is replaced before the next
    request, and a failed POST is never retried (`ConnectionError` / `TimeoutError` to the caller)."""

    def __init__(self, api_url: str, token: str, timeout_s: float = 10.0, idle_reconnect_s: float = 1.0):
        url = urllib.parse.urlsplit(api_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"not an http URL: {api_url!r}")
        self._address = (url.hostname, url.port or 80)
        self._head = (
            f"POST {url.path.rstrip('/')}/messages HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Accept: application/json\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode("latin-1")
        self.timeout_s = timeout_s
        self.idle_reconnect_s = idle_reconnect_s
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._last_used = 0.0

    def request_for(self, body: bytes) -> bytes:
        """The bytes of one POST /messages with `body` (build once, send many times)."""
        return self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body

    def post(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one prepared request. Raises `ConnectionError`/`TimeoutError` (both OSError)."""
        if self._sock is not None and time.monotonic() - self._last_used > self.idle_reconnect_s:
            self.close()
        try:
            if self._sock is None:
                self._sock = socket.create_connection(self._address, timeout=self.timeout_s)
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._buffer = b""
            self._sock.sendall(request)
            status, body, close = self._read_response()
        except TimeoutError:
            self.close()
            raise TimeoutError(f"POST /messages: no answer in {self.timeout_s:g}s") from None
        except (OSError, ValueError) as exc:
            self.close()
            raise ConnectionError(f"POST /messages: {type(exc).__name__}: {exc}") from None
        self._last_used = time.monotonic()
        if close:
            self.close()
        return status, body

    def _read_response(self) -> tuple[int, bytes, bool]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            self._recv()
        head = self._buffer[:end].decode("latin-1").lower()
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = "close" in value
            elif name == "transfer-encoding":
                raise ValueError(f"unsupported Transfer-Encoding {value.strip()!r}")
        if length is None:  # no length: the body runs to the end of the connection
            close = True
            while self._recv(eof_ok=True):
                pass
            length = len(self._buffer) - end - 4
        while len(self._buffer) - end - 4 < length:
            self._recv()
        rest = self._buffer[end + 4 :]
        self._buffer = rest[length:]
        return status, rest[:length], close

    def _recv(self, eof_ok: bool = False) -> bool:
        chunk = self._sock.recv(65536)
        if not chunk:
            if eof_ok:
                return False
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> PostConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json_or_none(data: bytes) -> dict | None:
    try:
        return json.loads(data)
    except ValueError:
        return None


def error_key(exc: BaseException) -> str:
    """How a failed request is counted in `errors`: `timeout` or `connection`."""
    return "timeout" if isinstance(exc, TimeoutError) else "connection"


def quote_author(author: str) -> str:
    return urllib.parse.quote(author, safe="")


# ---------------------------------------------------------------------------------------------
# The load


@dataclass
class _Client:
    author: str
    bodies: list[bytes]
    # (completed at, latency s, status or error key) of every request
    results: list[tuple[float, float, int | str]] = field(default_factory=list)
    failure: BaseException | None = None


def _run_client(api_url: str, client: _Client, start: threading.Barrier, times: dict, timeout_s: float) -> None:
    try:
        with ApiClient(api_url, timeout_s=timeout_s) as http_:
            try:
                http_.sign_in(client.author)
            finally:
                start.wait()  # every client is connected (or has failed to) before the clock starts
        with PostConnection(api_url, http_.token, timeout_s=timeout_s) as conn:
            requests = [conn.request_for(body) for body in client.bodies]
            end = times["end"]
            n = 0
            clock = time.perf_counter
            while True:
                began = clock()
                if began >= end:
                    break
                try:
                    status, _ = conn.post(requests[n % len(requests)])
                except OSError as exc:
                    status = error_key(exc)
                    time.sleep(0.05)  # the API is down or drowning: do not spin
                done = clock()
                client.results.append((done, done - began, status))
                n += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the caller, never left to the thread
        client.failure = exc


def api_posts_per_s(
    api_url: str, clients: int = 32, seconds: float = 20, warmup_s: float = 3, *, timeout_s: float = 10.0
) -> dict:
    """Accepted POST /messages per second from `clients` concurrent keep-alive clients.

    Returns `{"posts_per_s", "clients", "seconds", "accepted", "errors": {status: n},
    "latency_ms": {"p50", "p99", "max"}, ...}` where `posts_per_s`, `accepted`, `errors` and
    `latency_ms` cover the responses completed in the measured window (after `warmup_s`), and also
    `requests` (all responses in the window), `no_5xx` (over the whole run, warm-up included),
    `accepted_total` (every 202 of the run: the messages that really went to Kafka),
    `author_prefix` (every bench author starts with it) and `loadgen_cpu` (the load generator's
    CPU time in the window, in cores: 1.0 = one core busy).
    """
    if clients < 1 or seconds <= 0 or warmup_s < 0:
        raise ValueError("clients must be >= 1, seconds > 0, warmup_s >= 0")
    prefix = f"bench-load-{secrets.token_hex(3)}-"
    workers = []
    for i in range(clients):
        author = f"{prefix}{i:02d}"
        texts = CLEAN_TEXTS[i % len(CLEAN_TEXTS) :] + CLEAN_TEXTS[: i % len(CLEAN_TEXTS)]
        bodies = [json.dumps({"author": author, "data": t}, ensure_ascii=False).encode("utf-8") for t in texts]
        workers.append(_Client(author, bodies))
    times: dict[str, float] = {}

    def _clock_starts() -> None:  # run by the barrier once every client is connected
        times["start"] = time.perf_counter()
        times["window_start"] = times["start"] + warmup_s
        times["end"] = times["window_start"] + seconds

    start = threading.Barrier(clients, action=_clock_starts)
    threads = [
        threading.Thread(
            target=_run_client, args=(api_url, w, start, times, timeout_s), name=f"bench-load-{i}", daemon=True
        )
        for i, w in enumerate(workers)
    ]
    for t in threads:
        t.start()
    while "end" not in times and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    if "end" in times:
        sleep_until(times["window_start"])
        cpu0 = time.process_time()
        sleep_until(times["end"])
        cpu1 = time.process_time()
    else:
        cpu0 = cpu1 = 0.0
    for t in threads:
        t.join(timeout_s + 5)
    failures = [w.failure for w in workers if w.failure is not None]
    if failures:
        raise BenchError(f"{len(failures)} of {clients} clients failed: {failures[0]!r}") from failures[0]

    w0, w1 = times["window_start"], times["end"]
    window = [r for w in workers for r in w.results if w0 <= r[0] < w1]
    accepted_ms = [latency * 1000 for _, latency, status in window if status == 202]
    errors = Counter(str(status) for _, _, status in window if status != 202)
    every_status = Counter(str(status) for w in workers for _, _, status in w.results)
    summary = latency_summary(accepted_ms, quantiles=(50, 99))
    return {
        "posts_per_s": round(len(accepted_ms) / seconds, 1),
        "clients": clients,
        "seconds": seconds,
        "accepted": len(accepted_ms),
        "errors": dict(sorted(errors.items())),
        "latency_ms": summary,
        "requests": len(window),
        "no_5xx": not any(k.isdigit() and int(k) >= 500 for k in every_status),
        "accepted_total": every_status.get("202", 0),
        "warmup_s": warmup_s,
        "author_prefix": prefix,
        "loadgen_cpu": round((cpu1 - cpu0) / seconds, 2),
    }


# ---------------------------------------------------------------------------------------------
# API processes of the bench's own, on a given Kafka: servers and worker counts side by side

# (name, extra gunicorn arguments, CHAT_API_WORKERS): today's server (gthread, 64 threads, the Flask app
# alone) against the ASGI server (uvicorn workers, conf/gunicorn.conf.py) with one and two processes
SERVERS = {
    "gthread_1": (["-k", "api.KeepAliveThreadWorker", "--threads", "64", "-w", "1", "api:create_app()"], 1),
    "uvicorn_1": ([], 1),
    "uvicorn_2": ([], 2),
}


def _group_members(pgid: int):
    """(pid, the fields of /proc/<pid>/stat after the name) of each live process of a process group."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # the fields: state, ppid, pgrp, ..., utime (12), stime (13)
            yield entry, fields


def process_group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    ticks = sum(int(fields[11]) + int(fields[12]) for _, fields in _group_members(pgid))
    return ticks / os.sysconf("SC_CLK_TCK")


def process_group_rss_mb(pgid: int) -> float:
    """Resident memory of the live processes of a process group, in MiB."""
    total = 0
    for pid, _ in _group_members(pgid):
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return round(total / 2**20, 1)


@contextlib.contextmanager
def api_server(kafka_bootstrap: str, data_dir: Path, extra_args: list[str], workers: int, env: dict | None = None):
    """An API under gunicorn (conf/gunicorn.conf.py, as `make up` runs it) on a free port, on this Kafka,
    ready (/health 200); yields (url, process). Its own data directory; the secret comes from `env` or is new."""
    from stack.broker import free_port
    from stack.harness import UNLIMITED_POSTS
    from stack.processes import child_env, spawn, stop_process_group
    from stack.up import api_argv

    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    process_env = child_env(
        CHAT_API_HOST="127.0.0.1",
        CHAT_API_PORT=str(port),
        CHAT_API_WORKERS=str(workers),
        CHAT_KAFKA_BOOTSTRAP=kafka_bootstrap,
        CHAT_DATA_DIR=str(data_dir),
        CHAT_WAREHOUSE_DIR=None,
        CHAT_API_LONG_POLLS_PER_CLIENT="0",
        **UNLIMITED_POSTS,
        **(env or {}),
    )
    process = spawn([*api_argv(), *extra_args], data_dir / "api.log", process_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the API did not become ready; see {data_dir / 'api.log'}")
            try:
                with ApiClient(url, timeout_s=2) as client:
                    if client.get_json("/health")[0] == 200:
                        break
            except OSError:
                pass
            time.sleep(0.3)
        yield url, process
    finally:
        stop_process_group(process, 30)


def api_workers_compared(
    kafka_bootstrap: str, work_dir: Path, clients: int = 32, seconds: float = 15, warmup_s: float = 3
) -> dict:
    """POSTs per second and CPU per POST of each server in SERVERS, one after the other, in the same run.

    Returns `{name: {posts_per_s, cpu_ms_per_post, latency_ms, ...}, "workers_2_vs_1": ratio,
    "uvicorn_vs_gthread": ratio}` (ratios of posts_per_s)."""
    out: dict = {}
    for name, (extra_args, workers) in SERVERS.items():
        with api_server(kafka_bootstrap, work_dir / name, extra_args, workers) as (url, process):
            cpu0 = process_group_cpu_s(process.pid)
            result = api_posts_per_s(url, clients=clients, seconds=seconds, warmup_s=warmup_s)
            cpu = process_group_cpu_s(process.pid) - cpu0
            result["api_cpu_s"] = round(cpu, 2)
            # the whole run's CPU over every 202 of the run (warm-up included)
            result["cpu_ms_per_post"] = round(1000 * cpu / max(1, result["accepted_total"]), 3)
            result["workers"] = workers
            out[name] = result
    out["workers_2_vs_1"] = round(out["uvicorn_2"]["posts_per_s"] / max(out["uvicorn_1"]["posts_per_s"], 1e-9), 2)
    out["uvicorn_vs_gthread"] = round(out["uvicorn_1"]["posts_per_s"] / max(out["gthread_1"]["posts_per_s"], 1e-9), 2)
    return out


WRK_SCRIPT = """-- POST /messages with a session's token, as bench/api_load.py's clients do
wrk.method = "POST"
wrk.body = '{"data": "Does anyone know when the next train to Madrid leaves?"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk_posts_per_s(api_url: str, connections: int = 32, seconds: int = 10, threads: int = 2) -> dict:
    """The same load from an established tool: `wrk` (Debian's package) with a Lua script that POSTs one
    message with one session's token. Returns `{"requests_per_s", "non_2xx", "latency_ms": {p50, p99}}`."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed (apt-get install wrk)")
    with ApiClient(api_url) as client:
        client.sign_in(f"bench-wrk-{secrets.token_hex(3)}")
        token = client.token
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % token)
    try:
        run = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--latency",
                "-s",
                script.name,
                f"{api_url}/messages",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    finally:
        os.unlink(script.name)
    text = run.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)

    def latency(q: str) -> float | None:
        match = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not match:
            return None
        value, unit = float(match.group(1)), match.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    failed = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "requests_per_s": rate,
        "accepted_per_s": round(rate * (requests - failed) / max(1, requests), 1),
        "non_2xx": failed,
        "latency_ms": {"p50": latency("50"), "p99": latency("99")},
        "connections": connections,
        "seconds": seconds,
    }


def sleep_until(t: float) -> None:
    """Sleep until time.perf_counter() reaches `t` (for schedules: no drift from sleep's overshoot)."""
    while (left := t - time.perf_counter()) > 0:
        time.sleep(min(left, 0.5))


def format_result(r: dict) -> str:
    errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
    lat = r["latency_ms"]
    return (
        f"api_load: {r['posts_per_s']:.1f} accepted POST/s with {r['clients']} clients over {r['seconds']:g}s "
        f"({r['accepted']} accepted, errors {errors}, {'no 5xx' if r['no_5xx'] else 'SOME 5xx'}); "
        f"latency p50 {lat['p50']} ms, p99 {lat['p99']} ms; load generator used {r['loadgen_cpu']:.2f} cores"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=settings.load().api_url, help="the API's URL (default %(default)s)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3, help="seconds of load before the measured window")
    args = parser.parse_args(argv)
    result = api_posts_per_s(args.api, clients=args.clients, seconds=args.seconds, warmup_s=args.warmup)
    print(format_result(result))
    print(json.dumps({"bench": "api_load", **result}, ensure_ascii=False), flush=True)
    return 0 if result["no_5xx"] and result["accepted"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
