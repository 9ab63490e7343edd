"""The workload modules (pgbench, load_generator, synthetic_data) against a throwaway PostgreSQL server.

One major (the lowest selected): the modules issue plain DML and pgbench, nothing version
specific. Each run is short (1-3 s of load) to keep the suite fast; the rates asserted are loose
enough for a busy 2-core machine but would catch a generator that ignores its schedule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.ansible import run_module

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "roles" / "publisher" / "files" / "schema"
DEMO = REPO / "roles" / "publisher" / "files" / "demo.sql"
SELECT_BOOKS = REPO / "roles" / "workload" / "files" / "pgbench" / "books_select.sql"
SEED_BOOKS = 5


@pytest.fixture
def bench_db(pg_harness, pg_majors, pg_database_factory):
    """A fresh database with the lab's demo books and the workload schema files applied."""
    database = pg_database_factory(pg_harness.shared_server(pg_majors[0]), "wl")
    with database.connect() as conn:
        conn.execute(DEMO.read_text())
        for name in ("pgbench.sql", "synthetic.sql"):
            conn.execute((SCHEMA_DIR / name).read_text())
    return database


def seed_rows(database):
    return database.execute("SELECT * FROM books WHERE id <= 5 ORDER BY id")


def test_pgbench_init_run_and_custom_script(bench_db):
    login = bench_db.login_args()
    init = run_module("pgbench", {**login, "mode": "init", "scale": 1})
    assert init["changed"] is True
    assert init["rows"] == 100011
    assert "--init-steps=gv" in init["command"]
    assert bench_db.scalar("SELECT count(*) FROM pgbench_accounts") == 100000
    assert login["login_password"] not in init.output
    again = run_module("pgbench", {**login, "mode": "init", "scale": 1})
    assert again["changed"] is False

    run = run_module("pgbench", {**login, "duration": 3, "rate": 60, "clients": 2, "progress_interval": 1})
    assert run["changed"] is True
    assert 90 <= run["transactions"] <= 240, run["stdout"]
    assert 30 <= run["tps"] <= 80
    assert run["latency_average_ms"] > 0
    assert run["failed_transactions"] == 0
    assert run["schedule_lag_average_ms"] >= 0
    assert len(run["progress"]) >= 2
    assert bench_db.scalar("SELECT count(*) FROM pgbench_history") == run["transactions"]
    assert login["login_password"] not in run.output

    custom = run_module("pgbench", {**login, "duration": 1, "script_text": SELECT_BOOKS.read_text()})
    assert custom["changed"] is False  # a read-only script
    assert custom["transactions"] > 0
    assert "--file=" in " ".join(custom["command"])


def test_pgbench_missing_tables(pg_harness, pg_majors, pg_database_factory):
    database = pg_database_factory(pg_harness.shared_server(pg_majors[0]), "wl")
    result = run_module("pgbench", {**database.login_args(), "mode": "init"}, expect_fail=True)
    assert "do not exist" in result["msg"]


