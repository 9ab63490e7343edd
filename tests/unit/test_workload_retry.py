"""Surviving restarts without a database: which errors are a lost connection, the backoff, and the
accounting of the hum/pulse runner and of pgbench re-runs (fake connections, a fake clock)."""

from __future__ import annotations

import psycopg
import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_load as load
from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_pgbench as pgbench
from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_retry as retry
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import PgConnectionError

REFUSED = (
    "Unable to connect to PostgreSQL at host 127.0.0.1 port 5432 as user postgres: connection failed: connection to"
    ' server at "127.0.0.1", port 5432 failed: Connection refused\n\tIs the server running on that host and accepting'
    " TCP/IP connections?"
)
STARTING = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system is'
    " starting up"
)
BAD_PASSWORD = (
    'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed'
    ' for user "postgres"'
)


# --------------------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), True),  # 57P01
        (psycopg.errors.CrashShutdown("terminating connection because of crash"), True),  # 57P02
        (psycopg.errors.CannotConnectNow("the database system is shutting down"), True),  # 57P03
        (psycopg.errors.ConnectionFailure("connection failure"), True),  # 08006
        (psycopg.errors.ConnectionException("connection exception"), True),  # 08000
        (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),  # 23505
        (psycopg.errors.CheckViolation("violates check constraint"), False),  # 23514
        (psycopg.errors.SyntaxError("syntax error"), False),  # 42601
        (psycopg.errors.InsufficientPrivilege("permission denied"), False),  # 42501
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), False),  # 57014
        (psycopg.errors.DeadlockDetected("deadlock detected"), False),  # 40P01
        (psycopg.errors.DatabaseDropped("database dropped"), False),  # 57P04: it will not come back
        (psycopg.ProgrammingError("no results to fetch"), False),
    ],
)
def test_what_counts_as_a_lost_connection(exc, expected):
    assert retry.is_connection_loss(exc) is expected


def test_a_broken_connection_counts_whatever_the_error_class():
    class Broken:
        broken, closed = True, True

    assert retry.is_connection_loss(psycopg.InterfaceError("the connection is lost"), Broken()) is True
    assert retry.is_connection_loss(psycopg.InterfaceError("bad call")) is False


def test_server_answered_means_the_statement_was_aborted():
    assert retry.server_answered(psycopg.errors.AdminShutdown("x")) is True
    assert retry.server_answered(psycopg.OperationalError("server closed the connection unexpectedly")) is False


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (REFUSED, True),
        (STARTING, True),
        ("FATAL:  the database system is shutting down", True),
        ("FATAL:  the database system is in recovery mode", True),
        ("FATAL:  the database system is not yet accepting connections", True),
        ("connection to server at 10.0.0.1 failed: timeout expired", True),
        ('could not translate host name "subscriber1" to address: Name or service not known', True),
        (BAD_PASSWORD, False),
        ('FATAL:  database "publisher" does not exist', False),
        ('FATAL:  role "bob" does not exist', False),
        ('FATAL:  no pg_hba.conf entry for host "172.18.0.1", user "postgres", database "publisher"', False),
    ],
)
def test_which_failed_connection_attempts_are_retried(message, expected):
    assert retry.transient_connect_error(message) is expected
    assert retry.transient_connect_error(PgConnectionError(message)) is expected


def test_connect_reason_drops_the_preamble():
    assert retry.connect_reason(PgConnectionError(REFUSED)).startswith("Connection refused Is the server running")
    assert retry.connect_reason(BAD_PASSWORD) == 'FATAL: password authentication failed for user "postgres"'


