"""Benchmark: what the metrics sampler costs a publisher under pgbench, and how long its rounds take.

pgbench (TPC-B like, ``--clients``) runs for the whole measurement. Phases of ``--phase`` seconds
alternate between *off* (no sampler) and *on* (``roles/sampler/files/inventium_sampler.py
--interval 1``), off first and last (``--phases``, odd, default 21: 10 on phases between 11 off
ones). The first ``--settle`` seconds of every phase are left out of every figure (process
start-up, connection, caches).

Three figures:

* **CPU cost.** Over the settled part of the on phases: the sampler process's CPU seconds
  (``/proc/<pid>/task/*/schedstat``: the scheduler's nanoseconds on a CPU of each thread), the CPU
  of its server backends (the backends whose ``pg_stat_activity.application_name`` is the
  sampler's, read from ``/proc`` the same way) and the publisher's CPU (the postmaster, its reaped
  children and its live children: pgbench's sessions, the WAL sender, the background processes,
  the sampler's backend). The cost is (sampler + its backends) / publisher CPU; target below 2 %.
  Server CPU is read only from servers whose backends this host's ``/proc`` shows (checked with the
  client port of a connection of the benchmark's own), so not from containers.
* **TPS ratio.** Each on phase's TPS (mean of pgbench's per-second progress reports in the settled
  part) divided by the mean of the two off phases around it (this cancels a linear drift of the
  machine's speed); the mean of those ratios with a 95 % Student t confidence interval.
* **Round latency** per node: median and 90th percentile of the sampler's ``sampler_round``
  ``duration_ms`` in the settled parts (all queries of one node's round), in a sampler phase before
  pgbench starts and in the on phases under the load; target 5 ms under load. Before the load and
  again under it, every query of a round and the pipelined round are timed alone
  (``--query-rounds`` times each in a row, one persistent connection per node), with the CPU of
  that connection's backend per call, to show which ones cost the most.

Default: throwaway servers of the test harness (``tests/integration/pg_harness.py``): a PostgreSQL
15 publisher and a 17 subscriber, pgbench's tables in database ``app`` published (with the
heartbeat table) and subscribed, pgbench running against the publisher's ``app``, so the load is
replicated like a lab experiment's: the publisher's CPU includes the WAL sender's decoding, the
sampler's queries see an active sender, slot, apply worker and pgbench's sessions and locks. The
sampler gets a ``--config`` file naming both nodes and runs ``--dry-run`` (line protocol into a
file, no InfluxDB) ``--no-containers``.

``--lab``: the Docker lab (must be up; hold its lock shared): pgbench in a database of its own
(``sampler_bench``, created on the lab publisher's cluster and dropped afterwards; the lab's
databases are not touched), the sampler with ``--endpoints`` writing to the lab's InfluxDB when
``.lab/endpoints.json`` has one. Server CPU is accounted for the publisher (on the host) only.

Compare ratios from one run, not absolute numbers: the machine is small and shared.

Usage::

    .venv/bin/python benchmarks/sampler_overhead.py [--phases 21] [--phase 10] [--settle 4]
    flock -s /tmp/inventium-lab.lock .venv/bin/python benchmarks/sampler_overhead.py --lab
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import SAMPLER_PROGRAM, load_sampler, use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils import connection  # noqa: E402

PROGRAM = SAMPLER_PROGRAM
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
LAB_DATABASE = "sampler_bench"
APP_DATABASE = "app"
PROGRESS = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_APPLICATION_NAME = "sampler-overhead-bench"


SAMPLER = load_sampler()  # its APPLICATION_NAME and its round's queries


# ----------------------------------------------------------------------------------------------
# Statistics (stdlib only)
# ----------------------------------------------------------------------------------------------


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]


def t_cdf(x, df):
    """Student's t distribution function (Simpson's rule on the density from 0 to |x|)."""
    norm = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def density(t):
        return norm * (1 + t * t / df) ** (-(df + 1) / 2)

    steps = 2000
    width = abs(x) / steps
    area = density(0) + density(abs(x))
    area += sum((4 if i % 2 else 2) * density(i * width) for i in range(1, steps))
    half = area * width / 3
    return 0.5 + half if x >= 0 else 0.5 - half


def t_quantile(probability, df):
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`)."""
    low, high = -1000.0, 1000.0
    for _step in range(100):
        middle = (low + high) / 2
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def mean_interval(values, confidence=0.95):
    """Mean and its ``confidence`` Student t interval: ``(mean, low, high)``."""
    mean = statistics.mean(values)
    half = t_quantile(0.5 + confidence / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


# ----------------------------------------------------------------------------------------------
# CPU time from /proc
# ----------------------------------------------------------------------------------------------


def proc_stat(pid):
    """Fields of ``/proc/<pid>/stat`` after the command name (index 0 = state), or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid):
    """CPU seconds of ``pid``'s threads (0.0 when it is gone): the scheduler's nanosecond counts in
    ``/proc/<pid>/task/<tid>/schedstat`` (the sampler has a thread per node).

    (``/proc/<pid>/stat``'s utime + stime is the same total in 10 ms clock ticks, too coarse for a process that
    works a millisecond a second; it is the fallback.)
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) for tid in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        fields = proc_stat(pid)
        return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_cpu(postmaster):
    """CPU seconds of a PostgreSQL server: the postmaster, its reaped children and its live children."""
    fields = proc_stat(postmaster)
    if fields is None:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS  # cutime, cstime: exited children (clock ticks)
    total = process_cpu(postmaster) + reaped
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            child = proc_stat(entry.name)
            if child is not None and int(child[1]) == postmaster:
                total += process_cpu(entry.name)
    return total


