"""Reading the container setup without a Docker engine: the compose files, the Dockerfile's stages,
.dockerignore, pyproject.toml's dependency groups, and what a command runs. test_compose.py and
test_dockerfile.py check them against the Compose Specification and against the repository.
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata
import importlib.resources
import json
import re
import shlex
import sys
import tomllib
import urllib.parse
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import jsonschema
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from config.settings import REPO_ROOT as ROOT
from tests.test_layering import PACKAGES, Import, import_graph

COMPOSE_FILE = ROOT / "compose.yml"
CLUSTER_FILE = ROOT / "compose.cluster.yml"
COMPOSE_FILES = (COMPOSE_FILE.name, CLUSTER_FILE.name)
DOCKERFILE = ROOT / "Dockerfile"
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
        "api-1",
        "api-2",
        "balancer",
        "ui",
    ),
}
# the API hosts of each file, and the service the UI and the host machine reach the API through
API_SERVICES = {COMPOSE_FILE.name: ("api",), CLUSTER_FILE.name: ("api-1", "api-2")}
API_FRONT = {COMPOSE_FILE.name: "api", CLUSTER_FILE.name: "balancer"}
BALANCER_CONFIG = ROOT / "conf" / "haproxy-cluster.cfg"
# where the official haproxy image reads its configuration
HAPROXY_IMAGE_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"
# the Dockerfile stage each built service runs
TARGETS = {
    "topics": "topics",
    "streams": "streams",
    "api": "api",
    "api-1": "api",
    "api-2": "api",
    "ui": "ui",
    "spark-master": "streams",
    "spark-worker-1": "streams",
    "spark-worker-2": "streams",
}
SERVICE_STAGES = ("api", "topics", "ui", "streams")
SPARK_DAEMONS = ("spark-master", "spark-worker-1", "spark-worker-2")
# The project module each built service runs (its command), per the design; the Spark master and
# workers run Spark's own classes and the balancer HAProxy, no module of ours.
EXPECTED_MODULES = {
    "topics": {"stack.topics"},
    "streams": {"pipelines.streams"},
    "api": {"api.asgi", "api.server"},  # gunicorn's config names the worker (api.server) and the app (api.asgi)
    "api-1": {"api.asgi", "api.server"},
    "api-2": {"api.asgi", "api.server"},
    "ui": {"ui.app"},
    "spark-master": set(),
    "spark-worker-1": set(),
    "spark-worker-2": set(),
    "balancer": set(),  # the official haproxy image's own command
}
ALL_SERVICES = [(name, f) for f in COMPOSE_FILES for name in SERVICES[f]]
ALL_BUILT = [(name, f) for f in COMPOSE_FILES for name in SERVICES[f] if name in TARGETS]


# -- compose files ------------------------------------------------------------------------------------


@cache
def compose_text(name: str = COMPOSE_FILE.name) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def load_compose(name: str = COMPOSE_FILE.name, profiles: tuple[str, ...] = ()) -> dict:
    """A fresh copy of a compose file, compose.yml by default (tests may mutate it), as Compose runs it with
    `profiles` active (none by default; "*" all): see with_profiles."""
    return with_profiles(copy.deepcopy(_compose_doc(name)), profiles)


def with_profiles(doc: dict, profiles: tuple[str, ...]) -> dict:
    """What Compose runs with `profiles` active: the services without `profiles` and those of an active
    profile; a `depends_on` entry marked `required: false` on a service left out is dropped (Compose ignores
    it), and so is a named volume only the left-out services use."""
    services = doc.get("services", {})
    active = {
        name: service
        for name, service in services.items()
        if "*" in profiles or not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }
    for service in active.values():
        deps = service.get("depends_on")
        if isinstance(deps, dict):
            service["depends_on"] = {
                d: spec for d, spec in deps.items() if d in active or (spec or {}).get("required", True)
            }
    left_out = set().union(*(named_volume_sources(s) for n, s in services.items() if n not in active))
    kept = set().union(*(named_volume_sources(s) for s in active.values()))
    if doc.get("volumes"):
        doc["volumes"] = {v: spec for v, spec in doc["volumes"].items() if v in kept or v not in left_out}
    doc["services"] = active
    return doc


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


def interpolate(text: str, variables: dict[str, str]) -> str:
    """Compose's interpolation of one string: ${NAME}, $NAME, ${NAME:-default}, ${NAME-default},
    ${NAME:?error} and ${NAME?error} (ValueError when unset), $$ for a literal $."""

    def value(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        given = variables.get(name)
        unset = given is None or (given == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if unset else given
        if op in ("?", ":?"):
            if unset:
                raise ValueError(f"required variable {name} is missing a value: {arg}")
            return given
        return given or ""

    return _VARIABLE.sub(value, text)


def interpolated(doc, variables: dict[str, str]):
    """A compose document with every string interpolated as Compose does with `variables` (.env, the shell)."""
    if isinstance(doc, dict):
        return {k: interpolated(v, variables) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolated(v, variables) for v in doc]
    return interpolate(doc, variables) if isinstance(doc, str) else doc


@cache
def _compose_doc(name: str) -> dict:
    doc = yaml.safe_load(compose_text(name))  # merge keys (<<: *anchor) resolved, as Compose does
    assert isinstance(doc, dict), f"{name} must be a mapping"
    return doc


@cache
def compose_validator() -> jsonschema.protocols.Validator:
    resource = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(resource.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(doc: dict) -> list[str]:
    errors = sorted(compose_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else list(command)


def service_build(service: dict) -> tuple[Path, Path, str | None] | None:
    """(context dir, Dockerfile, target stage) of a service that builds, else None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (COMPOSE_FILE.parent / build.get("context", ".")).resolve()
    dockerfile = (context / build.get("dockerfile", "Dockerfile")).resolve()
    return context, dockerfile, build.get("target")


