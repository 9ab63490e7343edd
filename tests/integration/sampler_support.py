"""What the tests of the metrics sampler and of the alert rules share (``test_sampler.py``, ``test_alerts.py``).

* :func:`running_influxd`: Debian's InfluxDB 1.x (``influxd``) on free loopback ports with its data
  in a temporary directory; yields a client of database ``pglab``.
* :func:`sampler_config`: the sampler's configuration for throwaway servers (password files 0600).
* :func:`parse_lines`: the sampler's line protocol (``--dry-run``) as tuples.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from lab_client import REPO_ROOT

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx

PROGRAM = REPO_ROOT / "roles" / "sampler" / "files" / "inventium_sampler.py"
HEARTBEAT_SQL = REPO_ROOT / "roles" / "publisher" / "files" / "schema" / "heartbeat.sql"
INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


def parse_lines(text):
    """``[(measurement, tags, fields, ts)]`` of the sampler's line protocol (it writes no escaped characters here)."""
    points = []
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        head, fields, ts = raw.rsplit(" ", 2)
        measurement, *tags = head.split(",")
        values = {}
        for item in fields.split(","):
            key, value = item.split("=", 1)
            if value.endswith("i"):
                values[key] = int(value[:-1])
            elif value.startswith('"'):
                values[key] = value.strip('"')
            else:
                values[key] = float(value)
        points.append((measurement, dict(t.split("=", 1) for t in tags), values, int(ts)))
    return points


def write_secret(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sampler_config(tmp_path: Path, nodes: dict, influxdb: dict | None = None) -> Path:
    """Write the sampler's configuration for ``nodes`` (``{name: (kind, server, dbname)}``, ``server`` a harness
    server) into ``tmp_path/sampler.json``, each password in a 0600 file beside it; returns its path."""
    section = {}
    for name, (kind, server, dbname) in nodes.items():
        section[name] = {
            "kind": kind,
            "host": server.host,
            "port": server.port,
            "dbname": dbname,
            "user": server.user,
            "password_file": write_secret(tmp_path / f"{name}.pw", server.password),
        }
    document = {"postgresql": section}
    if influxdb is not None:
        document["influxdb"] = influxdb
    path = tmp_path / "sampler.json"
    path.write_text(json.dumps(document))
    return path


@contextlib.contextmanager
def running_influxd(root: Path):
    """Debian's InfluxDB 1.x (``influxd``, installed by .ci/run) on free loopback ports, data under ``root``;
    yields a client of database ``pglab`` (created)."""
    if not os.path.exists(INFLUXD):
        pytest.fail("influxd is missing: install Debian's influxdb package (.ci/run does)")
    http_port, rpc_port = free_port(), free_port()
    (root / "influxdb.conf").write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{root}/meta"\n'
        f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
    )
    log = open(root / "influxd.log", "w")
    proc = subprocess.Popen([INFLUXD, "-config", str(root / "influxdb.conf")], stdout=log, stderr=subprocess.STDOUT)
    client = influx.InfluxClient(f"http://127.0.0.1:{http_port}", api=1, database="pglab")
    try:
        deadline = time.monotonic() + 30
        while not client.ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"influxd did not start: {(root / 'influxd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        client.query("CREATE DATABASE pglab")
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
