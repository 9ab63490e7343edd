# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Grafana alert rules generated from the thresholds of ``_thresholds.py`` (one source).

:func:`alert_rules` describes each rule plainly (the InfluxQL over the sampler's measurements, the
window, the reducer and the comparison); :func:`rule_groups` turns them into Grafana's file
provisioning (unified alerting, ``apiVersion: 1``, ``groups:``) - the ``alert_rule_groups`` filter
gives it to the ``grafana`` role's template. Each rule's data is the InfluxQL query (refId ``A``,
``$timeFilter`` covering the rule's window), a reduce (``B``) and a threshold (``C``, the condition),
so a rule fires for each series (node and slot or subscription) whose reduced value crosses it.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._thresholds import thresholds

EXPRESSION_UID = "__expr__"
"""The pseudo data source of Grafana's server-side expressions (reduce, threshold)."""

DEFAULT_GROUP = "inventium-logical-replication"

DEFAULT_INTERVAL = "1m"

LAG_WINDOW_SECONDS = 60
"""The window of the rules that read the last value (lag, retained WAL): long enough for a few samples."""


def _minutes(value):
    return f"{value:g} min"


def _rule(uid, title, severity, threshold, query, window_seconds, evaluator, value, summary, description):
    return {
        "uid": uid,
        "title": title,
        "severity": severity,
        "threshold": threshold,
        "query": query,
        "window_seconds": int(max(1, round(window_seconds))),
        "reducer": "last",
        "evaluator": evaluator,
        "value": value,
        "summary": summary,
        "description": description,
    }


def alert_rules(overrides=None):
    """The alert rules as plain dicts, numbers from ``_thresholds`` (``overrides``: ``{threshold name: number}``).

    Each: ``uid``, ``title``, ``severity`` (``warning``/``critical``), ``threshold`` (the name in
    ``_thresholds.THRESHOLDS``), ``query`` (InfluxQL with ``$timeFilter``), ``window_seconds`` (what
    ``$timeFilter`` covers), ``reducer`` (``last``: every query returns one value per series and
    window), ``evaluator`` (``gt``: fires above ``value``, ``lt``: below) and ``value``, ``summary``,
    ``description``. Raises ``ValueError`` for a bad override.
    """
    t = thresholds(overrides)
    lag = 'SELECT last("lag_seconds") AS "lag_seconds" FROM "heartbeat_lag" WHERE $timeFilter GROUP BY "node", "source"'
    # safe_wal_size is what may still be written before the slot loses WAL, so retained + safe is
    # max_slot_wal_keep_size as the slot sees it; NULL (no point) when the limit is -1.
    fraction = (
        'SELECT last("retained_wal_bytes") / (last("retained_wal_bytes") + last("safe_wal_size")) AS "fraction"'
        ' FROM "replication_slot" WHERE $timeFilter GROUP BY "node", "slot_name"'
    )
    # active is 0/1: an active slot counts 0 bytes, as replication_info's slot_inactive_retaining_wal.
    inactive_retained = (
        'SELECT last("retained_wal_bytes") * (1 - last("active")) AS "retained_wal_bytes"'
        ' FROM "replication_slot" WHERE $timeFilter GROUP BY "node", "slot_name"'
    )
    slot_active = (
        'SELECT max("active") AS "active" FROM "replication_slot" WHERE $timeFilter GROUP BY "node", "slot_name"'
    )
    # A planned pause (paused = 1) is not "disabled": it has its own rule, on its plan.
    enabled = (
        'SELECT max("enabled") + max("paused") AS "enabled" FROM "subscription" WHERE $timeFilter'
        ' GROUP BY "node", "subscription"'
    )
    overdue = (
        'SELECT last("pause_overdue_seconds") AS "pause_overdue_seconds" FROM "subscription" WHERE $timeFilter'
        ' GROUP BY "node", "subscription"'
    )
    running = (
        'SELECT max("worker_running") AS "worker_running" FROM "subscription"'
        ' WHERE "enabled" = 1 AND $timeFilter GROUP BY "node", "subscription"'
    )
    # The counters' increases, not their spread: a reset of pg_stat_subscription_stats is no error.
    errors = (
        'SELECT sum("errors") AS "errors" FROM (SELECT non_negative_difference("apply_error_count")'
        ' + non_negative_difference("sync_error_count") AS "errors" FROM "subscription" WHERE $timeFilter'
        ' GROUP BY "node", "subscription") WHERE $timeFilter GROUP BY "node", "subscription"'
    )
    rules = []
    for severity in ("warning", "critical"):
        limit = t[f"lag_seconds_{severity}"]
        rules.append(
            _rule(
                f"inventium-lag-{severity}",
                f"Replication lag ({severity})",
                severity,
                f"lag_seconds_{severity}",
                lag,
                LAG_WINDOW_SECONDS,
                "gt",
                limit,
                f"Replication lag above {limit:g} s",
                "The newest heartbeat the subscriber has seen is older than the threshold (heartbeat_lag, "
                "end to end): changes arrive late or not at all. See the Replication dashboard and make status.",
            )
        )
    for severity in ("warning", "critical"):
        limit = t[f"retained_wal_fraction_{severity}"]
        rules.append(
            _rule(
                f"inventium-retained-wal-fraction-{severity}",
                f"Slot retains WAL near max_slot_wal_keep_size ({severity})",
                severity,
                f"retained_wal_fraction_{severity}",
                fraction,
                LAG_WINDOW_SECONDS,
                "gt",
                limit,
                f"Slot retains more than {limit:.0%} of max_slot_wal_keep_size",
                "Past the limit PostgreSQL removes the WAL the slot needs and its subscription must be re-created. "
                "Let the consumer catch up, or raise max_slot_wal_keep_size.",
            )
        )
    rules.append(
        _rule(
            "inventium-inactive-slot-retained-wal",
            "Inactive slot retains WAL",
            "warning",
            "retained_wal_bytes",
            inactive_retained,
            LAG_WINDOW_SECONDS,
            "gt",
            t["retained_wal_bytes"],
            f"Inactive slot retains more than {t['retained_wal_bytes']} bytes of WAL",
            "Nothing consumes the slot and the WAL it holds fills pg_wal (the limit that also applies when "
            "max_slot_wal_keep_size is -1). Reconnect its consumer or drop the slot.",
        )
    )
    rules.append(
        _rule(
            "inventium-slot-inactive",
            "Replication slot inactive",
            "warning",
            "slot_inactive_minutes",
            slot_active,
            t["slot_inactive_minutes"] * 60,
            "lt",
            1,
            f"Replication slot inactive for {_minutes(t['slot_inactive_minutes'])}",
            "No consumer was connected to the slot during the whole window: its subscriber is down, disabled "
            "or paused, and the slot retains WAL meanwhile.",
        )
    )
    rules.append(
        _rule(
            "inventium-subscription-disabled",
            "Subscription disabled",
            "warning",
            "subscription_disabled_minutes",
            enabled,
            t["subscription_disabled_minutes"] * 60,
            "lt",
            1,
            f"Subscription disabled for {_minutes(t['subscription_disabled_minutes'])}",
            "The subscription did not replicate during the whole window (disabled by hand, or by "
            "disable_on_error after an apply error; a planned pause has its own rule). Enable it.",
        )
    )
    rules.append(
        _rule(
            "inventium-pause-overdue",
            "Paused subscription past its plan",
            "warning",
            "pause_overdue_minutes",
            overdue,
            LAG_WINDOW_SECONDS,
            "gt",
            t["pause_overdue_minutes"] * 60,
            f"Subscription still paused {_minutes(t['pause_overdue_minutes'])} after the end of its planned pause",
            "The risk of forgetting: the pause (playbooks/pause.yml) was planned to end earlier and the publisher "
            "keeps retaining WAL for it. Resume it (playbooks/resume.yml) or pause it again with a new plan.",
        )
    )
    rules.append(
        _rule(
            "inventium-subscription-not-running",
            "Subscription without a running apply worker",
            "warning",
            "subscription_not_running_minutes",
            running,
            t["subscription_not_running_minutes"] * 60,
            "lt",
            1,
            f"Enabled subscription without an apply worker for {_minutes(t['subscription_not_running_minutes'])}",
            "The worker cannot start: no free worker slot (max_logical_replication_workers), the publisher "
            "cannot be reached, or it fails at once. See the subscriber's server log.",
        )
    )
    rules.append(
        _rule(
            "inventium-subscription-errors",
            "Subscription errors growing",
            "warning",
            "subscription_errors_max",
            errors,
            t["subscription_errors_window_minutes"] * 60,
            "gt",
            t["subscription_errors_max"],
            f"More than {t['subscription_errors_max']} new apply/sync errors in "
            f"{_minutes(t['subscription_errors_window_minutes'])}",
            "pg_stat_subscription_stats counts new apply or table synchronization errors (often a conflict "
            "such as a duplicate key). make status names the error and its fix.",
        )
    )
    return rules


def _duration(seconds):
    return f"{seconds}s"


def grafana_rule(rule, datasource_uid):
    """One rule in Grafana's provisioning format: query ``A``, reduce ``B``, threshold ``C`` (the condition)."""
    window = rule["window_seconds"]
    return {
        "uid": rule["uid"],
        "title": rule["title"],
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": window, "to": 0},
                "datasourceUid": datasource_uid,
                "model": {
                    "refId": "A",
                    "rawQuery": True,
                    "query": rule["query"],
                    "resultFormat": "time_series",
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": window, "to": 0},
                "datasourceUid": EXPRESSION_UID,
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": rule["reducer"],
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": window, "to": 0},
                "datasourceUid": EXPRESSION_UID,
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": rule["evaluator"], "params": [rule["value"]]}}],
                },
            },
        ],
        # No data is normal for several rules (no limit set, no subscription, a healthy window):
        # make status, not a missing series, reports a sampler that stopped.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "isPaused": False,
        "labels": {"severity": rule["severity"], "threshold": rule["threshold"]},
        "annotations": {"summary": rule["summary"], "description": rule["description"]},
    }


def rule_groups(datasource_uid, folder, group=DEFAULT_GROUP, interval=DEFAULT_INTERVAL, overrides=None, org_id=1):
    """Grafana's alerting provisioning document (``{"apiVersion": 1, "groups": [...]}``), one group."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": org_id,
                "name": group,
                "folder": folder,
                "interval": interval,
                "rules": [grafana_rule(rule, datasource_uid) for rule in alert_rules(overrides)],
            }
        ],
    }
