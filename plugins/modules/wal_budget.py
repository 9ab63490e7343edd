#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: wal_budget
short_description: How long a publisher can hold a replication slot that nobody consumes (before pausing a subscription)
version_added: 0.2.0
description:
  - Read-only. Run it against the B(publisher), on the publisher's host, before pausing a subscription.
  - Measures the WAL rate (C(pg_current_wal_lsn()) sampled O(sample_seconds) apart), reads
    C(max_slot_wal_keep_size), the slot O(slot_name) (C(restart_lsn), C(wal_status), C(safe_wal_size) and the
    WAL it retains now) and the free disk under C(pg_wal) (C(os.statvfs) of C(data_directory/pg_wal), symlinks
    resolved).
  - Computes how long the slot can be held - C(min(disk free - O(disk_reserve), max_slot_wal_keep_size - retained)
    / rate) - and returns every input and the arithmetic as text lines in RV(lines).
  - The free disk is measured only where the module runs on the publisher's host, as a user that may read the
    data directory; elsewhere (or without the privilege to read C(data_directory)) RV(disk_free) is V(null) and
    RV(disk.reason) says why. The module checks that the server's backend is a child of the postmaster named in
    C(postmaster.pid), so the same path on another machine is not measured by mistake.
  - A rate of 0 (no WAL written while sampling) means the hold time is unlimited by rate (RV(hold) V(unlimited));
    a later burst still uses the headroom up.
  - With O(planned_minutes), RV(fits) says whether the pause fits. The module does not fail when it does not fit;
    the caller decides (C(playbooks/pause.yml) refuses).
  - RV(guard_settings) are the settings of a WAL guard for this server - C(max_slot_wal_keep_size) so that the
    slot is invalidated before the disk fills and, on PostgreSQL 18 and later, C(idle_replication_slot_timeout) -
    ready for M(inventium.logical_replication.server_settings).
author:
  - Inventium logical replication team (@inventium)
options:
  slot_name:
    description:
      - The replication slot the pause will hold (a subscription's slot is named after it unless set otherwise).
      - Without it (or when the slot does not exist, with a warning) the retained WAL counts as 0.
    type: str
  sample_seconds:
    description: Seconds between the two readings of C(pg_current_wal_lsn()). V(0) skips the sampling (rate 0).
    type: float
    default: 10
  planned_minutes:
    description: The planned pause in minutes; sets RV(fits).
    type: float
  disk_reserve:
    description:
      - Free space under C(pg_wal) never counted on (checkpoints, other slots, C(wal_keep_size), other files on the
        file system), as bytes or with a unit (V(512MB), V(1GB)).
    type: str
    default: 1GB
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Reading C(data_directory) needs a superuser or C(pg_read_all_settings).
  - The measured rate is a sample of O(sample_seconds); a workload that pulses needs a longer sample.
  - The hold time is a projection at the sampled rate; other slots and C(wal_keep_size) share the same disk.
seealso:
  - module: inventium.logical_replication.subscription_pause
  - module: inventium.logical_replication.server_settings
  - name: max_slot_wal_keep_size
    description: The limit beyond which a slot is invalidated (wal_status lost).
    link: https://www.postgresql.org/docs/current/runtime-config-replication.html#GUC-MAX-SLOT-WAL-KEEP-SIZE
"""

EXAMPLES = r"""
- name: How long can the publisher hold subscriber2's slot for a 30-minute pause?
  inventium.logical_replication.wal_budget:
    login_host: 127.0.0.1
    login_password: "{{ publisher_password }}"
    login_db: publisher
    slot_name: subscriber2_sub
    sample_seconds: 10
    planned_minutes: 30
  register: budget

- name: Show the arithmetic
  ansible.builtin.debug:
    msg: "{{ budget.lines }}"

- name: Refuse a pause that does not fit
  ansible.builtin.fail:
    msg: "the publisher cannot hold the slot for 30 minutes"
  when: not budget.fits
"""

RETURN = r"""
lines:
  description: Every input and the arithmetic, as text.
  returned: always
  type: list
  elements: str
  sample:
    - "sampled pg_current_wal_lsn 0/3000060 -> 0/3A00000: 117440416 bytes in 10.0 s"
    - "WAL rate: 11.2 MB/s (11744041.6 bytes/s)"
    - "hold time: min(disk 9663676416, max_slot_wal_keep_size 2147483648) / 11744041.6 bytes/s = ..."
wal_rate_bytes_per_second:
  description: WAL bytes written per second while sampling.
  returned: always
  type: float
sample:
  description: The sampling - C(start_lsn), C(end_lsn), C(seconds), C(bytes), C(bytes_per_second).
  returned: always
  type: dict
max_slot_wal_keep_size:
  description: C(max_slot_wal_keep_size) in bytes, V(null) when unlimited (V(-1)).
  returned: always
  type: int
data_directory:
  description: The server's data directory, V(null) when this role may not read it.
  returned: always
  type: str
disk_free:
  description: Free bytes under C(pg_wal) (for unprivileged users), V(null) when not measurable here.
  returned: always
  type: int
disk:
  description: The free disk under C(pg_wal).
  returned: always
  type: dict
  contains:
    path:
      description: C(pg_wal) with symlinks resolved.
      type: str
    free_bytes:
      description: Free bytes for unprivileged users, V(null) when not measurable here.
      type: int
    reserve_bytes:
      description: O(disk_reserve) in bytes.
      type: int
    reason:
      description: Why RV(disk.free_bytes) is V(null), else V(null).
      type: str
slot:
  description: The slot as M(inventium.logical_replication.replication_slot) returns it, V(null) when absent.
  returned: always
  type: dict
retained_wal_bytes:
  description: WAL the slot retains now (server position minus C(restart_lsn)), V(null) without a slot.
  returned: always
  type: int
hold_seconds:
  description: How long the slot can be held at the measured rate; V(null) when unlimited or unknown (RV(hold)).
  returned: always
  type: float
hold:
  description: V(limited), V(unlimited) (rate 0) or V(unknown) (neither limit known).
  returned: always
  type: str
limited_by:
  description: The bound that is reached first - V(disk) or V(max_slot_wal_keep_size); V(null) when none is known.
  returned: always
  type: str
headrooms:
  description: Bytes left per bound.
  returned: always
  type: dict
fits:
  description:
    - Whether O(planned_minutes) fits in the hold time; V(null) without O(planned_minutes), V(false) when unknown.
  returned: always
  type: bool
guard_settings:
  description: Settings of a WAL guard for this server (for M(inventium.logical_replication.server_settings)).
  returned: always
  type: dict
  sample: {max_slot_wal_keep_size: 9216MB, idle_replication_slot_timeout: 45min}
guard_lines:
  description: How the guard's values were chosen.
  returned: always
  type: list
  elements: str
server_major:
  description: The publisher's major version.
  returned: always
  type: int
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._pause import (  # noqa: E402
    DEFAULT_DISK_RESERVE,
    run_wal_budget,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            slot_name=dict(type="str"),
            sample_seconds=dict(type="float", default=10.0),
            planned_minutes=dict(type="float"),
            disk_reserve=dict(type="str", default=DEFAULT_DISK_RESERVE),
        )
    )
    run_wal_budget(m)


if __name__ == "__main__":
    main()
