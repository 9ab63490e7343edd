"""Molecule scenario ``hosts``, verify: the roles' native install on three "remote hosts".

The containers lr-hosts-publisher, lr-hosts-subscriber1 and lr-hosts-subscriber2 (reached over
the community.docker.docker connection, as Ansible reached them) run Debian's PostgreSQL 15 in a
postgresql-common cluster started by pg_ctlcluster. Checked here: each subscriber holds exactly
its publication's rows, a change on the publisher reaches the right subscriber only, replication
runs over TLS across the lr-hosts network, the servers listen where they should, and no port of
the "hosts" is published on the Docker host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
_RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
testinfra_hosts = _RUNNER.get_hosts("publishers") + _RUNNER.get_hosts("subscribers")

PUBLISHER = "lr-hosts-publisher"
SUBSCRIBERS = {"lr-hosts-subscriber1": "leadership", "lr-hosts-subscriber2": "technical"}
DEMO = {
    "leadership": {(2, 22, "Great By Choice"), (5, 58, "Scaling Teams")},
    "technical": {
        (1, 31, "Practical Object Oriented Design in Ruby"),
        (3, 73, "Building Evolutionary Architectures"),
        (4, 47, "Design Patterns in Ruby"),
    },
}
TEST_ID = 920001
PAUSED_ID = 920100  # side_effect.yml
INSERT_TEST_ROW = "INSERT INTO public.books VALUES (920001, 9, 'Hosts test', 'leadership')"
UPDATE_TEST_ROW = "UPDATE public.books SET title = 'Hosts test 2' WHERE id = 920001"
DELETE_TEST_ROW = "DELETE FROM public.books WHERE id = 920001"
TIMEOUT = 20.0


def _host(name: str):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def psql(host, dbname: str, sql: str) -> list[list[str]]:
    """Rows of ``sql`` run as the cluster owner through the local socket (peer), like the role does."""
    cmd = host.run("runuser -u postgres -- psql -X -At -F '|' -v ON_ERROR_STOP=1 -d %s -c %s", dbname, sql)
    assert cmd.rc == 0, cmd.stderr
    return [line.split("|") for line in cmd.stdout.splitlines() if line]


def books(host, dbname: str, where: str = "true") -> set[tuple[int, int, str]]:
    rows = psql(host, dbname, f"SELECT id, sku, title FROM public.books WHERE {where}")  # noqa: S608
    return {(int(i), int(sku), title) for i, sku, title in rows}


def wait_for(check, timeout: float = TIMEOUT) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not replicated within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - start


def test_the_three_hosts_are_tested() -> None:
    assert sorted(testinfra_hosts) == sorted([PUBLISHER, *SUBSCRIBERS])


def test_cluster_runs_without_systemd(host) -> None:
    assert not host.file("/run/systemd/system").exists
    clusters = json.loads(host.check_output("pg_lsclusters --json"))
    assert [(str(c["version"]), c["cluster"], int(c["running"])) for c in clusters] == [("15", "main", 1)]
    assert host.package("postgresql-15").is_installed


def test_listening_sockets(host) -> None:
    if host.backend.get_hostname() == PUBLISHER:
        # listen_addresses = '*': the subscribers connect over the lr-hosts network.
        assert host.socket("tcp://0.0.0.0:5432").is_listening
    else:
        # 127.0.0.1 and the lr-hosts address only (the publisher replicates back after a switchover).
        assert host.socket("tcp://127.0.0.1:5432").is_listening
        assert not host.socket("tcp://0.0.0.0:5432").is_listening
        address = host.check_output("getent hosts %s", host.backend.get_hostname()).split()[0]
        assert host.socket(f"tcp://{address}:5432").is_listening


def test_no_port_published_on_the_docker_host() -> None:
    for name in [PUBLISHER, *SUBSCRIBERS]:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{json .NetworkSettings.Ports}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ports = json.loads(out) or {}
        assert all(not bindings for bindings in ports.values()), (name, ports)


def test_publisher_admits_replication_only_from_the_network() -> None:
    hba = _host(PUBLISHER).file("/etc/postgresql/15/main/pg_hba.conf").content_string
    lines = [line.split() for line in hba.splitlines() if line.startswith(("host", "hostssl"))]
    remote = [fields for fields in lines if fields[3] not in ("127.0.0.1/32", "::1/128")]
    assert len(remote) == 1, hba
    assert remote[0][:3] == ["hostssl", "publisher", "replicator"]


def test_subscribers_hold_their_rows_only() -> None:
    publisher = _host(PUBLISHER)
    # The demo rows, besides the tests' own (side_effect.yml writes PAUSED_ID while subscriber2 is paused).
    others = f"id NOT IN ({TEST_ID}, {PAUSED_ID})"
    assert books(publisher, "publisher", others) == DEMO["leadership"] | DEMO["technical"]
    for name, topic in SUBSCRIBERS.items():
        assert books(_host(name), "subscriber", others) == DEMO[topic], name


def test_replication_runs_over_tls() -> None:
    rows = psql(
        _host(PUBLISHER),
        "postgres",
        "SELECT r.application_name, s.ssl FROM pg_stat_replication AS r JOIN pg_stat_ssl AS s USING (pid) ORDER BY 1",
    )
    assert rows == [["lr_hosts_subscriber1_sub", "t"], ["lr_hosts_subscriber2_sub", "t"]]


@pytest.fixture
def test_row():
    publisher = _host(PUBLISHER)
    psql(publisher, "publisher", DELETE_TEST_ROW)
    yield publisher
    psql(publisher, "publisher", DELETE_TEST_ROW)


def test_a_change_reaches_the_right_subscriber_only(test_row) -> None:
    leader, techie = (_host(name) for name in SUBSCRIBERS)
    psql(test_row, "publisher", INSERT_TEST_ROW)
    took = wait_for(lambda: books(leader, "subscriber", f"id = {TEST_ID}") == {(TEST_ID, 9, "Hosts test")})
    print(f"\nINSERT replicated across the container network in {took:.2f} s")
    psql(test_row, "publisher", UPDATE_TEST_ROW)
    wait_for(lambda: books(leader, "subscriber", f"id = {TEST_ID}") == {(TEST_ID, 9, "Hosts test 2")})
    psql(test_row, "publisher", DELETE_TEST_ROW)
    wait_for(lambda: not books(leader, "subscriber", f"id = {TEST_ID}"))
    assert not books(techie, "subscriber", f"id = {TEST_ID}")


# side_effect.yml ran playbooks/schema_change.yml and playbooks/sync_sequences.yml on these hosts.


def test_schema_change_reached_every_host() -> None:
    for name in (PUBLISHER, *SUBSCRIBERS):
        dbname = "publisher" if name == PUBLISHER else "subscriber"
        columns = psql(
            _host(name),
            dbname,
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.books'::regclass AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
        )
        assert [c[0] for c in columns][-1] == "isbn", name
        assert psql(_host(name), dbname, "SELECT to_regclass('public.hosts_notes') IS NOT NULL") == [["t"]], name


def test_new_table_published_and_copied_to_its_subscriber_only() -> None:
    # Three notes from the publisher, one written on subscriber1 while it took the writes (the switchover).
    leader, techie = (_host(name) for name in SUBSCRIBERS)
    wait_for(lambda: psql(leader, "subscriber", "SELECT count(*) FROM public.hosts_notes") == [["4"]])
    assert psql(techie, "subscriber", "SELECT count(*) FROM public.hosts_notes") == [["0"]]


def test_sequences_synced_to_the_subscriber_of_the_table() -> None:
    # sync_sequences.yml copied 3 to subscriber1; its note made it 4 there; switchback.yml copied 4 back.
    query = "SELECT last_value FROM public.hosts_notes_id_seq"
    published = psql(_host(PUBLISHER), "publisher", query)
    assert published == [["4"]]
    assert psql(_host(next(iter(SUBSCRIBERS))), "subscriber", query) == published


def test_switchover_and_switchback_of_the_notes() -> None:
    """side_effect.yml moved the notes' writes to subscriber1 and back: the note written there reached the
    publisher through the reverse replication, nothing of the switch is left behind, the role writes again."""
    publisher, leader = _host(PUBLISHER), _host("lr-hosts-subscriber1")
    written = "SELECT note FROM public.hosts_notes WHERE note LIKE 'written on %' ORDER BY note"
    assert psql(publisher, "publisher", written) == [["written on lr-hosts-subscriber1 during the switchover"]]
    assert psql(leader, "subscriber", written) == psql(publisher, "publisher", written)
    # The reverse subscription and publication are gone, the forward subscription runs again.
    assert psql(publisher, "publisher", "SELECT count(*) FROM pg_subscription") == [["0"]]
    assert psql(leader, "subscriber", "SELECT count(*) FROM pg_publication") == [["0"]]
    assert psql(leader, "subscriber", "SELECT count(*) FROM pg_replication_slots") == [["0"]]
    assert psql(leader, "subscriber", "SELECT subenabled FROM pg_subscription") == [["t"]]
    # app_writer writes on the publisher again; subscriber1, a subscriber again, stays fenced for it.
    fenced = (
        "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE r.rolname = 'app_writer' AND 'default_transaction_read_only=on' = ANY(s.setconfig)"
    )
    assert psql(publisher, "publisher", fenced) == [["0"]]
    assert psql(leader, "subscriber", fenced) == [["1"]]
    # Replication flows again from the publisher to subscriber1 (the forward slot was moved past the switch);
    # an explicit id keeps the sequence where test_sequences_synced_to_the_subscriber_of_the_table expects it.
    psql(publisher, "publisher", "INSERT INTO public.hosts_notes (id, note) VALUES (1000, 'after the switchback')")
    wait_for(
        lambda: (
            psql(leader, "subscriber", "SELECT count(*) FROM public.hosts_notes WHERE note = 'after the switchback'")
            == [["1"]]
        )
    )
    psql(publisher, "publisher", "DELETE FROM public.hosts_notes WHERE note = 'after the switchback'")


def test_pause_and_resume_left_subscriber2_replicating_with_the_paused_row() -> None:
    techie = _host("lr-hosts-subscriber2")
    rows = psql(
        techie,
        "subscriber",
        "SELECT subenabled, obj_description(oid, 'pg_subscription') IS NULL FROM pg_subscription",
    )
    assert rows == [["t", "t"]]  # enabled again, the pause record cleared
    assert books(techie, "subscriber", f"id = {PAUSED_ID}") == {(PAUSED_ID, 1, "Written while paused")}
    assert not books(_host("lr-hosts-subscriber1"), "subscriber", f"id = {PAUSED_ID}")  # not a leadership book
