"""Integration tests of the ``postgresql`` role, run through ``ansible-playbook``.

Each test writes a small inventory, playbook and extra-vars files (the password in its own
JSON file, mode 0600) into a temporary directory and runs ``ansible-playbook`` from the
repository root (so ``ansible.cfg`` resolves ``inventium.logical_replication`` to the
checkout) with the ``ansible.posix.json`` callback, then checks the real server:

- docker: a PostgreSQL 17 container (``inventium/postgresql:17``, built by the images role)
  on a free 127.0.0.1 port, a test network, CPU and memory limits;
- native: a postgresql-common cluster ``<distro major>/inventium_test`` on a free port
  (never ``15/main`` or port 5432), dropped afterwards.

For both: settings applied (``max_replication_slots`` needs a restart, ``work_mem`` does
not), a second run changes nothing and restarts nothing, a new password is set through the
local socket without a restart, and no password ever appears in the output. Containers,
volumes, networks and clusters are removed also when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.ansible import run_playbook

pytestmark = pytest.mark.docker  # the integration stage runs these in its Docker group

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE = "inventium.logical_replication.postgresql"
PLAYBOOK_TIMEOUT = 600
DOCKER_MAJOR = 17
NATIVE_CLUSTER = "inventium_test"
LAB_PUBLISHER = ("15", "main", 5432)  # the future lab publisher: never touched here
FACTS_TASK = "Report the role's facts to the test"
PASSWORD_TOKEN_CHARS = 24


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert port != LAB_PUBLISHER[2]
    return port


def new_password() -> str:
    # Quotes, backslash and dollar exercise the SQL and shell quoting; no Jinja delimiters
    # (the lab generates passwords of letters and digits).
    return 'It\'s a "pw" \\ $' + secrets.token_urlsafe(18)  # 24 random characters at the end


@dataclass
class RoleRun:
    rc: int
    stdout: str
    stderr: str
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr

    @property
    def changed(self) -> int:
        return int(self.stats.get("changed", -1))

    @property
    def changed_tasks(self) -> list[str]:
        return [name for name, result in self.results if result.get("changed")]

    @property
    def failed_results(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, result) for name, result in self.results if result.get("failed")]

    @property
    def facts(self) -> dict[str, Any]:
        for name, result in self.results:
            if name == FACTS_TASK:
                return result["msg"]
        raise AssertionError(f"no facts reported; failed tasks: {self.describe_failures()}")

    def describe_failures(self) -> str:
        return "\n".join(f"- {name}: {result.get('msg')}" for name, result in self.failed_results) or "(none)"


class RoleRunner:
    """Runs the role on one local inventory host with the given variables and password."""

    def __init__(self, workdir: Path, host: str):
        self.workdir = workdir
        self.host = host
        self.runs = 0
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "inventory.yml").write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            host: {
                                "ansible_connection": "local",
                                "ansible_python_interpreter": sys.executable,
                            }
                        }
                    }
                }
            )
        )
        (workdir / "playbook.yml").write_text(
            f"""---
- name: Run the postgresql role for the test
  hosts: all
  gather_facts: false
  roles:
    - role: {ROLE}
  post_tasks:
    - name: {FACTS_TASK}
      ansible.builtin.debug:
        msg:
          connection: "{{{{ postgresql_connection }}}}"
          login: "{{{{ postgresql_login }}}}"
          instance: "{{{{ postgresql_instance }}}}"
