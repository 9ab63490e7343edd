"""The lab as seen from its host (Molecule scenario ``lab``, verify).

- the lab's PostgreSQL ports listen on loopback only; the publisher also on the lab network's
  gateway, where its pg_hba.conf admits only the replication role to the ``publisher`` database;
- the ``.lab`` state is private (directories 0700, secrets 0600) and its libpq service and password
  files work;
- no generated secret appears in what ansible-playbook printed during converge (and idempotence)
  (Molecule's provisioner sets ANSIBLE_LOG_PATH, so the log holds exactly that output).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lab_client import LAB_DIR, SECRETS_DIR, all_secrets, pg_nodes

# The lab runs on this machine: the tests look at the local host.
testinfra_hosts = ["local://"]

LAB_NETWORK = "inventium-lab"
PUBLISHER_HBA = "/etc/postgresql/15/main/pg_hba.conf"


def _listening(host, port: int) -> set[str]:
    """Addresses with a TCP listener on ``port``."""
    out = set()
    for spec in host.socket.get_listening_sockets():
        if spec.startswith("tcp://"):
            address, _sep, found = spec[len("tcp://") :].rpartition(":")
            if found == str(port):
                out.add(address.strip("[]"))
    return out


def _gateway(host) -> str:
    cmd = host.run("docker network inspect %s --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}'", LAB_NETWORK)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


@pytest.mark.parametrize("node", ["subscriber1", "subscriber2"])
def test_subscriber_ports_listen_on_loopback_only(host, node: str) -> None:
    assert _listening(host, int(pg_nodes()[node]["port"])) == {"127.0.0.1"}


def test_publisher_listens_on_loopback_and_the_lab_gateway_only(host) -> None:
    assert _listening(host, int(pg_nodes()["publisher"]["port"])) == {"127.0.0.1", _gateway(host)}


def test_publisher_admits_only_replication_from_the_network(host) -> None:
    hba = host.file(PUBLISHER_HBA).content_string
    lines = [line.split() for line in hba.splitlines() if line.startswith(("host", "hostssl"))]
    remote = [fields for fields in lines if fields[3] not in ("127.0.0.1/32", "::1/128")]
    assert remote, hba
    assert all(fields[0] == "hostssl" and fields[1:3] == ["publisher", "replicator"] for fields in remote), remote


@pytest.mark.parametrize("directory", ["", "secrets", "tls"])
def test_state_directories_are_private(host, directory: str) -> None:
    path = host.file(str(LAB_DIR / directory))
    assert path.is_directory
    assert path.mode == 0o700


def test_secret_files_are_private(host) -> None:
    private = [*sorted(SECRETS_DIR.iterdir()), LAB_DIR / "pgpass", LAB_DIR / "tls" / "ca.key"]
    assert len(private) >= 6
    for path in private:
        assert host.file(str(path)).mode == 0o600, path


@pytest.mark.parametrize("node", ["publisher", "subscriber1", "subscriber2"])
def test_service_file_works(host, node: str) -> None:
    cmd = host.run(
        "env PGSERVICEFILE=%s PGPASSFILE=%s psql -X -At %s -c 'SELECT current_database(), current_user'",
        str(LAB_DIR / "pg_service.conf"),
        str(LAB_DIR / "pgpass"),
        f"service={node}",
    )
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout.strip() == f"{pg_nodes()[node]['dbname']}|postgres"


def test_no_secret_in_the_converge_output() -> None:
    path = Path(os.environ["ANSIBLE_LOG_PATH"])
    # Molecule prunes its ephemeral directory after `molecule test`: a lone `molecule verify`
    # needs a `molecule converge -s lab` first.
    assert path.is_file(), f"no converge output at {path}: run `molecule converge -s lab` before verify"
    log = path.read_text(errors="replace")
    # converge: a run of the whole site.yml (and idempotence's, when run by hand)
    assert log.count("PLAY RECAP") >= 1, "the log does not hold the converge output"
    secrets = all_secrets()
    assert len(secrets) >= 4
    for value in secrets:
        assert len(value) >= 16  # a real secret, not a word that could occur by chance
        assert value not in log
