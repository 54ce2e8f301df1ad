"""The processes the launcher starts: their environment, their logs, their process groups."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from config.settings import REPO_ROOT


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
    appended to `log_file` after a line naming the command."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
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
