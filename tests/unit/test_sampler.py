"""The metrics sampler's own logic: buffer, backoff, ticks, points from collector output, configuration.

Line protocol escaping and batching belong to ``plugins/module_utils/_influx.py`` (tested with it).
The program is loaded from ``roles/sampler/files/inventium_sampler.py`` as the role deploys it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import socket

import pytest
from support.paths import load_sampler

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx

sampler = load_sampler("inventium_sampler")
TS = 1_700_000_000_000_000_000


def parse(lines):
    """``{(measurement, frozenset(tags)): fields_text}`` of line protocol without escapes (enough here)."""
    result = {}
    for text in lines:
        head, fields, ts = text.rsplit(" ", 2)
        assert int(ts) == TS
        measurement, *tags = head.split(",")
        result[(measurement, frozenset(tags))] = dict(f.split("=", 1) for f in fields.split(","))
    return result


# ----------------------------------------------------------------------------------------------
# Backoff and ticks
# ----------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = sampler.Backoff(initial=1, maximum=30)
    assert backoff.delay() == 0
    assert [backoff.fail() for _attempt in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.delay() == 0
    assert backoff.fail() == 1


def test_backoff_with_a_small_initial_delay():
    backoff = sampler.Backoff(initial=0.5, maximum=3)
    assert [backoff.fail() for _attempt in range(5)] == [0.5, 1, 2, 3, 3]


@pytest.mark.parametrize(
    ("now", "interval", "expected"),
    [(100.0, 1, 101), (100.2, 1, 101), (100.999, 1, 101), (101.0, 5, 105), (104.9, 5, 105), (10.1, 0.5, 10.5)],
)
def test_ticks_are_aligned_to_the_wall_clock(now, interval, expected):
    assert sampler.next_tick(now, interval) == pytest.approx(expected)


# ----------------------------------------------------------------------------------------------
# The bounded buffer
# ----------------------------------------------------------------------------------------------


def test_buffer_drops_the_oldest_points_when_full_and_counts_them():
    buffer = sampler.PointBuffer(3)
    buffer.add(["a", "b"])
    buffer.add(["c", "d", "e"])
    assert len(buffer) == 3
    assert buffer.dropped == 2
    assert buffer.take(10) == ["c", "d", "e"]
    assert len(buffer) == 0


def test_buffer_takes_in_batches_oldest_first():
    buffer = sampler.PointBuffer(10)
    buffer.add([str(i) for i in range(7)])
    assert buffer.take(3) == ["0", "1", "2"]
    assert buffer.take(3) == ["3", "4", "5"]
    assert buffer.take(3) == ["6"]
    assert buffer.take(3) == []


def test_points_put_back_stay_in_front_and_are_dropped_first_on_overflow():
    buffer = sampler.PointBuffer(4)
    buffer.add(["a", "b", "c"])
    batch = buffer.take(2)
    buffer.add(["d", "e"])  # newer points arrive while the write of a, b fails
    buffer.put_back(batch)  # 5 points for 4 places: "a" (the oldest) goes
    assert buffer.dropped == 1
    assert buffer.take(10) == ["b", "c", "d", "e"]


def test_buffer_needs_room():
    with pytest.raises(ValueError, match="at least one"):
        sampler.PointBuffer(0)


# ----------------------------------------------------------------------------------------------
# Errors: counted every time, logged once per problem, never a password
# ----------------------------------------------------------------------------------------------


def test_errors_are_counted_each_time_and_logged_once_per_problem(caplog):
    errors = sampler.ErrorCounter()
    with caplog.at_level(logging.WARNING, logger="inventium-sampler"):
        for _attempt in range(5):
            errors.record("subscriber2", "connect", "connection refused\nDETAIL: more")
        errors.record("subscriber2", "query", "canceling statement due to statement timeout")
        errors.ok("subscriber2")
        errors.ok("subscriber2")
        errors.record("subscriber2", "connect", "connection refused")
    assert errors.counts() == {("subscriber2", "connect"): 6, ("subscriber2", "query"): 1}
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "subscriber2: connect: connection refused",
        "subscriber2: query: canceling statement due to statement timeout",
        "subscriber2: recovered (was failing: query)",
        "subscriber2: connect: connection refused",
    ]


def test_error_messages_are_redacted(caplog):
    errors = sampler.ErrorCounter()
    with caplog.at_level(logging.WARNING, logger="inventium-sampler"):
        errors.record("publisher", "connect", "failed: host=db password=hunter2-secret user=x")
    assert "hunter2-secret" not in caplog.text
    assert "publisher: connect:" in caplog.text


def test_a_source_other_than_the_node_fails_and_recovers_separately():
    errors = sampler.ErrorCounter()
    assert errors.record("subscriber2", "docker", "gone", source="container:subscriber2")
    assert errors.record("subscriber2", "connect", "refused")
    assert errors.failing() == {"container:subscriber2": "docker", "subscriber2": "connect"}
    assert errors.ok("container:subscriber2")
    assert errors.failing() == {"subscriber2": "connect"}


# ----------------------------------------------------------------------------------------------
# Points from collector output (the shapes health.py's collectors return)
# ----------------------------------------------------------------------------------------------

PUBLISHER_FACTS = {
    "locks": {
        "AccessShareLock": {"lock_count": 3, "waiting_count": 0},
        "ExclusiveLock": {"lock_count": 1, "waiting_count": 1},
    },
    "activity": {
        "connections": 4,
        "active": 1,
        "idle": 3,
        "waiting_on_lock": 0,
        "max_connections": 100,
        "longest_transaction_seconds": 0.25,
    },
    "database": {"database": "publisher", "size_bytes": 7_798_119, "xact_commit": 61, "cache_hit_ratio": 0.97},
    "checkpoints": {"checkpoints_timed": 2, "checkpoints_requested": 1, "buffers_backend": None},
    "statements": {"statements": 10, "calls": 100, "mean_exec_time_ms": 0.5},
    "senders": [
        {
            "application_name": "subscriber1_sub",
            "slot_name": "subscriber1_sub",
            "state": "streaming",
            "sync_state": "async",
            "sent_lag_bytes": 0,
            "write_lag_bytes": 10,
            "flush_lag_bytes": 20,
            "replay_lag_bytes": 30,
            "write_lag_seconds": None,  # idle: PostgreSQL reports no time lag
            "flush_lag_seconds": None,
            "replay_lag_seconds": 0.002,
            "seconds_since_reply": 0.5,
        }
    ],
    "slots": [
        {
            "name": "subscriber1_sub",
            "slot_type": "logical",
            "active": True,
            "retained_wal_bytes": 4096,
            "confirmed_flush_lag_bytes": 56,
            "wal_status": "reserved",
            "safe_wal_size": None,
        },
        {
            "name": "gone_sub",
            "slot_type": "logical",
            "active": False,
            "retained_wal_bytes": 2**31,
            "confirmed_flush_lag_bytes": 2**31,
            "wal_status": "extended",
            "safe_wal_size": 1024,
        },
    ],
    "subscriptions": [],
}


def test_publisher_points():
    points = parse(sampler.node_points("publisher", PUBLISHER_FACTS, TS))
    assert points[("locks", frozenset({"mode=AccessShareLock", "node=publisher"}))] == {
        "lock_count": "3i",
        "waiting_count": "0i",
    }
    assert points[("locks", frozenset({"mode=ExclusiveLock", "node=publisher"}))]["waiting_count"] == "1i"
    assert points[("activity", frozenset({"node=publisher"}))]["longest_transaction_seconds"] == "0.25"
    database = points[("database", frozenset({"node=publisher", "database=publisher"}))]
    assert database == {"size_bytes": "7798119i", "xact_commit": "61i", "cache_hit_ratio": "0.97"}
    assert "buffers_backend" not in points[("checkpoints", frozenset({"node=publisher"}))]  # NULL on 17+
    assert points[("statements", frozenset({"node=publisher"}))]["mean_exec_time_ms"] == "0.5"
    replication = points[
        ("replication", frozenset({"node=publisher", "application_name=subscriber1_sub", "slot_name=subscriber1_sub"}))
    ]
    assert replication == {
        "sent_lag_bytes": "0i",
        "write_lag_bytes": "10i",
        "flush_lag_bytes": "20i",
        "replay_lag_bytes": "30i",
        "replay_lag_seconds": "0.002",
        "seconds_since_reply": "0.5",
        "state": '"streaming"',
        "sync_state": '"async"',
    }
    slot_tags = frozenset({"node=publisher", "slot_name=subscriber1_sub", "slot_type=logical"})
    active = points[("replication_slot", slot_tags)]
    assert active == {
        "active": "1i",
        "retained_wal_bytes": "4096i",
        "confirmed_flush_lag_bytes": "56i",
        "wal_status": '"reserved"',
    }
    inactive = points[("replication_slot", frozenset({"node=publisher", "slot_name=gone_sub", "slot_type=logical"}))]
    assert inactive["active"] == "0i"
    assert inactive["safe_wal_size"] == "1024i"
    assert not any(m == "subscription" for m, _tags in points)


NEW_SLOT_FIELDS = {"conflicting", "failover", "synced", "inactive_seconds", "invalidation_reason"}


def slot_points(slots):
    points = parse(sampler.node_points("node1", {"slots": slots}, TS))
    return {dict(tag.split("=", 1) for tag in tags)["slot_name"]: fields for (_m, tags), fields in points.items()}


def test_slot_sync_state_on_pg17_and_later():
    """A primary's failover slot in use, a standby's synchronized copy (inactive for 12.5 s) and an invalidated slot."""
    tick = TS / 1e9
    slots = [
        {"name": "in_use", "slot_type": "logical", "active": True, "conflicting": False, "failover": True},
        {"name": "copy", "slot_type": "logical", "active": False, "conflicting": False, "failover": True},
        {"name": "lost", "slot_type": "logical", "active": False, "conflicting": True, "failover": False},
        {"name": "physical", "slot_type": "physical", "active": True, "conflicting": None, "failover": False},
    ]
    extra = {
        "in_use": {"synced": False, "inactive_since": None, "invalidation_reason": None},
        "copy": {"synced": True, "inactive_since": _iso(tick - 12.5), "invalidation_reason": None},
        "lost": {"synced": False, "inactive_since": _iso(tick - 3600), "invalidation_reason": "rows_removed"},
        "physical": {"synced": False, "inactive_since": None, "invalidation_reason": None},
    }
    points = slot_points([{**slot, **extra[slot["name"]]} for slot in slots])
    assert points["in_use"] == {"active": "1i", "conflicting": "0i", "failover": "1i", "synced": "0i"}
    assert points["copy"] == {
        "active": "0i",
        "conflicting": "0i",
        "failover": "1i",
        "synced": "1i",
        "inactive_seconds": "12.5",
    }
    assert points["lost"]["conflicting"] == "1i"
    assert points["lost"]["inactive_seconds"] == "3600.0"
    assert points["lost"]["invalidation_reason"] == '"rows_removed"'
    assert points["physical"] == {"active": "1i", "failover": "0i", "synced": "0i"}  # conflicting is NULL there


def test_inactive_seconds_are_never_negative():
    """``inactive_since`` on the server's clock a little after the sampler's tick (clocks a few ms apart)."""
    slot = {"name": "s", "slot_type": "logical", "active": False, "inactive_since": _iso(TS / 1e9 + 0.2)}
    assert slot_points([slot])["s"]["inactive_seconds"] == "0.0"


def test_slots_of_pg15_have_no_sync_state_fields():
    """The slot columns of a PostgreSQL 15 server (no conflicting, failover, synced, inactive_since, ...)."""
    points = slot_points(PUBLISHER_FACTS["slots"])
    assert set(points) == {"subscriber1_sub", "gone_sub"}
    for fields in points.values():
        assert not NEW_SLOT_FIELDS & set(fields)
        assert "null" not in fields.values()
        assert "None" not in str(fields.values())


def test_a_pg16_slot_has_conflicting_only():
    slot = {"name": "s", "slot_type": "logical", "active": True, "conflicting": False, "retained_wal_bytes": 1}
    assert NEW_SLOT_FIELDS & set(slot_points([slot])["s"]) == {"conflicting"}


def _iso(epoch):
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def subscription(**overrides):
    state = {
        "name": "subscriber2_sub",
        "enabled": True,
        "apply_worker_pid": 4242,
        "apply_error_count": 0,
        "sync_error_count": 1,
        "table_states": {"ready": 2, "data is being copied": 1},
        "seconds_since_last_msg_receipt": 0.8,
    }
    state.update(overrides)
    return state


def test_subscriber_points_with_pg18_conflicts_and_heartbeat():
    conflicts = {"insert_exists": 2, "update_missing": 0}
    facts = {
        "subscriptions": [subscription(conflicts=conflicts)],
        "heartbeat": [{"node": "publisher", "lag_seconds": 1.25, "seq": 77}],
    }
    points = parse(sampler.node_points("subscriber2", facts, TS))
    assert points[("subscription", frozenset({"node=subscriber2", "subscription=subscriber2_sub"}))] == {
        "enabled": "1i",
        "worker_running": "1i",
        "apply_error_count": "0i",
        "sync_error_count": "1i",
        "tables_total": "3i",
        "tables_ready": "2i",
        "seconds_since_last_msg": "0.8",
        "paused": "0i",
        "pause_overdue_seconds": "0.0",
        "confl_insert_exists": "2i",
        "confl_update_missing": "0i",
    }
    assert points[("heartbeat_lag", frozenset({"node=subscriber2", "source=publisher"}))] == {
        "lag_seconds": "1.25",
        "seq": "77i",
    }


def test_an_estimated_heartbeat_lag_is_flagged():
    facts = {"heartbeat": [{"node": "publisher", "lag_seconds": 1.25, "seq": 77, "estimated": True}]}
    points = parse(sampler.node_points("subscriber2", facts, TS))
    assert points[("heartbeat_lag", frozenset({"node=subscriber2", "source=publisher"}))] == {
        "lag_seconds": "1.25",
        "seq": "77i",
        "estimated": "1i",
    }


# ----------------------------------------------------------------------------------------------
# Heartbeat lag: age of the oldest beat a node has not seen, from the sampler's own write times
# ----------------------------------------------------------------------------------------------


def beats_written(*beats, source="publisher", capacity=100):
    """A BeatLog of ``(seq, written_at)`` beats of ``source``."""
    log = sampler.BeatLog(capacity)
    for seq, written_at in beats:
        log.record(source, seq, written_at)
    return log


def row(seq, age=0.9, source="publisher"):
    """A heartbeat row as collect_heartbeat reads it: the newest beat seen and its age on the node's clock."""
    return {"node": source, "lag_seconds": age, "seq": seq}


