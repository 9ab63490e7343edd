# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What every catalog reader of the collection shares: running a read, caching SQL per major, small formats.

Readers take a psycopg 3 connection and the server's major version and return plain data
(timestamps as ISO 8601 strings, LSNs as text). Rows are read with ``dict_row`` whatever the
connection's row factory is; in autocommit mode nothing is left open.
"""

from __future__ import annotations

import functools

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import dict_row, sql
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident

CURRENT_LSN = (
    "CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()"
    " ELSE pg_catalog.pg_current_wal_lsn() END"
)
"""The server's WAL position: the insert position, or the last replayed one on a standby."""


def memoize(func):
    """Cache a query builder's result per arguments (the SQL of a major version is built once)."""
    cache = {}

    @functools.wraps(func)
    def wrapper(*args):
        if args not in cache:
            cache[args] = func(*args)
        return cache[args]

    return wrapper


def fetch_rows(conn, query, params=None):
    """Every row of ``query`` as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def fetch_pipelined(conn, queries):
    """Every row of each ``(query, params)`` of ``queries`` as dicts (a list per query), all sent in one pipeline.

    The server gets them together and answers in one go: one round trip instead of one per query. Under CPU
    contention every round trip waits to be scheduled twice (the server's process, then the client), which is
    most of a small query's time. A failing query raises psycopg's error; the connection stays usable.
    """
    cursors = []
    try:
        with conn.pipeline():
            for query, params in queries:
                cursor = conn.cursor(row_factory=dict_row)
                cursors.append(cursor)
                cursor.execute(query, params)
        # Leaving the block sent ONE Sync and read every result into its cursor. (A fetch inside the block
        # would sync there, and leaving would sync again: two round trips.)
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def columns_sql(columns):
    """A SELECT list from constant column expressions."""
    return sql.SQL(", ").join(sql.SQL(c) for c in columns)


def iso(value):
    """A timestamp as ISO 8601 text (other values unchanged)."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def table_display(schema, table):
    """``schema.table`` quoted where needed."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"
