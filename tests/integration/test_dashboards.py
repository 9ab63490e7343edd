"""Every Grafana panel's InfluxQL returns data from the real lab (issue O1).

Grafana itself cannot run on this machine (no image, no repository), so its part is done here
the way Grafana does it: the lab's InfluxDB (playbooks/metrics.yml) receives ~20 s of points from
the REAL sampler sampling the real lab, then every target query of every provisioned dashboard
(roles/grafana/files/dashboards/*.json) runs against that InfluxDB with Grafana's macros
substituted ($timeFilter -> the sampling period, $__interval -> 2s, template variables -> all
values), and each must return rows from this sampling run. The template variables' own queries
must list values too. No mock is involved there; the last test runs the grafana role against a
MOCK of Grafana's server (named so) to check the role's plumbing.

The exceptions are stated, not hidden: the conflict counters ``confl_*`` of
pg_stat_subscription_stats exist on PostgreSQL 18+ only; that target must return data when a
lab subscriber runs 18+, and no error otherwise. Likewise the slots' failover sync state
(``failover``, ``synced``: the "Failover slots" panel) exists on PostgreSQL 17+ only: that target
must return data when a lab node of 17+ has a replication slot, and nothing otherwise (the
default lab's slots are on its PostgreSQL 15 publisher; a 17+ lab such as lab18 has them).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from metrics_lab import REPO_ROOT, ensure_metrics_lab, influx_client, lab_unavailable, run_sampler
from support.ansible import DEFAULT_CALLBACK, ansible_env

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

DASHBOARDS = sorted((REPO_ROOT / "roles" / "grafana" / "files" / "dashboards").glob("*.json"))
SAMPLE_SECONDS = 20
PG18_ONLY = re.compile(r"/\^confl_/")
PG17_SLOTS_ONLY = re.compile(r'"(failover|synced)"')

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]


def targets() -> list[tuple[str, str, str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                out.append((dashboard["title"], panel["title"], target["refId"], target["query"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for variable in dashboard.get("templating", {}).get("list", []):
            out.append((dashboard["title"], variable["name"], variable["query"]))
    return out


def substitute(query: str, since: dt.datetime) -> str:
    """Grafana's macros as Grafana expands them for 'all values' of every variable."""
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    query = query.replace("$timeFilter", f"time >= '{stamp}'")
    query = query.replace("$__interval", "2s")
    query = query.replace("$node", ".*").replace("$container", ".*")
    assert not re.search(r"\$(?!tag_|col\b)[A-Za-z_]", query), f"unsubstituted macro in {query}"
    return query


@pytest.fixture(scope="module")
def sampled() -> dict:
    endpoints = ensure_metrics_lab()
    since = dt.datetime.now(dt.UTC).replace(microsecond=0)
    started = time.monotonic()
    log = run_sampler(SAMPLE_SECONDS)
    print(f"sampler ran {time.monotonic() - started:.1f} s", flush=True)
    majors, slots = {}, {}
    for node, spec in endpoints["postgresql"].items():
        password = Path(spec["password_file"]).read_text().strip()
        with psycopg.connect(
            host=spec["host"],
            port=spec["port"],
            dbname=spec["dbname"],
            user=spec["user"],
            password=password,
            connect_timeout=10,
        ) as conn:
            majors[node] = conn.info.server_version // 10000
            slots[node] = conn.execute("SELECT count(*) FROM pg_catalog.pg_replication_slots").fetchone()[0]
    return {"since": since, "log": log, "majors": majors, "slots": slots, "client": influx_client()}


def test_there_are_dashboards() -> None:
    assert {p.name for p in DASHBOARDS} >= {"replication.json", "locks-and-activity.json", "containers.json"}


@pytest.mark.parametrize(("dashboard", "panel", "ref", "query"), targets(), ids=lambda v: str(v)[:40])
def test_panel_query_returns_data(sampled: dict, dashboard: str, panel: str, ref: str, query: str) -> None:
    rows = sampled["client"].query(substitute(query, sampled["since"]))
    if PG18_ONLY.search(query):
        subscribers18 = [n for n, major in sampled["majors"].items() if major >= 18 and n != "publisher"]
        if not subscribers18:
            assert rows == [], f"{dashboard} / {panel} {ref}: confl_* points without a PostgreSQL 18 node"
            return
    if PG17_SLOTS_ONLY.search(query):
        slots17 = [n for n, major in sampled["majors"].items() if major >= 17 and sampled["slots"][n]]
        if not slots17:
            assert rows == [], f"{dashboard} / {panel} {ref}: failover/synced points without a 17+ node with slots"
            return
    assert rows, f"{dashboard} / {panel} {ref} returned no data for the sampling run:\n{query}"
    values = [v for row in rows for k, v in row.items() if k not in ("time", "_measurement") and v is not None]
    assert values, f"{dashboard} / {panel} {ref}: rows but no values: {rows[:3]}"


@pytest.mark.parametrize(("dashboard", "name", "query"), variable_queries(), ids=lambda v: str(v)[:40])
def test_template_variable_lists_values(sampled: dict, dashboard: str, name: str, query: str) -> None:
    values = {row["value"] for row in sampled["client"].query(query)}
    if '"locks"' in query:  # every node reports locks
        assert values >= set(sampled["majors"]), f"{dashboard}: ${name} lists {values}"
    assert values, f"{dashboard}: ${name} lists nothing"


