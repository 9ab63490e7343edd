# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Would ``pg_upgrade`` keep this node's logical replication? PostgreSQL's checklist, before the upgrade.

From PostgreSQL 17 on, ``pg_upgrade`` migrates a publisher's logical slots and a subscriber's
subscription state (``pg_subscription_rel`` and the replication origins) - when the old cluster is
17+ and its prerequisites hold; otherwise it stops with an error (from 17 on) or, for an old cluster
before 17, silently leaves them out. The checklist is the one of PostgreSQL's documentation,
"Logical Replication" -> "Upgrade" -> "Prepare for publisher upgrades" / "Prepare for subscriber
upgrades":

* publisher: every logical slot usable (not invalidated, not ``conflicting``), every change and
  logical decoding message already sent to (and confirmed by) the subscribers, ``wal_level =
  logical`` on the new cluster, its ``max_replication_slots`` at least the number of the old
  cluster's (permanent) logical slots, the slots' output plugins installed, no permanent logical
  slot on the new cluster; disable the subscriptions before the upgrade;
* subscriber: every subscription table in state ``i`` (init) or ``r`` (ready), a replication origin
  (``pg_<subscription oid>``) for every subscription, and the new cluster's
  ``max_active_replication_origins`` (PostgreSQL 18+; ``max_replication_slots`` on 17) at least the
  number of subscriptions.

"All changes consumed" is an approximation here: ``pg_upgrade`` decodes the WAL after each slot's
``confirmed_flush_lsn`` with ``binary_upgrade_logical_slot_has_caught_up()`` (callable only in
binary-upgrade mode) and ignores records that carry no change (running-transactions snapshots,
checkpoints, the shutdown checkpoint). This module compares ``confirmed_flush_lsn`` with the server's
WAL position instead: equal is certainly caught up; a gap may be only such records on an idle
server, so it is reported with its size. ``pg_upgrade --check`` decides exactly.

:func:`upgrade_readiness` is the entry point (one connection, read-only);
:func:`gather_upgrade_facts` and :func:`evaluate_upgrade_readiness` are its two halves (SQL, and pure
rules over the facts). Findings have the shape of ``_checks.finding``.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import finding, format_bytes
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import collect_slots
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    REPLICATION_ORIGINS_MAJOR,
    SYNC_STATES,
    UPGRADE_LOGICAL_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident

UPGRADE_READY_STATES = ("i", "r")
"""``pg_subscription_rel.srsubstate`` values ``pg_upgrade`` accepts."""

APPROXIMATION = (
    "caught up = confirmed_flush_lsn equals the server's WAL position; pg_upgrade's own check "
    "(binary_upgrade_logical_slot_has_caught_up, binary-upgrade mode only) also accepts a tail of records that "
    "carry no change, so a small gap on an idle server may still pass pg_upgrade --check, which decides exactly"
)

SERVER_QUERY = """
SELECT pg_catalog.current_database()::text AS database,
       pg_catalog.current_setting('wal_level') AS wal_level,
       pg_catalog.current_setting('max_replication_slots')::int AS max_replication_slots,
       pg_catalog.current_setting('max_active_replication_origins', true)::int AS max_active_replication_origins,
       pg_catalog.pg_is_in_recovery() AS in_recovery,
       (SELECT count(*) FROM pg_catalog.pg_publication)::int AS publications
"""

SUBSCRIPTIONS_QUERY = """
SELECT s.oid::bigint AS oid, s.subname::text AS name, d.datname::text AS database, s.subenabled AS enabled,
       'pg_' || s.oid AS origin, o.roident IS NOT NULL AS has_origin,
       s.subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
         AS in_this_database
  FROM pg_catalog.pg_subscription s
  JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
  LEFT JOIN pg_catalog.pg_replication_origin o ON o.roname = 'pg_' || s.oid
 ORDER BY d.datname, s.subname
"""
"""Every subscription of the cluster (``pg_subscription`` is shared) with its replication origin."""

TABLE_STATES_QUERY = """
SELECT s.subname::text AS subscription, n.nspname::text AS schema, c.relname::text AS "table",
       r.srsubstate::text AS state
  FROM pg_catalog.pg_subscription_rel r
  JOIN pg_catalog.pg_subscription s ON s.oid = r.srsubid
  JOIN pg_catalog.pg_class c ON c.oid = r.srrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 ORDER BY 1, 2, 3
"""
"""The subscription tables of the connected database (``pg_subscription_rel`` is per database)."""


def _not_applicable(major):
    return {
        "applies": False,
        "major": major,
        "reason": (
            f"PostgreSQL {major}: pg_upgrade keeps logical slots and subscription state only when the old cluster is "
            f"{UPGRADE_LOGICAL_MAJOR} or later; from {major} they are silently left out (re-create the slots and "
            "subscriptions after the upgrade, or move through logical replication instead - playbooks/switchover.yml)"
        ),
        "publisher": None,
        "subscriber": None,
        "findings": [],
    }


