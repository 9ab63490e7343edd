"""Experiments on the real lab (issue X1): the runner ``playbooks/experiment.yml`` end to end.

- A smoke experiment (tests/data/experiments/smoke.yml: two variants x one repetition, ~10 s of
  workload each) produces ``results.csv`` with a numeric cell for every measure and a
  ``summary.md`` whose answer names, for every ranked measure, the variant the CSV says is best;
  the lab's settings are restored afterwards (no journal, original values back).
- The Grafana dashboard's annotation query for ``experiment`` markers, executed against the real
  InfluxDB, returns the start and stop markers of both variants.
- Killing the runner mid-variant (SIGKILL of the ansible-playbook process group) leaves a journal;
  ``site.yml`` then restores: it changes only what the experiment left changed, a second
  ``site.yml`` reports changed=0, and every table of every subscription equals the publisher's
  (row counts and checksums, through the row filters).

Runs under the lab lock (exclusive: the experiments reconfigure the lab). Needs the built lab
(``make lab``); leaves it as built.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lab_client
import pytest
from metrics_lab import ensure_metrics_lab
from support.ansible import LAB_DROP, ansible_env

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_client.lab_unavailable() is not None, reason=str(lab_client.lab_unavailable())),
]

LOCK_WAIT = 1800.0
SMOKE = lab_client.REPO_ROOT / "tests" / "data" / "experiments" / "smoke.yml"
RESULTS = lab_client.LAB_DIR / "experiments"
JOURNAL = RESULTS / "journal.json"
SUBSCRIBERS = ("subscriber1", "subscriber2")
DASHBOARD = lab_client.REPO_ROOT / "roles" / "grafana" / "files" / "dashboards" / "replication.json"
# Tasks of site.yml's restore play (playbooks/tasks/experiment_restore*.yml, experiment_apply.yml).
RESTORE_TASKS = (
    "Publisher settings",
    "Subscriber settings",
    "Publications",
    "Options of the lab subscriptions",
    "Container limits",
    "Remove the journal",
    "Drop the experiments' own subscriptions",
    "Drop the indexes the experiment created",
    "Drop the subscriptions whose slot was lost",
)


def playbook_argv(*extra: str) -> list[str]:
    binary = str(Path(sys.executable).parent / "ansible-playbook")
    return [binary, "playbooks/experiment.yml", "-i", lab_client.LAB_INVENTORY, *extra]


def kill_orphaned_workers(killed_pid: int) -> None:
    """SIGKILL what the killed run left: ansible-core's task workers call setsid(), so killpg misses them.

    With Mitogen's strategy (ansible.cfg) such a worker waits for ever for the multiplexer that died with
    the run (seen: one idle for 14 minutes); they are forks of the run, so their command line is its own.
    """
    argv = "\0".join(playbook_argv("-e", f"experiment_file={SMOKE}"))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == killed_pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").rstrip("\0")
        except OSError:
            continue
        if cmdline.endswith(argv):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def setting(node: str, name: str) -> tuple[str, str]:
    with lab_client.connect(node) as conn:
        return tuple(conn.execute("SELECT setting, source FROM pg_settings WHERE name = %s", [name]).fetchone())


def streaming_of(node: str) -> str:
    with lab_client.connect(node) as conn:
        return str(
            conn.execute("SELECT substream::text FROM pg_subscription WHERE subname = %s", [f"{node}_sub"]).fetchone()[
                0
            ]
        )


@pytest.fixture(scope="module", autouse=True)
def lab() -> None:
    """The lab with its metrics, built by this session when no other test built it yet (file order)."""
    ensure_metrics_lab()


@pytest.fixture(scope="module")
def smoke() -> dict[str, Any]:
    """Run the smoke experiment once; its output, result directory and start time."""
    before = {"publisher": setting("publisher", "logical_decoding_work_mem")}
    streaming_before = {node: streaming_of(node) for node in SUBSCRIBERS}
    with lab_client.lab_lock(exclusive=True, wait=LOCK_WAIT):
        # A lock left by a killed run (its process is gone) is taken over.
        dead = subprocess.Popen(["true"])
        dead.wait()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "lock").write_text(f"pid={dead.pid}\nexperiment=killed\nstarted_at=2000-01-01T00:00:00Z\n")
        started_ns = time.time_ns()
        start = time.monotonic()
        proc = subprocess.run(
            playbook_argv("-e", f"experiment_file={SMOKE}"),
            cwd=lab_client.REPO_ROOT,
            env=ansible_env(callback=None, drop=LAB_DROP),
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        seconds = time.monotonic() - start
    output = proc.stdout + "\n" + proc.stderr
    print(f"smoke experiment: {seconds:.1f} s")
    assert proc.returncode == 0, output[-6000:]
    for secret in lab_client.all_secrets():
        assert secret not in output
    found = re.findall(r"results in (\S+/experiments/smoke/\d{8}T\d{6}Z)", output)
    assert found, output[-3000:]
    return {
        "output": output,
        "dir": Path(found[-1]),
        "started_ns": started_ns,
        "before": before,
        "streaming_before": streaming_before,
    }


def test_stale_lock_was_taken_over(smoke: dict[str, Any]) -> None:
    assert "took over the stale lock" in smoke["output"]
    assert "experiment=killed" in smoke["output"]


def test_second_experiment_is_refused_while_one_runs(tmp_path: Path) -> None:
    """A lock held by a live ansible-playbook process: the run stops with its pid, changes nothing."""
    with lab_client.lab_lock(exclusive=True, wait=LOCK_WAIT):
        # A live process whose command line names ansible-playbook, as a running experiment's does.
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "ansible-playbook"])
        try:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "lock").write_text(f"pid={holder.pid}\nexperiment=other\nstarted_at=2000-01-01T00:00:00Z\n")
            ldwm = setting("publisher", "logical_decoding_work_mem")
            proc = subprocess.run(
                playbook_argv("-e", f"experiment_file={SMOKE}"),
                cwd=lab_client.REPO_ROOT,
                env=ansible_env(callback=None, drop=LAB_DROP),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            output = proc.stdout + proc.stderr
            assert proc.returncode != 0
            assert f"Another experiment runs (pid={holder.pid} experiment=other" in output, output[-3000:]
            assert not JOURNAL.exists()
            assert setting("publisher", "logical_decoding_work_mem") == ldwm
            assert f"pid={holder.pid}" in (RESULTS / "lock").read_text()
        finally:
            holder.kill()
            holder.wait()
            lock = RESULTS / "lock"
            if lock.exists() and f"pid={holder.pid}" in lock.read_text():
                lock.unlink()


def test_smoke_results_csv_has_a_number_for_every_measure(smoke: dict[str, Any]) -> None:
    run_dir = smoke["dir"]
    raw = json.loads((run_dir / "raw.json").read_text())
    plan = raw["plan"]
    assert [r["variant"] for r in raw["runs"]] == ["spill", "stream"]
    assert raw["versions"]["publisher"].startswith("15")
    assert raw["machine"]["cores"] >= 1
    with open(run_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["variant"], r["repetition"]) for r in rows] == [("spill", "1"), ("stream", "1")]
    expected = []
    for measure in plan["measures"]:
        if plan["measure_info"][measure]["per_node"]:
            expected += [f"{measure}@{node}" for node in plan["nodes"]]
        else:
            expected.append(measure)
    for row in rows:
        for column in expected:
            assert column in row, (column, list(row))
            float(row[column])  # a numeric cell (ValueError otherwise)
    # The variants really were applied: spill spills, stream streams.
    by_variant = {r["variant"]: r for r in rows}
    for node in plan["nodes"]:
        assert float(by_variant["spill"][f"spill_bytes@{node}"]) > 0
        assert float(by_variant["stream"][f"stream_bytes@{node}"]) > 0
        assert float(by_variant["stream"][f"spill_bytes@{node}"]) == 0


def test_smoke_summary_answer_matches_the_csv(smoke: dict[str, Any]) -> None:
    run_dir = smoke["dir"]
    raw = json.loads((run_dir / "raw.json").read_text())
    info = raw["plan"]["measure_info"]
    summary = (run_dir / "summary.md").read_text()
    assert raw["question"] in summary
    with open(run_dir / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for column, best in re.findall(r"^- `([^`]+)` \([^)]*\): best `([^`]+)`", summary, re.M):
        better = info[column.split("@")[0]]["better"]
        values = {r["variant"]: float(r[column]) for r in rows}  # one repetition: the median is the value
        want = min(values.values()) if better == "lower" else max(values.values())
        assert values[best] == want, (column, best, values)
        checked += 1
    assert checked >= 5, summary


def test_smoke_restored_the_lab(smoke: dict[str, Any]) -> None:
    assert not JOURNAL.exists()
    assert setting("publisher", "logical_decoding_work_mem") == smoke["before"]["publisher"]
    assert {node: streaming_of(node) for node in SUBSCRIBERS} == smoke["streaming_before"]
    assert not (RESULTS / "lock").exists()


def test_dashboard_annotation_query_returns_the_markers(smoke: dict[str, Any]) -> None:
    from ansible_collections.inventium.logical_replication.plugins.module_utils._influx import client_from_endpoints

    client = client_from_endpoints(str(lab_client.ENDPOINTS_FILE))
    assert client is not None, "the lab has an InfluxDB"
    dashboard = json.loads(DASHBOARD.read_text())
    annotations = [a for a in dashboard["annotations"]["list"] if 'FROM "experiment"' in a["target"]["query"]]
    assert annotations, "the replication dashboard has an experiment annotation"
    query = annotations[0]["target"]["query"].replace("$timeFilter", f"time >= {smoke['started_ns']}")
    rows = client.query(query)
    seen = {(r["experiment"], r["variant"], str(r["repetition"]), r["event"]) for r in rows}
    for variant in ("spill", "stream"):
        assert ("smoke", variant, "1", "start") in seen, rows
        assert ("smoke", variant, "1", "stop") in seen, rows


def published_digest(node: str) -> dict[str, tuple[int, str]]:
    """Per table of ``node``'s subscription: (count, checksum) on the publisher through the row filters."""
    with lab_client.connect(node) as conn:
        pubs, tables = conn.execute(
            "SELECT s.subpublications,"
            " ARRAY(SELECT srrelid::regclass::text FROM pg_subscription_rel r WHERE r.srsubid = s.oid)"
            " FROM pg_subscription s WHERE s.subname = %s",
            [f"{node}_sub"],
        ).fetchone()
    out = {}
    with lab_client.connect("publisher") as conn:
        conn.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        for table in tables:
            schema, name = table.split(".", 1) if "." in table else ("public", table)
            filters = [
                f
                for (f,) in conn.execute(
                    "SELECT rowfilter FROM pg_publication_tables"
                    " WHERE pubname = ANY(%s) AND schemaname = %s AND tablename = %s",
                    [pubs, schema, name],
                )
            ]
            where = (
                ""
                if not filters or any(f is None for f in filters)
                else " WHERE " + " OR ".join(f"({f})" for f in filters)
            )
            out[table] = conn.execute(digest_sql(table) + where).fetchone()
    return out


