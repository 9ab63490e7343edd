#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: experiment_plan
short_description: Validate an experiment file against the real servers and return its plan
version_added: 0.1.0
description:
  - Reads an experiment file (C(experiments/<name>.yml), schema in C(experiments/README.md)), reads
    C(pg_settings) (name, context, type, enum values, range, unit) and the version of the publisher and
    of every subscriber node, and the publications and tables of the publisher's database, and
    validates the file against them, the measurement catalog and the workload steps.
  - Unknown keys, unknown measures, unknown steps or step parameters, settings that are not in the
    server's C(pg_settings) or need a restart (context C(postmaster)), invalid setting values,
    subscription or publication options that are unknown or too new for a node's version, and
    publications or published tables that do not exist all fail, naming the file, the key path and the
    reason. Nothing is changed, ever - the module only reads.
  - A variant with C(requires) (for example a C(subscriber_major) of 16) does not run on older nodes; the
    plan says so in RV(plan.notes) instead of failing.
  - Returns the plan the experiment runner executes - the resolved variants with their full step
    lists, the interleaved runs (A B C A B C ...) and the notes.
author:
  - Inventium logical replication team (@inventium)
options:
  file:
    description:
      - Path of the experiment file on the machine the module runs on.
      - Messages name it as C(experiments/<file name>) when it lies in a directory named C(experiments).
    type: path
    required: true
  publisher:
    description:
      - How to connect to the publisher - the connection options of the collection's modules
        (C(login_host), C(login_port), C(login_user), C(login_password), C(login_db), C(login_unix_socket),
        C(ssl_mode), C(ssl_rootcert), C(ssl_cert), C(ssl_key), C(connect_timeout)).
    type: dict
    required: true
  nodes:
    description:
      - Every subscriber node the experiment may use (the inventory group C(subscribers)); the file's
        C(nodes) selects among them (default - all).
      - Each element has C(name) plus the connection options as in O(publisher). C(container) is the name
        of the node's Docker container, V("") when it has none (then container limits are refused).
        Other keys (C(subscription), C(slot_name), C(major), ...) are accepted and ignored, so the list the
        runner passes to the experiment_run module can be passed here as well.
    type: list
    elements: dict
    required: true
  repeat:
    description:
      - Repetitions of every variant; overrides the file's C(repeat) (default 3).
    type: int
  cores:
    description:
      - CPU cores available to the containers (C(limits.cpus) above it is refused). Default - the core
        count of the machine the module runs on.
    type: int
extends_documentation_fragment:
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Any role that can read C(pg_settings) is enough; the module opens one read-only session per server.
  - The schema of experiment files and the measurement catalog are documented in C(experiments/README.md).
seealso:
  - module: inventium.logical_replication.server_settings
  - module: inventium.logical_replication.subscription
"""

EXAMPLES = r"""
- name: Validate the streaming experiment and plan its runs
  inventium.logical_replication.experiment_plan:
    file: "{{ playbook_dir }}/../experiments/streaming.yml"
    publisher:
      login_host: 127.0.0.1
      login_port: 5432
      login_user: postgres
      login_password: "{{ publisher_password }}"
      login_db: publisher
    nodes:
      - name: subscriber1
        login_host: 127.0.0.1
        login_port: 5433
        login_password: "{{ subscriber1_password }}"
        login_db: subscriber
        container: subscriber1
    repeat: "{{ experiment_repeat | default(omit) }}"
  register: experiment
