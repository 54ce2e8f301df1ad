"""stack/settings.py and the durability defaults derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import settings
from stack.topics import min_insync_for
from warehouse import paths


def test_defaults_run_everything_on_one_machine(monkeypatch):
    for name in (
        "CHAT_WAREHOUSE_DIR",
        "CHAT_DATA_DIR",
        "CHAT_KAFKA_BOOTSTRAP",
        "CHAT_REPLICATION_FACTOR",
        "CHAT_MIN_INSYNC_REPLICAS",
        "CHAT_SESSION_TTL_S",
        "CHAT_ADMIN_TOKEN",
        "CHAT_KAFKA_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert (s.kafka_bootstrap, s.replication_factor, s.min_insync_replicas) == ("127.0.0.1:9092", 1, 0)
    assert (s.session_ttl_s, s.admin_token) == (1800, "")
    assert s.warehouse_dir == settings.REPO_ROOT / "var" / "warehouse"


def test_a_cluster_is_configuration(monkeypatch):
    monkeypatch.setenv("CHAT_KAFKA_BOOTSTRAP", "k1:9092,k2:9092,k3:9092")
    monkeypatch.setenv("CHAT_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CHAT_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("CHAT_DATA_DIR", "/srv/chat")
    monkeypatch.setenv("CHAT_WAREHOUSE_DIR", "/mnt/shared/warehouse")
    s = settings.load()
    assert (s.kafka_bootstrap, s.replication_factor, s.spark_master) == (
        "k1:9092,k2:9092,k3:9092",
        3,
        "spark://127.0.0.1:7077",
    )
    assert (s.warehouse_dir, s.checkpoint_dir) == (Path("/mnt/shared/warehouse"), Path("/srv/chat/checkpoints"))
    assert paths.table_path(paths.MESSAGES) == Path("/mnt/shared/warehouse/messages")
    monkeypatch.setenv("CHAT_SESSION_TTL_S", "soon")
    with pytest.raises(SystemExit, match="CHAT_SESSION_TTL_S must be a whole number"):
        settings.load()


def test_acknowledged_writes_survive_one_broker_loss_when_there_are_replicas_to_spare():
    # acks=all waits for min.insync.replicas copies: 2 of 3 lets one broker go without refusing writes
    assert [min_insync_for(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 2]
