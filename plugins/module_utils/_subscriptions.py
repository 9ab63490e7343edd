# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The subscriptions: the ONLY SQL reading ``pg_subscription``, ``pg_subscription_rel`` and their statistics.

Used by the ``subscription`` module, ``replication_info`` and the metrics sampler alike.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    columns_sql,
    fetch_rows,
    iso,
    memoize,
    table_display,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    BINARY_STREAMING_MAJOR,
    CONFLICT_STATS_MAJOR,
    CONFLICT_TYPES,
    FAILOVER_MAJOR,
    PARALLEL_APPLY_MAJOR,
    STREAMING_FROM_CATALOG,
    SUBSCRIPTION_STATS_MAJOR,
    TWO_PHASE_STATES,
    WORKER_TYPE_MAJOR,
    sync_state_name,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact


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


def subscription_columns(major, conninfo=True):
    """The ``pg_subscription s`` columns of a subscription's definition, the server's only.

    ``conninfo=False`` leaves ``subconninfo`` (readable by superusers only) out (``NULL``).
    """
    columns = [
        "s.oid",
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
        columns += [
            "s.subtwophasestate::text AS two_phase_state",
            "s.subdisableonerr AS disable_on_error",
            "s.subskiplsn::text AS skip_lsn",
        ]
    if major >= PARALLEL_APPLY_MAJOR:
        columns += [
            "s.suborigin AS origin",
            "s.subpasswordrequired AS password_required",
            "s.subrunasowner AS run_as_owner",
        ]
    if major >= FAILOVER_MAJOR:
        columns.append("s.subfailover AS failover")
    return columns


IN_CURRENT_DATABASE = "s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())"


@memoize
def subscription_query(major, conninfo=True):
    """SELECT of one subscription of the current database (parameter: its name): :func:`subscription_columns`."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_subscription s WHERE {} AND s.subname = %s").format(
        columns_sql(subscription_columns(major, conninfo)), sql.SQL(IN_CURRENT_DATABASE)
    )


@memoize
def named_subscriptions_query(major, conninfo=True):
    """SELECT of the named subscriptions of the current database (parameter: a list of names), one read for many."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_subscription s WHERE {} AND s.subname::text = ANY(%s::text[])").format(
        columns_sql(subscription_columns(major, conninfo)), sql.SQL(IN_CURRENT_DATABASE)
    )


COMMENT_COLUMN = "pg_catalog.obj_description(s.oid, 'pg_subscription') AS comment"
"""A subscription's comment (``COMMENT ON SUBSCRIPTION``). ``pg_subscription`` is a shared catalog, but the
comment is stored in the database's own ``pg_description`` (as psql's ``\\dRs+`` reads it), not in
``pg_shdescription``: ``shobj_description`` never finds it, and it is readable only from the subscription's
database - the only one whose subscriptions these queries read."""


@memoize
def subscription_with_comment_query(major):
    """:func:`subscription_query` (with ``subconninfo``) plus the ``comment`` (the pause record lives there)."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_subscription s WHERE {} AND s.subname = %s").format(
        columns_sql([*subscription_columns(major), COMMENT_COLUMN]), sql.SQL(IN_CURRENT_DATABASE)
    )


@memoize
def subscriptions_with_comment_query(major):
    """Every subscription of the current database: :func:`subscription_columns` plus the ``comment``."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_subscription s WHERE {} ORDER BY s.subname").format(
        columns_sql([*subscription_columns(major), COMMENT_COLUMN]), sql.SQL(IN_CURRENT_DATABASE)
    )


def apply_position_query(major):
    """How far a subscription's apply worker got (parameters: a target LSN, its oid): one row or none.

    ``pid``, ``received_lsn``, ``latest_end_lsn`` (the last position reported to the publisher's
    walsender) and ``caught_up`` (``latest_end_lsn >= target``). No row while no apply worker runs.
    """
    return (
        "SELECT w.pid, w.received_lsn::text AS received_lsn, w.latest_end_lsn::text AS latest_end_lsn,"  # noqa: S608
        " coalesce(w.latest_end_lsn >= %s::pg_lsn, false) AS caught_up"
        " FROM pg_catalog.pg_stat_subscription w"
        f" WHERE w.subid = %s AND w.pid IS NOT NULL AND {apply_worker_condition(major)}"
    )


SUBSCRIPTION_OIDS_QUERY = (
    "SELECT s.oid::bigint AS oid, s.subname::text AS name FROM pg_catalog.pg_subscription s"  # noqa: S608 - constant
    " WHERE " + IN_CURRENT_DATABASE
)


