"""inventium.logical_replication.schema_change and the schema drift reader against real PostgreSQL servers.

Every scenario asserts the real catalog read here with plain SQL: an additive migration is applied
and a re-run changes nothing; check mode reports the delta and leaves the catalog as it was; a
destructive migration is refused with nothing applied (and applied with ``allow_destructive``);
a failing statement leaves nothing applied and is named. The drift functions find a column added
only on the publisher and a table missing on the subscriber of a real subscription.
"""

from __future__ import annotations

import pytest
from pg_harness import wait_until
from psycopg import sql
from support.ansible import run_module

from ansible_collections.inventium.logical_replication.plugins.module_utils import _schema_drift

MODULE = "schema_change"


def columns(db, table):
    """``[(name, type)]`` of a table, in column order ([] when it does not exist)."""
    return db.execute(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [table],
    )


def exists(db, table):
    return db.scalar("SELECT to_regclass(%s) IS NOT NULL", [table])


def books(db):
    db.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text)")


ADDITIVE = """
-- a new column, a new table and an index; re-runnable
ALTER TABLE public.books ADD COLUMN IF NOT EXISTS isbn text;
CREATE TABLE IF NOT EXISTS public.reviews (id bigint PRIMARY KEY, book_id bigint, body text DEFAULT 'a;b');
CREATE INDEX IF NOT EXISTS books_isbn_idx ON public.books (isbn);
"""


def test_additive_applied_then_rerun_unchanged(pg_db):
    books(pg_db)
    first = run_module(MODULE, {**pg_db.login_args(), "migration": ADDITIVE}, diff=True)
    assert first["changed"] is True
    assert columns(pg_db, "public.books")[-1] == ("isbn", "text")
    assert exists(pg_db, "public.reviews")
    assert first["delta"]["added_columns"] == [{"table": "public.books", "column": "isbn", "type": "text"}]
    assert [t["table"] for t in first["delta"]["added_tables"]] == ["public.reviews"]
    # The indexes of a new table are part of it; only those of tables that existed are listed.
    assert first["delta"]["added_indexes"] == [{"table": "public.books", "index": "books_isbn_idx"}]
    assert first["destructive"] == []
    assert len(first["statements"]) == 3
    assert first["diff"]["after"]["public.books"][-1] == "isbn text"
    assert "public.books" in first["diff"]["before"]
    assert first["added_table_publications"] == {"public.reviews": []}

    second = run_module(MODULE, {**pg_db.login_args(), "migration": ADDITIVE})
    assert second["changed"] is False
    assert all(not items for items in second["delta"].values())


def test_added_table_sequences_are_reported_for_their_grant(pg_db):
    # What the playbook grants the replication role SELECT on once the table is published.
    migration = [
        "CREATE SEQUENCE public.shared_seq",
        "CREATE TABLE public.notes (id serial PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY,"
        " m bigint DEFAULT nextval('public.shared_seq'), body text)",
        "CREATE TABLE public.plain (id int PRIMARY KEY)",
    ]
    planned = run_module(MODULE, {**pg_db.login_args(), "migration": migration}, check=True)
    expected = {"public.notes": ["public.notes_id_seq", "public.notes_n_seq", "public.shared_seq"], "public.plain": []}
    assert planned["added_table_sequences"] == expected
    applied = run_module(MODULE, {**pg_db.login_args(), "migration": migration})
    assert applied["added_table_sequences"] == expected


def test_check_mode_reports_delta_and_changes_nothing(pg_db):
    books(pg_db)
    result = run_module(MODULE, {**pg_db.login_args(), "migration": ADDITIVE}, check=True)
    assert result["changed"] is True
    assert result["committed"] is False
    assert result["delta"]["added_columns"][0]["column"] == "isbn"
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]
    assert not exists(pg_db, "public.reviews")


