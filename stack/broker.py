"""An Apache Kafka broker in KRaft mode, run from the Maven-resolved jars: alone for `make up` and the
tests' fixtures, or one node of the three stack/cluster.py starts.

By default a PLAINTEXT listener on loopback with no authentication (one machine, simple). With a
`BrokerSecurity`, the secured profile (README "Reliability"): clients on SASL_SSL (SCRAM-SHA-512 over TLS),
the controllers on mutual TLS, Kafka's StandardAuthorizer with the ACLs of stack/acls.py.

    python -m stack.broker   # run the default broker in the foreground (Ctrl-C stops it)
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from config import settings
from config.cluster_security import SECURED, KafkaAuth
from config.private import create_private, private_dir, read_private
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


def jvm_performance_opts() -> list[str]:
    """The JIT and GC flags of the broker's JVMs: Kafka's own KAFKA_JVM_PERFORMANCE_OPTS when set (the tests set
    it for their short-lived brokers), else G1."""
    return (os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS") or "-XX:+UseG1GC").split()


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


# the broker's own SCRAM user: inter-broker traffic, and the launcher's topics, users and ACLs
ADMIN_USER = "admin"
# the subject of the brokers' certificate: the principal the controllers see on their mutual-TLS listener
BROKER_CERT_SUBJECT = "CN=chat-broker"
SUPER_USERS = (f"User:{ADMIN_USER}", f"User:{BROKER_CERT_SUBJECT}")
ADMIN_PASSWORD = re.compile(r"[A-Za-z0-9_-]{16,}")


def keytool_bin() -> str:
    java = Path(java_bin())
    found = java.with_name("keytool") if (java.with_name("keytool")).exists() else shutil.which("keytool")
    if not found:
        raise BrokerError("keytool not found: it comes with the JDK (see README, Prerequisites)")
    return str(found)


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` as a file only this user may read (0600), replacing what was there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def san(hosts: tuple[str, ...]) -> str:
    """keytool's subjectAltName value for `hosts` (addresses as ip:, names as dns:)."""

    def entry(host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return f"ip:{host}"
        except ValueError:
            return f"dns:{host}"

    return "SAN=" + ",".join(entry(h) for h in hosts)


class BrokerSecurity:
    """What a secured broker needs, kept in one private directory (0700, files 0600) that every node of
    a cluster shares: a CA made with the JDK's keytool (`ca.pem` is what clients trust), the brokers'
    key and certificate signed by it for `hosts` (`broker.p12`), the stores' password, and the password
    of the broker's own SCRAM user (`admin.password`). Made once by `ensure()`, then reused."""

    def __init__(self, home: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")):
        self.home = Path(home)
        self.hosts = hosts
        self.ca_file = self.home / "ca.pem"
        self.keystore = self.home / "broker.p12"
        self.store_password_file = self.home / "store.password"
        self.admin_password_file = self.home / f"{ADMIN_USER}.password"

    def ensure(self) -> None:
        private_dir(self.home)
        create_private(self.admin_password_file, secrets.token_urlsafe(24) + "\n")
        if not self.keystore.exists():
            self._make_tls()

    def store_password(self) -> str:
        return read_private(self.store_password_file).strip()

    def admin_password(self) -> str:
        password = read_private(self.admin_password_file).strip()
        # it goes inside kafka-storage's `[name=...,password=...]` and a JAAS string: no brackets, commas or quotes
        if not ADMIN_PASSWORD.fullmatch(password):
            raise BrokerError(
                f"{self.admin_password_file}: the admin's password must be at least 16 letters, digits, '-' or '_'"
            )
        return password

    def admin_auth(self) -> KafkaAuth:
        """The broker's own user, as kafka-python and Spark clients are given it (the launcher's identity)."""
        return KafkaAuth(SECURED, ADMIN_USER, self.admin_password_file, self.ca_file)

    def _make_tls(self) -> None:
        create_private(self.store_password_file, secrets.token_urlsafe(24) + "\n")
        ca_store, csr, cert = self.home / "ca.p12", self.home / "broker.csr", self.home / "broker.crt"
        # made under another name, renamed when complete: `ensure` takes an existing keystore as finished
        keystore = self.home / "broker.p12.new"
        for leftover in (ca_store, csr, cert, keystore, self.ca_file):
            leftover.unlink(missing_ok=True)  # a run that stopped half-way
        password = ["-storepass:file", str(self.store_password_file)]

        def keytool(*args: str) -> None:
            result = subprocess.run([keytool_bin(), *args], capture_output=True, text=True, umask=0o077)
            if result.returncode != 0:
                raise BrokerError(f"keytool {args[0]} failed:\n{result.stdout}{result.stderr}")

        keypair = ["-genkeypair", "-keyalg", "RSA", "-keysize", "2048", "-storetype", "PKCS12"]
        keytool(*keypair, "-alias", "ca", "-dname", "CN=chat-ca", "-validity", "3650", "-ext", "bc:c=ca:true",
                "-ext", "ku:c=keyCertSign,cRLSign", "-keystore", str(ca_store), *password)  # fmt: skip
        keytool(
            "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *password, "-file", str(self.ca_file)
        )
        keytool(*keypair, "-alias", "broker", "-dname", BROKER_CERT_SUBJECT, "-validity", "825",
                "-keystore", str(keystore), *password)  # fmt: skip
        keytool("-certreq", "-alias", "broker", "-keystore", str(keystore), *password, "-file", str(csr))
        # a server certificate for the clients, and a client one for the controllers' mutual TLS
        keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *password, "-infile", str(csr),
                "-outfile", str(cert), "-validity", "825", "-ext", san(self.hosts),
                "-ext", "ku:c=digitalSignature,keyEncipherment", "-ext", "eku=serverAuth,clientAuth")  # fmt: skip
        cert.write_text(cert.read_text() + self.ca_file.read_text())  # the reply with its chain
        keytool("-importcert", "-noprompt", "-alias", "broker", "-file", str(cert), "-keystore", str(keystore),
                *password)  # fmt: skip
        csr.unlink()
        cert.unlink()
        os.replace(keystore, self.keystore)
        os.chmod(self.ca_file, 0o644)  # the CA's certificate is public: clients on other hosts get a copy

    def server_properties(self, client_listener: str) -> list[str]:
        """The secured lines of a node's server.properties (`client_listener`: the SASL_SSL listener's name)."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{self.admin_password()}";'
        )
        store_password = self.store_password()
        return [
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            f"listener.name.{client_listener.lower()}.scram-sha-512.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={store_password}",
            f"ssl.key.password={store_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            # SCRAM users live in the metadata the controllers serve, so the controllers check certificates
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users={';'.join(SUPER_USERS)}",
            "allow.everyone.if.no.acl.found=false",
        ]


class KafkaBroker:
    """One KRaft broker+controller bound to loopback: alone (the default), or one voter of a
    static controller quorum (`voters`, `cluster_id`: the same on every node). With `security`,
    the secured profile (clients on SASL_SSL, controllers on mutual TLS, ACLs enforced)."""

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
        security: BrokerSecurity | None = None,
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
        self.security = security
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

    def admin_kwargs(self) -> dict:
        """kafka-python's security arguments for the broker's own user ({} when not secured)."""
        return self.security.admin_auth().client_kwargs() if self.security else {}

    def _classpath(self) -> str:
        if not any(self.jars.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"no Kafka jars in {self.jars}: run `make jars` first")
        return str(self.jars / "*")

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            java_bin(),
            f"-Xmx{self.heap}",
            "-Xms256m",
            *jvm_performance_opts(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={settings.REPO_ROOT / 'conf' / 'kafka-log4j2.properties'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _listener_lines(self) -> list[str]:
        if self.security is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ]
        return [
            f"listeners={SECURED}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={SECURED}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={SECURED}",
            f"listener.security.protocol.map=CONTROLLER:SSL,{SECURED}:{SECURED}",
            *self.security.server_properties(SECURED),
        ]

    def write_config(self) -> None:
        if self.security is not None:
            self.security.ensure()
            private_dir(self.home)  # its config holds the stores' and the admin's passwords
        self.home.mkdir(parents=True, exist_ok=True)
        replicas, min_isr = self.internal_replication
        quorum = (
            f"controller.quorum.voters={self.voters}"
            if self.voters
            else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
        )
        write_private_file(
            self.config_file,
            "\n".join(
                [
                    "# written by stack/broker.py; edit conf/ or stack/broker.py, not this file",
                    "process.roles=broker,controller",
                    f"node.id={self.node_id}",
                    quorum,
                    *self._listener_lines(),
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
            ),
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
        args = ["format", *quorum, f"--cluster-id={cluster_id}", "-c", str(self.config_file)]
        argfile = self.home / "format.args"
        if self.security is not None:
            # the broker's own user exists from the start (inter-broker traffic needs it); its password goes
            # in a private java @argfile, not on a command line every local user can list
            password = self.security.admin_password()
            write_private_file(
                argfile,
                f'kafka.tools.StorageTool {" ".join(args)} --add-scram "SCRAM-SHA-512=[name={ADMIN_USER},'
                f'password={password}]"\n',
            )
            cmd = [*self._java("kafka.tools.StorageTool")[:-1], f"@{argfile}"]
        else:
            cmd = self._java("kafka.tools.StorageTool", *args)
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
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
                bootstrap_servers=self.bootstrap,
                request_timeout_ms=3000,
                bootstrap_timeout_ms=2000,
                **self.admin_kwargs(),
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
