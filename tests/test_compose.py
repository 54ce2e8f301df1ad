"""Static checks of the container setup: compose.yml, compose.cluster.yml, the Dockerfiles, .dockerignore.

There is no Docker engine where the tests run, so nothing is built or started.
Instead both compose files (one machine; three brokers and a Spark standalone
cluster) are validated against the Compose Specification JSON schema (the copy
vendored by check-jsonschema) and cross-checked against the repository: build
contexts and Dockerfiles exist, every COPY source exists and is not excluded by
.dockerignore, every project module a command runs exists as a file, published
ports bind to 127.0.0.1 only, named volumes are declared, every long-running
service has a health check, depends_on conditions are satisfiable, and the
Kafka clients' bootstrap addresses are ones the brokers advertise. In the
cluster file, the brokers form one KRaft quorum with three replicas and
min.insync.replicas=2, and the streams are submitted to the Spark master the
workers register with. The negative tests feed deliberately broken documents
to the same checks, so they are known to be able to fail.
"""

from __future__ import annotations

import base64
import copy
import importlib.resources
import json
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose.yml"
CLUSTER_FILE = ROOT / "compose.cluster.yml"
COMPOSE_FILES = (COMPOSE_FILE.name, CLUSTER_FILE.name)
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

LOOPBACK = "127.0.0.1"
SERVICES = {
    COMPOSE_FILE.name: ("kafka", "topics", "streams", "api", "ui"),
    CLUSTER_FILE.name: (
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "topics",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "streams",
        "api",
        "ui",
    ),
}
BUILT_SERVICES = {
    COMPOSE_FILE.name: ("topics", "streams", "api", "ui"),
    CLUSTER_FILE.name: ("topics", "spark-master", "spark-worker-1", "spark-worker-2", "streams", "api", "ui"),
}
SPARK_DAEMONS = ("spark-master", "spark-worker-1", "spark-worker-2")
DOCKERFILES = ("api/Dockerfile", "pipelines/Dockerfile", "ui/Dockerfile")

# The project module each built service runs (compose `command`), per the design;
# the Spark master and workers run Spark's own classes, no module of ours.
EXPECTED_MODULES = {
    "topics": {"stack.topics"},
    "streams": {"pipelines.streams"},
    "api": {"api"},
    "ui": {"ui.app"},
    "spark-master": set(),
    "spark-worker-1": set(),
    "spark-worker-2": set(),
}

# (service, compose file) for every service of both files
ALL_SERVICES = [(name, f) for f in COMPOSE_FILES for name in SERVICES[f]]
ALL_BUILT = [(name, f) for f in COMPOSE_FILES for name in BUILT_SERVICES[f]]


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


@cache
def compose_text(name: str = COMPOSE_FILE.name) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def load_compose(name: str = COMPOSE_FILE.name) -> dict:
    """A fresh copy of a compose file, compose.yml by default (tests may mutate it)."""
    return copy.deepcopy(_compose_doc(name))


@cache
def _compose_doc(name: str) -> dict:
    doc = yaml.safe_load(compose_text(name))  # merge keys (<<: *anchor) resolved, as Compose does
    assert isinstance(doc, dict), f"{name} must be a mapping"
    return doc


@cache
def compose_schema() -> dict:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    return json.loads(resource.read_text(encoding="utf-8"))


