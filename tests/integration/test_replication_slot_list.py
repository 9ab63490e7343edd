"""inventium.logical_replication.replication_slot's list form (``slots: [...]``) against real PostgreSQL servers.

The same scenarios as the single form, for several slots in one call: created -> a no-op re-run ->
check mode writes nothing and predicts the result -> ``--diff`` keyed by slot name -> bad input in any
item fails naming the item's index and name with nothing applied; plus slots created, re-created and
dropped in one call. Every assertion reads ``pg_replication_slots`` with plain SQL.
"""

from __future__ import annotations

import pytest
import test_replication_slot
from support.ansible import run_module
from test_replication_slot import (
    MODULE,
    all_slots,
    created_logical,
    created_physical,
    definition,
    fail,
    recvlogical,
    slot,
    unique,
)

drop_slots = test_replication_slot.drop_slots  # a fixture of that module, used here too


def logical_definition(server, name, database, plugin="pgoutput"):
    """The ``diff`` definition of a fresh logical slot with defaults."""
    return {
        "name": name,
        "slot_type": "logical",
        "plugin": plugin,
        "database": database,
        "two_phase": False if server.major >= 14 else None,
        "failover": False if server.major >= 17 else None,
    }


def test_several_slots_created_checked_and_idempotent(pg_db, drop_slots):
    server = pg_db.server
    first, second, phys = unique(), unique(), unique("phys")
    drop_slots.append(phys)
    params = {
        **pg_db.login_args(),
        "slots": [
            {"name": first},
            {"name": second, "plugin": "test_decoding"},
            {"name": phys, "slot_type": "physical"},
        ],
    }
    before = all_slots(server)

    checked = run_module(MODULE, params, check=True, diff=True)
    assert checked["changed"] is True
    assert all_slots(server) == before, "check mode changed pg_replication_slots"
    assert [item["name"] for item in checked["slots"]] == [first, second, phys]
    assert [item["changed"] for item in checked["slots"]] == [True, True, True]
    assert checked["slots"][1]["slot"]["plugin"] == "test_decoding"  # predicted
    assert checked["slots"][2]["slot"]["slot_type"] == "physical"

    applied = run_module(MODULE, params, diff=True)
    assert applied["changed"] is True
    expected_queries = [created_logical(first), created_logical(second, "test_decoding"), created_physical(phys)]
    assert applied["queries"] == expected_queries
    assert [item["queries"] for item in applied["slots"]] == [[q] for q in expected_queries]
    assert checked["queries"] == applied["queries"]
    assert checked["diff"] == applied["diff"]
    assert applied["diff"]["before"] == {}
    assert applied["diff"]["after"] == {
        first: logical_definition(server, first, pg_db.name),
        second: logical_definition(server, second, pg_db.name, "test_decoding"),
        phys: {
            "name": phys,
            "slot_type": "physical",
            "plugin": None,
            "database": None,
            "two_phase": False if server.major >= 14 else None,
            "failover": False if server.major >= 17 else None,
        },
    }
    assert applied["slots"][0]["diff"] == {"before": {}, "after": applied["diff"]["after"][first]}
    assert (slot(server, first)["plugin"], slot(server, first)["database"]) == ("pgoutput", pg_db.name)
    assert slot(server, second)["plugin"] == "test_decoding"
    assert slot(server, phys)["slot_type"] == "physical"
    returned = applied["slots"][0]["slot"]
    assert returned["restart_lsn"] == slot(server, first)["restart_lsn"]
    assert returned["wal_status"] == "reserved"
    assert "slot" not in applied  # the single form's key

    again = run_module(MODULE, params, diff=True)
    assert again["changed"] is False
    assert again["queries"] == []
    assert [item["changed"] for item in again["slots"]] == [False, False, False]
    assert again["diff"]["before"] == again["diff"]["after"] == applied["diff"]["after"]


def test_created_recreated_and_dropped_in_one_call(pg_db):
    server = pg_db.server
    kept, switched, dropped, new = unique(), unique(), unique(), unique()
    for name in (kept, switched, dropped):
        pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    params = {
        **pg_db.login_args(),
        "recreate": True,  # the top-level default of the items
        "slots": [
            {"name": kept},
            {"name": switched, "plugin": "test_decoding"},
            {"name": dropped, "state": "absent"},
            {"name": new},
        ],
    }
    checked = run_module(MODULE, params, check=True, diff=True)
    assert [item["changed"] for item in checked["slots"]] == [False, True, True, True]
    assert slot(server, switched)["plugin"] == "pgoutput"
    assert slot(server, dropped) is not None
    assert slot(server, new) is None

    result = run_module(MODULE, params, diff=True)
    assert result["changed"] is True
    assert result["queries"] == [
        f"SELECT pg_catalog.pg_drop_replication_slot('{switched}')",
        created_logical(switched, "test_decoding"),
        f"SELECT pg_catalog.pg_drop_replication_slot('{dropped}')",
        created_logical(new),
    ]
    assert result["queries"] == checked["queries"]
    assert result["diff"] == checked["diff"]
    assert [item["changed"] for item in result["slots"]] == [False, True, True, True]
    assert result["slots"][2]["slot"] == {}
    assert result["diff"]["before"][switched]["plugin"] == "pgoutput"
    assert result["diff"]["after"][switched]["plugin"] == "test_decoding"
    assert dropped in result["diff"]["before"]
    assert dropped not in result["diff"]["after"]
    assert new not in result["diff"]["before"]
    assert any(switched in w and "re-created" in w for w in result["warnings"])
    assert slot(server, kept)["plugin"] == "pgoutput"
    assert slot(server, switched)["plugin"] == "test_decoding"
    assert slot(server, dropped) is None
    assert slot(server, new)["plugin"] == "pgoutput"
    assert run_module(MODULE, params)["changed"] is False


