# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The replication slots: the ONLY SQL reading ``pg_replication_slots``, and the slot planner.

Used by the ``replication_slot`` module, ``replication_info`` and the metrics sampler alike.
"""

from __future__ import annotations

import re
import secrets
import time

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import (
    CURRENT_LSN,
    fetch_rows,
    iso,
    memoize,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._versions import (
    CONFLICTING_MAJOR,
    FAILOVER_MAJOR,
    PARALLEL_APPLY_MAJOR,
    TWO_PHASE_AT_MAJOR,
    TWO_PHASE_MAJOR,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    PgConnectionError,
    connection_kwargs,
    describe_target,
    format_db_error,
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.guc import split_list
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact

SLOT_COUNT = "(SELECT count(*) FROM pg_catalog.pg_replication_slots)::int"
"""SQL expression: the number of replication slots of the cluster (a server fact)."""

SLOT_OF_SENDER = "LEFT JOIN pg_catalog.pg_replication_slots s ON s.active_pid = r.pid"
"""SQL join clause: the slot ``s`` a WAL sender ``r`` (``pg_stat_replication``) streams from, if any."""


def slot_columns(major):
    """The ``pg_replication_slots`` columns returned for a slot (``replication_slot`` module's state)."""
    columns = [
        "slot_name::text AS name",
        "slot_type",
        "plugin::text AS plugin",
        "database::text AS database",
        "temporary",
        "active",
        "active_pid",
        "restart_lsn::text AS restart_lsn",
        "confirmed_flush_lsn::text AS confirmed_flush_lsn",
        "wal_status",
        "safe_wal_size",
        "pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery()"
        " THEN pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_lsn() END,"
        " restart_lsn)::bigint AS retained_wal_bytes",
    ]
    if major >= TWO_PHASE_MAJOR:
        columns.append("two_phase")
    if major >= CONFLICTING_MAJOR:
        columns.append("conflicting")
    if major >= FAILOVER_MAJOR:
        columns += ["inactive_since", "invalidation_reason", "failover", "synced"]
    if major >= TWO_PHASE_AT_MAJOR:
        columns.append("two_phase_at::text AS two_phase_at")
    return columns


def slot_query(major):
    """SELECT returning the state of one slot (parameter: slot name), using the server's columns only."""
    return sql.SQL("SELECT {} FROM pg_catalog.pg_replication_slots WHERE slot_name = %s").format(
        sql.SQL(", ").join(sql.SQL(c) for c in slot_columns(major))
    )


@memoize
def slots_query(major):
    """SELECT of every slot of the cluster: :func:`slot_columns` plus the confirmed flush lag in bytes."""
    columns = [
        *slot_columns(major),
        f"pg_catalog.pg_wal_lsn_diff({CURRENT_LSN}, confirmed_flush_lsn)::bigint AS confirmed_flush_lag_bytes",
    ]
    return sql.SQL("SELECT {} FROM pg_catalog.pg_replication_slots ORDER BY slot_name").format(
        sql.SQL(", ").join(sql.SQL(c) for c in columns)
    )


def slot_state(row):
    """A slot row as returned state: ``inactive_since`` as ISO 8601 text."""
    state = dict(row)
    if state.get("inactive_since") is not None:
        state["inactive_since"] = iso(state["inactive_since"])
    return state


def collect_slots(conn, major):
    """Every replication slot of the cluster (list of dicts, sorted by name), as ``replication_slot`` returns them.

    Plus ``confirmed_flush_lag_bytes`` (server WAL position minus ``confirmed_flush_lsn``).
    """
    return [slot_state(row) for row in fetch_rows(conn, slots_query(major))]


STANDBY_SLOT_SETTINGS_QUERY = (
    "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,"
    " pg_catalog.current_setting('synchronized_standby_slots') AS synchronized_standby_slots,"
    " pg_catalog.current_setting('sync_replication_slots')::bool AS sync_replication_slots"
)


def collect_standby_slot_settings(conn, major):
    """``{in_recovery, synchronized_standby_slots (names), sync_replication_slots}`` of the server (PostgreSQL 17+,
    else ``None``): what ``_checks.check_standby_slots`` needs besides the slots."""
    if major < FAILOVER_MAJOR:
        return None
    row = fetch_rows(conn, STANDBY_SLOT_SETTINGS_QUERY)[0]
    return {
        "in_recovery": row["in_recovery"],
        "synchronized_standby_slots": list(split_list(row["synchronized_standby_slots"] or "")),
        "sync_replication_slots": row["sync_replication_slots"],
    }


_SUBSCRIPTION_SLOTS = "SELECT subname::text AS name, subslotname::text AS slot_name, "
PUBLISHER_SUBSCRIPTIONS_QUERY = {
    False: _SUBSCRIPTION_SLOTS + "NULL::text AS origin FROM pg_catalog.pg_subscription",
    True: _SUBSCRIPTION_SLOTS + "suborigin AS origin FROM pg_catalog.pg_subscription",
}
"""Every subscription of a server (any database) with its slot and origin (``origin`` from PostgreSQL 16)."""


def collect_subscription_slots(conn, major):
    """``[{name, slot_name, origin}]`` of every subscription of the server (``_checks.check_two_way_origin``)."""
    return fetch_rows(conn, PUBLISHER_SUBSCRIPTIONS_QUERY[major >= PARALLEL_APPLY_MAJOR])


# ----------------------------------------------------------------------------------------------
# The planner: desired definition vs the slot -> statements (the replication_slot module)
# ----------------------------------------------------------------------------------------------

DEFAULT_PLUGIN = "pgoutput"


SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}\Z")