# ----------------------------------------------------------------------------------------------
# Facts (SQL)
# ----------------------------------------------------------------------------------------------


def gather_upgrade_facts(conn, major=None):
    """What the checklist needs from one node (read-only): ``{major, server, slots, subscriptions, tables}``.

    ``slots``: every slot as ``_slots.collect_slots`` returns it; ``subscriptions``: every subscription of the
    cluster with ``origin``/``has_origin`` and ``in_this_database``; ``tables``: the subscription tables of the
    connected database with their state code. ``None`` for ``slots``/``subscriptions``/``tables`` below 17.
    """
    major = major or conn.info.server_version // 10000
    facts = {"major": major, "server": None, "slots": None, "subscriptions": None, "tables": None}
    if major < UPGRADE_LOGICAL_MAJOR:
        return facts
    facts["server"] = fetch_rows(conn, SERVER_QUERY)[0]
    facts["slots"] = collect_slots(conn, major)
    facts["subscriptions"] = fetch_rows(conn, SUBSCRIPTIONS_QUERY)
    facts["tables"] = fetch_rows(conn, TABLE_STATES_QUERY)
    return facts


# ----------------------------------------------------------------------------------------------
# Rules (pure)
# ----------------------------------------------------------------------------------------------


def _slot_invalid(slot):
    """Why a slot is unusable for pg_upgrade (invalidated or conflicting), or ``None``."""
    if slot.get("invalidation_reason"):
        return f"invalidated ({slot['invalidation_reason']})"
    if slot.get("conflicting"):
        return "conflicting (invalidated by recovery conflict)"
    if slot.get("wal_status") == "lost":
        return "wal_status lost (its WAL is gone)"
    return None


def _publisher(facts, tail_bytes, found):
    server = facts["server"]
    logical = [s for s in facts["slots"] if s.get("slot_type") == "logical"]
    # pg_upgrade migrates the permanent logical slots (a temporary one ends with its session).
    migrated = [s for s in logical if not s.get("temporary")]
    slots = []
    for slot in migrated:
        name = quote_ident(slot["name"])
        invalid = _slot_invalid(slot)
        gap = slot.get("confirmed_flush_lag_bytes")
        caught_up = invalid is None and gap is not None and gap <= tail_bytes
        slots.append(
            {
                "name": slot["name"],
                "plugin": slot.get("plugin"),
                "database": slot.get("database"),
                "active": slot.get("active"),
                "invalid": invalid,
                "confirmed_flush_lsn": slot.get("confirmed_flush_lsn"),
                "unconsumed_bytes": gap,
                "caught_up": caught_up,
            }
        )
        if invalid:
            found.append(
                finding(
                    "warning",
                    "upgrade_slot_invalid",
                    f"pg_upgrade would stop: logical slot {name} is {invalid}; pg_upgrade migrates only usable slots",
                    f"Drop the slot (SELECT pg_drop_replication_slot('{slot['name']}')) and re-create its "
                    "subscription with a fresh copy after the upgrade, or before it.",
                )
            )
        elif not caught_up:
            found.append(
                finding(
                    "warning",
                    "upgrade_slot_not_caught_up",
                    f"pg_upgrade would stop: logical slot {name} has not confirmed everything - confirmed_flush_lsn "
                    f"{slot.get('confirmed_flush_lsn')} is {format_bytes(gap)} ({gap} bytes) behind the WAL position "
                    f"(approximation: {APPROXIMATION})",
                    "Stop the writes, let the subscriber catch up (lag 0, confirmed_flush_lsn at the WAL position), "
                    "then disable the subscription (ALTER SUBSCRIPTION ... DISABLE) and run pg_upgrade --check.",
                )
            )
        if slot.get("active"):
            found.append(
                finding(
                    "info",
                    "upgrade_slot_active",
                    f"logical slot {name} is in use (pid {slot.get('active_pid')}): PostgreSQL's upgrade steps "
                    "disable the subscriptions before upgrading the publisher",
                    "Once caught up, run ALTER SUBSCRIPTION ... DISABLE on the subscriber; enable it after the "
                    "upgrade.",
                )
            )
    if migrated and server["wal_level"] != "logical":
        found.append(
            finding(
                "warning",
                "upgrade_wal_level",
                f"wal_level is {server['wal_level']} on this node with {len(migrated)} logical slot(s): the new "
                "cluster must have wal_level = logical for pg_upgrade to migrate them",
                "Set wal_level = logical in the new cluster's configuration (server_settings) before pg_upgrade.",
            )
        )
    plugins = sorted({s["plugin"] for s in migrated if s.get("plugin")})
    count = len(migrated)
    requirements = []
    if count:
        requirements = [
            "new cluster: wal_level = logical",
            f"new cluster: max_replication_slots >= {count} (this node's permanent logical slots; this node has "
            f"{server['max_replication_slots']})",
            "new cluster: the output plugins " + ", ".join(plugins) + " installed",
            "new cluster: no permanent logical slots of its own",
            "before pg_upgrade: the subscriptions of these slots disabled (ALTER SUBSCRIPTION ... DISABLE)",
        ]
    return {
        "wal_level": server["wal_level"],
        "max_replication_slots": server["max_replication_slots"],
        "publications": server["publications"],
        "logical_slot_count": count,
        "temporary_slots_ignored": len(logical) - count,
        "plugins": plugins,
        "slots": slots,
        "approximation": APPROXIMATION,
        "requirements": requirements,
    }


