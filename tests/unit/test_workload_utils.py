"""Pure logic of the workload modules (no database): pgbench argv/report parsing, the hum/pulse
schedule, synthetic chunking and SQL, InfluxDB marker lines."""

from __future__ import annotations

import math
import re

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_load as load
from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_pgbench as pgbench
from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_synthetic as synthetic
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import marker_line

PGBENCH_15_STDOUT = """\
pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: prepared
number of clients: 2
number of threads: 1
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 596
number of failed transactions: 0 (0.000%)
latency average = 1.327 ms
latency stddev = 1.010 ms
rate limit schedule lag: avg 0.146 (max 4.327) ms
initial connection time = 5.596 ms
tps = 198.802382 (without initial connection time)
"""
PGBENCH_15_STDERR = """\
progress: 1.0 s, 191.0 tps, lat 0.985 ms stddev 0.508, 0 failed, lag 0.097 ms
progress: 2.0 s, 188.0 tps, lat 1.303 ms stddev 0.926, 0 failed, lag 0.112 ms
progress: 3.0 s, 216.0 tps, lat 1.638 ms stddev 1.270, 0 failed, lag 0.219 ms
"""
PGBENCH_13_STDOUT = """\
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 4
number of threads: 2
duration: 10 s
number of transactions actually processed: 120000
latency average = 0.333 ms
tps = 11990.1 (including connections establishing)
tps = 12001.5 (excluding connections establishing)
"""
PGBENCH_13_STDERR = "progress: 5.0 s, 12000.2 tps, lat 0.333 ms stddev 0.100\n"


def test_parse_pgbench_15_report_and_progress():
    report = pgbench.parse_report(PGBENCH_15_STDOUT, PGBENCH_15_STDERR)
    assert report["tps"] == pytest.approx(198.802382)
    assert report["transactions"] == 596
    assert report["failed_transactions"] == 0
    assert report["latency_average_ms"] == pytest.approx(1.327)
    assert report["latency_stddev_ms"] == pytest.approx(1.01)
    assert report["schedule_lag_average_ms"] == pytest.approx(0.146)
    assert report["schedule_lag_max_ms"] == pytest.approx(4.327)
    assert report["initial_connection_time_ms"] == pytest.approx(5.596)
    assert (report["clients"], report["threads"], report["duration"], report["scaling_factor"]) == (2, 1, 3, 1)
    assert report["progress"][0] == {
        "seconds": 1.0,
        "tps": 191.0,
        "latency_ms": 0.985,
        "stddev_ms": 0.508,
        "lag_ms": 0.097,
        "failed": 0,
    }
    assert len(report["progress"]) == 3


def test_parse_old_pgbench_report():
    report = pgbench.parse_report(PGBENCH_13_STDOUT, PGBENCH_13_STDERR)
    assert report["tps"] == pytest.approx(12001.5)
    assert report["tps_including_connections"] == pytest.approx(11990.1)
    assert "failed_transactions" not in report
    assert report["progress"] == [
        {"seconds": 5.0, "tps": 12000.2, "latency_ms": 0.333, "stddev_ms": 0.1, "lag_ms": None, "failed": None}
    ]


def test_pgbench_command_lines():
    assert pgbench.init_argv("pgbench", 3) == ["pgbench", "--initialize", "--init-steps=gv", "--scale=3", "--quiet"]
    with pytest.raises(pgbench.PgbenchError, match="outside"):
        pgbench.init_argv("pgbench", 20000)
    argv = pgbench.run_argv("pgbench", 10, clients=4, jobs=2, rate=150.0, builtin="tpcb-like", progress=5)
    assert "--no-vacuum" in argv
    assert "--rate=150" in argv
    assert "--builtin=tpcb-like" in argv
    assert pgbench.run_argv("pgbench", 1, script_file="/tmp/s.sql")[-1] == "--file=/tmp/s.sql"
    with pytest.raises(pgbench.PgbenchError):
        pgbench.run_argv("pgbench", 1, builtin="nope")


def test_pgbench_environment_carries_the_password_only_there():
    env = pgbench.environment(
        {
            "login_host": "127.0.0.1",
            "login_port": 5432,
            "login_user": "postgres",
            "login_db": "publisher",
            "ssl_mode": "prefer",
            "connect_timeout": 10,
        },
        "s3cret",
    )
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGHOST"] == "127.0.0.1"
    assert env["PGDATABASE"] == "publisher"
    assert "PGSSLROOTCERT" not in env


def test_script_writes():
    assert pgbench.script_writes("tpcb-like")
    assert not pgbench.script_writes("select-only")
    assert not pgbench.script_writes(script_text="\\set id random(1, 5)\nSELECT * FROM books WHERE id = :id;")
    assert pgbench.script_writes(script_text="UPDATE books SET sku = sku + 1 WHERE id = 1;")


def test_hum_schedule_is_linear():
    assert load.scheduled(10, "hum", 20) == 200
    assert load.rate_at(3, "hum", 20) == 20


