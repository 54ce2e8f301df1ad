"""pipelines/cli.py: the arguments the batch jobs share, refused before Spark starts."""

from __future__ import annotations

import argparse

import pytest

from pipelines import cli, sql, user_stats


def test_data_dir_is_the_option_else_chat_data_dir(monkeypatch, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_data_dir(parser)
    monkeypatch.setenv("CHAT_DATA_DIR", str(tmp_path / "from-env"))
    assert cli.data_dir(parser.parse_args([])) == tmp_path / "from-env"
    assert cli.data_dir(parser.parse_args(["--data-dir", str(tmp_path / "given")])) == tmp_path / "given"


@pytest.mark.parametrize(
    "main, argv, error",
    [
        (sql.main, ["--max-rows", "0"], "argument --max-rows: must be at least 1"),
        (sql.main, ["--max-rows", "many"], "argument --max-rows: 'many' is not a whole number"),
        (user_stats.main, ["--top", "-3"], "argument --top: must be at least 1"),
    ],
)
def test_a_count_below_one_is_refused(main, argv, error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err
