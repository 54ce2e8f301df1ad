"""bench/memory.py: the stack's memory summed over its process tree, read from a /proc made of files."""

from __future__ import annotations

from pathlib import Path

from bench import memory
from bench.memory import MemorySampler, stack_memory


def _process(proc: Path, pid: int, parent: int, argv: list[str], rss_kib: int, pss_kib: int | None) -> None:
    folder = proc / str(pid)
    folder.mkdir()
    fields = ["S", str(parent)] + ["0"] * 20
    (folder / "stat").write_text(f"{pid} (x) {' '.join(fields)}\n")
    (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (folder / "status").write_text(f"Name:\tx\nVmPeak:\t999999 kB\nVmRSS:\t{rss_kib} kB\nThreads:\t1\n")
    if pss_kib is not None:  # a process whose smaps_rollup cannot be read counts its RSS as its PSS
        (folder / "smaps_rollup").write_text(f"Rss:  {rss_kib} kB\nPss:  {pss_kib} kB\n")


def fake_stack(proc: Path) -> Path:
    proc.mkdir(exist_ok=True)
    py = "/venv/bin/python"
    _process(proc, 100, 1, [py, "-m", "stack.up"], 40 * 1024, 38 * 1024)
    _process(proc, 101, 100, ["/usr/bin/java", "-Xmx768m", "kafka.Kafka", "server.properties"], 700 * 1024, 690 * 1024)
    _process(proc, 102, 100, [py, "-m", "pipelines.streams"], 120 * 1024, 110 * 1024)
    _process(proc, 103, 102, ["java", "org.apache.spark.deploy.SparkSubmit", "pyspark-shell"], 1500 * 1024, 1490 * 1024)
    _process(proc, 104, 100, [py, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py"], 80 * 1024, 50 * 1024)
    _process(proc, 105, 104, [py, "-m", "gunicorn", "-c", "conf/gunicorn.conf.py"], 90 * 1024, None)
    _process(proc, 106, 100, [py, "-m", "uvicorn", "ui.app:app"], 100 * 1024, 95 * 1024)
    _process(proc, 200, 1, [py, "-m", "pytest"], 5000 * 1024, 5000 * 1024)  # not the stack's
    return proc


def test_the_stack_is_every_process_below_the_launcher_summed_by_role(tmp_path):
    result = stack_memory(100, fake_stack(tmp_path))
    assert result["processes"] == 7
    assert result["rss_mib"] == 40 + 700 + 120 + 1500 + 80 + 90 + 100
    assert result["pss_mib"] == 38 + 690 + 110 + 1490 + 50 + 90 + 95
    assert result["by_role"] == {
        "api (gunicorn)": {"rss_mib": 170, "pss_mib": 140, "processes": 2},
        "kafka broker": {"rss_mib": 700, "pss_mib": 690, "processes": 1},
        "launcher": {"rss_mib": 40, "pss_mib": 38, "processes": 1},
        "streams (Python driver)": {"rss_mib": 120, "pss_mib": 110, "processes": 1},
        "streams (Spark JVM)": {"rss_mib": 1500, "pss_mib": 1490, "processes": 1},
        "ui (uvicorn)": {"rss_mib": 100, "pss_mib": 95, "processes": 1},
    }
    assert stack_memory(999, tmp_path)["processes"] == 0


def test_the_sampler_keeps_the_largest_reading(tmp_path, monkeypatch):
    readings = iter([{"rss_mib": 100}, {"rss_mib": 300}, {"rss_mib": 200}])
    monkeypatch.setattr(memory, "stack_memory", lambda root: next(readings))
    sampler = MemorySampler(100, period_s=60)
    for _ in range(3):
        sampler.sample()
    assert sampler.result() == {"rss_mib": 300, "samples": 3, "target_mib": 4096}


def test_the_launcher_is_found_by_its_command_line(tmp_path):
    assert memory.launcher_pid(fake_stack(tmp_path / "with")) == 100
    without = tmp_path / "without"
    without.mkdir()
    _process(without, 7, 1, ["python", "-m", "stack.upgrade"], 1, 1)
    assert memory.launcher_pid(without) is None
