"""A three-broker Kafka cluster and a Spark standalone cluster on this machine, bound to 127.0.0.1:
what tests/stack/test_cluster.py runs the chat on, and a way to try the scale-out settings without a
real cluster (README "Running on a cluster").

    python -m stack.cluster     # 3 KRaft brokers, a Spark master and 2 workers; prints what to export; Ctrl-C stops them
    python -m stack.cluster --secured   # the same, secured: SASL_SSL + ACLs (stack/acls.py), Spark's shared secret

The Spark daemons are started with `spark-class`: pip's pyspark ships it, not sbin/start-master.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyspark

from config import settings
from config.cluster_security import spark_auth_conf
from config.private import create_private, private_dir
from stack.acls import API_USER, STREAMS_USER, provision
from stack.broker import (
    BrokerError,
    BrokerSecurity,
    KafkaBroker,
    free_port,
    new_cluster_id,
    port_open,
    write_private_file,
)
from stack.processes import child_env, spawn, stop_process_group, tail, without_secrets
from stack.topics import create_topics

SPARK_HOME = Path(pyspark.__file__).resolve().parent


class ClusterError(RuntimeError):
    pass


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return children


def stop_spark_submit(proc: subprocess.Popen | None, timeout_s: float = 90.0) -> None:
    """Stop a Python application that spark-submit runs, cleanly: SIGTERM its Python driver only,
    which stops its queries and the SparkContext, after which spark-submit's JVM exits by itself.
    (A signal to the whole group would let the JVM's shutdown hook stop the SparkContext under the
    running queries.) Falls back to the process group."""
    if proc is None or proc.poll() is not None:
        return
    for child in child_pids(proc.pid):  # spark-submit execs the JVM, which runs the Python driver
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        stop_process_group(proc, 30)


class KafkaCluster:
    """`size` KRaft nodes, each broker and controller, voters of one static quorum."""

    def __init__(
        self,
        home: Path,
        size: int = 3,
        heap: str = "512m",
        ports: list[tuple[int, int]] | None = None,
        jars: Path | None = None,
        security: BrokerSecurity | None = None,
    ):
        self.home = Path(home)
        self.security = security
        ports = ports or [(free_port(), free_port()) for _ in range(size)]
        if len(ports) != size:
            raise ClusterError(f"{size} brokers need {size} (port, controller port) pairs, got {len(ports)}")
        voters = ",".join(f"{node}@127.0.0.1:{controller}" for node, (_, controller) in enumerate(ports, start=1))
        cluster_id_file = self.home / "cluster_id"
        if cluster_id_file.exists():  # formatted before: the nodes' data belong to this id
            cluster_id = cluster_id_file.read_text().strip()
        else:
            cluster_id = new_cluster_id()
        self.cluster_id = cluster_id
        self.brokers = [
            KafkaBroker(
                self.home / f"broker-{node}",
                port,
                controller,
                self.home / f"broker-{node}.log",
                jars=jars,
                heap=heap,
                node_id=node,
                voters=voters,
                cluster_id=cluster_id,
                security=security,
            )
            for node, (port, controller) in enumerate(ports, start=1)
        ]

    @property
    def bootstrap(self) -> str:
        """Every broker, as clients should be given them (any one that is up will do)."""
        return ",".join(b.bootstrap for b in self.brokers)

    def broker(self, node_id: int) -> KafkaBroker:
        return next(b for b in self.brokers if b.node_id == node_id)

    def start(self, timeout_s: float = 240.0) -> None:
        """Format the nodes that are new (in parallel: each is a JVM start), start every node, and
        wait until each serves clients (none does before a majority of the controllers is up)."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "cluster_id").write_text(self.cluster_id + "\n")
        if self.security is not None:
            self.security.ensure()  # once, before the nodes that share it are formatted side by side
        with ThreadPoolExecutor(len(self.brokers)) as pool:
            list(pool.map(KafkaBroker.ensure_formatted, self.brokers))
        for broker in self.brokers:
            broker.start(wait=False)
        try:
            deadline = time.monotonic() + timeout_s
            for broker in self.brokers:
                broker.wait_ready(max(1.0, deadline - time.monotonic()))
        except BrokerError:
            self.stop()
            raise

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every node at once: one by one, the last ones would wait for a quorum that is gone."""
        with ThreadPoolExecutor(len(self.brokers)) as pool:
            list(pool.map(lambda b: b.stop(timeout_s), self.brokers))

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node id that leads `topic`'s `partition` now."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=10_000, **self.brokers[0].admin_kwargs()
        )
        try:
            [described] = admin.describe_topics([topic])
            return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)
        finally:
            admin.close()


class SparkStandalone:
    """A Spark standalone master and `workers` workers, each offering `cores` task slots and `memory`
    for executors (one executor per worker with the default spark.executor.memory=1g). With
    `auth_secret_file` (0600), `spark.authenticate`: the daemons, the executors and the applications
    must hold that secret (anyone who reaches an open master runs code on the workers)."""

    def __init__(
        self,
        home: Path,
        workers: int = 2,
        cores: int = 2,
        memory: str = "1g",
        daemon_memory: str = "256m",
        master_port: int | None = None,
        master_ui_port: int | None = None,
        worker_ui_ports: list[int] | None = None,
        auth_secret_file: Path | None = None,
    ):
        self.home = Path(home)
        self.auth_secret_file = auth_secret_file
        self.workers = workers
        self.cores = cores
        self.memory = memory
        self.daemon_memory = daemon_memory
        self.master_port = master_port or free_port()
        self.master_ui_port = master_ui_port or free_port()
        self.worker_ui_ports = worker_ui_ports or [free_port() for _ in range(workers)]
        self.master: subprocess.Popen | None = None
        self.worker_processes: list[subprocess.Popen] = []

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def master_ui(self) -> str:
        return f"http://127.0.0.1:{self.master_ui_port}"

    @property
    def daemon_properties(self) -> Path:
        """The daemons' properties file when the secret is on (private: it holds the secret)."""
        return self.home / "security" / "spark-daemons.conf"

    @property
    def client_properties(self) -> Path:
        """conf/spark-defaults.conf plus the secret, for spark-submit's --properties-file (private)."""
        return self.home / "security" / "spark-submit.conf"

    def _write_properties(self) -> list[str]:
        """Write the private properties files; the daemons' extra arguments ([] without a secret)."""
        auth = spark_auth_conf(self.auth_secret_file)
        if not auth:
            return []
        private_dir(self.daemon_properties.parent)
        lines = "".join(f"{key} {value}\n" for key, value in auth.items())
        write_private_file(self.daemon_properties, lines)
        defaults = (settings.REPO_ROOT / "conf" / "spark-defaults.conf").read_text()
        write_private_file(self.client_properties, f"{defaults}\n# the cluster's shared secret\n{lines}")
        return ["--properties-file", str(self.daemon_properties)]

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        # executors inherit the worker's environment: the venv's Python and the repository on PYTHONPATH,
        # should a job ever run Python code on them (the chat's streams run none there); no secrets of the API
        env = without_secrets(
            child_env(
                SPARK_HOME=str(SPARK_HOME),
                SPARK_CONF_DIR=str(settings.REPO_ROOT / "conf"),
                SPARK_LOCAL_IP="127.0.0.1",
                SPARK_DAEMON_MEMORY=self.daemon_memory,
                PYSPARK_PYTHON=sys.executable,
            )
        )
        self.home.mkdir(parents=True, exist_ok=True)
        return spawn([str(SPARK_HOME / "bin" / "spark-class"), *args], self.home / f"{name}.log", env, cwd=self.home)

    def status(self, timeout_s: float = 30.0) -> dict:
        """The master's state as its web UI serves it (/json/): workers, cores, applications."""
        with urllib.request.urlopen(f"{self.master_ui}/json/", timeout=timeout_s) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        try:
            return int(self.status().get("aliveworkers", 0))
        except (OSError, ValueError):
            return 0

    def start(self, timeout_s: float = 180.0) -> None:
        for port in (self.master_port, self.master_ui_port, *self.worker_ui_ports):
            if port_open("127.0.0.1", port):
                raise ClusterError(f"port {port} is already in use")
        self.home.mkdir(parents=True, exist_ok=True)
        auth_args = self._write_properties()
        self.master = self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.master_port),
            "--webui-port",
            str(self.master_ui_port),
            *auth_args,
        )
        for n, ui_port in enumerate(self.worker_ui_ports, start=1):
            # a worker retries its registration until the master is up: no need to wait for it here
            self.worker_processes.append(
                self._spawn(
                    f"worker-{n}",
                    "org.apache.spark.deploy.worker.Worker",
                    self.master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--webui-port",
                    str(ui_port),
                    "--work-dir",
                    str(self.home / f"worker-{n}"),
                    *auth_args,
                )
            )
        deadline = time.monotonic() + timeout_s
        while self.alive_workers() < self.workers:
            for name, proc in [
                ("master", self.master),
                *((f"worker-{n}", p) for n, p in enumerate(self.worker_processes, start=1)),
            ]:
                if proc.poll() is not None:
                    self.stop()
                    raise ClusterError(
                        f"Spark {name} exited with code {proc.returncode}:\n{tail(self.home / f'{name}.log')}"
                    )
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(
                    f"{self.workers} Spark workers not registered within {timeout_s:.0f}s; see {self.home}/*.log"
                )
            time.sleep(0.5)

    def stop(self, timeout_s: float = 30.0) -> None:
        workers, self.worker_processes = self.worker_processes, []
        for proc in workers:
            stop_process_group(proc, timeout_s)
        master, self.master = self.master, None
        stop_process_group(master, timeout_s)