class Node:
    """A sampled server seen through a connection of the benchmark's own (``application_name`` its own)."""

    def __init__(self, name, conninfo):
        self.name = name
        self.conn = psycopg.connect(conninfo, autocommit=True, application_name=BENCH_APPLICATION_NAME)
        self.postmaster = self._local_postmaster()

    def _local_postmaster(self):
        """The postmaster's pid when this host's /proc shows the server's backends, else None (a container)."""
        return int(proc_stat(self.conn.info.backend_pid)[1]) if self.is_local(self.conn) else None

    @staticmethod
    def is_local(conn):
        """Whether /proc/<backend pid> of ``conn`` is its backend (not a container's process of the same number)."""
        with conn.cursor(row_factory=tuple_row) as cursor:
            port = cursor.execute("SELECT inet_client_port()").fetchone()[0]
        try:
            command = Path(f"/proc/{conn.info.backend_pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return f"({port})" in command

    def sampler_backends(self):
        query = "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name = %s"
        return [row[0] for row in self.conn.execute(query, (SAMPLER.APPLICATION_NAME,))]

    def close(self):
        self.conn.close()


# ----------------------------------------------------------------------------------------------
# The servers: throwaway (default) or the lab
# ----------------------------------------------------------------------------------------------


def write_password(directory, name, password):
    path = Path(directory) / f"{name}.pw"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return str(path)


def publish_pgbench(pub, sub, scale):
    """pgbench's tables and the heartbeat table in ``app`` on both servers, published and subscribed (copied)."""
    for server in (pub, sub):
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(APP_DATABASE)))
    heartbeat = (ROOT / "roles" / "publisher" / "files" / "schema" / "heartbeat.sql").read_text()
    subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), pub.conninfo(APP_DATABASE)], check=True, capture_output=True)
    # The subscriber gets empty tables with their primary keys: d(rop) t(ables) p(rimary keys).
    subprocess.run(
        [PGBENCH, "-i", "-I", "dtp", "-s", str(scale), sub.conninfo(APP_DATABASE)], check=True, capture_output=True
    )
    sub.execute(heartbeat, dbname=APP_DATABASE)
    pub.execute(heartbeat, dbname=APP_DATABASE)
    pub.execute(
        "CREATE PUBLICATION bench_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers,"
        " pgbench_history, public.replication_heartbeat",
        dbname=APP_DATABASE,
    )
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION bench_sub CONNECTION {} PUBLICATION bench_pub").format(
            sql.Literal(pub.conninfo(APP_DATABASE))
        ),
        dbname=APP_DATABASE,
    )
    deadline = time.monotonic() + 120
    while sub.scalar("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'", dbname=APP_DATABASE):
        if time.monotonic() > deadline:
            raise RuntimeError("the subscription did not finish its initial copy in 120 s")
        time.sleep(0.2)


