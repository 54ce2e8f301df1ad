"""warehouse/moderation_snapshot.py without Spark: times as the contract writes them, a missing table.
(Its reading of a table Spark wrote: tests/pipelines/test_ledger.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from warehouse.moderation_snapshot import ModerationSnapshot, _format_time


def test_times_are_utc_in_the_contracts_format():
    madrid = timezone(timedelta(hours=1))
    assert _format_time(datetime(2026, 11, 27, 11, 0, 5, tzinfo=madrid)) == "2026-11-27 10:00:05"
    assert _format_time(datetime(2026, 11, 27, 10, 0, 5, 123, tzinfo=UTC)) == "2026-11-27 10:00:05"
    assert _format_time(datetime(2026, 11, 27, 10, 0, 5)) == "2026-11-27 10:00:05"  # naive: already UTC
    assert _format_time(None) is None


def test_a_table_the_ledger_has_not_created_yet_is_no_user_and_a_status(tmp_path):
    snapshot = ModerationSnapshot(tmp_path / "user_moderation")
    assert snapshot.refresh() is False and snapshot.get("ana") is None
    assert snapshot.status()["error"] == "user_moderation does not exist yet (the ledger creates it)"
    assert (snapshot.status()["version"], snapshot.status()["users"]) == (None, 0)
