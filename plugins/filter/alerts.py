# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Filters for alerting (documentation: ``alert_rule_groups.yml`` beside this file).

The rules live in ``plugins/module_utils/_alert_rules.py`` and their numbers in ``_thresholds.py``;
this file only exposes them to the ``grafana`` role's template.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.module_utils._alert_rules import (
    DEFAULT_GROUP,
    DEFAULT_INTERVAL,
    rule_groups,
)


def alert_rule_groups(datasource_uid, folder, group=DEFAULT_GROUP, interval=DEFAULT_INTERVAL, overrides=None):
    """Grafana's alerting provisioning (``apiVersion``, ``groups``) for the data source ``datasource_uid``."""
    if not isinstance(datasource_uid, str) or not datasource_uid:
        raise AnsibleFilterError(f"alert_rule_groups: expected a data source uid, got {datasource_uid!r}")
    if overrides is not None and not isinstance(overrides, dict):
        raise AnsibleFilterError(f"alert_rule_groups: overrides must be a dict, got {type(overrides).__name__}")
    try:
        return rule_groups(datasource_uid, str(folder), group=str(group), interval=str(interval), overrides=overrides)
    except ValueError as exc:
        raise AnsibleFilterError(f"alert_rule_groups: {exc}") from exc


class FilterModule:
    """The collection's alerting filters."""

    def filters(self):
        return {"alert_rule_groups": alert_rule_groups}
