"""Benchmark: what the metrics sampler costs the lab's publisher, and how long its rounds take.

pgbench (TPC-B like) runs for the whole measurement against a database of its own
(``sampler_bench``, created on the lab publisher's cluster and dropped afterwards; the lab's
databases are not touched). Phases of ``--phase`` seconds alternate between *off* (no sampler)
and *on* (``roles/sampler/files/inventium_sampler.py --interval 1`` sampling every lab node and
container, writing to the lab's InfluxDB when ``.lab/endpoints.json`` has one, else
``--dry-run`` into a file). The TPS of each phase is the median of pgbench's per-second progress
reports, leaving out the first ``--settle`` seconds of each phase (process start-up, caches). The
sampler's own round latency comes from its ``sampler_round`` points (per node).

Prints the TPS per phase, the ratio on/off (target: a TPS cost below 2 %) and round latency
medians and 90th percentiles. Compare ratios from one run, not absolute numbers: the machine is
small and shared.

Usage (the lab must be up; holds the lab lock shared)::

    flock -s /tmp/inventium-lab.lock .venv/bin/python benchmarks/sampler_overhead.py [--phases 6] [--phase 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.paths import use_checkout  # noqa: E402

use_checkout()  # tests/support: the collection, tests/ and tests/integration/ on sys.path

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402

PROGRAM = ROOT / "roles" / "sampler" / "files" / "inventium_sampler.py"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
DATABASE = "sampler_bench"
PROGRESS = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps")


def publisher_of(endpoints):
    name, node = next((n, v) for n, v in endpoints["postgresql"].items() if v["kind"] == "publisher")
    password = Path(node["password_file"]).read_text().strip()
    return name, node, password


def conninfo(node, password, dbname):
    return psycopg.conninfo.make_conninfo(
        host=node["host"], port=node["port"], user=node["user"], password=password, dbname=dbname
    )


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", default=str(ROOT / ".lab" / "endpoints.json"))
    parser.add_argument("--phases", type=int, default=7, help="alternating phases, off first and last (default 7)")
    parser.add_argument("--phase", type=float, default=10, help="seconds per phase (default 10)")
    parser.add_argument("--settle", type=float, default=2, help="seconds left out at the start of a phase")
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients (default 2)")
    parser.add_argument("--interval", type=float, default=1, help="sampler interval (default 1)")
    args = parser.parse_args()

    endpoints = json.loads(Path(args.endpoints).read_text())
    _name, node, password = publisher_of(endpoints)
    admin = conninfo(node, password, node["dbname"])
    bench = conninfo(node, password, DATABASE)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    workdir = Path(tempfile.mkdtemp(prefix="sampler-bench-"))
    client = influx.client_from_endpoints(endpoints) if endpoints.get("influxdb") else None
    env = dict(os.environ, PGPASSWORD=password)
    try:
        subprocess.run([PGBENCH, "-i", "-q", "-s", "2", "-d", bench], check=True, capture_output=True, env=env)
        total = args.phases * args.phase + 3
        pgbench = subprocess.Popen(
            [PGBENCH, "-n", "-c", str(args.clients), "-j", "1", "-T", str(int(total) + 1), "-P", "1", bench],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        start = time.time()
        # Reaped children's CPU time: only the sampler runs end (are reaped) in between.
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        time.sleep(1)
        phases = []  # (label, t0, t1) relative to start
        sampler = None
        dry_run = workdir / "points.txt"
        for index in range(args.phases):
            on = index % 2 == 1
            t0 = time.time() - start
            if on:
                command = [
                    sys.executable,
                    str(PROGRAM),
                    "--endpoints",
                    args.endpoints,
                    "--interval",
                    str(args.interval),
                    "--log-level",
                    "WARNING",
                ]
                if client is None:
                    command.append("--dry-run")
                with open(dry_run, "a") as out:
                    sampler = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
            print(f"phase {index + 1}/{args.phases}: sampler {'on' if on else 'off'}", flush=True)
            time.sleep(args.phase)
            if sampler is not None:
                sampler.send_signal(signal.SIGTERM)
                _out, err = sampler.communicate(timeout=30)
                if sampler.returncode != 0:
                    print(f"sampler failed: {err}", file=sys.stderr)
                sampler = None
            phases.append(("on" if on else "off", t0, time.time() - start))
        bench_started = start
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        _out, err = pgbench.communicate(timeout=60)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")

    # pgbench's progress times count from its own start (about when `start` was taken).
    progress = [(float(m.group(1)), float(m.group(2))) for m in map(PROGRESS.match, err.splitlines()) if m]
    results = {"off": [], "on": []}
    print(
        f"\npgbench -c {args.clients} on the lab publisher ({os.cpu_count()} CPUs), {args.phase:.0f} s phases, "
        f"first {args.settle:.0f} s of each left out; sampler at {args.interval} s "
        f"{'writing to ' + str(client) if client else '(dry run: InfluxDB not in endpoints.json)'}"
    )
    for label, t0, t1 in phases:
        samples = [tps for t, tps in progress if t0 + args.settle < t <= t1]
        if not samples:
            continue
        median = statistics.median(samples)
        results[label].append(median)
        print(f"  sampler {label:<3}  {median:8.0f} tps  ({len(samples)} s)")
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print(
        f"\nmedian TPS off {off:.0f}, on {on:.0f}: on/off = {on / off:.3f} (TPS cost {100 * (1 - on / off):+.1f} %;"
        " target < 2 %)"
    )
    # Against drift (other load on a shared machine): each on phase against the mean of the off
    # phases around it.
    ratios = []
    for index in range(1, min(len(results["on"]), len(results["off"])) + 1):
        around = results["off"][index - 1 : index + 1]
        if index - 1 < len(results["on"]):
            ratios.append(results["on"][index - 1] / statistics.mean(around))
    if ratios:
        ratio = statistics.median(ratios)
        print(
            f"on / neighbouring off phases: {', '.join(f'{r:.3f}' for r in ratios)}; median {ratio:.3f}"
            f" (TPS cost {100 * (1 - ratio):+.1f} %)"
        )
    print(
        f"load average at the end: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (other work on the machine"
        " makes single phases noisy)"
    )

    cpu = (children_after.ru_utime + children_after.ru_stime) - (children_before.ru_utime + children_before.ru_stime)
    seconds_on = sum(t1 - t0 for label, t0, t1 in phases if label == "on")
    print(
        f"sampler process CPU: {cpu:.2f} s in {seconds_on:.0f} s sampling = {100 * cpu / seconds_on:.1f} % of one CPU"
        " (start-up included; the servers' work for its queries is not)"
    )

    durations = {}
    if client is not None:
        since = int(bench_started * 1e9)
        query = f"SELECT duration_ms FROM sampler_round WHERE time > {since} GROUP BY node"  # noqa: S608
        for row in client.query(query):
            durations.setdefault(row["node"], []).append(row["duration_ms"])
    else:
        for line in dry_run.read_text().splitlines():
            if line.startswith("sampler_round,"):
                tags, fields, _ts = line.split(" ")
                node_name = dict(t.split("=") for t in tags.split(",")[1:])["node"]
                value = dict(f.split("=") for f in fields.split(","))["duration_ms"]
                durations.setdefault(node_name, []).append(float(value))
    print("\nsampler round latency (all queries of one node, persistent connection):")
    for node_name, values in sorted(durations.items()):
        print(
            f"  {node_name:<12} median {statistics.median(values):6.2f} ms  p90 {percentile(values, 0.9):6.2f} ms"
            f"  ({len(values)} rounds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
