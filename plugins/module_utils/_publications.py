# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The publications: the ONLY SQL reading ``pg_publication*``, the replica identity rule, and the planner.

Used by the ``publication`` module, ``replication_info`` (and its checks) alike.
"""

from __future__ import annotations

import copy
import secrets

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
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    ident,
    parse_identifier,
    parse_qualified_name,
    quote_ident,
    unique_names,
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
# The planner: desired definition vs the publication -> statements (the publication module)
# ----------------------------------------------------------------------------------------------

GENERATED_COLUMNS_VALUES = ("none", "stored")


TABLE_KEYS = ("name", "columns", "where")


MAX_LISTED_TABLES = 20


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option and value."""


def normalize_publish(values):
    """Return the operations of ``publish`` as a tuple in PostgreSQL's canonical order.

    Elements may themselves be comma-separated; white space, case and duplicates do not
    matter. ``None`` stays ``None`` (not managed); an empty list is an empty tuple.
    """
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    expected = ", ".join(PUBLISH_OPERATIONS)
    wanted = set()
    for value in values:
        if not isinstance(value, str):
            raise OptionError(f"publish: {value!r} is not an operation name (expected any of {expected})")
        for part in value.split(","):
            op = part.strip().lower()
            if not op:
                continue
            if op not in PUBLISH_OPERATIONS:
                raise OptionError(f"publish: unknown operation {part.strip()!r} (expected any of {expected})")
            wanted.add(op)
    return tuple(op for op in PUBLISH_OPERATIONS if op in wanted)


def publish_from_flags(row):
    """Operations of a ``pg_publication`` row (``pubinsert`` ...) in canonical order."""
    return tuple(op for op in PUBLISH_OPERATIONS if row["pub" + op])


class TableSpec:
    """One desired entry of ``tables``: a qualified name, an optional column list and row filter."""

    __slots__ = ("columns", "index", "qname", "where")

    def __init__(self, qname, columns=None, where=None, index=0):
        self.qname = qname
        self.columns = tuple(columns) if columns is not None else None
        self.where = where
        self.index = index

    @property
    def key(self):
        return (self.qname.schema, self.qname.name)

    @property
    def option(self):
        return f"tables[{self.index}]"

    @property
    def label(self):
        return f"{self.option} ({self.qname})"

    def __repr__(self):
        return f"TableSpec({tuple(self.qname)!r}, columns={self.columns!r}, where={self.where!r})"

    def __eq__(self, other):
        if not isinstance(other, TableSpec):
            return NotImplemented
        return (self.qname, self.columns, self.where) == (other.qname, other.columns, other.where)

    def __hash__(self):
        return hash((self.qname, self.columns, self.where))


def _parse_name(text, option, qualified=False):
    if not isinstance(text, str):
        raise OptionError(f"{option}: expected a name (string), got {type(text).__name__} {text!r}")
    try:
        return parse_qualified_name(text) if qualified else parse_identifier(text)
    except IdentifierError as exc:
        raise OptionError(f"{option}: invalid name {text!r}: {exc}") from None


def _parse_columns(raw, option):
    if isinstance(raw, str) or not isinstance(raw, list):
        raise OptionError(f"{option}: expected a list of column names, got {type(raw).__name__} {raw!r}")
    if not raw:
        raise OptionError(f"{option}: the column list must not be empty (leave it out to publish all columns)")
    return unique_names(raw, option, "column", _parse_name, OptionError, indexed=False)


def parse_tables(entries):
    """Parse the ``tables`` option into a list of :class:`TableSpec` (``None`` stays ``None``)."""
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise OptionError(f"tables: expected a list, got {type(entries).__name__}")
    specs = []
    seen = {}
    for index, entry in enumerate(entries):
        option = f"tables[{index}]"
        columns = where = None
        if isinstance(entry, dict):
            unknown = sorted(str(k) for k in entry if k not in TABLE_KEYS)
            if unknown:
                raise OptionError(f"{option}: unknown key(s) {', '.join(unknown)} (expected {', '.join(TABLE_KEYS)})")
            if entry.get("name") in (None, ""):
                raise OptionError(f"{option}: the key 'name' is required")
            qname = _parse_name(entry["name"], option + ".name", qualified=True)
            if entry.get("columns") is not None:
                columns = _parse_columns(entry["columns"], option + ".columns")
            raw_where = entry.get("where")
            if raw_where is not None:
                if not isinstance(raw_where, str):
                    raise OptionError(
                        f"{option}.where: expected an SQL expression (string), "
                        f"got {type(raw_where).__name__} {raw_where!r}"
                    )
                where = raw_where.strip() or None
        elif isinstance(entry, str):
            qname = _parse_name(entry, option, qualified=True)
        else:
            raise OptionError(
                f"{option}: expected a table name or a dict with name/columns/where, "
                f"got {type(entry).__name__} {entry!r}"
            )
        spec = TableSpec(qname, columns, where, index)
        if spec.key in seen:
            raise OptionError(f"{option}: table {qname} is already listed as tables[{seen[spec.key]}]")
        seen[spec.key] = index
        specs.append(spec)
    return specs


