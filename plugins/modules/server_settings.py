#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: server_settings
short_description: Manage PostgreSQL server parameters with ALTER SYSTEM, pending values included
version_added: 0.1.0
description:
  - Sets server parameters (GUCs) such as C(wal_level), C(max_replication_slots), C(max_wal_senders),
    C(max_logical_replication_workers), C(max_worker_processes), C(max_slot_wal_keep_size),
    C(logical_decoding_work_mem) or C(track_commit_timestamp) with C(ALTER SYSTEM), and removes them
    from C(postgresql.auto.conf) with C(ALTER SYSTEM RESET).
  - Values are compared the way the server understands them, using the server's own C(pg_settings)
    metadata, so V(1GB) equals V(1024MB), V(5min) equals V(300s), V(on) equals V(true) and
    enum values are case-insensitive.
  - The desired value is compared with the running value B(and) with the value the configuration
    files hold (C(pg_file_settings), in particular C(postgresql.auto.conf)). A different pending
    value is a change. Asking for the running value while another value is pending removes the
    pending one, so for example a pending C(wal_level=replica) can be undone before a restart.
    When the value without the C(postgresql.auto.conf) entry already is the desired one the entry
    is removed (C(ALTER SYSTEM RESET)) instead of written.
  - After any change the configuration is reloaded with the function C(pg_reload_conf), which applies
    reloadable parameters and makes C(pg_settings.pending_restart) accurate for the others.
  - The module never restarts the server. It reports the parameters waiting for one in
    RV(pending_restart) and RV(restart_required).
  - Every name and value is validated before anything is written. Unknown names fail with the
    closest valid names; invalid enum values and out-of-range numbers fail with the server's own
    limits.
  - RV(previous) holds the values to pass back as O(settings) to restore the state before the run.
author:
  - Inventium logical replication team (@inventium)
options:
  settings:
    description:
      - Parameters to set, as a dictionary of name to value.
      - Names are case-insensitive. Custom parameters of extensions (C(prefix.name)) are accepted
        even when the extension is not loaded yet.
      - Values may carry units (V(1GB), V(512kB), V(250ms), V(5min)); a number without unit is in the
        unit of the parameter (column C(unit) of C(pg_settings)). Special values such as V(-1) are
        numbers too.
      - Booleans may be given as YAML booleans or as V(on)/V(off), V(true)/V(false), V(yes)/V(no),
        V(1)/V(0).
      - List parameters (C(shared_preload_libraries), C(search_path), ...) accept a list or a
        comma-separated string.
    type: dict
  reset:
    description:
      - Names of parameters to remove from C(postgresql.auto.conf) (C(ALTER SYSTEM RESET)), so the
        value of C(postgresql.conf) or the built-in default applies again.
      - A name must not appear in both O(settings) and O(reset).
    type: list
    elements: str
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
  - Requires a superuser, or on PostgreSQL 15 and later a role granted C(ALTER SYSTEM) on the parameters,
    read access to C(pg_file_settings) (C(SELECT) on the view and C(EXECUTE) on the function
    C(pg_show_all_file_settings)) and C(EXECUTE) on the function C(pg_reload_conf).
  - Any parameter of C(pg_settings) can be managed, the failover-slot ones included - C(sync_replication_slots) and
    C(synchronized_standby_slots) (PostgreSQL 17 or later), C(idle_replication_slot_timeout) (18 or later). A
    parameter of a newer PostgreSQL than the server fails before anything is written, naming the major it needs
    (C(parameter sync_replication_slots requires PostgreSQL >= 17 (server is 16))).
  - Elements of list parameters are taken literally (double quotes protect commas and spaces).
    C(ALTER SYSTEM) cannot write an empty list; V([]) or V('') is accepted only when the value without
    the C(postgresql.auto.conf) entry is empty (the entry is then removed).
  - C(ALTER SYSTEM) cannot run in a transaction block, so each parameter is written by its own
    statement. All values are validated first; if the server still rejects a statement, the
    parameters already written by this run are restored before the module fails.
  - Parameters set on the server command line (C(source=command line)) cannot be changed with
    C(ALTER SYSTEM); asking for a different value fails.
  - Parameters overridden per role, per database or by the client (C(ALTER ROLE ... SET),
    C(PGOPTIONS)) show that value in RV(settings.running); comparisons use the server-wide value
    from the configuration files.
