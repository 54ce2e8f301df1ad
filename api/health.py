"""GET /health: is Kafka reachable, is the feed reading? 200 when all is well, 503 naming what is down."""

from __future__ import annotations

import socket

from flask import Blueprint, current_app

from api.auth import get_auth
from api.feed import get_feed
from api.notices import get_moderation
from api.producer import get_producer

bp = Blueprint("health", __name__)


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
    notices = moderation.notices.status()
    snapshot = moderation.snapshot.status()
    down = [
        name
        for name, ok in (("kafka", kafka_up), ("feed", feed["connected"]), ("notices", notices["connected"]))
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
        "sessions": {"live": get_auth().store.live_count()},
    }
    return body, (200 if not down else 503)
