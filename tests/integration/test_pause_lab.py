"""Pause subscriber2 for 30 s on the real lab under a steady write load, then resume (issue O2, item 3).

The steady writer of ``test_faults`` (its ``writer`` fixture: ~40 rows/s into ``public.books``, a third
of them ``technical`` - subscriber2's row filter - ids of its own range, deleted afterwards) runs
throughout. Then:

1. ``playbooks/pause.yml -e subscriber=subscriber2`` - the WAL budget's arithmetic is printed, the
   pause fits (the lab's publisher has room for 5 minutes), the InfluxDB marker is written;
2. 30 s paused: no technical row written meanwhile reaches subscriber2; ``make status``
   (``scripts/status.sh``) shows the publisher's slot ``subscriber2_sub`` INACTIVE and retaining WAL
   (> 0 bytes) and subscriber2's ``subscription_paused`` finding (why, since when);
3. ``playbooks/resume.yml -e subscriber=subscriber2`` - caught up, with the catch-up time and rate;
4. every technical row acknowledged by the publisher is on subscriber2 and every table of its
   subscription equals the publisher's by count and checksum (``compare_node``).

Holds the lab lock exclusively; whatever happens, subscriber2 is resumed at the end. Needs the lead's
wiring of ``_pause.check_paused`` into replication_info/make status for the ``subscription_paused``
line (step 2). Written, not run, by the helper that wrote it (one lab per machine).
"""

from __future__ import annotations

import json
import re
import time

import lab_client
import pytest
from lab_client import LAB_INVENTORY, lab_lock, lab_unavailable
from support.ansible import LAB_DROP, ansible_env, run_playbook
from test_faults import CRASH_FIRST_ID, FIRST_ID, TOPICS, login, status, writer  # noqa: F401 # pylint: disable=unused-import # a fixture

from ansible_collections.inventium.logical_replication.plugins.module_utils._replication_compare import (
    compare_node,
)

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

NODE = "subscriber2"
TOPIC = "technical"
PAUSE_SECONDS = 30
LOCK_WAIT = 1800.0
PLAYBOOK_TIMEOUT = 900
SLOT_LINE = re.compile(rf"slot {NODE}_sub (\S+) \S+, retains (\d+) B")
CAUGHT_UP = re.compile(r"caught up with \S+ in ([0-9.]+) s")


def playbook(name, **extra):
    run = run_playbook(
        f"playbooks/{name}",
        "-e",
        json.dumps({"subscriber": NODE, **extra}),
        inventory=LAB_INVENTORY,
        env=ansible_env(None, drop=LAB_DROP),
        callback=None,
        timeout=PLAYBOOK_TIMEOUT,
    )
    return run.rc, " ".join((run.stdout + "\n" + run.stderr).split())


def technical_ids(node, since_id=FIRST_ID, before_id=CRASH_FIRST_ID):
    """The writer's technical rows on ``node`` in [since_id, before_id) (other tests and workloads write above)."""
    with lab_client.connect(node) as conn:
        return {
            row[0]
            for row in conn.execute(
                "SELECT id FROM public.books WHERE id >= %s AND id < %s AND topic = %s", (since_id, before_id, TOPIC)
            )
        }


def test_pause_30s_under_load_then_resume_loses_nothing(writer):  # noqa: F811 - the imported fixture
    secrets = lab_client.all_secrets()
    with lab_lock(exclusive=True, wait=LOCK_WAIT):
        try:
            rc, paused = playbook("pause.yml", pause_reason="lab test: 30 s pause under load", pause_max_minutes=5)
            assert rc == 0, paused
            assert "hold time:" in paused, paused
            assert "planned pause 5 min" in paused, paused
            assert "InfluxDB marker: written (workload=pause, phase=start)" in paused, paused
            with lab_client.connect(NODE) as conn:
                enabled, comment = conn.execute(
                    "SELECT subenabled, obj_description(oid, 'pg_subscription') FROM pg_subscription"
                    " WHERE subname = %s",
                    (f"{NODE}_sub",),
                ).fetchone()
            assert enabled is False
            assert json.loads(comment)["reason"] == "lab test: 30 s pause under load"

            paused_at = time.monotonic()
            first_paused_id = writer.next_id
            time.sleep(PAUSE_SECONDS)
            written_meanwhile = {i for i in range(first_paused_id, writer.next_id) if TOPICS[i % len(TOPICS)] == TOPIC}
            assert written_meanwhile, "the writer wrote no technical row during the pause"
            assert not technical_ids(NODE, first_paused_id), "rows arrived while paused"

            rc, report = status()
            assert rc in (0, 1), report
            slot = SLOT_LINE.search(report)
            assert slot, report
            assert slot.group(1) == "INACTIVE", report
            assert int(slot.group(2)) > 0, report
            assert "subscription_paused" in report, report
            assert "lab test: 30 s pause under load" in report, report

            rc, resumed = playbook("resume.yml")
            assert rc == 0, resumed
            caught = CAUGHT_UP.search(resumed)
            assert caught, resumed
            print(
                f"\npaused {time.monotonic() - paused_at:.0f} s, {len(written_meanwhile)} technical rows written "
                f"meanwhile, caught up in {caught.group(1)} s: {resumed[caught.start() : caught.end() + 40]}"
            )
        finally:
            # Never leave the lab paused.
            playbook("resume.yml")

        acked = {row_id for row_id, _at in writer.acked if TOPICS[row_id % len(TOPICS)] == TOPIC}
        lab_client.wait_for(lambda: acked <= technical_ids(NODE), timeout=60)
        result = compare_node(login("publisher"), login(NODE), f"{NODE}_sub", timeout=60)
        assert result["equal"], (result["problems"], [t for t in result["tables"] if not t["equal"]])
        rc, after = status()
        assert "subscription_paused" not in after, after
        for text in (paused, report, resumed, after):
            for secret in secrets:
                assert secret not in text
