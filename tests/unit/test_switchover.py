"""The switchover's go/no-go rows and step report (``_switchover.py``), from replication_info-shaped input."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._pause_record import lsn_to_int
from ansible_collections.inventium.logical_replication.plugins.module_utils._switchover import (
    application_summary,
    failover_preflight,
    format_rows,
    preflight,
    rehearsal_lines,
    report_lines,
    step_times,
)

WHOLE = ["insert", "update", "delete", "truncate"]


def source(**overrides):
    info = {
        "reachable": True,
        "server": {"major": 15},
        "publications": [
            {
                "name": "app_pub",
                "publish": WHOLE,
                "all_tables": False,
                "schemas": [],
                "tables": [
                    {"name": "public.orders", "where": None, "columns": None},
                    {"name": "public.items", "where": None, "columns": None},
                ],
            },
        ],
        "slots": [{"name": "app_sub", "active": True, "confirmed_flush_lag_bytes": 120}],
        "checks": [],
    }
    info.update(overrides)
    return info


def destination(**overrides):
    info = {
        "reachable": True,
        "server": {
            "major": 17,
            "wal_level": "logical",
            "max_replication_slots": 10,
            "replication_slots_used": 0,
            "max_wal_senders": 10,
            "wal_senders_used": 0,
        },
        "subscriptions": [
            {
                "name": "app_sub",
                "enabled": True,
                "slot_name": "app_sub",
                "publications": ["app_pub"],
                "tables": [
                    {"name": "public.orders", "state": "ready", "state_code": "r"},
                    {"name": "public.items", "state": "ready", "state_code": "r"},
                ],
            },
        ],
    }
    info.update(overrides)
    return info


def run(src=None, dst=None, **options):
    kwargs = {
        "fence_result": {"changed": True},
        "fence_roles": ["app"],
        "roles_on_destination": ["app"],
        "sequences_result": {"sequences": [{"name": "public.orders_id_seq"}]},
    }
    kwargs.update(options)
    return {r["check"]: r for r in preflight(src or source(), dst or destination(), "app_sub", **kwargs)}


def test_all_go():
    rows = run()
    assert all(r["go"] for r in rows.values()), rows
    assert list(rows) == [
        "subscription",
        "tables_ready",
        "complete_copy",
        "lag",
        "replica_identity",
        "version",
        "reverse_replication",
        "sequences",
        "fence_roles",
    ]
    assert rows["version"]["detail"] == "PostgreSQL 15 -> 17"


def test_row_filter_makes_a_partial_copy():
    src = source()
    src["publications"][0]["tables"][1]["where"] = "(qty > 0)"
    rows = run(src)
    assert not rows["complete_copy"]["go"]
    assert "public.items" in rows["complete_copy"]["detail"]
    assert rows["complete_copy"]["fix"]
    # Out of scope, it does not count.
    assert run(src, scope=["public.orders"])["complete_copy"]["go"]


def test_publication_without_deletes_is_partial():
    src = source()
    src["publications"][0]["publish"] = ["insert", "update"]
    assert not run(src)["complete_copy"]["go"]


def test_all_tables_publication_is_whole():
    src = source()
    src["publications"][0].update({"all_tables": True, "tables": []})
    assert run(src)["complete_copy"]["go"]


def test_not_ready_disabled_and_lag():
    dst = destination()
    dst["subscriptions"][0]["enabled"] = False
    dst["subscriptions"][0]["tables"][0].update({"state": "data copy", "state_code": "d"})
    src = source(slots=[{"name": "app_sub", "active": True, "confirmed_flush_lag_bytes": 10**9}])
    rows = run(src, dst)
    assert not rows["subscription"]["go"]
    assert not rows["tables_ready"]["go"]
    assert "public.orders (data copy)" in rows["tables_ready"]["detail"]
    assert not rows["lag"]["go"]


def test_missing_subscription_names_the_existing_ones():
    rows = preflight(
        source(),
        destination(),
        "other_sub",
        fence_result={},
        fence_roles=["app"],
        roles_on_destination=["app"],
        sequences_result={},
    )
    assert not rows[0]["go"]
    assert "there: app_sub" in rows[0]["detail"]


def test_downgrade_reverse_and_roles():
    dst = destination(
        server={
            "major": 14,
            "wal_level": "replica",
            "max_replication_slots": 0,
            "replication_slots_used": 0,
            "max_wal_senders": 10,
            "wal_senders_used": 0,
        }
    )
    rows = run(dst=dst, roles_on_destination=[])
    assert not rows["version"]["go"]
    assert not rows["reverse_replication"]["go"]
    assert "wal_level is replica" in rows["reverse_replication"]["detail"]
    assert "no free replication slot" in rows["reverse_replication"]["detail"]
    assert not rows["fence_roles"]["go"]
    assert run(dst=dst, allow_downgrade=True, reverse=False)["version"]["go"]
    assert "reverse_replication" not in run(reverse=False)


def test_refused_fence_and_failed_sequences():
    rows = run(
        fence_result={"failed": True, "msg": "postgres is a superuser"},
        sequences_result={"failed": True, "msg": "public.x_seq is missing on the subscriber"},
    )
    assert rows["fence_roles"]["detail"] == "postgres is a superuser"
    assert not rows["sequences"]["go"]
    assert not run(fence_roles=[])["fence_roles"]["go"]


def test_unreachable_stops_at_one_row():
    rows = preflight(
        source(),
        {"reachable": False, "error": "connection refused"},
        "app_sub",
        fence_result={},
        fence_roles=["app"],
        roles_on_destination=[],
        sequences_result={},
    )
    assert [r["check"] for r in rows] == ["reachable"]
    assert "connection refused" in rows[0]["detail"]


def test_forward_subscription_for_switchback():
    src = source(subscriptions=[{"name": "fwd", "enabled": False}])
    assert run(src, forward_subscription="fwd")["forward_subscription"]["go"]
    src["subscriptions"][0]["enabled"] = True
    assert not run(src, forward_subscription="fwd")["forward_subscription"]["go"]
    assert not run(source(), forward_subscription="fwd")["forward_subscription"]["go"]


def test_lines_and_report():
    rows = list(run(fence_roles=[]).values())
    lines = format_rows(rows)
    assert lines[0].startswith("GO     subscription")
    assert any(line.startswith("NO-GO  fence_roles") for line in lines)
    assert any("fix: name the roles" in line for line in lines)
    steps = step_times(
        [{"step": "start", "at": 100.0}, {"step": "fence", "at": 100.5}, {"step": "compare", "at": 102.25}]
    )
    assert steps == [{"step": "fence", "seconds": 0.5}, {"step": "compare", "seconds": 1.75}]
    report = report_lines(
        {
            "steps": steps,
            "window_seconds": 2.25,
            "tables": 2,
            "tables_equal": 2,
            "sequences": 1,
            "terminated": 3,
            "fenced_roles": ["app"],
        }
    )
    assert report[-1] == "write-unavailable window: 2.25 s (fence -> ready)"
    assert "2 of 2 tables equal" in report[-2]


@pytest.mark.parametrize("bad", [{"steps": []}, None])
def test_report_needs_its_fields(bad):
    with pytest.raises((KeyError, TypeError)):
        report_lines(bad)


def measured(direction, source, target, window):
    return {
        "direction": direction,
        "source": source,
        "target": target,
        "source_major": {"pub": "15", "sub2": "17"}[source],
        "target_major": {"pub": "15", "sub2": "17"}[target],
        "steps": [{"step": "fence writes", "seconds": 0.3}, {"step": "compare", "seconds": window - 0.3}],
        "window_seconds": window,
        "tables": 2,
        "tables_equal": 2,
        "sequences": 1,
        "terminated": 1,
        "fenced_roles": ["app_writer"],
    }


WRITES = {
    "finished": 1,
    "changed": True,
    "run_id": "r1",
    "acknowledged": 2650,
    "acknowledged_by_node": {"pub": 2300, "sub2": 350},
    "errors": {"pub: ReadOnlySqlTransaction": 41},
    "longest_gap_seconds": 4.21,
    "writing_seconds": 30.5,
    "nodes": [
        {"node": "pub", "rows": 2650, "missing": 0, "missing_sample": [], "unacknowledged": 0},
        {"node": "sub2", "rows": 2650, "missing": 0, "missing_sample": [], "unacknowledged": 0},
    ],
    "lost": 0,
    "ansible_job_id": "j1",
}


def rehearsal(application):
    return {
        "run_id": "r1",
        "source": "pub",
        "target": "sub2",
        "switchover": measured("switchover", "pub", "sub2", 2.71),
        "switchback": measured("switchback", "sub2", "pub", 2.5),
        "application": application,
    }


def test_rehearsal_report_with_the_proof():
    app = application_summary(WRITES)
    assert app["lost"] == 0
    assert app["failed"] is False
    assert "ansible_job_id" not in app
    lines = rehearsal_lines(rehearsal(app))
    assert lines[0] == "upgrade rehearsal r1: pub -> sub2 -> pub"
    assert "switchover pub (PostgreSQL 15) -> sub2 (PostgreSQL 17): write-unavailable window 2.71 s" in lines[1]
    assert any(
        line.startswith("switchback sub2 (PostgreSQL 17) -> pub (PostgreSQL 15): write-unavailable window 2.50 s")
        for line in lines
    )
    assert (
        "application: 2,650 writes acknowledged (pub 2,300, sub2 350); "
        "longest time without an acknowledged write 4.21 s" in " ".join(lines)
    )
    assert "  failed attempts, retried: pub: ReadOnlySqlTransaction 41" in lines
    assert lines[-1] == (
        "proof: every acknowledged row read back from each node "
        "(pub 2,650 rows, 0 missing, sub2 2,650 rows, 0 missing): none lost"
    )


def test_rehearsal_report_names_what_was_lost():
    lost = dict(WRITES, failed=True, msg="acknowledged writes missing", lost=3)
    lost["nodes"] = [dict(WRITES["nodes"][0]), dict(WRITES["nodes"][1], rows=2647, missing=3)]
    lines = rehearsal_lines(rehearsal(application_summary(lost)))
    assert lines[-1].endswith("sub2 2,647 rows, 3 missing): 3 LOST")


@pytest.mark.parametrize(
    "writes", [{"finished": 0, "ansible_job_id": "j1"}, {"failed": True, "msg": "boom", "acknowledged": 5}]
)
def test_rehearsal_without_a_read_back_is_not_proven(writes):
    app = application_summary(writes)
    assert app["lost"] is None  # never 0 without the read-back
    lines = rehearsal_lines(rehearsal(app))
    assert lines[-1].startswith("proof: NOT MADE")


def test_replica_identity_reads_the_tables_not_the_message():
    """A long listing is shortened in the message; the finding's tables decide, and other tables do not count."""
    shortened = {
        "code": "replica_identity_missing",
        "message": "publication app_pub publishes UPDATE/DELETE but these tables ...: public.a, public.b and 40 more",
        "hint": "Add a primary key",
        "tables": ["public.a", "public.b", "public.items"],
    }
    elsewhere = dict(shortened, message="... public.orders_archive", tables=["public.orders_archive"])
    assert run(source(checks=[shortened]))["replica_identity"]["go"] is False
    assert run(source(checks=[elsewhere]))["replica_identity"]["go"] is True
    assert run(source(checks=[shortened]), scope=["public.orders"])["replica_identity"]["go"] is True


