"""`make report`'s failover-slot and conflict sections (scripts/report.py) from synthetic InfluxDB answers.

The client below answers the report's queries the way InfluxDB 1.x answers them (rows with ``time``, the
GROUP BY tags and the selected columns) for a PostgreSQL 17+ primary/standby pair with an 18 subscriber,
and nothing for servers without those fields (the report then says "No data", and writes no image).
The queries themselves run against a real InfluxDB in tests/integration/test_sampler.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMES = ("2026-12-04T10:00:00Z", "2026-12-04T10:00:04Z", "2026-12-04T10:00:08Z")


def _load_report():
    spec = importlib.util.spec_from_file_location("lab_report", REPO_ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load_report()


def grouped(tags, values):
    return [{"time": t, **tags, "value": v} for t, v in zip(TIMES, values, strict=True)]


class Pg17And18:
    """A 17+ primary whose failover slot is in use, its standby's synced copy, an 18 subscriber with conflicts."""

    def __init__(self):
        self.queries = []

    def query(self, influxql):
        self.queries.append(influxql)
        primary = {"node": "primary18", "slot_name": "sub18"}
        standby = {"node": "standby18", "slot_name": "sub18"}
        if 'max("synced")' in influxql:
            return grouped(primary, (0, 0, 0)) + grouped(standby, (1, 1, 1))
        if 'max("inactive_seconds")' in influxql:
            return grouped(standby, (2.0, 6.0, 0.5))
        if 'last("failover")' in influxql:
            epoch = {"time": "1970-01-01T00:00:00Z"}  # InfluxDB's time of a selector over several fields
            return [
                {**epoch, **primary, "failover": 1, "synced": 0, "active": 1},
                {**epoch, **standby, "failover": 1, "synced": 1, "active": 0},
                {
                    **epoch,
                    **standby,
                    "slot_name": "old",
                    "failover": 1,
                    "synced": 1,
                    "active": 0,
                    "inactive_seconds": 12.4,
                },
            ]
        if 'max("confl_insert_exists")' in influxql:
            kinds = report.CONFLICT_TYPES
            return [
                {"time": t, "node": "sub18", "subscription": "sub18", **{k: n * (k == "insert_exists") for k in kinds}}
                for n, t in enumerate(TIMES)
            ]
        return []

    def __repr__(self):
        return "Pg17And18()"


class Pg15:
    """Servers without the 17+ slot columns and the 18 conflict counters: no such fields, so no rows."""

    def query(self, _influxql):
        return []

    def __repr__(self):
        return "Pg15()"


def section(page, heading):
    return page.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def is_png(path):
    return path.read_bytes()[:8] == PNG_SIGNATURE


def test_failover_slots_and_conflicts_are_plotted_and_listed(tmp_path):
    client = Pg17And18()
    page = report.Report(client, 1.0, tmp_path).write().read_text()
    for image in ("failover_slots.png", "conflicts.png"):
        assert is_png(tmp_path / image)
        assert f"]({image})" in page
    assert "_No data" not in section(page, "Failover slots")
    assert "_No data" not in section(page, "Conflicts per type")
    assert "| primary18 | sub18 | 1 | 0 | 1 |  |  |" in page  # in use: no inactive seconds
    assert "| standby18 | sub18 | 1 | 1 | 0 |  |  |" in page
    assert "| standby18 | old | 1 | 1 | 0 | 12 |  |" in page
    conflicts = next(q for q in client.queries if "confl_insert_exists" in q)
    for kind in report.CONFLICT_TYPES:
        assert f'max("confl_{kind}") AS "{kind}"' in conflicts


def test_one_conflict_panel_per_type():
    rows = Pg17And18().query('max("confl_insert_exists")')
    lines = {kind: report.series(rows, ("node", "subscription"), kind) for kind in report.CONFLICT_TYPES}
    assert lines["insert_exists"]["sub18/sub18"][1] == [0.0, 1.0, 2.0]
    assert all(lines[kind]["sub18/sub18"][1] == [0.0, 0.0, 0.0] for kind in report.CONFLICT_TYPES[1:])


def test_older_servers_give_no_data_not_a_crash(tmp_path):
    (tmp_path / "failover_slots.png").write_bytes(b"stale")  # from an earlier report of a 17+ lab
    page = report.Report(Pg15(), 1.0, tmp_path).write().read_text()
    assert "_No data: no slot of a PostgreSQL 17+ node in the period" in section(page, "Failover slots")
    assert "_No data: no conflict counters in the period" in section(page, "Conflicts per type")
    assert "_No failover sync state: no slot of a PostgreSQL 17+ node in the period._" in page
    assert not (tmp_path / "failover_slots.png").exists()
    assert not (tmp_path / "conflicts.png").exists()