def service_argv(service: dict) -> list[str]:
    """What a service runs: its entrypoint and command, else the CMD of the stage it is built from."""
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    build = service_build(service)
    return argv or (stage_cmd(build[2]) if build and build[2] else [])


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


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


# -- the API hosts and their balancer -------------------------------------------------------------------


def api_port(service: dict) -> int:
    """The port an API container listens on: compose's environment over the api stage's."""
    return int({**stage_env(TARGETS["api"]), **environment(service)}["CHAT_API_PORT"])


def allowed_hosts(service: dict) -> set[str]:
    return {h.strip() for h in environment(service).get("CHAT_API_ALLOWED_HOSTS", "").split(",") if h.strip()}


def haproxy_servers(cfg: str) -> dict[str, tuple[str, int]]:
    """name -> (host, port) of every `server` line of an HAProxy configuration."""
    found = {}
    for words in (line.split() for line in cfg.splitlines()):
        if words[:1] == ["server"] and len(words) >= 3:
            host, _, port = words[2].rpartition(":")
            found[words[1]] = (host, int(port))
    return found


def haproxy_bind_ports(cfg: str) -> list[int]:
    return [int(w[1].rpartition(":")[2]) for w in (line.split() for line in cfg.splitlines()) if w[:1] == ["bind"]]


def haproxy_health_check(cfg: str) -> tuple[str | None, str | None]:
    """(uri, Host header) of the backend's `http-check send` line."""
    for words in (line.split() for line in cfg.splitlines()):
        if words[:2] == ["http-check", "send"]:
            return option(words, "uri"), option(words, "Host")
    return None, None


def mounted_file(service: dict, target: str) -> tuple[Path | None, bool]:
    """(the host file bind-mounted at `target`, whether read-only) of a service."""
    for volume in service.get("volumes", []):
        parts = volume.split(":") if isinstance(volume, str) else []
        if len(parts) >= 2 and parts[1] == target and parts[0].startswith((".", "/")):
            return (COMPOSE_FILE.parent / parts[0]).resolve(), parts[2:] == ["ro"]
    return None, False


