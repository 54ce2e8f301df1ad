"""How many long-polling readers the API holds: sign-in, POST and delivery with 100, 1,000 and 5,000 waiting.

    python -m bench.capacity --api http://127.0.0.1:5000 [--levels 100 1000 5000] [--messages 10]

At each level, that many readers sign in (one session each) and long-poll `GET /messages?after=…&wait=25`
on keep-alive connections of their own (asyncio, raw sockets: the client must not be the bottleneck).
Once they all wait, a writer posts `messages` messages a second apart while a prober times sign-ins
(`POST /sessions`) and POSTs; each message's delivery time is from its POST to the moment the last reader
has it. Every reader must see every message exactly once (by id). The API's memory is the resident size
of all the processes of its process group (found through `GET /health`'s pid).

All readers come from this machine's one address: start the API with CHAT_API_LONG_POLLS_PER_CLIENT=0 (as
`make bench` does), or the per-address cap answers most of them 429 (counted in `reader_errors`).

`capacity()` returns a dict (bench/run.py calls it); the CLI prints it as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence

from bench.api_load import CLEAN_TEXTS, latency_summary, process_group_rss_mb
from config import settings

WAIT_S = 25


def say(text: str) -> None:
    print(f"capacity: {text}", file=sys.stderr, flush=True)


class Http:
    """One keep-alive HTTP/1.1 connection on asyncio streams; only Content-Length answers (the API's)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, target: str, token: str | None = None, body: bytes | None = None):
        if self.writer is None:
            await self.open()
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        header = await self.reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and "close" in value.lower():
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


async def sign_in(host: str, port: int, author: str) -> str:
    http = Http(host, port)
    try:
        status, data = await http.request("POST", "/sessions", body=json.dumps({"author": author}).encode())
    finally:
        http.close()
    if status != 201:
        raise RuntimeError(f"sign-in of {author}: {status} {data[:200]!r}")
    return json.loads(data)["token"]


class Reader:
    def __init__(self, host: str, port: int, token: str, prefix: str):
        self.http = Http(host, port)
        self.token, self.prefix = token, prefix
        self.received: list[tuple[str, float]] = []  # (id, monotonic time) of the bench's messages
        self.errors: Counter = Counter()
        self.cursor: str | None = None
        self.waiting = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        status, data = await self.http.request("GET", "/messages?limit=1", self.token)
        self.cursor = json.loads(data)["cursor"]
        while not stop.is_set():
            target = f"/messages?after={urllib.parse.quote(self.cursor)}&wait={WAIT_S}&limit=500"
            self.waiting.set()
            try:
                status, data = await self.http.request("GET", target, self.token)
            except (OSError, asyncio.IncompleteReadError) as exc:
                self.errors[type(exc).__name__] += 1
                self.http.close()
                await asyncio.sleep(0.5)
                continue
            now = time.monotonic()
            if status != 200:
                self.errors[str(status)] += 1
                await asyncio.sleep(0.5)
                continue
            body = json.loads(data)
            self.cursor = body["cursor"]
            self.received += [(m["id"], now) for m in body["messages"] if m["author"].startswith(self.prefix)]
        self.http.close()


async def _level(host: str, port: int, readers: int, messages: int, interval_s: float) -> dict:
    prefix = f"cap-{secrets.token_hex(3)}-"
    semaphore = asyncio.Semaphore(64)
    t0 = time.monotonic()

    async def reader_session(n: int) -> str:
        async with semaphore:
            return await sign_in(host, port, f"{prefix}r{n}")

    tokens = await asyncio.gather(*(reader_session(n) for n in range(readers)))
    stop = asyncio.Event()
    crowd = [Reader(host, port, token, prefix) for token in tokens]
    tasks = []
    for start in range(0, readers, 200):  # connect in batches: the listen backlog is finite
        tasks += [asyncio.ensure_future(r.run(stop)) for r in crowd[start : start + 200]]
        await asyncio.gather(*(r.waiting.wait() for r in crowd[start : start + 200]))
    await asyncio.sleep(2)  # every reader's long-poll has reached the API

    say(f"{readers} readers waiting ({time.monotonic() - t0:.1f}s to sign in and connect)")
    writer_token = await sign_in(host, port, f"{prefix}writer")
    posted: dict[str, float] = {}
    post_ms, sign_in_ms = [], []
    for n in range(messages):
        began = time.monotonic()
        await sign_in(host, port, f"{prefix}probe{n}")
        sign_in_ms.append(1000 * (time.monotonic() - began))
        body = json.dumps({"data": CLEAN_TEXTS[n % len(CLEAN_TEXTS)]}, ensure_ascii=False).encode()
        writer = Http(host, port)  # a connection of its own: an idle keep-alive one may be closed under it
        await writer.open()
        began = time.monotonic()
        status, data = await writer.request("POST", "/messages", writer_token, body)
        post_ms.append(1000 * (time.monotonic() - began))
        writer.close()
        if status == 202:
            posted[json.loads(data)["id"]] = began
        await asyncio.sleep(interval_s)

    say(f"{len(posted)} messages posted; waiting for every reader to have them")
    deadline = time.monotonic() + 60  # then every reader has what was posted, or it never will
    while time.monotonic() < deadline and any(len(r.received) < len(posted) for r in crowd):
        await asyncio.sleep(0.2)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for r in crowd:
        r.http.close()

    delivered: dict[str, float] = {}
    missing = duplicates = 0
    for r in crowd:
        counts = Counter(i for i, _ in r.received)
        missing += sum(1 for i in posted if counts[i] == 0)
        duplicates += sum(n - 1 for n in counts.values() if n > 1)
        for message_id, at in r.received:
            if message_id in posted:
                delivered[message_id] = max(delivered.get(message_id, 0.0), at)
    delivery_ms = [1000 * (delivered[i] - posted[i]) for i in posted if i in delivered]
    errors = sum((r.errors for r in crowd), Counter())
    return {
        "readers": readers,
        "messages": len(posted),
        "sign_in_ms": latency_summary(sign_in_ms, (50, 99)),
        "post_ms": latency_summary(post_ms, (50, 99)),
        "delivery_to_all_ms": latency_summary(delivery_ms, (50, 99)),
        "missing": missing,
        "duplicates": duplicates,
        "exactly_once": missing == 0 and duplicates == 0 and len(posted) == messages,
        "reader_errors": dict(errors),
    }


def api_rss_mb(api_url: str) -> float | None:
    """Resident memory of every process of the API's process group (gunicorn's master and workers)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=5) as response:
            pid = json.load(response)["pid"]
    except Exception:  # noqa: BLE001 - a 503 body has it too
        return None
    return process_group_rss_mb(os.getpgid(pid))


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(max(soft, wanted), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def capacity(
    api_url: str, levels: Sequence[int] = (100, 1000, 5000), messages: int = 10, interval_s: float = 1.0
) -> dict:
    """For each level of waiting readers: sign-in and POST latency, delivery to every reader, exactly-once,
    and the API's memory. Returns `{"levels": {"100": {...}, ...}, "fd_limit": n}`."""
    url = urllib.parse.urlsplit(api_url)
    limit = raise_fd_limit(max(levels) * 2 + 1000)
    if limit < max(levels) + 100:
        raise RuntimeError(f"the file-descriptor limit ({limit}) is below {max(levels)} readers")
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    out: dict = {"levels": {}, "fd_limit": limit}
    for readers in levels:
        say(f"{readers} readers: signing in")
        result = run(_level(url.hostname, url.port or 80, readers, messages, interval_s))
        say(f"{readers} readers: {json.dumps(result)}")
        result["api_rss_mb"] = api_rss_mb(api_url)
        out["levels"][str(readers)] = result
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=settings.load().api_url)
    parser.add_argument("--levels", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args(argv)
    result = capacity(args.api, args.levels, args.messages)
    print(json.dumps({"bench": "capacity", **result}, ensure_ascii=False), flush=True)
    return 0 if all(level["exactly_once"] for level in result["levels"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
