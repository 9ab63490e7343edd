"""The failover-slot and two-way replication checks of ``_checks`` (pure functions over collected facts)."""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils import _checks


def codes(found):
    return [f["code"] for f in found]


def slot(name, slot_type="logical", **kwargs):
    return {"name": name, "slot_type": slot_type, "active": False, "failover": False, "synced": False, **kwargs}


def sub(name, **kwargs):
    return {"name": name, "slot_name": name, "origin": "any", "tables": [], **kwargs}


def test_failover_subscription_whose_slot_is_not_failover():
    subs = [sub("a", failover=True), sub("b", failover=True), sub("c", failover=False), sub("d", failover=True)]
    pub_slots = [slot("a", failover=True), slot("b", failover=False), slot("c", failover=False)]
    found = _checks.check_failover_subscription_slots(subs, pub_slots)
    assert codes(found) == ["failover_slot_not_failover"]
    assert found[0]["severity"] == "warning"
    assert "b (slot b)" in found[0]["message"]
    assert "a (slot a)" not in found[0]["message"]
    assert "c (slot" not in found[0]["message"]  # not a failover subscription
    assert "d (slot" not in found[0]["message"]  # slot missing on the publisher: its errors say so
    assert _checks.check_failover_subscription_slots(subs[:1], pub_slots) == []
    # a publisher before 17 has no failover column: nothing to say
    assert _checks.check_failover_subscription_slots(subs, [{"name": "b", "slot_type": "logical"}]) == []


def standby(listed, in_recovery=False):
    return {"in_recovery": in_recovery, "synchronized_standby_slots": listed, "sync_replication_slots": False}


def test_standby_slots_broken_inactive_and_missing():
    slots = [
        slot("lf", failover=True),
        slot("sb_ok", "physical", active=True),
        slot("sb_down", "physical"),
        slot("sb_lost", "physical", wal_status="lost", invalidation_reason="wal_removed"),
        slot("sb_unlisted", "physical", active=True),
        slot("sb_unused", "physical"),
    ]
    found = _checks.check_standby_slots(standby(["sb_ok", "sb_down", "sb_lost", "gone", "lf"]), slots)
    assert codes(found) == [
        "synchronized_standby_slots_broken",
        "standby_slot_inactive",
        "standby_not_in_synchronized_standby_slots",
    ]
    broken, inactive, missing = found
    assert broken["severity"] == "error"
    for part in ("gone (does not exist)", "lf (a logical slot)", "sb_lost (invalidated: wal_removed)"):
        assert part in broken["message"]
    assert "sb_ok" not in broken["message"]
    assert "receive nothing: lf" in broken["message"]
    assert "sb_down" in inactive["message"]
    assert "sb_ok" not in inactive["message"]
    assert "sb_unlisted" in missing["message"]
    assert "sb_unused" not in missing["message"]  # no standby uses it


def test_standby_slots_quiet_without_failover_slots_on_a_standby_and_before_17():
    slots = [slot("plain"), slot("sb_down", "physical"), slot("sb_unlisted", "physical", active=True)]
    assert _checks.check_standby_slots(standby(["sb_down"]), slots) == []  # nothing waits for it
    assert codes(_checks.check_standby_slots(standby(["gone"]), slots)) == ["synchronized_standby_slots_broken"]
    synced = [slot("lf", failover=True, synced=True), slot("sb_unlisted", "physical", active=True)]
    assert _checks.check_standby_slots(standby([]), synced) == []  # a synchronized copy is not this node's own
    assert _checks.check_standby_slots(standby(["gone"], in_recovery=True), slots) == []
    assert _checks.check_standby_slots(None, slots) == []
    listed = [slot("lf", failover=True), slot("sb", "physical", active=True)]
    assert _checks.check_standby_slots(standby(["sb"]), listed) == []


def table(schema, name):
    return {"schema": schema, "table": name}


def test_replication_loop_risk_from_one_node():
    publications = [
        {"all_tables": False, "schemas": ["shared"], "tables": [table("public", "items")]},
    ]
    subs = [
        sub("s_any", tables=[table("public", "items"), table("public", "other")]),
        sub("s_none", origin="none", tables=[table("public", "items")]),
        sub("s_schema", tables=[table("shared", "t")]),
        sub("s_elsewhere", tables=[table("public", "other")]),
    ]
    found = _checks.check_replication_loops(publications, subs)
    assert codes(found) == ["replication_loop_risk"]
    message = found[0]["message"]
    assert "s_any (public.items)" in message
    assert "s_schema (shared.t)" in message
    assert "s_none" not in message
    assert "s_elsewhere" not in message
    assert "older than 16" not in found[0]["hint"]
    assert _checks.check_replication_loops([], subs) == []
    everything = [{"all_tables": True, "schemas": [], "tables": []}]
    old = [{"name": "s15", "slot_name": "s15", "tables": [table("public", "other")]}]  # no origin before 16
    found = _checks.check_replication_loops(everything, old)
    assert "s15 (public.other)" in found[0]["message"]
    assert "older than 16" in found[0]["hint"]


def test_two_way_replication_confirmed_with_the_publisher():
    local_slots = [slot("back_slot"), slot("phys", "physical")]
    publisher_subs = [
        {"name": "back", "slot_name": "back_slot", "origin": "any"},
        {"name": "other", "slot_name": "elsewhere", "origin": "any"},
    ]
    found = _checks.check_two_way_origin([sub("fwd", origin="none")], local_slots, publisher_subs)
    assert codes(found) == ["replication_loop"]
    assert found[0]["severity"] == "error"
    assert "on the publisher: back" in found[0]["message"]
    assert "here:" not in found[0]["message"]
    found = _checks.check_two_way_origin([sub("fwd")], local_slots, publisher_subs)
    assert "here: fwd" in found[0]["message"]
    # origin = none both ways: no loop; the publisher not subscribing back: no loop
    fixed = [dict(publisher_subs[0], origin="none")]
    assert _checks.check_two_way_origin([sub("fwd", origin="none")], local_slots, fixed) == []
    assert _checks.check_two_way_origin([sub("fwd")], local_slots, publisher_subs[1:]) == []
    assert _checks.check_two_way_origin([], local_slots, publisher_subs) == []
    # the publisher before 16 has no origin (None): it sends everything
    old = [{"name": "back", "slot_name": "back_slot", "origin": None}]
    assert codes(_checks.check_two_way_origin([sub("fwd", origin="none")], local_slots, old)) == ["replication_loop"]
