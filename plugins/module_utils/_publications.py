# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The publications: the ONLY SQL reading ``pg_publication*``, the replica identity rule, and the planner.

Used by the ``publication`` module, ``replication_info`` (and its checks) alike.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    fetch_rows,
    memoize,
    table_display,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    COLUMN_LIST_MAJOR,
    GENERATED_COLUMNS_FROM_CATALOG,
    GENERATED_COLUMNS_MAJOR,
    PUBLISH_OPERATIONS,
    ROW_FILTER_MAJOR,
    SCHEMAS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    quote_ident,
)


def publication_rels_query(major, pubid=None):
    """SELECT of the tables listed in a publication (``pg_publication_rel``) with column list and row filter.

    ``pubid`` is the SQL of the publication's OID (default: the parameter ``%s``).
    """
    if pubid is None:
        pubid = sql.Placeholder()
    if major >= ROW_FILTER_MAJOR:
        extra = sql.SQL(
            "pg_catalog.pg_get_expr(pr.prqual, pr.prrelid) AS where, pr.prqual::text AS qual_tree,"
            " CASE WHEN pr.prattrs IS NULL THEN NULL ELSE ARRAY("
            "SELECT a.attname::text FROM pg_catalog.pg_attribute a"
            " WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs::int2[])"
            " ORDER BY array_position(pr.prattrs::int2[], a.attnum)) END AS columns,"
            " pr.prattrs::int2[] AS attnums"
        )
    else:
        extra = sql.SQL(
            "NULL::text AS where, NULL::text AS qual_tree, NULL::text[] AS columns, NULL::int2[] AS attnums"
        )
    return sql.SQL(
        "SELECT n.nspname::text AS schema, c.relname::text AS table, c.oid AS relid, c.relkind::text AS relkind, {}"
        " FROM pg_catalog.pg_publication_rel pr"
        " JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE pr.prpubid = {}"
    ).format(extra, pubid)


def publication_schemas_query(pubid=None):
    """SELECT of the schemas of a publication (``TABLES IN SCHEMA``, PostgreSQL 15+); ``pubid`` as above."""
    if pubid is None:
        pubid = sql.Placeholder()
    return sql.SQL(
        "SELECT n.nspname::text AS name FROM pg_catalog.pg_publication_namespace pn"
        " JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = {}"
    ).format(pubid)


def publication_query(major, by_name=True):
    """SELECT of ``pg_publication`` rows: one publication (parameter: its name) or, ``by_name=False``, all."""
    gencols = "p.pubgencols::text" if major >= GENERATED_COLUMNS_MAJOR else "NULL::text"
    query = sql.SQL(
        "SELECT p.oid, p.pubname::text AS pubname, pg_catalog.pg_get_userbyid(p.pubowner)::text AS owner,"
        " p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot,"
        " {} AS pubgencols, pg_catalog.obj_description(p.oid, 'pg_publication') AS comment"
        " FROM pg_catalog.pg_publication p"
    ).format(sql.SQL(gencols))
    if by_name:
        query += sql.SQL(" WHERE p.pubname = %s")
    return query


def published_tables_query(major, extra_columns=None):
    """Every (table, publication) pair as ``pg_publication_tables`` lists them (FOR ALL TABLES, TABLES IN
    SCHEMA and partitions resolved): ``relid``, ``schema``, ``table``, ``publication`` and ``attnames`` (the
    published column names, NULL = all or before column lists), plus ``extra_columns`` (SQL over ``c``, the
    table's ``pg_class`` row) as ``columns``. Parameters: the publication names twice (NULL = all).
    Used by ``schema_change`` (what replication uses) and the schema drift check (what is sent)."""
    attnames = "pt.attnames::text[]" if major >= COLUMN_LIST_MAJOR else "NULL::text[]"
    return sql.SQL(
        "SELECT c.oid::bigint AS relid, n.nspname::text AS schema, c.relname::text AS table,"
        " pt.pubname::text AS publication, {attnames} AS attnames{columns}"
        " FROM pg_catalog.pg_publication_tables pt"
        " JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname"
        " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename"
        " WHERE %s::text[] IS NULL OR pt.pubname = ANY (%s::text[])"
        " ORDER BY 2, 3, 4"
    ).format(
        attnames=sql.SQL(attnames),
        columns=sql.SQL(f", {extra_columns} AS columns" if extra_columns else ""),
    )


