"""The replica identity rule, once: the core's verdict agrees with what PostgreSQL itself refuses.

Two copies of the rule used to disagree about generated columns under REPLICA IDENTITY FULL: the
``publication`` module's left them out of the identity, the checks of ``replication_info`` counted
them. Each case below publishes a table for UPDATE with a column list or a row filter, runs an
UPDATE and compares PostgreSQL's answer with the single rule in ``_publications``, as the checks
read it (``collect_publication_issues``) and as the module warns (``column_list_problems``).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from ansible_collections.inventium.logical_replication.plugins.module_utils import _publications

PLAIN = "id int NOT NULL, a int, b int"
GENERATED = "id int NOT NULL, a int, b int, g int GENERATED ALWAYS AS (a * 2) STORED"
PK_GENERATED = "id int PRIMARY KEY, a int, b int, g int GENERATED ALWAYS AS (a * 2) STORED"

CASES = {
    # name: (table definition, replica identity, column list, row filter, PostgreSQL refuses UPDATE)
    "full_generated_left_out": (GENERATED, "FULL", ["id", "a", "b"], None, True),
    "full_lacks_a_column": (PLAIN, "FULL", ["id", "a"], None, True),
    "full_every_column": (PLAIN, "FULL", ["id", "a", "b"], None, True),
    "full_no_list_filter": (PLAIN, "FULL", None, "b > 0", False),
    "pk_generated_left_out": (PK_GENERATED, "DEFAULT", ["id", "a"], None, False),
    "pk_lacks_key": (PK_GENERATED, "DEFAULT", ["a", "b"], None, True),
    "pk_filter_on_key": (PK_GENERATED, "DEFAULT", None, "id > 0", False),
    "pk_filter_outside_key": (PK_GENERATED, "DEFAULT", None, "b > 0", True),
}


def _refuses_update(conn, table):
    try:
        with conn.transaction():
            conn.execute(sql.SQL("UPDATE {} SET a = a + 1").format(sql.Identifier(table)))
        return False
    except psycopg.Error as exc:
        if exc.sqlstate == "42P10":  # invalid_column_reference: "cannot update table ..."
            return True
        raise


@pytest.mark.min_pg(15)
@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_agrees_with_postgresql(pg_db, case):
    definition, identity, columns, where, expected = CASES[case]
    table, publication = f"t_{case}", f"p_{case}"
    entry = sql.Identifier(table)
    if columns:
        entry += sql.SQL(" ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    if where:
        entry += sql.SQL(" WHERE ({})").format(sql.SQL(where))
    with pg_db.connect() as conn:
        major = conn.info.server_version // 10000
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(table), sql.SQL(definition)))
        conn.execute(sql.SQL("INSERT INTO {} (id, a, b) VALUES (1, 1, 1)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY " + identity).format(sql.Identifier(table)))
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert, update')").format(
                sql.Identifier(publication), entry
            )
        )
        refused = _refuses_update(conn, table)
        assert refused is expected, f"PostgreSQL {major}: UPDATE refused = {refused}, expected {expected}"

        issues = _publications.collect_publication_issues(conn, major)
        flagged = [
            (kind, item["detail"])
            for kind in ("row_filter_outside_replica_identity", "column_list_lacks_replica_identity")
            for item in issues[kind]
            if item["table"] == table
        ]
        assert bool(flagged) is refused, f"PostgreSQL {major}: refused = {refused}, the checks found {flagged}"

        def run(query, params=None):
            return _publications.fetch_rows(conn, query, params)

        state = _publications.read_publication(run, publication, major)
        warnings = _publications.column_list_problems(run, state, state["tables"], "UPDATE")
        assert bool(warnings) is refused, f"PostgreSQL {major}: refused = {refused}, the module warns {warnings}"
        if case == "full_generated_left_out":
            assert flagged == [("column_list_lacks_replica_identity", "g")]
            assert "replica identity column(s) g," in warnings[0]
