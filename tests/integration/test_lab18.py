"""The PostgreSQL 18 lab (``inventory/lab18``, README "The PostgreSQL 18 lab"): failover slots end to end.

Builds lab18 beside the default lab (``site.yml -i inventory/lab18``; from zero when an earlier run
left it failed over), re-runs it (``changed=0``), then checks on the real containers:

- ``standby18`` is in recovery and streams from ``primary18`` through its physical slot;
- ``sub18``'s subscription has ``failover = true`` and ``streaming = parallel``, its slot on
  ``primary18`` is a failover slot and is synchronized on ``standby18`` (``synced``);
- ``playbooks/conflicts.yml`` builds the two-way pair ``peer18a`` <-> ``peer18b`` (origin = none) and
  walks every PostgreSQL 18 conflict type to an equal pair;
- ``playbooks/failover.yml`` (after ``docker stop primary18``) promotes ``standby18`` and repoints
  ``sub18``, which goes on from the synced slot: the rows written before and after the failover are
  all there once (counts and checksums equal to the new primary), no table was copied again.

Marker ``lab18``: opt-in (``make test-lab18`` or ``tests/run_all.py --stages integration-lab18``),
never part of the default stages. Needs root, Docker and the image ``inventium/postgresql:18``.
The lab is left failed over; the next run of this file (or
``make lab-down INVENTORY=inventory/lab18 PURGE=1 && make lab INVENTORY=inventory/lab18``) rebuilds it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
from lab_client import REPO_ROOT, run_site, wait_for  # noqa: E402
from psycopg import sql  # noqa: E402

INVENTORY = "inventory/lab18"
STATE_DIR = REPO_ROOT / ".lab18"
PORTS = {"primary18": 5540, "standby18": 5541, "sub18": 5542, "peer18a": 5543, "peer18b": 5544}
DATABASES = {"primary18": "publisher", "standby18": "publisher", "sub18": "subscriber"}
# The standby is a copy of the primary: the primary's superuser password.
SECRETS = {"primary18": "primary18-postgres", "standby18": "primary18-postgres", "sub18": "sub18-postgres"}
SUBSCRIPTION = "sub18_sub"
TABLE = sql.Identifier("lab18", "events")
TIMEOUT = 60.0
INSERT = sql.SQL("INSERT INTO {} (note) SELECT %s || g FROM generate_series(1, 100) g")


def _unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    probe = subprocess.run(
        ["docker", "image", "inspect", "inventium/postgresql:18"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return "image inventium/postgresql:18 is missing (playbooks/images.yml)"
    return None


pytestmark = [
    pytest.mark.lab18,
    pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable())),
]


def connect(node: str, dbname: str | None = None) -> psycopg.Connection:
    password = (STATE_DIR / "secrets" / SECRETS[node]).read_text().strip()
    return psycopg.connect(
        host="127.0.0.1",
        port=PORTS[node],
        user="postgres",
        password=password,
        dbname=dbname or DATABASES[node],
        autocommit=True,
        connect_timeout=5,
    )


def scalar(node: str, query: object, *params: object) -> object:
    with connect(node) as conn:
        return conn.execute(query, params).fetchone()[0]


def container_running(name: str) -> bool:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Running}}", name], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() == "true"


def playbook(playbook_path: str, *extra: str) -> tuple[int, str, float]:
    run = run_site(*extra, playbook=playbook_path, inventory=INVENTORY)
    return run.rc, run.output, run.seconds


def failed_over() -> bool:
    """True when an earlier run left lab18 failed over (primary18 stopped or standby18 promoted)."""
    if not Path(STATE_DIR / "secrets" / "primary18-postgres").is_file():
        return False
    if not container_running("primary18") and container_running("standby18"):
        return True
    try:
        return not scalar("standby18", "SELECT pg_is_in_recovery()")
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="module")
def lab18() -> dict[str, object]:
    if failed_over():
        rc, out, _seconds = playbook("playbooks/teardown.yml", "-e", "teardown_purge=true")
        assert rc == 0, out[-3000:]
    rc, first, first_seconds = playbook("site.yml")
    assert rc == 0, first[-3000:]
    rc, second, second_seconds = playbook("site.yml")
    assert rc == 0, second[-3000:]
    print(f"\nlab18: site.yml {first_seconds:.1f} s, then the no-op re-run {second_seconds:.1f} s")
    return {"second": second}


def test_rerun_changes_nothing(lab18: dict[str, object]) -> None:
    recap = [line for line in str(lab18["second"]).splitlines() if " : ok=" in line]
    assert recap
    assert all(" changed=0 " in line for line in recap), "\n".join(recap)


def test_standby_streams_from_primary(lab18: dict[str, object]) -> None:
    assert scalar("standby18", "SELECT pg_is_in_recovery()") is True
    with connect("primary18") as conn:
        rows = conn.execute(
            "SELECT r.application_name, r.state, s.slot_name FROM pg_stat_replication r"
            " JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_type = 'physical'"
        ).fetchall()
    assert ("standby18", "streaming", "standby18") in rows
    assert scalar("primary18", "SHOW synchronized_standby_slots") == "standby18"
    assert scalar("standby18", "SHOW sync_replication_slots") == "on"


def test_subscription_slot_is_failover_and_synced(lab18: dict[str, object]) -> None:
    with connect("sub18") as conn:
        failover, stream = conn.execute(
            "SELECT subfailover, substream FROM pg_subscription WHERE subname = %s", (SUBSCRIPTION,)
        ).fetchone()
    assert failover is True
    assert stream == "p"
    assert scalar("primary18", "SELECT failover FROM pg_replication_slots WHERE slot_name = %s", SUBSCRIPTION) is True

    def synced() -> bool:
        return bool(
            scalar(
                "standby18",
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s AND synced"
                " AND failover AND invalidation_reason IS NULL",
                SUBSCRIPTION,
            )
        )

    wait_for(synced, timeout=TIMEOUT)


def test_conflicts_on_the_peers(lab18: dict[str, object]) -> None:
    """playbooks/conflicts.yml on peer18a/peer18b: the two-way pair, every conflict type counted, resolved, equal."""
    rc, out, seconds = playbook("playbooks/conflicts.yml")
    assert rc == 0, out[-4000:]
    print(f"\nconflicts.yml on peer18a <-> peer18b: {seconds:.1f} s")
    for case in ("insert_exists", "update_origin_differs", "delete_origin_differs", "update_missing", "delete_missing"):
        assert f"| {case} |" in out
    assert "pair peer18a <-> peer18b: equal in both directions" in out


def _summary(node: str) -> tuple[int, str]:
    with connect(node) as conn:
        count, digest = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(id || ':' || note, ',' ORDER BY id), '')) FROM {}"
            ).format(TABLE)
        ).fetchone()
    return count, digest


def test_failover_keeps_the_subscription(lab18: dict[str, object]) -> None:
    tag = f"failover-{time.time_ns()}"
    with connect("primary18") as conn:
        conn.execute(INSERT.format(TABLE), (tag + "-before-",))
    wait_for(lambda: _summary("sub18") == _summary("primary18"), timeout=TIMEOUT)
    before = _summary("sub18")
    with connect("sub18") as conn:
        copies_before = conn.execute(
            "SELECT srrelid::regclass::text, srsubstate, srsublsn FROM pg_subscription_rel ORDER BY 1"
        ).fetchall()
    # Without fencing the primary the playbook refuses (nothing changed).
    rc, out, _seconds = playbook("playbooks/failover.yml")
    assert rc != 0
    assert "STILL ACCEPTS CONNECTIONS" in out
    assert scalar("standby18", "SELECT pg_is_in_recovery()") is True

    subprocess.run(["docker", "stop", "primary18"], check=True, capture_output=True)
    started = time.monotonic()
    rc, out, seconds = playbook("playbooks/failover.yml")
    assert rc == 0, out[-4000:]
    assert scalar("standby18", "SELECT pg_is_in_recovery()") is False

    with connect("standby18") as conn:
        conn.execute(INSERT.format(TABLE), (tag + "-after-",))
    applied = wait_for(lambda: _summary("sub18") == _summary("standby18"), timeout=TIMEOUT)
    after = _summary("sub18")
    print(
        f"\nfailover.yml {seconds:.1f} s; from the start of the playbook to sub18 applying the new primary's rows:"
        f" {time.monotonic() - started:.1f} s (rows visible {applied:.1f} s after the insert)"
    )
    assert after[0] == before[0] + 100
    assert (
        scalar("sub18", sql.SQL("SELECT count(DISTINCT note) FROM {} WHERE note LIKE %s").format(TABLE), tag + "-%")
        == 200
    )
    with connect("sub18") as conn:
        conninfo = conn.execute(
            "SELECT subconninfo FROM pg_subscription WHERE subname = %s", (SUBSCRIPTION,)
        ).fetchone()[0]
        copies_after = conn.execute(
            "SELECT srrelid::regclass::text, srsubstate, srsublsn FROM pg_subscription_rel ORDER BY 1"
        ).fetchall()
    assert "host=standby18" in conninfo.replace("'", "")
    # No table went through an initial copy again: same tables, same states and sync positions.
    assert copies_after == copies_before
    assert scalar("standby18", "SELECT active FROM pg_replication_slots WHERE slot_name = %s", SUBSCRIPTION) is True