def bad_items(major, database, other_database):
    """``(items, index of the bad one, expected message part)``: the bad item comes after valid ones."""
    existing = "drifted"  # created with test_decoding by the test
    cases = {
        "invalid-name": ([{"name": "Bad-Name"}], "name: 'Bad-Name' is not a valid replication slot name"),
        "duplicate": ([{"name": "new_a"}], "name: slots[0] has the same name"),
        "physical-plugin": (
            [{"name": "p1", "slot_type": "physical", "plugin": "pgoutput"}],
            "plugin: only logical slots",
        ),
        "two-databases": (
            [{"name": "p2", "database": other_database}],
            f"database: '{other_database}' differs from '{database}'",
        ),
        "drift": ([{"name": existing}], "exists but differs: plugin is test_decoding (wanted pgoutput)"),
        "missing-plugin": ([{"name": "p4", "plugin": "no_such_plugin"}], "plugin: cannot use output plugin"),
    }
    if major < 17:
        cases["version-gate"] = ([{"name": "p3", "failover": True}], "failover requires PostgreSQL >= 17")
    return cases


@pytest.mark.parametrize(
    "case", ["invalid-name", "duplicate", "physical-plugin", "two-databases", "drift", "missing-plugin", "version-gate"]
)
def test_bad_item_fails_naming_it_with_nothing_applied(pg_db, pg_database_factory, case):
    server = pg_db.server
    other = pg_database_factory(server, "other")
    pg_db.execute("SELECT pg_create_logical_replication_slot('drifted', 'test_decoding')")
    cases = bad_items(server.major, pg_db.name, other.name)
    if case not in cases:
        pytest.skip(f"PostgreSQL {server.major} has the feature")
    bad, expected = cases[case]
    valid = [{"name": "new_a", "database": pg_db.name}, {"name": "new_b", "state": "absent"}]
    items = valid + bad
    bad_name = bad[0]["name"]
    result = fail(server, {"slots": items}, pg_db.login_args())
    assert result["msg"].startswith(f"slots[2] (name={bad_name}): "), result["msg"]
    assert expected in result["msg"]
    assert result["queries"] == []
    assert slot(server, "new_a") is None


def test_active_slot_in_the_list(pg_db):
    """An active slot fails the whole list unless terminate_active (per item or at the top level)."""
    server = pg_db.server
    busy, fresh = unique(), unique()
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [busy])
    items = [{"name": fresh}, {"name": busy, "state": "absent"}]
    with recvlogical(pg_db, busy):
        pid = slot(server, busy)["active_pid"]
        result = fail(server, {"slots": items}, pg_db.login_args())
        assert result["msg"].startswith(f"slots[1] (name={busy}): replication slot {busy} is active (used by PID {pid}")
        assert result["queries"] == []
        assert slot(server, fresh) is None

        per_item = [{"name": fresh}, {"name": busy, "state": "absent", "terminate_active": True}]
        checked = run_module(MODULE, {**pg_db.login_args(), "slots": per_item}, check=True)
        assert checked["slots"][1]["queries"] == [
            f"SELECT pg_catalog.pg_terminate_backend({pid})",
            f"SELECT pg_catalog.pg_drop_replication_slot('{busy}')",
        ]
        assert slot(server, busy)["active"] is True

        result = run_module(MODULE, {**pg_db.login_args(), "terminate_active": True, "slots": items})
        assert result["queries"] == [created_logical(fresh), *checked["slots"][1]["queries"]]
        assert slot(server, busy) is None
        assert definition(server, fresh)["plugin"] == "pgoutput"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"name": "x"}, "mutually exclusive: slots|name"),
        ({"plugin": "test_decoding"}, "mutually exclusive: slots|plugin"),
    ],
    ids=["name", "plugin"],
)
def test_list_and_single_options_exclude_each_other(pg_db, extra, expected):
    result = fail(pg_db.server, {"slots": [{"name": "new_a"}], **extra}, pg_db.login_args())
    assert expected in result["msg"]
    assert slot(pg_db.server, "new_a") is None


def test_item_without_name_fails(pg_db):
    result = fail(pg_db.server, {"slots": [{"plugin": "pgoutput"}]}, pg_db.login_args())
    assert "name" in result["msg"]
    assert "slots" in result["msg"]


def test_empty_list_changes_nothing(pg_db):
    result = run_module(MODULE, {**pg_db.login_args(), "slots": []}, diff=True)
    assert (result["changed"], result["queries"], result["slots"]) == (False, [], [])
    assert result["diff"] == {"before": {}, "after": {}}


@pytest.mark.min_pg(17)
def test_failover_changed_in_place_in_the_list_form(pg_db):
    """One item changes failover in place (ALTER_REPLICATION_SLOT), another is created; re-run changes nothing."""
    server = pg_db.server
    kept, new = unique(), unique()
    run_module(MODULE, {**pg_db.login_args(), "name": kept})
    restart_lsn = slot(server, kept)["restart_lsn"]
    params = {**pg_db.login_args(), "slots": [{"name": kept, "failover": True}, {"name": new, "failover": True}]}
    checked = run_module(MODULE, params, check=True)
    assert slot(server, kept)["failover"] is False
    assert slot(server, new) is None
    applied = run_module(MODULE, params)
    assert applied["queries"] == checked["queries"]
    assert applied["slots"][0]["queries"] == [f'ALTER_REPLICATION_SLOT "{kept}" ( FAILOVER true )']
    assert "failover => true" in applied["slots"][1]["queries"][0]
    assert (slot(server, kept)["failover"], slot(server, new)["failover"]) == (True, True)
    assert slot(server, kept)["restart_lsn"] == restart_lsn
    assert run_module(MODULE, params)["changed"] is False
