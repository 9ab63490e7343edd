"""``make rehearse-upgrade`` on the real lab (issue U1, item 3): PostgreSQL 15 -> 17 and back under writes.

``playbooks/upgrade_rehearsal.yml`` with the lab's defaults: the application (module
``application_writes``, role ``app_writer``) writes ``shop.orders`` all the time; the shop tables move
to subscriber2 (PostgreSQL 17) and back. Run twice: the second run starts where a switchback leaves
the lab (app_writer fenced on subscriber2), which the switchover must lift. Each run must print both
windows and the proof, write ``.lab/rehearsal/latest.json`` with every acknowledged row read back from
both nodes (none lost, writes acknowledged by both nodes), and leave the lab as it was: subscriber2's
subscription enabled, no reverse replication, app_writer writable on the publisher only.

Holds the lab lock exclusively.
"""

from __future__ import annotations

import json

import lab_client
import psycopg
import pytest
from lab_client import LAB_DIR, LAB_INVENTORY, lab_lock, lab_unavailable
from support.ansible import LAB_DROP, ansible_env, run_playbook

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

SOURCE, TARGET = "publisher", "subscriber2"
REHEARSAL = LAB_DIR / "rehearsal"


def rehearse():
    run = run_playbook(
        "playbooks/upgrade_rehearsal.yml",
        inventory=LAB_INVENTORY,
        env=ansible_env(None, drop=LAB_DROP),
        callback=None,
        timeout=900,
    )
    return run.rc, " ".join((run.stdout + "\n" + run.stderr).split())


def can_write(node):
    """Whether app_writer may INSERT on ``node`` (it connects there as the application does)."""
    port = {SOURCE: 5432, TARGET: 5434}[node]
    dbname = {SOURCE: "publisher", TARGET: "subscriber"}[node]
    password = (REHEARSAL / "app_writer").read_text().strip()
    with psycopg.connect(
        host="127.0.0.1", port=port, dbname=dbname, user="app_writer", password=password, autocommit=True
    ) as conn:
        return conn.execute("SHOW transaction_read_only").fetchone()[0] == "off"


def test_rehearse_the_upgrade_twice_losing_nothing():
    with lab_lock(exclusive=True):
        results = []
        for attempt in (1, 2):
            rc, text = rehearse()
            assert rc == 0, text
            for secret in [*lab_client.all_secrets(), (REHEARSAL / "app_writer").read_text().strip()]:
                assert secret not in text
            result = json.loads((REHEARSAL / "latest.json").read_text())
            results.append(result)
            app = result["application"]
            assert app["lost"] == 0, (attempt, app)
            assert app["failed"] is False
            assert set(app["acknowledged_by_node"]) == {SOURCE, TARGET}, app
            assert all(n["missing"] == 0 and n["rows"] >= app["acknowledged"] for n in app["nodes"]), app
            for direction in ("switchover", "switchback"):
                measured = result[direction]
                assert int(measured["tables"]) == int(measured["tables_equal"]) == 2, measured
                assert 0 < float(measured["window_seconds"]) < 120, measured
            assert str(result["switchover"]["source_major"]) == "15"
            assert str(result["switchover"]["target_major"]) == "17"
            assert f"upgrade rehearsal {result['run_id']}: {SOURCE} -> {TARGET} -> {SOURCE}" in text
            assert (
                "switchover publisher (PostgreSQL 15) -> subscriber2 (PostgreSQL 17): write-unavailable window" in text
            )
            assert "none lost" in text

        # The lab as before: the forward subscription runs, nothing replicates back, the publisher takes the writes.
        with lab_client.connect(TARGET) as conn:
            assert conn.execute("SELECT subenabled FROM pg_subscription WHERE subname = 'subscriber2_sub'").fetchone()[
                0
            ]
        with lab_client.connect(SOURCE) as conn:
            assert conn.execute("SELECT count(*) FROM pg_subscription").fetchone()[0] == 0
        assert can_write(SOURCE)
        assert not can_write(TARGET)  # a subscriber again: fenced until the next switchover lifts it
        for result in results:
            print(
                f"\nrehearsal {result['run_id']}: switchover window {result['switchover']['window_seconds']} s, "
                f"switchback window {result['switchback']['window_seconds']} s, application's longest time without "
                f"an acknowledged write {result['application']['longest_gap_seconds']} s, "
                f"{result['application']['acknowledged']} writes acknowledged "
                f"({result['application']['acknowledged_by_node']}), lost {result['application']['lost']}"
            )
