"""experiment_run: the experiments' workload steps and measures on throwaway publisher/subscriber servers.

Each test builds what the lab has for experiments - the publisher schema file
roles/publisher/files/schema/experiment.sql on both sides, the experiment publications of
inventory/lab/group_vars/publishers.yml, and one "lab" subscription on the subscriber to the experiment
publications every lab subscriber subscribes to (group_vars/subscribers.yml) - then runs the module
THROUGH ANSIBLE and asserts the numbers PostgreSQL gives (spill and stream bytes, marker visibility,
catch-up, initial sync ...). Docker measures need a container and are covered by the lab test
(test_experiment_lab.py); here they must be null with a note. Sizes are small so each run takes seconds
on the 2-core machine.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml
from pg_harness import lean_pair_combos, pg_pair_params, selected_majors
from psycopg import sql
from support.ansible import run_module

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "roles" / "publisher" / "files" / "schema" / "experiment.sql"
INVENTORY = REPO / "inventory" / "lab" / "group_vars"
# The lab's experiment publications and the ones every lab subscription subscribes to, from the inventory.
EXPERIMENT_PUBLICATIONS = [
    p
    for p in yaml.safe_load((INVENTORY / "publishers.yml").read_text())["publisher_publications"]
    if p["name"].startswith("experiment")
]
SUBSCRIBED = [
    name
    for name in yaml.safe_load((INVENTORY / "subscribers.yml").read_text())["subscriber_common_publications"]
    if name.startswith("experiment")
]
NODE = "sub1"
LAB_SUB = "sub1_sub"
# The runner's steps that do not depend on the versions run on two pairs (the machine is small); streaming and the
# initial copy (a binary COPY from 16 on) differ by major and run on every pair.
LEAN_PAIRS = pg_pair_params(lean_pair_combos(selected_majors()))


def _apply_schema(database):
    with database.connect() as conn:
        conn.execute(SCHEMA.read_text())


def _build(pub, sub, sub_major, conninfo_extra=None):
    """The lab's experiment set-up on a publisher/subscriber database pair; returns the module's arguments."""
    _apply_schema(pub)
    _apply_schema(sub)
    if not pub.scalar("SELECT count(*) FROM pg_publication WHERE pubname LIKE 'experiment%%'"):
        for publication in EXPERIMENT_PUBLICATIONS:
            tables = [t if isinstance(t, dict) else {"name": t} for t in publication.get("tables") or []]
            statement = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(publication["name"]))
            if tables:
                statement += sql.SQL(" FOR TABLE {}").format(
                    sql.SQL(", ").join(
                        sql.Identifier(*t["name"].split("."))
                        + (sql.SQL(" WHERE ({})").format(sql.SQL(t["where"])) if t.get("where") else sql.SQL(""))
                        for t in tables
                    )
                )
            pub.execute(statement)
    conninfo = pub.conninfo(**(conninfo_extra or {}))
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = false)").format(
            sql.Identifier(LAB_SUB),
            sql.Literal(conninfo),
            sql.SQL(", ").join(sql.Identifier(p) for p in SUBSCRIBED),
        )
    )
    publisher = pub.login_args()
    node = {
        **sub.login_args(),
        "name": NODE,
        "subscription": LAB_SUB,
        "slot_name": LAB_SUB,
        "container": "",
        "major": sub_major,
    }
    return {"publisher": publisher, "nodes": [node]}


@pytest.fixture
def lab(pg_pair, pg_pair_db):
    return _build(pg_pair_db.publisher, pg_pair_db.subscriber, pg_pair.subscriber.major)


def _run(args, steps, measures, **extra):
    return run_module("experiment_run", {**args, "steps": steps, "measures": measures, **extra}, timeout=900)


def test_large_transaction_spills_without_streaming_and_streams_with_it(pg_pair, pg_pair_db):
    """logical_decoding_work_mem = 64kB (in the walsender's connection options) and a 20k-row transaction."""
    args = _build(
        pg_pair_db.publisher,
        pg_pair_db.subscriber,
        pg_pair.subscriber.major,
        {"options": "-c logical_decoding_work_mem=64kB"},
    )
    measures = [
        "commit_visible_seconds",
        "spill_bytes",
        "spill_count",
        "stream_bytes",
        "stream_count",
        "catchup_seconds",
        "publisher_rows_per_second",
        "walsender_cpu_seconds",
        "subscriber_cpu_seconds",
        "heartbeat_lag_max_seconds",
        "byte_lag_max_bytes",
    ]
    steps = [{"step": "large_transaction", "id": "big", "rows": 20000}, {"step": "wait_caught_up"}]
    # CREATE SUBSCRIPTION's streaming default is parallel from PostgreSQL 18 on: switch it off explicitly.
    pg_pair_db.subscriber.execute(f"ALTER SUBSCRIPTION {LAB_SUB} SET (streaming = off)")
    off = _run(args, steps, measures, run={"experiment": "streaming", "variant": "no-streaming", "repetition": 1})
    m = off["measures"]
    assert m["spill_bytes"][NODE] > 64 * 1024, m
    assert m["spill_count"][NODE] >= 1
    assert m["stream_bytes"][NODE] == 0
    assert 0 < m["commit_visible_seconds"][NODE] < 60
    assert m["catchup_seconds"][NODE] >= 0
    assert m["publisher_rows_per_second"] > 0
    assert m["walsender_cpu_seconds"][NODE] > 0
    assert m["subscriber_cpu_seconds"][NODE] is None
    assert any("subscriber_cpu_seconds" in note for note in off["notes"])
    assert off["series"]["heartbeat_lag"][NODE], off["series"]
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.rows") == 20000
    assert pg_pair_db.subscriber.scalar("SELECT run FROM experiment.marker") == "streaming/no-streaming/1"

    pg_pair_db.subscriber.execute(f"ALTER SUBSCRIPTION {LAB_SUB} SET (streaming = on)")
    on = _run(args, steps, measures)
    m = on["measures"]
    assert m["stream_bytes"][NODE] > 0, m
    assert m["stream_count"][NODE] >= 1
    assert m["spill_bytes"][NODE] == 0
    assert 0 < m["commit_visible_seconds"][NODE] < 60
    # the run reset the tables first: exactly the second run's rows
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.rows") == 20000


@LEAN_PAIRS
def test_backlog_and_pause_measure_the_drain(lab, pg_pair_db):
    measures = [
        "apply_rows_per_second",
        "catchup_rate_ratio",
        "retained_wal_at_resume_bytes",
        "heartbeat_lag_max_seconds",
        "heartbeat_lag_median_seconds",
        "publisher_tps",
        "apply_error_count",
        "retained_wal_peak_bytes",
        "catchup_seconds",
    ]
    result = _run(lab, [{"step": "backlog", "rows": 3000, "batch": 10}, {"step": "wait_caught_up"}], measures)
    m = result["measures"]
    assert m["apply_rows_per_second"][NODE] > 0, result
    assert m["catchup_rate_ratio"][NODE] > 0
    assert m["retained_wal_at_resume_bytes"][NODE] > 0
    assert m["retained_wal_peak_bytes"][NODE] >= m["retained_wal_at_resume_bytes"][NODE] // 2
    assert m["publisher_tps"] > 0
    assert m["apply_error_count"][NODE] == 0
    whats = [e["what"] for e in result["events"]]
    assert f"subscription {LAB_SUB} disabled" in whats
    assert f"subscription {LAB_SUB} enabled" in whats

    steps = [
        {"step": "hum", "id": "load", "rate": 50, "duration": 6, "background": True},
        {"step": "sleep", "seconds": 1},
        {"step": "pause", "id": "pause", "seconds": 3},
        {"step": "wait_caught_up"},
    ]
    result = _run(lab, steps, measures)
    m = result["measures"]
    # the beats written while the subscription was disabled were >= 2.5 s old when it resumed
    assert m["heartbeat_lag_max_seconds"][NODE] >= 2.5, result
    assert m["apply_rows_per_second"][NODE] > 0, result
    assert m["catchup_rate_ratio"][NODE] > 0
    assert 40 <= m["publisher_tps"] <= 60
    assert pg_pair_db.subscriber.scalar("SELECT subenabled FROM pg_subscription WHERE subname = %s", [LAB_SUB])
    expected = pg_pair_db.publisher.scalar("SELECT count(*) FROM experiment.books")
    assert expected > 0
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.books") == expected


def test_initial_sync_and_copy_baseline(lab, pg_pair_db):
    measures = ["initial_sync_seconds", "baseline_copy_seconds", "sync_error_count"]
    result = _run(
        lab, [{"step": "initial_sync", "rows": 40000, "options": {"binary": True}}], measures, baseline="copy"
    )
    m = result["measures"]
    assert 0 < m["initial_sync_seconds"][NODE] < 120, result
    assert 0 < m["baseline_copy_seconds"][NODE] < 120
    assert not any("copied" in note for note in result["notes"]), result["notes"]
    sub = pg_pair_db.subscriber
    assert sub.scalar("SELECT count(*) FROM pg_subscription WHERE subname LIKE 'exp_sync_%'") == 0
    assert sub.scalar("SELECT count(*) FROM experiment.sync_1") == 0
    assert pg_pair_db.publisher.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'exp_%'") == 0
    assert pg_pair_db.publisher.scalar("SELECT count(*) FROM experiment.sync_4") == 10000
    if pg_pair_db.publisher.server.major < 16:
        assert any("binary = true does not make the initial COPY binary" in n for n in result["notes"])


@LEAN_PAIRS
def test_update_delete_apply_rate_with_replica_identity_full(lab, pg_pair_db):
    result = _run(
        lab,
        [{"step": "update_delete", "rows": 2000, "batch": 500}],
        ["apply_rows_per_second", "commit_visible_seconds"],
    )
    m = result["measures"]
    assert m["apply_rows_per_second"][NODE] > 0, result
    assert m["commit_visible_seconds"][NODE] > 0
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.rows_full") == 0


@LEAN_PAIRS
def test_burst_on_the_filtered_table(lab, pg_pair_db):
    pg_pair_db.publisher.execute("ALTER PUBLICATION experiment_filter_1 SET TABLE experiment.filtered WHERE (grp >= 0)")
    result = _run(
        lab,
        [{"step": "burst", "rows": 5000, "batch": 100, "table": "filtered"}, {"step": "wait_caught_up"}],
        ["publisher_rows_per_second", "publisher_tps", "walsender_cpu_seconds", "workload_seconds"],
    )
    m = result["measures"]
    assert m["publisher_rows_per_second"] > 0
    assert m["publisher_tps"] == pytest.approx(m["publisher_rows_per_second"] / 100, rel=0.01)
    assert m["walsender_cpu_seconds"][NODE] >= 0
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.filtered") == 5000

    # row_filter_cost's "not published" variant: the publisher's TRUNCATE does not reach the node any more,
    # the reset empties the node's table itself; the new rows stay on the publisher.
    pg_pair_db.publisher.execute("ALTER PUBLICATION experiment_filter_1 DROP TABLE experiment.filtered")
    result = _run(lab, [{"step": "burst", "rows": 1000, "batch": 100, "table": "filtered"}], ["publisher_tps"])
    assert result["measures"]["publisher_tps"] > 0
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM experiment.filtered") == 0
    assert pg_pair_db.publisher.scalar("SELECT count(*) FROM experiment.filtered") == 1000


@LEAN_PAIRS
def test_pgbench_at_a_fixed_rate(lab, pg_pair_db):
    schema = (REPO / "roles" / "publisher" / "files" / "schema" / "pgbench.sql").read_text()
    for database in (pg_pair_db.publisher, pg_pair_db.subscriber):
        with database.connect() as conn:
            conn.execute(schema)
    pg_pair_db.publisher.execute(
        "CREATE PUBLICATION bench_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history"
    )
    pg_pair_db.subscriber.execute(f"ALTER SUBSCRIPTION {LAB_SUB} ADD PUBLICATION bench_pub WITH (refresh = true)")
    # pgbench --rate schedules transactions as a Poisson process: over 8 s ~400 of them, so the measured rate's
    # spread is ~2.5 tps and 40-60 is 4 of those either way (over 4 s it was ~3.5 tps: 61.7 was seen once in CI).
    steps = [{"step": "pgbench", "duration": 8, "rate": 50, "init_scale": 1}, {"step": "wait_caught_up"}]
    result = _run(lab, steps, ["publisher_tps", "commit_visible_seconds", "catchup_seconds"])
    m = result["measures"]
    assert 40 <= m["publisher_tps"] <= 60, result
    assert m["commit_visible_seconds"][NODE] > 0
    assert any("initialised at scale 1" in note for note in result["notes"]), result["notes"]
    # the second run finds scale 1 and does not initialise again
    again = _run(lab, [{"step": "pgbench", "duration": 2, "rate": 50, "init_scale": 1}], ["publisher_tps"])
    assert not any("initialised" in note for note in again["notes"]), again["notes"]
    history = pg_pair_db.publisher.scalar("SELECT count(*) FROM pgbench_history")
    assert history > 100
    time.sleep(0.5)
    assert pg_pair_db.subscriber.scalar("SELECT count(*) FROM pgbench_history") == history


@LEAN_PAIRS
def test_check_mode_runs_nothing(lab, pg_pair_db):
    result = run_module("experiment_run", {**lab, "steps": [{"step": "burst", "rows": 10}], "measures": []}, check=True)
    assert result["changed"] is False
    assert result["measures"] == {}
    assert pg_pair_db.publisher.scalar("SELECT count(*) FROM experiment.rows") == 0


@LEAN_PAIRS
def test_unknown_step_parameter_fails_before_any_change(lab, pg_pair_db):
    pg_pair_db.publisher.execute("INSERT INTO experiment.rows VALUES (1, 1, 1, 'kept')")
    failed = run_module(
        "experiment_run", {**lab, "steps": [{"step": "burst", "rowz": 10}], "measures": []}, expect_fail=True
    )
    assert "rowz" in failed["msg"]
    assert pg_pair_db.publisher.scalar("SELECT count(*) FROM experiment.rows") == 1


def test_slot_limit_loses_the_slot_and_reports_it(pg_server_factory, pg_majors, pg_database_factory):
    """A private publisher (max_slot_wal_keep_size is server-wide) with a small limit and small WAL segments."""
    major = pg_majors[0]
    publisher = pg_server_factory(
        major, settings={"max_slot_wal_keep_size": "32MB", "max_wal_size": "64MB", "min_wal_size": "32MB"}
    )
    subscriber = pg_server_factory(major)
    pub = pg_database_factory(publisher, "pub")
    sub = pg_database_factory(subscriber, "sub")
    args = _build(pub, sub, major)
    measures = ["slot_lost_seconds", "retained_wal_peak_bytes", "commit_visible_seconds"]
    steps = [{"step": "slot_limit", "batch": 20000, "payload_bytes": 500, "max_rows": 1000000, "error_wait": 10}]
    result = _run(args, steps, measures)
    m = result["measures"]
    assert m["slot_lost_seconds"][NODE] > 0, result
    assert m["retained_wal_peak_bytes"][NODE] > 0
    whats = [e["what"] for e in result["events"] if e["node"] == NODE]
    transitions = [w for w in whats if w.startswith("wal_status")]
    assert transitions, whats
    assert transitions[-1].endswith("-> lost"), whats
    recovery = result["recovery"][NODE]
    assert recovery["slot"] == LAB_SUB
    assert recovery["subscription"] == LAB_SUB
    # PostgreSQL 15/16 say "cannot read from", 17+ "can no longer get changes from"; the reason is the same
    assert "exceeded the maximum reserved size" in (recovery["error"] or ""), recovery
    assert publisher.scalar("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", [LAB_SUB]) == "lost"


def test_container_sample_reads_docker_stats():
    """The probe's Docker reading (subscriber_cpu_seconds, subscriber_memory_peak_bytes) on a throwaway busy
    container of the lab's base image - never a lab container."""
    docker = pytest.importorskip("docker", reason="the docker SDK for Python is not installed")
    from ansible_collections.inventium.logical_replication.plugins.module_utils._experiment_steps import (
        container_sample,
    )

    client = docker.from_env(timeout=30)
    container = client.containers.run(
        "inventium/debian:bookworm",
        ["sh", "-c", "while :; do :; done"],
        detach=True,
        name=f"inventium-test-experiment-{uuid.uuid4().hex[:10]}",
        labels={"org.inventium.test": "test_experiment_run"},
        nano_cpus=200_000_000,
    )
    try:
        first_cpu, first_memory = container_sample(container)
        time.sleep(2)
        cpu, memory = container_sample(container)
    finally:
        container.remove(force=True)
    assert first_memory > 0
    assert memory > 0
    # limited to 0.2 CPU for 2 s: about 0.4 s of CPU time
    assert 0.1e9 < cpu - first_cpu < 1.0e9, (first_cpu, cpu)
