"""The warehouse and the checkpoints on S3-compatible object storage (README "Object storage"): `s3a://` locations,
the S3A settings Spark's Hadoop client takes, the storage options the API's delta-rs reader takes, and the checks
a process runs before it starts, so a wrong endpoint or missing credentials fail at once with the setting named.

Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, as every S3 tool reads them)
or from CHAT_S3_CREDENTIALS_FILE (an AWS shared-credentials file, mode 0600); they are never logged.
"""

from __future__ import annotations

import configparser
import os
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from config.private import read_private

SCHEME = "s3a"
# Delta's LogStore for s3a (its default, named so it is chosen on purpose): commits are safe while one driver writes
# a table, which the design guarantees (the ledger writes the chat's tables, the statistics job only user_stats)
S3_LOG_STORE = "io.delta.storage.S3SingleDriverLogStore"
CHECKPOINT_FILE_MANAGER = "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"


@dataclass(frozen=True)
class ObjectLocation:
    """`s3a://bucket/key`, joined with `/` as a Path is; str() is the URI Spark and Delta take."""

    bucket: str
    key: str = ""

    def __truediv__(self, part: str) -> ObjectLocation:
        key = str(PurePosixPath(self.key, str(part))) if self.key else str(PurePosixPath(str(part)))
        return ObjectLocation(self.bucket, key.strip("/"))

    def __str__(self) -> str:
        return f"{SCHEME}://{self.bucket}/{self.key}" if self.key else f"{SCHEME}://{self.bucket}"

    @property
    def name(self) -> str:
        return PurePosixPath(self.key).name if self.key else ""

    def as_s3(self) -> str:
        """The same place as delta-rs names it (`s3://`)."""
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"


Location = Path | ObjectLocation


def parse_object_location(raw: str, setting: str) -> ObjectLocation:
    """An `s3a://bucket/prefix` setting, or SystemExit saying what is wrong with it."""
    parts = urlsplit(raw)
    if parts.scheme in ("s3", "s3n"):
        raise SystemExit(f"{setting}: use the s3a:// scheme (Hadoop's S3A client), got {raw!r}")
    bucket = parts.netloc
    # S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens
    if (
        parts.scheme != SCHEME
        or not 3 <= len(bucket) <= 63
        or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
        or parts.query
        or parts.fragment
    ):
        raise SystemExit(f"{setting} must be a path or s3a://<bucket>/<prefix> (bucket in lower case), got {raw!r}")
    return ObjectLocation(bucket, parts.path.strip("/"))


def is_object(location) -> bool:
    return isinstance(location, ObjectLocation)


@dataclass(frozen=True)
class ObjectStore:
    """How this process reaches the object store (CHAT_S3_ENDPOINT and the settings after it); unused while every location is a path."""

    endpoint: str = ""  # "" : AWS's own, from the region
    region: str = "us-east-1"
    path_style: bool = False
    credentials_file: Path | None = None

    def credentials(self) -> tuple[str, str]:
        """(access key id, secret key): the credentials file's `[default]` profile when set, else the environment;
        SystemExit naming both ways when neither has them."""
        if self.credentials_file is not None:
            parser = configparser.ConfigParser()
            try:
                parser.read_string(read_private(self.credentials_file))
            except FileNotFoundError:
                raise SystemExit(f"CHAT_S3_CREDENTIALS_FILE: {self.credentials_file} does not exist") from None
            except configparser.Error:  # its message quotes the line: perhaps the secret
                raise SystemExit(
                    f"CHAT_S3_CREDENTIALS_FILE: {self.credentials_file} is not an AWS credentials file "
                    "([default] with aws_access_key_id and aws_secret_access_key)"
                ) from None
            profile = parser["default"] if parser.has_section("default") else {}
            key, secret = profile.get("aws_access_key_id", ""), profile.get("aws_secret_access_key", "")
            if not key or not secret:
                raise SystemExit(
                    f"CHAT_S3_CREDENTIALS_FILE: {self.credentials_file} has no [default] aws_access_key_id and "
                    "aws_secret_access_key"
                )
            return key.strip(), secret.strip()
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key or not secret:
            raise SystemExit(
                "the warehouse or the checkpoints are on s3a:// but no S3 credentials are set: export "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set CHAT_S3_CREDENTIALS_FILE"
            )
        return key, secret

    @property
    def secure(self) -> bool:
        return not self.endpoint.lower().startswith("http://")

    def spark_conf(self) -> dict[str, str]:
        """The S3A and Delta settings for a Spark session that reads or writes s3a:// locations."""
        key, secret = self.credentials()
        conf = {
            "spark.hadoop.fs.s3a.access.key": key,
            "spark.hadoop.fs.s3a.secret.key": secret,
            "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
            "spark.hadoop.fs.s3a.path.style.access": str(self.path_style).lower(),
            "spark.hadoop.fs.s3a.connection.ssl.enabled": str(self.secure).lower(),
            "spark.delta.logStore.s3a.impl": S3_LOG_STORE,
            # the streams' checkpoints through Hadoop's FileSystem API: the FileContext one Spark picks by default
            # wants a checkpoint file's folder to exist first, and object stores have no folders
            "spark.sql.streaming.checkpointFileManagerClass": CHECKPOINT_FILE_MANAGER,
        }
        if self.endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.endpoint
        return conf

    def storage_options(self) -> dict[str, str]:
        """The same for delta-rs (the API's snapshot reader)."""
        key, secret = self.credentials()
        options = {
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": self.region,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": str(not self.path_style).lower(),
        }
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
            if not self.secure:
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    def check_reachable(self, timeout_s: float = 5.0) -> None:
        """SystemExit naming CHAT_S3_ENDPOINT when nothing answers there (a custom endpoint only: AWS's is
        reached through DNS and retries of its own)."""
        if not self.endpoint:
            return
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SystemExit(f"CHAT_S3_ENDPOINT must be an http:// or https:// URL, got {self.endpoint!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout_s):
                pass
        except OSError as exc:
            raise SystemExit(f"CHAT_S3_ENDPOINT {self.endpoint} does not answer: {exc}") from None
