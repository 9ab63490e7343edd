"""playbooks/schema_change.yml against a real publisher and subscriber (harness servers, an inventory like
inventory/example: no localhost host, connection variables as status.yml names them).

A column and a new table are added on both nodes, the new table is published and the subscription
refreshed, the heartbeat arrives; a re-run changes nothing; --check changes nothing; a destructive
migration is refused with nothing changed; a node that fails half-way is named with the command
that brings the rest in line, and that command does.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
from pg_harness import lean_pair_combos, pg_pair_params, selected_majors, wait_until
from psycopg import sql
from support.ansible import DEFAULT_CALLBACK, JSON_CALLBACK, REPO_ROOT, ansible_env, run_playbook

PLAYBOOK = "playbooks/schema_change.yml"
# The playbook's orchestration does not depend on the versions (the schema_change module's tests cover each
# major): the lowest same-major pair and lowest -> highest.
pytestmark = pg_pair_params(lean_pair_combos(selected_majors()))

HEARTBEAT = (
    "CREATE TABLE public.replication_heartbeat"
    " (node text PRIMARY KEY, beat_at timestamptz NOT NULL, seq bigint NOT NULL)"
)


@pytest.fixture
def lab(pg_pair_db, tmp_path):
    pub, sub = pg_pair_db.publisher, pg_pair_db.subscriber
    for db in (pub, sub):
        db.execute("CREATE TABLE books (id bigint PRIMARY KEY, sku int, title text, topic text)")
        db.execute(HEARTBEAT)
    pub.execute("CREATE PUBLICATION technical_pub FOR TABLE books WHERE (topic = 'technical')")
    pub.execute("CREATE PUBLICATION heartbeat_pub FOR TABLE replication_heartbeat")
    pub.execute("INSERT INTO books VALUES (1, 31, 'Practical OOD', 'technical')")
    sub.execute(
        sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION technical_pub, heartbeat_pub").format(
            sql.Identifier(f"{sub.name}_s"), sql.Literal(pub.conninfo())
        )
    )
    wait_until(lambda: sub.scalar("SELECT count(*) FROM books") == 1, timeout=60, message="initial sync")
    server = pub.server
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": str(REPO_ROOT / ".venv/bin/python"),
                        "schema_change_login_user": server.user,
                        # The role the harness subscriptions connect as: new tables are granted to it.
                        "publisher_replication_user": server.user,
                        "schema_change_verify_delay": 1,
                    },
                    "children": {
                        "publishers": {
                            "hosts": {
                                "pub1": {
                                    "publisher_port": pub.server.port,
                                    "publisher_password": pub.server.password,
                                    "publisher_database": pub.name,
                                }
                            }
                        },
                        "subscribers": {
                            "hosts": {
                                "sub1": {
                                    "subscriber_port": sub.server.port,
                                    "subscriber_password": sub.server.password,
                                    "subscriber_database": sub.name,
                                }
                            }
                        },
                    },
                }
            }
        )
    )
    return pub, sub, inventory


def play(inventory, *args, callback=DEFAULT_CALLBACK):
    return run_playbook(PLAYBOOK, *args, inventory=inventory, callback=callback)


def names(db, table):
    return [
        n
        for (n,) in db.execute(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
            " AND NOT attisdropped ORDER BY attnum",
            [table],
        )
    ]


ORIGINAL = ["id", "sku", "title", "topic"]


def test_additive_migration_replicates_and_reruns_unchanged(lab, tmp_path):
    pub, sub, inventory = lab
    migration = tmp_path / "0001.sql"
    migration.write_text(
        "ALTER TABLE books ADD COLUMN IF NOT EXISTS isbn text;\n"
        "CREATE TABLE IF NOT EXISTS reviews (id bigint PRIMARY KEY, book_id bigint, body text);\n"
    )
    checked = play(inventory, "-e", f"migration={migration}", "--check")
    assert checked.rc == 0, checked.output
    assert "would change:" in checked.output
    assert names(sub, "public.books") == ORIGINAL
    assert names(pub, "public.books") == ORIGINAL

    run = play(inventory, "-e", f"migration={migration}", "-e", "schema_change_publication=technical_pub")
    assert run.rc == 0, run.output
    assert names(sub, "public.books") == [*ORIGINAL, "isbn"]
    assert names(pub, "public.books") == [*ORIGINAL, "isbn"]
    assert names(sub, "public.reviews") == ["id", "book_id", "body"]
    published = pub.execute(
        "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'technical_pub' ORDER BY 1"
    )
    assert published == [("books",), ("reviews",)]
    # The row filter of books was kept when reviews was added.
    assert (
        pub.scalar("SELECT rowfilter FROM pg_publication_tables WHERE tablename = 'books'")
        == "(topic = 'technical'::text)"
    )
    assert "heartbeat arrived" in run.output
    assert run.output.count("changed   ") >= 2

    pub.execute(
        "INSERT INTO books VALUES (2, 73, 'Evolutionary', 'technical', '978-1');"
        " INSERT INTO reviews VALUES (1, 2, 'ok')"
    )
    wait_until(lambda: sub.scalar("SELECT isbn FROM books WHERE id = 2") == "978-1", timeout=30, message="new column")
    wait_until(lambda: sub.scalar("SELECT count(*) FROM reviews") == 1, timeout=30, message="new table's row")

    again = play(inventory, "-e", f"migration={migration}", "-e", "schema_change_publication=technical_pub")
    assert again.rc == 0, again.output
    assert "sub1           unchanged" in again.output
    assert "pub1           unchanged" in again.output


def test_destructive_refused_nothing_changed(lab):
    pub, sub, inventory = lab
    run = play(inventory, "-e", json.dumps({"migration": ["ALTER TABLE books DROP COLUMN topic"]}))
    assert run.rc != 0
    assert "nothing was changed on any node" in run.output
    assert "Safe sequence" in run.output
    assert names(pub, "public.books") == ORIGINAL
    assert names(sub, "public.books") == ORIGINAL


def test_missing_table_on_a_subscriber_changes_no_node(lab):
    pub, sub, inventory = lab
    pub.execute("CREATE TABLE authors (id int PRIMARY KEY)")
    run = play(
        inventory,
        "-e",
        json.dumps({"migration": ["ALTER TABLE books ADD COLUMN a int", "ALTER TABLE authors ADD COLUMN b int"]}),
    )
    assert run.rc != 0
    assert "sub1: statement 2 of 2 (ALTER TABLE authors ADD COLUMN b int) failed" in run.output
    assert "42P01" in run.output
    assert names(pub, "public.books") == ORIGINAL
    assert names(sub, "public.books") == ORIGINAL


def test_failure_half_way_names_node_and_command(lab):
    pub, sub, inventory = lab
    # Sequences are not transactional: the publisher's second nextval (its apply, after its plan) fails,
    # the subscriber's never does - a node failing after the plan passed everywhere.
    pub.execute("CREATE SEQUENCE trip")
    sub.execute("CREATE SEQUENCE trip MINVALUE -100 START -100")
    migration = {"migration": ["ALTER TABLE books ADD COLUMN isbn text", "SELECT 1 / (nextval('trip') - 2)"]}
    run = play(inventory, "-e", json.dumps(migration), callback=JSON_CALLBACK)
    assert run.rc != 0
    report = next(r["msg"] for _unused, r in run.task_results("localhost") if r.get("failed"))
    assert report[0].startswith("FAILED on pub1 - unchanged there"), report
    assert report[1].startswith("pub1: statement 2 of 2 (SELECT 1 / (nextval('trip') - 2)) failed")
    assert "22012" in report[1]
    assert "nodes already changed: sub1" in report
    assert names(sub, "public.books") == [*ORIGINAL, "isbn"]
    assert names(pub, "public.books") == ORIGINAL
    command = report[-1]
    assert command.endswith("--limit localhost,pub1")
    # As a user would paste it into a shell: its words as the shell splits them.
    proc = subprocess.run(
        shlex.split(command),
        env=ansible_env(DEFAULT_CALLBACK, venv_on_path=True),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pub1           changed" in proc.stdout
    assert names(pub, "public.books") == [*ORIGINAL, "isbn"]


def test_allowed_drop_goes_to_the_publisher_first(lab):
    pub, sub, inventory = lab
    migration = {"migration": ["ALTER TABLE books DROP COLUMN sku"], "schema_change_allow_destructive": True}
    run = play(inventory, "-e", json.dumps(migration), callback=JSON_CALLBACK)
    assert run.rc == 0, run.output
    applied = [
        host
        for play_ in run.data["plays"]
        for task in play_["tasks"]
        if task["task"]["name"] == "Run the migration in one transaction"
        for host, result in task["hosts"].items()
        if not result.get("skipped")
    ]
    assert applied == ["pub1", "sub1"]
    assert names(pub, "public.books") == ["id", "title", "topic"]
    assert names(sub, "public.books") == ["id", "title", "topic"]
    summary = next(r["msg"] for name, r in run.task_results("localhost") if name == "Schema change result per node")
    assert any(line.startswith("sub1") and "heartbeat arrived" in line for line in summary), summary
    pub.execute("INSERT INTO books VALUES (5, 'After the drop', 'technical')")
    wait_until(
        lambda: sub.scalar("SELECT title FROM books WHERE id = 5") == "After the drop", timeout=30, message="row"
    )
