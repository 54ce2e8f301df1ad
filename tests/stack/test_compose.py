"""Static checks of compose.yml (one machine) and compose.cluster.yml (three brokers and a Spark standalone
cluster): no Docker engine runs where the tests run, so nothing is started.

Both files are validated against the Compose Specification JSON schema (the copy vendored by
check-jsonschema) and cross-checked against the repository: each built service is a stage of the one
Dockerfile, every project module a command runs exists, published ports bind to 127.0.0.1 only, named
volumes are declared, every long-running service has a health check, depends_on conditions are
satisfiable, and the Kafka clients' bootstrap addresses are ones the brokers advertise. In the cluster
file, the brokers form one KRaft quorum with three replicas and min.insync.replicas=2, and the streams
are submitted to the Spark master the workers register with, and two API hosts sharing one secret and no
file sit behind HAProxy (conf/haproxy-cluster.cfg), the UI's way to the API. The cluster file's `s3` profile (the lake on
S3Proxy) is checked as Compose runs it with the .env README documents. The negative tests feed deliberately broken
documents to the same checks, so they are known to be able to fail. test_dockerfile.py checks the images.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess

import pytest

from config import settings
from stack.balancer import HAPROXY, compose_config
from tests.stack.containers import (
    ALL_BUILT,
    ALL_SERVICES,
    API_FRONT,
    API_SERVICES,
    BALANCER_CONFIG,
    CLUSTER_FILE,
    COMPOSE_FILE,
    COMPOSE_FILES,
    DOCKERFILE,
    EXPECTED_MODULES,
    LOOPBACK,
    ROOT,
    S3_BUCKET_SERVICE,
    S3_DOTENV,
    S3_PROFILE,
    S3_SERVICE,
    SERVICES,
    SPARK_DAEMONS,
    TARGETS,
    advertised_addresses,
    allowed_hosts,
    api_port,
    balancer_problems,
    brokers,
    bucket_script,
    compose_text,
    depends_on,
    environment,
    interpolate,
    interpolated,
    lake_clients,
    listener_port,
    load_compose,
    memory_mb,
    missing_module_files,
    named_volume_sources,
    non_loopback_ports,
    object_store_problems,
    option,
    port_host_ip,
    project_modules,
    quorum_problems,
    schema_errors,
    service_argv,
    service_build,
    shared_secret_problems,
    spark_confs,
    stage_env,
    stages,
    undeclared_volumes,
    with_profiles,
)

# --------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(compose_file):
    assert schema_errors(load_compose(compose_file)) == []


def test_schema_rejects_a_service_with_an_unknown_key():
    doc = load_compose()
    doc["services"]["api"]["restart_policy"] = "always"  # not a service key
    errors = schema_errors(doc)
    assert errors, "the schema accepted an unknown service key: the schema check cannot fail"
    assert any("restart_policy" in e for e in errors), errors


def test_schema_rejects_a_malformed_depends_on_condition():
    doc = load_compose()
    doc["services"]["ui"]["depends_on"]["api"]["condition"] = "service_ready"
    assert schema_errors(doc)


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_services_are_the_expected_ones(compose_file):
    doc = load_compose(compose_file)
    assert sorted(doc["services"]) == sorted(SERVICES[compose_file])
    assert {s["image"] for s in brokers(doc).values()} == {"apache/kafka:4.1.1"}


# --------------------------------------------------------------------------
# builds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, compose_file", ALL_SERVICES)
def test_service_has_an_image_or_a_build(name, compose_file):
    service = load_compose(compose_file)["services"][name]
    assert service.get("image") or service.get("build"), name


@pytest.mark.parametrize("name, compose_file", ALL_BUILT)
def test_a_built_service_is_its_stage_of_the_one_dockerfile(name, compose_file):
    service = load_compose(compose_file)["services"][name]
    build = service_build(service)
    assert build is not None, f"{name} has no build"
    context, dockerfile, target = build
    assert context == ROOT, f"{name}: the images need the whole source, context must be the repo root"
    assert dockerfile == DOCKERFILE, f"{name}: {dockerfile}"
    assert target == TARGETS[name] and target in stages(), f"{name}: target {target}"
    assert service["image"] == f"moderated-chat/{target}:latest", name


# --------------------------------------------------------------------------
# commands: the modules they run exist
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, compose_file", ALL_BUILT)
def test_service_command_names_the_expected_module(name, compose_file):
    argv = service_argv(load_compose(compose_file)["services"][name])
    assert project_modules(argv) == EXPECTED_MODULES[name], argv


@pytest.mark.parametrize("name, compose_file", ALL_BUILT)
def test_service_command_module_exists(name, compose_file):
    argv = service_argv(load_compose(compose_file)["services"][name])
    if name not in SPARK_DAEMONS:
        assert project_modules(argv), f"{name}: {argv} runs no project module"
    assert missing_module_files(argv) == [], f"{name}: {argv}"


def test_command_module_detection_can_fail():
    assert project_modules(["python", "-m", "uvicorn", "ui.app:app", "--port", "8000"]) == {"ui.app"}
    assert project_modules(["gunicorn", "-b", "0.0.0.0:5000", "api:create_app()"]) == {"api"}
    assert project_modules(["spark-submit", "--master", "spark://m:7077", "pipelines/streams.py"]) == {
        "pipelines.streams"
    }
    assert project_modules(["spark-submit", "--properties-file", "conf/spark-defaults.conf", "x/y.py"]) == set()
    assert project_modules(["python", "-m", "json.tool"]) == set()
    assert missing_module_files(["python", "-m", "stack.no_such_module_xyz"]) != []
    assert missing_module_files(["spark-submit", "pipelines/no_such_job.py"]) != []
    # a gunicorn configuration file names the app and the worker class
    assert project_modules(["gunicorn", "-c", "conf/gunicorn.conf.py"]) == {"api.asgi", "api.server"}
    assert project_modules(["gunicorn", "-c", "conf/no_such.conf.py"]) == set()


# --------------------------------------------------------------------------
# ports, volumes, dependencies, environment
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_published_ports_bind_to_loopback_only(compose_file):
    doc = load_compose(compose_file)
    assert non_loopback_ports(doc) == []
    published = {name: [str(p) for p in service.get("ports", [])] for name, service in doc["services"].items()}
    assert "127.0.0.1:5000:5000" in published[API_FRONT[compose_file]]
    assert "127.0.0.1:8000:8000" in published["ui"]
    # behind a balancer, the API hosts are reached through it only
    for name in set(API_SERVICES[compose_file]) - {API_FRONT[compose_file]}:
        assert published[name] == [], name
    # each broker's HOST listener is published on the port it advertises to the host
    for name, kafka in brokers(doc).items():
        host_port = listener_port(kafka, "HOST")
        assert f"127.0.0.1:{host_port}:{host_port}" in published[name], name
        assert f"localhost:{host_port}" in advertised_addresses(kafka), name


def test_port_check_can_fail():
    doc = load_compose()
    doc["services"]["api"]["ports"] = ["5000:5000"]
    doc["services"]["ui"]["ports"] = ["0.0.0.0:8000:8000", {"target": 8000, "published": "8001"}]
    assert len(non_loopback_ports(doc)) == 3
    assert port_host_ip({"target": 1, "published": "1", "host_ip": "127.0.0.1"}) == LOOPBACK
    assert port_host_ip("[::1]:9000:9000/tcp") == "::1"


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_named_volumes_are_declared_and_used(compose_file):
    doc = load_compose(compose_file)
    assert undeclared_volumes(doc) == []
    used = set().union(*(named_volume_sources(s) for s in doc["services"].values()))
    assert used == set(doc["volumes"]), "declared volumes no service uses"
    services = doc["services"]
    # the warehouse is shared: the streams write it (on a cluster, their executors on the workers do), the API reads it
    writers = ["streams", *(n for n in services if n.startswith("spark-worker"))]
    for api in API_SERVICES[compose_file]:
        shared = set.intersection(*(named_volume_sources(services[n]) for n in [*writers, api]))
        assert shared, f"{writers} and {api} share no volume"
    # every broker keeps its log in a volume of its own
    kafka_volumes = [named_volume_sources(s) for s in brokers(doc).values()]
    assert all(kafka_volumes) and len(set().union(*kafka_volumes)) == len(kafka_volumes)


def test_volume_check_can_fail():
    doc = load_compose()
    doc["services"]["api"]["volumes"].append("scratch:/scratch")
    doc["services"]["ui"]["volumes"] = [{"type": "volume", "source": "other", "target": "/x"}, "./conf:/c"]
    assert undeclared_volumes(doc) == ["api: scratch", "ui: other"]


@pytest.mark.parametrize("name, compose_file", [(n, f) for f in COMPOSE_FILES for n in API_SERVICES[f]])
def test_the_api_can_write_its_data_volume(name, compose_file):
    """Without CHAT_SECRET_KEY the API keeps its generated secret under CHAT_DATA_DIR: a read-only mount would
    make it fail to start."""
    api = load_compose(compose_file)["services"][name]
    data_dir = environment(api)["CHAT_DATA_DIR"]
    mounts = [v for v in api["volumes"] if isinstance(v, str) and v.split(":")[1] == data_dir]
    assert mounts and not any(v.split(":")[2:] == ["ro"] for v in mounts), api["volumes"]


def test_cluster_api_hosts_share_no_writable_volume():
    """Each API host's data volume is its own (they share Kafka, not files); only the warehouse is common,
    read only."""
    services = load_compose(CLUSTER_FILE.name)["services"]
    hosts = API_SERVICES[CLUSTER_FILE.name]
    assert len(hosts) == 2
    writable = {}
    for name, service in services.items():
        writable[name] = {
            v.split(":")[0] for v in service.get("volumes", []) if isinstance(v, str) and v.split(":")[2:] != ["ro"]
        }
    for host in hosts:
        others = set().union(*(w for n, w in writable.items() if n != host))
        assert writable[host] and not writable[host] & others, (host, writable)


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_every_long_running_service_has_a_health_check(compose_file):
    services = load_compose(compose_file)["services"]
    for name, service in services.items():
        if service.get("restart") == "unless-stopped":
            test = (service.get("healthcheck") or {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), name


def spark_defaults() -> dict[str, str]:
    """conf/spark-defaults.conf (the streams' --properties-file and SPARK_CONF_DIR)."""
    lines = (ROOT / "conf" / "spark-defaults.conf").read_text(encoding="utf-8").splitlines()
    return dict(line.split(None, 1) for line in lines if line.strip() and not line.startswith("#"))


def probed(service: dict) -> tuple[set[int], set[str]]:
    """The loopback ports and the files a service's health check probes."""
    text = " ".join(service["healthcheck"]["test"])
    ports = {int(p) for p in re.findall(r"(?:127\.0\.0\.1|localhost):(\d+)", text)}
    return ports, set(re.findall(r"os\.stat\('([^']+)'\)", text))


def health_check_problems(doc: dict, compose_file: str) -> list[str]:
    """Each health check probes what its service serves: the broker's PLAINTEXT listener, a Spark daemon's
    --webui-port, the streams driver's UI port and the ready file pipelines/streams.py writes under its
    CHAT_DATA_DIR, the API's and the UI's ports, the balancer's bind port. A check nobody verifies is one too."""
    problems = []
    services = doc["services"]
    for name, service in services.items():
        if "healthcheck" not in service:
            continue
        ports, files = probed(service)
        argv = service_argv(service)
        env = {**(stage_env(TARGETS[name]) if name in TARGETS else {}), **environment(service)}
        if name in brokers(doc):
            expected, expected_files = {listener_port(service, "PLAINTEXT")}, set()
        elif name in SPARK_DAEMONS:
            expected, expected_files = {int(option(argv, "--webui-port"))}, set()
        elif name == "streams":
            confs = {**spark_defaults(), **spark_confs(argv)}
            if confs.get("spark.ui.enabled", "true") == "false":
                problems.append("streams: its health check asks Spark's UI, which is switched off")
            expected = {int(confs.get("spark.ui.port", "4040"))}
            expected_files = {f"{env['CHAT_DATA_DIR']}/run/streams.ready"}
        elif name in API_SERVICES[compose_file]:
            expected, expected_files = {int(env["CHAT_API_PORT"])}, set()
        elif name == "ui":
            expected, expected_files = {int(option(argv, "--port"))}, set()
        elif name == "balancer":
            bind = re.search(r"^\s*bind \*:(\d+)", BALANCER_CONFIG.read_text(encoding="utf-8"), re.M)
            expected, expected_files = {int(bind.group(1))}, set()
        else:
            problems.append(f"{name}: a health check this test does not know")
            continue
        if (ports, files) != (expected, expected_files):
            problems.append(
                f"{name} probes ports {sorted(ports)} and files {sorted(files)}, serves {expected} {expected_files}"
            )
    return problems


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_each_health_check_probes_the_port_or_file_its_service_serves(compose_file):
    # the file the streams mark themselves ready with, as written in pipelines/streams.py
    assert 's.run_dir / "streams.ready"' in (ROOT / "pipelines" / "streams.py").read_text(encoding="utf-8")
    assert health_check_problems(load_compose(compose_file), compose_file) == []


def test_health_check_check_can_fail():
    doc = load_compose(CLUSTER_FILE.name)
    for name, old, new in (
        ("kafka-2", "localhost:9092", "localhost:9093"),  # the controller's port: not what clients use
        ("spark-worker-1", "8081", "8080"),
        ("streams", "/data/run/streams.ready", "/data/streams.ready"),
        ("balancer", "127.0.0.1:5000", "127.0.0.1:8000"),
    ):
        broken = load_compose(CLUSTER_FILE.name)
        service = broken["services"][name]
        service["healthcheck"] = {"test": [t.replace(old, new) for t in service["healthcheck"]["test"]]}
        problems = health_check_problems(broken, CLUSTER_FILE.name)
        assert len(problems) == 1 and problems[0].startswith(f"{name} probes"), (name, problems)
    assert health_check_problems(doc, CLUSTER_FILE.name) == []


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_depends_on_conditions_are_satisfiable(compose_file):
    services = load_compose(compose_file)["services"]
    completed_once = set()
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} healthy: no healthcheck"
            if condition == "service_completed_successfully":
                completed_once.add(dep)
                restart = str(services[dep].get("restart", "no"))
                assert restart in ("no", "on-failure") or restart.startswith("on-failure:"), (
                    f"{dep} must exit, but restart={restart}"
                )
    assert completed_once == {"topics"}
    for name in set(services) - completed_once:
        assert services[name].get("restart") == "unless-stopped", name
    every_broker_healthy = {name: "service_healthy" for name in brokers({"services": services})}
    assert depends_on(services["topics"]) == every_broker_healthy
    assert depends_on(services["streams"])["topics"] == "service_completed_successfully"
    for api in API_SERVICES[compose_file]:
        assert depends_on(services[api])["topics"] == "service_completed_successfully", api
    assert depends_on(services["ui"]) == {API_FRONT[compose_file]: "service_healthy"}
    for worker in (n for n in services if n.startswith("spark-worker")):
        assert depends_on(services[worker]) == {"spark-master": "service_healthy"}
        assert depends_on(services["streams"])[worker] == "service_healthy"


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_kafka_clients_bootstrap_from_an_advertised_listener(compose_file):
    doc = load_compose(compose_file)
    nodes = brokers(doc)
    advertised = set().union(*(advertised_addresses(k) for k in nodes.values()))
    services = doc["services"]
    clients = {
        n: environment(s)["CHAT_KAFKA_BOOTSTRAP"]
        for n, s in services.items()
        if "CHAT_KAFKA_BOOTSTRAP" in environment(s)
    }
    assert set(clients) == {"topics", "streams", *API_SERVICES[compose_file]}
    for name, bootstrap in clients.items():
        addresses = bootstrap.split(",")
        for address in addresses:
            assert address in advertised, f"{name}: {address} not in {advertised}"
        assert len(addresses) == len(nodes), f"{name} should know every broker: {bootstrap}"
    for kafka in nodes.values():
        env = environment(kafka)
        # KRaft cluster ids are base64url-encoded 16-byte UUIDs
        cluster_id = env["CLUSTER_ID"]
        assert len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) == 16
        assert env["KAFKA_LOG_DIRS"] in {v.split(":", 1)[1] for v in kafka["volumes"]}


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_the_brokers_form_one_kraft_quorum(compose_file):
    assert quorum_problems(load_compose(compose_file)) == []


