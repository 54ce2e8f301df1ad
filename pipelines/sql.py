r"""`make sql`: a Spark SQL shell with every chat table registered by name in the database `chat`.

    make sql                      # interactive; end a statement with `;`
    make sql Q="SELECT * FROM chat.user_stats ORDER BY strikes DESC LIMIT 5"
    python -m pipelines.sql [-e SQL] [--data-dir DIR] [--max-rows N]

In the shell: `\d` lists the tables, `\d chat.messages` describes one, `\q`
(or Ctrl-D) quits, Ctrl-C drops the statement being typed. Delta time travel
works as in any Spark SQL: `SELECT * FROM chat.user_moderation VERSION AS OF 3`
or `TIMESTAMP AS OF '2026-11-27 10:00:00'`; `DESCRIBE HISTORY chat.messages`
lists the versions. Results go to stdout as an aligned table; status and
errors go to stderr; with -e, a failing statement gives exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, Row, SparkSession

from config import contract
from pipelines import cli
from pipelines.session import get_spark
from pipelines.textable import format_table, printable
from warehouse import paths
from warehouse.tables import register_tables

PROMPT, MORE = "chat> ", "  ... "


def split_statements(text: str) -> tuple[list[str], str]:
    """Complete `;`-terminated statements in `text`, and the unfinished rest (quotes and comments respected)."""
    statements, current, quote, i = [], [], None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            current.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(ch)
        i += 1
    return statements, "".join(current)


def show_value(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        fraction = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        return value.strftime(contract.TIMESTAMP_FORMAT) + fraction
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (int, Decimal, str)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value[:32]).hex() + ("…" if len(value) > 32 else "")
    if isinstance(value, Row):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.asDict().items()) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{show_value(k)}: {show_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    return str(value)


def render(df: DataFrame, max_rows: int) -> str:
    """The first `max_rows` rows as an aligned table, with a line saying how many there were."""
    rows = df.limit(max_rows + 1).collect()
    shown = rows[:max_rows]
    numeric = {
        i
        for i, f in enumerate(df.schema.fields)
        if f.dataType.typeName() in ("byte", "short", "integer", "long", "float", "double", "decimal")
    }
    table = format_table(df.columns, [[show_value(v) for v in r] for r in shown], align_right=numeric)
    more = f"; more not shown (--max-rows {max_rows}, or add a LIMIT)" if len(rows) > max_rows else ""
    return f"{table}\n({len(shown)} row{'s' if len(shown) != 1 else ''}{more})"


def run_statement(spark: SparkSession, statement: str, max_rows: int, out=sys.stdout) -> bool:
    """Run one statement and print its result; False (with the error on stderr) when Spark refuses it."""
    started = time.monotonic()
    try:
        df = spark.sql(statement)
        text = render(df, max_rows) if df.columns else "OK"
    except PySparkException as exc:
        message = str(exc).strip().split("\n")
        # Spark's messages quote the values they choke on: printed without their escape sequences too
        lines = [printable(line) for line in message[:6] if line.strip()]
        print("error: " + "\n       ".join(lines), file=sys.stderr)
        return False
    print(text, file=out)
    print(f"-- {time.monotonic() - started:.2f}s", file=sys.stderr)
    return True


def describe(spark: SparkSession, argument: str, max_rows: int) -> bool:
    if argument:
        return run_statement(spark, f"DESCRIBE TABLE {argument}", max_rows)
    return run_statement(spark, f"SHOW TABLES IN {paths.DATABASE}", max_rows)


def interactive(spark: SparkSession, max_rows: int, history: Path) -> int:
    try:
        import readline

        history.parent.mkdir(parents=True, exist_ok=True)
        if history.exists():
            readline.read_history_file(history)
    except (ImportError, OSError):
        readline = None
    print("End statements with `;`.  \\d lists tables, \\d chat.<table> describes one, \\q quits.", file=sys.stderr)
    pending = ""
    try:
        while True:
            try:
                line = input(MORE if pending.strip() else PROMPT)
            except KeyboardInterrupt:
                print(file=sys.stderr)
                pending = ""
                continue
            except EOFError:
                print(file=sys.stderr)
                break
            command = line.strip()
            if not pending.strip() and command.rstrip(";") in ("\\q", "quit", "exit"):
                break
            if not pending.strip() and command.startswith("\\d"):
                describe(spark, command[2:].strip().rstrip(";"), max_rows)
                continue
            statements, pending = split_statements(pending + line + "\n")
            for statement in statements:
                run_statement(spark, statement, max_rows)
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make sql", description=__doc__.split("\n")[0])
    parser.add_argument("-e", "--execute", metavar="SQL", help="run these statements (`;`-separated) and exit")
    cli.add_data_dir(parser)
    parser.add_argument("--max-rows", type=cli.at_least_one, default=100, help="rows printed per result (default 100)")
    args = parser.parse_args(argv)
    data_dir = cli.data_dir(args)
    statements: list[str] = []
    if args.execute is not None:
        statements, rest = split_statements(args.execute)
        if rest.strip():
            statements.append(rest.strip())
        if not statements:
            parser.error("-e/Q= holds no SQL statement")

    started = time.monotonic()
    print("sql    starting Spark ...", file=sys.stderr, flush=True)
    spark = get_spark("chat-sql")
    spark.sparkContext.setLogLevel("ERROR")
    try:
        tables = register_tables(spark, paths.warehouse_dir(data_dir))
        if tables:
            print(
                f"sql    ready in {time.monotonic() - started:.1f}s; tables: {', '.join(tables)}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"sql    no tables yet under {paths.warehouse_dir(data_dir)}: start the chat (`make up`) "
                "and send some messages first",
                file=sys.stderr,
                flush=True,
            )
        if statements:
            return 0 if all([run_statement(spark, s, args.max_rows) for s in statements]) else 1
        return interactive(spark, args.max_rows, data_dir / "run" / "sql_history")
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