def digest_sql(table: str) -> str:
    # Table names come from the catalogs (regclass::text, quoted where needed).
    checksum = "COALESCE(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text"
    return f"SELECT count(*), {checksum} FROM {table} AS t"  # noqa: S608


def node_digest(node: str, tables: list[str]) -> dict[str, tuple[int, str]]:
    with lab_client.connect(node) as conn:
        conn.execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        return {table: conn.execute(digest_sql(table)).fetchone() for table in tables}


def caught_up(node: str) -> bool:
    with lab_client.connect("publisher") as conn:
        row = conn.execute(
            "SELECT replay_lsn >= pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = %s",
            [f"{node}_sub"],
        ).fetchone()
    return bool(row and row[0])


def equal_tables(node: str) -> dict[str, Any]:
    """Tables of ``node``'s subscription that differ from the publisher (after catching up; a few tries,
    since the sampler's heartbeat changes all the time)."""
    differ: dict[str, Any] = {}
    for _attempt in range(5):
        lab_client.wait_for(lambda: caught_up(node), timeout=120)
        want = published_digest(node)
        assert want, node
        got = node_digest(node, list(want))
        differ = {t: (want[t], got[t]) for t in want if want[t] != got[t]}
        if not differ:
            return differ
        time.sleep(1)
    return differ


