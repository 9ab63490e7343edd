#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: pgbench
short_description: Lab workload - fill pgbench's tables and run timed pgbench load, returning TPS and latency
version_added: 0.1.0
description:
  - With O(mode=init), fills the existing pgbench tables with C(pgbench -i -I gv) at O(scale) - truncate
    and generate (client-side COPY), then vacuum. The tables are never dropped or re-created (they may be
    published; the lab creates them with C(roles/publisher/files/schema/pgbench.sql)). When the tables
    already hold exactly the rows of O(scale), nothing is done (C(changed=false)) unless O(force=true).
  - With O(mode=run), runs pgbench for O(duration) seconds with the built-in O(script) or the custom
    O(script_text), optionally rate limited to O(rate) transactions per second, and returns the parsed
    report - TPS, latency average and standard deviation, failed transactions, schedule lag and the
    per-interval progress. C(--no-vacuum) is always passed, so pgbench never vacuums the tables nor
    truncates C(pgbench_history) before a run.
  - Survives a server restart - when pgbench exits because the server went away (its error output shows
    V(57P01) C(terminating connection due to administrator command), C(Connection refused),
    C(server closed the connection unexpectedly), the server starting up or shutting down ...), the module waits for
    the server (probing with its own connection, 0.1 s, 0.2 s, 0.4 s ... up to O(reconnect_max_seconds) between
    attempts, for at most O(outage_max_seconds)) and runs pgbench again for the rest of O(duration) (whole seconds,
    so a run can end up to a second early). The report then
    sums the runs (RV(segments)); RV(aborted_clients) counts the clients pgbench aborted, each with at most one
    transaction in flight whose outcome is unknown. Any other failure of pgbench fails the task as before.
  - pgbench runs on the managed host (the C(pgbench) on PATH, else the newest
    C(/usr/lib/postgresql/*/bin/pgbench)) and connects with the connection options; the password is
    passed in the environment (C(PGPASSWORD)), never on the command line.
author:
  - Inventium logical replication team (@inventium)
options:
  mode:
    description:
      - V(init) fills the tables, V(run) runs load.
    type: str
    choices: [init, run]
    default: run
  scale:
    description:
      - Scale factor of O(mode=init) (100,000 accounts, 10 tellers and 1 branch per unit).
      - At most 19999 (the lab's schema uses integer ids, as pgbench does below 20000).
    type: int
    default: 1
  force:
    description:
      - With O(mode=init), refill the tables even when they already hold the rows of O(scale).
    type: bool
    default: false
  duration:
    description:
      - Seconds to run (C(pgbench --time)).
    type: int
    default: 30
  rate:
    description:
      - Target transactions per second for all clients together (C(pgbench --rate)); unlimited when unset.
    type: float
  clients:
    description:
      - Concurrent database sessions (C(pgbench --client)).
    type: int
    default: 1
  jobs:
    description:
      - pgbench worker threads (C(pgbench --jobs)).
    type: int
    default: 1
  script:
    description:
      - Built-in script to run when O(script_text) is not given.
    type: str
    choices: [tpcb-like, simple-update, select-only]
    default: tpcb-like
  script_text:
    description:
      - A custom pgbench script (its content), for example C(\set id random(1, 5)) and
        C(SELECT * FROM books WHERE id = :id;). Written to a private temporary file for the run.
    type: str
  protocol:
    description:
      - Query protocol (C(pgbench --protocol)).
    type: str
    choices: [simple, extended, prepared]
    default: prepared
  progress_interval:
    description:
      - Seconds between the progress reports that RV(progress) is made of; V(0) disables them.
    type: int
    default: 5
  pgbench_path:
    description:
      - The pgbench executable; found automatically when unset.
    type: path
  reconnect_max_seconds:
    description:
      - With O(mode=run), after pgbench lost its connection, the longest wait between two attempts to reach the
        server again (the waits start at 0.1 s and double up to this).
    type: float
    default: 5
  outage_max_seconds:
    description:
      - With O(mode=run), fail when the server is not back after this many seconds. V(0) never re-runs pgbench -
        a lost connection fails the task, as any pgbench failure does.
    type: float
    default: 300
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.workload_markers
attributes:
  check_mode:
    support: full
    description: In check mode nothing runs; the result says whether something would.
  diff_mode:
    support: none
    description: Not applicable.
  platform:
    support: full
    platforms: posix
    description: Runs pgbench on the managed host.
notes:
  - A run reports C(changed=true) when the script writes (every built-in but V(select-only); a custom
    script containing INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY, CREATE, DROP or ALTER) and processed
    at least one transaction.
"""

EXAMPLES = r"""
- name: Fill the pgbench tables at scale 10
  inventium.logical_replication.pgbench:
    login_host: 127.0.0.1
    login_password: "{{ publisher_password }}"
    login_db: publisher
    mode: init
    scale: 10

- name: TPC-B-like load at 200 transactions per second for a minute
  inventium.logical_replication.pgbench:
    login_host: 127.0.0.1
    login_password: "{{ publisher_password }}"
    login_db: publisher
    duration: 60
    rate: 200
    clients: 4
  register: bench

- name: The seed's select-by-id on books
  inventium.logical_replication.pgbench:
    login_db: publisher
    duration: 10
    script_text: |
      \set id random(1, 5)
      SELECT * FROM books WHERE id = :id;
"""

RETURN = r"""
mode:
  description: The mode that ran.
  returned: always
  type: str
  sample: run
scale:
  description: Scale factor of the tables (from C(pgbench_branches) after O(mode=init), from the report after a run).
  returned: when known
  type: int
  sample: 1
rows:
  description: Rows written by O(mode=init) (accounts + tellers + branches), or transactions processed by a run.
  returned: always
  type: int
  sample: 100011
tps:
  description: Transactions per second, without the initial connection time. After a reconnect (several pgbench
    runs), transactions per wall-clock second of the whole run, outages included.
  returned: after a run
  type: float
  sample: 198.8
latency_average_ms:
  description: Average transaction latency in milliseconds.
  returned: after a run
  type: float
  sample: 1.327
latency_stddev_ms:
  description: Standard deviation of the latency in milliseconds (printed by pgbench with progress or a rate).
  returned: after a run, when pgbench reports it
  type: float
  sample: 1.01
transactions:
  description: Transactions processed (summed over the pgbench runs after a reconnect).
  returned: after a run
  type: int
  sample: 596
failed_transactions:
  description: Failed transactions (pgbench 15 and later; summed over the runs).
  returned: after a run, when pgbench reports it
  type: int
  sample: 0
aborted_clients:
  description: Clients pgbench aborted (C(client N ... aborted in command ...)), for example when the server went
    away; each had at most one transaction in flight whose outcome is unknown (not in RV(transactions)).
  returned: after a run
  type: int
  sample: 0
reconnects:
  description: Times pgbench was run again after the server came back.
  returned: after a run
  type: int
  sample: 0
seconds_disconnected:
  description: Seconds between pgbench losing the server and the server answering again, in total.
  returned: after a run
  type: float
  sample: 0.0
reconnect_log:
  description: One line per connection loss, failed attempt and reconnect, each starting with the seconds since the
    run started.
  returned: after a run
  type: list
  elements: str
segments:
  description: One entry per pgbench process - C(start_s), C(seconds), C(rc), C(duration) (its C(--time)),
    C(transactions), C(failed_transactions), C(aborted_clients). One entry when nothing went wrong.
  returned: after a run
  type: list
  elements: dict
schedule_lag_average_ms:
  description: Average lag behind the O(rate) schedule in milliseconds.
  returned: after a rate-limited run
  type: float
  sample: 0.146
progress:
  description: The per-interval reports (C(seconds), C(tps), C(latency_ms), C(stddev_ms), C(lag_ms), C(failed)).
  returned: after a run
  type: list
  elements: dict
seconds:
  description: Wall-clock duration of the pgbench process.
  returned: always
  type: float
  sample: 3.02
rate:
  description: Achieved rate - transactions per second of a run, rows per second of O(mode=init).
  returned: always
  type: float
  sample: 198.8
command:
  description: The pgbench command line (no password on it).
  returned: always
  type: list
  elements: str
stdout:
  description: pgbench's standard output (its report; the reports of every run after a reconnect).
  returned: always
  type: str
markers:
  description: Phases of the C(workload) measurement written to InfluxDB.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_pgbench as pgbench  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import (  # noqa: E402
    marker_argument_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    pgbench.execute(
        PgModule(
            argument_spec=dict(
                **marker_argument_spec(),
                mode=dict(type="str", default="run", choices=["init", "run"]),
                scale=dict(type="int", default=1),
                force=dict(type="bool", default=False),
                duration=dict(type="int", default=30),
                rate=dict(type="float"),
                clients=dict(type="int", default=1),
                jobs=dict(type="int", default=1),
                script=dict(type="str", default="tpcb-like", choices=list(pgbench.BUILTIN_SCRIPTS)),
                script_text=dict(type="str"),
                protocol=dict(type="str", default="prepared", choices=["simple", "extended", "prepared"]),
                progress_interval=dict(type="int", default=5),
                pgbench_path=dict(type="path"),
                reconnect_max_seconds=dict(type="float", default=5.0),
                outage_max_seconds=dict(type="float", default=300.0),
            )
        )
    )


if __name__ == "__main__":
    main()
