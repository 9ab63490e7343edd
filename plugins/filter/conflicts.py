# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The conflicts playbook's filters (documentation: ``conflicts_*.yml`` beside this file).

The logic lives once in ``plugins/module_utils/_conflicts.py``; this file only exposes it to
``playbooks/conflicts.yml``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.module_utils._conflicts import (
    DEFAULT_REPAIR_ORIGIN,
    DEFAULT_TABLE,
    observe,
    plan,
    preflight,
    report,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import IdentifierError


def conflicts_preflight(facts):
    """Go/no-go rows (``check``, ``go``, ``detail``, ``fix``) for a two-way pair of PostgreSQL 18 nodes."""
    try:
        return preflight(list(facts))
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise AnsibleFilterError(f"conflicts_preflight: {exc}") from exc


def conflicts_plan(table=DEFAULT_TABLE, winner="winner", loser="loser", repair_origin=DEFAULT_REPAIR_ORIGIN):
    """The SQL of the setup, the seed rows and the cases."""
    try:
        return plan(table, winner, loser, repair_origin)
    except (IdentifierError, ValueError) as exc:
        raise AnsibleFilterError(f"conflicts_plan: {exc}") from exc


def conflicts_observe(info, subscription, expect=None, before=None, since_lsn=None):
    """A subscription's conflict counters and log entries during a case (``seen``, ``stopped``, ...)."""
    try:
        return observe(info, subscription, expect, before, since_lsn)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise AnsibleFilterError(f"conflicts_observe: {exc}") from exc


def conflicts_report(records, cases, peers, final_equal=None):
    """The closing table, one row per conflict type."""
    try:
        return report(list(records), list(cases), list(peers), final_equal)
    except (TypeError, KeyError, AttributeError, ValueError, IndexError) as exc:
        raise AnsibleFilterError(f"conflicts_report: {exc}") from exc


class FilterModule:
    """The collection's conflicts filters."""

    def filters(self):
        return {
            "conflicts_preflight": conflicts_preflight,
            "conflicts_plan": conflicts_plan,
            "conflicts_observe": conflicts_observe,
            "conflicts_report": conflicts_report,
        }
