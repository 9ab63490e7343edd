# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the metrics sampler measures besides slots and subscriptions: WAL senders, locks, sessions,
the database, checkpoints, statements and the replicated heartbeat (one query each), and the sampler's
round: the queries of every tick sent together in one pipeline (:func:`collect_round`), the optional
ones (heartbeat, statements: :func:`heartbeat_beat_piece` and co.) in the same pipeline.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    columns_sql,
    fetch_pipelined,
    fetch_rows,
    iso,
    memoize,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import (
    SLOT_OF_SENDER,
    slot_state,
    slots_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    subscriptions_from_rows,
    subscriptions_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    CHECKPOINTER_MAJOR,
    LOCK_MODES,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql


@memoize
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
        "SELECT {} FROM pg_catalog.pg_stat_replication r {} CROSS JOIN (SELECT {} AS lsn) c"
        " ORDER BY r.application_name, r.pid"
    ).format(columns_sql(columns), sql.SQL(SLOT_OF_SENDER), sql.SQL(CURRENT_LSN))


def collect_senders(conn, major):
    """``pg_stat_replication`` rows (list of dicts) with lag in bytes and seconds and the slot in use."""
    return senders_from_rows(fetch_rows(conn, senders_query(major)))


def senders_from_rows(rows):
    """What :func:`collect_senders` returns, from the rows of :func:`senders_query`."""
    senders = []
    for row in rows:
        sender = dict(row)
        sender["backend_start"] = iso(sender["backend_start"])
        sender["reply_time"] = iso(sender["reply_time"])
        senders.append(sender)
    return senders


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


@memoize
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
    return locks_from_rows(fetch_rows(conn, LOCKS_QUERY))


def locks_from_rows(rows):
    """What :func:`collect_locks` returns, from the rows of :data:`LOCKS_QUERY`."""
    locks = {mode: {"lock_count": 0, "waiting_count": 0} for mode in LOCK_MODES}
    for row in rows:
        locks[row["mode"]] = {"lock_count": row["lock_count"], "waiting_count": row["waiting_count"]}
    return locks


def collect_activity(conn, major):
    """Client sessions of the cluster by state (a dict, see :data:`ACTIVITY_QUERY`)."""
    return _first(fetch_rows(conn, ACTIVITY_QUERY))


def _first(rows):
    return dict(rows[0])


def _first_or_empty(rows):
    return dict(rows[0]) if rows else {}


def collect_database(conn, major, size=True):
    """Statistics and size of the connected database (a dict, see :data:`DATABASE_QUERY`).

    ``size=False`` skips ``pg_database_size()`` (``size_bytes`` is then None).
    """
    return _first_or_empty(fetch_rows(conn, DATABASE_QUERY, {"size": bool(size)}))


def collect_checkpoints(conn, major):
    """Checkpoint counters (``pg_stat_checkpointer`` on 17+, ``pg_stat_bgwriter`` before)."""
    return _first(fetch_rows(conn, checkpoints_query(major)))


def statements_schema(conn):
    """The schema of ``pg_stat_statements`` in the connected database, or ``None`` when it is not installed."""
    return run_piece(conn, STATEMENTS_SCHEMA_PIECE)


def _schema_or_none(rows):
    return rows[0]["schema"] if rows else None


STATEMENTS_SCHEMA_PIECE = (STATEMENTS_SCHEMA_QUERY, None, _schema_or_none)
""":func:`statements_schema` as a piece of a round (see :func:`collect_round`)."""


def collect_statements(conn, major, schema):
    """Totals over ``pg_stat_statements`` in ``schema`` (see :func:`statements_schema`).

    Raises psycopg's error when the extension is installed but not loaded
    (``shared_preload_libraries``).
    """
    return run_piece(conn, statements_piece(conn, schema))


def statements_piece(conn, schema):
    """:func:`collect_statements` as a piece of a round (see :func:`collect_round`), its SQL rendered once
    for ``conn`` (psycopg would render the composed query again on every execution)."""
    return (statements_query(schema).as_string(conn), None, _first)


HEARTBEAT_TABLE = "public.replication_heartbeat"
"""The replicated heartbeat table (``roles/publisher/files/schema/heartbeat.sql``)."""


HEARTBEAT_EXISTS_QUERY = "SELECT pg_catalog.to_regclass('public.replication_heartbeat') IS NOT NULL AS present"


HEARTBEAT_BEAT_QUERY = (
    "INSERT INTO public.replication_heartbeat AS h (node, beat_at, seq) VALUES (%s, clock_timestamp(), 1)"
    " ON CONFLICT (node) DO UPDATE SET beat_at = excluded.beat_at, seq = h.seq + 1"
    " RETURNING seq"
)
"""The publisher's beat (parameter: the publisher's node name). It returns the beat's ``seq``, so the sampler
learns which beat it wrote without another query."""


