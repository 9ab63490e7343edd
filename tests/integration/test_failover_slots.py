"""Failover slots on a real physical standby (PostgreSQL 17+), set up and checked with the collection's modules.

A private primary, a physical standby made from it with ``pg_basebackup -R`` (the harness's
``new_standby``) and a subscriber:

- ``replication_slot`` creates the standby's physical slot, ``server_settings`` lists it in
  ``synchronized_standby_slots`` (a reload), the standby runs with ``hot_standby_feedback`` and
  ``sync_replication_slots``;
- ``subscription`` creates a subscription with ``failover = true``: its slot on the primary is a
  failover slot, and the standby's slot synchronization copies it (``synced``), which
  ``replication_info`` on the standby reports; the checks on the primary find nothing to say about
  the standby, and a standby left out of ``synchronized_standby_slots`` is reported;
- the failover itself: the primary stops, the standby is promoted, ``subscription`` points the
  subscription at it (ALTER SUBSCRIPTION CONNECTION), and replication goes on from the synced slot -
  no row lost, none copied twice (the tables are not copied again: every row once, keys unique);
- the metrics sampler on both: the primary's failover slot and the standby's synced copy, as the
  Replication dashboard's "Failover slots" panel shows them.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pg_harness import selected_majors, wait_until
from psycopg import sql
from sampler_support import PROGRAM, parse_lines, sampler_config
from support.ansible import DEFAULT_CALLBACK, ansible_env, run_module, run_playbook, status_output
from support.inventory import lab_shaped_inventory

MAJORS = [m for m in selected_majors() if m >= 17]
pytestmark = pytest.mark.skipif(not MAJORS, reason="failover slots need PostgreSQL 17+ (PG_MAJORS)")

SLOT = "standby1_slot"


def _publisher_option(server, dbname):
    return {
        "host": server.host,
        "port": server.port,
        "dbname": dbname,
        "user": server.user,
        "password": server.password,
    }


def _checks(result, code):
    return [c for c in result["checks"] if c["code"] == code]


@pytest.fixture
def failover_topology(pg_harness, pg_server_factory):
    """``make(major)``: a primary with a physical slot, its standby (hot_standby_feedback, sync_replication_slots),
    a subscriber, and on the primary a database with ``items`` (1000 rows) in publication ``items_pub`` (the
    table also on the subscriber). The standby is destroyed after the test (the factory's servers by it)."""
    standbys = []

    def make(major):
        primary = pg_server_factory(major, name=f"primary{major}")
        run_module(
            "inventium.logical_replication.replication_slot",
            {**primary.login_args("postgres"), "name": SLOT, "slot_type": "physical"},
        )
        standby = pg_harness.new_standby(
            primary, slot=SLOT, settings={"hot_standby_feedback": "on", "sync_replication_slots": "on"}
        )
        standbys.append(standby)
        subscriber = pg_server_factory(major, name=f"sub{major}")
        dbname = f"app_{secrets.token_hex(3)}"
        for server in (primary, subscriber):
            server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            server.execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)", dbname=dbname)
        primary.execute("INSERT INTO items SELECT g, 'before' FROM generate_series(1, 1000) g", dbname=dbname)
        primary.execute("CREATE PUBLICATION items_pub FOR TABLE items", dbname=dbname)
        wait_until(
            lambda: standby.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [dbname]) == 1,
            timeout=60,
            message="the standby to replay the new database",
        )
        return SimpleNamespace(primary=primary, standby=standby, subscriber=subscriber, dbname=dbname)

    yield make
    for standby in standbys:
        standby.destroy()


