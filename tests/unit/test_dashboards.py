"""The Grafana dashboards and provisioning of the ``grafana`` role (no Grafana server needed).

- Every JSON in roles/grafana/files/dashboards is a valid Grafana dashboard: uid, title,
  schemaVersion, unique panel ids, grid positions, and targets with the provisioned InfluxDB data
  source, a raw InfluxQL ``query`` (``rawQuery``) that uses ``$timeFilter``, and ``GROUP BY
  time($__interval)`` for time series.
- The queries use only the measurement names of issue O1 and the fields and tags the sampler
  documents (roles/sampler/README.md); ``database`` (an InfluxQL keyword) is quoted.
- The provisioning YAML rendered by the role's own templates (tasks_from: render, through real
  ansible-playbook) is valid for InfluxDB 1.x (user + password from a file) and 2.x (token
  header from a file), contains no secret, and the dashboard provider points where the dashboards
  are mounted. (Whether Grafana then loads them can only be checked by a Grafana server, which is
  not available here.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE_DIR = REPO_ROOT / "roles" / "grafana"
DASHBOARD_DIR = ROLE_DIR / "files" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
SAMPLER_README = REPO_ROOT / "roles" / "sampler" / "README.md"
DATASOURCE_UID = "inventium-influxdb"
# Issue O1: the measurement names are fixed.
O1_MEASUREMENTS = {
    "locks",
    "activity",
    "database",
    "checkpoints",
    "statements",
    "replication",
    "replication_slot",
    "subscription",
    "heartbeat_lag",
    "container",
    "sampler_errors",
}
WANTED = {
    "inventium-replication": "Replication",
    "inventium-locks-activity": "Locks and activity",
    "inventium-containers": "Containers",
}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """{measurement: (fields, tags)} from the sampler's README (### `name` (...; tag(s) `x`) + tables)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    current = None
    for line in SAMPLER_README.read_text().splitlines():
        heading = re.match(r"^### `(\w+)`(.*)$", line)
        if heading:
            current = heading.group(1)
            out[current] = (set(), {"node", *re.findall(r"`(\w+)`", heading.group(2))})
            continue
        if line.startswith("## "):
            current = None
        if current and line.startswith("| `"):
            first_cell = line.split("|")[1]
            out[current][0].update(re.findall(r"`(\w+)`", first_cell))
    return out


def all_targets():
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                yield path.name, panel, target


def test_the_three_dashboards_exist() -> None:
    found = {load(p)["uid"]: load(p)["title"] for p in DASHBOARDS}
    assert found == WANTED


