"""Replication health: byte sizes, version-aware SQL, row shaping and the checks (no database)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import health
from ansible_collections.inventium.logical_replication.plugins.module_utils.health import (
    ThresholdError,
    evaluate_checks,
    format_bytes,
    parse_bytes,
)

GB = 1024**3


def render(query):
    return query if isinstance(query, str) else query.as_string(None)


def codes(findings):
    return [f["code"] for f in findings]


def by_code(findings):
    return {f["code"]: f for f in findings}


# ----------------------------------------------------------------------------------------------
# Byte sizes
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (1073741824, GB),
        ("1073741824", GB),
        ("1GB", GB),
        ("1 GB", GB),
        ("1gb", GB),
        ("1G", GB),
        ("1GiB", GB),
        ("512MB", 512 * 1024**2),
        ("64kB", 64 * 1024),
        ("1.5kB", 1536),
        ("100B", 100),
        ("2TB", 2 * 1024**4),
    ],
)
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", ["lots", "", "1XB", "-1", -1, True, "1 G B", "GB"])
def test_parse_bytes_rejects(value):
    with pytest.raises(ThresholdError):
        parse_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "unknown"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 kB"), (GB, "1.0 GB"), (3 * 1024**4, "3.0 TB")],
)
def test_format_bytes(value, expected):
    assert format_bytes(value) == expected


# ----------------------------------------------------------------------------------------------
# Version-aware SQL
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "present", "absent"),
    [
        (13, [], ["max_parallel_apply_workers_per_subscription", "max_active_replication_origins"]),
        (16, ["max_parallel_apply_workers_per_subscription"], ["max_active_replication_origins"]),
        (18, ["max_parallel_apply_workers_per_subscription", "max_active_replication_origins"], []),
    ],
)
def test_server_query_is_version_aware(major, present, absent):
    text = render(health.server_query(major))
    for column in ("max_replication_slots", "max_wal_senders", "max_slot_wal_keep_size", "pg_last_wal_replay_lsn"):
        assert column in text
    for column in present:
        assert column in text
    for column in absent:
        assert column not in text


@pytest.mark.parametrize(
    ("major", "present", "absent"),
    [
        (
            13,
            [],
            ["subbinary", "subtwophasestate", "pg_stat_subscription_stats", "w.worker_type", "w.leader_pid", "confl_"],
        ),
        (14, ["subbinary", "substream"], ["subtwophasestate", "pg_stat_subscription_stats"]),
        (15, ["subtwophasestate", "subdisableonerr", "apply_error_count"], ["suborigin", "w.leader_pid"]),
        (16, ["suborigin", "subrunasowner", "w.leader_pid"], ["subfailover", "w.worker_type"]),
        (17, ["subfailover", "w.worker_type"], ["confl_"]),
        (18, [f"st.confl_{kind}" for kind in health.CONFLICT_TYPES], []),
    ],
)
def test_subscriptions_query_is_version_aware(major, present, absent):
    text = render(health.subscriptions_query(major, True))
    assert "s.subconninfo" in text
    for column in present:
        assert column in text
    for column in absent:
        assert column not in text
    assert "subconninfo" not in render(health.subscriptions_query(major, False))


@pytest.mark.parametrize("major", [13, 14, 15, 16, 17, 18])
def test_queries_without_params_contain_no_percent_sign(major):
    """Queries run without parameters are sent as they are: a ``%%`` would reach the server."""
    for query in (
        health.server_query(major),
        health.slots_query(major),
        health.senders_query(major),
        health.publications_query(major),
        health.publication_issues_query(major),
        health.subscriptions_query(major, True),
    ):
        assert "%" not in render(query)


@pytest.mark.parametrize("major", [13, 15, 18])
def test_no_set_returning_catalog_functions_in_joins(major):
    """pg_publication_tables / pg_partition_tree() are estimated at 1000 rows per call: joined, the cost
    explodes past jit_above_cost and JIT compilation makes a 1 ms query take seconds."""
    for query in (health.publications_query(major), health.publication_issues_query(major)):
        text = render(query)
        assert "pg_publication_tables" not in text
        assert "pg_partition_tree" not in text
        assert "WITH RECURSIVE published_roots" in text
    assert "pg_publication_namespace pn JOIN" in render(health.published_relations_cte(15))
    assert "pg_publication_namespace" not in render(health.published_relations_cte(14))


def test_publications_query_reuses_the_publication_module_reads():
    text = render(health.publications_query(17))
    assert render(health.publication_rels_query(17, health.sql.SQL("p.oid"))) in text
    assert render(health.publication_schemas_query(health.sql.SQL("p.oid"))) in text
    assert render(health.publication_query(17, by_name=False)) in text
    assert "pg_publication_namespace" not in render(health.publications_query(14))
    assert "prqual" not in render(health.publications_query(14))


def test_single_object_reads_take_a_parameter():
    assert render(health.slot_query(17)).endswith("WHERE slot_name = %s")
    assert render(health.publication_query(17)).endswith("WHERE p.pubname = %s")
    assert render(health.publication_rels_query(15)).endswith("WHERE pr.prpubid = %s")
    assert render(health.publication_schemas_query()).endswith("WHERE pn.pnpubid = %s")
    assert render(health.no_replica_identity_query()).count("%s") == 4


def test_slots_query_adds_the_confirmed_flush_lag():
    text = render(health.slots_query(17))
    assert render(health.slot_query(17)).split(" FROM ")[0] in text
    assert "confirmed_flush_lag_bytes" in text
    assert "two_phase_at" not in text
    assert "two_phase_at" in render(health.slots_query(18))


def test_publication_issues_query_checks_row_filters_from_15():
    assert "row_filter_outside_replica_identity" not in render(health.publication_issues_query(14))
    text = render(health.publication_issues_query(15))
    assert "row_filter_outside_replica_identity" in text
    assert r"'\{VAR :varno 1 :varattno (\d+)'" in text


def test_builders_are_memoized():
    assert health.server_query(17) is health.server_query(17)
    assert health.subscriptions_query(17, True) is not health.subscriptions_query(17, False)


# ----------------------------------------------------------------------------------------------
# Row shaping
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "major", "expected"),
    [
        ({"relid": None, "leader_pid": None}, 15, "apply"),
        ({"relid": 16384, "leader_pid": None}, 15, "table synchronization"),
        ({"relid": None, "leader_pid": 42}, 16, "parallel apply"),
        ({"worker_type": "parallel apply", "relid": None, "leader_pid": 42}, 17, "parallel apply"),
        ({"worker_type": "table synchronization", "relid": 1}, 18, "table synchronization"),
    ],
)
def test_worker_type(row, major, expected):
    assert health.worker_type(row, major) == expected


def wal_row(**kwargs):
    row = {
        "wal_level": "logical",
        "wal_level_vartype": "enum",
        "wal_level_enumvals": ["minimal", "replica", "logical"],
        "wal_level_boot_val": "replica",
        "wal_level_source": "configuration file",
        "wal_level_context": "postmaster",
        "wal_level_pending_restart": False,
    }
    row.update(kwargs)
    return row


def file_row(seqno, setting, sourcefile="/data/harness.conf"):
    return {"seqno": seqno, "sourcefile": sourcefile, "sourceline": 1, "name": "wal_level", "setting": setting}


def test_wal_level_pending_from_the_files():
    base = [file_row(1, "logical")]
    assert health.wal_level_pending(wal_row(), base) is None
    auto = [*base, file_row(2, "replica", "/data/postgresql.auto.conf")]
    assert health.wal_level_pending(wal_row(), auto) == "replica"
    alias = [*base, file_row(2, "hot_standby", "/data/postgresql.auto.conf")]
    assert health.wal_level_pending(wal_row(), alias) == "replica"
    # Set only by ALTER SYSTEM, then RESET: the restart brings the default back.
    assert health.wal_level_pending(wal_row(), []) == "replica"
    assert health.wal_level_pending(wal_row(wal_level="replica"), [file_row(1, "logical")]) == "logical"


def test_subscription_state_shapes_and_redacts():
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    row = {
        "name": "Sub",
        "owner": "postgres",
        "enabled": True,
        "publications": ["p"],
        "conninfo": "host=db user=rep password='s3 cret' dbname=pub",
        "slot_name": "sub",
        "synchronous_commit": "off",
        "binary": False,
        "streaming": "p",
        "two_phase_state": "d",
        "disable_on_error": True,
        "origin": "any",
        "password_required": True,
        "run_as_owner": False,
        "workers": [
            {"pid": 10, "worker_type": None, "leader_pid": None, "relid": None, "schema": None, "table": None,
             "received_lsn": "0/10", "latest_end_lsn": "0/F", "last_msg_send_time": "t1",
             "last_msg_receipt_time": "t2", "latest_end_time": "t3", "seconds_since_last_msg_send": 1.5,
             "seconds_since_last_msg_receipt": 1.0, "seconds_since_latest_end": 2.0},
            {"pid": 11, "worker_type": None, "leader_pid": None, "relid": 99, "schema": "Sales", "table": "t"},
        ],
        "apply_error_count": 2,
        "sync_error_count": None,
        "stats_reset": now,
        "tables": [
            {"schema": "Sales", "table": "t", "state_code": "d", "lsn": None},
            {"schema": "public", "table": "books", "state_code": "r", "lsn": "0/5"},
        ],
    }  # fmt: skip
    state = health.subscription_state(row, 16)
    assert state["conninfo"] == "host=db user=rep password='********' dbname=pub"
    assert state["streaming"] == "parallel"
    assert state["two_phase"] == "disabled"
    assert state["workers"] == [
        {"pid": 10, "type": "apply", "table": None, "leader_pid": None},
        {"pid": 11, "type": "table synchronization", "table": '"Sales".t', "leader_pid": None},
    ]
    assert state["apply_worker_pid"] == 10
    assert state["received_lsn"] == "0/10"
    assert state["seconds_since_last_msg_receipt"] == 1.0
    assert state["apply_error_count"] == 2
    assert state["sync_error_count"] == 0
    assert state["stats_reset"] == "2025-01-01T00:00:00+00:00"
    assert "conflicts" not in state
    assert [t["name"] for t in state["tables"]] == ['"Sales".t', "public.books"]
    assert state["tables"][1]["state"] == "ready"
    assert state["table_states"] == {state["tables"][0]["state"]: 1, "ready": 1}
    assert state["tables_not_ready"] == 1


def test_subscription_state_old_and_new_servers():
    row = {"name": "s", "enabled": False, "publications": None, "conninfo": None, "workers": [], "tables": []}
    state = health.subscription_state(row, 13)
    assert state["conninfo"] is None
    assert state["apply_worker_pid"] is None
    assert state["received_lsn"] is None
    assert state["apply_error_count"] is None
    assert "binary" not in state
    assert "two_phase" not in state
    row18 = dict(row, binary=True, streaming="f", two_phase_state="e", disable_on_error=False, confl_insert_exists=3)
    state = health.subscription_state(row18, 18)
    assert state["streaming"] == "off"
    assert state["two_phase"] == "enabled"
    assert state["conflicts"]["insert_exists"] == 3
    assert state["conflicts"]["delete_missing"] == 0


def test_publication_state():
    row = {
        "pubname": "LeadPub",
        "owner": "postgres",
        "puballtables": False,
        "pubinsert": True,
        "pubupdate": False,
        "pubdelete": False,
        "pubtruncate": True,
        "pubviaroot": False,
        "pubgencols": "n",
        "comment": None,
        "published_table_count": 3,
        "schemas": ["b", "a"],
        "tables": [
            {"schema": "public", "table": "z", "columns": None, "where": None},
            {"schema": "Sales Data", "table": "a", "columns": ["id"], "where": "(id > 1)"},
        ],
    }
    state = health.publication_state(row, 18)
    assert state["publish"] == ["insert", "truncate"]
    assert state["schemas"] == ["a", "b"]
    assert [t["name"] for t in state["tables"]] == ['"Sales Data".a', "public.z"]
    assert state["tables"][0] == {
        "name": '"Sales Data".a',
        "schema": "Sales Data",
        "table": "a",
        "columns": ["id"],
        "where": "(id > 1)",
    }
    assert state["publish_generated_columns"] == "none"
    assert "publish_generated_columns" not in health.publication_state(row, 17)


def test_slot_state_formats_inactive_since():
    when = datetime.datetime(2025, 1, 1, 12, tzinfo=datetime.UTC)
    assert health.slot_state({"name": "s", "inactive_since": when})["inactive_since"] == "2025-01-01T12:00:00+00:00"
    assert health.slot_state({"name": "s"}) == {"name": "s"}


# ----------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------


def server(**kwargs):
    facts = {
        "database": "app",
        "wal_level": "logical",
        "wal_level_pending": None,
        "wal_level_pending_restart": False,
        "wal_level_pending_known": True,
        "max_replication_slots": 10,
        "replication_slots_used": 1,
        "max_wal_senders": 10,
        "wal_senders_used": 1,
        "max_logical_replication_workers": 4,
        "max_worker_processes": 8,
        "max_sync_workers_per_subscription": 2,
    }
    facts.update(kwargs)
    return facts


def slot(name="s1", **kwargs):
    facts = {
        "name": name,
        "slot_type": "logical",
        "temporary": False,
        "active": True,
        "wal_status": "reserved",
        "retained_wal_bytes": 1000,
    }
    facts.update(kwargs)
    return facts


def subscription(name="sub", **kwargs):
    facts = {
        "name": name,
        "enabled": True,
        "apply_worker_pid": 42,
        "apply_error_count": 0,
        "sync_error_count": 0,
        "table_states": {"ready": 2},
        "tables_not_ready": 0,
    }
    facts.update(kwargs)
    return facts


def facts(**kwargs):
    base = {
        "server": server(),
        "slots": [slot()],
        "publications": [{"name": "p"}],
        "subscriptions": [],
        "subscription_counts": {"database": 0, "cluster": 0, "cluster_enabled": 0},
    }
    base.update(kwargs)
    return base


def no_issues(**kwargs):
    issues = {kind: [] for kind in health.ISSUE_KINDS}
    issues.update(kwargs)
    return issues


def test_healthy_facts_have_no_findings():
    assert evaluate_checks(facts(), no_issues()) == []
    subscriber = facts(
        slots=[],
        publications=[],
        subscriptions=[subscription()],
        subscription_counts={"database": 1, "cluster": 1, "cluster_enabled": 1},
    )
    assert evaluate_checks(subscriber) == []
    assert evaluate_checks({}) == []


def test_findings_have_the_documented_shape_and_order():
    found = evaluate_checks(
        facts(server=server(wal_level="replica"), slots=[]),
        no_issues(owned_sequence=[{"publication": "p", "schema": "public", "table": "t", "detail": "public.t_id_seq"}]),
    )
    assert [f["severity"] for f in found] == ["error", "info"]
    for item in found:
        assert set(item) == {"severity", "code", "message", "hint"}
        assert item["message"]
        assert item["hint"]


def test_wal_level_not_logical():
    found = by_code(evaluate_checks(facts(server=server(wal_level="replica"), slots=[])))
    assert found["wal_level_not_logical"]["severity"] == "error"
    assert "1 publication(s) in database app" in found["wal_level_not_logical"]["message"]
    quiet = by_code(evaluate_checks(facts(server=server(wal_level="replica"), slots=[], publications=[])))
    assert quiet["wal_level_not_logical"]["severity"] == "info"


def test_wal_level_pending_findings():
    found = by_code(evaluate_checks(facts(server=server(wal_level_pending="replica", wal_level_pending_restart=True))))
    assert found["wal_level_pending"]["severity"] == "error"
    assert "disables logical decoding" in found["wal_level_pending"]["message"]
    assert "wal_level_not_logical" not in found

    enabling = by_code(evaluate_checks(facts(server=server(wal_level="replica", wal_level_pending="logical"))))
    assert enabling["wal_level_pending"]["severity"] == "error"  # publications exist but publish nothing yet
    assert "wal_level_not_logical" not in enabling
    idle = facts(server=server(wal_level="replica", wal_level_pending="logical"), publications=[], slots=[])
    idle = evaluate_checks(idle)
    assert by_code(idle)["wal_level_pending"]["severity"] == "warning"

    unknown = server(wal_level_pending_known=False, wal_level_pending_restart=True)
    assert by_code(evaluate_checks(facts(server=unknown)))["wal_level_pending"]["severity"] == "warning"
    stale_flag = server(wal_level_pending_known=True, wal_level_pending_restart=True)
    assert evaluate_checks(facts(server=stale_flag)) == []


def test_replication_slot_and_sender_limits():
    full = by_code(evaluate_checks(facts(server=server(max_replication_slots=1, replication_slots_used=1))))
    assert full["max_replication_slots_too_low"]["severity"] == "warning"

    few_senders = facts(server=server(max_wal_senders=1), slots=[slot("a"), slot("b"), slot("t", temporary=True)])
    found = by_code(evaluate_checks(few_senders))
    assert found["max_wal_senders_too_low"]["severity"] == "error"
    assert "2 replication slots" in found["max_wal_senders_too_low"]["message"]

    busy = by_code(evaluate_checks(facts(server=server(max_wal_senders=2, wal_senders_used=2))))
    assert busy["max_wal_senders_too_low"]["severity"] == "warning"
    assert evaluate_checks(facts(server=server(max_wal_senders=0, wal_senders_used=0), slots=[])) == []


def subscriber_facts(total, enabled, **server_kwargs):
    return facts(
        server=server(**server_kwargs),
        slots=[],
        publications=[],
        subscriptions=[],
        subscription_counts={"database": total, "cluster": total, "cluster_enabled": enabled},
    )


def test_worker_limits():
    found = by_code(evaluate_checks(subscriber_facts(3, 3, max_logical_replication_workers=2)))
    assert found["max_logical_replication_workers_too_low"]["severity"] == "error"
    found = by_code(evaluate_checks(subscriber_facts(3, 3, max_logical_replication_workers=4)))
    assert found["max_logical_replication_workers_too_low"]["severity"] == "warning"  # 4 < 3 + 2 sync workers
    assert evaluate_checks(subscriber_facts(3, 3, max_logical_replication_workers=5, max_worker_processes=8)) == []
    assert evaluate_checks(subscriber_facts(3, 0, max_logical_replication_workers=1)) == []  # all disabled

    found = by_code(evaluate_checks(subscriber_facts(1, 1, max_worker_processes=1)))
    assert found["max_worker_processes_too_low"]["severity"] == "error"
    found = by_code(evaluate_checks(subscriber_facts(0, 0, max_worker_processes=4)))
    assert found["max_worker_processes_too_low"]["severity"] == "warning"  # 4 < 4 workers + launcher
    assert evaluate_checks(subscriber_facts(0, 0, max_worker_processes=0, max_logical_replication_workers=0)) == []


def test_replication_origin_limits():
    # Before PostgreSQL 18 max_replication_slots also limits the subscriber's replication origins.
    found = by_code(evaluate_checks(subscriber_facts(3, 3, max_replication_slots=2, max_logical_replication_workers=9)))
    assert found["max_replication_slots_too_low"]["severity"] == "error"
    found = by_code(evaluate_checks(subscriber_facts(3, 3, max_replication_slots=4, max_logical_replication_workers=9)))
    assert found["max_replication_slots_too_low"]["severity"] == "warning"
    pg18 = subscriber_facts(3, 3, max_replication_slots=2, max_active_replication_origins=2)
    pg18["server"]["max_logical_replication_workers"] = 9
    found = by_code(evaluate_checks(pg18))
    assert found["max_active_replication_origins_too_low"]["severity"] == "error"
    assert "max_replication_slots_too_low" not in found


def test_slot_findings():
    threshold = 10_000
    slots = [
        slot("idle_big", active=False, retained_wal_bytes=threshold + 1),
        slot("idle_small", active=False, retained_wal_bytes=threshold),
        slot("busy_big", active=True, retained_wal_bytes=threshold * 10),
        slot("unreserved", wal_status="unreserved"),
        slot("lost", active=False, wal_status="lost", retained_wal_bytes=None, invalidation_reason="wal_removed"),
        slot("conflict", conflicting=True),
        slot("timed_out", active=False, invalidation_reason="idle_timeout", retained_wal_bytes=5),
    ]
    found = evaluate_checks(
        facts(slots=slots, server=server(replication_slots_used=7)), retained_wal_threshold=threshold
    )
    messages = {}
    for item in found:
        messages.setdefault(item["code"], []).append(item["message"])
    assert len(messages["slot_inactive_retaining_wal"]) == 1
    assert "idle_big" in messages["slot_inactive_retaining_wal"][0]
    assert "9.8 kB" in messages["slot_inactive_retaining_wal"][0]
    assert "unreserved" in messages["slot_wal_unreserved"][0]
    assert messages["slot_wal_lost"] == [messages["slot_wal_lost"][0]]
    assert "wal_removed" in messages["slot_wal_lost"][0]
    assert sorted(m.split()[2] for m in messages["slot_invalidated"]) == ["conflict", "timed_out"]
    assert by_code(found)["slot_wal_lost"]["severity"] == "error"


def test_slot_invalidated_on_a_standby_has_its_own_hint():
    found = evaluate_checks(
        # PostgreSQL shows wal_status lost for it too: not a lost-WAL case.
        facts(
            slots=[slot("sbs", conflicting=True, wal_status="lost", invalidation_reason="rows_removed")],
            server=server(),
        ),
        retained_wal_threshold=10_000,
    )
    invalidated = by_code(found)["slot_invalidated"]
    assert invalidated["message"] == "replication slot sbs is invalidated (rows_removed): its consumer cannot continue"
    assert "hot_standby_feedback on on the standby" in invalidated["hint"]
    other = evaluate_checks(
        facts(slots=[slot("old", active=False, invalidation_reason="idle_timeout")], server=server()),
        retained_wal_threshold=10_000,
    )
    assert by_code(other)["slot_invalidated"]["hint"] == "Drop the slot and re-create it; re-synchronize its consumer."


def test_subscription_findings():
    subs = [
        subscription("Off", enabled=False, apply_worker_pid=None),
        subscription("stuck", apply_worker_pid=None),
        subscription("failing", apply_error_count=3, sync_error_count=1),
        subscription("clashing", conflicts={"insert_exists": 2, "update_missing": 0, "delete_missing": 1}),
        subscription("syncing", table_states={"ready": 1, "data_copy": 2}, tables_not_ready=2),
    ]
    found = by_code(evaluate_checks(facts(subscriptions=subs)))
    assert '"Off"' in found["subscription_disabled"]["message"]
    assert "stuck" in found["subscription_not_running"]["message"]
    assert "Off" not in found["subscription_not_running"]["message"]
    assert "failing (apply errors 3, sync errors 1)" in found["subscription_errors"]["message"]
    assert "clashing (delete_missing 1, insert_exists 2)" in found["subscription_conflicts"]["message"]
    assert "syncing (2 data_copy)" in found["tables_not_ready"]["message"]
    assert {f["severity"] for f in found.values()} == {"warning"}
    old_server = [subscription("old", apply_error_count=None, sync_error_count=None)]
    assert evaluate_checks(facts(subscriptions=old_server)) == []


def test_publication_findings():
    issues = no_issues(
        no_replica_identity=[
            {"publication": "p", "schema": "public", "table": "a", "detail": None},
            {"publication": "p", "schema": "public", "table": "b", "detail": None},
            {"publication": "Q", "schema": "public", "table": "c", "detail": None},
        ],
        row_filter_outside_replica_identity=[
            {"publication": "p", "schema": "public", "table": "books", "detail": "topic"},
        ],
        column_list_lacks_replica_identity=[
            {"publication": "p", "schema": "public", "table": "cl", "detail": "id"},
        ],
        owned_sequence=[
            {"publication": "p", "schema": "public", "table": "t", "detail": "public.t_id_seq"},
            {"publication": "Q", "schema": "public", "table": "t", "detail": "public.t_id_seq"},
        ],
    )
    found = evaluate_checks(facts(), issues)
    missing = [f for f in found if f["code"] == "replica_identity_missing"]
    assert [m["message"].split()[1] for m in missing] == ['"Q"', "p"]
    assert missing[1]["message"].endswith("public.a, public.b")
    found = by_code(found)
    assert "public.books in publication p (topic)" in found["row_filter_outside_replica_identity"]["message"]
    assert "public.cl in publication p (id)" in found["column_list_lacks_replica_identity"]["message"]
    assert "1 sequence(s)" in found["sequences_not_replicated"]["message"]
    assert found["sequences_not_replicated"]["severity"] == "info"


def test_long_lists_are_shortened():
    subs = [subscription(f"s{i:02}", enabled=False) for i in range(25)]
    message = by_code(evaluate_checks(facts(subscriptions=subs)))["subscription_disabled"]["message"]
    assert "s19" in message
    assert "s20" not in message
    assert message.endswith("and 5 more")


# ----------------------------------------------------------------------------------------------
# collect(): subsets and their dependencies, against a fake connection
# ----------------------------------------------------------------------------------------------


class FakeCursor:
    def __init__(self, conn):
        self.conn = conn
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, query, params=None):
        text = render(query)
        self.conn.queries.append(text)
        for marker, rows in self.conn.answers:
            if marker in text:
                self.rows = rows
                return
        raise AssertionError(f"unexpected query {text[:80]}")

    def fetchall(self):
        return self.rows


class FakeConn:
    def __init__(self, answers):
        self.answers = answers
        self.queries = []

    def cursor(self, row_factory=None):
        return FakeCursor(self)


SERVER_ROW = dict(
    wal_row(),
    version="17.2",
    version_num=170002,
    in_recovery=False,
    database="app",
    current_lsn="0/10",
    current_lsn_bytes=16,
    receive_lsn=None,
    receive_lsn_bytes=None,
    seconds_since_last_replayed_commit=None,
    max_replication_slots=10,
    replication_slots_used=0,
    max_wal_senders=10,
    wal_senders_used=0,
    max_logical_replication_workers=4,
    logical_replication_workers_used=0,
    max_worker_processes=8,
    max_sync_workers_per_subscription=2,
    max_parallel_apply_workers_per_subscription=2,
    max_slot_wal_keep_size=None,
    can_read_file_settings=False,
)


def fake_conn():
    return FakeConn(
        [
            ("pg_file_settings", [file_row(1, "logical")]),
            ("AS wal_senders_used", [SERVER_ROW]),
            ("has_column_privilege", [{"allowed": True, "origins": True}]),
            ("cluster_enabled_count", [{"cluster_count": 0, "cluster_enabled_count": 0, "name": None}]),
            ("published_table_count", []),
            ("no_replica_identity", []),
            ("FROM pg_catalog.pg_stat_replication", []),
            ("FROM pg_catalog.pg_replication_slots ORDER BY", []),
            (
                "current_setting('synchronized_standby_slots')",
                [{"in_recovery": False, "synchronized_standby_slots": "", "sync_replication_slots": False}],
            ),
        ]
    )


def test_collect_returns_only_the_subsets_asked_for():
    conn = fake_conn()
    result = health.collect(conn, 17, gather=["checks"])
    assert result == {"checks": []}
    # The checks read the senders for the replication lag check (_thresholds' lag), without returning them.
    assert any("pg_stat_replication" in q for q in conn.queries)
    # PostgreSQL 17+: the failover-slot settings of a primary, for the standby slot checks
    assert any("synchronized_standby_slots" in q for q in conn.queries)

    conn = fake_conn()
    result = health.collect(conn, 17, gather=["server", "subscriptions"])
    assert list(result) == ["server", "subscriptions", "subscription_counts"]
    assert result["server"]["version"] == "17.2"
    assert result["server"]["wal_level_pending_known"] is False
    assert result["subscription_counts"] == {"database": 0, "cluster": 0, "cluster_enabled": 0}

    with pytest.raises(ValueError, match="unknown subset"):
        health.collect(fake_conn(), 17, gather=["server", "locks"])


def test_collect_server_reads_the_files_when_allowed():
    conn = fake_conn()
    conn.answers[1] = ("AS wal_senders_used", [dict(SERVER_ROW, can_read_file_settings=True)])
    facts_ = health.collect_server(conn, 17)
    assert facts_["wal_level_pending_known"] is True
    assert facts_["wal_level_pending"] is None
    assert len(conn.queries) == 2
    conn = fake_conn()
    conn.answers[1] = ("AS wal_senders_used", [dict(SERVER_ROW, can_read_file_settings=True)])
    health.collect_server(conn, 17, pending=False)
    assert len(conn.queries) == 1


# ----------------------------------------------------------------------------------------------
# The sampler's activity queries
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "view"),
    [(13, "pg_stat_bgwriter"), (16, "pg_stat_bgwriter"), (17, "pg_stat_checkpointer"), (18, "pg_stat_checkpointer")],
)
def test_checkpoints_query_reads_the_view_of_the_major(major, view):
    query = render(health.checkpoints_query(major))
    assert f"pg_catalog.{view}" in query
    for column in (
        "checkpoints_timed",
        "checkpoints_requested",
        "write_time_ms",
        "sync_time_ms",
        "buffers_checkpoint",
        "buffers_clean",
        "maxwritten_clean",
        "buffers_backend",
        "buffers_alloc",
    ):
        assert f"AS {column}" in query
    if major >= 17:
        assert "NULL::bigint AS buffers_backend" in query  # 17 removed it (pg_stat_io has it)


def test_statements_query_quotes_the_extension_schema():
    query = render(health.statements_query('odd "schema"'))
    assert 'FROM "odd ""schema""".pg_stat_statements' in query
    assert "mean_exec_time_ms" in query


