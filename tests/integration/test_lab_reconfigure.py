"""Reconfiguring the real lab by variables only (issue L1; README "Reconfiguring the lab").

Each reconfiguration is one ``site.yml`` run with changed variables (``-e`` or an extra inventory
source), checked for what it did to the data, for reporting ``changed`` only on the tasks that had
something to do, and followed by a re-run that must report ``changed=0``:

- (a) a table added to a publication appears on its subscriber, rows included (the subscriber role
  creates it from the publisher's schema and refreshes the subscription);
- (b) a changed row filter governs the changes made after it; rows that already matched the new
  filter are NOT copied (PostgreSQL never re-copies a subscribed table; see
  roles/publisher/README.md), and an UPDATE moving a row into the filter arrives as an INSERT;
- (c) subscription options (binary, streaming) change in place: same subscription, no re-copy, no
  restart;
- (d) ``subscriber3`` (PostgreSQL 17, 127.0.0.1:5435, ``technical_pub``) added to the inventory (a
  second inventory source) is built and synchronised without restarting anything; removed again,
  site.yml retires it: subscription, container and slot gone (here with ``lab_retire_purge=true``,
  so its volume too). These runs are limited to ``localhost`` (+ ``subscriber3``); the final
  full default run must report ``changed=0``.

(a)-(c) run with ``--limit publisher,subscriber1`` (the lab's network and TLS facts are then read by
the limited plays themselves). Every fixture restores the lab's default shape in a finalizer, also
after a failure; the last test re-runs the default site.yml and expects ``changed=0``.
Run it under ``flock -x /tmp/inventium-lab.lock`` next to other users of the lab.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
yaml = pytest.importorskip("yaml")

from lab_client import (  # noqa: E402
    REPO_ROOT,
    PlaybookRun,
    books,
    connect,
    lab_unavailable,
    pg_nodes,
    postmaster_start,
    run_site,
    wait_for,
)

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

LIMIT = ("--limit", "publisher,subscriber1")
SUBSCRIPTION = "subscriber1_sub"
# The subscriber role's subscription task (its name names no host's publications: one banner serves every host).
SUBSCRIBE_TASK = "Subscribe to the publications"
NEW_TABLE = "public.reconf_items"
NEW_ROWS = {(1, "one"), (2, "two"), (3, "three")}
# (b): the leadership filter widened to a second topic.
WIDE_FILTER = "topic IN ('leadership', 'management')"
PRE_ID, NEW_ID, MOVED_ID, MARK_ID = 920001, 920002, 920003, 920004
TEST_IDS = [PRE_ID, NEW_ID, MOVED_ID, MARK_ID]
SUB3_INVENTORY = """\
all:
  children:
    subscribers:
      hosts:
        subscriber3:
          subscriber_runtime: docker
          subscriber_version: "17"
          subscriber_port: 5435
          subscriber_publications: [technical_pub]