def test_data_change_is_a_change(pg_db):
    books(pg_db)
    pg_db.execute("INSERT INTO books VALUES (1, 31, 'x', 'technical')")
    result = run_module(MODULE, {**pg_db.login_args(), "migration": ["UPDATE books SET sku = 32 WHERE id = 1;"]})
    assert result["changed"] is True
    assert pg_db.scalar("SELECT sku FROM books WHERE id = 1") == 32


def test_published_table_destructive_refused_then_allowed(pg_db):
    books(pg_db)
    pg_db.execute("CREATE PUBLICATION pub FOR TABLE books")
    migration = ["ALTER TABLE books ADD COLUMN note text", "ALTER TABLE books DROP COLUMN topic"]
    refused = run_module(MODULE, {**pg_db.login_args(), "migration": migration}, expect_fail=True)
    assert "drops the replicated column public.books.topic" in refused["msg"]
    assert "published in pub" in refused["msg"]
    assert "publisher first" in refused["msg"]
    assert refused["destructive"][0]["kind"] == "dropped_column"
    assert refused["delta"]["added_columns"][0]["column"] == "note"
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]

    allowed = run_module(MODULE, {**pg_db.login_args(), "migration": migration, "allow_destructive": True})
    assert allowed["changed"] is True
    assert [d["kind"] for d in allowed["destructive"]] == ["dropped_column"]
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "note"]


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("ALTER TABLE books RENAME COLUMN title TO name", "renamed_column"),
        ("ALTER TABLE books ALTER COLUMN sku TYPE bigint", "type_change"),
        ("DROP TABLE books", "dropped_table"),
        ("ALTER TABLE books RENAME TO volumes", "renamed_table"),
    ],
)
def test_destructive_kinds(pg_db, statement, kind):
    books(pg_db)
    pg_db.execute("CREATE PUBLICATION pub FOR TABLE books")
    refused = run_module(MODULE, {**pg_db.login_args(), "migration": statement}, expect_fail=True)
    assert [d["kind"] for d in refused["destructive"]] == [kind]
    assert "Safe sequence" in refused["msg"]
    assert columns(pg_db, "public.books") == [
        ("id", "bigint"),
        ("sku", "integer"),
        ("title", "text"),
        ("topic", "text"),
    ]


def test_column_left_out_of_column_list_is_not_destructive(pg_db):
    if pg_db.server.major < 15:
        pytest.skip("column lists need PostgreSQL 15")
    books(pg_db)
    pg_db.execute("CREATE PUBLICATION pub FOR TABLE books (id, sku, title)")
    result = run_module(MODULE, {**pg_db.login_args(), "migration": "ALTER TABLE books DROP COLUMN topic"})
    assert result["destructive"] == []
    assert result["delta"]["dropped_columns"] == [{"table": "public.books", "column": "topic", "type": "text"}]


def test_unpublished_table_drop_is_not_destructive(pg_db):
    books(pg_db)
    result = run_module(MODULE, {**pg_db.login_args(), "migration": "DROP TABLE books"})
    assert result["destructive"] == []
    assert result["delta"]["dropped_tables"] == [{"table": "public.books"}]


def test_for_all_tables_publication_reported_for_new_table(pg_db):
    pg_db.execute("CREATE PUBLICATION allpub FOR ALL TABLES")
    result = run_module(MODULE, {**pg_db.login_args(), "migration": "CREATE TABLE t (id int PRIMARY KEY)"})
    assert result["added_table_publications"] == {"public.t": ["allpub"]}


def test_failing_statement_rolls_back_and_is_named(pg_db):
    books(pg_db)
    migration = "ALTER TABLE books ADD COLUMN isbn text;\nALTER TABLE nosuch ADD COLUMN x int;\nSELECT 1"
    failed = run_module(MODULE, {**pg_db.login_args(), "migration": migration}, expect_fail=True)
    assert "statement 2 of 3 (ALTER TABLE nosuch ADD COLUMN x int) failed" in failed["msg"]
    assert "42P01" in failed["msg"]
    assert "nothing was applied" in failed["msg"]
    assert failed["failed_statement"] == {"index": 2, "statement": "ALTER TABLE nosuch ADD COLUMN x int"}
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]


