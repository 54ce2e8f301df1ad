"""Steady-state throughput: a rate measured in windows, their spread, and what else used the machine meanwhile.

A throughput figure of `make bench` is the median of at least three measured
windows taken after a warm-up pass on the same JVM; its `spread` is
(max − min) / median of the windows, and a figure whose spread exceeds
SPREAD_LIMIT is flagged `unstable`. `OutputCounter` samples how many records a
topic holds (the end offsets, through one open consumer) and `window_rates`
turns the samples into rates. `MachineMonitor` reads /proc: the load average,
CPU steal, and how much CPU went to processes outside the bench's own tree
(`foreign_cores`), so a figure taken while something else ran says so.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SPREAD_LIMIT = 0.15
# foreign CPU (in cores) above which a part is reported as measured on a busy machine
FOREIGN_CORES_LIMIT = 0.15


def spread(values: Sequence[float]) -> float | None:
    """(max − min) / median of `values`, rounded to 3 places; None for fewer than two values or a median of 0."""
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    if middle == 0:
        return None
    return round((max(values) - min(values)) / middle, 3)


def steady_figure(rates: Sequence[float], unit: str = "msg/s") -> dict:
    """The figure of a set of window rates: `{"value" (median), "windows", "spread", "unstable", "unit"}`."""
    if len(rates) < 1:
        raise ValueError("no window to make a figure of")
    s = spread(rates)
    return {
        "value": round(statistics.median(rates)),
        "windows": [round(r) for r in rates],
        "spread": s,
        "unstable": s is None or s > SPREAD_LIMIT,
        "unit": unit,
    }


def window_rates(samples: Sequence[tuple[float, int]], windows: int) -> list[float]:
    """Rates (records per second) in `windows` equal time windows between the first sample that saw
    output and the first that saw the final count. `samples` are (time, records so far), in time order.

    A window's count is interpolated linearly between the samples around its edges, so a sampling
    period that does not divide the run evenly does not bias one window."""
    if windows < 1:
        raise ValueError("windows must be >= 1")
    moving = [(t, n) for t, n in samples if n > 0]
    if len(moving) < 2:
        raise ValueError("fewer than two samples with output: the run was too short to measure")
    final = moving[-1][1]
    end = next(i for i, (_, n) in enumerate(moving) if n == final)
    points = moving[: end + 1]
    start_t, stop_t = points[0][0], points[-1][0]
    if stop_t <= start_t:
        raise ValueError("all the output came in one sample: the run was too short to measure")

    def count_at(t: float) -> float:
        for (t0, n0), (t1, n1) in zip(points, points[1:]):
            if t0 <= t <= t1:
                return n0 + (n1 - n0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
        return float(points[-1][1])

    width = (stop_t - start_t) / windows
    edges = [start_t + k * width for k in range(windows)] + [stop_t]
    counts = [count_at(t) for t in edges]
    return [(b - a) / width for a, b in zip(counts, counts[1:])]


class OutputCounter:
    """Samples the number of records in a Kafka topic every `period_s` in a thread of its own, through
    one consumer (a new client per sample would load the cores being measured)."""

    def __init__(self, bootstrap: str, topic: str, period_s: float = 0.1):
        from kafka import KafkaConsumer

        self.topic = topic
        self.period_s = period_s
        self.samples: list[tuple[float, int]] = []
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bench-count-{topic}", daemon=True)
        self.failure: BaseException | None = None

    def count(self) -> int:
        from kafka import TopicPartition

        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        ends = self._consumer.end_offsets([TopicPartition(self.topic, p) for p in partitions])
        begins = self._consumer.beginning_offsets(list(ends))
        return sum(ends[tp] - begins[tp] for tp in ends)

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                self.samples.append((time.monotonic(), self.count()))
                self._halt.wait(self.period_s)
        except BaseException as exc:  # noqa: BLE001 - read by the caller through `latest`
            self.failure = exc

    @property
    def latest(self) -> int:
        if self.failure is not None:
            raise RuntimeError(f"counting {self.topic} failed: {self.failure!r}") from self.failure
        return self.samples[-1][1] if self.samples else 0

    def __enter__(self) -> OutputCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join(10)
        self._consumer.close()


# ---------------------------------------------------------------------------------------------
# The machine


@dataclass(frozen=True)
class CpuTimes:
    """Jiffies from /proc/stat's `cpu` line and of a process tree, at one moment."""

    at: float
    busy: int
    idle: int
    steal: int
    tree: int  # utime + stime of the bench's process tree


