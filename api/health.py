"""GET /health: is Kafka reachable, are the tails reading and caught up? 200 when all is well (ready to serve),
503 naming what is down; with the sizes of every in-memory map, so that state that only grows shows."""

from __future__ import annotations

import os
import socket

from flask import Blueprint, current_app

from api.accounts import get_accounts
from api.auth import get_auth
from api.feed import get_feed
from api.flood import get_flood
from api.notices import get_moderation
from api.producer import get_producer

bp = Blueprint("health", __name__)


def extra_sizes() -> dict:
    """The sizes the server around the app keeps (the ASGI front end's long-poll counts), when it runs."""
    sizes = current_app.extensions.get("chat_sizes")
    return sizes() if sizes else {}


def kafka_reachable(bootstrap: str, timeout: float = 0.5) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


@bp.get("/health")
def health():
    bootstrap = current_app.config["KAFKA_BOOTSTRAP"]
    kafka_up = kafka_reachable(bootstrap)
    feed = get_feed().status()
    moderation = get_moderation()
    limits = get_flood()
    notices = moderation.notices.status()
    snapshot = moderation.snapshot.status()
    auth = get_auth()
    board = auth.store.board
    accounts = get_accounts().store.board
    # not ready until the notices, the sessions and the accounts are read whole: before, a name or a strike could be missed
    down = [
        name
        for name, ok in (
            ("kafka", kafka_up),
            ("feed", feed["connected"]),
            ("notices", notices["connected"] and notices["caught_up"]),
            ("sessions", board.caught_up and (board.tail is None or board.connected)),
            ("accounts", accounts.caught_up and (accounts.tail is None or accounts.connected)),
        )
        if not ok
    ]
    body = {
        "status": "ok" if not down else "degraded",
        "down": down,
        "kafka": {"bootstrap": bootstrap, "reachable": kafka_up, "producer_connected": get_producer().is_connected()},
        "feed": feed,
        "notices": notices,
        # the blocked-status snapshot: stale or missing is reported, not fatal (the notices still block)
        "snapshot": snapshot,
        "sessions": {"live": auth.store.live_count()},
        # the messages of `chat` counted for the per-user rate limit (every process's posts), and the slow mode
        "rate_limit": {**limits.counter.status(), "slow_mode_s": limits.slow_mode.seconds},
        "memory": {
            **get_feed().sizes(),
            **moderation.notices.sizes(),
            **auth.sizes(),
            **get_accounts().sizes(),
            **limits.sizes(),
            **extra_sizes(),
        },
        "pid": os.getpid(),
    }
    return body, (200 if not down else 503)
