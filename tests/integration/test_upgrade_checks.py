"""_upgrade_checks.upgrade_readiness against real servers: PostgreSQL 17+ publishers' slots and subscribers'
subscription state, and "does not apply" below 17."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from psycopg import sql

from ansible_collections.inventium.logical_replication.plugins.module_utils._upgrade_checks import upgrade_readiness


def readiness(db):
    with db.connect() as conn:
        return upgrade_readiness(conn)


def codes(result, code):
    return [f for f in result["findings"] if f["code"] == code]


def consume(db, slot, publication):
    db.execute(
        "SELECT count(*) FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, 'proto_version', '1', "
        "'publication_names', %s)",
        [slot, publication],
    )


def test_below_17_does_not_apply(pg_db):
    if pg_db.server.major >= 17:
        pytest.skip("checks PostgreSQL < 17")
    result = readiness(pg_db)
    assert result["applies"] is False
    assert "17 or later" in result["reason"]
    assert result["findings"] == []


@pytest.mark.min_pg(17)
def test_slot_with_unconsumed_changes_then_consumed(pg_db):
    slot = f"up_{pg_db.name}"[:63]
    pg_db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    pg_db.execute("CREATE PUBLICATION up_pub FOR TABLE items")
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
    pg_db.execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g")

    result = readiness(pg_db)
    assert result["applies"] is True
    behind = [f for f in codes(result, "upgrade_slot_not_caught_up") if slot in f["message"]]
    assert len(behind) == 1
    assert "approximation" in behind[0]["message"]
    assert behind[0]["severity"] == "warning"
    assert behind[0]["hint"]
    facts = {s["name"]: s for s in result["publisher"]["slots"]}[slot]
    assert facts["caught_up"] is False
    assert facts["unconsumed_bytes"] > 0
    assert result["publisher"]["logical_slot_count"] >= 1
    assert result["publisher"]["wal_level"] == "logical"
    assert "pgoutput" in result["publisher"]["plugins"]
    assert any("max_replication_slots >=" in r for r in result["publisher"]["requirements"])

    # Consumed: confirmed_flush_lsn reaches the WAL position. The server may append a record that carries no
    # change (a running-transactions snapshot) between the two reads: consume that too and look again.
    for _attempt in range(5):
        consume(pg_db, slot, "up_pub")
        result = readiness(pg_db)
        facts = {s["name"]: s for s in result["publisher"]["slots"]}[slot]
        if facts["caught_up"]:
            break
    assert facts["caught_up"], facts
    assert facts["unconsumed_bytes"] == 0
    assert not [f for f in result["findings"] if slot in f["message"]]


@pytest.mark.min_pg(17)
def test_subscription_origin_and_tables(pg_db):
    pg_db.execute(
        "CREATE SUBSCRIPTION up_sub CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' PUBLICATION p "
        "WITH (connect = false)"
    )
    result = readiness(pg_db)
    subs = {s["name"]: s for s in result["subscriber"]["subscriptions"]}
    assert subs["up_sub"]["has_origin"] is True
    assert subs["up_sub"]["database"] == pg_db.name
    assert result["subscriber"]["subscription_count"] >= 1
    assert result["subscriber"]["tables_checked_in"] == pg_db.name
    assert not codes(result, "upgrade_origin_missing")
    expected_setting = "max_active_replication_origins" if pg_db.server.major >= 18 else "max_replication_slots"
    assert result["subscriber"]["origin_setting"] == expected_setting
    assert isinstance(result["subscriber"]["origin_setting_value"], int)

    origin = subs["up_sub"]["origin"]
    pg_db.execute("SELECT pg_replication_origin_drop(%s)", [origin])
    result = readiness(pg_db)
    missing = codes(result, "upgrade_origin_missing")
    assert len(missing) == 1
    assert origin in missing[0]["message"]
    assert missing[0]["severity"] == "warning"


@pytest.mark.min_pg(17)
def test_subscription_table_states(pg_pair_db):
    """A subscription created disabled lists its tables in state i (init): pg_upgrade accepts that."""
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    pub.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pub.execute("CREATE PUBLICATION up_pub FOR TABLE items")
    sub.execute("CREATE TABLE items (id int PRIMARY KEY)")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION up_sub CONNECTION {} PUBLICATION up_pub WITH (enabled = false)").format(
            sql.Literal(pub.conninfo())
        )
    )
    result = readiness(sub)
    assert result["subscriber"]["tables"] == 1
    assert result["subscriber"]["tables_not_ready"] == []
    assert not codes(result, "upgrade_table_not_ready")
    # The publisher now has the subscription's slot, inactive and caught up (nothing written since).
    on_pub = readiness(pub)
    assert "up_sub" in {s["name"] for s in on_pub["publisher"]["slots"]}


@pytest.mark.min_pg(17)
def test_a_monitoring_login_can_run_the_checks(pg_db):
    """pg_monitor (what replication_info's least-privilege login has) reads every catalog the checks use."""
    role, password = f"up_mon_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    ident = sql.Identifier(role)
    pg_db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(ident, sql.Literal(password)))
    try:
        pg_db.execute(
            "CREATE SUBSCRIPTION up_sub CONNECTION 'host=127.0.0.1 port=1' PUBLICATION p WITH (connect = false)"
        )
        with psycopg.connect(
            host=pg_db.server.host, port=pg_db.server.port, user=role, password=password, dbname=pg_db.name
        ) as conn:
            result = upgrade_readiness(conn)
        assert result["applies"] is True
        assert result["subscriber"]["subscriptions"][0]["has_origin"] is True
    finally:
        pg_db.server.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_replication_info_gathers_upgrade_only_when_asked(pg_db):
    """The module's ``upgrade`` subset: returned and its findings in ``checks`` when gathered, absent by default."""
    from support.ansible import run_module

    module = "inventium.logical_replication.replication_info"
    slot = f"ri_{pg_db.name}"[:63]
    pg_db.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
    pg_db.execute("CREATE PUBLICATION ri_pub FOR TABLE items")
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
    pg_db.execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 100) g")
    default = run_module(module, {**pg_db.login_args()})
    assert "upgrade" not in default
    assert not [c for c in default["checks"] if c["code"].startswith("upgrade_")]
    asked = run_module(module, {**pg_db.login_args(), "gather": ["upgrade", "checks"]})
    if pg_db.server.major < 17:
        assert asked["upgrade"]["applies"] is False
        assert not [c for c in asked["checks"] if c["code"].startswith("upgrade_")]
        return
    assert asked["upgrade"]["applies"] is True
    behind = [c for c in asked["checks"] if c["code"] == "upgrade_slot_not_caught_up" and slot in c["message"]]
    assert len(behind) == 1
    assert asked["upgrade"]["findings"]
