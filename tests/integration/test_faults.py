"""Faults on the real lab under a steady write load (issue R1, item 3).

A writer thread inserts rows into the demo table ``public.books`` on the publisher (~40 rows/s,
topics leadership / technical / other in turn, ids in a range of this test's own), through a
connection it re-opens with backoff when the publisher goes away, and records which inserts the
server acknowledged and which ended without an answer. Then, one after the other:

1. ``docker kill subscriber1`` for 15 s, then ``docker start``;
2. a fast restart of the publisher (``pg_ctlcluster ... restart -m fast``);
3. ``docker network disconnect`` of subscriber2 for 32 s, then ``connect``;
4. a primary-key conflict on subscriber1 (a row inserted there with an id the writer is about to
   write), fixed the way ``scripts/status.sh`` says: the conflicting row deleted on the subscriber.

For each: ``scripts/status.sh`` during the fault (exit code and the finding that names it; for the
killed container ``make status``: every other node still shown, the unreachable one with when the
sampler last read it, no secret), the
time from the end of the fault until a row written after it arrives on the subscriber (within a
bound; printed), and no other manual step. At the end: on each subscriber exactly the rows its
row filter lets through, no acknowledged row missing, and every table of its subscription equal
to the publisher's by count and checksum (``_replication_compare.compare_node``, the proof the
experiments use). The writer's rows are deleted afterwards. The whole test holds the lab lock
exclusively; a fixture starts the containers and reconnects the network whatever happens.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from pathlib import Path

import lab_client
import psycopg
import pytest
from lab_client import REPO_ROOT, lab_lock, lab_unavailable, pg_nodes
from psycopg import sql
from support.ansible import LAB_DROP, ansible_env

from ansible_collections.inventium.logical_replication.plugins.module_utils._replication_compare import (
    compare_node,
)

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

LAB_NETWORK = "inventium-lab"
TOPICS = ("leadership", "technical", "other")
# Which subscriber receives which topic (group_vars/publishers.yml: leadership_pub, technical_pub).
TOPIC_OF = {"subscriber1": "leadership", "subscriber2": "technical"}
FIRST_ID = 700_000_000  # far above the demo rows and the workloads' ids
RATE = 40.0  # rows per second
LOCK_WAIT = 1800.0
STATUS_TIMEOUT = 300
# Bounds on the time from the end of a fault until a row written after it is on the subscriber.
RESUME_AFTER_CONTAINER_START = 90.0  # container start, crash recovery, apply worker (re)start
RESUME_AFTER_PUBLISHER_RESTART = 60.0
RESUME_AFTER_NETWORK_BACK = 30.0  # keepalives + 30 s timeouts (docs/dead-connections.md): 55 s stall before
RESUME_AFTER_CONFLICT_FIX = 60.0


def login(node):
    """Module-style connection parameters (connection.py) of a lab node, for compare_node."""
    info = pg_nodes()[node]
    return {
        "login_host": info["host"],
        "login_port": int(info["port"]),
        "login_user": info["user"],
        "login_password": Path(info["password_file"]).read_text().strip(),
        "login_db": info["dbname"],
        "ssl_mode": info.get("sslmode") or "prefer",
        "ssl_rootcert": info.get("sslrootcert"),
        "connect_timeout": 10,
    }


class Writer(threading.Thread):
    """Steady inserts into public.books on the publisher; survives the publisher going away."""

    def __init__(self):
        super().__init__(name="fault-writer", daemon=True)
        self.next_id = FIRST_ID
        self.acked: list[tuple[int, float]] = []  # (id, time acknowledged)
        self.unknown: list[int] = []  # no answer: committed or not, the publisher knows
        self.reconnects = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def reserve(self, topic, ahead):
        """An id the writer will write about ``ahead`` rows from now, of ``topic``."""
        with self.lock:
            candidate = self.next_id + ahead
        while TOPICS[candidate % len(TOPICS)] != topic:
            candidate += 1
        return candidate

    def first_acked_after(self, moment, topic, timeout=120.0):
        """The first id of ``topic`` acknowledged after ``moment`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for row_id, acked_at in self.acked:
                    if acked_at > moment and TOPICS[row_id % len(TOPICS)] == topic:
                        return row_id
            assert self.error is None, f"the writer failed: {self.error!r}"
            time.sleep(0.2)
        raise AssertionError(f"the writer acknowledged no {topic} row within {timeout:.0f} s of the fault's end")

    def run(self):
        conn = None
        pause = 0.1
        try:
            while not self.stop.is_set():
                if conn is None:
                    try:
                        conn = lab_client.connect("publisher")
                        pause = 0.1
                    except psycopg.OperationalError:
                        time.sleep(pause)
                        pause = min(pause * 2, 2.0)
                        self.reconnects += 1
                        continue
                with self.lock:
                    row_id = self.next_id
                    self.next_id += 1
                topic = TOPICS[row_id % len(TOPICS)]
                try:
                    conn.execute(
                        "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, %s, %s, %s)",
                        (row_id, row_id % 1000, f"fault test row {row_id}", topic),
                    )
                except psycopg.OperationalError:
                    with self.lock:
                        self.unknown.append(row_id)
                    conn.close()
                    conn = None
                    continue
                with self.lock:
                    self.acked.append((row_id, time.monotonic()))
                time.sleep(1.0 / RATE)
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc
        finally:
            if conn is not None:
                conn.close()


def status(command=None):
    """``scripts/status.sh`` (or ``command``) on the lab: exit code and output (whitespace runs made one space)."""
    proc = subprocess.run(
        command or [str(REPO_ROOT / "scripts" / "status.sh"), "-i", lab_client.LAB_INVENTORY],
        cwd=REPO_ROOT,
        env=ansible_env(None, drop=LAB_DROP),
        capture_output=True,
        text=True,
        timeout=STATUS_TIMEOUT,
        check=False,
    )
    return proc.returncode, " ".join((proc.stdout + "\n" + proc.stderr).split())


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def container_running(name):
    return docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip() == "true"


def wait_accepting(node, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with lab_client.connect(node) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, f"{node} does not accept connections after {timeout:.0f} s"
            time.sleep(0.5)


def has_row(node, row_id):
    try:
        with lab_client.connect(node) as conn:
            return conn.execute("SELECT 1 FROM public.books WHERE id = %s", (row_id,)).fetchone() is not None
    except psycopg.OperationalError:
        return False


def resume_seconds(writer, node, fault_end, bound):
    """Seconds from ``fault_end`` until a row of ``node``'s topic written after it is on ``node``."""
    row_id = writer.first_acked_after(fault_end, TOPIC_OF[node])
    deadline = fault_end + bound
    while not has_row(node, row_id):
        assert time.monotonic() < deadline, (
            f"{node}: row {row_id}, written after the fault ended, has not arrived {bound:.0f} s after it"
        )
        time.sleep(0.2)
    return time.monotonic() - fault_end


def publisher_cluster():
    """``(version, name)`` of the host's cluster that serves the lab's publisher port."""
    port = str(pg_nodes()["publisher"]["port"])
    for line in subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == port:
            return fields[0], fields[1]
    raise AssertionError(f"no cluster of pg_lsclusters listens on the publisher's port {port}")


@pytest.fixture
def writer():
    """The steady writer; stopped, and its rows deleted everywhere, whatever happens."""
    thread = Writer()
    thread.start()
    yield thread
    thread.stop.set()
    thread.join(timeout=30)
    # The subscribers' copies first: a conflicting row left by a failed run would keep an apply
    # worker stuck; the publisher's DELETEs of rows already gone on a subscriber are skipped there.
    for node in TOPIC_OF:
        with contextlib.suppress(psycopg.OperationalError), lab_client.connect(node) as conn:
            conn.execute("DELETE FROM public.books WHERE id >= %s", (FIRST_ID,))
    with lab_client.connect("publisher") as conn:
        conn.execute("DELETE FROM public.books WHERE id >= %s", (FIRST_ID,))


@pytest.fixture
def heal():
    """Whatever happens: the subscribers' containers run and are on the lab network again."""
    yield
    for node in TOPIC_OF:
        if not container_running(node):
            docker("start", node, check=False)
        networks = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", node, check=False).stdout
        if LAB_NETWORK not in networks:
            docker("network", "connect", LAB_NETWORK, node, check=False)
    for node in TOPIC_OF:
        wait_accepting(node)


def test_faults_lose_nothing_and_resume(writer, heal):
    resumed = {}
    with lab_lock(exclusive=True, wait=LOCK_WAIT):
        before, output = status()
        assert before in (0, 1), f"the lab is not healthy before the faults (exit {before}):\n{output}"
        time.sleep(2)  # some rows before the first fault

        # 1. A subscriber's container killed. `make status` (make can only say 0 or 2) still shows
        # every other node, since when the node is gone, and no secret.
        docker("kill", "subscriber1")
        time.sleep(3)
        rc, output = status(["make", "status"])
        assert rc == 2, output
        port = pg_nodes()["subscriber1"]["port"]
        assert f"subscriber1 UNREACHABLE: Unable to connect to PostgreSQL at host 127.0.0.1 port {port}" in output
        assert "check error node_unreachable: the server could not be read" in output, output
        ago = re.search(r"last read by the sampler \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((\d+) s ago\)", output)
        assert ago, output
        assert int(ago.group(1)) < 300, output
        assert "slot subscriber1_sub INACTIVE" in output, output
        assert "sub subscriber2_sub enabled" in output, output
        assert "status: critical (exit 2)" in output, output
        for secret in lab_client.all_secrets():
            assert secret not in output
        time.sleep(7)
        docker("start", "subscriber1")
        started = time.monotonic()
        resumed["subscriber1 killed"] = resume_seconds(writer, "subscriber1", started, RESUME_AFTER_CONTAINER_START)

        # 2. The publisher restarted fast.
        version, cluster = publisher_cluster()
        subprocess.run(["pg_ctlcluster", version, cluster, "restart", "-m", "fast"], check=True, capture_output=True)
        restarted = time.monotonic()
        for node in TOPIC_OF:
            resumed[f"publisher restarted ({node})"] = resume_seconds(
                writer, node, restarted, RESUME_AFTER_PUBLISHER_RESTART
            )
        assert writer.reconnects >= 1 or writer.unknown, "the writer never noticed the restart"

        # 3. A subscriber cut off the network for 32 s.
        docker("network", "disconnect", LAB_NETWORK, "subscriber2")
        time.sleep(5)
        rc, output = status()
        assert rc == 2, output
        assert "subscriber2 UNREACHABLE:" in output, output
        time.sleep(27)
        docker("network", "connect", LAB_NETWORK, "subscriber2")
        reconnected = time.monotonic()
        resumed["subscriber2 network cut 32 s"] = resume_seconds(
            writer, "subscriber2", reconnected, RESUME_AFTER_NETWORK_BACK
        )

        # 4. A primary-key conflict on subscriber1: the apply worker stops on it; status names it and
        # says what to do; the test does exactly that.
        conflict_id = writer.reserve("leadership", ahead=int(RATE))
        with lab_client.connect("subscriber1") as conn:
            conn.execute(
                "INSERT INTO public.books (id, sku, title, topic) VALUES (%s, 0, 'written on the subscriber', "
                "'leadership')",
                (conflict_id,),
            )
        with lab_client.connect("publisher") as conn:
            lab_client.wait_for(
                lambda: conn.execute("SELECT 1 FROM public.books WHERE id = %s", (conflict_id,)).fetchone() is not None,
                timeout=30,
            )
        deadline = time.monotonic() + 120
        while True:
            rc, output = status()
            fix = re.search(
                r"Delete or fix the conflicting row on the subscriber \(public\.books, key \(id\)=\((\d+)\)\)", output
            )
            if fix:
                break
            assert time.monotonic() < deadline, f"status did not name the conflict within 120 s:\n{output}"
            time.sleep(3)
        assert rc in (1, 2), output
        assert int(fix.group(1)) == conflict_id, output
        assert "duplicate key value violates unique constraint" in output, output
        # (the YAML output doubles the quotes)
        assert re.search(r"ALTER SUBSCRIPTION subscriber1_sub SKIP \(lsn = '+[0-9A-F]+/[0-9A-F]+'+\)", output), output
        with lab_client.connect("subscriber1") as conn:
            conn.execute("DELETE FROM public.books WHERE id = %s", (int(fix.group(1)),))
        fixed = time.monotonic()
        resumed["subscriber1 conflict fixed"] = resume_seconds(writer, "subscriber1", fixed, RESUME_AFTER_CONFLICT_FIX)

        # Nothing lost, duplicated or different.
        time.sleep(2)
        writer.stop.set()
        writer.join(timeout=30)
        assert writer.error is None, repr(writer.error)
        acked = {entry[0] for entry in writer.acked}
        with lab_client.connect("publisher") as conn:
            on_publisher = {row[0] for row in conn.execute("SELECT id FROM public.books WHERE id >= %s", (FIRST_ID,))}
        assert acked <= on_publisher, f"acknowledged rows missing on the publisher: {sorted(acked - on_publisher)[:10]}"
        assert on_publisher <= acked | set(writer.unknown), "rows on the publisher the writer never wrote"
        for node, topic in TOPIC_OF.items():
            expected = {i for i in on_publisher if TOPICS[i % len(TOPICS)] == topic}
            with lab_client.connect(node) as conn:
                lab_client.wait_for(
                    lambda conn=conn, expected=expected: (
                        {row[0] for row in conn.execute("SELECT id FROM public.books WHERE id >= %s", (FIRST_ID,))}
                        == expected
                    ),
                    timeout=60,
                )
            result = compare_node(login("publisher"), login(node), f"{node}_sub", timeout=60)
            differ = [t for t in result["tables"] if not t.get("equal")]
            assert result["equal"], (result.get("problems"), differ)
        # Back to health but for the errors of the last minutes (warnings until they age out).
        rc, output = status()
        assert rc <= max(before, 1), output
        assert "UNREACHABLE" not in output, output
        assert "slot subscriber1_sub active" in output, output
        assert "slot subscriber2_sub active" in output, output

    print(
        f"\nrows written {len(acked)} acknowledged, {len(writer.unknown)} without an answer, "
        f"{writer.reconnects} failed reconnect attempts"
    )
    for fault, seconds in resumed.items():
        print(f"resume after {fault}: {seconds:.1f} s")


# --------------------------------------------------------------- initial sync, publisher crash
SYNC_TABLE = "public.fault_sync"
SYNC_ROWS = 1_000_000
SYNC_PUBLICATION = "technical_pub"  # subscribed by subscriber2 only
SYNC_NODE = "subscriber2"
CRASH_FIRST_ID = 800_000_000  # the uncommitted transaction's rows
CRASH_ROWS = 100_000
RESUME_AFTER_SYNC_KILL = 180.0  # container start, then the whole copy again
RESUME_AFTER_CRASH = 60.0


def sync_state(node):
    with lab_client.connect(node) as conn:
        row = conn.execute(
            "SELECT r.srsubstate::text FROM pg_subscription_rel AS r WHERE r.srrelid = to_regclass(%s)", (SYNC_TABLE,)
        ).fetchone()
    return row[0] if row else None


def drop_sync_table():
    """The table out of the publication and the subscription, then dropped on both sides."""
    with lab_client.connect("publisher") as conn:
        published = conn.execute(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = 'public' AND tablename = "
            "'fault_sync'",
            (SYNC_PUBLICATION,),
        ).fetchone()
        if published:
            conn.execute(f"ALTER PUBLICATION {SYNC_PUBLICATION} DROP TABLE {SYNC_TABLE}")
    with lab_client.connect(SYNC_NODE) as conn:
        conn.execute(f"ALTER SUBSCRIPTION {SYNC_NODE}_sub REFRESH PUBLICATION WITH (copy_data = false)")
        conn.execute(f"DROP TABLE IF EXISTS {SYNC_TABLE}")
    with lab_client.connect("publisher") as conn:
        conn.execute(f"DROP TABLE IF EXISTS {SYNC_TABLE}")
        # a table synchronization slot a killed copy may have left behind
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name LIKE 'pg\\_%\\_sync\\_%' AND NOT active"
        )


@pytest.fixture
def sync_table(heal):
    """A table of a million rows on the publisher and its empty twin on subscriber2; gone afterwards."""
    create = f"CREATE TABLE {SYNC_TABLE} (id bigint PRIMARY KEY, payload text NOT NULL)"
    with lab_client.connect("publisher") as conn:
        conn.execute(create)
        conn.execute(
            "INSERT INTO public.fault_sync SELECT i, md5(i::text) || md5((i * 7)::text) "
            "FROM generate_series(1, %s) AS i",
            (SYNC_ROWS,),
        )
    with lab_client.connect(SYNC_NODE) as conn:
        conn.execute(create)
    yield
    drop_sync_table()


def test_killed_during_initial_sync_and_publisher_crash_lose_nothing(writer, sync_table):
    resumed = {}
    with lab_lock(exclusive=True, wait=LOCK_WAIT):
        # 5. subscriber2 killed while it copies a large table (initial synchronization).
        with lab_client.connect("publisher") as conn:
            # as the publisher role does for the tables it publishes: the subscriptions' role reads it
            replicator = conn.execute(
                "SELECT usename FROM pg_stat_replication WHERE application_name = %s", (f"{SYNC_NODE}_sub",)
            ).fetchone()[0]
            conn.execute(sql.SQL("GRANT SELECT ON public.fault_sync TO {}").format(sql.Identifier(replicator)))
            conn.execute(f"ALTER PUBLICATION {SYNC_PUBLICATION} ADD TABLE {SYNC_TABLE}")
        with lab_client.connect(SYNC_NODE) as conn:
            conn.execute(f"ALTER SUBSCRIPTION {SYNC_NODE}_sub REFRESH PUBLICATION")
        with lab_client.connect("publisher") as conn:
            # the table synchronization worker's walsender is sending the table
            lab_client.wait_for(
                lambda: (
                    conn.execute(
                        "SELECT 1 FROM pg_stat_activity "
                        "WHERE backend_type = 'walsender' AND query ILIKE 'COPY%fault_sync%'"
                    ).fetchone()
                    is not None
                ),
                timeout=60,
            )
        time.sleep(1)
        docker("kill", SYNC_NODE)
        time.sleep(3)
        docker("start", SYNC_NODE)
        started = time.monotonic()
        wait_accepting(SYNC_NODE)
        lab_client.wait_for(lambda: sync_state(SYNC_NODE) == "r", timeout=RESUME_AFTER_SYNC_KILL)
        resumed[f"{SYNC_NODE} killed during the initial copy of {SYNC_ROWS} rows (copy done)"] = (
            time.monotonic() - started
        )
        with lab_client.connect(SYNC_NODE) as conn:
            assert conn.execute("SELECT count(*) FROM public.fault_sync").fetchone()[0] == SYNC_ROWS

        # 6. The publisher killed (immediate shutdown: a crash) in the middle of a large transaction.
        version, cluster = publisher_cluster()
        big = lab_client.connect("publisher", autocommit=False)
        try:
            big.execute(
                "INSERT INTO public.books (id, sku, title, topic) SELECT i, 0, 'never committed', "
                "(ARRAY['leadership', 'technical', 'other'])[1 + i %% 3] FROM generate_series(%s::bigint, %s) AS i",
                (CRASH_FIRST_ID, CRASH_FIRST_ID + CRASH_ROWS - 1),
            )
            subprocess.run(
                ["pg_ctlcluster", version, cluster, "stop", "-m", "immediate"], check=True, capture_output=True
            )
        finally:
            with contextlib.suppress(psycopg.Error):
                big.close()
        subprocess.run(["pg_ctlcluster", version, cluster, "start"], check=True, capture_output=True)
        restarted = time.monotonic()
        for node in TOPIC_OF:
            resumed[f"publisher crashed ({node})"] = resume_seconds(writer, node, restarted, RESUME_AFTER_CRASH)

        time.sleep(2)
        writer.stop.set()
        writer.join(timeout=30)
        assert writer.error is None, repr(writer.error)
        acked = {entry[0] for entry in writer.acked}
        with lab_client.connect("publisher") as conn:
            on_publisher = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM public.books WHERE id >= %s AND id < %s", (FIRST_ID, CRASH_FIRST_ID)
                )
            }
            assert (
                conn.execute("SELECT count(*) FROM public.books WHERE id >= %s", (CRASH_FIRST_ID,)).fetchone()[0] == 0
            )
        assert acked <= on_publisher, f"acknowledged rows lost by the crash: {sorted(acked - on_publisher)[:10]}"
        for node, topic in TOPIC_OF.items():
            expected = {i for i in on_publisher if TOPICS[i % len(TOPICS)] == topic}
            with lab_client.connect(node) as conn:
                lab_client.wait_for(
                    lambda conn=conn, expected=expected: (
                        {row[0] for row in conn.execute("SELECT id FROM public.books WHERE id >= %s", (FIRST_ID,))}
                        == expected
                    ),
                    timeout=60,
                )
            # the large table included (subscriber2): counts and checksums of every table
            result = compare_node(login("publisher"), login(node), f"{node}_sub", timeout=60)
            differ = [t for t in result["tables"] if not t.get("equal")]
            assert result["equal"], (result.get("problems"), differ)

    for fault, seconds in resumed.items():
        print(f"resume after {fault}: {seconds:.1f} s")
