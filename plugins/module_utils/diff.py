# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Before/after helpers shared by the modules (pure Python).

Every module reports ``diff: {before: ..., after: ...}`` when Ansible runs with
``--diff``; both sides are plain dicts describing the managed object (``{}`` when it
does not exist), so the callback shows a readable YAML/JSON diff.
"""

from __future__ import annotations

import copy


def changed_keys(before, after):
    """Return the sorted keys whose values differ between two dicts (missing keys count as ``None``)."""
    before = before or {}
    after = after or {}
    keys = set(before) | set(after)
    return sorted((k for k in keys if before.get(k) != after.get(k)), key=str)


def make_diff(before, after, before_header=None, after_header=None):
    """Build the ``diff`` return value from two states.

    ``before``/``after`` are dicts (``None`` means "absent" and becomes ``{}``). The
    values are deep-copied so later mutation of the state does not change the diff.
    Optional headers label the two sides in the callback output.
    """
    result = {
        "before": copy.deepcopy(before) if before is not None else {},
        "after": copy.deepcopy(after) if after is not None else {},
    }
    if before_header:
        result["before_header"] = before_header
    if after_header:
        result["after_header"] = after_header
    return result


def merge_state(state, updates):
    """Return a copy of ``state`` with ``updates`` applied (for predicting the "after" side in check mode)."""
    result = copy.deepcopy(state) if state else {}
    result.update(copy.deepcopy(updates or {}))
    return result