def test_caught_up_reads_zero():
    log = beats_written((10, 100.0), (11, 101.0), (12, 102.0))
    lag = sampler.heartbeat_lag(row(12, age=0.97), "subscriber1", log, now=102.9)
    assert lag == {"node": "publisher", "lag_seconds": 0.0, "seq": 12, "estimated": False}


def test_behind_by_some_beats_reads_the_age_of_the_oldest_unseen():
    log = beats_written((10, 100.0), (11, 101.0), (12, 102.0), (13, 103.0))
    # Seen 10: beats 11, 12, 13 are missing; the oldest (11) was written at 101.0.
    assert sampler.heartbeat_lag(row(10), "subscriber1", log, now=103.25)["lag_seconds"] == pytest.approx(2.25)
    assert sampler.heartbeat_lag(row(12), "subscriber1", log, now=103.25)["lag_seconds"] == pytest.approx(0.25)


def test_a_beat_written_during_the_read_is_not_a_negative_lag():
    log = beats_written((12, 102.0), (13, 103.01))
    assert sampler.heartbeat_lag(row(12), "subscriber1", log, now=103.0)["lag_seconds"] == 0.0


def test_a_stalled_subscriber_grows_one_second_per_second():
    log = beats_written((50, 200.0))
    lags = []
    for second in range(1, 6):  # the publisher keeps beating, the subscriber stays at 50
        log.record("publisher", 50 + second, 200.0 + second)
        lag = sampler.heartbeat_lag(row(50), "subscriber1", log, now=200.5 + second)
        assert lag["estimated"] is False
        lags.append(lag["lag_seconds"])
    assert lags == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5])