def test_hum_keeps_its_rate_and_its_id_range(bench_db):
    login = bench_db.login_args()
    before = seed_rows(bench_db)
    check = run_module("load_generator", {**login, "rate": 40, "duration": 2}, check=True)
    assert check["operations"] == 80
    assert bench_db.scalar("SELECT count(*) FROM books") == SEED_BOOKS

    hum = run_module("load_generator", {**login, "rate": 40, "duration": 2.5, "report_interval": 1, "seed": 7})
    assert hum["changed"] is True
    assert 85 <= hum["operations"] <= 101
    assert hum["behind"] <= 5
    assert hum["inserts"] + hum["updates"] + hum["deletes"] == hum["operations"]
    assert [w["end_s"] for w in hum["windows"]] == [1.0, 2.0, 2.5]
    assert all(w["target_rate"] == 40 for w in hum["windows"])
    assert seed_rows(bench_db) == before
    in_range = bench_db.scalar("SELECT count(*) FROM books WHERE id >= 1000000000")
    assert in_range == hum["rows_in_range"] == hum["inserts"] - hum["deletes"]
    assert bench_db.scalar("SELECT count(*) FROM books") == SEED_BOOKS + in_range

    pulse = run_module(
        "load_generator",
        {**login, "pattern": "pulse", "rate": 40, "amplitude": 35, "period": 2, "duration": 2, "report_interval": 0.5},
    )
    # Half a period above the mean, half below: the first window's target exceeds the third's.
    rates = [w["target_rate"] for w in pulse["windows"]]
    assert rates[0] > 50 > 30 > rates[2]
    assert abs(pulse["operations"] - 80) <= 6
    achieved = [w["achieved_rate"] for w in pulse["windows"]]
    assert achieved[0] + achieved[1] > achieved[2] + achieved[3]

    clean = run_module("load_generator", {**login, "operation": "cleanup"})
    assert clean["rows"] == in_range + pulse["inserts"] - pulse["deletes"]
    assert bench_db.scalar("SELECT count(*) FROM books") == SEED_BOOKS
    assert seed_rows(bench_db) == before
    assert run_module("load_generator", {**login, "operation": "cleanup"})["changed"] is False


def test_pulse_amplitude_above_rate_is_refused(bench_db):
    result = run_module(
        "load_generator",
        {**bench_db.login_args(), "pattern": "pulse", "rate": 10, "amplitude": 20, "duration": 1},
        expect_fail=True,
    )
    assert "amplitude" in result["msg"]


def test_synthetic_rows_in_committed_chunks(bench_db):
    login = bench_db.login_args()
    check = run_module("synthetic_data", {**login, "rows": 1000}, check=True)
    assert (check["first_id"], check["last_id"]) == (1, 1000)
    assert bench_db.scalar("SELECT count(*) FROM synthetic_books") == 0

    books = run_module("synthetic_data", {**login, "rows": 20000, "chunk_size": 5000})
    assert (books["rows"], books["first_id"], books["last_id"], books["chunks"]) == (20000, 1, 20000, 4)
    assert books["progress"][0].startswith("rows 5000/20000 (25%)")
    assert books["progress"][-1].startswith("rows 20000/20000 (100%)")
    more = run_module("synthetic_data", {**login, "rows": 500})
    assert (more["first_id"], more["last_id"]) == (20001, 20500)
    assert bench_db.scalar("SELECT count(DISTINCT topic) FROM synthetic_books") >= 5
    assert bench_db.scalar("SELECT count(*) FROM synthetic_books WHERE isbn13 !~ '^978[0-9]{10}$'") == 0

    wide = run_module("synthetic_data", {**login, "table": "wide", "rows": 2000, "chunk_size": 1000})
    assert wide["rows"] == 2000
    assert bench_db.scalar("SELECT count(*) FROM synthetic_wide WHERE t16 IS NULL OR u03 IS NULL") == 0

    docs = run_module("synthetic_data", {**login, "table": "docs", "rows": 200, "doc_bytes": 8000})
    assert docs["rows"] == 200
    assert bench_db.scalar("SELECT min(length(body)) FROM synthetic_docs") >= 8000
    assert bench_db.scalar("SELECT count(*) FROM synthetic_docs WHERE attrs ? 'editions'") == 200

    replaced = run_module("synthetic_data", {**login, "table": "docs", "rows": 10, "truncate": True})
    assert replaced["first_id"] == 1
    assert bench_db.scalar("SELECT count(*) FROM synthetic_docs") == 10
    # Deterministic: the same ids give the same rows.
    first = bench_db.execute("SELECT body, attrs FROM synthetic_docs WHERE id = 1")
    run_module("synthetic_data", {**login, "table": "docs", "rows": 10, "truncate": True})
    assert bench_db.execute("SELECT body, attrs FROM synthetic_docs WHERE id = 1") == first
