"""``playbooks/conflicts.yml`` on a two-way pair of throwaway PostgreSQL 18 servers.

The servers run with ``track_commit_timestamp`` and ``logging_collector`` (jsonlog), as the playbook requires.
The playbook builds the pair (table, publications, subscriptions with ``origin = none``), provokes each
conflict type PostgreSQL 18 can produce on it, resolves each and proves the pair equal. Checked here against
the servers themselves: every ``confl_*`` counter went up (by exactly one per node for the conflicts
PostgreSQL only logs, by at least one for those that stop the apply worker, which counts every retry), the
log lines and the skipped LSN were found, the table is the same on both nodes; a second run works the same
from the state the first left. Against a PostgreSQL 17 node the playbook refuses, naming the version, with
nothing created.
"""

from __future__ import annotations

import json
import re

import pytest
from pg_harness import selected_majors
from support.ansible import DEFAULT_CALLBACK, ansible_env, run_playbook, status_output
from support.inventory import lab_shaped_inventory

PLAYBOOK = "playbooks/conflicts.yml"
SETTINGS = {"track_commit_timestamp": True, "logging_collector": True, "log_destination": "stderr,jsonlog"}
DATABASE = "peers"
# Per case and node (a is the first peer, the winner): the conflict types it meets, and whether exactly one is
# counted (a conflict that stops the apply worker is counted at every retry: at least one).
CASES = {
    "insert_exists": {"a": {"insert_exists": False}, "b": {"insert_exists": False}},
    "update_origin_differs": {"a": {"update_origin_differs": True}, "b": {"update_origin_differs": True}},
    "update_missing": {"a": {"delete_origin_differs": True}, "b": {"update_missing": True}},
    "delete_missing": {"a": {"delete_missing": True}, "b": {"delete_missing": True}},
    "update_exists": {"a": {"update_exists": False}, "b": {"update_exists": False}},
    "multiple_unique_conflicts": {
        "a": {"multiple_unique_conflicts": False},
        "b": {"multiple_unique_conflicts": False},
    },
}
TYPES = (
    "insert_exists",
    "update_origin_differs",
    "update_exists",
    "update_missing",
    "delete_origin_differs",
    "delete_missing",
    "multiple_unique_conflicts",
)
STOPPING = ("insert_exists", "update_exists", "multiple_unique_conflicts")
# What all the cases leave: rows 10 and 20 the winner's, u = 34 on row 30 and 33 again on 32, row 40 the
# winner's value, 50 and 60 deleted.
ALL_CASES_ROWS = [(10, "a", None), (20, "a", 20), (30, "a", 34), (32, "b", 33), (40, "a", None)]
# The second run provokes one case that stops the apply workers and one that is only logged.
SECOND_RUN = ("insert_exists", "update_origin_differs")
SECOND_RUN_ROWS = [
    (10, "a", None),
    (30, "a", 31),
    (32, "b", 33),
    (40, "a", None),
    (50, "seed", None),
    (60, "seed", None),
]

# The pair's setup: nothing to do on a second run.
SETUP_TASKS = (
    "Create the database",
    "Create the table and the repair origin",
    "Publish the table",
    "Subscribe the loser to the winner",
    "Subscribe the winner to the loser (copy_data = false)",
)

MAJORS = selected_majors()
pytestmark = pytest.mark.skipif(18 not in MAJORS, reason="conflict counters and logging need PostgreSQL 18")


def _flat(run):
    return " ".join((run.stdout + "\n" + run.stderr).split())


def _counters(server):
    columns = ", ".join(f"confl_{kind}" for kind in TYPES)
    rows = server.execute(
        f"SELECT {columns} FROM pg_stat_subscription_stats st JOIN pg_subscription s ON s.oid = st.subid",  # noqa: S608
        dbname=DATABASE,
    )
    return dict(zip(TYPES, rows[0] if rows else [0] * len(TYPES), strict=True))


def _inventory(path, servers):
    path.write_text(
        lab_shaped_inventory(
            {},
            {},
            peers={
                name: {"peer_port": server.port, "peer_password": server.password, "peer_database": DATABASE}
                for name, server in servers.items()
            },
        )
    )
    return path


def _run(inventory, result_file, servers, *args):
    run = run_playbook(
        PLAYBOOK,
        "-e",
        f"conflicts_result_file={result_file}",
        *args,
        inventory=inventory,
        env=ansible_env(DEFAULT_CALLBACK),
        callback=DEFAULT_CALLBACK,
        timeout=600,
    )
    for server in servers.values():
        assert server.password not in run.output
    return run


def _task_block(output, name):
    """The default callback's lines of one task (its results per host)."""
    match = re.search(r"^TASK \[" + re.escape(name) + r"\] \**\n(.*?)(?=^TASK \[|^PLAY |\Z)", output, re.M | re.S)
    assert match, name
    return match.group(1)