# ------------------------------------------------------------------ the grafana role, with a MOCK Grafana
# Grafana cannot be obtained here, so this test runs the role's docker path with a MOCK of
# Grafana's server: a small HTTP server in an image of our own (FROM inventium/sampler, user 472
# with gid 0 like the official image) that answers /api/health and, for
# /api/datasources/uid/<uid>/health (basic auth with the admin password the role mounted), reads
# the data source the role provisioned (URL, user, database, the $__file{} secret) and queries the
# REAL lab InfluxDB with it over the lab network, and lists the mounted dashboards. What it checks
# is the role's plumbing (mounts, file ownership, secrets, network, restart), not Grafana itself.
MOCK_GRAFANA = r"""
import base64, glob, json, os, re, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

def provisioned():
    text = open(glob.glob("/etc/grafana/provisioning/datasources/*.yml")[0]).read()
    def get(key):
        found = re.search(rf"^\s+{key}: (.*)$", text, re.M)
        return found.group(1).strip().strip('"') if found else ""
    secret = open(re.search(r"\$__file\{([^}]+)\}", text).group(1)).read().strip()
    return {"url": get("url"), "user": get("user"), "db": get("dbName"), "secret": secret}

class Handler(BaseHTTPRequestHandler):
    def reply(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/api/health":
            return self.reply(200, {"database": "ok", "version": "mock"})
        if not re.match(r"^/api/datasources/uid/[^/]+/health$", self.path):
            return self.reply(404, {"message": "not found"})
        user = os.environ.get("GF_SECURITY_ADMIN_USER", "admin")
        admin = open(os.environ["GF_SECURITY_ADMIN_PASSWORD__FILE"]).read().strip()
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(f"{user}:{admin}".encode()).decode():
            return self.reply(401, {"message": "invalid username or password"})
        try:
            ds = provisioned()
            dashboards = sorted(os.path.basename(p) for p in glob.glob("/etc/grafana/dashboards/inventium/*.json"))
            query = urllib.parse.urlencode({"db": ds["db"], "q": "SHOW MEASUREMENTS"})
            request = urllib.request.Request(ds["url"] + "/query?" + query)
            token = base64.b64encode(f"{ds['user']}:{ds['secret']}".encode()).decode()
            request.add_header("Authorization", "Basic " + token)
            result = json.load(urllib.request.urlopen(request, timeout=5))
            names = [v[0] for v in result["results"][0].get("series", [{}])[0].get("values", [])]
            message = f"mock: measurements {sorted(names)} dashboards {dashboards}"
            return self.reply(200, {"status": "OK", "message": message})
        except Exception as exc:
            return self.reply(400, {"status": "ERROR", "message": f"mock: {exc}"})

HTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
"""
MOCK_IMAGE = "inventium-test/grafana-mock:1"


def test_grafana_role_against_a_mock_grafana(sampled: dict, tmp_path: Path) -> None:
    context = tmp_path / "mock"
    context.mkdir()
    (context / "mock_grafana.py").write_text(MOCK_GRAFANA)
    (context / "Dockerfile").write_text(
        "FROM inventium/sampler:bookworm\nCOPY mock_grafana.py /mock_grafana.py\n"
        'USER 472:0\nCMD ["python3", "/mock_grafana.py"]\n'
    )
    build = subprocess.run(
        ["docker", "build", "-q", "-t", MOCK_IMAGE, str(context)], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stderr
    endpoint = json.loads((REPO_ROOT / ".lab" / "endpoints.json").read_text())["influxdb"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    name = f"grafana-mock-{uuid.uuid4().hex[:8]}"
    variables = {
        "grafana_docker_image": MOCK_IMAGE,
        "grafana_container_name": name,
        "grafana_port": port,
        "grafana_config_dir": str(tmp_path / "grafana"),
        "grafana_secrets_dir": str(tmp_path / "secrets"),
        "grafana_influxdb": {
            "url": endpoint["network_url"],
            "api": 1,
            "database": endpoint["database"],
            "username": endpoint["username"],
            "password_file": endpoint["password_file"],
        },
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "play.yml").write_text(
        "- name: Grafana role with a mock Grafana\n  hosts: localhost\n  gather_facts: false\n"
        "  roles:\n    - role: inventium.logical_replication.grafana\n"
    )
    env = ansible_env(DEFAULT_CALLBACK)
    command = [
        shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-e",
        f"@{tmp_path / 'vars.json'}",
        str(tmp_path / "play.yml"),
    ]
    try:
        runs = [
            subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
            for _attempt in range(2)
        ]
        first, second = (r.stdout + r.stderr for r in runs)
        assert runs[0].returncode == 0, first[-3000:]
        assert "Grafana data source inventium-influxdb: OK - mock: measurements" in first, first[-3000:]
        for measurement in ("locks", "replication", "heartbeat_lag"):
            assert f"'{measurement}'" in first
        assert "'replication.json'" in first
        assert "WARNING: Grafana is not available" not in first
        assert runs[1].returncode == 0, second[-3000:]
        assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", second), second[-2000:]
        secrets = [(tmp_path / "secrets" / "grafana-admin").read_text().strip()]
        secrets.append(Path(endpoint["password_file"]).read_text().strip())
        for secret in secrets:
            assert secret not in first + second
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", f"{name}-data"], capture_output=True, check=False)