def spark_submit_argv(
    master_url: str,
    app: str,
    *app_args: str,
    conf: dict[str, str] | None = None,
    properties_file: Path | None = None,
) -> list[str]:
    """`spark-submit --master <master_url> --properties-file conf/spark-defaults.conf [--conf k=v ...] <app>`,
    with the spark-submit of the installed pyspark; run it from the repository root. A secured cluster's
    `SparkStandalone.client_properties` replaces the properties file (the secret stays off the command line)."""
    argv = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master",
        master_url,
        "--properties-file",
        str(properties_file or settings.REPO_ROOT / "conf" / "spark-defaults.conf"),
    ]
    for key, value in (conf or {}).items():
        argv += ["--conf", f"{key}={value}"]
    return [*argv, app, *app_args]


def secured_instructions(kafka: KafkaCluster, spark: SparkStandalone, security: BrokerSecurity, took_s: float) -> str:
    """Create the topics, the roles' users and their ACLs as the admin; say what each process needs."""
    admin = kafka.brokers[0].admin_kwargs()
    create_topics(kafka.bootstrap, partitions=2, replication_factor=3, security=admin)
    auth = provision(kafka.bootstrap, security.home, security.ca_file, admin)
    common = (
        f"  CHAT_KAFKA_BOOTSTRAP={kafka.bootstrap} CHAT_SPARK_MASTER={spark.master_url}\n"
        f"  CHAT_KAFKA_SECURITY_PROTOCOL=SASL_SSL CHAT_KAFKA_SSL_CAFILE={security.ca_file}\n"
    )
    roles = "".join(
        f"  {what}: CHAT_KAFKA_SASL_USERNAME={user} CHAT_KAFKA_SASL_PASSWORD_FILE={auth[user].password_file}\n"
        for what, user in (("the API", API_USER), ("the streams", STREAMS_USER))
    )
    return (
        f"ready in {took_s:.0f}s, secured: topics, users and ACLs made. Every process of the chat takes\n{common}"
        f"and its own Kafka user:\n{roles}"
        f"  the streams' driver also CHAT_SPARK_AUTH_SECRET_FILE={spark.auth_secret_file}, or\n"
        f"  spark-submit --properties-file {spark.client_properties} (conf/spark-defaults.conf and the secret)\n"
        "Ctrl-C stops the clusters."
    )


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--home", type=Path, help="where the clusters keep their data and logs (default $CHAT_DATA_DIR/cluster)"
    )
    parser.add_argument(
        "--kafka-port",
        type=int,
        default=19092,
        help="the first broker's port; broker n listens on this + 2(n-1), its controller on the next",
    )
    parser.add_argument("--spark-port", type=int, default=7077, help="the Spark master's port (web UI: 8080)")
    parser.add_argument(
        "--secured",
        action="store_true",
        help="Kafka on SASL_SSL with per-role users and ACLs, Spark with spark.authenticate (secrets under HOME/security)",
    )
    args = parser.parse_args(argv)
    home = args.home or settings.load().data_dir / "cluster"
    security = secret_file = None
    if args.secured:
        security = BrokerSecurity(home / "security")
        security.ensure()
        secret_file = security.home / "spark.secret"
        create_private(secret_file, secrets.token_urlsafe(32) + "\n")
    kafka = KafkaCluster(
        home / "kafka",
        ports=[(args.kafka_port + 2 * n, args.kafka_port + 2 * n + 1) for n in range(3)],
        security=security,
    )
    spark = SparkStandalone(
        home / "spark",
        master_port=args.spark_port,
        master_ui_port=8080,
        worker_ui_ports=[8081, 8082],
        auth_secret_file=secret_file,
    )
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        t0 = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # the JVMs start side by side
            for future in [pool.submit(spark.start), pool.submit(kafka.start)]:
                future.result()
        print(
            f"spark: master {spark.master_url} (web UI {spark.master_ui}) with {spark.workers} workers "
            f"of {spark.cores} cores and {spark.memory}; logs in {spark.home}",
            flush=True,
        )
        print(f"kafka: {len(kafka.brokers)} brokers in cluster {kafka.cluster_id}; logs in {kafka.home}", flush=True)
        for b in kafka.brokers:
            print(
                f"kafka: broker {b.node_id} at {b.bootstrap}, pid {b.process.pid} "
                f"(`kill {b.process.pid}` stops it: the chat carries on with two)",
                flush=True,
            )
        if security is None:
            print(
                f"ready in {time.monotonic() - t0:.0f}s. In another shell, run the chat on them:\n\n"
                f"  export CHAT_KAFKA_BOOTSTRAP={kafka.bootstrap}\n"
                f"  export CHAT_SPARK_MASTER={spark.master_url}\n"
                f"  export CHAT_REPLICATION_FACTOR=3 CHAT_TOPIC_PARTITIONS=2\n"
                f"  make up\n\nCtrl-C stops the clusters.",
                flush=True,
            )
        else:
            print(secured_instructions(kafka, spark, security, time.monotonic() - t0), flush=True)
        reported: set[int] = set()
        while True:
            time.sleep(1)
            for b in kafka.brokers:
                if b.node_id not in reported and b.process is not None and b.process.poll() is not None:
                    reported.add(b.node_id)
                    print(
                        f"kafka: broker {b.node_id} exited with code {b.process.returncode}; "
                        f"{len(kafka.brokers) - len(reported)} left",
                        flush=True,
                    )
    except KeyboardInterrupt:
        return 0
    except (BrokerError, ClusterError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        spark.stop()
        kafka.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
