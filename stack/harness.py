"""Run the whole chat (`python -m stack.up`, what `make up` runs) on free loopback ports in a data directory.

The integration tests and the benchmarks use it, so both exercise exactly what
a user starts.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stack.broker import free_port
from stack.processes import child_env, spawn


class StackError(RuntimeError):
    """The stack did not start; the message holds its output and the tails of its logs."""


@dataclass
class ChatStack:
    process: subprocess.Popen
    data_dir: Path
    log: Path
    kafka_bootstrap: str
    api_url: str
    ui_url: str
    ports: tuple[int, ...]
    admin_token: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")


# Test and benchmark stacks post faster from one name than any person (a load test's user, the e2e
# writers at 200 msg/s): they run with the per-user rate limit out of reach; the limit's own tests set it.
# Their users sign in under guest names (no account, no password), which only such stacks allow by default.
GUEST_NAMES = {"CHAT_GUEST_NAMES": "on"}
# Their users also repeat a few texts (a load test's users pick from ten): the repeated-message spam rule is set
# out of reach too; the spam rule's own stack test runs an API host with the product's settings.
NO_SPAM_RULE = {"CHAT_SPAM_REPEATS": "1000", "CHAT_SPAM_WINDOW_S": "1"}
UNLIMITED_POSTS = {
    "CHAT_RATE_LIMIT_MESSAGES": "10000",
    "CHAT_RATE_LIMIT_WINDOW_S": "0.1",
    **GUEST_NAMES,
    **NO_SPAM_RULE,
}


def start_stack(data_dir: Path, timeout_s: float = 420, env: dict[str, str] | None = None) -> ChatStack:
    """`python -m stack.up` on free ports in `data_dir`, ready; `env` adds settings (such as CHAT_API_WORKERS)."""
    kafka_port, controller_port, api_port, ui_port = (free_port() for _ in range(4))
    admin_token = secrets.token_urlsafe(24)
    # the settings a user of `make up` might have exported are cleared: this stack is all on its own ports
    env = child_env(
        **{
            "CHAT_ADMIN_TOKEN": admin_token,
            "CHAT_DATA_DIR": str(data_dir),
            "CHAT_KAFKA_PORT": str(kafka_port),
            "CHAT_KAFKA_CONTROLLER_PORT": str(controller_port),
            "CHAT_API_PORT": str(api_port),
            "CHAT_UI_PORT": str(ui_port),
            "CHAT_KAFKA_BOOTSTRAP": None,
            "CHAT_API_URL": None,
            "CHAT_WAREHOUSE_DIR": None,
            "CHAT_CHECKPOINT_DIR": None,
            **(env or {}),
        }
    )
    log = data_dir / "stack-up.out"
    process = spawn([sys.executable, "-m", "stack.up"], log, env)
    stack = ChatStack(
        process,
        data_dir,
        log,
        f"127.0.0.1:{kafka_port}",
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{ui_port}",
        (kafka_port, controller_port, api_port, ui_port),
        admin_token,
    )
    deadline = time.monotonic() + timeout_s
    # the final "HH:MM:SS  ready   in ..." line, not a service's "streams ready in ..."
    while not re.search(r"^\S+\s+ready\s+in ", stack.output(), re.M):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            logs = "\n".join(
                f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                for p in sorted((data_dir / "log").glob("*.log"))
            )
            raise StackError(f"the stack did not start:\n{stack.output()}\n{logs}")
        time.sleep(0.5)
    return stack


def stop_stack(stack: ChatStack, timeout_s: float = 90) -> int:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            stack.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait()
    return stack.process.returncode
