# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The subscriber's server log: what the apply and tablesync workers failed on, and the fix.

``pg_stat_subscription_stats`` only counts errors (lifetime totals). PostgreSQL writes the error
itself - relation, key, message, SQLSTATE and the remote transaction's finish LSN - to the server
log only. This file

* reads the tail of the server's current log file through SQL (:func:`read_server_log`):
  ``pg_current_logfile()`` (``jsonlog`` preferred, then ``csvlog``, then ``stderr``),
  ``pg_stat_file`` for its size and ``pg_read_binary_file`` for the last ``max_bytes``. Where it
  cannot be read (``logging_collector`` off, no privilege, the file rotated away) it says why in
  ``reason`` instead of raising;
* parses the three formats (:func:`parse_records`; stderr with any ``log_line_prefix`` that puts
  the severity after it, which PostgreSQL always does) into records;
* finds the logical replication workers' errors in them and explains each
  (:func:`worker_errors`, :func:`diagnose`, :func:`fix_for`), and counts them per subscription
  within a time window (:func:`summarize`).

Tested against real logs of PostgreSQL 15, 17 and 18 (``tests/unit/data/server_log``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import subscription_oids
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import psycopg
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import quote_ident

DEFAULT_MAX_BYTES = 1024 * 1024
"""How much of the end of the log file is read (1 MiB)."""

DEFAULT_ERROR_WINDOW = 15.0
"""Minutes: errors older than this no longer make a subscription unhealthy."""

MAX_DIAGNOSES = 5
"""Distinct errors returned per subscription, newest first."""

FORMATS = ("jsonlog", "csvlog", "stderr")

# ---------------------------------------------------------------------------------------------
# Reading the log through SQL
# ---------------------------------------------------------------------------------------------

SETTINGS_QUERY = (
    "SELECT current_setting('logging_collector') AS logging_collector,"
    " current_setting('log_destination') AS log_destination,"
    " current_setting('log_line_prefix') AS log_line_prefix,"
    " now() AS now,"
    " extract(epoch FROM (now() AT TIME ZONE current_setting('log_timezone'))"
    "   - (now() AT TIME ZONE 'UTC'))::float8 AS log_utc_offset,"
    " pg_catalog.has_function_privilege('pg_catalog.pg_current_logfile(text)', 'EXECUTE') AS may_locate,"
    " pg_catalog.has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE') AS may_stat,"
    " pg_catalog.has_function_privilege('pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)',"
    "   'EXECUTE') AS may_read,"
    " (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS superuser,"
    " pg_catalog.pg_has_role(current_user, 'pg_read_server_files', 'USAGE') AS read_server_files"
)
LOCATE_QUERY = "SELECT pg_catalog.pg_current_logfile(%s) AS path"
SIZE_QUERY = "SELECT size FROM pg_catalog.pg_stat_file(%s, true)"
READ_QUERY = "SELECT pg_catalog.pg_read_binary_file(%s, %s, %s, true) AS data"


def _unavailable(reason, **extra):
    result = {
        "available": False,
        "reason": reason,
        "source": f"source unavailable: {reason}",
        "path": None,
        "format": None,
        "text": "",
        "offset": 0,
        "size": None,
        "log_line_prefix": None,
        "now": None,
        "log_utc_offset": 0.0,
    }
    result.update(extra)
    return result


def read_server_log(conn, max_bytes=DEFAULT_MAX_BYTES):
    """The last ``max_bytes`` of the server's current log file, read through SQL.

    Returns a dict: ``available``, ``reason`` (why not, else ``None``), ``source`` (where from, or
    ``source unavailable: <why>``), ``path``, ``format`` (``jsonlog``/``csvlog``/``stderr``),
    ``text``, ``offset`` (where in the file the text starts), ``size``, ``log_line_prefix``,
    ``now`` (the server's clock) and ``log_utc_offset`` (seconds, of ``log_timezone``).
    Never raises for a log that cannot be read; the session stays usable (autocommit or not). A lost
    connection is raised (psycopg's error), as for any other read.
    """
    try:
        [settings] = fetch_rows(conn, SETTINGS_QUERY)
    except psycopg.Error as exc:
        if _lost(conn):
            raise
        _rollback(conn)
        return _unavailable(f"the log settings could not be read ({_short(exc)})")
    common = {
        "now": settings["now"],
        "log_utc_offset": settings["log_utc_offset"] or 0.0,
        "log_line_prefix": settings["log_line_prefix"],
    }
    if settings["logging_collector"] != "on":
        return _unavailable(
            "logging_collector is off, the server logs to its standard error (a container's log, the journal "
            "or a file outside PostgreSQL's reach), which SQL cannot read",
            **common,
        )
    if not (settings["may_locate"] and settings["may_stat"] and settings["may_read"]):
        return _unavailable(
            "this login may not read the server log (it needs to be a superuser, or to be granted EXECUTE on "
            "pg_current_logfile(text), pg_stat_file(text, boolean) and "
            "pg_read_binary_file(text, bigint, bigint, boolean) in this database)",
            **common,
        )
    destinations = [d.strip() for d in settings["log_destination"].split(",")]
    try:
        path, fmt = None, None
        for candidate in FORMATS:
            if candidate in destinations:
                [row] = fetch_rows(conn, LOCATE_QUERY, [candidate])
                if row["path"]:
                    path, fmt = row["path"], candidate
                    break
        if path is None:
            return _unavailable(
                f"no current log file (log_destination = {settings['log_destination']!r} writes none of "
                "stderr, csvlog, jsonlog to a file)",
                **common,
            )
        [row] = fetch_rows(conn, SIZE_QUERY, [path])
        size = row["size"]
        if size is None:
            return _unavailable(f"the log file {path} is gone (rotated or removed while reading)", **common)
        offset = max(0, size - int(max_bytes))
        [row] = fetch_rows(conn, READ_QUERY, [path, offset, size - offset])
    except psycopg.Error as exc:
        if _lost(conn):
            raise
        _rollback(conn)
        why = _short(exc)
        if getattr(exc, "sqlstate", None) == "42501":
            why += (
                "; a log_directory outside the data directory also needs superuser or membership in "
                "pg_read_server_files"
            )
        return _unavailable(f"the server log could not be read ({why})", **common)
    if row["data"] is None:
        return _unavailable(f"the log file {path} is gone (rotated or removed while reading)", **common)
    text = bytes(row["data"]).decode("utf-8", errors="replace")
    if offset:  # the first line is cut: start at the next one
        text = text.partition("\n")[2]
    read = _format_size(size - offset)
    return {
        "available": True,
        "reason": None,
        "source": f"server log {path} ({fmt}, last {read} of {_format_size(size)})",
        "path": path,
        "format": fmt,
        "text": text,
        "offset": offset,
        "size": size,
        **common,
    }


def _lost(conn):
    """True when the connection itself is gone: then the error is the caller's (a lost server), not the log's."""
    return bool(conn.closed or getattr(conn, "broken", False))


def _rollback(conn):
    if not conn.autocommit:
        try:
            conn.rollback()
        except psycopg.Error:
            pass


def _short(exc):
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(exc).strip().splitlines()[0]
    state = getattr(exc, "sqlstate", None)
    return f"{state}: {message}" if state else message


def _format_size(value):
    if value >= 1024 * 1024:
        return f"{value / (1024 * 1024):.1f} MB"
    if value >= 1024:
        return f"{value / 1024:.1f} kB"
    return f"{value} B"


# ---------------------------------------------------------------------------------------------
# Parsing: jsonlog, csvlog, stderr -> records
# ---------------------------------------------------------------------------------------------

SEVERITIES = "DEBUG5|DEBUG4|DEBUG3|DEBUG2|DEBUG1|DEBUG|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|STATEMENT"
ATTACHED = ("DETAIL", "HINT", "CONTEXT", "QUERY", "LOCATION")
ERROR_SEVERITIES = ("ERROR", "FATAL", "PANIC")

# PostgreSQL writes "<prefix><SEVERITY>:  <message>" (two spaces); the prefix is free-form.
_STDERR_LINE = re.compile(
    r"^(?P<prefix>.*?)\b(?P<severity>" + SEVERITIES + "|" + "|".join(ATTACHED) + r"):  (?P<text>.*)$"
)
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}) (?P<time>\d{2}:\d{2}:\d{2})(?P<fraction>\.\d+)?"
    r"(?: (?P<zone>[A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?"
)
_PID = re.compile(r"\[(\d+)\]")
_CSV_COLUMNS = (
    "timestamp",
    "user",
    "dbname",
    "pid",
    "remote_host",
    "session_id",
    "line_num",
    "command_tag",
    "session_start",
    "vxid",
    "txid",
    "error_severity",
    "state_code",
    "message",
    "detail",
    "hint",
    "internal_query",
    "internal_position",
    "context",
    "statement",
    "cursor_position",
    "func_name",
    "application_name",
    "backend_type",
)


