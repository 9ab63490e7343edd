"""inventium.logical_replication.subscription's list form (``subscriptions: [...]``) against real pairs.

The same scenarios as the single form, for several subscriptions in one call: created (and synchronized)
-> a no-op re-run -> check mode writes nothing and predicts the result -> ``--diff`` keyed by subscription
name -> bad input in any item fails naming the item's index and name with nothing applied; plus
subscriptions created, altered and dropped in one call, and the list form not being all or nothing: an
item that fails while being applied leaves the items before it applied, and the failure lists them.
Assertions read ``pg_subscription`` on the subscriber and ``pg_replication_slots`` on the publisher.
"""

from __future__ import annotations

import pytest
import test_subscription
from psycopg import sql
from support.ansible import ModuleCall, run_module, run_modules
from test_subscription import (
    LEAN_PAIRS,
    MODULE,
    SENTINEL,
    assert_no_sentinel,
    catalog,
    checksum,
    make_table,
    publisher_of,
    rel_states,
    slots,
)

sentinel_role = test_subscription.sentinel_role  # a fixture of that module, used here too


def list_args(dbs, items):
    return {**dbs.subscriber.login_args(), "subscriptions": items}


def item(dbs, name, publication, **options):
    return {"name": name, "publications": [publication], "publisher": publisher_of(dbs.publisher), **options}


def subscriptions(db):
    """Every subscription of the subscriber database: name -> (enabled, publications, slot, synchronous_commit)."""
    rows = db.execute(
        "SELECT subname::text, subenabled, subpublications::text[], subslotname::text, subsynccommit"
        " FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return {row[0]: row[1:] for row in rows}


def connectionless(dbs, name, publication):
    """A subscription made with plain SQL that never connects to the publisher (disabled, no slot created)."""
    dbs.subscriber.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (connect = false)").format(
            sql.Identifier(name), sql.Literal(dbs.publisher.conninfo()), sql.Identifier(publication)
        )
    )


def without_oid(state):
    return {key: value for key, value in state.items() if key != "oid"}


@LEAN_PAIRS
def test_several_subscriptions_created_checked_and_idempotent(pg_pair_db):
    dbs = pg_pair_db
    make_table(dbs, table="a", rows=1000, publication="pub_a")
    make_table(dbs, table="b", rows=10, publication="pub_b")
    items = [
        item(dbs, "sub_a", "pub_a", wait_for_sync=True),
        item(dbs, '"MixedSub"', "pub_b", slot_name="mixed_sub", synchronous_commit="remote_apply"),
    ]
    publisher_slots = slots(dbs.publisher)

    checked = run_module(MODULE, list_args(dbs, items), check=True, diff=True)
    assert checked["changed"] is True
    assert subscriptions(dbs.subscriber) == {}, "check mode changed the catalog"
    assert slots(dbs.publisher) == publisher_slots, "check mode created a slot on the publisher"
    assert [one["name"] for one in checked["subscriptions"]] == ["sub_a", "MixedSub"]
    assert [one["changed"] for one in checked["subscriptions"]] == [True, True]
    assert "sync" not in checked["subscriptions"][0]  # no waiting in check mode

    applied = run_module(MODULE, list_args(dbs, items), diff=True)
    assert applied["changed"] is True
    assert [len(one["queries"]) for one in applied["subscriptions"]] == [1, 1]
    assert applied["queries"] == [q for one in applied["subscriptions"] for q in one["queries"]]
    assert applied["queries"][0].startswith('CREATE SUBSCRIPTION "sub_a" CONNECTION ')
    assert applied["queries"][1].startswith('CREATE SUBSCRIPTION "MixedSub" CONNECTION ')
    assert checked["queries"] == applied["queries"]
    assert "subscription" not in applied  # the single form's keys
    assert "sync" not in applied
    assert dbs.publisher.server.password not in applied.output
    # sub_a waited for its initial copy before MixedSub was created
    assert applied["subscriptions"][0]["sync"]["synced"] is True
    assert "sync" not in applied["subscriptions"][1]
    assert applied["subscriptions"][0]["subscription"]["tables"][0]["state"] == "ready"
    assert checksum(dbs.subscriber, "a") == checksum(dbs.publisher, "a")
    assert set(rel_states(dbs.subscriber, "MixedSub")) == {"b"}
    assert subscriptions(dbs.subscriber) == {
        "sub_a": (True, ["pub_a"], "sub_a", "off"),
        "MixedSub": (True, ["pub_b"], "mixed_sub", "remote_apply"),
    }
    assert {"sub_a", "mixed_sub"} <= set(slots(dbs.publisher))

    # --diff: keyed by (exact) name, per item too, and check mode predicted it (the oid aside)
    diff = applied["diff"]
    assert diff["before"] == {}
    assert set(diff["after"]) == {"sub_a", "MixedSub"}
    assert diff["after"]["MixedSub"]["synchronous_commit"] == "remote_apply"
    assert applied["subscriptions"][1]["diff"] == {"before": {}, "after": diff["after"]["MixedSub"]}
    assert set(checked["diff"]["after"]) == set(diff["after"])
    for name, state in diff["after"].items():
        assert without_oid(checked["diff"]["after"][name]) == without_oid(state), name

    again = run_module(MODULE, list_args(dbs, items), diff=True)
    assert again["changed"] is False, again["queries"]
    assert again["queries"] == []
    assert [one["changed"] for one in again["subscriptions"]] == [False, False]
    assert again["subscriptions"][0]["sync"]["polls"] == 1
    assert again["diff"]["before"] == again["diff"]["after"] == diff["after"]


