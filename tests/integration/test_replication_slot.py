"""inventium.logical_replication.replication_slot against real PostgreSQL servers, run through Ansible.

Every scenario asserts the real ``pg_replication_slots`` state read here with plain SQL: created /
dropped, check mode changes nothing, ``--diff`` shows the definition, a second run is a no-op.
Active slots are made active by real consumers: ``pg_recvlogical`` started as a subprocess (it
reconnects on its own, like a real client) and a real subscription.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from pg_harness import wait_until
from psycopg import sql
from support.ansible import run_module

MODULE = "replication_slot"


def unique(prefix="s"):
    return f"{prefix}_{secrets.token_hex(4)}"


def created_logical(name, plugin="pgoutput"):
    """The statement the module records for creating a logical slot."""
    return f"SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot('{name}', '{plugin}')"  # noqa: S608


def created_physical(name):
    return f"SELECT lsn::text FROM pg_catalog.pg_create_physical_replication_slot('{name}')"  # noqa: S608


def args(db, **kwargs):
    return {**db.login_args(), **kwargs}


def slot(server, name):
    """The slot as pg_replication_slots shows it (version-independent subset), or None."""
    extra = ", two_phase" if server.major >= 14 else ", NULL"
    extra += ", failover" if server.major >= 17 else ", NULL"
    rows = server.execute(
        sql.SQL(
            "SELECT slot_type, plugin::text, database::text, active, active_pid, restart_lsn::text {}"
            " FROM pg_replication_slots WHERE slot_name = %s"
        ).format(sql.SQL(extra)),
        [name],
    )
    if not rows:
        return None
    slot_type, plugin, database, active, pid, restart_lsn, two_phase, failover = rows[0]
    return {
        "slot_type": slot_type,
        "plugin": plugin,
        "database": database,
        "active": active,
        "active_pid": pid,
        "restart_lsn": restart_lsn,
        "two_phase": two_phase,
        "failover": failover,
    }


def all_slots(server):
    return {r[0]: slot(server, r[0]) for r in server.execute("SELECT slot_name FROM pg_replication_slots")}


def definition(server, name):
    """What the module could change about a slot. A consumer that is attached (pg_recvlogical in the
    active-slot tests) confirms positions as WAL is written, so restart_lsn of an active slot moves
    without anyone touching the slot: compared only for inactive slots."""
    state = slot(server, name)
    if not state:
        return None
    moving = ("active", "active_pid", "restart_lsn") if state["active"] else ("active", "active_pid")
    return {k: v for k, v in state.items() if k not in moving}


@pytest.fixture
def drop_slots(pg_server):
    """Names appended to the yielded list are dropped after the test (physical slots have no database)."""
    names = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            pid = pg_server.scalar("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", [name])
            if pid:
                pg_server.execute("SELECT pg_terminate_backend(%s)", [pid])
            pg_server.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [name]
            )


def converge(server, params, login):
    """check mode (changes nothing) -> apply with --diff -> no-op re-run. Returns the applying result."""
    before = all_slots(server)
    checked = run_module(MODULE, {**login, **params}, check=True, diff=True)
    assert checked["changed"] is True
    assert all_slots(server) == before, "check mode changed pg_replication_slots"
    applied = run_module(MODULE, {**login, **params}, diff=True)
    assert applied["changed"] is True
    assert checked["queries"] == applied["queries"]
    assert checked["diff"] == applied["diff"]
    again = run_module(MODULE, {**login, **params}, diff=True)
    assert again["changed"] is False
    assert again["queries"] == []
    assert again["diff"]["before"] == again["diff"]["after"] == applied["diff"]["after"]
    return applied


def fail(server, params, login):
    """Run expecting a failure; assert pg_replication_slots did not change (except activity)."""
    before = {name: definition(server, name) for name in all_slots(server)}
    result = run_module(MODULE, {**login, **params}, expect_fail=True)
    assert {name: definition(server, name) for name in all_slots(server)} == before
    assert server.password not in result.output
    return result


# ----------------------------------------------------------------------------------------------
# consumers that make a slot active
# ----------------------------------------------------------------------------------------------


def recvlogical_binary():
    found = shutil.which("pg_recvlogical")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_recvlogical"), reverse=True):
        return str(candidate)
    pytest.skip("pg_recvlogical is not installed (postgresql-client)")
    return None


@contextlib.contextmanager
def recvlogical(db, slot_name):
    """``pg_recvlogical --start`` on the slot (reconnecting every 5 s like a real client), until the block ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.Popen(
        [recvlogical_binary(), "-d", db.conninfo(), "--slot", slot_name, "--start", "-f", "/dev/null", "-s", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        wait_until(
            lambda: (slot(db.server, slot_name) or {}).get("active") or proc.poll() is not None,
            timeout=30,
            message=f"pg_recvlogical to use slot {slot_name}",
        )
        if proc.poll() is not None:
            pytest.fail(f"pg_recvlogical exited: {proc.stderr.read().decode(errors='replace')}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ----------------------------------------------------------------------------------------------
# creation and state
# ----------------------------------------------------------------------------------------------


def test_create_logical_slot_with_defaults(pg_db):
    name = unique()
    server = pg_db.server
    result = converge(server, {"name": name}, pg_db.login_args())
    assert result["queries"] == [created_logical(name)]
    state = slot(server, name)
    assert (state["slot_type"], state["plugin"], state["database"], state["active"]) == (
        "logical",
        "pgoutput",
        pg_db.name,
        False,
    )
    assert state["two_phase"] is (False if server.major >= 14 else None)
    returned = result["slot"]
    assert returned["name"] == name
    assert returned["plugin"] == "pgoutput"
    assert returned["database"] == pg_db.name
    assert returned["restart_lsn"] == state["restart_lsn"]
    assert returned["confirmed_flush_lsn"]
    assert returned["wal_status"] == "reserved"
    assert isinstance(returned["retained_wal_bytes"], int)
    assert returned["retained_wal_bytes"] >= 0
    assert returned["active"] is False
    assert returned["active_pid"] is None
    assert "safe_wal_size" in returned
    assert result["diff"] == {
        "before": {},
        "after": {
            "name": name,
            "slot_type": "logical",
            "plugin": "pgoutput",
            "database": pg_db.name,
            "two_phase": False if server.major >= 14 else None,
            "failover": False if server.major >= 17 else None,
        },
    }
    if server.major >= 16:
        assert returned["conflicting"] is False
    if server.major >= 17:
        assert returned["failover"] is False
        assert returned["synced"] is False
        assert returned["invalidation_reason"] is None
        assert returned["inactive_since"]  # an unused slot is inactive since its creation
    else:
        assert "failover" not in returned
        assert "inactive_since" not in returned
    # retained WAL grows as WAL is written
    pg_db.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 20000) g")
    later = run_module(MODULE, args(pg_db, name=name))
    assert later["changed"] is False
    assert later["slot"]["retained_wal_bytes"] > returned["retained_wal_bytes"]


def test_database_option(pg_db, pg_server):
    name = unique()
    login = pg_server.login_args("postgres")
    result = converge(pg_server, {"name": name, "database": pg_db.name, "plugin": "test_decoding"}, login)
    assert slot(pg_server, name)["database"] == pg_db.name
    assert slot(pg_server, name)["plugin"] == "test_decoding"
    assert result["slot"]["database"] == pg_db.name


def test_physical_slot(pg_server, drop_slots):
    name = unique("phys")
    drop_slots.append(name)
    login = pg_server.login_args("postgres")
    result = converge(pg_server, {"name": name, "slot_type": "physical"}, login)
    assert result["queries"] == [created_physical(name)]
    state = slot(pg_server, name)
    assert (state["slot_type"], state["plugin"], state["database"]) == ("physical", None, None)
    assert result["slot"]["slot_type"] == "physical"
    assert result["slot"]["retained_wal_bytes"] is None  # no WAL reserved until a standby connects
    # absent drops it (whatever the type); then absent is a no-op
    gone = run_module(MODULE, {**login, "name": name, "state": "absent"}, diff=True)
    assert gone["changed"] is True
    assert gone["diff"]["after"] == {}
    assert slot(pg_server, name) is None
    assert run_module(MODULE, {**login, "name": name, "state": "absent"})["changed"] is False


def test_absent_check_mode_and_diff(pg_db):
    name = unique()
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    params = args(pg_db, name=name, state="absent")
    checked = run_module(MODULE, params, check=True, diff=True)
    assert checked["changed"] is True
    assert slot(pg_db.server, name) is not None
    result = run_module(MODULE, params, diff=True)
    assert result["changed"] is True
    assert result["queries"] == [f"SELECT pg_catalog.pg_drop_replication_slot('{name}')"]
    assert result["diff"]["before"]["plugin"] == "pgoutput"
    assert result["slot"] == {}
    assert slot(pg_db.server, name) is None
    assert run_module(MODULE, params)["changed"] is False


# ----------------------------------------------------------------------------------------------
# drift and recreate
# ----------------------------------------------------------------------------------------------


def test_drift_fails_naming_the_difference_then_recreate(pg_db, pg_database_factory):
    name = unique()
    server = pg_db.server
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [name])
    original = definition(server, name)

    result = fail(server, {"name": name}, pg_db.login_args())
    assert "plugin is test_decoding (wanted pgoutput)" in result["msg"]
    assert "recreate" in result["msg"]
    assert result["differences"] == ["plugin is test_decoding (wanted pgoutput)"]

    other = pg_database_factory(server, "other")
    result = fail(server, {"name": name, "plugin": "test_decoding"}, other.login_args())
    assert f"database is {pg_db.name} (wanted {other.name})" in result["msg"]

    result = fail(server, {"name": name, "slot_type": "physical"}, pg_db.login_args())
    assert "slot_type is logical (wanted physical)" in result["msg"]

    params = {"name": name, "recreate": True}
    result = converge(server, params, pg_db.login_args())
    assert result["queries"] == [
        f"SELECT pg_catalog.pg_drop_replication_slot('{name}')",
        created_logical(name),
    ]
    assert any("re-created" in w for w in result["warnings"])
    assert definition(server, name)["plugin"] == "pgoutput"
    assert result["diff"]["before"]["plugin"] == "test_decoding"
    assert result["diff"]["after"]["plugin"] == "pgoutput"
    assert original["plugin"] == "test_decoding"


def test_recreate_with_missing_plugin_keeps_the_old_slot(pg_db):
    name = unique()
    pg_db.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [name])
    result = fail(pg_db.server, {"name": name, "plugin": "no_such_plugin", "recreate": True}, pg_db.login_args())
    assert "no_such_plugin" in result["msg"]
    assert result["sqlstate"] == "58P01"
    assert definition(pg_db.server, name)["plugin"] == "pgoutput"
    assert pg_db.server.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'inventium_check%'") == 0


