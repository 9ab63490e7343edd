"""The metrics sampler (``roles/sampler/files/inventium_sampler.py``) against real servers and a real InfluxDB.

* ``test_sampler_on_a_pair``: a throwaway publisher/subscriber pair of each combination of majors
  (``pg_pair_db``) with the replicated heartbeat table (``roles/publisher/files/schema/heartbeat.sql``)
  and ``pg_stat_statements`` installed but not preloaded; the sampler runs a few seconds in
  ``--dry-run`` mode and every measurement of each node is checked in its line protocol output:
  the version-dependent ones (``checkpoints`` from ``pg_stat_checkpointer`` on 17+, PostgreSQL 18's
  conflict counters), the heartbeat (the sampler beats on the publisher, reads the lag on the
  subscriber: under 0.5 s on the idle, caught-up pair) and the error count of the unreadable
  ``pg_stat_statements``. A 17+ publisher also has an idle failover slot (``failover``, ``synced``,
  ``inactive_seconds`` of the ``replication_slot`` points); the pair's points then go into a real
  InfluxDB 1.x where the Replication dashboard's "Failover slots" query and ``make report``'s
  failover-slot and conflict sections must read them (and say "No data" on 15 / before 18).
* ``test_sampler_survives_a_subscriber_outage``: the sampler runs against the lab
  (``.lab/endpoints.json``) writing to an InfluxDB 1.x the fixture starts (Debian's ``influxd``
  on free loopback ports, data in a temporary directory); the container ``subscriber2`` is stopped
  for 20 s under the lab's exclusive lock. Asserted with InfluxQL: the publisher's points keep
  coming during the outage, errors are counted for subscriber2, its ``heartbeat_lag`` resumes after
  ``docker start``, every measurement has points, the log has one line per problem and no
  password. A finalizer restarts the container and waits until it is healthy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

REPO_ROOT = Path(__file__).resolve().parents[2]
from lab_client import lab_lock  # noqa: E402
from sampler_support import HEARTBEAT_SQL, PROGRAM, parse_lines, running_influxd, sampler_config  # noqa: E402

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402


def _load_report():
    spec = importlib.util.spec_from_file_location("lab_report", REPO_ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_report()  # `make report`'s Report, on the test's own InfluxDB

pytestmark = pytest.mark.docker  # the integration stage runs these in its Docker group

ENDPOINTS = REPO_ROOT / ".lab" / "endpoints.json"
OUTAGE_SECONDS = 20
STOPPED = "subscriber2"


# ----------------------------------------------------------------------------------------------
# Throwaway pair, every major combination
# ----------------------------------------------------------------------------------------------


def test_sampler_on_a_pair(pg_pair_db, tmp_path, request, influxdb):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    pub_major, sub_major = pub.server.major, sub.server.major
    ddl = HEARTBEAT_SQL.read_text()
    pub.execute(ddl)
    sub.execute(ddl)
    pub.execute("CREATE PUBLICATION heartbeat_pub FOR TABLE public.replication_heartbeat")
    statements = bool(pub.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'"))
    if statements:  # installed, not in shared_preload_libraries: reading it fails, the sampler counts that
        pub.execute("CREATE EXTENSION pg_stat_statements")
    sub.execute(f"CREATE SUBSCRIPTION sampler_sub CONNECTION '{pub.conninfo()}' PUBLICATION heartbeat_pub")
    if pub_major >= 17:  # a failover slot nothing uses: the sync state fields of an inactive slot
        pub.execute("SELECT pg_create_logical_replication_slot('sampler_failover', 'pgoutput', failover => true)")
        request.addfinalizer(lambda: pub.execute("SELECT pg_drop_replication_slot('sampler_failover')"))
    config = sampler_config(
        tmp_path, {"pub": ("publisher", pub.server, pub.name), "sub": ("subscriber", sub.server, sub.name)}
    )
    result = subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(config), "--dry-run", "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert pub.server.password not in result.stderr + result.stdout
    assert sub.server.password not in result.stderr + result.stdout
    points = parse_lines(result.stdout)
    by_node = {}
    for measurement, tags, fields, _ts in points:
        by_node.setdefault(tags.get("node"), {}).setdefault(measurement, []).append((tags, fields))

    for node, major in (("pub", pub_major), ("sub", sub_major)):
        seen = by_node[node]
        for measurement in ("locks", "activity", "database", "checkpoints", "sampler_round"):
            assert seen.get(measurement), f"{node}: no {measurement} points"
        modes = {tags["mode"] for tags, _fields in seen["locks"]}
        assert {"AccessShareLock", "AccessExclusiveLock"} <= modes
        _tags, checkpoints = seen["checkpoints"][-1]
        assert {"checkpoints_timed", "checkpoints_requested", "buffers_alloc"} <= set(checkpoints)
        assert ("buffers_backend" in checkpoints) == (major < 17)  # pg_stat_checkpointer has none
        assert seen["activity"][-1][1]["connections"] >= 1
        assert seen["database"][-1][0]["database"] == (pub.name if node == "pub" else sub.name)
        assert len(seen["sampler_round"]) >= 3  # one per second

    publisher = by_node["pub"]
    assert any(t["application_name"] == "sampler_sub" for t, _f in publisher["replication"])
    slots = {tags["slot_name"]: fields for tags, fields in publisher["replication_slot"]}  # the last round's
    slot = slots["sampler_sub"]
    assert slot["active"] == 1
    assert slot["retained_wal_bytes"] >= 0
    sync_state = {"conflicting", "failover", "synced", "inactive_seconds", "invalidation_reason"}
    if pub_major >= 17:
        assert set(slots) == {"sampler_sub", "sampler_failover"}
        assert (slot["failover"], slot["synced"], slot["conflicting"]) == (0, 0, 0)
        assert "inactive_seconds" not in slot  # in use: inactive_since is NULL
        failover = slots["sampler_failover"]
        assert (failover["active"], failover["failover"], failover["synced"], failover["conflicting"]) == (0, 1, 0, 0)
        assert 0 <= failover["inactive_seconds"] < 60  # created a few seconds before the sampler started
        assert "invalidation_reason" not in failover
    else:
        assert set(slots) == {"sampler_sub"}
        assert not sync_state & set(slot), slot
    assert "subscription" not in publisher
    assert "heartbeat_lag" not in publisher
    assert "statements" not in publisher
    assert "sampler_errors" not in by_node["sub"]
    if statements:
        errors = [f["count"] for t, f in publisher.get("sampler_errors", ()) if t["kind"] == "statements"]
        assert errors, "pg_stat_statements without preload must count an error"
        assert errors[-1] >= 1
        assert result.stderr.count("statements:") == 1, result.stderr  # logged once, not every round

    subscriber = by_node["sub"]
    _tags, subscription = subscriber["subscription"][-1]
    assert subscription["enabled"] == 1
    assert subscription["tables_total"] == 1
    if sub_major >= 18:
        assert "confl_insert_exists" in subscription
    else:
        assert not any(key.startswith("confl_") for key in subscription)
    beats = [(t, f) for t, f in subscriber.get("heartbeat_lag", ()) if t["source"] == "pub"]
    assert len(beats) >= 2, f"no heartbeat lag on the subscriber: {result.stderr}"
    assert beats[-1][1]["seq"] > beats[0][1]["seq"], "the publisher's beats must advance on the subscriber"
    # An idle, caught-up pair: 0, or the few milliseconds since the beat of the same tick was written -
    # not one interval (~1 s), the age of the newest row the old definition reported. Only the first
    # round may be estimated (the subscriber read before the sampler's first beat was recorded).
    exact = [fields for _tags, fields in beats if fields.get("estimated") == 0]
    assert beats[-1][1].get("estimated") == 0, f"the latest heartbeat lag is still estimated: {beats}"
    assert len(exact) >= len(beats) - 1, beats
    assert all(0 <= fields["lag_seconds"] < 0.5 for fields in exact), beats
    failover_panel_and_report(influxdb, result.stdout, pub_major, sub_major, tmp_path)


FAILOVER_PANEL = next(
    panel
    for panel in json.loads((REPO_ROOT / "roles/grafana/files/dashboards/replication.json").read_text())["panels"]
    if panel["title"] == "Failover slots"
)


def failover_panel_and_report(influxdb, line_protocol, pub_major, sub_major, tmp_path):
    """The pair's points in a real InfluxDB (a database of its own): the dashboard's "Failover slots" query and
    `make report`'s failover-slot and conflict sections read what the sampler wrote, nothing on older servers."""
    database = f"pair_{pub_major}_{sub_major}_{os.getpid()}"
    client = influx.InfluxClient(influxdb.url, api=1, database=database)
    client.query(f'DROP DATABASE "{database}"')
    client.query(f'CREATE DATABASE "{database}"')
    client.write([line for line in line_protocol.splitlines() if line and not line.startswith("#")])
    (target,) = FAILOVER_PANEL["targets"]
    rows = client.query(target["query"].replace("$timeFilter", "time > now() - 5m"))
    latest = {(row["node"], row["slot_name"]): row for row in rows}
    if pub_major >= 17:
        assert set(latest) == {("pub", "sampler_sub"), ("pub", "sampler_failover")}, rows
        in_use, idle = latest[("pub", "sampler_sub")], latest[("pub", "sampler_failover")]
        assert (in_use["failover"], in_use["synced"], in_use["active"], in_use["inactive_seconds"]) == (0, 0, 1, None)
        assert (idle["failover"], idle["synced"], idle["active"]) == (1, 0, 0)
        assert 0 <= idle["inactive_seconds"] < 60
        assert idle["invalidation_reason"] is None
    else:
        assert rows == []
    page = report.Report(client, 5.0, tmp_path / "report").write().read_text()
    failover = page.split("## Failover slots\n", 1)[1].split("\n## ", 1)[0]
    conflicts = page.split("## Conflicts per type\n", 1)[1].split("\n## ", 1)[0]
    assert ("](failover_slots.png)" in failover) == (pub_major >= 17), failover
    assert ("_No data" in failover) == (pub_major < 17), failover
    assert ("| pub | sampler_failover | 1 | 0 | 0 |" in page) == (pub_major >= 17)
    assert ("](conflicts.png)" in conflicts) == (sub_major >= 18), conflicts
    assert ("_No data" in conflicts) == (sub_major < 18), conflicts


