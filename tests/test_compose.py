"""Static checks of the container setup: compose.yml, the Dockerfiles, .dockerignore.

There is no Docker engine where the tests run, so nothing is built or started.
Instead compose.yml is validated against the Compose Specification JSON schema
(the copy vendored by check-jsonschema) and cross-checked against the repository:
build contexts and Dockerfiles exist, every COPY source exists and is not
excluded by .dockerignore, every project module a command runs exists as a
file, published ports bind to 127.0.0.1 only, named volumes are declared,
depends_on conditions are satisfiable, and the Kafka clients' bootstrap address
is one the broker advertises. The negative tests feed deliberately broken
documents to the same checks, so they are known to be able to fail.
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
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

LOOPBACK = "127.0.0.1"
SERVICES = ("kafka", "topics", "streams", "api", "ui")
BUILT_SERVICES = ("topics", "streams", "api", "ui")
DOCKERFILES = ("api/Dockerfile", "pipelines/Dockerfile", "ui/Dockerfile")

# The project module each built service runs (compose `command`), per the design.
EXPECTED_MODULES = {
    "topics": {"stack.topics"},
    "streams": {"pipelines.streams"},
    "api": {"api"},
    "ui": {"ui.app"},
}


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


@cache
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


def load_compose() -> dict:
    """A fresh copy of compose.yml (tests may mutate it)."""
    return copy.deepcopy(_compose_doc())


@cache
def _compose_doc() -> dict:
    doc = yaml.safe_load(compose_text())
    assert isinstance(doc, dict), "compose.yml must be a mapping"
    return doc


@cache
def compose_schema() -> dict:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(
        "compose-spec.json"
    )
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
    """Project modules a command runs: `python -m pkg.mod`, and `pkg.mod:app`
    style app specs (gunicorn, uvicorn). Third-party runners are ignored."""
    modules = set()
    for i, token in enumerate(argv):
        if token == "-m" and i + 1 < len(argv):
            candidate = argv[i + 1]
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


# --------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification():
    assert schema_errors(load_compose()) == []


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


def test_services_are_the_expected_ones():
    doc = load_compose()
    assert sorted(doc["services"]) == sorted(SERVICES)
    assert doc["services"]["kafka"]["image"] == "apache/kafka:4.1.1"


# --------------------------------------------------------------------------
# builds, Dockerfiles, .dockerignore
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_has_an_image_or_a_build(name):
    service = load_compose()["services"][name]
    assert service.get("image") or service.get("build"), name


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_build_context_and_dockerfile_exist(name):
    build = service_build(load_compose()["services"][name])
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


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_service_command_names_the_expected_module(name):
    service = load_compose()["services"][name]
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    if not argv:
        argv = dockerfile_cmd(service_build(service)[1]) or []
    assert project_modules(argv) == EXPECTED_MODULES[name], argv


@pytest.mark.parametrize("name", BUILT_SERVICES)
def test_service_command_module_exists(name):
    service = load_compose()["services"][name]
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    if not argv:
        argv = dockerfile_cmd(service_build(service)[1]) or []
    assert project_modules(argv), f"{name}: {argv} runs no project module"
    assert missing_module_files(argv) == [], f"{name}: {argv}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_cmd_module_exists(dockerfile):
    cmd = dockerfile_cmd(ROOT / dockerfile) or []
    assert missing_module_files(cmd) == [], f"{dockerfile}: {cmd}"


def test_command_module_detection_can_fail():
    assert project_modules(["python", "-m", "uvicorn", "ui.app:app", "--port", "8000"]) == {"ui.app"}
    assert project_modules(["gunicorn", "-b", "0.0.0.0:5000", "api:create_app()"]) == {"api"}
    assert project_modules(["python", "-m", "json.tool"]) == set()
    assert missing_module_files(["python", "-m", "stack.no_such_module_xyz"]) != []


# --------------------------------------------------------------------------
# ports, volumes, dependencies, environment
# --------------------------------------------------------------------------


def test_published_ports_bind_to_loopback_only():
    doc = load_compose()
    assert non_loopback_ports(doc) == []
    published = {
        name: [str(p) for p in service.get("ports", [])] for name, service in doc["services"].items()
    }
    assert "127.0.0.1:5000:5000" in published["api"]
    assert "127.0.0.1:8000:8000" in published["ui"]


def test_port_check_can_fail():
    doc = load_compose()
    doc["services"]["api"]["ports"] = ["5000:5000"]
    doc["services"]["ui"]["ports"] = ["0.0.0.0:8000:8000", {"target": 8000, "published": "8001"}]
    assert len(non_loopback_ports(doc)) == 3
    assert port_host_ip({"target": 1, "published": "1", "host_ip": "127.0.0.1"}) == LOOPBACK
    assert port_host_ip("[::1]:9000:9000/tcp") == "::1"


def test_named_volumes_are_declared_and_used():
    doc = load_compose()
    assert undeclared_volumes(doc) == []
    used = set().union(*(named_volume_sources(s) for s in doc["services"].values()))
    assert used == set(doc["volumes"]), "declared volumes no service uses"
    relay, api = doc["services"]["streams"], doc["services"]["api"]
    assert named_volume_sources(relay) & named_volume_sources(api), "api must read the relay's /data"


def test_volume_check_can_fail():
    doc = load_compose()
    doc["services"]["api"]["volumes"].append("scratch:/scratch")
    doc["services"]["ui"]["volumes"] = [{"type": "volume", "source": "other", "target": "/x"}, "./conf:/c"]
    assert undeclared_volumes(doc) == ["api: scratch", "ui: other"]


def test_depends_on_conditions_are_satisfiable():
    services = load_compose()["services"]
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
    assert depends_on(services["topics"]) == {"kafka": "service_healthy"}
    assert depends_on(services["streams"])["topics"] == "service_completed_successfully"
    assert depends_on(services["api"])["topics"] == "service_completed_successfully"
    assert depends_on(services["ui"]) == {"api": "service_healthy"}


def test_kafka_clients_bootstrap_from_an_advertised_listener():
    services = load_compose()["services"]
    kafka = services["kafka"]
    advertised = advertised_addresses(kafka)
    clients = {n: environment(s)["CHAT_KAFKA_BOOTSTRAP"] for n, s in services.items()
               if "CHAT_KAFKA_BOOTSTRAP" in environment(s)}
    assert set(clients) == {"topics", "streams", "api"}
    for name, bootstrap in clients.items():
        for address in bootstrap.split(","):
            assert address in advertised, f"{name}: {address} not in {advertised}"
    env = environment(kafka)
    # KRaft cluster ids are base64url-encoded 16-byte UUIDs
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "=" * (-len(cluster_id) % 4))) == 16
    assert env["KAFKA_LOG_DIRS"] in {v.split(":", 1)[1] for v in kafka["volumes"]}


def test_service_environment():
    services = load_compose()["services"]
    relay = environment(services["streams"])
    assert relay["CHAT_DATA_DIR"] == "/data"
    assert relay["CHAT_SPARK_MASTER"] == "local[*]"
    assert relay["SPARK_CONF_DIR"] == "/app/conf"
    assert environment(services["api"])["CHAT_DATA_DIR"] == "/data"
    assert environment(services["ui"])["CHAT_API_URL"] == "http://api:5000"
