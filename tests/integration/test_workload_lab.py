"""Every workload of ``playbooks/workload.yml`` runs briefly against the real lab (issue W1).

``ansible-playbook playbooks/workload.yml -i inventory/lab -e workload=<name>`` with short
durations and small row counts; then the rows are checked on the publisher AND on the subscribers
(hum/pulse rows by row filter on books, pgbench_history through bench_pub, the Goodreads sample
through library_pub, synthetic rows through synthetic_pub when the lab publishes it), and the
``workload`` start/stop markers in the lab's InfluxDB when it has one. Every playbook run holds the
lab lock shared (``/tmp/inventium-lab.lock``), as COMMON.md asks of tests that need the lab as it
is. The hum/pulse rows are deleted again (``workload=cleanup``); the lab is left as it was.
"""

from __future__ import annotations

import json
import time
from typing import Any

import lab_client
import pytest
from support.ansible import LAB_DROP, ansible_env, run_playbook

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_client.lab_unavailable() is not None, reason=str(lab_client.lab_unavailable())),
]

LOCK_WAIT = 600.0
ID_BASE = 1_000_000_000
SUBSCRIBERS = ("subscriber1", "subscriber2")
TOPIC_OF = {"subscriber1": "leadership", "subscriber2": "technical"}


class WorkloadRun:
    def __init__(self, rc: int, data: dict[str, Any], output: str):
        self.rc, self.data, self.output = rc, data, output

    def task(self, name: str) -> dict[str, Any]:
        """The publisher's result of the last task whose name contains ``name``."""
        found = None
        for play in self.data.get("plays", []):
            for task in play.get("tasks", []):
                if name in task["task"]["name"] and "publisher" in task.get("hosts", {}):
                    found = task["hosts"]["publisher"]
        assert found is not None, f"no task {name!r} in the run:\n{self.output[-4000:]}"
        return found

    def report(self) -> Any:
        return self.task("Report")["msg"]


def run_workload(name: str, **extra: Any) -> WorkloadRun:
    args = ["-e", f"workload={name}"]
    for key, value in extra.items():
        args += ["-e", json.dumps({key: value})]
    asked = time.monotonic()
    with lab_client.lab_lock(exclusive=False, wait=LOCK_WAIT):
        started = time.monotonic()
        played = run_playbook(
            "playbooks/workload.yml",
            *args,
            inventory=lab_client.LAB_INVENTORY,
            env=ansible_env(drop=LAB_DROP),
            timeout=600,
        )
    print(f"workload {name}: waited {started - asked:.1f} s for the lab lock, ran {time.monotonic() - started:.1f} s")
    output = played.output
    run = WorkloadRun(played.rc, played.data, output)
    assert played.rc == 0, output[-6000:]
    for secret in lab_client.all_secrets():
        assert secret not in output
    return run


def scalar(node: str, query: str, params: Any = None) -> Any:
    with lab_client.connect(node) as conn:
        return conn.execute(query, params).fetchone()[0]


def wait_equal(query: str, nodes: tuple[str, ...] = SUBSCRIBERS, expected: Any = None, timeout: float = 30.0) -> Any:
    """Wait until ``query`` gives the publisher's value (or ``expected``) on every node."""
    want = scalar("publisher", query) if expected is None else expected
    for node in nodes:
        lab_client.wait_for(lambda node=node: scalar(node, query) == want, timeout=timeout)
    return want


def markers_since(workload: str, since_ns: int) -> list[str]:
    """Phases of the ``workload`` measurement written since ``since_ns``; None when the lab has no InfluxDB."""
    from ansible_collections.inventium.logical_replication.plugins.module_utils._influx import client_from_endpoints

    client = client_from_endpoints(str(lab_client.ENDPOINTS_FILE))
    if client is None:
        return None
    rows = client.query(
        f"SELECT * FROM workload WHERE workload = '{workload}' AND time >= {since_ns} ORDER BY time"  # noqa: S608
    )
    return [row["phase"] for row in rows]


def subscribed(node: str, table: str) -> bool:
    return bool(
        scalar(node, "SELECT count(*) FROM pg_catalog.pg_subscription_rel WHERE srrelid = to_regclass(%s)", [table])
    )


