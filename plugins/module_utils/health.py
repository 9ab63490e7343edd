# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Replication health: one collection round over the replication core.

:func:`collect` gathers the subsets ``replication_info`` returns (and its checks need). The
catalog readers live in the core, one file per object, each the ONLY SQL reading its catalog:
``_slots.py`` (slots), ``_publications.py`` (publications and the replica identity rule),
``_subscriptions.py`` (subscriptions, their workers and per-table state), ``_settings.py`` (server
facts and the ``server_settings`` run); what counts as unhealthy is ``_checks.py``; what the
sampler measures besides is ``_metrics.py``; version gates and catalog code maps are
``_versions.py``. The modules' planners are ``_slots.py`` (slots), ``_publication_plan.py`` and
``_subscription_plan.py``. The names below are re-exported so that ``health.<name>`` keeps working.

Sampler use (a round costs ~1-2 ms on a persistent connection, see ``benchmarks/health_round.py``)::

    conn = psycopg.connect(dsn, autocommit=True)
    major = conn.info.server_version // 10000
    while True:
        facts = collect(conn, major, gather=("server", "slots", "senders", "subscriptions"),
                        pending=False, conninfo=False)
        ...

Byte lag (``*_lag_bytes``, ``retained_wal_bytes``) is a distance in WAL and jumps with
autovacuum or full-page images while no row is missing; time lag (``*_lag_seconds``,
``seconds_since_*``) is measured by PostgreSQL from replies and messages. Both are returned.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    table_display,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (
    DEFAULT_RETAINED_WAL_THRESHOLD,
    MAX_LISTED,
    SEVERITIES,
    STATUS_EXIT_CODES,
    STATUS_NAMES,
    ThresholdError,
    check_replication_loops,
    check_standby_slots,
    evaluate_checks,
    finding,
    format_bytes,
    node_unreachable,
    parse_bytes,
    status_exit_code,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._metrics import (
    ACTIVITY_QUERY,
    DATABASE_QUERY,
    HEARTBEAT_BEAT_QUERY,
    HEARTBEAT_EXISTS_QUERY,
    HEARTBEAT_LAG_QUERY,
    HEARTBEAT_TABLE,
    LOCKS_QUERY,
    STATEMENTS_SCHEMA_QUERY,
    checkpoints_query,
    collect_activity,
    collect_checkpoints,
    collect_database,
    collect_heartbeat,
    collect_locks,
    collect_senders,
    collect_statements,
    heartbeat_beat,
    heartbeat_present,
    senders_query,
    statements_query,
    statements_schema,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause_record import (
    check_paused,
    paused_subscriptions,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._publications import (
    FIRST_NORMAL_OBJECT_ID,
    ISSUE_KINDS,
    LACKS_REPLICA_IDENTITY,
    REPLICA_IDENTITY_ATTNUMS,
    collect_publication_issues,
    collect_publications,
    no_replica_identity_query,
    publication_issues_query,
    publication_query,
    publication_rels_query,
    publication_schemas_query,
    publication_state,
    publications_query,
    published_relations_cte,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._publisher_comparison import (
    COMPARISONS,
    compare_with_publisher,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._server_log import (
    DEFAULT_ERROR_WINDOW,
    DEFAULT_MAX_BYTES,
    collect_errors,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._settings import (
    WAL_LEVEL_FILE_SETTINGS_QUERY,
    collect_server,
    server_query,
    wal_level_pending,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import (
    collect_slots,
    collect_standby_slot_settings,
    slot_columns,
    slot_query,
    slot_state,
    slots_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY,
    collect_subscriptions,
    subscription_state,
    subscriptions_query,
    worker_type,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._upgrade_checks import upgrade_readiness
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    CONFLICT_TYPES,
    LOCK_MODES,
    PUBLISH_OPERATIONS,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import sql

__all__ = [
    "ACTIVITY_QUERY",
    "CONFLICT_TYPES",
    "CURRENT_LSN",
    "DATABASE_QUERY",
    "DEFAULT_RETAINED_WAL_THRESHOLD",
    "FIRST_NORMAL_OBJECT_ID",
    "HEARTBEAT_BEAT_QUERY",
    "HEARTBEAT_EXISTS_QUERY",
    "HEARTBEAT_LAG_QUERY",
    "HEARTBEAT_TABLE",
    "ISSUE_KINDS",
    "LACKS_REPLICA_IDENTITY",
    "LOCKS_QUERY",
    "LOCK_MODES",
    "MAX_LISTED",
    "PUBLISH_OPERATIONS",
    "REPLICA_IDENTITY_ATTNUMS",
    "SEVERITIES",
    "STATEMENTS_SCHEMA_QUERY",
    "STATUS_EXIT_CODES",
    "STATUS_NAMES",
    "SUBSCRIPTION_CONNINFO_PRIVILEGE_QUERY",
    "SUBSETS",
    "WAL_LEVEL_FILE_SETTINGS_QUERY",
    "ThresholdError",
    "checkpoints_query",
    "collect",
    "collect_activity",
    "collect_checkpoints",
    "collect_database",
    "collect_heartbeat",
    "collect_locks",
    "collect_publication_issues",
    "collect_publications",
    "collect_senders",
    "collect_server",
    "collect_slots",
    "collect_statements",
    "collect_subscriptions",
    "evaluate_checks",
    "finding",
    "format_bytes",
    "heartbeat_beat",
    "heartbeat_present",
    "no_replica_identity_query",
    "node_unreachable",
    "parse_bytes",
    "publication_issues_query",
    "publication_query",
    "publication_rels_query",
    "publication_schemas_query",
    "publication_state",
    "publications_query",
    "published_relations_cte",
    "senders_query",
    "server_query",
    "slot_columns",
    "slot_query",
    "slot_state",
    "slots_query",
    "sql",
    "statements_query",
    "statements_schema",
    "status_exit_code",
    "subscription_state",
    "subscriptions_query",
    "table_display",
    "wal_level_pending",
    "worker_type",
]

SUBSETS = ("server", "publications", "slots", "senders", "subscriptions", "errors", "checks", *COMPARISONS, "upgrade")
"""What :func:`collect` can gather (the ``gather`` option of ``replication_info``); the comparisons
(``sequences``, ``schema_drift``) only with a ``publisher`` to compare with."""

DEFAULT_GATHER = tuple(subset for subset in SUBSETS if subset != "upgrade")
"""``replication_info``'s default: all but ``upgrade``, whose findings only make sense before an upgrade (a busy
publisher's slots are never exactly caught up)."""


def collect(
    conn,
    major,
    gather=SUBSETS,
    retained_wal_threshold=DEFAULT_RETAINED_WAL_THRESHOLD,
    pending=True,
    conninfo=None,
    error_window=DEFAULT_ERROR_WINDOW,
    log_max_bytes=DEFAULT_MAX_BYTES,
    publisher=None,
):
    """One collection round: the ``gather`` subsets (see :data:`SUBSETS`) as a dict.

    Keys: ``server``, ``publications``, ``slots``, ``senders``, ``subscriptions`` (with
    ``subscription_counts``), ``errors`` and ``checks`` - only those asked for. ``checks`` collects
    what it needs (server, slots, publications, subscriptions, their errors from the server log and
    the publication issues) even when those subsets are not returned. ``errors`` reads the last
    ``log_max_bytes`` of the server log (only when the database has subscriptions) and counts the
    errors of the last ``error_window`` minutes (``_server_log.py``). Paused subscriptions (a pause
    record in their comment) get their own findings. With ``publisher`` (libpq keywords of the publisher
    as this host reaches it), a subscriber is also compared with its publisher
    (``_publisher_comparison.py``): ``sequences``, ``schema_drift`` and their findings, and the paused
    subscriptions' slots there.
    """
    wanted = set(gather)
    unknown = wanted - set(SUBSETS)
    if unknown:
        raise ValueError("unknown subset(s): {}".format(", ".join(sorted(unknown))))
    needed = set(wanted)
    if "checks" in wanted:
        needed |= {"server", "slots", "senders", "publications", "subscriptions", "errors"}
    if wanted & set(COMPARISONS):
        needed.add("subscriptions")
    if "errors" in wanted:
        needed.add("subscriptions")
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
    if "errors" in needed:
        facts["errors"] = collect_errors(
            conn, [s["name"] for s in facts["subscriptions"]], window_minutes=error_window, max_bytes=log_max_bytes
        )
    comparison = {}
    if publisher and "subscriptions" in needed and (wanted & {"checks", *COMPARISONS}):
        comparison = compare_with_publisher(conn, facts["subscriptions"], publisher)
        facts.update({key: comparison[key] for key in COMPARISONS})
    if "upgrade" in wanted:
        facts["upgrade"] = upgrade_readiness(conn, major)
    if "checks" in wanted:
        issues = collect_publication_issues(conn, major) if facts["publications"] else None
        paused = check_paused(
            facts["subscriptions"], slot_facts=comparison.get("paused_slots"), wal_rate=comparison.get("wal_rate")
        )
        extra = paused + comparison.get("checks", [])
        extra += check_standby_slots(collect_standby_slot_settings(conn, major), facts["slots"])
        if not any(f["code"] == "replication_loop" for f in extra):  # the publisher confirmed it: no "risk" too
            extra += check_replication_loops(facts["publications"], facts["subscriptions"])
        extra += facts.get("upgrade", {}).get("findings", [])
        facts["checks"] = evaluate_checks(
            facts,
            issues,
            retained_wal_threshold,
            extra=extra,
            paused={sub["name"] for sub, _record in paused_subscriptions(facts["subscriptions"])},
        )
    result = {}
    for key in SUBSETS:
        if key in wanted and key in facts:
            result[key] = facts[key]
    if "subscriptions" in wanted:
        result["subscription_counts"] = facts["subscription_counts"]
    return result
