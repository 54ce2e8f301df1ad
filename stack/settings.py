"""Configuration shared by the API, the Spark jobs and the local stack.

Every setting is an environment variable with a default that runs everything on
one machine; point them at a Kafka cluster or a Spark cluster and the same code
runs there. README.md ("Configuration") documents each one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

TOPIC_CHAT = "chat"
TOPIC_CONTROLLED = "chat_controlled"
TOPIC_NOTICES = "chat_notices"
# moderators' actions (unblock), from the API to the ledger: the ledger is the one writer of the Delta tables
TOPIC_ACTIONS = "chat_actions"
TOPICS = (TOPIC_CHAT, TOPIC_CONTROLLED, TOPIC_NOTICES, TOPIC_ACTIONS)

# A message as it travels in Kafka: exactly these keys, all strings.
MESSAGE_FIELDS = ("author", "data", "timestamp")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
MAX_AUTHOR_CHARS = 64
MAX_DATA_CHARS = 2000
MESSAGE_ID_HEADER = "message_id"
# on `chat_controlled`: "true" when the relay masked profanity in the message, else "false"
PROFANE_HEADER = "profane"
# profane messages (strikes) that block their author
STRIKE_LIMIT = 3


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str
    spark_master: str
    data_dir: Path
    api_host: str
    api_port: int
    ui_host: str
    ui_port: int
    api_url: str
    kafka_port: int
    kafka_controller_port: int
    topic_partitions: int
    replication_factor: int
    min_insync_replicas: int  # 0: 1 below three replicas, else 2 (stack/topics.py)
    session_ttl_s: int
    admin_token: str
    warehouse_location: Path | None = None  # CHAT_WAREHOUSE_DIR; None: DATA_DIR/warehouse

    @property
    def warehouse_dir(self) -> Path:
        return self.warehouse_location or self.data_dir / "warehouse"

    @property
    def checkpoint_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"


def _absolute(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def load() -> Settings:
    """Read the settings from the environment (call again after changing it)."""
    kafka_port = _env_int("CHAT_KAFKA_PORT", 9092)
    api_port = _env_int("CHAT_API_PORT", 5000)
    data_dir = _absolute(Path(_env("CHAT_DATA_DIR", str(REPO_ROOT / "var"))))
    return Settings(
        kafka_bootstrap=_env("CHAT_KAFKA_BOOTSTRAP", f"127.0.0.1:{kafka_port}"),
        spark_master=_env("CHAT_SPARK_MASTER", "local[*]"),
        data_dir=data_dir,
        api_host=_env("CHAT_API_HOST", "127.0.0.1"),
        api_port=api_port,
        ui_host=_env("CHAT_UI_HOST", "127.0.0.1"),
        ui_port=_env_int("CHAT_UI_PORT", 8000),
        api_url=_env("CHAT_API_URL", f"http://127.0.0.1:{api_port}"),
        kafka_port=kafka_port,
        kafka_controller_port=_env_int("CHAT_KAFKA_CONTROLLER_PORT", 9093),
        topic_partitions=_env_int("CHAT_TOPIC_PARTITIONS", 1),
        replication_factor=_env_int("CHAT_REPLICATION_FACTOR", 1),
        min_insync_replicas=_env_int("CHAT_MIN_INSYNC_REPLICAS", 0),
        session_ttl_s=_env_int("CHAT_SESSION_TTL_S", 1800),
        admin_token=_env("CHAT_ADMIN_TOKEN", ""),
        warehouse_location=_absolute(Path(_env("CHAT_WAREHOUSE_DIR", ""))) if _env("CHAT_WAREHOUSE_DIR", "") else None,
    )


def jars_dir() -> Path:
    """Where `make jars` puts the Maven-resolved jars (var/jars/{kafka,spark})."""
    return Path(_env("CHAT_JARS_DIR", str(REPO_ROOT / "var" / "jars")))
