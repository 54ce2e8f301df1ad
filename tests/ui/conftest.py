"""Fixtures of the UI's tests: the real API on loopback (see live_api.py), and a double where it cannot serve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.live_api import Double, LiveApi, serve


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    """The real API app with Kafka, the relay and the ledger in memory; ``live.url`` is where it listens."""
    api = LiveApi(tmp_path / "api")
    with serve(api.recorder) as url:
        api.url = url
        try:
            yield api
        finally:
            api.release()


@pytest.fixture
def accounts(live: LiveApi) -> Any:
    """The live API's accounts (``api.accounts.Accounts``), with guest names off as the product's default."""
    accounts = live.app.extensions["chat_accounts"]
    accounts.guest_names = False
    return accounts


@pytest.fixture
def double() -> Iterator[tuple[Double, str]]:
    """A double of the API (only what a test tells it to answer), and its URL."""
    fake = Double()
    with serve(fake.flask) as url:
        yield fake, url
    assert fake.mismatches == [], "a JSON answer of the double does not keep (or break) api/openapi.yaml as declared"