def test_missing_plugin_creates_nothing(pg_db):
    name = unique()
    result = fail(pg_db.server, {"name": name, "plugin": "no_such_plugin"}, pg_db.login_args())
    assert result["sqlstate"] == "58P01"
    assert "ERROR 58P01" in result["msg"]
    assert slot(pg_db.server, name) is None


@pytest.mark.min_pg(14)
def test_two_phase(pg_db):
    name = unique()
    server = pg_db.server
    result = converge(server, {"name": name, "two_phase": True}, pg_db.login_args())
    assert slot(server, name)["two_phase"] is True
    assert result["slot"]["two_phase"] is True
    assert "twophase => true" in result["queries"][0]
    # not given: not compared
    assert run_module(MODULE, args(pg_db, name=name))["changed"] is False
    result = fail(server, {"name": name, "two_phase": False}, pg_db.login_args())
    assert "two_phase is true (wanted false)" in result["msg"]


@pytest.mark.min_pg(17)
def test_failover(pg_db):
    name = unique()
    server = pg_db.server
    result = converge(server, {"name": name, "failover": True, "two_phase": True}, pg_db.login_args())
    state = slot(server, name)
    assert (state["failover"], state["two_phase"]) == (True, True)
    assert result["slot"]["failover"] is True
    assert result["slot"]["synced"] is False
    # failover with another difference is not changed in place: fails naming both, changes nothing
    result = fail(server, {"name": name, "failover": False, "plugin": "test_decoding"}, pg_db.login_args())
    assert "failover is true (wanted false)" in result["msg"]
    assert "plugin is pgoutput (wanted test_decoding)" in result["msg"]
    # recreate for another plugin keeps the unmanaged failover/two_phase values
    result = run_module(MODULE, args(pg_db, name=name, plugin="test_decoding", recreate=True))
    state = slot(server, name)
    assert (state["plugin"], state["failover"], state["two_phase"]) == ("test_decoding", True, True)


