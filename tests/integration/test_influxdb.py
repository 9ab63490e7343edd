"""The ``influxdb`` role against a real InfluxDB container of its own (not the lab's).

Runs the role through ``ansible-playbook`` (docker runtime, API auto: no registry here, so the
role falls back to ``inventium/influxdb:1.6`` built by the images role from Debian's package) on
a free 127.0.0.1 port with a throwaway container, volume and secrets directory, then checks the
real server:

- first run: admin user, database, 30d retention, read/write user; the endpoint the role
  describes works for writing and reading (through plugins/module_utils/_influx.py), the admin
  password and the user's password are in 0600 files and appear nowhere in the output;
- second run: changed=0;
- retention 2d: only the retention policy changes, to 48h;
- a user password changed behind the role's back is reset; a wrong admin password fails with a
  message that says what to do.

Only the 1.x path runs here: no InfluxDB 2.x image or package is reachable on this machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support.ansible import DEFAULT_CALLBACK, run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]
from ansible_collections.inventium.logical_replication.plugins.module_utils import _influx as influx  # noqa: E402

IMAGE = "inventium/influxdb:1.6"
FACTS_TASK = "Report the endpoint to the test"


def _docker_ok() -> str | None:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine"
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode != 0:
        return f"image {IMAGE} missing (run playbooks/images.yml)"
    return None


pytestmark = [pytest.mark.docker, pytest.mark.skipif(_docker_ok() is not None, reason=str(_docker_ok()))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Runner:
    def __init__(self, workdir: Path, name: str, port: int):
        self.workdir = workdir
        self.secrets = workdir / "secrets"
        self.base = {
            "influxdb_container_name": name,
            "influxdb_port": port,
            "influxdb_docker_network": "",
            "influxdb_secrets_dir": str(self.secrets),
            "influxdb_docker_pull_timeout": 10,
        }
        (workdir / "inventory.json").write_text(
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
        (workdir / "playbook.yml").write_text(
            f"""---
- name: Run the influxdb role for the test
  hosts: all
  gather_facts: false
  roles:
    - role: inventium.logical_replication.influxdb
  post_tasks:
    - name: {FACTS_TASK}
      ansible.builtin.debug:
        var: influxdb_endpoint
"""
        )
        self.runs = 0

    def run(self, **extra: object) -> dict:
        self.runs += 1
        variables = self.workdir / f"vars-{self.runs}.json"
        variables.write_text(json.dumps({**self.base, **extra}))
        run = run_playbook(
            self.workdir / "playbook.yml",
            "-e",
            f"@{variables}",
            inventory=self.workdir / "inventory.json",
            callback=DEFAULT_CALLBACK,
        )
        output = run.output
        recap = [line for line in output.splitlines() if line.startswith("localhost") and "ok=" in line]
        fields = dict(part.split("=") for part in recap[-1].split(":", 1)[1].split()) if recap else {}
        print(f"run {self.runs}: {run.seconds:.1f} s, {recap[-1] if recap else 'no recap'}")
        return {"rc": run.rc, "output": output, "changed": int(fields.get("changed", -1))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    name = f"influxdb-test-{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("influxdb-role")
    runner = Runner(workdir, name, free_port())
    first = runner.run()
    try:
        yield {"runner": runner, "first": first, "name": name}
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", f"{name}-data"], capture_output=True, check=False)


def endpoint_of(runner: Runner) -> dict:
    url = f"http://127.0.0.1:{runner.base['influxdb_port']}"
    return {
        "influxdb": {
            "url": url,
            "api": 1,
            "database": "pglab",
            "username": "pglab",
            "password_file": str(runner.secrets / "influxdb-pglab"),
        }
    }


def admin_query(runner: Runner, statement: str) -> list[dict]:
    client = influx.InfluxClient(
        f"http://127.0.0.1:{runner.base['influxdb_port']}",
        api=1,
        database="pglab",
        username="admin",
        password=(runner.secrets / "influxdb-admin").read_text().strip(),
    )
    return client.query(statement)


def test_first_run_creates_a_working_endpoint(server: dict) -> None:
    first, runner = server["first"], server["runner"]
    assert first["rc"] == 0, first["output"][-3000:]
    assert first["changed"] > 0
    assert "using inventium/influxdb:1.6" in first["output"], "no report of the fallback to the 1.x image"
    for secret in ("influxdb-admin", "influxdb-pglab"):
        path = runner.secrets / secret
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        value = path.read_text().strip()
        assert len(value) == 32
        assert value not in first["output"], f"{secret} appears in the playbook output"
    assert not (runner.secrets / "influxdb-token").exists(), "a 2.x token was generated for a 1.x server"
    client = influx.client_from_endpoints(endpoint_of(runner))
    client.write([influx.line("role_test", {"node": "t"}, {"value": 1.5})])
    assert client.query('SELECT last("value") FROM "role_test"')[0]["last"] == 1.5
    # the read/write user is not an admin
    with pytest.raises(influx.InfluxError):
        client.query("SHOW USERS")
    users = {row["user"]: row["admin"] for row in admin_query(runner, "SHOW USERS")}
    assert users == {"admin": True, "pglab": False}
    policies = admin_query(runner, 'SHOW RETENTION POLICIES ON "pglab"')
    assert [(p["name"], p["duration"], p["default"]) for p in policies] == [("autogen", "720h0m0s", True)]


def test_second_run_changes_nothing(server: dict) -> None:
    second = server["runner"].run()
    assert second["rc"] == 0, second["output"][-3000:]
    assert second["changed"] == 0, second["output"][-3000:]


def test_retention_change_and_password_reset(server: dict) -> None:
    runner = server["runner"]
    admin_query(runner, "SET PASSWORD FOR \"pglab\" = 'changed-behind-the-role'")
    run = runner.run(influxdb_retention="2d")
    assert run["rc"] == 0, run["output"][-3000:]
    assert run["changed"] == 2, run["output"][-3000:]  # retention policy + the user's password
    policies = admin_query(runner, 'SHOW RETENTION POLICIES ON "pglab"')
    assert [(p["name"], p["duration"]) for p in policies] == [("autogen", "48h0m0s")]
    client = influx.client_from_endpoints(endpoint_of(runner))
    assert client.query('SELECT count("value") FROM "role_test"')[0]["count"] == 1
    again = runner.run(influxdb_retention="2d")
    assert again["changed"] == 0, again["output"][-3000:]


def test_wrong_admin_password_fails_clearly(server: dict) -> None:
    runner = server["runner"]
    admin_file = runner.secrets / "influxdb-admin"
    good = admin_file.read_text()
    try:
        admin_file.write_text("wrong-password-0123456789abcdefgh")
        os.chmod(admin_file, 0o600)
        run = runner.run()
        assert run["rc"] != 0
        assert "refuses user admin" in run["output"]
        assert "wrong-password-0123456789abcdefgh" not in run["output"]
    finally:
        admin_file.write_text(good)
