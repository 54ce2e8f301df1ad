"""Every `CHAT_*` setting: its default, its meaning, and `load()`, the one place that reads them.

Defaults run everything on one machine; pointing the settings at a Kafka or a
Spark cluster runs the same code there. `python -m config` prints them all with
their current values. README "Configuration" explains them in context.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config import contract
from config.hosts import default_hosts, default_origins
from config.object_store import SCHEME, Location, ObjectStore, parse_object_location
from config.private import NotPrivate, read_private

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # "" means "none" (or derived from another setting, as `meaning` says)
    meaning: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CHAT_DATA_DIR",
        "var",
        "broker data (`kafka/`), checkpoints, the Delta tables (`warehouse/`), logs (`log/`), run files, reports",
    ),
    Setting(
        "CHAT_WAREHOUSE_DIR",
        "",
        "where the Delta tables live: a path (default `$CHAT_DATA_DIR/warehouse`; on a cluster one every Spark worker "
        "and the API see) or `s3a://<bucket>/<prefix>` (object storage: CHAT_S3_ENDPOINT and the settings after it)",
    ),
    Setting(
        "CHAT_CHECKPOINT_DIR",
        "",
        "where the streams keep their checkpoints: a path (default `$CHAT_DATA_DIR/checkpoints`) or `s3a://<bucket>/<prefix>`",
    ),
    Setting(
        "CHAT_S3_ENDPOINT",
        "",
        "with s3a:// locations: the S3 service's URL (e.g. `http://127.0.0.1:9000` for S3Proxy or MinIO); unset: AWS S3",
    ),
    Setting("CHAT_S3_REGION", "us-east-1", "with s3a:// locations: the bucket's region"),
    Setting(
        "CHAT_S3_PATH_STYLE",
        "off",
        "with s3a:// locations: `on` addresses buckets as `<endpoint>/<bucket>` (S3Proxy, MinIO) instead of `<bucket>.<endpoint>`",
    ),
    Setting(
        "CHAT_S3_CREDENTIALS_FILE",
        "",
        "with s3a:// locations: an AWS shared-credentials file (0600) whose `[default]` profile is used; unset: the "
        "`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` environment variables",
    ),
    Setting("CHAT_JARS_DIR", "var/jars", "where `make jars` puts the Kafka and Spark jars"),
    Setting(
        "CHAT_KAFKA_BOOTSTRAP",
        "",
        "Kafka bootstrap servers; when set, `make up` starts no broker and uses these; default `127.0.0.1:$CHAT_KAFKA_PORT`",
    ),
    Setting("CHAT_KAFKA_PORT", "9092", "port of the embedded broker (and the default bootstrap)"),
    Setting("CHAT_KAFKA_CONTROLLER_PORT", "9093", "KRaft controller port of the embedded broker"),
    Setting(
        "CHAT_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "`PLAINTEXT` (the loopback default) or `SASL_SSL` (a secured cluster: SCRAM-SHA-512 over TLS; see Reliability)",
    ),
    Setting(
        "CHAT_KAFKA_SASL_USERNAME", "", "with SASL_SSL: this process's Kafka user (`chat-api`, `chat-streams`, `admin`)"
    ),
    Setting(
        "CHAT_KAFKA_SASL_PASSWORD_FILE",
        "",
        "with SASL_SSL: a file (mode 0600, owned by the chat's user) holding that user's password",
    ),
    Setting(
        "CHAT_KAFKA_SSL_CAFILE",
        "",
        "with SASL_SSL: the PEM certificate of the CA that signed the brokers' certificates",
    ),
    Setting(
        "CHAT_SPARK_AUTH_SECRET_FILE",
        "",
        "a file (0600) holding the Spark cluster's shared secret; set: `spark.authenticate` on for the chat's jobs",
    ),
    Setting("CHAT_TOPIC_PARTITIONS", "1", "partitions of new topics (Kafka's unit of parallelism)"),
    Setting("CHAT_REPLICATION_FACTOR", "1", "replication factor of new topics"),
    Setting(
        "CHAT_MIN_INSYNC_REPLICAS",
        "0",
        "`min.insync.replicas` of new topics; 0: 1 below three replicas, else 2 (see Reliability)",
    ),
    Setting("CHAT_SPARK_MASTER", "local[*]", "Spark master, e.g. `spark://host:7077` (spark-submit's `--master` wins)"),
    Setting(
        "CHAT_RELAY_TRIGGER",
        "realtime",
        "`realtime` (Spark's real-time mode) or `microbatch` (back-to-back micro-batches); see below",
    ),
    Setting("CHAT_LEDGER_TRIGGER_SECONDS", "1", "seconds between the ledger's micro-batches"),
    Setting(
        "CHAT_MAINTENANCE_INTERVAL_S",
        "600",
        "seconds between the streams process's compactions (`OPTIMIZE`, clustering) of the ledger's append-only "
        "tables; 0: none (then run `python -m pipelines.maintenance`) (0 to 86400)",
    ),
    Setting(
        "CHAT_VACUUM_INTERVAL_S",
        "86400",
        "seconds between its `VACUUM`s of every table (files removed more than `delta.deletedFileRetentionDuration`, "
        "7 days, ago); 0: none (0 to 2592000)",
    ),
    Setting(
        "CHAT_DELTA_CHECKPOINT_INTERVAL_S",
        "60",
        "seconds between its Delta checkpoints of the tables that have new commits (outside the ledger's batches); a "
        "cold reader replays at most the commits of one interval; 0: none (then only every 1000th commit writes one) "
        "(0 to 3600)",
    ),
    Setting("CHAT_API_HOST", "127.0.0.1", "address the API listens on"),
    Setting("CHAT_API_PORT", "5000", "port the API listens on"),
    Setting("CHAT_API_URL", "", "the API the UI talks to; default `http://127.0.0.1:$CHAT_API_PORT`"),
    Setting("CHAT_API_WORKERS", "0", "API worker processes; 0: one per core"),
    Setting(
        "CHAT_API_ALLOWED_HOSTS",
        "",
        "Host header names the API answers (comma-separated, * for any); default the loopback names and API_HOST",
    ),
    Setting("CHAT_API_MAX_CONNECTIONS", "10000", "open connections per API worker; past it a JSON 503"),
    Setting("CHAT_API_LONG_POLLS_PER_SESSION", "4", "long-polls one session may hold open at once (per worker)"),
    Setting(
        "CHAT_API_LONG_POLLS_PER_CLIENT",
        "2000",
        "long-polls one client address may hold open (per worker); 0: no limit",
    ),
    Setting(
        "CHAT_RATE_LIMIT_MESSAGES",
        "5",
        "messages one user (a name, over all their sessions and every API process) may post per "
        "CHAT_RATE_LIMIT_WINDOW_S; past it a 429 with Retry-After (1 to 10000)",
    ),
    Setting(
        "CHAT_RATE_LIMIT_WINDOW_S",
        "5",
        "the sliding window of the per-user rate limit, in seconds (0.1 to 3600)",
    ),
    Setting(
        "CHAT_SPAM_REPEATS",
        "3",
        "the copy of one text (after normalising case, spacing, punctuation and repeated letters) a user sends "
        "within CHAT_SPAM_WINDOW_S from which it is spam: withheld from readers, recorded with the reason (2 to 1000)",
    ),
    Setting(
        "CHAT_SPAM_WINDOW_S",
        "30",
        "the window of the repeated-message rule, in seconds; at most one spam strike per user per window (1 to 3600)",
    ),
    Setting("CHAT_API_REQUEST_TIMEOUT_S", "10", "seconds a client has to send a whole request (headers and body)"),
    Setting("CHAT_UI_HOST", "127.0.0.1", "address the UI listens on"),
    Setting("CHAT_UI_PORT", "8000", "port the UI listens on"),
    Setting(
        "CHAT_UI_ALLOWED_HOSTS",
        "",
        "Host header names the UI answers (comma-separated, * for any); default the loopback names and UI_HOST",
    ),
    Setting(
        "CHAT_UI_ALLOWED_ORIGINS",
        "",
        "pages (`scheme://host:port`, comma-separated, * for any) whose scripts may open the UI's websocket or "
        "post to it; default `http://<name>:$CHAT_UI_PORT` for each default UI host name",
    ),
    Setting("CHAT_SESSION_TTL_S", "1800", "seconds a session lives after its last use"),
    Setting(
        "CHAT_GUEST_NAMES",
        "off",
        "`on`: POST /sessions without a password signs a guest in under any free name that no account or blocked "
        "author holds (no secret: anyone may take it next); `off`: accounts only",
    ),
    Setting("CHAT_PASSWORD_MIN_CHARS", "10", "the shortest password an account may have (8 to 256 characters)"),
    Setting(
        "CHAT_SIGN_IN_LIMIT",
        "10",
        "wrong passwords per account, and per client address, within CHAT_SIGN_IN_WINDOW_S; past it sign-ins get a "
        "429 with Retry-After for that window (counted by every API process together, through `chat_accounts`)",
    ),
    Setting(
        "CHAT_SIGN_UP_LIMIT",
        "10",
        "sign-ups (granted or not) per client address within CHAT_SIGN_IN_WINDOW_S; past it a 429 (counted by every "
        "API process together)",
    ),
    Setting(
        "CHAT_SIGN_IN_WINDOW_S", "300", "the window and the lockout of the sign-in and sign-up limits (1 to 86400)"
    ),
    Setting(
        "CHAT_SIGNUP_HOLD_S",
        "86400",
        "seconds new sign-ups are refused (403 with Retry-After) from the client addresses a blocked user signed in "
        "from, counted from the block; moderators list and lift holds; 0: no holds",
    ),
    Setting(
        "CHAT_SEEN_RETENTION_S",
        "2592000",
        "how long the API remembers that a user signed in from a client address (from their latest sign-in there), "
        "for address holds: a block holds the addresses its user signed in from within this time; at least "
        "CHAT_SIGNUP_HOLD_S (3600 to 31536000)",
    ),
    Setting(
        "CHAT_SECRET_KEY",
        "",
        "signs the session tokens; set the same value on every API host; default: one generated into `$CHAT_DATA_DIR/secret_key`",
        secret=True,
    ),
    Setting(
        "CHAT_READER_TOKEN",
        "",
        "the credential a UI process's feed reader signs in with (names starting `ui-reader-`), shared by the UI "
        "and the API; `make up` makes one per run; unset: reader sessions only where CHAT_GUEST_NAMES allows",
        secret=True,
    ),
    Setting(
        "CHAT_MODERATORS_FILE",
        "",
        "a file (0600) naming the moderators, one `<name>:<argon2id hash of their secret>` line each (`python -m "
        "api.moderators <name>` writes one); they sign in with POST /moderators/sign_in and their actions are "
        "recorded under their names; unset: only CHAT_ADMIN_TOKEN",
    ),
    Setting(
        "CHAT_ADMIN_TOKEN",
        "",
        "a shared moderators' bearer token, at least 16 characters, whose actions are recorded as `moderator`; "
        "unset (and no CHAT_MODERATORS_FILE): moderator calls are refused",
        secret=True,
    ),
)
NAMES = frozenset(s.name for s in SETTINGS)


def _raw(name: str) -> str:
    if name not in NAMES:
        raise KeyError(f"{name} is not a setting of config/settings.py")
    return os.environ.get(name, "").strip()


def _text(name: str, default: str) -> str:
    return _raw(name) or default


def _number(name: str, default, parse, what: str, low, high):
    """The setting as a number from `low` to `high` (None: unbounded), or SystemExit naming what is wrong."""
    raw = _raw(name)
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {what}, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high) or value != value:
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise SystemExit(f"{name} must be {what} {bounds}, got {raw!r}")
    return value


def _whole(name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    return _number(name, default, int, "a whole number", minimum, maximum)


def _seconds(name: str, default: float, minimum: float = 0.001, maximum: float = 3600) -> float:
    return _number(name, default, float, "a number of seconds", minimum, maximum)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _text(name, default)
    if value not in choices:
        raise SystemExit(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


_SWITCH = {"on": True, "1": True, "true": True, "yes": True, "off": False, "0": False, "false": False, "no": False}


def _switch(name: str, default: bool) -> bool:
    raw = _raw(name).lower()
    if not raw:
        return default
    if raw not in _SWITCH:
        raise SystemExit(f"{name} must be on or off, got {raw!r}")
    return _SWITCH[raw]


MIN_ADMIN_TOKEN_CHARS = 16  # a guessable moderators' token is a moderator for anyone who reaches the API


def _list(name: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in _raw(name).split(",") if h.strip())


def _hosts(name: str, bind_host: str) -> tuple[str, ...]:
    """Host names (lower case, no port) from a comma-separated setting; default the loopback names and the
    bind address (unless it is a wildcard)."""
    return _list(name) or default_hosts(bind_host)


def admin_token_problem(token: str) -> str | None:
    """Why `token` may not be the moderators' token (None: it may; "" switches moderator calls off)."""
    if token and len(token) < MIN_ADMIN_TOKEN_CHARS:
        return (
            f"CHAT_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters, got {len(token)}: choose a "
            "long random one, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'"
        )
    return None