def position(server, name):
    return server.execute(
        "SELECT restart_lsn::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [name]
    )[0]


@pytest.mark.min_pg(17)
def test_failover_changed_in_place_keeps_the_position(pg_db):
    """ALTER_REPLICATION_SLOT on a replication connection: no drop/create, no recreate needed."""
    name = unique()
    server = pg_db.server
    run_module(MODULE, args(pg_db, name=name))
    pg_db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")  # WAL after the slot's position
    kept = position(server, name)
    for wanted in (True, False):
        result = converge(server, {"name": name, "failover": wanted}, pg_db.login_args())
        assert result["queries"] == [f'ALTER_REPLICATION_SLOT "{name}" ( FAILOVER {str(wanted).lower()} )']
        assert slot(server, name)["failover"] is wanted
        assert result["slot"]["failover"] is wanted
        assert result["diff"]["after"]["failover"] is wanted
        assert position(server, name) == kept, "the slot was re-created"


@pytest.mark.min_pg(17)
def test_failover_in_place_on_an_active_slot_needs_terminate_active(pg_db):
    name = unique()
    server = pg_db.server
    run_module(MODULE, args(pg_db, name=name, plugin="test_decoding"))
    with recvlogical(pg_db, name):
        pid = slot(server, name)["active_pid"]
        result = fail(server, {"name": name, "plugin": "test_decoding", "failover": True}, pg_db.login_args())
        assert f"is active (used by PID {pid}" in result["msg"]
        assert "terminate_active" in result["msg"]
        assert slot(server, name)["failover"] is False
        params = args(pg_db, name=name, plugin="test_decoding", failover=True, terminate_active=True)
        result = run_module(MODULE, params)
        assert result["changed"] is True
        assert result["queries"][0].startswith("SELECT pg_catalog.pg_terminate_backend(")
        assert result["queries"][-1] == f'ALTER_REPLICATION_SLOT "{name}" ( FAILOVER true )'
        assert slot(server, name)["failover"] is True