@LEAN_PAIRS
def test_created_altered_and_dropped_in_one_call(pg_pair_db):
    dbs = pg_pair_db
    for table in ("kept", "alt", "extra", "drop", "new"):
        make_table(dbs, table=table, rows=20, publication=f"p_{table}")
    for name in ("kept", "alt", "drop"):
        run_module(MODULE, {**item(dbs, name, f"p_{name}", wait_for_sync=True), **dbs.subscriber.login_args()})
    items = [
        item(dbs, "kept", "p_kept"),
        {**item(dbs, "alt", "p_alt"), "publications": ["p_alt", "p_extra"], "synchronous_commit": "remote_apply"},
        {"name": "drop", "state": "absent"},
        item(dbs, "new", "p_new", wait_for_sync=True),
    ]
    before = subscriptions(dbs.subscriber)
    publisher_slots = slots(dbs.publisher)

    checked = run_module(MODULE, list_args(dbs, items), check=True, diff=True)
    assert [one["changed"] for one in checked["subscriptions"]] == [False, True, True, True]
    assert subscriptions(dbs.subscriber) == before
    assert slots(dbs.publisher) == publisher_slots

    result = run_module(MODULE, list_args(dbs, items), diff=True)
    assert result["changed"] is True
    assert len(result["queries"]) == 4
    assert result["queries"][:3] == [
        'ALTER SUBSCRIPTION "alt" ADD PUBLICATION "p_extra" WITH (refresh = true)',
        "ALTER SUBSCRIPTION \"alt\" SET (synchronous_commit = 'remote_apply')",
        'DROP SUBSCRIPTION "drop"',
    ]
    assert result["queries"][3].startswith('CREATE SUBSCRIPTION "new" CONNECTION ')
    assert result["queries"] == checked["queries"]
    assert [one["changed"] for one in result["subscriptions"]] == [False, True, True, True]
    per_item = [one["queries"] for one in result["subscriptions"]]
    assert per_item == [[], result["queries"][:2], result["queries"][2:3], result["queries"][3:]]
    assert result["subscriptions"][2]["subscription"] == {}
    assert "drop" in result["diff"]["before"]
    assert "drop" not in result["diff"]["after"]
    assert "new" not in result["diff"]["before"]
    assert result["diff"]["after"]["alt"]["publications"] == ["p_alt", "p_extra"]
    assert result["diff"]["before"]["alt"]["synchronous_commit"] == "off"
    assert result["diff"]["after"]["alt"]["synchronous_commit"] == "remote_apply"
    assert without_oid(checked["diff"]["after"]["alt"]) == without_oid(result["diff"]["after"]["alt"])

    after = subscriptions(dbs.subscriber)
    assert after["kept"] == before["kept"]
    assert after["alt"] == (True, ["p_alt", "p_extra"], "alt", "remote_apply")
    assert "drop" not in after
    assert after["new"] == (True, ["p_new"], "new", "off")
    assert "drop" not in slots(dbs.publisher)
    assert "new" in slots(dbs.publisher)
    assert rel_states(dbs.subscriber, "new") == {"new": "r"}
    assert checksum(dbs.subscriber, "new") == checksum(dbs.publisher, "new")
    assert run_module(MODULE, list_args(dbs, items))["changed"] is False


