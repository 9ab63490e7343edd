"""Benchmark: latency of one health collection round, persistent connection vs a new connection each time.

One round is what ``plugins/module_utils/health.py`` runs for the ``replication_info`` module
(``collect()`` with every subset: server, publications, slots, senders, subscriptions and the
checks) and, separately, the sampler's round (server, slots, senders, subscriptions; no
``pg_file_settings``, no publications, no checks). Each is timed

* on ONE persistent connection (psycopg prepares the statements after a few rounds), and
* with a NEW connection per round (connect over TCP with SCRAM, collect, close),

first on an idle server, then while pgbench runs against the same server. Medians, 90th
percentiles and the ratios are printed (compare ratios from one run, not absolute numbers:
``docs/measurements.md``: measured ~2.5 ms idle / ~3 ms loaded persistent and ~6-10 ms with a new
connection for 5 catalog queries).

Without ``--dsn`` a throwaway PostgreSQL server is started with the test harness
(``tests/integration/pg_harness.py``) and given something to report: pgbench tables in database
``bench``, a publication of them and, in database ``bench_sub`` of the same server, a
subscription to it (so there are a slot, a WAL sender, an apply worker and replicated load). With
``--dsn`` the given server is only read (pgbench must then be initialised there by you, or use
``--no-load``).

Usage::

    .venv/bin/python benchmarks/health_round.py [--major 15] [--rounds 200] [--dsn DSN] [--no-load]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import health  # noqa: E402

PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
SAMPLER_SUBSETS = ("server", "slots", "senders", "subscriptions")


def full_round(conn, major):
    return health.collect(conn, major)


def sampler_round(conn, major):
    return health.collect(conn, major, gather=SAMPLER_SUBSETS, pending=False, conninfo=False)


ROUNDS = {"full": full_round, "sampler": sampler_round}


def time_persistent(dsn, round_fn, rounds, warmup=10):
    with psycopg.connect(dsn, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        for _warmup_round in range(warmup):
            round_fn(conn, major)
        samples = []
        for _round in range(rounds):
            start = time.perf_counter()
            round_fn(conn, major)
            samples.append(time.perf_counter() - start)
    return samples


def time_new_connection(dsn, round_fn, rounds, warmup=3):
    samples = []
    for index in range(rounds + warmup):
        start = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as conn:
            round_fn(conn, conn.info.server_version // 10000)
        if index >= warmup:
            samples.append(time.perf_counter() - start)
    return samples


def summary(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.9) - 1] * 1000


def measure(dsn, rounds):
    """``{(round, mode): (median_ms, p90_ms)}`` for every round kind and connection mode."""
    results = {}
    for name, round_fn in ROUNDS.items():
        results[(name, "persistent")] = summary(time_persistent(dsn, round_fn, rounds))
        results[(name, "new connection")] = summary(time_new_connection(dsn, round_fn, max(20, rounds // 4)))
    return results


# ----------------------------------------------------------------------------------------------
# A server with something to report
# ----------------------------------------------------------------------------------------------


def set_up(server):
    """pgbench tables published in ``bench`` and subscribed from ``bench_sub`` (same server)."""
    server.execute("CREATE DATABASE bench")
    server.execute("CREATE DATABASE bench_sub")
    subprocess.run([PGBENCH, "-i", "-q", "-s", "1", server.conninfo("bench")], check=True, capture_output=True)
    with server.connect("bench") as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'pgbench%'")]
        conn.execute(
            sql.SQL("CREATE PUBLICATION bench_pub FOR TABLE {}").format(sql.SQL(", ").join(map(sql.Identifier, tables)))
        )
        # A subscription to the same server cannot create its slot itself (it would wait for itself).
        conn.execute("SELECT pg_create_logical_replication_slot('bench_sub', 'pgoutput')")
    with server.connect("bench_sub") as sub, server.connect("bench") as pub:
        for table in tables:
            columns = pub.execute(
                "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', '"
                " ORDER BY attnum) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped",
                [table],
            ).fetchone()[0]
            sub.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(columns)))
        sub.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION bench_sub CONNECTION {} PUBLICATION bench_pub"
                " WITH (create_slot = false, slot_name = 'bench_sub')"
            ).format(sql.Literal(server.conninfo("bench")))
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pending = server.scalar("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'", dbname="bench_sub")
        if pending == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("the benchmark subscription did not finish its initial sync in 120 s")


@contextlib.contextmanager
def pgbench_load(dsn, clients=2, seconds=600):
    """pgbench (TPC-B like) running against ``dsn`` until the block ends; yields a dict filled with its TPS."""
    proc = subprocess.Popen(
        [PGBENCH, "-n", "-c", str(clients), "-j", "1", "-T", str(seconds), "-P", "1", dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stats = {}
    try:
        time.sleep(2)  # let it reach a steady state
        if proc.poll() is not None:
            raise RuntimeError(f"pgbench exited early: {proc.stderr.read()}")
        yield stats
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
        tps = [float(line.split("tps")[0].split(",")[-1]) for line in err.splitlines() if " tps" in line]
        stats["tps"] = statistics.median(tps) if tps else None


def report(label, results, idle=None):
    print(f"\n{label}")
    print(f"  {'round':<8} {'connection':<15} {'median ms':>10} {'p90 ms':>9} {'vs persistent':>14} {'vs idle':>8}")
    for (name, mode), (median, p90) in results.items():
        base = results[(name, "persistent")][0]
        ratio = f"{median / base:.2f}x"
        versus_idle = f"{median / idle[(name, mode)][0]:.2f}x" if idle else ""
        print(f"  {name:<8} {mode:<15} {median:>10.2f} {p90:>9.2f} {ratio:>14} {versus_idle:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", help="libpq connection string of an existing server (read only)")
    parser.add_argument("--major", type=int, default=15, help="major of the throwaway server (default 15)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per measurement on the persistent connection")
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients for the loaded measurement")
    parser.add_argument("--no-load", action="store_true", help="skip the measurement under pgbench load")
    args = parser.parse_args()

    harness = None
    try:
        if args.dsn:
            targets, load_dsn = {"given database": args.dsn}, args.dsn
        else:
            from pg_harness import PgHarness, install_sigterm_handler

            install_sigterm_handler()  # an interrupted run still removes its server
            harness = PgHarness([args.major])
            server = harness.new_server(args.major, name=f"bench{args.major}")
            set_up(server)
            targets = {
                "publisher database": server.conninfo("bench"),
                "subscriber database": server.conninfo("bench_sub"),
            }
            load_dsn = server.conninfo("bench")
        print("full = replication_info's round (all subsets + checks); sampler = server, slots, senders, subscriptions")
        for label, dsn in targets.items():
            with psycopg.connect(dsn, autocommit=True) as conn:
                facts = health.collect(conn, conn.info.server_version // 10000)
            print(
                f"{label}: PostgreSQL {facts['server']['version']} ({os.cpu_count()} CPUs); one round reads "
                f"{len(facts['publications'])} publication(s), {len(facts['slots'])} slot(s), "
                f"{len(facts['senders'])} sender(s), {len(facts['subscriptions'])} subscription(s), "
                f"{len(facts['checks'])} finding(s)"
            )
        idle = {label: measure(dsn, args.rounds) for label, dsn in targets.items()}
        for label in targets:
            report(f"{label}, idle", idle[label])
        if not args.no_load:
            with pgbench_load(load_dsn, clients=args.clients) as load:
                loaded = {label: measure(dsn, args.rounds) for label, dsn in targets.items()}
            for label in targets:
                report(
                    f"{label}, under load (pgbench -c {args.clients}, median {load.get('tps') or 0:.0f} tps)",
                    loaded[label],
                    idle[label],
                )
    finally:
        if harness is not None:
            harness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
