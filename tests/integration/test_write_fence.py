"""inventium.logical_replication.write_fence against real PostgreSQL servers.

The fence is judged by what the application sees: a session of the role that was open before the
fence is gone, a new one cannot INSERT (read_only) or cannot log in (nologin), and lifting the fence
puts the role back exactly (its setting and its comment as read from the catalogs). The last test is
the property the switchover relies on: a writer that keeps inserting (and reconnecting) while the fence
goes up has every row it was told was committed in the table, and no row is acknowledged after it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time

import psycopg
import pytest
from psycopg import sql
from support.ansible import run_module

MODULE = "write_fence"
READ_ONLY_ERROR = "cannot execute INSERT in a read-only transaction"


def args(db, roles, **kwargs):
    return {**db.login_args(), "roles": roles, **kwargs}


def role_conn(db, role, password):
    return psycopg.connect(
        host=db.server.host,
        port=db.server.port,
        user=role,
        password=password,
        dbname=db.name,
        autocommit=True,
        connect_timeout=5,
        application_name="fence-test-app",
    )


def role_facts(server, role):
    """What the fence may touch: the role-wide settings, rolcanlogin and the comment."""
    rows = server.execute(
        "SELECT (SELECT setconfig FROM pg_db_role_setting WHERE setrole = r.oid AND setdatabase = 0),"
        " r.rolcanlogin, shobj_description(r.oid, 'pg_authid') FROM pg_roles r WHERE r.rolname = %s",
        [role],
    )
    settings, can_login, comment = rows[0]
    return {"settings": settings, "can_login": can_login, "comment": comment}


@pytest.fixture
def make_role(pg_db):
    """``make_role(*options) -> (name, password)``: a login role with INSERT/SELECT on table ``t``; dropped after."""
    created = []
    pg_db.execute("CREATE TABLE IF NOT EXISTS t (id bigserial PRIMARY KEY, v text)")

    def factory(*options):
        name = f"fence_{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(12)
        extra = sql.SQL(" ").join(sql.SQL(o) for o in options)
        pg_db.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} {}").format(sql.Identifier(name), sql.Literal(password), extra)
        )
        created.append(name)
        pg_db.execute(sql.SQL("GRANT SELECT, INSERT ON t TO {}").format(sql.Identifier(name)))
        pg_db.execute(sql.SQL("GRANT USAGE ON SEQUENCE t_id_seq TO {}").format(sql.Identifier(name)))
        return name, password

    yield factory
    for name in created:
        pg_db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name])
        pg_db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        pg_db.server.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def assert_gone(conn):
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")


@pytest.mark.parametrize("previous", ["none", "off_and_comment"])
def test_read_only_fence_terminates_blocks_and_restores(pg_db, make_role, previous):
    role, password = make_role()
    ident = sql.Identifier(role)
    if previous == "off_and_comment":
        pg_db.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = off").format(ident))
        pg_db.execute(sql.SQL("COMMENT ON ROLE {} IS 'owned by: the billing team'").format(ident))
    initial = role_facts(pg_db.server, role)
    old = role_conn(pg_db, role, password)
    old.execute("INSERT INTO t (v) VALUES ('before')")
    old_pid = old.info.backend_pid

    result = run_module(MODULE, args(pg_db, [role]))
    assert result["changed"]
    assert result["fenced_at"]
    assert [r["name"] for r in result["roles"]] == [role]
    entry = result["roles"][0]
    assert entry["fenced"]
    assert entry["method"] == "read_only"
    assert entry["previous"] == {
        "default_transaction_read_only": None if previous == "none" else "off",
        "can_login": True,
    }
    assert [s["pid"] for s in result["terminated"]] == [old_pid]
    assert result["terminated"][0]["role"] == role
    assert result["terminated"][0]["database"] == pg_db.name
    assert_gone(old)

    fenced = role_facts(pg_db.server, role)
    assert "default_transaction_read_only=on" in fenced["settings"]
    record = json.loads(fenced["comment"])
    assert record["fence"] == "inventium.logical_replication.write_fence"
    assert record.get("previous_comment") == initial["comment"]

    with role_conn(pg_db, role, password) as new:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match=READ_ONLY_ERROR):
            new.execute("INSERT INTO t (v) VALUES ('fenced')")
        assert new.execute("SELECT count(*) FROM t").fetchone()[0] == 1

    again = run_module(MODULE, args(pg_db, [role]))
    assert not again["changed"]
    assert again["terminated"] == []
    assert again["roles"][0]["fenced_at"] == entry["fenced_at"]
    assert role_facts(pg_db.server, role) == fenced

    lifted = run_module(MODULE, args(pg_db, [role], state="unfenced"))
    assert lifted["changed"]
    assert lifted["unfenced_at"]
    assert role_facts(pg_db.server, role) == initial
    with role_conn(pg_db, role, password) as new:
        new.execute("INSERT INTO t (v) VALUES ('after')")
    assert pg_db.scalar("SELECT count(*) FROM t") == 2

    assert not run_module(MODULE, args(pg_db, [role], state="unfenced"))["changed"]


def test_fence_reports_old_sessions_without_terminating(pg_db, make_role):
    role, password = make_role()
    with role_conn(pg_db, role, password) as old:
        result = run_module(MODULE, args(pg_db, [role], terminate=False))
        assert result["changed"]
        assert result["terminated"] == []
        assert [s["pid"] for s in result["sessions_before_fence"]] == [old.info.backend_pid]
        old.execute("SELECT 1")  # still there
        # A second run with terminate ends the session that predates the fence, and changes nothing else.
        again = run_module(MODULE, args(pg_db, [role]))
        assert [s["pid"] for s in again["terminated"]] == [old.info.backend_pid]
        assert_gone(old)


def test_a_fence_lifted_by_hand_is_put_back_with_its_first_record(pg_db, make_role):
    role, password = make_role()
    initial = role_facts(pg_db.server, role)
    first = run_module(MODULE, args(pg_db, [role]))
    pg_db.execute(sql.SQL("ALTER ROLE {} RESET default_transaction_read_only").format(sql.Identifier(role)))
    again = run_module(MODULE, args(pg_db, [role]))
    assert again["changed"]
    assert again["roles"][0]["fenced_at"] == first["roles"][0]["fenced_at"]
    assert "default_transaction_read_only=on" in role_facts(pg_db.server, role)["settings"]
    with role_conn(pg_db, role, password) as new, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        new.execute("INSERT INTO t (v) VALUES ('fenced')")
    run_module(MODULE, args(pg_db, [role], state="unfenced"))
    assert role_facts(pg_db.server, role) == initial


def test_nologin_fence(pg_db, make_role):
    role, password = make_role()
    initial = role_facts(pg_db.server, role)
    result = run_module(MODULE, args(pg_db, [role], method="nologin"))
    assert result["changed"]
    assert result["roles"][0]["method"] == "nologin"
    assert role_facts(pg_db.server, role)["can_login"] is False
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        role_conn(pg_db, role, password)
    assert not run_module(MODULE, args(pg_db, [role], method="nologin"))["changed"]

    # The other method on a fenced role is refused: lift first.
    refused = run_module(MODULE, args(pg_db, [role]), expect_fail=True)
    assert "already fenced with method nologin" in refused["msg"]

    assert run_module(MODULE, args(pg_db, [role], state="unfenced"))["changed"]
    assert role_facts(pg_db.server, role) == initial
    with role_conn(pg_db, role, password) as new:
        new.execute("INSERT INTO t (v) VALUES ('back')")


def test_check_mode_changes_nothing_and_diff(pg_db, make_role):
    role, password = make_role()
    initial = role_facts(pg_db.server, role)
    with role_conn(pg_db, role, password) as old:
        result = run_module(MODULE, args(pg_db, [role]), check=True, diff=True)
        assert result["changed"]
        assert [s["pid"] for s in result["terminated"]] == [old.info.backend_pid]
        assert any(q.startswith("ALTER ROLE") for q in result["queries"])
        assert any("pg_terminate_backend" in q for q in result["queries"])
        assert result["diff"]["before"]["roles"][role] == {
            "fenced": False,
            "method": None,
            "default_transaction_read_only": None,
            "can_login": True,
        }
        assert result["diff"]["after"]["roles"][role] == {
            "fenced": True,
            "method": "read_only",
            "default_transaction_read_only": "on",
            "can_login": True,
        }
        old.execute("INSERT INTO t (v) VALUES ('still writable')")
    assert role_facts(pg_db.server, role) == initial

    run_module(MODULE, args(pg_db, [role]))
    fenced = role_facts(pg_db.server, role)
    check_lift = run_module(MODULE, args(pg_db, [role], state="unfenced"), check=True, diff=True)
    assert check_lift["changed"]
    assert check_lift["diff"]["after"]["roles"][role]["fenced"] is False
    assert role_facts(pg_db.server, role) == fenced
    run_module(MODULE, args(pg_db, [role], state="unfenced"))


@pytest.mark.parametrize("kind", ["superuser", "replication", "unknown"])
def test_refusals_apply_nothing(pg_db, make_role, kind):
    valid, _password = make_role()
    initial = role_facts(pg_db.server, valid)
    if kind == "unknown":
        bad = f"no_such_{secrets.token_hex(3)}"
        expected = f"role {bad} does not exist"
    else:
        bad, _password = make_role(kind.upper())
        expected = {"superuser": "is a superuser", "replication": "never fence the replication role"}[kind]
    result = run_module(MODULE, args(pg_db, [valid, bad]), expect_fail=True)
    assert expected in result["msg"]
    assert bad in result["msg"]
    assert not result.get("changed")
    assert role_facts(pg_db.server, valid) == initial
    if kind != "unknown":
        assert role_facts(pg_db.server, bad)["comment"] is None


def test_connected_user_is_refused(pg_db, make_role):
    role, password = make_role("CREATEROLE")
    other, _other_password = make_role()
    login = {**pg_db.login_args(), "login_user": role, "login_password": password}
    result = run_module(MODULE, {**login, "roles": [other, role]}, expect_fail=True)
    assert "is the user this module connects as" in result["msg"]
    assert role_facts(pg_db.server, other)["comment"] is None


def test_a_non_superuser_login_with_the_documented_privileges_can_fence(pg_db, make_role):
    """CREATEROLE, ADMIN OPTION on the roles (PostgreSQL 16+) and pg_signal_backend are enough (the module's notes)."""
    fencer, fencer_password = make_role("CREATEROLE")
    role, password = make_role()
    pg_db.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(fencer)))
    pg_db.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(role), sql.Identifier(fencer)))
    login = {**pg_db.login_args(), "login_user": fencer, "login_password": fencer_password}
    initial = role_facts(pg_db.server, role)
    with role_conn(pg_db, role, password) as old:
        result = run_module(MODULE, {**login, "roles": [role]})
        assert [s["pid"] for s in result["terminated"]] == [old.info.backend_pid]
        assert_gone(old)
    with role_conn(pg_db, role, password) as new, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        new.execute("INSERT INTO t (v) VALUES ('fenced')")
    assert run_module(MODULE, {**login, "roles": [role], "state": "unfenced"})["changed"]
    assert role_facts(pg_db.server, role) == initial