def test_sampler_reads_pg_stat_statements_when_preloaded(pg_server_factory, pg_majors, tmp_path):
    server = pg_server_factory(pg_majors[-1], settings={"shared_preload_libraries": "pg_stat_statements"})
    server.execute("CREATE EXTENSION pg_stat_statements")
    for _query in range(20):
        server.execute("SELECT count(*) FROM pg_class")
    config = sampler_config(tmp_path, {"solo": ("subscriber", server, "postgres")})
    result = subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(config), "--dry-run", "--duration", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    statements = [f for m, t, f, _ts in parse_lines(result.stdout) if m == "statements" and t["node"] == "solo"]
    assert statements, result.stderr
    assert statements[-1]["calls"] >= 20
    assert statements[-1]["statements"] >= 1
    assert statements[-1]["mean_exec_time_ms"] > 0
    assert "statements" not in result.stderr


# ----------------------------------------------------------------------------------------------
# The lab and a real InfluxDB
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory):
    """Debian's InfluxDB 1.x on free loopback ports (``sampler_support.running_influxd``); database ``pglab``."""
    with running_influxd(tmp_path_factory.mktemp("influxdb")) as client:
        yield client


def _lab_problem():
    if os.geteuid() != 0:
        return "the lab needs root"
    if shutil.which("docker") is None:
        return "the lab needs the docker CLI"
    return None


