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
  - When O(failover) is the only difference (PostgreSQL 17 or later), the slot is changed in place with the
    replication command C(ALTER_REPLICATION_SLOT) (option C(FAILOVER true) or C(FAILOVER false)) and keeps its
    position (no O(recreate) needed). PostgreSQL has no SQL function for this, so the module opens a second, replication
    connection (C(replication=database)) with the same login - the role needs C(REPLICATION) (or superuser) and
    C(pg_hba.conf) must allow it. The slot must not be in use; an active slot is changed only with
    O(terminate_active=true). A slot synchronized from a primary (C(synced)) is changed on the primary.
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
  - Several slots in one call - O(slots), a list of items with the options of the single form - read
    C(pg_replication_slots) once, validate and plan every item, and only then create or drop. Bad input in
    any item (an invalid name, a duplicate name, an option the server's version lacks, a slot that differs
    without O(recreate), an active slot without O(terminate_active), a missing output plugin, ...) fails
    with a message that starts with the item's index and name, as in "slots[2] (name=foo)", with nothing
    changed. Errors that Ansible finds in the arguments (an unknown suboption, a value of the wrong type or
    not among the choices) fail before the module runs; Ansible's message names the option and O(slots).
  - Because slot functions are not transactional, an item that fails while being applied (for example a
    slot whose consumer cannot be terminated within 30 seconds) leaves the items before it applied. The module
    fails naming that item and returns the statements that ran (RV(queries)) and the results of the items
    applied before it (RV(slots)); re-running the task converges the rest.
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the slot. PostgreSQL allows lower-case letters, digits and underscores only, at most 63
        characters.
      - Required unless O(slots) is given; mutually exclusive with O(slots).
    type: str
  slots:
    description:
      - Several slots in one call, each item with the options of the single form. Mutually exclusive with
        O(name), O(slot_type), O(plugin), O(database), O(two_phase), O(failover) and O(state); O(recreate) and
        O(terminate_active) at the top level are the defaults of the items that do not set them.
      - The logical slots to create must all be in one database - the module connects to the O(slots[].database)
        the items name (otherwise to O(login_db)), and an item without O(slots[].database) gets that database.
      - The result lists one entry per item in RV(slots); RV(diff) is keyed by slot name.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the slot, see O(name). Each name at most once in the list.
        type: str
        required: true
      slot_type:
        description: See O(slot_type).
        type: str
        choices: [logical, physical]
        default: logical
      plugin:
        description: See O(plugin).
        type: str
      database:
        description: See O(database) and above.
        type: str
      two_phase:
        description: See O(two_phase).
        type: bool
      failover:
        description: See O(failover).
        type: bool
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
        default: present
      recreate:
        description: See O(recreate). Defaults to the top-level O(recreate).
        type: bool
      terminate_active:
        description: See O(terminate_active). Defaults to the top-level O(terminate_active).
        type: bool
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
      - An existing slot is changed in place (C(ALTER_REPLICATION_SLOT)), keeping its position.
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
      - When the slot must be dropped (O(state=absent) or O(recreate)) or its O(failover) changed but is in use,
        terminate the session using it and wait until the slot is released (at most 30 seconds).
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

- name: Several slots in one call (one connection, one read of pg_replication_slots)
  inventium.logical_replication.replication_slot:
    login_db: publisher
    terminate_active: true
    slots:
      - name: subscriber1_slot
      - name: cdc_slot
        plugin: test_decoding
      - name: standby1
        slot_type: physical
      - name: old_slot
        state: absent
  register: slots

- name: Show which slots changed
  ansible.builtin.debug:
    msg: "{{ slots.slots | selectattr('changed') | map(attribute='name') }}"

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
slots:
  description:
    - One entry per item of O(slots), in order.
    - When the module fails while applying an item, the entries of the items applied before it.
  returned: when O(slots) is given
  type: list
  elements: dict
  contains:
    name:
      description: Name of the slot.
      type: str
      sample: subscriber1_slot
    changed:
      description: Whether this slot was (in check mode, would be) created, re-created or dropped.
      type: bool
      sample: true
    slot:
      description: The slot after the run, as RV(slot) of the single form.
      type: dict
    queries:
      description: The statements of this slot, as RV(queries).
      type: list
      elements: str
    diff:
      description: Before and after definition of this slot, as RV(diff) of the single form.
      returned: when diff mode is enabled
      type: dict
slot:
  description:
    - The slot after the run, from C(pg_replication_slots) (in check mode, the predicted definition).
    - Empty when the slot does not exist.
  returned: when O(name) is given
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
    - With O(slots), C(before) and C(after) map each slot name to its definition; a slot that does not exist
      on that side has no key.
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

from ansible_collections.inventium.logical_replication.plugins.module_utils._object_list import (  # noqa: E402
    check_items,
    inherit,
    run_items,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import (  # noqa: E402 - after the docs
    OneDatabase,
    OptionError,
    SlotModule,
    session_database,
    validate_params,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def slot_options(top_level):
    """The options of one slot; at the top level (the single form) with the defaults of ``recreate`` and co."""
    return dict(
        name=dict(type="str", required=not top_level),
        slot_type=dict(type="str", default="logical", choices=["logical", "physical"]),
        plugin=dict(type="str"),
        database=dict(type="str"),
        two_phase=dict(type="bool"),
        failover=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        # An item that does not set them takes the top-level value.
        recreate=dict(type="bool", default=False if top_level else None),
        terminate_active=dict(type="bool", default=False if top_level else None),
    )


INHERITED = ("recreate", "terminate_active")


def argument_spec():
    return dict(**slot_options(top_level=True), slots=dict(type="list", elements="dict", options=slot_options(False)))


def run_list(m):
    items = [inherit(m.params, item, INHERITED) for item in m.params["slots"]]
    one_database = OneDatabase()
    check_items(m, "slots", items, one_database)
    if one_database.database:
        m.params["login_db"] = one_database.database
    m.connect()
    slots = SlotModule(m)
    slots.read_all()
    run_items(m, "slots", items, slots.plan, slots.apply, transactional=False)


def main():
    single_only = [key for key in slot_options(True) if key not in INHERITED]
    m = PgModule(
        argument_spec=argument_spec(),
        required_one_of=[("name", "slots")],
        mutually_exclusive=[("slots", key) for key in single_only],
    )
    if m.params["slots"] is not None:
        run_list(m)
        return
    try:
        validate_params(m.params)
    except OptionError as exc:
        m.fail(str(exc))
    if session_database(m.params):
        # A logical slot belongs to the database of the session that creates it.
        m.params["login_db"] = session_database(m.params)
    m.connect()
    SlotModule(m).run()


if __name__ == "__main__":
    main()
