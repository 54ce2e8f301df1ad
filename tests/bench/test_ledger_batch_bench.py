"""bench/ledger_batch.py at a tiny size against a real broker and Spark: every figure is there for both variants, each
is consistent with its runs, the steps of a batch fit in its time, and each lakehouse holds every valid message."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys

import pytest

from bench.ledger_batch import figure, ledger_at
from config.settings import REPO_ROOT
from pipelines import ledger

MESSAGES, WARMUP, REPS = 20, 1, 2
# a setting variant b runs with: one that changes nothing the bench checks
AB = "spark.databricks.delta.writeChecksumFile.enabled=false"
STEPS = ["validate", "rejected", "moderate", "strikes", "notices", "messages", "strikes-table", "merge", "remember"]


def check_figure(figure: dict) -> None:
    runs = figure["runs_s"]
    assert len(runs) == REPS and all(r > 0 for r in runs), figure
    assert figure["min_s"] == min(runs) and figure["max_s"] == max(runs), figure
    assert figure["min_s"] <= figure["p50_s"] <= figure["p99_s"] <= figure["max_s"], figure
    assert figure["p50_s"] == round(statistics.median(runs), 3), figure


def test_a_figure_of_one_run_and_of_many():
    assert figure([2.0]) == {"p50_s": 2.0, "p99_s": 2.0, "min_s": 2.0, "max_s": 2.0, "runs_s": [2.0]}
    many = figure([float(s) for s in range(1, 102)])  # 1 … 101 s
    assert (many["p50_s"], many["p99_s"], many["min_s"], many["max_s"]) == (51.0, 100.0, 1.0, 101.0)


def test_ledger_at_a_commit_is_that_commits_file_as_a_module_of_its_own():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    module = ledger_at(head.stdout.strip())
    assert module.Ledger is not ledger.Ledger and module.Ledger.__module__ == module.__name__ in sys.modules
    assert callable(module.Ledger.process_batch) and module.Ledger.process_batch is not ledger.Ledger.process_batch
    with pytest.raises(subprocess.CalledProcessError):
        ledger_at("0" * 40)


# a broker and Spark for 6 ledger batches: minutes on a busy 2-core machine
@pytest.mark.integration
@pytest.mark.cluster
@pytest.mark.timeout(900)
def test_the_bench_measures_each_batch_and_its_steps(tmp_path):
    out = tmp_path / "result.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAT_")},
        "PYTHONPATH": str(REPO_ROOT),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "CHAT_DATA_DIR": str(tmp_path / "data"),
    }
    argv = [sys.executable, "-m", "bench.ledger_batch", "--messages", str(MESSAGES), "--users", "6", "--ab", AB]
    argv += ["--warmup", str(WARMUP), "--reps", str(REPS), "--work", str(tmp_path / "work"), "--json", str(out)]
    # a's tables as made before the checkpoints left the ledger's batch; b's checkpointed by the maintenance thread
    argv += ["--a-table-property", "delta.checkpointInterval=10", "--b-checkpoint-interval", "1"]
    bench = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=800)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGINT)  # its `finally` stops the broker it started
        stdout, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 0, stderr[-4000:]
    result = json.loads(out.read_text())
    assert json.loads(stdout.splitlines()[-1]) == result  # the last line is the JSON, the table above it
    assert "batch p50" in stdout

    assert (result["messages_per_batch"], result["warmup"], result["reps"]) == (MESSAGES, WARMUP, REPS)
    assert result["ab_settings"] == dict([AB.split("=")])
    assert result["a_table_properties"] == {"delta.checkpointInterval": "10"}
    assert result["b_checkpoint_interval_s"] == 1
    # the thread checkpointed b's tables (each had commits) while the batches ran, and said how long each took
    assert result["b_checkpoints"], result
    for written in result["b_checkpoints"]:
        assert written["line"].startswith("maintenance: checkpoint ") and written["seconds"] >= 0, written
    # a cold reader of a's tables replays at most 10 commits (0 … 9 before the first checkpoint, at 10, then 9 at
    # most); the figure is there for b
    assert 0 <= result["variants"]["a"]["replayed_commits_max"] <= 10
    assert result["variants"]["b"]["replayed_commits_max"] >= 0
    assert "maintenance thread wrote" in stdout
    assert set(result["variants"]) == {"a", "b"}
    for variant in result["variants"].values():
        check_figure(variant["batch"])
        check_figure(variant["checkpoint_logs"])
        assert len(variant["runs"]) == REPS
        for run in variant["runs"]:
            assert isinstance(run["beside_checkpoint"], bool), run
            # a batch with messages runs every step once, in order, all inside its foreachBatch time
            assert list(run["steps"]) == STEPS, run
            assert all(s >= 0 for s in run["steps"].values()), run
            assert sum(run["steps"].values()) <= run["batch"] + 0.01, run
        assert list(variant["step_median_s"]) == STEPS
        for step in STEPS:
            assert variant["step_median_s"][step] == round(
                statistics.median(r["steps"][step] for r in variant["runs"]), 3
            )
    a, b = (result["variants"][v]["batch"] for v in ("a", "b"))
    assert result["ratio_b_a_p50"] == pytest.approx(b["p50_s"] / a["p50_s"], rel=0.01)
    assert len(result["pair_ratios_b_a"]) == REPS
    # both lakehouses took the same records: every valid one once (a few demo records are malformed)
    rows = result["messages_rows"]
    assert rows["a"] == rows["b"] and 0.8 * result["table_records"] < rows["b"] <= result["table_records"]
    assert len(result["load_before"]) == 3 and 0 <= result["load_during"]["min"] <= result["load_during"]["max"]
    assert result["seconds"] > 0
