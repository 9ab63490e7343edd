#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: write_fence
short_description: Stop the application's writes on a primary before a cutover, and lift that fence on rollback
version_added: 0.3.0
description:
  - Run against the B(old primary) (the publisher a switchover moves away from). V(fenced) stops the writes of the
    application roles named in O(roles); V(unfenced) puts each role back exactly as it was.
  - O(method=read_only) runs C(ALTER ROLE ... SET default_transaction_read_only = on)
    (new sessions of the role start read-only); O(method=nologin) runs C(ALTER ROLE ... NOLOGIN)
    (new sessions of the role are refused). Role settings are read when a session starts, so with O(terminate) the
    roles' sessions that started before the fence are terminated (C(pg_terminate_backend)) after the fence is
    committed; the application reconnects under the fence.
  - The fence is remembered as the role's comment (C(COMMENT ON ROLE), a shared object's comment), a JSON
    object C({"fence", "method", "fenced_at", "previous", "previous_comment"}) that keeps the role's
    C(default_transaction_read_only) setting (role-wide, C(pg_db_role_setting) with C(setdatabase = 0);
    V(null) when none) and C(rolcanlogin) from before, and the role's own comment. V(unfenced) restores those
    and the comment.
  - Refused before anything changes, naming the role and why - for every role, all checked before the first
    C(ALTER) - a role that does not exist, a superuser (it can override any fence), a role with REPLICATION (never
    fence the replication role, or replication itself would stop), the user the module connects as, a role that owns
    a subscription (its apply worker runs as that role), a role already fenced with the other method, and with
    O(method=read_only) a role with a database-specific C(default_transaction_read_only) that is not on (C(ALTER ROLE
    ... IN DATABASE ... SET) overrides the role-wide setting).
  - A role already fenced changes nothing (its sessions that started before its fence are still reported and, with
    O(terminate), terminated). A fenced role whose setting was lifted by hand is fenced again, keeping the first
    record. V(unfenced) on a role this module never fenced changes nothing.
author:
  - Inventium logical replication team (@inventium)
options:
  roles:
    description:
      - The roles the application logs in as, as SQL identifiers (quote a name to keep upper-case letters).
    type: list
    elements: str
    required: true
  state:
    description: V(fenced) or V(unfenced).
    type: str
    choices: [fenced, unfenced]
    default: fenced
  method:
    description:
      - V(read_only) - new sessions start with C(default_transaction_read_only = on); they can still read.
      - V(nologin) - new sessions are refused.
      - See the notes for which to use.
    type: str
    choices: [read_only, nologin]
    default: read_only
  terminate:
    description:
      - With O(state=fenced), terminate the roles' client sessions that started before the fence (after the fence is
        committed) and wait until they are gone. Without it, they are only reported in RV(sessions_before_fence).
    type: bool
    default: true
  terminate_timeout:
    description:
      - Seconds to wait after C(pg_terminate_backend) until none of those sessions remains; the module then fails,
        naming the pids that remain (the fence stays in place).
    type: float
    default: 30
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
  - O(method=read_only) is cooperative - a session of the role can still run C(SET default_transaction_read_only = off)
    or C(BEGIN READ WRITE) and write. It stops an application that does not do that, and the application can keep
    reading (a read path stays up during the cutover). Use it for the usual application.
  - O(method=nologin) cannot be bypassed by the role's sessions, but the application cannot even read. Use it when
    the application (or anything logging in as the role) might turn read-only off, or when no read may reach the
    old primary either.
  - Neither method stops a session that logs in as another role and runs C(SET ROLE); fence the roles sessions log
    in as.
  - The C(ALTER ROLE) and C(COMMENT ON ROLE) statements run in one transaction; the terminations run after
    C(COMMIT), so that a reconnecting session finds the fence. RV(fenced_at) is the server's C(clock_timestamp())
    right after that commit - the start of the write-unavailable window.
  - Needs C(CREATEROLE) (and, on PostgreSQL 16+, C(ADMIN OPTION) on the roles) and C(pg_signal_backend) to
    terminate sessions; a superuser login has them.