def test_role_announces_the_same_dashboard_uids() -> None:
    tasks = (ROLE_DIR / "tasks" / "main.yml").read_text()
    for uid in WANTED:
        assert f"'{uid}'" in tasks


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load(path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 30
    assert dashboard["time"]["from"].startswith("now-")
    panels = dashboard["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"]
        assert panel["type"] in {"timeseries", "table", "stat", "state-timeline"}
        assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < 24
        assert 0 < grid["w"] <= 24 - grid["x"]
        assert grid["h"] > 0
        assert panel["targets"], f"{panel['title']}: no targets"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
        assert variable["query"].startswith("SHOW TAG VALUES FROM ")


@pytest.mark.parametrize(
    ("name", "panel", "target"), list(all_targets()), ids=lambda v: v if isinstance(v, str) else None
)
def test_target_is_raw_influxql(name: str, panel: dict, target: dict) -> None:
    query = target["query"]
    assert target["rawQuery"] is True
    assert target["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
    assert query.startswith("SELECT ")
    assert "$timeFilter" in query
    if panel["type"] == "timeseries":
        assert "GROUP BY time($__interval)" in query
        assert target["resultFormat"] == "time_series"
    else:
        assert "GROUP BY time(" not in query
        assert target["resultFormat"] == "table"
    assert query.count("(") == query.count(")")


@pytest.mark.parametrize(
    ("name", "panel", "target"), list(all_targets()), ids=lambda v: v if isinstance(v, str) else None
)
def test_target_uses_only_documented_names(name: str, panel: dict, target: dict) -> None:
    docs = documented()
    query = target["query"]
    measurements = re.findall(r'FROM "(\w+)"', query)
    assert len(measurements) == 1, f"one quoted measurement per query: {query}"
    measurement = measurements[0]
    assert measurement in O1_MEASUREMENTS
    assert measurement in docs, f"{measurement} is not documented in roles/sampler/README.md"
    fields, tags = docs[measurement]
    select = query.split(" FROM ")[0]
    for field in re.findall(r'\w+\("(\w+)"\)', select):
        assert field in fields, f"{measurement}.{field} is not a documented field"
    for pattern in re.findall(r"\w+\(/(\^?\w+)/\)", select):
        assert any(re.match(pattern, f) for f in fields), f"no documented field matches /{pattern}/"
    rest = query.split(" FROM ")[1]
    for tag in re.findall(r'"(\w+)" =~', rest):
        assert tag in tags, f"{measurement} has no documented tag {tag}"
    group_by = rest.split("GROUP BY", 1)[1] if "GROUP BY" in rest else ""
    for tag in re.findall(r'"(\w+)"', group_by):
        assert tag in tags, f"{measurement} has no documented tag {tag}"
    for alias_tag in re.findall(r"\$tag_(\w+)", target.get("alias", "")):
        assert alias_tag in tags


def test_seed_lock_panel_is_kept() -> None:
    dashboard = load(DASHBOARD_DIR / "locks-and-activity.json")
    query = dashboard["panels"][0]["targets"][0]["query"]
    assert '"lock_count"' in query
    assert '"mode"' in query
    for mode in ("AccessShareLock", "ExclusiveLock", "RowExclusiveLock", "ShareLock", "ShareUpdateExclusiveLock"):
        assert mode in query


# ------------------------------------------------------------------ provisioning
def render(tmp_path: Path, influxdb: dict, runtime: str = "docker", extra_vars: dict | None = None) -> Path:
    """Run the role's render step (its real templates) through ansible-playbook into tmp_path."""
    out = tmp_path / "grafana"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        f"""---
- name: Render the grafana role's provisioning
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: inventium.logical_replication.grafana
        tasks_from: render
      vars:
        grafana_runtime: {runtime}
        grafana_config_dir: {out}
        grafana_influxdb: {json.dumps(influxdb)}
"""
        + "".join(f"        {key}: {json.dumps(value)}\n" for key, value in (extra_vars or {}).items())
    )
    env = {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


def test_provisioning_for_influxdb_1(tmp_path: Path) -> None:
    secret = tmp_path / "influxdb-pglab"
    secret.write_text("s3cret-not-in-files-0123456789")
    out = render(
        tmp_path,
        {
            "url": "http://influxdb:8086",
            "api": 1,
            "database": "pglab",
            "username": "pglab",
            "password_file": str(secret),
        },
    )
    datasources = yaml.safe_load((out / "provisioning/datasources/inventium-influxdb.yml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "influxdb"
    assert source["url"] == "http://influxdb:8086"
    assert source["user"] == "pglab"
    assert source["jsonData"]["dbName"] == "pglab"
    assert source["jsonData"]["version"] == "InfluxQL"
    assert source["secureJsonData"] == {"password": "$__file{/run/secrets/influxdb-credential}"}
    providers = yaml.safe_load((out / "provisioning/dashboards/inventium.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards/inventium"
    copied = sorted(p.name for p in (out / "dashboards").iterdir())
    assert copied == sorted(p.name for p in DASHBOARDS)
    for path in out.rglob("*"):
        if path.is_file():
            assert "s3cret-not-in-files" not in path.read_text()


def test_provisioning_for_influxdb_2_native(tmp_path: Path) -> None:
    out = render(
        tmp_path,
        {
            "url": "http://127.0.0.1:8086",
            "api": 2,
            "database": "pglab",
            "org": "inventium",
            "bucket": "pglab",
            "token_file": str(tmp_path / "token"),
        },
        runtime="native",
    )
    (source,) = yaml.safe_load((out / "provisioning/datasources/inventium-influxdb.yml").read_text())["datasources"]
    assert "user" not in source
    assert source["jsonData"]["httpHeaderName1"] == "Authorization"
    assert source["jsonData"]["dbName"] == "pglab"
    assert source["secureJsonData"] == {"httpHeaderValue1": f"Token $__file{{{out}/secrets/influxdb-credential}}"}
    (provider,) = yaml.safe_load((out / "provisioning/dashboards/inventium.yml").read_text())["providers"]
    assert provider["options"]["path"] == f"{out}/dashboards"


def test_render_refuses_an_incomplete_datasource(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="grafana_influxdb needs url"):
        render(tmp_path, {"api": 1})