def test_quorum_check_can_fail():
    doc = load_compose(CLUSTER_FILE.name)
    environment_of = doc["services"]["kafka-3"]["environment"]
    environment_of["KAFKA_CONTROLLER_QUORUM_VOTERS"] = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-2:9093"
    assert quorum_problems(doc) == [
        "the brokers list different voters: "
        "['1@kafka-1:9093,2@kafka-2:9093,3@kafka-2:9093', "
        "'1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093']"
    ]
    for name in ("kafka-1", "kafka-2"):
        doc["services"][name]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] = environment_of[
            "KAFKA_CONTROLLER_QUORUM_VOTERS"
        ]
    environment_of["CLUSTER_ID"] = "b3RoZXItY2x1c3Rlci1pZA"
    assert quorum_problems(doc) == [
        "voter 3@kafka-2:9093: node 3 is kafka-3, not kafka-2",
        "the brokers do not share one CLUSTER_ID",
    ]


@pytest.mark.parametrize(
    "compose_file, replicas, min_isr", [(COMPOSE_FILE.name, "1", "1"), (CLUSTER_FILE.name, "3", "2")]
)
def test_replication_of_the_internal_topics_and_of_the_chat_topics(compose_file, replicas, min_isr):
    services = load_compose(compose_file)["services"]
    for name, kafka in brokers({"services": services}).items():
        env = environment(kafka)
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == replicas, name
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == replicas, name
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == min_isr, name
        assert env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"] == replicas, name
        assert env["KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"] == min_isr, name
    topics = environment(services["topics"])
    assert topics.get("CHAT_REPLICATION_FACTOR", "1") == replicas
    assert topics.get("CHAT_MIN_INSYNC_REPLICAS", min_isr) == min_isr