def test_killed_experiment_is_restored_by_site_yml(tmp_path: Path) -> None:
    env = ansible_env(callback=None, drop=LAB_DROP)
    log = tmp_path / "experiment.log"
    with lab_client.lab_lock(exclusive=True, wait=LOCK_WAIT):
        ldwm_before = setting("publisher", "logical_decoding_work_mem")
        with open(log, "w") as out:
            proc = subprocess.Popen(
                playbook_argv("-e", f"experiment_file={SMOKE}"),
                cwd=lab_client.REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole below
            )
            try:
                deadline = time.monotonic() + 600
                while "TASK [Workload and measures of variant spill]" not in log.read_text():
                    assert proc.poll() is None, log.read_text()[-4000:]
                    assert time.monotonic() < deadline, log.read_text()[-4000:]
                    time.sleep(0.2)
                time.sleep(3)  # mid-variant: the large transaction is being written or decoded
                assert proc.poll() is None, "the run ended before it could be killed"
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                kill_orphaned_workers(proc.pid)
        assert JOURNAL.exists(), "the killed run left its journal"
        # The variant's setting is still in place: there is something to restore.
        assert setting("publisher", "logical_decoding_work_mem")[0] == "64"

        first = lab_client.run_site()
        assert first.rc == 0, first.output[-6000:]
        changed = first.changed_tasks()
        assert changed, "the restore changed something"
        unexpected = [line for line in changed if not any(f"TASK [{name}" in line for name in RESTORE_TASKS)]
        assert not unexpected, "\n".join(unexpected)
        assert any("TASK [Publisher settings" in line for line in changed), "\n".join(changed)
        assert not JOURNAL.exists()
        assert setting("publisher", "logical_decoding_work_mem") == ldwm_before

        second = lab_client.run_site()
        assert second.rc == 0, second.output[-6000:]
        assert all(stats["changed"] == 0 for stats in second.recap().values()), "\n".join(second.changed_tasks())
        print(
            f"\nsite.yml after the kill: {first.seconds:.1f} s ({len(changed)} changed), again: {second.seconds:.1f} s"
        )

        for node in SUBSCRIBERS:
            assert equal_tables(node) == {}, node
