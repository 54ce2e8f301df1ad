"""bench/run.py's summary: ratios, targets, unstable figures, and the hooks to other modules' figures."""

from __future__ import annotations

import sys

import pytest

from bench import run
from bench.run import Hook, derived, run_hooks, target_rows, unstable_figures
from bench.steady import steady_figure


def test_bench_summary_ratios_and_targets():
    results = {
        "relay_msgs_per_s": 30_000,
        "relay_vs_floor": 0.6,
        "baseline_msgs_per_s": 3_000,
        "broker_limit_msgs_per_s": 60_000,
        "e2e_latency_ms": {"p50": 20, "p99": 45},
        "block_latency_ms": {"p50": 4000, "p99": 6000},
        "stats_seconds": {"1000000": 40.0, "10000000": 150.0, "ratio": 3.75},
        "api_posts_per_s": 600,
        "stack_rss_mib": 3500,
    }
    flat = derived(results)
    assert flat["relay_vs_baseline"] == 10.0 and flat["relay_vs_broker_limit"] == 0.5
    rows = {r["figure"]: r for r in target_rows(flat)}
    assert rows["relay_msgs_per_s"]["met"] is False and rows["relay_msgs_per_s"]["vs_target"] == 0.3
    assert rows["relay_vs_baseline"]["met"] and rows["relay_vs_broker_limit"]["met"]
    assert rows["relay_vs_floor"]["met"] is False and rows["relay_vs_floor"]["vs_target"] == 0.8
    assert rows["e2e_latency_p99_ms"]["met"] and not rows["block_latency_p99_ms"]["met"]
    assert rows["block_latency_p99_ms"]["vs_target"] == 0.5  # 3 s target / 6 s measured
    assert not rows["stats_10m_seconds"]["met"] and rows["stats_scaling_1m_to_10m"]["met"]
    assert rows["stack_rss_mib"]["met"]
    assert not {r["figure"]: r for r in target_rows(derived({**results, "stack_rss_mib": 5000}))}["stack_rss_mib"][
        "met"
    ]
    assert target_rows({})[0]["met"] is None  # a part that did not run is "n/a", not a pass


def test_unstable_figures_name_every_figure_whose_windows_spread_too_much():
    shaky, firm = steady_figure([100, 140, 120]), steady_figure([100, 101, 102])
    results = {
        "baseline": firm,
        "broker_limit": shaky,
        "relay_realtime": {"relay": firm, "floor": shaky},
        "relay_microbatch": {"relay": shaky, "floor": firm},
        "relay_cluster": {"1p": {"relay": firm, "floor": firm}, "2p": {"relay": shaky, "floor": firm}},
    }
    assert unstable_figures(results) == [
        "broker_limit",
        "relay_cluster.2p.relay",
        "relay_microbatch.relay",
        "relay_realtime.floor",
    ]
    assert unstable_figures({}) == []


@pytest.fixture
def hook_module(tmp_path, monkeypatch):
    (tmp_path / "bench_hook_for_tests.py").write_text(
        "def figures(context):\n"
        "    return {'capacity': {'100': context['readers'] * 2}}\n"
        "def broken(context):\n"
        "    raise RuntimeError('the API did not answer')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "bench_hook_for_tests"
    sys.modules.pop("bench_hook_for_tests", None)


def test_hooks_add_their_figures_or_say_why_they_could_not(hook_module, monkeypatch):
    def call(name):
        return lambda module, context: getattr(module, name)(context)

    monkeypatch.setattr(
        run,
        "HOOKS",
        [
            Hook("stack", hook_module, "figures", "capacity", call("figures")),
            Hook("stack", hook_module, "broken", "something that fails", call("broken")),
            Hook("stack", hook_module, "absent", "a function not written yet", call("absent")),
            Hook("stack", "bench.no_such_module", "figures", "a module not merged yet", call("figures")),
            Hook("pipelines", hook_module, "figures", "another part's hook", call("figures")),
        ],
    )
    results: dict = {"hooks": {}, "errors": {}}
    run_hooks("stack", {"readers": 50}, results)

    assert results["capacity"] == {"100": 100}
    assert results["hooks"] == {
        f"{hook_module}.figures": "measured: capacity",
        f"{hook_module}.broken": "failed: RuntimeError('the API did not answer')",
        f"{hook_module}.absent": "not on this branch: a function not written yet not measured",
        "bench.no_such_module.figures": "not on this branch: a module not merged yet not measured",
    }
    assert "the API did not answer" in results["errors"][f"{hook_module}.broken"]


def test_the_api_hook_reads_the_worker_comparison_and_wrk():
    class FakeApiLoad:
        def api_workers_compared(self, bootstrap, work, seconds):
            return {
                "gthread_1": {"posts_per_s": 900.0, "workers": 1},
                "uvicorn_1": {"posts_per_s": 1500.0, "workers": 1},
                "uvicorn_2": {"posts_per_s": 2400.0, "workers": 2},
                "workers_2_vs_1": 1.6,
            }

        def wrk_posts_per_s(self, url, seconds):
            return {"requests_per_s": 1450.5, "non_2xx": 0}

    stack = type("Stack", (), {"kafka_bootstrap": "127.0.0.1:1", "api_url": "http://127.0.0.1:2"})()
    figures = run._api_figures(FakeApiLoad(), run.StackContext(stack, run.RESULTS_DIR, quick=True))
    assert figures["api_posts_per_s_by_workers"] == {"1": 1500.0, "2": 2400.0}
    assert figures["api_posts_per_s"] == 1500.0 and figures["api_wrk_requests_per_s"] == 1450.5


def test_the_table_prints_every_throughput_figure_with_its_spread_and_flags_the_unstable(capsys):
    shaky, firm = steady_figure([100, 140, 120]), steady_figure([1000, 1010, 1020])
    relay = {"relay": firm, "floor": shaky, "relay_vs_floor": {"value": 8.33}}
    results = {
        "baseline": firm,
        "relay_realtime": relay,
        "relay_default_trigger": "realtime",
        "relay_cluster": {
            "1p": {"relay": firm, "floor": firm},
            "2p": {"relay": firm, "floor": firm},
            "relay_2p_vs_1p": 1.0,
            "floor_2p_vs_1p": 1.0,
        },
        "machine_load": {"stack": {"warning": "other processes used 0.80 cores", "load_average_max": 3.1}},
    }
    run.print_table(results, target_rows(derived(results)))
    out = capsys.readouterr().out
    floor = next(line for line in out.splitlines() if "floor realtime (default)" in line)
    assert "100 / 140 / 120" in floor and "33% UNSTABLE" in floor
    base = next(line for line in out.splitlines() if line.lstrip("│ ").startswith("baseline"))
    assert "2%" in base and "UNSTABLE" not in base
    assert any("relay ÷ floor 8.33" in line for line in out.splitlines())
    assert sum("cluster relay" in line for line in out.splitlines()) == 2
    assert "WARNING during stack: other processes used 0.80 cores (load average up to 3.1)" in out
