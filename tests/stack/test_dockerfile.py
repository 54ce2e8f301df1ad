"""Static checks of the images: the one multi-stage Dockerfile, .dockerignore and the dependency groups of
pyproject.toml each stage installs (no Docker engine runs here, so nothing is built).

Each service's stage must copy every project module its command imports (the import graph of
tests/test_layering.py) and install a dependency group that provides every package those modules import;
the negative tests feed broken inputs to the same checks, so they are known to be able to fail.
"""

from __future__ import annotations

import re
import runpy

import pytest

from tests.stack.containers import (
    DOCKERFILE,
    ROOT,
    SERVICE_STAGES,
    context_sources,
    copies,
    distributions_of,
    group_requirements,
    is_dockerignored,
    missing_module_files,
    module_closure,
    parse_stages,
    project_modules,
    provided_modules,
    pyproject,
    split_args,
    stage_cmd,
    stage_env,
    stages,
    third_party_imports,
)

BASE_IMAGE = "python:3.11-slim-bookworm"


def installed_groups(stage) -> list[str]:
    """The dependency groups a stage installs with `pip install --group <name>`."""
    return [g for run in stage.instructions("RUN") for g in re.findall(r"pip install --group (\S+)", run)]


def copied_modules(stage) -> set[str]:
    """The project modules a stage's copies of the build context put under /app."""
    copied = set()
    for source in context_sources(stage):
        path = ROOT / source
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.suffix == ".py" else []
        for file in files:
            parts = file.relative_to(ROOT).with_suffix("").parts
            copied.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return copied


def missing_from(stage_name: str) -> dict[str, list[str]]:
    """What a service stage lacks: project modules its command imports that it does not copy, and
    packages they import that its dependency groups do not install."""
    stage = stages()[stage_name]
    needed = module_closure(project_modules(stage_cmd(stage_name)))
    provided = provided_modules(distributions_of({r for g in installed_groups(stage) for r in group_requirements(g)}))
    program = stage_cmd(stage_name)[0]
    runner = [] if program == "python" else [program]  # gunicorn: a console script of its group
    return {
        "modules": sorted(needed - copied_modules(stage)),
        "packages": sorted((third_party_imports(needed) | set(runner)) - provided),
    }


# -- the stages ---------------------------------------------------------------------------------------


def test_one_dockerfile_with_a_stage_per_service_over_one_base():
    assert sorted(ROOT.glob("*/Dockerfile")) == [], "one Dockerfile, at the root"
    found = stages()
    assert set(SERVICE_STAGES) <= set(found)
    assert {name: stage.image for name, stage in found.items()} == dict.fromkeys(found, BASE_IMAGE)
    assert [name for name, stage in found.items() if stage.base == BASE_IMAGE] == ["base"]
    assert found["base"].instructions("WORKDIR") == ["/app"]
    assert "PYTHONPATH" in stage_env("base") and stage_env("base")["PYTHONPATH"] == "/app"


@pytest.mark.parametrize("stage", SERVICE_STAGES)
def test_a_service_stage_runs_a_project_module_it_copies(stage):
    cmd = stage_cmd(stage)
    assert project_modules(cmd), f"{stage}: CMD {cmd} runs no project module"
    assert missing_module_files(cmd) == [], f"{stage}: {cmd}"
    assert stages()[stage].instructions("USER")[-1:] == ["app"], f"{stage} must not run as root"


@pytest.mark.parametrize("stage", SERVICE_STAGES)
def test_a_service_stage_has_all_its_command_imports_and_nothing_installs_the_project(stage):
    assert missing_from(stage) == {"modules": [], "packages": []}
    groups = installed_groups(stages()[stage])
    assert len(groups) == 1 and groups[0] in pyproject()["dependency-groups"], groups
    runs = " ".join(stages()[stage].instructions("RUN"))
    # the code runs from /app on PYTHONPATH; dependencies come from pyproject.toml alone, no one-liner
    assert not re.search(r"pip install [^&]*(\s\.(\[|\s|$)|-r\s)", runs), runs
    assert "tomllib" not in DOCKERFILE.read_text()


def test_the_stage_check_finds_a_missing_module_and_a_missing_package(monkeypatch):
    broken = parse_stages(
        DOCKERFILE.read_text()
        .replace("COPY warehouse ./warehouse\nCOPY api ./api", "COPY api ./api", 1)
        .replace("RUN pip install --group api", "RUN pip install --group ui", 1)
    )
    monkeypatch.setattr("tests.stack.test_dockerfile.stages", lambda: broken)
    missing = missing_from("api")
    assert missing["modules"] == ["warehouse.moderation_snapshot", "warehouse.paths"]
    assert {"deltalake", "flask", "gunicorn", "kafka"} <= set(missing["packages"])


def test_the_api_stage_runs_the_one_gunicorn_configuration_bound_to_every_interface(monkeypatch):
    assert stage_cmd("api") == ["gunicorn", "-c", "conf/gunicorn.conf.py"]
    for name, value in stage_env("api").items():
        if name.startswith("CHAT_"):
            monkeypatch.setenv(name, value)
    conf = runpy.run_path(str(ROOT / "conf" / "gunicorn.conf.py"))
    # in a container the API must listen beyond its loopback; compose publishes it on the host's only
    assert conf["bind"] == ["0.0.0.0:5000"]
    assert "5000" in stages()["api"].instructions("EXPOSE")


