# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The switchover's go/no-go filter (documentation: ``switchover_preflight.yml`` beside this file).

The checks live once in ``plugins/module_utils/_switchover.py``; this file only exposes them to
``playbooks/switchover.yml`` and ``switchback.yml``.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.module_utils._switchover import (
    DEFAULT_MAX_LAG_BYTES,
    application_summary,
    failover_preflight,
    format_rows,
    preflight,
    rehearsal_lines,
    report_lines,
    step_times,
)


def switchover_preflight(source_info, destination_info, subscription, **options):
    """Go/no-go rows (``check``, ``go``, ``detail``, ``fix``) before moving writes to the destination."""
    options.setdefault("max_lag_bytes", DEFAULT_MAX_LAG_BYTES)
    try:
        return preflight(source_info, destination_info, subscription, **options)
    except (TypeError, KeyError, AttributeError) as exc:
        raise AnsibleFilterError(f"switchover_preflight: {exc}") from exc


def switchover_lines(rows):
    """The rows as aligned lines, a NO-GO followed by its fix."""
    return format_rows(rows)


def switchover_steps(marks):
    """``[{step, at}]`` time marks (epoch seconds; the first is the start) -> ``[{step, seconds}]``."""
    try:
        return step_times(marks)
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"switchover_steps: {exc}") from exc


def switchover_report(result):
    """The closing lines of a switchover or switchback (steps, proof, write-unavailable window)."""
    try:
        return report_lines(result)
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"switchover_report: {exc}") from exc


def failover_go_no_go(
    standby_info, primary_info, subscriptions_by_host, standby, allow_running_primary=False, standby_addresses=None
):
    """Go/no-go rows before promoting a standby: it is one, the old primary is down, every slot synced."""
    try:
        return failover_preflight(
            standby_info, primary_info, subscriptions_by_host, standby, allow_running_primary, standby_addresses
        )
    except (TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"failover_preflight: {exc}") from exc


def rehearsal_application(writes):
    """The measurements of the ``application_writes`` module's result (``lost`` None when not proven)."""
    try:
        return application_summary(writes)
    except (TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"rehearsal_application: {exc}") from exc


def rehearsal_report(result):
    """The upgrade rehearsal's report: both windows, their steps and proofs, the application's proof."""
    try:
        return rehearsal_lines(result)
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError(f"rehearsal_report: {exc}") from exc


class FilterModule:
    """The collection's switchover filters."""

    def filters(self):
        return {
            "switchover_preflight": switchover_preflight,
            "switchover_lines": switchover_lines,
            "switchover_steps": switchover_steps,
            "switchover_report": switchover_report,
            "failover_preflight": failover_go_no_go,
            "rehearsal_application": rehearsal_application,
            "rehearsal_report": rehearsal_report,
        }