def test_backoff_doubles_up_to_the_cap_and_stops_at_the_outage_bound():
    backoff = retry.Backoff(max_delay=1.0, give_up_after=10.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert backoff.next_wait(3, outage_seconds=2.0) == 0.4
    assert backoff.next_wait(9, outage_seconds=9.7) == pytest.approx(0.3)  # the last attempt lands on the bound
    assert backoff.next_wait(10, outage_seconds=10.0) is None
    assert backoff.enabled
    assert not retry.Backoff(give_up_after=0).enabled
    assert retry.Backoff(max_delay=0.05).delay(1) == 0.05
    with pytest.raises(ValueError, match="reconnect_max_seconds"):
        retry.Backoff(max_delay=0)
    with pytest.raises(ValueError, match="outage_max_seconds"):
        retry.Backoff(give_up_after=-1)


# --------------------------------------------------------------------------- hum / pulse
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Cursor:
    def __init__(self, row):
        self.row = row

    def fetchone(self):
        return self.row


class Table:
    """The server side: rows by id, shared by every FakeConnection (survives 'restarts')."""

    def __init__(self):
        self.rows = {}


class FakeConnection:
    """Executes the runner's statements against a Table; ``faults`` maps the n-th write (1-based,
    counted over the table's life) to an exception, raised before (``"before"``) or after
    (``"after"``: the write committed, the answer was lost) applying it."""

    writes = 0

    def __init__(self, table, faults=None):
        self.table = table
        self.faults = faults if faults is not None else {}
        self.broken = self.closed = False

    def close(self):
        self.closed = True

    def execute(self, statement, params=None):
        text = str(statement)
        if "SELECT sku, title, topic" in text:
            row = self.table.rows.get(params[0])
            return Cursor(None if row is None else dict(zip(("sku", "title", "topic"), row, strict=True)))
        FakeConnection.writes += 1
        fault = self.faults.pop(FakeConnection.writes, None)
        if fault and fault[0] == "before":
            self.broken = True
            raise fault[1]
        if "INSERT" in text:
            self.table.rows[params[0]] = tuple(params[1:])
        elif "UPDATE" in text:
            self.table.rows[params[3]] = tuple(params[:3])
        else:
            self.table.rows.pop(params[0], None)
        if fault:
            self.broken = True
            raise fault[1]
        return Cursor(None)


@pytest.fixture(autouse=True)
def _reset_writes():
    FakeConnection.writes = 0


def runner_with(faults, connects, clock, **kwargs):
    """A runner over a Table; ``connects``: what each reconnect attempt does (an exception to raise,
    or None to succeed)."""
    table = Table()
    attempts = list(connects)

    def connect():
        outcome = attempts.pop(0) if attempts else None
        if outcome is not None:
            raise outcome
        return FakeConnection(table, faults)

    options = {"pattern": "hum", "rate": 20, "duration": 10, "report_interval": 5, "seed": 5}
    options.update(kwargs)
    runner = load.LoadRunner(FakeConnection(table, faults), clock=clock, sleep=clock.sleep, connect=connect, **options)
    return runner, table


INSERT_ONLY = {"insert": 1, "update": 0, "delete": 0}


def generated(table):
    return sum(1 for key in table.rows if key >= load.DEFAULT_ID_BASE)


def test_runner_counts_a_failed_operation_and_reconnects_with_backoff():
    clock = FakeClock()
    admin = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    refused = PgConnectionError(REFUSED)
    runner, table = runner_with({30: ("before", admin)}, [refused, refused, refused], clock, reconnect_max_seconds=0.3)
    report = runner.run()
    assert report["failed_operations"] == 1
    assert report["unknown_outcomes"] == 0
    assert report["reconnects"] == 1
    # 0.1 + 0.2 + 0.3 (capped) + 0.3 s: four attempts, the fourth succeeds.
    assert report["seconds_disconnected"] == pytest.approx(0.9, abs=0.01)
    log = report["reconnect_log"]
    assert "57P01" in log[0]
    assert "not applied" in log[0]
    assert sum("reconnect attempt" in line for line in log) == 3
    assert "Connection refused" in log[1]
    assert "reconnected after 0.9 s (4 attempts)" in log[-1]
    # The schedule: 200 slots = acknowledged + failed + skipped while disconnected (no burst afterwards).
    assert report["skipped"] == 17  # 0.9 s at 20/s, less the slot of the failed operation itself
    assert report["operations"] + report["failed_operations"] + report["skipped"] + report["behind"] == 200
    assert report["rows_in_range"] == generated(table) == report["inserts"] - report["deletes"]


def test_runner_checks_an_unknown_outcome_after_reconnecting():
    clock = FakeClock()
    lost = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
    # Write 12 commits but its answer is lost; write 40 never reaches the table.
    runner, table = runner_with({12: ("after", lost), 40: ("before", lost)}, [], clock, mix=load.DEFAULT_MIX)
    report = runner.run()
    assert report["unknown_outcomes"] == 2
    assert report["unknown_applied"] == 1
    assert report["unknown_unresolved"] == 0
    assert report["failed_operations"] == 0
    assert report["reconnects"] == 2
    assert sum(" had committed" in line for line in report["reconnect_log"]) == 1
    assert sum(" had not committed" in line for line in report["reconnect_log"]) == 1
    # The runner's picture of the range matches the table exactly.
    assert report["rows_in_range"] == generated(table)
    assert set(runner.live) == {key for key in table.rows if key >= load.DEFAULT_ID_BASE}


def test_a_reported_failure_found_committed_becomes_an_unknown_outcome():
    # Should PostgreSQL report 57P01 after committing (the FATAL behind the statement's result), the
    # read-back after reconnecting finds the row: counted as an unknown outcome that committed.
    clock = FakeClock()
    admin = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    runner, table = runner_with({7: ("after", admin), 20: ("before", admin)}, [], clock, mix=INSERT_ONLY)
    report = runner.run()
    assert report["failed_operations"] == 1
    assert report["unknown_outcomes"] == 1
    assert report["unknown_applied"] == 1
    assert report["unknown_unresolved"] == 0
    assert generated(table) == report["operations"] + report["unknown_applied"] == report["rows_in_range"]


def test_runner_fails_on_errors_that_are_not_a_lost_connection():
    clock = FakeClock()
    runner, _table = runner_with({5: ("before", psycopg.errors.UniqueViolation("duplicate key"))}, [], clock)
    with pytest.raises(psycopg.errors.UniqueViolation):
        runner.run()
    assert runner.reconnects == 0
    assert runner.failed == 0


def test_runner_gives_up_after_the_outage_bound():
    clock = FakeClock()
    admin = psycopg.errors.AdminShutdown("x")
    refused = PgConnectionError(REFUSED)
    runner, _table = runner_with(
        {10: ("before", admin)}, [refused] * 100, clock, duration=600, outage_max_seconds=3, reconnect_max_seconds=1
    )
    with pytest.raises(retry.OutageTooLong, match=r"outage_max_seconds \(3 s"):
        runner.run()
    assert runner.outage_report()["seconds_disconnected"] == pytest.approx(3.0, abs=0.01)
    assert runner.outage_report()["failed_operations"] == 1


def test_runner_stops_reconnecting_on_a_wrong_password():
    clock = FakeClock()
    runner, _table = runner_with(
        {10: ("before", psycopg.errors.AdminShutdown("x"))}, [PgConnectionError(BAD_PASSWORD)], clock
    )
    with pytest.raises(load.LoadError, match=r"reconnecting failed: .*password authentication failed"):
        runner.run()


def test_runner_ends_normally_when_the_run_ends_during_an_outage():
    clock = FakeClock()
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    refused = PgConnectionError(REFUSED)
    runner, _table = runner_with({190: ("before", lost)}, [refused] * 100, clock, reconnect_max_seconds=0.2)
    report = runner.run()
    assert report["unknown_outcomes"] == 1
    assert report["unknown_unresolved"] == 1
    assert report["reconnects"] == 0
    assert report["seconds"] == pytest.approx(10, abs=0.01)
    assert "the run ended while disconnected" in report["reconnect_log"][-1]


def test_runner_without_connect_fails_on_the_first_loss():
    clock = FakeClock()
    table = Table()
    runner = load.LoadRunner(
        FakeConnection(table, {3: ("before", psycopg.errors.AdminShutdown("x"))}),
        rate=20,
        duration=5,
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(psycopg.errors.AdminShutdown):
        runner.run()


# --------------------------------------------------------------------------- pgbench
REPORT = """\
pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 1
maximum number of tries: 1
duration: {duration} s
number of transactions actually processed: {tx}
number of failed transactions: 0 (0.000%)
latency average = {lat} ms
latency stddev = 1.000 ms
rate limit schedule lag: avg 0.200 (max {lagmax}) ms
initial connection time = 5.0 ms
tps = 50.0 (without initial connection time)
"""
ADMIN = "FATAL:  terminating connection due to administrator command"
ABORTED = f"""\
progress: 1.0 s, 49.0 tps, lat 2.470 ms stddev 1.592, 0 failed, lag 0.412 ms
pgbench: error: client 0 script 0 aborted in command 4 query 0: {ADMIN}
pgbench: error: client 1 script 0 aborted in command 4 query 0: {ADMIN}
pgbench: error: Run was aborted; the above results are incomplete.
"""
DOWN = """\
pgbench: error: connection to server at "127.0.0.1", port 5432 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?
pgbench: error: could not create connection for setup
"""


def fake_pgbench(outcomes, clock, seconds_each=None):
    """``execute(argv)`` returning the queued ``(rc, stdout, stderr)``; the clock advances by the run's --time
    (or ``seconds_each``)."""
    calls = []

    def execute(argv):
        calls.append(argv)
        rc, out, err = outcomes.pop(0)
        duration = int(next(a for a in argv if a.startswith("--time=")).split("=")[1])
        clock.now += seconds_each if seconds_each is not None else duration
        return rc, out, err

    return execute, calls


def argv_for(seconds):
    return pgbench.run_argv("pgbench", seconds, clients=2, rate=50, builtin="tpcb-like", progress=1)


def test_pgbench_is_run_again_for_the_rest_of_the_duration():
    clock = FakeClock()
    first = (2, REPORT.format(duration=10, tx=150, lat=2.0, lagmax=4.0), ABORTED)
    down = (1, "", DOWN)
    second = (
        0,
        REPORT.format(duration=6, tx=300, lat=3.0, lagmax=9.0),
        "progress: 1.0 s, 50.0 tps, lat 3.0 ms stddev 1.0\n",
    )
    execute, calls = fake_pgbench([first, down, second], clock, seconds_each=None)
    probes = [PgConnectionError(REFUSED), None, None]

    def probe():
        outcome = probes.pop(0)
        if outcome is not None:
            raise outcome

    # The first run "lasts" 3 s (aborted), the refused start 0 s.
    durations = iter([3, 0, None])

    def timed(argv):
        seconds = next(durations)
        rc, out, err = execute(argv)
        if seconds is not None:
            clock.now -= int(argv[2].split("=")[1]) - seconds
        return rc, out, err

    segments, info = pgbench.run_segments(10, argv_for, timed, probe, retry.Backoff(0.5, 60), clock, clock.sleep)
    assert [int(argv[2].split("=")[1]) for argv in calls] == [10, 6, 6]
    assert [seg["rc"] for seg in segments] == [2, 1, 0]
    assert info["reconnects"] == 2
    assert "terminating connection due to administrator command" in info["log"][0]
    assert sum(pgbench.aborted_clients(seg["stderr"]) for seg in segments) == 2

    report = pgbench.combine(segments, seconds=clock.now)
    assert report["transactions"] == 450
    assert report["failed_transactions"] == 0
    assert report["latency_average_ms"] == pytest.approx((150 * 2.0 + 300 * 3.0) / 450, abs=0.001)
    assert report["schedule_lag_max_ms"] == 9.0
    assert report["tps"] == pytest.approx(450 / clock.now, abs=0.001)
    assert [row["seconds"] for row in report["progress"]] == [1.0, segments[2]["start_s"] + 1.0]


def test_pgbench_failures_that_are_not_a_lost_connection_stay_final():
    clock = FakeClock()
    execute, _calls = fake_pgbench(
        [(1, "", 'pgbench: error: FATAL:  password authentication failed for user "x"\n')], clock
    )
    with pytest.raises(pgbench.PgbenchFailed, match=r"rc=1.*password authentication failed"):
        pgbench.run_segments(10, argv_for, execute, lambda: None, retry.Backoff(), clock, clock.sleep)
    execute, _calls = fake_pgbench([(2, "", ABORTED)], clock)
    with pytest.raises(pgbench.PgbenchFailed, match="rc=2"):
        pgbench.run_segments(10, argv_for, execute, lambda: None, retry.Backoff(give_up_after=0), clock, clock.sleep)


def test_pgbench_outage_bound_and_a_single_clean_run():
    clock = FakeClock()
    execute, _calls = fake_pgbench([(2, "", ABORTED)], clock, seconds_each=1)

    def probe():
        raise PgConnectionError(REFUSED)

    with pytest.raises(retry.OutageTooLong, match="did not come back"):
        pgbench.run_segments(600, argv_for, execute, probe, retry.Backoff(1, 5), clock, clock.sleep)

    clean = (0, REPORT.format(duration=3, tx=150, lat=2.0, lagmax=4.0), "")
    execute, calls = fake_pgbench([clean], clock)
    segments, info = pgbench.run_segments(3, argv_for, execute, lambda: None, retry.Backoff(), clock, clock.sleep)
    assert len(calls) == 1
    assert info == {"reconnects": 0, "seconds_disconnected": 0.0, "log": []}
    assert pgbench.combine(segments, 3.0) == pgbench.parse_report(clean[1], clean[2])


def test_aborted_clients_old_and_new_wording():
    assert pgbench.aborted_clients(ABORTED) == 2
    assert pgbench.aborted_clients("client 3 aborted in command 4 (SQL) of script 0; perhaps the backend died\n") == 1
    assert pgbench.aborted_clients("progress: 1.0 s, 49.0 tps\n") == 0
    old = "client 3 aborted in command 4 (SQL) of script 0; perhaps the backend died while processing"
    assert retry.lost_connection_text(old)
    assert retry.lost_connection_text(DOWN)
    assert not retry.lost_connection_text('FATAL:  database "x" does not exist')
