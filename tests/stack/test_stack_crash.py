"""The streams of the running stack killed at four points; each kill proves where it landed before `make up`
restarts them, and afterwards nothing is lost or counted twice. Runs last (tests/stack/conftest.py): it
kills processes that the whole session shares."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import auth, records_in, wait_for_messages
from tests.stack.running import child_pid, delta_rows, post, wait_until

pytestmark = pytest.mark.integration

AUTHOR = "crash"


@contextmanager
def restarts_held(stack):
    """`make up` paused: a process killed meanwhile stays dead, and what it left can be looked at."""
    os.kill(stack.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(stack.process.pid, signal.SIGCONT)


def streams_pid(stack) -> int:
    pid = child_pid(stack.process.pid, "pipelines.streams")
    assert pid, "the streams process was not found"
    return pid


def kill_streams(stack) -> int:
    """SIGKILL the streams' whole process group (the Python driver and its Spark JVM) and wait until it is
    gone: from then on nothing of it writes to Delta or Kafka."""
    pid = streams_pid(stack)
    os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not any(pgid == pid for pgid in process_groups()), timeout_s=30, every_s=0.02)
    return pid


def process_groups() -> list[int]:
    """The process group of every live process (a zombie, dead but not reaped by its paused parent, is not)."""
    groups = []
    for entry in Path("/proc").iterdir():
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if state != "Z":
            groups.append(int(pgrp))
    return groups


def streams_restarted(stack, old_pid: int) -> int:
    return wait_until(
        lambda: (p := child_pid(stack.process.pid, "pipelines.streams")) not in (None, old_pid) and p, timeout_s=180
    )


def queries_started(stack) -> int:
    """How many times a streams process has started both its queries (its line after `start()`)."""
    return (stack.data_dir / "log" / "streams.log").read_text(errors="replace").count("streams: relay (")


def ids_in(bootstrap: str, topic: str) -> set[str]:
    """The `message_id` headers of every record in `topic`."""
    return {dict(r.headers).get("message_id", b"").decode() for r in records_in(bootstrap, topic)}


def delta_log(stack, table: str) -> Path:
    return stack.data_dir / "warehouse" / table / "_delta_log"


def commits(stack, table: str) -> set[Path]:
    return set(delta_log(stack, table).glob("*.json"))


def batch_of(commit: Path) -> int | None:
    """The ledger batch a Delta commit of an append belongs to (its transaction version)."""
    for line in commit.read_text().splitlines():
        action = json.loads(line)
        if "txn" in action:
            return action["txn"]["version"]
    return None


def merged_through(stack) -> int:
    """The last ledger batch merged into the user's `user_moderation` row (-1: no row yet)."""
    users = delta_rows(stack, "user_moderation", author=AUTHOR)
    return users[0]["last_batch_id"] if users else -1


