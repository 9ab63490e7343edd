"""Pure logic of schema_change (statement splitting, delta, classification) and of the schema drift check."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._schema_change import (
    MigrationError,
    classify,
    compute_delta,
    delta_is_empty,
    normalize_migration,
    refusal_message,
    rows_of,
    split_statements,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._schema_drift import (
    check_schema_drift,
    schema_drift,
)

# -- splitting ------------------------------------------------------------------------------------


def test_split_plain_statements():
    assert split_statements("SELECT 1; SELECT 2;\n") == ["SELECT 1", "SELECT 2"]


def test_split_keeps_a_last_statement_without_semicolon():
    assert split_statements("SELECT 1;\nSELECT 2") == ["SELECT 1", "SELECT 2"]


def test_split_respects_quotes_identifiers_and_comments():
    text = (
        "-- a comment; not a statement\n"
        "ALTER TABLE \"a;b\" ADD COLUMN c text DEFAULT 'x;y''z';\n"
        "/* block; /* nested; */ still comment; */ SELECT E'\\';';\n"
    )
    assert split_statements(text) == [
        "-- a comment; not a statement\nALTER TABLE \"a;b\" ADD COLUMN c text DEFAULT 'x;y''z'",
        "/* block; /* nested; */ still comment; */ SELECT E'\\';'",
    ]


def test_split_respects_dollar_quotes():
    text = "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql; SELECT $$a;b$$;"
    assert split_statements(text) == [
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        "SELECT $$a;b$$",
    ]


def test_split_positional_parameter_is_not_a_dollar_quote():
    assert split_statements("PREPARE p AS SELECT $1; SELECT 2") == ["PREPARE p AS SELECT $1", "SELECT 2"]


def test_split_drops_empty_and_comment_only_statements():
    assert split_statements(";;\n-- only a comment\n;  /* x */ ;SELECT 1") == ["SELECT 1"]


def test_normalize_list_strips_trailing_semicolons():
    assert normalize_migration(["ALTER TABLE t ADD c int;", "  ", "SELECT 1;;"]) == [
        "ALTER TABLE t ADD c int",
        "SELECT 1",
    ]


@pytest.mark.parametrize("migration", ["", "  -- nothing\n", [], [" ", ";"]])
def test_normalize_refuses_an_empty_migration(migration):
    with pytest.raises(MigrationError, match="no statements"):
        normalize_migration(migration)


@pytest.mark.parametrize("statement", ["BEGIN", "commit", "START TRANSACTION", "SAVEPOINT a", "ROLLBACK", "END"])
def test_normalize_refuses_transaction_control(statement):
    with pytest.raises(MigrationError, match=r"statement 2 \(.*\) is transaction control") as caught:
        normalize_migration(f"SELECT 1; {statement}; SELECT 2")
    assert caught.value.details["failed_statement"]["index"] == 2


def test_normalize_allows_words_that_only_start_like_transaction_control():
    assert normalize_migration("BEGINNING_TABLE_FUNCTION(); CREATE TABLE commits (id int)") == [
        "BEGINNING_TABLE_FUNCTION()",
        "CREATE TABLE commits (id int)",
    ]


@pytest.mark.parametrize(
    ("status", "rows"),
    [("UPDATE 3", 3), ("INSERT 0 1", 1), ("DELETE 0", 0), ("ALTER TABLE", 0), ("SELECT 5", 0), (None, 0)],
)
def test_rows_of(status, rows):
    assert rows_of(status) == rows


# -- delta and classification -----------------------------------------------------------------


def table(name, columns, indexes=None, **properties):
    schema, _unused, rel = name.partition(".")
    return {
        "schema": schema,
        "table": rel,
        "name": name,
        "columns": {i + 1: {"name": n, "type": t, "generated": ""} for i, (n, t) in enumerate(columns) if n},
        "indexes": dict(indexes or {}),
        "properties": {"constraints": [], "columns": {}, **properties},
    }


BOOKS = [("id", "bigint"), ("sku", "integer"), ("title", "text"), ("topic", "text")]


def test_delta_of_identical_snapshots_is_empty():
    snapshot = {1: table("public.books", BOOKS)}
    assert delta_is_empty(compute_delta(snapshot, snapshot))


def test_delta_kinds():
    before = {
        1: table("public.books", BOOKS, {10: "books_pkey"}),
        2: table("public.old", [("id", "int")]),
        3: table("public.a", [("id", "int")]),
    }
    after_books = [("id", "bigint"), ("sku", "bigint"), ("name", "text"), (None, None), ("isbn", "text")]
    after = {
        1: table("public.books", after_books, {10: "books_pkey", 11: "books_isbn"}),
        3: table("public.b", [("id", "int")]),
        4: table("public.reviews", [("id", "bigint")], {12: "reviews_pkey"}),
    }
    delta = compute_delta(before, after)
    assert [(d["table"], d["column"], d["type"]) for d in delta["added_columns"]] == [("public.books", "isbn", "text")]
    assert [(d["column"], d["type"]) for d in delta["dropped_columns"]] == [("topic", "text")]
    assert [(d["from"], d["to"]) for d in delta["renamed_columns"]] == [("title", "name")]
    assert [(d["column"], d["from"], d["to"]) for d in delta["type_changes"]] == [("sku", "integer", "bigint")]
    assert [d["table"] for d in delta["dropped_tables"]] == ["public.old"]
    assert [(d["from"], d["to"]) for d in delta["renamed_tables"]] == [("public.a", "public.b")]
    assert [d["table"] for d in delta["added_tables"]] == ["public.reviews"]
    assert delta["added_tables"][0]["columns"] == ["id bigint"]
    assert [d["index"] for d in delta["added_indexes"]] == ["books_isbn"]


def test_delta_sees_other_table_changes():
    before = {1: table("public.books", BOOKS, constraints=[])}
    after = {1: table("public.books", BOOKS, constraints=["books_sku_check CHECK ((sku > 0))"])}
    delta = compute_delta(before, after)
    assert delta["altered_tables"][0]["changed"] == ["constraints"]
    assert not delta_is_empty(delta)


def replicated(relid, publications=(), subscriptions=(), columns=None):
    return {relid: {"publications": list(publications), "subscriptions": list(subscriptions), "columns": columns}}


def test_classify_published_columns_only():
    before = {1: table("public.books", BOOKS)}
    after = {1: table("public.books", [("id", "bigint"), ("sku", "integer"), ("title", "text")])}
    delta = compute_delta(before, after)
    # The column list leaves topic out: dropping it does not touch replication.
    assert classify(delta, replicated(1, ["pub"], columns={"id", "sku", "title"})) == []
    found = classify(delta, replicated(1, ["pub"], columns={"id", "sku", "title", "topic"}))
    assert [(d["kind"], d["column"], d["used_by"]) for d in found] == [("dropped_column", "topic", "published in pub")]
    assert "publisher first" in found[0]["safe_sequence"]


def test_classify_subscribed_table_counts_every_column():
    before = {1: table("public.books", BOOKS)}
    after = {1: table("public.books", [("id", "bigint"), ("sku", "bigint"), ("title", "text"), ("topic", "text")])}
    found = classify(compute_delta(before, after), replicated(1, subscriptions=["sub1"]))
    assert [(d["kind"], d["used_by"]) for d in found] == [("type_change", "subscribed by sub1")]
    assert "backfill" in found[0]["safe_sequence"]


def test_classify_ignores_tables_replication_does_not_use_and_additions():
    before = {1: table("public.books", BOOKS), 2: table("public.scratch", [("id", "int")])}
    after = {1: table("public.books", [*BOOKS, ("isbn", "text")]), 5: table("public.new", [("id", "int")])}
    assert classify(compute_delta(before, after), replicated(1, ["pub"], columns={n for n, _unused in BOOKS})) == []


def test_classify_dropped_and_renamed_tables():
    before = {1: table("public.books", BOOKS), 2: table("public.authors", [("id", "int")])}
    after = {2: table("public.writers", [("id", "int")])}
    used = {**replicated(1, ["pub"], columns=set()), **replicated(2, ["pub"], columns={"id"})}
    found = classify(compute_delta(before, after), used)
    assert [(d["kind"], d["table"]) for d in found] == [
        ("dropped_table", "public.books"),
        ("renamed_table", "public.writers"),
    ]
    message = refusal_message(found)
    assert message.startswith("the migration makes 2 destructive change(s)")
    assert "drops the replicated table public.books (published in pub)" in message
    assert "schema_change_allow_destructive=true" in message


# -- drift --------------------------------------------------------------------------------------


def test_drift_kinds():
    pub = {
        "public.books": {"columns": {"id": "bigint", "isbn": "text", "sku": "bigint"}},
        "public.prices": {"columns": {"id": "integer"}},
    }
    sub = {"public.books": {"columns": {"id": "bigint", "sku": "integer", "extra": "text"}}}
    assert schema_drift(pub, sub) == [
        {"table": "public.books", "kind": "missing_column", "column": "isbn", "publisher_type": "text",
         "subscriber_type": None},
        {"table": "public.books", "kind": "type_mismatch", "column": "sku", "publisher_type": "bigint",
         "subscriber_type": "integer"},
        {"table": "public.prices", "kind": "missing_table", "column": None, "publisher_type": None,
         "subscriber_type": None},
    ]  # fmt: skip


def test_no_drift_no_findings():
    same = {"public.books": {"columns": {"id": "bigint"}}}
    assert schema_drift(same, same) == []
    assert check_schema_drift([]) == []


def test_drift_findings():
    items = [
        {"table": "public.books", "kind": "missing_column", "column": "isbn", "publisher_type": "text",
         "subscriber_type": None},
        {"table": "public.books", "kind": "type_mismatch", "column": "sku", "publisher_type": "bigint",
         "subscriber_type": "integer"},
        {"table": "public.prices", "kind": "missing_table", "column": None, "publisher_type": None,
         "subscriber_type": None},
    ]  # fmt: skip
    findings = check_schema_drift(items, node="subscriber1")
    assert [(f["severity"], f["code"]) for f in findings] == [
        ("error", "schema_drift"),
        ("error", "schema_drift"),
        ("warning", "schema_drift"),
    ]
    assert "public.prices" in findings[0]["message"]
    assert "on subscriber1" in findings[0]["message"]
    assert "public.books.isbn (text)" in findings[1]["message"]
    assert "publisher bigint, subscriber integer" in findings[2]["message"]
    assert all(f["hint"] for f in findings)
