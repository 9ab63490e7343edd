"""inventium.logical_replication.application_writes against a real PostgreSQL server.

The module is the application of the upgrade rehearsal: it must count exactly what the server
acknowledged, keep writing through a fence (retrying, as an application does), follow its route file,
and fail - naming the node - when an acknowledged row is not where it must be.
"""

from __future__ import annotations

import secrets
import threading
import time

import pytest
from pg_harness import selected_majors
from psycopg import sql
from support.ansible import run_module

MODULE = "application_writes"
SCHEMA = "CREATE SCHEMA shop; CREATE TABLE shop.orders (id bigserial PRIMARY KEY, note text NOT NULL)"


@pytest.fixture
def app_dbs(pg_server_factory, pg_database_factory):
    """Two databases with shop.orders on a private server, and a role ``app_writer`` that may write both."""
    server = pg_server_factory(min(selected_majors()), name="appwrites")
    password = secrets.token_urlsafe(16)
    dbs = [pg_database_factory(server, name) for name in ("one", "two")]
    dbs[0].execute(sql.SQL("CREATE ROLE app_writer LOGIN PASSWORD {}").format(sql.Literal(password)))
    for db in dbs:
        db.execute(SCHEMA)
        db.execute("GRANT USAGE ON SCHEMA shop TO app_writer")
        db.execute("GRANT SELECT, INSERT ON shop.orders TO app_writer")
        db.execute("GRANT USAGE ON SEQUENCE shop.orders_id_seq TO app_writer")
    return server, dbs, password


def node(name, db, password):
    return {
        "name": name,
        "host": db.server.host,
        "port": db.server.port,
        "dbname": db.name,
        "user": "app_writer",
        "password": password,
    }


def notes(db, run_id):
    return {
        row[0]: row[1]
        for row in db.execute("SELECT id, note FROM shop.orders WHERE note LIKE %s", [f"rehearsal-{run_id}-%"])
    }


def later(seconds, action):
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_follows_the_route_and_writes_through_a_fence(app_dbs, tmp_path):
    """Two names for the same database, so every row is on "both"; a fence in the middle costs only time."""
    _server, (db, _second), password = app_dbs
    route, stop = tmp_path / "route", tmp_path / "stop"

    def fence():
        db.execute("ALTER ROLE app_writer SET default_transaction_read_only = on")
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app_writer'")

    def unfence_and_repoint():
        db.execute("ALTER ROLE app_writer RESET default_transaction_read_only")
        route.write_text("new\n")

    timers = [later(0.6, fence), later(1.4, unfence_and_repoint), later(2.2, stop.touch)]
    try:
        result = run_module(
            MODULE,
            {
                "nodes": [node("old", db, password), node("new", db, password)],
                "table": "shop.orders",
                "route_file": str(route),
                "stop_file": str(stop),
                "run_id": "t1",
                "settle_timeout": 5,
            },
        )
    finally:
        for timer in timers:
            timer.join()
    rows = notes(db, "t1")
    assert result["changed"] is True
    assert result["acknowledged"] == len(rows)  # every acknowledged row, and no other, is in the table
    assert set(result["acknowledged_by_node"]) == {"old", "new"}
    assert (
        sum(1 for note in rows.values() if note.startswith("rehearsal-t1-new-"))
        == result["acknowledged_by_node"]["new"]
    )
    assert result["errors"].get("old: ReadOnlySqlTransaction", 0) > 0
    assert 0.6 < result["longest_gap_seconds"] < 2.0  # the fence lasted 0.8 s
    assert result["lost"] == 0
    assert [n["node"] for n in result["nodes"]] == ["old", "new"]
    assert all(n["rows"] == len(rows) and n["missing"] == 0 for n in result["nodes"])
    assert password not in str(dict(result))


def test_fails_when_an_acknowledged_row_is_missing_on_a_node(app_dbs, tmp_path):
    """Two databases without replication between them: what was written to one is lost on the other."""
    _server, (one, two), password = app_dbs
    result = run_module(
        MODULE,
        {
            "nodes": [node("one", one, password), node("two", two, password)],
            "table": "shop.orders",
            "route_file": str(tmp_path / "none"),  # missing: the first node
            "stop_file": str(tmp_path / "stop"),
            "run_id": "t2",
            "max_seconds": 0.5,
            "settle_timeout": 0.5,
        },
        expect_fail=True,
    )
    assert result["acknowledged"] > 0
    assert result["acknowledged_by_node"] == {"one": result["acknowledged"]}
    assert result["lost"] == result["acknowledged"]
    by_node = {n["node"]: n for n in result["nodes"]}
    assert by_node["one"]["missing"] == 0
    assert by_node["two"]["missing"] == result["acknowledged"]
    assert "acknowledged writes missing" in result["msg"]
    assert "two " + str(result["acknowledged"]) in result["msg"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run_id": "has-dash"}, "run_id: letters, digits and _ only"),
        ({"twice": True}, "each name once"),
        ({"table": "a.b.c"}, "too many dotted parts"),
        ({"extra": {"hostname": "x"}}, "nodes[0]: needs a name and only the keys"),
    ],
)
def test_bad_input_writes_nothing(app_dbs, tmp_path, change, message):
    _server, (db, _second), password = app_dbs
    nodes = [dict(node("old", db, password), **change.pop("extra", {}))] * (2 if change.pop("twice", False) else 1)
    args = {
        "nodes": nodes,
        "table": "shop.orders",
        "route_file": str(tmp_path / "r"),
        "stop_file": str(tmp_path / "s"),
        "run_id": "t3",
        **change,
    }
    result = run_module(MODULE, args, expect_fail=True)
    assert message in result["msg"]
    assert db.scalar("SELECT count(*) FROM shop.orders") == 0


def test_check_mode_writes_nothing(app_dbs, tmp_path):
    _server, (db, _second), password = app_dbs
    started = time.monotonic()
    result = run_module(
        MODULE,
        {
            "nodes": [node("old", db, password)],
            "table": "shop.orders",
            "route_file": str(tmp_path / "r"),
            "stop_file": str(tmp_path / "s"),
            "run_id": "t4",
        },
        check=True,
    )
    assert result["changed"] is False
    assert result["acknowledged"] == 0
    assert time.monotonic() - started < 30  # it did not write for max_seconds
    assert db.scalar("SELECT count(*) FROM shop.orders") == 0
