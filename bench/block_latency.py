"""Time from a user's third profane POST returning to the API's first 403 for them, through the running stack.

    python -m bench.block_latency --api http://127.0.0.1:5000 [--users 5] [--concurrency 1]

Each user is fresh (`bench-troll-<hex>`). It posts two profane messages, waits
until `GET /users/<author>` counts both strikes (the API counts a strike once
the relay has served the message), then posts the third: the clock starts when that POST returns
202. From then on it reads `GET /messages` as that user every `poll_s` (on a
fixed schedule) until the API answers 403 (a blocked user can neither send nor
read); the sample is the time to that answer. Reading adds nothing for the
ledger to record, so the probes do not slow down what they measure.
Afterwards `GET /users/<author>` must say `is_blocked` and a POST must get 403.

Users run one after another by default (`concurrency=1`), so each sample is
one user alone against an otherwise idle stack; with `concurrency` > 1 that
many run at once, started `stagger_s` apart. The block comes from the API's own count
of the profane messages the relay served, so a sample is about one message's
trip through the relay; it was the ledger's batch time (15–40 s) before.

Progress goes to stderr; stdout gets one readable line and the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bench.api_load import ApiClient, BenchError, latency_summary, quote_author
from config import settings

PROFANE_TEXTS = ("qué mierda de día", "joder, otra vez tarde", "¡mierda, se ha caído el wifi!")
CLEAN_PROBE = "perdón, ya me calmo"


def _user_strikes(client: ApiClient, author: str) -> tuple[int, bool]:
    """(strikes, is_blocked) as the API knows them; (0, False) before the ledger has seen the user."""
    status, body = client.get_json(f"/users/{quote_author(author)}")
    if status == 404:
        return 0, False
    if status != 200 or not body:
        raise BenchError(f"GET /users/{author} answered {status}: {body}")
    return body["strikes"], body["is_blocked"]


def _post(client: ApiClient, author: str, text: str) -> int:
    status, _ = client.post_json("/messages", {"author": author, "data": text})
    return status


def block_one(
    api_url: str,
    author: str,
    *,
    timeout_s: float = 300,
    poll_s: float = 0.01,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """One user's run: `{"author", "ms" (third POST returned → first 403), "strikes_ms" (waiting for the
    first two strikes), "probes" (reads sent while waiting), "blocked" (GET /users says so and a POST
    gets 403)}`."""
    with ApiClient(api_url, timeout_s=20) as client:
        client.sign_in(author)
        began = time.monotonic()
        for text in PROFANE_TEXTS[:2]:
            if (status := _post(client, author, text)) != 202:
                raise BenchError(f"{author}: a profane POST answered {status}, not 202")
        deadline = began + timeout_s
        while _user_strikes(client, author)[0] < 2:
            if time.monotonic() > deadline:
                raise BenchError(f"{author}: two strikes not recorded in {timeout_s:g}s: is the ledger running?")
            time.sleep(0.25)
        strikes_ms = (time.monotonic() - began) * 1000
        progress(f"{author}: 2 strikes recorded after {strikes_ms / 1000:.1f}s; posting the third")

        if (status := _post(client, author, PROFANE_TEXTS[2])) != 202:
            raise BenchError(f"{author}: the third profane POST answered {status}, not 202")
        struck = time.perf_counter()
        deadline = struck + timeout_s
        probes = 0
        while True:
            probes += 1
            next_probe = struck + probes * poll_s
            while (left := next_probe - time.perf_counter()) > 0:
                time.sleep(left)
            status, _ = client.get_json("/messages", user=author, limit=1)
            answered = time.perf_counter()
            if status == 403:
                break
            if status != 200:
                raise BenchError(f"{author}: GET /messages answered {status} while waiting for the block")
            if answered > deadline:
                raise BenchError(f"{author}: not blocked {timeout_s:g}s after the third strike")
        ms = (answered - struck) * 1000
        blocked = _user_strikes(client, author)[1] and _post(client, author, CLEAN_PROBE) == 403
        client.sign_out()
    progress(f"{author}: blocked {ms / 1000:.2f}s after the third strike's POST")
    return {
        "author": author,
        "ms": round(ms, 1),
        "strikes_ms": round(strikes_ms, 1),
        "probes": probes,
        "blocked": blocked,
    }


def measure(
    api_url: str,
    users: int = 5,
    *,
    concurrency: int = 1,
    stagger_s: float = 3.0,
    timeout_s: float = 300,
    poll_s: float = 0.01,
    progress: Callable[[str], None] = lambda _: None,
) -> dict:
    """Block latency over `users` fresh users: `{"p50", "p99", "max", "samples": [ms, …]}` (in user order),
    and `authors` (whose the samples are), `users`, `concurrency`, `poll_ms`, `strikes_ms` (each user's
    wait for its first two strikes), `not_blocked` (users GET /users/<author> did not show blocked after
    the 403) and `failed` (`"author: reason"` for users that timed out or got an unexpected answer)."""
    if users < 1 or concurrency < 1:
        raise ValueError("users and concurrency must be >= 1")
    run = secrets.token_hex(3)
    authors = [f"bench-troll-{run}-{i}" for i in range(users)]

    def one(i: int) -> dict:
        if i < concurrency:
            time.sleep(i * stagger_s)
        try:
            return block_one(api_url, authors[i], timeout_s=timeout_s, poll_s=poll_s, progress=progress)
        except (BenchError, OSError) as exc:
            progress(f"{authors[i]}: FAILED: {exc}")
            return {"author": authors[i], "error": str(exc)}

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-block") as pool:
        runs = list(pool.map(one, range(users)))
    done = [r for r in runs if "error" not in r]
    samples = [r["ms"] for r in done]
    return {
        **latency_summary(samples, quantiles=(50, 99)),
        "samples": samples,
        "authors": [r["author"] for r in done],
        "users": users,
        "concurrency": concurrency,
        "poll_ms": poll_s * 1000,
        "strikes_ms": [r["strikes_ms"] for r in done],
        "not_blocked": [r["author"] for r in done if not r["blocked"]],
        "failed": [f"{r['author']}: {r['error']}" for r in runs if "error" in r],
    }


def format_result(r: dict) -> str:
    if not r["samples"]:
        return f"block_latency: no sample ({len(r['failed'])} of {r['users']} users failed: {r['failed'][:1]})"
    at_once = "one at a time" if r["concurrency"] == 1 else f"{r['concurrency']} at a time"
    line = (
        f"block_latency: third profane POST -> first 403: p50 {r['p50'] / 1000:.2f}s  "
        f"p99 {r['p99'] / 1000:.2f}s  max {r['max'] / 1000:.2f}s over {len(r['samples'])} users "
        f"({at_once}, polled every {r['poll_ms']:g} ms)"
    )
    if r["failed"] or r["not_blocked"]:
        line += f"; {len(r['failed'])} failed, {len(r['not_blocked'])} not shown blocked by GET /users"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.block_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--api", default=settings.load().api_url, help="the API's URL (default %(default)s)")
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=1, help="users running at once (default 1)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds each wait may take")
    args = parser.parse_args(argv)
    result = measure(
        args.api,
        users=args.users,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_result(result))
    print(json.dumps({"bench": "block_latency", **result}, ensure_ascii=False), flush=True)
    return 0 if result["samples"] and not result["failed"] and not result["not_blocked"] else 1


if __name__ == "__main__":
    sys.exit(main())
