"""inventium.logical_replication.publication against real PostgreSQL servers, run through Ansible.

Every scenario asserts the real catalog state (``pg_publication``, ``pg_publication_rel``,
``pg_publication_namespace``) read here with plain SQL, then that check mode changes nothing, that
``--diff`` shows the change and that a second run is a no-op. Each test works in a fresh database
(``pg_db``), so the shared servers stay clean; roles (server-wide) are created per test and dropped.
"""

from __future__ import annotations

import secrets

import pytest
from psycopg import sql
from support.ansible import run_module

MODULE = "publication"

SCHEMA_SQL = """
CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text);
INSERT INTO books VALUES (31, 1, 'Practical Object Oriented Design in Ruby', 'technical'),
    (22, 2, 'Great By Choice', 'leadership'), (58, 3, 'Scaling Teams', 'leadership');
CREATE SCHEMA "Sales Data";
CREATE TABLE "Sales Data"."Order Items" (id int PRIMARY KEY, qty int, note text, "Unit Price" numeric);
CREATE TABLE authors (id int PRIMARY KEY, name text);
CREATE TABLE nopk (a int, b text);
CREATE SCHEMA inventory;
CREATE TABLE inventory.stock (id int PRIMARY KEY, amount int);
CREATE TABLE inventory.places (id int PRIMARY KEY, name text);
CREATE TABLE measurements (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
"""


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def db(pg_db):
    pg_db.execute(SCHEMA_SQL)
    return pg_db


@pytest.fixture
def role(db):
    """A role created for this test (roles are server-wide), dropped before the test database."""
    name = f"Pub Owner {secrets.token_hex(3)}"
    ident = sql.Identifier(name)
    db.server.execute(sql.SQL("CREATE ROLE {} SUPERUSER").format(ident))
    yield name
    db.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(ident))
    db.server.execute(sql.SQL("DROP ROLE {}").format(ident))


def args(db, **kwargs):
    return {**db.login_args(), **kwargs}


def catalog(db, name):
    """The publication as the catalogs hold it, or None."""
    major = db.server.major
    rows = db.execute(
        sql.SQL(
            "SELECT p.oid, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete,"
            " p.pubtruncate, p.pubviaroot, obj_description(p.oid, 'pg_publication'), {}"
            " FROM pg_publication p WHERE p.pubname = %s"
        ).format(sql.SQL("p.pubgencols::text" if major >= 18 else "NULL")),
        [name],
    )
    if not rows:
        return None
    oid, owner, alltables, ins, upd, dele, trunc, viaroot, comment, gencols = rows[0]
    if major >= 15:
        rel_sql = (
            "SELECT n.nspname, c.relname, pg_get_expr(r.prqual, r.prrelid),"
            " (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a"
            "  WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs))"
            " FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = %s"
        )
    else:
        rel_sql = (
            "SELECT n.nspname, c.relname, NULL, NULL FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = %s"
        )
    tables = {(s, t): {"where": w, "columns": cols} for s, t, w, cols in db.execute(rel_sql, [oid])}
    schemas = set()
    if major >= 15:
        schemas = {
            r[0]
            for r in db.execute(
                "SELECT n.nspname FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid"
                " WHERE pn.pnpubid = %s",
                [oid],
            )
        }
    return {
        "owner": owner,
        "all_tables": alltables,
        "publish": {op for op, on in (("insert", ins), ("update", upd), ("delete", dele), ("truncate", trunc)) if on},
        "via_root": viaroot,
        "comment": comment,
        "gencols": gencols,
        "tables": tables,
        "schemas": schemas,
    }


def all_publications(db):
    """Everything about every publication of the database (to prove nothing changed)."""
    names = [r[0] for r in db.execute("SELECT pubname FROM pg_publication ORDER BY 1")]
    return {name: catalog(db, name) for name in names}