@pytest.mark.parametrize("stage", sorted(stages()))
def test_what_a_stage_copies_is_in_the_build_context(stage):
    problems = []
    for source in context_sources(stages()[stage]):
        path = ROOT / source
        if not path.exists():
            problems.append(f"{source}: does not exist")
        elif is_dockerignored(path.resolve().relative_to(ROOT).as_posix()):  # raises if outside the context
            problems.append(f"{source}: excluded by .dockerignore")
    assert problems == []


def test_the_dependencies_are_installed_before_the_code_is_copied():
    """Editing the code must not reinstall the dependencies: each service stage installs its group before
    it copies anything, and the base stage has copied nothing but pyproject.toml."""
    for name in SERVICE_STAGES:
        own = [(keyword, "pip install --group" in args) for keyword, args in stages()[name].own]
        assert ("COPY", False) in own and ("RUN", True) in own, name
        assert own.index(("RUN", True)) < own.index(("COPY", False)), name
    assert context_sources(stages()["base"]) == ["pyproject.toml"]


def test_the_streams_image_gets_the_spark_jars_from_a_build_stage_without_maven():
    jars, streams = stages()["jars"], stages()["streams"]
    apt = " ".join(jars.instructions("RUN"))
    assert "apt-get install" in apt and "maven" in apt, apt
    mvn = next((r for r in jars.instructions("RUN") if re.search(r"\bmvn\b", r)), "")
    assert "-f conf/pom.xml" in mvn and "-Pspark" in mvn and "package" in mvn, mvn
    assert "-Dmaven.repo.local=/app/var/m2" in mvn, mvn
    # the pom writes the jars to ${project.basedir}/../var/jars = /app/var/jars
    assert "<jars.dir>${project.basedir}/../var/jars</jars.dir>" in (ROOT / "conf/pom.xml").read_text()
    assert ("jars", ["/app/var/jars/spark"], "./var/jars/spark") in copies(streams)
    # and the S3A client, for a lake on s3a:// (compose.cluster.yml's s3 profile)
    assert re.search(r"\bmvn\b[^&]*-Ps3 package", " ".join(jars.instructions("RUN"))), jars.instructions("RUN")
    assert ("jars", ["/app/var/jars/s3"], "./var/jars/s3") in copies(streams)
    runs = " ".join(streams.instructions("RUN"))
    assert "openjdk-17-jre-headless" in runs and "maven" not in runs
    assert stage_env("streams")["CHAT_JARS_DIR"] == "/app/var/jars"
    assert stage_env("streams")["SPARK_CONF_DIR"] == "/app/conf"


def test_the_stage_parser_reads_inheritance_and_exec_form():
    parsed = parse_stages(
        'FROM python:3 AS one\nENV A=1\nRUN echo \\\n  joined\nFROM one AS two\n# note\nCMD ["python", "-m", "x"]\n'
    )
    assert [r.split() for r in parsed["two"].instructions("RUN")] == [["echo", "joined"]]
    assert parsed["two"].image == "python:3"
    assert split_args(parsed["two"].own[-1][1]) == ["python", "-m", "x"]
    assert parsed["one"].instructions("CMD") == []


# -- .dockerignore ------------------------------------------------------------------------------------


def test_dockerignore_keeps_host_state_and_what_no_image_runs_out_of_the_build_context():
    for ignored in (
        "var",
        "var/jars/spark/delta-spark.jar",
        ".venv/bin/python",
        ".git/HEAD",
        "__pycache__/x.pyc",
        "api/__pycache__/x.cpython-311.pyc",
        "pipelines/sub/__pycache__/y.pyc",
        ".pytest_cache/v/cache/nodeids",
        "tests/conftest.py",
        "bench/run.py",
    ):
        assert is_dockerignored(ignored), ignored
    for kept in ("pyproject.toml", "conf/pom.xml", "api/__init__.py", "pipelines/relay.py", "ui/app.py"):
        assert not is_dockerignored(kept), kept


def test_dockerignore_matcher_can_fail():
    assert not is_dockerignored("variables.py")  # `var/` is a directory, not a prefix
    assert not is_dockerignored("stack/topics.py")


# -- the dependency groups ----------------------------------------------------------------------------


def test_make_deps_installs_every_group_from_pyproject_alone():
    groups = pyproject()["dependency-groups"]
    everything = set().union(*(group_requirements(g) for g in groups))
    assert group_requirements("all") == everything
    assert pyproject()["project"]["dependencies"] == []
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*--group all\b", makefile)
    assert "tomllib" not in makefile and "requirements.txt" not in makefile
    # every pin is exact, and a package is pinned to one version wherever it appears
    pins = {}
    for requirement in everything:
        name, _, version = requirement.partition("==")
        assert version and pins.setdefault(name, version) == version, requirement
