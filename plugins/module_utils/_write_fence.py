# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The write fence of a switchover: application roles stop writing on the old primary, and get back.

* ``read_only``: ``ALTER ROLE r SET default_transaction_read_only = on`` - the role's new sessions
  start read-only (cooperative: a session may turn it off again). ``nologin``: ``ALTER ROLE r
  NOLOGIN`` - new sessions are refused.
* The fence record: a JSON object ``{fence, method, fenced_at, previous, previous_comment}`` kept as
  the role's comment (``COMMENT ON ROLE``, ``pg_shdescription``), with the role's setting and
  ``rolcanlogin`` from before, so that lifting the fence puts back exactly what was there
  (``_comment_record`` keeps the role's own comment inside the record).
* All ALTERs and comments run in one transaction; the sessions of the roles that started before the
  fence are terminated only after COMMIT, because a session reads its role's settings when it starts:
  one that reconnects must find the committed fence.
"""

from __future__ import annotations

import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._comment_record import (
    comment_to_keep,
    dump_json_comment,
    iso_utc,
    kept_comment,
    load_json_comment,
    parse_time,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import GucError, parse_bool
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (
    IdentifierError,
    parse_identifier,
    quote_ident,
    unique_names,
)

FENCE_MARK = "inventium.logical_replication.write_fence"
"""The ``fence`` value that tells this module's record apart from any other JSON comment."""

METHODS = ("read_only", "nologin")

RECORD_KEYS = ("fence", "method", "fenced_at", "previous")

READ_ONLY_GUC = "default_transaction_read_only"

POLL_INTERVAL = 0.1

ROLES_QUERY = """
SELECT r.oid, r.rolname::text AS name, r.rolsuper AS superuser, r.rolreplication AS replication,
       r.rolcanlogin AS can_login, r.rolname = session_user AS is_session_user,
       pg_catalog.shobj_description(r.oid, 'pg_authid') AS comment,
       (SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s
         WHERE s.setrole = r.oid AND s.setdatabase = 0) AS role_settings,
       ARRAY(SELECT d.datname::text || ': ' || c.setting
               FROM pg_catalog.pg_db_role_setting s
               JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase,
                    unnest(s.setconfig) AS c(setting)
              WHERE s.setrole = r.oid AND c.setting LIKE 'default\\_transaction\\_read\\_only=%%'
              ORDER BY 1) AS database_settings,
       ARRAY(SELECT sub.subname::text FROM pg_catalog.pg_subscription sub
              WHERE sub.subowner = r.oid ORDER BY 1) AS subscriptions
  FROM pg_catalog.pg_roles r
 WHERE r.rolname = ANY(%s::text[])
"""
"""Every fact the fence needs about the named roles (readable without superuser)."""

SESSIONS_QUERY = """
SELECT a.pid, a.usename::text AS role, a.datname::text AS database, a.application_name, a.state,
       a.backend_start
  FROM pg_catalog.pg_stat_activity a
  JOIN unnest(%s::text[], %s::timestamptz[]) AS f(role, fenced_at)
    ON a.usename::text = f.role AND a.backend_start < f.fenced_at
 WHERE a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid()
 ORDER BY a.pid
"""
"""The client sessions of each role that started before that role's fence (parameters: roles, fence times)."""

TERMINATE = "SELECT pid, pg_catalog.pg_terminate_backend(pid) AS signalled FROM unnest(%s::int[]) AS t(pid)"

CLOCK = "SELECT pg_catalog.clock_timestamp() AS now"


# ----------------------------------------------------------------------------------------------
# The record and the role's state (pure)
# ----------------------------------------------------------------------------------------------


def setting_value(setconfig, name=READ_ONLY_GUC):
    """The value of ``name`` in a ``pg_db_role_setting.setconfig`` array (``['x=1', ...]``), or ``None``."""
    prefix = name + "="
    for entry in setconfig or ():
        if entry.startswith(prefix):
            return entry[len(prefix) :]
    return None


def is_on(value):
    """A boolean setting's text is true (``on``, ``true``, ``yes``, ``1`` and prefixes); ``None``/invalid: false."""
    if value is None:
        return False
    try:
        return parse_bool(value)
    except GucError:
        return False


def make_fence_record(method, fenced_at, previous_setting, previous_can_login, previous_comment=None):
    """The record a fence writes; ``fenced_at`` an aware datetime (kept with microseconds: sessions are
    compared with it)."""
    record = {
        "fence": FENCE_MARK,
        "method": method,
        "fenced_at": iso_utc(parse_time(fenced_at), precise=True),
        "previous": {READ_ONLY_GUC: previous_setting, "can_login": bool(previous_can_login)},
    }
    if previous_comment:
        record["previous_comment"] = str(previous_comment)
    return record


def format_fence_record(record):
    return dump_json_comment(record, RECORD_KEYS)


def parse_fence_record(comment):
    """The fence record in a role's comment, or ``None`` (no comment, a person's comment, another JSON object)."""
    data = load_json_comment(comment)
    if data is None or data.get("fence") != FENCE_MARK or data.get("method") not in METHODS:
        return None
    previous = data.get("previous")
    if not isinstance(previous, dict) or not isinstance(previous.get("can_login"), bool):
        return None
    setting = previous.get(READ_ONLY_GUC)
    if setting is not None and not isinstance(setting, str):
        return None
    try:
        fenced_at = parse_time(data.get("fenced_at"))
    except (TypeError, ValueError):
        return None
    if fenced_at is None:
        return None
    record = make_fence_record(data["method"], fenced_at, setting, previous["can_login"], kept_comment(data))
    return record


def fence_holds(method, setting, can_login):
    """Whether the role's current state is the fence of ``method``."""
    return is_on(setting) if method == "read_only" else not can_login


def role_state(row, record):
    """A role as the diff shows it."""
    return {
        "fenced": record is not None,
        "method": record["method"] if record else None,
        READ_ONLY_GUC: setting_value(row["role_settings"]),
        "can_login": row["can_login"],
    }


def refusal(row, method, name=None):
    """Why the role must not be fenced, or ``None``."""
    if row is None:
        return f"role {quote_ident(name)} does not exist"
    who = f"role {quote_ident(row['name'])}"
    if row["superuser"]:
        return f"{who} is a superuser: it can override any fence (and may own subscriptions); never fence it"
    if row["replication"]:
        return (
            f"{who} has REPLICATION: it may be the replication role, and fencing it would stop replication itself; "
            "never fence the replication role"
        )
    if row["is_session_user"]:
        return f"{who} is the user this module connects as: it would fence (and terminate) itself"
    if row["subscriptions"]:
        return (
            f"{who} owns the subscription(s) {', '.join(quote_ident(s) for s in row['subscriptions'])}: their apply "
            "workers run as this role"
        )
    record = parse_fence_record(row["comment"])
    if record and record["method"] != method:
        return (
            f"{who} is already fenced with method {record['method']} (since {record['fenced_at']}); lift that fence "
            f"(state=unfenced) before fencing it with method {method}"
        )
    if method == "read_only":
        overrides = [s for s in row["database_settings"] if not is_on(s.rsplit("=", 1)[1])]
        if overrides:
            return (
                f"{who} has a database-specific {READ_ONLY_GUC} ({'; '.join(overrides)}) that overrides a role-wide "
                f"one: the fence would not hold there (ALTER ROLE ... IN DATABASE ... RESET {READ_ONLY_GUC}, or "
                "use method nologin)"
            )
    return None


# ----------------------------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------------------------


class WriteFence:
    """``write_fence``: fence (ALTER + record in one transaction, then terminate) or lift the fence."""

    def __init__(self, m):
        self.m = m
        self.p = m.params

    def names(self):
        def parse(value, element):
            try:
                return parse_identifier(value)
            except IdentifierError as exc:
                raise ValueError(f"{element}: invalid role name {value!r}: {exc}") from None

        if not self.p["roles"]:
            self.m.fail("roles: give at least one role")
        try:
            return unique_names(self.p["roles"], "roles", "role", parse, ValueError)
        except ValueError as exc:
            self.m.fail(str(exc))

    def read_roles(self, names):
        rows = self.m.query(ROLES_QUERY, [names], action="reading the roles failed")
        return {row["name"]: row for row in rows}

    def clock(self):
        return self.m.query_one(CLOCK)["now"]

    def alter(self, name, text, *args):
        return sql.SQL("ALTER ROLE {} " + text).format(sql.Identifier(name), *args)

    def comment(self, name, text):
        return sql.SQL("COMMENT ON ROLE {} IS {}").format(
            sql.Identifier(name), sql.Literal(text) if text is not None else sql.SQL("NULL")
        )

    def fence_statement(self, name, method):
        if method == "read_only":
            return self.alter(name, "SET {} = on", sql.Identifier(READ_ONLY_GUC))
        return self.alter(name, "NOLOGIN")

    def restore_setting(self, name, value):
        """The role's ``default_transaction_read_only`` back to ``value`` (``None``: not set on the role)."""
        if value is None:
            return self.alter(name, "RESET {}", sql.Identifier(READ_ONLY_GUC))
        return self.alter(name, "SET {} = {}", sql.Identifier(READ_ONLY_GUC), sql.Literal(value))

    def sessions(self, fence_times):
        """The sessions that started before their role's fence: ``{name: aware datetime}``."""
        if not fence_times:
            return []
        names = list(fence_times)
        rows = self.m.query(SESSIONS_QUERY, [names, [fence_times[n] for n in names]], action="reading sessions failed")
        return [{k: row[k] for k in ("pid", "role", "database", "application_name", "state")} for row in rows]

    def terminate(self, sessions, fence_times, result):
        """Terminate ``sessions`` (after COMMIT) and wait until none is left; the sessions left at the timeout."""
        m = self.m
        try:
            m.execute(TERMINATE, [[s["pid"] for s in sessions]], autocommit=True, raise_errors=True)
        except psycopg.Error as exc:
            m.fail(
                format_db_error(exc, (), "the fence is in place, but terminating the sessions from before it failed")
                + " (the login needs pg_signal_backend)",
                changed=True,
                sqlstate=exc.sqlstate,
                **result,
            )
        if m.check_mode:
            return []
        pids = {s["pid"] for s in sessions}
        deadline = time.monotonic() + self.p["terminate_timeout"]
        while True:
            left = [s for s in self.sessions(fence_times) if s["pid"] in pids]
            if not left:
                return []
            if time.monotonic() >= deadline:
                return left
            time.sleep(POLL_INTERVAL)

    # -- fence ------------------------------------------------------------------------------

    def fence(self, names, rows):
        m, method = self.m, self.p["method"]
        problems = [refusal(rows.get(name), method, name) for name in names]
        problems = [problem for problem in problems if problem]
        if problems:
            m.fail("nothing was fenced: " + "; ".join(problems))
        now = self.clock()
        before, after, roles, fence_times, new = {}, {}, [], {}, []
        for name in names:
            row = rows[name]
            record = parse_fence_record(row["comment"])
            before[name] = role_state(row, record)
            if not row["can_login"] and method == "read_only":
                m.warn(
                    f"role {quote_ident(name)} cannot log in (NOLOGIN): the fence covers sessions that log in as this "
                    "role, not those of its members or SET ROLE; fence the roles the application logs in as"
                )
            holds = fence_holds(method, before[name][READ_ONLY_GUC], row["can_login"])
            if record is None:
                record = make_fence_record(
                    method,
                    now,
                    before[name][READ_ONLY_GUC],
                    row["can_login"],
                    comment_to_keep(row["comment"], None),
                )
                if not holds:
                    m.execute(self.fence_statement(name, method))
                m.execute(self.comment(name, format_fence_record(record)))
                new.append(name)
            elif not holds:
                # Someone lifted the fence by hand: put it back, keep what the record says was there before.
                m.execute(self.fence_statement(name, method))
                new.append(name)
            else:
                fence_times[name] = parse_time(record["fenced_at"])
            after[name] = {
                "fenced": True,
                "method": method,
                READ_ONLY_GUC: "on" if method == "read_only" and not holds else before[name][READ_ONLY_GUC],
                "can_login": False if method == "nologin" else row["can_login"],
            }
            roles.append(
                {
                    "name": name,
                    "fenced": True,
                    "method": method,
                    "fenced_at": record["fenced_at"],
                    "previous": record["previous"],
                    "changed": name in new,
                }
            )
        fenced_at = None
        if new and not m.check_mode:
            m.commit()
            # The start of the write-unavailable window: the fence is visible to every new session from here on.
            fenced_at = self.clock()
        elif new:
            fenced_at = now
        fence_times.update(dict.fromkeys(new, fenced_at))
        if fenced_at is None and fence_times:
            fenced_at = min(fence_times.values())
        sessions = self.sessions(fence_times)
        result = {
            "roles": roles,
            # In check mode a new fence has no time yet.
            "fenced_at": None if fenced_at is None or (m.check_mode and new) else iso_utc(fenced_at, precise=True),
            "sessions_before_fence": sessions,
            "terminated": [],
        }
        if self.p["terminate"] and sessions:
            left = self.terminate(sessions, fence_times, result)
            result["terminated"] = sessions
            if left:
                m.fail(
                    f"the fence is in place, but {len(left)} session(s) that started before it are still there "
                    f"{self.p['terminate_timeout']:g} s after pg_terminate_backend: pids "
                    + ", ".join(f"{s['pid']} ({s['role']}@{s['database']})" for s in left),
                    changed=True,
                    remaining=left,
                    **result,
                )
        m.exit(changed=bool(new or result["terminated"]), diff=({"roles": before}, {"roles": after}), **result)

    # -- unfence ----------------------------------------------------------------------------

    def unfence(self, names, rows):
        m = self.m
        missing = [name for name in names if name not in rows]
        if missing:
            m.fail("nothing was unfenced: " + "; ".join(f"role {quote_ident(n)} does not exist" for n in missing))
        before, after, roles, changed = {}, {}, [], False
        for name in names:
            row = rows[name]
            record = parse_fence_record(row["comment"])
            before[name] = role_state(row, record)
            after[name] = dict(before[name], fenced=False, method=None)
            entry = {"name": name, "fenced": False, "method": None, "fenced_at": None, "previous": None}
            if record is not None:
                previous = record["previous"]
                if record["method"] == "read_only":
                    m.execute(self.restore_setting(name, previous[READ_ONLY_GUC]))
                    after[name][READ_ONLY_GUC] = previous[READ_ONLY_GUC]
                elif previous["can_login"] and not row["can_login"]:
                    m.execute(self.alter(name, "LOGIN"))
                    after[name]["can_login"] = True
                m.execute(self.comment(name, record.get("previous_comment")))
                entry.update(method=record["method"], fenced_at=record["fenced_at"], previous=previous)
                changed = True
            entry["changed"] = record is not None
            roles.append(entry)
        unfenced_at = None
        if changed and not m.check_mode:
            m.commit()
            unfenced_at = iso_utc(self.clock(), precise=True)
        m.exit(
            changed=changed,
            diff=({"roles": before}, {"roles": after}),
            roles=roles,
            fenced_at=None,
            unfenced_at=unfenced_at,
            sessions_before_fence=[],
            terminated=[],
        )

    def run(self):
        self.m.connect()
        self.m.require_versions("write_fence module", [])
        names = self.names()
        rows = self.read_roles(names)
        if self.p["state"] == "fenced":
            self.fence(names, rows)
        else:
            self.unfence(names, rows)