def converge(db, params, name):
    """check mode with --diff (changes nothing) -> apply with --diff -> no-op re-run.

    Returns the result of the applying run.
    """
    before = all_publications(db)
    checked = run_module(MODULE, args(db, **params), check=True, diff=True)
    assert checked["changed"] is True
    assert all_publications(db) == before, "check mode changed the catalog"
    applied = run_module(MODULE, args(db, **params), diff=True)
    assert applied["changed"] is True
    assert applied["diff"]["before"] != applied["diff"]["after"]
    assert checked["queries"] == applied["queries"]
    assert checked["publication"] == applied["publication"], "check mode predicted another state"
    assert checked["diff"] == applied["diff"]
    again = run_module(MODULE, args(db, **params))
    assert again["changed"] is False, again["queries"]
    assert again["queries"] == []
    assert again["publication"] == applied["publication"]
    assert catalog(db, name) is not None
    return applied


def fail(db, params):
    """Run expecting a failure; assert that nothing changed in the database's publications."""
    before = all_publications(db)
    result = run_module(MODULE, args(db, **params), expect_fail=True)
    assert all_publications(db) == before, "a failing run changed the catalog"
    assert db.server.password not in result.output
    return result


def create(db, statement):
    db.execute(statement)


# ----------------------------------------------------------------------------------------------
# creation, quoting, row filters, column lists
# ----------------------------------------------------------------------------------------------


@pytest.mark.min_pg(15)
def test_create_with_quoted_names_row_filter_and_column_list(db):
    params = {
        "name": '"LeadPub"',
        "tables": [
            {"name": "public.books", "where": "topic = 'leadership'"},
            {"name": '"Sales Data"."Order Items"', "columns": ['"Unit Price"', "id", "QTY"]},
            "authors",
        ],
        "publish": ["update,  INSERT", " truncate "],
        "comment": "Leadership books",
    }
    result = converge(db, params, "LeadPub")
    assert catalog(db, "leadpub") is None  # the quoted name kept its case
    state = catalog(db, "LeadPub")
    assert state["tables"] == {
        ("public", "books"): {"where": "(topic = 'leadership'::text)", "columns": None},
        ("Sales Data", "Order Items"): {"where": None, "columns": ["id", "qty", "Unit Price"]},
        ("public", "authors"): {"where": None, "columns": None},
    }
    assert state["publish"] == {"insert", "update", "truncate"}
    assert state["comment"] == "Leadership books"
    assert state["all_tables"] is False
    pub = result["publication"]
    assert pub["name"] == "LeadPub"
    assert pub["publish"] == ["insert", "update", "truncate"]
    assert pub["tables"] == [
        {
            "name": '"Sales Data"."Order Items"',
            "schema": "Sales Data",
            "table": "Order Items",
            "columns": ["id", "qty", "Unit Price"],
            "where": None,
        },
        {"name": "public.authors", "schema": "public", "table": "authors", "columns": None, "where": None},
        {
            "name": "public.books",
            "schema": "public",
            "table": "books",
            "columns": None,
            "where": "(topic = 'leadership'::text)",
        },
    ]
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"] == pub
    assert len(result["queries"]) == 2
    assert result["queries"][0].startswith('CREATE PUBLICATION "LeadPub" FOR TABLE "public"."books" WHERE')
    # The row filter uses a column outside the replica identity while UPDATE is published: warned.
    assert any("row filter of public.books" in w for w in result.get("warnings", []))

    # The same definition written differently (spacing, parentheses, casts, column order) is no change.
    same = dict(params)
    same["tables"] = [
        {"name": "BOOKS", "where": "(( topic='leadership'::text ))"},
        {"name": '"Sales Data"."Order Items"', "columns": ["qty", '"Unit Price"', "id"]},
        "public.authors",
    ]
    same["publish"] = "truncate,update,insert"
    again = run_module(MODULE, args(db, **same))
    assert again["changed"] is False, again["queries"]


