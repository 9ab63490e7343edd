"""scripts/report.py keeps its output private like the rest of .lab: directory 0700, files 0600."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_report():
    spec = importlib.util.spec_from_file_location("lab_report", REPO_ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NoPoints:
    """An InfluxDB client whose every query returns no rows (the report then says "No data")."""

    def query(self, _influxql):
        return []

    def __repr__(self):
        return "NoPoints()"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_report_directory_and_page_are_private(tmp_path):
    out = tmp_path / "report"
    page = _load_report().Report(NoPoints(), 1.0, out).write()
    assert page == out / "report.md"
    assert "_No data" in page.read_text()
    assert mode(out) == 0o700
    assert mode(page) == 0o600


def test_an_existing_world_readable_report_is_made_private(tmp_path):
    out = tmp_path / "report"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    old = out / "report.md"
    old.write_text("old")
    old.chmod(0o644)
    _load_report().Report(NoPoints(), 1.0, out).write()
    assert mode(out) == 0o700
    assert mode(old) == 0o600
    assert old.read_text() != "old"