def test_hum_pulse_and_cleanup_replicate_by_topic():
    since = time.time_ns()
    seed = lab_client.books("publisher", "id <= 5")
    hum = run_workload("hum", workload_duration=3, workload_rate=30, workload_report_interval=1)
    result = hum.task("Generate load")
    assert 80 <= result["operations"] <= 91
    assert len(result["windows"]) == 3
    assert "hum:" in hum.report()
    pulse = run_workload(
        "pulse", workload_duration=3, workload_rate=30, workload_pulse_period=3, workload_report_interval=1.5
    )
    assert pulse.task("Generate load")["operations"] >= 80
    for node in SUBSCRIBERS:
        topic = TOPIC_OF[node]
        query = f"SELECT count(*) FROM books WHERE id >= {ID_BASE} AND topic = '{topic}'"  # noqa: S608
        wait_equal(query, nodes=(node,))
        # Row filters: the other topic never arrives.
        other = "technical" if topic == "leadership" else "leadership"
        assert scalar(node, f"SELECT count(*) FROM books WHERE topic = '{other}'") == 0  # noqa: S608
    assert lab_client.books("publisher", "id <= 5") == seed

    clean = run_workload("cleanup")
    assert clean.task("Delete the rows")["changed"] is True
    in_range = f"SELECT count(*) FROM books WHERE id >= {ID_BASE}"  # noqa: S608
    wait_equal(in_range, nodes=("publisher", *SUBSCRIBERS), expected=0)
    phases = markers_since("hum", since)
    if phases is not None:
        assert phases == ["start", "stop"]
        assert markers_since("pulse", since) == ["start", "stop"]


def test_pgbench_runs_and_replicates():
    since = time.time_ns()
    run = run_workload("pgbench", workload_duration=2, workload_rate=50, workload_report_interval=1)
    result = run.task("Run pgbench")
    assert 50 <= result["transactions"] <= 130
    assert result["latency_average_ms"] > 0
    assert "tps" in run.report()
    for node in SUBSCRIBERS:
        assert subscribed(node, "public.pgbench_history"), f"{node} does not subscribe to bench_pub"
    wait_equal("SELECT count(*) FROM pgbench_history")
    wait_equal("SELECT sum(abalance) FROM pgbench_accounts")
    books = run_workload("pgbench", workload_duration=1, workload_pgbench_script="books-select")
    assert books.task("Run pgbench")["changed"] is False
    assert books.task("Run pgbench")["transactions"] > 0
    phases = markers_since("pgbench", since)
    if phases is not None:
        assert phases == ["start", "stop", "start", "stop"]


def test_goodreads_sample_imports_once_and_replicates():
    first = run_workload("goodreads")
    assert first.task("Upsert")["rows"] == 120
    again = run_workload("goodreads")
    assert again.task("Upsert")["changed"] is False
    assert again.task("Upsert")["unchanged"] == 120
    for node in SUBSCRIBERS:
        assert subscribed(node, "public.goodreads_books"), f"{node} does not subscribe to library_pub"
    wait_equal("SELECT count(*) FROM goodreads_books")
    wait_equal(
        "SELECT md5(string_agg(book_id || ':' || coalesce(my_review, ''), ',' ORDER BY book_id)) FROM goodreads_books"
    )


def test_synthetic_shows_progress_and_replicates_where_published():
    run = run_workload(
        "synthetic",
        workload_synthetic_rows=30000,
        workload_synthetic_wide_rows=3000,
        workload_synthetic_docs_rows=300,
        workload_synthetic_steps=3,
        workload_synthetic_truncate=True,
    )
    items = run.task("Generate synthetic rows")["results"]
    labels = [r["_ansible_item_label"] for r in items]
    assert labels[:3] == [
        "synthetic_books rows 10000/30000 (33%)",
        "synthetic_books rows 20000/30000 (67%)",
        "synthetic_books rows 30000/30000 (100%)",
    ]
    assert scalar("publisher", "SELECT count(*) FROM synthetic_books") == 30000
    assert scalar("publisher", "SELECT count(*) FROM synthetic_wide") == 3000
    assert scalar("publisher", "SELECT count(*) FROM synthetic_docs") == 300
    report = run.report()
    assert report[0].startswith("synthetic_books: 30000 rows (ids 1..30000)")
    missing = [node for node in SUBSCRIBERS if not subscribed(node, "public.synthetic_books")]
    if missing:
        pytest.skip(f"{', '.join(missing)} do not subscribe to synthetic_pub yet (inventory/lab); generated only")
    for table in ("synthetic_books", "synthetic_wide", "synthetic_docs"):
        wait_equal(f"SELECT count(*) FROM {table}", timeout=60)  # noqa: S608