def parse_schemas(values):
    """Parse ``schemas`` into a sorted tuple of exact schema names (``None`` stays ``None``)."""
    if values is None:
        return None
    return tuple(sorted(unique_names(values, "schemas", "schema", _parse_name, OptionError)))


class Desired:
    """The validated, parsed module options (no database access)."""

    def __init__(self, params):
        self.name = _parse_name(params["name"], "name")
        self.state = params.get("state") or "present"
        self.all_tables = params.get("all_tables")
        self.tables = parse_tables(params.get("tables"))
        self.schemas = parse_schemas(params.get("schemas"))
        self.publish = normalize_publish(params.get("publish"))
        self.via_root = params.get("publish_via_partition_root")
        self.gencols = params.get("publish_generated_columns")
        if self.gencols is not None and self.gencols not in GENERATED_COLUMNS_VALUES:
            raise OptionError(
                f"publish_generated_columns: {self.gencols!r} is not one of {', '.join(GENERATED_COLUMNS_VALUES)}"
            )
        owner = params.get("owner")
        self.owner = _parse_name(owner, "owner") if owner not in (None, "") else None
        self.comment = params.get("comment")
        if self.all_tables:
            if self.tables:
                raise OptionError(
                    "all_tables: true conflicts with tables (a FOR ALL TABLES publication has no table list)"
                )
            if self.schemas:
                raise OptionError(
                    "all_tables: true conflicts with schemas (a FOR ALL TABLES publication has no schemas)"
                )

    @property
    def manages_list(self):
        """True when the explicit table/schema list is managed (tables or schemas given)."""
        return self.tables is not None or self.schemas is not None

    @property
    def wanted_all_tables(self):
        """Desired ``puballtables``; ``None`` when the kind is not managed."""
        if self.all_tables is not None:
            return bool(self.all_tables)
        if self.manages_list:
            return False
        return None

    @property
    def comment_managed(self):
        return self.comment is not None

    @property
    def wanted_comment(self):
        """Desired comment; ``''`` means none (``None``)."""
        return self.comment if self.comment else None


def version_problems(desired, major):
    """Return ``[(option, min_major, reason)]`` for features ``desired`` uses that ``major`` lacks."""
    problems = []
    for spec in desired.tables or ():
        if spec.where is not None and major < ROW_FILTER_MAJOR:
            problems.append((spec.option + ".where", ROW_FILTER_MAJOR, "row filters need it"))
        if spec.columns is not None and major < COLUMN_LIST_MAJOR:
            problems.append((spec.option + ".columns", COLUMN_LIST_MAJOR, "column lists need it"))
    if desired.schemas and major < SCHEMAS_MAJOR:
        problems.append(("schemas", SCHEMAS_MAJOR, "TABLES IN SCHEMA needs it"))
    if desired.gencols is not None and major < GENERATED_COLUMNS_MAJOR:
        problems.append(("publish_generated_columns", GENERATED_COLUMNS_MAJOR, None))
    return problems


def table_state(schema, table, columns, where):
    return {
        "name": table_display(schema, table),
        "schema": schema,
        "table": table,
        "columns": list(columns) if columns is not None else None,
        "where": where,
    }


