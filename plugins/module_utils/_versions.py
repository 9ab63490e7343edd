# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Version facts, once: every minimum PostgreSQL major and every catalog code map of the collection.

The catalog readers (``_slots``, ``_publications``, ``_subscriptions``, ``_settings``,
``_metrics``), the planners and the modules take their version gates and code names from here
only, so that a new major changes one line.
"""

from __future__ import annotations

MIN_SERVER_MAJOR = 13
"""The oldest PostgreSQL the replication modules, ``replication_info`` and the sampler support."""

# Catalog columns and features, by the major that brought them.
TWO_PHASE_MAJOR = 14  # pg_replication_slots.two_phase
BINARY_STREAMING_MAJOR = 14  # pg_subscription.subbinary, substream
FINISHED_COPY_MAJOR = 14  # srsubstate 'f'; table sync slots named pg_<oid>_sync_<relid>_<sysid>
ROW_FILTER_MAJOR = 15  # pg_publication_rel.prqual
COLUMN_LIST_MAJOR = 15  # pg_publication_rel.prattrs
SCHEMAS_MAJOR = 15  # pg_publication_namespace (TABLES IN SCHEMA)
SUBSCRIPTION_STATS_MAJOR = 15  # pg_stat_subscription_stats; subtwophasestate, subdisableonerr
SKIP_MAJOR = 15  # ALTER SUBSCRIPTION ... SKIP, pg_subscription.subskiplsn
CONFLICTING_MAJOR = 16  # pg_replication_slots.conflicting
PARALLEL_APPLY_MAJOR = 16  # pg_stat_subscription.leader_pid; suborigin, subrunasowner, subpasswordrequired
STREAMING_PARALLEL_MAJOR = 16  # streaming = parallel
BINARY_COPY_MAJOR = 16  # binary = true also makes the initial table copy binary (publisher AND subscriber 16+)
FAILOVER_MAJOR = 17  # failover slots: pg_replication_slots.failover/synced/inactive_since, subfailover
WORKER_TYPE_MAJOR = 17  # pg_stat_subscription.worker_type
CHECKPOINTER_MAJOR = 17  # pg_stat_checkpointer took the checkpoint counters from pg_stat_bgwriter
GENERATED_COLUMNS_MAJOR = 18  # pg_publication.pubgencols (publish_generated_columns)
TWO_PHASE_AT_MAJOR = 18  # pg_replication_slots.two_phase_at
TWO_PHASE_ALTER_MAJOR = 18  # ALTER SUBSCRIPTION ... SET (two_phase)
STREAMING_DEFAULT_PARALLEL_MAJOR = 18  # CREATE SUBSCRIPTION's streaming default became parallel
CONFLICT_STATS_MAJOR = 18  # pg_stat_subscription_stats.confl_*
REPLICATION_ORIGINS_MAJOR = 18  # max_active_replication_origins
IDLE_SLOT_TIMEOUT_MAJOR = 18  # idle_replication_slot_timeout (inactive slots invalidated at checkpoints)
NATIVE_SEQUENCES_MAJOR = 19  # ALTER SUBSCRIPTION ... REFRESH SEQUENCES (sequences published FOR ALL SEQUENCES)
UPGRADE_LOGICAL_MAJOR = (
    17  # pg_upgrade keeps logical slots and subscription state (old cluster 17+; older: silently dropped)
)

SUBSCRIPTION_OPTION_MAJORS = {
    "slot_name": (10, 10),
    "synchronous_commit": (10, 10),
    "binary": (BINARY_STREAMING_MAJOR, BINARY_STREAMING_MAJOR),
    "streaming": (BINARY_STREAMING_MAJOR, BINARY_STREAMING_MAJOR),
    "two_phase": (SUBSCRIPTION_STATS_MAJOR, TWO_PHASE_ALTER_MAJOR),
    "disable_on_error": (SUBSCRIPTION_STATS_MAJOR, SUBSCRIPTION_STATS_MAJOR),
    "origin": (PARALLEL_APPLY_MAJOR, PARALLEL_APPLY_MAJOR),
    "run_as_owner": (PARALLEL_APPLY_MAJOR, PARALLEL_APPLY_MAJOR),
    "password_required": (PARALLEL_APPLY_MAJOR, PARALLEL_APPLY_MAJOR),
    "failover": (FAILOVER_MAJOR, FAILOVER_MAJOR),
}
"""Subscription option -> (major to use it, major to change it with ALTER SUBSCRIPTION ... SET)."""

PARAMETER_MAJORS = {
    "debug_logical_replication_streaming": PARALLEL_APPLY_MAJOR,
    "max_parallel_apply_workers_per_subscription": PARALLEL_APPLY_MAJOR,
    "sync_replication_slots": FAILOVER_MAJOR,
    "synchronized_standby_slots": FAILOVER_MAJOR,
    "idle_replication_slot_timeout": IDLE_SLOT_TIMEOUT_MAJOR,
    "max_active_replication_origins": REPLICATION_ORIGINS_MAJOR,
}
"""Server parameters of logical replication and failover slots -> the major that brought them (a clear error
instead of "unknown parameter" on an older server)."""

# Catalog code maps.
PUBLISH_OPERATIONS = ("insert", "update", "delete", "truncate")
"""The ``publish`` operations, in PostgreSQL's order (``pg_publication.pub<operation>``)."""

GENERATED_COLUMNS_FROM_CATALOG = {"n": "none", "s": "stored"}
"""``pg_publication.pubgencols`` -> the ``publish_generated_columns`` value."""

STREAMING_FROM_CATALOG = {"f": "off", "t": "on", "p": "parallel", "false": "off", "true": "on"}
"""``pg_subscription.substream`` (a char from 16, a boolean before) -> the ``streaming`` value."""

TWO_PHASE_STATES = {"d": "disabled", "p": "pending", "e": "enabled"}
"""``pg_subscription.subtwophasestate`` -> its name."""

SYNC_STATES = {
    "i": "init",
    "d": "data_copy",
    "f": "finished_copy",  # SUBREL_STATE_FINISHEDCOPY, PostgreSQL 14+
    "s": "sync_done",
    "r": "ready",
}
"""``pg_subscription_rel.srsubstate`` codes and the names the modules report."""


def sync_state_name(code):
    """Readable name of a ``srsubstate`` code (unknown codes are returned unchanged)."""
    return SYNC_STATES.get(code, code)


CONFLICT_TYPES = (
    "insert_exists",
    "update_origin_differs",
    "update_exists",
    "update_missing",
    "delete_origin_differs",
    "delete_missing",
    "multiple_unique_conflicts",
)
"""PostgreSQL 18's conflict counters (``pg_stat_subscription_stats.confl_<type>``)."""

LOCK_MODES = (
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
)
"""PostgreSQL's table-level lock modes (``pg_locks.mode``), weakest first."""


def require_supported(major, what):
    """An error message when ``major`` is older than :data:`MIN_SERVER_MAJOR`, else ``None``."""
    if major < MIN_SERVER_MAJOR:
        return f"the {what} supports PostgreSQL {MIN_SERVER_MAJOR} and later (server is {major})"
    return None
