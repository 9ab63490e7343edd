"""Unit tests of the list form's helpers (``_object_list``): item labels, inherited options, item checks."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _object_list as ol


class Failed(Exception):
    pass


class FakeModule:
    """What check_items needs of PgModule: failing_as and fail (raising, with the label like PgModule's)."""

    def __init__(self):
        self.label = None

    def failing_as(self, label, **result):
        module = self

        class Context:
            def __enter__(self):
                module.label = label

            def __exit__(self, *exc):
                module.label = None

        return Context()

    def fail(self, msg, **result):
        raise Failed(f"{self.label}: {msg}" if self.label else msg)


def test_item_label():
    assert ol.item_label("slots", 2, {"name": "foo"}) == "slots[2] (name=foo)"


def test_inherit_takes_unset_values_from_the_top_level():
    top = {"recreate": True, "terminate_active": False}
    assert ol.inherit(
        top, {"name": "a", "recreate": None, "terminate_active": True}, ("recreate", "terminate_active")
    ) == {
        "name": "a",
        "recreate": True,
        "terminate_active": True,
    }
    assert ol.inherit(top, {"name": "a", "recreate": False}, ("recreate",))["recreate"] is False


def test_check_items_names_duplicates_and_invalid_items():
    with pytest.raises(Failed, match=r"^slots\[2\] \(name=a\): name: slots\[0\] has the same name"):
        ol.check_items(FakeModule(), "slots", [{"name": "a"}, {"name": "b"}, {"name": "a"}])

    def validate(item):
        if item["name"].startswith("bad"):
            raise ValueError(f"name: {item['name']!r} is bad")

    with pytest.raises(Failed, match=r"^slots\[1\] \(name=bad1\): name: 'bad1' is bad"):
        ol.check_items(FakeModule(), "slots", [{"name": "a"}, {"name": "bad1"}, {"name": "bad2"}], validate)
    ol.check_items(FakeModule(), "slots", [])
    ol.check_items(FakeModule(), "slots", [{"name": "a"}, {"name": "b"}], validate)


def test_pg_module_failing_as_labels_the_message_and_adds_the_keys(capsys):
    import json

    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule

    with patch_module_args({}):
        m = PgModule(argument_spec={})
        m.queries.append("SELECT 1")
        with pytest.raises(SystemExit), m.failing_as("slots[1] (name=b)", slots=[{"name": "a"}]):
            m.fail("it broke")
        result = json.loads(capsys.readouterr().out)
        assert result["msg"] == "slots[1] (name=b): it broke"
        assert result["slots"] == [{"name": "a"}]
        assert result["queries"] == ["SELECT 1"]
        # outside the block the label is gone
        with pytest.raises(SystemExit):
            m.fail("plain")
        assert json.loads(capsys.readouterr().out)["msg"] == "plain"


def test_pg_module_failing_as_keeps_the_earlier_items_changed(capsys):
    import json

    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule

    with patch_module_args({}):
        m = PgModule(argument_spec={})
        for earlier, own, expected in ((True, False, True), (False, True, True), (False, False, False)):
            with pytest.raises(SystemExit), m.failing_as("subscriptions[1] (name=b)", changed=earlier):
                m.fail("it broke", changed=own)
            assert json.loads(capsys.readouterr().out)["changed"] is expected, (earlier, own)
