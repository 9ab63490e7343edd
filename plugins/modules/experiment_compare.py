#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: experiment_compare
short_description: Prove that subscribers hold what the publisher publishes to them (row counts and checksums)
version_added: 0.1.0
description:
  - For every node, waits until its subscription has replayed the publisher's current WAL position, then
    compares every table of the subscription with the publisher - the row count and an order-independent
    checksum of the rows, over the published columns and only the rows the publications' row filters
    let through (ORed over the subscription's publications, as PostgreSQL applies them).
  - Used by the experiment runner after a subscription was re-created (C(slot_limit)) and after a restore.
  - Read-only; fails when a table differs, the subscription is missing or disabled, or a table is not
    C(ready), unless O(fail_on_difference=false).
author:
  - Inventium logical replication team (@inventium)
options:
  publisher:
    description:
      - Connection options of the publisher (C(login_host), C(login_port), C(login_user), C(login_password),
        C(login_db)).
    type: dict
    required: true
  nodes:
    description:
      - The subscriber nodes - C(name), the connection options as in O(publisher) and C(subscription) (the
        name of the node's subscription; its walsender's application name).
    type: list
    elements: dict
    required: true
  timeout:
    description: Seconds to wait for each node to catch up.
    type: float
    default: 300
  fail_on_difference:
    description: Fail when a node is not equal.
    type: bool
    default: true
extends_documentation_fragment:
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Prove that subscriber1 holds what it subscribes to
  inventium.logical_replication.experiment_compare:
    publisher: {login_host: 127.0.0.1, login_port: 5432, login_user: postgres,
                login_password: "{{ pw }}", login_db: publisher}
    nodes:
      - {name: subscriber1, login_host: 127.0.0.1, login_port: 5433, login_user: postgres,
         login_password: "{{ pw1 }}", login_db: subscriber, subscription: subscriber1_sub}
"""

RETURN = r"""
equal:
  description: Whether every node holds exactly what is published to it.
  returned: always
  type: bool
nodes:
  description: Per node - C(subscription), C(equal), C(caught_up_seconds), C(problems) and C(tables)
    (C(table), C(publisher_rows), C(node_rows), C(publisher_checksum), C(node_checksum), C(equal)).
  returned: always
  type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402 - after the docs
    PgConnectionError,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    multi_server_module,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact  # noqa: E402


def main():
    module, secrets = multi_server_module(
        dict(
            publisher=dict(type="dict", required=True, no_log=False),
            nodes=dict(type="list", elements="dict", required=True),
            timeout=dict(type="float", default=300.0),
            fail_on_difference=dict(type="bool", default=True),
        )
    )
    p = module.params
    from ansible_collections.inventium.logical_replication.plugins.module_utils._replication_compare import compare_node

    login_keys = ("login_host", "login_port", "login_user", "login_password", "login_db")
    publisher = {k: p["publisher"].get(k) for k in login_keys}
    results = {}
    try:
        for node in p["nodes"]:
            login = {k: node.get(k) for k in login_keys}
            results[node["name"]] = compare_node(publisher, login, node["subscription"], p["timeout"])
    except (PgConnectionError, psycopg.Error) as exc:
        module.fail_json(msg=redact(f"comparing failed: {exc}", secrets), nodes=results)
    equal = all(r["equal"] for r in results.values())
    if not equal and p["fail_on_difference"]:
        problems = "; ".join(f"{n}: {', '.join(r['problems'])}" for n, r in results.items() if not r["equal"])
        module.fail_json(msg=f"replication is not equal: {problems}", equal=False, nodes=results)
    module.exit_json(changed=False, equal=equal, nodes=results)


if __name__ == "__main__":
    main()