def test_syntax_error_is_named(pg_db):
    books(pg_db)
    failed = run_module(
        MODULE, {**pg_db.login_args(), "migration": ["CREATE TABLE ok (id int)", "ALTER TABEL books"]}, expect_fail=True
    )
    assert "statement 2 of 2" in failed["msg"]
    assert "42601" in failed["msg"]
    assert not exists(pg_db, "public.ok")


def test_not_in_transaction_refused(pg_db):
    books(pg_db)
    migration = ["ALTER TABLE books ADD COLUMN isbn text", "CREATE INDEX CONCURRENTLY books_isbn ON books (isbn)"]
    failed = run_module(MODULE, {**pg_db.login_args(), "migration": migration}, expect_fail=True)
    assert "cannot run inside a transaction block" in failed["msg"]
    assert "statement 2 of 2" in failed["msg"]
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]


def test_transaction_control_refused_before_running(pg_db):
    books(pg_db)
    failed = run_module(
        MODULE, {**pg_db.login_args(), "migration": "ALTER TABLE books ADD COLUMN a int; COMMIT;"}, expect_fail=True
    )
    assert "transaction control" in failed["msg"]
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]


def subscribe(dbs, publication):
    name = f"{dbs.subscriber.name}_s"
    dbs.subscriber.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
            sql.Identifier(name), sql.Literal(dbs.publisher.conninfo()), sql.Identifier(publication)
        )
    )

    def ready():
        states = [s for (s,) in dbs.subscriber.execute("SELECT srsubstate FROM pg_subscription_rel")]
        return states and all(s == "r" for s in states)

    wait_until(ready, timeout=60, message="initial sync")
    return name


def test_subscriber_side_destructive_and_drift(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    books(pub)
    pub.execute("CREATE TABLE authors (id int PRIMARY KEY, name text)")
    pub.execute("CREATE PUBLICATION pub FOR TABLE books, authors")
    books(sub)
    sub.execute("CREATE TABLE authors (id int PRIMARY KEY, name text)")
    subscription = subscribe(pg_pair_db, "pub")

    refused = run_module(
        MODULE, {**sub.login_args(), "migration": "ALTER TABLE books DROP COLUMN topic"}, expect_fail=True
    )
    assert f"subscribed by {subscription}" in refused["msg"]
    assert [c for c, _unused in columns(sub, "public.books")] == ["id", "sku", "title", "topic"]

    # Drift: a column only on the publisher, a type difference, and a published table missing here.
    pub.execute("ALTER TABLE books ADD COLUMN isbn text")
    pub.execute("ALTER TABLE authors ALTER COLUMN name TYPE varchar(80)")
    pub.execute("CREATE TABLE prices (id int PRIMARY KEY, amount numeric)")
    pub.execute("ALTER PUBLICATION pub ADD TABLE prices")
    with pub.connect() as pconn, sub.connect() as sconn:
        published = _schema_drift.read_published_columns(pconn, ["pub"])
        local = _schema_drift.read_local_columns(sconn, list(published))
    items = _schema_drift.schema_drift(published, local)
    assert {
        "table": "public.books",
        "kind": "missing_column",
        "column": "isbn",
        "publisher_type": "text",
        "subscriber_type": None,
    } in items
    assert {
        "table": "public.authors",
        "kind": "type_mismatch",
        "column": "name",
        "publisher_type": "character varying(80)",
        "subscriber_type": "text",
    } in items
    assert {
        "table": "public.prices",
        "kind": "missing_table",
        "column": None,
        "publisher_type": None,
        "subscriber_type": None,
    } in items
    assert len(items) == 3
    findings = _schema_drift.check_schema_drift(items)
    assert {f["severity"] for f in findings} == {"error", "warning"}
    assert all(f["code"] == "schema_drift" for f in findings)

    # The additive fix on the subscriber is not destructive, and then only the type differs.
    run_module(MODULE, {**sub.login_args(), "migration": ADDITIVE.replace("reviews", "prices_x")})
    sub.execute("CREATE TABLE prices (id int PRIMARY KEY, amount numeric)")
    with pub.connect() as pconn, sub.connect() as sconn:
        published = _schema_drift.read_published_columns(pconn, ["pub"])
        local = _schema_drift.read_local_columns(sconn, list(published))
    assert [i["kind"] for i in _schema_drift.schema_drift(published, local)] == ["type_mismatch"]


def test_drift_ignores_columns_replication_does_not_send(pg_server, pg_database_factory):
    pub, sub = pg_database_factory(pg_server, "pub"), pg_database_factory(pg_server, "sub")
    pub.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, secret text)")
    pub.execute("CREATE TABLE totals (id int PRIMARY KEY, v int, doubled int GENERATED ALWAYS AS (v * 2) STORED)")
    # secret: left out by the column list; doubled: generated, not sent (publish_generated_columns = none).
    pub.execute("CREATE PUBLICATION pub FOR TABLE books (id, sku, title), totals")
    sub.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text)")
    sub.execute("CREATE TABLE totals (id int PRIMARY KEY, v int)")
    with pub.connect() as pconn, sub.connect() as sconn:
        published = _schema_drift.read_published_columns(pconn, ["pub"])
        local = _schema_drift.read_local_columns(sconn, list(published))
        assert _schema_drift.read_published_columns(pconn, ["other"]) == {}
        assert set(_schema_drift.read_published_columns(pconn)) == {"public.books", "public.totals"}
    assert published["public.books"]["columns"] == {"id": "bigint", "sku": "integer", "title": "text"}
    assert published["public.totals"]["columns"] == {"id": "integer", "v": "integer"}
    assert _schema_drift.schema_drift(published, local) == []
    if pg_server.major >= 18:
        pub.execute("ALTER PUBLICATION pub SET (publish_generated_columns = stored)")
        with pub.connect() as pconn, sub.connect() as sconn:
            published = _schema_drift.read_published_columns(pconn, ["pub"])
            local = _schema_drift.read_local_columns(sconn, list(published))
        assert [(i["kind"], i["column"]) for i in _schema_drift.schema_drift(published, local)] == [
            ("missing_column", "doubled")
        ]


