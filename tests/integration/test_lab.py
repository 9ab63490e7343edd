"""The localhost lab built by ``ansible-playbook site.yml`` (DESIGN §5, issue L1).

Builds (or reconfigures) the real lab from the repository root with the lab inventory: the
publisher is the host's postgresql-common cluster 15/main on 127.0.0.1:5432, the subscribers are
the containers ``subscriber1`` (PostgreSQL 15, 127.0.0.1:5433, ``leadership_pub``) and
``subscriber2`` (PostgreSQL 17, 127.0.0.1:5434, ``technical_pub``) on the Docker network
``inventium-lab``. Then checks:

- each subscriber holds exactly the rows of its publication's row filter;
- an INSERT, an UPDATE and a DELETE on the publisher arrive on the right subscriber within
  seconds, and never on the other;
- a second run reports ``changed=0`` and restarts nothing;
- no generated password appears in the output of either run;
- the ``.lab`` secret files are private (0600, directories 0700) and the libpq service and
  password files work;
- the lab's ports listen on loopback only (the publisher also on the lab network's gateway,
  where its pg_hba.conf admits only the replication role to the ``publisher`` database).

The lab is left running (it is what ``make lab`` builds); the test rows are removed again.
Needs root, a Docker engine and the lab images (``playbooks/images.yml``, stage ``prepare``).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/lab_client.py, shared with molecule/lab
    sys.path.insert(0, _TESTS)

from lab_client import (  # noqa: E402
    LAB_DIR,
    all_secrets,
    books,
    connect,
    lab_unavailable,
    pg_nodes,
    postmaster_start,
    run_site,
    wait_for,
)

NODES = ("publisher", "subscriber1", "subscriber2")
LEADERSHIP = {(2, 22, "Great By Choice"), (5, 58, "Scaling Teams")}
TECHNICAL = {
    (1, 31, "Practical Object Oriented Design in Ruby"),
    (3, 73, "Building Evolutionary Architectures"),
    (4, 47, "Design Patterns in Ruby"),
}
TEST_IDS = (910001, 910002, 910003)

pytestmark = pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable()))


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, object]]:
    first = run_site()
    assert first.rc == 0, first.output[-3000:]
    starts = {node: postmaster_start(node) for node in NODES}
    second = run_site()
    assert second.rc == 0, second.output[-3000:]
    yield {"first": first, "second": second, "starts_before_second": starts}
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [list(TEST_IDS)])


def test_build_and_rerun_timings(lab: dict[str, object]) -> None:
    first, second = lab["first"], lab["second"]
    print(f"\nfirst site.yml run: {first.seconds:.1f} s, second (no-op) run: {second.seconds:.1f} s")
    assert set(first.recap()) >= {"localhost", "publisher", "subscriber1", "subscriber2"}


def test_second_run_changes_and_restarts_nothing(lab: dict[str, object]) -> None:
    second = lab["second"]
    recap = second.recap()
    assert recap, second.output[-3000:]
    assert all(stats["changed"] == 0 for stats in recap.values()), "\n".join(second.changed_tasks())
    assert all(stats["failed"] == 0 and stats["unreachable"] == 0 for stats in recap.values())
    assert {node: postmaster_start(node) for node in NODES} == lab["starts_before_second"]


def test_no_generated_password_in_output(lab: dict[str, object]) -> None:
    passwords = all_secrets()
    assert len(passwords) >= 4
    for run in (lab["first"], lab["second"]):
        for password in passwords:
            assert len(password) == 32
            assert password not in run.output


def test_state_files_are_private(lab: dict[str, object]) -> None:
    for directory in (LAB_DIR, LAB_DIR / "secrets", LAB_DIR / "tls"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    private = [*(LAB_DIR / "secrets").iterdir(), LAB_DIR / "pgpass", LAB_DIR / "tls" / "ca.key"]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (LAB_DIR / "endpoints.json").is_file()


@pytest.mark.parametrize("node", sorted(NODES))
def test_service_file_works(lab: dict[str, object], node: str) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({"PGSERVICEFILE": str(LAB_DIR / "pg_service.conf"), "PGPASSFILE": str(LAB_DIR / "pgpass")})
    proc = subprocess.run(
        ["psql", "-X", "-At", f"service={node}", "-c", "SELECT current_database(), current_user"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{'publisher' if node == 'publisher' else 'subscriber'}|postgres"


def test_row_filters_split_the_books(lab: dict[str, object]) -> None:
    base = f"id <> ALL('{{{','.join(map(str, TEST_IDS))}}}')"
    assert books("subscriber1", base) == LEADERSHIP
    assert books("subscriber2", base) == TECHNICAL


def test_replication_over_tls(lab: dict[str, object]) -> None:
    with connect("publisher") as conn:
        rows = conn.execute(
            "SELECT r.application_name, s.ssl FROM pg_stat_replication AS r JOIN pg_stat_ssl AS s USING (pid)"
        ).fetchall()
    assert dict(rows) == {"subscriber1_sub": True, "subscriber2_sub": True}


def test_changes_reach_the_right_subscriber(lab: dict[str, object]) -> None:
    lead_id, tech_id, moved_id = TEST_IDS
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [list(TEST_IDS)])
        conn.execute(
            "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 1, 'Lead test', 'leadership'),"
            " (%s, 2, 'Tech test', 'technical')",
            [lead_id, tech_id],
        )
    took = wait_for(lambda: books("subscriber1", f"id = {lead_id}") and books("subscriber2", f"id = {tech_id}"))
    print(f"\nINSERT replicated in {took:.2f} s")
    assert not books("subscriber1", f"id = {tech_id}")
    assert not books("subscriber2", f"id = {lead_id}")

    with connect("publisher") as conn:
        conn.execute("UPDATE public.books SET title = 'Lead test, 2nd edition' WHERE id = %s", [lead_id])
        conn.execute("UPDATE public.books SET title = 'Tech test, 2nd edition' WHERE id = %s", [tech_id])
    took = wait_for(
        lambda: (
            books("subscriber1", f"id = {lead_id}") == {(lead_id, 1, "Lead test, 2nd edition")}
            and books("subscriber2", f"id = {tech_id}") == {(tech_id, 2, "Tech test, 2nd edition")}
        )
    )
    print(f"UPDATE replicated in {took:.2f} s")

    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [[lead_id, tech_id]])
    took = wait_for(lambda: not books("subscriber1", f"id = {lead_id}") and not books("subscriber2", f"id = {tech_id}"))
    print(f"DELETE replicated in {took:.2f} s")

    # A row that changes topic moves between the filtered subscribers (PostgreSQL 15+ turns
    # the UPDATE into a DELETE on one side and an INSERT on the other).
    with connect("publisher") as conn:
        conn.execute(
            "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 3, 'Moving', 'leadership')", [moved_id]
        )
    wait_for(lambda: bool(books("subscriber1", f"id = {moved_id}")))
    with connect("publisher") as conn:
        conn.execute("UPDATE public.books SET topic = 'technical' WHERE id = %s", [moved_id])
    wait_for(lambda: not books("subscriber1", f"id = {moved_id}") and bool(books("subscriber2", f"id = {moved_id}")))
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = %s", [moved_id])
    wait_for(lambda: not books("subscriber2", f"id = {moved_id}"))

    # Nothing else moved.
    base = f"id <> ALL('{{{','.join(map(str, TEST_IDS))}}}')"
    assert books("subscriber1", base) == LEADERSHIP
    assert books("subscriber2", base) == TECHNICAL


def _listeners(ports: set[int]) -> dict[int, set[str]]:
    proc = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True)
    out: dict[int, set[str]] = {}
    for line in proc.stdout.splitlines():
        local = line.split()[3]
        address, _colon, port = local.rpartition(":")
        if port.isdigit() and int(port) in ports:
            out.setdefault(int(port), set()).add(address.strip("[]"))
    return out


def test_ports_listen_on_loopback_only(lab: dict[str, object]) -> None:
    listeners = _listeners({int(info["port"]) for info in pg_nodes().values()})
    assert listeners.get(5433) == {"127.0.0.1"}
    assert listeners.get(5434) == {"127.0.0.1"}
    gateway = subprocess.run(
        ["docker", "network", "inspect", "inventium-lab", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert listeners.get(5432) == {"127.0.0.1", gateway}
    hba = Path("/etc/postgresql/15/main/pg_hba.conf").read_text()
    network_lines = [line.split() for line in hba.splitlines() if line.startswith(("host", "hostssl"))]
    non_loopback = [f for f in network_lines if f[3] not in ("127.0.0.1/32", "::1/128")]
    assert non_loopback
    assert all(f[1:3] == ["publisher", "replicator"] for f in non_loopback), non_loopback
