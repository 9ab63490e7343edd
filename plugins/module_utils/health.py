# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Replication health: the catalog queries and the checks, in ONE place.

Used by the ``replication_info`` module and by the metrics sampler (a daemon on persistent
psycopg connections), and the source of the slot and publication reading queries of the
``replication_slot`` and ``publication`` modules. Nothing here depends on Ansible.

Collectors (``collect_<subset>(conn, major)``) take a psycopg 3 connection and the server's major
version and return plain data (dicts, lists, ``str``/``int``/``float``/``bool``/``None``;
timestamps as ISO 8601 strings, LSNs as text, byte counts as ``int``). Each runs one query
(``collect_server`` a second, small one for a pending ``wal_level`` when it may read
``pg_file_settings``; ``collect_subscriptions`` a privilege check unless told whether to read
connection strings). The SQL is chosen by major version, built once per major and cached, and
contains no user input. Rows are read with ``dict_row`` whatever the connection's row factory is;
in autocommit mode nothing is left open.

Sampler use (a round costs ~1-2 ms on a persistent connection, see ``benchmarks/health_round.py``)::

    conn = psycopg.connect(dsn, autocommit=True)
    major = conn.info.server_version // 10000
    while True:
        facts = collect(conn, major, gather=("server", "slots", "senders", "subscriptions"),
                        pending=False, conninfo=False)
        ...

:func:`evaluate_checks` is pure: it turns collected facts into findings
(``{severity, code, message, hint}``).

Byte lag (``*_lag_bytes``, ``retained_wal_bytes``) is a distance in WAL and jumps with
autovacuum or full-page images while no row is missing; time lag (``*_lag_seconds``,
``seconds_since_*``) is measured by PostgreSQL from replies and messages. Both are returned.
"""

from __future__ import annotations

import functools
import re

from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    BINARY_STREAMING_MAJOR,
    CHECKPOINTER_MAJOR,
    CONFLICT_STATS_MAJOR,
    CONFLICT_TYPES,
    CONFLICTING_MAJOR,
    FAILOVER_MAJOR,
    GENERATED_COLUMNS_FROM_CATALOG,
    GENERATED_COLUMNS_MAJOR,
    LOCK_MODES,
    MIN_SERVER_MAJOR,  # noqa: F401 - replication_info reads it here
    PARALLEL_APPLY_MAJOR,
    PUBLISH_OPERATIONS,
    REPLICATION_ORIGINS_MAJOR,
    ROW_FILTER_MAJOR,
    SCHEMAS_MAJOR,
    STREAMING_FROM_CATALOG,
    SUBSCRIPTION_STATS_MAJOR,
    TWO_PHASE_AT_MAJOR,
    TWO_PHASE_MAJOR,
    TWO_PHASE_STATES,
    WORKER_TYPE_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import dict_row, sql
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import (
    Guc,
    SettingState,
    group_file_settings,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact
from ansible_collections.inventium.logical_replication.plugins.module_utils.subscription_sync import state_name

SUBSETS = ("server", "publications", "slots", "senders", "subscriptions", "checks")
"""What :func:`collect` can gather (the ``gather`` option of ``replication_info``)."""

SEVERITIES = ("error", "warning", "info")
DEFAULT_RETAINED_WAL_THRESHOLD = 1024**3
"""Inactive slots retaining more WAL than this (bytes) are reported by the checks (1 GiB)."""

_GENCOLS_FROM_CATALOG = GENERATED_COLUMNS_FROM_CATALOG
_STREAMING = STREAMING_FROM_CATALOG
_TWO_PHASE_STATES = TWO_PHASE_STATES

CURRENT_LSN = (
    "CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()"
    " ELSE pg_catalog.pg_current_wal_lsn() END"
)
"""The server's WAL position: the insert position, or the last replayed one on a standby."""

MAX_LISTED = 20


class ThresholdError(ValueError):
    """A byte size given by the user cannot be parsed."""


