"""The workloads survive a publisher restart: hum/pulse (load_generator) and pgbench reconnect.

Each test runs a module in a background thread against a private server (``pg_server_factory``,
free to restart), restarts the server or terminates the module's session while the load runs,
and checks the accounting against the table: every acknowledged operation is there, an
interrupted one is counted as failed or as of unknown outcome, never lost silently. Plus the
errors that must stay fatal (a constraint violation, an outage past the bound) and the one-line
refusal of an unknown workload name (``playbooks/workload.yml``, ``make workload``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.ansible import DEFAULT_CALLBACK, run_module, run_playbook

from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import APPLICATION_NAME

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "roles" / "publisher" / "files" / "schema"
DEMO = REPO / "roles" / "publisher" / "files" / "demo.sql"
ID_BASE = 1_000_000_000
INSERT_ONLY = {"insert": 1, "update": 0, "delete": 0}
NAMES = "pgbench, hum, pulse, goodreads, synthetic, cleanup"


@pytest.fixture
def own_server(pg_server_factory, pg_majors):
    """A private server with the demo books and the pgbench tables in database ``postgres``."""
    server = pg_server_factory(pg_majors[0])
    with server.connect() as conn:
        conn.execute(DEMO.read_text())
        conn.execute((SCHEMA_DIR / "pgbench.sql").read_text())
    return server


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110 - the server may be restarting; try again
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def generated_rows(server):
    return server.scalar("SELECT count(*) FROM books WHERE id >= %s", [ID_BASE])


def module_sessions(server):
    return [
        row[0]
        for row in server.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            [APPLICATION_NAME],
        )
    ]


def test_hum_survives_a_restart_and_a_terminated_session(own_server):
    server = own_server
    args = {
        **server.login_args(),
        "rate": 40,
        "duration": 9,
        "mix": INSERT_ONLY,
        "seed": 3,
        "reconnect_max_seconds": 0.5,
        "report_interval": 3,
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_module, "load_generator", args)
        wait_for(lambda: generated_rows(server) >= 20, what="the first rows")
        server.restart()  # fast shutdown: the session gets 57P01
        wait_for(lambda: generated_rows(server) >= 80, what="rows after the restart")
        wait_for(lambda: module_sessions(server), what="the generator's new session")
        for pid in module_sessions(server):
            server.execute("SELECT pg_terminate_backend(%s)", [pid])
        result = future.result(timeout=120)

    rows = generated_rows(server)
    log = "\n".join(result["reconnect_log"])
    assert result["reconnects"] >= 2, log
    assert result["failed_operations"] + result["unknown_outcomes"] >= 2, log
    assert "57P01" in log
    assert result["seconds_disconnected"] > 0
    assert result["unknown_unresolved"] == 0
    # Every acknowledged insert is there; the unknown-outcome ones only if they were found committed.
    assert result["inserts"] == result["operations"]
    assert rows == result["operations"] + result["unknown_applied"], log
    assert result["unknown_applied"] <= result["unknown_outcomes"]
    assert result["rows_in_range"] == rows
    # The run went on after both losses: it ran for its duration and reached most of the schedule.
    assert result["seconds"] >= 9
    assert result["windows"][-1]["achieved_rate"] >= 40 * 0.5  # back at its rate after both losses
    assert result["operations"] + result["failed_operations"] + result["unknown_outcomes"] + result["skipped"] + result[
        "behind"
    ] == pytest.approx(9 * 40, abs=2)


def test_hum_checks_unknown_outcomes_after_a_backend_crash(own_server):
    # SIGKILL of the generator's backend: its connection breaks without an answer (no SQLSTATE, the
    # outcome is unknown), and the postmaster's crash restart refuses connections for a moment
    # (57P03 "in recovery mode"). After reconnecting the generator reads the row back.
    server = own_server
    args = {**server.login_args(), "rate": 50, "duration": 7, "mix": INSERT_ONLY, "reconnect_max_seconds": 0.5}
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_module, "load_generator", args)
        wait_for(lambda: module_sessions(server) and generated_rows(server) >= 20, what="the first rows")
        for pid in module_sessions(server):
            os.kill(pid, signal.SIGKILL)
        result = future.result(timeout=120)

    log = "\n".join(result["reconnect_log"])
    assert result["reconnects"] >= 1, log
    assert result["unknown_outcomes"] >= 1, log
    assert "outcome unknown" in log
    assert " had " in log  # "the insert of id ... had (not) committed"
    assert result["unknown_unresolved"] == 0
    assert generated_rows(server) == result["operations"] + result["unknown_applied"] == result["rows_in_range"]


def test_a_constraint_violation_still_fails_at_once(own_server):
    server = own_server
    server.execute(f"ALTER TABLE books ADD CONSTRAINT no_generated_rows CHECK (id < {ID_BASE}) NOT VALID")
    started = time.monotonic()
    result = run_module(
        "load_generator", {**server.login_args(), "rate": 20, "duration": 30, "mix": INSERT_ONLY}, expect_fail=True
    )
    assert time.monotonic() - started < 10
    assert "23514" in result["msg"]
    assert result["reconnects"] == 0
    assert result["failed_operations"] == 0


def test_an_outage_past_the_bound_fails_with_the_counts(own_server):
    server = own_server
    args = {
        **server.login_args(),
        "rate": 20,
        "duration": 60,
        "mix": INSERT_ONLY,
        "outage_max_seconds": 2,
        "reconnect_max_seconds": 0.5,
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_module, "load_generator", args, expect_fail=True)
        wait_for(lambda: generated_rows(server) >= 10, what="the first rows")
        server.stop()
        stopped = time.monotonic()
        result = future.result(timeout=60)
        waited = time.monotonic() - stopped
    server.start()
    assert "did not come back within outage_max_seconds (2 s" in result["msg"], result["msg"]
    assert waited < 15
    assert result["failed_operations"] + result["unknown_outcomes"] == 1
    assert result["reconnects"] == 0
    assert result["seconds_disconnected"] >= 2
    assert any("reconnect attempt" in line for line in result["reconnect_log"])
    assert generated_rows(server) in (result["operations"], result["operations"] + result["unknown_outcomes"])


def test_outage_max_seconds_zero_keeps_the_old_behaviour(own_server):
    server = own_server
    args = {**server.login_args(), "rate": 20, "duration": 30, "outage_max_seconds": 0}
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_module, "load_generator", args, expect_fail=True)
        wait_for(lambda: module_sessions(server) and generated_rows(server) >= 5, what="the first rows")
        for pid in module_sessions(server):
            server.execute("SELECT pg_terminate_backend(%s)", [pid])
        result = future.result(timeout=60)
    assert "57P01" in result["msg"]
    assert result["reconnects"] == 0


def test_pgbench_is_run_again_after_a_restart(own_server):
    server = own_server
    login = server.login_args()
    run_module("pgbench", {**login, "mode": "init", "scale": 1})
    args = {
        **login,
        "duration": 8,
        "rate": 50,
        "clients": 2,
        "progress_interval": 1,
        "reconnect_max_seconds": 0.5,
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_module, "pgbench", args)
        wait_for(lambda: server.scalar("SELECT count(*) FROM pgbench_history") >= 50, what="pgbench transactions")
        server.restart()
        result = future.result(timeout=120)

    history = server.scalar("SELECT count(*) FROM pgbench_history")
    segments = result["segments"]
    assert result["reconnects"] >= 1, result["reconnect_log"]
    assert len(segments) == result["reconnects"] + 1
    assert segments[0]["rc"] != 0
    assert segments[-1]["rc"] == 0
    assert segments[0]["duration"] == 8
    assert 1 <= segments[-1]["duration"] < 8
    assert result["transactions"] == sum(s["transactions"] for s in segments)
    assert result["aborted_clients"] >= 1
    # Acknowledged transactions are all there; an aborted client's one in flight may have committed.
    assert result["transactions"] <= history <= result["transactions"] + result["aborted_clients"]
    assert segments[-1]["transactions"] >= segments[-1]["duration"] * 50 * 0.5  # back at its rate
    assert result.get("failed_transactions", 0) == 0
    assert result["seconds_disconnected"] > 0
    assert "terminating connection due to administrator command" in "\n".join(result["reconnect_log"])
    assert result["progress"][-1]["seconds"] > segments[-1]["start_s"]
    assert "pgbench again at" in result["stdout"]


def test_pgbench_without_trouble_reports_one_segment(own_server):
    login = own_server.login_args()
    run_module("pgbench", {**login, "mode": "init", "scale": 1})
    result = run_module("pgbench", {**login, "duration": 2, "rate": 40})
    assert result["reconnects"] == 0
    assert result["aborted_clients"] == 0
    assert len(result["segments"]) == 1
    assert result["segments"][0]["transactions"] == result["transactions"]
    assert "pgbench again" not in result["stdout"]


def run_role_during_a_restart(server, tmp_path, name, ready, **variables):
    """Run the workload role (``name``) on localhost against ``server``, restarting it once ``ready()``."""
    (tmp_path / "inventory.yml").write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                    }
                }
            }
        )
    )
    (tmp_path / "playbook.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: inventium.logical_replication.workload\n"
    )
    values = {
        "ansible_python_interpreter": sys.executable,
        "workload_name": name,
        "workload_login_host": server.host,
        "workload_login_port": server.port,
        "workload_login_password": server.password,
        "workload_database": "postgres",
        "workload_ensure_schema": False,
        "workload_reconnect_max_seconds": 0.5,
        **variables,
    }
    vars_file = tmp_path / f"{name}.json"
    vars_file.touch(mode=0o600)
    vars_file.write_text(json.dumps(values))
    args = (tmp_path / "playbook.yml", "-e", f"@{vars_file}")
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_playbook, *args, inventory=tmp_path / "inventory.yml")
        wait_for(ready, timeout=60, what=f"{name} load")
        server.restart()
        played = future.result(timeout=180)
    assert played.rc == 0, played.output[-4000:]
    assert server.password not in played.output
    reports = [result["msg"] for task, result in played.task_results("localhost") if task.endswith(": Report")]
    assert reports, played.output[-4000:]
    return reports[-1]


def test_the_role_summary_reports_the_connection_losses(own_server, tmp_path):
    server = own_server
    hum = run_role_during_a_restart(
        server,
        tmp_path,
        "hum",
        lambda: generated_rows(server) >= 20,
        workload_duration=6,
        workload_rate=30,
        workload_report_interval=2,
    )
    assert "connection lost and 1 reconnects" in hum, hum
    assert "unknown outcome" in hum
    bench = run_role_during_a_restart(
        server,
        tmp_path,
        "pgbench",
        lambda: server.scalar("SELECT count(*) FROM pgbench_history") >= 30,
        workload_duration=6,
        workload_rate=30,
        workload_report_interval=1,
    )
    assert "connection lost: 1 reconnects" in bench, bench
    assert "clients aborted" in bench


def test_unknown_workload_fails_in_one_line_before_touching_a_server(tmp_path):
    # A publisher that cannot be reached (TEST-NET-1): the run must fail before any task touches it.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    publishers:\n      hosts:\n        publisher:\n"
        "          ansible_host: 192.0.2.1\n          publisher_password: unused\n"
    )
    run = run_playbook(
        "playbooks/workload.yml", "-e", "workload=nonexistent", inventory=inventory, callback=DEFAULT_CALLBACK
    )
    assert run.rc != 0
    assert f"unknown workload 'nonexistent': choose one of {NAMES}" in run.output
    assert "argument_spec" not in run.output
    assert "[publisher]" not in run.output
    assert len(run.output.strip().splitlines()) < 25


def test_make_workload_with_an_unknown_name_prints_one_line():
    # -n: nothing runs either way; the check happens while make reads the Makefile.
    # Run as a user would, not as a sub-make of `make test` (which would add "Entering directory" lines).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run(
        ["make", "-n", "workload", "W=nonexistent"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"unknown workload 'nonexistent': choose one of {NAMES}" in lines[0]
    known = subprocess.run(
        ["make", "-n", "workload", "W=hum"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert known.returncode == 0, known.stderr
    assert "-e workload=hum" in known.stdout