def test_every_table_level_lock_mode_is_listed_once():
    assert len(set(health.LOCK_MODES)) == 8
    assert health.LOCK_MODES[0] == "AccessShareLock"
    assert health.LOCK_MODES[-1] == "AccessExclusiveLock"


# ----------------------------------------------------------------------------------------------
# The checks that share their numbers with the Grafana alert rules (_thresholds)
# ----------------------------------------------------------------------------------------------


def sender(name, lag):
    return {"application_name": name, "slot_name": name, "replay_lag_seconds": lag}


def test_replication_lag_against_the_thresholds():
    assert not by_code(evaluate_checks(facts(senders=[sender("a", None), sender("b", 29.0)])))
    warned = by_code(evaluate_checks(facts(senders=[sender("a", 31.0), sender("b", 2.0)])))["replication_lag"]
    assert warned["severity"] == "warning"
    assert "a (31 s)" in warned["message"]
    assert "b (" not in warned["message"]
    critical = by_code(evaluate_checks(facts(senders=[sender("a", 31.0), sender("c", 301.0)])))["replication_lag"]
    assert critical["severity"] == "error"
    assert "a (31 s)" in critical["message"]
    assert "c (301 s)" in critical["message"]


def test_retained_wal_share_of_the_slot_limit():
    gib = 1024**3
    # No limit (safe_wal_size unknown): only the absolute inactive-slot threshold applies.
    assert "slot_wal_near_limit" not in by_code(evaluate_checks(facts(slots=[slot(retained_wal_bytes=gib)])))
    half = slot(retained_wal_bytes=gib, safe_wal_size=gib)  # 50 %: not above the warning share
    assert "slot_wal_near_limit" not in by_code(evaluate_checks(facts(slots=[half])))
    warned = by_code(evaluate_checks(facts(slots=[slot(retained_wal_bytes=6 * gib, safe_wal_size=4 * gib)])))
    assert warned["slot_wal_near_limit"]["severity"] == "warning"
    assert "60%" in warned["slot_wal_near_limit"]["message"]
    critical = by_code(evaluate_checks(facts(slots=[slot(retained_wal_bytes=9 * gib, safe_wal_size=gib)])))
    assert critical["slot_wal_near_limit"]["severity"] == "error"
    # Past the limit PostgreSQL says so itself (wal_status unreserved): reported once, by slot_wal_unreserved.
    past = by_code(
        evaluate_checks(facts(slots=[slot(retained_wal_bytes=9 * gib, safe_wal_size=0, wal_status="unreserved")]))
    )
    assert "slot_wal_near_limit" not in past
    assert "slot_wal_unreserved" in past


def test_paused_subscriptions_are_not_reported_as_merely_disabled():
    paused = subscription("p", enabled=False, apply_worker_pid=None)
    plain = subscription("d", enabled=False, apply_worker_pid=None)
    found = by_code(evaluate_checks(facts(subscriptions=[paused, plain]), paused={"p"}))
    assert found["subscription_disabled"]["message"] == "disabled subscription(s): d"