def balancer_problems(doc: dict, cfg: str, front: str = "balancer") -> list[str]:
    """What is wrong between a compose file's API hosts (api-N), the balancer `front` in front of them, the
    HAProxy configuration `cfg` it mounts, and the UI that talks to it."""
    services = doc["services"]
    hosts = sorted(n for n in services if re.fullmatch(r"api-\d+", n))
    balancer, problems = services.get(front), []
    if balancer is None or not hosts:
        return [f"no {front} service or no api-N service"]
    if not re.fullmatch(r"haproxy:\d+\.\d+(\.\d+)?(-alpine[\d.]*)?", str(balancer.get("image", ""))):
        problems.append(f"{front}: image {balancer.get('image')!r} is not the official haproxy pinned by version")
    source, read_only = mounted_file(balancer, HAPROXY_IMAGE_CONFIG)
    if source != BALANCER_CONFIG or not read_only:
        problems.append(f"{front}: {BALANCER_CONFIG.name} is not mounted read-only at {HAPROXY_IMAGE_CONFIG}")
    servers = haproxy_servers(cfg)
    if sorted(servers) != hosts:
        problems.append(f"the configuration's servers {sorted(servers)} are not the API hosts {hosts}")
    for name, (host, port) in sorted(servers.items()):
        if host != name or name not in services or port != api_port(services[name]):
            problems.append(f"server {name} {host}:{port} is not the service {name} on its API port")
    binds = haproxy_bind_ports(cfg)
    if len(binds) != 1:
        return [*problems, f"the configuration binds {binds}, not one port"]
    port = binds[0]
    if [str(p) for p in balancer.get("ports", [])] != [f"{LOOPBACK}:{port}:{port}"]:
        problems.append(f"{front} publishes {balancer.get('ports')}, not {LOOPBACK}:{port}:{port} only")
    if f"http://127.0.0.1:{port}/health" not in " ".join(map(str, (balancer.get("healthcheck") or {}).get("test", []))):
        problems.append(f"{front}'s health check does not ask its own /health")
    if depends_on(balancer) != {h: "service_healthy" for h in hosts}:
        problems.append(f"{front} does not wait for every API host healthy: {depends_on(balancer)}")
    ui_url = urllib.parse.urlsplit({**stage_env(TARGETS["ui"]), **environment(services["ui"])}["CHAT_API_URL"])
    if (ui_url.hostname, ui_url.port) != (front, port):
        problems.append(f"the UI talks to {ui_url.geturl()}, not to {front}:{port}")
    uri, check_host = haproxy_health_check(cfg)
    if uri != "/health":
        problems.append(f"the configuration checks {uri}, not /health")
    # the names clients send as Host: the UI (the balancer's name), the host machine, HAProxy's checks
    names = {ui_url.hostname, LOOPBACK, "localhost", check_host}
    for name in hosts:
        if services[name].get("ports"):
            problems.append(f"{name} publishes {services[name]['ports']}: clients must come through {front}")
        if not names <= allowed_hosts(services[name]):
            problems.append(f"{name} does not allow the hosts {sorted(names - allowed_hosts(services[name]))}")
    return problems


REQUIRED_SECRET = re.compile(r"\$\{CHAT_SECRET_KEY:\?[^}]+\}")


def shared_secret_problems(doc: dict, hosts: tuple[str, ...]) -> list[str]:
    """Every API host takes one CHAT_SECRET_KEY (and CHAT_ADMIN_TOKEN) from the environment, and Compose
    refuses to start without it: a host that generated its own would refuse the others' tokens and cursors."""
    services, problems = doc["services"], []
    for name in ("CHAT_SECRET_KEY", "CHAT_ADMIN_TOKEN"):
        values = {environment(services[h]).get(name) for h in hosts}
        if len(values) != 1:
            problems.append(f"the API hosts have different {name}: {sorted(map(str, values))}")
    secret = environment(services[hosts[0]]).get("CHAT_SECRET_KEY", "")
    if not REQUIRED_SECRET.fullmatch(secret):
        problems.append(f"CHAT_SECRET_KEY is {secret!r}, not a required variable (${{CHAT_SECRET_KEY:?message}})")
    return problems


