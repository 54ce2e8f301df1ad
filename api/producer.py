"""The process's one Kafka producer (acks=all, idempotent): chat messages to `chat`, moderators' actions to `chat_actions`."""

from __future__ import annotations

import json
import logging
import threading
import time

from flask import Flask, current_app
from kafka import KafkaProducer
from kafka.errors import KafkaError

from api.errors import ApiError
from config import contract
from config.cluster_security import kafka_client_kwargs

log = logging.getLogger(__name__)


def refused(what: str) -> ApiError:
    """The 503 for a record Kafka did not take; `what` names it ("message <id>", "action <id>", "session record")."""
    thing = what.split()[0]
    return ApiError(
        503,
        f"kafka_refused_{thing}" if thing in ("message", "action", "session", "account") else "kafka_refused_message",
    )


class ChatProducer:
    """Created lazily, and again after Kafka was unreachable."""

    def __init__(self, bootstrap: str, send_timeout_s: float = 10.0, security: dict | None = None):
        self.bootstrap = bootstrap
        # who the API is to a secured Kafka (config/cluster_security.py); {} on the loopback default
        self.security = kafka_client_kwargs() if security is None else security
        self.send_timeout_s = send_timeout_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._retry_after = 0.0

    def _get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                if time.monotonic() < self._retry_after:
                    raise ApiError(503, "kafka_unavailable", bootstrap=self.bootstrap)
                try:
                    self._producer = KafkaProducer(
                        bootstrap_servers=self.bootstrap,
                        client_id="chat-api",
                        acks="all",
                        enable_idempotence=True,
                        # each request waits for its own acknowledgement: lingering to batch only adds latency
                        linger_ms=0,
                        # per-record sensors nobody reads, paid for on every POST
                        metrics_enabled=False,
                        bootstrap_timeout_ms=3000,
                        max_block_ms=5000,
                        request_timeout_ms=5000,
                        delivery_timeout_ms=int(self.send_timeout_s * 1000),
                        allow_auto_create_topics=False,
                        **self.security,
                    )
                except KafkaError as exc:
                    self._retry_after = time.monotonic() + 1.0
                    log.warning("cannot connect to Kafka at %s: %s", self.bootstrap, exc)
                    raise ApiError(503, "kafka_unavailable", bootstrap=self.bootstrap) from exc
            return self._producer

    def send(self, message_id: str, message: dict) -> None:
        """Publish a chat message and wait for the broker's acknowledgement: when this returns, Kafka has it."""
        self.publish(
            contract.TOPIC_CHAT,
            message["author"],
            message,
            [(contract.MESSAGE_ID_HEADER, message_id.encode("ascii"))],
            what=f"message {message_id}",
        )

    def send_action(self, action: dict) -> None:
        """Publish a moderator's action (to the ledger) and wait for the acknowledgement."""
        self.publish(contract.TOPIC_ACTIONS, action["author"], action, [], what=f"action {action['id']}")

    def publish(
        self, topic: str, key: str, value: dict | None, headers: list, what: str, wait: bool = True
    ) -> tuple[int, int] | None:
        """Send one record (`value` None: a tombstone). With `wait`, return its (partition, offset) once the
        broker acknowledged it (503 if it does not); without, return at once (a failure is only logged)."""
        future = self.send_future(topic, key, value, headers, what)
        if not wait:
            future.add_errback(lambda exc: log.warning("%s not accepted by Kafka: %s", what, exc))
            return None
        try:
            metadata = future.get(timeout=self.send_timeout_s + 2)
        except KafkaError as exc:
            log.warning("%s not accepted by Kafka: %s", what, exc)
            raise refused(what) from exc
        return metadata.partition, metadata.offset

    def send_future(self, topic: str, key: str, value: dict | None, headers: list, what: str):
        """The producer's future for one record (503 when Kafka cannot take it at all)."""
        producer = self._get()
        try:
            return producer.send(
                topic,
                key=key.encode("utf-8"),
                value=None
                if value is None
                else json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                headers=headers,
            )
        except KafkaError as exc:
            log.warning("%s not accepted by Kafka: %s", what, exc)
            raise refused(what) from exc

    def sends_at_once(self, topic: str) -> bool:
        """Whether a send to `topic` returns without waiting (the producer exists and knows the topic's
        partitions); otherwise a send may block for seconds and belongs on a thread, not an event loop."""
        producer = self._producer
        return producer is not None and bool(producer._metadata.partitions_for_topic(topic))

    def is_connected(self) -> bool:
        with self._lock:
            return self._producer is not None and self._producer.bootstrap_connected()

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def get_producer() -> ChatProducer:
    return current_app.extensions["chat_producer"]


def init_app(app: Flask) -> None:
    app.extensions["chat_producer"] = ChatProducer(app.config["KAFKA_BOOTSTRAP"], app.config["KAFKA_SEND_TIMEOUT_S"])
