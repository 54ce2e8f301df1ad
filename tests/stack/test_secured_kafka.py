"""The secured cluster profile against a real broker (stack/broker.py with BrokerSecurity, stack/acls.py): SCRAM
users over TLS, and ACLs that let only the streams write the moderated feed and the notices.

One secured broker for the module; the API's and the streams' own client code is used with each role's
credentials. Marked `cluster` with the other cluster tests: `pytest -m cluster tests/stack/test_secured_kafka.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError
from py4j.protocol import Py4JJavaError

from api.errors import ApiError
from api.producer import ChatProducer
from api.tail import Follower, KafkaTail
from config import contract
from config.cluster_security import SECURED, KafkaAuth, spark_auth_conf
from config.private import create_private, private_dir, read_private
from pipelines.relay import start_relay
from pipelines.wordlists import load_word_lists
from stack.acls import API_USER, STREAMS_USER, provision
from stack.broker import BrokerSecurity, KafkaBroker, free_port, port_open
from stack.cluster import SparkStandalone
from stack.topics import create_topics

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    # kafka-python leaves the TLS sockets of a refused connection to the garbage collector, as pyproject's
    # filter says of plain sockets: refused connections are what these tests make
    pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"),
]


@dataclass
class Secured:
    broker: KafkaBroker
    security: BrokerSecurity
    auth: dict[str, KafkaAuth]  # each role's credentials, as its process is given them
    home: Path

    def kwargs(self, user: str) -> dict:
        return self.auth[user].client_kwargs()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    home = tmp_path_factory.mktemp("secured")
    security = BrokerSecurity(home / "security")
    broker = KafkaBroker(home / "broker", free_port(), free_port(), home / "log" / "kafka.log", security=security)
    broker.start()
    try:
        admin = broker.admin_kwargs()
        create_topics(broker.bootstrap, security=admin)
        auth = provision(broker.bootstrap, home / "secrets", security.ca_file, admin)
        yield Secured(broker, security, auth, home)
    finally:
        broker.stop()


def refusal(producer: ChatProducer, topic: str) -> BaseException:
    """What Kafka answered when `producer` published one record to `topic` (the API's 503 carries it)."""
    with pytest.raises(ApiError) as refused:
        producer.publish(topic, "ana", {"author": "ana"}, [], what="message m-1")
    assert refused.value.status == 503
    return refused.value.__cause__


def test_the_apis_credentials_write_its_topics_and_cannot_write_a_notice_or_the_moderated_feed(secured):
    producer = ChatProducer(secured.broker.bootstrap, send_timeout_s=5, security=secured.kwargs(API_USER))
    try:
        for topic in (contract.TOPIC_CHAT, contract.TOPIC_ACTIONS, contract.TOPIC_SESSIONS, contract.TOPIC_ACCOUNTS):
            partition, offset = producer.publish(topic, "ana", {"author": "ana"}, [], what="message m-1")
            assert (partition, offset) == (0, 0)
        # a forged "blocked" notice or an unmoderated message in the feed: refused by the broker
        assert isinstance(refusal(producer, contract.TOPIC_NOTICES), TopicAuthorizationFailedError)
        assert isinstance(refusal(producer, contract.TOPIC_CONTROLLED), TopicAuthorizationFailedError)
    finally:
        producer.close()


def test_only_the_streams_write_notices_and_the_api_reads_them_with_its_own_tail(secured):
    streams = ChatProducer(secured.broker.bootstrap, send_timeout_s=5, security=secured.kwargs(STREAMS_USER))
    notice = {"author": "ana", "kind": "blocked"}
    try:
        assert streams.publish(contract.TOPIC_NOTICES, "ana", notice, [], what="message n-1") == (0, 0)
        assert streams.publish(contract.TOPIC_CONTROLLED, "ana", notice, [], what="message c-1") == (0, 0)
        # the streams read `chat`; they never write it
        assert isinstance(refusal(streams, contract.TOPIC_CHAT), TopicAuthorizationFailedError)
    finally:
        streams.close()

    # the API's tail (one consumer, no group) reads the notice with the API's credentials
    class Notices(Follower):
        topic = contract.TOPIC_NOTICES

        def __init__(self):
            super().__init__()
            self.seen = []

        def handle(self, record):
            with self._cond:
                self.seen.append(json.loads(record.value))
                self.positions[record.partition] = record.offset + 1
                self.changed()

    notices = Notices()
    tail = KafkaTail(secured.broker.bootstrap, [notices], name="notices", security=secured.kwargs(API_USER))
    tail.start()
    try:
        assert notices.wait_until(lambda: notices.seen, 60), tail.last_error
        assert notices.seen == [notice]
    finally:
        tail.stop()


def test_the_streams_cannot_read_the_sessions_or_the_accounts_and_no_role_can_join_a_group(secured):
    """Least rights: the sessions and the accounts (password hashes) are the API's alone; neither role has a
    consumer group, not even one named as Spark's Kafka source names its own (the relay test below runs without
    one)."""
    for topic in (contract.TOPIC_SESSIONS, contract.TOPIC_ACCOUNTS):
        tp = TopicPartition(topic, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=secured.broker.bootstrap, group_id=None, **secured.kwargs(STREAMS_USER)
        )
        try:
            consumer.assign([tp])
            with pytest.raises(TopicAuthorizationFailedError):
                consumer.end_offsets([tp])
        finally:
            consumer.close()
    for user, group in ((API_USER, "chat-api-group"), (STREAMS_USER, "spark-kafka-source-relay")):
        consumer = KafkaConsumer(
            contract.TOPIC_CONTROLLED if user == API_USER else contract.TOPIC_CHAT,
            bootstrap_servers=secured.broker.bootstrap,
            group_id=group,
            consumer_timeout_ms=10_000,
            **secured.kwargs(user),
        )
        try:
            with pytest.raises(KafkaError, match="GroupAuthorizationFailed"):
                consumer.poll(timeout_ms=10_000)
        finally:
            consumer.close()


def test_no_credentials_a_wrong_password_a_plaintext_client_or_another_ca_are_refused(secured, tmp_path, caplog):
    bootstrap = secured.broker.bootstrap
    wrong = private_dir(tmp_path / "wrong")
    create_private(wrong / "password", "not-the-password")
    ca_file = secured.security.ca_file
    # a broker certificate from another CA (a man in the middle's) is not trusted
    other = BrokerSecurity(tmp_path / "other-ca")
    other.ensure()
    # what the client tries, and why it failed: the client's log says so, except for bad credentials, where the
    # broker answers and closes at once and kafka-python may log only the closed socket: the broker's log says so
    invalid_credentials = "Authentication failed during authentication due to invalid credentials"
    attempts = {
        "plaintext": ({}, "socket disconnected", None),
        "wrong password": (
            KafkaAuth(SECURED, API_USER, wrong / "password", ca_file).client_kwargs(),
            None,
            invalid_credentials,
        ),
        "unknown user": (
            KafkaAuth(SECURED, "mallory", secured.auth[API_USER].password_file, ca_file).client_kwargs(),
            None,
            invalid_credentials,
        ),
        "another CA": (
            {**secured.kwargs(API_USER), "ssl_cafile": str(other.ca_file)},
            "CERTIFICATE_VERIFY_FAILED",
            None,
        ),
    }
    broker_log = secured.broker.log_file
    for what, (kwargs, client_says, broker_says) in attempts.items():
        caplog.clear()
        logged = broker_log.stat().st_size
        with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
            KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000, **kwargs)
        if client_says:
            assert client_says in caplog.text, what
        if broker_says:
            with broker_log.open("rb") as log_file:
                log_file.seek(logged)
                assert broker_says in log_file.read().decode(errors="replace"), what
    assert "SaslAuthenticationFailedError" not in caplog.text  # the last one never got as far as SCRAM
    # the same calls with the API's credentials pass: the refusals above are about the credentials
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **secured.kwargs(API_USER))
    try:
        assert set(admin.list_topics()) >= {contract.TOPIC_CHAT, contract.TOPIC_NOTICES}
    finally:
        admin.close()