def test_service_environment():
    services = load_compose()["services"]
    relay = environment(services["streams"])
    assert relay["CHAT_DATA_DIR"] == "/data"
    assert relay["CHAT_SPARK_MASTER"] == "local[*]"
    assert relay["SPARK_CONF_DIR"] == "/app/conf"
    assert environment(services["api"])["CHAT_DATA_DIR"] == "/data"
    assert environment(services["ui"])["CHAT_API_URL"] == "http://api:5000"


@pytest.mark.parametrize("name, compose_file", [(n, f) for f in COMPOSE_FILES for n in API_SERVICES[f]])
def test_the_api_takes_its_secrets_from_the_environment(name, compose_file):
    api = environment(load_compose(compose_file)["services"][name])
    for variable in ("CHAT_ADMIN_TOKEN", "CHAT_SECRET_KEY"):
        # ${NAME}, ${NAME:-default} or ${NAME:?message}: never a literal
        assert re.fullmatch(rf"\$\{{{variable}(:?[-?][^}}]*)?\}}", api[variable]), api[variable]
    assert "${CHAT_SECRET_KEY" in compose_text(compose_file)  # interpolated from the shell or .env


def test_cluster_api_hosts_share_one_required_secret():
    assert shared_secret_problems(load_compose(CLUSTER_FILE.name), API_SERVICES[CLUSTER_FILE.name]) == []


