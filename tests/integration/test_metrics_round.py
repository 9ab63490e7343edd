"""The sampler's pipelined round (``_metrics.collect_round``) against real servers.

One pipeline carries every query of a tick; it must give what the single-query readers give, on a
publisher with an active slot and WAL sender and on a subscriber with a subscription, and a query
failing inside a pipeline must leave the connection usable for the next round.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest
from pg_harness import wait_until
from psycopg import sql

from ansible_collections.inventium.logical_replication.plugins.module_utils import (
    _catalog,
    _metrics,
    _slots,
    _subscriptions,
    connection,
)


def sampler_connection(db):
    return connection.connect({**db.login_args(), "connect_timeout": 10}, autocommit=True)


def single_readers(conn, major, size):
    """What the sampler's round collected before it was pipelined: one query per fact."""
    return {
        "locks": _metrics.collect_locks(conn, major),
        "activity": _metrics.collect_activity(conn, major),
        "database": _metrics.collect_database(conn, major, size=size),
        "checkpoints": _metrics.collect_checkpoints(conn, major),
        "senders": _metrics.collect_senders(conn, major),
        "slots": _slots.collect_slots(conn, major),
        "subscriptions": _subscriptions.collect_subscriptions(conn, major, conninfo=False)["subscriptions"],
    }


@pytest.fixture
def replicated(pg_pair_db):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    name = f"round_{secrets.token_hex(4)}"
    for db in (pub, sub):
        db.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
    pub.execute("INSERT INTO items SELECT i, 'x' FROM generate_series(1, 10) i")
    pub.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE items").format(sql.Identifier(name)))
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}").format(
            sql.Identifier(name), sql.Literal(pub.conninfo()), sql.Identifier(name)
        )
    )
    wait_until(
        lambda: (
            pub.server.scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'", [name]
            )
            and sub.scalar("SELECT count(*) FROM items") == 10
            # sync_done turns into ready a moment after the copy: the rounds below compare table states
            and sub.scalar("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'") == 0
        ),
        timeout=60,
        message=f"{name} streaming, copied and every table ready",
    )
    return pub, sub, name


def stable(facts):
    """The parts of a round that do not move between two reads a moment apart (no clocks, counters or lag)."""
    return {
        "locks": sorted(facts["locks"]),
        "activity": facts["activity"]["max_connections"],
        "database": (facts["database"]["database"], facts["database"]["size_bytes"] is None),
        "checkpoints": sorted(facts["checkpoints"]),
        "senders": sorted((s["application_name"], s["slot_name"], s["state"]) for s in facts["senders"]),
        "slots": sorted((s["name"], s["slot_type"], s["active"]) for s in facts["slots"]),
        "subscriptions": sorted(
            (s["name"], s["enabled"], tuple(sorted(s["table_states"].items()))) for s in facts["subscriptions"]
        ),
    }


@pytest.mark.parametrize("size", [True, False], ids=["with-size", "without-size"])
def test_the_pipelined_round_reads_what_the_single_queries_read(replicated, size):
    pub, sub, name = replicated
    for db in (pub, sub):
        with sampler_connection(db) as conn:
            major = conn.info.server_version // 10000
            pipelined = _metrics.collect_round(conn, major, size=size)
            single = single_readers(conn, major, size)
            assert set(pipelined) == set(single)
            for fact in single:
                assert type(pipelined[fact]) is type(single[fact]), fact
            assert stable(pipelined) == stable(single)
            assert pipelined["checkpoints"].keys() == single["checkpoints"].keys()
            assert pipelined["database"].keys() == single["database"].keys()
    with sampler_connection(pub) as conn:
        facts = _metrics.collect_round(conn, conn.info.server_version // 10000)
    assert [s["name"] for s in facts["slots"]] == [name]
    assert [s["application_name"] for s in facts["senders"]] == [name]
    assert facts["database"]["size_bytes"] > 0
    with sampler_connection(sub) as conn:
        facts = _metrics.collect_round(conn, conn.info.server_version // 10000)
    assert [s["name"] for s in facts["subscriptions"]] == [name]
    assert facts["subscriptions"][0]["table_states"] == {"ready": 1}


def test_a_failing_query_in_the_pipeline_leaves_the_connection_usable(pg_db):
    with sampler_connection(pg_db) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            _catalog.fetch_pipelined(conn, [("SELECT 1 AS one", None), ("SELECT 1 / 0 AS boom", None)])
        assert _catalog.fetch_pipelined(conn, [("SELECT 1 AS one", None), ("SELECT %s::int AS two", (2,))]) == [
            [{"one": 1}],
            [{"two": 2}],
        ]
        assert _metrics.collect_activity(conn, conn.info.server_version // 10000)["connections"] >= 1


HEARTBEAT_SQL = (Path(__file__).resolve().parents[2] / "roles/publisher/files/schema/heartbeat.sql").read_text()


def test_the_sampler_s_optional_pieces_ride_in_the_pipeline(pg_db):
    """The heartbeat (beat and read), the existence checks and the statements go in the round's pipeline; a
    failing piece undoes the whole pipeline, the beat included (one implicit transaction)."""
    pg_db.execute(HEARTBEAT_SQL)
    with sampler_connection(pg_db) as conn:
        major = conn.info.server_version // 10000
        pieces = {
            "beat": _metrics.heartbeat_beat_piece("pub"),
            "present": _metrics.HEARTBEAT_PRESENT_PIECE,
            "schema": _metrics.STATEMENTS_SCHEMA_PIECE,
        }
        facts = _metrics.collect_round(conn, major, size=False, extra=pieces)
        assert (facts["beat"], facts["present"], facts["schema"]) == (1, True, None)
        assert {"locks", "activity", "database", "checkpoints", "senders", "slots", "subscriptions"} < set(facts)
        facts = _metrics.collect_round(conn, major, size=False, extra={"read": _metrics.HEARTBEAT_READ_PIECE})
        assert [(row["node"], row["seq"]) for row in facts["read"]] == [("pub", 1)]
        failing = {"beat": _metrics.heartbeat_beat_piece("pub"), "boom": ("SELECT 1 / 0 AS boom", None, list)}
        with pytest.raises(psycopg.errors.DivisionByZero):
            _metrics.collect_round(conn, major, size=False, extra=failing)
        assert _metrics.collect_heartbeat(conn, major)[0]["seq"] == 1  # the failed pipeline's beat was undone
        assert _metrics.heartbeat_beat(conn, "pub") == 2  # and the connection is usable


def test_the_statements_piece_fails_when_the_extension_is_not_preloaded(pg_db):
    try:
        pg_db.execute("CREATE EXTENSION pg_stat_statements")
    except psycopg.Error as exc:  # a server built without contrib
        pytest.skip(f"pg_stat_statements is not available: {exc}")
    with sampler_connection(pg_db) as conn:
        major = conn.info.server_version // 10000
        schema = _metrics.statements_schema(conn)
        assert schema == "public"
        piece = _metrics.statements_piece(conn, schema)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            _metrics.collect_round(conn, major, size=False, extra={"statements": piece})
        assert _metrics.collect_round(conn, major, size=False)["activity"]["connections"] >= 1
