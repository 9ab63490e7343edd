"""An inventory in the shape of inventory/lab for tests that run the playbooks on throwaway servers.

Groups ``publishers`` and ``subscribers`` (``standbys``, ``peers`` where given), every host on the local
connection with this Python (the harness's servers listen on 127.0.0.1), each host's variables given as a
dict - the same variables the roles and playbooks read (``publisher_port``, ``subscriber_password``, ...),
i.e. what a user writes for their own servers.
"""

from __future__ import annotations

import json
import sys


def _host_vars(values):
    return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in values.items()) + "}"


def lab_shaped_inventory(publishers, subscribers, standbys=None, peers=None):
    """YAML text; ``publishers``, ``subscribers`` (``standbys``, ``peers``) map host names to their variables."""
    lines = [
        "all:",
        "  vars:",
        "    ansible_connection: local",
        f"    ansible_python_interpreter: {json.dumps(sys.executable)}",
        "  children:",
    ]
    groups = (
        ("publishers", publishers),
        ("subscribers", subscribers),
        ("standbys", standbys or {}),
        ("peers", peers or {}),
    )
    for group, hosts in groups:
        if not hosts:
            continue
        lines += [f"    {group}:", "      hosts:"]
        lines += [f"        {name}: {_host_vars(values)}" for name, values in hosts.items()]
    return "\n".join(lines) + "\n"
