# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pausing a subscription safely: the publisher's WAL budget, the pause record, resume and catch-up.

* The WAL budget (module ``wal_budget``, run on the publisher's host): how long the publisher can
  hold a slot that nobody consumes - ``min(disk free under pg_wal - reserve,
  max_slot_wal_keep_size - retained) / WAL rate`` - with every input and the arithmetic as text.
* The pause record: a small JSON object ``{paused_by, reason, since, until}`` kept as the
  subscription's comment (``COMMENT ON SUBSCRIPTION``; although ``pg_subscription`` is a shared
  catalog, the comment is in the subscription database's ``pg_description``, not
  ``pg_shdescription``). :func:`parse_pause_record` reads it back; the JSON-in-a-comment helpers it shares
  with ``write_fence`` are in ``_comment_record``.
* Pause and resume (module ``subscription_pause``, run on the subscriber): DISABLE + record;
  ENABLE + clear the record, then wait until the subscriber confirmed the publisher's WAL position
  taken at resume time, failing at once (never hanging) when the slot is gone or lost.
* :func:`check_paused`: the ``subscription_paused`` / ``pause_overdue`` findings for
  ``replication_info`` and ``make status``.

The record's formats, :func:`check_paused`, :func:`pause_state` and :func:`measure_wal_rate` live in
``_pause_record.py`` (what the status readers need, without this file's imports) and are re-exported here.
"""

from __future__ import annotations

import getpass
import math
import os
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (
    ThresholdError,
    format_bytes,
    parse_bytes,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._comment_record import (
    PREVIOUS_COMMENT,
    UTC,
    comment_to_keep,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause_record import (  # see __all__
    RECORD_KEYS,
    RESYNC_HINT,
    check_paused,
    current_lsn,
    format_duration,
    format_pause_record,
    iso_utc,
    lsn_to_int,
    make_pause_record,
    measure_wal_rate,
    parse_pause_record,
    parse_time,
    pause_state,
    pause_until,
    paused_subscriptions,
    utc_now,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import slot_query
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscription_plan import (
    OptionError,
    publisher_params,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    apply_position_query,
    subscription_with_comment_query,
    subscriptions_with_comment_query,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    IDLE_SLOT_TIMEOUT_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import Markers
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    APPLICATION_NAME,
    PgConnectionError,
    connect_publisher,
    dict_row,
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    parse_identifier,
    quote_ident,
)

__all__ = [
    "DEFAULT_DISK_RESERVE",
    "GUARD_IDLE_FACTOR",
    "MARKER_WORKLOAD",
    "RECORD_KEYS",
    "RESYNC_HINT",
    "SETTINGS_QUERY",
    "UTC",
    "PauseModule",
    "check_paused",
    "compute_budget",
    "current_lsn",
    "format_duration",
    "format_pause_record",
    "guard_settings",
    "iso_utc",
    "lsn_to_int",
    "make_pause_record",
    "measure_wal_rate",
    "parse_pause_record",
    "parse_time",
    "pause_state",
    "pause_until",
    "paused_subscriptions",
    "pg_wal_free",
    "read_slot",
    "run_wal_budget",
    "utc_now",
]

DEFAULT_DISK_RESERVE = "1GB"
"""Free space under ``pg_wal`` the budget never counts on (checkpoints, other slots, wal_keep_size)."""

GUARD_IDLE_FACTOR = 1.5
"""The guard's ``idle_replication_slot_timeout``: this many times the planned pause."""

MARKER_WORKLOAD = "pause"
"""The ``workload`` tag of the pause's InfluxDB markers (measurement ``workload``: dashboards shade it)."""


# ----------------------------------------------------------------------------------------------
# The WAL budget: pure arithmetic
# ----------------------------------------------------------------------------------------------


def compute_budget(
    rate,
    retained=None,
    keep_size=None,
    safe_wal_size=None,
    disk_free=None,
    reserve=0,
    planned_minutes=None,
    disk_reason=None,
):
    """How long the publisher can hold a slot nobody consumes, with the arithmetic as text lines.

    ``rate``: WAL bytes/s; ``retained``: bytes the slot holds now (``None``: no slot); ``keep_size``:
    ``max_slot_wal_keep_size`` in bytes (``None``: unlimited, -1); ``safe_wal_size``: PostgreSQL's own
    headroom of the slot (preferred over ``keep_size - retained`` when known); ``disk_free``: free
    bytes under ``pg_wal`` (``None``: unknown, ``disk_reason`` says why); ``reserve``: bytes never
    counted on; ``planned_minutes``: the planned pause.

    Returns ``hold_seconds`` (``None`` = unlimited or unknown, see ``hold``), ``hold`` (``limited``,
    ``unlimited`` or ``unknown``), ``limited_by`` (``disk``, ``max_slot_wal_keep_size`` or ``None``),
    ``headrooms`` (bytes per bound), ``fits`` (``None`` without ``planned_minutes``) and ``lines``.
    """
    lines = [f"WAL rate: {format_bytes(rate)}/s ({rate:.1f} bytes/s)"]
    headrooms = {}
    if retained is None:
        lines.append("slot: none given or not found - retained WAL counted as 0")
        retained_bytes = 0
    else:
        retained_bytes = max(0, int(retained))
        lines.append(f"slot retains now: {format_bytes(retained_bytes)} ({retained_bytes} bytes)")
    if keep_size is None:
        lines.append("max_slot_wal_keep_size: -1 (unlimited) - no slot limit; only the disk bounds the slot")
    else:
        if safe_wal_size is not None:
            headroom = max(0, int(safe_wal_size))
            lines.append(
                f"max_slot_wal_keep_size: {format_bytes(keep_size)}; headroom = safe_wal_size "
                f"(PostgreSQL's max_slot_wal_keep_size - retained, to the next segment) = {format_bytes(headroom)} "
                f"({headroom} bytes)"
            )
        else:
            headroom = max(0, int(keep_size) - retained_bytes)
            lines.append(
                f"max_slot_wal_keep_size: {format_bytes(keep_size)}; headroom = {int(keep_size)} - {retained_bytes}"
                f" = {headroom} bytes ({format_bytes(headroom)})"
            )
        headrooms["max_slot_wal_keep_size"] = headroom
    if disk_free is None:
        lines.append(f"disk free under pg_wal: unknown ({disk_reason or 'not measured'})")
    else:
        headroom = max(0, int(disk_free) - int(reserve))
        lines.append(
            f"disk free under pg_wal: {format_bytes(disk_free)} - reserve {format_bytes(reserve)} = "
            f"{format_bytes(headroom)} ({headroom} bytes)"
        )
        headrooms["disk"] = headroom
    limited_by = min(headrooms, key=lambda k: headrooms[k]) if headrooms else None
    hold_seconds = None
    if not headrooms:
        hold = "unknown"
        lines.append("hold time: UNKNOWN - neither max_slot_wal_keep_size nor the free disk is known")
    elif rate <= 0:
        hold = "unlimited"
        lines.append(
            "hold time: unlimited by rate - no WAL was written while sampling (headroom "
            f"{format_bytes(headrooms[limited_by])} by {limited_by}); a later burst still uses it up"
        )
    else:
        hold = "limited"
        hold_seconds = headrooms[limited_by] / rate
        lines.append(
            f"hold time: min({', '.join(f'{k} {v}' for k, v in sorted(headrooms.items()))}) / {rate:.1f} bytes/s"
            f" = {headrooms[limited_by]} / {rate:.1f} = {hold_seconds:.0f} s ({format_duration(hold_seconds)},"
            f" limited by {limited_by})"
        )
    fits = None
    if planned_minutes is not None:
        planned_seconds = float(planned_minutes) * 60
        if hold == "unknown":
            fits = False
            lines.append(f"planned pause {format_duration(planned_seconds)}: REFUSED - the hold time is unknown")
        elif hold == "unlimited":
            fits = True
            lines.append(f"planned pause {format_duration(planned_seconds)}: fits (unlimited at the measured rate)")
        else:
            fits = hold_seconds >= planned_seconds
            verdict = "fits" if fits else "DOES NOT FIT"
            lines.append(
                f"planned pause {format_duration(planned_seconds)} vs hold time {format_duration(hold_seconds)}:"
                f" {verdict}"
            )
    return {
        "hold_seconds": hold_seconds,
        "hold": hold,
        "limited_by": limited_by,
        "headrooms": headrooms,
        "fits": fits,
        "lines": lines,
    }


def guard_settings(major, retained, disk_free, reserve, planned_minutes):
    """The settings of the WAL guard for this publisher: ``({name: value}, [lines])``.

    ``max_slot_wal_keep_size``: what the disk can take beyond the reserve plus what the slot already
    retains (rounded down to MB), so that the slot is invalidated before the disk fills; ``None``
    when the free disk is unknown. On PostgreSQL 18+ also ``idle_replication_slot_timeout``:
    :data:`GUARD_IDLE_FACTOR` times the planned pause, so a forgotten pause loses its slot rather
    than the disk (both are cluster-wide: every slot gets them).
    """
    settings = {}
    lines = []
    if disk_free is not None:
        size_mb = max(1, (max(0, int(disk_free) - int(reserve)) + max(0, int(retained or 0))) // (1024 * 1024))
        settings["max_slot_wal_keep_size"] = f"{size_mb}MB"
        lines.append(
            f"guard max_slot_wal_keep_size = disk free - reserve + retained = {size_mb}MB: the slot is invalidated "
            "(and must be re-synchronised) before pg_wal fills the disk"
        )
    else:
        lines.append("guard max_slot_wal_keep_size: cannot be computed without the free disk; give a size yourself")
    if major >= IDLE_SLOT_TIMEOUT_MAJOR and planned_minutes:
        minutes = max(1, math.ceil(float(planned_minutes) * GUARD_IDLE_FACTOR))
        settings["idle_replication_slot_timeout"] = f"{minutes}min"
        lines.append(
            f"guard idle_replication_slot_timeout = {GUARD_IDLE_FACTOR} x planned pause = {minutes}min (PostgreSQL "
            f"{IDLE_SLOT_TIMEOUT_MAJOR}+; checked at checkpoints; applies to every inactive slot)"
        )
    return settings, lines


# ----------------------------------------------------------------------------------------------
# The WAL budget: reading the publisher
# ----------------------------------------------------------------------------------------------


SETTINGS_QUERY = (
    "SELECT NULLIF(pg_catalog.pg_size_bytes(current_setting('max_slot_wal_keep_size')), -1)"
    " AS max_slot_wal_keep_size, current_setting('data_directory', true) AS data_directory,"
    " pg_catalog.pg_backend_pid() AS backend_pid"
)
"""``max_slot_wal_keep_size`` in bytes (NULL = -1), ``data_directory`` (NULL without the privilege), our pid."""


def _ppid(pid):
    with open(f"/proc/{int(pid)}/stat", encoding="ascii") as stat:
        # The command name (2nd field) may hold spaces: the fields after its ')' are fixed.
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def pg_wal_free(data_directory, backend_pid=None):
    """Free bytes (for unprivileged users) on the file system of ``<data_directory>/pg_wal``, symlinks resolved.

    Returns ``{path, free_bytes, reason}``: ``free_bytes`` ``None`` with the reason when the directory
    cannot be read here, or when this is not the server's host (the postmaster of
    ``postmaster.pid`` is not the parent of our backend ``backend_pid``: a same path elsewhere would
    be another disk).
    """
    if not data_directory:
        return {
            "path": None,
            "free_bytes": None,
            "reason": "data_directory is not readable (needs pg_read_all_settings)",
        }
    wal = os.path.join(data_directory, "pg_wal")
    try:
        path = os.path.realpath(wal)
        stats = os.statvfs(path)
    except OSError as exc:
        return {
            "path": wal,
            "free_bytes": None,
            "reason": f"cannot read {wal} here ({exc.strerror}): run the module on the publisher's host, as a user "
            "that may read the data directory (become)",
        }
    if backend_pid is not None:
        try:
            with open(os.path.join(data_directory, "postmaster.pid"), encoding="utf-8") as pidfile:
                postmaster = int(pidfile.readline().strip())
            same = _ppid(backend_pid) == postmaster
        except (OSError, ValueError, IndexError):
            same = False
        if not same:
            return {
                "path": path,
                "free_bytes": None,
                "reason": f"{wal} exists here but the server is not running on this host (its backend is not a child "
                "of the postmaster in postmaster.pid): run the module on the publisher's host",
            }
    return {"path": path, "free_bytes": stats.f_bavail * stats.f_frsize, "reason": None}


def read_slot(conn, major, name):
    """The slot as ``replication_slot`` reports it (``_slots``), or ``None``."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(slot_query(major), [name])
        return cur.fetchone()


def run_wal_budget(m):
    """The ``wal_budget`` module: read-only, never changed."""
    p = m.params
    try:
        reserve = parse_bytes(p["disk_reserve"])
    except ThresholdError as exc:
        m.fail(f"disk_reserve: {exc}")
    if p["sample_seconds"] < 0:
        m.fail("sample_seconds: must be 0 or more")
    if p["planned_minutes"] is not None and p["planned_minutes"] <= 0:
        m.fail("planned_minutes: must be more than 0")
    conn = m.connect()
    m.require_versions("wal_budget module", [])
    if m.query_one("SELECT pg_catalog.pg_is_in_recovery() AS r")["r"]:
        m.fail("the server is a standby: run wal_budget against the publisher (the primary)")
    settings = m.query_one(SETTINGS_QUERY)
    slot = None
    if p["slot_name"]:
        slot = m.query_one(slot_query(m.server_major), [p["slot_name"]])
        if slot is None:
            m.warn(f"replication slot {p['slot_name']!r} does not exist on this server: retained WAL counted as 0")
    try:
        sample = measure_wal_rate(conn, p["sample_seconds"])
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, (), "sampling pg_current_wal_lsn() failed"), sqlstate=exc.sqlstate)
    disk = pg_wal_free(settings["data_directory"], settings["backend_pid"])
    retained = slot["retained_wal_bytes"] if slot else None
    budget = compute_budget(
        sample["bytes_per_second"],
        retained=retained,
        keep_size=settings["max_slot_wal_keep_size"],
        safe_wal_size=slot.get("safe_wal_size") if slot else None,
        disk_free=disk["free_bytes"],
        reserve=reserve,
        planned_minutes=p["planned_minutes"],
        disk_reason=disk["reason"],
    )
    lines = [
        f"sampled pg_current_wal_lsn {sample['start_lsn']} -> {sample['end_lsn']}: {sample['bytes']} bytes in "
        f"{sample['seconds']} s",
    ]
    if slot is not None:
        lines.append(
            f"slot {slot['name']}: restart_lsn {slot['restart_lsn']}, wal_status {slot['wal_status']}, "
            f"safe_wal_size {slot['safe_wal_size']}, active {slot['active']}"
        )
        if slot["wal_status"] == "lost":
            lines.append("slot is LOST: its WAL is gone, the subscription must be re-synchronised")
    lines += budget["lines"]
    guard, guard_lines = guard_settings(m.server_major, retained, disk["free_bytes"], reserve, p["planned_minutes"])
    m.exit(
        changed=False,
        wal_rate_bytes_per_second=round(sample["bytes_per_second"], 1),
        sample=sample,
        max_slot_wal_keep_size=settings["max_slot_wal_keep_size"],
        data_directory=settings["data_directory"],
        disk_free=disk["free_bytes"],
        disk={**disk, "reserve_bytes": reserve},
        slot=dict(slot) if slot else None,
        retained_wal_bytes=retained,
        hold_seconds=None if budget["hold_seconds"] is None else round(budget["hold_seconds"], 1),
        hold=budget["hold"],
        limited_by=budget["limited_by"],
        headrooms=budget["headrooms"],
        planned_minutes=p["planned_minutes"],
        fits=budget["fits"],
        guard_settings=guard,
        guard_lines=guard_lines,
        server_major=m.server_major,
        lines=lines,
    )


# ----------------------------------------------------------------------------------------------
# subscription_pause
# ----------------------------------------------------------------------------------------------


class PauseModule:
    """``subscription_pause``: DISABLE + record, or ENABLE + clear + wait until caught up."""

    def __init__(self, m):
        self.m = m
        self.p = m.params
        self.progress = []
        self.pub = None

    # -- reading ----------------------------------------------------------------------------

    def subscription(self):
        m = self.m
        if self.p["name"]:
            try:
                name = parse_identifier(self.p["name"])
            except IdentifierError as exc:
                m.fail(f"name: invalid name {self.p['name']!r}: {exc}")
            row = m.query_one(subscription_with_comment_query(m.server_major), [name])
            if row is None:
                m.fail(f"subscription {quote_ident(name)} does not exist in database {self.database()}")
            return row
        rows = m.query(subscriptions_with_comment_query(m.server_major))
        if len(rows) != 1:
            names = ", ".join(quote_ident(r["name"]) for r in rows) or "none"
            m.fail(f"name is required: database {self.database()} has {len(rows)} subscriptions ({names}), not one")
        return rows[0]

    def database(self):
        return self.m.query_one("SELECT current_database()::text AS d")["d"]

    @staticmethod
    def shown(row):
        record = parse_pause_record(row["comment"])
        return {
            "name": row["name"],
            "enabled": row["enabled"],
            "slot_name": row["slot_name"],
            "paused": bool(record) and not row["enabled"],
            "pause": record,
        }

    # -- the publisher ----------------------------------------------------------------------

    def connect_publisher(self, row):
        """A connection to the publisher: the ``publisher`` option, else the subscription's own connection."""
        m = self.m
        if self.p["publisher"]:
            try:
                params = publisher_params(self.p["publisher"])
            except OptionError as exc:
                m.fail(str(exc))
            source = "the publisher option"
            kwargs = params
        else:
            if row.get("conninfo") is None:
                m.fail(
                    "the publisher option is needed: the subscription's connection (subconninfo) is not readable "
                    "by this role"
                )
            m.add_secret(row["conninfo"])
            source = "the subscription's own connection (give the publisher option if this host cannot use it)"
            kwargs = {"conninfo": row["conninfo"]}
        params = dict(kwargs, application_name=APPLICATION_NAME)
        params.setdefault("connect_timeout", str(self.p["connect_timeout"]))
        m.add_secret(params.get("password"))
        try:
            conn = connect_publisher(params)
        except PgConnectionError as exc:
            m.fail(f"{exc} (connection: {source})")
        self.pub = conn
        self.pub_major = conn.info.server_version // 10000
        return conn

    def slot_problem(self, slot_name, slot):
        """Why the subscription cannot resume from this slot, or ``None``."""
        if slot is None:
            return (
                f"its replication slot {slot_name!r} does not exist on the publisher any more (dropped while paused), "
                "so the changes made in the meantime can no longer be sent"
            )
        if slot.get("wal_status") == "lost":
            reason = slot.get("invalidation_reason")
            why = f" ({reason})" if reason else ""
            return (
                f"its replication slot {slot_name!r} was invalidated{why} - wal_status lost: the publisher removed "
                "WAL the slot needed (max_slot_wal_keep_size or idle_replication_slot_timeout), so the changes "
                "made in the meantime can no longer be sent"
            )
        return None

    def close_publisher(self):
        if self.pub is not None:
            try:
                self.pub.close()
            except psycopg.Error:
                pass
            self.pub = None

    def fail(self, msg, **result):
        self.close_publisher()
        self.m.fail(msg, progress=self.progress, **result)

    # -- statements -------------------------------------------------------------------------

    def alter(self, name, text):
        return sql.SQL("ALTER SUBSCRIPTION {} " + text).format(sql.Identifier(name))

    def comment(self, name, text):
        return sql.SQL("COMMENT ON SUBSCRIPTION {} IS {}").format(
            sql.Identifier(name), sql.Literal(text) if text is not None else sql.SQL("NULL")
        )

    # -- pause ------------------------------------------------------------------------------

    def pause(self):
        m, p = self.m, self.p
        if not p["reason"]:
            m.fail("reason is required with state=paused (it is what the next person reads)")
        row = self.subscription()
        name = row["name"]
        before = self.shown(row)
        record = parse_pause_record(row["comment"])
        if record and not row["enabled"]:
            m.exit(
                changed=False,
                diff=(before, before),
                subscription=before,
                pause=record,
                marker={"written": False, "reason": "already paused: no marker"},
                msg=f"subscription {quote_ident(name)} is already paused since {record['since']}",
            )
        now = utc_now()
        try:
            until = pause_until(now, p["until"], p["pause_minutes"])
        except ValueError as exc:
            m.fail(f"until: not an ISO 8601 time: {exc}")
        if until is not None and until <= now:
            m.fail(f"until: {iso_utc(until)} is not in the future")
        previous = comment_to_keep(row["comment"], record)
        new = make_pause_record(p["paused_by"] or getpass.getuser(), p["reason"], now, until, previous)
        if row["enabled"]:
            m.execute(self.alter(name, "DISABLE"))
        m.execute(self.comment(name, format_pause_record(new)))
        after = {**before, "enabled": False, "paused": True, "pause": new}
        marker = {"written": False, "reason": "check mode"}
        if not m.check_mode:
            m.commit()
            marker = self.marker(
                name,
                "start",
                reason=p["reason"],
                paused_by=new["paused_by"],
                planned_minutes=(until - now).total_seconds() / 60 if until else None,
            )
        m.exit(changed=True, diff=(before, after), subscription=after, pause=new, marker=marker)

    # -- resume -----------------------------------------------------------------------------

    def resume(self):
        m, p = self.m, self.p
        row = self.subscription()
        name = row["name"]
        before = self.shown(row)
        record = parse_pause_record(row["comment"])
        if row["slot_name"] is None:
            m.fail(f"subscription {quote_ident(name)} has no slot (slot_name = NONE): nothing to resume from")
        needs = not row["enabled"] or record is not None
        pub = self.connect_publisher(row)
        try:
            slot = read_slot(pub, self.pub_major, row["slot_name"])
            target = current_lsn(pub)
        except psycopg.Error as exc:
            self.fail(format_db_error(exc, (), "reading the slot and the WAL position on the publisher failed"))
        problem = self.slot_problem(row["slot_name"], slot)
        if problem:
            self.fail(
                f"subscription {quote_ident(name)} cannot resume: {problem}. It was left as it is "
                f"({'enabled' if row['enabled'] else 'disabled'}). {RESYNC_HINT}",
                slot=dict(slot) if slot else None,
                resync_needed=True,
                subscription={"name": name, "slot_name": row["slot_name"], "enabled": row["enabled"]},
            )
        if slot.get("wal_status") == "unreserved":
            m.warn(
                f"the slot {row['slot_name']!r} is past max_slot_wal_keep_size (wal_status unreserved): it is lost at "
                "the next checkpoint unless the subscriber catches up first"
            )
        start = slot.get("confirmed_flush_lsn")
        if not row["enabled"]:
            m.execute(self.alter(name, "ENABLE"))
        if record is not None:
            m.execute(self.comment(name, record.get(PREVIOUS_COMMENT)))
        after = {**before, "enabled": True, "paused": False, "pause": None}
        if m.check_mode:
            self.close_publisher()
            m.exit(changed=needs, diff=(before, after), subscription=after, slot=dict(slot), target_lsn=target)
        m.commit()
        result = {"subscription": after, "slot": dict(slot), "target_lsn": target}
        if p["wait"]:
            result["catch_up"] = self.wait(row, start, target)
        if needs:
            caught = result.get("catch_up") or {}
            result["marker"] = self.marker(
                name,
                "stop",
                reason=(record or {}).get("reason"),
                seconds=caught.get("seconds"),
                bytes_per_second=caught.get("bytes_per_second"),
            )
        self.close_publisher()
        m.exit(changed=needs, diff=(before, after), progress=self.progress, **result)

    def wait(self, row, start_lsn, target):
        """Poll until the subscriber confirmed ``target``; fail on a lost slot or the timeout."""
        m, p = self.m, self.p
        began = time.monotonic()
        target_int = lsn_to_int(target)
        start_int = lsn_to_int(start_lsn) if start_lsn else None
        total = max(0, target_int - start_int) if start_int is not None else None
        last_report = None
        self.progress.append(
            f"0.0 s: enabled; waiting until the subscriber confirms {target} (publisher's position at resume"
            + (f", {total} bytes behind)" if total is not None else ")")
        )
        query = apply_position_query(m.server_major)
        while True:
            elapsed = time.monotonic() - began
            position = m.query_one(query, [target, row["oid"]])
            done = bool(position and position["caught_up"])
            if done:
                seconds = round(elapsed, 3)
                rate = (total / elapsed) if total is not None and elapsed > 0 else None
                self.progress.append(
                    f"{elapsed:.1f} s: caught up - latest_end_lsn {position['latest_end_lsn']} >= {target}"
                    + (f", {total} bytes at {rate:.0f} bytes/s" if rate is not None else "")
                )
                return {
                    "caught_up": True,
                    "seconds": seconds,
                    "bytes": total,
                    "bytes_per_second": None if rate is None else round(rate, 1),
                    "start_lsn": start_lsn,
                    "target_lsn": target,
                    "reached_lsn": position["latest_end_lsn"],
                }
            try:
                slot = read_slot(self.pub, self.pub_major, row["slot_name"])
            except psycopg.Error as exc:
                self.fail(
                    format_db_error(exc, (), "reading the slot on the publisher while waiting failed")
                    + "; the subscription stays enabled",
                    changed=True,
                )
            problem = self.slot_problem(row["slot_name"], slot)
            if problem:
                self.fail(
                    f"subscription {quote_ident(row['name'])} was enabled but cannot catch up: {problem}. "
                    + RESYNC_HINT,
                    changed=True,
                    resync_needed=True,
                    subscription={"name": row["name"], "slot_name": row["slot_name"], "enabled": True},
                )
            if last_report is None or elapsed - last_report >= p["progress_interval"]:
                last_report = elapsed
                received = position["received_lsn"] if position else None
                confirmed = position["latest_end_lsn"] if position else None
                left = target_int - lsn_to_int(confirmed) if confirmed else None
                worker = "apply worker running" if position and position["pid"] else "apply worker not running yet"
                self.progress.append(
                    f"{elapsed:.1f} s: received {received or '-'}, confirmed {confirmed or '-'}"
                    + (f", {max(0, left)} bytes to go" if left is not None else "")
                    + f" ({worker})"
                )
            if elapsed > p["timeout"]:
                self.fail(
                    f"subscription {quote_ident(row['name'])} was enabled but did not catch up with {target} within "
                    f"{p['timeout']:.0f} s (see progress; the subscriber's server log names an apply error). It stays "
                    "enabled and keeps catching up.",
                    changed=True,
                )
            time.sleep(p["poll_interval"])

    # -- markers ----------------------------------------------------------------------------

    def marker(self, name, phase, **fields):
        endpoints = self.p["influx_endpoints"]
        if not endpoints:
            return {"written": False, "reason": "no InfluxDB configured (influx_endpoints not given)"}
        if not os.path.exists(endpoints):
            return {"written": False, "reason": f"no InfluxDB configured ({endpoints} does not exist on this host)"}
        markers = Markers(self.m, endpoints, self.p["influx_node"] or name, MARKER_WORKLOAD)
        if not markers.enabled:
            return {"written": False, "reason": f"{endpoints} has no usable influxdb section"}
        written = markers.write(phase, subscription=name, **{k: v for k, v in fields.items() if v is not None})
        return {"written": written, "reason": None if written else "the write failed (see the warning)"}

    def run(self):
        self.m.connect()
        self.m.require_versions("subscription_pause module", [])
        if self.p["state"] == "paused":
            self.pause()
        else:
            self.resume()
