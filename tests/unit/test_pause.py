"""Pause and resume: the WAL budget's arithmetic, the pause record, the paused/overdue findings (no database)."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _pause
from ansible_collections.inventium.logical_replication.plugins.module_utils._pause import (
    check_paused,
    compute_budget,
    format_pause_record,
    guard_settings,
    make_pause_record,
    parse_pause_record,
    pause_until,
)

MB = 1024**2
GB = 1024**3
UTC = datetime.timezone.utc  # noqa: UP017 - the collection's code runs on Python < 3.11 too
NOW = datetime.datetime(2026, 12, 4, 16, 0, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------
# budget arithmetic
# ----------------------------------------------------------------------------------------------


def test_budget_limited_by_the_smaller_headroom_with_the_arithmetic():
    # keep size 2 GB, 512 MB retained -> 1.5 GB; disk 10 GB - 1 GB reserve -> 9 GB; rate 1 MB/s
    budget = compute_budget(MB, retained=512 * MB, keep_size=2 * GB, disk_free=10 * GB, reserve=GB, planned_minutes=20)
    assert budget["headrooms"] == {"max_slot_wal_keep_size": 1536 * MB, "disk": 9 * GB}
    assert budget["limited_by"] == "max_slot_wal_keep_size"
    assert budget["hold"] == "limited"
    assert budget["hold_seconds"] == pytest.approx(1536)
    assert budget["fits"] is True  # 20 min = 1200 s < 1536 s
    text = "\n".join(budget["lines"])
    assert f"{2 * GB} - {512 * MB} = {1536 * MB} bytes" in text
    assert "= 1536 s" in text
    assert "limited by max_slot_wal_keep_size" in text


def test_budget_refuses_a_pause_longer_than_the_hold_time():
    budget = compute_budget(MB, retained=0, keep_size=None, disk_free=2 * GB, reserve=GB, planned_minutes=30)
    assert budget["limited_by"] == "disk"
    assert budget["hold_seconds"] == pytest.approx(1024)
    assert budget["fits"] is False
    assert any("DOES NOT FIT" in line for line in budget["lines"])
    assert any("-1 (unlimited)" in line for line in budget["lines"])


def test_budget_prefers_postgresqls_safe_wal_size():
    budget = compute_budget(1000.0, retained=100, keep_size=10 * MB, safe_wal_size=5000, disk_free=None)
    assert budget["headrooms"] == {"max_slot_wal_keep_size": 5000}
    assert budget["hold_seconds"] == pytest.approx(5.0)
    assert budget["fits"] is None  # no planned pause


def test_budget_rate_zero_is_unlimited_by_rate():
    budget = compute_budget(0.0, retained=0, keep_size=GB, disk_free=None, disk_reason="not here", planned_minutes=600)
    assert budget["hold"] == "unlimited"
    assert budget["hold_seconds"] is None
    assert budget["fits"] is True
    assert any("unlimited by rate" in line for line in budget["lines"])
    assert any("unknown (not here)" in line for line in budget["lines"])


def test_budget_without_any_bound_is_unknown_and_refuses():
    budget = compute_budget(
        MB, retained=0, keep_size=None, disk_free=None, disk_reason="cannot read", planned_minutes=1
    )
    assert budget["hold"] == "unknown"
    assert budget["limited_by"] is None
    assert budget["fits"] is False


def test_budget_headroom_never_negative():
    budget = compute_budget(MB, retained=3 * GB, keep_size=2 * GB, disk_free=100, reserve=GB, planned_minutes=1)
    assert budget["headrooms"] == {"max_slot_wal_keep_size": 0, "disk": 0}
    assert budget["hold_seconds"] == 0
    assert budget["fits"] is False


def test_guard_settings_by_version():
    settings, lines = guard_settings(17, retained=100 * MB, disk_free=10 * GB, reserve=GB, planned_minutes=30)
    assert settings == {"max_slot_wal_keep_size": f"{9 * 1024 + 100}MB"}
    assert len(lines) == 1
    settings, lines = guard_settings(18, retained=0, disk_free=2 * GB, reserve=GB, planned_minutes=30)
    assert settings == {"max_slot_wal_keep_size": "1024MB", "idle_replication_slot_timeout": "45min"}
    settings, lines = guard_settings(18, retained=0, disk_free=None, reserve=GB, planned_minutes=None)
    assert settings == {}
    assert "cannot be computed" in lines[0]


def test_pg_wal_free_without_a_readable_directory(tmp_path):
    assert _pause.pg_wal_free(None)["free_bytes"] is None
    missing = _pause.pg_wal_free(str(tmp_path / "nope"))
    assert missing["free_bytes"] is None
    assert "cannot read" in missing["reason"]


def test_pg_wal_free_refuses_another_hosts_directory(tmp_path):
    (tmp_path / "pg_wal").mkdir()
    # postmaster.pid names a process that is not our "backend"'s parent: not this server's host.
    (tmp_path / "postmaster.pid").write_text("1\n")
    other = _pause.pg_wal_free(str(tmp_path), backend_pid=os.getpid())
    assert other["free_bytes"] is None
    assert "not running on this host" in other["reason"]
    # Our parent as the "postmaster": measured, through the symlink-free real path.
    (tmp_path / "postmaster.pid").write_text(f"{os.getppid()}\n")
    mine = _pause.pg_wal_free(str(tmp_path), backend_pid=os.getpid())
    assert mine["free_bytes"] > 0
    assert mine["path"] == os.path.realpath(tmp_path / "pg_wal")


def test_measure_wal_rate_divides_bytes_by_time():
    class Cursor:
        def __init__(self, rows):
            self.rows = rows

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, query, params=None):
            self.row = self.rows.pop(0)

        def fetchone(self):
            return self.row

    class Conn:
        rows = [{"lsn": "0/1000000"}, {"lsn": "0/1A00000", "bytes": 10 * MB}]

        def cursor(self, row_factory=None):
            return Cursor(self.rows)

    ticks = iter([100.0, 110.0])
    sample = _pause.measure_wal_rate(Conn(), 10, sleep=lambda s: None, clock=lambda: next(ticks))
    assert sample["bytes"] == 10 * MB
    assert sample["bytes_per_second"] == pytest.approx(MB)
    assert sample["start_lsn"] == "0/1000000"


# ----------------------------------------------------------------------------------------------
# the record
# ----------------------------------------------------------------------------------------------


def test_record_round_trip():
    record = make_pause_record("alice", "disk swap", NOW, NOW + datetime.timedelta(hours=1))
    text = format_pause_record(record)
    assert json.loads(text) == {
        "paused_by": "alice",
        "reason": "disk swap",
        "since": "2026-12-04T16:00:00Z",
        "until": "2026-12-04T17:00:00Z",
    }
    assert parse_pause_record(text) == record


def test_record_keeps_a_previous_comment_and_other_zones():
    record = make_pause_record("bob", "x", "2026-12-04T17:00:00+01:00", previous_comment="my note")
    assert record["since"] == "2026-12-04T16:00:00Z"
    assert "until" not in record
    assert parse_pause_record(format_pause_record(record))["previous_comment"] == "my note"


@pytest.mark.parametrize(
    "comment",
    [
        None,
        "",
        "Leadership books",
        "{broken",
        "[1, 2]",
        '{"paused_by": "a", "reason": "b"}',
        '{"paused_by": "a", "reason": "b", "since": "yesterday"}',
        '{"paused_by": "a", "reason": "b", "since": "2026-12-04T16:00:00Z", "until": "soon"}',
        '{"paused_by": 1, "reason": "b", "since": "2026-12-04T16:00:00Z"}',
    ],
)
def test_not_a_record(comment):
    assert parse_pause_record(comment) is None


def test_naive_times_are_utc():
    assert parse_pause_record('{"paused_by":"a","reason":"b","since":"2026-12-04T16:00:00"}')["since"] == (
        "2026-12-04T16:00:00Z"
    )


def test_pause_until():
    assert pause_until(NOW) is None
    assert pause_until(NOW, minutes=90) == NOW + datetime.timedelta(minutes=90)
    assert pause_until(NOW, until="2026-12-05T00:00:00Z", minutes=90) == datetime.datetime(2026, 12, 5, tzinfo=UTC)


# ----------------------------------------------------------------------------------------------
# findings
# ----------------------------------------------------------------------------------------------


def sub(name="s2", enabled=False, comment=None, slot_name=None):
    return {"name": name, "enabled": enabled, "slot_name": slot_name or name, "comment": comment}


def record_text(minutes_ago=10, until_in=None, reason="upgrade"):
    since = NOW - datetime.timedelta(minutes=minutes_ago)
    until = NOW + datetime.timedelta(minutes=until_in) if until_in is not None else None
    return format_pause_record(make_pause_record("alice", reason, since, until))


def test_paused_subscription_is_info_with_since_why_until():
    found = check_paused([sub(comment=record_text(10, until_in=20))], NOW)
    assert [f["code"] for f in found] == ["subscription_paused"]
    only = found[0]
    assert only["severity"] == "info"
    assert "since 2026-12-04T15:50:00Z (10 min ago)" in only["message"]
    assert "by alice: upgrade" in only["message"]
    assert "planned until 2026-12-04T16:20:00Z" in only["message"]
    assert "resume.yml" in only["hint"]


def test_overdue_pause_warns():
    found = check_paused([sub(comment=record_text(90, until_in=-30))], NOW)
    codes = {f["code"]: f for f in found}
    assert set(codes) == {"subscription_paused", "pause_overdue"}
    assert codes["pause_overdue"]["severity"] == "warning"
    assert "30 min ago" in codes["pause_overdue"]["message"]
    assert "risk of forgetting" in codes["pause_overdue"]["message"]


def test_pause_without_until_is_never_overdue():
    found = check_paused([sub(comment=record_text(60 * 24 * 7))], NOW)
    assert [f["code"] for f in found] == ["subscription_paused"]


def test_not_paused_subscriptions_give_nothing():
    subs = [
        sub("a", enabled=True, comment=record_text()),  # enabled again by hand: not paused
        sub("b", enabled=False, comment=None),  # disabled without a record: subscription_disabled's business
        sub("c", enabled=False, comment="a note"),
    ]
    assert check_paused(subs, NOW) == []


def test_slot_facts_give_retained_wal_and_time_to_the_limit():
    slots = [{"name": "s2", "retained_wal_bytes": 300 * MB, "safe_wal_size": 600 * MB, "wal_status": "extended"}]
    found = check_paused([sub(comment=record_text())], NOW, slot_facts=slots, wal_rate=MB)
    message = found[0]["message"]
    assert "retains 300.0 MB of WAL" in message
    assert "600.0 MB to max_slot_wal_keep_size (about 10 min at 1.0 MB/s)" in message
    assert len(found) == 1


def test_slot_facts_lost_gone_and_unlimited():
    comment = record_text()
    lost = check_paused([sub(comment=comment)], NOW, slot_facts={"s2": {"retained_wal_bytes": 0, "wal_status": "lost"}})
    assert "LOST" in lost[0]["message"]
    assert [(f["severity"], f["code"]) for f in lost] == [
        ("info", "subscription_paused"),
        ("error", "paused_slot_lost"),
    ]
    assert "Re-synchronise" in lost[1]["hint"]
    gone = check_paused([sub(comment=comment)], NOW, slot_facts=[])
    assert "GONE" in gone[0]["message"]
    assert gone[1]["code"] == "paused_slot_lost"
    unlimited = check_paused(
        [sub(comment=comment)], NOW, slot_facts=[{"name": "s2", "retained_wal_bytes": MB, "safe_wal_size": None}]
    )
    assert "only the disk limits it" in unlimited[0]["message"]


def test_format_duration():
    assert _pause.format_duration(None) == "unlimited"
    assert _pause.format_duration(59) == "59 s"
    assert _pause.format_duration(3600 * 3 + 60) == "3 h 1 min"
    assert _pause.format_duration(86400 * 3) == "3 d"


def test_lsn_to_int():
    assert _pause.lsn_to_int("1/0") == 1 << 32
    assert _pause.lsn_to_int("0/16B3748") == 0x16B3748
    assert _pause.lsn_to_int(None) is None
