"""The processes the launcher starts: their environment (secrets only for the API), their logs (0600 in 0700
directories), their process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from config.private import private_dir
from config.settings import REPO_ROOT, SETTINGS

# the session-signing key and the moderators' token: only the API needs them (see `without_secrets`)
SECRET_NAMES = tuple(s.name for s in SETTINGS if s.secret)


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the secret settings, for a process that does not need them (the streams, the UI, the broker):
    a child's environment is readable by whatever it runs and ends up in crash dumps and process listings."""
    return {name: value for name, value in env.items() if name not in SECRET_NAMES}


def child_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment for a child run from the repository: the repository first on PYTHONPATH,
    unbuffered output, then `overrides` (None removes a variable)."""
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def spawn(
    argv: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
) -> subprocess.Popen:
    """Start `argv` in a process group of its own (so that it can be stopped with its children), its output
    appended to `log_file` (0600, in a directory created 0700) after a line naming the command. Without `env`
    the child gets this process's environment less the secrets."""
    private_dir(log_file.parent)
    env = without_secrets(os.environ) if env is None else env
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def stop_process_group(proc: subprocess.Popen | None, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process group `proc` leads (started by `spawn`), wait, and kill the group if it does not end."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
