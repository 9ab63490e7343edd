#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: experiment_run
short_description: Run one experiment variant's workload steps while a probe samples, and return the measures
version_added: 0.1.0
description:
  - Called by C(playbooks/experiment.yml) once per run (variant x repetition), after the variant's settings were
    applied. Empties the experiment tables (TRUNCATE on the publisher, replicated; waits until every node sees
    them empty), starts a probe (every 0.5 s - heartbeat, byte lag, retained WAL, walsender CPU, Docker stats)
    and one marker poller per node (every 10 ms), runs O(steps) in order, then computes O(measures).
  - The steps and their parameters are those of C(_experiment_steps.STEPS); the measures those of
    C(_experiment_catalog.CATALOG) (both documented in C(experiments/README.md)).
  - Steps may disable and re-enable each node's subscription (pause, backlog, slot_limit) and create and drop
    their own publications, subscriptions and tables (initial_sync, row_filter). A slot lost by slot_limit is
    NOT repaired here; RV(recovery) lists what the caller must re-create.
author:
  - Inventium logical replication team (@inventium)
options:
  publisher:
    description:
      - Connection to the publisher - C(login_host), C(login_port), C(login_user), C(login_password), C(login_db).
    type: dict
    required: true
  nodes:
    description:
      - The subscriber nodes - each with C(name), the connection keys as for O(publisher), C(subscription) (its
        lab subscription, which includes the experiment publication), C(slot_name) (default the subscription's
        name), C(container) (Docker container name or empty - no Docker measures) and C(major).
    type: list
    elements: dict
    required: true
  steps:
    description:
      - The resolved workload steps, each C({step - <kind>, <parameter> - <value>, ...}).
    type: list
    elements: dict
    required: true
  measures:
    description:
      - Names from the measurement catalog to return.
    type: list
    elements: str
    default: []
  baseline:
    description:
      - V(copy) - the initial_sync step also times a plain C(COPY | COPY) of the same tables.
    type: str
    choices: [copy]
  run:
    description:
      - Labels of the run (C(experiment), C(variant), C(repetition)), written into the marker rows.
    type: dict
    default: {}
extends_documentation_fragment:
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: partial
    details: In check mode nothing runs and nothing is predicted; the result has empty measures and C(changed=false).
  diff_mode:
    support: none
requirements:
  - psycopg >= 3.1
  - docker (Python SDK) for the subscriber CPU and memory measures
  - pgbench for the pgbench step
"""

EXAMPLES = r"""
- name: One run of the streaming experiment
  inventium.logical_replication.experiment_run:
    publisher: {login_host: 127.0.0.1, login_port: 5432, login_user: postgres,
                login_password: "{{ pw }}", login_db: lab}
    nodes:
      - {name: subscriber1, login_host: 127.0.0.1, login_port: 5433, login_user: postgres,
         login_password: "{{ pw }}", login_db: lab, subscription: lab_sub, slot_name: lab_sub_1,
         container: subscriber1, major: 15}
    steps:
      - {step: large_transaction, rows: 500000}
      - {step: wait_caught_up}
    measures: [commit_visible_seconds, spill_bytes, stream_bytes]
    run: {experiment: streaming, variant: "off", repetition: 1}
  register: run
"""

RETURN = r"""
measures:
  description: Measure name -> a number (run-wide measures) or C({node - number|null}) (per-node measures).
  returned: always
  type: dict
series:
  description: C(heartbeat_lag) and C(byte_lag) - C({node - [[unix_ts, value], ...]}) sampled every 0.5 s.
  returned: always
  type: dict
events:
  description: C([{ts (unix seconds), node, what}]) - wal_status transitions, subscriptions disabled/enabled,
    the subscriber's error after a lost slot.
  returned: always
  type: list
notes:
  description: Why a measure has no value, variants a node could not honour, workload warnings.
  returned: always
  type: list
recovery:
  description: C({node - {subscription, slot, error}}) for nodes whose slot was lost (slot_limit) - the caller
    re-creates their subscription.
  returned: always
  type: dict
started_at:
  description: ISO 8601 UTC start of the run.
  returned: always
  type: str
finished_at:
  description: ISO 8601 UTC end of the run.
  returned: always
  type: str
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402 - after the docs
    PgConnectionError,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    format_db_error,
    multi_server_module,
    require_psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact  # noqa: E402


def main():
    module, secrets = multi_server_module(
        dict(
            publisher=dict(type="dict", required=True, no_log=False),
            nodes=dict(type="list", elements="dict", required=True),
            steps=dict(type="list", elements="dict", required=True),
            measures=dict(type="list", elements="str", default=[]),
            baseline=dict(type="str", choices=["copy"]),
            run=dict(type="dict", default={}),
        ),
        check_psycopg=False,
    )
    p = module.params
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, measures={}, series={}, events=[], notes=[], recovery={})
    require_psycopg(module)
    from ansible_collections.inventium.logical_replication.plugins.module_utils import _experiment_steps as steps

    try:
        result = steps.run_experiment(p["publisher"], p["nodes"], p["steps"], p["measures"], p["baseline"], p["run"])
    except (steps.ExperimentError, KeyError, PgConnectionError) as exc:
        module.fail_json(msg=redact(str(exc), secrets))
    except psycopg.Error as exc:
        module.fail_json(msg=format_db_error(exc, secrets, "experiment run failed"), sqlstate=exc.sqlstate)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
