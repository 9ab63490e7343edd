# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Schema changes of replicated tables: one migration, one node, one transaction.

PostgreSQL parses and runs the migration; what it changed is read from the catalog before and
after, inside the same transaction (a snapshot of every user table: its columns by ``attnum``
with ``format_type`` and its indexes). The difference is the delta - no SQL is classified by
hand. A change touching a published table (publisher: ``pg_publication_tables`` with its column
list; subscriber: ``pg_subscription_rel``) that would stop the apply worker is destructive and
refused (rolled back) unless allowed. Used by the ``schema_change`` module.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows, table_display
from ansible_collections.inventium.logical_replication.plugins.module_utils._publications import published_tables_query
from ansible_collections.inventium.logical_replication.plugins.module_utils._sequences import table_sequences
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    GENERATED_COLUMNS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    format_db_error,
    psycopg,
)

NOT_IN_TRANSACTION_SQLSTATE = "25001"
"""``active_sql_transaction``: PostgreSQL refuses the statement inside a transaction block."""

TRANSACTION_CONTROL = ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE")
"""First words of statements that would end or split the module's own transaction."""

DELTA_KINDS = (
    "added_tables",
    "dropped_tables",
    "renamed_tables",
    "added_columns",
    "dropped_columns",
    "renamed_columns",
    "type_changes",
    "added_indexes",
    "dropped_indexes",
    "altered_tables",
)

SAFE_SEQUENCES = {
    "dropped_column": (
        "drop a published column on the publisher first - or first remove it from the publication's column "
        "list (ALTER PUBLICATION ... SET TABLE ... (columns)) - then on every subscriber; a subscriber keeps "
        "the column meanwhile and gets NULL or its default in new rows (drop a NOT NULL there first)"
    ),
    "renamed_column": (
        "the apply worker matches columns by name, so a rename on one side stops it; instead add a column "
        "with the new name (subscribers first, then the publisher), backfill it, switch the writers to it, "
        "then drop the old column (publisher first, then subscribers)"
    ),
    "type_change": (
        "add a new column of the new type (subscribers first, then the publisher), backfill it, switch the "
        "writers to it, then drop the old column (publisher first, then subscribers); a widening change that "
        "accepts every old value (e.g. integer -> bigint) may instead be made on the subscribers first, then "
        "on the publisher"
    ),
    "dropped_table": (
        "remove the table from its publications (ALTER PUBLICATION ... DROP TABLE, or the publication "
        "module) and refresh the subscriptions (ALTER SUBSCRIPTION ... REFRESH PUBLICATION) first, then drop "
        "it on the publisher, then on the subscribers"
    ),
    "renamed_table": (
        "the subscriber maps tables by schema and name, so a rename on one side breaks replication of the "
        "table; create the table under the new name, add it to the publication and refresh the subscriptions, "
        "move the writers, then retire the old table (remove it from the publication first)"
    ),
}
"""The safe way to make each destructive change, quoted in the refusal."""


