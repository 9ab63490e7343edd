"""replication_info's failover-slot and two-way replication checks against real servers.

- a subscription with ``failover = true`` whose slot on the publisher lost its failover flag (17+; read
  through the ``publisher`` option), fixed with ``replication_slot`` in place;
- a primary's ``synchronized_standby_slots``: a listed slot that no standby uses, one that does not exist, and
  a physical slot in use by a "standby" (a walsender started with ``START_REPLICATION ... PHYSICAL``) that is
  not listed - on a private server, since the setting is server-wide (17+);
- two-way replication: two databases subscribing to each other's publication of the same table with
  ``origin = any`` is a loop risk on one node and a confirmed loop with the publisher; ``origin = none`` on
  both directions clears it. No row is written while the loop exists.

What needs a real standby (its ``sync_replication_slots``, its slots' ``synced``) is left to the lab.
"""

from __future__ import annotations

import contextlib
import secrets

import psycopg
import pytest
from pg_harness import wait_until
from psycopg import sql
from support.ansible import run_module

MODULE = "replication_info"


def codes(result):
    return [c["code"] for c in result["checks"]]


def finding(result, code):
    found = [c for c in result["checks"] if c["code"] == code]
    assert len(found) == 1, result["checks"]
    return found[0]


def publisher_option(db):
    server = db.server
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": db.name,
    }


def info(db, **kwargs):
    return run_module(MODULE, {**db.login_args(), "gather": ["checks"], **kwargs})


def slot_active(server, name):
    return server.scalar("SELECT active FROM pg_replication_slots WHERE slot_name = %s", [name])


# -- a failover subscription whose slot is not a failover slot ------------------------------------------


@pytest.mark.min_pg(17)
def test_failover_subscription_with_a_slot_that_is_not_failover(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    name = f"sub_{secrets.token_hex(4)}"
    for db in (pub, sub):
        db.execute("CREATE TABLE items (id int PRIMARY KEY)")
    pub.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION items_pub WITH (failover = true)").format(
            sql.Identifier(name), sql.Literal(pub.conninfo())
        )
    )
    publisher = publisher_option(pub)
    assert "failover_slot_not_failover" not in codes(info(sub, publisher=publisher))

    # behind the subscription's back: the slot loses its failover flag (it must be free to be altered)
    sub.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(name)))
    wait_until(lambda: slot_active(pub.server, name) is False, timeout=30, message="slot released")
    with psycopg.connect(pub.conninfo(), replication="database", autocommit=True) as repl:
        repl.execute(sql.SQL("ALTER_REPLICATION_SLOT {} ( FAILOVER false )").format(sql.Identifier(name)))
    sub.execute(sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(name)))

    result = info(sub, publisher=publisher)
    found = finding(result, "failover_slot_not_failover")
    assert found["severity"] == "warning"
    assert f"{name} (slot {name})" in found["message"]
    assert pub.server.password not in result.output
    # only with the publisher: one node cannot see the publisher's slot
    assert "failover_slot_not_failover" not in codes(info(sub))

    fixed = run_module(
        "replication_slot", {**pub.login_args(), "name": name, "failover": True, "terminate_active": True}
    )
    assert fixed["changed"] is True
    assert pub.server.scalar("SELECT failover FROM pg_replication_slots WHERE slot_name = %s", [name]) is True
    assert "failover_slot_not_failover" not in codes(info(sub, publisher=publisher))


# -- synchronized_standby_slots on a primary ---------------------------------------------------------------


