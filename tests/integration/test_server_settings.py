"""inventium.logical_replication.server_settings against real PostgreSQL servers, run through Ansible.

The module changes server-wide state (ALTER SYSTEM, restarts), so the tests use a private server
per selected major (started once for this file) instead of the session's shared ``pg_server``.
After every test ``postgresql.auto.conf`` is emptied and the server reloaded (restarted when a
restart-only parameter differs), so each test starts from the harness defaults.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from pg_harness import free_port, selected_majors, wait_until
from support.ansible import run_module

MODULE = "server_settings"
MAJORS = selected_majors()


def auto_conf(server):
    """name -> setting of the entries in postgresql.auto.conf."""
    rows = server.execute(
        "SELECT name, setting FROM pg_catalog.pg_file_settings"
        " WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno"
    )
    return dict(rows)


def show(server, name):
    return server.scalar("SELECT current_setting(%s)", [name])


def wait_show(server, name, expected):
    return wait_until(lambda: show(server, name) == expected, timeout=10, message=f"SHOW {name} = {expected}")


def server_snapshot(server):
    rows = server.execute("SELECT name, setting, context FROM pg_catalog.pg_settings WHERE context <> 'internal'")
    return {name: (setting, context) for name, setting, context in rows}


@pytest.fixture(scope="module", params=MAJORS, ids=lambda major: f"pg{major}")
def server(request, pg_harness):
    """A private server of each selected major for this file (ALTER SYSTEM and restarts allowed)."""
    srv = pg_harness.new_server(request.param, name=f"settings{request.param}")
    srv.baseline = server_snapshot(srv)
    yield srv
    srv.destroy()


@pytest.fixture(autouse=True)
def restore(server):
    """Start from and return to the harness defaults: empty auto.conf, reloaded, restarted if needed."""
    assert auto_conf(server) == {}, "a previous test left postgresql.auto.conf entries behind"
    yield
    server.execute("ALTER SYSTEM RESET ALL")
    server.execute("SELECT pg_reload_conf()")
    baseline = server.baseline
    restart_only = [n for n, (_s, ctx) in baseline.items() if ctx == "postmaster"]
    now = server_snapshot(server)
    if any(now[n][0] != baseline[n][0] for n in restart_only):
        server.restart()

    def back_to_baseline():
        current = server_snapshot(server)
        return all(current[n][0] == value for n, (value, _ctx) in baseline.items() if n in current)

    wait_until(back_to_baseline, timeout=10, message="settings back to the harness defaults")


@pytest.fixture
def login(server):
    return server.login_args()


def run(login, check=False, diff=False, expect_fail=False, **args):
    return run_module(MODULE, {**login, **args}, check=check, diff=diff, expect_fail=expect_fail)


# -- changes, idempotency, check mode, diff ---------------------------------------------------------


def test_reloadable_setting_check_change_idempotent_diff(server, login):
    wanted = {"logical_decoding_work_mem": "128MB", "max_slot_wal_keep_size": "2GB"}

    checked = run(login, check=True, diff=True, settings=wanted)
    assert checked["changed"] is True
    assert checked["queries"] == [
        "ALTER SYSTEM SET \"logical_decoding_work_mem\" = '128MB'",
        "ALTER SYSTEM SET \"max_slot_wal_keep_size\" = '2GB'",
        "SELECT pg_reload_conf()",
    ]
    assert checked["diff"]["before"]["logical_decoding_work_mem"]["running"] == "64MB"
    assert checked["diff"]["after"]["logical_decoding_work_mem"]["running"] == "128MB"
    assert checked["settings"]["max_slot_wal_keep_size"]["running"] == "2GB"
    assert auto_conf(server) == {}, "check mode wrote something"
    assert show(server, "logical_decoding_work_mem") == "64MB"

    changed = run(login, diff=True, settings=wanted)
    assert changed["changed"] is True
    assert changed["queries"] == checked["queries"]
    assert changed["diff"] == checked["diff"]
    assert changed["settings"]["logical_decoding_work_mem"] == {
        "running": "128MB",
        "pending": None,
        "unit": "kB",
        "context": "user",
        "source": "configuration file",
        "pending_restart": False,
    }
    assert changed["settings"]["max_slot_wal_keep_size"]["running"] == "2GB"
    assert changed["settings"]["max_slot_wal_keep_size"]["context"] == "sighup"
    assert changed["restart_required"] is False, changed["pending_restart"]
    assert changed["pending_restart"] == []
    assert changed["previous"] == {"logical_decoding_work_mem": "64MB", "max_slot_wal_keep_size": "-1"}
    assert auto_conf(server) == {"logical_decoding_work_mem": "128MB", "max_slot_wal_keep_size": "2GB"}
    wait_show(server, "logical_decoding_work_mem", "128MB")
    wait_show(server, "max_slot_wal_keep_size", "2GB")

    again = run(login, diff=True, settings=wanted)
    assert again["changed"] is False
    assert again["queries"] == []
    assert again["previous"] == {}
    assert again["diff"]["before"] == again["diff"]["after"]

    assert run(login, check=True, settings=wanted)["changed"] is False


def test_unit_equivalent_values_are_idempotent(server, login):
    first = run(login, settings={"max_slot_wal_keep_size": "1GB", "wal_sender_timeout": "5min"})
    assert first["changed"] is True
    equivalent = {
        "max_slot_wal_keep_size": "1024MB",
        "wal_sender_timeout": "300s",
        "checkpoint_timeout": "300000ms",  # the default, 5min
        "track_commit_timestamp": "no",  # the default, off
        "max_wal_senders": "10",  # harness.conf: 10
        "max_replication_slots": 10,
        "wal_level": "LOGICAL",
    }
    second = run(login, settings=equivalent)
    assert second["changed"] is False, second["queries"]
    assert second["settings"]["wal_sender_timeout"]["running"] == "5min"
    assert second["settings"]["max_slot_wal_keep_size"]["running"] == "1GB"
    assert second["settings"]["track_commit_timestamp"]["running"] == "off"
    assert second["settings"]["max_wal_senders"]["running"] == 10
    assert auto_conf(server) == {"max_slot_wal_keep_size": "1GB", "wal_sender_timeout": "5min"}
    bools = run(login, settings={"track_commit_timestamp": False, "hot_standby_feedback": "off"})
    assert bools["changed"] is False


# -- restart-only parameters and pending values ------------------------------------------------------


def test_wal_level_change_is_pending_until_restart_and_can_be_undone(server, login):
    pending = run(login, diff=True, settings={"wal_level": "replica"})
    assert pending["changed"] is True
    assert pending["queries"] == ["ALTER SYSTEM SET \"wal_level\" = 'replica'", "SELECT pg_reload_conf()"]
    assert pending["restart_required"] is True
    assert pending["pending_restart"] == ["wal_level"]
    assert pending["settings"]["wal_level"]["running"] == "logical"
    assert pending["settings"]["wal_level"]["pending"] == "replica"
    assert pending["settings"]["wal_level"]["pending_restart"] is True
    assert pending["previous"] == {"wal_level": "logical"}
    assert auto_conf(server) == {"wal_level": "replica"}
    assert show(server, "wal_level") == "logical"
    wait_until(
        lambda: server.scalar("SELECT pending_restart FROM pg_settings WHERE name = 'wal_level'"),
        timeout=10,
        message="pg_settings.pending_restart for wal_level",
    )

    # The pending value is seen: asking for it again changes nothing, but the restart is still due.
    same = run(login, settings={"wal_level": "replica"})
    assert same["changed"] is False
    assert same["restart_required"] is True
    assert same["pending_restart"] == ["wal_level"]

    # Asking for the running value removes the pending one (harness.conf says logical: RESET).
    checked = run(login, check=True, settings={"wal_level": "logical"})
    assert checked["changed"] is True
    assert checked["queries"] == ['ALTER SYSTEM RESET "wal_level"', "SELECT pg_reload_conf()"]
    assert checked["restart_required"] is False, checked["pending_restart"]
    assert auto_conf(server) == {"wal_level": "replica"}

    undone = run(login, settings={"wal_level": "logical"})
    assert undone["changed"] is True
    assert undone["queries"] == checked["queries"]
    assert undone["restart_required"] is False, undone["pending_restart"]
    assert undone["pending_restart"] == []
    assert undone["settings"]["wal_level"]["pending"] is None
    assert auto_conf(server) == {}
    wait_until(
        lambda: not server.scalar("SELECT pending_restart FROM pg_settings WHERE name = 'wal_level'"),
        timeout=10,
        message="wal_level no longer pending a restart",
    )
    server.restart()
    assert show(server, "wal_level") == "logical"


def test_restart_applies_the_pending_value(server, login):
    first = run(login, settings={"max_wal_senders": 12, "track_commit_timestamp": True})
    assert first["restart_required"] is True
    assert first["pending_restart"] == ["max_wal_senders", "track_commit_timestamp"]
    server.restart()
    after = run(login, settings={"max_wal_senders": "12", "track_commit_timestamp": "on"})
    assert after["changed"] is False
    assert after["restart_required"] is False, after["pending_restart"]
    assert after["settings"]["max_wal_senders"]["running"] == 12
    assert after["settings"]["track_commit_timestamp"]["running"] == "on"


def test_previous_restores_the_state_before_the_run(server, login):
    changes = {
        "max_wal_senders": 20,
        "logical_decoding_work_mem": "96MB",
        "wal_sender_timeout": "2min",
        "wal_level": "replica",
    }
    first = run(login, settings=changes)
    assert first["changed"] is True
    assert first["previous"] == {
        "max_wal_senders": 10,
        "logical_decoding_work_mem": "64MB",
        "wal_sender_timeout": "1min",
        "wal_level": "logical",
    }
    down = run(login, settings=first["previous"])
    assert down["changed"] is True
    # Every value equals the one without an auto.conf entry, so the entries are removed.
    assert sorted(down["queries"][:-1]) == sorted(f'ALTER SYSTEM RESET "{name}"' for name in changes)
    assert down["restart_required"] is False, down["pending_restart"]
    assert auto_conf(server) == {}
    assert down["previous"] == changes
    wait_show(server, "logical_decoding_work_mem", "64MB")
    assert run(login, settings=first["previous"])["changed"] is False
    # And `previous` of the down migration is the up migration again.
    up = run(login, settings=down["previous"])
    assert up["changed"] is True
    assert auto_conf(server) == {
        "max_wal_senders": "20",
        "logical_decoding_work_mem": "96MB",
        "wal_sender_timeout": "2min",
        "wal_level": "replica",
    }


def test_list_parameter_pending_and_back_to_empty(server, login):
    first = run(login, settings={"shared_preload_libraries": ["pg_stat_statements", "auto_explain"]})
    assert first["changed"] is True
    assert first["queries"][0] == (
        "ALTER SYSTEM SET \"shared_preload_libraries\" = 'pg_stat_statements', 'auto_explain'"
    )
    assert first["settings"]["shared_preload_libraries"]["pending"] == "pg_stat_statements, auto_explain"
    assert first["previous"] == {"shared_preload_libraries": ""}
    assert auto_conf(server) == {"shared_preload_libraries": "pg_stat_statements, auto_explain"}
    same = run(login, settings={"shared_preload_libraries": "pg_stat_statements,auto_explain"})
    assert same["changed"] is False
    back = run(login, settings=first["previous"])
    assert back["queries"][0] == 'ALTER SYSTEM RESET "shared_preload_libraries"'
    assert back["restart_required"] is False, back["pending_restart"]
    assert auto_conf(server) == {}


# -- reset ------------------------------------------------------------------------------------------


def test_reset(server, login):
    run(login, settings={"logical_decoding_work_mem": "100MB", "max_wal_senders": 15})
    assert auto_conf(server) == {"logical_decoding_work_mem": "100MB", "max_wal_senders": "15"}

    checked = run(login, check=True, reset=["logical_decoding_work_mem", "max_wal_senders", "work_mem"])
    assert checked["changed"] is True
    assert auto_conf(server) == {"logical_decoding_work_mem": "100MB", "max_wal_senders": "15"}

    reset = run(login, diff=True, reset=["logical_decoding_work_mem", "max_wal_senders", "work_mem"])
    assert reset["changed"] is True
    assert reset["queries"] == [
        'ALTER SYSTEM RESET "logical_decoding_work_mem"',
        'ALTER SYSTEM RESET "max_wal_senders"',
        "SELECT pg_reload_conf()",
    ]
    assert reset["previous"] == {"logical_decoding_work_mem": "100MB", "max_wal_senders": 15}
    assert reset["settings"]["logical_decoding_work_mem"]["running"] == "64MB"
    assert reset["restart_required"] is False, reset["pending_restart"]
    assert auto_conf(server) == {}
    wait_show(server, "logical_decoding_work_mem", "64MB")

    again = run(login, reset=["logical_decoding_work_mem", "max_wal_senders"])
    assert again["changed"] is False
    assert again["queries"] == []


# -- bad input: fail before writing anything -------------------------------------------------------


BAD_SETTINGS = {
    "wal_levl": ("logical", "unknown parameter 'wal_levl'; did you mean: wal_level"),
    "wal_level": ("logicl", "wal_level: invalid value 'logicl'; valid values are: minimal, replica, logical"),
    "max_wal_senders": (300000, "max_wal_senders: 300000 is outside the valid range 0 .. 262143"),
    "logical_decoding_work_mem": (
        "32kB",
        "logical_decoding_work_mem: 32kB is outside the valid range 64 .. 2147483647 (unit kB; 64kB .. 2147483647kB)",
    ),
    "max_slot_wal_keep_size": ("1 gb", 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'),
    "max_replication_slots": (True, "max_replication_slots: expected an integer, got boolean True"),
    "wal_sender_timeout": ([1, 2], "wal_sender_timeout: expected a single integer value, got a list"),
    "track_commit_timestamp": ("maybe", "track_commit_timestamp: invalid boolean 'maybe'"),
    "server_version": ("99", "server_version is a read-only parameter (context internal)"),
}


@pytest.mark.parametrize("bad", ["wal_levl", "max_wal_senders", "all-at-once"])
def test_bad_input_fails_and_writes_nothing(server, login, bad):
    names = list(BAD_SETTINGS) if bad == "all-at-once" else [bad]
    # A valid change rides along: it must not be written either.
    settings = {"logical_decoding_work_mem": "80MB", "wal_keep_size": "1GB"}
    settings.update({name: BAD_SETTINGS[name][0] for name in names})
    result = run(login, expect_fail=True, settings=settings)
    assert result["msg"].startswith("Nothing was changed: ")
    for name in names:
        assert BAD_SETTINGS[name][1] in result["msg"]
    assert len(result["errors"]) == len(names)
    assert result["queries"] == []
    assert auto_conf(server) == {}
    assert show(server, "logical_decoding_work_mem") == "64MB"


# -- failover slots and slot invalidation: parameters of newer majors ----------------------------------

NEWER_PARAMETERS = {
    "sync_replication_slots": (True, 17),
    "synchronized_standby_slots": ("standby_a", 17),
    "idle_replication_slot_timeout": ("10min", 18),
}


def test_failover_slot_parameters_set_reloaded_idempotent(server, login):
    """Reloadable (sighup) parameters: written, reloaded, in effect without a restart, then no change."""
    wanted = {name: value for name, (value, minimum) in NEWER_PARAMETERS.items() if server.major >= minimum}
    if not wanted:
        pytest.skip(f"PostgreSQL {server.major} has none of them")
    # synchronized_standby_slots names physical slots
    server.execute("SELECT pg_create_physical_replication_slot('standby_a')")
    try:
        checked = run(login, check=True, settings=wanted)
        assert checked["changed"] is True
        assert auto_conf(server) == {}
        result = run(login, settings=wanted)
        assert result["changed"] is True
        assert result["restart_required"] is False
        assert result["queries"][-1] == "SELECT pg_reload_conf()"
        assert result["queries"] == checked["queries"]
        expected = {"sync_replication_slots": "on", "synchronized_standby_slots": "standby_a"}
        expected["idle_replication_slot_timeout"] = "10min"
        for name in wanted:
            assert result["settings"][name]["context"] == "sighup"
            assert result["settings"][name]["pending"] is None
            wait_show(server, name, expected[name])
        assert run(login, settings=wanted)["changed"] is False
    finally:
        server.execute("SELECT pg_drop_replication_slot('standby_a')")


def test_parameters_of_a_newer_major_fail_naming_it(server, login):
    newer = {name: value for name, (value, minimum) in NEWER_PARAMETERS.items() if server.major < minimum}
    if not newer:
        pytest.skip(f"PostgreSQL {server.major} has every one of them")
    # a valid change rides along and is not written either
    result = run(login, expect_fail=True, settings={"logical_decoding_work_mem": "80MB", **newer})
    assert result["msg"].startswith("Nothing was changed: ")
    for name in newer:
        minimum = NEWER_PARAMETERS[name][1]
        assert f"parameter {name} requires PostgreSQL >= {minimum} (server is {server.major})" in result["msg"]
    assert "unknown parameter" not in result["msg"]
    assert len(result["errors"]) == len(newer)
    assert result["queries"] == []
    assert auto_conf(server) == {}
    result = run(login, expect_fail=True, reset=list(newer))
    assert "requires PostgreSQL >= " in result["msg"]
    assert result["queries"] == []


def test_name_in_settings_and_reset_fails(server, login):
    result = run(login, expect_fail=True, settings={"work_mem": "8MB"}, reset=["work_mem"])
    assert "work_mem is both in settings and in reset" in result["msg"]
    assert auto_conf(server) == {}


def test_settings_must_be_a_dict(server, login):
    result = run(login, expect_fail=True, settings=["wal_level"])
    assert "settings" in result["msg"]
    assert auto_conf(server) == {}


# -- connection problems and secrets ---------------------------------------------------------------


def test_unreachable_server_fails_fast_and_helpfully(server, login):
    port = free_port()
    started = time.monotonic()
    result = run({**login, "login_port": port}, expect_fail=True, settings={"work_mem": "8MB"})
    assert time.monotonic() - started < 20
    assert result["msg"].startswith(f"Unable to connect to PostgreSQL at host 127.0.0.1 port {port} as user postgres")
    assert "Connection refused" in result["msg"]
    assert server.password not in result.output


def test_wrong_password_is_not_shown(server, login):
    secret = "Wr0ng-" + server.password[:8] + "-pw"
    result = run({**login, "login_password": secret}, expect_fail=True, settings={"work_mem": "8MB"})
    assert "password authentication failed" in result["msg"]
    assert secret not in result.output
    assert server.password not in result.output


def test_password_never_in_output_even_verbose(server, login):
    result = run_module(MODULE, {**login, "settings": {"work_mem": "6MB"}}, diff=True, verbosity=3)
    assert result["changed"] is True
    assert server.password not in result.output
    assert server.password not in str(dict(result))


def test_unprivileged_role_gets_sqlstate_and_nothing_changes(server, login):
    role_password = "app-" + server.password[:10]
    server.execute(
        psycopg.sql.SQL("CREATE ROLE settings_app LOGIN PASSWORD {}").format(psycopg.sql.Literal(role_password))
    )
    try:
        result = run(
            {**login, "login_user": "settings_app", "login_password": role_password},
            expect_fail=True,
            settings={"work_mem": "8MB"},
        )
        assert "42501" in result["msg"]
        assert "pg_file_settings" in result["msg"]
        assert role_password not in result.output
        assert auto_conf(server) == {}
    finally:
        server.execute("DROP ROLE settings_app")


def test_rejected_statement_restores_what_was_already_written(server, login):
    """A role may ALTER SYSTEM work_mem but not logical_decoding_work_mem (PostgreSQL 15+ grants)."""
    if server.major < 15:
        pytest.skip("GRANT ALTER SYSTEM ON PARAMETER needs PostgreSQL 15")
    run(login, settings={"work_mem": "6MB"})  # an existing entry that must come back as it was
    role_password = "ops-" + server.password[:10]
    server.execute(
        psycopg.sql.SQL(
            "CREATE ROLE settings_ops LOGIN PASSWORD {};"
            " GRANT SELECT ON pg_catalog.pg_file_settings TO settings_ops;"
            " GRANT EXECUTE ON FUNCTION pg_catalog.pg_show_all_file_settings() TO settings_ops;"
            " GRANT EXECUTE ON FUNCTION pg_catalog.pg_reload_conf() TO settings_ops;"
            " GRANT ALTER SYSTEM ON PARAMETER work_mem, max_slot_wal_keep_size TO settings_ops"
        ).format(psycopg.sql.Literal(role_password))
    )
    try:
        ops = {**login, "login_user": "settings_ops", "login_password": role_password}
        result = run(
            ops,
            expect_fail=True,
            settings={"work_mem": "12MB", "max_slot_wal_keep_size": "3GB", "logical_decoding_work_mem": "80MB"},
        )
        assert 'ALTER SYSTEM SET "logical_decoding_work_mem"' in result["msg"]
        assert "ERROR 42501: permission denied to set parameter" in result["msg"]
        assert "Restored what this run had already written: work_mem, max_slot_wal_keep_size" in result["msg"]
        assert result["sqlstate"] == "42501"
        assert result["queries"][-2:] == [
            'ALTER SYSTEM RESET "max_slot_wal_keep_size"',
            "ALTER SYSTEM SET \"work_mem\" = '6MB'",
        ]
        assert auto_conf(server) == {"work_mem": "6MB"}
        assert role_password not in result.output
        # The granted parameters alone work for this role.
        assert run(ops, settings={"max_slot_wal_keep_size": "3GB"})["changed"] is True
    finally:
        server.execute("DROP OWNED BY settings_ops; DROP ROLE settings_ops")


def test_unix_socket_connection(server, login):
    socket_login = {"login_unix_socket": str(server.socket_dir), "login_port": server.port}
    result = run(socket_login, check=True, settings={"work_mem": "4MB"})
    assert result["changed"] is False
    assert result["settings"]["work_mem"]["running"] == "4MB"
