#!/usr/bin/python
# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: application_writes
short_description: Write like an application during a cutover and prove that no acknowledged write was lost
version_added: 0.3.0
description:
  - Inserts one row at a time, through the application's own role, into the node that O(route_file) names, and keeps
    the key of every row whose C(INSERT) the server acknowledged (C(RETURNING)). An error - a fenced role's
    read-only error, a terminated or refused session - is counted, and the INSERT retried on a new connection after
    50 ms, as an application would; the route is read again before every INSERT, so writing the other node's name
    into O(route_file) repoints the application.
  - Stops when O(stop_file) exists (or after O(max_seconds)), then reads the rows of this run back from every node of
    O(nodes), waiting up to O(settle_timeout) seconds for replication to bring the last ones. Fails when an
    acknowledged row is missing on a node after that (RV(lost)) - the proof a switchover owes the application.
  - Meant to run in the background (C(async) with C(poll 0)) while M(inventium.logical_replication.write_fence) and the
    switchover playbooks move the writes; C(playbooks/upgrade_rehearsal.yml) is the example.
  - RV(longest_gap_seconds) is the longest time between two acknowledged INSERTs - the write-unavailable time the
    application saw, from the fence until it wrote to the new primary.
author:
  - Inventium logical replication team (@inventium)
options:
  nodes:
    description:
      - The nodes the application may write to, each a C(name) plus libpq keywords (the keys of the
        M(inventium.logical_replication.subscription) module's
        O(inventium.logical_replication.subscription#module:publisher) option) - the application's role and
        password. Every node is read back at the end.
    type: list
    elements: dict
    required: true
  table:
    description:
      - The table written (V(schema.table)); it needs a column O(note_column) of a text type and a key O(key_column)
        filled by the server (a sequence or identity).
    type: str
    required: true
  note_column:
    description: The text column that gets C(rehearsal-<run_id>-<node>-<n>) (the rows of a run are found by it).
    type: str
    default: note
  key_column:
    description: The key column the INSERT returns.
    type: str
    default: id
  route_file:
    description:
      - A file holding the name of the node to write to (surrounding white space ignored). Missing or empty - the first
        node of O(nodes). A name not in O(nodes) is counted as an error and nothing is written until it changes.
    type: path
    required: true
  stop_file:
    description: The module stops writing as soon as this file exists. Remove a stale one before starting.
    type: path
    required: true
  run_id:
    description: Names this run's rows (letters, digits and C(_), at most 40).
    type: str
    required: true
  pause:
    description: Seconds between two INSERTs.
    type: float
    default: 0.01
  max_seconds:
    description: Stop writing after this many seconds even without O(stop_file).
    type: float
    default: 1800
  settle_timeout:
    description: Seconds to wait at the end for every acknowledged row to reach every node.
    type: float
    default: 120
extends_documentation_fragment:
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - In check mode nothing is written, C(changed) is V(false).
  - An INSERT that committed while its connection was being cut is on the node without having been acknowledged - it
    is counted in RV(nodes[].unacknowledged), not as a loss (the application never saw it succeed).
seealso:
  - module: inventium.logical_replication.write_fence
  - module: inventium.logical_replication.compare
"""

EXAMPLES = r"""
- name: Write as the application, in the background
  inventium.logical_replication.application_writes:
    nodes:
      - {name: old, host: 127.0.0.1, port: 5432, dbname: app, user: app_writer, password: "{{ app_password }}"}
      - {name: new, host: 127.0.0.1, port: 5434, dbname: app, user: app_writer, password: "{{ app_password }}"}
    table: shop.orders
    route_file: /tmp/rehearsal/route
    stop_file: /tmp/rehearsal/stop
    run_id: "r{{ now(utc=true, fmt='%Y%m%d%H%M%S') }}"
  async: 1800
  poll: 0
  register: writer

# ... switch over, then repoint the application:
- name: Write to the new primary from now on
  ansible.builtin.copy:
    content: new
    dest: /tmp/rehearsal/route
    mode: "0644"

- name: Stop writing
  ansible.builtin.file:
    path: /tmp/rehearsal/stop
    state: touch
    mode: "0644"

- name: Wait for the proof
  ansible.builtin.async_status:
    jid: "{{ writer.ansible_job_id }}"
  register: writes
  until: writes.finished
  retries: 120
  delay: 2
"""

RETURN = r"""
run_id:
  description: The run's name (O(run_id)).
  returned: always
  type: str
acknowledged:
  description: INSERTs the servers acknowledged.
  returned: always
  type: int
  sample: 2650
acknowledged_by_node:
  description: Acknowledged INSERTs per node.
  returned: always
  type: dict
  sample: {publisher: 2300, subscriber2: 350}
errors:
  description: Failed attempts per C(node - error class) (a fence shows as C(ReadOnlySqlTransaction)).
  returned: always
  type: dict
  sample: {"publisher: ReadOnlySqlTransaction": 41}
longest_gap_seconds:
  description: The longest time between two acknowledged INSERTs.
  returned: always
  type: float
  sample: 4.21
longest_gap_ended_at:
  description: When that gap ended, in seconds since the module started writing.
  returned: always
  type: float
writing_seconds:
  description: How long the module wrote.
  returned: always
  type: float
nodes:
  description: The rows of this run read back from each node, in the order of O(nodes).
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: The node's name.
      type: str
    rows:
      description: Rows of this run on the node.
      type: int
    missing:
      description: Acknowledged rows not on the node after O(settle_timeout) - lost.
      type: int
    missing_sample:
      description: The first keys of the missing rows.
      type: list
      elements: raw
    unacknowledged:
      description: Rows of this run on the node that were never acknowledged.
      type: int
    settle_seconds:
      description: How long the read-back waited for replication.
      type: float
lost:
  description: The largest RV(nodes[].missing) - 0 is the proof.
  returned: always
  type: int
  sample: 0
"""

from pathlib import Path  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils._application_writes import (  # noqa: E402
    RUN_ID,
    ApplicationWriter,
    rows_of_run,
    verify,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    APPLICATION_NAME,
    PgConnectionError,
    connect_publisher,
    format_db_error,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    conninfo_secrets,
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import (  # noqa: E402
    IdentifierError,
    parse_identifier,
    parse_qualified_name,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import psycopg, require_psycopg  # noqa: E402

NODE_KEYS = frozenset(publisher_option_spec()["options"]) | {"name"}


def node_params(module, nodes):
    """The nodes' libpq keywords by name; a key that is not one fails the module, naming the node's index."""
    params = {}
    for index, node in enumerate(nodes):
        unknown = sorted(set(node) - NODE_KEYS)
        if unknown or not node.get("name"):
            module.fail_json(
                msg=f"nodes[{index}]: needs a name and only the keys {', '.join(sorted(NODE_KEYS))}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else "")
            )
        if node["name"] in params:
            module.fail_json(msg=f"nodes[{index}]: the name {node['name']!r} is given twice; each name once")
        params[node["name"]] = dict(
            {k: v for k, v in node.items() if k != "name" and v is not None},
            application_name=node.get("application_name") or f"{APPLICATION_NAME}-application-writes",
        )
    return params


def main():
    module = AnsibleModule(
        argument_spec=dict(
            # Free-form dicts (a suboption spec would need every libpq keyword documented twice); checked by
            # node_params, their passwords added to no_log_values below.
            nodes=dict(type="list", elements="dict", required=True),
            table=dict(type="str", required=True),
            note_column=dict(type="str", default="note"),
            key_column=dict(type="str", default="id", no_log=False),
            route_file=dict(type="path", required=True),
            stop_file=dict(type="path", required=True),
            run_id=dict(type="str", required=True),
            pause=dict(type="float", default=0.01),
            max_seconds=dict(type="float", default=1800.0),
            settle_timeout=dict(type="float", default=120.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    secrets = [s for node in p["nodes"] for s in conninfo_secrets(node)]
    for secret in secrets:
        module.no_log_values.add(secret)
    require_psycopg(module)
    if not p["nodes"]:
        module.fail_json(msg="nodes: give at least one node")
    params = node_params(module, p["nodes"])
    names = list(params)
    if not RUN_ID.match(p["run_id"]):
        module.fail_json(msg=f"run_id: letters, digits and _ only, 1 to 40 of them (got {p['run_id']!r})")
    try:
        table = parse_qualified_name(p["table"])
        note_column, key_column = parse_identifier(p["note_column"]), parse_identifier(p["key_column"])
    except IdentifierError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, run_id=p["run_id"], acknowledged=0, acknowledged_by_node={}, errors={}, lost=0)
    result.update(longest_gap_seconds=0.0, longest_gap_ended_at=None, writing_seconds=0.0, nodes=[])
    if module.check_mode:
        module.exit_json(**result)

    route_file, stop_file = Path(p["route_file"]), Path(p["stop_file"])

    def route():
        try:
            return route_file.read_text().strip() or names[0]
        except FileNotFoundError:
            return names[0]

    writer = ApplicationWriter(
        params, table, p["run_id"], route, stop_file.exists, note_column, key_column, pause=p["pause"]
    )
    result["writing_seconds"] = round(writer.run(p["max_seconds"]), 2)
    result.update(
        changed=bool(writer.acknowledged),
        acknowledged=len(writer.acknowledged),
        acknowledged_by_node=writer.by_node(),
        errors=writer.errors,
        longest_gap_seconds=round(writer.longest_gap, 3),
        longest_gap_ended_at=None if writer.longest_gap_ended_at is None else round(writer.longest_gap_ended_at, 2),
    )

    conns = {}
    try:
        for name in names:
            conns[name] = connect_publisher(params[name])

        def read_rows(name):
            return rows_of_run(conns[name], table, p["run_id"], note_column, key_column)

        result["nodes"] = verify(names, writer.acknowledged, read_rows, p["settle_timeout"])
    except PgConnectionError as exc:
        module.fail_json(msg=f"reading the rows back: {exc}", **result)
    except psycopg.Error as exc:
        module.fail_json(msg=format_db_error(exc, secrets, "reading the rows back"), **result)
    finally:
        for conn in conns.values():
            conn.close()
    result["lost"] = max(node["missing"] for node in result["nodes"])
    if result["lost"]:
        missing = ", ".join(f"{n['node']} {n['missing']} (e.g. {n['missing_sample']})" for n in result["nodes"])
        module.fail_json(
            msg=f"acknowledged writes missing after {p['settle_timeout']:g} s - {missing}: "
            f"{result['acknowledged']} were acknowledged",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
