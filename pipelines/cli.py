"""Command-line pieces of the batch jobs over the warehouse (`make stats`, `make sql`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from config import settings


def at_least_one(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="where the warehouse lives (default: CHAT_DATA_DIR or var/)")


def data_dir(args: argparse.Namespace) -> Path:
    """The job's data directory: --data-dir, else CHAT_DATA_DIR."""
    return (args.data_dir or settings.load().data_dir).resolve()