seealso:
  - module: inventium.logical_replication.subscription
"""

EXAMPLES = r"""
- name: Fence the application's writes on the old primary
  inventium.logical_replication.write_fence:
    login_host: 127.0.0.1
    login_port: 5432
    login_password: "{{ publisher_password }}"
    login_db: publisher
    roles: [app_writer, app_batch]
  register: fence

- name: Show when writes stopped
  ansible.builtin.debug:
    msg: "writes fenced at {{ fence.fenced_at }}; {{ fence.terminated | length }} sessions terminated"

- name: Lift the fence (rollback)
  inventium.logical_replication.write_fence:
    login_host: 127.0.0.1
    login_port: 5432
    login_password: "{{ publisher_password }}"
    login_db: publisher
    roles: [app_writer, app_batch]
    state: unfenced
"""

RETURN = r"""
roles:
  description: One entry per role of O(roles), in that order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The role's name.
      type: str
    fenced:
      description: Whether the role is fenced after the run (predicted in check mode).
      type: bool
    method:
      description: The fence's method (with O(state=unfenced), the method of the fence lifted); V(null) when none.
      type: str
    fenced_at:
      description: The time in the role's fence record (ISO 8601 UTC, server clock); V(null) when never fenced.
      type: str
    previous:
      description:
        - The role before the fence - C(default_transaction_read_only) (the role-wide setting's text, V(null) when
          none) and C(can_login).
      type: dict
    changed:
      description: Whether this run changed the role.
      type: bool
  sample:
    - {name: app_writer, fenced: true, method: read_only, fenced_at: "2026-12-04T16:00:00.123456Z",
       previous: {default_transaction_read_only: null, can_login: true}, changed: true}
fenced_at:
  description:
    - The server's C(clock_timestamp()) right after the fence was committed - the start of the write-unavailable
      window (ISO 8601 UTC, microseconds). When every role was already fenced, the earliest fence time of their
      records. V(null) with O(state=unfenced) and for a new fence in check mode.
  returned: always
  type: str
unfenced_at:
  description: The server's C(clock_timestamp()) right after the fence was lifted; V(null) when nothing was lifted.
  returned: with O(state=unfenced)
  type: str
sessions_before_fence:
  description:
    - The roles' client sessions that started before their fence (read before any termination) - C(pid), C(role),
      C(database), C(application_name), C(state) (the last two V(null) where this login may not read them).
  returned: always
  type: list
  elements: dict
terminated:
  description:
    - The sessions terminated (in check mode, that would be) - C(pid), C(role), C(database), C(application_name),
      C(state).
  returned: always
  type: list
  elements: dict
remaining:
  description: The sessions still there after O(terminate_timeout).
  returned: when the module fails for them
  type: list
  elements: dict
queries:
  description: The statements run (or, in check mode, that would be run).
  returned: always
  type: list
  elements: str
  sample:
    - ALTER ROLE "app_writer" SET "default_transaction_read_only" = on
    - >-
      COMMENT ON ROLE "app_writer" IS '{"fence":"inventium.logical_replication.write_fence","method":"read_only",
      "fenced_at":"2026-12-04T16:00:00.123456Z","previous":{"default_transaction_read_only":null,"can_login":true}}'
    - SELECT pid, pg_catalog.pg_terminate_backend(pid) AS signalled FROM unnest('{4242}'::int[]) AS t(pid)
diff:
  description: Per role C(fenced), C(method), C(default_transaction_read_only) and C(can_login), before and after.
  returned: when diff mode is enabled
  type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._write_fence import (  # noqa: E402
    METHODS,
    WriteFence,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            roles=dict(type="list", elements="str", required=True),
            state=dict(type="str", default="fenced", choices=["fenced", "unfenced"]),
            method=dict(type="str", default="read_only", choices=list(METHODS)),
            terminate=dict(type="bool", default=True),
            terminate_timeout=dict(type="float", default=30.0),
        ),
    )
    WriteFence(m).run()


if __name__ == "__main__":
    main()
