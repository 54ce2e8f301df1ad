"""How the chat's processes prove who they are to a secured cluster (README "Reliability"): the Kafka client
settings (CHAT_KAFKA_SECURITY_PROTOCOL and the three after it) as kafka-python keyword arguments and as the
`kafka.*` options of Spark's Kafka connector, and the conf that turns on Spark's shared secret.

The defaults (PLAINTEXT, no secret) add nothing: the single-machine chat stays on loopback and simple.
Passwords and secrets are read from private files (config/private.py), never from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config import settings
from config.private import read_private

SASL_MECHANISM = "SCRAM-SHA-512"
SECURED = "SASL_SSL"


def _secret(path: Path, what: str) -> str:
    """The stripped text of a private file; SystemExit naming the setting when it is missing or empty."""
    try:
        text = read_private(path).strip()
    except FileNotFoundError:
        raise SystemExit(f"{what}: {path} does not exist") from None
    if not text:
        raise SystemExit(f"{what}: {path} is empty")
    return text


def jaas_quote(value: str) -> str:
    """`value` as a double-quoted string of a JAAS config line (a quote or backslash inside escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class KafkaAuth:
    """Who this process is to Kafka. PLAINTEXT: nobody (the loopback default); SASL_SSL: a SCRAM user
    over TLS, the broker's certificate checked against `cafile` (name included)."""

    protocol: str = "PLAINTEXT"
    username: str = ""
    password_file: Path | None = None
    cafile: Path | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("PLAINTEXT", SECURED):
            raise SystemExit(f"CHAT_KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, {SECURED}, got {self.protocol!r}")
        if not self.secured:
            return
        missing = [
            name
            for name, value in (
                ("CHAT_KAFKA_SASL_USERNAME", self.username),
                ("CHAT_KAFKA_SASL_PASSWORD_FILE", self.password_file),
                ("CHAT_KAFKA_SSL_CAFILE", self.cafile),
            )
            if not value
        ]
        if missing:
            raise SystemExit(f"CHAT_KAFKA_SECURITY_PROTOCOL={SECURED} needs {', '.join(missing)} set too")
        if not Path(self.cafile).is_file():
            raise SystemExit(f"CHAT_KAFKA_SSL_CAFILE: {self.cafile} is not a file")

    @classmethod
    def from_settings(cls, s: settings.Settings | None = None) -> KafkaAuth:
        s = s or settings.load()
        return cls(s.kafka_security_protocol, s.kafka_sasl_username, s.kafka_sasl_password_file, s.kafka_ssl_cafile)

    @property
    def secured(self) -> bool:
        return self.protocol == SECURED

    def password(self) -> str:
        return _secret(Path(self.password_file), "CHAT_KAFKA_SASL_PASSWORD_FILE")

    def client_kwargs(self) -> dict:
        """kafka-python keyword arguments (KafkaProducer, KafkaConsumer, KafkaAdminClient); {} for PLAINTEXT."""
        if not self.secured:
            return {}
        return {
            "security_protocol": SECURED,
            "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password(),
            "ssl_cafile": str(self.cafile),
            "ssl_check_hostname": True,
        }

    def spark_options(self) -> dict[str, str]:
        """The `kafka.*` options of Spark's Kafka source and sink; {} for PLAINTEXT. (Spark redacts the
        JAAS line in its logs and UI: its value holds "password", which spark.redaction.regex matches.)"""
        if not self.secured:
            return {}
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f"username={jaas_quote(self.username)} password={jaas_quote(self.password())};"
        )
        return {
            "kafka.security.protocol": SECURED,
            "kafka.sasl.mechanism": SASL_MECHANISM,
            "kafka.sasl.jaas.config": jaas,
            # the Java client reads the same PEM file the Python clients use
            "kafka.ssl.truststore.type": "PEM",
            "kafka.ssl.truststore.location": str(self.cafile),
        }


def kafka_client_kwargs(s: settings.Settings | None = None) -> dict:
    """This process's kafka-python security arguments from the settings ({} by default)."""
    return KafkaAuth.from_settings(s).client_kwargs()


def kafka_spark_options(s: settings.Settings | None = None) -> dict[str, str]:
    """This process's `kafka.*` security options for Spark from the settings ({} by default)."""
    return KafkaAuth.from_settings(s).spark_options()


def spark_auth_conf(secret_file: Path | None) -> dict[str, str]:
    """Spark conf for a cluster that only admits holders of the shared secret, its RPC encrypted;
    {} without a secret file (local mode needs none)."""
    if secret_file is None:
        return {}
    return {
        "spark.authenticate": "true",
        "spark.authenticate.secret": _secret(secret_file, "CHAT_SPARK_AUTH_SECRET_FILE"),
        "spark.network.crypto.enabled": "true",
    }
