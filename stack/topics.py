"""Create the chat's Kafka topics, idempotently.

python -m stack.topics          # uses CHAT_KAFKA_BOOTSTRAP, CHAT_TOPIC_PARTITIONS, CHAT_REPLICATION_FACTOR
"""

from __future__ import annotations

import sys
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from config import contract, settings
from config.cluster_security import kafka_client_kwargs


def min_insync_for(replication_factor: int) -> int:
    """Acknowledged writes survive the loss of one broker when there are replicas to spare:
    1 on a single node, 2 from three replicas up (acks=all waits for that many)."""
    return 1 if replication_factor < 3 else 2


def create_topics(
    bootstrap: str,
    topics=contract.TOPICS,
    partitions: int = 1,
    replication_factor: int = 1,
    timeout_s: float = 60.0,
    min_insync_replicas: int | None = None,
    security: dict | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Every topic gets `min.insync.replicas` (default: `min_insync_for(replication_factor)`).
    Retries until the broker answers or `timeout_s` passes, so it can run right
    after the broker starts. `security`: kafka-python's security arguments (default: the settings').
    """
    security = kafka_client_kwargs() if security is None else security
    min_insync = min_insync_replicas or min_insync_for(replication_factor)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="chat-topics",
                request_timeout_ms=10_000,
                bootstrap_timeout_ms=3_000,
                **security,
            )
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name=t,
                            num_partitions=partitions,
                            replication_factor=replication_factor,
                            topic_configs={
                                "min.insync.replicas": str(min_insync),
                                **contract.TOPIC_CONFIGS.get(t, {}),
                            },
                        )
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # created by someone else meanwhile: that is the state we want
        while set(topics) - set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise KafkaError(f"topics not visible after {timeout_s}s: {missing}")
            time.sleep(0.2)
        return missing
    finally:
        admin.close()


def main() -> int:
    s = settings.load()
    try:
        created = create_topics(
            s.kafka_bootstrap,
            partitions=s.topic_partitions,
            replication_factor=s.replication_factor,
            min_insync_replicas=s.min_insync_replicas,
        )
    except KafkaError as exc:
        print(f"topics: cannot reach Kafka at {s.kafka_bootstrap}: {exc}", file=sys.stderr)
        return 1
    print(
        f"topics: {', '.join(contract.TOPICS)} ready"
        + (f" (created {', '.join(created)})" if created else " (already there)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