def test_no_password_reaches_a_log_a_command_line_or_a_file_others_can_read(secured):
    passwords = [secured.security.admin_password(), secured.security.store_password()]
    passwords += [a.password() for a in secured.auth.values()]
    log = secured.broker.log_file.read_text(errors="replace")
    assert "SCRAM-SHA-512" in log or "SASL_SSL" in log  # the log is the secured broker's
    assert not [p for p in passwords if p in log]
    cmdline = Path(f"/proc/{secured.broker.process.pid}/cmdline").read_bytes().decode(errors="replace")
    assert not [p for p in passwords if p in cmdline]
    assert not (secured.broker.home / "format.args").exists()
    for path in (secured.security.home, secured.broker.home):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    for path in (
        secured.security.admin_password_file,
        secured.security.store_password_file,
        secured.security.keystore,
        secured.broker.config_file,
    ):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert "BEGIN CERTIFICATE" in secured.security.ca_file.read_text()
    assert not list(secured.security.home.glob("*.csr"))


def test_a_plaintext_producer_cannot_send_to_the_secured_listener(secured):
    with pytest.raises(KafkaError):
        producer = KafkaProducer(
            bootstrap_servers=secured.broker.bootstrap, bootstrap_timeout_ms=5000, max_block_ms=5000
        )
        try:
            producer.send(contract.TOPIC_NOTICES, b"unblocked").get(timeout=10)
        finally:
            producer.close()


