#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: subscription_pause
short_description: Pause a subscription with a record of who, why and until when; resume it and wait until caught up
version_added: 0.2.0
description:
  - Run against the B(subscriber). V(paused) disables the subscription (C(ALTER SUBSCRIPTION ... DISABLE)) and
    records the pause as the subscription's comment (C(COMMENT ON SUBSCRIPTION)), a small JSON object
    C({"paused_by", "reason", "since", "until"}) (times in UTC, ISO 8601; C(until) only with O(until) or
    O(pause_minutes)). A comment the subscription had before is kept in the record and restored on resume.
    Replication status (C(replication_info), C(make status)) shows the record and warns when C(until) has passed.
  - Pausing a paused subscription (disabled, with a record) changes nothing and keeps the record.
  - V(resumed) first checks the subscription's slot on the publisher - a slot that is gone or lost
    (C(wal_status) V(lost)) fails at once with an explanation and the re-synchronisation path, leaving the
    subscription as it is - then enables the subscription, clears the record and (O(wait)) waits until the
    subscriber has confirmed (C(pg_stat_subscription.latest_end_lsn)) the publisher's WAL position taken at resume
    time. The wait is bounded by O(timeout); it reports the catch-up seconds and bytes per second in
    RV(catch_up) and its progress in RV(progress). Ansible cannot stream a module's output, so the progress lines
    are shown when the module ends.
  - A slot lost while waiting fails at once too, never a hang.
  - With O(influx_endpoints), a pause writes a marker C(workload,workload=pause,phase=start) and a resume a
    C(phase=stop) marker to the lab's InfluxDB, so the dashboards shade the pause. RV(marker) says whether it was
    written and why not.
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the subscription, as an SQL identifier (quote it to keep upper-case letters).
      - Optional when the database O(login_db) has exactly one subscription.
    type: str
  state:
    description: V(paused) or V(resumed).
    type: str
    choices: [paused, resumed]
    required: true
  reason:
    description: Why the subscription is paused (required with O(state=paused)); kept in the record.
    type: str
  paused_by:
    description: Who pauses it; kept in the record. Defaults to the user the module runs as.
    type: str
  until:
    description:
      - Planned end of the pause, ISO 8601 (a time without zone is UTC). Mutually exclusive with O(pause_minutes).
    type: str
  pause_minutes:
    description: Planned length of the pause in minutes (sets C(until)). Mutually exclusive with O(until).
    type: float
  publisher:
    description:
      - How the module (on the host it runs on) reaches the publisher, to read the slot and the WAL position
        when resuming - the keys of the P(inventium.logical_replication.subscription#module) module's O(publisher)
        option (libpq keywords).
      - Without it the subscription's own connection (C(pg_subscription.subconninfo), readable by superusers) is
        used, which works where this host reaches the publisher the way the subscriber's server does.
      - Only used with O(state=resumed). The password never appears in the output.
    type: dict
  wait:
    description:
      - With O(state=resumed), wait until the subscriber caught up with the publisher's position at resume time.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for the catch-up; the module then fails and the subscription stays enabled.
    type: float
    default: 300
  poll_interval:
    description: Seconds between two readings while waiting.
    type: float
    default: 0.5
  progress_interval:
    description: Seconds between two lines of RV(progress).
    type: float
    default: 5
  influx_endpoints:
    description:
      - Path of the lab's C(endpoints.json) on the managed host. When it has an C(influxdb) section, a pause writes
        the point C(workload,workload=pause,phase=start) and a resume C(phase=stop) (fields C(subscription),
        C(reason), C(paused_by), C(planned_minutes); C(seconds), C(bytes_per_second) of the catch-up).
      - Without it, or without the file on the managed host, nothing is written and RV(marker.reason) says so.
        A failed write is a warning, never a failure.
    type: path
  influx_node:
    description: Tag C(node) of the markers; defaults to the subscription's name.
    type: str
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.publisher
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Pause and resume are each one transaction on the subscriber (C(ALTER SUBSCRIPTION) and C(COMMENT ON
    SUBSCRIPTION) together); only the owner of the subscription (or a superuser) may run them.
  - While paused, the publisher keeps every WAL segment from the slot's C(restart_lsn) on; check how long it can
    with M(inventium.logical_replication.wal_budget) first (C(playbooks/pause.yml) does).
  - In check mode a resume still reads the slot on the publisher (and fails when it is gone or lost), but enables
    nothing and does not wait.
seealso:
  - module: inventium.logical_replication.wal_budget
  - module: inventium.logical_replication.subscription
"""

EXAMPLES = r"""
- name: Pause subscriber2's subscription for an hour
  inventium.logical_replication.subscription_pause:
    login_host: 127.0.0.1
    login_port: 5434
    login_password: "{{ subscriber_password }}"
    login_db: subscriber
    name: subscriber2_sub
    state: paused
    reason: disk replacement on subscriber2
    pause_minutes: 60

- name: Resume it and wait until caught up (at most 10 minutes)
  inventium.logical_replication.subscription_pause:
    login_host: 127.0.0.1
    login_port: 5434
    login_password: "{{ subscriber_password }}"
    login_db: subscriber
    name: subscriber2_sub
    state: resumed
    publisher: {host: 127.0.0.1, port: 5432, dbname: publisher, user: postgres, password: "{{ publisher_password }}"}
    timeout: 600
  register: resumed

- name: Show the catch-up
  ansible.builtin.debug:
    msg: "{{ resumed.progress + ['caught up in %s s at %s bytes/s' | format(resumed.catch_up.seconds,
            resumed.catch_up.bytes_per_second)] }}"