@pytest.mark.min_pg(15)
def test_row_filter_change_is_one_atomic_set_keeping_schemas(db):
    create(
        db,
        "CREATE PUBLICATION lead FOR TABLE books WHERE (topic = 'leadership'), authors, TABLES IN SCHEMA inventory",
    )
    params = {
        "name": "lead",
        "tables": [{"name": "books", "where": "topic = 'technical' AND sku > 0"}, "authors"],
    }
    result = converge(db, params, "lead")
    assert result["queries"] == [
        'ALTER PUBLICATION "lead" SET TABLE "public"."books" WHERE (topic = \'technical\' AND sku > 0),'
        ' "public"."authors", TABLES IN SCHEMA "inventory"'
    ]
    state = catalog(db, "lead")
    assert state["tables"][("public", "books")]["where"] == "((topic = 'technical'::text) AND (sku > 0))"
    assert state["schemas"] == {"inventory"}  # not dropped by SET
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before["tables"][1]["where"] == "(topic = 'leadership'::text)"
    assert after["tables"][1]["where"] == "((topic = 'technical'::text) AND (sku > 0))"
    # Removing the filter is a change too.
    result = converge(db, {"name": "lead", "tables": ["books", "authors"]}, "lead")
    assert catalog(db, "lead")["tables"][("public", "books")]["where"] is None


@pytest.mark.min_pg(15)
def test_column_list_change(db):
    create(db, 'CREATE PUBLICATION cols FOR TABLE "Sales Data"."Order Items" (id, qty)')
    params = {"name": "cols", "tables": [{"name": '"Sales Data"."Order Items"', "columns": ["id", "note"]}]}
    result = converge(db, params, "cols")
    assert catalog(db, "cols")["tables"] == {("Sales Data", "Order Items"): {"where": None, "columns": ["id", "note"]}}
    assert len(result["queries"]) == 1
    assert result["queries"][0].startswith('ALTER PUBLICATION "cols" SET TABLE')


def test_tables_added_and_removed(db):
    create(db, "CREATE PUBLICATION t FOR TABLE books, authors")
    converge(db, {"name": "t", "tables": ["authors", "nopk", "inventory.stock"]}, "t")
    assert set(catalog(db, "t")["tables"]) == {("public", "authors"), ("public", "nopk"), ("inventory", "stock")}
    result = converge(db, {"name": "t", "tables": []}, "t")
    assert result["queries"] == [
        'ALTER PUBLICATION "t" DROP TABLE ONLY "inventory"."stock", ONLY "public"."authors", ONLY "public"."nopk"'
    ]
    assert catalog(db, "t")["tables"] == {}


def test_partitioned_table_and_publish_via_partition_root(db):
    params = {"name": "parts", "tables": ["measurements"], "publish_via_partition_root": True}
    result = converge(db, params, "parts")
    state = catalog(db, "parts")
    assert state["via_root"] is True
    assert set(state["tables"]) == {("public", "measurements")}
    assert result["publication"]["publish_via_partition_root"] is True
    # Without the option the value is kept; switching it off is one ALTER.
    result = converge(db, {"name": "parts", "publish_via_partition_root": False}, "parts")
    assert result["queries"] == ['ALTER PUBLICATION "parts" SET (publish_via_partition_root = false)']
    assert catalog(db, "parts")["via_root"] is False


@pytest.mark.min_pg(15)
def test_row_filter_on_partitioned_table_enables_via_root_first(db):
    create(db, "CREATE PUBLICATION parts FOR TABLE measurements")
    params = {
        "name": "parts",
        "tables": [{"name": "measurements", "where": "v > 10"}],
        "publish_via_partition_root": True,
    }
    result = converge(db, params, "parts")
    assert result["queries"][0] == 'ALTER PUBLICATION "parts" SET (publish_via_partition_root = true)'
    assert catalog(db, "parts")["tables"][("public", "measurements")]["where"] == "(v > 10)"
    # And back: the filter goes first, then publish_via_partition_root.
    result = converge(db, {"name": "parts", "tables": ["measurements"], "publish_via_partition_root": False}, "parts")
    assert result["queries"][-1] == 'ALTER PUBLICATION "parts" SET (publish_via_partition_root = false)'


# ----------------------------------------------------------------------------------------------
# publish options, owner, comment, kinds
# ----------------------------------------------------------------------------------------------


