"""The launcher's side of the secrets (stack/up.py, stack/processes.py): private directories and logs, a refusal
to start on a run directory or key other users can reach, and the secrets passed to the API alone."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from config import settings
from config.private import NotPrivate
from stack import up
from stack.processes import SECRET_NAMES, child_env, spawn, stop_process_group, without_secrets

SECRETS = {"CHAT_SECRET_KEY": "k" * 40, "CHAT_ADMIN_TOKEN": "moderators-token-of-the-test"}


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def data_settings(tmp_path, monkeypatch) -> settings.Settings:
    monkeypatch.setenv("CHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CHAT_SECRET_KEY", raising=False)
    return settings.load()


def test_the_secrets_go_to_the_api_alone(data_settings, monkeypatch):
    assert set(SECRET_NAMES) == {"CHAT_SECRET_KEY", "CHAT_ADMIN_TOKEN", "CHAT_READER_TOKEN"}
    monkeypatch.delenv("CHAT_READER_TOKEN", raising=False)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    env = child_env(CHAT_DATA_DIR=str(data_settings.data_dir))
    services = {svc.name: svc for svc in up.build_services(data_settings, env)}
    assert set(services) == {"streams", "api", "ui"}
    assert {name: services["api"].env[name] for name in SECRETS} == SECRETS
    for name in ("streams", "ui"):
        assert not set(SECRETS) & set(services[name].env), name
        assert services[name].env["CHAT_DATA_DIR"] == str(data_settings.data_dir)  # the rest is kept
    assert without_secrets({"CHAT_ADMIN_TOKEN": "x", "PATH": "/bin"}) == {"PATH": "/bin"}
    # the feed reader's credential, made for the run, goes to the API and the UI alone
    reader = services["api"].env["CHAT_READER_TOKEN"]
    assert len(reader) >= 32 and services["ui"].env["CHAT_READER_TOKEN"] == reader
    assert "CHAT_READER_TOKEN" not in services["streams"].env
    again = up.build_services(data_settings, env)
    assert again[1].env["CHAT_READER_TOKEN"] != reader  # one per run, never a fixed default


def test_a_child_started_without_an_environment_gets_no_secret_and_a_private_log(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "log" / "child.log"
    script = "import os; print(sorted(n for n in os.environ if n in ('CHAT_SECRET_KEY', 'CHAT_ADMIN_TOKEN')))"
    proc = spawn([sys.executable, "-c", script], log)  # as the broker and the balancer are started
    try:
        assert proc.wait(60) == 0
    finally:
        stop_process_group(proc)
    assert log.read_text().splitlines()[-1] == "[]"
    assert (mode(log.parent), mode(log)) == (0o700, 0o600)


def test_the_launcher_makes_its_directories_private(data_settings):
    up.prepare_dirs(data_settings)
    for path in (data_settings.data_dir, data_settings.run_dir, data_settings.log_dir):
        assert mode(path) == 0o700, path
    up.prepare_dirs(data_settings)  # again: nothing to refuse


def test_the_launcher_refuses_a_run_directory_or_key_others_can_reach(data_settings, monkeypatch):
    run_dir = data_settings.run_dir
    run_dir.mkdir(parents=True, mode=0o700)
    run_dir.chmod(0o755)  # made by an earlier version, or by hand
    with pytest.raises(NotPrivate, match=f"{run_dir} is open to other users \\(mode 0755\\): chmod 700 {run_dir}"):
        up.prepare_dirs(data_settings)
    run_dir.chmod(0o700)
    key = data_settings.data_dir / "secret_key"
    key.write_text("a-key-others-can-read")
    key.chmod(0o644)
    with pytest.raises(NotPrivate, match=f"{key} is open to other users \\(mode 0644\\): chmod 600 {key}"):
        up.prepare_dirs(data_settings)
    key.chmod(0o600)
    up.prepare_dirs(data_settings)
    monkeypatch.setattr("os.geteuid", lambda: os.getuid() + 1)
    with pytest.raises(NotPrivate, match=f"{run_dir} belongs to user id {os.getuid()}"):
        up.prepare_dirs(data_settings)


def test_make_up_stops_at_once_with_the_fix(data_settings, monkeypatch, capsys):
    data_settings.run_dir.mkdir(parents=True, mode=0o700)
    data_settings.run_dir.chmod(0o750)
    umask = os.umask(0o022)
    try:
        assert up.main() == 1
    finally:
        os.umask(umask)
    assert f"chmod 700 {data_settings.run_dir}" in capsys.readouterr().out


def test_make_up_stops_at_once_on_a_bad_moderators_file(data_settings, monkeypatch, capsys, tmp_path):
    moderators = tmp_path / "moderators"
    moderators.write_text("mia:mia's secret in clear\n")
    moderators.chmod(0o600)
    monkeypatch.setenv("CHAT_MODERATORS_FILE", str(moderators))
    umask = os.umask(0o022)
    try:
        assert up.main() == 1
    finally:
        os.umask(umask)
    assert "mia's secret must be an argon2id hash" in capsys.readouterr().out
