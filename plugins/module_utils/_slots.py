# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replication slots: the ONLY SQL reading ``pg_replication_slots``, and the slot planner.

Used by the ``replication_slot`` module, ``replication_info`` and the metrics sampler alike.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    fetch_rows,
    iso,
    memoize,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    CONFLICTING_MAJOR,
    FAILOVER_MAJOR,
    TWO_PHASE_AT_MAJOR,
    TWO_PHASE_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql


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


@memoize
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
        state["inactive_since"] = iso(state["inactive_since"])
    return state


def collect_slots(conn, major):
    """Every replication slot of the cluster (list of dicts, sorted by name), as ``replication_slot`` returns them.

    Plus ``confirmed_flush_lag_bytes`` (server WAL position minus ``confirmed_flush_lsn``).
    """
    return [slot_state(row) for row in fetch_rows(conn, slots_query(major))]
