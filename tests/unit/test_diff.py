"""Diff helpers (no database)."""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils.diff import (
    changed_keys,
    make_diff,
    merge_state,
)


def test_changed_keys():
    assert changed_keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == ["b"]
    assert changed_keys(None, {"a": 1}) == ["a"]
    assert changed_keys({"a": [1]}, {"a": [1]}) == []


def test_make_diff_copies_and_defaults():
    before = {"a": {"x": 1}}
    diff = make_diff(before, None)
    before["a"]["x"] = 2
    assert diff == {"before": {"a": {"x": 1}}, "after": {}}
    assert make_diff(None, {"a": 1}, "old", "new") == {
        "before": {},
        "after": {"a": 1},
        "before_header": "old",
        "after_header": "new",
    }


def test_merge_state():
    state = {"a": 1, "b": {"c": 2}}
    merged = merge_state(state, {"a": 3})
    assert merged == {"a": 3, "b": {"c": 2}}
    assert state == {"a": 1, "b": {"c": 2}}
    assert merge_state(None, {"a": 1}) == {"a": 1}