@pytest.mark.timeout(600)
def test_a_message_goes_through_the_api_and_the_spark_relay_on_the_secured_broker(
    secured, spark, tmp_path, monkeypatch
):
    """The streams as their process is configured (the settings, not arguments): Spark's Kafka source and sink
    with SASL_SSL and the streams' user, whose ACLs are enough for the relay's reads and writes."""
    streams = secured.auth[STREAMS_USER]
    for name, value in (
        ("CHAT_KAFKA_SECURITY_PROTOCOL", SECURED),
        ("CHAT_KAFKA_SASL_USERNAME", STREAMS_USER),
        ("CHAT_KAFKA_SASL_PASSWORD_FILE", str(streams.password_file)),
        ("CHAT_KAFKA_SSL_CAFILE", str(streams.cafile)),
    ):
        monkeypatch.setenv(name, value)
    producer = ChatProducer(secured.broker.bootstrap, send_timeout_s=5, security=secured.kwargs(API_USER))
    message = {"author": "bob", "data": "qué m1erda", "timestamp": "2026-12-01 10:00:00"}
    try:
        producer.send("m-secured", message)
    finally:
        producer.close()
    query = start_relay(spark, secured.broker.bootstrap, tmp_path / "checkpoint", "microbatch", load_word_lists())
    consumer = KafkaConsumer(bootstrap_servers=secured.broker.bootstrap, **secured.kwargs(API_USER))
    try:
        consumer.assign([TopicPartition(contract.TOPIC_CONTROLLED, 0)])
        consumer.seek_to_beginning()
        relayed = []
        while not relayed:
            assert query.isActive, query.exception()
            for batch in consumer.poll(timeout_ms=1000).values():
                relayed += [r for r in batch if dict(r.headers).get(contract.MESSAGE_ID_HEADER) == b"m-secured"]
        [record] = relayed
        assert (record.key, json.loads(record.value)) == (b"bob", {**message, "data": "qué ******"})
    finally:
        consumer.close()
        query.stop()


@pytest.fixture(scope="module")
def spark_master(tmp_path_factory):
    """A Spark standalone master (no workers: the check is who it talks to) with the shared secret on."""
    home = tmp_path_factory.mktemp("spark-secured")
    secret_file = private_dir(home / "secrets") / "spark.secret"
    create_private(secret_file, secrets.token_urlsafe(32))
    master = SparkStandalone(home / "spark", workers=0, auth_secret_file=secret_file)
    master.start()
    try:
        while not port_open("127.0.0.1", master.master_port):
            assert master.master.poll() is None, (master.home / "master.log").read_text()
            time.sleep(0.3)
        yield master
    finally:
        master.stop()


def reaches_master(spark, port: int, conf: dict[str, str]) -> bool:
    """Whether a Spark RPC client with `conf` gets a reference to the master's endpoint (what an application or
    a worker does first), from a client RPC environment in the test session's JVM."""
    jvm = spark.sparkContext._jvm
    jconf = jvm.org.apache.spark.SparkConf(False)
    for key, value in {"spark.rpc.lookupTimeout": "20s", "spark.rpc.askTimeout": "20s", **conf}.items():
        jconf.set(key, value)
    none = getattr(getattr(jvm.scala, "None$"), "MODULE$")
    secret_file_entry = getattr(getattr(jvm.org.apache.spark.internal.config, "package$"), "MODULE$").AUTH_SECRET_FILE()
    security = jvm.org.apache.spark.SecurityManager(jconf, none, secret_file_entry)
    env = jvm.org.apache.spark.rpc.RpcEnv.create("probe", "127.0.0.1", 0, jconf, security, True)
    try:
        env.setupEndpointRef(jvm.org.apache.spark.rpc.RpcAddress("127.0.0.1", port), "Master")
        return True
    except Py4JJavaError:
        return False
    finally:
        env.shutdown()


def test_the_spark_master_refuses_a_client_without_the_secret(spark_master, spark):
    port = spark_master.master_port
    secret = read_private(spark_master.auth_secret_file).strip()
    assert not reaches_master(spark, port, {})
    assert not reaches_master(
        spark,
        port,
        {"spark.authenticate": "true", "spark.authenticate.secret": "a-guess", "spark.network.crypto.enabled": "true"},
    )
    assert reaches_master(spark, port, spark_auth_conf(spark_master.auth_secret_file))
    # the secret is in the private properties files only, never on a command line
    for path in (spark_master.daemon_properties, spark_master.client_properties):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and secret in path.read_text(), path
    cmdline = Path(f"/proc/{spark_master.master.pid}/cmdline").read_bytes().decode(errors="replace")
    assert secret not in cmdline and str(spark_master.daemon_properties) in cmdline
