"""Scale-out, proven on one machine: the same jobs on a Spark standalone cluster and three Kafka brokers.

stack/cluster.py starts three KRaft brokers (one cluster, static quorum) and a
Spark standalone master with two workers. Then everything else is only
configuration, the CHAT_* variables a user would export (the warehouse in a
directory of its own, as a shared file system would be): `python -m
stack.topics` creates the topics with two partitions, three replicas and
min.insync.replicas=2; `spark-submit --master spark://…` runs the streams (the
relay and the ledger) on the workers' executors; two API hosts (processes with
data directories of their own, sharing only Kafka and CHAT_SECRET_KEY) run
behind HAProxy (stack/balancer.py), which alternates requests between them.
Users post through the balancer while another long-polls it; in the middle, the
broker that leads `chat` partition 0 is stopped and stays down, and later one
API host is killed (SIGKILL) under load. Every message the API accepted (202)
must then be exactly once in Delta `messages` and exactly once for the reader,
no session is lost (no 401), the only 5xx besides the API's own "Kafka
unavailable" 503s are the balancer's answers to requests in flight on the killed
host (counted), the surviving host carries on, and the workers' executors must
have run the tasks. The API runs exactly as `make up` runs it (stack/up.py's
gunicorn command).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from config import contract, settings
from stack.balancer import ApiHost, Balancer
from stack.broker import free_port
from stack.cluster import KafkaCluster, SparkStandalone, spark_submit_argv, stop_spark_submit
from stack.harness import UNLIMITED_POSTS
from stack.processes import child_env, spawn, tail

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

PARTITIONS = 2
WRITERS = 4
POSTS_PER_S = 6  # per writer: steady traffic that leaves the 2 cores some room for the ledger
BEFORE_STOP_S = 10  # traffic with all three brokers, then with two
AFTER_STOP_S = 20
AFTER_KILL_S = 15  # traffic on the surviving API host
CHECKS_OUT_S = 3  # the balancer's health checks take a dead host out within this


def http_json(url: str, timeout: float = 30.0):
    import json

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


def wait_until(what: str, predicate, timeout_s: float, every_s: float = 0.5, logs: tuple[Path, ...] = ()):
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: not within {timeout_s:.0f}s\n" + "\n".join(f"--- {p}\n{tail(p, 40)}" for p in logs)
            )
        time.sleep(every_s)


class Traffic:
    """Writers that POST `rate` messages a second each (or as fast as the API answers, when slower),
    one user and session each, and one reader that long-polls GET /messages; 202s are accepted,
    503s (Kafka unavailable) were not. When told to stop, each writer sends a last message until it is
    accepted: one author's messages keep their order (one key, one partition), so once the reader has
    the last ones it has read everything the writers sent before them."""

    def __init__(self, api_url: str, writers: int, rate: float):
        self.api_url = api_url
        self.interval_s = 1 / rate
        self.stop_writing = threading.Event()
        self.stop_reading = threading.Event()
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, str, float]] = []  # (id, author, monotonic time of the 202)
        # every answer: (sent at, answered at, status or the exception's name, whether the body was the API's JSON)
        self.answers: list[tuple[float, float, int | str, bool]] = []
        self.statuses: Counter[int] = Counter()
        self.errors: list[tuple[float, float, str]] = []  # (sent at, answered at, what went wrong)
        self.read_ids: list[str] = []
        self.last_ids: set[str] = set()  # each writer's last message
        self.reader_auth = self.sign_in("reader")
        first = requests.get(f"{api_url}/messages", params={"limit": 500}, headers=self.reader_auth, timeout=10)
        first.raise_for_status()
        self.cursor = first.json()["cursor"]
        self.read_ids += [m["id"] for m in first.json()["messages"]]
        self.threads = [
            threading.Thread(target=self.write, args=(f"writer{n}",), daemon=True) for n in range(writers)
        ] + [threading.Thread(target=self.read, daemon=True)]

    def sign_in(self, author: str) -> dict[str, str]:
        response = requests.post(f"{self.api_url}/sessions", json={"author": author}, timeout=30)
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def write(self, author: str) -> None:
        session = requests.Session()
        session.headers.update(self.sign_in(author))
        n = 0
        next_post = time.monotonic()
        while not self.stop_writing.is_set():
            n += 1
            next_post += self.interval_s
            sent = time.monotonic()
            try:
                response = session.post(f"{self.api_url}/messages", json={"data": f"{author} says {n}"}, timeout=30)
            except requests.RequestException as exc:
                with self.lock:
                    self.answers.append((sent, time.monotonic(), type(exc).__name__, False))
                    self.errors.append((sent, time.monotonic(), f"{author}: {exc}"))
                continue
            with self.lock:
                self.answers.append((sent, time.monotonic(), response.status_code, is_api_json(response)))
                self.statuses[response.status_code] += 1
                if response.status_code == 202:
                    self.accepted.append((response.json()["id"], author, time.monotonic()))
                elif response.status_code < 500:
                    self.errors.append(
                        (sent, time.monotonic(), f"{author}: {response.status_code} {response.text[:200]}")
                    )
            if response.status_code >= 500:
                time.sleep(0.2)  # as a client should: not accepted, try again shortly
            self.stop_writing.wait(max(0.0, next_post - time.monotonic()))
        while True:
            try:
                response = session.post(f"{self.api_url}/messages", json={"data": f"{author} is done"}, timeout=30)
            except requests.RequestException:
                continue
            if response.status_code == 202:
                with self.lock:
                    self.accepted.append((response.json()["id"], author, time.monotonic()))
                    self.last_ids.add(response.json()["id"])
                break
            time.sleep(0.2)
        session.close()

    def read(self) -> None:
        session = requests.Session()
        session.headers.update(self.reader_auth)
        while not self.stop_reading.is_set():
            sent = time.monotonic()
            try:
                response = session.get(
                    f"{self.api_url}/messages", params={"after": self.cursor, "wait": 2, "limit": 500}, timeout=30
                )
            except requests.RequestException as exc:
                with self.lock:
                    self.answers.append((sent, time.monotonic(), type(exc).__name__, False))
                    self.errors.append((sent, time.monotonic(), f"reader: {exc}"))
                continue
            with self.lock:
                self.answers.append((sent, time.monotonic(), response.status_code, is_api_json(response)))
            if response.status_code != 200:
                with self.lock:
                    self.errors.append(
                        (sent, time.monotonic(), f"reader: {response.status_code} {response.text[:200]}")
                    )
                time.sleep(0.5)  # the same cursor again, on whichever host answers
                continue
            body = response.json()
            with self.lock:
                self.read_ids += [m["id"] for m in body["messages"]]
            self.cursor = body["cursor"]
        session.close()

    def finish_writing(self) -> None:
        self.stop_writing.set()
        for thread in self.threads[:-1]:
            thread.join(60)

    def finish_reading(self) -> None:
        self.stop_reading.set()
        self.threads[-1].join(60)


def is_api_json(response: requests.Response) -> bool:
    """Whether an answer is the API's own (JSON `{"error": ...}` or a result), not the balancer's page."""
    return response.headers.get("Content-Type", "").startswith("application/json")


def delta_message_ids(warehouse: Path) -> Counter[str]:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(str(warehouse / "messages")).to_pyarrow_table(columns=["message_id", "author"])
    except TableNotFoundError:
        return Counter()
    return Counter(table.column("message_id").to_pylist())


def topic_layout(bootstrap: str, topic: str) -> tuple[int, set[int], str]:
    """(partitions, replica counts, min.insync.replicas) of `topic`."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        [described] = admin.describe_topics([topic])
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [entries] = configs.values()  # {resource type: {topic: {key: {"value": ...}}}}
        min_isr = entries[topic]["min.insync.replicas"]
        return (
            len(described["partitions"]),
            {len(p["replica_nodes"]) for p in described["partitions"]},
            str(min_isr["value"] if isinstance(min_isr, dict) else min_isr),
        )
    finally:
        admin.close()