@contextlib.contextmanager
def harness_servers(args, workdir):
    """A 15 publisher and a 17 subscriber of the test harness; yields the run's description."""
    from pg_harness import PgHarness, install_sigterm_handler

    install_sigterm_handler()  # an interrupted run still removes its servers
    harness = PgHarness([args.publisher_major, args.subscriber_major])
    try:
        pub = harness.new_server(args.publisher_major, name="publisher")
        sub = harness.new_server(args.subscriber_major, name="subscriber1")
        publish_pgbench(pub, sub, args.scale)
        config = {
            "postgresql": {
                name: {
                    "kind": kind,
                    "host": server.host,
                    "port": server.port,
                    "dbname": APP_DATABASE,
                    "user": server.user,
                    "password_file": write_password(workdir, name, server.password),
                }
                for name, kind, server in (("publisher", "publisher", pub), ("subscriber1", "subscriber", sub))
            }
        }
        config_path = workdir / "sampler.json"
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        yield {
            "where": f"throwaway servers: PostgreSQL {pub.version} publisher, {sub.version} subscriber",
            "sampler_args": ["--config", str(config_path), "--dry-run", "--no-containers"],
            "client": None,
            "bench_conninfo": pub.conninfo(APP_DATABASE),
            "pgbench_env": None,
            "write_beats": True,
            "nodes": {"publisher": pub.conninfo(APP_DATABASE), "subscriber1": sub.conninfo(APP_DATABASE)},
            "publisher": "publisher",
        }
    finally:
        harness.close()


def lab_conninfo(node, dbname):
    password = Path(node["password_file"]).read_text().strip()
    return psycopg.conninfo.make_conninfo(
        host=node["host"], port=node["port"], user=node["user"], password=password, dbname=dbname
    )


@contextlib.contextmanager
def lab_servers(args, _workdir):
    """The lab's nodes, pgbench in a database of its own on the lab publisher's cluster."""
    endpoints = json.loads(Path(args.endpoints).read_text())
    nodes = endpoints["postgresql"]
    publisher = next((name for name, node in nodes.items() if node["kind"] == "publisher"), None)
    if publisher is None:
        raise SystemExit(f"{args.endpoints} names no publisher: is the lab built (make lab)?")
    admin = lab_conninfo(nodes[publisher], nodes[publisher]["dbname"])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {LAB_DATABASE}")
        conn.execute(f"CREATE DATABASE {LAB_DATABASE}")
    client = influx.client_from_endpoints(endpoints) if endpoints.get("influxdb") else None
    password = Path(nodes[publisher]["password_file"]).read_text().strip()
    bench = lab_conninfo(nodes[publisher], LAB_DATABASE)
    try:
        env = dict(os.environ, PGPASSWORD=password)
        subprocess.run([PGBENCH, "-i", "-q", "-s", str(args.scale), bench], check=True, capture_output=True, env=env)
        yield {
            "where": "the lab" + (f", writing to {client}" if client else " (dry run: InfluxDB not in endpoints.json)"),
            "sampler_args": ["--endpoints", args.endpoints] + ([] if client else ["--dry-run"]),
            "client": client,
            "bench_conninfo": bench,
            "pgbench_env": env,
            "write_beats": False,  # the lab's heartbeat rows belong to the lab's own sampler
            "nodes": {name: lab_conninfo(node, node["dbname"]) for name, node in nodes.items()},
            "publisher": publisher,
        }
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {LAB_DATABASE} WITH (FORCE)")


# ----------------------------------------------------------------------------------------------
# The phases
# ----------------------------------------------------------------------------------------------


class Snapshot:
    """CPU seconds at one moment: the sampler process, its backends per node, each local server."""

    def __init__(self, nodes, sampler_pid=None, backends=None):
        self.time = time.time()
        self.sampler = process_cpu(sampler_pid) if sampler_pid else 0.0
        self.backends = {name: sum(process_cpu(pid) for pid in pids) for name, pids in (backends or {}).items()}
        self.servers = {name: server_cpu(node.postmaster) for name, node in nodes.items() if node.postmaster}


