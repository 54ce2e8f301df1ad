"""config/settings.py: every CHAT_* setting, read in one place, and the paths derived from them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from config import contract, settings
from warehouse import paths

ROOT = settings.REPO_ROOT
# the code and the files that configure or document it; tests may set any name they like
PRODUCT_PACKAGES = ("config", "warehouse", "pipelines", "api", "ui", "stack", "bench")
PRODUCT_FILES = ("compose.yml", "compose.cluster.yml", "Dockerfile", "Makefile", "README.md")
CHAT_NAME = re.compile(r"\bCHAT_[A-Z0-9_]+\b")


def product_sources() -> list[Path]:
    files = [p for package in PRODUCT_PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    files += [p for p in sorted((ROOT / "conf").rglob("*")) if p.is_file() and p.suffix != ".txt"]
    return files + [ROOT / name for name in PRODUCT_FILES]


def test_defaults_run_everything_on_one_machine(monkeypatch):
    for name in (
        "CHAT_WAREHOUSE_DIR",
        "CHAT_DATA_DIR",
        "CHAT_KAFKA_BOOTSTRAP",
        "CHAT_REPLICATION_FACTOR",
        "CHAT_MIN_INSYNC_REPLICAS",
        "CHAT_SESSION_TTL_S",
        "CHAT_ADMIN_TOKEN",
        "CHAT_KAFKA_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert (s.kafka_bootstrap, s.replication_factor, s.min_insync_replicas) == ("127.0.0.1:9092", 1, 0)
    assert (s.session_ttl_s, s.admin_token) == (1800, "")
    assert s.warehouse_dir == settings.REPO_ROOT / "var" / "warehouse"


def test_a_cluster_is_configuration(monkeypatch):
    monkeypatch.setenv("CHAT_KAFKA_BOOTSTRAP", "k1:9092,k2:9092,k3:9092")
    monkeypatch.setenv("CHAT_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CHAT_SPARK_MASTER", "spark://127.0.0.1:7077")
    monkeypatch.setenv("CHAT_DATA_DIR", "/srv/chat")
    monkeypatch.setenv("CHAT_WAREHOUSE_DIR", "/mnt/shared/warehouse")
    s = settings.load()
    assert (s.kafka_bootstrap, s.replication_factor, s.spark_master) == (
        "k1:9092,k2:9092,k3:9092",
        3,
        "spark://127.0.0.1:7077",
    )
    assert (s.warehouse_dir, s.checkpoint_dir) == (Path("/mnt/shared/warehouse"), Path("/srv/chat/checkpoints"))
    assert paths.table_path(paths.MESSAGES) == Path("/mnt/shared/warehouse/messages")
    monkeypatch.setenv("CHAT_SESSION_TTL_S", "soon")
    with pytest.raises(SystemExit, match="CHAT_SESSION_TTL_S must be a whole number"):
        settings.load()


def test_a_commands_data_dir_does_not_override_the_warehouse_setting(monkeypatch, tmp_path):
    """`make stats` and `make sql` pass a data directory: the warehouse is still CHAT_WAREHOUSE_DIR when set
    (it once was DATA_DIR/warehouse there, while the ledger wrote to CHAT_WAREHOUSE_DIR)."""
    some_data_dir = tmp_path / "data"
    monkeypatch.setenv("CHAT_WAREHOUSE_DIR", str(tmp_path / "shared"))
    assert paths.warehouse_dir(some_data_dir) == tmp_path / "shared" == settings.load().warehouse_dir
    assert paths.table_path(paths.USER_STATS, paths.warehouse_dir(some_data_dir)) == tmp_path / "shared" / "user_stats"
    monkeypatch.delenv("CHAT_WAREHOUSE_DIR")
    assert paths.warehouse_dir(some_data_dir) == some_data_dir / "warehouse"


def test_settings_are_checked_and_secrets_are_not_shown(monkeypatch):
    monkeypatch.setenv("CHAT_RELAY_TRIGGER", "sometimes")
    with pytest.raises(SystemExit, match="CHAT_RELAY_TRIGGER must be one of realtime, microbatch"):
        settings.load()
    monkeypatch.delenv("CHAT_RELAY_TRIGGER")
    monkeypatch.setenv("CHAT_ADMIN_TOKEN", "do-not-print-me")
    rows = {name: (default, now) for name, default, now, _ in settings.describe()}
    assert rows["CHAT_ADMIN_TOKEN"] == ("-", "(set)")
    assert set(rows) == settings.NAMES
    with pytest.raises(KeyError, match="CHAT_NO_SUCH_THING is not a setting"):
        settings._raw("CHAT_NO_SUCH_THING")


def test_every_chat_name_the_product_uses_is_a_declared_setting():
    """Each CHAT_* name in the code, the compose files, the Dockerfile, the Makefile and README is a setting of
    config/settings.py (or a constant of config/contract.py, such as CHAT_POSITION_HEADER)."""
    contract_names = {name for name in vars(contract) if name.startswith("CHAT_")}
    used: dict[str, set[str]] = {}
    for path in product_sources():
        for name in CHAT_NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    undeclared = {name: sorted(where) for name, where in used.items() if name not in settings.NAMES | contract_names}
    assert undeclared == {}
    assert set(used) >= {"CHAT_DATA_DIR", "CHAT_WAREHOUSE_DIR", "CHAT_KAFKA_BOOTSTRAP", "CHAT_API_PORT"}


def environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of each CHAT_* name read from the environment: os.environ[...], os.environ.get(...),
    os.getenv(...), and `"CHAT_…" in os.environ`."""
    reads = []
    for node in ast.walk(tree):
        names: list[ast.AST] = []
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            names = [node.slice]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr in ("get", "pop", "setdefault") and _is_environ(func.value)) or func.attr == "getenv"
            ):
                names = [node.args[0]]
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            names = [node.left]
        reads += [
            (node.lineno, n.value)
            for n in names
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("CHAT_")
        ]
    return reads


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def test_only_config_reads_chat_settings_from_the_environment():
    reads = [
        f"{path.relative_to(ROOT)}:{line} reads {name} from os.environ: use config.settings.load()"
        for path in product_sources()
        if path.suffix == ".py" and path.relative_to(ROOT).parts[0] != "config"
        for line, name in environment_reads(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert reads == []


def test_the_environment_read_finder_can_fail():
    tree = ast.parse(
        "import os\n"
        "a = os.environ['CHAT_A']\n"
        "b = os.environ.get('CHAT_B', 'x')\n"
        "c = os.getenv('CHAT_C')\n"
        "d = 'CHAT_D' in os.environ\n"
        "os.environ['CHAT_E'] = 'set for a child'\n"
        "f = os.environ.get('HOME')\n"
    )
    assert environment_reads(tree) == [(2, "CHAT_A"), (3, "CHAT_B"), (4, "CHAT_C"), (5, "CHAT_D")]


def test_readme_lists_every_setting_as_config_declares_it():
    readme = (settings.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme, "README's Configuration table differs: python -m config --markdown"


def test_the_ui_answers_its_own_names_and_page_unless_told_otherwise(monkeypatch):
    for name in ("CHAT_UI_HOST", "CHAT_UI_PORT", "CHAT_UI_ALLOWED_HOSTS", "CHAT_UI_ALLOWED_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert s.ui_allowed_hosts == ("127.0.0.1", "localhost", "::1")
    assert s.ui_allowed_origins == ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000")
    monkeypatch.setenv("CHAT_UI_HOST", "chat.lan")
    monkeypatch.setenv("CHAT_UI_PORT", "80")
    s = settings.load()
    assert s.ui_allowed_hosts == ("127.0.0.1", "localhost", "::1", "chat.lan")
    assert s.ui_allowed_origins[-1] == "http://chat.lan"  # browsers leave the default port out
    monkeypatch.setenv("CHAT_UI_HOST", "0.0.0.0")  # a wildcard bind is not a name anyone browses to
    assert "0.0.0.0" not in settings.load().ui_allowed_hosts
    monkeypatch.setenv("CHAT_UI_ALLOWED_HOSTS", "Chat.Example.org, *")
    monkeypatch.setenv("CHAT_UI_ALLOWED_ORIGINS", "https://chat.example.org")
    s = settings.load()
    assert (s.ui_allowed_hosts, s.ui_allowed_origins) == (("chat.example.org", "*"), ("https://chat.example.org",))


def test_a_short_admin_token_stops_the_start_with_the_fix(monkeypatch):
    monkeypatch.setenv("CHAT_ADMIN_TOKEN", "x" * (settings.MIN_ADMIN_TOKEN_CHARS - 1))
    with pytest.raises(SystemExit, match=r"CHAT_ADMIN_TOKEN must be at least 16 characters, got 15.*token_urlsafe"):
        settings.load()
    monkeypatch.setenv("CHAT_ADMIN_TOKEN", "x" * settings.MIN_ADMIN_TOKEN_CHARS)
    assert settings.load().admin_token == "x" * 16
    monkeypatch.setenv("CHAT_ADMIN_TOKEN", "")
    assert settings.load().admin_token == ""  # moderator calls switched off


HASH = "$argon2id$v=19$m=65536,t=3,p=4$y3MmCyyrl70E29Bq/mQdRQ$/XMLmA7VlmZKeZwOWtQhr77EwS6Jslah/J8KX3cCI4c"


def test_the_moderators_file_is_read_when_the_api_starts_and_a_bad_one_stops_it_with_the_fix(monkeypatch, tmp_path):
    path = tmp_path / "moderators"
    monkeypatch.setenv("CHAT_MODERATORS_FILE", str(path))
    assert settings.load().moderators_file == path  # load() takes the path only: the API reads the file
    monkeypatch.delenv("CHAT_MODERATORS_FILE")
    assert settings.load().moderators_file is None and settings.load_moderators(None) == ()
    text = f"# moderators\n\nmia:{HASH}\n  noor.b : {HASH}  \n"
    assert settings.parse_moderators(text, "f") == (("mia", HASH), ("noor.b", HASH))
    for bad, problem in [
        (f"mia {HASH}", r"f line 1: expected `<name>:<argon2id hash>` \(python -m api.moderators <name>"),
        (f"mia:{HASH}\n-mia:{HASH}", r"f line 2: the name '-mia' must be 1 to 40 letters"),
        (f"{'m' * 41}:{HASH}", "must be 1 to 40 letters"),
        (f"mía:{HASH}", "must be 1 to 40 letters"),
        ("mia:correct horse battery staple", r"line 1: mia's secret must be an argon2id hash .* not the secret itself"),
        ("mia:$argon2i$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", "must be an argon2id hash"),
        (f"mia:{HASH}\nmia:{HASH}", "f line 2: mia is named twice"),
        ("# nobody yet\n", "names no moderator: add a line, or unset the setting"),
    ]:
        with pytest.raises(SystemExit, match=problem):
            settings.parse_moderators(bad, "f")
    with pytest.raises(SystemExit, match=r"CHAT_MODERATORS_FILE: .*moderators does not exist"):
        settings.load_moderators(path)
    path.write_text(f"moderator:{HASH}\n", encoding="utf-8")
    path.chmod(0o640)
    with pytest.raises(SystemExit, match=r"is open to other users \(mode 0640\): chmod 600"):
        settings.load_moderators(path)
    path.chmod(0o600)
    assert settings.load_moderators(path) == (("moderator", HASH),)
    with pytest.raises(SystemExit, match="names 'moderator', the name CHAT_ADMIN_TOKEN's actions are recorded under"):
        settings.load_moderators(path, admin_token="x" * 16)


def test_the_rate_limit_defaults_to_a_few_messages_per_few_seconds_and_takes_sane_values(monkeypatch):
    monkeypatch.delenv("CHAT_RATE_LIMIT_MESSAGES", raising=False)
    monkeypatch.delenv("CHAT_RATE_LIMIT_WINDOW_S", raising=False)
    s = settings.load()
    assert (s.rate_limit_messages, s.rate_limit_window_s) == (5, 5.0)
    monkeypatch.setenv("CHAT_RATE_LIMIT_MESSAGES", "20")
    monkeypatch.setenv("CHAT_RATE_LIMIT_WINDOW_S", "30")
    s = settings.load()
    assert (s.rate_limit_messages, s.rate_limit_window_s) == (20, 30.0)


@pytest.mark.parametrize(
    "name, raw, error",
    [
        ("CHAT_RATE_LIMIT_MESSAGES", "0", "CHAT_RATE_LIMIT_MESSAGES must be a whole number from 1 to 10000, got '0'"),
        ("CHAT_RATE_LIMIT_MESSAGES", "-3", "CHAT_RATE_LIMIT_MESSAGES must be a whole number from 1 to 10000, got '-3'"),
        ("CHAT_RATE_LIMIT_MESSAGES", "1e9", "CHAT_RATE_LIMIT_MESSAGES must be a whole number, got '1e9'"),
        ("CHAT_RATE_LIMIT_MESSAGES", "99999", "CHAT_RATE_LIMIT_MESSAGES must be a whole number from 1 to 10000"),
        ("CHAT_RATE_LIMIT_MESSAGES", "five", "CHAT_RATE_LIMIT_MESSAGES must be a whole number, got 'five'"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "0", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds from 0.1 to 3600"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "-5", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds from 0.1 to 3600"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "86400", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds from 0.1 to 3600"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "nan", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds from 0.1 to 3600"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "inf", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds from 0.1 to 3600"),
        ("CHAT_RATE_LIMIT_WINDOW_S", "5s", "CHAT_RATE_LIMIT_WINDOW_S must be a number of seconds, got '5s'"),
    ],
)
def test_a_bad_rate_limit_stops_the_start_naming_the_setting(monkeypatch, name, raw, error):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SystemExit, match=re.escape(error)):
        settings.load()


def test_the_delta_checkpoint_interval_is_a_minute_by_default_and_0_switches_it_off(monkeypatch):
    monkeypatch.delenv("CHAT_DELTA_CHECKPOINT_INTERVAL_S", raising=False)
    assert settings.load().delta_checkpoint_interval_s == 60.0
    monkeypatch.setenv("CHAT_DELTA_CHECKPOINT_INTERVAL_S", "0")
    assert settings.load().delta_checkpoint_interval_s == 0.0
    monkeypatch.setenv("CHAT_DELTA_CHECKPOINT_INTERVAL_S", "2.5")
    assert settings.load().delta_checkpoint_interval_s == 2.5


@pytest.mark.parametrize("raw", ["-1", "3601", "nan", "1m"])
def test_a_bad_delta_checkpoint_interval_stops_the_start_naming_the_setting(monkeypatch, raw):
    monkeypatch.setenv("CHAT_DELTA_CHECKPOINT_INTERVAL_S", raw)
    with pytest.raises(SystemExit, match=f"CHAT_DELTA_CHECKPOINT_INTERVAL_S must be a number of seconds.*{raw!r}"):
        settings.load()
