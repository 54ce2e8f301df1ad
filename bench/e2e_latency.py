"""POST-to-GET latency through the running stack: a reader long-polls, a writer posts.

    python bench/e2e_latency.py [--n 50] [--api http://127.0.0.1:5000]

Prints p50/p90/p99/max in milliseconds: from POST /messages returning to the
message arriving in another user's long-poll GET.
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--api", default="http://127.0.0.1:5000")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between posts")
    args = parser.parse_args()

    seen: dict[str, float] = {}
    stop = threading.Event()
    cursor = requests.get(f"{args.api}/messages", params={"user": "bench-reader", "limit": 1}, timeout=10).json()["cursor"]

    def reader() -> None:
        nonlocal cursor
        with requests.Session() as http:
            while not stop.is_set():
                body = http.get(f"{args.api}/messages",
                                params={"user": "bench-reader", "after": cursor, "wait": 2}, timeout=10).json()
                now = time.perf_counter()
                for m in body["messages"]:
                    seen.setdefault(m["id"], now)
                cursor = body["cursor"]

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    posted: dict[str, float] = {}
    with requests.Session() as http:
        for i in range(args.n):
            r = http.post(f"{args.api}/messages", json={"author": "bench-writer", "data": f"latency probe {i}"},
                          timeout=15)
            r.raise_for_status()
            posted[r.json()["id"]] = time.perf_counter()
            time.sleep(args.interval)
    deadline = time.time() + 30
    while time.time() < deadline and not all(i in seen for i in posted):
        time.sleep(0.1)
    stop.set()
    lat = sorted((seen[i] - t) * 1000 for i, t in posted.items() if i in seen)
    missing = len(posted) - len(lat)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
    print(f"messages {len(posted)}, received {len(lat)}, missing {missing}")
    print(f"POST->GET latency ms: p50 {q[49]:.0f}  p90 {q[89]:.0f}  p99 {q[98]:.0f}  max {lat[-1]:.0f}")


if __name__ == "__main__":
    main()