"""

RETURN = r"""
plan:
  description: The validated, resolved experiment.
  returned: success
  type: dict
  contains:
    name:
      description: The experiment's name (the file name without C(.yml)).
      type: str
      sample: streaming
    file:
      description: The file as named in messages.
      type: str
      sample: experiments/streaming.yml
    question:
      description: The question the experiment answers.
      type: str
    repeat:
      description: Repetitions of every variant.
      type: int
      sample: 3
    nodes:
      description: The subscriber nodes the experiment uses.
      type: list
      elements: str
      sample: [subscriber1, subscriber2]
    measures:
      description: The measures to take (catalog names), C(baseline_copy_seconds) added for C(baseline=copy).
      type: list
      elements: str
    measure_info:
      description: Catalog metadata of each measure (unit, per_node, better, description).
      type: dict
    baseline:
      description: V(copy) or V(null).
      type: str
    variants:
      description:
        - Each variant resolved - C(name), C(subscription) (normalised values, for example V(off) for a
          YAML boolean), C(publisher_settings), C(subscriber_settings), C(publication), C(limits),
          C(subscriber_sql), C(requires), C(nodes) (the nodes that run it) and C(steps) (the full step
          list with defaults and the variant's overrides applied).
      type: list
      elements: dict
    runs:
      description: The runs in order - C(index), C(total), C(repetition), C(variant); variants interleaved.
      type: list
      elements: dict
      sample:
        - {index: 1, total: 6, repetition: 1, variant: "off"}
        - {index: 2, total: 6, repetition: 1, variant: parallel}
    notes:
      description: What the plan could not do and why (for example a variant a node's version cannot run).
      type: list
      elements: str
versions:
  description: C(server_version) of the publisher and of every node, by name (V(publisher) for the publisher).
  returned: success
  type: dict
  sample: {publisher: "15.10", subscriber1: "15.10", subscriber2: "17.6"}
errors:
  description: On failure - every problem as C(path) (key path in the file) and C(reason).
  returned: failure
  type: list
  elements: dict
"""

import os  # noqa: E402 - Ansible modules import after their documentation
import traceback  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_facts import (  # noqa: E402
    display_name,
    read_facts,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_spec import (  # noqa: E402
    SpecError,
    load_file,
    validate,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    PgConnectionError,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (  # noqa: E402
    format_db_error,
    multi_server_module,
)


def main():
    module, _secrets = multi_server_module(
        dict(
            file=dict(type="path", required=True),
            publisher=dict(type="dict", required=True),
            nodes=dict(type="list", elements="dict", required=True),
            repeat=dict(type="int"),
            cores=dict(type="int"),
        )
    )
    params = module.params

    display = display_name(params["file"])
    try:
        spec = load_file(params["file"], display)
    except SpecError as exc:
        module.fail_json(msg=str(exc), errors=[{"path": p, "reason": r} for p, r in exc.errors])

    names = []
    for index, node in enumerate(params["nodes"]):
        name = node.get("name")
        if not isinstance(name, str) or not name or name in names:
            module.fail_json(msg=f"nodes[{index}]: every node needs a unique name, got {name!r}")
        names.append(name)
    wanted = spec.get("nodes") if isinstance(spec, dict) and isinstance(spec.get("nodes"), list) else names

    facts = {"nodes": {}, "cores": params["cores"] or os.cpu_count()}
    targets = [("publisher", params["publisher"])] + [(n["name"], n) for n in params["nodes"] if n["name"] in wanted]
    versions = {}
    for label, given in targets:
        try:
            server = read_facts(given, publisher=label == "publisher")
        except PgConnectionError as exc:
            module.fail_json(msg=f"{display}: reading the facts of {label} failed: {exc}")
        except psycopg.Error as exc:
            module.fail_json(msg=f"{display}: " + format_db_error(exc, (), f"reading pg_settings of {label} failed"))
        except Exception as exc:
            module.fail_json(
                msg=f"{display}: reading the facts of {label} failed: {exc}", exception=traceback.format_exc()
            )
        versions[label] = server["version"]
        if label == "publisher":
            facts["publisher"] = server
        else:
            if "container" in given:
                server["container"] = given["container"] or ""
            facts["nodes"][label] = server

    try:
        plan = validate(spec, display, facts=facts, repeat=params["repeat"], available_nodes=names)
    except SpecError as exc:
        module.fail_json(msg=str(exc), errors=[{"path": p, "reason": r} for p, r in exc.errors], versions=versions)
    module.exit_json(changed=False, plan=plan, versions=versions)


if __name__ == "__main__":
    main()