FIRST_NORMAL_OBJECT_ID = 16384
"""Objects created by initdb (system catalogs, ``information_schema``) have smaller OIDs and are never published."""


def published_relations_cte(major):
    """``WITH RECURSIVE`` items defining ``published(pubid, relid)``: every relation each publication publishes.

    Listed tables, the tables of listed schemas (15+), all tables of ``FOR ALL TABLES``
    publications (PostgreSQL's rule: permanent tables and partitioned tables created after initdb)
    and, recursively, the partitions of published partitioned tables. Plain joins on catalogs
    instead of ``pg_publication_tables``/``pg_partition_tree()``: their default row estimates
    (1000 per call) make the planner's cost explode and switch JIT compilation on (seconds).
    """
    roots = [
        "SELECT pr.prpubid AS pubid, pr.prrelid AS relid FROM pg_catalog.pg_publication_rel pr",
        "SELECT p.oid, c.oid FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_class c"
        " ON c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND c.oid >= 16384"  # FIRST_NORMAL_OBJECT_ID
        " WHERE p.puballtables",
    ]
    if major >= SCHEMAS_MAJOR:
        roots.append(
            "SELECT pn.pnpubid, c.oid FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_class c"
            " ON c.relnamespace = pn.pnnspid AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'"
        )
    return sql.SQL(
        "published_roots(pubid, relid) AS ({}),"
        " published(pubid, relid) AS (SELECT pubid, relid FROM published_roots"
        " UNION SELECT pu.pubid, i.inhrelid FROM published pu"
        " JOIN pg_catalog.pg_class pc ON pc.oid = pu.relid AND pc.relkind = 'p'"
        " JOIN pg_catalog.pg_inherits i ON i.inhparent = pu.relid)"
    ).format(sql.SQL(" UNION ").join(sql.SQL(r) for r in roots))


@memoize
def publications_query(major):
    """Every publication of the database with its tables and schemas, in ONE query.

    Composed from :func:`publication_query`, :func:`publication_rels_query` and
    :func:`publication_schemas_query` (the ``publication`` module's reads), plus the number of
    tables (partitions included) each publishes.
    """
    pubid = sql.SQL("p.oid")
    if major >= SCHEMAS_MAJOR:
        schemas = sql.SQL("ARRAY(SELECT s.name FROM ({}) s ORDER BY s.name)").format(publication_schemas_query(pubid))
    else:
        schemas = sql.SQL("ARRAY[]::text[]")
    return sql.SQL(
        "WITH RECURSIVE {published}"
        " SELECT p.*,"
        " (SELECT coalesce(json_agg(r), '[]'::json) FROM ({rels}) r) AS tables,"
        " {schemas} AS schemas,"
        " (SELECT count(DISTINCT pu.relid) FROM published pu JOIN pg_catalog.pg_class c ON c.oid = pu.relid"
        " AND c.relkind = 'r' WHERE pu.pubid = p.oid)::int AS published_table_count"
        " FROM ({pubs}) p ORDER BY p.pubname"
    ).format(
        published=published_relations_cte(major),
        rels=publication_rels_query(major, pubid),
        schemas=schemas,
        pubs=publication_query(major, by_name=False),
    )


LACKS_REPLICA_IDENTITY = (
    "NOT (c.relreplident = 'f'"
    "  OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
    "   WHERE i.indrelid = c.oid AND i.indisprimary))"
    "  OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
    "   WHERE i.indrelid = c.oid AND i.indisreplident)))"
)
"""SQL condition on ``pg_class c``: the table has no usable replica identity (UPDATE/DELETE fail when published)."""


@memoize
def no_replica_identity_query():
    """The ``publication`` module's check of one definition (parameters: schemas, names, schemas, all_tables).

    Leaf tables among the listed tables, the tables of the listed schemas and (for ALL TABLES) all
    tables, that have no replica identity: UPDATE/DELETE on them fail while they are published.
    """
    return sql.SQL(
        "WITH listed AS ("
        " SELECT c.oid FROM unnest(%s::text[], %s::text[]) AS u(schema, name)"
        " JOIN pg_catalog.pg_namespace n ON n.nspname = u.schema"
        " JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = u.name"
        " UNION"
        " SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND (n.nspname = ANY (%s::text[])"
        "  OR (%s AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'))"
        "), leaves AS ("
        " SELECT oid AS relid FROM listed"
        " UNION SELECT t.relid FROM listed l, LATERAL pg_catalog.pg_partition_tree(l.oid) t WHERE t.isleaf"
        ")"
        " SELECT n.nspname::text AS schema, c.relname::text AS name FROM leaves l"
        " JOIN pg_catalog.pg_class c ON c.oid = l.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND {} ORDER BY 1, 2"
    ).format(sql.SQL(LACKS_REPLICA_IDENTITY))