def in_sync_replicas(bootstrap: str, topic: str) -> list[list[int]]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        [described] = admin.describe_topics([topic])
        return [sorted(p["isr_nodes"]) for p in sorted(described["partitions"], key=lambda p: p["partition_index"])]
    finally:
        admin.close()


@pytest.mark.timeout(1200)
def test_the_chat_on_a_spark_cluster_and_three_brokers_loses_nothing_when_a_broker_stops(tmp_path):
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def say(text: str) -> None:
        print(f"cluster test {time.monotonic() - t0:6.1f}s  {text}", flush=True)

    data_dir = tmp_path / "data"
    warehouse = tmp_path / "shared" / "warehouse"  # on a real cluster: a file system every host mounts
    kafka = KafkaCluster(tmp_path / "kafka", size=3, heap="512m")
    spark = SparkStandalone(tmp_path / "spark", workers=2, cores=2, memory="1g")
    streams = balancer = None
    hosts: list[ApiHost] = []
    driver_ui_port = free_port()
    try:
        with ThreadPoolExecutor(2) as pool:  # the JVMs start side by side
            for future in [pool.submit(kafka.start), pool.submit(spark.start)]:
                future.result()
        timings["clusters up"] = time.monotonic() - t0
        say(f"3 brokers at {kafka.bootstrap}, Spark master {spark.master_url} with 2 workers")

        # from here on, only what a user sets: the CHAT_* variables and spark-submit's --master
        env = child_env(
            SPARK_CONF_DIR=str(settings.REPO_ROOT / "conf"),
            SPARK_LOCAL_IP="127.0.0.1",
            PYSPARK_PYTHON=sys.executable,
            CHAT_KAFKA_BOOTSTRAP=kafka.bootstrap,
            CHAT_SPARK_MASTER=spark.master_url,
            CHAT_DATA_DIR=str(data_dir),
            CHAT_WAREHOUSE_DIR=str(warehouse),
            CHAT_TOPIC_PARTITIONS=str(PARTITIONS),
            CHAT_REPLICATION_FACTOR="3",
            CHAT_ADMIN_TOKEN=secrets.token_urlsafe(24),
            CHAT_SECRET_KEY=secrets.token_urlsafe(32),
            CHAT_MIN_INSYNC_REPLICAS=None,  # the default for three replicas: 2
        )
        topics = subprocess.run(
            [sys.executable, "-m", "stack.topics"],
            env=env,
            cwd=settings.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert topics.returncode == 0, topics.stdout + topics.stderr
        for topic in contract.TOPICS:
            assert topic_layout(kafka.bootstrap, topic) == (PARTITIONS, {3}, "2"), topic

        streams_log = data_dir / "log" / "streams.log"
        streams = spawn(
            spark_submit_argv(
                spark.master_url,
                "pipelines/streams.py",
                conf={
                    "spark.driver.memory": "1g",
                    "spark.executor.memory": "1g",
                    "spark.driver.host": "127.0.0.1",
                    "spark.ui.port": str(driver_ui_port),
                },
            ),
            streams_log,
            env,
        )
        # two API hosts: data directories of their own; Kafka, the warehouse and the secrets are what they share
        hosts = [
            ApiHost(
                name,
                tmp_path / name,
                kafka.bootstrap,
                env["CHAT_SECRET_KEY"],
                env={
                    "CHAT_WAREHOUSE_DIR": str(warehouse),
                    "CHAT_ADMIN_TOKEN": env["CHAT_ADMIN_TOKEN"],
                    **UNLIMITED_POSTS,
                },
            )
            for name in ("api-1", "api-2")
        ]
        for host in hosts:
            host.start()
        for host in hosts:
            host.wait_healthy(180)
        balancer = Balancer(tmp_path / "haproxy", hosts)
        balancer.start()
        api_url = balancer.url
        api_logs = tuple(h.log_file for h in hosts)
        wait_until(
            "the balancer sees both hosts healthy",
            lambda: requests.get(f"{api_url}/health", timeout=5).status_code == 200,
            60,
        )
        wait_until(
            "the streams run on the cluster",
            lambda: streams.poll() is not None or (data_dir / "run" / "streams.ready").exists(),
            420,
            logs=(streams_log,),
        )
        assert streams.poll() is None, tail(streams_log, 60)
        timings["chat up"] = time.monotonic() - t0
        say("topics created, API healthy, streams running")

        # the application runs on the standalone master, with one executor on each worker
        [app] = [a for a in spark.status()["activeapps"] if a["name"] == "chat-streams"]
        driver_api = f"http://127.0.0.1:{driver_ui_port}/api/v1/applications/{app['id']}"
        executors = [e for e in http_json(f"{driver_api}/executors") if e["id"] != "driver"]
        assert len({e["hostPort"] for e in executors}) == 2, executors

        # the relay (real-time mode) holds one long-running task per partition of `chat`, in a stage
        # that a new one replaces every 5 minutes: wait for one with all its tasks running
        def relay_tasks() -> list[tuple[int, int]]:
            return [
                (st["numTasks"], st["numActiveTasks"])
                for st in http_json(f"{driver_api}/stages?status=active")
                if st.get("description", "").startswith("relay")
            ]

        wait_until("the relay runs one task per partition", lambda: (PARTITIONS, PARTITIONS) in relay_tasks(), 120)

        traffic = Traffic(api_url, WRITERS, POSTS_PER_S)
        traffic.start()
        time.sleep(BEFORE_STOP_S)
        victim = kafka.broker(kafka.leader(contract.TOPIC_CHAT, 0))
        with traffic.lock:
            accepted_before = len(traffic.accepted)
        stopped_at = time.monotonic()
        victim.stop()  # SIGTERM: a controlled shutdown; it stays down until the end
        timings["broker stop"] = time.monotonic() - stopped_at
        say(f"broker {victim.node_id} (leader of chat/0) stopped after {accepted_before} accepted messages")
        time.sleep(AFTER_STOP_S)
        victim_host, survivor = hosts
        with traffic.lock:
            accepted_before_kill = len(traffic.accepted)
        killed_at = time.monotonic()
        victim_host.kill()
        say(f"API host {victim_host.name} killed (SIGKILL) after {accepted_before_kill} accepted messages")
        time.sleep(AFTER_KILL_S)
        traffic.finish_writing()
        assert len(traffic.last_ids) == WRITERS
        accepted = list(traffic.accepted)
        accepted_ids = [a[0] for a in accepted]
        after_stop = [a for a in accepted if a[2] > stopped_at + timings["broker stop"]]
        assert accepted_before > 0 and after_stop, (accepted_before, len(after_stop), traffic.statuses)
        assert len(set(accepted_ids)) == len(accepted_ids)
        # no session lost and nothing refused but by the API's "Kafka unavailable" (JSON 503) or, for
        # requests in flight on the killed host only, by the balancer
        answers = list(traffic.answers)
        in_flight = [a for a in answers if a[0] <= killed_at <= a[1]]
        # HAProxy takes a host out after two failed health checks a second apart: until then a request it
        # sends on a pooled connection to the dead host is answered 502 (a refused one goes to the survivor)
        until_out = [a for a in answers if killed_at < a[0] <= killed_at + CHECKS_OUT_S]
        foreign = [a for a in answers if not (a[3] and a[2] in (200, 202, 503))]
        assert [a for a in foreign if a not in in_flight + until_out] == [], (foreign[:10], traffic.errors[:10])
        assert 401 not in traffic.statuses, traffic.errors[:10]
        # every error a client met (an exception, a 4xx, a reader's answer other than 200) came at the host's kill
        unexplained = [
            text
            for sent, answered, text in traffic.errors
            if not (sent <= killed_at <= answered or killed_at < sent <= killed_at + CHECKS_OUT_S)
        ]
        assert unexplained == [], unexplained[:10]
        accepted_after_kill = [a for a in accepted if a[2] > killed_at]
        assert accepted_after_kill and survivor.healthy(), "the surviving host carries on"
        survivors = [b.node_id for b in kafka.brokers if b is not victim]
        survivors_bootstrap = ",".join(kafka.broker(n).bootstrap for n in survivors)
        # the stopped broker is out of every ISR: the writes after the stop were acknowledged by the other two
        wait_until(
            "the stopped broker leaves the ISRs",
            lambda: all(r == survivors for r in in_sync_replicas(survivors_bootstrap, contract.TOPIC_CHAT)),
            60,
        )
        timings["traffic"] = time.monotonic() - t0
        say(f"traffic over: {len(accepted)} accepted, {traffic.statuses[503]} answered 503")

        # every accepted message reaches the reader, once: all of them before each writer's last one
        wanted = set(accepted_ids)
        wait_until(
            "the reader sees every accepted message",
            lambda: wanted <= set(traffic.read_ids),
            300,
            logs=(streams_log, *api_logs),
        )
        traffic.finish_reading()
        read = Counter(traffic.read_ids)
        assert [i for i in accepted_ids if read[i] != 1] == []
        assert max(read.values()) == 1, [i for i, n in read.items() if n > 1][:10]
        timings["read"] = time.monotonic() - t0
        say("the reader saw every accepted message once")

        # and is in Delta `messages`, once
        wait_until(
            "Delta `messages` holds every accepted message",
            lambda: wanted <= set(delta_message_ids(warehouse)),
            420,
            every_s=2,
            logs=(streams_log,),
        )
        in_delta = delta_message_ids(warehouse)
        assert [i for i in accepted_ids if in_delta[i] != 1] == []
        assert max(in_delta.values()) == 1, [i for i, n in in_delta.items() if n > 1][:10]
        assert not (data_dir / "warehouse").exists()  # the tables went where CHAT_WAREHOUSE_DIR says
        timings["in Delta"] = time.monotonic() - t0

        # the workers' executors did the work: each ran tasks, with the Kafka connector and Delta jars
        # that the driver served them (spark.jars from conf/spark-defaults.conf)
        tasks = {e["hostPort"]: e["totalTasks"] for e in http_json(f"{driver_api}/executors") if e["id"] != "driver"}
        assert len(tasks) == 2 and all(n > 0 for n in tasks.values()), tasks
        for worker in ("worker-1", "worker-2"):
            fetched = {p.name.split("_")[0] for p in spark.home.glob(f"{worker}/{app['id']}/*/*.jar")}
            assert {"spark-sql-kafka-0-10", "delta-spark"} <= fetched, (worker, fetched)
        assert streams.poll() is None, tail(streams_log, 60)

        duration = time.monotonic() - t0
        during_stop = len(accepted) - accepted_before - len(after_stop)
        print(
            f"\nAPI hosts: {len(accepted_after_kill)} messages accepted by {survivor.name} after {victim_host.name} "
            f"was killed; {len(in_flight)} requests were in flight at the kill and {len(until_out)} sent before the "
            f"health checks took it out; {len([a for a in foreign if a in in_flight])} and "
            f"{len([a for a in foreign if a in until_out])} of them answered by the balancer or failed "
            f"({Counter(str(a[2]) for a in foreign)}); "
            f"{sum(1 for a in answers if a[2] == 503 and a[3])} JSON 503s from the API (Kafka unavailable)",
            flush=True,
        )
        print(
            f"\ncluster: {len(accepted)} messages accepted ({accepted_before} before, {during_stop} during and "
            f"{len(after_stop)} after the stop of broker {victim.node_id} of 3; "
            f"{traffic.statuses[503]} answered 503, "
            f"{len(in_delta) - len(wanted)} of those delivered anyway), each exactly once in Delta `messages` "
            f"and for the reader; Spark standalone: 2 workers, tasks per executor {sorted(tasks.values())}; "
            f"Kafka: 3 brokers, {PARTITIONS} partitions, RF 3, min ISR 2; "
            + ", ".join(f"{k} at {v:.0f}s" for k, v in timings.items() if k != "broker stop")
            + f", broker stop took {timings['broker stop']:.1f}s; test took {duration:.0f}s",
            flush=True,
        )
    finally:
        if balancer is not None:
            balancer.stop()
        for host in hosts:
            host.stop()
        stop_spark_submit(streams)
        spark.stop()
        kafka.stop()