# ----------------------------------------------------------------------------------------------
# Small pure helpers
# ----------------------------------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value):
    """Parse a byte size: an ``int`` or a string like ``1GB``, ``512 MB``, ``64kB``, ``100`` (1024-based).

    Units as PostgreSQL writes them (``B``, ``kB``, ``MB``, ``GB``, ``TB``; case-insensitive,
    ``KiB``-style and single-letter ``K``/``M``/``G``/``T`` accepted). Raises :class:`ThresholdError`.
    """
    if isinstance(value, bool):
        raise ThresholdError(f"expected a byte size, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ThresholdError(f"a byte size must not be negative, got {value}")
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ThresholdError(f"invalid byte size {value!r} (use e.g. 1073741824, 512MB or 1GB)")
    unit = match.group(2).lower().replace("ib", "b")
    if len(unit) == 1 and unit != "b":
        unit += "b"
    if unit not in _SIZE_UNITS:
        raise ThresholdError(f"invalid unit in byte size {value!r} (use B, kB, MB, GB or TB)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_bytes(value):
    """``1536`` -> ``'1.5 kB'``; ``None`` -> ``'unknown'`` (for messages)."""
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _memoize(func):
    """Cache a query builder's result per arguments (the SQL of a major version is built once)."""
    cache = {}

    @functools.wraps(func)
    def wrapper(*args):
        if args not in cache:
            cache[args] = func(*args)
        return cache[args]

    return wrapper


def _rows(conn, query, params=None):
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _listing(names, limit=MAX_LISTED):
    names = list(names)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def table_display(schema, table):
    """``schema.table`` quoted where needed."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def worker_type(row, major):
    """The type of a ``pg_stat_subscription`` row: ``apply``, ``parallel apply`` or ``table synchronization``.

    PostgreSQL 17 reports it (``worker_type``); before, a row with a table is a table sync
    worker, a row with a leader (16+) a parallel apply worker.
    """
    if major >= WORKER_TYPE_MAJOR and row.get("worker_type"):
        return row["worker_type"]
    if row.get("relid") is not None:
        return "table synchronization"
    if row.get("leader_pid") is not None:
        return "parallel apply"
    return "apply"


# ----------------------------------------------------------------------------------------------
# SQL builders (shared with the replication_slot and publication modules)
# ----------------------------------------------------------------------------------------------


def slot_columns(major):
    """The ``pg_replication_slots`` columns returned for a slot (``replication_slot`` module's state)."""
    columns = [
        "slot_name::text AS name",
        "slot_type",
        "plugin::text AS plugin",
        "database::text AS database",
        "temporary",
        "active",
        "active_pid",
        "restart_lsn::text AS restart_lsn",
        "confirmed_flush_lsn::text AS confirmed_flush_lsn",
        "wal_status",
        "safe_wal_size",
        "pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery()"
        " THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END,"
        " restart_lsn)::bigint AS retained_wal_bytes",
    ]
    if major >= TWO_PHASE_MAJOR:
        columns.append("two_phase")
    if major >= CONFLICTING_MAJOR:
        columns.append("conflicting")
    if major >= FAILOVER_MAJOR:
        columns += ["inactive_since", "invalidation_reason", "failover", "synced"]
    if major >= TWO_PHASE_AT_MAJOR:
        columns.append("two_phase_at::text AS two_phase_at")
    return columns


def slot_query(major):
    """SELECT returning the state of one slot (parameter: slot name), using the server's columns only."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_replication_slots WHERE slot_name = %s").format(
        sql.SQL(", ").join(sql.SQL(c) for c in slot_columns(major))
    )


@_memoize
def slots_query(major):
    """SELECT of every slot of the cluster: :func:`slot_columns` plus the confirmed flush lag in bytes."""
    columns = [
        *slot_columns(major),
        f"pg_catalog.pg_wal_lsn_diff({CURRENT_LSN}, confirmed_flush_lsn)::bigint AS confirmed_flush_lag_bytes",
    ]
    return sql.SQL("SELECT {} FROM pg_catalog.pg_replication_slots ORDER BY slot_name").format(
        sql.SQL(", ").join(sql.SQL(c) for c in columns)
    )


def slot_state(row):
    """A slot row as returned state: ``inactive_since`` as ISO 8601 text."""
    state = dict(row)
    if state.get("inactive_since") is not None:
        state["inactive_since"] = _iso(state["inactive_since"])
    return state


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


@_memoize
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


@_memoize
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


@_memoize
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
        # Row filters and column lists of tables in publications that publish UPDATE or DELETE,
        # compared with the replica identity columns (the publication module's rule).
        query += sql.SQL(
            " UNION ALL"
            " SELECT x.kind, x.publication, x.schema, x.table, x.detail FROM ("
            " SELECT r.publication, r.schema, r.table,"
            " unnest(ARRAY['row_filter_outside_replica_identity', 'column_list_lacks_replica_identity']) AS kind,"
            " unnest(ARRAY["
            "(SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
            " FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid"
            " AND a.attnum = ANY (r.filter_attnums) AND NOT a.attnum = ANY (r.ri)),"
            "(SELECT string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)"
            " FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid"
            " AND a.attnum = ANY (r.ri) AND NOT a.attnum = ANY (r.attnums))]) AS detail"
            " FROM (SELECT p.pubname::text AS publication, n.nspname::text AS schema, c.relname::text AS table,"
            " c.oid, pr.prattrs::int2[] AS attnums, ARRAY(SELECT m[1]::int2 FROM"
            " regexp_matches(pr.prqual::text, '\\{{VAR :varno 1 :varattno (\\d+)', 'g') m) AS filter_attnums,"
            " {ri} AS ri"
            " FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel pr ON pr.prpubid = p.oid"
            " JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE (p.pubupdate OR p.pubdelete) AND c.relkind = 'r'"
            " AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL)) r"
            " WHERE r.ri IS NOT NULL) x WHERE x.detail IS NOT NULL"
        ).format(ri=sql.SQL(REPLICA_IDENTITY_ATTNUMS))
    return query + sql.SQL(" ORDER BY 1, 2, 3, 4, 5")


def _columns(columns):
    return sql.SQL(", ").join(sql.SQL(c) for c in columns)


@_memoize
def server_query(major):
    """Version, recovery, wal_level (with its pg_settings row), limits and their use, WAL position."""
    columns = [
        "split_part(current_setting('server_version'), ' ', 1) AS version",
        "current_setting('server_version_num')::int AS version_num",
        "pg_catalog.pg_is_in_recovery() AS in_recovery",
        "current_database()::text AS database",
        f"({CURRENT_LSN})::text AS current_lsn",
        f"pg_catalog.pg_wal_lsn_diff({CURRENT_LSN}, '0/0')::bigint AS current_lsn_bytes",
        "w.setting AS wal_level",
        "w.boot_val AS wal_level_boot_val",
        "w.source AS wal_level_source",
        "w.pending_restart AS wal_level_pending_restart",
        "w.vartype AS wal_level_vartype",
        "w.enumvals AS wal_level_enumvals",
        "w.context AS wal_level_context",
        "current_setting('max_replication_slots')::int AS max_replication_slots",
        "(SELECT count(*) FROM pg_catalog.pg_replication_slots)::int AS replication_slots_used",
        "current_setting('max_wal_senders')::int AS max_wal_senders",
        "a.wal_senders_used",
        "current_setting('max_logical_replication_workers')::int AS max_logical_replication_workers",
        "a.logical_replication_workers_used",
        "current_setting('max_worker_processes')::int AS max_worker_processes",
        "current_setting('max_sync_workers_per_subscription')::int AS max_sync_workers_per_subscription",
    ]
    if major >= PARALLEL_APPLY_MAJOR:
        columns.append(
            "current_setting('max_parallel_apply_workers_per_subscription')::int"
            " AS max_parallel_apply_workers_per_subscription"
        )
    if major >= REPLICATION_ORIGINS_MAJOR:
        columns.append("current_setting('max_active_replication_origins')::int AS max_active_replication_origins")
    columns += [
        "NULLIF(pg_catalog.pg_size_bytes(current_setting('max_slot_wal_keep_size')), -1) AS max_slot_wal_keep_size",
        "pg_catalog.has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'EXECUTE')"
        " AS can_read_file_settings",
    ]
    return sql.SQL(
        "SELECT {} FROM (SELECT count(*) FILTER (WHERE backend_type = 'walsender')::int AS wal_senders_used,"
        " count(*) FILTER (WHERE starts_with(backend_type, 'logical replication ')"
        " AND backend_type <> 'logical replication launcher')::int AS logical_replication_workers_used"
        " FROM pg_catalog.pg_stat_activity) a, pg_catalog.pg_settings w WHERE w.name = 'wal_level'"
    ).format(_columns(columns))


WAL_LEVEL_FILE_SETTINGS_QUERY = (
    "SELECT seqno, sourcefile, sourceline, name, setting, applied, error"
    " FROM pg_catalog.pg_file_settings WHERE lower(name) = 'wal_level' ORDER BY seqno"
)


@_memoize
def senders_query(major):
    """``pg_stat_replication`` with byte lag against the server's WAL position and time lag in seconds."""
    columns = [
        "r.pid",
        "r.usename::text AS user",
        "r.application_name",
        "host(r.client_addr) AS client_addr",
        "r.client_hostname",
        "r.client_port",
        "r.backend_start",
        "r.state",
        "r.sync_state",
        "r.sync_priority",
        "s.slot_name::text AS slot_name",
        "s.slot_type",
    ]
    columns += [f"r.{kind}_lsn::text AS {kind}_lsn" for kind in ("sent", "write", "flush", "replay")]
    columns += [
        f"pg_catalog.pg_wal_lsn_diff(c.lsn, r.{kind}_lsn)::bigint AS {kind}_lag_bytes"
        for kind in ("sent", "write", "flush", "replay")
    ]
    columns += [
        f"extract(epoch FROM r.{kind}_lag)::float8 AS {kind}_lag_seconds" for kind in ("write", "flush", "replay")
    ]
    columns += ["r.reply_time", "extract(epoch FROM now() - r.reply_time)::float8 AS seconds_since_reply"]
    return sql.SQL(
        "SELECT {} FROM pg_catalog.pg_stat_replication r"
        " LEFT JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid"
        " CROSS JOIN (SELECT {} AS lsn) c"
        " ORDER BY r.application_name, r.pid"
    ).format(_columns(columns), sql.SQL(CURRENT_LSN))


SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY = (
    "SELECT pg_catalog.has_column_privilege('pg_catalog.pg_subscription', 'subconninfo', 'SELECT') AS allowed"
)


@_memoize
def subscriptions_query(major, conninfo=True):
    """The subscriptions of the current database with workers, stats and table states; cluster counts.

    One row per subscription, or one row of NULLs when there is none; every row carries the
    cluster-wide counts. ``conninfo=False`` leaves ``subconninfo`` (superusers only) out.
    """
    columns = [
        "s.oid AS subid",
        "s.subname::text AS name",
        "pg_catalog.pg_get_userbyid(s.subowner)::text AS owner",
        "s.subenabled AS enabled",
        "s.subpublications::text[] AS publications",
        ("s.subconninfo" if conninfo else "NULL::text") + " AS conninfo",
        "s.subslotname::text AS slot_name",
        "s.subsynccommit AS synchronous_commit",
    ]
    if major >= BINARY_STREAMING_MAJOR:
        columns += ["s.subbinary AS binary", "s.substream::text AS streaming"]
    if major >= SUBSCRIPTION_STATS_MAJOR:
        columns += ["s.subtwophasestate::text AS two_phase_state", "s.subdisableonerr AS disable_on_error"]
    if major >= PARALLEL_APPLY_MAJOR:
        columns += [
            "s.suborigin AS origin",
            "s.subpasswordrequired AS password_required",
            "s.subrunasowner AS run_as_owner",
        ]
    if major >= FAILOVER_MAJOR:
        columns.append("s.subfailover AS failover")
    worker_fields = [
        "'pid', w.pid",
        "'worker_type', " + ("w.worker_type" if major >= WORKER_TYPE_MAJOR else "NULL"),
        "'leader_pid', " + ("w.leader_pid" if major >= PARALLEL_APPLY_MAJOR else "NULL"),
        "'relid', w.relid",
        "'schema', wn.nspname",
        "'table', wc.relname",
        "'received_lsn', w.received_lsn::text",
        "'latest_end_lsn', w.latest_end_lsn::text",
        "'last_msg_send_time', w.last_msg_send_time",
        "'last_msg_receipt_time', w.last_msg_receipt_time",
        "'latest_end_time', w.latest_end_time",
        "'seconds_since_last_msg_send', extract(epoch FROM now() - w.last_msg_send_time)::float8",
        "'seconds_since_last_msg_receipt', extract(epoch FROM now() - w.last_msg_receipt_time)::float8",
        "'seconds_since_latest_end', extract(epoch FROM now() - w.latest_end_time)::float8",
    ]
    workers = sql.SQL(
        "(SELECT coalesce(json_agg(json_build_object({}) ORDER BY w.relid NULLS FIRST, w.pid), '[]'::json)"
        " FROM pg_catalog.pg_stat_subscription w"
        " LEFT JOIN pg_catalog.pg_class wc ON wc.oid = w.relid"
        " LEFT JOIN pg_catalog.pg_namespace wn ON wn.oid = wc.relnamespace"
        " WHERE w.subid = s.oid AND w.pid IS NOT NULL) AS workers"
    ).format(_columns(worker_fields))
    tables = sql.SQL(
        "(SELECT coalesce(json_agg(json_build_object('schema', tn.nspname, 'table', tc.relname,"
        " 'state_code', sr.srsubstate, 'lsn', sr.srsublsn::text) ORDER BY tn.nspname, tc.relname),"
        " '[]'::json)"
        " FROM pg_catalog.pg_subscription_rel sr JOIN pg_catalog.pg_class tc ON tc.oid = sr.srrelid"
        " JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace WHERE sr.srsubid = s.oid) AS tables"
    )
    stats_join = sql.SQL("")
    if major >= SUBSCRIPTION_STATS_MAJOR:
        columns += ["st.apply_error_count", "st.sync_error_count", "st.stats_reset"]
        if major >= CONFLICT_STATS_MAJOR:
            columns += [f"st.confl_{kind}" for kind in CONFLICT_TYPES]
        stats_join = sql.SQL(" LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid = s.oid")
    return sql.SQL(
        "SELECT k.cluster_count, k.cluster_enabled_count, x.* FROM"
        " (SELECT count(*)::int AS cluster_count, count(*) FILTER (WHERE subenabled)::int AS cluster_enabled_count"
        " FROM pg_catalog.pg_subscription) k"
        " LEFT JOIN (SELECT {}, {}, {} FROM pg_catalog.pg_subscription s{}"
        " WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())"
        ") x ON true ORDER BY x.name"
    ).format(_columns(columns), workers, tables, stats_join)


# ----------------------------------------------------------------------------------------------
# Collectors: (conn, major) -> plain data
# ----------------------------------------------------------------------------------------------


def wal_level_pending(row, file_rows):
    """The ``wal_level`` the next restart brings when it differs from the running one, else ``None``.

    ``row`` is the server row (``wal_level*`` columns), ``file_rows`` the ``pg_file_settings``
    rows of ``wal_level`` ordered by ``seqno``.
    """
    guc = Guc(
        {
            "name": "wal_level",
            "setting": row["wal_level"],
            "vartype": row.get("wal_level_vartype") or "enum",
            "enumvals": row.get("wal_level_enumvals"),
            "boot_val": row.get("wal_level_boot_val"),
            "source": row.get("wal_level_source"),
            "context": row.get("wal_level_context") or "postmaster",
            "pending_restart": row.get("wal_level_pending_restart"),
        }
    )
    files, _problems = group_file_settings(file_rows)
    pending = SettingState(guc, files.get("wal_level")).pending
    return guc.display(pending) if pending is not None else None


def collect_server(conn, major, pending=True):
    """Server facts (a dict): version, recovery, ``wal_level`` (running and pending), limits and use, WAL position.

    ``pending`` reads ``pg_file_settings`` (a second query, when the session may) to tell the
    ``wal_level`` a restart would bring (``wal_level_pending``, ``None`` when it is the running
    one or unknown). Without that privilege only PostgreSQL's ``pending_restart`` flag is returned.
    """
    row = _rows(conn, server_query(major))[0]
    facts = {
        "version": row["version"],
        "version_num": row["version_num"],
        "major": row["version_num"] // 10000,
        "in_recovery": row["in_recovery"],
        "database": row["database"],
        "current_lsn": row["current_lsn"],
        "current_lsn_bytes": row["current_lsn_bytes"],
        "wal_level": row["wal_level"],
        "wal_level_pending": None,
        "wal_level_pending_restart": bool(row["wal_level_pending_restart"]),
        "wal_level_pending_known": False,
    }
    for key in (
        "max_replication_slots",
        "replication_slots_used",
        "max_wal_senders",
        "wal_senders_used",
        "max_logical_replication_workers",
        "logical_replication_workers_used",
        "max_worker_processes",
        "max_sync_workers_per_subscription",
        "max_parallel_apply_workers_per_subscription",
        "max_active_replication_origins",
        "max_slot_wal_keep_size",
    ):
        if key in row:
            facts[key] = row[key]
    if pending and row["can_read_file_settings"]:
        facts["wal_level_pending"] = wal_level_pending(row, _rows(conn, WAL_LEVEL_FILE_SETTINGS_QUERY))
        facts["wal_level_pending_restart"] = facts["wal_level_pending"] is not None
        facts["wal_level_pending_known"] = True
    return facts


def publication_state(row, major):
    """A ``publications_query`` row as returned state (the ``publication`` module's shape, plus a count)."""
    tables = []
    for rel in row["tables"] or ():
        tables.append(
            {
                "name": table_display(rel["schema"], rel["table"]),
                "schema": rel["schema"],
                "table": rel["table"],
                "columns": list(rel["columns"]) if rel.get("columns") is not None else None,
                "where": rel.get("where"),
            }
        )
    tables.sort(key=lambda t: (t["schema"], t["table"]))
    state = {
        "name": row["pubname"],
        "owner": row["owner"],
        "all_tables": row["puballtables"],
        "tables": tables,
        "schemas": sorted(row["schemas"] or ()),
        "publish": [op for op in PUBLISH_OPERATIONS if row["pub" + op]],
        "publish_via_partition_root": row["pubviaroot"],
        "comment": row["comment"],
        "published_table_count": row["published_table_count"],
    }
    if major >= GENERATED_COLUMNS_MAJOR:
        state["publish_generated_columns"] = _GENCOLS_FROM_CATALOG.get(row["pubgencols"], row["pubgencols"])
    return state


def collect_publications(conn, major):
    """The publications of the connected database (list of dicts, sorted by name)."""
    return [publication_state(row, major) for row in _rows(conn, publications_query(major))]


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
    for row in _rows(conn, publication_issues_query(major)):
        issues.setdefault(row["kind"], []).append(
            {"publication": row["publication"], "schema": row["schema"], "table": row["table"], "detail": row["detail"]}
        )
    return issues


def collect_slots(conn, major):
    """Every replication slot of the cluster (list of dicts, sorted by name), as ``replication_slot`` returns them.

    Plus ``confirmed_flush_lag_bytes`` (server WAL position minus ``confirmed_flush_lsn``).
    """
    return [slot_state(row) for row in _rows(conn, slots_query(major))]


def collect_senders(conn, major):
    """``pg_stat_replication`` rows (list of dicts) with lag in bytes and seconds and the slot in use."""
    senders = []
    for row in _rows(conn, senders_query(major)):
        sender = dict(row)
        sender["backend_start"] = _iso(sender["backend_start"])
        sender["reply_time"] = _iso(sender["reply_time"])
        senders.append(sender)
    return senders


def subscription_state(row, major):
    """A ``subscriptions_query`` row as returned state."""
    state = {
        key: row.get(key)
        for key in (
            "name",
            "owner",
            "enabled",
            "publications",
            "slot_name",
            "synchronous_commit",
        )
    }
    state["publications"] = list(row["publications"] or ())
    state["conninfo"] = redact(row["conninfo"]) if row.get("conninfo") is not None else None
    if major >= BINARY_STREAMING_MAJOR:
        state["binary"] = row["binary"]
        state["streaming"] = _STREAMING.get(row["streaming"], row["streaming"])
    if major >= SUBSCRIPTION_STATS_MAJOR:
        state["two_phase"] = _TWO_PHASE_STATES.get(row["two_phase_state"], row["two_phase_state"])
        state["disable_on_error"] = row["disable_on_error"]
    for key in ("origin", "password_required", "run_as_owner", "failover"):
        if key in row:
            state[key] = row[key]
    workers = []
    apply_worker = None
    for item in row["workers"] or ():
        worker = {
            "pid": item["pid"],
            "type": worker_type(item, major),
            "table": table_display(item["schema"], item["table"]) if item.get("table") else None,
            "leader_pid": item.get("leader_pid"),
        }
        workers.append(worker)
        if worker["type"] == "apply" and apply_worker is None:
            apply_worker = item
    state["workers"] = workers
    state["apply_worker_pid"] = apply_worker["pid"] if apply_worker else None
    for key in (
        "received_lsn",
        "latest_end_lsn",
        "last_msg_send_time",
        "last_msg_receipt_time",
        "latest_end_time",
        "seconds_since_last_msg_send",
        "seconds_since_last_msg_receipt",
        "seconds_since_latest_end",
    ):
        state[key] = apply_worker.get(key) if apply_worker else None
    if major >= SUBSCRIPTION_STATS_MAJOR:
        state["apply_error_count"] = row.get("apply_error_count") or 0
        state["sync_error_count"] = row.get("sync_error_count") or 0
        state["stats_reset"] = _iso(row.get("stats_reset"))
    else:
        state["apply_error_count"] = None
        state["sync_error_count"] = None
        state["stats_reset"] = None
    if major >= CONFLICT_STATS_MAJOR:
        state["conflicts"] = {kind: row.get(f"confl_{kind}") or 0 for kind in CONFLICT_TYPES}
    tables = []
    counts = {}
    for item in row["tables"] or ():
        name = state_name(item["state_code"])  # the names the subscription module reports
        tables.append(
            {
                "name": table_display(item["schema"], item["table"]),
                "schema": item["schema"],
                "table": item["table"],
                "state": name,
                "state_code": item["state_code"],
                "lsn": item["lsn"],
            }
        )
        counts[name] = counts.get(name, 0) + 1
    state["tables"] = tables
    state["table_states"] = counts
    state["tables_not_ready"] = sum(n for name, n in counts.items() if name != "ready")
    return state


def collect_subscriptions(conn, major, conninfo=None):
    """Subscriptions of the connected database and cluster-wide counts.

    Returns ``{'subscriptions': [...], 'cluster_count': n, 'cluster_enabled_count': n}``.
    ``conninfo``: return each connection string, password redacted; ``None`` (default) = when
    the session may read ``pg_subscription.subconninfo`` (one extra query), ``False`` never.
    """
    if conninfo is None:
        conninfo = bool(_rows(conn, SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY)[0]["allowed"])
    rows = _rows(conn, subscriptions_query(major, bool(conninfo)))
    return {
        "subscriptions": [subscription_state(row, major) for row in rows if row["name"] is not None],
        "cluster_count": rows[0]["cluster_count"],
        "cluster_enabled_count": rows[0]["cluster_enabled_count"],
    }


def collect(
    conn,
    major,
    gather=SUBSETS,
    retained_wal_threshold=DEFAULT_RETAINED_WAL_THRESHOLD,
    pending=True,
    conninfo=None,
):
    """One collection round: the ``gather`` subsets (see :data:`SUBSETS`) as a dict.

    Keys: ``server``, ``publications``, ``slots``, ``senders``, ``subscriptions`` (with
    ``subscription_counts``) and ``checks`` - only those asked for. ``checks`` collects what it
    needs (server, slots, publications, subscriptions and the publication issues) even when those
    subsets are not returned.
    """
    wanted = set(gather)
    unknown = wanted - set(SUBSETS)
    if unknown:
        raise ValueError("unknown subset(s): {}".format(", ".join(sorted(unknown))))
    needed = set(wanted)
    if "checks" in wanted:
        needed |= {"server", "slots", "publications", "subscriptions"}
    facts = {}
    if "server" in needed:
        facts["server"] = collect_server(conn, major, pending=pending)
    if "publications" in needed:
        facts["publications"] = collect_publications(conn, major)
    if "slots" in needed:
        facts["slots"] = collect_slots(conn, major)
    if "senders" in needed:
        facts["senders"] = collect_senders(conn, major)
    if "subscriptions" in needed:
        subs = collect_subscriptions(conn, major, conninfo=conninfo)
        facts["subscriptions"] = subs["subscriptions"]
        facts["subscription_counts"] = {
            "database": len(subs["subscriptions"]),
            "cluster": subs["cluster_count"],
            "cluster_enabled": subs["cluster_enabled_count"],
        }
    if "checks" in wanted:
        issues = collect_publication_issues(conn, major) if facts["publications"] else None
        facts["checks"] = evaluate_checks(facts, issues, retained_wal_threshold)
    result = {}
    for key in SUBSETS:
        if key in wanted:
            result[key] = facts[key]
    if "subscriptions" in wanted:
        result["subscription_counts"] = facts["subscription_counts"]
    return result


# ----------------------------------------------------------------------------------------------
# Activity collectors (the metrics sampler's extra measurements; one query each)
# ----------------------------------------------------------------------------------------------

LOCKS_QUERY = (
    "SELECT mode, count(*)::int AS lock_count, count(*) FILTER (WHERE NOT granted)::int AS waiting_count"
    " FROM pg_catalog.pg_locks GROUP BY mode ORDER BY mode"
)

ACTIVITY_QUERY = (
    "SELECT count(*)::int AS connections,"
    " count(*) FILTER (WHERE state = 'active')::int AS active,"
    " count(*) FILTER (WHERE state = 'idle')::int AS idle,"
    " count(*) FILTER (WHERE state = 'idle in transaction')::int AS idle_in_transaction,"
    " count(*) FILTER (WHERE state = 'idle in transaction (aborted)')::int AS idle_in_transaction_aborted,"
    " count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting_on_lock,"
    " coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0)::float8 AS longest_transaction_seconds,"
    " current_setting('max_connections')::int AS max_connections"
    " FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'"
)
"""Client sessions by state, sessions waiting for a lock, the oldest open transaction's age."""

DATABASE_QUERY = (
    "SELECT d.datname::text AS database,"
    " CASE WHEN %(size)s THEN pg_catalog.pg_database_size(d.datid)::bigint END AS size_bytes,"
    " d.numbackends::int AS backends, d.xact_commit::bigint AS xact_commit, d.xact_rollback::bigint AS xact_rollback,"
    " d.tup_returned::bigint AS tup_returned, d.tup_fetched::bigint AS tup_fetched,"
    " d.tup_inserted::bigint AS tup_inserted, d.tup_updated::bigint AS tup_updated,"
    " d.tup_deleted::bigint AS tup_deleted, d.blks_read::bigint AS blks_read, d.blks_hit::bigint AS blks_hit,"
    " CASE WHEN d.blks_read + d.blks_hit > 0"
    " THEN d.blks_hit::float8 / (d.blks_read + d.blks_hit) END AS cache_hit_ratio,"
    " d.deadlocks::bigint AS deadlocks, d.conflicts::bigint AS conflicts,"
    " d.temp_files::bigint AS temp_files, d.temp_bytes::bigint AS temp_bytes"
    " FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database()"
)
"""``pg_stat_database`` of the connected database plus its size (cumulative counters since the last reset).

Parameter ``size``: whether to compute ``pg_database_size()`` (it stats every file of the database:
the costliest part, ~4 ms on a container's overlay file system).
"""


@_memoize
def checkpoints_query(major):
    """Checkpoint and background writer counters under the same names on every major (17+ has no backend writes)."""
    if major >= CHECKPOINTER_MAJOR:
        return (
            "SELECT c.num_timed::bigint AS checkpoints_timed, c.num_requested::bigint AS checkpoints_requested,"
            " c.write_time::float8 AS write_time_ms, c.sync_time::float8 AS sync_time_ms,"
            " c.buffers_written::bigint AS buffers_checkpoint, b.buffers_clean::bigint AS buffers_clean,"
            " b.maxwritten_clean::bigint AS maxwritten_clean, NULL::bigint AS buffers_backend,"
            " b.buffers_alloc::bigint AS buffers_alloc"
            " FROM pg_catalog.pg_stat_checkpointer c, pg_catalog.pg_stat_bgwriter b"
        )
    return (
        "SELECT checkpoints_timed::bigint AS checkpoints_timed, checkpoints_req::bigint AS checkpoints_requested,"
        " checkpoint_write_time::float8 AS write_time_ms, checkpoint_sync_time::float8 AS sync_time_ms,"
        " buffers_checkpoint::bigint AS buffers_checkpoint, buffers_clean::bigint AS buffers_clean,"
        " maxwritten_clean::bigint AS maxwritten_clean, buffers_backend::bigint AS buffers_backend,"
        " buffers_alloc::bigint AS buffers_alloc"
        " FROM pg_catalog.pg_stat_bgwriter"
    )


STATEMENTS_SCHEMA_QUERY = (
    "SELECT n.nspname::text AS schema FROM pg_catalog.pg_extension e"
    " JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'"
)
"""The schema of the ``pg_stat_statements`` extension in the connected database (no row: not installed)."""


def statements_query(schema):
    """Totals over ``pg_stat_statements`` (PostgreSQL 13+ column names): calls, execution time, mean per call."""
    return sql.SQL(
        "SELECT count(*)::int AS statements, coalesce(sum(calls), 0)::bigint AS calls,"
        " coalesce(sum(total_exec_time), 0)::float8 AS total_exec_time_ms,"
        " CASE WHEN sum(calls) > 0 THEN (sum(total_exec_time) / sum(calls))::float8 END AS mean_exec_time_ms,"
        " coalesce(sum(rows), 0)::bigint AS rows"
        " FROM {}.pg_stat_statements(false)"  # showtext false: the query texts file is not read
    ).format(sql.Identifier(schema))


def collect_locks(conn, major):
    """Locks held or awaited by mode: ``{mode: {lock_count, waiting_count}}``, every table-level mode present (0)."""
    locks = {mode: {"lock_count": 0, "waiting_count": 0} for mode in LOCK_MODES}
    for row in _rows(conn, LOCKS_QUERY):
        locks[row["mode"]] = {"lock_count": row["lock_count"], "waiting_count": row["waiting_count"]}
    return locks


def collect_activity(conn, major):
    """Client sessions of the cluster by state (a dict, see :data:`ACTIVITY_QUERY`)."""
    return dict(_rows(conn, ACTIVITY_QUERY)[0])


def collect_database(conn, major, size=True):
    """Statistics and size of the connected database (a dict, see :data:`DATABASE_QUERY`).

    ``size=False`` skips ``pg_database_size()`` (``size_bytes`` is then None).
    """
    rows = _rows(conn, DATABASE_QUERY, {"size": bool(size)})
    return dict(rows[0]) if rows else {}


def collect_checkpoints(conn, major):
    """Checkpoint counters (``pg_stat_checkpointer`` on 17+, ``pg_stat_bgwriter`` before)."""
    return dict(_rows(conn, checkpoints_query(major))[0])


def statements_schema(conn):
    """The schema of ``pg_stat_statements`` in the connected database, or ``None`` when it is not installed."""
    rows = _rows(conn, STATEMENTS_SCHEMA_QUERY)
    return rows[0]["schema"] if rows else None


def collect_statements(conn, major, schema):
    """Totals over ``pg_stat_statements`` in ``schema`` (see :func:`statements_schema`).

    Raises psycopg's error when the extension is installed but not loaded
    (``shared_preload_libraries``).
    """
    return dict(_rows(conn, statements_query(schema))[0])


HEARTBEAT_TABLE = "public.replication_heartbeat"
"""The replicated heartbeat table (``roles/publisher/files/schema/heartbeat.sql``)."""

HEARTBEAT_EXISTS_QUERY = "SELECT pg_catalog.to_regclass('public.replication_heartbeat') IS NOT NULL AS present"

HEARTBEAT_BEAT_QUERY = (
    "INSERT INTO public.replication_heartbeat AS h (node, beat_at, seq) VALUES (%s, clock_timestamp(), 1)"
    " ON CONFLICT (node) DO UPDATE SET beat_at = excluded.beat_at, seq = h.seq + 1"
)
"""The publisher's beat (parameter: the publisher's node name)."""

HEARTBEAT_LAG_QUERY = (
    "SELECT node, extract(epoch FROM clock_timestamp() - beat_at)::float8 AS lag_seconds, seq"
    " FROM public.replication_heartbeat ORDER BY node"
)


def heartbeat_present(conn):
    """True when the connected database has ``public.replication_heartbeat``."""
    return bool(_rows(conn, HEARTBEAT_EXISTS_QUERY)[0]["present"])


def heartbeat_beat(conn, node):
    """Upsert the publisher's heartbeat row (``beat_at = clock_timestamp()``, ``seq + 1``); needs autocommit."""
    with conn.cursor() as cur:
        cur.execute(HEARTBEAT_BEAT_QUERY, (node,))


def collect_heartbeat(conn, major):
    """Each heartbeat row's age on this server's clock: ``[{node, lag_seconds, seq}]`` (``node``: the publisher)."""
    return [dict(row) for row in _rows(conn, HEARTBEAT_LAG_QUERY)]


# ----------------------------------------------------------------------------------------------
# Checks (pure)
# ----------------------------------------------------------------------------------------------


def finding(severity, code, message, hint):
    """One check result."""
    return {"severity": severity, "code": code, "message": message, "hint": hint}


def _check_wal_level(server, publications, slots):
    found = []
    running = server["wal_level"]
    pending = server.get("wal_level_pending")
    logical_slots = [s for s in slots if s.get("slot_type") == "logical"]
    needed = bool(publications or logical_slots)
    if running != "logical" and pending != "logical":
        message = f"wal_level is {running}, not logical: this server cannot publish (logical decoding is off)"
        if needed:
            what = []
            if publications:
                what.append(f"{len(publications)} publication(s) in database {quote_ident(server['database'])}")
            if logical_slots:
                what.append(f"{len(logical_slots)} logical slot(s)")
            message += ", although it has " + " and ".join(what)
        found.append(
            finding(
                "error" if needed else "info",
                "wal_level_not_logical",
                message,
                "Set wal_level = logical (inventium.logical_replication.server_settings, or ALTER SYSTEM SET "
                "wal_level = logical) and restart PostgreSQL.",
            )
        )
    if pending is not None and pending != running:
        if pending == "logical":
            found.append(
                finding(
                    "error" if needed else "warning",
                    "wal_level_pending",
                    f"wal_level is {running}; logical is configured but takes effect only after a restart",
                    "Restart PostgreSQL to enable logical decoding.",
                )
            )
        else:
            message = f"wal_level is {running} but {pending} is configured and takes effect at the next restart"
            if running == "logical":
                message += ": the restart disables logical decoding (publications and logical slots stop working)"
            found.append(
                finding(
                    "error" if running == "logical" else "warning",
                    "wal_level_pending",
                    message,
                    "Undo the pending change before a restart (ALTER SYSTEM RESET wal_level or ALTER SYSTEM SET "
                    "wal_level = logical, then SELECT pg_reload_conf()), or use "
                    "inventium.logical_replication.server_settings with wal_level: logical.",
                )
            )
    elif pending is None and server.get("wal_level_pending_restart") and not server.get("wal_level_pending_known"):
        found.append(
            finding(
                "warning",
                "wal_level_pending",
                f"wal_level is {running} and PostgreSQL reports a changed value pending a restart "
                "(this session may not read pg_file_settings to tell which)",
                "Check postgresql.conf and postgresql.auto.conf, or run the check as a superuser.",
            )
        )
    return found


def _check_limits(server, slots, subscription_counts):
    found = []
    persistent = [s for s in slots if not s.get("temporary")]
    used = server.get("replication_slots_used", len(slots))
    max_slots = server["max_replication_slots"]
    if slots and used >= max_slots:
        found.append(
            finding(
                "warning",
                "max_replication_slots_too_low",
                f"all {max_slots} replication slots are in use (max_replication_slots = {max_slots}): a new "
                "subscription, or the initial table synchronization of one (it uses temporary slots), fails",
                f"Raise max_replication_slots above {used} (for example {used + 4}) and restart PostgreSQL, "
                "or drop slots no longer used.",
            )
        )
    max_senders = server["max_wal_senders"]
    if len(persistent) > max_senders:
        found.append(
            finding(
                "error",
                "max_wal_senders_too_low",
                f"max_wal_senders = {max_senders} is lower than the {len(persistent)} replication slots: not every "
                "slot's consumer can connect",
                f"Raise max_wal_senders to at least {len(persistent)} plus headroom for table synchronization "
                "(for example {}) and restart PostgreSQL.".format(len(persistent) + 4),
            )
        )
    elif slots and server.get("wal_senders_used", 0) >= max_senders:
        found.append(
            finding(
                "warning",
                "max_wal_senders_too_low",
                f"all {max_senders} WAL senders are in use (max_wal_senders = {max_senders}): a new subscription "
                "or a table synchronization cannot connect",
                "Raise max_wal_senders and restart PostgreSQL.",
            )
        )
    counts = subscription_counts or {}
    total = counts.get("cluster") or 0
    enabled = counts.get("cluster_enabled") or 0
    sync = server.get("max_sync_workers_per_subscription") or 0
    if total:
        # Each subscription tracks its progress in a replication origin; table syncs use one each.
        if "max_active_replication_origins" in server:
            origins_name, origins = "max_active_replication_origins", server["max_active_replication_origins"]
        else:
            origins_name, origins = "max_replication_slots", max_slots
        if origins < total:
            found.append(
                finding(
                    "error",
                    f"{origins_name}_too_low",
                    f"{origins_name} = {origins} is lower than the {total} subscriptions of this server: it also "
                    "limits the replication origins that track each subscription's progress",
                    f"Raise {origins_name} to at least {total + sync} and restart PostgreSQL.",
                )
            )
        elif origins < total + sync:
            found.append(
                finding(
                    "warning",
                    f"{origins_name}_too_low",
                    f"{origins_name} = {origins} leaves no room for the replication origins of table synchronization "
                    f"({total} subscriptions, max_sync_workers_per_subscription = {sync})",
                    f"Raise {origins_name} to at least {total + sync} and restart PostgreSQL.",
                )
            )
    max_workers = server["max_logical_replication_workers"]
    if enabled and max_workers < enabled:
        found.append(
            finding(
                "error",
                "max_logical_replication_workers_too_low",
                f"max_logical_replication_workers = {max_workers} is lower than the {enabled} enabled subscriptions: "
                "some subscriptions get no apply worker and do not replicate",
                f"Raise max_logical_replication_workers to at least {enabled + sync} and restart PostgreSQL.",
            )
        )
    elif enabled and max_workers < enabled + sync:
        found.append(
            finding(
                "warning",
                "max_logical_replication_workers_too_low",
                f"max_logical_replication_workers = {max_workers} leaves no headroom for table synchronization "
                f"workers ({enabled} enabled subscriptions, max_sync_workers_per_subscription = {sync})",
                f"Raise max_logical_replication_workers to at least {enabled + sync} and restart PostgreSQL.",
            )
        )
    max_processes = server["max_worker_processes"]
    if enabled and max_processes < enabled + 1:
        found.append(
            finding(
                "error",
                "max_worker_processes_too_low",
                f"max_worker_processes = {max_processes} cannot run the logical replication launcher plus the "
                f"apply workers of {enabled} enabled subscriptions",
                f"Raise max_worker_processes to at least {max_workers + 1} and restart PostgreSQL.",
            )
        )
    elif max_workers and max_processes < max_workers + 1:
        found.append(
            finding(
                "warning",
                "max_worker_processes_too_low",
                f"max_worker_processes = {max_processes} is lower than max_logical_replication_workers + 1 "
                f"({max_workers + 1}): logical replication workers and the launcher come out of max_worker_processes",
                f"Raise max_worker_processes to at least {max_workers + 1} (plus parallel query workers) and restart "
                "PostgreSQL.",
            )
        )
    return found


def _check_slots(slots, threshold):
    found = []
    for slot in slots:
        name = slot["name"]
        lost = slot.get("wal_status") == "lost"
        if lost:
            found.append(
                finding(
                    "error",
                    "slot_wal_lost",
                    f"replication slot {name} has lost WAL it needs (wal_status = lost"
                    + (
                        f", invalidation_reason = {slot['invalidation_reason']}"
                        if slot.get("invalidation_reason")
                        else ""
                    )
                    + "): its consumer cannot continue",
                    "Drop the slot and re-create the subscription (or re-synchronize its consumer); consider a larger "
                    "max_slot_wal_keep_size.",
                )
            )
        elif slot.get("invalidation_reason") or slot.get("conflicting"):
            reason = slot.get("invalidation_reason") or "recovery conflict"
            found.append(
                finding(
                    "error",
                    "slot_invalidated",
                    f"replication slot {name} is invalidated ({reason}): its consumer cannot continue",
                    "Drop the slot and re-create it; re-synchronize its consumer.",
                )
            )
        elif slot.get("wal_status") == "unreserved":
            found.append(
                finding(
                    "warning",
                    "slot_wal_unreserved",
                    f"replication slot {name} retains more WAL than max_slot_wal_keep_size allows (wal_status = "
                    "unreserved): the WAL it needs is removed at the next checkpoint unless its consumer catches up",
                    "Let the consumer catch up now, or raise max_slot_wal_keep_size.",
                )
            )
        retained = slot.get("retained_wal_bytes")
        if not slot.get("active") and not lost and retained is not None and retained > threshold:
            found.append(
                finding(
                    "warning",
                    "slot_inactive_retaining_wal",
                    f"replication slot {name} is inactive and retains {format_bytes(retained)} of WAL "
                    f"(threshold {format_bytes(threshold)})",
                    "Reconnect its consumer, or drop the slot if nothing uses it any more "
                    "(inventium.logical_replication.replication_slot with state: absent).",
                )
            )
    return found


def _check_subscriptions(subscriptions):
    found = []
    disabled = [s["name"] for s in subscriptions if not s.get("enabled")]
    if disabled:
        found.append(
            finding(
                "warning",
                "subscription_disabled",
                f"disabled subscription(s): {_listing(quote_ident(n) for n in disabled)}",
                "Enable with ALTER SUBSCRIPTION ... ENABLE (after fixing the error that disabled it, if "
                "disable_on_error was set; see the server log).",
            )
        )
    not_running = [s["name"] for s in subscriptions if s.get("enabled") and not s.get("apply_worker_pid")]
    if not_running:
        found.append(
            finding(
                "warning",
                "subscription_not_running",
                "enabled subscription(s) without a running apply worker: "
                + _listing(quote_ident(n) for n in not_running),
                "The worker may be restarting after an error, waiting for a free worker slot "
                "(max_logical_replication_workers), or unable to connect; see the subscriber's server log.",
            )
        )
    errors = [s for s in subscriptions if (s.get("apply_error_count") or 0) > 0 or (s.get("sync_error_count") or 0) > 0]
    if errors:
        details = _listing(
            f"{quote_ident(s['name'])} (apply errors {s.get('apply_error_count') or 0}, "
            f"sync errors {s.get('sync_error_count') or 0})"
            for s in errors
        )
        found.append(
            finding(
                "warning",
                "subscription_errors",
                f"subscription(s) with errors since the statistics were reset: {details}",
                "See the subscriber's server log for the errors (often a conflict such as a duplicate key); after "
                "fixing them reset the counters with SELECT pg_stat_reset_subscription_stats(NULL).",
            )
        )
    conflicts = []
    for s in subscriptions:
        counts = {k: v for k, v in (s.get("conflicts") or {}).items() if v}
        if counts:
            conflicts.append(
                "{} ({})".format(quote_ident(s["name"]), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            )
    if conflicts:
        found.append(
            finding(
                "warning",
                "subscription_conflicts",
                f"subscription(s) that met conflicts while applying changes: {_listing(conflicts)}",
                "See the subscriber's server log for each conflict; reset the counters with "
                "SELECT pg_stat_reset_subscription_stats(NULL).",
            )
        )
    not_ready = []
    for s in subscriptions:
        if s.get("tables_not_ready"):
            states = ", ".join(f"{n} {state}" for state, n in sorted(s["table_states"].items()) if state != "ready")
            not_ready.append(f"{quote_ident(s['name'])} ({states})")
    if not_ready:
        found.append(
            finding(
                "warning",
                "tables_not_ready",
                f"subscription(s) with tables not yet ready (initial synchronization): {_listing(not_ready)}",
                "Wait for the initial copy to finish; if it does not progress, check sync errors, "
                "max_sync_workers_per_subscription and the subscriber's server log.",
            )
        )
    return found


def _check_publications(issues):
    found = []
    if not issues:
        return found
    by_pub = {}
    for item in issues.get("no_replica_identity", ()):
        by_pub.setdefault(item["publication"], []).append(table_display(item["schema"], item["table"]))
    for publication, tables in sorted(by_pub.items()):
        found.append(
            finding(
                "error",
                "replica_identity_missing",
                f"publication {quote_ident(publication)} publishes UPDATE/DELETE but these tables have neither a "
                f"primary key nor a replica identity, so PostgreSQL refuses UPDATE/DELETE on them: {_listing(tables)}",
                "Add a primary key, set REPLICA IDENTITY (USING INDEX or FULL), or leave update and delete out of "
                "the publication's publish option.",
            )
        )
    for kind, problem in (
        ("row_filter_outside_replica_identity", "the row filter uses column(s) outside the replica identity"),
        ("column_list_lacks_replica_identity", "the column list lacks replica identity column(s)"),
    ):
        items = [
            f"{table_display(i['schema'], i['table'])} in publication {quote_ident(i['publication'])} ({i['detail']})"
            for i in issues.get(kind, ())
        ]
        if items:
            found.append(
                finding(
                    "error",
                    kind,
                    f"UPDATE/DELETE are published but {problem}, so PostgreSQL refuses UPDATE/DELETE on these "
                    f"tables: {_listing(items)}",
                    "Filter on replica identity columns only and keep them in column lists, set REPLICA IDENTITY "
                    "FULL (for row filters), or leave update and delete out of the publication's publish option.",
                )
            )
    sequences = sorted({item["detail"] for item in issues.get("owned_sequence", ())})
    if sequences:
        found.append(
            finding(
                "info",
                "sequences_not_replicated",
                f"published tables own {len(sequences)} sequence(s) whose values logical replication does not copy: "
                f"{_listing(sequences)}",
                "Before switching writes to a subscriber, set its sequences past the publisher's values "
                "(SELECT setval(...)).",
            )
        )
    return found


def evaluate_checks(facts, publication_issues=None, retained_wal_threshold=DEFAULT_RETAINED_WAL_THRESHOLD):
    """Findings (list of ``{severity, code, message, hint}``) from collected facts, errors first.

    ``facts`` holds ``server``, ``slots``, ``publications``, ``subscriptions`` and
    ``subscription_counts`` as :func:`collect` returns them (missing ones are skipped);
    ``publication_issues`` is :func:`collect_publication_issues`'s result.
    """
    server = facts.get("server")
    slots = facts.get("slots") or []
    publications = facts.get("publications") or []
    subscriptions = facts.get("subscriptions") or []
    found = []
    if server:
        found += _check_wal_level(server, publications, slots)
        found += _check_limits(server, slots, facts.get("subscription_counts"))
    found += _check_slots(slots, retained_wal_threshold)
    found += _check_publications(publication_issues)
    found += _check_subscriptions(subscriptions)
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: order[f["severity"]])
