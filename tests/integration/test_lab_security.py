"""Least privilege of the lab's subscriber containers (issue 12, item 6; docs/lab-security.md).

Against the lab as built (``make lab``), under a shared hold of the lab lock:

- each subscriber's ``pg_hba.conf`` is exactly the role's ``local all postgres peer`` plus one
  ``hostssl postgres,subscriber postgres <gateway>/32 scram-sha-256`` line; the server runs with
  ``ssl = on`` and the lab CA's certificate for 127.0.0.1;
- through every published port (127.0.0.1:<port>) AND every container address (<ip>:5432, reached
  from this host, so from the same gateway address) the lab's own connections work - ``postgres``
  to ``subscriber`` and to ``postgres`` over TLS verified against the lab CA - and pg_hba refuses,
  with the right password, a connection without TLS, to another database, as another role, and a
  physical replication connection;
- another container on the lab network (the other subscriber) is refused whatever it sends;
- every client backend on a subscriber (the sampler's included) uses TLS and comes from the
  gateway.

Run it under ``flock -s /tmp/inventium-lab.lock`` next to other users of the lab.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

import lab_client  # noqa: E402

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_client.lab_unavailable() is not None, reason=str(lab_client.lab_unavailable())),
]

# The default lab's subscriber containers (inventory/lab/hosts.yml).
SUBSCRIBERS = ("subscriber1", "subscriber2")
WHERE = ("published", "container")
LAB_NETWORK = "inventium-lab"
CONTAINER_PORT = 5432
LOCK_WAIT = 600.0
CA_CERT = lab_client.LAB_DIR / "tls" / "ca.crt"
# SQLSTATE 28000 (invalid_authorization_specification) with pg_hba's own wording.
NO_HBA_ENTRY = "no pg_hba.conf entry"
# Roles a node admits besides postgres, to its own database only (inventory/lab/hosts.yml): subscriber2 is the
# upgrade rehearsal's target - the application's role (subscriber_application_roles) and the publisher's
# replication role for the reverse replication (subscriber_reverse_replication_clients).
ALSO_ADMITTED = {"subscriber1": (), "subscriber2": ("app_writer", "replicator")}


@pytest.fixture(scope="module", autouse=True)
def _shared_lab_hold():
    with lab_client.lab_lock(exclusive=False, wait=LOCK_WAIT):
        yield


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def subscribers() -> dict[str, dict[str, Any]]:
    nodes = {name: info for name, info in lab_client.pg_nodes().items() if info["kind"] == "subscriber"}
    assert nodes, "endpoints.json names no subscriber"
    return nodes


def gateway() -> str:
    return docker("network", "inspect", LAB_NETWORK, "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}").strip()


def container_address(container: str) -> str:
    networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", container))
    address = (networks.get(LAB_NETWORK) or {}).get("IPAddress")
    assert address, f"{container} has no address on {LAB_NETWORK}: {networks}"
    return address


def password(node: str) -> str:
    return Path(subscribers()[node]["password_file"]).read_text().strip()


def attempt(node: str, host: str, port: int, **overrides: Any) -> Any:
    """Connect as the lab does (postgres, the node's database, TLS verified by the lab CA) with ``overrides``."""
    params = {
        "host": host,
        "port": port,
        "dbname": subscribers()[node]["dbname"],
        "user": "postgres",
        "password": password(node),
        "sslmode": "verify-full",
        "sslrootcert": str(CA_CERT),
        "connect_timeout": 10,
        "autocommit": True,
    }
    params.update(overrides)
    return psycopg.connect(**params)


def refused(node: str, host: str, port: int, **overrides: Any) -> str:
    """The error of a connection pg_hba must refuse (the right password given: pg_hba decides, not it)."""
    with pytest.raises(psycopg.OperationalError) as info:
        attempt(node, host, port, **overrides).close()
    message = str(info.value)
    assert password(node) not in message
    return message


def endpoint(node: str, where: str) -> tuple[str, int, str]:
    """The published port (127.0.0.1:<port>) or the container's address on the lab network (<ip>:5432).

    With the sslmode that verifies the server there: the certificate names 127.0.0.1, localhost and the
    container's name, not its (changing) address, so at the address the chain is verified (verify-ca).
    """
    if where == "published":
        info = subscribers()[node]
        return info["host"], int(info["port"]), "verify-full"
    return container_address(node), CONTAINER_PORT, "verify-ca"


CASES = pytest.mark.parametrize(("node", "where"), [(n, w) for n in SUBSCRIBERS for w in WHERE])


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("node", SUBSCRIBERS)
def test_hba_admits_only_postgres_over_tls_from_the_gateway(node: str) -> None:
    """postgres to its two databases; the node's other roles (ALSO_ADMITTED) to its own database only."""
    hba = docker("exec", node, "cat", "/etc/postgresql/hba/pg_hba.conf")
    lines = [line.split() for line in hba.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    database = subscribers()[node]["dbname"]
    assert lines == [
        ["local", "all", "postgres", "peer"],
        ["hostssl", f"postgres,{database}", "postgres", f"{gateway()}/32", "scram-sha-256"],
        *[["hostssl", database, role, f"{gateway()}/32", "scram-sha-256"] for role in ALSO_ADMITTED[node]],
    ], hba


@pytest.mark.parametrize("node", SUBSCRIBERS)
def test_server_serves_tls_with_a_lab_certificate(node: str) -> None:
    with lab_client.connect(node) as conn:
        assert conn.execute("SHOW ssl").fetchone()[0] == "on"
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    # lab_client follows endpoints.json: verify-full against the lab CA
    assert subscribers()[node].get("sslmode") == "verify-full"
    assert subscribers()[node].get("sslrootcert") == str(CA_CERT)


# ---------------------------------------------------------------------------------- what is admitted


@CASES
def test_the_labs_own_connections_work(node: str, where: str) -> None:
    host, port, sslmode = endpoint(node, where)
    for dbname in (subscribers()[node]["dbname"], "postgres"):
        with attempt(node, host, port, dbname=dbname, sslmode=sslmode) as conn:
            row = conn.execute(
                "SELECT current_database(), current_user, s.ssl, host(a.client_addr)"
                " FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE pid = pg_backend_pid()"
            ).fetchone()
        assert row == (dbname, "postgres", True, gateway()), (where, row)


# ---------------------------------------------------------------------------------- what is refused


@CASES
def test_without_tls_is_refused(node: str, where: str) -> None:
    host, port, _sslmode = endpoint(node, where)
    message = refused(node, host, port, sslmode="disable", sslrootcert=None)
    assert NO_HBA_ENTRY in message, message
    assert "no encryption" in message, message


@CASES
def test_another_database_is_refused(node: str, where: str) -> None:
    host, port, sslmode = endpoint(node, where)
    for dbname in ("template1", "publisher"):
        message = refused(node, host, port, dbname=dbname, sslmode=sslmode)
        assert NO_HBA_ENTRY in message, message
        assert f'database "{dbname}"' in message, message


@CASES
def test_another_role_is_refused(node: str, where: str) -> None:
    """Any other role, anywhere; a role of ALSO_ADMITTED to any database but the node's own."""
    host, port, sslmode = endpoint(node, where)
    for user in ("replicator", "app_writer", "grafana"):
        dbname = "postgres" if user in ALSO_ADMITTED[node] else subscribers()[node]["dbname"]
        message = refused(node, host, port, user=user, dbname=dbname, sslmode=sslmode)
        assert NO_HBA_ENTRY in message, message
        assert f'user "{user}"' in message, message


@CASES
def test_physical_replication_is_refused(node: str, where: str) -> None:
    host, port, sslmode = endpoint(node, where)
    message = refused(node, host, port, replication="true", dbname="replication", sslmode=sslmode)
    assert NO_HBA_ENTRY in message, message
    assert "replication connection" in message, message


def test_other_containers_on_the_lab_network_are_refused() -> None:
    """From inside the other subscriber's container (its own address on the lab network): never admitted."""
    first, second = SUBSCRIBERS
    for target, source in ((first, second), (second, first)):
        source_address = container_address(source)
        for sslmode in ("require", "disable"):
            proc = subprocess.run(
                [
                    "docker", "exec", "--user", "postgres", "--env", "PGPASSWORD=wrong-on-purpose", source,
                    "psql", "--no-psqlrc", "--command", "SELECT 1",
                    f"host={container_address(target)} port={CONTAINER_PORT} dbname={subscribers()[target]['dbname']}"
                    f" user=postgres sslmode={sslmode} connect_timeout=10",
                ],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert proc.returncode != 0, proc.stdout
            # refused by pg_hba before any password is looked at
            assert NO_HBA_ENTRY in proc.stderr, proc.stderr
            assert source_address in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------- who is connected


@pytest.mark.parametrize("node", SUBSCRIBERS)
def test_every_client_backend_uses_tls_from_the_gateway(node: str) -> None:
    """The sampler (host network, through the published port) and everything else the lab runs."""
    with lab_client.connect(node) as conn:
        rows = conn.execute(
            "SELECT a.application_name, host(a.client_addr), s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s"
            " USING (pid) WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL"
        ).fetchall()
    assert rows
    assert "inventium-sampler" in {row[0] for row in rows}, rows
    assert all(row[1] == gateway() and row[2] is True for row in rows), rows
