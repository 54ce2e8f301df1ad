"""Looking at the running stack from the outside: posting, its Delta tables, its processes."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.conftest import auth


def post(api_url, author, data):
    response = requests.post(f"{api_url}/messages", json={"data": data}, headers=auth(api_url, author), timeout=20)
    assert response.status_code == 202, response.text
    return response.json()


def delta_rows(stack, table, **equal) -> list[dict]:
    """Rows of a Delta table of the running stack, read with deltalake (as the API does)."""
    from deltalake import DeltaTable

    rows = DeltaTable(str(stack.data_dir / "warehouse" / table)).to_pyarrow_table().to_pylist()
    return [r for r in rows if all(r.get(k) == v for k, v in equal.items())]


def wait_until(predicate, timeout_s=300, every_s=0.25):
    """The ledger's micro-batches take seconds to tens of seconds on 2 busy cores: be patient."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError("timed out")


def child_pid(parent: int, needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and needle in cmdline:
            return int(entry.name)
    return None