@cache
def compose_validator() -> jsonschema.protocols.Validator:
    schema = compose_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: dict) -> list[str]:
    errors = sorted(compose_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


@cache
def project_packages() -> frozenset[str]:
    """The top-level packages `pip install .` installs ([tool.setuptools] packages)."""
    with PYPROJECT.open("rb") as f:
        pyproject = tomllib.load(f)
    return frozenset(pyproject["tool"]["setuptools"]["packages"])


# --------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and not stripped:
            continue
        if stripped.startswith("#"):  # comments, also inside continuations
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def split_args(args: str) -> list[str]:
    """Exec (JSON array) or shell form."""
    if args.startswith("["):
        parsed = json.loads(args)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
        return parsed
    return shlex.split(args)


def copy_sources(path: Path) -> list[str]:
    """Build-context sources of every COPY/ADD (not --from=stage, not URLs)."""
    sources: list[str] = []
    for keyword, args in dockerfile_instructions(path):
        if keyword not in ("COPY", "ADD"):
            continue
        words = split_args(args) if args.startswith("[") else shlex.split(args)
        flags = [w for w in words if w.startswith("--")]
        operands = [w for w in words if not w.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        assert len(operands) >= 2, f"{path}: {keyword} {args}: needs source(s) and a destination"
        for src in operands[:-1]:
            if re.match(r"^(https?://|git@)", src):
                continue
            sources.append(src)
    return sources


def dockerfile_cmd(path: Path) -> list[str] | None:
    cmds = [args for keyword, args in dockerfile_instructions(path) if keyword == "CMD"]
    return split_args(cmds[-1]) if cmds else None


# --------------------------------------------------------------------------
# .dockerignore matching (Docker's rules: patterns relative to the context
# root, `**` any number of directories, a match on a directory excludes its
# contents, later `!pattern` lines re-include)
# --------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


@cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = str(PurePosixPath(pattern.strip("/"))) if pattern.strip("/") else "."
        rules.append((negate, _pattern_regex(pattern)))
    return tuple(rules)


def is_dockerignored(relpath: str) -> bool:
    """Whether `relpath` (relative to the context root) is left out of the build context."""
    parts = PurePosixPath(relpath).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in dockerignore_rules():
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


# --------------------------------------------------------------------------
# compose helpers
# --------------------------------------------------------------------------


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else list(command)


def service_build(service: dict) -> tuple[Path, Path] | None:
    """(context dir, Dockerfile) of a service that builds, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
    return context, dockerfile


def project_modules(argv: list[str]) -> set[str]:
    """Project modules a command runs: `python -m pkg.mod`, `pkg.mod:app` style app
    specs (gunicorn, uvicorn) and `pkg/mod.py` scripts (spark-submit). Third-party
    runners are ignored."""
    modules = set()
    for i, token in enumerate(argv):
        if token == "-m" and i + 1 < len(argv):
            candidate = argv[i + 1]
        elif re.fullmatch(r"[A-Za-z_]\w*(/[A-Za-z_]\w*)+\.py", token):
            candidate = token[:-3].replace("/", ".")
        else:
            match = re.fullmatch(r"([A-Za-z_][\w.]*):[A-Za-z_]\w*(\(.*\))?", token)
            if not match:
                continue
            candidate = match.group(1)
        if candidate.split(".")[0] in project_packages():
            modules.add(candidate)
    return modules


def module_candidates(module: str, *, run_as_main: bool) -> list[Path]:
    base = ROOT.joinpath(*module.split("."))
    if run_as_main:  # python -m pkg runs pkg/__main__.py
        return [base.with_suffix(".py"), base / "__main__.py"]
    return [base.with_suffix(".py"), base / "__init__.py"]


def missing_module_files(argv: list[str]) -> list[str]:
    missing = []
    main_modules = {argv[i + 1] for i, t in enumerate(argv[:-1]) if t == "-m"}
    for module in sorted(project_modules(argv)):
        candidates = module_candidates(module, run_as_main=module in main_modules)
        if not any(c.is_file() for c in candidates):
            missing.append(f"{module} (none of {[str(c.relative_to(ROOT)) for c in candidates]})")
    return missing


def port_host_ip(port: str | int | dict) -> str | None:
    """The host address a `ports` entry binds to (None: all interfaces)."""
    if isinstance(port, dict):
        return port.get("host_ip")
    spec = str(port).split("/")[0]
    if spec.startswith("["):  # [ipv6]:host:container
        return spec[1 : spec.index("]")]
    parts = spec.split(":")
    return parts[0] if len(parts) == 3 else None


def non_loopback_ports(doc: dict) -> list[str]:
    return [
        f"{name}: {port!r}"
        for name, service in doc.get("services", {}).items()
        for port in service.get("ports", [])
        if port_host_ip(port) != LOOPBACK
    ]


def named_volume_sources(service: dict) -> set[str]:
    names = set()
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "volume" and volume.get("source"):
                names.add(volume["source"])
            continue
        parts = volume.split(":")
        if len(parts) >= 2 and not parts[0].startswith(("/", ".", "~", "$")):
            names.add(parts[0])
    return names


def undeclared_volumes(doc: dict) -> list[str]:
    declared = set(doc.get("volumes") or {})
    return [
        f"{name}: {volume}"
        for name, service in doc.get("services", {}).items()
        for volume in sorted(named_volume_sources(service))
        if volume not in declared
    ]


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (spec or {}).get("condition", "service_started") for d, spec in deps.items()}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def advertised_addresses(kafka: dict) -> set[str]:
    listeners = environment(kafka).get("KAFKA_ADVERTISED_LISTENERS", "")
    return {entry.split("://", 1)[1] for entry in listeners.split(",") if "://" in entry}


def brokers(doc: dict) -> dict[str, dict]:
    return {name: s for name, s in doc["services"].items() if str(s.get("image", "")).startswith("apache/kafka:")}


def listener_port(kafka: dict, listener: str) -> int | None:
    for entry in environment(kafka).get("KAFKA_LISTENERS", "").split(","):
        name, _, address = entry.partition("://")
        if name == listener:
            return int(address.rsplit(":", 1)[1])
    return None


def quorum_problems(doc: dict) -> list[str]:
    """Every broker lists the same voters, and each voter `id@host:port` is a broker of this file:
    its node id, its host name and its CONTROLLER listener's port."""
    nodes = brokers(doc)
    problems = []
    voter_sets = {environment(s).get("KAFKA_CONTROLLER_QUORUM_VOTERS", "") for s in nodes.values()}
    if len(voter_sets) != 1:
        return [f"the brokers list different voters: {sorted(voter_sets)}"]
    for voter in voter_sets.pop().split(","):
        node_id, _, address = voter.partition("@")
        host, _, port = address.rpartition(":")
        match = [n for n, s in nodes.items() if environment(s).get("KAFKA_NODE_ID") == node_id]
        if len(match) != 1:
            problems.append(f"voter {voter}: {len(match)} brokers with node id {node_id}")
            continue
        service = nodes[match[0]]
        if host not in (match[0], service.get("hostname")):
            problems.append(f"voter {voter}: node {node_id} is {match[0]}, not {host}")
        if listener_port(service, "CONTROLLER") != int(port):
            problems.append(f"voter {voter}: {match[0]}'s CONTROLLER listener is not on {port}")
    if len(set(environment(s).get("CLUSTER_ID") for s in nodes.values())) != 1:
        problems.append("the brokers do not share one CLUSTER_ID")
    return problems


def option(argv: list[str], name: str) -> str | None:
    """The value after `name` in a command line."""
    return argv[argv.index(name) + 1] if name in argv else None


def spark_confs(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, token in enumerate(argv[:-1]) if token == "--conf")


def memory_mb(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([mg])", text.lower()).groups()
    return int(number) * (1024 if unit == "g" else 1)


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
# builds, Dockerfiles, .dockerignore
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name, compose_file", ALL_SERVICES)
def test_service_has_an_image_or_a_build(name, compose_file):
    service = load_compose(compose_file)["services"][name]
    assert service.get("image") or service.get("build"), name


@pytest.mark.parametrize("name, compose_file", ALL_BUILT)
def test_build_context_and_dockerfile_exist(name, compose_file):
    build = service_build(load_compose(compose_file)["services"][name])
    assert build is not None, f"{name} has no build"
    context, dockerfile = build
    assert context == ROOT, f"{name}: the images need the whole source, context must be the repo root"
    assert context.is_dir(), context
    assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
    assert dockerfile.is_relative_to(context), f"{name}: Dockerfile outside the context"
    assert str(dockerfile.relative_to(ROOT)) in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_copy_sources_exist_in_the_build_context(dockerfile):
    path = ROOT / dockerfile
    sources = copy_sources(path)
    assert sources, f"{dockerfile} copies nothing"
    problems = []
    for src in sources:
        matches = sorted(ROOT.glob(src)) if any(c in src for c in "*?[") else [ROOT / src]
        matches = [m for m in matches if m.exists()]
        if not matches:
            problems.append(f"{src}: does not exist")
            continue
        for match in matches:
            rel = match.resolve().relative_to(ROOT).as_posix()  # raises if outside the context
            if is_dockerignored(rel):
                problems.append(f"{src}: excluded by .dockerignore")
    assert problems == [], f"{dockerfile}: {problems}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_copies_every_package_pip_installs(dockerfile):
    """`pip install .` fails unless every [tool.setuptools] package is in the image."""
    path = ROOT / dockerfile
    runs = " ".join(args for keyword, args in dockerfile_instructions(path) if keyword == "RUN")
    assert re.search(r"pip install (--no-deps )?\.(\s|$)", runs), f"{dockerfile}: no `pip install .`"
    copied = {PurePosixPath(src).parts[0] for src in copy_sources(path)}
    assert "pyproject.toml" in copied
    assert project_packages() <= copied, sorted(project_packages() - copied)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_base_image_and_default_command(dockerfile):
    path = ROOT / dockerfile
    froms = [args for keyword, args in dockerfile_instructions(path) if keyword == "FROM"]
    assert froms == ["python:3.11-slim-bookworm"], froms
    workdirs = [args for keyword, args in dockerfile_instructions(path) if keyword == "WORKDIR"]
    assert workdirs and workdirs[-1] == "/app"
    cmd = dockerfile_cmd(path)
    assert cmd, f"{dockerfile} has no CMD"
    assert project_modules(cmd), f"{dockerfile}: CMD {cmd} runs no project module"


def test_relay_image_resolves_the_spark_jars_at_build_time():
    path = ROOT / "pipelines/Dockerfile"
    runs = [args for keyword, args in dockerfile_instructions(path) if keyword == "RUN"]
    apt = next((r for r in runs if "apt-get install" in r), "")
    assert "openjdk-17-jre-headless" in apt and "maven" in apt, apt
    mvn = next((r for r in runs if re.search(r"\bmvn\b", r)), "")
    assert "-f conf/pom.xml" in mvn and "-Pspark" in mvn and "package" in mvn, mvn
    assert "-Dmaven.repo.local=/app/var/m2" in mvn, mvn
    # the pom writes the jars to ${project.basedir}/../var/jars = /app/var/jars
    assert "<jars.dir>${project.basedir}/../var/jars</jars.dir>" in (ROOT / "conf/pom.xml").read_text()
    env = " ".join(args for keyword, args in dockerfile_instructions(path) if keyword == "ENV")
    assert "SPARK_CONF_DIR=/app/conf" in env


def test_dockerignore_keeps_host_state_out_of_the_build_context():
    for ignored in (
        "var",
        "var/jars/spark/delta-spark.jar",
        ".venv/bin/python",
        ".git/HEAD",
        "__pycache__/x.pyc",
        "api/__pycache__/x.cpython-311.pyc",
        "pipelines/sub/__pycache__/y.pyc",
        ".pytest_cache/v/cache/nodeids",
    ):
        assert is_dockerignored(ignored), ignored
    for kept in ("pyproject.toml", "conf/pom.xml", "api/__init__.py", "pipelines/relay.py", "ui/app.py"):
        assert not is_dockerignored(kept), kept


def test_dockerignore_matcher_can_fail():
    assert not is_dockerignored("variables.py")  # `var/` is a directory, not a prefix
    assert not is_dockerignored("stack/topics.py")


# --------------------------------------------------------------------------
# commands: the modules they run exist
# --------------------------------------------------------------------------


def service_argv(service: dict) -> list[str]:
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    return argv or dockerfile_cmd(service_build(service)[1]) or []


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


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_cmd_module_exists(dockerfile):
    cmd = dockerfile_cmd(ROOT / dockerfile) or []
    assert missing_module_files(cmd) == [], f"{dockerfile}: {cmd}"


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


# --------------------------------------------------------------------------
# ports, volumes, dependencies, environment
# --------------------------------------------------------------------------


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_published_ports_bind_to_loopback_only(compose_file):
    doc = load_compose(compose_file)
    assert non_loopback_ports(doc) == []
    published = {name: [str(p) for p in service.get("ports", [])] for name, service in doc["services"].items()}
    assert "127.0.0.1:5000:5000" in published["api"]
    assert "127.0.0.1:8000:8000" in published["ui"]
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
    shared = set.intersection(*(named_volume_sources(services[n]) for n in [*writers, "api"]))
    assert shared, f"{writers} and api share no volume"
    # every broker keeps its log in a volume of its own
    kafka_volumes = [named_volume_sources(s) for s in brokers(doc).values()]
    assert all(kafka_volumes) and len(set().union(*kafka_volumes)) == len(kafka_volumes)


def test_volume_check_can_fail():
    doc = load_compose()
    doc["services"]["api"]["volumes"].append("scratch:/scratch")
    doc["services"]["ui"]["volumes"] = [{"type": "volume", "source": "other", "target": "/x"}, "./conf:/c"]
    assert undeclared_volumes(doc) == ["api: scratch", "ui: other"]


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_the_api_can_write_its_sessions_to_the_data_volume(compose_file):
    """The API keeps its sessions (run/sessions.sqlite) and, without CHAT_SECRET_KEY, its secret under
    CHAT_DATA_DIR: a read-only mount would make every sign-in fail."""
    api = load_compose(compose_file)["services"]["api"]
    data_dir = environment(api)["CHAT_DATA_DIR"]
    mounts = [v for v in api["volumes"] if isinstance(v, str) and v.split(":")[1] == data_dir]
    assert mounts and not any(v.split(":")[2:] == ["ro"] for v in mounts), api["volumes"]


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_every_long_running_service_has_a_health_check(compose_file):
    services = load_compose(compose_file)["services"]
    for name, service in services.items():
        if service.get("restart") == "unless-stopped":
            test = (service.get("healthcheck") or {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), name


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
    assert depends_on(services["api"])["topics"] == "service_completed_successfully"
    assert depends_on(services["ui"]) == {"api": "service_healthy"}
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
    assert set(clients) == {"topics", "streams", "api"}
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


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_the_api_takes_its_secrets_from_the_environment(compose_file):
    api = environment(load_compose(compose_file)["services"]["api"])
    for name in ("CHAT_ADMIN_TOKEN", "CHAT_SECRET_KEY"):
        assert re.fullmatch(rf"\$\{{{name}(:?-[^}}]*)?\}}", api[name]), api[name]
    assert "${CHAT_SECRET_KEY" in compose_text(compose_file)  # interpolated from the shell or .env


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
        assert str(services[name]["build"]["dockerfile"]) == "pipelines/Dockerfile", name


def test_cluster_warehouse_is_one_volume_where_the_executors_write_it():
    """CHAT_WAREHOUSE_DIR is the same named volume at the same path for the driver, both workers
    (their executors write the Delta files) and the API (which reads them)."""
    services = load_compose(CLUSTER_FILE.name)["services"]
    warehouse = environment(services["streams"])["CHAT_WAREHOUSE_DIR"]
    assert environment(services["api"])["CHAT_WAREHOUSE_DIR"] == warehouse
    sources = {}
    for name in ("streams", "spark-worker-1", "spark-worker-2", "api"):
        mounts = [v.split(":") for v in services[name]["volumes"] if isinstance(v, str)]
        [source] = [m[0] for m in mounts if m[1] == warehouse] or [None]
        sources[name] = source
        writable = [m for m in mounts if m[1] == warehouse and m[2:] != ["ro"]]
        assert bool(writable) == (name != "api"), (name, mounts)
    assert len(set(sources.values())) == 1 and None not in sources.values(), sources
    # the images create the mount point owned by their user, so a fresh volume is writable by it
    for dockerfile in ("api/Dockerfile", "pipelines/Dockerfile"):
        runs = " ".join(a for k, a in dockerfile_instructions(ROOT / dockerfile) if k == "RUN")
        assert re.search(rf"chown app:app [^&]*{re.escape(warehouse)}", runs), dockerfile


def test_cluster_chat_settings_name_every_broker_and_three_replicas():
    services = load_compose(CLUSTER_FILE.name)["services"]
    for name in ("topics", "streams", "api"):
        env = environment(services[name])
        assert env["CHAT_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092", name
        assert env["CHAT_DATA_DIR"] == "/data", name
    topics = environment(services["topics"])
    assert (topics["CHAT_TOPIC_PARTITIONS"], topics["CHAT_REPLICATION_FACTOR"]) == ("2", "3")