def container_state(name):
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


def wait_healthy(name, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = container_state(name)
        if state in ("true healthy", "true"):
            return
        time.sleep(1)
    raise AssertionError(f"container {name} is not healthy after {timeout}s: {container_state(name)!r}")


@pytest.fixture
def restore_subscriber():
    """Whatever happens, leave the stopped container running and healthy."""
    yield
    if container_state(STOPPED).startswith("false"):
        with lab_lock(exclusive=True):
            subprocess.run(["docker", "start", STOPPED], capture_output=True, check=False)
            wait_healthy(STOPPED)


def lab_passwords(nodes):
    """The passwords of the lab's nodes (a node being added while the test runs may have none yet)."""
    files = [Path(n["password_file"]) for n in nodes.values()]
    return [f.read_text().strip() for f in files if f.exists()]


def influx_time(seconds):
    return f"{int(seconds * 1e9)}"


def select(client, what, measurement, where):
    """Run an InfluxQL SELECT built from the test's own names and numbers (``database`` is a keyword: quoted)."""
    return client.query(f'SELECT {what} FROM "{measurement}" WHERE {where}')  # noqa: S608


@pytest.mark.lab
def test_sampler_survives_a_subscriber_outage(influxdb, tmp_path, restore_subscriber):
    problem = _lab_problem()
    if problem:
        pytest.skip(problem)
    assert ENDPOINTS.exists(), "the lab is not built (.lab/endpoints.json is missing): run `make lab`"
    endpoints = json.loads(ENDPOINTS.read_text())
    nodes = endpoints["postgresql"]
    assert STOPPED in nodes, f"the lab has no {STOPPED}"
    publisher = next(name for name, node in nodes.items() if node["kind"] == "publisher")
    endpoints["influxdb"] = {"url": influxdb.url, "api": 1, "database": "pglab"}
    endpoints["docker"] = {"containers": ["subscriber1", STOPPED]}
    config = tmp_path / "endpoints.json"
    config.write_text(json.dumps(endpoints))
    # Exclusive for the whole run: the test stops a lab container, and nobody else's restart may
    # spoil the assertion that the publisher was sampled without an error (about 70 s).
    with lab_lock(exclusive=True):
        run_outage(influxdb, tmp_path, config, nodes, publisher)


def run_outage(influxdb, tmp_path, config, nodes, publisher):
    passwords = lab_passwords(nodes)
    with psycopg.connect(
        host=nodes[publisher]["host"],
        port=nodes[publisher]["port"],
        dbname=nodes[publisher]["dbname"],
        user=nodes[publisher]["user"],
        password=Path(nodes[publisher]["password_file"]).read_text().strip(),
    ) as conn:
        has_heartbeat = conn.execute("SELECT to_regclass('public.replication_heartbeat') IS NOT NULL").fetchone()[0]
    assert has_heartbeat, "the lab has no heartbeat table: rebuild it with site.yml (publisher_schema_files)"

    stderr_path = tmp_path / "sampler.log"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(PROGRAM),
                "--endpoints",
                str(config),
                "--interval",
                "1",
                "--duration",
                "120",
                "--backoff-max",
                "4",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        time.sleep(6)
        assert proc.poll() is None, stderr_path.read_text()
        print(f"stopping {STOPPED} for {OUTAGE_SECONDS}s", flush=True)
        subprocess.run(["docker", "stop", "-t", "5", STOPPED], check=True, capture_output=True)
        stopped_at = time.time()
        time.sleep(OUTAGE_SECONDS)
        subprocess.run(["docker", "start", STOPPED], check=True, capture_output=True)
        started_at = time.time()
        wait_healthy(STOPPED)
        print(f"{STOPPED} is back after {time.time() - stopped_at:.0f}s; waiting for its heartbeat", flush=True)
        deadline = time.monotonic() + 45
        resumed = []
        while time.monotonic() < deadline and not resumed:
            time.sleep(2)
            resumed = select(
                influxdb,
                "lag_seconds",
                "heartbeat_lag",
                f"node = '{STOPPED}' AND lag_seconds < 10 AND time > {influx_time(started_at)}",
            )
        assert proc.poll() is None, f"the sampler died: {stderr_path.read_text()}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log = stderr_path.read_text()
    assert proc.returncode == 0, log
    assert resumed, f"heartbeat_lag of {STOPPED} did not come back under 10 s after docker start:\n{log}"

    # The publisher was sampled every second of the outage (allow for ticks at its edges).
    window = f"time > {influx_time(stopped_at + 1)} AND time < {influx_time(started_at - 1)}"
    rounds = select(influxdb, "duration_ms", "sampler_round", f"node = '{publisher}' AND {window}")
    assert len(rounds) >= OUTAGE_SECONDS - 4, f"publisher rounds during the outage: {len(rounds)}"
    slot = select(
        influxdb,
        "last(active)",
        "replication_slot",
        f"node = '{publisher}' AND slot_name = '{STOPPED}_sub' AND {window}",
    )
    assert slot, f"no point of the slot of {STOPPED} during the outage"
    assert slot[0]["last"] == 0, f"the slot of {STOPPED} should be inactive during the outage: {slot}"
    assert not select(influxdb, "*", "sampler_round", f"node = '{STOPPED}' AND {window}")
    container = select(influxdb, "last(running)", "container", f"node = '{STOPPED}' AND {window}")
    assert container, f"no container point of {STOPPED} during the outage"
    assert container[0]["last"] == 0, container

    errors = select(influxdb, "last(count)", "sampler_errors", f"node = '{STOPPED}' GROUP BY kind")
    kinds = {row["kind"]: row["last"] for row in errors}
    assert kinds.get("connect", 0) >= 2, f"connection errors of {STOPPED}: {kinds}"
    assert not select(influxdb, "*", "sampler_errors", f"node = '{publisher}'"), "the publisher had errors"

    # Every measurement has points for the nodes it describes (statements: the lab has no
    # pg_stat_statements; test_sampler_on_a_pair covers its error path).
    postgres = (publisher, "subscriber1", STOPPED)
    expected = {
        "locks": postgres,
        "activity": postgres,
        "database": postgres,
        "checkpoints": postgres,
        "sampler_round": postgres,
        "replication": (publisher,),
        "replication_slot": (publisher,),
        "subscription": ("subscriber1", STOPPED),
        "heartbeat_lag": ("subscriber1", STOPPED),
        "container": ("subscriber1", STOPPED),
        "sampler_errors": ("sampler", STOPPED),
    }
    for measurement, measured_nodes in expected.items():
        for node in measured_nodes:
            rows = select(influxdb, "count(*)", measurement, f"node = '{node}'")
            assert rows, f"no {measurement} points for {node}"

    # One log line per problem (stopped, back), not one per round; no password anywhere.
    lines = [line for line in log.splitlines() if f"{STOPPED}:" in line and "docker" not in line]
    assert 1 <= len(lines) <= 4, log
    for password in passwords:
        assert password not in log


# ----------------------------------------------------------------------------------------------
# The role: docker runtime (idempotent, writes), systemd runtime on a host without systemd
# ----------------------------------------------------------------------------------------------

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run_role(tmp_path, role_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "roles": [{"role": "inventium.logical_replication.sampler", "vars": role_vars}],
                }
            ]
        )
    )
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    recap = RECAP.search(result.stdout)
    return result, (int(recap.group(2)), int(recap.group(4))) if recap else None


