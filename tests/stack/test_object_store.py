"""The chat with its Delta tables and checkpoints on object storage: `make up`'s stack with CHAT_WAREHOUSE_DIR and
CHAT_CHECKPOINT_DIR on s3a:// locations of a real S3 server (S3Proxy, from Maven, on loopback) — messages flow,
the tables fill, a streams crash resumes from the S3 checkpoints with nothing lost or counted twice, the statistics
job and a SQL query read the tables, the API's snapshot reads the block, and `python -m pipelines.maintenance`
compacts and vacuums them there. Bad settings fail at once, named.
The four tests on the stack run in this order on one stack: the later ones read what the first one wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from config.object_store import ObjectStore, parse_object_location
from stack import harness
from stack.processes import child_env
from stack.s3proxy import S3Proxy
from tests.conftest import DEFAULT_JIT, auth
from tests.stack.running import child_pid, post, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

BUCKET = "chat-lake"
WAREHOUSE = f"s3a://{BUCKET}/prod/warehouse"
CHECKPOINTS = f"s3a://{BUCKET}/prod/checkpoints"
PROFANE = "qué mierda"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    proxy = S3Proxy(tmp_path_factory.mktemp("s3proxy"))
    proxy.create_bucket(BUCKET)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def s3_settings(proxy: S3Proxy) -> dict[str, str]:
    return {**proxy.env(), "CHAT_WAREHOUSE_DIR": WAREHOUSE, "CHAT_CHECKPOINT_DIR": CHECKPOINTS}


@pytest.fixture(scope="module")
def s3_stack(s3, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("s3-stack")
    try:
        # no timed OPTIMIZE in the streams: the by-hand run below must be the only other committer on S3
        env = {**harness.UNLIMITED_POSTS, **DEFAULT_JIT, **s3_settings(s3), "CHAT_MAINTENANCE_INTERVAL_S": "0"}
        stack = harness.start_stack(data_dir, env=env)
    except harness.StackError as exc:
        pytest.fail(str(exc))
    try:
        yield stack
    finally:
        harness.stop_stack(stack)


def delta_rows(proxy: S3Proxy, table: str) -> list[dict]:
    """A table's rows read as the API reads them (delta-rs), from the object store."""
    from deltalake import DeltaTable

    store = ObjectStore(proxy.endpoint, path_style=True, credentials_file=proxy.credentials_file)
    location = parse_object_location(f"{WAREHOUSE}/{table}", "table")
    return DeltaTable(location.as_s3(), storage_options=store.storage_options()).to_pyarrow_table().to_pylist()


def ids_in(proxy: S3Proxy, table: str, author: str) -> list[str]:
    try:
        return sorted(r["message_id"] for r in delta_rows(proxy, table) if r["author"] == author)
    except Exception:  # noqa: BLE001 - the table is not there yet
        return []


def test_the_chat_runs_with_its_tables_and_checkpoints_on_s3(s3, s3_stack):
    api = s3_stack.api_url
    sent = [post(api, "lago", f"hola {i}")["id"] for i in range(3)]
    assert wait_until(lambda: ids_in(s3, "messages", "lago") == sorted(sent), timeout_s=240)
    # nothing of the warehouse or the checkpoints went to the local data directory
    assert not (s3_stack.data_dir / "warehouse").exists() and not (s3_stack.data_dir / "checkpoints").exists()
    stored = {p.relative_to(s3.buckets / BUCKET).parts[:3] for p in (s3.buckets / BUCKET).rglob("_delta_log")}
    assert ("prod", "warehouse", "messages") in stored
    assert (s3.buckets / BUCKET / "prod" / "checkpoints" / "ledger" / "offsets").is_dir()
    assert (s3.buckets / BUCKET / "prod" / "checkpoints" / "relay" / "offsets").is_dir()

    # three strikes: the ledger records the block on S3, and the API's snapshot (delta-rs) reads it there
    for _ in range(3):
        post(api, "troll", PROFANE)

    def snapshot_blocked():
        snapshot = requests.get(f"{api}/health", timeout=10).json()["snapshot"]
        return snapshot["table"].startswith("s3a://") and snapshot["error"] is None and snapshot["users"] >= 2

    wait_until(snapshot_blocked, timeout_s=240)
    [row] = [r for r in delta_rows(s3, "user_moderation") if r["author"] == "troll"]
    assert row["is_blocked"] and row["strikes"] == 3
    refused = requests.post(f"{api}/messages", json={"data": "hola"}, headers=auth(api, "troll"), timeout=20)
    assert refused.status_code == 403


def test_a_streams_crash_resumes_from_the_s3_checkpoints_with_nothing_lost_or_twice(s3, s3_stack):
    api = s3_stack.api_url
    before = [post(api, "rio", f"antes {i}")["id"] for i in range(3)]
    pid = child_pid(s3_stack.process.pid, "pipelines.streams")
    assert pid
    os.killpg(pid, signal.SIGKILL)  # `make up` restarts the streams, which resume from their S3 checkpoints
    after = [post(api, "rio", f"después {i}")["id"] for i in range(3)]
    wait_until(lambda: child_pid(s3_stack.process.pid, "pipelines.streams") not in (None, pid), timeout_s=120)
    assert wait_until(lambda: ids_in(s3, "messages", "rio") == sorted(before + after), timeout_s=300)
    seen = requests.get(f"{api}/messages", params={"limit": 500}, headers=auth(api, "rio"), timeout=30).json()
    assert sorted(m["id"] for m in seen["messages"] if m["author"] == "rio") == sorted(before + after)


