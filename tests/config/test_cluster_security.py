"""config/cluster_security.py: the Kafka and Spark security settings turned into client arguments (the real
broker's side is tests/stack/test_secured_kafka.py)."""

from __future__ import annotations

import os

import pytest

from config import cluster_security, settings
from config.cluster_security import KafkaAuth, jaas_quote, spark_auth_conf
from config.private import NotPrivate, create_private

SECURED_ENV = ("CHAT_KAFKA_SECURITY_PROTOCOL", "CHAT_KAFKA_SASL_USERNAME", "CHAT_KAFKA_SASL_PASSWORD_FILE")


@pytest.fixture
def secret_files(tmp_path):
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    create_private(folder / "api.password", 's3cret-"quoted\\-password\n')
    (folder / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return folder


def secure(monkeypatch, folder) -> None:
    monkeypatch.setenv("CHAT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CHAT_KAFKA_SASL_USERNAME", "chat-api")
    monkeypatch.setenv("CHAT_KAFKA_SASL_PASSWORD_FILE", str(folder / "api.password"))
    monkeypatch.setenv("CHAT_KAFKA_SSL_CAFILE", str(folder / "ca.pem"))


def test_the_default_adds_nothing_the_loopback_chat_stays_plaintext(monkeypatch):
    for name in (*SECURED_ENV, "CHAT_KAFKA_SSL_CAFILE", "CHAT_SPARK_AUTH_SECRET_FILE"):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert (s.kafka_security_protocol, s.kafka_sasl_password_file, s.spark_auth_secret_file) == (
        "PLAINTEXT",
        None,
        None,
    )
    assert cluster_security.kafka_client_kwargs() == {}
    assert cluster_security.kafka_spark_options() == {}
    assert spark_auth_conf(s.spark_auth_secret_file) == {}


def test_sasl_ssl_gives_the_clients_scram_over_tls_with_the_password_from_its_file(monkeypatch, secret_files):
    secure(monkeypatch, secret_files)
    password = 's3cret-"quoted\\-password'
    assert cluster_security.kafka_client_kwargs() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "chat-api",
        "sasl_plain_password": password,
        "ssl_cafile": str(secret_files / "ca.pem"),
        "ssl_check_hostname": True,
    }
    options = cluster_security.kafka_spark_options()
    assert options["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="chat-api" password="s3cret-\\"quoted\\\\-password";'
    )
    assert {k: v for k, v in options.items() if k != "kafka.sasl.jaas.config"} == {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(secret_files / "ca.pem"),
    }
    # the password is in no setting's value: `python -m config` lists the file's name only
    assert not [row for row in settings.describe() if password in row[2]]


def test_jaas_quote_escapes_quotes_and_backslashes():
    assert jaas_quote('a"b\\c') == '"a\\"b\\\\c"'


def test_sasl_ssl_without_its_settings_names_what_is_missing(monkeypatch, secret_files):
    secure(monkeypatch, secret_files)
    monkeypatch.delenv("CHAT_KAFKA_SASL_USERNAME")
    monkeypatch.delenv("CHAT_KAFKA_SSL_CAFILE")
    with pytest.raises(SystemExit, match="needs CHAT_KAFKA_SASL_USERNAME, CHAT_KAFKA_SSL_CAFILE set too"):
        cluster_security.kafka_client_kwargs()
    monkeypatch.setenv("CHAT_KAFKA_SECURITY_PROTOCOL", "SSL")
    with pytest.raises(SystemExit, match="CHAT_KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SASL_SSL"):
        settings.load()


def test_a_password_file_others_can_read_or_an_empty_one_is_refused(monkeypatch, secret_files):
    secure(monkeypatch, secret_files)
    password_file = secret_files / "api.password"
    os.chmod(password_file, 0o644)
    with pytest.raises(NotPrivate, match="chmod 600"):
        cluster_security.kafka_client_kwargs()
    os.chmod(password_file, 0o600)
    password_file.write_text("\n")
    with pytest.raises(SystemExit, match="CHAT_KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        cluster_security.kafka_client_kwargs()
    password_file.unlink()
    with pytest.raises(SystemExit, match="does not exist"):
        cluster_security.kafka_spark_options()


def test_a_missing_ca_file_is_named(tmp_path):
    with pytest.raises(SystemExit, match="CHAT_KAFKA_SSL_CAFILE: .* is not a file"):
        KafkaAuth("SASL_SSL", "chat-api", tmp_path / "pw", tmp_path / "nowhere.pem")


def test_the_spark_secret_turns_on_authentication_and_rpc_encryption(tmp_path):
    create_private(tmp_path / "spark.secret", "shared-secret\n")
    assert spark_auth_conf(tmp_path / "spark.secret") == {
        "spark.authenticate": "true",
        "spark.authenticate.secret": "shared-secret",
        "spark.network.crypto.enabled": "true",
    }
    os.chmod(tmp_path / "spark.secret", 0o640)
    with pytest.raises(NotPrivate):
        spark_auth_conf(tmp_path / "spark.secret")
