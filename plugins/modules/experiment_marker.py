#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: experiment_marker
short_description: Write an experiment run's start or stop marker to the lab's InfluxDB
version_added: 0.1.0
description:
  - Writes one point of the measurement C(experiment) to the InfluxDB that the lab's C(endpoints.json)
    describes (its C(influxdb) section), the way the workload modules write their C(workload) markers -
    tags C(experiment), C(variant), C(repetition) and C(node) (V(all)), field C(event) (V(start) or
    V(stop)) and the integer field C(run) (the run's position in the experiment).
  - The Grafana dashboards show these points as annotations, so every variant's phase is visible on
    the lag plots.
  - Without the file or its C(influxdb) section nothing is written. A failed write is a warning, never a
    failure - an experiment does not stop because the metrics store is down.
author:
  - Inventium logical replication team (@inventium)
options:
  endpoints:
    description:
      - Path of the lab's C(endpoints.json) on the machine the module runs on.
    type: path
    required: true
  experiment:
    description: Name of the experiment (tag C(experiment)).
    type: str
    required: true
  variant:
    description: Name of the variant (tag C(variant)).
    type: str
    required: true
  repetition:
    description: The repetition of the variant, from 1 (tag C(repetition)).
    type: int
    required: true
  run:
    description: The run's position in the experiment, from 1 (field C(run)).
    type: int
    default: 0
  event:
    description: Whether the run starts or stops (field C(event)).
    type: str
    choices: [start, stop]
    required: true
extends_documentation_fragment:
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - In check mode nothing is written.
seealso:
  - module: inventium.logical_replication.experiment_run
"""

EXAMPLES = r"""
- name: Mark the start of a run
  inventium.logical_replication.experiment_marker:
    endpoints: "{{ lab_state_dir }}/endpoints.json"
    experiment: streaming
    variant: parallel
    repetition: 2
    run: 5
    event: start
"""

RETURN = r"""
written:
  description: Whether the point reached InfluxDB.
  returned: always
  type: bool
  sample: true
line:
  description: The point in InfluxDB line protocol.
  returned: always
  type: str
  sample: experiment,experiment=streaming,node=all,repetition=2,variant=parallel event="start",run=5i 1733235600
"""

import os  # noqa: E402 - after the documentation
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils._influx import (  # noqa: E402
    InfluxError,
    client_from_endpoints,
    line,
)

MEASUREMENT = "experiment"


def marker_line(experiment, variant, repetition, event, run=0, timestamp_ns=None):
    """The line protocol of one experiment marker (tags experiment, variant, repetition, node=all)."""
    tags = {"experiment": experiment, "variant": variant, "repetition": str(repetition), "node": "all"}
    return line(MEASUREMENT, tags, {"event": event, "run": int(run)}, timestamp_ns)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type="path", required=True),
            experiment=dict(type="str", required=True),
            variant=dict(type="str", required=True),
            repetition=dict(type="int", required=True),
            run=dict(type="int", default=0),
            event=dict(type="str", required=True, choices=["start", "stop"]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    point = marker_line(p["experiment"], p["variant"], p["repetition"], p["event"], p["run"], time.time_ns())
    written = False
    if not module.check_mode and os.path.exists(p["endpoints"]):
        try:
            client = client_from_endpoints(p["endpoints"])
        except (OSError, ValueError, KeyError) as exc:
            module.warn(f"experiment markers disabled: cannot use {p['endpoints']}: {exc}")
            client = None
        if client is not None:
            try:
                client.write([point])
                written = True
            except (InfluxError, OSError, ValueError) as exc:
                module.warn(f"writing the {p['event']} marker of {p['experiment']}/{p['variant']} failed: {exc}")
    # A marker is bookkeeping of the metrics store, not a change of anything the lab manages.
    module.exit_json(changed=False, written=written, line=point)


if __name__ == "__main__":
    main()