"""
        )

    def run(self, variables: dict[str, Any], password: str, *, expect_failure: bool = False) -> RoleRun:
        self.runs += 1
        vars_file = self.workdir / f"vars-{self.runs}.json"
        vars_file.write_text(json.dumps(variables))
        secret_file = self.workdir / f"secret-{self.runs}.json"
        secret_file.touch(mode=0o600)
        secret_file.write_text(json.dumps({"postgresql_password": password}))
        played = run_playbook(
            self.workdir / "playbook.yml",
            "-e",
            f"@{vars_file}",
            "-e",
            f"@{secret_file}",
            "-v",
            inventory=self.workdir / "inventory.yml",
            timeout=PLAYBOOK_TIMEOUT,
        )
        run = RoleRun(played.rc, played.stdout, played.stderr, played.seconds)
        run.stats = played.stats(self.host)
        run.results = played.task_results(self.host)
        if expect_failure:
            assert run.rc != 0, f"the role was expected to fail\n{run.stdout[-3000:]}"
        else:
            assert run.rc == 0, (
                f"ansible-playbook failed (rc={run.rc}):\n{run.describe_failures()}\n"
                f"--- stderr ---\n{run.stderr[-3000:]}"
            )
        return run


def assert_no_secret(run: RoleRun, *passwords: str) -> None:
    for password in passwords:
        # The random tail catches the password in any quoting or escaping.
        assert password[-PASSWORD_TOKEN_CHARS:] not in run.output, (
            "a password appears in the output of ansible-playbook"
        )


def show(conninfo: dict[str, Any], password: str, *names: str) -> tuple[int, dict[str, str]]:
    with psycopg.connect(**conninfo, password=password, connect_timeout=10) as conn:
        values = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in names}
        return conn.info.server_version, values


def conninfo_of(facts: dict[str, Any]) -> dict[str, Any]:
    connection = facts["connection"]
    return {
        "host": connection["host"],
        "port": connection["port"],
        "user": connection["user"],
        "dbname": connection["dbname"],
    }


def report(request: pytest.FixtureRequest, label: str, run: RoleRun) -> None:
    line = f"{label}: {run.seconds:.1f} s, changed={run.changed}"
    request.node.user_properties.append((label, round(run.seconds, 1)))
    print(line)  # shown with -s / in the captured output of a failure


# --------------------------------------------------------------------------- docker
def _docker_client():
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure means "no engine"
        return None, f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
    return client, ""


@pytest.fixture
def docker_client():
    client, reason = _docker_client()
    if client is None:
        pytest.skip(reason)
    return client


@pytest.fixture
def docker_names(docker_client):
    """Unique container/volume/network names; all removed after the test."""
    token = uuid.uuid4().hex[:8]
    names = {
        "container": f"inventium-test-pg{DOCKER_MAJOR}-{token}",
        "network": f"inventium-test-net-{token}",
    }
    names["volume"] = names["container"] + "-data"
    yield names
    import docker

    for remove in (
        lambda: docker_client.containers.get(names["container"]).remove(force=True, v=True),
        lambda: docker_client.volumes.get(names["volume"]).remove(force=True),
        lambda: docker_client.networks.get(names["network"]).remove(),
    ):
        try:
            remove()
        except docker.errors.NotFound:
            pass


def test_docker_runtime(request, tmp_path, docker_client, docker_names):
    import docker

    image = f"inventium/postgresql:{DOCKER_MAJOR}"
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} is not built; run `ansible-playbook playbooks/images.yml` first")

    name = docker_names["container"]
    port = free_port()
    config_dir = tmp_path / "config"
    password = new_password()
    variables = {
        "postgresql_runtime": "docker",
        "postgresql_version": DOCKER_MAJOR,
        "postgresql_port": port,
        "postgresql_container_name": name,
        "postgresql_docker_config_dir": str(config_dir),
        "postgresql_docker_network": docker_names["network"],
        "postgresql_docker_network_create": True,
        "postgresql_docker_cpus": 1.0,
        "postgresql_docker_memory": "512m",
        "postgresql_settings": {"max_replication_slots": 12, "work_mem": "8MB"},
    }
    runner = RoleRunner(tmp_path / "ansible", "pg_docker_test")

    # 1st run: network, files, container; max_replication_slots needs a restart.
    first = runner.run(variables, password)
    report(request, "docker first run", first)
    assert_no_secret(first, password)
    assert first.changed > 0
    facts = first.facts
    assert facts["connection"] == {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"}
    assert facts["login"] == {
        "login_host": "127.0.0.1",
        "login_port": port,
        "login_user": "postgres",
        "login_db": "postgres",
    }
    instance = facts["instance"]
    assert instance["runtime"] == "docker"
    assert instance["major"] == DOCKER_MAJOR
    assert instance["restarted"] is True
    assert instance["pending_restart"] == []
    assert instance["docker"]["container"] == name
    assert instance["docker"]["volume"] == docker_names["volume"]
    assert instance["docker"]["network_host"] == name
    assert instance["docker"]["network_port"] == 5432

    version, values = show(conninfo_of(facts), password, "max_replication_slots", "work_mem")
    assert version // 10000 == DOCKER_MAJOR
    assert values == {"max_replication_slots": "12", "work_mem": "8MB"}

    container = docker_client.containers.get(name)
    attrs = container.attrs
    started_at = attrs["State"]["StartedAt"]
    bindings = attrs["HostConfig"]["PortBindings"]
    assert list(bindings) == ["5432/tcp"]
    assert [(b["HostIp"], b["HostPort"]) for b in bindings["5432/tcp"]] == [("127.0.0.1", str(port))]
    for binding in attrs["NetworkSettings"]["Ports"]["5432/tcp"]:
        assert binding["HostIp"] == "127.0.0.1"
    assert (attrs["HostConfig"]["CpuQuota"], attrs["HostConfig"]["CpuPeriod"]) == (100_000, 100_000)
    assert attrs["HostConfig"]["Memory"] == attrs["HostConfig"]["MemorySwap"] == 512 * 1024 * 1024
    assert list(attrs["NetworkSettings"]["Networks"]) == [docker_names["network"]]
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts["/var/lib/postgresql"]["Name"] == docker_names["volume"]
    assert {"/etc/postgresql/conf.d", "/etc/postgresql/hba", "/run/secrets"} <= set(mounts)
    # The password reaches the container as a file only: not in the environment,
    # not anywhere in `docker inspect`, not in the logs.
    assert password not in json.dumps(attrs)
    assert not [e for e in attrs["Config"]["Env"] if e.startswith("POSTGRES_PASSWORD=")]
    assert password not in container.logs().decode(errors="replace")
    assert (config_dir / "secrets").stat().st_mode & 0o777 == 0o700
    assert (config_dir / "secrets" / "postgres-password").stat().st_mode & 0o777 == 0o600

    # 2nd run: nothing changes, nothing restarts.
    second = runner.run(variables, password)
    report(request, "docker second run", second)
    assert_no_secret(second, password)
    assert second.changed == 0, f"changed tasks on the 2nd run: {second.changed_tasks}"
    assert second.facts["instance"]["restarted"] is False
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started_at, "the container was restarted"
    assert container.id == attrs["Id"], "the container was re-created"

    # 3rd run: a new password (the volume keeps the old one) is set through the
    # container's local socket; work_mem is reloadable and the CPU and memory limits
    # are changed in place: still no restart.
    new = new_password()
    variables["postgresql_settings"]["work_mem"] = "16MB"
    variables["postgresql_docker_cpus"] = 0.5
    variables["postgresql_docker_memory"] = "384m"
    third = runner.run(variables, new)
    report(request, "docker password change", third)
    assert_no_secret(third, password, new)
    assert third.changed > 0
    assert third.facts["instance"]["restarted"] is False
    _version, values = show(conninfo_of(third.facts), new, "work_mem")
    assert values == {"work_mem": "16MB"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        show(conninfo_of(third.facts), password, "work_mem")
    container.reload()
    assert container.attrs["State"]["StartedAt"] == started_at, "the container was restarted"
    assert container.id == attrs["Id"], "the container was re-created"
    assert container.attrs["HostConfig"]["CpuQuota"] == 50_000
    assert container.attrs["HostConfig"]["Memory"] == 384 * 1024 * 1024
    assert new not in container.logs().decode(errors="replace")


# --------------------------------------------------------------------------- native
def _native_unavailable() -> str:
    if os.geteuid() != 0:
        return "the native runtime needs root (it installs packages and creates clusters)"
    if not shutil.which("pg_createcluster"):
        return "postgresql-common is not installed (pg_createcluster missing)"
    return ""


def clusters() -> list[dict[str, Any]]:
    out = subprocess.run(["pg_lsclusters", "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def drop_test_clusters() -> None:
    for cluster in clusters():
        if cluster["cluster"] == NATIVE_CLUSTER:
            subprocess.run(
                ["pg_dropcluster", "--stop", str(cluster["version"]), NATIVE_CLUSTER],
                check=False,
                capture_output=True,
            )


@pytest.fixture
def native_cluster():
    reason = _native_unavailable()
    if reason:
        pytest.skip(reason)
    drop_test_clusters()  # left over by a killed run
    lab = [(str(c["version"]), c["cluster"], int(c["port"]), c["running"]) for c in clusters()]
    yield NATIVE_CLUSTER
    drop_test_clusters()
    # The lab publisher's cluster is untouched.
    assert [(str(c["version"]), c["cluster"], int(c["port"]), c["running"]) for c in clusters()] == lab


def postmaster_start(conninfo: dict[str, Any], password: str):
    with psycopg.connect(**conninfo, password=password, connect_timeout=10) as conn:
        return conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]


def test_native_runtime(request, tmp_path, native_cluster):
    port = free_port()
    password = new_password()
    variables = {
        "postgresql_runtime": "native",
        "postgresql_cluster_name": native_cluster,
        "postgresql_port": port,
        "postgresql_settings": {"max_replication_slots": 12, "work_mem": "8MB"},
        "postgresql_hba_entries": [
            {
                "type": "host",
                "database": ["postgres"],
                "user": "inventium_test_nobody",
                "address": "127.0.0.1/32",
                "method": "reject",
                "comment": "test entry",
            },
        ],
    }
    runner = RoleRunner(tmp_path / "ansible", "pg_native_test")

    # 1st run: cluster created with the password, started, settings applied, restarted once.
    first = runner.run(variables, password)
    report(request, "native first run", first)
    assert_no_secret(first, password)
    assert first.changed > 0
    facts = first.facts
    major = facts["instance"]["major"]
    assert facts["connection"] == {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres"}
    instance = facts["instance"]
    assert instance["runtime"] == "native"
    assert instance["name"] == f"{major}/{native_cluster}"
    assert instance["restarted"] is True
    assert instance["pending_restart"] == []
    config_dir = Path(instance["native"]["config_dir"])
    assert config_dir == Path(f"/etc/postgresql/{major}/{native_cluster}")

    [cluster] = [c for c in clusters() if c["cluster"] == native_cluster]
    assert int(cluster["port"]) == port
    assert cluster["running"] == 1
    conf = (config_dir / "conf.d" / "90-inventium.conf").read_text()
    assert f"port = {port}\n" in conf
    assert "listen_addresses = '127.0.0.1'\n" in conf
    hba = (config_dir / "pg_hba.conf").read_text()
    assert "inventium_test_nobody" in hba
    assert hba.index("local      all              postgres") < hba.index("inventium_test_nobody")

    conninfo = conninfo_of(facts)
    version, values = show(conninfo, password, "max_replication_slots", "work_mem", "listen_addresses")
    assert version // 10000 == int(major)
    assert values == {"max_replication_slots": "12", "work_mem": "8MB", "listen_addresses": "127.0.0.1"}
    started = postmaster_start(conninfo, password)

    # 2nd run: adopts the existing cluster; nothing changes, nothing restarts.
    second = runner.run(variables, password)
    report(request, "native second run", second)
    assert_no_secret(second, password)
    assert second.changed == 0, f"changed tasks on the 2nd run: {second.changed_tasks}"
    assert second.facts["instance"]["restarted"] is False
    assert postmaster_start(conninfo, password) == started, "the cluster was restarted"

    # 3rd run: a new password is set through the local socket (peer), work_mem is
    # reloadable: no restart.
    new = new_password()
    variables["postgresql_settings"]["work_mem"] = "16MB"
    third = runner.run(variables, new)
    report(request, "native password change", third)
    assert_no_secret(third, password, new)
    assert third.changed > 0
    assert third.facts["instance"]["restarted"] is False
    _version, values = show(conninfo, new, "work_mem")
    assert values == {"work_mem": "16MB"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        show(conninfo, password, "work_mem")
    assert postmaster_start(conninfo, new) == started, "the cluster was restarted"
    log = Path(cluster["logfile"])
    if log.exists():
        assert new not in log.read_text(errors="replace"), "the new password is in the server log"

    # An adopted cluster's port is checked, never changed behind its back.
    other_port = free_port()
    wrong = runner.run({**variables, "postgresql_port": other_port}, new, expect_failure=True)
    assert_no_secret(wrong, password, new)
    messages = " ".join(str(result.get("msg")) for _name, result in wrong.failed_results)
    assert f"exists with port {port}" in messages
    [cluster] = [c for c in clusters() if c["cluster"] == native_cluster]
    assert int(cluster["port"]) == port