@pytest.mark.parametrize("major", MAJORS)
def test_failover_slot_synced_then_used_after_promotion(major, failover_topology):
    topology = failover_topology(major)
    primary, standby, subscriber, dbname = topology.primary, topology.standby, topology.subscriber, topology.dbname

    # The standby's slot is listed: the primary sends no change to a failover slot's consumer before the
    # standby has it.
    settings = run_module(
        "inventium.logical_replication.server_settings",
        {**primary.login_args("postgres"), "settings": {"synchronized_standby_slots": SLOT}},
    )
    assert settings["changed"] is True
    assert settings["restart_required"] is False

    # The standby's slot synchronization copies the failover slot (its worker polls; up to ~30 s idle).
    created = _subscribe_with_a_synced_failover_slot(topology)
    assert created["changed"] is True
    assert primary.scalar("SELECT failover FROM pg_replication_slots WHERE slot_name = 'items_sub'") is True
    on_standby = run_module(
        "inventium.logical_replication.replication_info", {**standby.login_args(dbname), "gather": ["slots"]}
    )
    synced = {s["name"]: s for s in on_standby["slots"]}["items_sub"]
    assert synced["failover"] is True
    assert synced["synced"] is True

    # The primary's checks: the standby is listed and connected, nothing to report about it.
    checked = run_module(
        "inventium.logical_replication.replication_info", {**primary.login_args(dbname), "gather": ["checks"]}
    )
    for code in (
        "synchronized_standby_slots_broken",
        "standby_slot_inactive",
        "standby_not_in_synchronized_standby_slots",
    ):
        assert not _checks(checked, code), checked["checks"]

    # Left out of synchronized_standby_slots, the standby is reported (and listed again afterwards).
    for value, expected in (("", 1), (SLOT, 0)):
        run_module(
            "inventium.logical_replication.server_settings",
            {**primary.login_args("postgres"), "settings": {"synchronized_standby_slots": value}},
        )
        wait_until(
            lambda value=value: primary.scalar("SHOW synchronized_standby_slots") == value,
            timeout=30,
            message="the reload",
        )
        checked = run_module(
            "inventium.logical_replication.replication_info", {**primary.login_args(dbname), "gather": ["checks"]}
        )
        assert len(_checks(checked, "standby_not_in_synchronized_standby_slots")) == expected, checked["checks"]

    # Rows written before the failover arrive, through the standby's confirmation.
    primary.execute("INSERT INTO items SELECT g, 'primary' FROM generate_series(1001, 1500) g", dbname=dbname)
    wait_until(
        lambda: subscriber.scalar("SELECT count(*) FROM items", dbname=dbname) == 1500,
        timeout=60,
        message="rows written on the primary to arrive",
    )
    # The synced slot must have caught up with what the subscriber confirmed before the primary goes.
    wait_until(
        lambda: standby.scalar(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = 'items_sub'",
            [
                primary.scalar(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'items_sub'"
                )
            ],
        ),
        timeout=120,
        message="the synced slot to reach the primary's confirmed position",
    )

    # The failover: the primary goes, the standby is promoted, the subscription follows it.
    primary.stop("fast")
    standby.promote()
    repointed = run_module(
        "inventium.logical_replication.subscription",
        {
            **subscriber.login_args(dbname),
            "name": "items_sub",
            "publications": ["items_pub"],
            "publisher": _publisher_option(standby, dbname),
            "failover": True,
        },
    )
    assert repointed["changed"] is True
    assert any("CONNECTION" in q for q in repointed["queries"]), repointed["queries"]
    standby.execute("INSERT INTO items SELECT g, 'promoted' FROM generate_series(1501, 2000) g", dbname=dbname)
    wait_until(
        lambda: subscriber.scalar("SELECT count(*) FROM items", dbname=dbname) == 2000,
        timeout=120,
        message="rows written on the promoted standby to arrive",
    )
    # Every row once (a re-copy would have failed on the key or doubled nothing silently: check both).
    assert subscriber.scalar("SELECT count(DISTINCT id) FROM items", dbname=dbname) == 2000
    assert subscriber.scalar("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'", dbname=dbname) == 0
    assert subscriber.scalar("SELECT count(*) FROM items WHERE v = 'promoted'", dbname=dbname) == 500


def _flat(run):
    return " ".join((run.stdout + "\n" + run.stderr).split())


def _subscribe_with_a_synced_failover_slot(topology):
    """``items_sub`` on the subscriber, ``failover = true``, copied; once the standby has its synced copy, the
    subscription module's result."""
    primary, standby, subscriber, dbname = topology.primary, topology.standby, topology.subscriber, topology.dbname
    created = run_module(
        "inventium.logical_replication.subscription",
        {
            **subscriber.login_args(dbname),
            "name": "items_sub",
            "publications": ["items_pub"],
            "publisher": _publisher_option(primary, dbname),
            "failover": True,
            "wait_for_sync": True,
        },
    )
    wait_until(
        lambda: (
            standby.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'items_sub' AND synced") == 1
        ),
        timeout=120,
        message="the failover slot to be synced to the standby",
    )
    return created