def _check_run(run, result_file, servers, before, cases, rows):
    text = _flat(run)
    assert run.rc == 0, run.output[-6000:]
    results = json.loads(result_file.read_text())
    assert results["equal"] is True
    assert "equal in both directions" in text, text[-3000:]
    assert sorted({r["case"] for r in results["records"]}) == sorted(cases)
    for node, server in servers.items():
        expected = {kind: exact for case in cases for kind, exact in CASES[case][node].items()}
        after = _counters(server)
        for kind in set(TYPES) - set(expected):
            assert after[kind] == before[node][kind], (node, kind, before[node], after)
        for kind, exact in expected.items():
            delta = after[kind] - before[node][kind]
            if exact:
                assert delta == 1, (node, kind, before[node], after)
            else:
                assert delta >= 1, (node, kind, before[node], after)
        for case in cases:
            [record] = [r for r in results["records"] if r["host"] == node and r["case"] == case]
            assert record["equal"] is True, record
            assert record["log_available"] is True, record
            for kind in CASES[case][node]:
                entry = record["log"][kind]
                assert f"conflict={kind}" in entry["message"], entry
                assert entry["severity"] == ("ERROR" if case in STOPPING else "LOG"), entry
                assert entry["finish_lsn"], entry
                # The table's counters are the server's.
                assert record["after"][kind] - record["before"][kind] >= 1, record
                assert f"| {kind} |" in text, kind
        assert server.execute("SELECT id, v, u FROM conflict_demo ORDER BY id", dbname=DATABASE) == rows, node
        origins = server.execute("SELECT suborigin, subenabled FROM pg_subscription", dbname=DATABASE)
        assert origins == [("none", True)], (node, origins)
    # The winner skipped the loser's transaction of each stopping case at the LSN its log named.
    for case in cases:
        [record] = [r for r in results["records"] if r["host"] == "a" and r["case"] == case]
        if case in STOPPING:
            assert record["skip_lsn"] == record["log"][case]["finish_lsn"], record
            assert f"(skip_lsn {record['skip_lsn']})" in text
        else:
            assert record["skip_lsn"] is None, record
    # The update_origin_differs case diverged (the nodes swapped values) before the winner's fix.
    if "update_origin_differs" in cases:
        [swapped] = [r for r in results["records"] if r["host"] == "a" and r["case"] == "update_origin_differs"]
        assert swapped["diverged_equal"] is False, swapped
    return text


def test_conflicts_playbook_provokes_resolves_and_repeats(pg_server_factory, tmp_path):
    servers = {name: pg_server_factory(18, name=f"peer18{name}", settings=SETTINGS) for name in ("a", "b")}
    inventory = _inventory(tmp_path / "hosts.yml", servers)
    result_file = tmp_path / "conflicts.json"
    before = {name: dict.fromkeys(TYPES, 0) for name in servers}

    # --check: the go/no-go only, nothing created.
    checked = _run(inventory, result_file, servers, "--check")
    assert checked.rc == 0, checked.output[-3000:]
    assert "GO     b settings    track_commit_timestamp = on, logging_collector = on" in checked.output
    for server in servers.values():
        assert server.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [DATABASE]) == 0
    # status.yml reads the peers before the pair's database exists (through the postgres database).
    text = status_output(inventory, tuple(server.password for server in servers.values()))
    assert re.search(r"- a +PostgreSQL 18\.\S+ +wal_level=logical +slots 0/\d+ +senders 0/\d+ +\(peer\)", text), text
    assert "no subscription in database postgres" in text, text
    assert "status: healthy (exit 0)" in text, text

    first = _run(inventory, result_file, servers)
    text = _check_run(first, result_file, servers, before, list(CASES), ALL_CASES_ROWS)
    assert "| insert_exists | a 0->" in text, text[-3000:]
    # ... and after: each peer publishes (a slot in use) and subscribes; the conflicts just met are warnings.
    text = status_output(inventory, tuple(server.password for server in servers.values()))
    for name, other in (("a", "b"), ("b", "a")):
        assert re.search(rf"- {name} +PostgreSQL 18\.\S+ .* slots 1/\d+ +senders 1/\d+ +\(peer\)", text), text
        assert f"slot conflict_demo_from_{name} active" in text, text
        assert f"sub conflict_demo_from_{other} enabled conflict_demo_pub, ready 1/1" in text, text
    assert "check warning subscription_conflicts" in text, text

    # Second run: the pair exists (nothing re-created), the seed resets the rows, the conflicts come again and
    # the log lines of this run are told from the first run's.
    before = {name: _counters(server) for name, server in servers.items()}
    oids = {
        name: server.execute("SELECT oid FROM pg_subscription", dbname=DATABASE) for name, server in servers.items()
    }
    second = _run(inventory, result_file, servers, "-e", f"conflicts_cases={','.join(SECOND_RUN)}")
    _check_run(second, result_file, servers, before, list(SECOND_RUN), SECOND_RUN_ROWS)
    for name, server in servers.items():
        assert server.execute("SELECT oid FROM pg_subscription", dbname=DATABASE) == oids[name]
    for name in SETUP_TASKS:
        assert "changed:" not in _task_block(second.output, name), (name, _task_block(second.output, name))
    assert "changed:" in _task_block(first.output, "Subscribe the loser to the winner")