seealso:
  - name: ALTER SYSTEM
    description: PostgreSQL documentation of ALTER SYSTEM.
    link: https://www.postgresql.org/docs/current/sql-altersystem.html
  - name: pg_file_settings
    description: The view that shows the values the configuration files hold.
    link: https://www.postgresql.org/docs/current/view-pg-file-settings.html
"""

EXAMPLES = r"""
- name: Enable logical decoding and size the replication resources
  inventium.logical_replication.server_settings:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    settings:
      wal_level: logical
      max_replication_slots: 10
      max_wal_senders: 10
      max_logical_replication_workers: 4
      max_slot_wal_keep_size: 10GB
      logical_decoding_work_mem: 128MB
      track_commit_timestamp: true
  register: pg_settings

- name: Restart PostgreSQL when a parameter waits for it
  ansible.builtin.service:
    name: postgresql
    state: restarted
  when: pg_settings.restart_required

- name: Undo the change later (the "down migration")
  inventium.logical_replication.server_settings:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    settings: "{{ pg_settings.previous }}"

- name: Remove parameters from postgresql.auto.conf
  inventium.logical_replication.server_settings:
    login_unix_socket: /var/run/postgresql
    reset:
      - max_slot_wal_keep_size
      - logical_decoding_work_mem
"""

RETURN = r"""
queries:
  description: The statements that were executed (in check mode, that would have been executed).
  returned: always
  type: list
  elements: str
  sample:
    - ALTER SYSTEM SET "wal_level" = 'logical'
    - SELECT pg_reload_conf()
settings:
  description:
    - State of every parameter named in O(settings) and O(reset) after the run (in check mode, the
      predicted state).
  returned: always
  type: dict
  contains:
    running:
      description:
        - The value in effect, formatted like C(SHOW) (memory and time with the largest exact unit,
          booleans V(on)/V(off)); unit-less numbers are numbers.
      type: raw
      sample: 128MB
    pending:
      description:
        - The value the configuration files hold when it differs from the running value, otherwise
          V(null). For parameters with context C(postmaster) it takes effect at the next restart.
      type: raw
      sample: logical
    unit:
      description: Unit of plain numbers for this parameter (C(pg_settings.unit)), V(null) if none.
      type: str
      sample: 8kB
    context:
      description: When a change takes effect (C(pg_settings.context), for example C(postmaster) or C(sighup)).
      type: str
      sample: postmaster
    source:
      description: Where the running value comes from (C(pg_settings.source)).
      type: str
      sample: configuration file
    pending_restart:
      description: Whether the parameter waits for a server restart.
      type: bool
      sample: true
  sample:
    wal_level:
      running: replica
      pending: logical
      unit: null
      context: postmaster
      source: default
      pending_restart: true
previous:
  description:
    - Values before the run of the parameters this run wrote or reset. Passed back as O(settings),
      they restore the state before the run (pending values included).
    - Empty when nothing was changed.
  returned: always
  type: dict
  sample:
    wal_level: replica
    logical_decoding_work_mem: 64MB
restart_required:
  description: Whether the server must be restarted for the configuration to take full effect.
  returned: always
  type: bool
  sample: true
pending_restart:
  description:
    - Sorted names of the parameters whose configured value waits for a server restart, including
      parameters this run did not touch.
  returned: always
  type: list
  elements: str
  sample: [wal_level]
diff:
  description: Before and after state of the parameters (see RV(settings)), with C(--diff).
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: State before the run.
      type: dict
    after:
      description: State after the run (predicted in check mode).
      type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._settings import run  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            settings=dict(type="dict"),
            reset=dict(type="list", elements="str"),
        ),
    )
    m.connect()
    run(m)


if __name__ == "__main__":
    main()