def test_lock_timeout_fails_with_nothing_applied(pg_db):
    books(pg_db)
    with pg_db.connect(autocommit=False) as holder:
        holder.execute("LOCK TABLE books IN ACCESS SHARE MODE")
        failed = run_module(
            MODULE,
            {**pg_db.login_args(), "migration": "ALTER TABLE books ADD COLUMN isbn text", "lock_timeout": "200ms"},
            expect_fail=True,
        )
    assert "55P03" in failed["msg"]
    assert "statement 1 of 1" in failed["msg"]
    assert [c for c, _unused in columns(pg_db, "public.books")] == ["id", "sku", "title", "topic"]


def test_heartbeat_module(pg_db):
    absent = run_module("replication_heartbeat", {**pg_db.login_args(), "mode": "beat", "node": "p"})
    assert absent["present"] is False
    assert absent["changed"] is False
    pg_db.execute(
        "CREATE TABLE public.replication_heartbeat (node text PRIMARY KEY, beat_at timestamptz NOT NULL,"
        " seq bigint NOT NULL)"
    )
    checked = run_module("replication_heartbeat", {**pg_db.login_args(), "mode": "beat", "node": "p"}, check=True)
    assert checked["seq"] is None
    assert pg_db.scalar("SELECT count(*) FROM replication_heartbeat") == 0
    first = run_module("replication_heartbeat", {**pg_db.login_args(), "mode": "beat", "node": "p"})
    second = run_module("replication_heartbeat", {**pg_db.login_args(), "mode": "beat", "node": "p"})
    assert (first["seq"], second["seq"]) == (1, 2)
    seen = run_module("replication_heartbeat", {**pg_db.login_args(), "mode": "read", "node": "p"})
    assert seen["seq"] == 2
    assert seen["replicated"] is False
    assert [b["node"] for b in seen["beats"]] == ["p"]
