# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The go/no-go decision before moving writes from one node to another (``playbooks/switchover.yml``
and ``switchback.yml``, through the ``switchover_preflight`` filter).

Everything here reads results the playbooks gathered without changing anything: ``replication_info`` of
the node that takes writes now (the *source*) and of the node that will (the *destination*, which
subscribes to the source), the ``sequences`` module and the ``write_fence`` module run in check mode,
and the application roles that exist on the destination. Each check gives one row: its name, GO or
NO-GO, what was seen and, for a NO-GO, the fix. The playbooks fence nothing unless every row is GO.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import format_bytes
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause_record import (
    format_duration,
    lsn_to_int,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (
    ConninfoError,
    parse_conninfo,
)

DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024
"""Replication lag (bytes of WAL the destination has not confirmed) above which a switchover does not
start: the wait for lag 0 happens while writes are fenced, so it is part of the downtime."""

_REQUIRED_OPERATIONS = ("insert", "update", "delete")


def _row(check, go, detail, fix=""):
    return {"check": check, "go": bool(go), "detail": detail, "fix": "" if go else fix}


def _subscription(destination_info, name):
    for sub in destination_info.get("subscriptions") or []:
        if sub.get("name") == name:
            return sub
    return None


def _in_scope(tables, scope):
    return [t for t in tables if not scope or t in scope]


def _publishes_everything(source_info, publications, table):
    """True when one of ``publications`` sends every row and column and every change of ``table``."""
    schema = table.split(".", 1)[0]
    for pub in source_info.get("publications") or []:
        if pub.get("name") not in publications:
            continue
        if not all(op in (pub.get("publish") or []) for op in _REQUIRED_OPERATIONS):
            continue
        if pub.get("all_tables") or schema in (pub.get("schemas") or []):
            return True
        for entry in pub.get("tables") or []:
            if entry.get("name") == table and entry.get("where") is None and entry.get("columns") is None:
                return True
    return False


def check_subscription(destination_info, subscription, scope):
    sub = _subscription(destination_info, subscription)
    if sub is None:
        names = ", ".join(s.get("name", "?") for s in destination_info.get("subscriptions") or []) or "none"
        return None, [
            _row(
                "subscription",
                False,
                f"no subscription {subscription} (there: {names})",
                "name the subscription (switchover_subscription) or the right target",
            )
        ]
    tables = [t["name"] for t in sub.get("tables") or []]
    rows = [
        _row(
            "subscription",
            sub.get("enabled"),
            f"{subscription} {'enabled' if sub.get('enabled') else 'DISABLED'}, {len(tables)} tables",
            "enable the subscription and let it catch up",
        )
    ]
    missing = sorted(set(scope or ()) - set(tables))
    if missing:
        rows.append(
            _row(
                "scope",
                False,
                "not in the subscription: " + ", ".join(missing),
                "add these tables to a publication of the subscription, or leave them out of the scope",
            )
        )
    not_ready = [
        f"{t['name']} ({t.get('state')})"
        for t in sub.get("tables") or []
        if t["name"] in _in_scope(tables, scope) and t.get("state_code") != "r"
    ]
    rows.append(
        _row(
            "tables_ready",
            not not_ready and tables,
            "all ready" if not not_ready else "not ready: " + ", ".join(not_ready),
            "wait for the initial copy to finish (replication_info: table_states)",
        )
    )
    return sub, rows


def check_complete_copy(source_info, sub, scope):
    """Row filters, column lists or unpublished operations make the destination a partial copy."""
    tables = _in_scope([t["name"] for t in sub.get("tables") or []], scope)
    partial = [t for t in tables if not _publishes_everything(source_info, sub.get("publications") or [], t)]
    return _row(
        "complete_copy",
        not partial,
        f"{len(tables)} tables, every row and column"
        if not partial
        else "partial (row filter, column list or not every insert/update/delete): " + ", ".join(partial),
        "publish these tables whole to the destination, or leave them out (switchover_tables)",
    )


def check_lag(source_info, sub, max_lag_bytes):
    slot_name = sub.get("slot_name") or sub.get("name")
    slot = next((s for s in source_info.get("slots") or [] if s.get("name") == slot_name), None)
    if slot is None:
        return _row(
            "lag",
            False,
            f"slot {slot_name} not found on the source",
            "the subscription's slot must exist on the source (is this the right source?)",
        )
    lag = slot.get("confirmed_flush_lag_bytes")
    ok = slot.get("active") and lag is not None and lag <= max_lag_bytes
    state = "active" if slot.get("active") else "INACTIVE"
    return _row(
        "lag",
        ok,
        f"slot {slot_name} {state}, {lag} bytes behind (limit {max_lag_bytes})",
        "let the destination catch up (status.yml) before fencing writes",
    )


def check_replica_identity(source_info, tables):
    codes = {"replica_identity_missing", "row_filter_outside_replica_identity", "column_list_lacks_replica_identity"}
    found = [
        c
        for c in source_info.get("checks") or []
        if c.get("code") in codes and (not tables or set(c.get("tables") or ()) & set(tables))
    ]
    return _row(
        "replica_identity",
        not found,
        "every table has one" if not found else "; ".join(c.get("message", "") for c in found),
        "; ".join(c.get("hint", "") for c in found) or "add a primary key or REPLICA IDENTITY",
    )


def check_version(source_info, destination_info, allow_downgrade):
    src = (source_info.get("server") or {}).get("major")
    dst = (destination_info.get("server") or {}).get("major")
    ok = src is not None and dst is not None and (dst >= src or allow_downgrade)
    return _row(
        "version",
        ok,
        f"PostgreSQL {src} -> {dst}",
        "moving writes to an older major is refused unless allow_downgrade (switchback does it)",
    )


def check_reverse(destination_info):
    """The destination will publish to the source (reverse replication), so it must be able to."""
    server = destination_info.get("server") or {}
    problems = []
    if server.get("wal_level") != "logical":
        problems.append(f"wal_level is {server.get('wal_level')}")
    if (server.get("max_replication_slots") or 0) - (server.get("replication_slots_used") or 0) < 1:
        problems.append("no free replication slot")
    if (server.get("max_wal_senders") or 0) - (server.get("wal_senders_used") or 0) < 1:
        problems.append("no free WAL sender")
    return _row(
        "reverse_replication",
        not problems,
        "the destination can publish" if not problems else "; ".join(problems),
        "set wal_level = logical (and free slots/senders) on the destination and restart it, "
        "or switch reverse replication off (no rollback without losing the writes made after the switch)",
    )


def check_sequences(result):
    if result.get("failed"):
        return _row(
            "sequences",
            False,
            result.get("msg", "the sequences module failed"),
            "create the missing sequences on the destination (schema) first",
        )
    seqs = result.get("sequences") or []
    return _row("sequences", True, f"{len(seqs)} sequence(s) known on both sides")


def check_fence(result, roles, roles_on_destination):
    if not roles:
        return _row(
            "fence_roles",
            False,
            "no application roles named",
            "name the roles the application writes with (switchover_fence_roles)",
        )
    if result.get("failed"):
        return _row(
            "fence_roles",
            False,
            result.get("msg", "write_fence refused the roles"),
            "name only application roles (not superusers, not the replication role)",
        )
    missing = [r for r in roles if r not in (roles_on_destination or [])]
    if missing:
        return _row(
            "fence_roles",
            False,
            "roles missing on the destination: " + ", ".join(missing),
            "create them there (with their grants) so that the application can log in after the switch",
        )
    return _row("fence_roles", True, "fence " + ", ".join(roles) + " (exist on both sides)")


def check_forward(source_info, name):
    """Switchback: the old forward subscription, on the node that takes writes now, must exist disabled."""
    sub = _subscription(source_info, name)
    if sub is None:
        return _row(
            "forward_subscription",
            False,
            f"no subscription {name} on the source",
            "switchback re-enables the subscription switchover.yml disabled; re-create it instead",
        )
    return _row(
        "forward_subscription",
        not sub.get("enabled"),
        f"{name} {'ENABLED' if sub.get('enabled') else 'disabled'} (re-enabled at the end)",
        "it must stay disabled while the source takes writes: disable it (it would apply old changes)",
    )


def preflight(
    source_info,
    destination_info,
    subscription,
    *,
    fence_result,
    fence_roles,
    roles_on_destination,
    sequences_result,
    scope=None,
    max_lag_bytes=DEFAULT_MAX_LAG_BYTES,
    reverse=True,
    allow_downgrade=False,
    forward_subscription=None,
):
    """The go/no-go rows, in the order the playbooks print them."""
    for name, info in (("source", source_info), ("destination", destination_info)):
        if not info or info.get("failed") or info.get("reachable") is False:
            error = (info or {}).get("error") or (info or {}).get("msg") or "not read"
            return [_row("reachable", False, f"{name}: {error}", f"make the {name} reachable")]
    sub, rows = check_subscription(destination_info, subscription, scope)
    if sub is not None:
        tables = _in_scope([t["name"] for t in sub.get("tables") or []], scope)
        rows += [
            check_complete_copy(source_info, sub, scope),
            check_lag(source_info, sub, max_lag_bytes),
            check_replica_identity(source_info, tables),
        ]
    rows.append(check_version(source_info, destination_info, allow_downgrade))
    if forward_subscription:
        rows.append(check_forward(source_info, forward_subscription))
    if reverse:
        rows.append(check_reverse(destination_info))
    rows.append(check_sequences(sequences_result or {}))
    rows.append(check_fence(fence_result or {}, fence_roles or [], roles_on_destination))
    return rows


def format_rows(rows):
    """Aligned lines: ``GO     check   detail`` and, under a NO-GO, ``       fix: ...``."""
    width = max((len(r["check"]) for r in rows), default=0)
    lines = []
    for r in rows:
        lines.append(f"{'GO' if r['go'] else 'NO-GO':<6} {r['check']:<{width}}  {r['detail']}")
        if not r["go"] and r["fix"]:
            lines.append(f"{'':<6} {'':<{width}}  fix: {r['fix']}")
    return lines


def step_times(marks):
    """``[{step, at}]`` (the first the start, each later one the end of its step) -> ``[{step, seconds}]``."""
    return [
        {"step": mark["step"], "seconds": round(float(mark["at"]) - float(marks[i]["at"]), 2)}
        for i, mark in enumerate(marks[1:])
    ]


def report_lines(result):
    """The closing lines of a switchover or switchback: each step's time, the proof, the window."""
    width = max((len(s["step"]) for s in result["steps"]), default=0)
    lines = [f"  {s['step']:<{width}}  {float(s['seconds']):7.2f} s" for s in result["steps"]]
    lines.append(
        f"{result['tables_equal']} of {result['tables']} tables equal (counts and checksums); "
        f"{result['sequences']} sequence(s) copied; {result['terminated']} session(s) of "
        f"{', '.join(result['fenced_roles'])} terminated"
    )
    lines.append(f"write-unavailable window: {float(result['window_seconds']):.2f} s (fence -> ready)")
    return lines


# ----------------------------------------------------------------------------------------------
# the upgrade rehearsal (playbooks/upgrade_rehearsal.yml)
# ----------------------------------------------------------------------------------------------

_APPLICATION_KEYS = (
    "run_id",
    "acknowledged",
    "acknowledged_by_node",
    "errors",
    "longest_gap_seconds",
    "writing_seconds",
    "nodes",
    "lost",
)


def application_summary(writes):
    """The measurements of an ``application_writes`` result (as ``async_status`` returns it).

    A writer that never finished (``finished`` false) or failed before reading its rows back has no
    ``nodes``: its ``lost`` is then None, "not proven" - never 0.
    """
    summary = {key: writes.get(key) for key in _APPLICATION_KEYS}
    summary["failed"] = bool(writes.get("failed")) or not writes.get("finished", True)
    summary["msg"] = writes.get("msg") if summary["failed"] else None
    if not summary.get("nodes"):
        summary["lost"] = None
    return summary


def _counts(by_node):
    return ", ".join(f"{node} {count:,}" for node, count in (by_node or {}).items())


def _node(measured, end):
    major = measured.get(f"{end}_major")
    return f"{measured[end]} (PostgreSQL {major})" if major not in (None, "") else measured[end]


def rehearsal_lines(result):
    """The rehearsal's report: both windows with their steps and proofs, then the application's own proof."""
    lines = [f"upgrade rehearsal {result['run_id']}: {result['source']} -> {result['target']} -> {result['source']}"]
    for direction in ("switchover", "switchback"):
        measured = result[direction]
        lines.append(
            f"{direction} {_node(measured, 'source')} -> {_node(measured, 'target')}: write-unavailable window "
            f"{float(measured['window_seconds']):.2f} s (fence -> ready)"
        )
        lines += report_lines(measured)[:-1]
    app = result["application"]
    lines.append(
        f"application: {app['acknowledged'] or 0:,} writes acknowledged ({_counts(app['acknowledged_by_node'])}); "
        f"longest time without an acknowledged write {float(app['longest_gap_seconds'] or 0):.2f} s "
        "(from the fence until it was pointed at the other node)"
    )
    if app["errors"]:
        lines.append("  failed attempts, retried: " + _counts(app["errors"]))
    if app["lost"] is None:
        lines.append(f"proof: NOT MADE - {app['msg'] or 'the application did not finish'}")
    else:
        nodes = ", ".join(f"{n['node']} {n['rows']:,} rows, {n['missing']} missing" for n in app["nodes"])
        verdict = "none lost" if app["lost"] == 0 else f"{app['lost']} LOST"
        lines.append(f"proof: every acknowledged row read back from each node ({nodes}): {verdict}")
    return lines


# ----------------------------------------------------------------------------------------------
# failover to a physical standby (playbooks/failover.yml)
# ----------------------------------------------------------------------------------------------

FAILOVER_SLOT_FIX = (
    "subscription failover: true, sync_replication_slots on the standby, its slot in the primary's "
    "synchronized_standby_slots; without it this subscription would need a new one with a full copy after the failover"
)


def _failover_slot_detail(sub, slot):
    """(go, detail) for one subscription's slot as the standby has it."""
    name = sub.get("slot_name")
    if not sub.get("failover"):
        return False, "NOT a failover slot (the subscription has failover = false)"
    if not slot:
        return False, f"{name} not on the standby"
    if not slot.get("synced"):
        return False, f"{name} not synced on the standby"
    if slot.get("invalidation_reason"):
        return False, f"{name} invalidated: {slot['invalidation_reason']}"
    return True, f"failover slot {name} synced on the standby"


def _endpoint(host, port):
    return (str(host or "").strip().lower(), str(port if port not in (None, "") else 5432).strip())


def _connects_to(sub, addresses):
    """True when the subscription's stored connection (``conninfo``, password redacted) names one of
    ``addresses`` (``(host, port)`` pairs): it subscribes to the standby itself."""
    conninfo = sub.get("conninfo")
    if not conninfo or not addresses:
        return False
    try:
        params = parse_conninfo(conninfo)
    except ConninfoError:
        return False
    hosts = [h for h in str(params.get("host") or params.get("hostaddr") or "").split(",") if h]
    ports = str(params.get("port") or "").split(",")
    for index, host in enumerate(hosts):
        port = ports[index] if index < len(ports) else ports[0]
        if _endpoint(host, port) in addresses:
            return True
    return False


def _standby_slot_detail(sub, slot):
    """(go, detail) for a subscription to the standby itself: its slot is the standby's own and is kept by the
    promotion, so it needs no failover slot - only a valid one."""
    name = sub.get("slot_name")
    if not slot:
        return False, f"subscribes to the standby, but its slot {name} is not there"
    if slot.get("invalidation_reason") or slot.get("conflicting"):
        reason = slot.get("invalidation_reason") or "conflicting"
        return False, f"subscribes to the standby, but its slot {name} is invalidated: {reason}"
    return True, f"subscribes to the standby itself: its slot {name} is there and stays after the promotion"


AHEAD_FIX = (
    "do not promote this standby while it lacks what the subscriber applied: bring the old primary back and let the "
    "standby catch up, or re-create the subscription with a full copy after the failover; listing the standby's slot "
    "in the primary's synchronized_standby_slots keeps subscribers from getting ahead of it"
)

STANDBY_WAL_FIX = (
    "fence the running primary's writes and let the standby catch up (pg_stat_replication on the primary, "
    "pg_stat_wal_receiver on the standby); failover_timeout bounds the wait"
)


def _standby_wal_end(server):
    """``(bytes, text)`` of the last WAL position a promotion of the standby keeps: what it received, or replayed when
    more (a standby whose WAL receiver has not run since it started has no received position); ``(None, 'unknown')``
    when neither is known."""
    ends = [(server.get(f"{key}_bytes"), server.get(key)) for key in ("receive_lsn", "current_lsn")]
    return max((end for end in ends if end[0] is not None), default=(None, "unknown"))


def _standby_wal_row(standby, server, primary_info):
    """GO when the standby has all of a running primary's WAL (NO-GO: promoting it would lose the rest); with the
    primary down, what the standby has and will replay (the old primary's end is unknown then)."""
    end, end_text = _standby_wal_end(server)
    primary = (primary_info or {}).get("server") or {}
    if (primary_info or {}).get("reachable") and primary.get("current_lsn_bytes") is not None and end is not None:
        behind = primary["current_lsn_bytes"] - end
        if behind <= 0:
            return _row(
                "standby_wal", True, f"{standby} has all of the running primary's WAL ({primary['current_lsn']})"
            )
        return _row(
            "standby_wal",
            False,
            f"{standby} is {format_bytes(behind)} of WAL behind the running primary ({end_text} < "
            f"{primary['current_lsn']}): promoting it loses those transactions",
            STANDBY_WAL_FIX,
        )
    detail = f"{standby} received WAL up to {end_text}, replayed {server.get('current_lsn')}"
    unreplayed = (end or 0) - (server.get("current_lsn_bytes") or 0)
    if unreplayed > 0:
        detail += f" ({format_bytes(unreplayed)} replayed by the promotion)"
    age = server.get("seconds_since_last_replayed_commit")
    if age is not None:
        detail += f"; its last replayed commit is {format_duration(age)} old"
    return _row("standby_wal", True, detail)


def _ahead_detail(sub, server):
    """The detail when the subscription applied more of the old primary's WAL than the standby has, else None:
    the promoted standby writes new transactions at positions the subscription has passed, and would skip them."""
    origin, (end, end_text) = lsn_to_int(sub.get("origin_lsn")), _standby_wal_end(server)
    if origin is None or end is None or origin <= end:
        return None
    return (
        f"applied the old primary's WAL up to {sub['origin_lsn']}, {format_bytes(origin - end)} beyond the standby's "
        f"end ({end_text}): it would skip the new primary's first writes"
    )


STANDBY_SLOT_FIX = (
    "re-create the subscription (its slot on the standby was invalidated: the primary removed rows it needed; "
    "keep hot_standby_feedback on and the physical slot in use)"
)


def failover_preflight(
    standby_info, primary_info, subscriptions_by_host, standby, allow_running_primary=False, standby_addresses=None
):
    """The go/no-go rows before promoting ``standby`` (``replication_info`` of it: server, slots).

    ``primary_info``: ``replication_info`` of the old primary (``reachable`` false when it is down, as it must
    be unless ``allow_running_primary``); ``subscriptions_by_host``: {subscriber host: its subscriptions} - each
    must have a failover slot that the standby holds synced and valid, or it would need a full re-copy.
    The standby must have all of a running primary's WAL (``standby_wal``), and no subscription may have applied
    more of the old primary's WAL (``origin_lsn``) than the standby has: the promoted standby would write new
    transactions at positions the subscription has passed, and it would skip them.
    ``standby_addresses``: ``[{host, port}]`` under which subscribers' servers reach the standby itself; a
    subscription whose connection names one of them (logical decoding on the standby, PostgreSQL 16+) has its
    slot on the standby already - it is GO while that slot exists and is valid, failover or not.
    """
    server = standby_info.get("server") or {}
    in_recovery = bool(server.get("in_recovery"))
    rows = [
        _row(
            "standby",
            in_recovery,
            f"{standby} in recovery, PostgreSQL {server.get('major')}"
            if in_recovery
            else f"{standby} is NOT a standby (not in recovery)",
            "name a standby of the primary",
        )
    ]
    running = bool((primary_info or {}).get("reachable"))
    rows.append(
        _row(
            "primary_down",
            not running or allow_running_primary,
            "the old primary " + ("STILL ACCEPTS CONNECTIONS" if running else "does not answer"),
            "stop it first (promoting beside a running primary splits the writes), or fence it and set "
            "failover_allow_running_primary=true",
        )
    )
    if in_recovery:
        rows.append(_standby_wal_row(standby, server, primary_info))
    slots = {s.get("name"): s for s in standby_info.get("slots") or []}
    addresses = {_endpoint(a.get("host"), a.get("port")) for a in standby_addresses or [] if a.get("host")}
    for host, subscriptions in (subscriptions_by_host or {}).items():
        for sub in subscriptions or []:
            slot = slots.get(sub.get("slot_name"))
            if _connects_to(sub, addresses):
                go, detail = _standby_slot_detail(sub, slot)
                rows.append(_row(f"slot {host}/{sub.get('name')}", go, detail, STANDBY_SLOT_FIX))
                continue
            go, detail = _failover_slot_detail(sub, slot)
            ahead = _ahead_detail(sub, server) if in_recovery else None
            if go and ahead:
                rows.append(_row(f"slot {host}/{sub.get('name')}", False, ahead, AHEAD_FIX))
                continue
            rows.append(_row(f"slot {host}/{sub.get('name')}", go, detail, FAILOVER_SLOT_FIX))
    return rows