SHARED_MODERATOR = "moderator"  # the name CHAT_ADMIN_TOKEN's actions are recorded under
MAX_MODERATOR_NAME_CHARS = 40
MODERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
MODERATOR_HASH = re.compile(r"\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")
MAX_MODERATORS = 1000


def parse_moderators(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """(name, argon2id hash) of each `<name>:<hash>` line of a moderators file (blank lines and `#` comments
    skipped); SystemExit naming `where`, the line and the fix for anything else."""
    moderators: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, hashed = (part.strip() for part in line.partition(":"))
        at = f"CHAT_MODERATORS_FILE {where} line {number}"
        if not colon:
            raise SystemExit(f"{at}: expected `<name>:<argon2id hash>` (python -m api.moderators <name> writes one)")
        if not MODERATOR_NAME.fullmatch(name):
            raise SystemExit(
                f"{at}: the name {name[:60]!r} must be 1 to 40 letters, digits, `_`, `.` or `-`, starting with a "
                "letter or a digit"
            )
        if not MODERATOR_HASH.fullmatch(hashed):
            raise SystemExit(
                f"{at}: {name}'s secret must be an argon2id hash ($argon2id$v=…), not the secret itself: "
                f"python -m api.moderators {name}"
            )
        if name in moderators:
            raise SystemExit(f"{at}: {name} is named twice; keep one line per moderator")
        moderators[name] = hashed
    if not moderators:
        raise SystemExit(f"CHAT_MODERATORS_FILE {where} names no moderator: add a line, or unset the setting")
    if len(moderators) > MAX_MODERATORS:
        raise SystemExit(f"CHAT_MODERATORS_FILE {where} names {len(moderators)} moderators, at most {MAX_MODERATORS}")
    return tuple(moderators.items())


def load_moderators(path: Path | None, admin_token: str = "") -> tuple[tuple[str, str], ...]:
    """The moderators of CHAT_MODERATORS_FILE (none when unset), read when the API starts (only the API reads
    it); SystemExit when it is missing, not private (0600, this user's), malformed, or names the shared
    moderator while CHAT_ADMIN_TOKEN is set."""
    if path is None:
        return ()
    try:
        text = read_private(path, limit=1024 * 1024)
    except FileNotFoundError:
        raise SystemExit(f"CHAT_MODERATORS_FILE: {path} does not exist") from None
    except NotPrivate as exc:
        raise SystemExit(f"CHAT_MODERATORS_FILE: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"CHAT_MODERATORS_FILE: cannot read {path}: {exc.strerror or exc}") from None
    moderators = parse_moderators(text, str(path))
    problem = shared_moderator_problem((name for name, _ in moderators), admin_token, f" {path}")
    if problem:
        raise SystemExit(problem)
    return moderators


def shared_moderator_problem(names, admin_token: str, where: str = "") -> str | None:
    """Why moderators named `names` cannot stand beside CHAT_ADMIN_TOKEN (one of them has its name), or None."""
    if admin_token and SHARED_MODERATOR in names:
        return (
            f"CHAT_MODERATORS_FILE{where} names {SHARED_MODERATOR!r}, the name CHAT_ADMIN_TOKEN's actions are "
            "recorded under: rename that moderator, or unset CHAT_ADMIN_TOKEN"
        )
    return None


def _admin_token() -> str:
    token = _raw("CHAT_ADMIN_TOKEN")
    problem = admin_token_problem(token)
    if problem:
        raise SystemExit(problem)
    return token


def _absolute(path: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


def _path(name: str, default: Path) -> Path:
    raw = _raw(name)
    return _absolute(Path(raw)) if raw else default


def _location(name: str) -> Location | None:
    """A path, or an object-store URI (`s3a://bucket/prefix`); None when unset."""
    raw = _raw(name)
    if "://" in raw or raw.lower().startswith(f"{SCHEME}:"):
        return parse_object_location(raw, name)
    return _absolute(Path(raw)) if raw else None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse_location: Location | None  # CHAT_WAREHOUSE_DIR as set; None: DATA_DIR/warehouse
    checkpoint_location: Location | None  # CHAT_CHECKPOINT_DIR as set; None: DATA_DIR/checkpoints
    object_store: ObjectStore
    jars_dir: Path
    kafka_bootstrap: str
    embedded_kafka: bool  # no CHAT_KAFKA_BOOTSTRAP: `make up` starts a broker of its own
    kafka_port: int
    kafka_controller_port: int
    kafka_security_protocol: str  # PLAINTEXT or SASL_SSL
    kafka_sasl_username: str
    kafka_sasl_password_file: Path | None
    kafka_ssl_cafile: Path | None
    spark_auth_secret_file: Path | None
    topic_partitions: int
    replication_factor: int
    min_insync_replicas: int  # 0: 1 below three replicas, else 2 (stack/topics.py)
    spark_master: str
    relay_trigger: str
    ledger_trigger_s: float
    maintenance_interval_s: float  # 0: no scheduled compaction
    vacuum_interval_s: float  # 0: no scheduled VACUUM
    delta_checkpoint_interval_s: float  # 0: no scheduled Delta checkpoint
    api_host: str
    api_port: int
    api_url: str
    api_workers: int  # 0: one per core (`api_worker_count`)
    api_allowed_hosts: tuple[str, ...]
    api_max_connections: int
    api_long_polls_per_session: int
    api_long_polls_per_client: int
    api_request_timeout_s: float
    rate_limit_messages: int
    rate_limit_window_s: float
    spam_repeats: int
    spam_window_s: float
    ui_host: str
    ui_port: int
    ui_allowed_hosts: tuple[str, ...]
    ui_allowed_origins: tuple[str, ...]
    session_ttl_s: int
    guest_names: bool
    password_min_chars: int
    sign_in_limit: int
    sign_up_limit: int
    sign_in_window_s: float
    signup_hold_s: float
    seen_retention_s: float
    secret_key: str
    reader_token: str
    moderators_file: Path | None  # read by the API at its start (load_moderators)
    admin_token: str

    @property
    def api_worker_count(self) -> int:
        return self.api_workers or os.cpu_count() or 1

    @property
    def warehouse_dir(self) -> Location:
        return self.warehouse_location or self.data_dir / "warehouse"

    @property
    def checkpoint_dir(self) -> Location:
        return self.checkpoint_location or self.data_dir / "checkpoints"

    @property
    def on_object_store(self) -> bool:
        """Whether the warehouse or the checkpoints are on object storage."""
        return not isinstance(self.warehouse_dir, Path) or not isinstance(self.checkpoint_dir, Path)

    # the folders under DATA_DIR, each named once
    log_dir = property(lambda self: self.data_dir / "log")
    run_dir = property(lambda self: self.data_dir / "run")
    kafka_dir = property(lambda self: self.data_dir / "kafka")
    reports_dir = property(lambda self: self.data_dir / "reports")


def load() -> Settings:
    """Read the settings from the environment (call again after changing it); SystemExit names a bad one."""
    kafka_port = _whole("CHAT_KAFKA_PORT", 9092, 1)
    api_port = _whole("CHAT_API_PORT", 5000, 1)
    api_host = _text("CHAT_API_HOST", "127.0.0.1")
    bootstrap = _raw("CHAT_KAFKA_BOOTSTRAP")
    ui_host = _text("CHAT_UI_HOST", "127.0.0.1")
    ui_port = _whole("CHAT_UI_PORT", 8000, 1)
    signup_hold_s = _seconds("CHAT_SIGNUP_HOLD_S", 86_400.0, 0, 365 * 86_400)
    seen_retention_s = _seconds("CHAT_SEEN_RETENTION_S", 30 * 86_400.0, 3600, 365 * 86_400)
    if seen_retention_s < signup_hold_s:  # else a hold would forget its addresses before it ends
        raise SystemExit(
            f"CHAT_SEEN_RETENTION_S ({seen_retention_s:g}) must be at least CHAT_SIGNUP_HOLD_S ({signup_hold_s:g})"
        )
    return Settings(
        data_dir=_path("CHAT_DATA_DIR", REPO_ROOT / "var"),
        warehouse_location=_location("CHAT_WAREHOUSE_DIR"),
        checkpoint_location=_location("CHAT_CHECKPOINT_DIR"),
        object_store=ObjectStore(
            endpoint=_raw("CHAT_S3_ENDPOINT").rstrip("/"),
            region=_text("CHAT_S3_REGION", "us-east-1"),
            path_style=_switch("CHAT_S3_PATH_STYLE", False),
            credentials_file=_path("CHAT_S3_CREDENTIALS_FILE", None),
        ),
        jars_dir=_path("CHAT_JARS_DIR", REPO_ROOT / "var" / "jars"),
        kafka_bootstrap=bootstrap or f"127.0.0.1:{kafka_port}",
        embedded_kafka=not bootstrap,
        kafka_port=kafka_port,
        kafka_controller_port=_whole("CHAT_KAFKA_CONTROLLER_PORT", 9093, 1),
        kafka_security_protocol=_choice("CHAT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SASL_SSL")),
        kafka_sasl_username=_raw("CHAT_KAFKA_SASL_USERNAME"),
        kafka_sasl_password_file=_path("CHAT_KAFKA_SASL_PASSWORD_FILE", None),
        kafka_ssl_cafile=_path("CHAT_KAFKA_SSL_CAFILE", None),
        spark_auth_secret_file=_path("CHAT_SPARK_AUTH_SECRET_FILE", None),
        topic_partitions=_whole("CHAT_TOPIC_PARTITIONS", 1, 1),
        replication_factor=_whole("CHAT_REPLICATION_FACTOR", 1, 1),
        min_insync_replicas=_whole("CHAT_MIN_INSYNC_REPLICAS", 0),
        spark_master=_text("CHAT_SPARK_MASTER", "local[*]"),
        relay_trigger=_choice("CHAT_RELAY_TRIGGER", "realtime", ("realtime", "microbatch")),
        ledger_trigger_s=_seconds("CHAT_LEDGER_TRIGGER_SECONDS", 1.0),
        maintenance_interval_s=_seconds("CHAT_MAINTENANCE_INTERVAL_S", 600.0, 0, 86_400),
        vacuum_interval_s=_seconds("CHAT_VACUUM_INTERVAL_S", 86_400.0, 0, 30 * 86_400),
        delta_checkpoint_interval_s=_seconds("CHAT_DELTA_CHECKPOINT_INTERVAL_S", 60.0, 0, 3600),
        api_host=api_host,
        api_port=api_port,
        api_url=_text("CHAT_API_URL", f"http://127.0.0.1:{api_port}").rstrip("/"),
        api_workers=_whole("CHAT_API_WORKERS", 0, 0, 256),
        api_allowed_hosts=_hosts("CHAT_API_ALLOWED_HOSTS", api_host),
        api_max_connections=_whole("CHAT_API_MAX_CONNECTIONS", 10_000, 1),
        api_long_polls_per_session=_whole("CHAT_API_LONG_POLLS_PER_SESSION", 4, 1),
        api_long_polls_per_client=_whole("CHAT_API_LONG_POLLS_PER_CLIENT", 2000, 0),
        api_request_timeout_s=_seconds("CHAT_API_REQUEST_TIMEOUT_S", 10.0, 0.1, 600),
        rate_limit_messages=_whole("CHAT_RATE_LIMIT_MESSAGES", 5, 1, 10_000),
        rate_limit_window_s=_seconds("CHAT_RATE_LIMIT_WINDOW_S", 5.0, 0.1, 3600),
        spam_repeats=_whole("CHAT_SPAM_REPEATS", 3, 2, 1000),
        spam_window_s=_seconds("CHAT_SPAM_WINDOW_S", 30.0, 1, 3600),
        ui_host=ui_host,
        ui_port=ui_port,
        ui_allowed_hosts=_hosts("CHAT_UI_ALLOWED_HOSTS", ui_host),
        ui_allowed_origins=_list("CHAT_UI_ALLOWED_ORIGINS") or default_origins(ui_host, ui_port),
        session_ttl_s=_whole("CHAT_SESSION_TTL_S", 1800, 1),
        guest_names=_switch("CHAT_GUEST_NAMES", False),
        password_min_chars=_whole("CHAT_PASSWORD_MIN_CHARS", 10, 8, contract.MAX_PASSWORD_CHARS),
        sign_in_limit=_whole("CHAT_SIGN_IN_LIMIT", 10, 1, 10_000),
        sign_up_limit=_whole("CHAT_SIGN_UP_LIMIT", 10, 1, 10_000),
        sign_in_window_s=_seconds("CHAT_SIGN_IN_WINDOW_S", 300.0, 1, 86_400),
        signup_hold_s=signup_hold_s,
        seen_retention_s=seen_retention_s,
        secret_key=_raw("CHAT_SECRET_KEY"),
        reader_token=_raw("CHAT_READER_TOKEN"),
        moderators_file=_path("CHAT_MODERATORS_FILE", None),
        admin_token=_admin_token(),
    )


def describe(current: Callable[[str], str] = _raw) -> list[tuple[str, str, str, str]]:
    """(name, default, current value, meaning) of every setting; secrets are shown as set or not."""
    rows = []
    for s in SETTINGS:
        value = current(s.name)
        if s.secret and value:
            value = "(set)"
        rows.append((s.name, s.default or "-", value or "-", s.meaning))
    return rows


def markdown_table() -> str:
    """The settings as the Markdown table of README's "Configuration" section."""
    lines = ["| variable | default | what |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {f'`{s.default}`' if s.default else '-'} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(lines)
