#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: load_generator
short_description: Lab workload - steady or sinusoidal INSERT/UPDATE/DELETE load on the books table for a bounded time
version_added: 0.1.0
description:
  - With O(pattern=hum), issues single-row INSERT, UPDATE and DELETE statements (each its own transaction)
    on O(table) at a steady O(rate) per second for O(duration) seconds.
  - With O(pattern=pulse), the rate follows O(rate) + O(amplitude) * sin(2 pi t / O(period)).
  - The generator follows the schedule's integral - it runs an operation whenever it is behind and sleeps
    otherwise; a server that cannot keep up makes it fall behind (RV(behind)) rather than burst.
  - Only rows in the reserved id range O(id_base) .. O(id_base) + 999,999,999 are inserted, updated or
    deleted (rows left by earlier runs are picked up); the seed's books (ids 1 to 5) are never touched.
    O(operation=cleanup) deletes every row of the range.
  - Returns the achieved rate overall and per window of O(report_interval) seconds next to the target.
  - Survives a server restart - when the connection is lost (SQLSTATE class 08, V(57P01) admin shutdown or
    C(pg_terminate_backend), V(57P02), V(57P03), or a connection that broke without an answer), the operation in
    flight is counted - in RV(failed_operations) when the server reported the error (it aborted the statement),
    in RV(unknown_outcomes) when the connection broke without an answer - and the generator reconnects, waiting
    0.1 s, 0.2 s, 0.4 s ... up to O(reconnect_max_seconds) between attempts, for at most O(outage_max_seconds)
    per outage. After reconnecting it reads back the row of each interrupted operation - an unknown outcome to learn
    whether it committed (RV(unknown_applied)), a reported failure to confirm it (one found committed after all is
    counted as an unknown outcome that committed). Operations the schedule wanted meanwhile are skipped
    (RV(skipped)), not made up in a burst. RV(reconnect_log) has one line per loss, attempt and reconnect.
  - Any other error (a constraint violation, a syntax error, a permission error, a wrong password when
    reconnecting) ends the run with a failure, as does an outage longer than O(outage_max_seconds).
author:
  - Inventium logical replication team (@inventium)
options:
  operation:
    description:
      - V(run) generates load, V(cleanup) deletes the rows of the reserved id range.
    type: str
    choices: [run, cleanup]
    default: run
  pattern:
    description:
      - V(hum) is a steady rate, V(pulse) a sinusoidal one.
    type: str
    choices: [hum, pulse]
    default: hum
  rate:
    description:
      - Operations per second (the mean rate of V(pulse)).
    type: float
    default: 20
  amplitude:
    description:
      - V(pulse) only - how far the rate swings above and below O(rate); at most O(rate).
    type: float
    default: 0
  period:
    description:
      - V(pulse) only - seconds of one full sine cycle.
    type: float
    default: 60
  duration:
    description:
      - Seconds to run.
    type: float
    default: 30
  mix:
    description:
      - Relative weights of the operations. UPDATE and DELETE fall back to INSERT while the range is empty.
    type: dict
    default: {insert: 50, update: 35, delete: 15}
  table:
    description:
      - The table, with at least the columns C(id bigint) (primary key), C(sku integer), C(title text) and
        C(topic text), like the lab's C(books).
    type: str
    default: books
  schema:
    description:
      - Schema of O(table).
    type: str
    default: public
  id_base:
    description:
      - First id of the reserved range.
    type: int
    default: 1000000000
  report_interval:
    description:
      - Seconds per window of RV(windows).
    type: float
    default: 5
  seed:
    description:
      - Seed of the random choices, for a reproducible sequence of operations.
    type: int
  reconnect_max_seconds:
    description:
      - After a connection loss, the longest wait between two reconnect attempts (the waits start at 0.1 s and
        double up to this).
    type: float
    default: 5
  outage_max_seconds:
    description:
      - Give up (fail) when one outage lasts longer than this many seconds. V(0) never reconnects - the first
        connection loss fails the run.
      - An outage still running when O(duration) ends just ends the run (not a failure).
    type: float
    default: 300
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.workload_markers
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: A steady hum of 50 changes per second for 5 minutes
  inventium.logical_replication.load_generator:
    login_host: 127.0.0.1
    login_password: "{{ publisher_password }}"
    login_db: publisher
    pattern: hum
    rate: 50
    duration: 300

- name: Pulse between 10 and 190 changes per second, one cycle per minute
  inventium.logical_replication.load_generator:
    login_db: publisher
    pattern: pulse
    rate: 100
    amplitude: 90
    period: 60
    duration: 600