def _failover_playbook(topology, tmp_path):
    """A function running ``playbooks/failover.yml`` (extra arguments passed on) with an inventory of the
    topology's servers; it checks that no password is in the output."""
    primary, standby, subscriber, dbname = topology.primary, topology.standby, topology.subscriber, topology.dbname
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        lab_shaped_inventory(
            {
                "primary": {
                    "publisher_port": primary.port,
                    "publisher_password": primary.password,
                    "publisher_database": dbname,
                }
            },
            {
                "sub": {
                    "subscriber_port": subscriber.port,
                    "subscriber_password": subscriber.password,
                    "subscriber_database": dbname,
                    "subscriber_publisher": _publisher_option(primary, dbname),
                }
            },
            standbys={"standby": {"standby_port": standby.port, "standby_password": standby.password}},
        )
    )
    env = ansible_env(DEFAULT_CALLBACK)

    def failover(*extra):
        run = run_playbook("playbooks/failover.yml", *extra, inventory=inventory, env=env, callback=DEFAULT_CALLBACK)
        for secret in (primary.password, subscriber.password):
            assert secret not in run.stdout + run.stderr
        return run

    return failover


@pytest.mark.parametrize("major", MAJORS[-1:])
def test_failover_playbook_refuses_then_fails_over(major, failover_topology, tmp_path):
    """``playbooks/failover.yml`` on the servers of an inventory: refused while the subscription's slot is no
    failover slot and the primary still runs; after both are fixed, the standby is promoted and followed."""
    topology = failover_topology(major)
    primary, standby, subscriber, dbname = topology.primary, topology.standby, topology.subscriber, topology.dbname
    run_module(
        "inventium.logical_replication.server_settings",
        {**primary.login_args("postgres"), "settings": {"synchronized_standby_slots": SLOT}},
    )
    subscription = {
        **subscriber.login_args(dbname),
        "name": "items_sub",
        "publications": ["items_pub"],
        "publisher": _publisher_option(primary, dbname),
        "wait_for_sync": True,
    }
    run_module("inventium.logical_replication.subscription", {**subscription, "failover": False})
    failover = _failover_playbook(topology, tmp_path)

    refused = failover()
    text = _flat(refused)
    assert refused.rc != 0, text
    assert "NOT a failover slot" in text, text
    assert "STILL ACCEPTS CONNECTIONS" in text, text
    assert "NO-GO, nothing changed" in text
    assert standby.scalar("SELECT pg_is_in_recovery()") is True

    # Fixed: failover = true in place (the slot becomes a failover slot, the standby syncs it), primary down.
    run_module("inventium.logical_replication.subscription", {**subscription, "failover": True})
    wait_until(
        lambda: (
            standby.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'items_sub' AND synced") == 1
        ),
        timeout=120,
        message="the failover slot to be synced to the standby",
    )
    primary.execute("INSERT INTO items SELECT g, 'primary' FROM generate_series(1001, 1500) g", dbname=dbname)
    wait_until(
        lambda: subscriber.scalar("SELECT count(*) FROM items", dbname=dbname) == 1500,
        timeout=60,
        message="rows written on the primary to arrive",
    )
    confirmed = primary.scalar(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'items_sub'"
    )
    wait_until(
        lambda: standby.scalar(
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = 'items_sub'",
            [confirmed],
        ),
        timeout=120,
        message="the synced slot to reach the primary's confirmed position",
    )
    # status.yml shows the standby: the WAL it received and replayed, the synchronized copy of the failover slot.
    shown = status_output(tmp_path / "hosts.yml", (primary.password, standby.password, subscriber.password))
    assert re.search(
        r"- standby +PostgreSQL \S+ .*standby: WAL received up to [0-9A-F]+/[0-9A-F]+, replayed up to", shown
    ), shown
    assert "slot items_sub INACTIVE reserved synced copy" in shown, shown
    assert "status: healthy (exit 0)" in shown, shown
    primary.stop("fast")

    done = failover()
    text = _flat(done)
    assert done.rc == 0, text
    assert "GO slot sub/items_sub failover slot items_sub synced on the standby" in text, text
    assert f"sub/items_sub follows 127.0.0.1:{standby.port}" in text, text
    assert "1 of 1 tables equal" in text, text
    assert standby.scalar("SELECT pg_is_in_recovery()") is False
    standby.execute("INSERT INTO items SELECT g, 'promoted' FROM generate_series(1501, 1600) g", dbname=dbname)
    wait_until(
        lambda: subscriber.scalar("SELECT count(*) FROM items", dbname=dbname) == 1600,
        timeout=60,
        message="rows written on the promoted standby to arrive",
    )
    assert subscriber.scalar("SELECT count(DISTINCT id) FROM items", dbname=dbname) == 1600


