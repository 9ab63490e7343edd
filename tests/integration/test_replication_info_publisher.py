"""replication_info's ``publisher`` option against real pairs: the subscriber compared with its publisher.

One subscriber, one publication of a table with a serial column: after the initial copy the
publisher writes more rows (its sequence moves, the subscriber's does not), gets a column the
subscriber lacks and a second published table the subscriber does not have, and the subscription is
paused with a pause record. ``replication_info`` on the subscriber with ``publisher`` must then report
the sequence gap, the drift (missing column and table) and the paused subscription with its slot's
retained WAL - and nothing of it without ``publisher``; a publisher it cannot reach is a warning, with
no password anywhere in the output.
"""

from __future__ import annotations

import json
import secrets

import pytest
from pg_harness import wait_until
from psycopg import sql
from support.ansible import run_module

MODULE = "replication_info"


def publisher_option(db, **extra):
    server = db.server
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": db.name,
        **extra,
    }


def findings(result, code):
    return [c for c in result["checks"] if c["code"] == code]


@pytest.fixture
def paused_pair(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    name = f"sub_{secrets.token_hex(4)}"
    for db in (pub, sub):
        db.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text)")
    pub.execute("INSERT INTO orders (item) SELECT 'o' || g FROM generate_series(1, 10) g")
    pub.execute("CREATE PUBLICATION orders_pub FOR TABLE orders")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION orders_pub").format(
            sql.Identifier(name), sql.Literal(pub.conninfo())
        )
    )
    wait_until(lambda: sub.scalar("SELECT count(*) FROM orders") == 10, timeout=60, message="initial copy")
    return pub, sub, name


def test_sequence_gap_drift_and_pause_reported_with_the_publisher(paused_pair):
    pub, sub, name = paused_pair
    pub.execute("INSERT INTO orders (item) SELECT 'p' || g FROM generate_series(1, 25) g")
    pub.execute("ALTER TABLE orders ADD COLUMN note text")
    pub.execute("CREATE TABLE shelves (id int PRIMARY KEY)")
    pub.execute("ALTER PUBLICATION orders_pub ADD TABLE shelves")
    paused = run_module(
        "subscription_pause",
        {**sub.login_args(), "name": name, "state": "paused", "reason": "test pause", "pause_minutes": 30},
    )
    assert paused["changed"] is True
    wait_until(
        lambda: pub.scalar("SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s", [name]),
        timeout=30,
        message="slot inactive",
    )

    without = run_module(MODULE, {**sub.login_args(), "gather": ["subscriptions", "checks"]})
    assert "sequences" not in without
    assert not findings(without, "schema_drift")
    assert [c["severity"] for c in findings(without, "subscription_paused")] == ["info"]
    # Paused on purpose: not reported as merely disabled.
    assert not findings(without, "subscription_disabled")
    assert by_sub(without, name)["comment"] is not None

    result = run_module(MODULE, {**sub.login_args(), "publisher": publisher_option(pub)})
    gaps = {g["name"]: g for g in result["sequences"]}
    assert gaps["public.orders_id_seq"]["publisher_value"] == 35
    # The initial copy and apply insert the ids themselves: the subscriber's sequence was never used.
    assert gaps["public.orders_id_seq"]["subscriber_value"] is None
    assert gaps["public.orders_id_seq"]["gap"] == 35
    assert findings(result, "sequence_gap")

    drift = {(d["table"], d["kind"], d["column"]) for d in result["schema_drift"]}
    assert ("public.orders", "missing_column", "note") in drift
    assert ("public.shelves", "missing_table", None) in drift
    assert {c["severity"] for c in findings(result, "schema_drift")} == {"error"}

    (pause,) = findings(result, "subscription_paused")
    assert "test pause" in pause["message"]
    assert "retains" in pause["message"]
    assert not findings(result, "pause_overdue")
    assert not findings(result, "publisher_comparison_unknown")


def test_dropped_slot_of_a_paused_subscription_is_an_error(paused_pair):
    pub, sub, name = paused_pair
    run_module("subscription_pause", {**sub.login_args(), "name": name, "state": "paused", "reason": "slot test"})
    wait_until(
        lambda: pub.scalar("SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s", [name]),
        timeout=30,
        message="slot inactive",
    )
    pub.execute("SELECT pg_drop_replication_slot(%s)", [name])
    result = run_module(MODULE, {**sub.login_args(), "gather": ["checks"], "publisher": publisher_option(pub)})
    (lost,) = findings(result, "paused_slot_lost")
    assert lost["severity"] == "error"
    assert name in lost["message"]
    # The subscription has no slot any more: let the harness drop it without one.
    sub.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(sql.Identifier(name)))


def test_unreachable_publisher_is_a_warning_without_the_password(paused_pair):
    pub, sub, _name = paused_pair
    secret = f"pw-{secrets.token_hex(6)}"
    option = publisher_option(pub, password=secret, port=1, connect_timeout=2)
    result = run_module(MODULE, {**sub.login_args(), "gather": ["checks", "sequences"], "publisher": option})
    (unknown,) = findings(result, "publisher_comparison_unknown")
    assert unknown["severity"] == "warning"
    assert result["sequences"] is None  # not compared, rather than "no sequence"
    assert secret not in json.dumps(result)


def by_sub(result, name):
    (found,) = [s for s in result["subscriptions"] if s["name"] == name]
    return found