@pytest.mark.skipif(17 not in MAJORS, reason="the refusal needs a PostgreSQL 17 server (PG_MAJORS)")
def test_conflicts_playbook_refuses_postgresql_17(pg_server_factory, tmp_path):
    """A 17 node is refused, naming its version; an 18 node without track_commit_timestamp too - with
    conflicts_configure the setting is written there (ALTER SYSTEM) and a restart applies it; nothing else changes."""
    servers = {
        "a": pg_server_factory(18, name="peer18", settings={**SETTINGS, "track_commit_timestamp": False}),
        "b": pg_server_factory(17, name="peer17", settings=SETTINGS),
    }
    inventory = _inventory(tmp_path / "hosts.yml", servers)

    def written(server):
        return server.scalar(
            "SELECT count(*) FROM pg_file_settings WHERE name = 'track_commit_timestamp'"
            " AND sourcefile LIKE '%%postgresql.auto.conf'"
        )

    run = _run(inventory, tmp_path / "conflicts.json", servers)
    text = _flat(run)
    assert run.rc != 0, text
    assert "NO-GO b PostgreSQL PostgreSQL 17." in text, text[-3000:]
    assert "need PostgreSQL 18" in text, text[-3000:]
    assert "NO-GO a settings track_commit_timestamp off" in text, text[-3000:]
    assert "NO-GO, nothing changed:" in text, text[-3000:]
    for server in servers.values():
        assert server.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [DATABASE]) == 0
        assert written(server) == 0
    assert not (tmp_path / "conflicts.json").exists()

    configured = _run(inventory, tmp_path / "conflicts.json", servers, "-e", "conflicts_configure=true")
    text = _flat(configured)
    assert configured.rc != 0, text
    assert "track_commit_timestamp off; now written with ALTER SYSTEM (server_settings)" in text, text[-3000:]
    assert "NO-GO, nothing changed but the settings written with ALTER SYSTEM" in text, text[-3000:]
    assert written(servers["a"]) == 1
    assert written(servers["b"]) == 0
    for server in servers.values():
        assert server.scalar("SELECT count(*) FROM pg_database WHERE datname = %s", [DATABASE]) == 0
    servers["a"].restart()
    assert servers["a"].scalar("SHOW track_commit_timestamp") == "on"


def test_conflicts_playbook_refuses_a_loop(pg_server_factory, tmp_path):
    """A pair that already replicates both ways without origin = none: refused, the subscriptions left as they were."""
    servers = {name: pg_server_factory(18, name=f"loop18{name}", settings=SETTINGS) for name in ("a", "b")}
    for server in servers.values():
        server.execute(f"CREATE DATABASE {DATABASE}")
        server.execute("CREATE TABLE conflict_demo (id int PRIMARY KEY, v text, u int UNIQUE)", dbname=DATABASE)
        server.execute("CREATE PUBLICATION conflict_demo_pub FOR TABLE conflict_demo", dbname=DATABASE)
    for name, other in (("a", "b"), ("b", "a")):
        source = servers[other]
        conninfo = f"host=127.0.0.1 port={source.port} dbname={DATABASE} user=postgres password={source.password}"
        servers[name].execute(
            f"CREATE SUBSCRIPTION loop_from_{other} CONNECTION '{conninfo}' PUBLICATION conflict_demo_pub"
            " WITH (copy_data = false, origin = any)",
            dbname=DATABASE,
        )
    run = _run(_inventory(tmp_path / "hosts.yml", servers), tmp_path / "conflicts.json", servers)
    text = _flat(run)
    assert run.rc != 0, text
    assert "NO-GO a origin two-way replication" in text, text[-3000:]
    assert "NO-GO, nothing changed" in text, text[-3000:]
    for server in servers.values():
        assert server.execute("SELECT subname, suborigin FROM pg_subscription", dbname=DATABASE)[0][1] == "any"
        assert server.scalar("SELECT count(*) FROM pg_subscription", dbname=DATABASE) == 1
    assert not (tmp_path / "conflicts.json").exists()