def standby_info(in_recovery=True, slots=None, receive="0/3000000", replay="0/3000000", age=None):
    server = {"major": 18, "in_recovery": in_recovery, "seconds_since_last_replayed_commit": age}
    for key, lsn in (("receive_lsn", receive), ("current_lsn", replay)):
        server[key], server[key + "_bytes"] = lsn, lsn_to_int(lsn)
    return {"server": server, "slots": slots or []}


def primary_at(lsn):
    return {"reachable": True, "server": {"current_lsn": lsn, "current_lsn_bytes": lsn_to_int(lsn)}}


SYNCED = {"name": "sub_a", "synced": True, "invalidation_reason": None}


def test_failover_all_go():
    rows = failover_preflight(
        standby_info(slots=[SYNCED]),
        {"reachable": False},
        {"sub1": [{"name": "sub_a", "slot_name": "sub_a", "failover": True}]},
        "standby1",
    )
    assert [(r["check"], r["go"]) for r in rows] == [
        ("standby", True),
        ("primary_down", True),
        ("standby_wal", True),
        ("slot sub1/sub_a", True),
    ]
    assert rows[0]["detail"] == "standby1 in recovery, PostgreSQL 18"
    assert rows[2]["detail"] == "standby1 received WAL up to 0/3000000, replayed 0/3000000"
    assert rows[3]["detail"] == "failover slot sub_a synced on the standby"