def test_a_subscriber_ahead_of_the_log_is_caught_up():
    # The beat's answer is not recorded yet but the subscriber already has it.
    log = beats_written((12, 102.0))
    assert sampler.heartbeat_lag(row(13), "subscriber1", log, now=103.0)["lag_seconds"] == 0.0


@pytest.mark.parametrize(
    ("log", "seen", "why"),
    [
        (sampler.BeatLog(), 40, "the sampler has recorded no beat yet (it just started)"),
        (beats_written((41, 100.0), source="other"), 40, "beats of another publisher only"),
        (beats_written((45, 100.0), (46, 101.0)), 40, "the oldest unseen beat (41) was written before the log"),
        (beats_written((40, 99.0), (42, 101.0)), 40, "the oldest unseen beat (41) was never recorded"),
    ],
)
def test_an_unknown_write_time_falls_back_to_the_row_age_flagged(log, seen, why):
    lag = sampler.heartbeat_lag(row(seen, age=6.5), "subscriber1", log, now=101.5)
    assert lag == {"node": "publisher", "lag_seconds": 6.5, "seq": seen, "estimated": True}, why


def test_the_publishers_own_row_reads_zero():
    lag = sampler.heartbeat_lag(row(3, age=0.8), "publisher", sampler.BeatLog(), now=10.0)
    assert lag == {"node": "publisher", "lag_seconds": 0.0, "seq": 3, "estimated": False}


