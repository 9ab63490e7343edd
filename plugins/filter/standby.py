# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Physical standby filters (documentation: ``standby_conninfo.yml``, ``pgpass_line.yml`` and
``standby_slots.yml`` beside this file); the logic is ``plugins/module_utils/_standby.py``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.module_utils._standby import (
    pgpass_line as _pgpass_line,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._standby import (
    primary_conninfo,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._standby import (
    standby_slots as _standby_slots,
)


def standby_conninfo(standby_of, passfile, application_name):
    """``primary_conninfo`` of a standby (no password: the passfile has it)."""
    try:
        return primary_conninfo(standby_of, passfile, application_name)
    except (ValueError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"standby_conninfo: {exc}") from exc


def pgpass_line(user, password, host="*", port="*", dbname="*"):
    """A libpq password file line."""
    try:
        return _pgpass_line(user, password, host=host, port=port, dbname=dbname)
    except ValueError as exc:
        raise AnsibleFilterError(f"pgpass_line: {exc}") from exc


def standby_slots(standbys):
    """The primary's ``synchronized_standby_slots`` for these standbys."""
    try:
        return _standby_slots(standbys)
    except (ValueError, AttributeError) as exc:
        raise AnsibleFilterError(f"standby_slots: {exc}") from exc


class FilterModule:
    """The collection's physical standby filters."""

    def filters(self):
        return {"standby_conninfo": standby_conninfo, "pgpass_line": pgpass_line, "standby_slots": standby_slots}
