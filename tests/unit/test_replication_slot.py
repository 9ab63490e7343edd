"""Unit tests of the replication_slot module's pure pieces (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _slots as rs
from ansible_collections.inventium.logical_replication.plugins.modules import replication_slot as rs_module


def render(composable):
    return composable.as_string(None)


def params(**kwargs):
    base = {
        "name": "s1",
        "slot_type": "logical",
        "plugin": None,
        "database": None,
        "two_phase": None,
        "failover": None,
        "state": "present",
        "recreate": False,
        "terminate_active": False,
    }
    base.update(kwargs)
    return base


@pytest.mark.parametrize("name", ["s1", "a", "sub_1_slot", "x" * 63, "0abc"])
def test_valid_names(name):
    rs.validate_params(params(name=name))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad"}, "name: 'Bad' is not a valid replication slot name"),
        ({"name": "a-b"}, "name: 'a-b' is not a valid replication slot name"),
        ({"name": ""}, "is not a valid replication slot name"),
        ({"name": "x" * 64}, "is not a valid replication slot name"),
        ({"name": "s p"}, "is not a valid replication slot name"),
        ({"slot_type": "physical", "plugin": "pgoutput"}, "plugin: only logical slots have one"),
        ({"slot_type": "physical", "database": "app"}, "database: only logical slots have one"),
        ({"slot_type": "physical", "two_phase": True}, "two_phase: only logical slots support it"),
        ({"slot_type": "physical", "failover": True}, "failover: only logical slots support it"),
        ({"plugin": ""}, "plugin: must not be empty"),
    ],
)
def test_invalid_params(kwargs, message):
    with pytest.raises(rs.OptionError) as info:
        rs.validate_params(params(**kwargs))
    assert message in str(info.value)


def test_physical_with_false_flags_is_fine():
    rs.validate_params(params(slot_type="physical", two_phase=False, failover=False))


@pytest.mark.parametrize(
    ("major", "expected"),
    [(13, [("two_phase", 14), ("failover", 17)]), (14, [("failover", 17)]), (16, [("failover", 17)]), (17, [])],
)
def test_version_problems(major, expected):
    assert rs.version_problems(params(two_phase=True, failover=True), major) == expected
    assert rs.version_problems(params(two_phase=False, failover=False), 13) == []


def test_desired_definition():
    assert rs.desired_definition(params(), "app", 17) == {
        "name": "s1",
        "slot_type": "logical",
        "plugin": "pgoutput",
        "database": "app",
        "two_phase": None,
        "failover": None,
    }
    assert rs.desired_definition(params(plugin="test_decoding", failover=True, two_phase=True), "app", 14) == {
        "name": "s1",
        "slot_type": "logical",
        "plugin": "test_decoding",
        "database": "app",
        "two_phase": True,
        "failover": None,
    }
    assert rs.desired_definition(params(slot_type="physical"), "app", 17)["database"] is None


def current(**kwargs):
    base = {"slot_type": "logical", "plugin": "pgoutput", "database": "app", "two_phase": False, "failover": False}
    base.update(kwargs)
    return base


def test_differences():
    desired = rs.desired_definition(params(), "app", 17)
    assert rs.differences(current(), desired) == []
    assert rs.differences(current(plugin="test_decoding", database="other", two_phase=True), desired) == [
        "plugin is test_decoding (wanted pgoutput)",
        "database is other (wanted app)",
    ]
    desired = rs.desired_definition(params(two_phase=True, failover=False), "app", 17)
    assert rs.differences(current(failover=True), desired) == [
        "two_phase is false (wanted true)",
        "failover is true (wanted false)",
    ]
    physical = rs.desired_definition(params(slot_type="physical"), "app", 17)
    assert rs.differences(current(), physical) == ["slot_type is logical (wanted physical)"]
    assert rs.differences(current(slot_type="physical", plugin=None, database=None), desired)[0] == (
        "slot_type is physical (wanted logical)"
    )


def test_predicted_state_uses_the_servers_columns():
    definition = rs.desired_definition(params(two_phase=True), "app", 13)
    assert set(rs.predicted_state(definition, 13)) == {
        "name",
        "slot_type",
        "plugin",
        "database",
        "temporary",
        "active",
        "active_pid",
        "restart_lsn",
        "confirmed_flush_lsn",
        "wal_status",
        "safe_wal_size",
        "retained_wal_bytes",
    }
    state = rs.predicted_state(rs.desired_definition(params(failover=True), "app", 18), 18)
    assert state["failover"] is True
    assert state["two_phase"] is False
    assert {"conflicting", "inactive_since", "invalidation_reason", "synced", "two_phase_at"} <= set(state)
    assert "conflicting" in rs.predicted_state(definition, 16)
    assert "failover" not in rs.predicted_state(definition, 16)


@pytest.mark.parametrize(
    ("major", "present", "absent"),
    [
        (13, ["wal_status", "retained_wal_bytes"], ["two_phase", "conflicting", "failover"]),
        (14, ["two_phase"], ["conflicting", "inactive_since"]),
        (16, ["conflicting"], ["failover", "synced"]),
        (17, ["inactive_since", "invalidation_reason", "failover", "synced"], ["two_phase_at"]),
        (18, ["two_phase_at"], []),
    ],
)
def test_slot_query_columns(major, present, absent):
    text = render(rs.slot_query(major))
    for column in present:
        assert column in text
    for column in absent:
        assert column not in text
    assert text.endswith("WHERE slot_name = %s")


def test_create_statements():
    logical = rs.desired_definition(params(two_phase=True, failover=True), "app", 17)
    assert render(rs.create_statement(logical, 17)) == (
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot('s1', 'pgoutput',"
        " twophase => true, failover => true)"
    )
    # failover cannot be set on temporary slots; older servers do not get the arguments
    assert render(rs.create_statement(logical, 17, name="tmp", temporary=True)) == (
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot('tmp', 'pgoutput',"
        " temporary => true, twophase => true)"
    )
    plain = rs.desired_definition(params(), "app", 13)
    assert render(rs.create_statement(plain, 13)) == (
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot('s1', 'pgoutput')"
    )
    physical = rs.desired_definition(params(slot_type="physical"), None, 17)
    assert render(rs.create_statement(physical, 17)) == (
        "SELECT lsn::text FROM pg_catalog.pg_create_physical_replication_slot('s1')"
    )
    assert render(rs.drop_statement("s1")) == "SELECT pg_catalog.pg_drop_replication_slot('s1')"
    assert render(rs.terminate_statement(42)) == "SELECT pg_catalog.pg_terminate_backend(42)"


def test_definition_of():
    assert rs.definition_of(None) == {}
    slot = {**current(), "name": "s1", "active": True}
    assert rs.definition_of(slot) == {"name": "s1", **current()}


def test_argument_spec_matches_documentation():
    import yaml

    doc = yaml.safe_load(rs_module.DOCUMENTATION)
    spec = rs_module.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        documented = doc["options"][name]
        assert documented["type"] == option["type"], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("choices") == option.get("choices"), name
    yaml.safe_load(rs_module.EXAMPLES)
    yaml.safe_load(rs_module.RETURN)


def test_slots_suboptions_match_documentation():
    import yaml

    documented = yaml.safe_load(rs_module.DOCUMENTATION)["options"]["slots"]["suboptions"]
    spec = rs_module.argument_spec()["slots"]
    assert (spec["type"], spec["elements"]) == ("list", "dict")
    assert set(documented) == set(spec["options"])
    for name, option in spec["options"].items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("choices") == option.get("choices"), name
        assert bool(documented[name].get("required")) == bool(option.get("required")), name


def test_session_database():
    assert rs.session_database(params(database="pub")) == "pub"
    assert rs.session_database(params()) is None
    assert rs.session_database(params(database="pub", state="absent")) is None
    assert rs.session_database(params(slot_type="physical", database="pub")) is None


def test_one_database_for_the_list():
    check = rs.OneDatabase()
    check(params(name="a"))
    check(params(name="b", database="pub"))
    check(params(name="c", database="pub"))
    check(params(name="d", database="other", state="absent"))  # dropping ignores the database
    assert check.database == "pub"
    with pytest.raises(rs.OptionError, match="database: 'other' differs from 'pub'"):
        check(params(name="e", database="other"))
    with pytest.raises(rs.OptionError, match="not a valid replication slot name"):
        check(params(name="Bad"))


def test_in_place_change_only_when_failover_is_the_only_difference():
    wanted = rs.desired_definition(params(failover=True), "app", 17)
    assert rs.in_place_change(current(), wanted, 17) == {"failover": True}
    assert rs.in_place_change(current(failover=True), wanted, 17) is None  # nothing to change
    off = rs.desired_definition(params(failover=False), "app", 18)
    assert rs.in_place_change(current(failover=True), off, 18) == {"failover": False}
    # another difference too: the slot must be re-created (or the module fails without recreate)
    assert rs.in_place_change(current(plugin="test_decoding"), wanted, 17) is None
    both = rs.desired_definition(params(failover=True, two_phase=True), "app", 17)
    assert rs.in_place_change(current(), both, 17) is None
    # not changeable in place: before 17, temporary slots, slots synchronized from a primary, physical slots
    assert rs.in_place_change(current(), wanted, 16) is None
    assert rs.in_place_change(current(temporary=True), wanted, 17) is None
    assert rs.in_place_change(current(synced=True), wanted, 17) is None
    physical = current(slot_type="physical", plugin=None, database=None)
    assert rs.in_place_change(physical, wanted, 17) is None
    # failover not given: nothing managed
    assert rs.in_place_change(current(failover=True), rs.desired_definition(params(), "app", 17), 17) is None


def test_alter_statement():
    conn = None
    assert (
        rs.alter_statement("s1", {"failover": True}).as_string(conn) == 'ALTER_REPLICATION_SLOT "s1" ( FAILOVER true )'
    )
    assert rs.alter_statement("s1", {"failover": False}).as_string(conn) == (
        'ALTER_REPLICATION_SLOT "s1" ( FAILOVER false )'
    )
