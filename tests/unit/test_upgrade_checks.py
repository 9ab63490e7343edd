"""The pg_upgrade readiness rules over collected facts (no database)."""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils._upgrade_checks import (
    evaluate_upgrade_readiness,
)


def server(**overrides):
    base = {
        "database": "shop",
        "wal_level": "logical",
        "max_replication_slots": 10,
        "max_active_replication_origins": 10,
        "in_recovery": False,
        "publications": 1,
    }
    return {**base, **overrides}


def slot(name, **overrides):
    base = {
        "name": name,
        "slot_type": "logical",
        "plugin": "pgoutput",
        "database": "shop",
        "temporary": False,
        "active": False,
        "active_pid": None,
        "wal_status": "reserved",
        "conflicting": False,
        "invalidation_reason": None,
        "confirmed_flush_lsn": "0/1000",
        "confirmed_flush_lag_bytes": 0,
    }
    return {**base, **overrides}


def facts(major=18, slots=(), subscriptions=(), tables=(), **server_overrides):
    return {
        "major": major,
        "server": server(**server_overrides),
        "slots": list(slots),
        "subscriptions": list(subscriptions),
        "tables": list(tables),
    }


def by_code(result):
    return {f["code"]: f for f in result["findings"]}


def test_below_17():
    result = evaluate_upgrade_readiness({"major": 16, "server": None, "slots": None})
    assert result["applies"] is False
    assert result["publisher"] is None
    assert result["findings"] == []


def test_ready_publisher_has_no_findings_and_lists_the_requirements():
    result = evaluate_upgrade_readiness(
        facts(
            slots=[slot("a"), slot("b", plugin="wal2json"), slot("t", temporary=True), slot("p", slot_type="physical")]
        )
    )
    assert result["findings"] == []
    assert result["publisher"]["logical_slot_count"] == 2
    assert result["publisher"]["temporary_slots_ignored"] == 1
    assert result["publisher"]["plugins"] == ["pgoutput", "wal2json"]
    assert any("max_replication_slots >= 2" in r for r in result["publisher"]["requirements"])


def test_invalid_behind_and_active_slots():
    result = evaluate_upgrade_readiness(
        facts(
            major=17,
            slots=[
                slot("lost", invalidation_reason="wal_removed", wal_status="lost", confirmed_flush_lag_bytes=10),
                slot("behind", confirmed_flush_lag_bytes=4096),
                slot("busy", active=True, active_pid=42),
            ],
        )
    )
    found = result["findings"]
    assert [(f["code"], f["severity"]) for f in found] == [
        ("upgrade_slot_invalid", "warning"),
        ("upgrade_slot_not_caught_up", "warning"),
        ("upgrade_slot_active", "info"),
    ]
    assert "wal_removed" in found[0]["message"]
    assert "4096 bytes" in found[1]["message"]
    # Not reported as behind as well: the invalid slot's one problem is that it is invalid.
    assert sum("lost" in f["message"] for f in found) == 1


def test_tail_bytes_tolerance():
    assert evaluate_upgrade_readiness(facts(slots=[slot("s", confirmed_flush_lag_bytes=100)]))["findings"]
    assert not evaluate_upgrade_readiness(facts(slots=[slot("s", confirmed_flush_lag_bytes=100)]), tail_bytes=128)[
        "findings"
    ]


def test_wal_level_with_slots():
    result = evaluate_upgrade_readiness(facts(slots=[slot("s")], wal_level="replica"))
    assert "upgrade_wal_level" in by_code(result)


def sub(name, database, has_origin, here):
    number = name[1:]
    return {
        "name": name,
        "database": database,
        "enabled": True,
        "origin": f"pg_{number}",
        "has_origin": has_origin,
        "in_this_database": here,
    }


def test_subscriber_rules():
    subs = [
        sub("s1", "shop", has_origin=True, here=True),
        sub("s2", "shop", has_origin=False, here=True),
        sub("s3", "crm", has_origin=True, here=False),
    ]
    tables = [
        {"subscription": "s1", "schema": "public", "table": "a", "state": "r"},
        {"subscription": "s1", "schema": "public", "table": "b", "state": "i"},
        {"subscription": "s1", "schema": "public", "table": "c", "state": "d"},
    ]
    result = evaluate_upgrade_readiness(facts(major=17, subscriptions=subs, tables=tables))
    found = by_code(result)
    assert "pg_2" in found["upgrade_origin_missing"]["message"]
    assert "public.c" in found["upgrade_table_not_ready"]["message"]
    assert "state d (data_copy)" in found["upgrade_table_not_ready"]["message"]
    assert "crm" in found["upgrade_tables_not_checked"]["message"]
    assert result["subscriber"]["subscription_count"] == 3
    assert result["subscriber"]["origin_setting"] == "max_replication_slots"
    assert [t["table"] for t in result["subscriber"]["tables_not_ready"]] == ["c"]
    assert any(">= 3" in r for r in result["subscriber"]["requirements"])
    assert evaluate_upgrade_readiness(facts(major=18, subscriptions=subs[:1]))["subscriber"]["origin_setting"] == (
        "max_active_replication_origins"
    )
