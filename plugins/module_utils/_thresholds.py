# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The alert thresholds, defined once.

``replication_info``'s checks (``_checks.py``) and the Grafana alert rules the ``grafana`` role
provisions (``_alert_rules.py`` through the ``alert_rule_groups`` filter) take their numbers from
here, so that ``make status`` and Grafana call the same state unhealthy. :data:`THRESHOLDS` is the
same numbers by name, for the generator's overrides and the documentation (``docs/alerts.md``).
"""

from __future__ import annotations

LAG_SECONDS_WARNING = 30.0
"""End-to-end replication lag (the heartbeat's age on a subscriber), seconds: a warning above it."""

LAG_SECONDS_CRITICAL = 300.0
"""End-to-end replication lag, seconds: critical above it."""

RETAINED_WAL_FRACTION_WARNING = 0.5
"""WAL a slot retains as a share of ``max_slot_wal_keep_size`` (when set): a warning above it."""

RETAINED_WAL_FRACTION_CRITICAL = 0.8
"""WAL a slot retains as a share of ``max_slot_wal_keep_size``: critical above it (past 1 the slot's WAL is
removed at the next checkpoint unless its consumer catches up)."""

RETAINED_WAL_BYTES = 1024**3
"""An inactive slot retaining more WAL than this (bytes, 1 GiB) is reported: the absolute limit for servers
whose ``max_slot_wal_keep_size`` is -1 (no share to compare with); ``replication_info``'s
``retained_wal_threshold`` defaults to it."""

SLOT_INACTIVE_MINUTES = 10.0
"""A replication slot inactive (no consumer connected) for this long is reported: it retains WAL."""

SUBSCRIPTION_DISABLED_MINUTES = 5.0
"""A subscription disabled for this long is reported (a planned pause is announced by its plan instead)."""

SUBSCRIPTION_NOT_RUNNING_MINUTES = 5.0
"""An enabled subscription whose apply worker was not seen running for this long is reported."""

SUBSCRIPTION_ERRORS_WINDOW_MINUTES = 15.0
"""The window of the apply/sync error counts (``replication_info``'s ``error_window`` default)."""

SUBSCRIPTION_ERRORS_MAX = 0
"""More new apply + sync errors than this within :data:`SUBSCRIPTION_ERRORS_WINDOW_MINUTES` are reported."""

PAUSE_OVERDUE_MINUTES = 0.0
"""A paused subscription still disabled this many minutes past the end of its plan is reported ("the risk of
forgetting")."""


THRESHOLDS = {
    "lag_seconds_warning": LAG_SECONDS_WARNING,
    "lag_seconds_critical": LAG_SECONDS_CRITICAL,
    "retained_wal_fraction_warning": RETAINED_WAL_FRACTION_WARNING,
    "retained_wal_fraction_critical": RETAINED_WAL_FRACTION_CRITICAL,
    "retained_wal_bytes": RETAINED_WAL_BYTES,
    "slot_inactive_minutes": SLOT_INACTIVE_MINUTES,
    "subscription_disabled_minutes": SUBSCRIPTION_DISABLED_MINUTES,
    "subscription_not_running_minutes": SUBSCRIPTION_NOT_RUNNING_MINUTES,
    "subscription_errors_window_minutes": SUBSCRIPTION_ERRORS_WINDOW_MINUTES,
    "subscription_errors_max": SUBSCRIPTION_ERRORS_MAX,
    "pause_overdue_minutes": PAUSE_OVERDUE_MINUTES,
}
"""Every threshold by name (the constants above)."""


def thresholds(overrides=None):
    """:data:`THRESHOLDS` with ``overrides`` (``{name: number}``) applied; raises ``ValueError`` for an unknown
    name or a value that is not a non-negative number."""
    merged = dict(THRESHOLDS)
    for name, value in (overrides or {}).items():
        if name not in THRESHOLDS:
            raise ValueError(f"unknown threshold {name!r} (known: {', '.join(sorted(THRESHOLDS))})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"threshold {name} must be a number >= 0, got {value!r}")
        merged[name] = value
    return merged
