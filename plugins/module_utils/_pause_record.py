# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What a pause means to the status readers: the pause record kept as a subscription's comment, the findings
of paused subscriptions (:func:`check_paused`) and the sampler's pause state (:func:`pause_state`).

The part of ``_pause.py`` that ``replication_info``, ``_publisher_comparison`` and the sampler read, in a file
of its own so that they do not import (and Ansible does not ship with ``replication_info``) the pause and
WAL budget modules' machinery: the subscription planner, the workload markers, the InfluxDB client.
``_pause.py`` re-exports every name.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import finding, format_bytes
from ansible_collections.inventium.logical_replication.plugins.module_utils._comment_record import (
    PREVIOUS_COMMENT,
    dump_json_comment,
    iso_utc,
    kept_comment,
    load_json_comment,
    parse_time,
    utc_now,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._thresholds import PAUSE_OVERDUE_MINUTES
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import dict_row
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident

RECORD_KEYS = ("paused_by", "reason", "since", "until")
"""The keys of a pause record, in the order they are written."""

RESYNC_HINT = (
    "Re-synchronise the subscriber with a fresh copy: drop the subscription "
    "(inventium.logical_replication.subscription state=absent copes with a missing slot; "
    "playbooks/resume.yml -e subscriber=<node> -e resume_resync=true does it) and create it again with the "
    "subscriber role (site.yml / make lab), which empties the subscribed tables (subscriber_truncate_before_copy) "
    "and copies them afresh."
)


# ----------------------------------------------------------------------------------------------
# Small formats
# ----------------------------------------------------------------------------------------------


def format_duration(seconds):
    """``90`` -> ``'1 min 30 s'``; ``None`` -> ``'unlimited'``."""
    if seconds is None:
        return "unlimited"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def lsn_to_int(lsn):
    """``'0/16B3748'`` -> its byte position; ``None`` stays ``None``."""
    if lsn in (None, ""):
        return None
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) + int(low, 16)


# ----------------------------------------------------------------------------------------------
# The pause record
# ----------------------------------------------------------------------------------------------


def make_pause_record(paused_by, reason, since, until=None, previous_comment=None):
    """The record a pause writes: ``since``/``until`` as ISO UTC text (``until`` optional).

    ``previous_comment``: a comment the subscription had before (not a record), restored on resume.
    """
    record = {"paused_by": str(paused_by), "reason": str(reason), "since": iso_utc(parse_time(since))}
    if until is not None:
        record["until"] = iso_utc(parse_time(until))
    if previous_comment:
        record[PREVIOUS_COMMENT] = str(previous_comment)
    return record


def format_pause_record(record):
    """The comment text of a record: compact JSON, keys in :data:`RECORD_KEYS` order."""
    return dump_json_comment(record, RECORD_KEYS)


def parse_pause_record(comment):
    """The pause record in a subscription's comment, or ``None`` when the comment is not one.

    A record is a JSON object with at least ``paused_by``, ``reason`` and ``since``; ``since``
    and ``until`` must be times. Anything else (no comment, a person's own comment, broken JSON)
    is not a record: ``None``. Returned with ``since``/``until`` normalised to ISO UTC text.
    """
    data = load_json_comment(comment)
    if data is None or not all(isinstance(data.get(k), str) for k in ("paused_by", "reason", "since")):
        return None
    try:
        since = parse_time(data["since"])
        until = parse_time(data.get("until")) if data.get("until") is not None else None
    except (TypeError, ValueError):
        return None
    record = {"paused_by": data["paused_by"], "reason": data["reason"], "since": iso_utc(since)}
    if until is not None:
        record["until"] = iso_utc(until)
    if kept_comment(data):
        record[PREVIOUS_COMMENT] = kept_comment(data)
    return record


def pause_until(since, until=None, minutes=None):
    """The planned end of a pause: ``until`` when given, else ``since`` + ``minutes``, else ``None``."""
    if until not in (None, ""):
        return parse_time(until)
    if minutes is not None:
        return parse_time(since) + datetime.timedelta(minutes=float(minutes))
    return None


# ----------------------------------------------------------------------------------------------
# The publisher's WAL rate
# ----------------------------------------------------------------------------------------------


def _one(conn, query, params=None):
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def current_lsn(conn):
    return _one(conn, "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn")["lsn"]


def measure_wal_rate(conn, seconds, sleep=time.sleep, clock=time.monotonic):
    """Sample ``pg_current_wal_lsn()`` twice, ``seconds`` apart.

    Returns ``{start_lsn, end_lsn, seconds, bytes, bytes_per_second}``.
    """
    start = _one(conn, "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn")["lsn"]
    began = clock()
    if seconds > 0:
        sleep(seconds)
    row = _one(
        conn,
        "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn,"
        " pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), %s::pg_lsn)::bigint AS bytes",
        [start],
    )
    elapsed = max(clock() - began, 1e-6)
    written = max(0, int(row["bytes"]))
    return {
        "start_lsn": start,
        "end_lsn": row["lsn"],
        "seconds": round(elapsed, 3),
        "bytes": written,
        "bytes_per_second": written / elapsed if seconds > 0 else 0.0,
    }