"""
SUB3_CONFIG_DIR = Path("/var/lib/inventium-logical-replication/postgresql/subscriber3")
TECHNICAL_IDS = {1, 3, 4}
CHANGED = re.compile(r"^changed: \[([^\]]+)\](?: => \(item=(.*)\))?", re.M)
TASK = re.compile(r"^TASK \[(?:[^\]]* : )?([^\]]*)\]", re.M)


# ------------------------------------------------------------------ helpers
def changes(run: PlaybookRun) -> dict[str, set[str]]:
    """``{host: {task name, or 'task name: item'}}`` of the tasks that reported changed."""
    out: dict[str, set[str]] = {}
    task = ""
    for line in run.output.splitlines():
        if m := TASK.match(line):
            task = m.group(1)
        elif m := CHANGED.match(line):
            out.setdefault(m.group(1), set()).add(f"{task}: {m.group(2)}" if m.group(2) else task)
    return out


def site(*extra: str) -> PlaybookRun:
    run = run_site(*extra)
    print(f"site.yml {' '.join(extra)[:120]}: {run.seconds:.1f} s")
    assert run.rc == 0, run.output[-4000:]
    return run


def assert_noop(run: PlaybookRun) -> None:
    recap = run.recap()
    assert recap, run.output[-3000:]
    assert all(stats["changed"] == 0 for stats in recap.values()), run.changed_tasks()


def evars(values: dict[str, Any]) -> tuple[str, str]:
    return ("-e", json.dumps(values))


def lab_publications() -> list[dict[str, Any]]:
    group_vars = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/publishers.yml").read_text())
    return copy.deepcopy(group_vars["publisher_publications"])


def reconfigured_publications() -> list[dict[str, Any]]:
    pubs = lab_publications()
    lead = next(p for p in pubs if p["name"] == "leadership_pub")
    lead["tables"] = [{"name": "public.books", "where": WIDE_FILTER}, NEW_TABLE]
    return pubs


def query(node: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connect(node) as conn:
        return conn.execute(sql, params).fetchall()


def subscription_state(node: str = "subscriber1") -> dict[str, Any]:
    (oid, binary, stream), *_others = query(
        node, "SELECT oid, subbinary, substream::text FROM pg_subscription WHERE subname = %s", [f"{node}_sub"]
    )
    rels = query(
        node,
        "SELECT format('%%I.%%I', n.nspname, c.relname), r.srsubstate, r.srsublsn::text"
        " FROM pg_subscription_rel AS r JOIN pg_class AS c ON c.oid = r.srrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE r.srsubid = %s",
        [oid],
    )
    return {"oid": oid, "binary": binary, "streaming": stream, "rels": {r[0]: r[1:] for r in rels}}


def has_table(node: str, table: str) -> bool:
    return query(node, "SELECT to_regclass(%s) IS NOT NULL", [table])[0][0]


def lab_slots() -> set[str]:
    return {row[0] for row in query("publisher", "SELECT slot_name FROM pg_replication_slots")}


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, timeout=120)


# ------------------------------------------------------------------ (a), (b), (c)
def _cleanup_reconfigure() -> None:
    """Back to the default shape: test rows, default publications and options, no test table."""
    with connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [TEST_IDS])
    try:
        site(*LIMIT, *evars({"subscriber_subscription_options": {"binary": False, "streaming": "off"}}))
    finally:
        for node in ("subscriber1", "publisher"):
            with connect(node) as conn:
                if node != "publisher":
                    conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [TEST_IDS])
                conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")


@pytest.fixture(scope="class")
def reconfigured() -> Iterator[dict[str, Any]]:
    # try/finally around the setup too: a failing run still restores the lab.
    try:
        with connect("publisher") as conn:
            conn.execute("DELETE FROM public.books WHERE id = ANY(%s)", [TEST_IDS])
            conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")
            conn.execute(f"CREATE TABLE {NEW_TABLE} (id integer PRIMARY KEY, note text)")
            for row in sorted(NEW_ROWS):
                conn.execute(f"INSERT INTO {NEW_TABLE} VALUES (%s, %s)", row)  # noqa: S608
            # Matches the widened filter before it exists: never copied.
            conn.execute(
                "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 90, 'Before the change', 'management')",
                [PRE_ID],
            )
        with connect("subscriber1") as conn:
            conn.execute(f"DROP TABLE IF EXISTS {NEW_TABLE}")
        before = {
            "sub1": subscription_state("subscriber1"),
            "sub2": subscription_state("subscriber2"),
            "starts": {node: postmaster_start(node) for node in ("publisher", "subscriber1", "subscriber2")},
        }
        change = evars(
            {
                "publisher_publications": reconfigured_publications(),
                "subscriber_subscription_options": {"binary": True, "streaming": "on"},
            }
        )
        first = site(*LIMIT, *change)
        second = site(*LIMIT, *change)
        yield {"before": before, "first": first, "second": second}
    finally:
        _cleanup_reconfigure()


@pytest.mark.usefixtures("reconfigured")
class TestReconfigure:
    def test_changed_only_what_changed(self, reconfigured: dict[str, Any]) -> None:
        first = reconfigured["first"]
        assert set(first.recap()) == {"publisher", "subscriber1"}
        assert changes(first) == {
            "publisher": {
                "Grant SELECT on the published tables to replicator: public.reconf_items",
                "Manage the publications",
            },
            "subscriber1": {"Create the tables on the subscriber", SUBSCRIBE_TASK},
        }, first.changed_tasks()
        # One call for all publications (the module's list form); only the changed one is named.
        # The lab's callback prints results as YAML (ansible.cfg); the pattern reads JSON output too.
        named = re.findall(r"""msg"?: ['"]?changed publications: ([^'"\n]*)""", first.output)
        assert named == ["leadership_pub"], first.output[-4000:]
        assert_noop(reconfigured["second"])

    def test_a_added_table_arrives_with_its_rows(self, reconfigured: dict[str, Any]) -> None:
        assert set(query("subscriber1", f"SELECT id, note FROM {NEW_TABLE}")) == NEW_ROWS  # noqa: S608
        assert subscription_state()["rels"][NEW_TABLE][0] == "r"
        with connect("publisher") as conn:
            conn.execute(f"INSERT INTO {NEW_TABLE} VALUES (4, 'four')")  # noqa: S608
        wait_for(lambda: (4, "four") in set(query("subscriber1", f"SELECT id, note FROM {NEW_TABLE}")))  # noqa: S608
        assert not has_table("subscriber2", NEW_TABLE)

    def test_b_row_filter_governs_new_changes_only(self, reconfigured: dict[str, Any]) -> None:
        with connect("publisher") as conn:
            # An UPDATE of a row that matched the new filter before the change: sent as an UPDATE,
            # which finds no row on the subscriber and is skipped there.
            conn.execute("UPDATE public.books SET title = 'Before, edited' WHERE id = %s", [PRE_ID])
            conn.execute(
                "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 91, 'After the change', 'management'),"
                " (%s, 92, 'Elsewhere', 'other')",
                [NEW_ID, MOVED_ID],
            )
            # Moves into the filter: arrives as an INSERT.
            conn.execute("UPDATE public.books SET topic = 'management' WHERE id = %s", [MOVED_ID])
            conn.execute(
                "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 93, 'Marker', 'leadership')", [MARK_ID]
            )
        wait_for(lambda: bool(books("subscriber1", f"id = {MARK_ID}")))
        ids = f"id = ANY('{{{','.join(map(str, TEST_IDS))}}}')"
        assert books("subscriber1", ids) == {
            (NEW_ID, 91, "After the change"),
            (MOVED_ID, 92, "Elsewhere"),
            (MARK_ID, 93, "Marker"),
        }
        assert not books("subscriber2", ids)
        # The seed's rows are untouched: no re-copy, nothing technical arrived (other ids belong
        # to workloads that may run on the shared lab).
        assert {row[0] for row in books("subscriber1", "id BETWEEN 1 AND 5")} == {2, 5}

    def test_c_options_change_in_place(self, reconfigured: dict[str, Any]) -> None:
        before, after = reconfigured["before"], subscription_state("subscriber1")
        # substream is a boolean before PostgreSQL 16 (subscriber1 runs 15), a "char" since.
        assert after["binary"] is True
        assert after["streaming"] in ("true", "t")
        assert after["oid"] == before["sub1"]["oid"]
        # Same tables in the same state from the same LSN: nothing was copied again.
        old_rels = before["sub1"]["rels"]
        assert {t: s for t, s in after["rels"].items() if t in old_rels} == old_rels
        assert subscription_state("subscriber2") == before["sub2"]
        starts = {node: postmaster_start(node) for node in ("publisher", "subscriber1", "subscriber2")}
        assert starts == before["starts"]


# ------------------------------------------------------------------ schema files
PROBE_TABLE = "public.reconf_schema_probe"


def test_schema_file_applied_once(tmp_path: Path) -> None:
    """A schema file added to publisher_schema_files runs once, a re-run skips it."""
    probe = tmp_path / "probe.sql"
    probe.write_text(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id integer PRIMARY KEY);\n")
    group_vars = yaml.safe_load((REPO_ROOT / "inventory/lab/group_vars/publishers.yml").read_text())
    files = evars({"publisher_schema_files": [*group_vars["publisher_schema_files"], str(probe)]})
    try:
        first = site("--limit", "publisher", *files)
        assert changes(first) == {"publisher": {f"Apply the schema files: {probe}"}}, first.changed_tasks()
        assert has_table("publisher", PROBE_TABLE)
        (recorded,) = query("publisher", "SELECT sha256 FROM inventium.schema_files WHERE name = %s", [str(probe)])
        assert recorded[0] == hashlib.sha256(probe.read_text().rstrip("\n").encode()).hexdigest()
        assert_noop(site("--limit", "publisher", *files))
    finally:
        with connect("publisher") as conn:
            conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")
            conn.execute("DELETE FROM inventium.schema_files WHERE name = %s", [str(probe)])


# ------------------------------------------------------------------ (d)
def _sub3_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sub3") / "subscriber3.yml"
    path.write_text(SUB3_INVENTORY)
    return path


def _cleanup_subscriber3() -> None:
    """Whatever state a failure left: no subscriber3 container, slot, volume or files."""
    docker("rm", "--force", "--volumes", "subscriber3")
    docker("volume", "rm", "--force", "subscriber3-data")
    shutil.rmtree(SUB3_CONFIG_DIR, ignore_errors=True)
    with connect("publisher") as conn:
        conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE slot_name = 'subscriber3_sub' AND active_pid IS NOT NULL"
        )
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = 'subscriber3_sub' AND NOT active"
        )
    (REPO_ROOT / ".lab/secrets/subscriber3-postgres").unlink(missing_ok=True)
    if "subscriber3" in pg_nodes():
        site()