def test_publish_list_spaces_order_and_truncate(db):
    create(db, "CREATE PUBLICATION ops FOR TABLE books WITH (publish = 'insert, update')")
    result = converge(db, {"name": "ops", "publish": [" delete", "TRUNCATE , insert", "update", "insert"]}, "ops")
    assert result["queries"] == ["ALTER PUBLICATION \"ops\" SET (publish = 'insert, update, delete, truncate')"]
    assert catalog(db, "ops")["publish"] == {"insert", "update", "delete", "truncate"}
    converge(db, {"name": "ops", "publish": []}, "ops")
    assert catalog(db, "ops")["publish"] == set()
    assert catalog(db, "ops")["tables"] == {("public", "books"): {"where": None, "columns": None}}


def test_owner_and_comment(db, role):
    create(db, "CREATE PUBLICATION owned FOR TABLE books")
    quoted = '"' + role + '"'
    result = converge(db, {"name": "owned", "owner": quoted, "comment": "it's mine"}, "owned")
    state = catalog(db, "owned")
    assert state["owner"] == role
    assert state["comment"] == "it's mine"
    assert result["publication"]["owner"] == role
    assert result["diff"]["before"]["owner"] == "postgres"
    # '' removes the comment
    result = converge(db, {"name": "owned", "comment": "", "owner": "postgres"}, "owned")
    assert result["queries"] == [
        'ALTER PUBLICATION "owned" OWNER TO "postgres"',
        'COMMENT ON PUBLICATION "owned" IS NULL',
    ]
    state = catalog(db, "owned")
    assert (state["comment"], state["owner"]) == (None, "postgres")


def test_all_tables_to_list_and_back(db, role):
    create(db, "CREATE PUBLICATION every FOR ALL TABLES WITH (publish = 'insert', publish_via_partition_root = true)")
    db.execute(sql.SQL("ALTER PUBLICATION every OWNER TO {}").format(sql.Identifier(role)))
    db.execute("COMMENT ON PUBLICATION every IS 'keep me'")
    result = converge(db, {"name": "every", "tables": ["books", "authors"]}, "every")
    assert any("re-created" in w for w in result["warnings"])
    assert [q.split(" ")[0] for q in result["queries"]][:2] == ["DROP", "CREATE"]
    state = catalog(db, "every")
    assert state["all_tables"] is False
    assert set(state["tables"]) == {("public", "books"), ("public", "authors")}
    # owner, comment and options survive the re-creation
    assert (state["owner"], state["comment"], state["publish"], state["via_root"]) == (
        role,
        "keep me",
        {"insert"},
        True,
    )
    result = converge(db, {"name": "every", "all_tables": True}, "every")
    assert any("re-created" in w for w in result["warnings"])
    state = catalog(db, "every")
    assert state["all_tables"] is True
    assert state["tables"] == {}
    assert (state["owner"], state["comment"], state["publish"]) == (role, "keep me", {"insert"})
    # all_tables: false alone turns it into an empty list publication
    converge(db, {"name": "every", "all_tables": False, "owner": "postgres"}, "every")
    state = catalog(db, "every")
    assert (state["all_tables"], state["tables"], state["owner"]) == (False, {}, "postgres")


@pytest.mark.min_pg(15)
def test_schemas(db):
    params = {"name": "inv", "schemas": ["inventory", '"Sales Data"'], "tables": ["books"]}
    result = converge(db, params, "inv")
    state = catalog(db, "inv")
    assert state["schemas"] == {"inventory", "Sales Data"}
    assert set(state["tables"]) == {("public", "books")}
    assert result["publication"]["schemas"] == ["Sales Data", "inventory"]
    # schemas changed, tables not managed: the tables stay
    result = converge(db, {"name": "inv", "schemas": ["inventory"]}, "inv")
    state = catalog(db, "inv")
    assert state["schemas"] == {"inventory"}
    assert set(state["tables"]) == {("public", "books")}


