# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Schema drift between a publisher and a subscriber: what is published but missing or different here.

Logical replication does not replicate the schema. The apply worker matches tables by schema and
name and columns by name: a published column missing on the subscriber stops it ("logical
replication target relation ... is missing replicated column"), a table in a publication that
the subscriber lacks fails its sync; a type difference works as long as every value converts
(input functions), so it is a warning.

Published columns are those PostgreSQL sends: a publication's column list leaves columns out, and
generated columns are sent only from PostgreSQL 18 when the publication asks for them
(``publish_generated_columns``) or lists them - ``pg_publication_tables.attnames`` (15+) says
which; before 15 every column is published except generated ones.

For ``replication_info``'s ``schema_drift`` check: :func:`read_published_columns` on the
publisher, :func:`read_local_columns` on the subscriber, :func:`schema_drift` to compare,
:func:`check_schema_drift` to turn the items into findings.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows, table_display
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import finding
from ansible_collections.inventium.logical_replication.plugins.module_utils._publications import published_tables_query
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    GENERATED_COLUMNS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import parse_qualified_name

MAX_LISTED = 10

COLUMNS_JSON = (
    "coalesce((SELECT json_agg(json_build_object('name', a.attname::text,"
    " 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'generated', a.attgenerated::text)"
    " ORDER BY a.attnum) FROM pg_catalog.pg_attribute a"
    " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json)"
)


def read_published_columns(publisher_conn, publications=None):
    """What the publisher publishes: ``{"schema.table": {schema, table, publications, columns: {name: type}}}``.

    ``publisher_conn``: a psycopg connection to the publisher's database; ``publications``: names
    (e.g. the subscription's ``publications``), ``None`` for every publication of the database.
    A table in several publications gets the union of their published columns.
    """
    major = publisher_conn.info.server_version // 10000
    names = list(publications) if publications is not None else None
    published = {}
    for row in fetch_rows(publisher_conn, published_tables_query(major, COLUMNS_JSON), [names, names]):
        key = table_display(row["schema"], row["table"])
        entry = published.setdefault(
            key, {"schema": row["schema"], "table": row["table"], "publications": [], "columns": {}}
        )
        entry["publications"].append(row["publication"])
        sent = set(row["attnames"]) if row["attnames"] is not None else None
        for column in row["columns"]:
            if sent is not None and column["name"] not in sent:
                continue
            if major < GENERATED_COLUMNS_MAJOR and column["generated"]:
                continue
            entry["columns"][column["name"]] = column["type"]
    return published


LOCAL_COLUMNS_QUERY = (
    "SELECT u.schema, u.table, " + COLUMNS_JSON + " AS columns"  # noqa: S608 - constant SQL
    ' FROM unnest(%s::text[], %s::text[]) AS u(schema, "table")'
    " JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema"
    " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.table AND c.relkind IN ('r', 'p')"
)


def read_local_columns(conn, tables):
    """The columns of ``tables`` on this node: ``{"schema.table": {schema, table, columns: {name: type}}}``.

    ``tables``: ``schema.table`` names (as :func:`read_published_columns` keys them) or
    ``(schema, table)`` pairs. A table that does not exist here is absent from the result.
    """
    pairs = [tuple(t) if isinstance(t, (tuple, list)) else tuple(parse_qualified_name(t)) for t in tables]
    if not pairs:
        return {}
    rows = fetch_rows(conn, LOCAL_COLUMNS_QUERY, [[p[0] for p in pairs], [p[1] for p in pairs]])
    return {
        table_display(row["schema"], row["table"]): {
            "schema": row["schema"],
            "table": row["table"],
            "columns": {c["name"]: c["type"] for c in row["columns"]},
        }
        for row in rows
    }


def _item(table, kind, column=None, publisher_type=None, subscriber_type=None):
    return {
        "table": table,
        "kind": kind,
        "column": column,
        "publisher_type": publisher_type,
        "subscriber_type": subscriber_type,
    }


def schema_drift(published, local):
    """Compare (pure): items ``{table, kind, column, publisher_type, subscriber_type}``, sorted by table.

    ``kind``: ``missing_table`` (published, absent here), ``missing_column`` (published column absent
    here), ``type_mismatch`` (same column, another type). Columns only the subscriber has are not
    drift (they get NULL or their default).
    """
    items = []
    for key in sorted(published):
        pub = published[key]
        here = local.get(key)
        if here is None:
            items.append(_item(key, "missing_table"))
            continue
        for column, pub_type in pub["columns"].items():
            sub_type = here["columns"].get(column)
            if sub_type is None:
                items.append(_item(key, "missing_column", column, pub_type))
            elif sub_type != pub_type:
                items.append(_item(key, "type_mismatch", column, pub_type, sub_type))
    return items


def _listing(texts):
    texts = list(texts)
    shown = ", ".join(texts[:MAX_LISTED])
    if len(texts) > MAX_LISTED:
        shown += f" and {len(texts) - MAX_LISTED} more"
    return shown


def check_schema_drift(items, node=None):
    """Findings (``_checks.finding``, code ``schema_drift``) of :func:`schema_drift` items; [] when none.

    Missing tables and columns are errors - the apply worker (or the table's sync) fails on them;
    type differences are warnings - apply works while every value converts. ``node`` (optional)
    names the subscriber in the messages.
    """
    where = f" on {node}" if node else ""
    found = []
    tables = [i["table"] for i in items if i["kind"] == "missing_table"]
    if tables:
        found.append(
            finding(
                "error",
                "schema_drift",
                f"{len(tables)} published table(s) missing{where}; their initial sync fails: {_listing(tables)}",
                "Create the table on the subscriber with the publisher's definition (playbooks/schema_change.yml "
                "applies a migration in the safe order), then ALTER SUBSCRIPTION ... REFRESH PUBLICATION.",
            )
        )
    columns = [f"{i['table']}.{i['column']} ({i['publisher_type']})" for i in items if i["kind"] == "missing_column"]
    if columns:
        found.append(
            finding(
                "error",
                "schema_drift",
                f"{len(columns)} published column(s) missing{where}; the apply worker stops on the first change "
                f"to their table: {_listing(columns)}",
                "Add the columns on the subscriber (additive changes: subscribers first, then the publisher - "
                "playbooks/schema_change.yml), or leave them out of the publication's column list.",
            )
        )
    types = [
        f"{i['table']}.{i['column']} (publisher {i['publisher_type']}, subscriber {i['subscriber_type']})"
        for i in items
        if i["kind"] == "type_mismatch"
    ]
    if types:
        found.append(
            finding(
                "warning",
                "schema_drift",
                f"{len(types)} column type(s) differ{where}; apply fails on a value the subscriber's type does not "
                f"accept: {_listing(types)}",
                "Align the types (widen on the subscriber first, e.g. integer -> bigint), or make sure every "
                "published value converts.",
            )
        )
    return found