def test_the_beat_log_keeps_the_newest_beats_only():
    log = beats_written(*[(seq, 1000.0 + seq) for seq in range(1, 11)], capacity=4)
    assert len(log) == 4
    assert log.lag("publisher", 6, now=1010.0) == pytest.approx(3.0)  # beat 7, the oldest kept
    assert log.lag("publisher", 5, now=1010.0) is None  # beat 6 was dropped
    with pytest.raises(ValueError, match="at least one beat"):
        sampler.BeatLog(0)


def test_the_beat_log_starts_over_when_the_sequence_restarts():
    log = beats_written((500, 100.0), (501, 101.0))
    log.record("publisher", 1, 102.0)  # the heartbeat row was re-created
    assert len(log) == 1
    assert log.lag("publisher", 0, now=103.0) == pytest.approx(1.0)


def test_nodes_share_the_sampler_s_beat_log(tmp_path):
    document = {
        "postgresql": {
            "pub": {"kind": "publisher", "host": "h", "dbname": "d"},
            "sub": {"kind": "subscriber", "host": "h", "dbname": "d"},
        }
    }
    instance = sampler.Sampler(sampler.parse_config(document, str(tmp_path)), dry_run=True, out=io.StringIO())
    assert all(node.beats is instance.beats for node in instance.nodes)