def read_cpu_line(text: str) -> tuple[int, int, int]:
    """(busy, idle, steal) jiffies from /proc/stat's text: idle includes iowait; busy excludes steal
    and the guest times (already counted in user and nice)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            values = [int(x) for x in line.split()[1:]]
            values += [0] * (10 - len(values))
            user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
            return user + nice + system + irq + softirq, idle + iowait, steal
    raise ValueError("no cpu line in /proc/stat")


def process_tree(root: int, proc: Path = Path("/proc")) -> dict[int, tuple[int, int]]:
    """pid → (parent pid, utime + stime jiffies) of `root` and every process below it."""
    table: dict[int, tuple[int, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in tree:
            tree[pid] = table[pid]
            todo += children.get(pid, [])
    return tree


def cpu_times(root: int | None = None) -> CpuTimes:
    busy, idle, steal = read_cpu_line(Path("/proc/stat").read_text())
    tree = sum(t for _, t in process_tree(root or os.getpid()).values())
    return CpuTimes(time.monotonic(), busy, idle, steal, tree)


def usage_between(a: CpuTimes, b: CpuTimes, cores: int | None = None) -> dict:
    """What the machine did between two readings, in cores: `busy`, `ours` (the bench's process tree),
    `foreign` (busy − ours: everything else), `steal` (taken by the hypervisor), and `seconds`."""
    cores = cores or os.cpu_count() or 1
    total = (b.busy - a.busy) + (b.idle - a.idle) + (b.steal - a.steal)
    if total <= 0:
        return {"seconds": round(b.at - a.at, 1), "busy": 0.0, "ours": 0.0, "foreign": 0.0, "steal": 0.0}
    per_core = total / cores  # jiffies of one core over the interval

    def cores_of(jiffies: int) -> float:
        return round(max(0.0, jiffies / per_core), 2)

    busy, ours = b.busy - a.busy, b.tree - a.tree
    return {
        "seconds": round(b.at - a.at, 1),
        "busy": cores_of(busy),
        "ours": cores_of(min(ours, busy)),
        "foreign": cores_of(busy - ours),
        "steal": cores_of(b.steal - a.steal),
    }


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


@dataclass
class MachineMonitor:
    """Reads the machine every `period_s` in a thread; `mark(name)` starts a named part of the run, so each
    part gets its own summary (`parts`): load average, busy/ours/foreign/steal cores, and a warning."""

    period_s: float = 5.0
    parts: dict[str, dict] = field(default_factory=dict)
    _current: str | None = None
    _start: CpuTimes | None = None
    _loads: list[float] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, seconds: float = 5.0) -> dict:
        """The machine before the bench starts anything: `seconds` of readings with only this process."""
        a = cpu_times()
        time.sleep(seconds)
        usage = usage_between(a, cpu_times())
        return {"load_average": load_average(), **usage, "warning": _warning(usage)}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-machine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.wait(self.period_s):
            with self._lock:
                if self._current is not None:
                    self._loads.append(load_average()[0])

    def mark(self, name: str | None) -> dict | None:
        """End the current part (returning its summary) and start `name` (None: start nothing)."""
        now = cpu_times()
        with self._lock:
            done = None
            if self._current is not None and self._start is not None:
                usage = usage_between(self._start, now)
                done = {
                    "load_average_max": max(self._loads, default=load_average()[0]),
                    **usage,
                    "warning": _warning(usage),
                }
                self.parts[self._current] = done
            self._current, self._start, self._loads = name, now, []
        return done

    def stop(self) -> None:
        self.mark(None)
        self._halt.set()
        if self._thread is not None:
            self._thread.join(self.period_s + 1)


def _warning(usage: dict) -> str | None:
    notes = []
    if usage["foreign"] > FOREIGN_CORES_LIMIT:
        notes.append(f"other processes used {usage['foreign']:.2f} cores")
    if usage["steal"] > 0.05:
        notes.append(f"the hypervisor stole {usage['steal']:.2f} cores")
    return "; ".join(notes) or None