def test_shared_secret_check_can_fail():
    doc = load_compose(CLUSTER_FILE.name)
    hosts = API_SERVICES[CLUSTER_FILE.name]
    doc["services"]["api-2"]["environment"] = {**environment(doc["services"]["api-2"]), "CHAT_SECRET_KEY": "s3cr3t"}
    assert shared_secret_problems(doc, hosts) == [
        "the API hosts have different CHAT_SECRET_KEY: "
        f"{sorted([environment(doc['services']['api-1'])['CHAT_SECRET_KEY'], 's3cr3t'])}"
    ]
    for host in hosts:  # the same for both, but empty when unset: each host would generate its own
        doc["services"][host]["environment"]["CHAT_SECRET_KEY"] = "${CHAT_SECRET_KEY:-}"
    [problem] = shared_secret_problems(doc, hosts)
    assert problem.startswith("CHAT_SECRET_KEY is '${CHAT_SECRET_KEY:-}', not a required variable")


def test_cluster_streams_are_submitted_to_the_master_the_workers_join():
    services = load_compose(CLUSTER_FILE.name)["services"]
    master = service_argv(services["spark-master"])
    assert master[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    master_url = f"spark://{option(master, '--host')}:{option(master, '--port')}"
    assert option(master, "--host") == services["spark-master"]["hostname"] == "spark-master"

    streams = service_argv(services["streams"])
    assert streams[0] == "spark-submit" and streams[-1] == "pipelines/streams.py"
    assert option(streams, "--master") == master_url == environment(services["streams"])["CHAT_SPARK_MASTER"]
    assert (ROOT / option(streams, "--properties-file")).is_file()
    confs = spark_confs(streams)
    # executors connect back to the driver by this name
    assert confs["spark.driver.host"] == services["streams"]["hostname"] == "streams"

    workers = [n for n in services if n.startswith("spark-worker")]
    assert len(workers) == 2
    for name in workers:
        worker = service_argv(services[name])
        assert worker[:3] == ["spark-class", "org.apache.spark.deploy.worker.Worker", master_url], name
        assert option(worker, "--host") == services[name]["hostname"] == name
        assert memory_mb(option(worker, "--memory")) >= memory_mb(confs["spark.executor.memory"]), name
        assert int(option(worker, "--cores")) >= 1
        # the image's user cannot write to pyspark's default work dir in site-packages
        assert option(worker, "--work-dir").startswith("/tmp/")
    for name in ("spark-master", *workers, "streams"):
        assert services[name]["build"]["target"] == "streams", name


def test_cluster_warehouse_is_one_volume_where_the_executors_write_it():
    """CHAT_WAREHOUSE_DIR is the same named volume at the same path for the driver, both workers
    (their executors write the Delta files) and the API (which reads them)."""
    # as Compose runs it when .env sets only the API's secret: the lake's locations at their defaults
    services = interpolated(load_compose(CLUSTER_FILE.name), {"CHAT_SECRET_KEY": "set in .env"})["services"]
    warehouse = environment(services["streams"])["CHAT_WAREHOUSE_DIR"]
    hosts = API_SERVICES[CLUSTER_FILE.name]
    for api in hosts:
        assert environment(services[api])["CHAT_WAREHOUSE_DIR"] == warehouse, api
    sources = {}
    for name in ("streams", "spark-worker-1", "spark-worker-2", *hosts):
        mounts = [v.split(":") for v in services[name]["volumes"] if isinstance(v, str)]
        [source] = [m[0] for m in mounts if m[1] == warehouse] or [None]
        sources[name] = source
        writable = [m for m in mounts if m[1] == warehouse and m[2:] != ["ro"]]
        assert bool(writable) == (name not in hosts), (name, mounts)
    assert len(set(sources.values())) == 1 and None not in sources.values(), sources
    # the images create the mount point owned by their user, so a fresh volume is writable by it
    for stage in ("api", "streams"):
        runs = " ".join(stages()[stage].instructions("RUN"))
        assert re.search(rf"chown app:app [^&]*{re.escape(warehouse)}", runs), stage


def test_cluster_chat_settings_name_every_broker_and_three_replicas():
    services = load_compose(CLUSTER_FILE.name)["services"]
    for name in ("topics", "streams", *API_SERVICES[CLUSTER_FILE.name]):
        env = environment(services[name])
        assert env["CHAT_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092", name
        assert env["CHAT_DATA_DIR"] == "/data", name
    topics = environment(services["topics"])
    assert (topics["CHAT_TOPIC_PARTITIONS"], topics["CHAT_REPLICATION_FACTOR"]) == ("2", "3")


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_the_api_and_the_ui_publish_and_check_the_ports_their_images_listen_on(compose_file):
    services = load_compose(compose_file)["services"]
    front = API_FRONT[compose_file]
    ports = set()
    for name in API_SERVICES[compose_file]:
        api = services[name]
        env = {**stage_env(TARGETS[name]), **environment(api)}  # compose's environment wins over the image's
        port = env["CHAT_API_PORT"]
        # gunicorn binds there (conf/gunicorn.conf.py): reachable from outside
        assert env["CHAT_API_HOST"] == "0.0.0.0", name
        assert f"http://127.0.0.1:{port}/health" in " ".join(api["healthcheck"]["test"]), name
        ports.add(port)
    [port] = ports
    assert f"127.0.0.1:{port}:{port}" in services[front]["ports"]
    assert {**stage_env(TARGETS["ui"]), **environment(services["ui"])}["CHAT_API_URL"] == f"http://{front}:{port}"
    ui_argv = service_argv(services["ui"])
    assert option(ui_argv, "--host") == "0.0.0.0"
    ui_port = option(ui_argv, "--port")
    assert f"127.0.0.1:{ui_port}:{ui_port}" in services["ui"]["ports"]
    assert f"http://127.0.0.1:{ui_port}/" in " ".join(services["ui"]["healthcheck"]["test"])


# --------------------------------------------------------------------------
# the cluster's API hosts behind HAProxy
# --------------------------------------------------------------------------


def test_cluster_api_hosts_sit_behind_the_balancer():
    """The balancer mounts conf/haproxy-cluster.cfg, whose servers are the API services on their port; it
    publishes on loopback only, waits for the hosts healthy and is the UI's API; every host answers the names
    clients send (the balancer's, the host machine's, HAProxy's health checks)."""
    doc = load_compose(CLUSTER_FILE.name)
    assert balancer_problems(doc, BALANCER_CONFIG.read_text()) == []
    hosts = API_SERVICES[CLUSTER_FILE.name]
    assert {frozenset(allowed_hosts(doc["services"][h])) for h in hosts} == {
        frozenset({"balancer", "127.0.0.1", "localhost"})
    }
    assert [api_port(doc["services"][h]) for h in hosts] == [5000, 5000]


def test_the_balancers_configuration_is_generated_for_the_api_services():
    """The committed configuration is stack/balancer.py's for as many hosts as the compose file runs (scaling to
    N: api-N services, then `python -m stack.balancer --write-compose-config --hosts N`)."""
    hosts = API_SERVICES[CLUSTER_FILE.name]
    assert list(hosts) == [f"api-{n}" for n in range(1, len(hosts) + 1)]
    assert BALANCER_CONFIG.read_text() == compose_config(len(hosts))


def test_balancer_check_can_fail():
    doc = load_compose(CLUSTER_FILE.name)
    services = doc["services"]
    cfg = BALANCER_CONFIG.read_text()
    assert balancer_problems(doc, cfg.replace("server api-2 api-2:5000", "server api-3 api-3:5000")) == [
        "the configuration's servers ['api-1', 'api-3'] are not the API hosts ['api-1', 'api-2']",
        "server api-3 api-3:5000 is not the service api-3 on its API port",
    ]
    assert balancer_problems(doc, cfg.replace("api-1:5000", "api-1:5001")) == [
        "server api-1 api-1:5001 is not the service api-1 on its API port"
    ]
    assert balancer_problems(doc, cfg.replace("uri /health", "uri /")) == ["the configuration checks /, not /health"]
    services["balancer"]["ports"] = ["5000:5000"]
    services["balancer"]["image"] = "haproxy:latest"
    services["balancer"]["volumes"] = ["./conf/haproxy-cluster.cfg:/usr/local/etc/haproxy/haproxy.cfg"]
    services["balancer"]["depends_on"] = {"api-1": {"condition": "service_started"}}
    services["ui"]["environment"]["CHAT_API_URL"] = "http://api-1:5000"
    services["api-2"]["ports"] = ["127.0.0.1:5001:5000"]
    # api-2's environment is api-1's (a YAML merge): give it one of its own
    services["api-2"]["environment"] = {
        **environment(services["api-2"]),
        "CHAT_API_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    assert balancer_problems(doc, cfg) == [
        "balancer: image 'haproxy:latest' is not the official haproxy pinned by version",
        "balancer: haproxy-cluster.cfg is not mounted read-only at /usr/local/etc/haproxy/haproxy.cfg",
        "balancer publishes ['5000:5000'], not 127.0.0.1:5000:5000 only",
        "balancer does not wait for every API host healthy: {'api-1': 'service_started'}",
        "the UI talks to http://api-1:5000, not to balancer:5000",
        "api-1 does not allow the hosts ['api-1']",
        "api-2 publishes ['127.0.0.1:5001:5000']: clients must come through balancer",
        "api-2 does not allow the hosts ['api-1']",
    ]
    del services["balancer"]
    assert balancer_problems(doc, cfg) == ["no balancer service or no api-N service"]


def test_the_balancer_runs_the_haproxy_branch_its_configuration_is_checked_with():
    """tests/stack/test_balancer.py checks conf/haproxy-cluster.cfg with the haproxy installed here: the
    container runs the same major.minor branch, so what passed `haproxy -c` here is what it loads."""
    image = load_compose(CLUSTER_FILE.name)["services"]["balancer"]["image"]
    branch = re.fullmatch(r"haproxy:(\d+\.\d+)[.\w-]*", image).group(1)
    version = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, check=True).stdout
    assert re.match(rf"HAProxy version {re.escape(branch)}\.", version), (image, version.splitlines()[0])


# --------------------------------------------------------------------------
# the cluster file's `s3` profile: the lake on S3Proxy
# --------------------------------------------------------------------------


def s3_profile(dotenv: dict[str, str] = S3_DOTENV) -> dict:
    """compose.cluster.yml as `docker compose --profile s3 run stats` runs it with `dotenv` as its .env."""
    return interpolated(load_compose(CLUSTER_FILE.name, (S3_PROFILE, "stats")), dotenv)


def test_every_profile_matches_the_compose_specification():
    assert schema_errors(load_compose(CLUSTER_FILE.name, ("*",))) == []
    assert schema_errors(s3_profile()) == []


def test_the_s3_profile_adds_its_server_and_bucket_creator_and_nothing_runs_them_by_default():
    everything = load_compose(CLUSTER_FILE.name, ("*",))
    default = load_compose(CLUSTER_FILE.name)
    assert sorted(set(everything["services"]) - set(default["services"])) == [S3_SERVICE, S3_BUCKET_SERVICE, "stats"]
    assert sorted(load_compose(CLUSTER_FILE.name, (S3_PROFILE,))["services"]) == sorted(
        [*SERVICES[CLUSTER_FILE.name], S3_SERVICE, S3_BUCKET_SERVICE]
    )
    # without the profile the lake's clients wait for nothing of it, and its volume is not made
    for name, service in default["services"].items():
        assert not {S3_SERVICE, S3_BUCKET_SERVICE} & set(depends_on(service)), name
    assert set(everything["volumes"]) - set(default["volumes"]) == {"s3-data"}
    # Compose drops only the optional dependencies on services left out
    doc = load_compose(CLUSTER_FILE.name, ("*",))
    doc["services"]["streams"]["depends_on"][S3_SERVICE]["required"] = True
    assert S3_SERVICE in depends_on(with_profiles(doc, ())["services"]["streams"])


def test_the_s3_profile_is_wired():
    """S3Proxy at the tested version, its endpoint the one every lake client names, the buckets made before the
    server starts and the clients after both; every CHAT_* name a real setting."""
    doc = s3_profile()
    assert object_store_problems(doc, settings.NAMES) == []
    assert lake_clients(doc) == sorted(["api-1", "api-2", "stats", "streams"])


def test_the_lake_clients_settings_load_as_the_chat_reads_them(monkeypatch):
    """The settings each client gets parse with config/settings.py: s3a:// locations, the endpoint, path style."""
    services = s3_profile()["services"]
    for name in lake_clients(s3_profile()):
        for key in [k for k in os.environ if k.startswith("CHAT_")]:
            monkeypatch.delenv(key)
        for key, value in environment(services[name]).items():
            monkeypatch.setenv(key, value)
        loaded = settings.load()
        assert loaded.on_object_store, name
        assert str(loaded.warehouse_dir) == S3_DOTENV["CHAT_WAREHOUSE_DIR"], name
        assert str(loaded.checkpoint_dir) == S3_DOTENV["CHAT_CHECKPOINT_DIR"], name
        assert loaded.object_store.path_style and loaded.object_store.endpoint == "http://s3:9000", name
        assert loaded.object_store.credentials() == (S3_DOTENV["S3_ACCESS_KEY"], S3_DOTENV["S3_SECRET_KEY"]), name


def test_the_keys_come_from_dotenv_not_from_the_file():
    raw = load_compose(CLUSTER_FILE.name, ("*",))["services"]
    for name in [*lake_clients({"services": raw}), S3_SERVICE]:
        env = environment(raw[name])
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3PROXY_IDENTITY", "S3PROXY_CREDENTIAL"):
            if key in env:
                assert re.fullmatch(r"\$\{S3_(ACCESS|SECRET)_KEY:-\}", env[key]), (name, key, env[key])
    # without them the server lets nobody in and the chat stops at start naming the credentials (config/object_store.py)
    keyless = {k: v for k, v in S3_DOTENV.items() if not k.startswith("S3_")}
    assert "its S3 keys are not the server's" in " ".join(object_store_problems(s3_profile(keyless), settings.NAMES))


def run_bucket_creator(tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The bucket creator's script with its environment, its volume at tmp_path instead of /data."""
    creator = s3_profile()["services"][S3_BUCKET_SERVICE]
    basedir = environment(s3_profile()["services"][S3_SERVICE])["JCLOUDS_FILESYSTEM_BASEDIR"]
    script = bucket_script(creator).replace(f'"{basedir}/', f'"{tmp_path}/')
    return subprocess.run(["sh", "-c", script], env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True)


def test_the_bucket_creator_makes_the_buckets_the_locations_name(tmp_path):
    env = environment(s3_profile()["services"][S3_BUCKET_SERVICE])
    done = run_bucket_creator(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat-lake"]
    again = run_bucket_creator(tmp_path, env)  # a second `up` finds them there
    assert again.returncode == 0, again.stderr
    two = run_bucket_creator(tmp_path, {**env, "CHAT_CHECKPOINT_DIR": "s3a://chat-checkpoints/streams"})
    assert two.returncode == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["chat-checkpoints", "chat-lake"]


def test_the_bucket_creator_refuses_a_profile_without_an_s3a_location(tmp_path):
    """`--profile s3` with the locations left at their defaults: the creator fails (so the server and the lake's
    clients do not start), saying what to set."""
    local = {k: v for k, v in S3_DOTENV.items() if not k.startswith("CHAT_") or k == "CHAT_SECRET_KEY"}
    env = environment(s3_profile(local)["services"][S3_BUCKET_SERVICE])
    assert env["CHAT_WAREHOUSE_DIR"] == "/warehouse"
    done = run_bucket_creator(tmp_path, env)
    assert done.returncode != 0 and list(tmp_path.iterdir()) == []
    assert "CHAT_WAREHOUSE_DIR" in done.stderr and "s3a://" in done.stderr


def test_the_statistics_service_runs_the_job_once_on_demand():
    stats = load_compose(CLUSTER_FILE.name, ("*",))["services"]["stats"]
    argv = service_argv(stats)
    assert stats["profiles"] == ["stats"] and str(stats.get("restart")) == "no"
    assert service_build(stats)[2] == "streams" and stats["image"] == "moderated-chat/streams:latest"
    assert argv[0] == "spark-submit" and project_modules(argv) == {"pipelines.user_stats"}
    assert missing_module_files(argv) == []


def test_s3_profile_check_can_fail():
    def problems(change) -> list[str]:
        doc = s3_profile()
        change(doc["services"])
        return object_store_problems(doc, settings.NAMES)

    def endpoint(services):
        services["api-2"]["environment"]["CHAT_S3_ENDPOINT"] = "http://minio:9000"

    assert problems(endpoint) == ["api-2: CHAT_S3_ENDPOINT 'http://minio:9000' is not s3:9000"]

    def misspelled(services):
        services["streams"]["environment"]["CHAT_S3_PATHSTYLE"] = "on"
        del services["streams"]["environment"]["CHAT_S3_PATH_STYLE"]

    assert problems(misspelled) == [
        "streams: ['CHAT_S3_PATHSTYLE'] are not settings of config/settings.py",
        "streams: CHAT_S3_PATH_STYLE is not on (S3Proxy serves path-style requests)",
    ]

    def unordered(services):
        del services["streams"]["depends_on"][S3_BUCKET_SERVICE]
        services[S3_SERVICE]["depends_on"] = {}

    assert problems(unordered) == [
        "s3 does not start after s3-bucket completed: {}",
        "streams does not wait for the buckets and a healthy s3",
    ]

    def server(services):
        s3 = services[S3_SERVICE]
        s3["image"] = "andrewgaul/s3proxy:latest"
        s3["environment"]["JCLOUDS_PROVIDER"] = "filesystem-nio2"
        s3["ports"] = ["9000:9000"]
        s3["healthcheck"]["test"] = ["CMD", "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"]
        services[S3_BUCKET_SERVICE]["volumes"] = ["other:/data"]
        services["stats"]["environment"]["CHAT_WAREHOUSE_DIR"] = "s3a://other-lake/warehouse"

    assert problems(server) == [
        "s3: image 'andrewgaul/s3proxy:latest' is not S3Proxy at conf/pom.xml's version",
        "s3: JCLOUDS_PROVIDER is 'filesystem-nio2', not filesystem",
        "s3 publishes ['9000:9000'], not 127.0.0.1:9000:9000 only",
        "s3's health check does not probe its endpoint's port 9000",
        "s3-bucket does not make the buckets in s3's volume at /data",
        "stats: CHAT_WAREHOUSE_DIR is not the location s3-bucket makes the bucket of",
    ]
    assert problems(lambda services: services.pop(S3_BUCKET_SERVICE)) == ["no s3 or no s3-bucket service"]


def test_interpolation_follows_compose():
    variables = {"SET": "v", "EMPTY": ""}
    assert interpolate("${SET} $SET ${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET", variables) == "v v v d d  $SET"
    assert interpolate("${UNSET}", variables) == ""
    with pytest.raises(ValueError, match="UNSET"):
        interpolate("${UNSET:?set it}", variables)
    with pytest.raises(ValueError, match="EMPTY"):
        interpolate("${EMPTY:?set it}", variables)
    assert interpolate("${EMPTY?set it}", variables) == ""