def run_phase(args, command, nodes, points_path, on, label):
    """One phase of ``args.phase`` seconds, the sampler running when ``on``: its window, CPU snapshots, tps later."""
    phase = {"on": on, "label": label, "t0": time.time()}
    sampler = None
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if on:
        with open(points_path, "a") as out:
            sampler = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
    print(f"phase {label}: sampler {'on' if on else 'off'}", flush=True)
    try:
        time.sleep(max(0.0, phase["t0"] + args.settle - time.time()))
        backends = {name: node.sampler_backends() for name, node in nodes.items()} if on else {}
        begin = Snapshot(nodes, sampler.pid if sampler else None, backends)
        time.sleep(max(0.0, phase["t0"] + args.phase - time.time()))
        end = Snapshot(nodes, sampler.pid if sampler else None, backends)
        phase.update(begin=begin, end=end, backends=backends, t1=time.time())
    finally:  # an interrupted run must not leave a sampler retrying servers that are gone
        if sampler is not None:
            sampler.send_signal(signal.SIGTERM)
    if sampler is not None:
        _out, err = sampler.communicate(timeout=30)
        if sampler.returncode != 0 or err.strip():
            print(f"sampler exit {sampler.returncode}: {err.strip()}", file=sys.stderr)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Reaped children's CPU: only the sampler ends (is reaped) during a phase. Start-up and exit included.
        phase["sampler_whole"] = sum(
            getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime")
        )
    return phase