REPLICA_IDENTITY_ATTNUMS = (
    "CASE c.relreplident"
    " WHEN 'f' THEN ARRAY(SELECT a.attnum FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid"
    "  AND a.attnum > 0 AND NOT a.attisdropped)"
    " WHEN 'd' THEN (SELECT i.indkey::int2[] FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
    " WHEN 'i' THEN (SELECT i.indkey::int2[] FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)"
    " END"
)
"""SQL expression on ``pg_class c``: the attribute numbers of the replica identity (``NULL`` when there is none)."""


FILTER_COLUMN_PATTERN = r"\{VAR :varno 1 :varattno (\d+)"
"""A column of the filtered table in a row filter's node tree (``prqual::text``); group 1: its attnum."""

FULL_WITH_COLUMN_LIST = "REPLICA IDENTITY FULL allows no column list"


def replica_identity_rule_query(source):
    """The replica identity rule, once, over the rows ``(oid, attnums int2[], qual text, ...)`` of ``source``.

    ``attnums`` is a table's column list (``NULL``: none), ``qual`` its row filter's node tree
    (``pg_publication_rel.prqual::text``). Adds ``filter_outside`` (the columns the row filter uses
    outside the replica identity), ``list_lacks`` (the replica identity columns the column list
    lacks; under REPLICA IDENTITY FULL that is every column, generated ones included) and
    ``full_with_list`` (REPLICA IDENTITY FULL with any column list). PostgreSQL refuses UPDATE and
    DELETE on the table in each case. Tables without a replica identity are left out (the
    ``no_replica_identity`` rule covers them). Used by the checks and the ``publication`` module.
    """
    return sql.SQL(
        "SELECT r.*,"
        " (SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
        " FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid"
        " AND a.attnum = ANY (r.filter_attnums) AND NOT a.attnum = ANY (r.ri)) AS filter_outside,"
        " (SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
        " FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid"
        " AND a.attnum = ANY (r.ri) AND NOT a.attnum = ANY (r.attnums)) AS list_lacks,"
        " (r.replident = 'f' AND r.attnums IS NOT NULL) AS full_with_list"
        " FROM (SELECT s.*, c.relreplident::text AS replident, {ri} AS ri,"
        " ARRAY(SELECT m[1]::int2 FROM regexp_matches(s.qual, {pattern}, 'g') m)"
        " AS filter_attnums FROM ({source}) s JOIN pg_catalog.pg_class c ON c.oid = s.oid) r"
        " WHERE r.ri IS NOT NULL"
    ).format(ri=sql.SQL(REPLICA_IDENTITY_ATTNUMS), pattern=sql.SQL(f"'{FILTER_COLUMN_PATTERN}'"), source=source)


@memoize
def table_rule_query():
    """The rule over given tables (parameters: oids, column lists as ``'{1,2}'`` text, row filter trees)."""
    return replica_identity_rule_query(
        sql.SQL(
            "SELECT u.oid, u.attnums::int2[] AS attnums, u.qual"
            " FROM unnest(%s::oid[], %s::text[], %s::text[]) AS u(oid, attnums, qual)"
        )
    )


