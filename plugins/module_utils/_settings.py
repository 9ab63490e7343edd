# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Server facts and settings: version, recovery, ``wal_level`` (running and pending), limits and their use."""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    columns_sql,
    fetch_rows,
    memoize,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    PARALLEL_APPLY_MAJOR,
    REPLICATION_ORIGINS_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import (
    Guc,
    SettingState,
    group_file_settings,
)


@memoize
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
    ).format(columns_sql(columns))


WAL_LEVEL_FILE_SETTINGS_QUERY = (
    "SELECT seqno, sourcefile, sourceline, name, setting, applied, error"
    " FROM pg_catalog.pg_file_settings WHERE lower(name) = 'wal_level' ORDER BY seqno"
)


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
    row = fetch_rows(conn, server_query(major))[0]
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
        facts["wal_level_pending"] = wal_level_pending(row, fetch_rows(conn, WAL_LEVEL_FILE_SETTINGS_QUERY))
        facts["wal_level_pending_restart"] = facts["wal_level_pending"] is not None
        facts["wal_level_pending_known"] = True
    return facts
