"""`make report` (scripts/report.py) renders a report from real data in the lab's real InfluxDB.

The lab's InfluxDB (playbooks/metrics.yml) must hold points of the last minutes from the real
sampler; when it does not (a fresh machine, this test run alone), the sampler samples the lab for
a few seconds first. The report is written into a temporary directory, then: exit status 0, four
PNG files (PNG signature, a plotted size, not the "no data" page), and a markdown page that
references each of them and lists the lab's subscriptions and slots. The failover-slot and conflict
sections are plotted when the period has points of 17+ slots / 18+ subscribers and say "No data"
otherwise (the default lab). A missing database or a
missing influxdb section ends with exit status 2 and a clear message (no secret in it).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from metrics_lab import ENDPOINTS_FILE, REPO_ROOT, ensure_metrics_lab, influx_client, lab_unavailable, run_sampler

pytestmark = [
    pytest.mark.docker,
    pytest.mark.lab,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]

REPORT = REPO_ROOT / "scripts" / "report.py"
IMAGES = ("lag.png", "retained_wal.png", "locks.png", "tps.png")
# Sections whose fields exist on newer servers only: an image when the period has such points, else "No data".
VERSIONED = {
    "Failover slots": ("failover_slots.png", "replication_slot", "synced"),  # PostgreSQL 17+ slots
    "Conflicts per type": ("conflicts.png", "subscription", "confl_insert_exists"),  # 18+ subscribers
}
MINUTES = 5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fresh_points(client) -> bool:
    """True when the sampler wrote every measurement the report plots in the period."""
    for measurement, field in (
        ("replication", "replay_lag_bytes"),
        ("heartbeat_lag", "lag_seconds"),
        ("replication_slot", "retained_wal_bytes"),
        ("locks", "lock_count"),
        ("database", "xact_commit"),
    ):
        rows = client.query(f'SELECT count("{field}") FROM "{measurement}" WHERE time > now() - {MINUTES - 1}m')  # noqa: S608
        if not rows or rows[0]["count"] < 5:
            return False
    return True


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPORT), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def lab() -> dict:
    endpoints = ensure_metrics_lab()
    if not fresh_points(influx_client()):
        run_sampler(12)
    return endpoints


# Slots sampled within the report's window; MINUTES is this file's constant.
LATEST_SLOTS_QUERY = (
    f'SELECT last(retained_wal_bytes) FROM "replication_slot" WHERE time > now() - {MINUTES}m GROUP BY slot_name'  # noqa: S608
)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_from_the_lab(lab: dict, tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_report("--endpoints", str(ENDPOINTS_FILE), "--minutes", str(MINUTES), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.md").read_text()
    for image in IMAGES:
        path = out / image
        assert path.is_file(), f"{image} missing; page:\n{page}"
        width, height = png_size(path)
        assert width >= 800
        assert height >= 300
        assert path.stat().st_size > 10_000, f"{image} is suspiciously small (an empty plot?)"
        assert f"]({image})" in page, f"report.md does not reference {image}"
    for heading, (image, measurement, field) in VERSIONED.items():
        section = page.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
        counted = influx_client().query(
            f'SELECT count("{field}") FROM "{measurement}" WHERE time > now() - {MINUTES}m'  # noqa: S608
        )
        if counted:  # the lab has such servers: plotted like the others
            assert f"]({image})" in section, section
            assert png_size(out / image)[0] >= 800
        else:  # the default lab (a 15 publisher, 15/17 subscribers): said, not plotted
            assert "_No data" in section, section
            assert not (out / image).exists()
        page = page.replace(section, "")
    assert "_No data" not in page
    # private like the rest of .lab: directory 0700, files 0600
    assert out.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {p.name: 0o600 for p in out.iterdir()}
    # The slots sampled within the report's window (not every slot InfluxDB ever saw: a subscriber
    # retired an hour ago has no place in the latest values).
    slots = {row["slot_name"] for row in influx_client().query(LATEST_SLOTS_QUERY)}
    assert slots
    for slot in slots:
        assert f"| {slot} |" in page, f"slot {slot} missing from the latest values"
    print(f"\nreport: {sorted(p.name for p in out.iterdir())}")


def test_report_for_a_missing_database_fails_clearly(lab: dict, tmp_path: Path) -> None:
    endpoints = json.loads(ENDPOINTS_FILE.read_text())
    section = dict(endpoints["influxdb"])
    section["database"] = "pglab_report_test_missing"
    missing = tmp_path / "endpoints.json"
    missing.write_text(json.dumps({"influxdb": section}))
    proc = run_report("--endpoints", str(missing), "--minutes", "1", "--out", str(tmp_path / "report"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pglab_report_test_missing" in proc.stderr
    password = open(section["password_file"]).read().strip()
    assert password not in proc.stderr + proc.stdout


def test_report_without_influxdb_section(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"postgresql": {}}))
    proc = run_report("--endpoints", str(endpoints), "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "no influxdb section" in proc.stderr
