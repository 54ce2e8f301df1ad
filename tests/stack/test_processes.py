"""stack/processes.py: the environment, logs and stops of the processes the launcher starts."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

from config.settings import REPO_ROOT
from stack.processes import child_env, spawn, stop_process_group, tail


def test_a_child_runs_from_the_repository_with_the_settings_it_is_given(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setenv("CHAT_API_URL", "http://exported.by.the.user")
    env = child_env(CHAT_DATA_DIR="/srv/chat", CHAT_API_URL=None)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), "/elsewhere"]
    assert (env["CHAT_DATA_DIR"], env["PYTHONUNBUFFERED"]) == ("/srv/chat", "1")
    assert "CHAT_API_URL" not in env
    assert os.environ["CHAT_API_URL"] == "http://exported.by.the.user"  # this process's own is untouched


def is_dead(pid: int) -> bool:
    """Gone, or a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_spawned_group_logs_and_stops_with_its_children(tmp_path):
    log = tmp_path / "log" / "child.log"
    # a child that starts a grandchild and ignores SIGTERM: only the group's SIGKILL ends them
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('pid:', grandchild.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = spawn([sys.executable, "-c", script], log, child_env())
    try:
        while not (found := re.search(r"^pid: (\d+)$", log.read_text(), re.M)):
            assert proc.poll() is None, log.read_text()
        grandchild = int(found.group(1))
        assert os.getpgid(proc.pid) == proc.pid and os.getpgid(grandchild) == proc.pid
    finally:
        stop_process_group(proc, timeout_s=1)
    assert proc.returncode == -signal.SIGKILL
    while not is_dead(grandchild):  # killed with its group
        pass
    assert log.read_text().splitlines()[1].startswith("=== ")  # the line naming the command
    assert "starting" in tail(log, 50) and tail(tmp_path / "missing.log") == ""
    stop_process_group(proc)  # stopping what has stopped is a no-op