- name: Remove the generated rows
  inventium.logical_replication.load_generator:
    login_db: publisher
    operation: cleanup
"""

RETURN = r"""
pattern:
  description: The pattern that ran.
  returned: when O(operation=run)
  type: str
  sample: hum
operations:
  description: Operations (transactions) the server acknowledged.
  returned: when O(operation=run)
  type: int
  sample: 1500
rows:
  description: Rows changed - RV(operations) for a run, rows deleted by a cleanup.
  returned: always
  type: int
  sample: 1500
inserts:
  description: INSERT statements executed.
  returned: when O(operation=run)
  type: int
updates:
  description: UPDATE statements executed.
  returned: when O(operation=run)
  type: int
deletes:
  description: DELETE statements executed.
  returned: when O(operation=run)
  type: int
seconds:
  description: Duration in seconds.
  returned: always
  type: float
  sample: 30.0
rate:
  description: Achieved operations per second.
  returned: when O(operation=run)
  type: float
  sample: 49.97
target_rate:
  description: Mean target operations per second over the run.
  returned: when O(operation=run)
  type: float
  sample: 50.0
behind:
  description: Operations the generator was behind its schedule at the end (0 when it kept up).
  returned: when O(operation=run)
  type: int
  sample: 0
windows:
  description: Per window of O(report_interval) seconds - C(start_s), C(end_s), C(operations), C(target_rate),
    C(achieved_rate).
  returned: when O(operation=run)
  type: list
  elements: dict
rows_in_range:
  description: Rows of the reserved id range in the table after the run (off by at most RV(unknown_unresolved)).
  returned: always
  type: int
failed_operations:
  description: Operations interrupted by a connection loss that the server reported as failed (not applied; read back
    after reconnecting to confirm it).
  returned: when O(operation=run)
  type: int
  sample: 1
unknown_outcomes:
  description: Operations interrupted by a connection that broke without an answer - whether they committed was
    unknown at the time (not counted in RV(operations) nor RV(failed_operations)).
  returned: when O(operation=run)
  type: int
  sample: 0
unknown_applied:
  description: Of RV(unknown_outcomes), those found committed when their row was read back after reconnecting.
  returned: when O(operation=run)
  type: int
  sample: 0
unknown_unresolved:
  description: Of RV(unknown_outcomes), those never checked (the run ended while disconnected).
  returned: when O(operation=run)
  type: int
  sample: 0
reconnects:
  description: Successful reconnections after a connection loss.
  returned: when O(operation=run)
  type: int
  sample: 1
seconds_disconnected:
  description: Total seconds without a connection.
  returned: when O(operation=run)
  type: float
  sample: 2.4
skipped:
  description: Operations the schedule wanted while disconnected (skipped, not made up afterwards).
  returned: when O(operation=run)
  type: int
  sample: 48
reconnect_log:
  description: One line per connection loss, failed reconnect attempt, reconnect and checked outcome, each starting
    with the seconds since the run started.
  returned: when O(operation=run)
  type: list
  elements: str
  sample:
    - "12.3 s: connection lost: ERROR 57P01: terminating connection due to administrator command; the insert of id
      1000000412: not applied (the server aborted it)"
    - "12.5 s: reconnect attempt 1 failed: connection failed: ... Connection refused"
    - "14.0 s: reconnected after 1.7 s (5 attempts)"
id_range:
  description: First and last id of the reserved range.
  returned: always
  type: list
  elements: int
markers:
  description: Phases of the C(workload) measurement written to InfluxDB.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_load as load  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import (  # noqa: E402
    marker_argument_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    load.execute(
        PgModule(
            argument_spec=dict(
                **marker_argument_spec(),
                operation=dict(type="str", default="run", choices=["run", "cleanup"]),
                pattern=dict(type="str", default="hum", choices=["hum", "pulse"]),
                rate=dict(type="float", default=20.0),
                amplitude=dict(type="float", default=0.0),
                period=dict(type="float", default=60.0),
                duration=dict(type="float", default=30.0),
                mix=dict(type="dict", default=dict(load.DEFAULT_MIX)),
                table=dict(type="str", default="books"),
                schema=dict(type="str", default="public"),
                id_base=dict(type="int", default=load.DEFAULT_ID_BASE),
                report_interval=dict(type="float", default=5.0),
                seed=dict(type="int"),
                reconnect_max_seconds=dict(type="float", default=load.DEFAULT_RECONNECT_MAX_SECONDS),
                outage_max_seconds=dict(type="float", default=load.DEFAULT_OUTAGE_MAX_SECONDS),
            )
        )
    )


if __name__ == "__main__":
    main()
