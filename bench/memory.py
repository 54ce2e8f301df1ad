"""The whole chat's memory: the RSS of every process `make up` starts (broker, Spark, API, UI), summed.

    python -m bench.memory [--pid PID]      # PID of `python -m stack.up` (default: the one running)

`stack_memory(pid)` reads /proc for the launcher and every process below it:
`rss_mib` is the sum of their resident sets (pages two processes share, such
as gunicorn's preloaded code, count once per process, so it errs high), and
`pss_mib` the proportional set size, which splits shared pages between their
processes (the better estimate of what the stack takes from the machine).
`MemorySampler` samples it in a thread while the bench loads the stack and keeps
the largest reading: `stack_rss_mib`, whose target is under 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from bench.steady import process_tree

PROC = Path("/proc")
TARGET_MIB = 4096

# what a process of the stack is, from its command line (first match wins)
ROLES = (
    ("kafka.Kafka", "kafka broker"),
    ("pipelines.streams", "streams (Python driver)"),
    ("org.apache.spark", "streams (Spark JVM)"),
    ("gunicorn", "api (gunicorn)"),
    ("ui.app", "ui (uvicorn)"),
    ("stack.up", "launcher"),
)


def role(cmdline: str) -> str:
    return next((name for needle, name in ROLES if needle in cmdline), "other")


def _kib(text: str, field: str) -> int:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def process_memory(pid: int, proc: Path = PROC) -> dict | None:
    """{"pid", "role", "rss_kib", "pss_kib"} of one process; None when it is gone."""
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        rss = _kib((proc / str(pid) / "status").read_text(), "VmRSS")
        try:
            pss = _kib((proc / str(pid) / "smaps_rollup").read_text(), "Pss")
        except OSError:
            pss = rss
    except OSError:
        return None
    return {"pid": pid, "role": role(cmdline), "rss_kib": rss, "pss_kib": pss}


def stack_memory(root: int, proc: Path = PROC) -> dict:
    """`{"rss_mib", "pss_mib", "processes", "by_role": {role: {"rss_mib", "pss_mib", "processes"}}}` of `root`
    (the launcher) and every process below it."""
    found = [m for pid in process_tree(root, proc) if (m := process_memory(pid, proc)) is not None]
    by_role: dict[str, dict] = {}
    for m in found:
        r = by_role.setdefault(m["role"], {"rss_mib": 0.0, "pss_mib": 0.0, "processes": 0})
        r["rss_mib"] += m["rss_kib"] / 1024
        r["pss_mib"] += m["pss_kib"] / 1024
        r["processes"] += 1
    return {
        "rss_mib": round(sum(m["rss_kib"] for m in found) / 1024),
        "pss_mib": round(sum(m["pss_kib"] for m in found) / 1024),
        "processes": len(found),
        "by_role": {
            k: {"rss_mib": round(v["rss_mib"]), "pss_mib": round(v["pss_mib"]), "processes": v["processes"]}
            for k, v in sorted(by_role.items())
        },
    }


class MemorySampler:
    """Samples `stack_memory(root)` every `period_s` in a thread; `largest` is the reading with the largest RSS."""

    def __init__(self, root: int, period_s: float = 5.0):
        self.root = root
        self.period_s = period_s
        self.largest: dict | None = None
        self.samples = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-memory", daemon=True)

    def sample(self) -> dict:
        reading = stack_memory(self.root)
        self.samples += 1
        if self.largest is None or reading["rss_mib"] > self.largest["rss_mib"]:
            self.largest = reading
        return reading

    def _run(self) -> None:
        while not self._halt.wait(self.period_s):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join(self.period_s + 1)
        self.sample()

    def result(self) -> dict:
        """The largest reading, with `samples` and the target."""
        return {**(self.largest or {}), "samples": self.samples, "target_mib": TARGET_MIB}


def launcher_pid(proc: Path = PROC) -> int | None:
    """The pid of a running `python -m stack.up`, if there is one."""
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"-m" in argv and b"stack.up" in argv:
                return int(entry.name)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, help="the launcher's pid (default: the running `python -m stack.up`)")
    args = parser.parse_args(argv)
    pid = args.pid or launcher_pid()
    if pid is None:
        print("memory: no `python -m stack.up` is running (make up)", file=sys.stderr)
        return 1
    result = stack_memory(pid)
    print(
        f"stack memory: RSS {result['rss_mib']:,} MiB, PSS {result['pss_mib']:,} MiB in {result['processes']} processes"
    )
    print(json.dumps({"bench": "memory", **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
