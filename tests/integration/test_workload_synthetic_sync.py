"""Synthetic data reaches a NEW subscriber by initial sync, then by streaming (issue W1, synthetic).

Throwaway publisher and subscriber (lowest -> highest selected major): ``synthetic_data``
generates rows into the three synthetic tables on the publisher, a publication ``synthetic_pub``
(as the lab publishes them) is created, then a new subscription copies everything (table sync),
and rows generated afterwards stream over. Checked by row counts and an md5 over every table.
"""

from __future__ import annotations

from pathlib import Path

from pg_harness import wait_until
from support.ansible import run_module

SCHEMA = Path(__file__).resolve().parents[2] / "roles" / "publisher" / "files" / "schema" / "synthetic.sql"
TABLES = ("synthetic_books", "synthetic_wide", "synthetic_docs")


def digest(database, table: str) -> tuple:
    return database.execute(f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM {table} t")[0]  # noqa: S608


def test_new_subscriber_copies_then_streams_synthetic_rows(pg_harness, pg_majors, pg_database_factory):
    pair = pg_harness.pair(pg_majors[0], pg_majors[-1])
    publisher = pg_database_factory(pair.publisher, "synpub")
    subscriber = pg_database_factory(pair.subscriber, "synsub")
    for database in (publisher, subscriber):
        with database.connect() as conn:
            conn.execute(SCHEMA.read_text())
    login = publisher.login_args()
    for table, rows in (("books", 20000), ("wide", 1000), ("docs", 100)):
        result = run_module("synthetic_data", {**login, "table": table, "rows": rows, "chunk_size": 10000})
        assert result["rows"] == rows
    publisher.execute("CREATE PUBLICATION synthetic_pub FOR TABLE " + ", ".join(TABLES))

    subscriber.execute(
        f"CREATE SUBSCRIPTION synthetic_sub CONNECTION '{publisher.conninfo()}' PUBLICATION synthetic_pub"
    )

    def synced() -> bool:
        states = subscriber.execute("SELECT srsubstate FROM pg_subscription_rel")
        return len(states) == len(TABLES) and all(state == ("r",) for state in states)

    wait_until(synced, timeout=60, message="initial sync of the synthetic tables")
    for table in TABLES:
        assert digest(subscriber, table) == digest(publisher, table), table
    assert digest(subscriber, "synthetic_books")[0] == 20000

    more = run_module("synthetic_data", {**login, "rows": 5000, "chunk_size": 2500})
    assert (more["first_id"], more["last_id"]) == (20001, 25000)
    wait_until(
        lambda: digest(subscriber, "synthetic_books") == digest(publisher, "synthetic_books"),
        timeout=30,
        message="streamed synthetic rows",
    )