class FakeServer:
    """What NodeSampler.collect gets from the server, without one: every piece of a round (``_metrics``'s
    ``(query, params, parse)`` triples) answered from Python, in the round's pipeline (``collect_round``) or
    on its own (``run_piece``). ``failing``: pieces whose query fails (a pipeline holding one fails whole)."""

    def __init__(self, monkeypatch, heartbeat=True, schema=None, failing=()):
        self.heartbeat, self.schema, self.failing = heartbeat, schema, set(failing)
        self.written = iter(range(8, 100))  # the beats' RETURNING seq
        self.seen = {"seq": 7}  # the newest beat a subscriber has
        self.pipelines = []  # the pieces of each pipeline sent (beside the tick's queries)
        self.alone = []  # the pieces run on their own
        monkeypatch.setattr(sampler._metrics, "collect_round", self.collect_round)
        monkeypatch.setattr(sampler._metrics, "run_piece", self.run_piece)
        monkeypatch.setattr(sampler._metrics, "statements_piece", lambda conn, schema: ("statements of", schema))

    def kind(self, piece):
        metrics = sampler._metrics
        if piece is metrics.HEARTBEAT_READ_PIECE:
            return "heartbeat_read"
        if piece is metrics.STATEMENTS_SCHEMA_PIECE:
            return "statements_schema"
        if piece is metrics.HEARTBEAT_PRESENT_PIECE:
            return "heartbeat_present"
        if piece[0] == "statements of":
            return "statements"
        assert piece[0] == metrics.HEARTBEAT_BEAT_QUERY
        return "heartbeat_beat"

    def answer(self, piece):
        kind = self.kind(piece)
        if kind in self.failing:
            raise RuntimeError(f"{kind} failed")
        return {
            "heartbeat_read": lambda: [row(self.seen["seq"], age=1.2)],
            "heartbeat_beat": lambda: next(self.written),
            "statements_schema": lambda: self.schema,
            "heartbeat_present": lambda: self.heartbeat,
            "statements": lambda: {"calls": 5},
        }[kind]()

    def collect_round(self, conn, major, size, extra=None):
        extra = extra or {}
        self.pipelines.append(sorted(self.kind(piece) for piece in extra.values()))
        answers = {fact: self.answer(piece) for fact, piece in extra.items()}  # one failure fails it all
        return {"database": {}, **answers}

    def run_piece(self, conn, piece):
        self.alone.append(self.kind(piece))
        return self.answer(piece)


class FakeConnection:
    closed = broken = False


def node_samplers(*kinds, beats=None, errors=None):
    beats = sampler.BeatLog() if beats is None else beats
    nodes = {}
    for name, kind in kinds:
        node = {"name": name, "kind": kind}
        errors_of = errors if errors is not None else sampler.ErrorCounter()
        nodes[name] = sampler.NodeSampler(node, dict(sampler.DEFAULTS), sampler.PointBuffer(10), errors_of, None, beats)
        nodes[name].conn, nodes[name].major = FakeConnection(), 16
    return nodes


def test_a_round_records_the_publishers_beat_and_reads_the_subscribers_lag(monkeypatch):
    """The wiring of NodeSampler.collect: the beat's RETURNING seq goes into the shared log, the subscriber's rows
    come out as lags against it (the round's pipeline is stubbed: it needs a server)."""
    server = FakeServer(monkeypatch)
    beats = sampler.BeatLog()
    nodes = node_samplers(("publisher", "publisher"), ("subscriber1", "subscriber"), beats=beats)

    facts = nodes["subscriber1"].collect(now=1000.0)
    assert facts["heartbeat"] == [{"node": "publisher", "lag_seconds": 1.2, "seq": 7, "estimated": True}]
    assert "heartbeat" not in nodes["publisher"].collect(now=1000.0)  # beat 8
    lag = nodes["subscriber1"].collect(now=1000.0)["heartbeat"][0]
    assert lag["estimated"] is False
    assert 0.0 <= lag["lag_seconds"] < 1.0  # beat 8, just written, is the oldest unseen
    server.seen["seq"] = 8
    assert nodes["subscriber1"].collect(now=1000.0)["heartbeat"][0]["lag_seconds"] == 0.0
    nodes["publisher"].collect(now=1000.0)  # beat 9
    assert len(beats) == 2


def test_the_heartbeat_and_statements_ride_in_the_round_s_pipeline(monkeypatch):
    server = FakeServer(monkeypatch, schema="public")
    node = node_samplers(("publisher", "publisher"))["publisher"]
    facts = node.collect(now=1000.0)
    # The first round of a connection asks whether the table and the extension exist on their own ...
    assert sorted(server.alone) == ["heartbeat_present", "statements_schema"]
    # ... and sends everything else in one pipeline: the tick's queries, the beat and the statements.
    assert server.pipelines == [["heartbeat_beat", "statements"]]
    assert facts["statements"] == {"calls": 5}
    assert len(node.beats) == 1
    node.collect(now=1001.0)
    assert server.pipelines[-1] == ["heartbeat_beat", "statements"]
    assert len(server.alone) == 2  # nothing on its own after the first round