@pytest.mark.parametrize(
    ("sub", "slot", "detail"),
    [
        ({"failover": False}, SYNCED, "NOT a failover slot"),
        ({"failover": True}, None, "sub_a not on the standby"),
        ({"failover": True}, dict(SYNCED, synced=False), "sub_a not synced on the standby"),
        ({"failover": True}, dict(SYNCED, invalidation_reason="wal_removed"), "sub_a invalidated: wal_removed"),
    ],
)
def test_failover_slot_no_go(sub, slot, detail):
    rows = failover_preflight(
        standby_info(slots=[slot] if slot else []),
        {"reachable": False},
        {"sub1": [dict(sub, name="sub_a", slot_name="sub_a")]},
        "standby1",
    )
    assert rows[-1]["go"] is False
    assert rows[-1]["detail"].startswith(detail)
    assert "full copy" in rows[-1]["fix"]


def test_failover_refuses_a_running_primary_and_a_primary_as_standby():
    rows = {r["check"]: r for r in failover_preflight(standby_info(in_recovery=False), {"reachable": True}, {}, "n1")}
    assert rows["standby"]["go"] is False
    assert "NOT a standby" in rows["standby"]["detail"]
    assert rows["primary_down"]["go"] is False
    assert "STILL ACCEPTS CONNECTIONS" in rows["primary_down"]["detail"]
    allowed = failover_preflight(standby_info(), {"reachable": True}, {}, "n1", allow_running_primary=True)
    assert all(r["go"] for r in allowed)


