"""s3a:// locations and the object store's settings (config/object_store.py), without a server; the real S3
server's tests are tests/stack/test_object_store.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import settings
from config.object_store import ObjectLocation, ObjectStore, parse_object_location


def test_a_location_joins_like_a_path_and_prints_as_the_uri_spark_takes():
    base = parse_object_location("s3a://chat-lake/prod/warehouse/", "CHAT_WAREHOUSE_DIR")
    assert base == ObjectLocation("chat-lake", "prod/warehouse")
    assert str(base / "messages") == "s3a://chat-lake/prod/warehouse/messages"
    assert (base / "messages" / "_delta_log").name == "_delta_log"
    assert (base / "messages").as_s3() == "s3://chat-lake/prod/warehouse/messages"
    assert str(parse_object_location("s3a://chat-lake", "X") / "t") == "s3a://chat-lake/t"


@pytest.mark.parametrize(
    "raw, says",
    [
        ("s3://chat-lake/w", "use the s3a:// scheme"),
        ("s3a://Chat_Lake/w", "bucket in lower case"),
        ("s3a://ab/w", "s3a://<bucket>/<prefix>"),
        ("hdfs://nn/w", "s3a://<bucket>/<prefix>"),
        ("s3a://chat-lake/w?x=1", "s3a://<bucket>/<prefix>"),
    ],
)
def test_a_malformed_location_is_refused_naming_the_setting(raw, says):
    with pytest.raises(SystemExit, match="CHAT_WAREHOUSE_DIR") as refused:
        parse_object_location(raw, "CHAT_WAREHOUSE_DIR")
    assert says in str(refused.value)


def test_the_settings_take_a_path_or_a_location_for_the_warehouse_and_the_checkpoints(monkeypatch, tmp_path):
    monkeypatch.setenv("CHAT_DATA_DIR", str(tmp_path))
    for name in ("CHAT_WAREHOUSE_DIR", "CHAT_CHECKPOINT_DIR"):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert (s.warehouse_dir, s.checkpoint_dir) == (tmp_path / "warehouse", tmp_path / "checkpoints")
    assert not s.on_object_store
    monkeypatch.setenv("CHAT_CHECKPOINT_DIR", "s3a://chat-lake/cp")
    s = settings.load()
    assert s.checkpoint_dir == ObjectLocation("chat-lake", "cp") and isinstance(s.warehouse_dir, Path)
    assert s.on_object_store
    monkeypatch.setenv("CHAT_WAREHOUSE_DIR", "s3://chat-lake/w")
    with pytest.raises(SystemExit, match="CHAT_WAREHOUSE_DIR: use the s3a:// scheme"):
        settings.load()


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_credentials_come_from_the_file_or_else_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    assert ObjectStore().credentials() == ("env-key", "env-secret")
    file = private_file(
        tmp_path / "credentials", "[default]\naws_access_key_id = f-key\naws_secret_access_key = f-secret\n"
    )
    assert ObjectStore(credentials_file=file).credentials() == ("f-key", "f-secret")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(
        SystemExit, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set CHAT_S3_CREDENTIALS_FILE"
    ):
        ObjectStore().credentials()


def test_a_broken_credentials_file_is_named_without_quoting_the_secret(tmp_path):
    broken = private_file(tmp_path / "credentials", "aws_secret_access_key = s3cr3t-value\n")  # no [default]
    with pytest.raises(SystemExit) as refused:
        ObjectStore(credentials_file=broken).credentials()
    assert str(broken) in str(refused.value) and "s3cr3t-value" not in str(refused.value)
    empty = private_file(tmp_path / "empty", "[default]\naws_access_key_id = k\n")
    with pytest.raises(SystemExit, match="has no \\[default\\] aws_access_key_id and aws_secret_access_key"):
        ObjectStore(credentials_file=empty).credentials()


def test_spark_and_delta_rs_get_the_same_endpoint_region_style_and_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    local = ObjectStore(endpoint="http://127.0.0.1:9000", region="eu-west-1", path_style=True)
    conf = local.spark_conf()
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-1"
    assert (conf["spark.hadoop.fs.s3a.access.key"], conf["spark.hadoop.fs.s3a.secret.key"]) == ("k", "s")
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    options = local.storage_options()
    assert options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false" and options["AWS_REGION"] == "eu-west-1"
    aws = ObjectStore()  # AWS itself: no endpoint, TLS, virtual-hosted buckets
    assert "spark.hadoop.fs.s3a.endpoint" not in aws.spark_conf() and "AWS_ENDPOINT_URL" not in aws.storage_options()
    assert aws.spark_conf()["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"


def test_an_endpoint_that_does_not_answer_is_named():
    with pytest.raises(SystemExit, match="CHAT_S3_ENDPOINT http://127.0.0.1:9 does not answer"):
        ObjectStore(endpoint="http://127.0.0.1:9").check_reachable(timeout_s=2)
    with pytest.raises(SystemExit, match="CHAT_S3_ENDPOINT must be an http:// or https:// URL"):
        ObjectStore(endpoint="127.0.0.1:9000").check_reachable()
