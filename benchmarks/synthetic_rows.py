"""Benchmark and CLI: synthetic rows generated server-side, rows/s for narrow rows (target >= 200,000/s).

Generates ``--rows`` rows (default 1,000,000) into ``synthetic_books`` (or ``--table wide|docs``)
exactly as the ``synthetic_data`` module does (``plugins/module_utils/_workload_synthetic.py``: INSERT ...
SELECT generate_series, one COMMIT per ``--chunk-size`` rows), with a progress bar, and prints
the rate. As a benchmark it also times the floor of the method, the same number of ids into a
table with only a bigint primary key, and prints both ratios: rows/s over the 200,000 rows/s
target, and the synthetic rate over the floor (how much the realistic values cost).

Without ``--dsn``/``--service`` a throwaway server is started with the test harness
(``tests/integration/pg_harness.py``; ``fsync=off`` like every harness server, so the numbers are
CPU bound) and destroyed afterwards. With ``--service publisher`` (the lab's
``.lab/pg_service.conf`` and ``.lab/pgpass``) or ``--dsn`` it FILLS THAT SERVER: the rows are
appended after the highest id (``--truncate`` empties the table first) and replicate wherever the
table is published; the floor is not measured there.

Usage::

    .venv/bin/python benchmarks/synthetic_rows.py [--major 15] [--rows 1000000] [--chunk-size 50000]
    .venv/bin/python benchmarks/synthetic_rows.py --service publisher --rows 5000000 [--table books]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_synthetic as synthetic  # noqa: E402

SCHEMA = ROOT / "roles" / "publisher" / "files" / "schema" / "synthetic.sql"
TARGET = 200_000
BAR = 40


def progress_bar(done: int, total: int, elapsed: float) -> None:
    filled = int(BAR * done / total) if total else BAR
    line = synthetic.progress_line(done, total, elapsed)
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {line}   ")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def fill(conn, kind: str, rows: int, chunk: int, truncate: bool, doc_bytes: int) -> dict:
    table = synthetic.TABLES[kind]
    if truncate:
        conn.execute(f"TRUNCATE {table}")
    first = conn.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]  # noqa: S608
    return synthetic.generate(conn, kind, first, rows, chunk, doc_bytes=doc_bytes, progress=progress_bar)


def floor_rate(conn, rows: int, chunk: int) -> float:
    """Rows/s of the bare method: ids only, same chunks, same commits."""
    conn.execute("DROP TABLE IF EXISTS bench_floor")
    conn.execute("CREATE TABLE bench_floor (id bigint PRIMARY KEY)")
    start = time.monotonic()
    for first, last in synthetic.chunks(1, rows, chunk):
        with conn.transaction():
            conn.execute(
                "INSERT INTO bench_floor SELECT g FROM generate_series(%s::bigint, %s::bigint) g", [first, last]
            )
    seconds = time.monotonic() - start
    conn.execute("DROP TABLE bench_floor")
    return rows / seconds


def report(kind: str, result: dict, floor: float | None) -> None:
    rate = result["rows_per_second"]
    print(
        f"synthetic_{kind}: {result['rows']} rows in {result['seconds']:.2f} s = {rate:,.0f} rows/s "
        f"({result['chunks']} chunks)"
    )
    if kind == "books":
        verdict = "meets" if rate >= TARGET else "MISSES"
        print(f"ratio to the {TARGET:,} rows/s target: {rate / TARGET:.2f} ({verdict} it)")
    if floor:
        print(f"floor (ids only, bigint primary key): {floor:,.0f} rows/s; synthetic/floor = {rate / floor:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    parser.add_argument("--table", choices=list(synthetic.TABLES), default="books")
    parser.add_argument("--doc-bytes", type=int, default=synthetic.DEFAULT_DOC_BYTES)
    parser.add_argument("--major", type=int, default=15, help="major of the throwaway server")
    parser.add_argument("--dsn", help="fill this server instead of a throwaway one")
    parser.add_argument("--service", help="fill this lab node (section of .lab/pg_service.conf)")
    parser.add_argument("--truncate", action="store_true", help="empty the table first")
    args = parser.parse_args()

    if args.dsn or args.service:
        if args.service:
            os.environ.setdefault("PGSERVICEFILE", str(ROOT / ".lab" / "pg_service.conf"))
            os.environ.setdefault("PGPASSFILE", str(ROOT / ".lab" / "pgpass"))
        with psycopg.connect(args.dsn or f"service={args.service}", autocommit=True) as conn:
            conn.execute(SCHEMA.read_text())
            report(args.table, fill(conn, args.table, args.rows, args.chunk_size, args.truncate, args.doc_bytes), None)
        return 0

    from pg_harness import PgHarness

    harness = PgHarness([args.major])
    try:
        server = harness.new_server(args.major)
        database = server.create_database("synthetic_bench")
        print(f"throwaway PostgreSQL {server.version} on 127.0.0.1:{server.port} (fsync=off)")
        with database.connect() as conn:
            conn.execute(SCHEMA.read_text())
            floor = floor_rate(conn, args.rows, args.chunk_size)
            result = fill(conn, args.table, args.rows, args.chunk_size, True, args.doc_bytes)
        report(args.table, result, floor)
    finally:
        harness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