STANDBY_CONN = "host=standby18 port=5432 dbname=publisher user=replicator password=********"


def test_failover_exempts_a_subscription_to_the_standby_itself():
    own = {"name": "sbs_sub", "synced": False, "invalidation_reason": None, "conflicting": False}
    rows = failover_preflight(
        standby_info(slots=[SYNCED, own]),
        {"reachable": False},
        {
            "sub1": [{"name": "sub_a", "slot_name": "sub_a", "failover": True, "conninfo": "host=primary18 port=5432"}],
            "sbs": [{"name": "sbs_sub", "slot_name": "sbs_sub", "failover": False, "conninfo": STANDBY_CONN}],
        },
        "standby18",
        standby_addresses=[{"host": "standby18", "port": 5432}],
    )
    assert [(r["check"], r["go"]) for r in rows] == [
        ("standby", True),
        ("primary_down", True),
        ("standby_wal", True),
        ("slot sub1/sub_a", True),
        ("slot sbs/sbs_sub", True),
    ]
    assert rows[4]["detail"].startswith("subscribes to the standby itself")


@pytest.mark.parametrize(
    ("addresses", "slot", "detail"),
    [
        # Another port of the same host is another server: the failover-slot rule applies.
        ([{"host": "standby18", "port": 5433}], {"name": "sbs_sub", "synced": False}, "NOT a failover slot"),
        (None, {"name": "sbs_sub", "synced": False}, "NOT a failover slot"),
        ([{"host": "STANDBY18"}], None, "subscribes to the standby, but its slot sbs_sub is not there"),
        (
            [{"host": "standby18", "port": "5432"}],
            {"name": "sbs_sub", "conflicting": True, "invalidation_reason": "rows_removed"},
            "subscribes to the standby, but its slot sbs_sub is invalidated: rows_removed",
        ),
    ],
)
def test_failover_standby_subscription_no_go(addresses, slot, detail):
    rows = failover_preflight(
        standby_info(slots=[slot] if slot else []),
        {"reachable": False},
        {"sbs": [{"name": "sbs_sub", "slot_name": "sbs_sub", "failover": False, "conninfo": STANDBY_CONN}]},
        "standby18",
        standby_addresses=addresses,
    )
    assert rows[-1]["go"] is False
    assert rows[-1]["detail"].startswith(detail)