# ----------------------------------------------------------------------------------------------
# Findings for replication_info / make status
# ----------------------------------------------------------------------------------------------


def _slot_of(slot_facts, name):
    if not slot_facts or not name:
        return None
    if isinstance(slot_facts, dict):
        return slot_facts.get(name)
    for slot in slot_facts:
        if slot.get("name") == name:
            return slot
    return None


def paused_subscriptions(subscriptions):
    """``[(subscription, record)]`` of the disabled subscriptions whose comment is a pause record.

    Each subscription is a dict with ``name``, ``enabled`` and ``comment`` (``_subscriptions``'
    state) or an already parsed ``pause``.
    """
    out = []
    for sub in subscriptions or ():
        record = sub.get("pause") or parse_pause_record(sub.get("comment"))
        if record and not sub.get("enabled"):
            out.append((sub, record))
    return out


def pause_state(sub, now=None):
    """``(paused, overdue_seconds)`` of one subscription state, for the sampler's ``subscription`` point.

    ``paused``: disabled with a pause record; ``overdue_seconds``: how long past the plan's end (``until``)
    it is, ``0.0`` within the plan, when not paused or when paused without an end (always a number, so the
    alert's query has data for every subscription). The Grafana rule
    "pause overdue" (``_alert_rules``) compares it with ``_thresholds.PAUSE_OVERDUE_MINUTES``, as
    :func:`check_paused` does.
    """
    found = paused_subscriptions([sub])
    if not found:
        return False, 0.0
    until = parse_time(found[0][1].get("until"))
    if until is None:
        return True, 0.0
    return True, max(0.0, ((now or utc_now()) - until).total_seconds())


def check_paused(subscriptions, now=None, slot_facts=None, wal_rate=None):
    """Findings for paused subscriptions: info ``subscription_paused`` per pause, warning ``pause_overdue`` when late.

    With ``slot_facts``, error ``paused_slot_lost`` when the pause's slot is gone or lost (resume would fail).

    ``subscriptions``: the subscriber's subscription states (need ``name``, ``enabled``, ``slot_name``,
    ``comment``); ``now``: an aware datetime (default: now); ``slot_facts``: the publisher's slots
    (a list as ``collect_slots`` returns it, or ``{slot name: slot}``) for retained WAL and the
    headroom (``safe_wal_size``); ``wal_rate``: the publisher's WAL bytes/s for the projected time
    to the limit.
    """
    now = now or utc_now()
    found = []
    for sub, record in paused_subscriptions(subscriptions):
        name = quote_ident(sub["name"])
        since = parse_time(record["since"])
        until = parse_time(record.get("until"))
        parts = [f"{name} paused since {record['since']} ({format_duration((now - since).total_seconds())} ago)"]
        parts.append(f"by {record['paused_by']}: {record['reason']}")
        if until is not None:
            parts.append(f"planned until {record['until']}")
        slot = _slot_of(slot_facts, sub.get("slot_name"))
        broken = None
        if slot_facts is not None and sub.get("slot_name"):
            if slot is None:
                broken = f"its slot {sub['slot_name']} is GONE on the publisher"
                parts.append(broken)
            else:
                parts.append(f"retains {format_bytes(slot.get('retained_wal_bytes'))} of WAL")
                if slot.get("wal_status") == "lost":
                    broken = f"its slot {sub['slot_name']} is LOST (wal_status lost)"
                    parts.append(broken)
                elif slot.get("safe_wal_size") is not None:
                    left = slot["safe_wal_size"]
                    text = f"{format_bytes(left)} to max_slot_wal_keep_size"
                    if wal_rate:
                        text += f" (about {format_duration(left / wal_rate)} at {format_bytes(wal_rate)}/s)"
                    parts.append(text)
                else:
                    parts.append("no max_slot_wal_keep_size: only the disk limits it")
        found.append(
            finding(
                "info",
                "subscription_paused",
                "; ".join(parts),
                "Resume with playbooks/resume.yml -e subscriber=<node> (it waits until caught up); the publisher "
                "keeps the slot's WAL meanwhile.",
            )
        )
        if broken:
            # The publisher's own checks name a lost slot (slot_wal_lost); this says which pause cannot resume.
            found.append(
                finding(
                    "error",
                    "paused_slot_lost",
                    f"{name} cannot resume: {broken}; the changes made while it was paused cannot be sent any more",
                    RESYNC_HINT,
                )
            )
        if until is not None and now > until + datetime.timedelta(minutes=PAUSE_OVERDUE_MINUTES):
            found.append(
                finding(
                    "warning",
                    "pause_overdue",
                    f"{name} was to be resumed by {record['until']}, {format_duration((now - until).total_seconds())}"
                    f" ago (paused by {record['paused_by']}: {record['reason']}) - the risk of forgetting",
                    "Resume it (playbooks/resume.yml -e subscriber=<node>) or pause it again with a new "
                    "pause_max_minutes; the publisher retains WAL for it until then.",
                )
            )
    return found