def parse_timestamp(text, utc_offset=0.0):
    """``2026-12-04 11:27:12.804 UTC`` (``%m``/``%t``, any ``log_timezone``) -> aware ``datetime``.

    A zone PostgreSQL writes as a name other than UTC/GMT is taken as ``utc_offset`` seconds
    (the server's ``log_timezone`` offset now). ``None`` when ``text`` holds no timestamp.
    """
    match = _TIMESTAMP.search(text or "")
    if not match:
        return None
    value = datetime.strptime(f"{match['date']} {match['time']}", "%Y-%m-%d %H:%M:%S")
    if match["fraction"]:
        value = value.replace(microsecond=round(float(match["fraction"]) * 1_000_000) % 1_000_000)
    zone = match["zone"]
    if zone in ("UTC", "GMT", "Z", "Etc/UTC"):
        offset = 0.0
    elif zone and re.fullmatch(r"[+-]\d{2}(?::?\d{2})?", zone):
        digits = zone[1:].replace(":", "")
        offset = (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60) * (1 if zone[0] == "+" else -1)
    else:
        offset = utc_offset or 0.0
    return value.replace(tzinfo=timezone(timedelta(seconds=offset)))


def _record(time, pid, severity, message, sqlstate=None, detail=None, hint=None, context=None, backend_type=None):
    return {
        "time": time,
        "pid": pid,
        "severity": severity,
        "sqlstate": sqlstate or None,
        "message": message or "",
        "detail": detail or None,
        "hint": hint or None,
        "context": context or None,
        "backend_type": backend_type or None,
    }


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_jsonlog(text, utc_offset=0.0):
    """Records of a ``jsonlog`` file (one JSON object per line; broken lines are skipped)."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        records.append(
            _record(
                parse_timestamp(item.get("timestamp"), utc_offset),
                _int(item.get("pid")),
                item.get("error_severity"),
                item.get("message"),
                item.get("state_code"),
                item.get("detail"),
                item.get("hint"),
                item.get("context"),
                item.get("backend_type"),
            )
        )
    return records


def parse_csvlog(text, utc_offset=0.0):
    """Records of a ``csvlog`` file (quoted fields may span lines)."""
    records = []
    # A record starts with a timestamp at the start of a line; skip anything before the first one.
    start = re.search(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text, re.MULTILINE)
    if not start:
        return records
    reader = csv.reader(io.StringIO(text[start.start() :], newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            continue
        if len(row) < 19:
            continue
        item = dict(zip(_CSV_COLUMNS, row, strict=False))
        records.append(
            _record(
                parse_timestamp(item["timestamp"], utc_offset),
                _int(item["pid"]),
                item["error_severity"],
                item["message"],
                item["state_code"],
                item["detail"],
                item["hint"],
                item["context"],
                item.get("backend_type"),
            )
        )
    return records


_PREFIX_ESCAPES = {
    "a": r".*?",
    "u": r".*?",
    "d": r".*?",
    "r": r".*?",
    "h": r".*?",
    "b": r".*?",
    "i": r".*?",
    "v": r".*?",
    "p": r"(?P<pid>\d+)",
    "P": r"\d*",
    "t": r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?: \S+)?)",
    "m": r"(?P<ts>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+(?: \S+)?)",
    "n": r"\d+(?:\.\d+)?",
    "s": r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?: \S+)?",
    "e": r"(?P<sqlstate>[0-9A-Z]{5})",
    "c": r"[0-9a-f]+\.[0-9a-f]+",
    "l": r"\d+",
    "x": r"\d+",
    "Q": r"-?\d+",
}


def prefix_pattern(log_line_prefix):
    """A regex for the lines a ``log_line_prefix`` writes: groups ``ts``, ``pid``, ``sqlstate`` (where the
    prefix has ``%m``/``%t``, ``%p``, ``%e``), ``severity`` and ``text``.

    ``%q`` makes the rest optional (PostgreSQL leaves it out for background workers); padding
    (``%-10a``) is allowed; unknown escapes match anything.
    """
    parts = []
    named = set()
    optional = False
    i = 0
    prefix = log_line_prefix or ""
    while i < len(prefix):
        char = prefix[i]
        if char != "%" or i + 1 >= len(prefix):
            parts.append(re.escape(char))
            i += 1
            continue
        match = re.match(r"%(-?\d*)(.)", prefix[i:])
        padding, escape = match.group(1), match.group(2)
        i += match.end()
        if escape == "%":
            parts.append("%")
            continue
        if escape == "q":
            parts.append("(?:")
            optional = True
            continue
        pattern = _PREFIX_ESCAPES.get(escape, r".*?")
        group = re.search(r"\?P<(\w+)>", pattern)
        if group:
            if group.group(1) in named:
                pattern = pattern.replace(f"?P<{group.group(1)}>", "?:")
            named.add(group.group(1))
        parts.append(r"\s*" + pattern + r"\s*" if padding else pattern)
    if optional:
        parts.append(")?")
    return re.compile(
        "^" + "".join(parts) + r"(?P<severity>" + SEVERITIES + "|" + "|".join(ATTACHED) + r"):  (?P<text>.*)$"
    )


def parse_stderr(text, utc_offset=0.0, log_line_prefix="%m [%p] "):
    """Records of a ``stderr`` log written with ``log_line_prefix`` (PostgreSQL's default ``%m [%p] ``).

    A line ``<prefix><SEVERITY>:  <text>`` starts a message; ``DETAIL``/``HINT``/``CONTEXT`` lines
    belong to the message before them; lines starting with a tab continue the previous line. A
    line the prefix does not match (written before a reload changed it) is read with a looser
    rule: a time from ``%m``/``%t`` anywhere before the severity, a pid written as ``[pid]``. The
    SQLSTATE is known only when the prefix has ``%e``.
    """
    exact = prefix_pattern(log_line_prefix)
    records = []
    current = None
    field = None
    for line in text.splitlines():
        if line.startswith("\t") and current is not None and field:
            current[field] = (current[field] or "") + "\n" + line[1:]
            continue
        match = exact.match(line) or _STDERR_LINE.match(line)
        if not match:
            field = None
            continue
        groups = match.groupdict()
        severity, body = groups["severity"], groups["text"]
        if severity in ATTACHED:
            field = severity.lower() if severity in ("DETAIL", "HINT", "CONTEXT") else None
            if current is not None and field:
                current[field] = body
            continue
        if "prefix" in groups:  # the loose rule
            prefix = groups["prefix"]
            pid = _PID.search(prefix)
            time = parse_timestamp(prefix, utc_offset)
            pid = int(pid.group(1)) if pid else None
        else:
            time = parse_timestamp(groups.get("ts"), utc_offset)
            pid = _int(groups.get("pid"))
        current = _record(time, pid, severity, body, groups.get("sqlstate"))
        field = "message"
        records.append(current)
    return records


def parse_records(text, fmt, utc_offset=0.0, log_line_prefix="%m [%p] "):
    """Records (dicts: time, pid, severity, sqlstate, message, detail, hint, context, backend_type) of a log text."""
    if fmt == "jsonlog":
        return parse_jsonlog(text, utc_offset)
    if fmt == "csvlog":
        return parse_csvlog(text, utc_offset)
    if fmt == "stderr":
        return parse_stderr(text, utc_offset, log_line_prefix)
    raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")


# ---------------------------------------------------------------------------------------------
# The logical replication workers' errors
# ---------------------------------------------------------------------------------------------

WORKER_APPLY = "apply"
WORKER_SYNC = "table synchronization"
WORKER_PARALLEL = "parallel apply"
"""Worker types, named as ``replication_info`` names them (``subscriptions[].workers[].type``)."""

_BACKEND_TYPES = {
    "logical replication apply worker": WORKER_APPLY,  # 17+
    "logical replication tablesync worker": WORKER_SYNC,  # 17+
    "logical replication parallel worker": WORKER_PARALLEL,  # 17+
    "logical replication worker": None,  # 15, 16: apply or sync, told apart by the start message
}
_STARTED_APPLY = re.compile(r'^logical replication apply worker for subscription "(?P<sub>(?:[^"]|"")*)" has started')
_STARTED_SYNC = re.compile(
    r'^logical replication table synchronization worker for subscription "(?P<sub>(?:[^"]|"")*)", '
    r'table "(?P<table>(?:[^"]|"")*)" has started'
)
_STARTED_PARALLEL = re.compile(
    r'^logical replication parallel apply worker for subscription "(?P<sub>(?:[^"]|"")*)" has started'
)
_EXITED = re.compile(r'^background worker "(?P<type>logical replication [a-z ]*worker)" \(PID (?P<pid>\d+)\) exited')
_MESSAGE_SUBSCRIPTION = re.compile(r'\bsubscription "(?P<sub>(?:[^"]|"")*)"')
_CONTEXT = re.compile(
    # PostgreSQL 15+: '... for replication origin "pg_16392" during message type "INSERT" ...'; 14 (untested):
    # '... during "INSERT" ...' without origin and LSN.
    r'processing remote data (?:for replication origin "(?P<origin>[^"]*)" )?during (?:message type )?"(?P<type>[^"]*)"'
    r'(?: for replication target relation "(?P<relation>[^"]*)"(?: column "(?P<column>[^"]*)")?)?'
    r"(?: in transaction (?P<xid>\d+))?(?:,? finished at (?P<lsn>[0-9A-Fa-f]+/[0-9A-Fa-f]+))?"
)
_COPY_CONTEXT = re.compile(r"^COPY (?P<table>\S+), line \d+")
_RELATION = re.compile(r'\brelation "(?P<relation>(?:[^"]|"")*)"')
_TABLE = re.compile(r"\bfor table (?P<table>\S+)")
_KEY = re.compile(
    r"\bKey \((?P<columns>.*?)\)=\((?P<values>.*?)\)(?= already exists| is not present| conflicts with|; |\.?$|\.\s)",
    re.DOTALL,
)
_CONSTRAINT = re.compile(r'\bunique (?:constraint|index) "(?P<name>(?:[^"]|"")*)"')
_CONFLICT = re.compile(r"\bconflict=(?P<conflict>\w+)")
_MISSING_COLUMNS = re.compile(r"is missing replicated columns?: (?P<columns>.*)$")
_SHUTDOWN = re.compile(r"^terminating (?:logical replication worker|background worker .*) due to administrator command")
_DISABLED = re.compile(r'^subscription "(?P<sub>(?:[^"]|"")*)" has been disabled because of an error')
CONFLICT_PREFIX = "conflict detected on relation "
"""PostgreSQL 18 logs each conflict (ERROR when it stops the worker, else LOG) starting with this."""
_ORIGIN_OID = re.compile(r"^pg_(?P<oid>\d+)(?:_\d+)?$")


def worker_errors(records):
    """The errors of logical replication workers among ``records``, each a record plus
    ``worker`` (type), ``subscription`` and ``table`` (a table sync worker's table) where known.

    A worker is known by its ``backend_type`` (jsonlog, csvlog; PostgreSQL 17 names the type), by
    its "... worker for subscription ... has started" message (same pid, earlier), by the
    postmaster's "background worker "logical replication ..." (PID n) exited" after it, or by an
    apply CONTEXT (``processing remote data for replication origin ...``).
    """
    started = {}
    exited = {}
    for record in records:
        message = record["message"]
        if record["severity"] == "LOG":
            match = _EXITED.match(message)
            if match:
                exited.setdefault(int(match["pid"]), _BACKEND_TYPES.get(match["type"]))
    errors = []
    for record in records:
        message = record["message"]
        pid = record["pid"]
        if record["severity"] == "LOG":
            for pattern, kind in (
                (_STARTED_APPLY, WORKER_APPLY),
                (_STARTED_SYNC, WORKER_SYNC),
                (_STARTED_PARALLEL, WORKER_PARALLEL),
            ):
                match = pattern.match(message)
                if match:
                    table = match.groupdict().get("table")
                    started[pid] = {
                        "worker": kind,
                        "subscription": match["sub"].replace('""', '"'),
                        "table": table.replace('""', '"') if table else None,
                    }
                    break
            if not message.startswith(CONFLICT_PREFIX):
                continue
        if record["severity"] not in ERROR_SEVERITIES and not (
            record["severity"] == "LOG" and message.startswith(CONFLICT_PREFIX)
        ):
            continue
        if record.get("sqlstate") == "57P01" or _SHUTDOWN.match(message):
            continue  # stopped by a shutdown, a restart or DROP SUBSCRIPTION: not a failure
        known = started.get(pid) if pid is not None else None
        backend = record.get("backend_type")
        is_worker = (
            known is not None
            or (backend in _BACKEND_TYPES)
            or (pid in exited)
            or bool(record.get("context") and _CONTEXT.search(record["context"]))
        )
        if not is_worker:
            continue
        worker = _BACKEND_TYPES.get(backend) or (known or {}).get("worker") or exited.get(pid)
        if worker is None and record.get("context") and _CONTEXT.search(record["context"]):
            worker = WORKER_APPLY
        if worker is None and record.get("context") and _COPY_CONTEXT.match(record["context"]):
            worker = WORKER_SYNC
        subscription = (known or {}).get("subscription")
        if subscription is None:
            match = _MESSAGE_SUBSCRIPTION.search(message)
            subscription = match["sub"].replace('""', '"') if match else None
        errors.append({**record, "worker": worker, "subscription": subscription, "table": (known or {}).get("table")})
    return errors


def disabled_by_error(records):
    """``{subscription: time}`` of the last "subscription ... has been disabled because of an error"
    (``disable_on_error``)."""
    found = {}
    for record in records:
        if record["severity"] == "LOG":
            match = _DISABLED.match(record["message"])
            if match and record["time"] is not None:
                found[match["sub"].replace('""', '"')] = record["time"]
    return found


_REMOTE_PERMISSION = re.compile(
    r"could not (?:start|finish) initial contents copy for table .*ERROR:\s+permission denied", re.S
)
"""The initial copy's error from the publisher, wrapped in the subscriber's (PostgreSQL 15-18)."""


def _classify(error):
    """A short kind for an error: what went wrong, independent of the PostgreSQL version's wording."""
    message = error["message"]
    state = error.get("sqlstate") or ""
    conflict = _CONFLICT.search(message)
    if (
        state == "23505"
        or "violates unique constraint" in message
        or (conflict and conflict["conflict"] in ("insert_exists", "update_exists", "multiple_unique_conflicts"))
    ):
        return "unique_violation"
    if "is missing replicated column" in message:
        return "missing_column"
    if (_RELATION.search(message) and message.endswith("does not exist")) or state == "42P01":
        return "missing_relation"
    if _REMOTE_PERMISSION.search(message):
        # The publisher refused the replication role (the initial copy's SELECT): its error arrives wrapped in
        # the subscriber's, with the connection failure's SQLSTATE 08006.
        return "publisher_permission_denied"
    if state == "42501" or message.startswith("permission denied") or "cannot SET ROLE" in message:
        return "permission_denied"
    if (
        state.startswith("08")
        or "could not connect to the publisher" in message
        or (
            "could not receive data from WAL stream" in message
            or "could not send end-of-streaming message" in message
            or "terminating logical replication worker due to" in message
        )
    ):
        return "connection"
    if state in ("23502", "23503", "23514", "23P01") or "violates" in message:
        return "constraint_violation"
    return "other"


def _relation(error):
    context = error.get("context") or ""
    match = _CONTEXT.search(context)
    if match and match["relation"]:
        return match["relation"]
    match = _RELATION.search(error["message"])
    if match:
        return match["relation"].replace('""', '"')
    match = _TABLE.search(error["message"])
    if match:
        # The initial copy's messages quote the name and end it with a colon: for table "public.books": ...
        return match["table"].rstrip(":").strip('"')
    if error.get("table"):
        return error["table"]
    match = _COPY_CONTEXT.match(context)
    return match["table"] if match else None


def _detail_without_rows(detail):
    """PostgreSQL 18 puts the local and remote rows into a conflict's DETAIL: keep the key, drop the rows."""
    if not detail:
        return None
    return re.sub(
        r";\s*(?:existing local (?:row|tuple)|remote (?:row|tuple)|replica identity)[^;]*", "", detail
    ).strip()


def diagnose(error, subscription_oids=None, source=None):
    """One worker error as a diagnosis: what failed where, and the fix.

    ``subscription_oids`` maps subscription oids to names, to name the subscription of an error
    known only by its replication origin (``pg_<oid>``); ``source`` says where the error was read.
    """
    context = error.get("context") or ""
    match = _CONTEXT.search(context)
    origin = match["origin"] if match else None
    subscription = error.get("subscription")
    if subscription is None and origin and subscription_oids:
        oid = _ORIGIN_OID.match(origin)
        if oid:
            subscription = subscription_oids.get(int(oid["oid"]))
    detail = error.get("detail")
    key_match = _KEY.search(detail or "") or _KEY.search(error["message"])
    constraint = _CONSTRAINT.search(f"{error['message']} {detail or ''}")
    conflict = _CONFLICT.search(error["message"])
    missing = _MISSING_COLUMNS.search(error["message"])
    time = error.get("time")
    diagnosis = {
        "time": time.isoformat() if time else None,
        "subscription": subscription,
        "worker": error.get("worker"),
        "pid": error.get("pid"),
        "kind": _classify(error),
        "relation": _relation(error),
        "key": f"({key_match['columns']})=({key_match['values']})" if key_match else None,
        "constraint": constraint["name"].replace('""', '"') if constraint else None,
        "conflict": conflict["conflict"] if conflict else None,
        "missing_columns": missing["columns"] if missing else None,
        "severity": error.get("severity"),
        "message": error["message"],
        "detail": _detail_without_rows(detail),
        "sqlstate": error.get("sqlstate"),
        "origin": origin,
        "message_type": match["type"] if match else None,
        "remote_xid": int(match["xid"]) if match and match["xid"] else None,
        "finish_lsn": match["lsn"].upper() if match and match["lsn"] else None,
    }
    diagnosis["fix"] = fix_for(diagnosis)
    diagnosis["source"] = source
    return diagnosis


def _skip(diagnosis):
    name = diagnosis["subscription"]
    lsn = diagnosis["finish_lsn"]
    target = quote_ident(name) if name else "<subscription>"
    return (
        f"ALTER SUBSCRIPTION {target} SKIP (lsn = '{lsn}') - with this collection the "
        f"inventium.logical_replication.subscription module's skip_lsn: {lsn} (name: {name or '<subscription>'}); "
        "skipping drops the whole remote transaction, its other changes included"
    )


def fix_for(diagnosis):
    """What to do about a diagnosis (one sentence or two, naming the objects)."""
    kind = diagnosis["kind"]
    relation = diagnosis["relation"] or "the table"
    key = f", key {diagnosis['key']}" if diagnosis["key"] else ""
    sync = diagnosis["worker"] == WORKER_SYNC
    skip = diagnosis["finish_lsn"] and not sync
    if kind == "unique_violation":
        if sync:
            return (
                f"The initial copy of {relation} conflicts with rows already on the subscriber{key}: delete the "
                f"subscriber's conflicting rows (or empty {relation} on the subscriber); the table synchronization "
                "worker retries the copy by itself."
            )
        text = f"Delete or fix the conflicting row on the subscriber ({relation}{key})"
        if skip:
            text += f", or skip the remote transaction: {_skip(diagnosis)}"
        return text + ". The apply worker retries by itself."
    if kind == "missing_column":
        columns = diagnosis["missing_columns"] or "the published columns"
        return (
            f"Add the missing column(s) {columns} to {relation} on the subscriber (ALTER TABLE ... ADD COLUMN, with "
            "the publisher's types), or leave them out of the publication's column list; the apply worker retries "
            "by itself."
        )
    if kind == "missing_relation":
        return (
            f"Create {relation} on the subscriber (with the publisher's columns) and run ALTER SUBSCRIPTION ... "
            "REFRESH PUBLICATION, or remove the table from the publication."
        )
    if kind == "publisher_permission_denied":
        return (
            f"The publisher refused the subscription's replication role access to {relation}: on the publisher, "
            f"GRANT SELECT ON {relation} TO the role of the subscription's connection (the publisher role grants it "
            "for the tables of its publications; playbooks/schema_change.yml for the tables it publishes). The "
            "table synchronization worker retries by itself."
        )
    if kind == "permission_denied":
        return (
            f"Grant the privileges the apply worker needs on {relation} to the subscription's owner (with "
            "run_as_owner off, PostgreSQL 16+ applies as the table's owner: the subscription owner must be able to "
            "SET ROLE to it), or change the subscription's owner."
        )
    if kind == "connection":
        return (
            "The connection to the publisher failed or was lost: the worker reconnects by itself once the publisher "
            "accepts connections again (check that it runs, the network, pg_hba.conf and the password); nothing to "
            "do if replication resumed."
        )
    if kind == "constraint_violation":
        text = (
            f"Make the row satisfy the subscriber's constraints on {relation}{key} (the subscriber has a "
            "constraint the publisher has not, or lacks a referenced row)"
        )
        if skip:
            text += f", or skip the remote transaction: {_skip(diagnosis)}"
        return text + "."
    text = "Fix what PostgreSQL reports above on the subscriber; the worker retries by itself"
    if skip:
        text += f", or skip the remote transaction: {_skip(diagnosis)}"
    return text + "."


# ---------------------------------------------------------------------------------------------
# Per subscription, within a window
# ---------------------------------------------------------------------------------------------


def _group_key(diagnosis):
    return (
        diagnosis["kind"],
        diagnosis["worker"],
        diagnosis["relation"],
        diagnosis["key"],
        diagnosis["message"],
        diagnosis["finish_lsn"],
    )


def summarize(diagnoses, names, now, window_minutes=DEFAULT_ERROR_WINDOW, limit=MAX_DIAGNOSES, disabled=None):
    """Per subscription of ``names``: errors in the last ``window_minutes`` before ``now`` and the
    distinct recent diagnoses.

    Returns ``(per_subscription, unattributed)``: ``per_subscription[name]`` is ``{apply_errors,
    sync_errors, conflicts, last_error_time, diagnoses}`` (counts within the window, ``conflicts``
    per type as PostgreSQL 18 logs them, also those it resolved by itself; ``diagnoses`` newest
    first, repeated errors grouped with ``count``, ``first_time`` and ``last_time``, at most
    ``limit``, all of the log read - also those older than the window, marked ``recent``);
    ``unattributed`` are the recent diagnoses of workers whose subscription the log does not name.
    Diagnoses of subscriptions not in ``names`` (other databases) are left out. ``disabled``
    (:func:`disabled_by_error`) adds ``disabled_by_error_time``: when ``disable_on_error`` last disabled it.
    """
    since = now - timedelta(minutes=float(window_minutes))
    result = {
        name: {"apply_errors": 0, "sync_errors": 0, "conflicts": {}, "last_error_time": None, "diagnoses": []}
        for name in names
    }
    groups = {}
    unattributed = {}
    for diagnosis in diagnoses:
        name = diagnosis["subscription"]
        time = _parse_iso(diagnosis["time"])
        recent = time is not None and time >= since
        if name is None:
            if recent:
                _add(unattributed, diagnosis, time, recent)
            continue
        if name not in result:
            continue
        entry = result[name]
        if recent and diagnosis["conflict"]:
            entry["conflicts"][diagnosis["conflict"]] = entry["conflicts"].get(diagnosis["conflict"], 0) + 1
        if diagnosis.get("severity") not in ERROR_SEVERITIES:  # a conflict PostgreSQL resolved (LOG)
            _add(groups.setdefault(name, {}), diagnosis, time, recent)
            continue
        if recent:
            entry["sync_errors" if diagnosis["worker"] == WORKER_SYNC else "apply_errors"] += 1
        if time is not None and (entry["last_error_time"] is None or time.isoformat() > entry["last_error_time"]):
            entry["last_error_time"] = time.isoformat()
        _add(groups.setdefault(name, {}), diagnosis, time, recent)
    for name, grouped in groups.items():
        result[name]["diagnoses"] = _newest(grouped, limit)
    for name, entry in result.items():
        when = (disabled or {}).get(name)
        entry["disabled_by_error_time"] = when.isoformat() if when else None
    return result, _newest(unattributed, limit)


def _add(grouped, diagnosis, time, recent):
    key = _group_key(diagnosis)
    entry = grouped.get(key)
    if entry is None:
        grouped[key] = entry = {
            **diagnosis,
            "count": 0,
            "first_time": diagnosis["time"],
            "last_time": diagnosis["time"],
            "recent": False,
        }
    entry["count"] += 1
    entry["recent"] = entry["recent"] or recent
    if diagnosis["time"] and (entry["last_time"] is None or diagnosis["time"] >= entry["last_time"]):
        entry.update({k: v for k, v in diagnosis.items() if k != "time"})
        entry["last_time"] = diagnosis["time"]
    entry["time"] = entry["last_time"]


def _newest(grouped, limit):
    return sorted(grouped.values(), key=lambda d: d["last_time"] or "", reverse=True)[:limit]


def _parse_iso(value):
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def covers_since(records):
    """The time of the earliest record read (what the window can see), ``None`` without records."""
    times = [r["time"] for r in records if r["time"] is not None]
    return min(times) if times else None


def describe(diagnosis):
    """One line for a message: the error, where, the key and the LSN, when and how often."""
    text = diagnosis["message"].splitlines()[0] if diagnosis["message"] else "error"
    if diagnosis.get("sqlstate"):
        text += f" (SQLSTATE {diagnosis['sqlstate']})"
    where = []
    if diagnosis.get("relation") and diagnosis["relation"] not in text:
        where.append(f"on {diagnosis['relation']}")
    if diagnosis.get("key"):
        where.append(f"key {diagnosis['key']}")
    if diagnosis.get("worker"):
        where.append(f"{diagnosis['worker']} worker")
    if diagnosis.get("finish_lsn"):
        where.append(f"remote transaction finished at {diagnosis['finish_lsn']}")
    if where:
        text += ", " + ", ".join(where)
    when = diagnosis.get("last_time") or diagnosis.get("time")
    if when:
        text += f", last at {when}"
    if diagnosis.get("count", 1) > 1:
        text += f" ({diagnosis['count']} times)"
    return text


def collect_errors(conn, names, window_minutes=DEFAULT_ERROR_WINDOW, max_bytes=DEFAULT_MAX_BYTES):
    """The ``errors`` subset of ``replication_info``: the workers' errors of the subscriptions ``names``
    (those of the current database) from the server log, counted within ``window_minutes``.

    The log is not read when ``names`` is empty.
    """
    base = {
        "available": False,
        "reason": None,
        "source": None,
        "path": None,
        "format": None,
        "window_minutes": float(window_minutes),
        "covers_since": None,
        "window_complete": False,
        "subscriptions": [],
        "unattributed": [],
    }
    if not names:
        reason = "not read: no subscription in this database"
        return {**base, "reason": reason, "source": reason}
    log = read_server_log(conn, max_bytes)
    base.update({key: log[key] for key in ("available", "reason", "source", "path", "format")})
    if not log["available"]:
        return base
    now = log["now"]
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    analysis = analyze_text(
        log["text"],
        log["format"],
        names,
        now,
        window_minutes,
        source=log["source"],
        log_line_prefix=log["log_line_prefix"],
        utc_offset=log["log_utc_offset"],
        subscription_oids=_subscription_oids(conn),
        complete=log["offset"] == 0,
    )
    base.update(analysis)
    return base


def analyze_text(
    text,
    fmt,
    names,
    now,
    window_minutes=DEFAULT_ERROR_WINDOW,
    source=None,
    log_line_prefix="%m [%p] ",
    utc_offset=0.0,
    subscription_oids=None,
    complete=False,
):
    """The analysis of a log text, however it was obtained (SQL, or e.g. ``docker logs`` of a container that logs
    to stderr): ``covers_since``, ``window_complete``, ``subscriptions`` and ``unattributed`` as in
    :func:`collect_errors`. ``complete``: the text is the whole log (nothing before it was cut off).
    """
    records = parse_records(text, fmt, utc_offset, log_line_prefix)
    diagnoses = [diagnose(error, subscription_oids, source) for error in worker_errors(records)]
    per_subscription, unattributed = summarize(
        diagnoses, names, now, window_minutes, disabled=disabled_by_error(records)
    )
    since = covers_since(records)
    return {
        "covers_since": since.isoformat() if since else None,
        "window_complete": complete or (since is not None and since <= now - timedelta(minutes=float(window_minutes))),
        "subscriptions": [{"name": name, **per_subscription[name]} for name in names],
        "unattributed": unattributed,
    }


def _subscription_oids(conn):
    try:
        return subscription_oids(conn)
    except psycopg.Error:
        if _lost(conn):
            raise
        _rollback(conn)
        return {}