@pytest.mark.lab
def test_role_docker_runtime_is_idempotent_and_samples(influxdb, tmp_path):
    problem = _lab_problem()
    if problem:
        pytest.skip(problem)
    assert ENDPOINTS.exists(), "the lab is not built (.lab/endpoints.json is missing): run `make lab`"
    influxdb.query("CREATE DATABASE roletest")
    endpoints = json.loads(ENDPOINTS.read_text())
    endpoints["influxdb"] = {"url": influxdb.url, "api": 1, "database": "roletest"}
    endpoints["docker"] = {"containers": ["subscriber1"]}
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "endpoints.json").write_text(json.dumps(endpoints))
    name = f"sampler-test-{os.getpid()}"
    role_vars = {
        "sampler_endpoints_file": str(config_dir / "endpoints.json"),
        "sampler_install_dir": str(tmp_path / "install"),
        "sampler_container_name": name,
    }
    try:
        with lab_lock(exclusive=False):
            first, counts = run_role(tmp_path, role_vars)
            assert counts, first.stdout + first.stderr
            assert counts[1] == 0, first.stdout
            assert counts[0] >= 1
            created = container_state(name)
            second, counts = run_role(tmp_path, role_vars)
            assert counts == (0, 0), second.stdout  # changed=0, failed=0
            assert container_state(name) == created == "true"
            deadline = time.monotonic() + 30
            rows = []
            while time.monotonic() < deadline and not rows:
                time.sleep(1)
                rows = influxdb.query("SELECT count(*) FROM \"locks\" WHERE node = 'publisher'", database="roletest")
            assert rows, subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False).stderr
            assert influxdb.query("SELECT count(*) FROM container", database="roletest"), "no container stats"
            inspect = json.loads(
                subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout
            )[0]
            assert inspect["HostConfig"]["NetworkMode"] == "host"
            assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
            assert all(not m["RW"] for m in inspect["Mounts"]), inspect["Mounts"]
            # Least privilege (issue 12): not root, no Docker socket, only the program directory (with
            # the private copies of the files the configuration names) and the cgroup hierarchy.
            assert inspect["Config"]["User"] == "10001:10001"
            assert inspect["HostConfig"]["ReadonlyRootfs"] is True
            assert {m["Source"]: m["Destination"] for m in inspect["Mounts"]} == {
                str(tmp_path / "install"): str(tmp_path / "install"),
                "/sys/fs/cgroup": "/host/sys/fs/cgroup",
            }
            copies = sorted(p.name for p in (tmp_path / "install" / "run" / "files").iterdir())
            assert not any(name.endswith("ca.key") for name in copies), copies
            # container stats from the cgroup files, the running subscriber1 included
            running = influxdb.query(
                "SELECT last(running), last(memory_usage_bytes) FROM container WHERE node = 'subscriber1'",
                database="roletest",
            )
            assert running, "no container point of subscriber1"
            assert running[0]["last"] == 1, running
            assert running[0]["last_1"] > 0, running
            # network counters from the host end of subscriber1's link (the cgroup has none)
            network = influxdb.query(
                "SELECT last(net_rx_bytes), last(net_tx_bytes) FROM container WHERE node = 'subscriber1'",
                database="roletest",
            )
            assert network, "no network counters of subscriber1"
            assert network[0]["last"] > 0, network
            assert network[0]["last_1"] > 0, network
            # A changed configuration rewrites the container's private copy and recreates the container.
            endpoints["sampler"] = {"buffer_points": 1000}
            (config_dir / "endpoints.json").write_text(json.dumps(endpoints))
            third, counts = run_role(tmp_path, role_vars)
            assert counts == (2, 0), third.stdout
        deployed = tmp_path / "install" / "lib" / "ansible_collections" / "inventium" / "logical_replication"
        health_copy = deployed / "plugins" / "module_utils" / "health.py"
        assert health_copy.read_text() == (REPO_ROOT / "plugins" / "module_utils" / "health.py").read_text()
        for secret in lab_passwords(endpoints["postgresql"]):
            assert secret not in first.stdout + second.stdout + third.stdout
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_role_systemd_runtime_without_systemd_says_what_to_do(tmp_path):
    if Path("/run/systemd/system").exists():
        pytest.skip("this host runs systemd: the role would install a real service")
    config = {
        "postgresql": {
            "db": {"kind": "publisher", "host": "127.0.0.1", "dbname": "app", "password_file": "/etc/inventium/db.pw"}
        },
        "influxdb": {"url": "http://127.0.0.1:8086", "api": 1, "database": "pglab"},
    }
    result, counts = run_role(
        tmp_path,
        {"sampler_runtime": "systemd", "sampler_config": config, "sampler_install_dir": str(tmp_path / "install")},
    )
    assert counts, result.stdout + result.stderr
    assert counts[1] == 1, result.stdout
    assert "does not run systemd" in result.stdout
    assert f"python3 {tmp_path}/install/inventium_sampler.py --config {tmp_path}/install/config.json" in result.stdout
    assert (tmp_path / "install" / "config.json").stat().st_mode & 0o777 == 0o600
