"""``playbooks/status.yml`` (``scripts/status.sh``, ``make status``) on throwaway servers, not the lab.

The test writes its own inventory: a publisher and subscriber1 (private harness servers, lowest
selected major -> highest, replicating ``books``) and subscriber2, whose port is closed, with a
slot on the publisher that nobody uses (as when a lab subscriber's container is stopped), and
subscriber3, whose read task fails outright (no port configured). Then:

- critical: subscriber2 is one ``UNREACHABLE`` line plus its ``node_unreachable`` finding,
  subscriber3 one ``NOT READ`` line, and
  everything else is still shown (the publisher's slots, INACTIVE for subscriber2, subscriber1's
  subscription); ``scripts/status.sh`` exits 2, and so does ``make status INVENTORY=...``;
- healthy without subscriber2: exit 0;
- warnings (subscriber1's subscription disabled): exit 1 - only ``scripts/status.sh`` can say so,
  make reports every failing recipe as 2.

No password of any server appears in any output; the verdict file is gone afterwards and the task
writing it is not reported as changed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pg_harness import free_port, wait_until
from psycopg import sql
from support.ansible import DEFAULT_CALLBACK, ansible_env, ansible_playbook
from support.inventory import lab_shaped_inventory
from support.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "status.sh"
VENV = Path(sys.executable).parent.parent
BOOKS = [(1, 31, "Practical Object Oriented Design in Ruby"), (2, 22, "Great By Choice")]
RECAP = re.compile(r"(\S+) : ok=(\d+) changed=(\d+) unreachable=(\d+) failed=(\d+)")
TIMEOUT = 300


def recap(output):
    """PLAY RECAP counters per host (of a whitespace-collapsed output)."""
    return {m.group(1): {"changed": int(m.group(3)), "failed": int(m.group(5))} for m in RECAP.finditer(output)}


def run(command):
    """Exit code and output, whitespace runs made one space (the YAML result format folds long lines)."""
    env = ansible_env(DEFAULT_CALLBACK)
    env["ANSIBLE_PLAYBOOK"] = ansible_playbook()
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    return proc.returncode, " ".join((proc.stdout + "\n" + proc.stderr).split())


def status(inventory):
    return run([str(SCRIPT), "-i", str(inventory)])


@pytest.fixture
def nodes(pg_majors, pg_server_factory):
    """Publisher (lowest major) -> subscriber1 (highest), streaming, every table ready; a spare slot subscriber2."""
    pub = pg_server_factory(pg_majors[0], name=f"pg{pg_majors[0]}-status-pub")
    sub = pg_server_factory(pg_majors[-1], name=f"pg{pg_majors[-1]}-status-sub")
    pub_db, sub_db = pub.create_database("publisher"), sub.create_database("subscriber")
    for db in (pub_db, sub_db):
        db.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text)")
    with pub_db.connect() as conn:
        conn.cursor().executemany("INSERT INTO books VALUES (%s, %s, %s)", BOOKS)
    pub_db.execute("CREATE PUBLICATION books_pub FOR TABLE books")
    pub_db.execute("SELECT pg_create_logical_replication_slot('subscriber2', 'pgoutput')")
    sub_db.execute(
        sql.SQL("CREATE SUBSCRIPTION subscriber1 CONNECTION {} PUBLICATION books_pub").format(
            sql.Literal(pub_db.conninfo())
        )
    )
    wait_until(
        lambda: sub_db.scalar(
            "SELECT bool_and(r.srsubstate = 'r') AND (SELECT pid FROM pg_stat_subscription"
            " WHERE subname = 'subscriber1' AND relid IS NULL) IS NOT NULL FROM pg_subscription_rel r"
        ),
        timeout=60,
        message="subscriber1 ready and streaming",
    )
    wait_until(
        lambda: not pub.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pg\\_%\\_sync\\_%'"),
        timeout=30,
        message="table sync slots dropped",
    )
    assert sub_db.scalar("SELECT count(*) FROM books") == len(BOOKS)
    return pub, sub, pub_db, sub_db


def test_status_degrades_and_exit_codes(nodes, tmp_path, monkeypatch):
    pub, sub, pub_db, sub_db = nodes
    secrets = [pub.password, sub.password]
    closed_port = free_port()
    publisher = {"publisher_port": pub.port, "publisher_password": pub.password, "publisher_database": pub_db.name}
    subscriber1 = {"subscriber_port": sub.port, "subscriber_password": sub.password, "subscriber_database": sub_db.name}
    subscriber2 = {"subscriber_port": closed_port, "subscriber_password": sub.password}
    full = tmp_path / "full.yml"
    # subscriber3 lacks subscriber_port: its read task fails outright (not a connection error).
    subscriber3 = {"subscriber_password": sub.password}
    full.write_text(
        lab_shaped_inventory(
            {"publisher": publisher},
            {"subscriber1": subscriber1, "subscriber2": subscriber2, "subscriber3": subscriber3},
        )
    )
    reachable = tmp_path / "reachable.yml"
    reachable.write_text(lab_shaped_inventory({"publisher": publisher}, {"subscriber1": subscriber1}))
    # scripts/status.sh's verdict file goes to $TMPDIR: a directory of this test's own, so that a status.sh
    # another test runs meanwhile (CI's lab lane) cannot look like one this test left behind.
    status_tmp = tmp_path / "status-tmp"
    status_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(status_tmp))

    # ---- critical: subscriber2 unreachable, everything else still shown ----------------------------
    rc, output = status(full)
    assert rc == 2, output
    assert re.search(
        rf"subscriber2\s+UNREACHABLE: Unable to connect to PostgreSQL at host 127\.0\.0\.1 port {closed_port}", output
    ), output
    assert "Connection refused" in output
    # The finding's message without the error again (that is on the UNREACHABLE line).
    assert "check error node_unreachable: the server could not be read, its replication state is unknown'" in output
    assert output.count("Connection refused") == 1, output
    assert "hint: Check that PostgreSQL runs" in output
    assert re.search(r"publisher\s+PostgreSQL \d+", output), output
    assert "slot subscriber2 INACTIVE" in output, output
    assert "slot subscriber1 active" in output, output
    assert re.search(r"subscriber1\s+PostgreSQL \d+", output), output
    assert "sub subscriber1 enabled books_pub, ready 1/1" in output, output
    # The harness servers log to stderr only: counters are lifetime totals, and the reason is shown.
    assert re.search(r"sub subscriber1 enabled books_pub, ready 1/1, errors \S+ lifetime, msg", output), output
    assert "errors from the server log: source unavailable" in output, output
    assert "status: critical (exit 2)" in output
    counts = recap(output)
    # The read tasks succeeded on every node (subscriber2 too); only the summary's last task failed.
    # The read tasks succeeded on the unreachable node too; only subscriber3's (misconfigured) failed,
    # and the summary's last task (critical).
    assert counts["subscriber2"]["failed"] == 0, counts
    assert counts["publisher"]["failed"] == 0, counts
    assert counts["subscriber3"]["failed"] == 1, counts
    assert counts["localhost"] == {"changed": 0, "failed": 1}, counts
    assert re.search(r"subscriber3 NOT READ: .*subscriber_port", output), output
    assert "critical (exit 2) - node_unreachable, read task failed" in output
    for secret in secrets:
        assert secret not in output

    # make status: the same report; make exits 2 for every failing recipe.
    make = ["make", "-o", f"{VENV}/.stamp-runtime", "status", f"INVENTORY={full}", f"VENV={VENV}", "BECOME="]
    rc, make_output = run(make)
    assert rc == 2, make_output
    assert re.search(r"subscriber2\s+UNREACHABLE:", make_output), make_output
    assert "slot subscriber2 INACTIVE" in make_output
    assert "status: critical (exit 2)" in make_output
    for secret in secrets:
        assert secret not in make_output

    # ---- healthy: only reachable nodes ---------------------------------------------------------------
    rc, output = status(reachable)
    assert rc == 0, output
    assert "status: healthy (exit 0)" in output, output
    assert "UNREACHABLE" not in output
    assert recap(output)["localhost"] == {"changed": 0, "failed": 0}
    rc, make_output = run([*make[:4], f"INVENTORY={reachable}", *make[5:]])
    assert rc == 0, make_output
    assert "status: healthy (exit 0)" in make_output

    # ---- warnings: a disabled subscription -----------------------------------------------------------
    sub_db.execute("ALTER SUBSCRIPTION subscriber1 DISABLE")
    rc, output = status(reachable)
    assert rc == 1, output
    assert "sub subscriber1 DISABLED" in output, output
    assert re.search(r"check warning\s+subscription_disabled", output), output
    assert "status: warnings (exit 1)" in output, output
    for secret in secrets:
        assert secret not in output

    # The verdict files are temporary: none is left behind.
    assert not list(status_tmp.glob("inventium-status.*"))
