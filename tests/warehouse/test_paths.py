"""warehouse/paths.py: where each table lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse import paths


def test_the_warehouse_is_under_the_data_dir_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv("CHAT_WAREHOUSE_DIR", raising=False)
    monkeypatch.setenv("CHAT_DATA_DIR", str(tmp_path / "data"))
    assert paths.warehouse_dir() == tmp_path / "data" / "warehouse"
    assert paths.warehouse_dir(tmp_path / "given") == tmp_path / "given" / "warehouse"
    assert paths.table_path(paths.STRIKES) == tmp_path / "data" / "warehouse" / "strikes"
    monkeypatch.setenv("CHAT_WAREHOUSE_DIR", "/mnt/shared/wh")
    assert paths.warehouse_dir(tmp_path / "given") == Path("/mnt/shared/wh")  # the setting wins


def test_only_the_chats_tables_have_a_path(tmp_path):
    assert paths.table_path(paths.USER_STATS, tmp_path) == tmp_path / "user_stats"
    with pytest.raises(ValueError, match="unknown table 'users'; the tables are messages, strikes"):
        paths.table_path("users", tmp_path)
