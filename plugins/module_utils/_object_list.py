# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The list form of a module (``slots: [...]``, ``publications: [...]``): many objects in one call.

A module with a list option hands its items to :func:`check_items` (no server needed) and
:func:`run_items` (plan every item, then apply every item, exit). Every failure names the item,
``slots[2] (name=foo): ...`` (see :meth:`PgModule.failing_as`), and because every item is planned
before the first one is applied, bad input in any item fails with nothing changed.

The per-object logic is the single form's: ``plan(item)`` validates and decides without writing,
``apply(plan)`` writes (through :meth:`PgModule.execute`) and returns a per-object result dict
with ``name``, ``changed``, ``diff`` as ``(before, after)`` and the object's state under the
module's key (``slot``, ``publication``).
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils.diff import make_diff


def item_label(option, index, item):
    """``slots[2] (name=foo)``: how errors name a list item."""
    return f"{option}[{index}] (name={item.get('name')})"


def inherit(params, item, keys):
    """``item`` with each of ``keys`` that the item leaves unset (``None``) taken from the top-level ``params``."""
    merged = dict(item)
    for key in keys:
        if merged.get(key) is None:
            merged[key] = params.get(key)
    return merged


def check_items(m, option, items, validate=None, key=None):
    """Check every item without a server; the list of what ``validate`` returned for each item.

    Fails naming the item when ``validate(item)`` raises ``ValueError`` or when two items name the
    same object: ``key(validated)`` (default: the item's ``name``) is the object's identity.
    An empty list is valid (a templated list may be empty): the module changes nothing.
    """
    seen = {}
    validated = []
    for index, item in enumerate(items):
        with m.failing_as(item_label(option, index, item)):
            value = None
            if validate is not None:
                try:
                    value = validate(item)
                except ValueError as exc:
                    m.fail(str(exc))
            identity = item["name"] if key is None else key(value)
            if identity in seen:
                m.fail(f"name: {option}[{seen[identity]}] has the same name; give each object once")
            seen[identity] = index
            validated.append(value)
    return validated


def run_items(m, option, items, plan, apply, transactional):
    """Plan every item, then apply every item, then exit with ``changed``, ``queries``, ``diff`` and ``option``.

    ``option`` in the result is the list of per-object results (``name``, ``changed``, the
    object's state, the item's ``queries`` and, with ``--diff``, its ``diff``). The module's
    ``diff`` has ``before`` and ``after`` keyed by object name (an absent object has no key).
    When an item fails while being applied, the module fails naming it; unless the writes are
    ``transactional`` (then everything is rolled back) the result also lists ``option`` for the
    items applied before it, and is ``changed`` when one of them changed something.
    """
    plans = []
    for index, item in enumerate(items):
        with m.failing_as(item_label(option, index, item)):
            plans.append(plan(item))
    results = []
    before, after = {}, {}
    for index, item in enumerate(items):
        planned = plans[index]
        applied = {} if transactional else {option: results, "changed": any(r["changed"] for r in results)}
        with m.failing_as(item_label(option, index, item), **applied):
            start = len(m.queries)
            result = apply(planned)
        item_before, item_after = result.pop("diff")
        result["queries"] = m.queries[start:]
        if m.diff_mode:
            result["diff"] = make_diff(item_before, item_after)
        if item_before:
            before[result["name"]] = item_before
        if item_after:
            after[result["name"]] = item_after
        results.append(result)
    m.exit(changed=any(result["changed"] for result in results), diff=make_diff(before, after), **{option: results})
