"""Waiting for a subscription's initial sync, with a fake catalog and a fake clock (no database)."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import subscription_sync as sync


def progress(pending=0, total=1, enabled=True, apply_running=True, apply_errors=0, sync_errors=0, tables=None):
    return {
        "enabled": enabled,
        "total": total,
        "pending": pending,
        "pending_tables": tables if tables is not None else [],
        "apply_running": apply_running,
        "apply_error_count": apply_errors,
        "sync_error_count": sync_errors,
    }


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def run(snapshots, timeout=300, major=17):
    clock = Clock()
    calls = []

    def query(statement, params):
        calls.append((statement, params))
        index = min(len(calls), len(snapshots)) - 1
        clock.now += 0.001  # each query costs a millisecond
        snap = snapshots[index]
        return [snap] if snap is not None else []

    result = sync.wait_for_sync(query, 16400, major, timeout, clock=clock, sleep=clock.sleep)
    return result, calls, clock


def test_state_names():
    assert [sync.state_name(c) for c in "idfsr"] == ["init", "data_copy", "finished_copy", "sync_done", "ready"]
    assert sync.state_name("x") == "x"


def test_poll_interval_grows_with_the_wait_and_is_bounded():
    assert sync.poll_interval(0) == sync.MIN_INTERVAL
    assert sync.poll_interval(2) == pytest.approx(0.1)
    assert sync.poll_interval(10) == pytest.approx(0.5)
    assert sync.poll_interval(3600) == sync.MAX_INTERVAL


def test_already_synced_is_one_query():
    result, calls, clock = run([progress()])
    assert result.synced
    assert result.polls == 1
    assert len(calls) == 1
    assert calls[0][1] == [16400]
    assert clock.sleeps == []


def test_waits_until_ready_and_apply_worker_runs():
    pending = progress(pending=1, tables=[{"schema": "public", "table": "t", "state": "d"}])
    snapshots = [pending] * 5 + [progress(apply_running=False), progress()]
    result, calls, clock = run(snapshots)
    assert result.synced
    assert result.polls == 7
    assert len(calls) == 7  # one query per poll
    assert all(s <= sync.MAX_INTERVAL for s in clock.sleeps)
    assert result.as_dict()["tables_not_ready"] == 0


def test_detection_latency_is_a_small_fraction_of_the_sync_time():
    """A sync that takes 20 s (simulated) is noticed within 5 % + one query of its end."""
    clock = Clock()
    finished_at = 20.0

    def query(_statement, _params):
        clock.now += 0.001
        return [progress() if clock.now >= finished_at else progress(pending=1)]

    result = sync.wait_for_sync(query, 1, 17, 300, clock=clock, sleep=clock.sleep)
    assert result.synced
    assert result.seconds - finished_at <= finished_at * sync.INTERVAL_FRACTION + 0.01
    assert result.polls < 150


def test_disabled_subscription_stops_at_once():
    result, _calls, _clock = run([progress(pending=1, enabled=False)])
    assert not result.synced
    assert result.reason == "the subscription is disabled"
    assert "disabled" in " ".join(result.evidence())


def test_gone_subscription_stops():
    result, _calls, _clock = run([None])
    assert not result.synced
    assert result.evidence() == ["the subscription no longer exists"]


def test_timeout_lists_tables_and_error_counts():
    tables = [{"schema": "public", "table": "a", "state": "i"}, {"schema": "Sales", "table": "b c", "state": "d"}]
    first = progress(pending=30, total=31, apply_running=False, sync_errors=2, tables=tables)
    last = progress(pending=30, total=31, apply_running=False, sync_errors=5, apply_errors=1, tables=tables)
    result, _calls, clock = run([first, last], timeout=5)
    assert not result.synced
    assert result.reason == "timed out after 5 s"
    assert clock.now >= 5
    evidence = result.evidence()
    assert evidence[0] == '30 of 31 tables not ready: public.a (init), "Sales"."b c" (data_copy) and 28 more'
    assert "the apply worker is not running" in evidence
    assert "table sync errors: 5 in pg_stat_subscription_stats.sync_error_count (3 while waiting)" in evidence
    assert "apply errors: 1 in pg_stat_subscription_stats.apply_error_count (1 while waiting)" in evidence


def test_queries_by_version():
    assert "worker_type = 'apply'" in sync.progress_query(17)
    assert "leader_pid IS NULL" in sync.progress_query(16)
    assert "pg_stat_subscription_stats" in sync.progress_query(15)
    assert "pg_stat_subscription_stats" not in sync.progress_query(14)
    assert sync.progress_query(17).count("%s") == 1


def test_table_entry():
    assert sync.table_entry("public", "books", "f", None) == {
        "name": "public.books",
        "state": "finished_copy",
        "lsn": None,
    }