TERMINATE_TIMEOUT = 30.0


POLL_INTERVAL = 0.1


DEFINITION_KEYS = ("name", "slot_type", "plugin", "database", "two_phase", "failover")


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option and value."""


def validate_params(params):
    """Check the options that need no server; raise :class:`OptionError`."""
    name = params["name"]
    if not SLOT_NAME.match(name or ""):
        raise OptionError(
            f"name: {name!r} is not a valid replication slot name (lower-case letters, digits and underscores "
            "only, 1 to 63 characters)"
        )
    if params.get("slot_type") == "physical":
        for option in ("plugin", "database"):
            if params.get(option) not in (None, ""):
                raise OptionError(f"{option}: only logical slots have one; remove it for the physical slot {name}")
        for option in ("two_phase", "failover"):
            if params.get(option):
                raise OptionError(f"{option}: only logical slots support it; remove it for the physical slot {name}")
    if params.get("plugin") == "":
        raise OptionError("plugin: must not be empty")


def session_database(params):
    """The database the module must connect to for this slot (a logical slot belongs to its creator's), or ``None``."""
    if params.get("slot_type", "logical") == "logical" and params.get("state", "present") == "present":
        return params.get("database") or None
    return None


class OneDatabase:
    """``validate_params`` for the items of ``slots``, which also keeps the logical slots to create in one database.

    The module has one session and a logical slot is created in the session's database;
    :attr:`database` is the database the items name (``None``: the connection's default).
    """

    def __init__(self):
        self.database = None

    def __call__(self, params):
        validate_params(params)
        wanted = session_database(params)
        if wanted and self.database and wanted != self.database:
            raise OptionError(
                f"database: {wanted!r} differs from {self.database!r} of an earlier item; one call creates logical "
                "slots in one database (the one it connects to), use one call per database"
            )
        self.database = self.database or wanted


def version_problems(params, major):
    """``[(option, min_major)]`` for requested features the server ``major`` lacks."""
    problems = []
    if params.get("two_phase") and major < TWO_PHASE_MAJOR:
        problems.append(("two_phase", TWO_PHASE_MAJOR))
    if params.get("failover") and major < FAILOVER_MAJOR:
        problems.append(("failover", FAILOVER_MAJOR))
    return problems


def desired_definition(params, database, major):
    """The definition (see :data:`DEFINITION_KEYS`) the slot must have; unmanaged values are ``None``."""
    logical = params.get("slot_type", "logical") == "logical"
    definition = {
        "name": params["name"],
        "slot_type": "logical" if logical else "physical",
        "plugin": (params.get("plugin") or DEFAULT_PLUGIN) if logical else None,
        "database": database if logical else None,
        "two_phase": params.get("two_phase") if logical else None,
        "failover": params.get("failover") if logical else None,
    }
    if major < TWO_PHASE_MAJOR:
        definition["two_phase"] = None
    if major < FAILOVER_MAJOR:
        definition["failover"] = None
    return definition


def definition_of(slot):
    """The definition part of a slot state dict (``{}`` for ``None``)."""
    if not slot:
        return {}
    return {key: slot.get(key) for key in DEFINITION_KEYS}


def differences(current, desired):
    """Human-readable differences between an existing slot and the desired definition.

    Values the user did not set (``None`` in ``desired``) are not compared, except for the type.
    """
    found = []
    for key in ("slot_type", "plugin", "database", "two_phase", "failover"):
        want = desired.get(key)
        have = current.get(key)
        if key in ("plugin", "database") and desired["slot_type"] != current.get("slot_type"):
            continue  # the type difference says it all
        if want is None and key != "slot_type":
            continue
        if key in ("two_phase", "failover"):
            have = bool(have)
        if have != want:
            found.append(f"{key} is {_show(have)} (wanted {_show(want)})")
    return found


def in_place_change(current, desired, major):
    """``{"failover": bool}`` when failover is the slot's only difference and can be changed in place, else ``None``.

    ``ALTER_REPLICATION_SLOT`` (a replication protocol command, PostgreSQL 17+) changes it without
    dropping the slot, so its position is kept; there is no SQL function for it. Temporary slots
    cannot be failover slots, and a slot synchronized from a primary is changed on the primary.
    """
    if major < FAILOVER_MAJOR or desired.get("failover") is None or current.get("slot_type") != "logical":
        return None
    if current.get("temporary") or current.get("synced"):
        return None
    if bool(current.get("failover")) == desired["failover"]:
        return None
    others = dict(desired, failover=None)
    if differences(current, others):
        return None
    return {"failover": desired["failover"]}


def alter_statement(name, changes):
    """``ALTER_REPLICATION_SLOT name ( FAILOVER true )``: run on a replication connection, not as SQL."""
    options = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.SQL(key.upper()), sql.SQL("true" if value else "false"))
        for key, value in changes.items()
    )
    return sql.SQL("ALTER_REPLICATION_SLOT {} ( {} )").format(sql.Identifier(name), options)


