# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters for replication status reports (documentation: ``status_exit_code.yml`` beside this file).

The rule itself lives once in ``plugins/module_utils/_checks.py`` (``status_exit_code``), next to
the checks whose severities it maps; this file only exposes it to playbooks.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (
    status_exit_code as _status_exit_code,
)


def status_exit_code(checks):
    """0 healthy, 1 warnings, 2 critical for a list of findings (``replication_info``'s ``checks``)."""
    try:
        return _status_exit_code(checks)
    except TypeError as exc:
        raise AnsibleFilterError(f"status_exit_code: {exc}") from exc


class FilterModule:
    """The collection's status filters."""

    def filters(self):
        return {"status_exit_code": status_exit_code}