def run_phases(args, run, nodes, points_path):
    """A sampler phase before the load, then alternating off/on phases under pgbench.

    Returns (pgbench's process, its start time, the phase before the load, the phases under load).
    """
    command = [sys.executable, str(PROGRAM), *run["sampler_args"], "--interval", str(args.interval)]
    command += ["--log-level", "WARNING"]
    quiet = run_phase(args, command, nodes, points_path, True, "before the load")
    total = args.phases * args.phase + args.query_seconds + 5
    pgbench = subprocess.Popen(
        [PGBENCH, "-n", "-c", str(args.clients), "-j", "1", "-T", str(int(total)), "-P", "1", run["bench_conninfo"]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=run["pgbench_env"],
    )
    start = time.time()
    time.sleep(2)  # pgbench connected and running
    phases = [
        run_phase(args, command, nodes, points_path, index % 2 == 1, f"{index + 1}/{args.phases}")
        for index in range(args.phases)
    ]
    return pgbench, start, quiet, phases


def time_queries(run, rounds):
    """Each query of a sampler round run ``rounds`` times in a row on one persistent connection per node.

    Returns ``{node: {query: (latencies in s, server CPU s per call or None)}}``; the server CPU is the
    /proc reading of the connection's backend (local servers only; 10 ms clock ticks over all the calls).
    """
    results = {}
    for name, conninfo in run["nodes"].items():
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        login = {
            "login_host": params["host"],
            "login_port": int(params["port"]),
            "login_db": params["dbname"],
            "login_user": params["user"],
            "login_password": params.get("password"),
            "connect_timeout": 5,
        }
        conn = connection.connect(login, autocommit=True, application_name=BENCH_APPLICATION_NAME)
        with contextlib.closing(conn):
            local = Node.is_local(conn)
            queries = SAMPLER.query_calls(conn, name, beat=run["write_beats"] and name == run["publisher"])
            timings = {}
            for query, call in queries.items():
                for _warmup in range(10):  # psycopg prepares a statement after 5 executions
                    call()
                latencies = []
                cpu_before = process_cpu(conn.info.backend_pid)
                for _round in range(rounds):
                    begin = time.perf_counter()
                    call()
                    latencies.append(time.perf_counter() - begin)
                    time.sleep(0.005)
                cpu = (process_cpu(conn.info.backend_pid) - cpu_before) / rounds if local else None
                timings[query] = (latencies, cpu)
        results[name] = timings
    return results


def round_durations(run, points_path, since):
    """``{node: [(time, duration_ms, turn_wait_ms or None)]}`` of the sampler's rounds (older samplers: no wait)."""
    durations = {}
    if run["client"] is not None:
        query = (
            f"SELECT duration_ms, turn_wait_ms FROM sampler_round WHERE time > {int(since * 1e9)}"  # noqa: S608
            " GROUP BY node"
        )
        for row in run["client"].query(query):
            at = datetime.datetime.fromisoformat(row["time"]).timestamp()  # RFC 3339 text
            durations.setdefault(row["node"], []).append((at, row["duration_ms"], row.get("turn_wait_ms")))
        return durations
    for line in points_path.read_text().splitlines():
        if line.startswith("sampler_round,"):
            tags, fields, ts = line.split(" ")
            node = dict(t.split("=") for t in tags.split(",")[1:])["node"]
            values = dict(f.split("=") for f in fields.split(","))
            wait = values.get("turn_wait_ms")
            entry = (int(ts) / 1e9, float(values["duration_ms"]), None if wait is None else float(wait))
            durations.setdefault(node, []).append(entry)
    return durations


def report(args, run, quiet, phases, progress, durations, queries):
    print(
        f"\n{run['where']}; pgbench -c {args.clients} on the publisher, {os.cpu_count()} CPUs, {args.phases} phases"
        f" of {args.phase:.0f} s (first {args.settle:.0f} s of each left out), sampler every {args.interval} s"
    )
    for phase in phases:
        window = [tps for t, tps in progress if phase["t0"] + args.settle < t <= phase["t1"]]
        phase["tps"] = statistics.mean(window) if window else None
        print(f"  sampler {'on' if phase['on'] else 'off':<3}  {phase['tps'] or 0:8.0f} tps  ({len(window)} s)")

    # TPS: each on phase against the mean of the off phases on either side.
    ratios = []
    for index in range(1, len(phases) - 1, 2):
        before, on, after = phases[index - 1]["tps"], phases[index]["tps"], phases[index + 1]["tps"]
        if before and on and after:
            ratios.append(on / ((before + after) / 2))
    if len(ratios) >= 2:
        mean, low, high = mean_interval(ratios)
        print(
            f"\nTPS on / mean of the neighbouring off phases, {len(ratios)} on phases: "
            f"{', '.join(f'{r:.3f}' for r in ratios)}\n"
            f"  mean {mean:.4f}, 95 % CI [{low:.4f}, {high:.4f}] (TPS cost {100 * (1 - mean):+.2f} %,"
            f" CI [{100 * (1 - high):+.2f} %, {100 * (1 - low):+.2f} %]); median {statistics.median(ratios):.4f}"
        )

    # CPU: the settled windows of the on phases.
    on_phases = [p for p in phases if p["on"]]
    seconds = sum(p["end"].time - p["begin"].time for p in on_phases)
    sampler_cpu = sum(p["end"].sampler - p["begin"].sampler for p in on_phases)
    backend_cpu = {
        name: sum(p["end"].backends.get(name, 0.0) - p["begin"].backends.get(name, 0.0) for p in on_phases)
        for name in run["nodes"]
    }
    local = [name for name in run["nodes"] if name in on_phases[0]["begin"].servers]
    server_cpu_on = {name: sum(p["end"].servers[name] - p["begin"].servers[name] for p in on_phases) for name in local}
    off_phases = [p for p in phases if not p["on"]]
    off_seconds = sum(p["end"].time - p["begin"].time for p in off_phases)
    server_cpu_off = {
        name: sum(p["end"].servers[name] - p["begin"].servers[name] for p in off_phases) for name in local
    }
    publisher = run["publisher"]
    print(f"\nCPU over the settled parts of the on phases ({seconds:.1f} s):")
    print(f"  sampler process            {sampler_cpu:7.3f} s  ({100 * sampler_cpu / seconds:.2f} % of one CPU)")
    whole = sum(p.get("sampler_whole", 0.0) for p in on_phases)
    whole_seconds = sum(p["t1"] - p["t0"] for p in on_phases)
    print(f"    (whole runs with start-up and exit: {whole:.3f} s in {whole_seconds:.1f} s)")
    for name in run["nodes"]:
        if name in local:
            print(f"  sampler backend on {name:<12} {backend_cpu[name]:7.3f} s")
    for name in local:
        print(
            f"  server {name:<19} {server_cpu_on[name]:7.3f} s  ({server_cpu_on[name] / seconds:.2f} CPUs;"
            f" off phases {server_cpu_off[name] / off_seconds:.2f} CPUs)"
        )
    if publisher in local and server_cpu_on[publisher] > 0:
        denominator = server_cpu_on[publisher]
        own = sampler_cpu + sum(backend_cpu[name] for name in local)
        print(
            f"  cost = (sampler process + its backends) / publisher CPU = ({sampler_cpu:.3f} + "
            f"{' + '.join(f'{backend_cpu[name]:.3f}' for name in local)}) / {denominator:.3f} = "
            f"{100 * own / denominator:.2f} % (target < 2 %)"
        )
        print(
            f"    of which on the publisher itself (its sampler backend): "
            f"{100 * backend_cpu[publisher] / denominator:.2f} %"
        )

    print("\nsampler round latency (all queries of one node, persistent connection; target <= 5 ms under load):")
    for label, windows in (("before the load", [quiet]), ("under load", on_phases)):
        for name, values in sorted(durations.items()):
            settled = [entry for entry in values for p in windows if p["t0"] + args.settle <= entry[0] <= p["t1"]]
            if settled:
                ms = [duration for _at, duration, _wait in settled]
                waits = [wait for _at, _duration, wait in settled if wait is not None]
                turn = f"; waited for its turn: median {statistics.median(waits):.2f} ms" if waits else ""
                print(
                    f"  {label:<16} {name:<12} median {statistics.median(ms):6.2f} ms"
                    f"  p90 {percentile(ms, 0.9):6.2f} ms  ({len(ms)} rounds{turn})"
                )
    for label, timed in queries.items():
        if not timed:
            continue
        print(f"\neach query of a round alone, {label} (median / p90 ms, its backend's CPU ms per call):")
        for name, timings in timed.items():
            parts = []
            for query, (values, cpu) in sorted(timings.items(), key=lambda item: -statistics.median(item[1][0])):
                server = f", CPU {1000 * cpu:.2f}" if cpu is not None else ""
                parts.append(
                    f"{query} {1000 * statistics.median(values):.2f}/{1000 * percentile(values, 0.9):.2f}{server}"
                )
            print(f"  {name:<12} {', '.join(parts)}")
    print(
        f"\nload average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (other work on the machine"
        " makes single phases noisy)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", action="store_true", help="measure on the Docker lab (must be up)")
    parser.add_argument("--endpoints", default=str(ROOT / ".lab" / "endpoints.json"), help="the lab's endpoints")
    parser.add_argument("--phases", type=int, default=21, help="alternating phases, off first and last (odd; 21)")
    parser.add_argument("--phase", type=float, default=10, help="seconds per phase (default 10)")
    parser.add_argument(
        "--settle", type=float, default=4, help="seconds left out at the start of a phase (default 4: start-up)"
    )
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients (default 2)")
    parser.add_argument("--scale", type=int, default=2, help="pgbench scale (default 2)")
    parser.add_argument("--interval", type=float, default=1, help="sampler interval (default 1)")
    parser.add_argument("--query-rounds", type=int, default=100, help="rounds of single-query timings (0: none)")
    parser.add_argument("--publisher-major", type=int, default=15)
    parser.add_argument("--subscriber-major", type=int, default=17)
    args = parser.parse_args()
    if args.phases < 3 or args.phases % 2 == 0:
        parser.error("--phases must be odd and at least 3 (off first and last)")
    args.query_seconds = 60 if args.query_rounds else 0  # pgbench's -T margin: it is stopped when they are done

    workdir = Path(tempfile.mkdtemp(prefix="sampler-bench-"))  # the sampler's config, password files, points
    points_path = workdir / "points.txt"
    servers = lab_servers if args.lab else harness_servers
    try:
        with servers(args, workdir) as run:
            nodes = {name: Node(name, conninfo) for name, conninfo in run["nodes"].items()}
            try:
                quiet_queries = time_queries(run, args.query_rounds) if args.query_rounds else {}
                pgbench, start, quiet, phases = run_phases(args, run, nodes, points_path)
                queries = time_queries(run, args.query_rounds) if args.query_rounds else {}
                pgbench.send_signal(signal.SIGINT)
                _out, err = pgbench.communicate(timeout=60)
                durations = round_durations(run, points_path, quiet["t0"])
            finally:
                for node in nodes.values():
                    node.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # pgbench's progress times count from its own start (about `start`): moved to the epoch.
    progress = [(start + float(m.group(1)), float(m.group(2))) for m in map(PROGRESS.match, err.splitlines()) if m]
    report(args, run, quiet, phases, progress, durations, {"before the load": quiet_queries, "under load": queries})
    return 0


if __name__ == "__main__":
    sys.exit(main())