NEW = {"publications": ["pub_a"], "publisher": True}  # a subscription to create; True: the pair's publisher
BAD_ITEMS = {
    # id: (bad item, expected message part, maximum subscriber major)
    "duplicate": ({**NEW, "name": '"new_a"'}, "name: subscriptions[0] has the same name", 99),
    "invalid-name": ({**NEW, "name": "Bad Name"}, "name: invalid name", 99),
    "publisher-and-conninfo": (
        {**NEW, "name": "s2", "conninfo": "host=elsewhere"},
        "publisher and conninfo are mutually exclusive",
        99,
    ),
    "option": (
        {**NEW, "name": "s2", "synchronous_commit": "sometimes"},
        "synchronous_commit: 'sometimes' is not one of",
        99,
    ),
    "create-without-publications": ({"name": "s2", "publisher": True}, "publications are needed to create it", 99),
    "create-without-connection": ({"name": "s2", "publications": ["pub_a"]}, "publisher or conninfo is needed", 99),
    "skip-lsn-on-create": ({**NEW, "name": "s2", "skip_lsn": "0/1"}, "skip_lsn: the subscription does not exist", 99),
    "version-gate": ({**NEW, "name": "s2", "failover": True}, "option failover requires PostgreSQL >= 17", 16),
    "version-gate-origin": ({**NEW, "name": "s2", "origin": "none"}, "option origin requires PostgreSQL >= 16", 15),
    "version-gate-parallel": (
        {**NEW, "name": "s2", "streaming": "parallel"},
        "option streaming requires PostgreSQL >= 16 (server is 15): streaming: parallel needs it",
        15,
    ),
    "version-gate-run-as-owner": (
        {**NEW, "name": "s2", "run_as_owner": True},
        "option run_as_owner requires PostgreSQL >= 16",
        15,
    ),
    "version-gate-password-required": (
        {**NEW, "name": "s2", "password_required": True},
        "option password_required requires PostgreSQL >= 16",
        15,
    ),
    # an existing subscription: the gate fails before anything is changed too
    "version-gate-existing": (
        {"name": "idle_sub", "failover": False},
        "option failover requires PostgreSQL >= 17",
        16,
    ),
    # idle_sub exists, disabled
    "refresh-disabled": ({"name": "idle_sub", "refresh": True}, "refresh: true needs an enabled subscription", 99),
    "wait-disabled": ({"name": "idle_sub", "wait_for_sync": True}, "but idle_sub is disabled", 99),
    "unalterable": (
        {"name": "idle_sub", "two_phase": True},
        "cannot be changed in place - two_phase: ALTER SUBSCRIPTION can change it from PostgreSQL 18",
        17,
    ),
}


@LEAN_PAIRS
@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_bad_item_fails_naming_it_with_nothing_applied(pg_pair_db, case):
    dbs = pg_pair_db
    bad, expected, max_major = BAD_ITEMS[case]
    if dbs.subscriber.server.major > max_major:
        pytest.skip(f"not a case on PostgreSQL {dbs.subscriber.server.major}")
    make_table(dbs, table="a", publication="pub_a")
    connectionless(dbs, "old_sub", "pub_a")
    connectionless(dbs, "idle_sub", "pub_a")
    before = subscriptions(dbs.subscriber)
    publisher_slots = slots(dbs.publisher)
    if bad.get("publisher") is True:
        bad = {**bad, "publisher": publisher_of(dbs.publisher)}
    items = [item(dbs, "new_a", "pub_a"), {"name": "old_sub", "state": "absent"}, bad]

    result = run_module(MODULE, list_args(dbs, items), expect_fail=True)
    assert result["msg"].startswith(f"subscriptions[2] (name={bad['name']}): "), result["msg"]
    assert expected in result["msg"]
    assert result["queries"] == []
    assert "subscriptions" not in result  # nothing was applied
    assert not result.get("changed")
    assert subscriptions(dbs.subscriber) == before
    assert slots(dbs.publisher) == publisher_slots
    assert dbs.publisher.server.password not in result.output