@pytest.mark.timeout(1500)  # four Spark restarts, each a minute or more on 2 busy cores
def test_streams_killed_at_several_points_lose_and_duplicate_nothing(chat_stack):
    api, bootstrap = chat_stack.api_url, chat_stack.kafka_bootstrap
    ready = chat_stack.data_dir / "run" / "streams.ready"
    ids: list[str] = []

    # 1. in the middle of traffic: what is posted while the streams are dead waits in Kafka
    ids += [post(api, AUTHOR, "antes: mierda" if i == 0 else f"antes {i}")["id"] for i in range(10)]
    started = queries_started(chat_stack)
    with restarts_held(chat_stack):
        old = kill_streams(chat_stack)
        during = [post(api, AUTHOR, f"durante {i}")["id"] for i in range(10)]
        assert set(during) <= ids_in(bootstrap, "chat")
        assert not set(during) & ids_in(bootstrap, "chat_controlled"), "the relay was still running"
    ids += during
    old = streams_restarted(chat_stack, old)

    # 2. while the new process is starting: its queries started (recovering their checkpoints), not ready yet
    wait_until(lambda: queries_started(chat_stack) > started, timeout_s=240, every_s=0.05)
    with restarts_held(chat_stack):
        old = kill_streams(chat_stack)
        assert not ready.exists(), "the streams were ready: a plain restart"
    ids += [post(api, AUTHOR, f"arranque {i}")["id"] for i in range(5)]
    old = streams_restarted(chat_stack, old)
    wait_until(ready.exists, timeout_s=240)

    # 3. between the Delta commits of one ledger batch: after its `messages` append, before its MERGE
    before = commits(chat_stack, "messages")
    ids += [post(api, AUTHOR, f"ráfaga {i}")["id"] for i in range(20)]
    commit = min(wait_until(lambda: commits(chat_stack, "messages") - before, timeout_s=240, every_s=0.02))
    with restarts_held(chat_stack):
        old = kill_streams(chat_stack)
        batch = batch_of(commit)
        appended = delta_rows(chat_stack, "messages", batch_id=batch)
        assert any(r["author"] == AUTHOR for r in appended), "the batch's messages are in Delta"
        assert merged_through(chat_stack) < batch, "the batch's MERGE had committed: a plain restart"
        appended = sorted(r["message_id"] for r in appended)
    old = streams_restarted(chat_stack, old)
    wait_until(ready.exists, timeout_s=240)
    wait_until(lambda: merged_through(chat_stack) >= batch)  # the replay merged it ...
    assert sorted(r["message_id"] for r in delta_rows(chat_stack, "messages", batch_id=batch)) == appended  # once

    # 4. after a batch sent its notices, before its Delta commits
    tail = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    tail.assign([TopicPartition("chat_notices", 0)])
    tail.seek_to_end()
    tail.position(TopicPartition("chat_notices", 0))  # the end now, before the post
    profane = post(api, AUTHOR, "otra mierda")
    ids.append(profane["id"])
    notice = None
    deadline = time.monotonic() + 240
    while notice is None and time.monotonic() < deadline:  # polled without pause: the kill must come at once
        for records in tail.poll(timeout_ms=20).values():
            found = [json.loads(r.value) for r in records]
            notice = next((n for n in found if n.get("id") == f"{profane['id']}:strike"), notice)
    tail.close()
    assert notice is not None, "no notice for the profane message"
    with restarts_held(chat_stack):
        old = kill_streams(chat_stack)
        assert not delta_rows(chat_stack, "messages", message_id=profane["id"]), "the batch had committed"
        assert merged_through(chat_stack) < notice["batch"]
    streams_restarted(chat_stack, old)
    ids += [post(api, AUTHOR, f"después {i}")["id"] for i in range(10)]

    seen = wait_for_messages(api, "observer", lambda ms: set(ids) <= {m["id"] for m in ms}, timeout_s=300)
    served = [m["id"] for m in seen if m["author"] == AUTHOR]
    assert served == ids  # each once, in order
    rows = wait_until(
        lambda: len(r := delta_rows(chat_stack, "messages", author=AUTHOR)) >= len(ids) and r, timeout_s=300
    )
    assert sorted(r["message_id"] for r in rows) == sorted(ids)  # exactly once in Delta
    # the same batch then appends the strikes and merges the user's row: wait for those too
    [user] = wait_until(
        lambda: [u for u in delta_rows(chat_stack, "user_moderation", author=AUTHOR) if u["messages"] >= len(ids)],
        timeout_s=300,
    )
    assert (user["messages"], user["strikes"], user["is_blocked"]) == (len(ids), 2, False)
    strikes = delta_rows(chat_stack, "strikes", author=AUTHOR)
    assert sorted(s["strike_number"] for s in strikes) == [1, 2]
    # the batch killed after its notices was replayed under its own id, with the same strike number
    [replayed] = [r for r in rows if r["message_id"] == profane["id"]]
    assert (replayed["batch_id"], replayed["verdict"]) == (notice["batch"], "profane")
    assert [(s["batch_id"], s["strike_number"]) for s in strikes if s["message_id"] == profane["id"]] == [
        (notice["batch"], 2)
    ]
    notices = requests.get(f"{api}/users/{AUTHOR}/notices", headers=auth(api, AUTHOR), timeout=10).json()["notices"]
    assert [(n["kind"], n["strike"]) for n in notices] == [("warning", 1), ("warning", 2)]
    assert chat_stack.output().count("streams  exited") + chat_stack.output().count("streams exited") >= 4
