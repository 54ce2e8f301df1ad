"""An in-process stand-in for the Kafka topic `chat_sessions`, for the API's and the UI's tests without a
broker; the API's own tests on a real broker (tests/api/test_api_hosts.py) cover the topic itself."""

from __future__ import annotations

import json
import threading
import time

from api.auth import SessionBoard


class LocalSessionLog:
    """An in-process stand-in for `chat_sessions` (tests without a broker): records appended in order and
    handed at once to every board attached, as each process's tail would read them; a board attached
    later reads what came before, as a restarted process does."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, float]] = []
        self.boards: list[SessionBoard] = []
        self._lock = threading.Lock()

    def attach(self, board: SessionBoard) -> None:
        with self._lock:
            for offset, (author, value, at) in enumerate(self.records):
                board.apply(author, value, 0, offset, at)
            self.boards.append(board)
            board.assigned({0: len(self.records)})
            board.mark_caught_up()

    def append(self, author: str, record: dict | None, wait: bool = True) -> tuple[int, int]:
        value = None if record is None else json.dumps(record).encode("utf-8")
        with self._lock:
            offset, at = len(self.records), time.time()
            self.records.append((author, value, at))
            for board in self.boards:
                board.apply(author, value, 0, offset, at)
        return 0, offset