def test_the_existence_checks_ride_in_the_pipeline_and_answer_for_the_next_round(monkeypatch):
    server = FakeServer(monkeypatch, heartbeat=False)
    node = node_samplers(("subscriber1", "subscriber"))["subscriber1"]
    assert "heartbeat" not in node.collect(now=1000.0)  # no table yet
    assert server.pipelines == [[]]
    server.heartbeat = True  # the table is created
    node.collect(now=1000.0 + sampler.HEARTBEAT_RECHECK_SECONDS)
    assert server.pipelines[-1] == ["heartbeat_present"]  # the recheck, in the round's pipeline
    facts = node.collect(now=1001.0 + sampler.HEARTBEAT_RECHECK_SECONDS)
    assert server.pipelines[-1] == ["heartbeat_read"]
    assert facts["heartbeat"][0]["seq"] == 7
    node.collect(now=1000.0 + sampler.STATEMENTS_RECHECK_SECONDS)
    assert server.pipelines[-1] == ["heartbeat_present", "heartbeat_read", "statements_schema"]
    assert sorted(server.alone) == ["heartbeat_present", "statements_schema"]  # the first round's only


def test_a_failing_piece_costs_only_its_own_measurement(monkeypatch, caplog):
    """The pipeline is one transaction: a failing heartbeat undoes the whole round, which is read again without
    it; the heartbeat is counted as failed and left out until its next check, the statements are kept."""
    server = FakeServer(monkeypatch, schema="public", failing={"heartbeat_beat"})
    errors = sampler.ErrorCounter()
    node = node_samplers(("publisher", "publisher"), errors=errors)["publisher"]
    with caplog.at_level(logging.WARNING, logger="inventium-sampler"):
        facts = node.collect(now=1000.0)
    assert server.pipelines == [["heartbeat_beat", "statements"], []]  # the failed one, then the tick's alone
    assert server.alone[-2:] == ["statements", "heartbeat_beat"]
    assert facts["statements"] == {"calls": 5}
    assert "database" in facts
    assert errors.counts() == {("publisher", "heartbeat"): 1}
    assert "heartbeat_beat failed" in caplog.text
    assert len(node.beats) == 0
    node.collect(now=1001.0)
    assert server.pipelines[-1] == ["statements"]  # the heartbeat is off until its next check
    server.failing.clear()
    node.collect(now=1000.0 + sampler.HEARTBEAT_RECHECK_SECONDS)
    assert server.pipelines[-1] == ["heartbeat_present", "statements"]
    node.collect(now=1001.0 + sampler.HEARTBEAT_RECHECK_SECONDS)
    assert server.pipelines[-1] == ["heartbeat_beat", "statements"]
    assert len(node.beats) == 1
    assert errors.failing() == {}  # the heartbeat recovered


def test_a_round_that_fails_without_optional_pieces_raises(monkeypatch):
    server = FakeServer(monkeypatch, heartbeat=False)
    node = node_samplers(("subscriber1", "subscriber"))["subscriber1"]
    node.collect(now=1000.0)

    def broken(conn, major, size, extra=None):
        raise RuntimeError("statement timeout")

    monkeypatch.setattr(sampler._metrics, "collect_round", broken)
    with pytest.raises(RuntimeError, match="statement timeout"):
        node.collect(now=1001.0)
    assert server.pipelines == [[]]


def test_rounds_take_turns_and_wait_for_each_other_at_most_the_turn_s_wait():
    turn = sampler.Turn(0.05)
    with turn.take() as waited:
        assert waited < 0.05
        with turn.take() as second:  # the turn is held: the second goes ahead after the wait
            assert second >= 0.05
    with turn.take() as third:  # released once, not twice: the next takes it at once
        assert third < 0.05
        with turn.take() as fourth:
            assert fourth >= 0.05


def test_a_round_writes_its_duration_and_its_wait_for_the_turn(monkeypatch):
    FakeServer(monkeypatch, heartbeat=False)
    node = node_samplers(("subscriber1", "subscriber"))["subscriber1"]
    node.turn = sampler.Turn(0.01)
    with node.turn.take():
        node.round(TS / 1e9)
    (line,) = [line for line in node.sink.take(100) if line.startswith("sampler_round,")]
    fields = parse([line])[("sampler_round", frozenset({"node=subscriber1"}))]
    assert float(fields["turn_wait_ms"]) >= 10.0
    assert float(fields["duration_ms"]) < 10.0  # the round's own time: the wait for the turn is not in it
    assert fields["points"].endswith("i")