def test_failover_standby_wal_against_a_running_primary():
    """With the old primary running (fenced by the operator), the standby must have all of its WAL: what it lacks
    would be lost by the promotion."""
    behind = failover_preflight(
        standby_info(receive="0/3000000", replay="0/2FFF000"),
        primary_at("0/3100000"),
        {},
        "s1",
        allow_running_primary=True,
    )
    row = {r["check"]: r for r in behind}["standby_wal"]
    assert row["go"] is False
    assert row["detail"] == (
        "s1 is 1.0 MB of WAL behind the running primary (0/3000000 < 0/3100000): promoting it loses those transactions"
    )
    assert "failover_timeout" in row["fix"]
    caught_up = failover_preflight(
        standby_info(receive="0/3100000"), primary_at("0/3100000"), {}, "s1", allow_running_primary=True
    )
    assert all(r["go"] for r in caught_up)
    assert {r["check"]: r for r in caught_up}["standby_wal"][
        "detail"
    ] == "s1 has all of the running primary's WAL (0/3100000)"


def test_failover_standby_wal_with_the_primary_down_says_what_the_promotion_keeps():
    rows = failover_preflight(
        standby_info(receive="0/3002000", replay="0/3000000", age=75.2), {"reachable": False}, {}, "s1"
    )
    row = {r["check"]: r for r in rows}["standby_wal"]
    assert row["go"] is True
    assert row["detail"] == (
        "s1 received WAL up to 0/3002000, replayed 0/3000000 (8.0 kB replayed by the promotion);"
        " its last replayed commit is 1 min 15 s old"
    )
    # A standby whose WAL receiver has not run since it started has replayed WAL only.
    restarted = failover_preflight(standby_info(receive=None, replay="0/3000000"), {"reachable": False}, {}, "s1")
    assert {r["check"]: r for r in restarted}["standby_wal"][
        "detail"
    ] == "s1 received WAL up to 0/3000000, replayed 0/3000000"


@pytest.mark.parametrize(
    ("origin_lsn", "go"),
    [("0/3000000", True), ("0/2000000", True), (None, True), ("0/3000400", False)],
)
def test_failover_refuses_a_subscription_ahead_of_the_standby(origin_lsn, go):
    """A subscription that applied more of the old primary's WAL than the standby has (no
    synchronized_standby_slots) would skip the promoted standby's first writes."""
    rows = failover_preflight(
        standby_info(slots=[SYNCED]),
        {"reachable": False},
        {"sub1": [{"name": "sub_a", "slot_name": "sub_a", "failover": True, "origin_lsn": origin_lsn}]},
        "s1",
    )
    row = rows[-1]
    assert row["go"] is go
    if not go:
        assert row["detail"] == (
            "applied the old primary's WAL up to 0/3000400, 1.0 kB beyond the standby's end (0/3000000):"
            " it would skip the new primary's first writes"
        )
        assert "synchronized_standby_slots" in row["fix"]
