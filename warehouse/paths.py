"""Where the Delta tables live: CHAT_WAREHOUSE_DIR/<table>, by default DATA_DIR/warehouse/<table>; a path or an
s3a:// location (config/object_store.py)."""

from __future__ import annotations

from pathlib import Path

from config import settings
from config.object_store import Location

MESSAGES = "messages"
STRIKES = "strikes"
USER_MODERATION = "user_moderation"
REJECTED_MESSAGES = "rejected_messages"
MODERATOR_ACTIONS = "moderator_actions"
USER_STATS = "user_stats"
ACCOUNTS = "accounts"
ALL_TABLES = (MESSAGES, STRIKES, USER_MODERATION, REJECTED_MESSAGES, MODERATOR_ACTIONS, USER_STATS, ACCOUNTS)
DATABASE = "chat"


def warehouse_dir(data_dir: Path | None = None) -> Location:
    """The warehouse: CHAT_WAREHOUSE_DIR when it is set, else DATA_DIR/warehouse of `data_dir`
    (a command's --data-dir) or of CHAT_DATA_DIR."""
    s = settings.load()
    if s.warehouse_location is not None:
        return s.warehouse_location
    return (data_dir or s.data_dir) / "warehouse"


def table_path(name: str, warehouse: Location | None = None) -> Location:
    if name not in ALL_TABLES:
        raise ValueError(f"unknown table {name!r}; the tables are {', '.join(ALL_TABLES)}")
    return (warehouse or warehouse_dir()) / name