"""

RETURN = r"""
subscription:
  description: The subscription after the run (predicted in check mode).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the subscription.
      type: str
    enabled:
      description: Whether it is enabled.
      type: bool
    slot_name:
      description: Its slot on the publisher.
      type: str
    paused:
      description: Disabled with a pause record.
      type: bool
    pause:
      description: The pause record, V(null) when none.
      type: dict
pause:
  description: The pause record - C(paused_by), C(reason), C(since), C(until) (when planned).
  returned: with O(state=paused)
  type: dict
  sample: {paused_by: alice, reason: disk replacement, since: "2026-12-04T16:00:00Z", until: "2026-12-04T17:00:00Z"}
slot:
  description: The subscription's slot on the publisher at resume time.
  returned: with O(state=resumed)
  type: dict
target_lsn:
  description: The publisher's WAL position at resume time (what the subscriber must confirm).
  returned: with O(state=resumed)
  type: str
catch_up:
  description:
    - C(caught_up), C(seconds), C(bytes) (the slot's C(confirmed_flush_lsn) to RV(target_lsn)),
      C(bytes_per_second), C(start_lsn), C(target_lsn), C(reached_lsn).
  returned: with O(state=resumed) and O(wait), not in check mode
  type: dict
progress:
  description: Lines written while waiting (shown when the module ends; Ansible cannot stream them).
  returned: with O(state=resumed), also on failure
  type: list
  elements: str
marker:
  description: The InfluxDB marker of the pause or resume.
  returned: when something changed
  type: dict
  contains:
    written:
      description: Whether the marker reached InfluxDB.
      type: bool
    reason:
      description: Why it was not written (no InfluxDB configured, check mode, the write failed), else V(null).
      type: str
resync_needed:
  description: V(true) when the module failed because the slot is gone or lost.
  returned: on that failure
  type: bool
queries:
  description: The statements run (or, in check mode, that would be run).
  returned: always
  type: list
  elements: str
  sample:
    - ALTER SUBSCRIPTION "subscriber2_sub" DISABLE
    - >-
      COMMENT ON SUBSCRIPTION "subscriber2_sub" IS
      '{"paused_by":"alice","reason":"disk","since":"2026-12-04T16:00:00Z"}'
diff:
  description: C(enabled), C(paused) and C(pause) before and after, with C(--diff).
  returned: when diff mode is enabled
  type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._pause import PauseModule  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            name=dict(type="str"),
            state=dict(type="str", required=True, choices=["paused", "resumed"]),
            reason=dict(type="str"),
            paused_by=dict(type="str"),
            until=dict(type="str"),
            pause_minutes=dict(type="float"),
            publisher=publisher_option_spec(),
            wait=dict(type="bool", default=True),
            timeout=dict(type="float", default=300.0),
            poll_interval=dict(type="float", default=0.5),
            progress_interval=dict(type="float", default=5.0),
            influx_endpoints=dict(type="path"),
            influx_node=dict(type="str"),
        ),
        mutually_exclusive=[("until", "pause_minutes")],
    )
    m.add_secret((m.params.get("publisher") or {}).get("password"))
    PauseModule(m).run()


if __name__ == "__main__":
    main()
