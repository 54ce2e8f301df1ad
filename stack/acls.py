"""The secured cluster's Kafka users and ACLs (README "Reliability"): one SCRAM user per role, each allowed the
topics its code reads and writes and nothing else; the broker's own `admin` (a super user) creates them.

    python -m stack.acls --password-file chat-api=api.password --password-file chat-streams=streams.password

runs as the admin (CHAT_KAFKA_SECURITY_PROTOCOL=SASL_SSL, CHAT_KAFKA_SASL_USERNAME=admin, its password and CA files), creates
or updates each user from its password file (0600) and adds the ACLs; running it again changes nothing.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from config import contract, settings
from config.cluster_security import SECURED, KafkaAuth, kafka_client_kwargs
from config.private import create_private, private_dir, read_private

API_USER = "chat-api"
STREAMS_USER = "chat-streams"


@dataclass(frozen=True)
class Role:
    user: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]


# What each process does with each topic today (api/: the producer and the tail's followers; pipelines/: the
# relay and the ledger). Only the streams write the moderated feed and the notices: a "blocked" notice or a
# moderated message from anyone else is refused. No role has a consumer group: the API's tail assigns its
# partitions, and Spark's Kafka source assigns its own and keeps its offsets in its checkpoint, so a group READ
# would only let a stolen credential join groups (tests/stack/test_secured_kafka.py runs the relay without one).
ROLES = (
    Role(
        API_USER,
        # the feed, the notices and the sessions it serves; `chat` and `chat_actions` for the shared rate limit
        # and slow mode (api/flood.py); the accounts (api/accounts.py), which it alone reads and writes
        reads=(
            contract.TOPIC_CONTROLLED,
            contract.TOPIC_NOTICES,
            contract.TOPIC_SESSIONS,
            contract.TOPIC_CHAT,
            contract.TOPIC_ACTIONS,
            contract.TOPIC_ACCOUNTS,
        ),
        writes=(contract.TOPIC_CHAT, contract.TOPIC_ACTIONS, contract.TOPIC_SESSIONS, contract.TOPIC_ACCOUNTS),
    ),
    Role(
        STREAMS_USER,
        reads=(contract.TOPIC_CHAT, contract.TOPIC_ACTIONS),
        writes=(contract.TOPIC_CONTROLLED, contract.TOPIC_NOTICES),
    ),
)


def role_acls(role: Role) -> list[ACL]:
    """ALLOW entries for `role`: READ (which implies DESCRIBE) on what it reads, WRITE on what it writes (enough
    for an idempotent producer since Kafka 3.0); from any host."""

    def allow(operation: ACLOperation, kind: ResourceType, name: str) -> ACL:
        return ACL(
            principal=f"User:{role.user}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(kind, name, ACLResourcePatternType.LITERAL),
        )

    return [
        *(allow(ACLOperation.READ, ResourceType.TOPIC, t) for t in role.reads),
        *(allow(ACLOperation.WRITE, ResourceType.TOPIC, t) for t in role.writes),
    ]


def _admin(bootstrap: str, security: dict) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="chat-acls", request_timeout_ms=10_000, **security)


def set_users(bootstrap: str, passwords: dict[str, str], security: dict | None = None) -> None:
    """Create or update the SCRAM-SHA-512 credentials of `passwords`' users (as the admin `security` names)."""
    admin = _admin(bootstrap, kafka_client_kwargs() if security is None else security)
    try:
        results = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, pw) for user, pw in passwords.items()]
        )
    finally:
        admin.close()
    failed = {user: error for user, error in results.items() if error}
    if failed:
        raise KafkaError(f"Kafka refused the users {failed}")


def apply_acls(bootstrap: str, roles=ROLES, security: dict | None = None) -> int:
    """Add every role's ACLs (Kafka keeps one copy of an entry added twice); return how many entries."""
    acls = [acl for role in roles for acl in role_acls(role)]
    admin = _admin(bootstrap, kafka_client_kwargs() if security is None else security)
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    if result["failed"]:
        raise KafkaError(f"Kafka refused ACLs: {result['failed']}")
    return len(acls)


def provision(bootstrap: str, directory: Path, ca_file: Path, security: dict) -> dict[str, KafkaAuth]:
    """Every role's user, its password made once into `directory` (files 0600), and its ACLs, as the admin
    `security` names; return each role's credentials as its process is given them (CHAT_KAFKA_SECURITY_PROTOCOL and the settings after it)."""
    private_dir(directory)
    auth = {}
    for role in ROLES:
        password_file = directory / f"{role.user}.password"
        create_private(password_file, secrets.token_urlsafe(24) + "\n")
        auth[role.user] = KafkaAuth(SECURED, role.user, password_file, ca_file)
    set_users(bootstrap, {user: a.password() for user, a in auth.items()}, security)
    apply_acls(bootstrap, security=security)
    return auth


def _password_file(arg: str) -> tuple[str, Path]:
    user, sep, path = arg.partition("=")
    if not sep or not user or not path:
        raise argparse.ArgumentTypeError(f"expected USER=FILE, got {arg!r}")
    return user, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--password-file",
        type=_password_file,
        action="append",
        default=[],
        metavar="USER=FILE",
        help=f"a user to create or update and its password file (0600); the roles are {API_USER}, {STREAMS_USER}",
    )
    args = parser.parse_args(argv)
    s = settings.load()
    if s.kafka_security_protocol != "SASL_SSL":
        print("acls: CHAT_KAFKA_SECURITY_PROTOCOL is not SASL_SSL: a PLAINTEXT broker has no users", file=sys.stderr)
        return 1
    try:
        passwords = {user: read_private(path).strip() for user, path in args.password_file}
        if passwords:
            set_users(s.kafka_bootstrap, passwords)
        count = apply_acls(s.kafka_bootstrap)
    except (OSError, RuntimeError, KafkaError) as exc:
        print(f"acls: {exc}", file=sys.stderr)
        return 1
    print(f"acls: users {', '.join(passwords) or '(unchanged)'}; {count} ACL entries for {len(ROLES)} roles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