def _subscriber(facts, found):
    server = facts["server"]
    subscriptions = facts["subscriptions"]
    count = len(subscriptions)
    if facts["major"] >= REPLICATION_ORIGINS_MAJOR:
        setting, value = "max_active_replication_origins", server.get("max_active_replication_origins")
    else:
        setting, value = "max_replication_slots", server["max_replication_slots"]
    for sub in subscriptions:
        if not sub["has_origin"]:
            found.append(
                finding(
                    "warning",
                    "upgrade_origin_missing",
                    f"pg_upgrade would stop: subscription {quote_ident(sub['name'])} (database {sub['database']}) has "
                    f"no replication origin {sub['origin']} - it tracks how far the subscription has applied",
                    "Re-create the subscription (it creates its origin) - without copy_data when the tables are "
                    "already complete - before the upgrade.",
                )
            )
    not_ready = [t for t in facts["tables"] if t["state"] not in UPGRADE_READY_STATES]
    for table in not_ready:
        state = SYNC_STATES.get(table["state"], table["state"])
        found.append(
            finding(
                "warning",
                "upgrade_table_not_ready",
                f"pg_upgrade would stop: table {quote_ident(table['schema'])}.{quote_ident(table['table'])} of "
                f"subscription {quote_ident(table['subscription'])} is in state {table['state']} ({state}); "
                "pg_upgrade accepts only i (init) or r (ready)",
                "Wait until its initial synchronization finishes (state r; subscription's wait_for_sync), "
                "then upgrade.",
            )
        )
    elsewhere = sorted({s["database"] for s in subscriptions if not s["in_this_database"]})
    if elsewhere:
        found.append(
            finding(
                "info",
                "upgrade_tables_not_checked",
                f"the tables of the subscriptions in database(s) {', '.join(elsewhere)} were not checked "
                f"(pg_subscription_rel is per database; this check ran in {server['database']})",
                "Run the check connected to each of those databases too.",
            )
        )
    requirements = []
    if count:
        requirements = [
            f"new cluster: max_active_replication_origins (PostgreSQL 18+; max_replication_slots on 17) >= {count} "
            f"(this node's subscriptions; this node has {setting} = {value})",
            "new cluster: the subscriber configuration of PostgreSQL's logical replication chapter "
            "(max_logical_replication_workers, max_worker_processes)",
        ]
    return {
        "subscription_count": count,
        "origin_setting": setting,
        "origin_setting_value": value,
        "subscriptions": [
            {k: sub[k] for k in ("name", "database", "enabled", "origin", "has_origin")} for sub in subscriptions
        ],
        "tables_checked_in": server["database"],
        "tables": len(facts["tables"]),
        "tables_not_ready": [dict(t, state_name=SYNC_STATES.get(t["state"], t["state"])) for t in not_ready],
        "requirements": requirements,
    }


def evaluate_upgrade_readiness(facts, tail_bytes=0):
    """The checklist over :func:`gather_upgrade_facts`' facts: ``{applies, major, reason, publisher, subscriber,
    findings}``.

    ``tail_bytes``: a gap between a slot's ``confirmed_flush_lsn`` and the WAL position up to this many bytes counts
    as caught up (default 0: only equal positions; see :data:`APPROXIMATION`).
    """
    major = facts["major"]
    if major < UPGRADE_LOGICAL_MAJOR:
        return _not_applicable(major)
    found = []
    if facts["server"]["in_recovery"]:
        found.append(
            finding(
                "info",
                "upgrade_standby",
                "this node is a standby: pg_upgrade runs on the primary; its checks apply there",
                "Run the check against the primary.",
            )
        )
    publisher = _publisher(facts, tail_bytes, found)
    subscriber = _subscriber(facts, found)
    return {
        "applies": True,
        "major": major,
        "reason": None,
        "publisher": publisher,
        "subscriber": subscriber,
        "findings": found,
    }


def upgrade_readiness(conn, major=None, tail_bytes=0):
    """Whether ``pg_upgrade`` would keep this node's logical replication (a publisher's slots, a subscriber's
    subscription state). ``conn``: a psycopg connection (read-only use, any row factory); ``major``: the server's
    major version (read from the connection when not given).

    Returns ``{applies, major, reason, publisher, subscriber, findings}``: ``applies`` false (with ``reason``)
    below PostgreSQL 17, where pg_upgrade leaves logical slots and subscription state out.
    """
    return evaluate_upgrade_readiness(gather_upgrade_facts(conn, major), tail_bytes)
