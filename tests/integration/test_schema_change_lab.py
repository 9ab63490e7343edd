"""playbooks/schema_change.yml on the real lab while a workload writes (issue O2, "Schema changes").

A migration adds a column to ``books`` and a new table; the new table is added to ``technical_pub``
(``-e schema_change_publication``) and the subscriptions refreshed, all while ``hum`` writes single
rows into ``books``. Then: no apply error on any subscriber (``pg_stat_subscription_stats``), rows
with the new column arrive (by row filter: a technical row on subscriber2, a leadership row on
subscriber1), the new table's row arrives on subscriber2, the heartbeat arrived everywhere; a re-run
changes no node; a destructive migration (dropping a published column) is refused with nothing
changed. The finalizer restores the lab's shape (new table out of the publication, the
subscriptions refreshed, the table and the column dropped, publisher first).

Holds the lab lock exclusively. Not run by the helper that wrote it (no lab on that machine).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

from lab_client import (
    LAB_INVENTORY,
    REPO_ROOT,
    all_secrets,
    connect,
    lab_lock,
    lab_unavailable,
    wait_for,
)
from support.ansible import JSON_CALLBACK, LAB_DROP, ansible_env, ansible_playbook, run_playbook

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

PLAYBOOK = "playbooks/schema_change.yml"
SUBSCRIBERS = ("subscriber1", "subscriber2")
COLUMN = "sc_lab_note"
TABLE = "sc_lab_items"
MIGRATION = (
    f"ALTER TABLE public.books ADD COLUMN IF NOT EXISTS {COLUMN} text;\n"
    f"CREATE TABLE IF NOT EXISTS public.{TABLE} (id bigint PRIMARY KEY, label text);\n"
)
TECHNICAL_ID, LEADERSHIP_ID = 930001, 930002
SUMMARY_TASK = "Schema change result per node"


def scalar(node: str, query: str, params: object = None) -> object:
    with connect(node) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def columns(node: str) -> list[str]:
    with connect(node) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.books'::regclass"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
        ]


def apply_errors(node: str) -> int:
    return int(scalar(node, "SELECT coalesce(sum(apply_error_count), 0) FROM pg_stat_subscription_stats"))


def schema_change(*extra: str) -> tuple[int, str, list[str]]:
    """Run the playbook on the lab: exit code, output (JSON callback) and the per-node result lines."""
    run = run_playbook(
        PLAYBOOK, *extra, inventory=LAB_INVENTORY, callback=JSON_CALLBACK, env=ansible_env(JSON_CALLBACK, drop=LAB_DROP)
    )
    for secret in all_secrets():
        assert secret not in run.output
    lines = [r["msg"] for name, r in run.task_results("localhost") if name == SUMMARY_TASK and "msg" in r]
    return run.rc, run.output, lines[0] if lines else []


def restore() -> None:
    """Put the lab back: the table out of technical_pub, subscriptions refreshed, then drop (publisher first)."""
    with connect("publisher") as conn:
        published = conn.execute(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = 'technical_pub' AND tablename = %s", [TABLE]
        ).fetchone()
        if published:
            conn.execute(f"ALTER PUBLICATION technical_pub DROP TABLE public.{TABLE}")
    for node in SUBSCRIBERS:
        with connect(node) as conn:
            for (name,) in conn.execute("SELECT subname::text FROM pg_subscription WHERE subenabled").fetchall():
                conn.execute(f'ALTER SUBSCRIPTION "{name}" REFRESH PUBLICATION WITH (copy_data = false)')
    for node in ("publisher", *SUBSCRIBERS):
        with connect(node) as conn:
            conn.execute(f"DELETE FROM public.books WHERE id IN ({TECHNICAL_ID}, {LEADERSHIP_ID})")  # noqa: S608
            conn.execute(f"DROP TABLE IF EXISTS public.{TABLE}")
            conn.execute(f"ALTER TABLE public.books DROP COLUMN IF EXISTS {COLUMN}")


@pytest.fixture(scope="module")
def lab() -> Iterator[None]:
    with lab_lock(exclusive=True):
        restore()
        try:
            yield
        finally:
            restore()


@pytest.fixture(scope="module")
def migration_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "0001_lab.sql"
    path.write_text(MIGRATION)
    return path


def start_workload(seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            ansible_playbook(),
            "-i",
            LAB_INVENTORY,
            "playbooks/workload.yml",
            "-e",
            "workload=hum",
            "-e",
            json.dumps({"workload_duration": seconds, "workload_rate": 50}),
        ],
        cwd=REPO_ROOT,
        env=ansible_env(None, drop=LAB_DROP),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_additive_migration_under_load(lab, migration_file):
    errors_before = {node: apply_errors(node) for node in SUBSCRIBERS}
    workload = start_workload(40)
    try:
        time.sleep(5)  # the workload is writing when the migration starts
        rc, output, lines = schema_change(
            "-e", f"migration={migration_file}", "-e", "schema_change_publication=technical_pub"
        )
        assert rc == 0, output[-6000:]
    finally:
        workload_output, _unused = workload.communicate(timeout=300)
    assert workload.returncode == 0, workload_output[-4000:]

    assert {line.split()[0] for line in lines} == {"publisher", *SUBSCRIBERS}
    assert all(line.split()[1] == "changed" for line in lines), lines
    assert all("heartbeat arrived" in line for line in lines if not line.startswith("publisher")), lines
    for node in ("publisher", *SUBSCRIBERS):
        assert columns(node)[-1] == COLUMN

    with connect("publisher") as conn:
        conn.execute(
            f"INSERT INTO public.books (id, sku, title, topic, {COLUMN}) VALUES"  # noqa: S608 - constants
            " (%s, 1, 'SC technical', 'technical', 'tech note'), (%s, 2, 'SC leadership', 'leadership', 'lead note')",
            [TECHNICAL_ID, LEADERSHIP_ID],
        )
        conn.execute(f"INSERT INTO public.{TABLE} VALUES (1, 'first')")  # noqa: S608
    wait_for(lambda: scalar("subscriber2", f"SELECT {COLUMN} FROM books WHERE id = {TECHNICAL_ID}") == "tech note")  # noqa: S608
    wait_for(lambda: scalar("subscriber1", f"SELECT {COLUMN} FROM books WHERE id = {LEADERSHIP_ID}") == "lead note")  # noqa: S608
    wait_for(lambda: scalar("subscriber2", f"SELECT label FROM public.{TABLE} WHERE id = 1") == "first")  # noqa: S608
    for node in SUBSCRIBERS:
        assert apply_errors(node) == errors_before[node], node


def test_rerun_changes_nothing(lab, migration_file):
    rc, output, lines = schema_change(
        "-e", f"migration={migration_file}", "-e", "schema_change_publication=technical_pub"
    )
    assert rc == 0, output[-6000:]
    assert len(lines) == 1 + len(SUBSCRIBERS), lines
    assert all(line.split()[1] == "unchanged" for line in lines), lines


def test_destructive_migration_refused(lab):
    before = {node: columns(node) for node in ("publisher", *SUBSCRIBERS)}
    rc, output, _lines = schema_change("-e", json.dumps({"migration": ["ALTER TABLE public.books DROP COLUMN sku"]}))
    assert rc != 0
    assert "nothing was changed on any node" in output
    assert "drops the replicated column public.books.sku" in output
    assert "Safe sequence" in output
    assert {node: columns(node) for node in before} == before


def test_drift_check_finds_a_column_added_only_on_the_publisher(lab):
    """The schema_drift check (make status compares each subscriber with the publisher): a column the
    publisher publishes and the subscribers lack is an error naming it, and goes away with the column."""
    from test_faults import status  # the lab's make status, as the fault tests run it

    drift = "sc_lab_drift"
    with connect("publisher") as conn:
        conn.execute(f"ALTER TABLE public.books ADD COLUMN {drift} integer")
    try:
        rc, report = status()
        assert rc == 2, report
        assert "schema_drift" in report, report
        assert f"public.books.{drift} (integer)" in report, report
    finally:
        with connect("publisher") as conn:
            conn.execute(f"ALTER TABLE public.books DROP COLUMN IF EXISTS {drift}")
    rc, report = status()
    assert "schema_drift" not in report, report
    for secret in all_secrets():
        assert secret not in report