@pytest.mark.min_pg(17)
def test_failover_in_place_needs_a_replication_role(pg_db):
    """A login without REPLICATION cannot open the walsender session: the module fails, nothing changes."""
    name = unique()
    server = pg_db.server
    run_module(MODULE, args(pg_db, name=name))
    role = unique("r")
    password = secrets.token_urlsafe(12)
    server.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        login = {**pg_db.login_args(), "login_user": role, "login_password": password}
        result = run_module(MODULE, {**login, "name": name, "failover": True}, expect_fail=True)
        assert "needs a replication connection" in result["msg"]
        assert "nothing was changed" in result["msg"]
        assert password not in result.output
        assert slot(server, name)["failover"] is False
    finally:
        server.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_version_gated_options(pg_db):
    major = pg_db.server.major
    cases = []
    if major < 14:
        cases.append(({"two_phase": True}, "two_phase requires PostgreSQL >= 14"))
    if major < 17:
        cases.append(({"failover": True}, "failover requires PostgreSQL >= 17"))
    if not cases:
        pytest.skip(f"PostgreSQL {major} has every feature of the module")
    for params, expected in cases:
        name = unique()
        result = fail(pg_db.server, {"name": name, **params}, pg_db.login_args())
        assert expected in result["msg"]
        assert f"(server is {major})" in result["msg"]
        assert slot(pg_db.server, name) is None
    # false is what such a server has anyway: accepted
    name = unique()
    result = run_module(MODULE, args(pg_db, name=name, failover=False))
    assert result["changed"] is True


# ----------------------------------------------------------------------------------------------
# active slots
# ----------------------------------------------------------------------------------------------


def test_active_slot_is_not_dropped_unless_terminate_active(pg_db):
    name = unique()
    server = pg_db.server
    run_module(MODULE, args(pg_db, name=name, plugin="test_decoding"))
    with recvlogical(pg_db, name):
        pid = slot(server, name)["active_pid"]
        result = fail(server, {"name": name, "state": "absent"}, pg_db.login_args())
        assert f"is active (used by PID {pid}" in result["msg"]
        assert "walsender" in result["msg"]
        assert "terminate_active" in result["msg"]
        assert slot(server, name)["active"] is True

        params = args(pg_db, name=name, state="absent", terminate_active=True)
        checked = run_module(MODULE, params, check=True)
        assert checked["changed"] is True
        assert checked["queries"] == [
            f"SELECT pg_catalog.pg_terminate_backend({pid})",
            f"SELECT pg_catalog.pg_drop_replication_slot('{name}')",
        ]
        assert slot(server, name)["active"] is True

        result = run_module(MODULE, params)
        assert result["changed"] is True
        assert result["queries"] == checked["queries"]
        assert slot(server, name) is None