@pytest.mark.min_pg(18)
def test_publish_generated_columns(db):
    db.execute("CREATE TABLE gen (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED)")
    result = converge(db, {"name": "gen", "tables": ["gen"], "publish_generated_columns": "stored"}, "gen")
    assert catalog(db, "gen")["gencols"] == "s"
    assert result["publication"]["publish_generated_columns"] == "stored"
    converge(db, {"name": "gen", "publish_generated_columns": "none"}, "gen")
    assert catalog(db, "gen")["gencols"] == "n"


def test_absent(db):
    create(db, 'CREATE PUBLICATION "Gone" FOR TABLE books')
    params = {"name": '"Gone"', "state": "absent"}
    checked = run_module(MODULE, args(db, **params), check=True, diff=True)
    assert checked["changed"] is True
    assert catalog(db, "Gone") is not None
    result = run_module(MODULE, args(db, **params), diff=True)
    assert result["changed"] is True
    assert result["queries"] == ['DROP PUBLICATION "Gone"']
    assert result["diff"]["after"] == {}
    assert result["diff"]["before"]["name"] == "Gone"
    assert catalog(db, "Gone") is None
    assert run_module(MODULE, args(db, **params))["changed"] is False


def test_empty_publication_then_tables(db):
    result = converge(db, {"name": "empty"}, "empty")
    assert result["queries"] == ['CREATE PUBLICATION "empty"']
    state = catalog(db, "empty")
    assert (state["tables"], state["all_tables"], state["publish"]) == (
        {},
        False,
        {"insert", "update", "delete", "truncate"},
    )
    converge(db, {"name": "empty", "tables": ["books"]}, "empty")
    assert set(catalog(db, "empty")["tables"]) == {("public", "books")}


def test_replica_identity_warning(db):
    result = run_module(MODULE, args(db, name="w", tables=["nopk", "books"]))
    assert any("neither a primary key nor a replica identity" in w and "public.nopk" in w for w in result["warnings"])
    assert not any("public.books" in w for w in result["warnings"])
    # insert-only publications do not warn
    result = run_module(MODULE, args(db, name="w", tables=["nopk"], publish=["insert"]))
    assert not result.get("warnings")


@pytest.mark.min_pg(15)
def test_row_filter_replica_identity_warning_is_real(db):
    """The warning predicts PostgreSQL's behaviour: the UPDATE really fails."""
    result = run_module(MODULE, args(db, name="lead", tables=[{"name": "books", "where": "topic = 'leadership'"}]))
    assert any("row filter of public.books" in w and "topic" in w for w in result["warnings"])
    with pytest.raises(Exception, match="cannot update table"):
        db.execute("UPDATE books SET title = title")
    db.execute("ALTER TABLE books REPLICA IDENTITY FULL")
    result = run_module(MODULE, args(db, name="lead", tables=[{"name": "books", "where": "topic = 'leadership'"}]))
    assert not result.get("warnings")
    db.execute("UPDATE books SET title = title")


# ----------------------------------------------------------------------------------------------
# bad input: fails clearly, changes nothing
# ----------------------------------------------------------------------------------------------


def test_missing_tables_are_all_named_and_nothing_is_created(db):
    result = fail(db, {"name": "p", "tables": ["books", "nosuch", '"Sales Data".missing', "nosuch2"]})
    assert "nosuch" in result["msg"]
    assert '"Sales Data".missing' in result["msg"]
    assert "public.nosuch2" in result["msg"]
    assert "public.books" not in result["msg"]
    assert result["missing_tables"] == ["public.nosuch", '"Sales Data".missing', "public.nosuch2"]
    assert catalog(db, "p") is None


