"""Where the Delta tables live: CHAT_WAREHOUSE_DIR/<table>, by default DATA_DIR/warehouse/<table>
(CHAT_DATA_DIR, default var/)."""
from __future__ import annotations

from pathlib import Path

from stack import settings

MESSAGES = "messages"
STRIKES = "strikes"
USER_MODERATION = "user_moderation"
REJECTED_MESSAGES = "rejected_messages"
MODERATOR_ACTIONS = "moderator_actions"
USER_STATS = "user_stats"
ALL_TABLES = (MESSAGES, STRIKES, USER_MODERATION, REJECTED_MESSAGES, MODERATOR_ACTIONS, USER_STATS)
DATABASE = "chat"


def warehouse_dir(data_dir: Path | None = None) -> Path:
    """DATA_DIR/warehouse of the given data directory, else the configured warehouse."""
    return data_dir / "warehouse" if data_dir else settings.load().warehouse_dir


def table_path(name: str, warehouse: Path | None = None) -> Path:
    if name not in ALL_TABLES:
        raise ValueError(f"unknown table {name!r}; the tables are {', '.join(ALL_TABLES)}")
    return (warehouse or warehouse_dir()) / name