HEARTBEAT_LAG_QUERY = (
    "SELECT node, extract(epoch FROM clock_timestamp() - beat_at)::float8 AS lag_seconds, seq"
    " FROM public.replication_heartbeat ORDER BY node"
)
"""Each heartbeat row on a node: the newest beat it has seen (``seq``) and that beat's age on the node's clock
(``lag_seconds``). The sampler turns ``seq`` into the age of the oldest beat not yet seen; the age is its
fallback when it does not know when that beat was written."""


def heartbeat_present(conn):
    """True when the connected database has ``public.replication_heartbeat``."""
    return run_piece(conn, HEARTBEAT_PRESENT_PIECE)


def _present(rows):
    return bool(rows[0]["present"])


HEARTBEAT_PRESENT_PIECE = (HEARTBEAT_EXISTS_QUERY, None, _present)
""":func:`heartbeat_present` as a piece of a round (see :func:`collect_round`)."""


def heartbeat_beat(conn, node):
    """Upsert the publisher's heartbeat row (``beat_at = clock_timestamp()``, ``seq + 1``); needs autocommit.

    Returns the ``seq`` of the beat just written.
    """
    return run_piece(conn, heartbeat_beat_piece(node))


def heartbeat_beat_piece(node):
    """:func:`heartbeat_beat` as a piece of a round (see :func:`collect_round`)."""
    return (HEARTBEAT_BEAT_QUERY, (node,), _beat_seq)


def _beat_seq(rows):
    return rows[0]["seq"]


def collect_heartbeat(conn, major):
    """Each heartbeat row's newest seen beat and its age on this server's clock: ``[{node, lag_seconds, seq}]``.

    ``node`` is the publisher that wrote the row.
    """
    return run_piece(conn, HEARTBEAT_READ_PIECE)


def _dicts(rows):
    return [dict(row) for row in rows]


HEARTBEAT_READ_PIECE = (HEARTBEAT_LAG_QUERY, None, _dicts)
""":func:`collect_heartbeat` as a piece of a round (see :func:`collect_round`)."""


def run_piece(conn, piece):
    """One piece ``(query, params, parse)`` of a round run on its own: ``parse`` of its rows."""
    query, params, parse = piece
    return parse(fetch_rows(conn, query, params))


def round_queries(major, size=True, extra=None):
    """The queries of one sampler round: ``{fact: (query, params, parse)}``, ``parse`` turning the query's rows
    into what the single-query reader of the fact returns (:func:`collect_locks`, ..., ``collect_slots``,
    ``collect_subscriptions(...)["subscriptions"]`` without connection strings). ``size``: see
    :func:`collect_database`. ``extra``: more pieces of the same shape, after these (e.g.
    :func:`heartbeat_beat_piece`)."""
    queries = dict(_core_queries(major, bool(size)))
    queries.update(extra or {})
    return queries


@memoize
def _core_queries(major, size):
    """The every-tick pieces of :func:`round_queries` with their SQL as text: rendered once per major (psycopg
    renders a composed query on every execution; these are plain ``sql.SQL``, which renders without a
    connection)."""
    queries = {
        "locks": (LOCKS_QUERY, None, locks_from_rows),
        "activity": (ACTIVITY_QUERY, None, _first),
        "database": (DATABASE_QUERY, {"size": size}, _first_or_empty),
        "checkpoints": (checkpoints_query(major), None, _first),
        "senders": (senders_query(major), None, senders_from_rows),
        "slots": (slots_query(major), None, _slot_states),
        "subscriptions": (subscriptions_query(major, False), None, _subscription_states(major)),
    }
    return tuple(
        (fact, (query if isinstance(query, str) else query.as_string(None), params, parse))
        for fact, (query, params, parse) in queries.items()
    )


def _slot_states(rows):
    return [slot_state(row) for row in rows]


def _subscription_states(major):
    def parse(rows):
        return subscriptions_from_rows(rows, major)["subscriptions"]

    return parse


def collect_round(conn, major, size=True, extra=None):
    """Every fact of :func:`round_queries` in one pipeline (one round trip): ``{fact: value}``.

    The same values as the single-query readers, for a fraction of the round's latency on a busy server.
    The pipeline is one implicit transaction: when any of its queries fails, psycopg raises that error and
    nothing of it is kept (a heartbeat beat in ``extra`` included); the connection stays usable.
    """
    queries = round_queries(major, size, extra)
    results = fetch_pipelined(conn, [(query, params) for query, params, _parse in queries.values()])
    pairs = zip(queries.items(), results)  # noqa: B905 (runs on Python < 3.10 too; one result per query)
    return {fact: parse(rows) for (fact, (_query, _params, parse)), rows in pairs}