def test_missing_schema_and_owner(db):
    if db.server.major >= 15:
        result = fail(db, {"name": "p", "schemas": ["inventory", "ghost"]})
        assert "schemas" in result["msg"]
        assert "ghost" in result["msg"]
    result = fail(db, {"name": "p", "tables": ["books"], "owner": "nobody_here"})
    assert "owner" in result["msg"]
    assert "nobody_here" in result["msg"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"all_tables": True, "tables": ["books"]}, "all_tables: true conflicts with tables"),
        ({"tables": [42]}, "tables[0]: expected a table name"),
        ({"tables": [{"name": "books", "columns": "id"}]}, "tables[0].columns: expected a list"),
        ({"tables": [{"name": "books", "colums": ["id"]}]}, "tables[0]: unknown key(s) colums"),
        ({"tables": ["books", "public.books"]}, "tables[1]: table public.books is already listed as tables[0]"),
        ({"publish": ["insert", "upsert"]}, "publish: unknown operation 'upsert'"),
        ({"publish_via_partition_root": "maybe"}, "publish_via_partition_root"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_fails_before_anything(db, params, expected):
    create(db, "CREATE PUBLICATION p FOR TABLE authors")
    result = fail(db, {"name": "p", **params})
    assert expected in result["msg"]
    assert not result.get("queries")


@pytest.mark.min_pg(15)
@pytest.mark.parametrize(
    ("where", "sqlstate", "text"),
    [
        ("nosuch = 1", "42703", 'column "nosuch" does not exist'),
        ("random() > 0.5", "0A000", "invalid publication WHERE expression"),
        ("topic = 'x'); DROP TABLE authors; --", "42601", None),
    ],
    ids=["unknown-column", "volatile-function", "injection"],
)
def test_invalid_row_filter_fails_with_postgresql_error(db, where, sqlstate, text):
    create(db, "CREATE PUBLICATION p FOR TABLE books WHERE (topic = 'leadership')")
    result = fail(db, {"name": "p", "tables": ["authors", {"name": "books", "where": where}]})
    assert result["sqlstate"] == sqlstate
    assert f"ERROR {sqlstate}" in result["msg"]
    assert "tables[1] (public.books)" in result["msg"]
    if text:
        assert text in result["msg"]
    assert "inventium_probe" not in result["msg"]
    assert db.scalar("SELECT count(*) FROM authors") == 0  # the table is still there
    assert db.scalar("SELECT count(*) FROM pg_publication WHERE pubname LIKE 'inventium_probe%'") == 0


@pytest.mark.min_pg(15)
def test_postgresql_rule_violation_changes_nothing(db):
    """Schemas with a column list are rejected by PostgreSQL: the whole run is rolled back."""
    create(db, "CREATE PUBLICATION p FOR TABLE books")
    result = fail(
        db,
        {
            "name": "p",
            "tables": [{"name": "books", "columns": ["id", "topic"]}],
            "schemas": ["inventory"],
            "comment": "x",
        },
    )
    assert result["sqlstate"] == "22023"
    assert "Column lists cannot be specified" in result["msg"]
    assert 'publication "p"' in result["msg"]


def test_unknown_column_in_column_list(db):
    if db.server.major < 15:
        pytest.skip("column lists need PostgreSQL 15")
    result = fail(db, {"name": "p", "tables": [{"name": "books", "columns": ["id", "nosuch"]}]})
    assert result["sqlstate"] == "42703"
    assert catalog(db, "p") is None


def test_version_gated_options(db):
    """Options newer than the server fail naming the option and the minimum version."""
    major = db.server.major
    cases = []
    if major < 15:
        cases += [
            ({"tables": [{"name": "books", "where": "topic = 'x'"}]}, "tables[0].where requires PostgreSQL >= 15"),
            ({"tables": [{"name": "books", "columns": ["id"]}]}, "tables[0].columns requires PostgreSQL >= 15"),
            ({"schemas": ["inventory"]}, "schemas requires PostgreSQL >= 15"),
        ]
    if major < 18:
        cases.append(({"publish_generated_columns": "stored"}, "publish_generated_columns requires PostgreSQL >= 18"))
    if not cases:
        pytest.skip(f"PostgreSQL {major} has every feature of the module")
    for params, expected in cases:
        result = fail(db, {"name": "p", **params})
        assert expected in result["msg"], result["msg"]
        assert f"(server is {major})" in result["msg"]
        assert catalog(db, "p") is None


def test_login_password_not_leaked(db):
    result = run_module(MODULE, args(db, name="p", tables=["books"]), verbosity=3)
    assert db.server.password not in result.output