class Writer(threading.Thread):
    """An application that inserts in a loop with autocommit and reconnects whenever its session breaks."""

    def __init__(self, db, role, password):
        super().__init__(daemon=True)
        self.db, self.role, self.password = db, role, password
        self.acknowledged = 0
        self.refused = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = role_conn(self.db, self.role, self.password)
                conn.execute("INSERT INTO t (v) VALUES ('w')")
                self.acknowledged += 1
            except psycopg.errors.ReadOnlySqlTransaction:
                self.refused += 1
                time.sleep(0.01)
            except psycopg.OperationalError as exc:
                self.errors.append(str(exc).splitlines()[0])
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()


def test_fence_stops_a_writing_loop_without_losing_acknowledged_rows(pg_db, make_role):
    role, password = make_role()
    writer = Writer(pg_db, role, password)
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while writer.acknowledged < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.acknowledged >= 50, writer.errors
        result = run_module(MODULE, args(pg_db, [role]))
        assert len(result["terminated"]) == 1
        at_fence = writer.acknowledged
        refused_at_fence = writer.refused
        time.sleep(1.0)
        # Still trying, never acknowledged again.
        assert writer.refused > refused_at_fence
        assert writer.acknowledged == at_fence
    finally:
        writer.stop.set()
        writer.join(10)
    assert pg_db.scalar("SELECT count(*) FROM t") == writer.acknowledged
    run_module(MODULE, args(pg_db, [role], state="unfenced"))