@pytest.mark.min_pg(14)
def test_active_slot_recreated_under_a_real_subscription(pg_db, pg_database_factory):
    """A subscription's walsender holds the slot; recreate terminates it and the subscription re-attaches."""
    name = unique()
    server = pg_db.server
    pg_db.execute("CREATE TABLE items (id int PRIMARY KEY); CREATE PUBLICATION items_pub FOR TABLE items")
    run_module(MODULE, args(pg_db, name=name))
    subscriber = pg_database_factory(server, "sub")
    subscriber.execute("CREATE TABLE items (id int PRIMARY KEY)")
    subscriber.execute(
        sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION items_pub"
            " WITH (create_slot = false, slot_name = {}, copy_data = false)"
        ).format(sql.Identifier(unique("sub")), sql.Literal(pg_db.conninfo()), sql.Literal(name))
    )

    def attached():
        """What to show when the subscription does not (re-)attach: the slot and the subscription's workers."""
        workers = subscriber.execute(
            "SELECT subname, pid, received_lsn::text, last_msg_receipt_time FROM pg_stat_subscription"
        )
        return f"the subscription to use slot {name}: slot {slot(server, name)}, subscriber workers {workers}"

    wait_until(lambda: slot(server, name)["active"], timeout=30, message=attached)

    want = {"name": name, "two_phase": True, "recreate": True}
    result = fail(server, want, pg_db.login_args())
    assert "is active" in result["msg"]
    assert "two_phase is false (wanted true)" in result["msg"]

    result = run_module(MODULE, args(pg_db, terminate_active=True, **want))
    assert result["changed"] is True
    assert [q.split("(")[0] for q in result["queries"]] == [
        "SELECT pg_catalog.pg_terminate_backend",
        "SELECT pg_catalog.pg_drop_replication_slot",
        "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot",
    ]
    assert slot(server, name)["two_phase"] is True
    # the subscription comes back to the new slot and replicates
    wait_until(lambda: slot(server, name)["active"], timeout=60, message=attached)
    pg_db.execute("INSERT INTO items VALUES (1)")
    wait_until(lambda: subscriber.scalar("SELECT count(*) FROM items") == 1, timeout=60, message=attached)


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "Bad-Name"}, "name: 'Bad-Name' is not a valid replication slot name"),
        ({"name": "UpperCase"}, "is not a valid replication slot name"),
        ({"name": "x" * 64}, "is not a valid replication slot name"),
        ({"name": "p1", "slot_type": "physical", "plugin": "pgoutput"}, "plugin: only logical slots"),
        ({"name": "p1", "slot_type": "physical", "two_phase": True}, "two_phase: only logical slots"),
        ({"name": "p1", "two_phase": "maybe"}, "two_phase"),
        ({"name": "p1", "slot_type": "standby"}, "slot_type"),
    ],
    ids=["dash", "upper", "too-long", "physical-plugin", "physical-two-phase", "bool-type", "choice"],
)
def test_bad_input_fails_before_anything(pg_db, params, expected):
    result = fail(pg_db.server, params, pg_db.login_args())
    assert expected in result["msg"]
    assert not result.get("queries")


def test_wal_level_replica_refuses_logical_slot_first(pg_server_factory, pg_server):
    server = pg_server_factory(pg_server.major, settings={"wal_level": "replica"})
    login = server.login_args("postgres")
    result = run_module(MODULE, {**login, "name": "needs_logical"}, expect_fail=True)
    assert "wal_level=logical" in result["msg"]
    assert result["queries"] == []
    assert server.scalar("SELECT count(*) FROM pg_replication_slots") == 0
    # a physical slot is fine with replica
    result = run_module(MODULE, {**login, "name": "phys", "slot_type": "physical"})
    assert result["changed"] is True
