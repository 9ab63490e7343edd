# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What counts as unhealthy: the checks of ``replication_info`` (pure functions over collected facts).

:func:`evaluate_checks` turns facts into findings (``{severity, code, message, hint}``);
:func:`node_unreachable` is the finding for a server that could not be read, and
:func:`status_exit_code` the one rule that turns findings into a status (0 healthy, 1 warnings,
2 critical), used by ``playbooks/status.yml`` through the ``status_exit_code`` filter.
"""

from __future__ import annotations

import re
from datetime import datetime

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import table_display
from ansible_collections.inventium.logical_replication.plugins.module_utils._server_log import (
    ERROR_SEVERITIES,
    WORKER_SYNC,
    describe,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._thresholds import (
    LAG_SECONDS_CRITICAL,
    LAG_SECONDS_WARNING,
    RETAINED_WAL_BYTES,
    RETAINED_WAL_FRACTION_CRITICAL,
    RETAINED_WAL_FRACTION_WARNING,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident

SEVERITIES = ("error", "warning", "info")

STATUS_EXIT_CODES = {"error": 2, "warning": 1, "info": 0}
"""The status (exit code) each severity of :data:`SEVERITIES` gives: an ``error`` finding is critical
(2), a ``warning`` makes the status "warnings" (1), ``info`` leaves it healthy (0). A severity not
listed here (or none) counts as critical, so that a finding is never ignored."""

STATUS_NAMES = ("healthy", "warnings", "critical")
"""The names of the statuses 0, 1 and 2 of :func:`status_exit_code`."""

NODE_UNREACHABLE_HINT = (
    "Check that PostgreSQL runs and listens there (pg_lsclusters, docker ps, the server log), that "
    "nothing in between blocks the port, and that pg_hba.conf and the credentials admit this login. "
    "While a subscriber is down its slot on the publisher is inactive and retains WAL (see the "
    "publisher's slots); while a publisher is down no subscriber receives changes."
)


DEFAULT_RETAINED_WAL_THRESHOLD = RETAINED_WAL_BYTES
"""Inactive slots retaining more WAL than this (bytes) are reported by the checks (``_thresholds.py``)."""


MAX_LISTED = 20


class ThresholdError(ValueError):
    """A byte size given by the user cannot be parsed."""


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


def _listing(names, limit=MAX_LISTED):
    names = list(names)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" and {len(names) - limit} more"
    return shown


def finding(severity, code, message, hint):
    """One check result."""
    return {"severity": severity, "code": code, "message": message, "hint": hint}


def node_unreachable(error):
    """The finding for a server that could not be read: no connection, or the connection was lost.

    ``error`` is the connection error as the user sees it (already redacted: it comes from
    ``connection.connect`` or ``format_db_error``).
    """
    return finding(
        "error",
        "node_unreachable",
        f"the server could not be read, its replication state is unknown: {error}",
        NODE_UNREACHABLE_HINT,
    )


def status_exit_code(checks):
    """The status of a list of findings: 0 healthy, 1 warnings, 2 critical (see :data:`STATUS_EXIT_CODES`).

    0 when no finding has a severity worse than ``info`` (also for no findings at all), 1 when the
    worst is a ``warning``, 2 when any is an ``error`` or has a severity this collection does not
    know. ``checks`` is a list of findings (dicts with ``severity``); ``None`` counts as no findings.
    Raises ``TypeError`` for anything else.
    """
    if checks is None:
        return 0
    if isinstance(checks, (str, bytes, dict)) or not hasattr(checks, "__iter__"):
        raise TypeError(f"expected a list of findings, got {type(checks).__name__}")
    code = 0
    for item in checks:
        if not isinstance(item, dict):
            raise TypeError(f"expected a finding (a dict with a severity), got {type(item).__name__}: {item!r}")
        code = max(code, STATUS_EXIT_CODES.get(item.get("severity"), 2))
    return code


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


SLOT_INVALIDATED_HINT = "Drop the slot and re-create it; re-synchronize its consumer."

SLOT_INVALIDATED_HINTS = {
    # A logical slot on a standby (16+) whose catalog rows the primary vacuumed away.
    "rows_removed": (
        "The primary removed catalog rows this slot still needed (a logical slot on a standby): turn "
        "hot_standby_feedback on on the standby and stream through a physical slot (primary_slot_name), so that the "
        "primary keeps them; then drop the slot and re-create it - for a subscription, drop and re-create the "
        "subscription (its tables are copied again)."
    ),
    "wal_level_insufficient": (
        "The primary's wal_level went below logical while this slot on a standby existed: set wal_level = logical on "
        "the primary (a restart), then drop the slot and re-create it (for a subscription, re-create it)."
    ),
}
"""Hints for an invalidated slot by ``invalidation_reason`` (PostgreSQL 17+); others get the general one."""


def _check_slots(slots, threshold):
    found = []
    for slot in slots:
        name = slot["name"]
        # PostgreSQL reports wal_status = lost for every invalidated slot; only a slot without a reason (before 17)
        # or with wal_removed lost WAL - the others (rows_removed on a standby, idle_timeout ...) are invalidated.
        lost = slot.get("wal_status") == "lost" and slot.get("invalidation_reason") in (None, "wal_removed")
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
                    SLOT_INVALIDATED_HINTS.get(slot.get("invalidation_reason"), SLOT_INVALIDATED_HINT),
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


def _check_slot_share(slots):
    """A slot's retained WAL as a share of what ``max_slot_wal_keep_size`` lets it keep (``_thresholds``), where
    that limit is set (``safe_wal_size`` is known): near the limit, its WAL is removed at a checkpoint soon."""
    found = []
    for slot in slots:
        retained, safe = slot.get("retained_wal_bytes"), slot.get("safe_wal_size")
        if retained is None or safe is None or slot.get("wal_status") in ("lost", "unreserved"):
            continue  # no limit, or already reported by _check_slots
        share = retained / max(retained + safe, 1)
        if share <= RETAINED_WAL_FRACTION_WARNING:
            continue
        critical = share > RETAINED_WAL_FRACTION_CRITICAL
        limit = RETAINED_WAL_FRACTION_CRITICAL if critical else RETAINED_WAL_FRACTION_WARNING
        found.append(
            finding(
                "error" if critical else "warning",
                "slot_wal_near_limit",
                f"replication slot {slot['name']} retains {format_bytes(retained)} of WAL, {share:.0%} of what "
                f"max_slot_wal_keep_size lets it keep ({format_bytes(safe)} left; alert above {limit:.0%})",
                "Let its consumer catch up (is it paused, disabled or failing?), or raise max_slot_wal_keep_size; past "
                "the limit the publisher removes the WAL and the subscription must be re-synchronized.",
            )
        )
    return found


def _check_lag(senders):
    """WAL senders whose replay lag (``pg_stat_replication.replay_lag``: PostgreSQL's own measure, empty when
    idle and caught up) is over the lag thresholds (``_thresholds``)."""
    late = [(s, s.get("replay_lag_seconds")) for s in senders or ()]
    late = [(s, lag) for s, lag in late if lag is not None and lag > LAG_SECONDS_WARNING]
    if not late:
        return []
    critical = any(lag > LAG_SECONDS_CRITICAL for _s, lag in late)
    names = _listing(f"{s.get('application_name') or s.get('slot_name')} ({lag:.0f} s)" for s, lag in late)
    return [
        finding(
            "error" if critical else "warning",
            "replication_lag",
            f"WAL sender(s) with a replay lag over {LAG_SECONDS_CRITICAL if critical else LAG_SECONDS_WARNING:.0f} s: "
            f"{names}",
            "The subscriber applies slower than the publisher writes, or is stuck: check its apply errors, locks and "
            "load (make status on it, the dashboards); a large transaction or an initial copy can explain a "
            "temporary lag.",
        )
    ]


def _error_facts(errors):
    """``{name: per-subscription errors}`` of the ``errors`` subset when the server log was read, else ``None``."""
    if not errors or not errors.get("available"):
        return None
    return {entry["name"]: entry for entry in errors.get("subscriptions") or ()}


def _iso_time(value):
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _disabling_error(entry):
    """The last error before ``disable_on_error`` disabled the subscription (``None`` when the log does not say it
    did: it may have been disabled by hand)."""
    when = _iso_time((entry or {}).get("disabled_by_error_time"))
    if when is None:
        return None
    for diagnosis in entry.get("diagnoses") or ():
        at = _iso_time(diagnosis.get("first_time"))
        if diagnosis.get("severity") in ERROR_SEVERITIES and at is not None and at <= when:
            return diagnosis
    return None


def _last_diagnosis(entry, recent_only=False, worker=None):
    for diagnosis in (entry or {}).get("diagnoses") or ():
        if recent_only and not diagnosis.get("recent"):
            continue
        if diagnosis.get("severity") not in ERROR_SEVERITIES:  # a conflict PostgreSQL resolved by itself
            continue
        if worker is not None and diagnosis.get("worker") != worker:
            continue
        return diagnosis
    return None


_DIAGNOSIS_FIELDS = (
    "subscription",
    "worker",
    "kind",
    "relation",
    "key",
    "message",
    "sqlstate",
    "finish_lsn",
    "time",
    "count",
    "fix",
    "source",
)


def _diagnosis_field(diagnosis):
    """The structured form of a diagnosis in a finding (``error`` is PostgreSQL's message)."""
    item = {key: diagnosis.get(key) for key in _DIAGNOSIS_FIELDS}
    item["error"] = item.pop("message")
    return item


def _with_diagnoses(found, pairs):
    """Add the last error of each (name, diagnosis) to a finding: to its message, its hint and ``diagnoses``."""
    pairs = [(name, diagnosis) for name, diagnosis in pairs if diagnosis]
    if not pairs:
        return found
    found["message"] += "; " + "; ".join(f"{quote_ident(name)}: {describe(d)}" for name, d in pairs[:MAX_LISTED])
    if pairs[0][1].get("source"):
        found["message"] += f" (source: {pairs[0][1]['source']})"
    found["hint"] = " ".join(f"{quote_ident(name)}: {d['fix']}" for name, d in pairs[:MAX_LISTED]) + " " + found["hint"]
    found["diagnoses"] = [_diagnosis_field(d) for _name, d in pairs]
    return found


def _check_subscriptions(subscriptions, errors=None, paused=()):
    found = []
    by_name = _error_facts(errors)
    log_entry = (by_name or {}).get
    # A paused subscription (a pause record, playbooks/pause.yml) is disabled on purpose: its own findings
    # (_pause.check_paused) say since when, why and until when.
    disabled = [s["name"] for s in subscriptions if not s.get("enabled") and s["name"] not in paused]
    if disabled:
        found.append(
            _with_diagnoses(
                finding(
                    "warning",
                    "subscription_disabled",
                    f"disabled subscription(s): {_listing(quote_ident(n) for n in disabled)}",
                    "Enable with ALTER SUBSCRIPTION ... ENABLE (after fixing the error that disabled it, if "
                    "disable_on_error was set; see the server log).",
                ),
                # The error that disabled it may be older than the window.
                [(n, _disabling_error(log_entry(n))) for n in disabled],
            )
        )
    not_running = [s["name"] for s in subscriptions if s.get("enabled") and not s.get("apply_worker_pid")]
    if not_running:
        found.append(
            _with_diagnoses(
                finding(
                    "warning",
                    "subscription_not_running",
                    "enabled subscription(s) without a running apply worker: "
                    + _listing(quote_ident(n) for n in not_running),
                    "The worker may be restarting after an error, waiting for a free worker slot "
                    "(max_logical_replication_workers), or unable to connect; see the subscriber's server log.",
                ),
                [(n, _last_diagnosis(log_entry(n), recent_only=True)) for n in not_running],
            )
        )
    found += _check_error_counts(subscriptions, errors, by_name)
    found += _check_conflicts(subscriptions, errors, by_name)
    not_ready = []
    for s in subscriptions:
        if s.get("tables_not_ready"):
            states = ", ".join(f"{n} {state}" for state, n in sorted(s["table_states"].items()) if state != "ready")
            not_ready.append((s["name"], f"{quote_ident(s['name'])} ({states})"))
    if not_ready:
        found.append(
            _with_diagnoses(
                finding(
                    "warning",
                    "tables_not_ready",
                    "subscription(s) with tables not yet ready (initial synchronization): "
                    + _listing(text for _name, text in not_ready),
                    "Wait for the initial copy to finish; if it does not progress, check sync errors, "
                    "max_sync_workers_per_subscription and the subscriber's server log.",
                ),
                [(n, _last_diagnosis(log_entry(n), recent_only=True, worker=WORKER_SYNC)) for n, _text in not_ready],
            )
        )
    return found


def _check_conflicts(subscriptions, errors, by_name):
    """``subscription_conflicts`` (PostgreSQL 18): the conflicts logged in the window where the server log can be
    read, else the lifetime counters of ``pg_stat_subscription_stats``."""
    conflicts = []
    window = None if by_name is None else errors["window_minutes"]
    for s in subscriptions:
        lifetime = {k: v for k, v in (s.get("conflicts") or {}).items() if v}
        if window is None:
            counts = lifetime
            text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        else:
            counts = {k: v for k, v in ((by_name.get(s["name"]) or {}).get("conflicts") or {}).items() if v}
            text = ", ".join(
                f"{k} {v} in the last {window:g} min" + (f" (lifetime {lifetime[k]})" if k in lifetime else "")
                for k, v in sorted(counts.items())
            )
        if counts:
            conflicts.append("{} ({})".format(quote_ident(s["name"]), text))
    if not conflicts:
        return []
    return [
        finding(
            "warning",
            "subscription_conflicts",
            "subscription(s) that met conflicts while applying changes"
            + (" (lifetime totals)" if window is None else "")
            + f": {_listing(conflicts)}",
            "See the subscriber's server log for each conflict"
            + (
                "; reset the counters with SELECT pg_stat_reset_subscription_stats(NULL)."
                if window is None
                else f"; the finding goes away when no conflict is logged for {window:g} min."
            ),
        )
    ]


def _check_error_counts(subscriptions, errors, by_name):
    """``subscription_errors``: errors in the last ``window_minutes`` from the server log where it can be read,
    else PostgreSQL's lifetime counters (said so)."""
    if by_name is None:
        with_errors = [
            s for s in subscriptions if (s.get("apply_error_count") or 0) > 0 or (s.get("sync_error_count") or 0) > 0
        ]
        if not with_errors:
            return []
        details = _listing(
            f"{quote_ident(s['name'])} (apply errors {s.get('apply_error_count') or 0}, "
            f"sync errors {s.get('sync_error_count') or 0})"
            for s in with_errors
        )
        why = f"; {errors['source']}" if errors and errors.get("source") else ""
        item = finding(
            "warning",
            "subscription_errors",
            f"subscription(s) with errors since the statistics were reset (lifetime totals{why}): {details}",
            "See the subscriber's server log for the errors (often a conflict such as a duplicate key); after "
            "fixing them reset the counters with SELECT pg_stat_reset_subscription_stats(NULL).",
        )
        item["error_counts"] = [
            {
                "subscription": s["name"],
                "apply_errors": None,
                "sync_errors": None,
                "apply_errors_lifetime": s.get("apply_error_count"),
                "sync_errors_lifetime": s.get("sync_error_count"),
                "window_minutes": None,
            }
            for s in with_errors
        ]
        return [item]
    window = errors["window_minutes"]
    minutes = f"{window:g} min"
    recent = []
    for s in subscriptions:
        entry = by_name.get(s["name"]) or {}
        if entry.get("apply_errors") or entry.get("sync_errors"):
            recent.append((s, entry))
    if not recent:
        return []
    parts = []
    for s, entry in recent:
        text = f"{quote_ident(s['name'])} ({entry['apply_errors']} apply errors in the last {minutes}"
        if s.get("apply_error_count") is not None:
            text += f" (lifetime {s['apply_error_count']})"
        text += f", {entry['sync_errors']} sync errors in the last {minutes}"
        if s.get("sync_error_count") is not None:
            text += f" (lifetime {s['sync_error_count']})"
        parts.append(text + ")")
    if not errors.get("window_complete"):
        parts.append(f"the log read covers only since {errors.get('covers_since')}")
    item = _with_diagnoses(
        finding(
            "warning",
            "subscription_errors",
            f"subscription(s) with errors in the last {minutes}: {_listing(parts)}",
            "Once fixed, the finding goes away by itself when no error is logged for "
            f"{minutes} (no need to reset the statistics).",
        ),
        [(s["name"], _last_diagnosis(entry, recent_only=True)) for s, entry in recent],
    )
    item["error_counts"] = [
        {
            "subscription": s["name"],
            "apply_errors": entry["apply_errors"],
            "sync_errors": entry["sync_errors"],
            "apply_errors_lifetime": s.get("apply_error_count"),
            "sync_errors_lifetime": s.get("sync_error_count"),
            "window_minutes": window,
        }
        for s, entry in recent
    ]
    return [item]


def _check_publications(issues):
    found = []
    if not issues:
        return found
    by_pub = {}
    for item in issues.get("no_replica_identity", ()):
        by_pub.setdefault(item["publication"], []).append(table_display(item["schema"], item["table"]))
    # "tables" carries the names as data: the message's listing is shortened for many tables, and a caller that
    # needs them (the switchover's go/no-go) must not parse text.
    for publication, tables in sorted(by_pub.items()):
        item = finding(
            "error",
            "replica_identity_missing",
            f"publication {quote_ident(publication)} publishes UPDATE/DELETE but these tables have neither a "
            f"primary key nor a replica identity, so PostgreSQL refuses UPDATE/DELETE on them: {_listing(tables)}",
            "Add a primary key, set REPLICA IDENTITY (USING INDEX or FULL), or leave update and delete out of "
            "the publication's publish option.",
        )
        item["tables"] = sorted(set(tables))
        found.append(item)
    for kind, problem in (
        ("row_filter_outside_replica_identity", "the row filter uses column(s) outside the replica identity"),
        ("column_list_lacks_replica_identity", "the column list lacks replica identity column(s)"),
    ):
        items = [
            f"{table_display(i['schema'], i['table'])} in publication {quote_ident(i['publication'])} ({i['detail']})"
            for i in issues.get(kind, ())
        ]
        if items:
            item = finding(
                "error",
                kind,
                f"UPDATE/DELETE are published but {problem}, so PostgreSQL refuses UPDATE/DELETE on these "
                f"tables: {_listing(items)}",
                "Filter on replica identity columns only and keep them in column lists, set REPLICA IDENTITY "
                "FULL (for row filters), or leave update and delete out of the publication's publish option.",
            )
            item["tables"] = sorted({table_display(i["schema"], i["table"]) for i in issues.get(kind, ())})
            found.append(item)
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


def evaluate_checks(
    facts, publication_issues=None, retained_wal_threshold=DEFAULT_RETAINED_WAL_THRESHOLD, extra=(), paused=()
):
    """Findings (list of ``{severity, code, message, hint}``) from collected facts, errors first.

    ``extra``: findings made elsewhere (paused subscriptions, the comparison with the publisher), sorted in
    with these; ``paused``: names of paused subscriptions, not reported as merely disabled.

    ``facts`` holds ``server``, ``slots``, ``senders``, ``publications``, ``subscriptions``,
    ``subscription_counts`` and ``errors`` as :func:`collect` returns them (missing ones are skipped;
    without a readable server log in ``errors`` the error counters are PostgreSQL's lifetime totals);
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
    found += _check_slot_share(slots)
    found += _check_lag(facts.get("senders"))
    found += _check_publications(publication_issues)
    found += _check_subscriptions(subscriptions, facts.get("errors"), paused)
    found += list(extra)
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    return sorted(found, key=lambda f: order[f["severity"]])


# ----------------------------------------------------------------------------------------------
# Failover slots (PostgreSQL 17+) and two-way replication (origin, PostgreSQL 16+). Each check reads
# what one node shows; what needs the standby itself (its slots' ``synced``, its
# ``sync_replication_slots``) is not seen here.
# ----------------------------------------------------------------------------------------------


def _failover_slots(slots):
    """This node's own logical failover slots (a standby's synchronized copies have ``synced``)."""
    return [s for s in slots if s.get("slot_type") == "logical" and s.get("failover") and not s.get("synced")]


def check_failover_subscription_slots(subscriptions, publisher_slots):
    """``failover_slot_not_failover`` (warning): a subscription created or altered with ``failover = true`` whose
    slot on the publisher is not a failover slot, so no standby of the publisher synchronizes it.

    ``subscriptions``: the subscriber's subscription states (``failover`` key from PostgreSQL 17);
    ``publisher_slots``: the publisher's slots (``_slots.collect_slots``). A slot missing on the publisher
    is left to the subscription's errors.
    """
    by_name = {slot["name"]: slot for slot in publisher_slots}
    wrong = []
    for sub in subscriptions:
        slot = by_name.get(sub.get("slot_name"))
        if not sub.get("failover") or slot is None or "failover" not in slot:
            continue
        if not slot["failover"]:
            wrong.append(f"{quote_ident(sub['name'])} (slot {slot['name']})")
    if not wrong:
        return []
    return [
        finding(
            "warning",
            "failover_slot_not_failover",
            "subscription(s) with failover = true whose slot on the publisher is not a failover slot, so no standby "
            f"of the publisher keeps a copy of it and the subscription cannot follow a failover: {_listing(wrong)}",
            "Mark the slot as a failover slot on the publisher (inventium.logical_replication.replication_slot with "
            "failover: true changes it in place); something re-created or altered it behind the subscription.",
        )
    ]


def check_standby_slots(standby, slots):
    """Findings of a primary's ``synchronized_standby_slots`` (PostgreSQL 17+).

    ``standby``: ``_slots.collect_standby_slot_settings`` (``None`` before 17: no findings); ``slots``: this
    node's slots. Codes:

    - ``synchronized_standby_slots_broken`` (error): a listed slot does not exist, is logical or is
      invalidated - PostgreSQL's walsenders of failover slots wait for it, so those subscriptions stall;
    - ``standby_slot_inactive`` (warning): a listed slot is not in use - while its standby is away, failover
      slots' subscribers receive nothing;
    - ``standby_not_in_synchronized_standby_slots`` (warning): failover slots exist and a physical slot is in
      use by a standby, but it is not listed - the subscribers may get changes that standby has not, and after
      a failover to it they would be ahead of it. Whether that standby runs with ``sync_replication_slots``
      is only known on the standby.
    """
    if not standby or standby.get("in_recovery"):
        return []
    listed = list(standby.get("synchronized_standby_slots") or ())
    by_name = {slot["name"]: slot for slot in slots}
    failover = _failover_slots(slots)
    found = []
    broken, inactive = [], []
    for name in listed:
        slot = by_name.get(name)
        if slot is None:
            broken.append(f"{name} (does not exist)")
        elif slot.get("slot_type") != "physical":
            broken.append(f"{name} (a logical slot)")
        elif slot.get("invalidation_reason") or slot.get("wal_status") == "lost":
            broken.append(f"{name} (invalidated: {slot.get('invalidation_reason') or 'wal_status lost'})")
        elif not slot.get("active"):
            inactive.append(name)
    if broken:
        found.append(
            finding(
                "error",
                "synchronized_standby_slots_broken",
                f"synchronized_standby_slots lists slot(s) no standby confirms through: {_listing(broken)}; the "
                "walsenders of logical failover slots wait for them"
                + (
                    f", so these slots' subscribers receive nothing: {_listing(s['name'] for s in failover)}"
                    if failover
                    else ""
                ),
                "Create the physical slot the standby uses (primary_slot_name on the standby) or remove the name "
                "from synchronized_standby_slots (inventium.logical_replication.server_settings; a reload applies it).",
            )
        )
    if inactive and failover:
        found.append(
            finding(
                "warning",
                "standby_slot_inactive",
                f"synchronized_standby_slots lists slot(s) no standby is connected to: {_listing(inactive)}; while "
                "it is away the walsenders of the failover slots wait for it, so their subscribers receive nothing: "
                f"{_listing(s['name'] for s in failover)}",
                "Bring the standby back, or remove its slot from synchronized_standby_slots for as long as it is "
                "away (its synchronized slots may then be behind the subscribers after a failover to it).",
            )
        )
    missing = [
        slot["name"]
        for slot in slots
        if slot.get("slot_type") == "physical" and slot.get("active") and slot["name"] not in listed
    ]
    if failover and missing:
        found.append(
            finding(
                "warning",
                "standby_not_in_synchronized_standby_slots",
                f"physical slot(s) in use by a standby are not in synchronized_standby_slots: {_listing(missing)}; "
                "the subscribers of the failover slots "
                f"({_listing(s['name'] for s in failover)}) may receive changes that standby has not, and after a "
                "failover to it they would be ahead of the new primary",
                "If that standby synchronizes the failover slots (sync_replication_slots = on there), add its slot to "
                "synchronized_standby_slots on this primary (inventium.logical_replication.server_settings; a "
                "reload applies it).",
            )
        )
    return found


def _published_here(publications):
    """``(all_tables, schemas, tables)`` this node publishes (tables as ``(schema, table)``)."""
    all_tables = any(p.get("all_tables") for p in publications)
    schemas = {schema for p in publications for schema in p.get("schemas") or ()}
    tables = {(t["schema"], t["table"]) for p in publications for t in p.get("tables") or ()}
    return all_tables, schemas, tables


def check_replication_loops(publications, subscriptions):
    """``replication_loop_risk`` (warning): a subscription with ``origin = any`` (or a server before 16, which has no
    origin filter) into tables this node publishes too - if those changes reach a node that sends them back here
    (two-way replication), every change is applied again and again. A cascade without a way back is not a loop;
    one node cannot tell the two apart, hence a warning (the publisher comparison confirms a loop).

    ``publications``: this node's publications (``_publications.collect_publications``); ``subscriptions``:
    its subscription states (``origin`` from PostgreSQL 16, ``tables`` with ``schema``/``table``).
    """
    all_tables, schemas, tables = _published_here(publications)
    risky = []
    for sub in subscriptions:
        if sub.get("origin", "any") != "any":
            continue
        both = [
            table_display(t["schema"], t["table"])
            for t in sub.get("tables") or ()
            if all_tables or t["schema"] in schemas or (t["schema"], t["table"]) in tables
        ]
        if both:
            risky.append(
                f"{quote_ident(sub['name'])} ({', '.join(sorted(both)[:5])}{', ...' if len(both) > 5 else ''})"
            )
    if not risky:
        return []
    old = any("origin" not in sub for sub in subscriptions)
    return [
        finding(
            "warning",
            "replication_loop_risk",
            "subscription(s) without origin = none apply changes to tables this node also publishes: "
            f"{_listing(risky)}; if a subscriber of those publications sends its changes back here (two-way "
            "replication), each change loops between the nodes",
            "For two-way replication set origin: none on the subscriptions of both directions "
            "(inventium.logical_replication.subscription; PostgreSQL 16+)"
            + ("; this server is older than 16 and cannot filter by origin" if old else "")
            + ". A one-way cascade (A to B to C) is not a loop.",
        )
    ]


def check_two_way_origin(subscriptions, local_slots, publisher_subscriptions):
    """``replication_loop`` (error): confirmed two-way replication without ``origin = none`` - the publisher has a
    subscription whose slot is a logical slot of this node (it subscribes back), and this node's subscription
    to it or that one has ``origin = any``.

    ``subscriptions``: this node's subscription states; ``local_slots``: this node's slots;
    ``publisher_subscriptions``: the publisher's ``[{name, slot_name, origin}]`` (``origin`` ``None`` before 16).
    """
    local_logical = {s["name"] for s in local_slots if s.get("slot_type") == "logical"}
    back = [p for p in publisher_subscriptions if p.get("slot_name") in local_logical]
    if not back or not subscriptions:
        return []
    ours_any = [quote_ident(s["name"]) for s in subscriptions if s.get("origin", "any") == "any"]
    theirs_any = [quote_ident(p["name"]) for p in back if (p.get("origin") or "any") == "any"]
    if not ours_any and not theirs_any:
        return []
    parts = []
    if ours_any:
        parts.append(f"here: {_listing(ours_any)}")
    if theirs_any:
        parts.append(f"on the publisher: {_listing(theirs_any)}")
    return [
        finding(
            "error",
            "replication_loop",
            "two-way replication: the publisher subscribes back to this node (subscription(s) "
            f"{_listing(quote_ident(p['name']) for p in back)} use slots of this node), and subscriptions without "
            f"origin = none - {'; '.join(parts)} - send replicated changes back, so changes loop between the nodes",
            "Set origin: none on the subscriptions of both directions (inventium.logical_replication.subscription; "
            "PostgreSQL 16+); when adding the second direction to tables that already hold the same rows, create it "
            "with copy_data: false.",
        )
    ]