@memoize
def publication_issues_query(major):
    """Problems of the published tables of every publication of the database, in one query.

    Rows ``(kind, publication, schema, table, detail)``:

    * ``no_replica_identity``: a leaf table without replica identity in a publication that publishes
      UPDATE or DELETE (PostgreSQL refuses them on the table);
    * ``row_filter_outside_replica_identity`` / ``column_list_lacks_replica_identity`` (15+): a
      table whose row filter uses, or whose column list lacks, replica identity columns (``detail``:
      those columns) in such a publication (PostgreSQL refuses UPDATE/DELETE too);
    * ``owned_sequence``: a sequence a published table owns (serial / identity columns; ``detail``:
      its name); sequences are not replicated.
    """
    query = sql.SQL(
        "WITH RECURSIVE {published},"
        " leaves AS (SELECT DISTINCT pu.pubid, pu.relid FROM published pu"
        " JOIN pg_catalog.pg_class c ON c.oid = pu.relid AND c.relkind = 'r')"
        " SELECT 'no_replica_identity' AS kind, p.pubname::text AS publication, n.nspname::text AS schema,"
        " c.relname::text AS table, NULL::text AS detail"
        " FROM leaves l JOIN pg_catalog.pg_publication p ON p.oid = l.pubid"
        " JOIN pg_catalog.pg_class c ON c.oid = l.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE (p.pubupdate OR p.pubdelete) AND {lacks}"
        " UNION ALL"
        " SELECT 'owned_sequence', p.pubname::text, n.nspname::text, c.relname::text,"
        " pg_catalog.quote_ident(sn.nspname) || '.' || pg_catalog.quote_ident(s.relname)"
        " FROM (SELECT DISTINCT pubid, relid FROM published) pu JOIN pg_catalog.pg_publication p ON p.oid = pu.pubid"
        " JOIN pg_catalog.pg_class c ON c.oid = pu.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = c.oid"
        "  AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')"
        " JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
        " JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace"
    ).format(published=published_relations_cte(major), lacks=sql.SQL(LACKS_REPLICA_IDENTITY))
    if major >= ROW_FILTER_MAJOR:
        # Row filters and column lists of tables in publications that publish UPDATE or DELETE.
        catalog_rows = sql.SQL(
            "SELECT c.oid, pr.prattrs::int2[] AS attnums, pr.prqual::text AS qual, p.pubname::text AS publication,"
            " n.nspname::text AS schema, c.relname::text AS table"
            " FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid"
            " JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE (p.pubupdate OR p.pubdelete) AND c.relkind = 'r'"
            " AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL)"
        )
        query += sql.SQL(
            " UNION ALL"
            " SELECT x.kind, x.publication, x.schema, x.table, x.detail FROM ("
            " SELECT r.publication, r.schema, r.table,"
            " unnest(ARRAY['row_filter_outside_replica_identity', 'column_list_lacks_replica_identity']) AS kind,"
            " unnest(ARRAY[r.filter_outside, coalesce(r.list_lacks,"
            " CASE WHEN r.full_with_list THEN {full} END)]) AS detail"
            " FROM ({rule}) r) x WHERE x.detail IS NOT NULL"
        ).format(full=sql.Literal(FULL_WITH_COLUMN_LIST), rule=replica_identity_rule_query(catalog_rows))
    return query + sql.SQL(" ORDER BY 1, 2, 3, 4, 5")


def publication_fields(row, major, tables, schemas, **extra):
    """A ``pg_publication`` row (:func:`publication_query`) as state, with its tables and schemas and ``extra``."""
    state = {
        "name": row["pubname"],
        "owner": row["owner"],
        "all_tables": row["puballtables"],
        "tables": tables,
        "schemas": schemas,
        "publish": list(publish_from_flags(row)),
        "publish_via_partition_root": row["pubviaroot"],
        "comment": row["comment"],
        **extra,
    }
    if major >= GENERATED_COLUMNS_MAJOR:
        state["publish_generated_columns"] = GENERATED_COLUMNS_FROM_CATALOG.get(row["pubgencols"], row["pubgencols"])
    return state


def publication_state(row, major):
    """A ``publications_query`` row as returned state (the ``publication`` module's shape, plus a count)."""
    tables = [
        table_state(rel["schema"], rel["table"], rel.get("columns"), rel.get("where")) for rel in row["tables"] or ()
    ]
    tables.sort(key=lambda t: (t["schema"], t["table"]))
    schemas = sorted(row["schemas"] or ())
    return publication_fields(row, major, tables, schemas, published_table_count=row["published_table_count"])


def collect_publications(conn, major):
    """The publications of the connected database (list of dicts, sorted by name)."""
    return [publication_state(row, major) for row in fetch_rows(conn, publications_query(major))]


ISSUE_KINDS = (
    "no_replica_identity",
    "row_filter_outside_replica_identity",
    "column_list_lacks_replica_identity",
    "owned_sequence",
)