class MigrationError(Exception):
    """The migration cannot be applied; the message is complete (``details`` go to the result)."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


# -- statements ---------------------------------------------------------------------------------


def _dollar_tag(text, i):
    """The dollar-quote tag starting at ``text[i]`` (``$$`` or ``$name$``), or ``None``."""
    j = i + 1
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    if j < len(text) and text[j] == "$" and not text[i + 1 : i + 2].isdigit():
        return text[i : j + 1]
    return None


def split_statements(text):
    """Split SQL text at the semicolons that end statements; returns the statements without them.

    Only the lexical rules that decide where a statement ends are followed (quotes, ``E''``
    escapes, quoted identifiers, dollar quotes, comments); what a statement means is left to
    PostgreSQL. Empty statements (and ones holding only comments) are dropped. A SQL-standard
    function body (``BEGIN ATOMIC ... END``) has semicolons of its own: give such a migration as
    a list of statements.
    """
    statements = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif char == "/" and text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif char == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            i += 1
            while i < n:
                if escapes and text[i] == "\\":
                    i += 2
                elif text[i] == "'":
                    if text.startswith("''", i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
        elif char == '"':
            end = text.find('"', i + 1)
            while end >= 0 and text.startswith('""', end):
                end = text.find('"', end + 2)
            i = n if end < 0 else end + 1
        elif char == "$" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            tag = _dollar_tag(text, i)
            if tag is None:
                i += 1
            else:
                end = text.find(tag, i + len(tag))
                i = n if end < 0 else end + len(tag)
        elif char == ";":
            statements.append(text[start:i])
            i += 1
            start = i
        else:
            i += 1
    statements.append(text[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement):
    """False for whitespace and comments only."""
    return bool(_strip_comments(statement).strip())


def _strip_comments(statement):
    out, i, n = [], 0, len(statement)
    while i < n:
        if statement.startswith("--", i):
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(statement[i])
            i += 1
    return "".join(out)


def normalize_migration(migration):
    """The migration's statements: SQL text is split (:func:`split_statements`), a list is taken item by item.

    Raises :class:`MigrationError` for an empty migration and for transaction control statements
    (the module runs the migration in its own transaction).
    """
    if isinstance(migration, str):
        statements = split_statements(migration)
    else:
        statements = []
        for item in migration or ():
            # A list item may still end with a semicolon (copied from a file).
            text = str(item).strip()
            while text.endswith(";"):
                text = text[:-1].rstrip()
            if _has_code(text):
                statements.append(text)
    if not statements:
        raise MigrationError("the migration has no statements")
    for index, statement in enumerate(statements):
        words = _strip_comments(statement).split()
        first = words[0].upper().rstrip(";") if words else ""
        if first in TRANSACTION_CONTROL:
            raise MigrationError(
                f"statement {index + 1} ({brief(statement)}) is transaction control: schema_change runs the whole "
                "migration in one transaction of its own (committed at the end, rolled back on any error); remove "
                "BEGIN/COMMIT/ROLLBACK/SAVEPOINT from the migration",
                failed_statement={"index": index + 1, "statement": statement},
            )
    return statements


def brief(statement, limit=200):
    """One line of a statement for messages."""
    text = " ".join(statement.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- catalog ------------------------------------------------------------------------------------

SNAPSHOT_QUERY = (
    "SELECT c.oid::bigint AS relid, n.nspname::text AS schema, c.relname::text AS table,"
    " coalesce((SELECT json_agg(json_build_object('attnum', a.attnum, 'name', a.attname::text,"
    " 'type', pg_catalog.format_type(a.atttypid, a.atttypmod), 'generated', a.attgenerated::text,"
    " 'not_null', a.attnotnull, 'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid))"
    " ORDER BY a.attnum) FROM pg_catalog.pg_attribute a"
    " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
    " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json) AS columns,"
    " coalesce((SELECT json_agg(json_build_object('oid', i.oid::bigint, 'name', i.relname::text) ORDER BY i.relname)"
    " FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid"
    " WHERE x.indrelid = c.oid), '[]'::json) AS indexes,"
    " json_build_object('constraints', ARRAY(SELECT k.conname::text || ' ' || pg_catalog.pg_get_constraintdef(k.oid)"
    " FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid ORDER BY 1),"
    " 'acl', c.relacl::text, 'comment', pg_catalog.obj_description(c.oid, 'pg_class'),"
    " 'replica_identity', c.relreplident::text, 'owner', c.relowner::regrole::text) AS properties"
    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'"
)
"""Every user table (plain and partitioned) with its columns and indexes; temporary tables are left out."""


def read_snapshot(conn):
    """``{relid: {schema, table, name, columns: {attnum: {name, type, generated}}, indexes: {oid: name}}}``."""
    snapshot = {}
    for row in fetch_rows(conn, SNAPSHOT_QUERY):
        snapshot[row["relid"]] = {
            "schema": row["schema"],
            "table": row["table"],
            "name": table_display(row["schema"], row["table"]),
            "columns": {
                c["attnum"]: {"name": c["name"], "type": c["type"], "generated": c["generated"] or ""}
                for c in row["columns"]
            },
            "indexes": {i["oid"]: i["name"] for i in row["indexes"]},
            # What else a migration may change on a table: compared, not classified.
            "properties": {
                **row["properties"],
                "columns": {c["attnum"]: [c["not_null"], c["default"]] for c in row["columns"]},
            },
        }
    return snapshot


SUBSCRIBED_QUERY = (
    "SELECT sr.srrelid::bigint AS relid, s.subname::text AS subscription"
    " FROM pg_catalog.pg_subscription_rel sr JOIN pg_catalog.pg_subscription s ON s.oid = sr.srsubid"
)


def read_replicated(conn, major, snapshot):
    """What replication uses here, read before the migration: ``{relid: {publications, subscriptions, columns}}``.

    ``columns`` is the set of column names the publications publish (``None``: every column, the
    case of a subscribed table - the subscriber cannot see the publisher's column list). Before
    PostgreSQL 18 generated columns are never published.
    """
    replicated = {}
    for row in fetch_rows(conn, published_tables_query(major), [None, None]):
        entry = replicated.setdefault(row["relid"], {"publications": [], "subscriptions": [], "columns": set()})
        entry["publications"].append(row["publication"])
        table = snapshot.get(row["relid"])
        if row["attnames"] is not None:
            names = set(row["attnames"])
        elif table is not None:
            names = {c["name"] for c in table["columns"].values()}
        else:
            names = set()
        if major < GENERATED_COLUMNS_MAJOR and table is not None:
            names -= {c["name"] for c in table["columns"].values() if c["generated"]}
        if entry["columns"] is not None:
            entry["columns"] |= names
    for row in fetch_rows(conn, SUBSCRIBED_QUERY):
        entry = replicated.setdefault(row["relid"], {"publications": [], "subscriptions": [], "columns": set()})
        entry["subscriptions"].append(row["subscription"])
        entry["columns"] = None
    return replicated


def publications_of(conn, major, relids):
    """``{relid: [publication, ...]}`` of the given tables as the catalog shows them now (in the transaction)."""
    found = {}
    if not relids:
        return found
    for row in fetch_rows(conn, published_tables_query(major), [None, None]):
        if row["relid"] in relids:
            found.setdefault(row["relid"], []).append(row["publication"])
    return found


# -- delta --------------------------------------------------------------------------------------


def empty_delta():
    return {kind: [] for kind in DELTA_KINDS}


def compute_delta(before, after):
    """What changed between two snapshots (:func:`read_snapshot`), as lists per kind of change."""
    delta = empty_delta()
    for relid, old in sorted(before.items(), key=lambda item: item[1]["name"]):
        new = after.get(relid)
        if new is None:
            delta["dropped_tables"].append({"table": old["name"], "_relid": relid})
            continue
        if new["name"] != old["name"]:
            delta["renamed_tables"].append(
                {"from": old["name"], "to": new["name"], "table": new["name"], "_relid": relid}
            )
        for attnum, col in sorted(old["columns"].items()):
            now = new["columns"].get(attnum)
            entry = {"table": new["name"], "_relid": relid}
            if now is None:
                delta["dropped_columns"].append({**entry, "column": col["name"], "type": col["type"]})
                continue
            if now["name"] != col["name"]:
                delta["renamed_columns"].append(
                    {**entry, "from": col["name"], "to": now["name"], "column": col["name"]}
                )
            if now["type"] != col["type"]:
                delta["type_changes"].append({**entry, "column": col["name"], "from": col["type"], "to": now["type"]})
        for attnum, col in sorted(new["columns"].items()):
            if attnum not in old["columns"]:
                delta["added_columns"].append(
                    {"table": new["name"], "column": col["name"], "type": col["type"], "_relid": relid}
                )
        for oid, name in sorted(new["indexes"].items(), key=lambda item: item[1]):
            if oid not in old["indexes"]:
                delta["added_indexes"].append({"table": new["name"], "index": name, "_relid": relid})
        for oid, name in sorted(old["indexes"].items(), key=lambda item: item[1]):
            if oid not in new["indexes"]:
                delta["dropped_indexes"].append({"table": new["name"], "index": name, "_relid": relid})
        changed = _changed_properties(old["properties"], new["properties"])
        if changed:
            delta["altered_tables"].append({"table": new["name"], "changed": changed, "_relid": relid})
    for relid, new in sorted(after.items(), key=lambda item: item[1]["name"]):
        if relid not in before:
            delta["added_tables"].append(
                {
                    "table": new["name"],
                    "columns": table_columns(new),
                    "_relid": relid,
                }
            )
    return delta


PROPERTY_NAMES = {
    "constraints": "constraints",
    "acl": "privileges",
    "comment": "comment",
    "replica_identity": "replica identity",
    "owner": "owner",
    "columns": "column defaults or NOT NULL",
}


def _changed_properties(old, new):
    """Names of the table properties (constraints, privileges ...) that differ.

    Column defaults and NOT NULL are compared for the columns both sides have (an added or dropped
    column is in the delta already).
    """
    changed = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if key == "columns":
            common = set(before) & set(after)
            before = {k: before[k] for k in common}
            after = {k: after[k] for k in common}
        if before != after:
            changed.append(PROPERTY_NAMES.get(key, key))
    return changed


def delta_is_empty(delta):
    return not any(delta[kind] for kind in DELTA_KINDS)


def public_delta(delta):
    """The delta without internal keys (``_relid``), as returned."""
    return {
        kind: [{k: v for k, v in item.items() if not k.startswith("_")} for item in delta[kind]] for kind in DELTA_KINDS
    }


def _used_by(entry):
    parts = []
    if entry["publications"]:
        parts.append("published in " + ", ".join(sorted(set(entry["publications"]))))
    if entry["subscriptions"]:
        parts.append("subscribed by " + ", ".join(sorted(set(entry["subscriptions"]))))
    return " and ".join(parts)


def _column_replicated(entry, column):
    return entry["columns"] is None or column in entry["columns"]


def classify(delta, replicated):
    """The destructive changes of ``delta`` given what replication used before (:func:`read_replicated`).

    Each is ``{kind, table, column, used_by, message, safe_sequence}``; ``kind`` is one of
    ``dropped_column``, ``renamed_column``, ``type_change``, ``dropped_table``, ``renamed_table``.
    A column the publication's column list leaves out is not replicated, so changing it is not
    destructive; on a subscriber every column of a subscribed table counts.
    """
    found = []

    def add(kind, item, column, what):
        entry = replicated[item["_relid"]]
        found.append(
            {
                "kind": kind,
                "table": item["table"],
                "column": column,
                "used_by": _used_by(entry),
                "message": f"{what} ({_used_by(entry)})",
                "safe_sequence": SAFE_SEQUENCES[kind],
            }
        )

    for item in delta["dropped_tables"]:
        if item["_relid"] in replicated:
            add("dropped_table", item, None, f"drops the replicated table {item['table']}")
    for item in delta["renamed_tables"]:
        if item["_relid"] in replicated:
            add("renamed_table", item, None, f"renames the replicated table {item['from']} to {item['to']}")
    for item in delta["dropped_columns"]:
        entry = replicated.get(item["_relid"])
        if entry is not None and _column_replicated(entry, item["column"]):
            add("dropped_column", item, item["column"], f"drops the replicated column {item['table']}.{item['column']}")
    for item in delta["renamed_columns"]:
        entry = replicated.get(item["_relid"])
        if entry is not None and _column_replicated(entry, item["from"]):
            add(
                "renamed_column",
                item,
                item["from"],
                f"renames the replicated column {item['table']}.{item['from']} to {item['to']}",
            )
    for item in delta["type_changes"]:
        entry = replicated.get(item["_relid"])
        if entry is not None and _column_replicated(entry, item["column"]):
            add(
                "type_change",
                item,
                item["column"],
                f"changes the type of the replicated column {item['table']}.{item['column']} "
                f"from {item['from']} to {item['to']}",
            )
    return found


def refusal_message(destructive):
    """The refusal of destructive changes: what each change is and its safe sequence."""
    lines = [f"the migration makes {len(destructive)} destructive change(s) to replicated tables; rolled back:"]
    for item in destructive:
        lines.append(f"- {item['message']}: it would stop the apply worker. Safe sequence: {item['safe_sequence']}")
    lines.append("Set allow_destructive=true (playbook: -e schema_change_allow_destructive=true) to apply it anyway.")
    return "\n".join(lines)


def affected_tables(delta):
    """The relids the delta touches."""
    return {item["_relid"] for kind in DELTA_KINDS for item in delta[kind]}


def table_columns(table):
    """A table's columns as ``["name type", ...]`` in column order (for the diff)."""
    if table is None:
        return None
    return [
        f"{table['columns'][attnum]['name']} {table['columns'][attnum]['type']}" for attnum in sorted(table["columns"])
    ]


def diff_states(before, after, relids):
    """``(before, after)`` dicts ``{table: [columns]}`` of the affected tables (absent tables left out)."""
    old, new = {}, {}
    for relid in relids:
        if relid in before:
            old[before[relid]["name"]] = table_columns(before[relid])
        if relid in after:
            new[after[relid]["name"]] = table_columns(after[relid])
    return old, new


# -- the run ------------------------------------------------------------------------------------

WRITE_TAGS = ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY")


def rows_of(status):
    """Rows a data-changing statement wrote, from its command tag (``UPDATE 3``, ``INSERT 0 1``); 0 otherwise."""
    words = (status or "").split()
    if words and words[0] in WRITE_TAGS and words[-1].isdigit():
        return int(words[-1])
    return 0


def run_migration(conn, major, statements, allow_destructive=False, check_mode=False, lock_timeout=None):
    """Run ``statements`` in ONE transaction on ``conn`` (autocommit connection), classify, commit or roll back.

    Returns ``{changed, delta, destructive, committed, diff: (before, after), publications, sequences}``
    (for each added table, the publications that publish it after the change, and its sequences).
    Raises :class:`MigrationError` - with nothing applied - when a statement fails, cannot run in a
    transaction block, or the migration is destructive and not allowed.
    """
    conn.execute("BEGIN")
    try:
        if lock_timeout:
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', %s, true)", [lock_timeout])
        # pg_publication_tables' row estimates can make the planner switch JIT on for a tiny catalog read.
        conn.execute("SELECT pg_catalog.set_config('jit', 'off', true)")
        before = read_snapshot(conn)
        replicated = read_replicated(conn, major, before)
        rows_written = 0
        for index, statement in enumerate(statements):
            try:
                cursor = conn.execute(statement, prepare=False)
            except psycopg.Error as exc:
                conn.execute("ROLLBACK")
                raise _statement_error(exc, index, statement, len(statements)) from None
            rows_written += rows_of(cursor.statusmessage)
        after = read_snapshot(conn)
        delta = compute_delta(before, after)
        destructive = classify(delta, replicated)
        added = {item["_relid"] for item in delta["added_tables"]}
        pubs = publications_of(conn, major, added)
        publications = {after[relid]["name"]: sorted(set(pubs.get(relid, []))) for relid in added}
        owned = table_sequences(conn, added) if added else {}
        sequences = {after[relid]["name"]: [str(name) for name in owned.get(relid, [])] for relid in added}
        if destructive and not allow_destructive:
            conn.execute("ROLLBACK")
            raise MigrationError(
                refusal_message(destructive),
                delta=public_delta(delta),
                destructive=destructive,
            )
        # Not a transaction id: every ALTER TABLE gets one (its lock is WAL-logged for standbys), even a no-op.
        changed = not delta_is_empty(delta) or rows_written > 0
        conn.execute("ROLLBACK" if check_mode else "COMMIT")
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.closed:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        raise
    return {
        "changed": changed,
        "delta": public_delta(delta),
        "destructive": destructive,
        "committed": not check_mode,
        "diff": diff_states(before, after, affected_tables(delta)),
        "publications": publications,
        "sequences": sequences,
    }


def _statement_error(exc, index, statement, total):
    where = f"statement {index + 1} of {total} ({brief(statement)})"
    if getattr(exc, "sqlstate", None) == NOT_IN_TRANSACTION_SQLSTATE:
        message = (
            f"{where} cannot run inside a transaction block, and schema_change applies a migration in one "
            "transaction so that nothing is half-applied: run it on its own, outside this migration "
            f"(e.g. psql -c), before or after it. Nothing was applied. PostgreSQL: {format_db_error(exc)}"
        )
    else:
        message = f"{where} failed, nothing was applied (rolled back): {format_db_error(exc)}"
    return MigrationError(
        message,
        failed_statement={"index": index + 1, "statement": statement},
        sqlstate=getattr(exc, "sqlstate", None),
    )
