"""Integration tests of the PostgreSQL images built by the ``images`` role.

They run real containers of ``inventium/postgresql:<major>`` (build them with
``ansible-playbook site.yml`` or ``playbooks/images.yml``) and check the
entrypoint's contract: scram-sha-256 with a password from a mounted file or a
generated one kept in a 0600 file (never logged), the configuration include
directory and the mounted pg_hba file, the healthcheck, and that PostgreSQL is
PID 1 so that ``docker stop`` shuts it down promptly and cleanly.

Only 127.0.0.1 and the test's own containers are contacted. Set
INVENTIUM_PG_IMAGES (``name=major,...``) to test other images.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK for Python is not installed")
psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")


def _docker_client():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:  # any failure means "no engine"
        return None, f"no Docker engine reachable ({exc.__class__.__name__}: {exc})"
    return client, ""


_CLIENT, _NO_ENGINE = _docker_client()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_CLIENT is None, reason=_NO_ENGINE)]

IMAGES = [
    (name, int(major))
    for name, major in (
        item.rsplit("=", 1)
        for item in os.environ.get(
            "INVENTIUM_PG_IMAGES", "inventium/postgresql:15=15,inventium/postgresql:17=17,inventium/postgresql:18=18"
        ).split(",")
        if item.strip()
    )
]
TEST_LABEL = "org.inventium.test"
GENERATED_PASSWORD_FILE = "/var/lib/postgresql/postgres-password"
HEALTHY_TIMEOUT = 120  # seconds; first start runs initdb
STOP_TIMEOUT = 30  # seconds docker waits before SIGKILL
STOP_BUDGET = 10  # a fast shutdown must take far less than STOP_TIMEOUT


@pytest.fixture
def client():
    return _CLIENT


@pytest.fixture
def containers(client):
    """Start containers; remove them and their anonymous volumes afterwards."""
    started = []

    def run(image, **kwargs):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"image {image} is not built; run `ansible-playbook site.yml` (or playbooks/images.yml) first")
        kwargs.setdefault("name", f"inventium-test-images-{uuid.uuid4().hex[:10]}")
        kwargs.setdefault("labels", {TEST_LABEL: "test_images"})
        # Publish on loopback only; Docker picks a free port.
        kwargs.setdefault("ports", {"5432/tcp": ("127.0.0.1", None)})
        # Keep the image's health test, probe it every second.
        kwargs.setdefault("healthcheck", {"interval": 1_000_000_000, "timeout": 5_000_000_000, "retries": 3})
        container = client.containers.run(image, detach=True, **kwargs)
        started.append(container)
        return container

    yield run
    for container in started:
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def wait_healthy(container, timeout=HEALTHY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        container.reload()
        state = container.attrs["State"]
        if state["Status"] in ("exited", "dead"):
            pytest.fail(
                f"{container.name} exited with {state['ExitCode']} before becoming healthy:\n"
                + container.logs().decode(errors="replace")[-3000:]
            )
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{container.name} not healthy after {timeout} s "
                f"(health: {state.get('Health', {}).get('Status')}):\n"
                + container.logs().decode(errors="replace")[-3000:]
            )
        time.sleep(0.5)


def host_port(container):
    container.reload()
    binding = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    return int(binding["HostPort"])


def connect(container, password, **kwargs):
    return psycopg.connect(
        host="127.0.0.1",
        port=host_port(container),
        user="postgres",
        password=password,
        dbname="postgres",
        connect_timeout=10,
        **kwargs,
    )


def exec_ok(container, *cmd, user="root"):
    result = container.exec_run(list(cmd), user=user)
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return result.output.decode()


def secret_dir(tmp_path: Path, password: str) -> Path:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "postgres-password").write_text(password + "\n")
    (secrets / "postgres-password").chmod(0o600)  # read by the entrypoint as root
    return secrets


def readable_dir(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o755)  # the server runs as uid 999
    return path


@pytest.mark.parametrize(("image", "major"), IMAGES, ids=[f"pg{major}" for _image, major in IMAGES])
def test_password_file_config_and_hba(containers, tmp_path, image, major):
    password = 'It\'s a "secret" ' + uuid.uuid4().hex
    conf_d = readable_dir(tmp_path / "conf.d")
    (conf_d / "10-test.conf").write_text("work_mem = '7MB'\napplication_name = 'from-conf-d'\n")
    (conf_d / "10-test.conf").chmod(0o644)
    hba = readable_dir(tmp_path / "hba")
    (hba / "pg_hba.conf").write_text(
        "# mounted by test_images\nlocal all all peer\nhost all postgres all scram-sha-256\nhost all all all reject\n"
    )
    (hba / "pg_hba.conf").chmod(0o644)
    container = containers(
        image,
        environment={"POSTGRES_PASSWORD_FILE": "/run/secrets/postgres-password"},
        volumes={
            str(secret_dir(tmp_path, password)): {"bind": "/run/secrets", "mode": "ro"},
            str(conf_d): {"bind": "/etc/postgresql/conf.d", "mode": "ro"},
            str(hba): {"bind": "/etc/postgresql/hba", "mode": "ro"},
        },
    )
    wait_healthy(container)

    with connect(container, password) as conn:
        assert conn.info.server_version // 10000 == major
        row = conn.execute(
            "SELECT current_setting('work_mem'), current_setting('hba_file'),"
            " current_setting('listen_addresses'), rolpassword LIKE 'SCRAM-SHA-256$%'"
            " FROM pg_authid WHERE rolname = 'postgres'"
        ).fetchone()
        assert row == ("7MB", "/etc/postgresql/hba/pg_hba.conf", "*", True)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(container, "wrong-" + password).close()

    # The server is PID 1, running as postgres.
    assert exec_ok(container, "cat", "/proc/1/comm").strip() == "postgres"
    assert exec_ok(container, "stat", "-c", "%u", "/proc/1").strip() == "999"
    # Local socket: peer authentication for the postgres OS user.
    assert exec_ok(container, "psql", "-Atc", "SELECT 1", user="postgres").strip() == "1"
    # No generated password when a password file is given.
    assert container.exec_run(["test", "-e", GENERATED_PASSWORD_FILE]).exit_code != 0
    assert password not in container.logs().decode(errors="replace")


@pytest.mark.parametrize(("image", "major"), IMAGES, ids=[f"pg{major}" for _image, major in IMAGES])
def test_generated_password_and_fast_stop(containers, image, major):
    container = containers(image)
    wait_healthy(container)

    mode_owner = exec_ok(container, "stat", "-c", "%a %U", GENERATED_PASSWORD_FILE).split()
    assert mode_owner == ["600", "postgres"]
    password = exec_ok(container, "cat", GENERATED_PASSWORD_FILE).strip()
    assert len(password) >= 24

    with connect(container, password) as conn:
        assert conn.info.server_version // 10000 == major
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)

    logs = container.logs().decode(errors="replace")
    assert password not in logs
    assert GENERATED_PASSWORD_FILE in logs  # where to find it is logged

    # An open session must not delay the stop: SIGINT is a fast shutdown.
    session = connect(container, password, autocommit=True)
    try:
        started = time.monotonic()
        container.stop(timeout=STOP_TIMEOUT)
        elapsed = time.monotonic() - started
    finally:
        session.close()
    container.reload()
    state = container.attrs["State"]
    assert state["ExitCode"] == 0, container.logs().decode(errors="replace")[-2000:]
    assert elapsed < STOP_BUDGET, f"docker stop took {elapsed:.1f} s"
    assert "database system is shut down" in container.logs().decode(errors="replace")

    # Restart on the same volume: no second initdb, same password still works.
    container.start()
    wait_healthy(container)
    with connect(container, password) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert container.logs().decode(errors="replace").count("initializing PostgreSQL") == 1


@pytest.mark.parametrize(("image", "major"), IMAGES[:1], ids=[f"pg{major}" for _image, major in IMAGES[:1]])
def test_password_in_environment_is_refused(containers, image, major):
    container = containers(image, environment={"POSTGRES_PASSWORD": "visible-in-inspect"})
    result = container.wait(timeout=60)
    assert result["StatusCode"] != 0
    assert "POSTGRES_PASSWORD_FILE" in container.logs().decode(errors="replace")