def test_disabled_subscription_before_pg15_has_no_error_counts():
    facts = {
        "subscriptions": [
            subscription(
                enabled=False,
                apply_worker_pid=None,
                apply_error_count=None,
                sync_error_count=None,
                seconds_since_last_msg_receipt=None,
                table_states={},
            )
        ]
    }
    points = parse(sampler.node_points("old", facts, TS))
    assert len(points) == 1
    fields = next(iter(points.values()))
    assert fields == {
        "enabled": "0i",
        "worker_running": "0i",
        "tables_total": "0i",
        "tables_ready": "0i",
        "paused": "0i",  # disabled, but without a pause record: not a planned pause
        "pause_overdue_seconds": "0.0",
    }


def test_a_paused_subscription_and_how_long_past_its_plan():
    record = '{"paused_by":"ops","reason":"maintenance","since":"2026-01-01T00:00:00Z","until":"2026-01-01T01:00:00Z"}'
    facts = {"subscriptions": [subscription(enabled=False, apply_worker_pid=None, comment=record)]}
    fields = next(iter(parse(sampler.node_points("s", facts, TS)).values()))
    assert fields["paused"] == "1i"
    assert float(fields["pause_overdue_seconds"]) > 0  # 2026-01-01T01:00Z is long past
    facts["subscriptions"][0]["enabled"] = True  # a record left behind on an enabled subscription: not paused
    fields = next(iter(parse(sampler.node_points("s", facts, TS)).values()))
    assert fields["paused"] == "0i"
    assert fields["pause_overdue_seconds"] == "0.0"


def test_nothing_collected_gives_no_points():
    assert sampler.node_points("n", {}, TS) == []
    assert sampler.node_points("n", {"heartbeat": [{"node": "p", "lag_seconds": None, "seq": None}]}, TS) == []


def test_every_point_is_tagged_with_its_node():
    lines = sampler.node_points("publisher", PUBLISHER_FACTS, TS)
    assert lines
    assert all(",node=publisher" in text.split(" ")[0] for text in lines)


# ----------------------------------------------------------------------------------------------
# Container stats (Docker API documents)
# ----------------------------------------------------------------------------------------------


def docker_stats(total, system, pre_total=0, pre_system=0, usage=50_000_000, inactive=10_000_000):
    return {
        "cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": pre_total}, "system_cpu_usage": pre_system},
        "memory_stats": {"usage": usage, "limit": 100_000_000, "stats": {"inactive_file": inactive}},
        "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 50}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 8192},
                {"major": 8, "minor": 16, "op": "Read", "value": 1},
            ]
        },
        "pids_stats": {"current": 7},
    }


def test_container_fields_from_a_streamed_sample():
    fields = sampler.container_fields(docker_stats(2_000, 20_000, 1_000, 10_000))
    assert fields == {
        "cpu_percent": pytest.approx(20.0),  # 1000 of 10000 system ticks on 2 CPUs
        "online_cpus": 2,
        "memory_usage_bytes": 40_000_000,  # usage minus the inactive page cache, as `docker stats`
        "memory_limit_bytes": 100_000_000,
        "memory_percent": pytest.approx(40.0),
        "net_rx_bytes": 101,
        "net_tx_bytes": 52,
        "block_read_bytes": 4097,
        "block_write_bytes": 8192,
        "pids": 7,
    }


def test_one_shot_samples_take_cpu_from_the_previous_sample():
    first = docker_stats(1_000, 10_000)
    assert sampler.container_fields(first)["cpu_percent"] is None
    fields = sampler.container_fields(docker_stats(1_500, 20_000), previous=first)
    assert fields["cpu_percent"] == pytest.approx(10.0)


def test_a_stopped_container_has_no_fields():
    stopped = {"cpu_stats": {"cpu_usage": {"total_usage": 0}}, "precpu_stats": {}, "memory_stats": {}}
    assert sampler.container_fields(stopped) is None


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------

ENDPOINTS = {
    "postgresql": {
        "publisher": {
            "kind": "publisher",
            "host": "127.0.0.1",
            "port": 5432,
            "dbname": "publisher",
            "user": "postgres",
            "password_file": "secrets/publisher-postgres",
            "service": "publisher",
        },
        "subscriber1": {
            "kind": "subscriber",
            "host": "127.0.0.1",
            "port": "5433",
            "dbname": "subscriber",
            "user": "postgres",
            "password_file": "/abs/sub1",
        },
    },
    "influxdb": {
        "url": "http://127.0.0.1:8086",
        "api": 1,
        "database": "pglab",
        "username": "u",
        "password_file": "secrets/influxdb",
    },
    "docker": {"containers": ["subscriber1", "influxdb"]},
    "service_file": "pg_service.conf",
}


