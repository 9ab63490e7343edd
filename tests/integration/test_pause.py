"""Pause and resume a subscription with a WAL guard, on real publisher/subscriber pairs, through the modules.

``subscription_pause`` on the subscriber (DISABLE + the JSON record as the subscription's comment,
idempotent; resume waits until caught up) and ``wal_budget`` on the publisher (retained WAL while
paused; a pause refused under a tiny ``max_slot_wal_keep_size``). A resume whose slot was dropped or
lost on the publisher fails at once with the re-sync path and leaves the subscription disabled.
Cross-version pairs only (lowest -> highest of ``PG_VERSIONS``; e.g. ``PG_VERSIONS=15,17`` and ``17,18``).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time

import pytest
from pg_harness import pair_combos, selected_majors, wait_until
from psycopg import sql
from support.ansible import run_module

from ansible_collections.inventium.logical_replication.plugins.module_utils._pause import check_paused
from ansible_collections.inventium.logical_replication.plugins.module_utils._slots import collect_slots
from ansible_collections.inventium.logical_replication.plugins.module_utils._subscriptions import (
    collect_subscriptions,
)

_MAJORS = selected_majors()
_CROSS = [c for c in pair_combos(_MAJORS) if c[0] != c[1]] or pair_combos(_MAJORS)[:1]
CROSS_PAIRS = pytest.mark.parametrize(
    "pg_pair", [pytest.param(c, id=f"pub{c[0]}-sub{c[1]}") for c in _CROSS], indirect=True
)

ROWS = 2000


def checksum(db, table="items"):
    return db.execute(
        sql.SQL("SELECT count(*), coalesce(sum(('x' || substr(md5(v), 1, 8))::bit(32)::bigint), 0) FROM {}").format(
            sql.Identifier(table)
        )
    )[0]


def setup_subscription(pub, sub, name):
    ddl = "CREATE TABLE items (id bigint PRIMARY KEY, v text)"
    pub.execute(ddl)
    sub.execute(ddl)
    pub.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, %s) g", [ROWS])
    pub.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION items_pub").format(
            sql.Identifier(name), sql.Literal(pub.conninfo())
        )
    )
    wait_until(lambda: checksum(pub) == checksum(sub), timeout=60, message="initial copy")


def catalog(sub_db, name):
    enabled, comment = sub_db.execute(
        "SELECT subenabled, obj_description(oid, 'pg_subscription') FROM pg_subscription WHERE subname = %s",
        [name],
    )[0]
    return enabled, comment


def publisher_option(pub_db):
    server = pub_db.server
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": pub_db.name,
    }


def insert_more(pub_db, start, count, batch=500):
    for first in range(start, start + count, batch):
        pub_db.execute(
            "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(%s::bigint, %s::bigint) g",
            [first, min(first + batch, start + count) - 1],
        )


def wait_inactive(pub_db, slot):
    wait_until(
        lambda: pub_db.scalar("SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s", [slot]),
        timeout=30,
        message=f"slot {slot} inactive",
    )


@CROSS_PAIRS
def test_pause_retains_wal_resume_catches_up(pg_pair_db):
    dbs = pg_pair_db
    name = f"sub_{secrets.token_hex(4)}"
    setup_subscription(dbs.publisher, dbs.subscriber, name)
    login = dbs.subscriber.login_args()
    pause = {**login, "name": name, "state": "paused", "reason": 'test: upgrade "disk"', "pause_minutes": 30}

    checked = run_module("subscription_pause", pause, check=True, diff=True)
    assert checked["changed"] is True
    assert checked["queries"][0] == f'ALTER SUBSCRIPTION "{name}" DISABLE'
    assert checked["queries"][1].startswith(f'COMMENT ON SUBSCRIPTION "{name}" IS')
    assert checked["diff"]["after"]["paused"] is True
    assert catalog(dbs.subscriber, name) == (True, None)  # check mode changed nothing

    paused = run_module("subscription_pause", pause)
    assert paused["changed"] is True
    enabled, comment = catalog(dbs.subscriber, name)
    assert enabled is False
    record = json.loads(comment)
    assert record["reason"] == 'test: upgrade "disk"'
    assert record == paused["pause"]
    assert set(record) == {"paused_by", "reason", "since", "until"}
    assert paused["marker"]["written"] is False
    assert "no InfluxDB configured" in paused["marker"]["reason"]

    again = run_module("subscription_pause", {**pause, "reason": "another reason"})
    assert again["changed"] is False
    assert again["queries"] == []
    assert catalog(dbs.subscriber, name) == (False, comment)  # the record is kept

    # Writes while paused: the slot retains them.
    wait_inactive(dbs.publisher, name)
    insert_more(dbs.publisher, ROWS + 1, 20_000)
    budget = run_module(
        "wal_budget", {**dbs.publisher.login_args(), "slot_name": name, "sample_seconds": 1, "planned_minutes": 1}
    )
    assert budget["changed"] is False
    assert budget["retained_wal_bytes"] > 0
    assert budget["slot"]["active"] is False
    assert budget["max_slot_wal_keep_size"] is None
    assert any("slot retains now" in line for line in budget["lines"])
    if os.geteuid() == 0:  # the data directory belongs to the server's user
        assert budget["disk_free"] > 0
    else:
        assert budget["disk"]["reason"]
    assert checksum(dbs.subscriber)[0] == ROWS  # nothing arrived while paused

    # What replication_info reads feeds the paused finding (the lead's wiring): the comment from the
    # subscription reader, retained WAL from the slot reader.
    with dbs.subscriber.connect() as conn:
        subs = collect_subscriptions(conn, dbs.subscriber.server.major)["subscriptions"]
    with dbs.publisher.connect() as conn:
        slots = collect_slots(conn, dbs.publisher.server.major)
    mine = [one for one in subs if one["name"] == name]
    assert json.loads(mine[0]["comment"]) == record
    found = check_paused(mine, slot_facts=slots, wal_rate=budget["wal_rate_bytes_per_second"] or None)
    assert [f["code"] for f in found] == ["subscription_paused"]
    assert f"{name} paused since {record['since']}" in found[0]["message"]
    assert "retains " in found[0]["message"]

    resume = {**login, "name": name, "state": "resumed", "publisher": publisher_option(dbs.publisher), "timeout": 120}
    checked = run_module("subscription_pause", resume, check=True)
    assert checked["changed"] is True
    assert catalog(dbs.subscriber, name)[0] is False

    resumed = run_module("subscription_pause", resume, diff=True)
    assert resumed["changed"] is True
    assert resumed["catch_up"]["caught_up"] is True
    assert resumed["catch_up"]["bytes"] > 0
    assert resumed["catch_up"]["seconds"] >= 0
    assert "s: enabled; waiting until the subscriber confirms" in resumed["progress"][0]
    assert " s: caught up - latest_end_lsn " in resumed["progress"][-1]
    assert resumed["diff"]["before"]["paused"] is True
    assert resumed["diff"]["after"]["paused"] is False
    assert catalog(dbs.subscriber, name) == (True, None)
    assert dbs.publisher.server.password not in resumed.output
    # Caught up with the position at resume time: every row written while paused is there.
    wait_until(lambda: checksum(dbs.publisher) == checksum(dbs.subscriber), timeout=30, message="counts equal")
    assert checksum(dbs.subscriber)[0] == ROWS + 20_000

    idle = run_module("subscription_pause", resume)
    assert idle["changed"] is False


@CROSS_PAIRS
def test_previous_comment_restored_and_single_subscription_found(pg_pair_db):
    dbs = pg_pair_db
    name = f"sub_{secrets.token_hex(4)}"
    setup_subscription(dbs.publisher, dbs.subscriber, name)
    dbs.subscriber.execute(sql.SQL("COMMENT ON SUBSCRIPTION {} IS 'owned by team x'").format(sql.Identifier(name)))
    login = dbs.subscriber.login_args()
    # No name: the database's only subscription.
    paused = run_module("subscription_pause", {**login, "state": "paused", "reason": "r"})
    assert paused["subscription"]["name"] == name
    assert json.loads(catalog(dbs.subscriber, name)[1])["previous_comment"] == "owned by team x"
    run_module(
        "subscription_pause",
        {**login, "state": "resumed", "publisher": publisher_option(dbs.publisher), "timeout": 60},
    )
    assert catalog(dbs.subscriber, name) == (True, "owned by team x")


@CROSS_PAIRS
def test_resume_with_the_slot_dropped_fails_with_the_resync_path(pg_pair_db):
    dbs = pg_pair_db
    name = f"sub_{secrets.token_hex(4)}"
    setup_subscription(dbs.publisher, dbs.subscriber, name)
    login = dbs.subscriber.login_args()
    run_module("subscription_pause", {**login, "name": name, "state": "paused", "reason": "r"})
    wait_inactive(dbs.publisher, name)
    dbs.publisher.execute("SELECT pg_drop_replication_slot(%s)", [name])

    started = time.monotonic()
    failed = run_module(
        "subscription_pause",
        {**login, "name": name, "state": "resumed", "publisher": publisher_option(dbs.publisher), "timeout": 300},
        expect_fail=True,
    )
    assert time.monotonic() - started < 30  # never the timeout
    assert "does not exist on the publisher" in failed["msg"]
    assert "Re-synchronise" in failed["msg"]
    assert "resume_resync=true" in failed["msg"]
    assert failed["resync_needed"] is True
    assert failed["queries"] == []
    assert catalog(dbs.subscriber, name)[0] is False  # left as it was
    assert dbs.publisher.server.password not in failed.output
    # Leave nothing for the fixture's cleanup to trip over.
    dbs.subscriber.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(sql.Identifier(name)))


class Writer:
    """Inserts into the publisher's table until stopped (WAL while the budget samples)."""

    def __init__(self, db, start):
        self.db, self.next, self.stop = db, start, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with self.db.connect() as conn:
            while not self.stop.is_set():
                conn.execute(
                    "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(%s::bigint, %s::bigint) g",
                    [self.next, self.next + 199],
                )
                self.next += 200
                time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


