"""``playbooks/pause.yml`` and ``playbooks/resume.yml`` on throwaway servers, not the lab.

The test writes its own inventory in the lab's shape (groups publishers/subscribers, local
connection, the variables playbooks/status.yml uses): a private publisher of the highest selected
major (the guard writes ALTER SYSTEM there; on 18+ it sets idle_replication_slot_timeout too) and a
database on the session's subscriber. Then:

- a pause that would outlive the WAL budget (writes while the rate is sampled, a pause of years) is
  refused with the arithmetic and the guard's offer, and nothing is paused;
- ``pause_set_guard=true`` sets the guard through server_settings and pauses: disabled, the record
  as the comment, the InfluxDB marker skipped with a line saying so;
- rows written while paused arrive after resume.yml, which prints the catch-up time and rate;
- no password appears in any output.
"""

from __future__ import annotations

import json
import secrets
import threading
import time

import pytest
from pg_harness import pair_combos, selected_majors, wait_until
from psycopg import sql
from support.ansible import DEFAULT_CALLBACK, ansible_env, run_playbook
from support.inventory import lab_shaped_inventory

_MAJORS = selected_majors()
# One pair: the subscriber of the lowest -> highest pair (the publisher is private).
_CROSS = [c for c in pair_combos(_MAJORS) if c[0] != c[1]] or pair_combos(_MAJORS)[:1]


def flat(run):
    return " ".join((run.stdout + "\n" + run.stderr).split())


def count(db):
    return db.scalar("SELECT count(*) FROM items")


class Writer:
    """Inserts into the publisher's table until stopped (WAL while the playbook samples the rate)."""

    def __init__(self, db, start):
        self.db, self.next, self.stop, self.error = db, start, threading.Event(), None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            with self.db.connect() as conn:
                while not self.stop.is_set():
                    conn.execute(
                        "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(%s::bigint, %s::bigint) g",
                        [self.next, self.next + 199],
                    )
                    self.next += 200
                    time.sleep(0.02)
        except Exception as exc:  # handed to the test: a failed writer fails it
            self.error = exc

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert self.error is None, f"the writer failed: {self.error}"