def collect_publication_issues(conn, major):
    """Problems of the tables the database's publications publish (see :func:`publication_issues_query`).

    Returns a dict with a list per kind of :data:`ISSUE_KINDS`, each item ``{publication, schema,
    table, detail}`` (``detail``: the columns concerned, or the sequence's name).
    """
    issues = {kind: [] for kind in ISSUE_KINDS}
    for row in fetch_rows(conn, publication_issues_query(major)):
        issues.setdefault(row["kind"], []).append(
            {"publication": row["publication"], "schema": row["schema"], "table": row["table"], "detail": row["detail"]}
        )
    return issues


# ----------------------------------------------------------------------------------------------
# The publication module's reads (a publication with its internal keys) and its replica identity check
# ----------------------------------------------------------------------------------------------


def publish_from_flags(row):
    """Operations of a ``pg_publication`` row (``pubinsert`` ...) in canonical order."""
    return tuple(op for op in PUBLISH_OPERATIONS if row["pub" + op])


def table_state(schema, table, columns, where):
    return {
        "name": table_display(schema, table),
        "schema": schema,
        "table": table,
        "columns": list(columns) if columns is not None else None,
        "where": where,
    }


def column_list_problems(run, state, tables, ops):
    """Warnings about ``tables`` (state dicts) whose row filter or column list breaks the replica identity rule.

    ``ops`` names the published operations PostgreSQL refuses then (``UPDATE/DELETE``).
    """
    params = [
        [t["_relid"] for t in tables],
        ["{" + ",".join(str(a) for a in t["_attnums"]) + "}" if t["_attnums"] else None for t in tables],
        [t["_qual_tree"] for t in tables],
    ]
    found = {row["oid"]: row for row in run(table_rule_query(), params)}
    pub = quote_ident(state["name"])
    warnings = []
    for table in tables:
        row = found.get(table["_relid"])
        if row is None:
            continue  # no replica identity at all: warned about separately
        if row["filter_outside"]:
            warnings.append(
                f"publication {pub} publishes {ops}, but the row filter of {table['name']} uses column(s) "
                f"{row['filter_outside']} outside the replica identity, so PostgreSQL refuses {ops} on that table "
                "(filter on replica identity columns only, or set REPLICA IDENTITY FULL)"
            )
        if row["list_lacks"]:
            warnings.append(
                f"publication {pub} publishes {ops}, but the column list of {table['name']} lacks the "
                f"replica identity column(s) {row['list_lacks']}, so PostgreSQL refuses {ops} on that table"
            )
        elif row["full_with_list"]:
            warnings.append(
                f"publication {pub} publishes {ops}, but {table['name']} has REPLICA IDENTITY FULL, which allows no "
                f"column list, so PostgreSQL refuses {ops} on that table (publish it without a column list, or give "
                "it another replica identity)"
            )
    return warnings


def read_tables(run, pub_oid, major):
    """Table state dicts (with internal keys) of a publication, sorted by schema and table."""
    tables = []
    for row in run(publication_rels_query(major), [pub_oid]):
        table = table_state(row["schema"], row["table"], row["columns"], row["where"])
        table["_relid"] = row["relid"]
        table["_relkind"] = row["relkind"]
        table["_qual_tree"] = row["qual_tree"]
        table["_attnums"] = list(row["attnums"]) if row["attnums"] is not None else None
        tables.append(table)
    tables.sort(key=lambda t: (t["schema"], t["table"]))
    return tables


def read_schemas(run, pub_oid, major):
    if major < SCHEMAS_MAJOR:
        return []
    return sorted(row["name"] for row in run(publication_schemas_query(), [pub_oid]))


def read_publication(run, name, major):
    """The publication's state dict (with internal keys), or ``None`` when it does not exist."""
    rows = run(publication_query(major), [name])
    if not rows:
        return None
    row = rows[0]
    tables = read_tables(run, row["oid"], major)
    schemas = read_schemas(run, row["oid"], major)
    return publication_fields(row, major, tables, schemas, _oid=row["oid"])


MISSING_TABLES_QUERY = (
    "SELECT u.schema, u.name FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS u(schema, name, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = u.schema AND c.relname = u.name) ORDER BY u.i"
)


MISSING_SCHEMAS_QUERY = (
    "SELECT u.name FROM unnest(%s::text[]) WITH ORDINALITY AS u(name, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = u.name) ORDER BY u.i"
)