def diff_tables(current, desired):
    """Compare two lists of table state dicts.

    Returns ``(added, removed, changed)``, lists of display names sorted by schema and table;
    ``changed`` are tables in both lists whose column list or row filter differ.
    """
    cur = {(t["schema"], t["table"]): t for t in current}
    des = {(t["schema"], t["table"]): t for t in desired}
    added = [des[k]["name"] for k in sorted(set(des) - set(cur))]
    removed = [cur[k]["name"] for k in sorted(set(cur) - set(des))]
    changed = [
        des[k]["name"]
        for k in sorted(set(cur) & set(des))
        if (cur[k]["columns"], cur[k]["where"]) != (des[k]["columns"], des[k]["where"])
    ]
    return added, removed, changed


def _column_list_sql(columns):
    return sql.SQL(" ({})").format(sql.SQL(", ").join(ident(c) for c in columns))


def table_entry_sql(spec):
    """``"schema"."table" [(columns)] [WHERE (expr)]`` for a desired entry."""
    parts = [spec.qname.identifier()]
    if spec.columns is not None:
        parts.append(_column_list_sql(spec.columns))
    if spec.where is not None:
        # A row filter is an SQL expression by nature. Before it is used in a change, PostgreSQL
        # validates it in a throwaway publication over the extended query protocol (one statement).
        parts.append(sql.SQL(" WHERE ({})").format(sql.SQL(spec.where)))
    return sql.Composed(parts)


def stored_entry_sql(table):
    """``ONLY "schema"."table" [(columns)] [WHERE (expr)]`` re-creating a stored entry exactly."""
    parts = [sql.SQL("ONLY "), ident(table["schema"], table["table"])]
    if table["columns"] is not None:
        parts.append(_column_list_sql(table["columns"]))
    if table["where"] is not None:
        parts.append(sql.SQL(" WHERE ({})").format(sql.SQL(table["where"])))
    return sql.Composed(parts)


def objects_sql(table_sqls, schemas):
    """``TABLE a, b, TABLES IN SCHEMA x, y``, ``None`` when both are empty."""
    parts = []
    if table_sqls:
        parts.append(sql.SQL("TABLE {}").format(sql.SQL(", ").join(table_sqls)))
    if schemas:
        parts.append(sql.SQL("TABLES IN SCHEMA {}").format(sql.SQL(", ").join(ident(s) for s in schemas)))
    if not parts:
        return None
    return sql.SQL(", ").join(parts)


def options_sql(options):
    """``publish = '...', publish_via_partition_root = true, ...`` from a dict of options."""
    items = []
    for key, value in options.items():
        if key == "publish":
            value = ", ".join(value)
        items.append(sql.SQL("{} = {}").format(sql.SQL(key), sql.Literal(value)))
    return sql.SQL(", ").join(items)


def create_sql(name, all_tables, objects, options):
    """``CREATE PUBLICATION name [FOR ALL TABLES | FOR objects] [WITH (options)]``."""
    statement = sql.SQL("CREATE PUBLICATION {}").format(ident(name))
    if all_tables:
        statement += sql.SQL(" FOR ALL TABLES")
    elif objects is not None:
        statement += sql.SQL(" FOR {}").format(objects)
    if options:
        statement += sql.SQL(" WITH ({})").format(options_sql(options))
    return statement


def option_changes(current, desired, major):
    """Options whose desired value differs from ``current`` (a state dict), in a fixed order."""
    changes = {}
    if desired.publish is not None and tuple(current["publish"]) != desired.publish:
        changes["publish"] = desired.publish
    if desired.via_root is not None and current["publish_via_partition_root"] != desired.via_root:
        changes["publish_via_partition_root"] = desired.via_root
    if (
        desired.gencols is not None
        and major >= GENERATED_COLUMNS_MAJOR
        and current.get("publish_generated_columns") != desired.gencols
    ):
        changes["publish_generated_columns"] = desired.gencols
    return changes


def create_options(target):
    """WITH options for CREATE PUBLICATION reaching ``target``; PostgreSQL's defaults are left out."""
    options = {}
    if tuple(target["publish"]) != PUBLISH_OPERATIONS:
        options["publish"] = tuple(target["publish"])
    if target["publish_via_partition_root"]:
        options["publish_via_partition_root"] = True
    if target.get("publish_generated_columns") not in (None, "none"):
        options["publish_generated_columns"] = target["publish_generated_columns"]
    return options


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


def public_state(state):
    """A copy of a state dict without the module's internal (``_``-prefixed) keys; ``{}`` for ``None``."""
    if not state:
        return {}
    result = {k: copy.deepcopy(v) for k, v in state.items() if not k.startswith("_")}
    result["tables"] = [{k: copy.deepcopy(v) for k, v in t.items() if not k.startswith("_")} for t in state["tables"]]
    return result


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


