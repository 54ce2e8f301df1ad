"""GET /chat/settings (the slow mode and the rate limit, for anyone) and PUT /chat/slow_mode (moderators:
through `chat_actions`, which every API process follows, to the ledger)."""

from __future__ import annotations

import uuid

from flask import Blueprint, request

from api.accounts import get_accounts
from api.auth import require_moderator
from api.errors import ApiError
from api.flood import SLOW_MODE_ACTION, get_flood, slow_mode_seconds
from api.messages import utc_now
from api.producer import get_producer
from api.validation import json_object
from config import contract

bp = Blueprint("chat", __name__)

# the action's Kafka key: every slow-mode change in one partition, so every process applies them in one order
SLOW_MODE_KEY = "slow_mode"
# how long the moderator's request waits for its own process to apply the change (it is sent either way)
APPLY_WAIT_S = 2.0


def publish_slow_mode(producer, seconds: int, by: str) -> tuple[dict, tuple[int, int] | None]:
    """Put a slow-mode change on `chat_actions` (acknowledged by Kafka): the action, and where it is."""
    action = {"id": str(uuid.uuid4()), "action": SLOW_MODE_ACTION, "by": by, "timestamp": utc_now(), "seconds": seconds}
    return action, producer.publish(contract.TOPIC_ACTIONS, SLOW_MODE_KEY, action, [], what=f"action {action['id']}")


@bp.get("/chat/settings")
def chat_settings():
    accounts = get_accounts()
    return {
        **get_flood().settings(),
        "guest_names": accounts.guest_names,
        "password_min_chars": accounts.password_min_chars,
    }


@bp.put("/chat/slow_mode")
def set_slow_mode():
    """Set the chat's slow mode (`{"seconds": N}`, 0 lifts it); the API applies it when it reads it back."""
    moderator = require_moderator()
    body = json_object(request, "seconds")
    if "seconds" not in body:
        raise ApiError(400, "field_required", field="seconds")
    action, where = publish_slow_mode(get_producer(), slow_mode_seconds(body["seconds"]), moderator)
    slow_mode = get_flood().slow_mode
    if where is not None and slow_mode.connected:  # a process not reading Kafka applies it once it does
        slow_mode.wait_until(lambda: slow_mode.past(*where), APPLY_WAIT_S)
    return action, 202