def test_the_statistics_job_and_a_sql_query_read_the_tables_on_s3(s3, s3_stack):
    env = child_env(**s3_settings(s3), CHAT_DATA_DIR=str(s3_stack.data_dir))
    stats = subprocess.run(
        [sys.executable, "-m", "pipelines.user_stats"], env=env, capture_output=True, text=True, timeout=600
    )
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert WAREHOUSE in stats.stdout
    users = {r["author"]: r for r in delta_rows(s3, "user_stats")}
    assert users["troll"]["is_blocked"] and users["lago"]["messages"] == 3
    sql = subprocess.run(
        [sys.executable, "-m", "pipelines.sql", "-e", "SELECT count(*) AS n FROM chat.messages WHERE author = 'lago'"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sql.returncode == 0, sql.stdout + sql.stderr
    assert sql.stdout.splitlines()[:4] == ["n", "-", "3", "(1 row)"], sql.stdout


def data_files(proxy: S3Proxy, table: str) -> int:
    """Data files in the table's current version (delta-rs)."""
    from deltalake import DeltaTable

    store = ObjectStore(proxy.endpoint, path_style=True, credentials_file=proxy.credentials_file)
    location = parse_object_location(f"{WAREHOUSE}/{table}", "table")
    return len(DeltaTable(location.as_s3(), storage_options=store.storage_options()).file_uris())


def test_maintenance_by_hand_compacts_and_vacuums_the_tables_on_s3_and_they_read_the_same(s3, s3_stack):
    # three ledger batches, so `messages` has at least three small files to compact
    for i in range(3):
        sent = post(s3_stack.api_url, "mantenimiento", f"lote {i}")["id"]
        assert wait_until(lambda sent=sent: sent in ids_in(s3, "messages", "mantenimiento"), timeout_s=240)
    # the ledger commits `user_moderation` after `messages`: wait for the last batch's MERGE too
    assert wait_until(
        lambda: [r["messages"] for r in delta_rows(s3, "user_moderation") if r["author"] == "mantenimiento"] == [3],
        timeout_s=240,
    )
    tables = ("messages", "strikes", "user_moderation")
    rows = {t: sorted(map(repr, delta_rows(s3, t))) for t in tables}
    files = {t: data_files(s3, t) for t in tables}
    assert files["messages"] >= 3
    objects = set((s3.buckets / BUCKET / "prod" / "warehouse" / "messages").rglob("*.parquet"))

    # the chat is idle during the run (nothing posted; the stack's streams run no OPTIMIZE of their own): on S3
    # one driver may commit to a table at a time, which the command's warning says
    env = child_env(**s3_settings(s3), CHAT_DATA_DIR=str(s3_stack.data_dir))
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.maintenance"], env=env, capture_output=True, text=True, timeout=900
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "run this only while the chat's streams are stopped" in run.stderr
    assert f"maintenance: optimize messages: {files['messages']:,} -> " in run.stdout, run.stdout
    assert "maintenance: vacuum messages: " in run.stdout and WAREHOUSE in run.stdout, run.stdout
    assert {t: sorted(map(repr, delta_rows(s3, t))) for t in tables} == rows
    assert data_files(s3, "messages") < files["messages"]
    assert data_files(s3, "strikes") <= files["strikes"]
    # VACUUM kept the compacted files (removed less than the 7 days' retention ago) and the current version reads
    assert objects <= set((s3.buckets / BUCKET / "prod" / "warehouse" / "messages").rglob("*.parquet"))


@pytest.mark.parametrize(
    "change, named",
    [
        ({"CHAT_S3_ENDPOINT": "http://127.0.0.1:9"}, "CHAT_S3_ENDPOINT"),
        (
            {"CHAT_S3_CREDENTIALS_FILE": None, "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
            "AWS_ACCESS_KEY_ID",
        ),
        ({"CHAT_WAREHOUSE_DIR": "s3://chat-lake/prod"}, "CHAT_WAREHOUSE_DIR"),
        ({"CHAT_WAREHOUSE_DIR": "s3a://no-such-bucket/prod"}, "the bucket no-such-bucket does not exist"),
    ],
)
def test_bad_object_store_settings_stop_the_statistics_job_at_once_naming_the_setting(s3, tmp_path, change, named):
    env = child_env(**{**s3_settings(s3), "CHAT_DATA_DIR": str(tmp_path), **change})
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.user_stats"], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    assert named in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_a_denied_write_stops_the_statistics_job_at_once_naming_the_setting(s3, tmp_path):
    wrong = tmp_path / "credentials"
    wrong.write_text(f"[default]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = not-the-secret\n")
    wrong.chmod(0o600)
    env = child_env(**{**s3_settings(s3), "CHAT_DATA_DIR": str(tmp_path), "CHAT_S3_CREDENTIALS_FILE": str(wrong)})
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.user_stats"], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0
    assert f"CHAT_WAREHOUSE_DIR {WAREHOUSE}: cannot write there" in run.stdout + run.stderr
    assert "not-the-secret" not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
