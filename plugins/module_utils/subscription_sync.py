# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Waiting for the initial table synchronization of a subscription (subscriber side).

A subscription is in sync when every table in ``pg_subscription_rel`` is ``r`` (ready) and its
apply worker runs (``pg_stat_subscription``). :func:`wait_for_sync` polls exactly that with ONE
catalog query per poll on the caller's connection. The pause between polls grows with the time
already waited (5 % of it, at least 10 ms, at most 1 s), so the wait notices the end of a sync
within a few per cent of its duration - it adds nothing measurable to the sync itself - while a
long sync is polled about once a second.

The functions take a ``run_query(statement, params) -> list of dicts`` callable, so they work
with :meth:`PgModule.query` and in unit tests without a database. The SQL it runs is the
subscription reader's (``_subscriptions.py``).
"""

from __future__ import annotations

import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    TABLES_QUERY,
    progress_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    sync_state_name as state_name,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import QualifiedName

MIN_INTERVAL = 0.01
MAX_INTERVAL = 1.0
INTERVAL_FRACTION = 0.05


def poll_interval(elapsed):
    """Seconds to sleep before the next poll, after ``elapsed`` seconds of waiting."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, elapsed * INTERVAL_FRACTION))


def table_entry(schema, table, state, lsn=None):
    """One element of the per-table sync states the modules return."""
    return {
        "name": str(QualifiedName(schema, table)),
        "state": state_name(state),
        "lsn": lsn,
    }


def read_tables(run_query, subid):
    """Per-table sync states of the subscription ``subid`` (list of :func:`table_entry` dicts)."""
    return [table_entry(r["schema"], r["table"], r["state"], r["lsn"]) for r in run_query(TABLES_QUERY, [subid])]


def is_synced(progress):
    """True when every table is ready and the apply worker runs."""
    return bool(progress and progress["enabled"] and progress["pending"] == 0 and progress["apply_running"])


def _count_delta(progress, baseline, key):
    now = (progress or {}).get(key)
    if now is None:
        return None, None
    before = (baseline or {}).get(key)
    return now, (now - before) if before is not None else None


def describe_progress(progress, baseline=None):
    """Evidence of why a subscription is not in sync, as a list of short sentences."""
    if progress is None or progress.get("enabled") is None:
        return ["the subscription no longer exists"]
    evidence = []
    if not progress["enabled"]:
        evidence.append("the subscription is disabled (by disable_on_error after an error, or by a user)")
    if progress["pending"]:
        listed = ", ".join(
            "{} ({})".format(QualifiedName(t["schema"], t["table"]), state_name(t["state"]))
            for t in progress["pending_tables"] or []
        )
        more = progress["pending"] - len(progress["pending_tables"] or [])
        if more > 0:
            listed += f" and {more} more"
        evidence.append(f"{progress['pending']} of {progress['total']} tables not ready: {listed}")
    if not progress["apply_running"]:
        evidence.append("the apply worker is not running")
    for key, label in (("apply_error_count", "apply errors"), ("sync_error_count", "table sync errors")):
        now, delta = _count_delta(progress, baseline, key)
        if now:
            text = f"{label}: {now} in pg_stat_subscription_stats.{key}"
            if delta is not None:
                text += f" ({delta} while waiting)"
            evidence.append(text)
    return evidence


class SyncResult:
    """Outcome of :func:`wait_for_sync`: ``synced``, ``seconds``, ``polls``, last ``progress``, ``reason``."""

    def __init__(self, synced, seconds, polls, progress, baseline, reason=None):
        self.synced = synced
        self.seconds = seconds
        self.polls = polls
        self.progress = progress
        self.baseline = baseline
        self.reason = reason

    def evidence(self):
        return describe_progress(self.progress, self.baseline)

    def as_dict(self):
        progress = self.progress or {}
        return {
            "synced": self.synced,
            "seconds": round(self.seconds, 3),
            "polls": self.polls,
            "tables": progress.get("total"),
            "tables_not_ready": progress.get("pending"),
        }


def wait_for_sync(run_query, subid, major, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll until the subscription ``subid`` is in sync, or until ``timeout`` seconds have passed.

    Returns a :class:`SyncResult`. Stops early (``synced`` false) when the subscription is
    disabled or dropped, since its tables would never become ready.
    """
    statement = progress_query(major)
    start = clock()
    polls = 0
    baseline = None
    while True:
        rows = run_query(statement, [subid])
        polls += 1
        progress = rows[0] if rows else None
        if baseline is None:
            baseline = dict(progress) if progress else {}
        elapsed = clock() - start
        if is_synced(progress):
            return SyncResult(True, elapsed, polls, progress, baseline)
        if progress is None:
            return SyncResult(False, elapsed, polls, progress, baseline, "the subscription no longer exists")
        if not progress["enabled"]:
            return SyncResult(False, elapsed, polls, progress, baseline, "the subscription is disabled")
        if elapsed >= timeout:
            return SyncResult(False, elapsed, polls, progress, baseline, f"timed out after {timeout} s")
        sleep(min(poll_interval(elapsed), max(0.0, timeout - elapsed)))