@pytest.mark.parametrize("major", MAJORS[-1:])
def test_failover_playbook_refuses_a_standby_behind_the_primary_or_the_subscriber(major, failover_topology, tmp_path):
    """Without ``synchronized_standby_slots`` a subscriber can apply changes the standby never received. Here the
    standby is cut off from the primary (no ``primary_conninfo``) while its synced failover slot stays: a failover
    to it is refused - with the old primary running (fenced by the operator), because the standby lacks WAL the
    primary has; with the primary down, because the subscriber applied more of the old primary's WAL than the
    standby has (it would skip the promoted standby's first writes). Nothing is promoted."""
    topology = failover_topology(major)
    primary, standby, subscriber, dbname = topology.primary, topology.standby, topology.subscriber, topology.dbname
    _subscribe_with_a_synced_failover_slot(topology)
    standby.execute("ALTER SYSTEM SET primary_conninfo = ''")
    standby.execute("SELECT pg_reload_conf()")
    wait_until(
        lambda: standby.scalar("SELECT count(*) FROM pg_stat_wal_receiver") == 0,
        timeout=30,
        message="the standby's WAL receiver to stop",
    )
    primary.execute("INSERT INTO items SELECT g, 'unseen' FROM generate_series(1001, 1200) g", dbname=dbname)
    wait_until(
        lambda: subscriber.scalar("SELECT count(*) FROM items", dbname=dbname) == 1200,
        timeout=60,
        message="the rows the standby never received to reach the subscriber",
    )
    failover = _failover_playbook(topology, tmp_path)

    running = failover("-e", "failover_allow_running_primary=true", "-e", "failover_timeout=3")
    text = _flat(running)
    assert running.rc != 0, text
    assert re.search(r"NO-GO +standby_wal +standby is [0-9.]+ [kM]?B of WAL behind the running primary", text), text
    # YAML output doubles the apostrophes of these lines.
    assert re.search(r"NO-GO +slot sub/items_sub +applied the old primary'+s WAL up to [0-9A-F]+/[0-9A-F]+", text), text
    assert "ignoring" not in text, text  # the wait ends without a failed task
    assert "NO-GO, nothing changed" in text

    primary.stop("fast")
    down = failover()
    text = _flat(down)
    assert down.rc != 0, text
    assert re.search(r"GO +standby_wal +standby received WAL up to", text), text
    assert re.search(r"NO-GO +slot sub/items_sub .* it would skip the new primary'+s first writes", text), text
    assert "NO-GO, nothing changed" in text
    assert standby.scalar("SELECT pg_is_in_recovery()") is True


@pytest.mark.parametrize("major", MAJORS)
def test_the_sampler_shows_the_failover_slot_and_its_synced_copy(major, failover_topology, tmp_path):
    """The healthy state the Replication dashboard's "Failover slots" panel describes, read by the real sampler:
    on the primary the subscription's failover slot (failover 1, synced 0, in use), on the standby its copy
    (failover 1, synced 1, never in use there)."""
    topology = failover_topology(major)
    primary, standby, dbname = topology.primary, topology.standby, topology.dbname
    run_module(
        "inventium.logical_replication.server_settings",
        {**primary.login_args("postgres"), "settings": {"synchronized_standby_slots": SLOT}},
    )
    _subscribe_with_a_synced_failover_slot(topology)
    config = sampler_config(
        tmp_path, {"primary": ("publisher", primary, dbname), "standby": ("subscriber", standby, dbname)}
    )
    result = subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(config), "--dry-run", "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rounds = {}
    for measurement, tags, fields, _ts in parse_lines(result.stdout):
        if measurement == "replication_slot":
            rounds.setdefault((tags["node"], tags["slot_name"]), []).append(fields)
        assert measurement != "sampler_errors" or tags["kind"] == "buffer", (tags, fields, result.stderr)
    on_primary, on_standby = rounds[("primary", "items_sub")], rounds[("standby", "items_sub")]
    assert {(f["failover"], f["synced"]) for f in on_primary} == {(1, 0)}
    assert on_primary[-1]["active"] == 1
    assert "inactive_seconds" not in on_primary[-1]
    assert {(f["failover"], f["synced"], f["conflicting"]) for f in on_standby} == {(1, 1, 0)}
    assert not any("invalidation_reason" in f for f in on_standby)
    # Never used on the standby, its copy's inactive_since is the time of its last synchronization (17 and 18
    # alike): back near 0 at every cycle of the slot sync worker, which sleeps up to 30 s while nothing changes.
    # (The worker holds the slot for a moment while it syncs: a round may catch it active.)
    idle = [f["inactive_seconds"] for f in on_standby if not f["active"]]
    assert idle, on_standby
    assert all(0 <= seconds < 60 for seconds in idle), on_standby
    assert (rounds[("primary", SLOT)][-1]["failover"], rounds[("primary", SLOT)][-1]["active"]) == (0, 1)
