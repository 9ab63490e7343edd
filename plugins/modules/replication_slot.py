#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: replication_slot
short_description: Create and drop PostgreSQL replication slots, with drift checks and health facts
version_added: 0.1.0
description:
  - Creates a logical or physical replication slot (C(pg_create_logical_replication_slot),
    C(pg_create_physical_replication_slot)) or drops it (C(pg_drop_replication_slot)).
  - An existing slot is compared with the desired one - type, output plugin, database, C(two_phase) and
    C(failover). A slot that differs is never silently reused - the module fails and names every
    difference, unless O(recreate=true), which drops and re-creates it.
  - A slot in use by a walsender or a backend (C(active)) is not dropped unless
    O(terminate_active=true). The module then terminates the session using it
    (C(pg_terminate_backend)), waits until the slot is inactive (at most 30 seconds; a subscriber
    that reconnects meanwhile is terminated again) and drops it.
  - Returns the slot's state and health - C(active), C(active_pid), LSNs, C(wal_status),
    C(safe_wal_size), the WAL it retains (RV(slot.retained_wal_bytes)) and, on newer servers,
    C(conflicting), C(inactive_since), C(invalidation_reason), C(failover) and C(synced).
  - Creating or dropping a slot is not transactional in PostgreSQL (a rolled back transaction does not
    undo it) and a logical slot cannot be created in a transaction that has written anything. The module
    therefore validates everything first, then runs each slot function as a statement of its own.
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the slot. PostgreSQL allows lower-case letters, digits and underscores only, at most 63
        characters.
    type: str
    required: true
  slot_type:
    description:
      - The kind of slot. Logical slots decode changes for logical replication (subscriptions); physical
        slots retain WAL for streaming replication standbys.
    type: str
    choices: [logical, physical]
    default: logical
  plugin:
    description:
      - Output plugin of a logical slot. V(pgoutput) is the plugin of PostgreSQL's built-in logical
        replication (subscriptions); V(test_decoding) or V(wal2json) serve other consumers.
      - Defaults to V(pgoutput) for logical slots. Not allowed for physical slots.
    type: str
  database:
    description:
      - Database of a logical slot (a logical slot decodes the changes of one database).
      - Defaults to O(login_db) (or libpq's default database). The module connects to this database.
      - Not allowed for physical slots. Not used with O(state=absent) - slot names are unique in the whole
        server, and the slot of that name is dropped whatever its database.
    type: str
  two_phase:
    description:
      - Decode prepared transactions at C(PREPARE TRANSACTION) time (logical slots; PostgreSQL 14 or later).
      - When not set, an existing slot's value is not checked and a new slot gets V(false).
    type: bool
  failover:
    description:
      - Synchronize the slot to standbys so that logical replication can continue after a failover
        (logical slots; PostgreSQL 17 or later).
      - When not set, an existing slot's value is not checked and a new slot gets V(false).
    type: bool
  state:
    description:
      - V(present) creates the slot when it does not exist, V(absent) drops it.
    type: str
    choices: [present, absent]
    default: present
  recreate:
    description:
      - When an existing slot differs from the desired one (type, plugin, database, O(two_phase),
        O(failover)), drop and re-create it instead of failing.
      - The slot's position is lost - its consumer (for example a subscription) misses the changes made
        before the new slot was created and may have to be re-synchronized.
    type: bool
    default: false
  terminate_active:
    description:
      - When the slot must be dropped (O(state=absent) or O(recreate)) but is in use, terminate the
        session using it and wait until the slot is released (at most 30 seconds).
      - Without it, dropping an active slot fails and nothing is changed.
    type: bool
    default: false
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later.
  - The login role needs the C(REPLICATION) attribute (or to be a superuser); O(terminate_active) needs
    the right to signal the session (superuser or C(pg_signal_backend)).
  - Logical slots need C(wal_level=logical), physical slots C(wal_level=replica) or C(logical); the module
    checks this before anything is changed.
  - Creating a logical slot waits until transactions running at that moment have finished.
  - Before a slot is re-created with another output plugin, a temporary slot with that plugin is
    created and dropped, so a missing plugin fails the module before the old slot is dropped.
  - An unused slot retains WAL without bound (unless C(max_slot_wal_keep_size) is set); watch
    RV(slot.retained_wal_bytes) and drop slots that are no longer used.
seealso:
  - name: Replication slots
    description: PostgreSQL documentation of logical replication slots.
    link: https://www.postgresql.org/docs/current/logicaldecoding-explanation.html#LOGICALDECODING-REPLICATION-SLOTS
  - name: pg_replication_slots
    description: The view the returned state comes from.
    link: https://www.postgresql.org/docs/current/view-pg-replication-slots.html
  - module: inventium.logical_replication.publication
"""

EXAMPLES = r"""
- name: A logical slot for a subscription that is created with create_slot=false
  inventium.logical_replication.replication_slot:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    name: subscriber1_slot
    database: publisher
  register: slot

- name: Show how much WAL the slot retains
  ansible.builtin.debug:
    msg: "{{ slot.slot.retained_wal_bytes | human_readable }} retained ({{ slot.slot.wal_status }})"

- name: A failover slot decoding prepared transactions (PostgreSQL 17+)
  inventium.logical_replication.replication_slot:
    login_db: publisher
    name: ha_slot
    two_phase: true
    failover: true

- name: Switch a slot to another output plugin, even while it is in use
  inventium.logical_replication.replication_slot:
    login_db: publisher
    name: cdc_slot
    plugin: test_decoding
    recreate: true
    terminate_active: true

- name: A physical slot for a standby
  inventium.logical_replication.replication_slot:
    name: standby1
    slot_type: physical

- name: Drop a slot that a gone subscriber left behind
  inventium.logical_replication.replication_slot:
    name: old_slot
    state: absent
    terminate_active: true
"""

RETURN = r"""
queries:
  description: The statements that changed something (in check mode, that would have been executed).
  returned: always
  type: list
  elements: str
  sample:
    - SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot('subscriber1_slot', 'pgoutput')
slot:
  description:
    - The slot after the run, from C(pg_replication_slots) (in check mode, the predicted definition).
    - Empty when the slot does not exist.
  returned: always
  type: dict
  contains:
    name:
      description: Name of the slot.
      type: str
      sample: subscriber1_slot
    slot_type:
      description: V(logical) or V(physical).
      type: str
      sample: logical
    plugin:
      description: Output plugin (V(null) for physical slots).
      type: str
      sample: pgoutput
    database:
      description: Database of a logical slot (V(null) for physical slots).
      type: str
      sample: publisher
    temporary:
      description: Whether the slot is temporary (dropped when its session ends).
      type: bool
      sample: false
    active:
      description: Whether a session is using the slot.
      type: bool
      sample: true
    active_pid:
      description: Process ID of the session using the slot, V(null) when inactive.
      type: int
      sample: 4242
    restart_lsn:
      description: Oldest WAL position the slot still needs (V(null) for an unused physical slot).
      type: str
      sample: 0/1A2B3C8
    confirmed_flush_lsn:
      description: Position up to which the consumer of a logical slot confirmed receipt.
      type: str
      sample: 0/1A2B400
    wal_status:
      description: Availability of the WAL the slot needs (V(reserved), V(extended), V(unreserved), V(lost)).
      type: str
      sample: reserved
    safe_wal_size:
      description: Bytes of WAL that can still be written before the slot is in danger of losing WAL
        (V(null) unless C(max_slot_wal_keep_size) is set).
      type: int
      sample: null
    retained_wal_bytes:
      description: Bytes of WAL retained for the slot (C(pg_current_wal_lsn() - restart_lsn)).
      type: int
      sample: 16777216
    two_phase:
      description: Whether the slot decodes prepared transactions.
      type: bool
      returned: on PostgreSQL 14 and later
      sample: false
    two_phase_at:
      description: Position from which prepared transactions are decoded at PREPARE time.
      type: str
      returned: on PostgreSQL 18 and later
      sample: null
    conflicting:
      description: Whether a logical slot was invalidated by a recovery conflict (V(null) for physical slots).
      type: bool
      returned: on PostgreSQL 16 and later
      sample: false
    inactive_since:
      description: Since when the slot is inactive (ISO 8601), V(null) while active.
      type: str
      returned: on PostgreSQL 17 and later
      sample: "2025-11-21T23:30:00.123456+00:00"
    invalidation_reason:
      description: Why the slot was invalidated, V(null) when it is valid.
      type: str
      returned: on PostgreSQL 17 and later
      sample: null
    failover:
      description: Whether the slot is synchronized to standbys.
      type: bool
      returned: on PostgreSQL 17 and later
      sample: false
    synced:
      description: Whether the slot was synchronized from the primary (on a standby).
      type: bool
      returned: on PostgreSQL 17 and later
      sample: false
diff:
  description:
    - Before and after definition of the slot (name, type, plugin, database, C(two_phase), C(failover)),
      with C(--diff).
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: Definition before the run (empty when the slot did not exist).
      type: dict
    after:
      description: Definition after the run (empty when dropped).
      type: dict
"""

import re  # noqa: E402 - Ansible modules import after their documentation
import secrets  # noqa: E402
import time  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import psycopg, sql  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils.health import slot_query  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    PgModule,
    format_db_error,
)

MIN_SERVER_MAJOR = 13
TWO_PHASE_MAJOR = 14
CONFLICTING_MAJOR = 16
FAILOVER_MAJOR = 17
TWO_PHASE_AT_MAJOR = 18
DEFAULT_PLUGIN = "pgoutput"
SLOT_NAME = re.compile(r"[a-z0-9_]{1,63}\Z")
TERMINATE_TIMEOUT = 30.0
POLL_INTERVAL = 0.1
DEFINITION_KEYS = ("name", "slot_type", "plugin", "database", "two_phase", "failover")


class OptionError(ValueError):
    """Invalid module input; ``str()`` names the offending option and value."""


# ----------------------------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------------------------


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


def terminate_statement(pid):
    return sql.SQL("SELECT pg_catalog.pg_terminate_backend({})").format(sql.Literal(pid))


# ----------------------------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------------------------


class SlotModule:
    def __init__(self, m):
        self.m = m
        self.params = m.params
        self.major = m.server_major

    def read(self):
        row = self.m.query_one(slot_query(self.major), [self.params["name"]])
        if row is None:
            return None
        state = dict(row)
        if state.get("inactive_since") is not None:
            state["inactive_since"] = state["inactive_since"].isoformat()
        return state

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
        wal_level = self.m.query_one("SELECT current_setting('wal_level') AS v")["v"]
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

    def drop(self, current):
        """Drop the slot, terminating its user first when allowed. Returns nothing; fails the module."""
        name = self.params["name"]
        pid = current["active_pid"] if current["active"] else None
        if pid and not self.params["terminate_active"]:
            self.m.fail(
                f"replication slot {name} is active (used by {self.who_uses(pid)}); it is not dropped unless "
                "terminate_active is true",
                slot=current,
            )
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
                state = self.read()
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
                state = self.read()
                if not self.params["terminate_active"] or time.monotonic() > deadline or state is None:
                    self.m.fail(
                        format_db_error(exc, (), f"dropping replication slot {name} failed"), sqlstate=exc.sqlstate
                    )
                pid = state["active_pid"]
                time.sleep(POLL_INTERVAL)
            except psycopg.Error as exc:
                self.m.fail(format_db_error(exc, (), f"dropping replication slot {name} failed"), sqlstate=exc.sqlstate)

    def run(self):
        m, p = self.m, self.params
        if self.major < MIN_SERVER_MAJOR:
            m.fail(
                f"the replication_slot module supports PostgreSQL {MIN_SERVER_MAJOR} and later (server is {self.major})"
            )
        for option, minimum in version_problems(p, self.major):
            m.require_version(option, minimum)
        current = self.read()
        before = definition_of(current)

        if p["state"] == "absent":
            if current is None:
                m.exit(changed=False, diff=(before, {}), slot={})
            self.drop(current)
            m.exit(changed=True, diff=(before, {}), slot={})

        database = m.query_one("SELECT current_database()::text AS db")["db"]
        desired = desired_definition(p, database, self.major)
        logical = desired["slot_type"] == "logical"
        recreate = False
        if current is not None:
            found = differences(current, desired)
            if not found:
                m.exit(changed=False, diff=(before, before), slot=current)
            if not p["recreate"]:
                m.fail(
                    f"replication slot {p['name']} exists but differs: {'; '.join(found)}. Set recreate: true to drop "
                    "and re-create it (its position is lost)",
                    differences=found,
                    slot=current,
                )
            recreate = True
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
        if recreate and logical and current.get("plugin") != desired["plugin"] and not m.check_mode:
            self.check_plugin(desired)
        if recreate:
            self.drop(current)
        # A slot function must not run in a transaction that has written: autocommit, a statement of its own.
        m.execute(create_statement(desired, self.major), autocommit=True)
        slot = predicted_state(desired, self.major) if m.check_mode else self.read()
        if slot is None:
            m.fail(f"replication slot {p['name']} was created but has disappeared")
        if recreate:
            m.warn(
                f"replication slot {p['name']} was re-created; its consumer missed the changes made before "
                "the new slot existed"
            )
        m.exit(changed=True, diff=(before, definition_of(slot)), slot=slot)


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        slot_type=dict(type="str", default="logical", choices=["logical", "physical"]),
        plugin=dict(type="str"),
        database=dict(type="str"),
        two_phase=dict(type="bool"),
        failover=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        recreate=dict(type="bool", default=False),
        terminate_active=dict(type="bool", default=False),
    )


def main():
    m = PgModule(argument_spec=argument_spec())
    try:
        validate_params(m.params)
    except OptionError as exc:
        m.fail(str(exc))
    if m.params["slot_type"] == "logical" and m.params.get("database") and m.params["state"] == "present":
        # A logical slot belongs to the database of the session that creates it.
        m.params["login_db"] = m.params["database"]
    m.connect()
    SlotModule(m).run()


if __name__ == "__main__":
    main()