def _show(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def predicted_state(definition, major):
    """The state of a slot right after creation (for check mode)."""
    logical = definition["slot_type"] == "logical"
    state = {
        "name": definition["name"],
        "slot_type": definition["slot_type"],
        "plugin": definition["plugin"],
        "database": definition["database"],
        "temporary": False,
        "active": False,
        "active_pid": None,
        "restart_lsn": None,
        "confirmed_flush_lsn": None,
        "wal_status": None,
        "safe_wal_size": None,
        "retained_wal_bytes": None,
    }
    if major >= TWO_PHASE_MAJOR:
        state["two_phase"] = bool(definition["two_phase"]) if logical else False
    if major >= CONFLICTING_MAJOR:
        state["conflicting"] = False if logical else None
    if major >= FAILOVER_MAJOR:
        state["inactive_since"] = None
        state["invalidation_reason"] = None
        state["failover"] = bool(definition["failover"]) if logical else False
        state["synced"] = False
    if major >= TWO_PHASE_AT_MAJOR:
        state["two_phase_at"] = None
    return state


def create_statement(definition, major, name=None, temporary=False):
    """``SELECT ... pg_create_*_replication_slot(...)`` with named arguments, and its parameters."""
    name = name or definition["name"]
    if definition["slot_type"] == "physical":
        return sql.SQL("SELECT lsn::text FROM pg_catalog.pg_create_physical_replication_slot({})").format(
            sql.Literal(name)
        )
    args = [sql.Literal(name), sql.Literal(definition["plugin"])]
    if temporary:
        args.append(sql.SQL("temporary => true"))
    if definition["two_phase"] and major >= TWO_PHASE_MAJOR:
        args.append(sql.SQL("twophase => true"))
    if definition["failover"] and major >= FAILOVER_MAJOR and not temporary:
        args.append(sql.SQL("failover => true"))
    return sql.SQL("SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot({})").format(
        sql.SQL(", ").join(args)
    )


def drop_statement(name):
    return sql.SQL("SELECT pg_catalog.pg_drop_replication_slot({})").format(sql.Literal(name))


def replication_connection(params):
    """A walsender session (``replication=database``) for replication commands, from the module's login options."""
    kwargs = connection_kwargs(params)
    try:
        return psycopg.connect(autocommit=True, replication="database", **kwargs)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise PgConnectionError(
            redact(
                f"Unable to open a replication connection to PostgreSQL at {describe_target(params)}: {reason}",
                [params.get("login_password")],
            )
        ) from None


def terminate_statement(pid):
    return sql.SQL("SELECT pg_catalog.pg_terminate_backend({})").format(sql.Literal(pid))


class SlotModule:
    """The per-slot logic of ``replication_slot``: :meth:`plan` (checks, no writes), then :meth:`apply`.

    The single form (``name``) is :meth:`run`; the list form (``slots``) plans every item before
    applying any (``_object_list.run_items``), reading ``pg_replication_slots`` once.
    """

    def __init__(self, m):
        self.m = m
        self.params = m.params
        self.major = m.server_major
        self._database = None
        self._wal_level = None
        self._slots = None

    def read(self, name):
        row = self.m.query_one(slot_query(self.major), [name])
        return None if row is None else slot_state(row)

    def current(self, name):
        """The slot before any change: one read of every slot for the list form, one row for the single form."""
        if self._slots is None:
            return self.read(name)
        return self._slots.get(name)

    def read_all(self):
        """Read every slot once (the list form plans all its items from this)."""
        rows = self.m.query(
            sql.SQL("SELECT {} FROM pg_catalog.pg_replication_slots").format(
                sql.SQL(", ").join(sql.SQL(c) for c in slot_columns(self.major))
            )
        )
        self._slots = {row["name"]: slot_state(row) for row in rows}

    @property
    def database(self):
        if self._database is None:
            self._database = self.m.query_one("SELECT current_database()::text AS db")["db"]
        return self._database

    def who_uses(self, pid):
        row = self.m.query_one(
            "SELECT backend_type, application_name, usename::text AS usename, host(client_addr) AS client_addr"
            " FROM pg_catalog.pg_stat_activity WHERE pid = %s",
            [pid],
        )
        if not row:
            return f"PID {pid}"
        parts = [f"PID {pid}"]
        if row["backend_type"]:
            parts.append(row["backend_type"])
        if row["application_name"]:
            parts.append(f"application_name {row['application_name']}")
        if row["usename"]:
            parts.append(f"user {row['usename']}")
        if row["client_addr"]:
            parts.append(f"from {row['client_addr']}")
        return ", ".join(parts)

    def check_server(self, logical):
        if self._wal_level is None:
            self._wal_level = self.m.query_one("SELECT current_setting('wal_level') AS v")["v"]
        wal_level = self._wal_level
        if logical and wal_level != "logical":
            self.m.fail(
                f"logical replication slots need wal_level=logical, the server runs with wal_level={wal_level} "
                "(set it with inventium.logical_replication.server_settings and restart PostgreSQL)"
            )
        if not logical and wal_level == "minimal":
            self.m.fail("physical replication slots need wal_level=replica or logical, the server runs with minimal")

    def check_plugin(self, definition):
        """Create and drop a temporary slot with the plugin, so a missing plugin fails before anything changes."""
        name = f"inventium_check_{secrets.token_hex(6)}"
        try:
            self.m.conn.execute(create_statement(definition, self.major, name=name, temporary=True))
            self.m.conn.execute(drop_statement(name))
        except psycopg.Error as exc:
            self.m.fail(
                format_db_error(exc, (), f"plugin: cannot use output plugin {definition['plugin']!r}"),
                sqlstate=exc.sqlstate,
            )

    def check_droppable(self, p, current):
        """Fail unless the slot is inactive or ``terminate_active`` allows terminating its user."""
        if current["active"] and not p["terminate_active"]:
            self.m.fail(
                f"replication slot {p['name']} is active (used by {self.who_uses(current['active_pid'])}); it is not "
                "dropped unless terminate_active is true",
                slot=current,
            )

    def drop(self, p, current):
        """Drop the slot, terminating its user first when allowed. Returns nothing; fails the module."""
        name = p["name"]
        pid = current["active_pid"] if current["active"] else None
        self.check_droppable(p, current)
        if pid:
            self.m.queries.append(self.m.render(terminate_statement(pid)))
        self.m.queries.append(self.m.render(drop_statement(name)))
        if self.m.check_mode:
            return
        deadline = time.monotonic() + TERMINATE_TIMEOUT
        while True:
            if pid:
                try:
                    self.m.conn.execute(terminate_statement(pid))
                except psycopg.Error as exc:
                    self.m.fail(
                        format_db_error(exc, (), f"terminating PID {pid} that uses replication slot {name} failed"),
                        sqlstate=exc.sqlstate,
                    )
                state = self.read(name)
                if state is None:
                    return  # a temporary slot goes away with its session
                if state["active"]:
                    pid = state["active_pid"]
                    if time.monotonic() > deadline:
                        self.m.fail(
                            f"replication slot {name} is still active (used by {self.who_uses(pid)}) "
                            f"{TERMINATE_TIMEOUT:.0f} seconds after terminating its users; not dropped"
                        )
                    time.sleep(POLL_INTERVAL)
                    continue
            try:
                self.m.conn.execute(drop_statement(name))
                return
            except psycopg.errors.ObjectInUse as exc:
                # Its consumer reconnected between the check and the drop.
                state = self.read(name)
                if not p["terminate_active"] or time.monotonic() > deadline or state is None:
                    self.m.fail(
                        format_db_error(exc, (), f"dropping replication slot {name} failed"), sqlstate=exc.sqlstate
                    )
                pid = state["active_pid"]
                time.sleep(POLL_INTERVAL)
            except psycopg.Error as exc:
                self.m.fail(format_db_error(exc, (), f"dropping replication slot {name} failed"), sqlstate=exc.sqlstate)

    def alter(self, p, current, changes):
        """``ALTER_REPLICATION_SLOT`` on a replication connection, terminating the slot's user first when allowed."""
        m, name = self.m, p["name"]
        pid = current["active_pid"] if current["active"] else None
        if pid:
            m.queries.append(m.render(terminate_statement(pid)))
        statement = alter_statement(name, changes)
        m.queries.append(m.render(statement))
        if m.check_mode:
            return
        try:
            repl = replication_connection(m.params)
        except PgConnectionError as exc:
            m.fail(
                f"changing replication slot {name} in place needs a replication connection (a role with REPLICATION "
                f"or superuser, and pg_hba.conf allowing it for this database); nothing was changed. {exc}"
            )
        deadline = time.monotonic() + TERMINATE_TIMEOUT
        try:
            while True:
                if pid:
                    m.conn.execute(terminate_statement(pid))
                try:
                    repl.execute(statement)
                    return
                except psycopg.errors.ObjectInUse as exc:
                    # The consumer still holds the slot, or reconnected after being terminated.
                    state = self.read(name)
                    if not p["terminate_active"] or state is None or time.monotonic() > deadline:
                        m.fail(format_db_error(exc, (), f"{m.queries[-1]} failed"), sqlstate=exc.sqlstate)
                    pid = state["active_pid"] if state["active"] else None
                    time.sleep(POLL_INTERVAL)
                except psycopg.Error as exc:
                    m.fail(format_db_error(exc, (), f"{m.queries[-1]} failed"), sqlstate=exc.sqlstate)
        finally:
            repl.close()

    def plan(self, p):
        """Everything that can fail before a write: version gates, drift, activity, wal_level, the plugin.

        Returns the plan :meth:`apply` carries out: ``params``, ``current`` (state or ``None``),
        ``desired`` (definition, ``None`` for ``state=absent``) and ``action`` (``None``, ``drop``,
        ``create`` or ``recreate``).
        """
        m = self.m
        m.require_versions("replication_slot module", version_problems(p, self.major))
        current = self.current(p["name"])
        planned = {"params": p, "current": current, "desired": None, "action": None}
        if p["state"] == "absent":
            if current is not None:
                self.check_droppable(p, current)
                planned["action"] = "drop"
            return planned

        desired = desired_definition(p, self.database, self.major)
        planned["desired"] = desired
        logical = desired["slot_type"] == "logical"
        if current is not None:
            found = differences(current, desired)
            if not found:
                return planned
            changes = in_place_change(current, desired, self.major)
            if changes is not None:
                if current["active"] and not p["terminate_active"]:
                    m.fail(
                        f"replication slot {p['name']} differs ({'; '.join(found)}) but is active (used by "
                        f"{self.who_uses(current['active_pid'])}); PostgreSQL changes it only while nothing uses it: "
                        "stop its consumer or set terminate_active: true",
                        differences=found,
                        slot=current,
                    )
                planned.update(action="alter", changes=changes)
                return planned
            if not p["recreate"]:
                m.fail(
                    f"replication slot {p['name']} exists but differs: {'; '.join(found)}. Set recreate: true to drop "
                    "and re-create it (its position is lost)",
                    differences=found,
                    slot=current,
                )
            # Properties the user does not manage keep the old slot's values.
            for key in ("two_phase", "failover"):
                if desired[key] is None and key in current:
                    desired[key] = bool(current[key])
            if current["active"] and not p["terminate_active"]:
                m.fail(
                    f"replication slot {p['name']} differs ({'; '.join(found)}) but is active (used by "
                    f"{self.who_uses(current['active_pid'])}); it is not re-created unless terminate_active is true",
                    differences=found,
                    slot=current,
                )
        self.check_server(logical)
        # A missing plugin must fail before anything changes: before the old slot is dropped, and in the
        # list form before the items ahead of this one are applied (slot functions are not transactional).
        if current is None:
            new_plugin = self._slots is not None and desired["plugin"] not in (None, DEFAULT_PLUGIN)
        else:
            new_plugin = current.get("plugin") != desired["plugin"]
        if logical and new_plugin and not m.check_mode:
            self.check_plugin(desired)
        planned["action"] = "create" if current is None else "recreate"
        return planned

    def apply(self, planned):
        """Carry out a :meth:`plan`; the per-slot result ``{name, changed, slot, diff: (before, after)}``."""
        m = self.m
        p, current, action = planned["params"], planned["current"], planned["action"]
        before = definition_of(current)
        result = {"name": p["name"], "changed": action is not None}
        if action is None:
            return {**result, "slot": current or {}, "diff": (before, before)}
        if action == "drop":
            self.drop(p, current)
            return {**result, "slot": {}, "diff": (before, {})}
        if action == "alter":
            self.alter(p, current, planned["changes"])
            slot = dict(current, **planned["changes"]) if m.check_mode else self.read(p["name"])
            if slot is None:
                m.fail(f"replication slot {p['name']} disappeared while it was changed")
            return {**result, "slot": slot, "diff": (before, definition_of(slot))}
        if action == "recreate":
            self.drop(p, current)
        # A slot function must not run in a transaction that has written: autocommit, a statement of its own.
        m.execute(create_statement(planned["desired"], self.major), autocommit=True)
        slot = predicted_state(planned["desired"], self.major) if m.check_mode else self.read(p["name"])
        if slot is None:
            m.fail(f"replication slot {p['name']} was created but has disappeared")
        if action == "recreate":
            m.warn(
                f"replication slot {p['name']} was re-created; its consumer missed the changes made before "
                "the new slot existed"
            )
        return {**result, "slot": slot, "diff": (before, definition_of(slot))}

    def run(self):
        """The single form: one slot, exit with ``changed``, ``queries``, ``diff`` and ``slot``."""
        result = self.apply(self.plan(self.params))
        self.m.exit(changed=result["changed"], diff=result["diff"], slot=result["slot"])
