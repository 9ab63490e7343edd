# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Prove that a subscriber holds what the publisher publishes to it: per table, row count and checksum.

For every table of the node's subscription (``pg_subscription_rel``) the publisher side is read
through the subscription's publications as PostgreSQL applies them: only the published columns
(``pg_publication_tables.attnames``) and only the rows the row filters let through (ORed over the
publications; one publication without a filter means every row). The checksum is an
order-independent sum of the first 60 bits of each row's md5, so it needs no sort and no memory
proportional to the table. Both sessions use the same TimeZone, DateStyle and float output, so the
text of a row is the same on either server.
"""

from __future__ import annotations

import time

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import connect, psycopg

if psycopg is not None:
    from psycopg import sql
    from psycopg.rows import tuple_row
else:  # pragma: no cover - the module reports the missing library
    sql = tuple_row = None

_SESSION = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3; SET IntervalStyle = 'postgres'"
)

_ATTEMPTS = 10
_RETRY_PAUSE = 0.35

_PUBLISHED = """
SELECT pt.schemaname, pt.tablename, pt.attnames, pt.rowfilter
FROM pg_catalog.pg_publication_tables AS pt
WHERE pt.pubname = ANY(%s)
"""

_SUBSCRIPTION = """
SELECT s.subpublications, s.subenabled,
       ARRAY(SELECT n.nspname || '.' || c.relname || ':' || r.srsubstate::text
             FROM pg_catalog.pg_subscription_rel AS r
             JOIN pg_catalog.pg_class AS c ON c.oid = r.srrelid
             JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
             WHERE r.srsubid = s.oid) AS tables
FROM pg_catalog.pg_subscription AS s
WHERE s.subname = %s AND s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
"""


def _digest_query(schema, table, columns, row_filter):
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    query = sql.SQL(
        "SELECT count(*), COALESCE(sum(('x' || substr(md5({row}), 1, 15))::bit(60)::bigint), 0)::text FROM {table}"
    ).format(row=row, table=sql.Identifier(schema, table))
    if row_filter:
        # The filter is PostgreSQL's own deparsed expression (pg_publication_tables.rowfilter), not user input.
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(row_filter))
    return query


def published_tables(pub_conn, publications):
    """``{(schema, table): {"columns": [...], "filter": sql text or None}}`` as the publications publish them."""
    out = {}
    for schema, table, attnames, rowfilter in pub_conn.execute(_PUBLISHED, (list(publications),)):
        entry = out.setdefault((schema, table), {"columns": [], "filters": []})
        for column in attnames or []:
            if column not in entry["columns"]:
                entry["columns"].append(column)
        entry["filters"].append(rowfilter)
    for entry in out.values():
        filters = entry.pop("filters")
        entry["filter"] = None if any(f is None for f in filters) else " OR ".join(f"({f})" for f in filters)
    return out


def wait_caught_up(pub_conn, slot, timeout):
    """Wait until the node's walsender has replayed the publisher's current WAL position; seconds taken."""
    start = time.monotonic()
    target = pub_conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    while True:
        row = pub_conn.execute(
            "SELECT replay_lsn >= %s::pg_lsn FROM pg_catalog.pg_stat_replication WHERE application_name = %s",
            (target, slot),
        ).fetchone()
        if row and row[0]:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{slot} did not catch up with {target} within {timeout:.0f} s")
        time.sleep(0.2)


def compare_node(publisher, node, subscription, timeout=300.0):
    """Compare every table of ``subscription`` on ``node`` with the publisher. Returns a result dict."""
    with connect(publisher) as pub_conn, connect(node) as node_conn:
        pub_conn.row_factory = node_conn.row_factory = tuple_row
        row = node_conn.execute(_SUBSCRIPTION, (subscription,)).fetchone()
        if row is None:
            return {"subscription": subscription, "equal": False, "tables": [], "problems": ["no such subscription"]}
        publications, enabled, rel_states = row
        problems = []
        if not enabled:
            problems.append("the subscription is disabled")
        not_ready = [t for t in rel_states if not t.endswith(":r")]
        if not_ready:
            problems.append("tables not ready: " + ", ".join(not_ready))
        waited = None
        if not problems:
            try:
                waited = wait_caught_up(pub_conn, subscription, timeout)
            except TimeoutError as exc:
                problems.append(str(exc))
        published = published_tables(pub_conn, publications)
        subscribed = {tuple(t.rsplit(":", 1)[0].split(".", 1)) for t in rel_states}
        tables = []
        for conn in (pub_conn, node_conn):
            conn.execute(_SESSION)
        for key in sorted(published):
            schema, table = key
            entry = published[key]
            if key not in subscribed:
                problems.append(f"{schema}.{table} is published but not in the subscription")
                continue
            # A table written all the time (the sampler's heartbeat, once a second) differs for the
            # few milliseconds its change takes to arrive: read both sides again, a few times.
            for attempt in range(_ATTEMPTS):
                pub_query = _digest_query(schema, table, entry["columns"], entry["filter"])
                node_query = _digest_query(schema, table, entry["columns"], None)
                pub_count, pub_sum = pub_conn.execute(pub_query).fetchone()
                node_count, node_sum = node_conn.execute(node_query).fetchone()
                equal = pub_count == node_count and pub_sum == node_sum
                if equal or attempt == _ATTEMPTS - 1:
                    break
                time.sleep(_RETRY_PAUSE)
            tables.append(
                {
                    "table": f"{schema}.{table}",
                    "publisher_rows": pub_count,
                    "node_rows": node_count,
                    "publisher_checksum": pub_sum,
                    "node_checksum": node_sum,
                    "equal": equal,
                }
            )
            if not equal:
                problems.append(
                    f"{schema}.{table}: publisher {pub_count} rows / {pub_sum}, node {node_count} rows / {node_sum}"
                )
        return {
            "subscription": subscription,
            "equal": not problems,
            "caught_up_seconds": waited,
            "tables": tables,
            "problems": problems,
        }