def test_lab_endpoints_are_parsed_and_relative_files_resolved(tmp_path):
    config = sampler.parse_config(ENDPOINTS, str(tmp_path))
    publisher, subscriber = config["nodes"]
    assert publisher == {
        "name": "publisher",
        "kind": "publisher",
        "host": "127.0.0.1",
        "port": 5432,
        "dbname": "publisher",
        "user": "postgres",
        "password_file": str(tmp_path / "secrets" / "publisher-postgres"),
        "sslmode": None,
        "sslrootcert": None,
    }
    assert subscriber["port"] == 5433
    assert subscriber["password_file"] == "/abs/sub1"
    assert config["influxdb"]["password_file"] == str(tmp_path / "secrets" / "influxdb")
    assert config["containers"] == ["subscriber1", "influxdb"]
    assert config["docker_socket"] == "/var/run/docker.sock"
    assert config["settings"]["interval"] == 1.0


def test_config_file_with_sampler_settings(tmp_path):
    document = {**ENDPOINTS, "sampler": {"interval": 5, "buffer_points": 10}}
    del document["docker"]
    path = tmp_path / "sampler.json"
    path.write_text(json.dumps(document))
    config = sampler.load_config(str(path))
    assert config["settings"]["interval"] == 5
    assert config["settings"]["buffer_points"] == 10
    assert config["containers"] == []
    args = sampler.build_parser().parse_args(["--config", str(path), "--interval", "2", "--no-containers"])
    assert sampler.settings_from_args(config, args)["settings"]["interval"] == 2.0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "no 'postgresql' nodes"),
        ({"postgresql": {"a": {"host": "h", "dbname": "d", "kind": "standby"}}}, "publisher or subscriber"),
        ({"postgresql": {"a": {"dbname": "d"}}}, "missing host"),
        ({"postgresql": {"a": {"host": "h", "dbname": "d", "password": "x"}}}, "password_file"),
        ({"postgresql": {"a": {"host": "h", "dbname": "d", "port": "many"}}}, "port must be a number"),
        ({"postgresql": {"a": {"host": "h", "dbname": "d"}}, "docker": {"containers": "x"}}, "list of container"),
        ({"postgresql": {"a": {"host": "h", "dbname": "d"}}, "sampler": {"intervall": 1}}, "unknown sampler"),
    ],
)
def test_bad_configurations_are_refused(document, message):
    with pytest.raises(sampler.ConfigError, match=message):
        sampler.parse_config(document)


def test_unreadable_configuration(tmp_path):
    with pytest.raises(sampler.ConfigError, match="cannot read"):
        sampler.load_config(str(tmp_path / "missing.json"))


def test_a_non_positive_interval_is_refused(tmp_path):
    config = sampler.parse_config(ENDPOINTS, str(tmp_path))
    args = sampler.build_parser().parse_args(["--endpoints", "x", "--interval", "0"])
    with pytest.raises(sampler.ConfigError, match="positive"):
        sampler.settings_from_args(config, args)


# ----------------------------------------------------------------------------------------------
# Writing while InfluxDB is unreachable (a real client against a closed port)
# ----------------------------------------------------------------------------------------------


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_points_are_kept_bounded_and_counted_while_influxdb_is_unreachable(tmp_path, caplog):
    config = sampler.parse_config({**ENDPOINTS, "sampler": {"buffer_points": 5, "batch_size": 2}}, str(tmp_path))
    client = influx.InfluxClient(f"http://127.0.0.1:{closed_port()}", api=1, database="pglab", timeout=1)
    run = sampler.Sampler(config, client)
    run.buffer.add([f"m,node=n v={i}i {TS}" for i in range(4)])
    with caplog.at_level(logging.WARNING, logger="inventium-sampler"):
        run.flush()
        assert len(run.buffer) == 4
        assert run.retry_at > 0
        run.buffer.add([f"m,node=n v={i}i {TS}" for i in range(4, 7)])
        run.flush()  # within the backoff: no attempt
        run.flush(final=True)  # the final flush always tries
    assert run.buffer.take(10) == [f"m,node=n v={i}i {TS}" for i in range(2, 7)]
    assert run.buffer.dropped == 2
    assert run.errors.counts() == {("sampler", "influxdb"): 2}
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
    status = run.status_points(TS)
    assert any(text.startswith("sampler_errors,kind=influxdb,node=sampler count=2i") for text in status)
    assert any("kind=buffer" in text and "dropped_points=2i" in text for text in status)


def test_dry_run_prints_the_points(tmp_path):
    out = io.StringIO()
    run = sampler.Sampler(sampler.parse_config(ENDPOINTS, str(tmp_path)), dry_run=True, out=out)
    run.buffer.add(["a v=1i", "b v=2i"])
    run.flush()
    assert out.getvalue() == "a v=1i\nb v=2i\n"
    assert run.written == 2
