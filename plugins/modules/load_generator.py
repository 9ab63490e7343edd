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
  description: Operations (transactions) executed.
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
  description: Rows of the reserved id range in the table after the run.
  returned: always
  type: int
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

import time  # noqa: E402 - Ansible modules import after their documentation

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_load as load  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import (  # noqa: E402
    Markers,
    marker_argument_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    psycopg,
    sql,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    PgModule,
    format_db_error,
)


def cleanup(m):
    p = m.params
    first, last = p["id_base"], p["id_base"] + load.ID_SPAN - 1
    start = time.monotonic()
    target = sql.Identifier(p["schema"], p["table"])
    count = sql.SQL("SELECT count(*) AS n FROM {} WHERE id BETWEEN %s AND %s").format(target)
    rows = m.query_one(count, [first, last])["n"]
    if rows:
        m.execute(load.cleanup_statement(p["schema"], p["table"]), [first, last])
    m.exit(
        changed=rows > 0,
        rows=rows,
        seconds=round(time.monotonic() - start, 3),
        rows_in_range=0,
        id_range=[first, last],
        markers=[],
    )


def main():
    m = PgModule(
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
        )
    )
    p = m.params
    if p["id_base"] < 6:
        m.fail("id_base: must be above the seed's book ids (1 to 5)")
    conn = m.connect()
    if p["operation"] == "cleanup":
        cleanup(m)
    try:
        mix = {key: float(value) for key, value in (p["mix"] or {}).items()}
        load.validate(p["pattern"], p["rate"], p["amplitude"], p["period"], p["duration"], mix)
    except (TypeError, ValueError) as exc:
        m.fail(str(exc))
    if p["report_interval"] <= 0:
        m.fail("report_interval: must be greater than 0 seconds")
    runner = load.LoadRunner(
        conn,
        schema=p["schema"],
        table=p["table"],
        pattern=p["pattern"],
        rate=p["rate"],
        amplitude=p["amplitude"],
        period=p["period"],
        duration=p["duration"],
        mix=mix,
        id_base=p["id_base"],
        report_interval=p["report_interval"],
        seed=p["seed"],
    )
    try:
        existing = runner.load_existing()
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, (), f"reading {p['schema']}.{p['table']} failed"), sqlstate=exc.sqlstate)
    predicted = round(load.scheduled(p["duration"], p["pattern"], p["rate"], p["amplitude"], p["period"]))
    m.queries.extend(
        m.render(s) for s in (runner.statements.insert, runner.statements.update, runner.statements.delete)
    )
    if m.check_mode:
        m.exit(
            changed=predicted > 0,
            pattern=p["pattern"],
            operations=predicted,
            rows=predicted,
            inserts=0,
            updates=0,
            deletes=0,
            seconds=0.0,
            rate=None,
            target_rate=round(predicted / p["duration"], 2),
            behind=0,
            windows=[],
            rows_in_range=existing,
            id_range=[runner.id_base, runner.id_last],
            markers=[],
        )
    markers = Markers(m, p.get("influx_endpoints"), node=p["influx_node"], workload=p["pattern"])
    markers.start(
        target_rate=p["rate"],
        amplitude=p["amplitude"] if p["pattern"] == "pulse" else None,
        period=p["period"] if p["pattern"] == "pulse" else None,
        duration=p["duration"],
    )
    try:
        report = runner.run()
    except (psycopg.Error, load.LoadError) as exc:
        done = dict(runner.counts)
        markers.stop(rows=sum(done.values()), failed=True)
        message = format_db_error(exc, (), "load failed") if isinstance(exc, psycopg.Error) else str(exc)
        m.fail(
            f"{message} (after {done['insert']} inserts, {done['update']} updates, {done['delete']} deletes)",
            markers=markers.written,
        )
    markers.stop(
        rows=report["operations"],
        seconds=report["seconds"],
        rate=report["rate"],
        target_rate=report["target_rate"],
        behind=report["behind"],
    )
    report["rows"] = report["operations"]
    m.exit(changed=report["operations"] > 0, markers=markers.written, **report)


if __name__ == "__main__":
    main()