def test_pulse_schedule_integrates_the_sine():
    rate, amplitude, period = 100.0, 80.0, 60.0
    # After a full period the sine cancels out.
    assert load.scheduled(period, "pulse", rate, amplitude, period) == pytest.approx(rate * period)
    # Numerical integral of rate_at matches the closed form at a quarter period.
    steps = 6000
    quarter = period / 4
    numeric = sum(load.rate_at((i + 0.5) * quarter / steps, "pulse", rate, amplitude, period) for i in range(steps))
    assert load.scheduled(quarter, "pulse", rate, amplitude, period) == pytest.approx(numeric * quarter / steps)
    assert load.rate_at(quarter, "pulse", rate, amplitude, period) == pytest.approx(180)
    assert load.rate_at(3 * quarter, "pulse", rate, amplitude, period) == pytest.approx(20)
    assert math.isclose(
        load.scheduled(period / 2, "pulse", rate, amplitude, period), rate * period / 2 + amplitude * period / math.pi
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("pulse", 10, 20, 60, 5, load.DEFAULT_MIX), "amplitude"),
        (("hum", 0, 0, 60, 5, load.DEFAULT_MIX), "rate"),
        (("hum", 10, 0, 60, 0, load.DEFAULT_MIX), "duration"),
        (("pulse", 10, 5, 0, 5, load.DEFAULT_MIX), "period"),
        (("hum", 10, 0, 60, 5, {"insert": 0, "update": 0}), "mix"),
        (("hum", 10, 0, 60, 5, {"upsert": 1}), "unknown"),
    ],
)
def test_load_validation(args, fragment):
    with pytest.raises(load.LoadError, match=fragment):
        load.validate(*args)


class FakeConnection:
    """Records statements; enough of psycopg's Connection for LoadRunner."""

    def __init__(self):
        self.statements = []

    def execute(self, statement, params=None):
        self.statements.append((statement, params))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_runner_follows_the_schedule_with_a_fake_clock():
    conn, clock = FakeConnection(), FakeClock()
    runner = load.LoadRunner(
        conn, pattern="hum", rate=50, duration=4, report_interval=1, seed=1, clock=clock, sleep=clock.sleep
    )
    report = runner.run()
    assert report["operations"] == 200
    assert report["behind"] == 0
    assert [w["operations"] for w in report["windows"]] == [50, 50, 50, 50]
    assert report["inserts"] + report["updates"] + report["deletes"] == 200
    assert report["rows_in_range"] == report["inserts"] - report["deletes"]
    ids = [params[0] for _stmt, params in conn.statements if params and isinstance(params[0], int)]
    assert all(i >= load.DEFAULT_ID_BASE for i in ids if i > 1000)


def test_runner_reports_falling_behind():
    clock = FakeClock()

    class Slow(FakeConnection):
        def execute(self, statement, params=None):
            clock.now += 0.05  # 20 operations/s at most

    runner = load.LoadRunner(
        Slow(), pattern="hum", rate=50, duration=2, report_interval=1, seed=1, clock=clock, sleep=clock.sleep
    )
    report = runner.run()
    assert report["operations"] == 40
    assert report["behind"] == 60


def test_synthetic_chunks():
    assert synthetic.chunks(1, 10, 4) == [(1, 4), (5, 8), (9, 10)]
    assert synthetic.chunks(101, 0, 4) == []
    with pytest.raises(ValueError, match="chunk_size"):
        synthetic.chunks(1, 10, 0)
    assert synthetic.progress_line(300000, 1000000, 1.5) == "rows 300000/1000000 (30%), 200000 rows/s"


def test_synthetic_columns_match_the_schema_file():
    from pathlib import Path

    ddl = (Path(__file__).resolve().parents[2] / "roles/publisher/files/schema/synthetic.sql").read_text()
    for kind, table in synthetic.TABLES.items():
        body = ddl.split(f"CREATE TABLE IF NOT EXISTS public.{table} (", 1)[1].split(");", 1)[0]
        types = "bigint|integer|text|numeric|date|timestamptz|boolean|uuid|jsonb"
        declared = re.findall(rf"\b([a-z][a-z0-9_]*) (?:{types})\b", body)
        assert [name for name, _expr in synthetic.columns(kind)] == declared, kind
    with pytest.raises(ValueError, match="unknown synthetic table"):
        synthetic.columns("tall")


def test_marker_lines_keep_field_types_stable():
    line = marker_line(
        "publisher", "hum", "stop", {"rows": 90, "seconds": 3, "rate": 30, "behind": 0, "amplitude": None}
    )
    assert line.startswith("workload,node=publisher,phase=stop,workload=hum ")
    assert "rows=90i" in line
    assert "behind=0i" in line
    assert "seconds=3.0" in line
    assert "rate=30.0" in line
    assert "amplitude" not in line
    assert marker_line("publisher", "x", "start", {}).endswith(" rows=0i")
    start = marker_line("publisher", "goodreads", "start", {"planned_rows": 120})
    assert start.endswith(" planned_rows=120i,rows=0i")