@LEAN_PAIRS
def test_an_item_failing_while_applied_leaves_the_items_before_it_applied(pg_pair_db):
    """Not all or nothing: the failure names the item, lists the items applied before it and is changed."""
    dbs = pg_pair_db
    make_table(dbs, table="a", rows=5, publication="pub_a")
    make_table(dbs, table="b", rows=5, publication="pub_b")
    run_module(MODULE, {**item(dbs, "old_sub", "pub_b"), **dbs.subscriber.login_args()})
    assert "old_sub" in slots(dbs.publisher)
    # passes every check of the module; the publisher refuses the connection when it is created
    late = item(dbs, "late_sub", "pub_b", publisher=publisher_of(dbs.publisher, dbname="no_such_db"))
    items = [item(dbs, "new_a", "pub_a"), {"name": "old_sub", "state": "absent"}, late]

    failed = run_module(MODULE, list_args(dbs, items), expect_fail=True)
    assert failed["msg"].startswith("subscriptions[2] (name=late_sub): "), failed["msg"]
    assert "no_such_db" in failed["msg"]
    assert failed["changed"] is True
    assert [(one["name"], one["changed"]) for one in failed["subscriptions"]] == [("new_a", True), ("old_sub", True)]
    assert failed["subscriptions"][1]["queries"] == ['DROP SUBSCRIPTION "old_sub"']
    assert len(failed["queries"]) == 3
    assert failed["queries"][2].startswith('CREATE SUBSCRIPTION "late_sub" CONNECTION ')
    assert dbs.publisher.server.password not in failed.output
    assert set(subscriptions(dbs.subscriber)) == {"new_a"}
    assert "old_sub" not in slots(dbs.publisher)
    assert "late_sub" not in slots(dbs.publisher)

    # re-running with the item fixed converges the rest
    items[2] = item(dbs, "late_sub", "pub_b")
    rerun = run_module(MODULE, list_args(dbs, items))
    assert [one["changed"] for one in rerun["subscriptions"]] == [False, False, True]
    assert set(subscriptions(dbs.subscriber)) == {"new_a", "late_sub"}


@LEAN_PAIRS
def test_password_never_in_output(pg_pair_db, sentinel_role):
    """The items' passwords stay out of results, diffs and errors, also in ansible-playbook -vvv output."""
    dbs = pg_pair_db
    make_table(dbs, table="a", rows=5, publication="pub_a")
    publisher = publisher_of(dbs.publisher, user=sentinel_role, password=SENTINEL)
    good = {"name": "sentinel_sub", "publications": ["pub_a"], "publisher": publisher, "wait_for_sync": True}
    outputs = []

    created = run_module(MODULE, list_args(dbs, [good]), diff=True, verbosity=3)
    outputs.append(created.output)
    assert created["changed"] is True
    assert "password=''********''" in created["queries"][0]  # conninfo-quoted inside the SQL literal
    assert "password=********" in created["subscriptions"][0]["subscription"]["conninfo"]
    stored = dbs.subscriber.execute("SELECT subconninfo FROM pg_subscription WHERE subname = 'sentinel_sub'")[0][0]

    # an item failing while applied (the publisher refuses it): the message quotes the connection
    refused = {**good, "name": "refused_sub", "publisher": {**publisher, "dbname": "no_such_db"}}
    # a raw conninfo holding the sentinel, and a malformed one, each failing as an item
    raw = {"name": "raw_sub", "publications": ["pub_a"], "conninfo": stored.replace(dbs.publisher.name, "no_such_db")}
    broken = {**raw, "conninfo": "host=x password=" + SENTINEL}
    # The rest through one ansible-playbook -vvv run, a task each (one controller start).
    failed_refused, failed_raw, failed_broken, dropped = run_modules(
        [
            ModuleCall(MODULE, list_args(dbs, [good, refused]), expect_fail=True),
            ModuleCall(MODULE, list_args(dbs, [good, raw]), expect_fail=True),
            ModuleCall(MODULE, list_args(dbs, [good, broken]), expect_fail=True),
            ModuleCall(MODULE, list_args(dbs, [{"name": "sentinel_sub", "state": "absent"}]), diff=True),
        ],
        verbosity=3,
    )
    outputs.append(failed_refused.output)
    assert failed_refused["msg"].startswith("subscriptions[1] (name=refused_sub): ")
    assert "password=''********''" in failed_refused["msg"]
    outputs.append(failed_raw.output)
    assert failed_raw["msg"].startswith("subscriptions[1] (name=raw_sub): ")
    outputs.append(failed_broken.output)
    assert failed_broken["msg"].startswith("subscriptions[1] (name=raw_sub): conninfo: missing")

    outputs.append(dropped.output)
    assert dropped["changed"] is True
    for output in outputs:
        assert_no_sentinel(output)
    assert catalog(dbs.subscriber, "sentinel_sub") is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"name": "x"}, "mutually exclusive: subscriptions|name"), ({"enabled": True}, "subscriptions|enabled")],
    ids=["name", "enabled"],
)
@LEAN_PAIRS
def test_list_and_single_options_exclude_each_other(pg_pair_db, extra, expected):
    dbs = pg_pair_db
    result = run_module(MODULE, {**list_args(dbs, [{"name": "new_a"}]), **extra}, expect_fail=True)
    assert expected in result["msg"]
    assert catalog(dbs.subscriber, "new_a") is None


@LEAN_PAIRS
def test_empty_list_changes_nothing(pg_pair_db):
    result = run_module(MODULE, list_args(pg_pair_db, []), diff=True)
    assert (result["changed"], result["queries"], result["subscriptions"]) == (False, [], [])