@CROSS_PAIRS
def test_tiny_keep_size_refuses_the_pause_and_a_lost_slot_is_not_resumed(
    pg_pair, pg_server_factory, pg_database_factory
):
    publisher = pg_server_factory(pg_pair.publisher.major, name="pub-tiny", settings={"max_slot_wal_keep_size": "1MB"})
    pub = pg_database_factory(publisher, "pub")
    sub = pg_database_factory(pg_pair.subscriber, "sub")
    name = f"sub_{secrets.token_hex(4)}"
    setup_subscription(pub, sub, name)
    login = sub.login_args()
    run_module("subscription_pause", {**login, "name": name, "state": "paused", "reason": "r", "pause_minutes": 600})
    wait_inactive(pub, name)

    with Writer(pub, 10_000_000):
        budget = run_module(
            "wal_budget", {**pub.login_args(), "slot_name": name, "sample_seconds": 2, "planned_minutes": 600}
        )
    assert budget["max_slot_wal_keep_size"] == 1024 * 1024
    assert budget["wal_rate_bytes_per_second"] > 0
    assert budget["limited_by"] == "max_slot_wal_keep_size"
    assert budget["fits"] is False
    assert any("DOES NOT FIT" in line for line in budget["lines"])
    assert "max_slot_wal_keep_size" in budget["guard_settings"] or budget["disk_free"] is None

    # Past the limit and a checkpoint later the slot is lost.
    for _unused in range(4):
        pub.execute("INSERT INTO items SELECT max(id) + 1, 'x' FROM items")
        pub.execute("SELECT pg_switch_wal()")
    pub.execute("CHECKPOINT")
    wait_until(
        lambda: pub.scalar("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", [name]) == "lost",
        timeout=30,
        message="slot lost",
    )
    failed = run_module(
        "subscription_pause",
        {**login, "name": name, "state": "resumed", "publisher": publisher_option(pub), "timeout": 300},
        expect_fail=True,
    )
    assert "wal_status lost" in failed["msg"]
    assert "Re-synchronise" in failed["msg"]
    assert catalog(sub, name)[0] is False
