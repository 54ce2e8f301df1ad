"""The crash test kills the streams that every test of the session shares: it runs after all the others."""

from __future__ import annotations

LAST = "test_stack_crash.py"


def pytest_collection_modifyitems(items) -> None:
    last = [item for item in items if item.path.name == LAST]
    items[:] = [item for item in items if item.path.name != LAST] + last