# -- the Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not pending and not stripped):  # comments, also inside continuations
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line, pending = (pending + stripped).strip(), ""
        if line:
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    if pending.strip():
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # FROM: an image, or an earlier stage
    built_on: Stage | None  # that earlier stage
    own: tuple[tuple[str, str], ...]  # its instructions after FROM

    def instructions(self, keyword: str) -> list[str]:
        """Arguments of each `keyword` instruction of this stage and of the stages it is built on, in order."""
        inherited = self.built_on.instructions(keyword) if self.built_on else []
        return inherited + [args for k, args in self.own if k == keyword]

    @property
    def image(self) -> str:
        """The image the stage starts from, through the stages it is built on."""
        return self.built_on.image if self.built_on else self.base


def parse_stages(text: str) -> dict[str, Stage]:
    found: dict[str, Stage] = {}
    name, base, own = None, "", []
    for keyword, args in [*dockerfile_instructions(text), ("FROM", "<end> AS <end>")]:
        if keyword != "FROM":
            own.append((keyword, args))
            continue
        if name is not None:
            found[name] = Stage(name, base, found.get(base), tuple(own))
        words = args.split()
        base, own = words[0], []
        name = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"<stage {len(found)}>"
    return found


@cache
def stages() -> dict[str, Stage]:
    return parse_stages(DOCKERFILE.read_text(encoding="utf-8"))


def split_args(args: str) -> list[str]:
    """Exec (JSON array) or shell form."""
    if args.startswith("["):
        parsed = json.loads(args)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), args
        return parsed
    return shlex.split(args)


def copies(stage: Stage, own_only: bool = False) -> list[tuple[str | None, list[str], str]]:
    """(--from stage or None, sources, destination) of every COPY/ADD of a stage (and those it is built on)."""
    if own_only:
        args = [a for k, a in stage.own if k in ("COPY", "ADD")]
    else:
        args = [*stage.instructions("COPY"), *stage.instructions("ADD")]
    found = []
    for arg in args:
        words = split_args(arg) if arg.startswith("[") else shlex.split(arg)
        source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        operands = [w for w in words if not w.startswith("--")]
        assert len(operands) >= 2, f"{stage.name}: COPY {arg}: needs source(s) and a destination"
        found.append((source_stage, operands[:-1], operands[-1]))
    return found


def context_sources(stage: Stage) -> list[str]:
    """What a stage copies from the build context (not from another stage)."""
    return [src for origin, sources, _ in copies(stage) if origin is None for src in sources]


def stage_cmd(name: str) -> list[str]:
    cmds = stages()[name].instructions("CMD")
    return split_args(cmds[-1]) if cmds else []


def stage_env(name: str) -> dict[str, str]:
    env = {}
    for args in stages()[name].instructions("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value
    return env


# -- .dockerignore (Docker's rules: patterns relative to the context root, `**` any number of
# directories, a match on a directory excludes its contents, later `!pattern` lines re-include) -----


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


# -- what a command runs ------------------------------------------------------------------------------


def gunicorn_settings(conf: Path) -> dict[str, str]:
    """The string settings a gunicorn configuration file assigns (wsgi_app, worker_class, ...)."""
    tree = ast.parse(conf.read_text(encoding="utf-8"))
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def project_modules(argv: list[str]) -> set[str]:
    """Project modules a command runs: `python -m pkg.mod`, `pkg.mod:app` style app specs (gunicorn,
    uvicorn), `pkg/mod.py` scripts (spark-submit), and the app and worker of a gunicorn configuration
    file (`gunicorn -c conf/x.py`). Third-party runners are ignored."""
    candidates = []
    conf = option(argv, "-c")
    if conf and conf.endswith(".py") and (ROOT / conf).is_file():
        settings = gunicorn_settings(ROOT / conf)
        candidates += [
            settings.get("wsgi_app", "").partition(":")[0],
            settings.get("worker_class", "").rpartition(".")[0],
        ]
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
        candidates.append(candidate)
    return {c for c in candidates if c.split(".")[0] in PACKAGES}


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


@cache
def _graph() -> tuple[Import, ...]:
    return tuple(import_graph())


def module_closure(modules: set[str]) -> set[str]:
    """The project modules that running `modules` imports, at any depth (function-level imports too)."""
    edges: dict[str, set[str]] = {}
    for i in _graph():
        edges.setdefault(i.importer, set()).add(i.imported)
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += edges.get(module, ())
    return seen


def third_party_imports(modules: set[str]) -> set[str]:
    """Top-level names of what the modules import from outside the project and the standard library."""
    names = set()
    for module in modules:
        path = next(p for p in module_candidates(module, run_as_main=False) if p.is_file())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in PACKAGES and n not in sys.stdlib_module_names and n != "__future__"}


