# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Workload phase markers in InfluxDB: the ``workload`` measurement.

Every workload module writes one point when its load starts and one when it stops::

    workload,node=publisher,phase=start,workload=hum target_rate=50.0,duration=30.0,rows=0i
    workload,node=publisher,phase=stop,workload=hum rows=1500i,seconds=30.01,rate=49.98

so dashboards can shade the time the load ran (tags ``node``, ``workload``, ``phase``). The
InfluxDB comes from the ``influxdb`` section of the lab's ``endpoints.json``; without the file or
the section nothing is written. A failed write is a warning: load generation never fails because
the metrics store is down.
"""

from __future__ import annotations

import os

from ansible_collections.inventium.logical_replication.plugins.module_utils._influx import (
    InfluxError,
    client_from_endpoints,
    line,
)

MEASUREMENT = "workload"


def marker_argument_spec():
    """The options every workload module has for its markers (documented by the workload_markers doc fragment)."""
    return {
        "influx_endpoints": {"type": "path"},
        "influx_node": {"type": "str", "default": "publisher"},
    }


INTEGER_FIELDS = (
    "rows",
    "planned_rows",
    "behind",
    "clients",
    "inserted",
    "updated",
    "scale",
    "failed_operations",
    "unknown_outcomes",
    "reconnects",
    "failed_transactions",
    "aborted_clients",
)
"""Fields written as integers; every other number is written as a float. InfluxDB fixes a field's type
by its first write, so one field must never be written as 1i by one workload and 1.0 by another."""


def _normalise(key, value):
    if isinstance(value, (bool, str)):
        return value
    if key in INTEGER_FIELDS:
        return int(value)
    return float(value)


def marker_line(node, workload, phase, fields, timestamp_ns=None):
    """The line protocol of one marker; ``fields`` without values are dropped, ``rows`` is always there.

    Counts (``rows``, ``inserted`` ...) are integer fields, other numbers floats (see :data:`INTEGER_FIELDS`).
    """
    values = {key: _normalise(key, value) for key, value in (fields or {}).items() if value is not None}
    values.setdefault("rows", 0)  # every marker has rows (0 at start), so `SELECT rows` finds them all
    return line(MEASUREMENT, {"node": node, "workload": workload, "phase": phase}, values, timestamp_ns)


class Markers:
    """Writes the start/stop markers of one workload run.

    ``owner`` is anything with a ``warn(message)`` method (a ``PgModule``, an ``AnsibleModule``)
    or ``None``. ``endpoints`` is the path of ``endpoints.json`` (or ``None``). ``written`` lists
    the phases that reached InfluxDB.
    """

    def __init__(self, owner, endpoints, node, workload):
        self.owner = owner
        self.node = node
        self.workload = workload
        self.written = []
        self.client = None
        if endpoints and os.path.exists(endpoints):
            try:
                self.client = client_from_endpoints(endpoints)
            except (OSError, ValueError, KeyError) as exc:
                self._warn(f"InfluxDB markers disabled: cannot use {endpoints}: {exc}")

    @property
    def enabled(self):
        return self.client is not None

    def _warn(self, message):
        if self.owner is not None:
            self.owner.warn(message)

    def write(self, phase, **fields):
        if self.client is None:
            return False
        try:
            self.client.write([marker_line(self.node, self.workload, phase, fields)])
        except (InfluxError, OSError, ValueError) as exc:
            self._warn(f"writing the {phase} marker of workload {self.workload} to InfluxDB failed: {exc}")
            return False
        self.written.append(phase)
        return True

    def start(self, **fields):
        return self.write("start", **fields)

    def stop(self, **fields):
        return self.write("stop", **fields)