@pytest.fixture(scope="class")
def subscriber3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    try:
        extra = _sub3_inventory(tmp_path_factory)
        # After run_site's -i inventory/lab. Limited to the Docker host (lab state, retiring,
        # client files) and the new node: nothing else needs to change for it.
        # lab_state_dir follows each host's inventory directory: point subscriber3 at the lab's.
        with_sub3 = ("-i", str(extra), "--limit", "localhost,subscriber3", "-e", f"lab_state_dir={REPO_ROOT}/.lab")
        starts = {node: postmaster_start(node) for node in ("publisher", "subscriber1", "subscriber2")}
        added = site(*with_sub3)
        state: dict[str, Any] = {"starts": starts, "added": added, "readded": site(*with_sub3)}
        state["sub3_books"] = {row[0] for row in books("subscriber3")}
        state["sub3_labels"] = json.loads(
            docker("inspect", "--format", "{{json .Config.Labels}}", "subscriber3").stdout or "{}"
        )
        state["slots_with_sub3"] = lab_slots()
        state["removed"] = site("--limit", "localhost", "-e", "lab_retire_purge=true")
        state["again"] = site()
        yield state
    finally:
        _cleanup_subscriber3()


@pytest.mark.usefixtures("subscriber3")
class TestSubscriber3:
    def test_added_node_is_built_and_synchronised(self, subscriber3: dict[str, Any]) -> None:
        added = subscriber3["added"]
        changed = changes(added)
        assert set(added.recap()) == {"localhost", "subscriber3"}
        assert SUBSCRIBE_TASK in changed["subscriber3"]
        assert_noop(subscriber3["readded"])
        assert subscriber3["sub3_books"] == TECHNICAL_IDS
        assert subscriber3["sub3_labels"]["org.inventium.lab.node"] == "subscriber3"
        assert "subscriber3_sub" in subscriber3["slots_with_sub3"]
        # Sized for 4 subscribers: adding one restarts nothing.
        starts = {node: postmaster_start(node) for node in ("publisher", "subscriber1", "subscriber2")}
        assert starts == subscriber3["starts"]

    def test_removed_node_is_retired(self, subscriber3: dict[str, Any]) -> None:
        removed = subscriber3["removed"]
        assert "Retiring subscriber3 (not in the inventory any more)" in removed.output
        assert changes(removed)["localhost"] >= {
            "Drop the subscription inside the container: subscriber3",
            "Remove the container: subscriber3",
            "Remove the data volumes (lab_retire_purge): subscriber3-data",
            "Remove the configuration directories (lab_retire_purge): subscriber3",
            "Drop the slots on the publisher: subscriber3_sub",
        }
        assert set(removed.recap()) == {"localhost"}
        assert "subscriber3_sub" not in lab_slots()
        assert docker("container", "inspect", "subscriber3").returncode != 0
        assert docker("volume", "inspect", "subscriber3-data").returncode != 0
        assert not SUB3_CONFIG_DIR.exists()
        assert "subscriber3" not in pg_nodes()

    def test_default_shape_rerun_changes_nothing(self, subscriber3: dict[str, Any]) -> None:
        assert_noop(subscriber3["again"])
        assert lab_slots() >= {"subscriber1_sub", "subscriber2_sub"}
        assert not {slot for slot in lab_slots() if slot.startswith("subscriber3")}
