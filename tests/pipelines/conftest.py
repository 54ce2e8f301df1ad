"""Fixtures of the Spark jobs' tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.pipelines import stats_data


@pytest.fixture(scope="session")
def stats_data_dir(spark, tmp_path_factory) -> Path:
    """A data directory whose warehouse holds the hand-computed dataset (tests/pipelines/stats_data.py)."""
    return stats_data.build_warehouse(spark, tmp_path_factory.mktemp("stats-data"))


def spark_env() -> dict[str, str]:
    """The environment of a spark-submit or `python -m pipelines.…` child process."""
    venv_bin = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=venv_bin + os.pathsep + os.environ.get("PATH", ""),
        PYSPARK_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
    )
