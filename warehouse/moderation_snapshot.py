"""The API's view of `user_moderation`: read with the `deltalake` package (no Spark, no JVM),
refreshed in the background whenever the table's version changes."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from config import contract
from config.object_store import Location, is_object

log = logging.getLogger(__name__)

COLUMNS = [
    "author",
    "messages",
    "strikes",
    "is_blocked",
    "blocked_at",
    "blocked_partition",
    "blocked_offset",
    "last_batch_id",
]


@dataclass(frozen=True)
class UserState:
    author: str
    messages: int
    strikes: int
    is_blocked: bool
    blocked_at: str | None = None  # contract.TIMESTAMP_FORMAT, UTC
    blocked_partition: int | None = None
    blocked_offset: int | None = None
    last_batch_id: int | None = None  # the ledger batch that last changed the row


def _format_time(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime(contract.TIMESTAMP_FORMAT)
    return str(value)


class ModerationSnapshot:
    """A dict author → UserState, swapped whole when a new table version is read."""

    def __init__(self, table_path: Location, refresh_s: float = 0.5, storage_options: dict[str, str] | None = None):
        self.table_path = table_path if is_object(table_path) else Path(table_path)
        self.storage_options = storage_options
        self.refresh_s = refresh_s
        self._users: dict[str, UserState] = {}
        self._blocked: tuple[str, ...] = ()  # the authors blocked in that version
        self._table = None
        self.version: int | None = None
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self.refresh()
            self._thread = threading.Thread(target=self._run, name="moderation-snapshot", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()

    def refresh(self) -> bool:
        """Read the table if its version changed; True when a new version was loaded."""
        from deltalake import DeltaTable

        try:
            if self._table is None:
                # delta-rs names the same place whether it is a path or on object storage
                uri = self.table_path.as_s3() if is_object(self.table_path) else str(self.table_path)
                if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                    self.error = "user_moderation does not exist yet (the ledger creates it)"
                    return False
                self._table = DeltaTable(uri, storage_options=self.storage_options)
            else:
                self._table.update_incremental()
            version = self._table.version()
            if version == self.version:
                self.error = None
                return False
            rows = self._table.to_pyarrow_table(columns=COLUMNS).to_pylist()
            self._users = {
                r["author"]: UserState(
                    author=r["author"],
                    messages=r["messages"],
                    strikes=r["strikes"],
                    is_blocked=r["is_blocked"],
                    blocked_at=_format_time(r["blocked_at"]),
                    blocked_partition=r["blocked_partition"],
                    blocked_offset=r["blocked_offset"],
                    last_batch_id=r["last_batch_id"],
                )
                for r in rows
            }
            self._blocked = tuple(a for a, state in self._users.items() if state.is_blocked)
            self.version, self.loaded_at, self.error = version, time.time(), None
            return True
        except Exception as exc:  # noqa: BLE001 - a bad read must not kill the refresher
            self.error = f"{type(exc).__name__}: {exc}"
            log.warning("moderation snapshot: %s", self.error)
            return False

    def get(self, author: str) -> UserState | None:
        return self._users.get(author)

    def authors(self) -> list[str]:
        """Every author of the table as last read (the dict is swapped whole on a refresh: listing it is safe)."""
        return list(self._users)

    def blocked_authors(self) -> tuple[str, ...]:
        """The authors blocked in the table as last read."""
        return self._blocked

    def status(self) -> dict:
        return {
            "table": str(self.table_path),
            "version": self.version,
            "users": len(self._users),
            "loaded_at": self.loaded_at,
            "error": self.error,
        }