# -- pyproject.toml's dependency groups ---------------------------------------------------------------


@cache
def pyproject() -> dict:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def group_requirements(group: str) -> set[str]:
    """A dependency group's requirements, its included groups resolved (PEP 735)."""
    found = set()
    for entry in pyproject()["dependency-groups"][group]:
        found |= group_requirements(entry["include-group"]) if isinstance(entry, dict) else {entry}
    return found


def distributions_of(requirements: set[str]) -> set[str]:
    """The distributions these requirements install, with everything they require (as installed here)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
    return seen


def provided_modules(distributions: set[str]) -> set[str]:
    """Top-level import names the distributions provide, and their console scripts."""
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(d) in distributions for d in dists)
    }
    scripts = {
        ep.name
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.dist is not None and canonicalize_name(ep.dist.name) in distributions
    }
    return modules | scripts


# -- the object-storage profile of compose.cluster.yml ------------------------------------------------

S3_PROFILE = "s3"
S3_SERVICE = "s3"
S3_BUCKET_SERVICE = "s3-bucket"
S3PROXY_IMAGE = re.compile(r"andrewgaul/s3proxy:(\d+\.\d+\.\d+)")
# the .env README documents for the profile (the keys are made up there; any do)
S3_DOTENV = {
    "CHAT_SECRET_KEY": "a-secret-of-at-least-32-characters-here",
    "S3_ACCESS_KEY": "chat-0a1b2c3d",
    "S3_SECRET_KEY": "not-a-real-secret",
    "CHAT_WAREHOUSE_DIR": "s3a://chat-lake/warehouse",
    "CHAT_CHECKPOINT_DIR": "s3a://chat-lake/checkpoints",
}


def pom_property(name: str) -> str:
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", (ROOT / "conf" / "pom.xml").read_text())
    assert match, f"conf/pom.xml has no <{name}>"
    return match.group(1)


def lake_clients(doc: dict) -> list[str]:
    """The services that read or write the lake: those given CHAT_WAREHOUSE_DIR, but the bucket creator."""
    return sorted(
        n for n, s in doc["services"].items() if "CHAT_WAREHOUSE_DIR" in environment(s) and n != S3_BUCKET_SERVICE
    )


def object_store_problems(doc: dict, setting_names: frozenset[str]) -> list[str]:
    """What is wrong with the `s3` profile of a compose document interpolated with its .env: the S3 server is
    S3Proxy pinned at conf/pom.xml's version with the filesystem backend on a named volume, its endpoint
    published on loopback and probed by its health check; every lake client names real settings, reaches the
    server by its service name and port with path-style access and the server's keys, has s3a:// locations,
    and starts after the bucket creator has completed and the server is healthy; the creator fills the
    server's volume before the server starts."""
    services, problems = doc["services"], []
    server, creator = services.get(S3_SERVICE), services.get(S3_BUCKET_SERVICE)
    if server is None or creator is None:
        return [f"no {S3_SERVICE} or no {S3_BUCKET_SERVICE} service"]
    env = environment(server)
    image = S3PROXY_IMAGE.fullmatch(str(server.get("image", "")))
    if not image or image.group(1) != pom_property("s3proxy.version"):
        problems.append(f"{S3_SERVICE}: image {server.get('image')!r} is not S3Proxy at conf/pom.xml's version")
    if env.get("JCLOUDS_PROVIDER") != "filesystem":
        problems.append(f"{S3_SERVICE}: JCLOUDS_PROVIDER is {env.get('JCLOUDS_PROVIDER')!r}, not filesystem")
    if env.get("S3PROXY_AUTHORIZATION", "none") == "none":
        problems.append(f"{S3_SERVICE}: S3PROXY_AUTHORIZATION lets anyone in")
    basedir = env.get("JCLOUDS_FILESYSTEM_BASEDIR", "")
    volume = [
        v.split(":")[0] for v in server.get("volumes", []) if isinstance(v, str) and v.split(":")[1:2] == [basedir]
    ]
    if not volume or volume[0] not in named_volume_sources(server):
        problems.append(f"{S3_SERVICE}: its basedir {basedir!r} is not a named volume")
    endpoint = urllib.parse.urlsplit(env.get("S3PROXY_ENDPOINT", ""))
    port = endpoint.port
    if [str(p) for p in server.get("ports", [])] != [f"{LOOPBACK}:{port}:{port}"]:
        problems.append(f"{S3_SERVICE} publishes {server.get('ports')}, not {LOOPBACK}:{port}:{port} only")
    if f"/dev/tcp/127.0.0.1/{port}" not in " ".join((server.get("healthcheck") or {}).get("test", [])):
        problems.append(f"{S3_SERVICE}'s health check does not probe its endpoint's port {port}")
    if depends_on(server) != {S3_BUCKET_SERVICE: "service_completed_successfully"}:
        problems.append(f"{S3_SERVICE} does not start after {S3_BUCKET_SERVICE} completed: {depends_on(server)}")
    if str(creator.get("restart", "no")) != "no":
        problems.append(f"{S3_BUCKET_SERVICE} must run once, but restart={creator.get('restart')}")
    if volume and f"{volume[0]}:{basedir}" not in [str(v) for v in creator.get("volumes", [])]:
        problems.append(f"{S3_BUCKET_SERVICE} does not make the buckets in {S3_SERVICE}'s volume at {basedir}")
    clients = lake_clients(doc)
    if not {"streams", *(n for n in services if re.fullmatch(r"api-\d+", n))} <= set(clients):
        problems.append(f"the lake's clients {clients} leave out the streams or an API host")
    for name in clients:
        client = environment(services[name])
        unknown = sorted(k for k in client if k.startswith("CHAT_") and k not in setting_names)
        if unknown:
            problems.append(f"{name}: {unknown} are not settings of config/settings.py")
        url = urllib.parse.urlsplit(client.get("CHAT_S3_ENDPOINT", ""))
        if (url.hostname, url.port) != (S3_SERVICE, port):
            problems.append(f"{name}: CHAT_S3_ENDPOINT {client.get('CHAT_S3_ENDPOINT')!r} is not {S3_SERVICE}:{port}")
        if client.get("CHAT_S3_PATH_STYLE", "").lower() not in ("on", "true", "1", "yes"):
            problems.append(f"{name}: CHAT_S3_PATH_STYLE is not on (S3Proxy serves path-style requests)")
        keys = (client.get("AWS_ACCESS_KEY_ID"), client.get("AWS_SECRET_ACCESS_KEY"))
        if not all(keys) or keys != (env.get("S3PROXY_IDENTITY"), env.get("S3PROXY_CREDENTIAL")):
            problems.append(f"{name}: its S3 keys are not the server's")
        for setting in ("CHAT_WAREHOUSE_DIR", "CHAT_CHECKPOINT_DIR"):
            if not client.get(setting, "").startswith("s3a://"):
                problems.append(f"{name}: {setting} is {client.get(setting)!r}, not an s3a:// location")
            elif client[setting] != environment(creator).get(setting):
                problems.append(f"{name}: {setting} is not the location {S3_BUCKET_SERVICE} makes the bucket of")
        if {d: c for d, c in depends_on(services[name]).items() if d in (S3_SERVICE, S3_BUCKET_SERVICE)} != {
            S3_BUCKET_SERVICE: "service_completed_successfully",
            S3_SERVICE: "service_healthy",
        }:
            problems.append(f"{name} does not wait for the buckets and a healthy {S3_SERVICE}")
    return problems


def bucket_script(creator: dict) -> str:
    """The shell script the bucket creator runs (`sh -c SCRIPT`)."""
    argv = as_argv(creator.get("entrypoint")) + as_argv(creator.get("command"))
    assert argv[:2] == ["sh", "-c"] and len(argv) == 3, argv
    return argv[2]
