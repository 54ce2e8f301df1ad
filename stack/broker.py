"""An Apache Kafka broker in KRaft mode, run from the Maven-resolved jars: alone for `make up` and the
tests' fixtures, or one node of the three stack/cluster.py starts.

    python -m stack.broker   # run the default broker in the foreground (Ctrl-C stops it)
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from config import settings
from stack.processes import spawn


class BrokerError(RuntimeError):
    pass


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise BrokerError("java not found: install JDK 17 (see README, Prerequisites)")
    return found


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url without padding (what `kafka-storage random-uuid` prints)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker:
    """One KRaft broker+controller bound to loopback: alone (the default), or one voter of a
    static controller quorum (`voters`, `cluster_id`: the same on every node)."""

    def __init__(
        self,
        home: Path,
        port: int,
        controller_port: int,
        log_file: Path,
        jars: Path | None = None,
        heap: str = "768m",
        node_id: int = 1,
        voters: str | None = None,
        cluster_id: str | None = None,
    ):
        if voters and not cluster_id:
            raise BrokerError("the nodes of a cluster must share one cluster_id")
        self.home = Path(home)
        self.config_file = self.home / "server.properties"
        self.data_dir = self.home / "data"
        self.port = port
        self.controller_port = controller_port
        self.log_file = Path(log_file)
        self.jars = Path(jars) if jars else settings.load().jars_dir / "kafka"
        self.heap = heap
        self.node_id = node_id
        self.voters = voters
        self.cluster_id = cluster_id
        self.process: subprocess.Popen | None = None

    @property
    def cluster_size(self) -> int:
        return len(self.voters.split(",")) if self.voters else 1

    @property
    def internal_replication(self) -> tuple[int, int]:
        """(replicas, min.insync.replicas) of the internal topics and the broker's defaults:
        (1, 1) alone; in a cluster up to 3 replicas, of which 2 must acknowledge a write,
        so that one node may be down without refusing writes."""
        replicas = min(3, self.cluster_size)
        return replicas, 1 if replicas < 3 else 2

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _classpath(self) -> str:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {self.jars}: run `make jars` first")
        return str(self.jars / "*")

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            java_bin(),
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={settings.REPO_ROOT / 'conf' / 'kafka-log4j2.properties'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        replicas, min_isr = self.internal_replication
        quorum = (
            f"controller.quorum.voters={self.voters}"
            if self.voters
            else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
        )
        self.config_file.write_text(
            "\n".join(
                [
                    "# written by stack/broker.py; edit conf/ or stack/broker.py, not this file",
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    quorum,
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.data_dir}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    # single node: every internal topic has one replica; a cluster: three, two in sync
                    f"offsets.topic.replication.factor={replicas}",
                    f"transaction.state.log.replication.factor={replicas}",
                    f"transaction.state.log.min.isr={min_isr}",
                    f"share.coordinator.state.topic.replication.factor={replicas}",
                    f"share.coordinator.state.topic.min.isr={min_isr}",
                    f"default.replication.factor={replicas}",
                    f"min.insync.replicas={min_isr}",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )

    def is_formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def ensure_formatted(self) -> bool:
        """Format the storage once; return True when it formatted now."""
        self.write_config()
        if self.is_formatted():
            return False
        cluster_id = self.cluster_id or new_cluster_id()
        # alone: a quorum of this one controller; in a cluster the static voters are in the config
        quorum = [] if self.voters else ["--standalone"]
        # `=`: a base64 id may start with "-", which the tool's argument parser would take for an option
        cmd = self._java(
            "kafka.tools.StorageTool", "format", *quorum, f"--cluster-id={cluster_id}", "-c", str(self.config_file)
        )
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        return True

    def start(self, timeout_s: float = 90.0, wait: bool = True) -> None:
        """Start the JVM and, unless `wait` is False, wait until it serves clients (the nodes of a
        cluster are started without waiting: none serves before a majority of the quorum is up)."""
        if port_open("127.0.0.1", self.port):
            raise BrokerError(
                f"port {self.port} is already in use: is another broker running? Stop it, or set CHAT_KAFKA_PORT"
            )
        self.ensure_formatted()
        self.process = spawn(self._java("kafka.Kafka", str(self.config_file)), self.log_file)
        if wait:
            self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"Kafka exited with code {self.process.returncode}; see {self.log_file}")
            if port_open("127.0.0.1", self.port) and self._api_versions_ok():
                return
            time.sleep(0.3)
        raise BrokerError(f"Kafka did not accept connections within {timeout_s:.0f}s; see {self.log_file}")

    def _api_versions_ok(self) -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap, request_timeout_ms=3000, bootstrap_timeout_ms=2000
            )
        except KafkaError:
            return False
        try:
            admin.list_topics()
            return True
        except KafkaError:
            return False
        finally:
            admin.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # controlled shutdown
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def default_broker(s: settings.Settings | None = None) -> KafkaBroker:
    """The broker the settings describe (CHAT_KAFKA_PORT, CHAT_KAFKA_CONTROLLER_PORT under DATA_DIR)."""
    s = s or settings.load()
    return KafkaBroker(
        home=s.kafka_dir, port=s.kafka_port, controller_port=s.kafka_controller_port, log_file=s.log_dir / "kafka.log"
    )


def main() -> int:
    broker = default_broker()
    try:
        broker.start()
    except BrokerError as exc:
        print(f"kafka: {exc}", file=sys.stderr)
        return 1
    print(f"kafka: broker up at {broker.bootstrap} (log {broker.log_file}); Ctrl-C stops it")
    try:
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