@pytest.mark.parametrize("pg_pair", [pytest.param(c, id=f"pub{c[0]}-sub{c[1]}") for c in _CROSS], indirect=True)
def test_pause_refused_guarded_paused_and_resumed(pg_pair, pg_server_factory, pg_database_factory, tmp_path):
    publisher = pg_server_factory(max(_MAJORS), name="pub-pause")
    pub = pg_database_factory(publisher, "pub")
    sub = pg_database_factory(pg_pair.subscriber, "sub")
    name = f"sub_{secrets.token_hex(4)}"
    for db in (pub, sub):
        db.execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
    pub.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g")
    pub.execute("CREATE PUBLICATION items_pub FOR TABLE items")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION items_pub").format(
            sql.Identifier(name), sql.Literal(pub.conninfo())
        )
    )
    wait_until(lambda: count(sub) == 1000, timeout=60, message="initial copy")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        lab_shaped_inventory(
            {
                "publisher": {
                    "publisher_port": publisher.port,
                    "publisher_password": publisher.password,
                    "publisher_database": pub.name,
                }
            },
            {
                "subscriber9": {
                    "subscriber_port": pg_pair.subscriber.port,
                    "subscriber_password": pg_pair.subscriber.password,
                    "subscriber_database": sub.name,
                    "subscriber_subscription_name": name,
                }
            },
        )
    )
    secrets_seen = (publisher.password, pg_pair.subscriber.password)
    env = ansible_env(DEFAULT_CALLBACK)
    base = [
        "-e",
        "subscriber=subscriber9",
        "-e",
        json.dumps({"pause_reason": "playbook test"}),
        "-e",
        "pause_sample_seconds=2",
    ]

    # Years of pause while WAL is written: refused, nothing paused.
    with Writer(pub, 1_000_000):
        refused = run_playbook(
            "playbooks/pause.yml",
            *base,
            "-e",
            "pause_max_minutes=5000000",
            inventory=inventory,
            env=env,
            callback=DEFAULT_CALLBACK,
        )
    text = flat(refused)
    assert refused.rc != 0, text
    assert "hold time: min(" in text
    assert "DOES NOT FIT" in text
    assert "REFUSED" in text
    assert "pause_set_guard=true" in text
    assert sub.scalar("SELECT subenabled FROM pg_subscription WHERE subname = %s", [name]) is True

    # Check mode (fits at the idle rate): nothing paused, nothing set.
    checked = run_playbook(
        "playbooks/pause.yml",
        *base,
        "-e",
        "pause_max_minutes=1",
        "--check",
        inventory=inventory,
        env=env,
        callback=DEFAULT_CALLBACK,
    )
    assert checked.rc == 0, flat(checked)
    assert "InfluxDB marker: skipped - check mode" in flat(checked)
    assert sub.scalar("SELECT subenabled FROM pg_subscription WHERE subname = %s", [name]) is True

    # With the guard: set, then paused.
    with Writer(pub, 3_000_000):
        guarded = run_playbook(
            "playbooks/pause.yml",
            *base,
            "-e",
            "pause_max_minutes=5000000",
            "-e",
            "pause_set_guard=true",
            inventory=inventory,
            env=env,
            callback=DEFAULT_CALLBACK,
        )
    text = flat(guarded)
    assert guarded.rc == 0, text
    assert "guard set: max_slot_wal_keep_size" in text
    keep = publisher.scalar("SELECT pg_size_bytes(current_setting('max_slot_wal_keep_size'))")
    assert keep > 0
    if publisher.major >= 18:
        assert publisher.scalar("SHOW idle_replication_slot_timeout") != "0"
    assert "InfluxDB marker: skipped - no InfluxDB configured" in text
    enabled, comment = sub.execute(
        "SELECT subenabled, obj_description(oid, 'pg_subscription') FROM pg_subscription WHERE subname = %s", [name]
    )[0]
    assert enabled is False
    assert json.loads(comment)["reason"] == "playbook test"

    before = count(pub)
    pub.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(2000000, 2010000) g")
    resumed = run_playbook(
        "playbooks/resume.yml",
        "-e",
        "subscriber=subscriber9",
        inventory=inventory,
        env=env,
        callback=DEFAULT_CALLBACK,
    )
    text = flat(resumed)
    assert resumed.rc == 0, text
    assert f"subscription {name} resumed, caught up with" in text
    assert "/s)" in text
    assert count(sub) >= before + 10001
    wait_until(lambda: count(sub) == count(pub), timeout=30, message="counts equal")
    # Paused again, and the slot dropped meanwhile: resume.yml fails at once with the re-sync path ...
    again = run_playbook("playbooks/pause.yml", *base, inventory=inventory, env=env, callback=DEFAULT_CALLBACK)
    assert again.rc == 0, flat(again)
    wait_until(
        lambda: pub.scalar("SELECT NOT active FROM pg_replication_slots WHERE slot_name = %s", [name]),
        timeout=30,
        message="slot inactive",
    )
    pub.execute("SELECT pg_drop_replication_slot(%s)", [name])
    lost = run_playbook(
        "playbooks/resume.yml", "-e", "subscriber=subscriber9", inventory=inventory, env=env, callback=DEFAULT_CALLBACK
    )
    text = flat(lost)
    assert lost.rc != 0, text
    assert "does not exist on the publisher any more" in text
    assert "-e subscriber=subscriber9 -e resume_resync=true" in text
    assert sub.scalar("SELECT subenabled FROM pg_subscription WHERE subname = %s", [name]) is False
    # ... and with resume_resync=true drops the subscription and names the command that creates it again.
    dropped = run_playbook(
        "playbooks/resume.yml",
        "-e",
        "subscriber=subscriber9",
        "-e",
        "resume_resync=true",
        inventory=inventory,
        env=env,
        callback=DEFAULT_CALLBACK,
    )
    text = flat(dropped)
    assert dropped.rc != 0, text
    assert f"The subscription {name} was dropped" in text
    assert "ansible-playbook site.yml" in text
    assert sub.scalar("SELECT count(*) FROM pg_subscription WHERE subname = %s", [name]) == 0
    for run in (refused, checked, guarded, resumed, again, lost, dropped):
        for secret in secrets_seen:
            assert secret not in run.stdout + run.stderr
