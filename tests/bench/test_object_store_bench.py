"""bench/object_store.py at a tiny size against a real broker, S3Proxy and Spark: every figure is there for both lakes,
each lake holds the same messages, and the S3 lake's tables are in the S3 server's bucket, not on local disk."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys

import pytest

from bench.object_store import BATCH_PARTS, BUCKET, VARIANTS
from config.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

# the smallest run that exercises every part (the figures' spread needs the defaults' repetitions, not a test)
MESSAGES, WARMUP, REPS = 20, 0, 1


def check_figure(figure: dict) -> None:
    for variant in VARIANTS:
        f = figure[variant]
        assert len(f["runs_s"]) == REPS, f
        assert all(r > 0 for r in f["runs_s"]), f
        assert f["min_s"] == min(f["runs_s"]) and f["max_s"] == max(f["runs_s"]), f
        assert f["median_s"] == round(statistics.median(f["runs_s"]), 3), f
    assert figure["ratio_s3_local"] == pytest.approx(figure["s3"]["median_s"] / figure["local"]["median_s"], rel=0.01)
    assert len(figure["pair_ratios"]) == REPS and all(r > 0 for r in figure["pair_ratios"]), figure


# a broker, S3Proxy and Spark for 6 runs: minutes on a busy 2-core machine
@pytest.mark.timeout(1200)
def test_the_bench_measures_both_lakes_on_the_same_data(tmp_path):
    work, out = tmp_path / "work", tmp_path / "result.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAT_")},
        "PYTHONPATH": str(REPO_ROOT),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "CHAT_DATA_DIR": str(tmp_path / "data"),
    }
    argv = [sys.executable, "-m", "bench.object_store", "--messages", str(MESSAGES), "--users", "6"]
    argv += ["--warmup", str(WARMUP), "--reps", str(REPS), "--work", str(work), "--json", str(out)]
    bench = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=1100)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGINT)  # its `finally` stops the broker and S3Proxy it started
        stdout, stderr = bench.communicate(timeout=60)
    done = subprocess.CompletedProcess(argv, bench.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert json.loads(done.stdout.splitlines()[-1]) == result  # the last line is the JSON, the table above it
    assert "statistics job" in done.stdout and "s3/local" in done.stdout

    assert (result["messages_per_batch"], result["warmup"], result["reps"]) == (MESSAGES, WARMUP, REPS)
    assert result["table_records"] == MESSAGES * (WARMUP + REPS)
    assert set(result["ledger_batch"]) == set(BATCH_PARTS)
    for part in BATCH_PARTS:
        check_figure(result["ledger_batch"][part])
    check_figure(result["stats_job"])
    ledger = result["ledger_batch"]
    for variant in VARIANTS:  # a batch is its ledger work and its checkpoint logs (each figure rounded on its own)
        for total, work_s, logs in zip(
            *(ledger[part][variant]["runs_s"] for part in ("batch", "foreach_batch", "checkpoint_logs")), strict=True
        ):
            assert abs(total - work_s - logs) <= 0.002
    # the same data in both lakes: every valid record once (a few demo records are malformed)
    rows = result["messages_rows"]
    assert rows["local"] == rows["s3"] and 0.9 * result["table_records"] < rows["s3"] <= result["table_records"]
    assert result["stats_users"]["local"] == result["stats_users"]["s3"] > 0
    assert len(result["load_before"]) == 3 and 0 <= result["load_during"]["min"] <= result["load_during"]["max"]
    assert result["seconds"] > 0

    # the S3 lake is in S3Proxy's bucket (a folder of its home), its checkpoint too; the local lake on disk
    bucket = work / "s3proxy" / "buckets" / BUCKET
    assert (bucket / "warehouse" / "messages" / "_delta_log").is_dir()
    assert (bucket / "checkpoints" / "ledger" / "commits").is_dir()
    assert (work / "local" / "warehouse" / "messages" / "_delta_log").is_dir()
    assert not (work / "s3" / "warehouse").exists()