def subscription_oids(conn):
    """``{oid: name}`` of the subscriptions of the current database (the server log names a worker's
    replication origin ``pg_<oid>``)."""
    return {row["oid"]: row["name"] for row in fetch_rows(conn, SUBSCRIPTION_OIDS_QUERY)}


SUBSCRIPTION_PUBLICATIONS_QUERY = (
    "SELECT s.subname::text AS name, s.subpublications::text[] AS publications"  # noqa: S608 - constant
    " FROM pg_catalog.pg_subscription s WHERE " + IN_CURRENT_DATABASE + " ORDER BY 1"
)


def subscription_publications(conn):
    """``{subscription: [publication, ...]}`` of the subscriptions in the connected database (any role can read it:
    no ``subconninfo``)."""
    return {row["name"]: list(row["publications"]) for row in fetch_rows(conn, SUBSCRIPTION_PUBLICATIONS_QUERY)}


SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY = (
    "SELECT pg_catalog.has_column_privilege('pg_catalog.pg_subscription', 'subconninfo', 'SELECT') AS allowed,"
    " pg_catalog.has_table_privilege('pg_catalog.pg_replication_origin_status', 'SELECT') AS origins"
)
"""``allowed``: the session may read connection strings; ``origins``: the replication origins' positions (both are
superuser-only by default)."""


# The last commit of the publisher that the subscription applied (its replication origin's remote_lsn): survives
# restarts and a publisher that is down, unlike pg_stat_subscription's positions.
ORIGIN_LSN_COLUMN = (
    "(SELECT os.remote_lsn::text FROM pg_catalog.pg_replication_origin_status os"
    " WHERE os.external_id = 'pg_' || s.oid::text) AS origin_lsn"
)


