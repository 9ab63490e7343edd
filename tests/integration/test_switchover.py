"""``playbooks/switchover.yml`` and ``switchback.yml``: the upgrade rehearsal on throwaway servers.

The application's database lives on a private server of the lowest selected major (the "old"
primary, PostgreSQL 15 by default) and is replicated to a private server of a higher one (the "new"
one: each higher selected major in turn, 17 and 18 by default) - an upgrade through logical
replication. The test writes its own inventory in the lab's shape (groups publishers/subscribers,
the roles' variables), the way a user points the playbooks at their own servers. An application
thread writes all the time through the role ``app_writer``, to whichever node the test says is the
primary, and keeps the id of every row whose INSERT was acknowledged. Then:

- (for the first new major only: the playbooks' logic, not the version's) a NO-GO (a superuser named
  as the application role) stops before anything is fenced; a failure after the fence (the
  subscriber's apply waits for a row lock, so lag cannot reach 0) lifts the fence and leaves the
  forward subscription running: the application writes again;
- the switchover moves the writes to the new node: equal tables, sequences copied (no duplicate
  key on the new node), the write-unavailable window measured and printed;
- the switchback moves them back through the reverse replication;
- at the end every acknowledged row is on both nodes and no other row is: nothing was lost.
"""

from __future__ import annotations

import json
import re
import secrets
import threading

import psycopg
import pytest
from pg_harness import selected_majors, wait_until
from psycopg import errors, sql
from support.ansible import DEFAULT_CALLBACK, ansible_env, run_playbook
from support.inventory import lab_shaped_inventory

from ansible_collections.inventium.logical_replication.plugins.module_utils._application_writes import ApplicationWriter
from ansible_collections.inventium.logical_replication.plugins.module_utils.identifiers import parse_qualified_name

_MAJORS = selected_majors()
OLD_MAJOR = min(_MAJORS)
# Every upgrade the selected majors allow from the oldest: 15 -> 17 and 15 -> 18 by default.
NEW_MAJORS = [major for major in _MAJORS if major > OLD_MAJOR]

SCHEMA = """
CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE items (sku text PRIMARY KEY, qty integer NOT NULL);
"""


def flat(run):
    return " ".join((run.stdout + "\n" + run.stderr).split())