class PublicationModule:
    """parse args -> read state -> (server-side normalisation) -> diff -> apply -> report."""

    def __init__(self, m, desired):
        self.m = m
        self.desired = desired
        self.major = m.server_major
        self.session = None

    def run_query(self, statement, params=None):
        return self.m.query(statement, params)

    @property
    def display_name(self):
        return quote_ident(self.desired.name)

    # -- validation against the server ----------------------------------------------------------

    def check_versions(self):
        self.m.require_versions("publication module", version_problems(self.desired, self.major))

    def check_objects_exist(self):
        d = self.desired
        database = self.session["database"]
        if d.tables:
            rows = self.run_query(
                MISSING_TABLES_QUERY, [[s.qname.schema for s in d.tables], [s.qname.name for s in d.tables]]
            )
            if rows:
                missing = [table_display(r["schema"], r["name"]) for r in rows]
                what = "this table does" if len(missing) == 1 else f"these {len(missing)} tables do"
                self.m.fail(
                    f"tables: {what} not exist in database {quote_ident(database)}: {', '.join(missing)}; "
                    "nothing was changed",
                    missing_tables=missing,
                )
        if d.schemas:
            rows = self.run_query(MISSING_SCHEMAS_QUERY, [list(d.schemas)])
            if rows:
                missing = [r["name"] for r in rows]
                what = "this schema does" if len(missing) == 1 else f"these {len(missing)} schemas do"
                self.m.fail(
                    f"schemas: {what} not exist in database {quote_ident(database)}: "
                    f"{', '.join(quote_ident(s) for s in missing)}; nothing was changed",
                    missing_schemas=missing,
                )
        role_query = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s"
        if d.owner is not None and not self.run_query(role_query, [d.owner]):
            self.m.fail(f"owner: role {quote_ident(d.owner)} does not exist")

    # -- normalisation by the server ------------------------------------------------------------

    def probe(self, entries, schemas, via_root, gencols):
        """Let PostgreSQL validate and store the desired list in a throwaway publication.

        ``entries`` are ``(label, composable)`` table entries. The throwaway publication lives in a
        transaction of its own that is rolled back, so nothing is left behind (in check mode too).
        Returns ``(tables, schemas)`` as PostgreSQL stored them. Fails the module, naming the entry
        PostgreSQL rejects where possible, with PostgreSQL's error and SQLSTATE.
        """
        name = f"inventium_probe_{secrets.token_hex(8)}"
        options = {}
        if via_root:
            options["publish_via_partition_root"] = True
        if gencols not in (None, "none") and self.major >= GENERATED_COLUMNS_MAJOR:
            options["publish_generated_columns"] = gencols
        if self.m.in_transaction:
            self.m.fail("internal error: the publication must be validated before any change")
        conn = self.m.conn

        def attempt(items, with_schemas):
            statement = create_sql(name, False, objects_sql([entry for _label, entry in items], with_schemas), options)
            conn.execute("BEGIN")
            try:
                with conn.cursor() as cur:

                    def run(stmt, params=None):
                        cur.execute(stmt, params)
                        return cur.fetchall()

                    # binary=True forces the extended query protocol, which runs exactly one statement.
                    cur.execute(statement, binary=True)
                    pub_oid = run("SELECT oid FROM pg_catalog.pg_publication WHERE pubname = %s", [name])[0]["oid"]
                    return read_tables(run, pub_oid, self.major), read_schemas(run, pub_oid, self.major)
            finally:
                conn.execute("ROLLBACK")

        try:
            return attempt(entries, schemas)
        except psycopg.Error as exc:
            error = exc
        culprit = None
        if len(entries) + len(schemas) > 1:
            for label, entry in entries:
                try:
                    attempt([(label, entry)], ())
                except psycopg.Error as exc:
                    culprit, error = label, exc
                    break
        action = f"PostgreSQL rejects the desired definition of publication {self.display_name}"
        if culprit:
            action += f", {culprit}"
        # PostgreSQL names the throwaway publication in some messages: name the real one instead.
        message = format_db_error(error, (), action).replace(quote_ident(name), self.display_name)
        self.m.fail(message.replace(name, self.desired.name), sqlstate=error.sqlstate)

    def final_list(self, current):
        """``(entries, tables, schemas)`` of the final explicit list.

        ``entries`` are the ``(label, composable)`` table entries for CREATE/SET; ``tables`` and
        ``schemas`` are what PostgreSQL stores for them (validated by :meth:`probe`).
        """
        d = self.desired
        current_explicit = current is not None and not current["all_tables"]
        if d.tables is not None:
            entries = [(s.label, table_entry_sql(s)) for s in d.tables]
        elif current_explicit:
            entries = [(f"table {t['name']}", stored_entry_sql(t)) for t in current["tables"]]
        else:
            entries = []
        if d.schemas is not None:
            schemas = list(d.schemas)
        else:
            schemas = list(current["schemas"]) if current_explicit else []
        if current_explicit and not d.manages_list:
            return entries, current["tables"], schemas
        if not entries and not schemas:
            return entries, [], []
        via_root = d.via_root if d.via_root is not None else (current or {}).get("publish_via_partition_root")
        gencols = d.gencols if d.gencols is not None else (current or {}).get("publish_generated_columns")
        tables, stored_schemas = self.probe(entries, schemas, via_root, gencols)
        return entries, tables, stored_schemas

    # -- planning -------------------------------------------------------------------------------

    def new_state(self):
        """State of a publication created now with PostgreSQL's defaults."""
        state = {
            "name": self.desired.name,
            "owner": self.session["current_user"],
            "all_tables": False,
            "tables": [],
            "schemas": [],
            "publish": list(PUBLISH_OPERATIONS),
            "publish_via_partition_root": False,
            "comment": None,
        }
        if self.major >= GENERATED_COLUMNS_MAJOR:
            state["publish_generated_columns"] = "none"
        return state

    def target_state(self, current, final_all, tables, schemas):
        """The state the publication must have after the run."""
        d = self.desired
        target = copy.deepcopy(current) if current else self.new_state()
        target.pop("_oid", None)
        target["all_tables"] = final_all
        target["tables"] = [] if final_all else copy.deepcopy(tables)
        target["schemas"] = [] if final_all else list(schemas)
        if d.publish is not None:
            target["publish"] = list(d.publish)
        if d.via_root is not None:
            target["publish_via_partition_root"] = d.via_root
        if d.gencols is not None and self.major >= GENERATED_COLUMNS_MAJOR:
            target["publish_generated_columns"] = d.gencols
        if d.owner is not None:
            target["owner"] = d.owner
        if d.comment_managed:
            target["comment"] = d.wanted_comment
        return target

    def plan(self, current, target, entries):
        """Statements (Composables) turning ``current`` into ``target``, and warnings."""
        name = ident(self.desired.name)
        statements = []
        warnings = []
        table_sqls = [entry for _label, entry in entries]
        if current is None or current["all_tables"] != target["all_tables"]:
            if current is not None:
                direction = "from FOR ALL TABLES to a table list" if current["all_tables"] else "to FOR ALL TABLES"
                warnings.append(
                    f"publication {self.display_name} is re-created (DROP and CREATE in one transaction) because "
                    f"PostgreSQL cannot change a publication {direction} with ALTER PUBLICATION; its subscribers "
                    "must run ALTER SUBSCRIPTION ... REFRESH PUBLICATION to pick up the new table list"
                )
                statements.append(sql.SQL("DROP PUBLICATION {}").format(name))
            objects = None if target["all_tables"] else objects_sql(table_sqls, target["schemas"])
            statements.append(create_sql(self.desired.name, target["all_tables"], objects, create_options(target)))
            if target["owner"] != self.session["current_user"]:
                statements.append(sql.SQL("ALTER PUBLICATION {} OWNER TO {}").format(name, ident(target["owner"])))
            if target["comment"] is not None:
                statements.append(
                    sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(name, sql.Literal(target["comment"]))
                )
            return statements, warnings

        options = option_changes(current, self.desired, self.major)
        options_stmt = None
        if options:
            options_stmt = sql.SQL("ALTER PUBLICATION {} SET ({})").format(name, options_sql(options))
        # Enabling publish_via_partition_root must precede a row filter on a partitioned table, and
        # disabling it must follow the removal of such a filter.
        options_first = bool(options.get("publish_via_partition_root"))
        if options_stmt is not None and options_first:
            statements.append(options_stmt)
        if not target["all_tables"]:
            added, removed, changed = diff_tables(current["tables"], target["tables"])
            if added or removed or changed or list(current["schemas"]) != list(target["schemas"]):
                objects = objects_sql(table_sqls, target["schemas"])
                if objects is not None:
                    # One statement with the whole list, schemas included: SET drops what it does not name.
                    statements.append(sql.SQL("ALTER PUBLICATION {} SET {}").format(name, objects))
                else:
                    only = [sql.SQL("ONLY {}").format(ident(t["schema"], t["table"])) for t in current["tables"]]
                    drop = objects_sql(only, current["schemas"])
                    statements.append(sql.SQL("ALTER PUBLICATION {} DROP {}").format(name, drop))
        if options_stmt is not None and not options_first:
            statements.append(options_stmt)
        if target["owner"] != current["owner"]:
            statements.append(sql.SQL("ALTER PUBLICATION {} OWNER TO {}").format(name, ident(target["owner"])))
        if target["comment"] != current["comment"]:
            statements.append(sql.SQL("COMMENT ON PUBLICATION {} IS {}").format(name, sql.Literal(target["comment"])))
        return statements, warnings

    # -- warnings -------------------------------------------------------------------------------

    def replica_identity_warnings(self, state):
        """Warnings about published tables whose UPDATE/DELETE PostgreSQL refuses on the publisher."""
        if not state or not ({"update", "delete"} & set(state["publish"])):
            return []
        ops = "/".join(op.upper() for op in ("update", "delete") if op in state["publish"])
        pub = quote_ident(state["name"])
        warnings = []
        rows = self.run_query(
            no_replica_identity_query(),
            [
                [t["schema"] for t in state["tables"]],
                [t["table"] for t in state["tables"]],
                list(state["schemas"]),
                bool(state["all_tables"]),
            ],
        )
        if rows:
            names = [table_display(r["schema"], r["name"]) for r in rows]
            shown = ", ".join(names[:MAX_LISTED_TABLES])
            if len(names) > MAX_LISTED_TABLES:
                shown += f" and {len(names) - MAX_LISTED_TABLES} more"
            warnings.append(
                f"publication {pub} publishes {ops}, but these tables have neither a primary key nor a replica "
                f"identity, so PostgreSQL refuses {ops} on them: {shown} (add a primary key, set REPLICA IDENTITY, "
                "or leave update and delete out of publish)"
            )
        checked = [t for t in state["tables"] if t["_relkind"] == "r" and (t["_qual_tree"] or t["_attnums"])]
        if not checked:
            return warnings
        warnings.extend(column_list_problems(self.run_query, state, checked, ops))
        return warnings

    # -- run ------------------------------------------------------------------------------------

    def run(self):
        m, d = self.m, self.desired
        self.check_versions()
        self.session = m.query_one(
            "SELECT current_user::text AS current_user, current_database()::text AS database,"
            " current_setting('wal_level') AS wal_level"
        )
        current = read_publication(self.run_query, d.name, self.major)
        before = public_state(current)

        if d.state == "absent":
            if current is not None:
                m.execute(sql.SQL("DROP PUBLICATION {}").format(ident(d.name)))
            m.exit(changed=current is not None, diff=(before, {}), publication={})

        self.check_objects_exist()
        final_all = d.wanted_all_tables
        if final_all is None:
            final_all = current["all_tables"] if current else False
        entries, tables, schemas = ([], [], []) if final_all else self.final_list(current)
        target = self.target_state(current, final_all, tables, schemas)
        statements, warnings = self.plan(current, target, entries)
        for statement in statements:
            m.execute(statement)
        changed = bool(statements)
        if not changed:
            final = current
        elif m.check_mode:
            final = target
        else:
            final = read_publication(self.run_query, d.name, self.major)
        warnings.extend(self.replica_identity_warnings(final))
        if self.session["wal_level"] != "logical":
            warnings.append(
                f"wal_level is {self.session['wal_level']}: publications publish nothing until wal_level is "
                "logical (see inventium.logical_replication.server_settings; it needs a restart)"
            )
        for warning in warnings:
            m.warn(warning)
        after = public_state(final)
        m.exit(changed=changed, diff=(before, after), publication=after)
