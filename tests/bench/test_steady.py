"""bench/steady.py: windows, spreads and what the machine did meanwhile (no Kafka, no Spark; /proc as files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import steady
from bench.steady import CpuTimes, read_cpu_line, spread, steady_figure, usage_between, window_rates


def test_spread_is_the_range_over_the_median():
    assert spread([100, 110, 90]) == 0.2
    assert spread([5, 5, 5]) == 0.0
    assert spread([42]) is None  # one window has no spread
    assert spread([0, 0, 0]) is None


def test_a_figure_is_the_median_of_its_windows_and_is_flagged_past_15_percent():
    steady_one = steady_figure([1000, 1100, 1050])
    assert steady_one == {
        "value": 1050,
        "windows": [1000, 1100, 1050],
        "spread": 0.095,
        "unstable": False,
        "unit": "msg/s",
    }
    shaky = steady_figure([1000, 1300, 1100])
    assert shaky["value"] == 1100 and shaky["spread"] == 0.273 and shaky["unstable"] is True
    assert steady_figure([500])["unstable"] is True  # a single window proves no stability
    with pytest.raises(ValueError):
        steady_figure([])


def test_window_rates_split_the_run_between_first_output_and_the_final_count():
    # nothing for 2 s (start-up), then 100 records/s for 4 s, then 300/s for 2 s, then the count stays
    samples = [(0.0, 0), (1.0, 0), (2.0, 0)]
    samples += [(2.0 + t, 100 * t) for t in range(1, 5)]
    samples += [(6.0 + t, 400 + 300 * t) for t in range(1, 3)]
    samples += [(9.0, 1000), (10.0, 1000)]
    # the first sample with output is at 3 s (100 records): the windows cover 3 s → 8 s
    assert window_rates(samples, 1) == [pytest.approx(900 / 5)]
    rates = window_rates(samples, 5)
    assert rates == [pytest.approx(r) for r in (100, 100, 100, 300, 300)]


def test_window_edges_between_samples_are_interpolated():
    samples = [(0.0, 10), (1.0, 20), (3.0, 60)]  # 10/s, then 20/s over two seconds
    # windows of 1.5 s: the count at 1.5 s is 30 (half-way from 20 to 40 on the 20/s stretch)
    assert window_rates(samples, 2) == [pytest.approx(20 / 1.5), pytest.approx(30 / 1.5)]


def test_window_rates_refuse_a_run_too_short_to_measure():
    with pytest.raises(ValueError, match="too short"):
        window_rates([(0.0, 0), (1.0, 500)], 3)
    with pytest.raises(ValueError, match="too short"):
        window_rates([(0.0, 500), (1.0, 500)], 3)
    with pytest.raises(ValueError):
        window_rates([(0.0, 1), (1.0, 2)], 0)


def test_the_cpu_line_counts_busy_idle_and_steal_apart():
    text = "cpu  100 20 30 400 50 6 7 80 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n"
    assert read_cpu_line(text) == (100 + 20 + 30 + 6 + 7, 400 + 50, 80)
    assert read_cpu_line("cpu  1 2 3 4\n") == (6, 4, 0)  # an old kernel's shorter line
    with pytest.raises(ValueError):
        read_cpu_line("intr 1\n")


def test_usage_separates_the_bench_from_everything_else():
    # 2 cores over one second = 200 jiffies: 150 busy, of which the bench's tree 100, and 10 stolen
    a = CpuTimes(at=0.0, busy=1000, idle=500, steal=0, tree=300)
    b = CpuTimes(at=1.0, busy=1150, idle=540, steal=10, tree=400)
    usage = usage_between(a, b, cores=2)
    assert usage == {"seconds": 1.0, "busy": 1.5, "ours": 1.0, "foreign": 0.5, "steal": 0.1}
    assert steady._warning(usage) == "other processes used 0.50 cores; the hypervisor stole 0.10 cores"
    quiet = usage_between(a, CpuTimes(1.0, 1100, 600, 0, 400), cores=2)
    assert quiet["foreign"] == 0.0 and steady._warning(quiet) is None


def _fake_proc(root: Path, table: dict[int, tuple[int, int, int, str]]) -> Path:
    """/proc with `pid → (parent, utime, stime, comm)` stat files (comm may hold spaces and parentheses)."""
    for pid, (parent, utime, stime, comm) in table.items():
        (root / str(pid)).mkdir()
        fields = ["S", str(parent)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 10
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    (root / "self").mkdir()
    return root


def test_the_process_tree_is_the_root_and_everything_below_it(tmp_path):
    proc = _fake_proc(
        tmp_path,
        {
            1: (0, 5, 5, "init"),
            10: (1, 100, 50, "python"),
            11: (10, 30, 20, "java (spark) x"),
            12: (11, 1, 1, "child"),
            20: (1, 999, 999, "someone else"),
        },
    )
    assert steady.process_tree(10, proc) == {10: (1, 150), 11: (10, 50), 12: (11, 2)}
    assert steady.process_tree(99, proc) == {}


def test_the_monitor_reports_a_part_with_its_usage(monkeypatch):
    readings = iter([CpuTimes(0.0, 0, 0, 0, 0), CpuTimes(1.0, 150, 50, 0, 50), CpuTimes(2.0, 250, 150, 0, 150)])
    monkeypatch.setattr(steady, "cpu_times", lambda root=None: next(readings))
    monkeypatch.setattr(steady, "load_average", lambda: [3.5, 2.0, 1.0])
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monitor = steady.MachineMonitor()
    assert monitor.mark("first") is None
    first = monitor.mark("second")
    assert first["busy"] == 1.5 and first["ours"] == 0.5 and first["foreign"] == 1.0
    assert first["warning"] == "other processes used 1.00 cores" and first["load_average_max"] == 3.5
    monitor.stop()
    assert set(monitor.parts) == {"first", "second"} and monitor.parts["second"]["warning"] is None