@contextlib.contextmanager
def physical_walsender(server, slot):
    """A walsender streaming from the physical ``slot`` (what a standby's walreceiver does), until the block ends."""
    lsn = server.scalar("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot])
    conn = psycopg.connect(server.conninfo(), replication="true", autocommit=True)
    try:
        conn.pgconn.send_query(f"START_REPLICATION SLOT {slot} PHYSICAL {lsn}".encode())
        wait_until(lambda: slot_active(server, slot) is True, timeout=30, message=f"slot {slot} in use")
        yield
    finally:
        conn.close()
        wait_until(lambda: slot_active(server, slot) is False, timeout=30, message=f"slot {slot} released")


@pytest.mark.parametrize("major", [17, 18])
def test_synchronized_standby_slots_checked_on_a_primary(pg_server_factory, major):
    from pg_harness import selected_majors

    if major not in selected_majors():
        pytest.skip(f"PostgreSQL {major} not selected")
    server = pg_server_factory(major, name=f"standby-slots{major}")
    login = server.login_args()
    for name in ("sb_listed", "sb_unlisted"):
        server.execute("SELECT pg_create_physical_replication_slot(%s, true)", [name])
    server.execute("ALTER SYSTEM SET synchronized_standby_slots = 'sb_listed'")
    server.execute("SELECT pg_reload_conf()")
    wait_until(
        lambda: server.scalar("SELECT current_setting('synchronized_standby_slots')") == "sb_listed",
        timeout=10,
        message="synchronized_standby_slots reloaded",
    )
    standby_codes = {"standby_slot_inactive", "standby_not_in_synchronized_standby_slots"}
    with physical_walsender(server, "sb_unlisted"):
        # no failover slot yet: nothing waits for the standbys, nothing to say
        assert not standby_codes & set(codes(run_module(MODULE, {**login, "gather": ["checks"]})))
        server.execute("SELECT pg_create_logical_replication_slot('lf', 'pgoutput', false, false, true)")
        result = run_module(MODULE, {**login, "gather": ["checks"]})
        inactive = finding(result, "standby_slot_inactive")
        assert "sb_listed" in inactive["message"]
        assert "lf" in inactive["message"]
        missing = finding(result, "standby_not_in_synchronized_standby_slots")
        assert "sb_unlisted" in missing["message"]
        assert "sb_listed" not in missing["message"]
        with physical_walsender(server, "sb_listed"):
            result = run_module(MODULE, {**login, "gather": ["checks"]})
            assert "standby_slot_inactive" not in codes(result)
            assert "standby_not_in_synchronized_standby_slots" in codes(result)
    server.execute("SELECT pg_drop_replication_slot('sb_listed')")
    result = run_module(MODULE, {**login, "gather": ["checks"]})
    broken = finding(result, "synchronized_standby_slots_broken")
    assert broken["severity"] == "error"
    assert "sb_listed (does not exist)" in broken["message"]
    assert "receive nothing: lf" in broken["message"]


# -- two-way replication ------------------------------------------------------------------------------------


def subscribe(db, name, publisher_db, publication, **options):
    with_options = ", ".join(f"{key} = {value}" for key, value in options.items())
    db.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}{}").format(
            sql.Identifier(name),
            sql.Literal(publisher_db.conninfo()),
            sql.Identifier(publication),
            sql.SQL(f" WITH ({with_options})" if with_options else ""),
        )
    )


def test_two_way_replication_without_origin_none(pg_pair_db):
    a, b = pg_pair_db.publisher, pg_pair_db.subscriber
    for db in (a, b):
        db.execute("CREATE TABLE shared (id int PRIMARY KEY, v text)")
    a.execute("CREATE PUBLICATION pub_a FOR TABLE shared")
    b.execute("CREATE PUBLICATION pub_b FOR TABLE shared")
    b_from_a, a_from_b = f"b_from_a_{secrets.token_hex(3)}", f"a_from_b_{secrets.token_hex(3)}"
    subscribe(b, b_from_a, a, "pub_a", copy_data="false")
    subscribe(a, a_from_b, b, "pub_b", copy_data="false")
    wait_until(
        lambda: b.scalar("SELECT count(*) FROM pg_subscription_rel") >= 1,
        timeout=30,
        message="the subscription's table list",
    )

    one_node = info(b)
    risk = finding(one_node, "replication_loop_risk")
    assert f"{b_from_a} (public.shared)" in risk["message"]
    with_publisher = info(b, publisher=publisher_option(a))
    loop = finding(with_publisher, "replication_loop")
    assert loop["severity"] == "error"
    assert a_from_b in loop["message"]
    assert "replication_loop_risk" not in codes(with_publisher)
    if b.server.major < 16:
        assert "older than 16" in risk["hint"]
    if min(a.server.major, b.server.major) < 16:
        return  # no origin filter to fix it with

    for db, name in ((b, b_from_a), (a, a_from_b)):
        db.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (origin = none)").format(sql.Identifier(name)))
    assert not {"replication_loop_risk", "replication_loop"} & set(codes(info(b, publisher=publisher_option(a))))
    # now changes go each way once
    a.execute("INSERT INTO shared VALUES (1, 'from a')")
    b.execute("INSERT INTO shared VALUES (2, 'from b')")
    for db in (a, b):
        wait_until(lambda db=db: db.scalar("SELECT count(*) FROM shared") == 2, timeout=30, message="both rows")
