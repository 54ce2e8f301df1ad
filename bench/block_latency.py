"""Time from a user's third profane POST to the first 403, through the running stack.

    python bench/block_latency.py [--users 3] [--api http://127.0.0.1:5000]

Each user sends three profane messages (waiting for each strike to be counted
before the next, so the third one is the blocking strike); then reads poll
GET /messages as that user until the API answers 403. Prints each latency and
the median.
"""
from __future__ import annotations

import argparse
import secrets
import statistics
import time

import requests


def wait(predicate, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out: is `make up` running?")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--api", default="http://127.0.0.1:5000")
    args = parser.parse_args()
    latencies = []
    for _ in range(args.users):
        user = f"bench-troll-{secrets.token_hex(3)}"
        for strike in (1, 2, 3):
            started = time.monotonic()
            r = requests.post(f"{args.api}/messages", json={"author": user, "data": "qué mierda"}, timeout=20)
            r.raise_for_status()
            if strike < 3:
                wait(lambda: requests.get(f"{args.api}/users/{user}", timeout=5).json().get("strikes", 0) >= strike)
        wait(lambda: requests.get(f"{args.api}/messages", params={"user": user}, timeout=5).status_code == 403)
        latencies.append(time.monotonic() - started)
        print(f"{user}: blocked {latencies[-1]:.2f}s after the third strike's POST", flush=True)
    print(f"block latency: median {statistics.median(latencies):.2f}s, max {max(latencies):.2f}s "
          f"over {len(latencies)} users")


if __name__ == "__main__":
    main()