@memoize
def subscriptions_query(major, conninfo=True, origins=False):
    """The subscriptions of the current database with workers, stats and table states; cluster counts.

    One row per subscription, or one row of NULLs when there is none; every row carries the
    cluster-wide counts. ``conninfo=False`` leaves ``subconninfo`` (superusers only) out; ``origins=True`` reads
    each subscription's origin position (``pg_replication_origin_status``, superusers only by default).
    """
    columns = [
        *subscription_columns(major, conninfo),
        COMMENT_COLUMN,
        ORIGIN_LSN_COLUMN if origins else "NULL::text AS origin_lsn",
    ]
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
    ).format(columns_sql(worker_fields))
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
        " WHERE {}) x ON true ORDER BY x.name"
    ).format(columns_sql(columns), workers, tables, stats_join, sql.SQL(IN_CURRENT_DATABASE))


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
    state["origin_lsn"] = row.get("origin_lsn")
    # The subscription's comment; a pause record (subscription_pause) is JSON in it (_pause_record.parse_pause_record).
    state["comment"] = row.get("comment")
    if major >= BINARY_STREAMING_MAJOR:
        state["binary"] = row["binary"]
        state["streaming"] = STREAMING_FROM_CATALOG.get(row["streaming"], row["streaming"])
    if major >= SUBSCRIPTION_STATS_MAJOR:
        state["two_phase"] = TWO_PHASE_STATES.get(row["two_phase_state"], row["two_phase_state"])
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
        state["stats_reset"] = iso(row.get("stats_reset"))
    else:
        state["apply_error_count"] = None
        state["sync_error_count"] = None
        state["stats_reset"] = None
    if major >= CONFLICT_STATS_MAJOR:
        state["conflicts"] = {kind: row.get(f"confl_{kind}") or 0 for kind in CONFLICT_TYPES}
    tables = []
    counts = {}
    for item in row["tables"] or ():
        name = sync_state_name(item["state_code"])  # the names the subscription module reports
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
    the session may read ``pg_subscription.subconninfo`` (one extra query; each ``origin_lsn`` too, when it may
    read ``pg_replication_origin_status``), ``False`` never (and no ``origin_lsn``).
    """
    origins = False
    if conninfo is None:
        privileges = fetch_rows(conn, SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY)[0]
        conninfo, origins = bool(privileges["allowed"]), bool(privileges["origins"])
    rows = fetch_rows(conn, subscriptions_query(major, bool(conninfo), origins))
    return subscriptions_from_rows(rows, major)


def subscriptions_from_rows(rows, major):
    """What :func:`collect_subscriptions` returns, from the rows of :func:`subscriptions_query`."""
    return {
        "subscriptions": [subscription_state(row, major) for row in rows if row["name"] is not None],
        "cluster_count": rows[0]["cluster_count"],
        "cluster_enabled_count": rows[0]["cluster_enabled_count"],
    }


# ----------------------------------------------------------------------------------------------
# Per-table state and the progress of the initial synchronization (subscription_sync's polls)
# ----------------------------------------------------------------------------------------------

MAX_LISTED = 20
"""At most this many not-ready tables are fetched per poll and listed in messages."""


def apply_worker_condition(major):
    """SQL condition on ``pg_stat_subscription w``: the row is an apply worker (see :func:`worker_type`)."""
    if major >= WORKER_TYPE_MAJOR:
        return "w.worker_type = 'apply'"
    if major >= PARALLEL_APPLY_MAJOR:
        return "w.relid IS NULL AND w.leader_pid IS NULL"
    return "w.relid IS NULL"


def progress_query(major):
    """The one query run per poll (parameter: the subscription's oid).

    Columns: ``enabled`` (NULL when the subscription is gone), ``total``, ``pending`` (count of
    tables not ready), ``pending_tables`` (json list of up to :data:`MAX_LISTED`
    ``{schema, table, state}``), ``apply_running`` and, on PostgreSQL 15+,
    ``apply_error_count`` / ``sync_error_count``.
    """
    stats = (
        ", st.apply_error_count, st.sync_error_count"
        if major >= SUBSCRIPTION_STATS_MAJOR
        else ", NULL::bigint AS apply_error_count, NULL::bigint AS sync_error_count"
    )
    stats_join = (
        " LEFT JOIN pg_catalog.pg_stat_subscription_stats st ON st.subid = s.oid"
        if major >= SUBSCRIPTION_STATS_MAJOR
        else ""
    )
    return (
        "SELECT s.subenabled AS enabled,"  # noqa: S608 - constant SQL, the oid is a parameter
        " (SELECT count(*) FROM pg_catalog.pg_subscription_rel r WHERE r.srsubid = s.oid) AS total,"
        " (SELECT count(*) FROM pg_catalog.pg_subscription_rel r"
        "   WHERE r.srsubid = s.oid AND r.srsubstate <> 'r') AS pending,"
        " (SELECT coalesce(json_agg(json_build_object('schema', p.nspname, 'table', p.relname,"
        "   'state', p.srsubstate) ORDER BY p.nspname, p.relname), '[]'::json)"
        "   FROM (SELECT n.nspname::text AS nspname, c.relname::text AS relname, r.srsubstate::text AS srsubstate"
        "     FROM pg_catalog.pg_subscription_rel r JOIN pg_catalog.pg_class c ON c.oid = r.srrelid"
        "     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        "     WHERE r.srsubid = s.oid AND r.srsubstate <> 'r'"
        f"     ORDER BY n.nspname, c.relname LIMIT {MAX_LISTED}) p) AS pending_tables,"
        " EXISTS (SELECT 1 FROM pg_catalog.pg_stat_subscription w"
        f"   WHERE w.subid = s.oid AND w.pid IS NOT NULL AND {apply_worker_condition(major)}) AS apply_running"
        f"{stats}"
        f" FROM pg_catalog.pg_subscription s{stats_join}"
        " WHERE s.oid = %s"
    )


TABLES_QUERY = (
    "SELECT n.nspname::text AS schema, c.relname::text AS table, r.srsubstate::text AS state,"
    " r.srsublsn::text AS lsn"
    " FROM pg_catalog.pg_subscription_rel r JOIN pg_catalog.pg_class c ON c.oid = r.srrelid"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE r.srsubid = %s ORDER BY n.nspname, c.relname"
)
"""Every table of a subscription with its sync state (parameter: the subscription's oid)."""


REL_IDS_QUERY = "SELECT srrelid::bigint AS relid FROM pg_catalog.pg_subscription_rel WHERE srsubid = %s"
"""The tables of a subscription (parameter: its oid)."""

SYNCING_REL_IDS_QUERY = REL_IDS_QUERY + " AND srsubstate IN ('d', 'f', 's')"
"""The tables of a subscription whose synchronization may hold a slot on the publisher (parameter: its oid)."""

WORKERS_RUNNING_QUERY = "SELECT count(*) AS n FROM pg_catalog.pg_stat_subscription WHERE subid = %s AND pid IS NOT NULL"
"""How many workers of a subscription run (parameter: its oid)."""

ORIGIN_LSN_QUERY = "SELECT remote_lsn::text AS lsn FROM pg_catalog.pg_replication_origin_status WHERE external_id = %s"
"""How far a subscription has applied (parameter: its origin's name, ``pg_<oid>``)."""