class Application:
    """The rehearsal's application (``ApplicationWriter``) in a thread, writing to the node named by ``primary``.

    A failed INSERT (fenced: read-only or terminated) is retried on a new connection; the longest time
    between two acknowledged INSERTs (``writer.longest_gap``) is what the application saw of the switch.
    """

    def __init__(self, dsns):
        self.primary, self.failure = "old", None
        self.stop = threading.Event()
        nodes = {name: {"conninfo": dsn, "connect_timeout": 5} for name, dsn in dsns.items()}
        self.writer = ApplicationWriter(
            nodes, parse_qualified_name("orders"), "switchover", lambda: self.primary, self.stop.is_set
        )
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            self.writer.run(max_seconds=3600)
        except Exception as exc:  # handed to the test
            self.failure = exc

    @property
    def acknowledged(self):
        return self.writer.acknowledged

    def error_names(self):
        return {key.split(": ", 1)[1] for key in self.writer.errors}

    def wait_for_writes(self, node, count=20, timeout=30):
        # list() copies the values in one step: the thread adds to the dict meanwhile.
        start = list(self.acknowledged.values()).count(node)
        wait_until(
            lambda: list(self.acknowledged.values()).count(node) >= start + count,
            timeout=timeout,
            message=f"the application writing to {node}",
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(15)


def _setup(old_db, new_db, app_password, repl_password):
    for db in (old_db, new_db):
        db.execute(SCHEMA)
        db.execute(sql.SQL("CREATE ROLE app_writer LOGIN PASSWORD {}").format(sql.Literal(app_password)))
        db.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON orders, items TO app_writer")
        db.execute("GRANT USAGE ON SEQUENCE orders_id_seq TO app_writer")
    old_db.execute(sql.SQL("CREATE ROLE replicator LOGIN REPLICATION PASSWORD {}").format(sql.Literal(repl_password)))
    old_db.execute("GRANT SELECT ON orders, items, orders_id_seq TO replicator")
    old_db.execute("INSERT INTO orders (note) SELECT 'seed-' || g FROM generate_series(1, 5000) g")
    old_db.execute("INSERT INTO items SELECT 'sku-' || g, g FROM generate_series(1, 2000) g")
    old_db.execute("CREATE PUBLICATION app_pub FOR TABLE orders, items")
    conninfo = old_db.conninfo(user="replicator", password=repl_password)
    new_db.execute(
        sql.SQL("CREATE SUBSCRIPTION app_sub CONNECTION {} PUBLICATION app_pub").format(sql.Literal(conninfo))
    )
    wait_until(
        lambda: (
            new_db.scalar("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'") == 0
            and new_db.scalar("SELECT count(*) FROM orders") == 5000
        ),
        timeout=60,
        message="initial copy",
    )


def _ids(db):
    return {row[0] for row in db.execute("SELECT id FROM orders WHERE note NOT LIKE 'seed-%'")}


def _refusals(playbook, base, app, old_db, new_db):
    """What stops a switchover before or after the fence: a NO-GO changes nothing, ``--check`` fences nothing, a
    failure after the fence is undone. The application goes on writing to the old node throughout."""
    # NO-GO: a superuser cannot be fenced; nothing changes.
    nogo = playbook("switchover.yml", "-e", "target=new", "-e", json.dumps({"switchover_fence_roles": ["postgres"]}))
    text = flat(nogo)
    assert nogo.rc != 0, text
    assert "NO-GO fence_roles" in text, text
    assert "NO-GO, nothing changed" in text
    assert "GO tables_ready" in text
    app.wait_for_writes("old")

    # Check mode: the go/no-go table, all GO, and nothing fenced.
    checked = playbook("switchover.yml", *base, "--check")
    text = flat(checked)
    assert checked.rc == 0, text
    assert "GO fence_roles fence app_writer" in text
    assert not re.search(r"NO-GO +[a-z_]+ ", text), text  # no NO-GO row (the task name has one)
    assert (
        old_db.scalar(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE r.rolname = 'app_writer'"
        )
        == 0
    )
    app.wait_for_writes("old")

    # Failure after the fence: the apply worker waits for a row lock (an UPDATE of a row the test holds on
    # the new node), so every later change waits too and lag never reaches 0. A row lock, not a table lock:
    # preparing the reverse publication before the fence needs the tables.
    with new_db.connect(autocommit=False) as blocker:
        blocker.execute("SELECT * FROM items WHERE sku = 'sku-1' FOR UPDATE")
        old_db.execute("UPDATE items SET qty = qty + 1 WHERE sku = 'sku-1'")
        app.wait_for_writes("old", count=10)
        blocked = playbook("switchover.yml", *base, "-e", "switchover_catch_up_timeout=4")
        blocker.rollback()
    text = flat(blocked)
    assert blocked.rc != 0, text
    assert 'failed at "Prove every table equal"' in text, text
    # Only the reverse publication (prepared before the fence) and the fence had been done: they are undone.
    assert "lag did not reach 0 within 4 s after the fence" in text, text
    assert "Undone: reverse publication dropped, fence lifted on old; the source takes writes as before" in text, text
    assert new_db.scalar("SELECT subenabled FROM pg_subscription WHERE subname = 'app_sub'") is True
    app.wait_for_writes("old")


@pytest.mark.skipif(not NEW_MAJORS, reason="an upgrade rehearsal needs two majors (PG_VERSIONS)")
@pytest.mark.parametrize("new_major", NEW_MAJORS or [None], ids=lambda major: f"{OLD_MAJOR}to{major}")
def test_upgrade_rehearsal_switchover_and_switchback(pg_server_factory, pg_database_factory, tmp_path, new_major):
    old_server = pg_server_factory(OLD_MAJOR, name=f"old{OLD_MAJOR}")
    new_server = pg_server_factory(new_major, name=f"new{new_major}")
    old_db = pg_database_factory(old_server, "app")
    new_db = pg_database_factory(new_server, "app")
    app_password, repl_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    _setup(old_db, new_db, app_password, repl_password)

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        lab_shaped_inventory(
            {
                "old": {
                    "publisher_port": old_server.port,
                    "publisher_password": old_server.password,
                    "publisher_database": old_db.name,
                    "publisher_replication_user": "replicator",
                    "publisher_replication_password": repl_password,
                }
            },
            {
                "new": {
                    "subscriber_port": new_server.port,
                    "subscriber_password": new_server.password,
                    "subscriber_database": new_db.name,
                    "subscriber_subscription_name": "app_sub",
                    "subscriber_publisher": {
                        "host": "127.0.0.1",
                        "port": old_server.port,
                        "dbname": old_db.name,
                        "user": "replicator",
                        "password": repl_password,
                    },
                }
            },
        )
    )
    env = ansible_env(DEFAULT_CALLBACK)
    secrets_seen = (old_server.password, new_server.password, app_password, repl_password)
    result_file = tmp_path / "result.json"
    base = ["-e", "target=new", "-e", json.dumps({"switchover_fence_roles": ["app_writer"]})]

    def playbook(name, *extra):
        run = run_playbook(f"playbooks/{name}", *extra, inventory=inventory, env=env, callback=DEFAULT_CALLBACK)
        for secret in secrets_seen:
            assert secret not in run.stdout + run.stderr, f"a password in the output of {name}"
        return run

    dsns = {
        "old": old_db.conninfo(user="app_writer", password=app_password),
        "new": new_db.conninfo(user="app_writer", password=app_password),
    }
    with Application(dsns) as app:
        app.wait_for_writes("old")

        # What stops a switchover (the playbooks' logic, not the new major's): once, for the first new major.
        if new_major == NEW_MAJORS[0]:
            _refusals(playbook, base, app, old_db, new_db)

        # The switchover. The application's longest time without an acknowledged write is measured from here
        # (the failed attempt above kept it fenced for a while too).
        app.writer.longest_gap = 0.0
        switched = playbook("switchover.yml", *base, "-e", f"switchover_result_file={result_file}")
        text = flat(switched)
        assert switched.rc == 0, text
        assert "new is ready for writes" in text
        measured = json.loads(result_file.read_text())
        app.primary = "new"
        app.wait_for_writes("new")
        gap_switchover, app.writer.longest_gap = app.writer.longest_gap, 0.0
        assert measured["tables"] == 2
        assert measured["tables_equal"] == 2
        assert measured["sequences"] == 1
        assert [s["step"] for s in measured["steps"]] == [
            "fence writes",
            "sync sequences",
            "wait for lag 0",
            "compare",
            "stop forward",
            "reverse subscription",
        ]
        assert 0 < float(measured["window_seconds"]) < 120
        assert old_db.scalar("SELECT count(*) FROM pg_subscription WHERE subname = 'inventium_switchback_sub'") == 1
        assert new_db.scalar("SELECT subenabled FROM pg_subscription WHERE subname = 'app_sub'") is False
        # The application role is read-only on the old node now.
        with pytest.raises(errors.ReadOnlySqlTransaction), psycopg.connect(dsns["old"], autocommit=True) as conn:
            conn.execute("INSERT INTO orders (note) VALUES ('must fail')")

        # The switchback.
        back = playbook("switchback.yml", *base, "-e", f"switchover_result_file={result_file}")
        text = flat(back)
        assert back.rc == 0, text
        assert "old takes the writes again" in text
        measured_back = json.loads(result_file.read_text())
        app.primary = "old"
        app.wait_for_writes("old")
        assert measured_back["tables_equal"] == measured_back["tables"] == 2

    assert app.failure is None, app.failure
    assert "UniqueViolation" not in app.error_names(), app.writer.errors
    acknowledged = set(app.acknowledged)
    on_new = {k for k, v in app.acknowledged.items() if v == "new"}
    assert on_new, "no write reached the new node while it was the primary"
    # Every acknowledged row is on the old node, and (forward replication running again) on the new one.
    assert _ids(old_db) == acknowledged
    wait_until(lambda: _ids(new_db) == acknowledged, timeout=60, message="the new node to catch up after switchback")
    assert old_db.scalar("SELECT count(*) FROM pg_subscription WHERE subname = 'inventium_switchback_sub'") == 0
    assert new_db.scalar("SELECT subenabled FROM pg_subscription WHERE subname = 'app_sub'") is True
    print(
        f"\nswitchover {OLD_MAJOR}->{new_major}: window {measured['window_seconds']} s, "
        f"switchback window {measured_back['window_seconds']} s; the application's longest time without an "
        f"acknowledged write {gap_switchover:.2f} s / {app.writer.longest_gap:.2f} s "
        "(until the playbook had returned and "
        f"the test pointed it at the other node); {len(acknowledged)} rows acknowledged ({len(on_new)} on the new "
        "node), none lost"
        f"\n  switchover steps: {measured['steps']}\n  switchback steps: {measured_back['steps']}"
    )
