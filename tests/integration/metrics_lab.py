"""The lab's metrics stack for the integration tests of dashboards and `make report`.

``ensure_metrics_lab()`` makes sure the localhost lab runs (``site.yml`` when the lab's
``endpoints.json`` has no PostgreSQL nodes yet) and that its InfluxDB is up and described in
``.lab/endpoints.json`` (``playbooks/metrics.yml``: the influxdb and grafana roles; a no-op
re-run when nothing changed). ``run_sampler()`` runs the real sampler
(``roles/sampler/files/inventium_sampler.py``) against the lab for a few seconds.
``influx_client()`` reads the lab's InfluxDB as the report and Grafana do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from lab_client import ENDPOINTS_FILE, REPO_ROOT, lab_unavailable, run_site

from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx

SAMPLER = REPO_ROOT / "roles" / "sampler" / "files" / "inventium_sampler.py"
METRICS_PLAYBOOK = "playbooks/metrics.yml"

__all__ = ["ENDPOINTS_FILE", "REPO_ROOT", "ensure_metrics_lab", "influx_client", "lab_unavailable", "run_sampler"]


def _endpoints() -> dict:
    try:
        return json.loads(ENDPOINTS_FILE.read_text())
    except (OSError, ValueError):
        return {}


_ENSURED: list[dict] = []  # once per pytest session: the playbook run is the slow part


def ensure_metrics_lab() -> dict:
    """The lab with its InfluxDB; returns the lab's endpoints.json."""
    if _ENSURED:
        return _ENSURED[0]
    if not _endpoints().get("postgresql"):
        started = time.monotonic()
        print("building the lab (site.yml) ...", flush=True)
        run = run_site()
        assert run.rc == 0, run.output[-3000:]
        print(f"lab built in {time.monotonic() - started:.0f} s", flush=True)
    started = time.monotonic()
    run = run_site(playbook=METRICS_PLAYBOOK)
    assert run.rc == 0, run.output[-3000:]
    print(f"{METRICS_PLAYBOOK}: {time.monotonic() - started:.1f} s", flush=True)
    document = _endpoints()
    assert document.get("influxdb"), "endpoints.json has no influxdb section after playbooks/metrics.yml"
    _ENSURED.append(document)
    return document


def influx_client() -> influx.InfluxClient:
    client = influx.client_from_endpoints(str(ENDPOINTS_FILE), timeout=30.0)
    assert client is not None, "endpoints.json has no influxdb section"
    return client


def run_sampler(seconds: int) -> str:
    """Run the real sampler on the lab for ``seconds`` at a 1 s interval; returns its log."""
    print(f"sampling the lab for {seconds} s ...", flush=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(SAMPLER),
            "--endpoints",
            str(ENDPOINTS_FILE),
            "--interval",
            "1",
            "--duration",
            str(seconds),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    assert proc.returncode == 0, f"sampler failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stderr + proc.stdout
