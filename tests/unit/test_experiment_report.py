"""scripts/experiment_report.py on a raw.json shaped like the runner's: files, CSV, summary, PNGs.

The raw.json is synthetic (the lab run is the runner's test); the script runs as a process with the
venv's Python, exactly as ``make experiment`` calls it.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "experiment_report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_796_300_000.0


def iso(ts):
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def make_raw(with_series=True):
    rng = random.Random(7)
    nodes = ["subscriber1", "subscriber2"]
    variants = [
        {"name": "off", "nodes": nodes, "subscription": {"streaming": "off"}},
        {"name": "on", "nodes": nodes, "subscription": {"streaming": "on"}},
        {"name": "parallel", "nodes": ["subscriber2"], "subscription": {"streaming": "parallel"}},
    ]
    base = {"off": 3.0, "on": 1.5, "parallel": 0.6}
    runs = []
    t = T0
    for rep in (1, 2, 3):
        for v in variants:
            name = v["name"]
            start = t
            series = {"heartbeat_lag": {}, "byte_lag": {}}
            for node in v["nodes"]:
                series["heartbeat_lag"][node] = [
                    [start + i * 0.5, max(0.0, base[name] - abs(i - 10) * 0.2)] for i in range(30)
                ]
                series["byte_lag"][node] = [[start + i * 0.5, max(0, 5e6 - abs(i - 10) * 4e5)] for i in range(30)]
            t += 20
            runs.append(
                {
                    "index": len(runs) + 1,
                    "variant": name,
                    "repetition": rep,
                    "measures": {
                        "commit_visible_seconds": {
                            n: (base[name] * rng.uniform(0.9, 1.1) if n in v["nodes"] else None) for n in nodes
                        },
                        "stream_bytes": {n: (0 if name == "off" else 52_428_800) for n in v["nodes"]},
                        "publisher_rows_per_second": rng.uniform(40_000, 60_000),
                    },
                    "series": series if with_series else {},
                    "events": [],
                    "notes": [],
                    "started_at": iso(start),
                    "finished_at": iso(start + 15),
                }
            )
            t += 5
    return {
        "experiment": "streaming",
        "question": "Does streaming large transactions shorten the time until they are visible on the subscriber?",
        "file": "experiments/streaming.yml",
        "started_at": iso(T0),
        "finished_at": iso(t),
        "machine": {"cores": 2, "memory_bytes": 24 * 1024**3, "kernel": "6.1.0-test"},
        "versions": {"publisher": "15.10", "subscriber1": "15.10", "subscriber2": "17.6"},
        "plan": {
            "name": "streaming",
            "file": "experiments/streaming.yml",
            "repeat": 3,
            "nodes": nodes,
            "measures": ["commit_visible_seconds", "stream_bytes", "publisher_rows_per_second"],
            "variants": variants,
            "notes": ["variant parallel does not run on subscriber1: it requires subscriber_major 16"],
        },
        "runs": runs,
        "notes": [],
    }


def run_script(run_dir):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--run-dir", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "raw.json").write_text(json.dumps(make_raw()))
    proc = run_script(run_dir)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_files_are_written(report):
    names = sorted(p.name for p in report.iterdir())
    assert names == sorted(
        [
            "raw.json",
            "results.csv",
            "summary.md",
            "lag.png",
            "commit_visible_seconds.png",
            "stream_bytes.png",
            "publisher_rows_per_second.png",
        ]
    )
    for png in report.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert png.stat().st_size > 10_000, f"{png.name} looks empty"
    # private like the rest of .lab
    assert report.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in report.iterdir()} == {name: 0o600 for name in names}


def test_csv_rows_and_numeric_cells(report):
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert len(rows) == 9
    assert [(r["variant"], r["repetition"]) for r in rows[:3]] == [("off", "1"), ("on", "1"), ("parallel", "1")]
    for row in rows:
        assert float(row["commit_visible_seconds@subscriber2"]) > 0
        assert float(row["publisher_rows_per_second"]) > 0
        if row["variant"] == "parallel":
            assert row["commit_visible_seconds@subscriber1"] == ""
        else:
            assert float(row["commit_visible_seconds@subscriber1"]) > 0


def test_summary_answers_from_the_numbers_and_links_the_plots(report):
    text = (report / "summary.md").read_text()
    assert text.startswith("# Experiment `streaming`")
    assert "**Question:** Does streaming large transactions" in text
    assert "- `commit_visible_seconds@subscriber2` (s, lower is better): best `parallel`" in text
    assert "- `commit_visible_seconds@subscriber1` (s, lower is better): best `on`" in text
    assert "- `stream_bytes@subscriber2` (bytes, not ranked): `off` 0 B, `on` 50 MiB, `parallel` 50 MiB." in text
    assert "- variant parallel does not run on subscriber1" in text
    for name in ("commit_visible_seconds", "stream_bytes", "publisher_rows_per_second", "lag"):
        assert f"![{name}]({name}.png)" in text
    assert "PostgreSQL: publisher 15.10, subscriber1 15.10, subscriber2 17.6" in text


def test_without_series_there_is_no_lag_plot(tmp_path):
    (tmp_path / "raw.json").write_text(json.dumps(make_raw(with_series=False)))
    assert run_script(tmp_path).returncode == 0
    assert not (tmp_path / "lag.png").exists()
    assert "![lag]" not in (tmp_path / "summary.md").read_text()


def test_the_directory_may_be_positional(tmp_path):
    (tmp_path / "raw.json").write_text(json.dumps(make_raw(with_series=False)))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results.csv").exists()
    both = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert both.returncode == 2
    assert "once" in both.stderr


def test_missing_raw_json_exits_2(tmp_path):
    proc = run_script(tmp_path)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr


REAL_RAW = Path(__file__).resolve().parent / "data" / "experiment_smoke_raw.json"


def test_a_real_lab_run(tmp_path):
    """raw.json of a lab smoke run (tests/data/experiments/smoke.yml, 2 variants x 1 repetition, PG 15/15/17)."""
    from test_experiment_results import csv_medians, parse_answer

    raw = json.loads(REAL_RAW.read_text())
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    proc = run_script(tmp_path)
    assert proc.returncode == 0, proc.stderr
    csv_text = (tmp_path / "results.csv").read_text()
    rows = list(csv.DictReader(csv_text.splitlines()))
    assert [(r["variant"], r["repetition"]) for r in rows] == [
        (r["variant"], str(r["repetition"])) for r in raw["runs"]
    ]
    for row in rows:
        for column, value in row.items():
            if column not in ("variant", "repetition"):
                float(value)  # every cell is a number (ValueError otherwise)
    medians = csv_medians(csv_text)
    info = raw["plan"]["measure_info"]
    answer = parse_answer((tmp_path / "summary.md").read_text())
    assert set(answer) == set(medians)
    for column, (_words, best, _others) in answer.items():
        better = info[column.split("@")[0]]["better"]
        if better == "none":
            assert best == []
            continue
        pick = min if better == "lower" else max
        top = pick(medians[column].values())
        assert best == [v for v, m in medians[column].items() if m == top]
    for measure in raw["plan"]["measures"]:
        assert (tmp_path / f"{measure}.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "lag.png").read_bytes()[:8] == PNG_MAGIC
