# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options of the workload modules' InfluxDB phase markers.
    # Keep in sync with MARKER_ARGUMENT_SPEC in plugins/module_utils/_workload_markers.py.
    DOCUMENTATION = r"""
options:
  influx_endpoints:
    description:
      - Path of the lab's C(endpoints.json) on the managed host. When it has an C(influxdb) section, the
        C(workload) measurement gets a point when the load starts (C(phase=start)) and one when it stops
        (C(phase=stop)); tags C(node), C(workload), C(phase); fields such as C(rows), C(seconds), C(rate).
      - A failed write is a warning, never a failure.
    type: path
  influx_node:
    description:
      - Value of the C(node) tag of the C(workload) measurement.
    type: str
    default: publisher
"""
