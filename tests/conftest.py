"""Shared fixtures: one Spark session, and the real chat stack (Kafka broker, Spark relay, API, UI).

The stack fixture runs `python -m stack.up` — the same program `make up` runs —
on free loopback ports with a temporary data directory, so the integration
tests exercise a real `kafka.Kafka` JVM and the real Spark relay.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from stack.broker import free_port, port_open
from stack.settings import REPO_ROOT


@pytest.fixture(scope="session")
def spark():
    from pipelines.session import get_spark
    session = get_spark("chat-tests", master="local[2]", extra={
        "spark.sql.shuffle.partitions": "1",
        "spark.ui.enabled": "false",
        "spark.default.parallelism": "2",
    })
    yield session
    session.stop()


@dataclass
class ChatStack:
    process: subprocess.Popen
    data_dir: Path
    log: Path
    kafka_bootstrap: str
    api_url: str
    ui_url: str
    ports: tuple[int, ...]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_stack(data_dir: Path, timeout_s: float = 240) -> ChatStack:
    kafka_port, controller_port, api_port, ui_port = (free_port() for _ in range(4))
    env = dict(os.environ,
               CHAT_DATA_DIR=str(data_dir), CHAT_KAFKA_PORT=str(kafka_port),
               CHAT_KAFKA_CONTROLLER_PORT=str(controller_port),
               CHAT_API_PORT=str(api_port), CHAT_UI_PORT=str(ui_port), PYTHONUNBUFFERED="1")
    for name in ("CHAT_KAFKA_BOOTSTRAP", "CHAT_API_URL"):
        env.pop(name, None)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "stack-up.out"
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "stack.up"], cwd=REPO_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    stack = ChatStack(process, data_dir, log, f"127.0.0.1:{kafka_port}", f"http://127.0.0.1:{api_port}",
                      f"http://127.0.0.1:{ui_port}", (kafka_port, controller_port, api_port, ui_port))
    deadline = time.monotonic() + timeout_s
    # the final "HH:MM:SS  ready   in ..." line, not a service's "streams ready in ..."
    while not re.search(r"^\S+\s+ready\s+in ", stack.output(), re.M):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_stack(stack)
            logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                             for p in sorted((data_dir / "log").glob("*.log")))
            pytest.fail(f"the stack did not start:\n{stack.output()}\n{logs}")
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


@pytest.fixture(scope="session")
def chat_stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    returncode = stop_stack(stack)
    assert returncode == 0, stack.output()
    assert not any(port_open("127.0.0.1", p) for p in stack.ports), "a port is still open after the stop"


def wait_for_messages(api_url: str, user: str, predicate, timeout_s: float = 60) -> list[dict]:
    """Long-poll GET /messages as `user` until `predicate(all messages seen)` holds."""
    seen: list[dict] = []
    body = requests.get(f"{api_url}/messages", params={"user": user, "limit": 500}, timeout=10).json()
    seen.extend(body["messages"])
    cursor = body["cursor"]
    deadline = time.monotonic() + timeout_s
    while not predicate(seen):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; {user} saw {seen}")
        body = requests.get(f"{api_url}/messages", params={"user": user, "after": cursor, "wait": 5},
                            timeout=15).json()
        seen.extend(body["messages"])
        cursor = body["cursor"]
    return seen


@pytest.fixture(scope="session")
def kafka_only(tmp_path_factory):
    """A bare broker (with the chat topics) for tests that drive Spark by hand; yields its bootstrap."""
    from stack.broker import KafkaBroker
    from stack.topics import create_topics
    home = tmp_path_factory.mktemp("kafka")
    broker = KafkaBroker(home, free_port(), free_port(), home / "kafka.log")
    broker.start()
    create_topics(broker.bootstrap)
    yield broker.bootstrap
    broker.stop()
