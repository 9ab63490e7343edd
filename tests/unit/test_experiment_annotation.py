"""The Replication dashboard's annotation of experiment runs (roles/grafana/files/dashboards/replication.json).

Like tests/unit/test_dashboards.py, no Grafana server: the annotation is a valid InfluxQL annotation
query on the provisioned data source, and it selects exactly what the experiment markers carry - the
line written by plugins/modules/experiment_marker.py is parsed here, so a renamed tag or field breaks
this test. The runner's lab test executes the query against the real InfluxDB.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ansible_collections.inventium.logical_replication.plugins.modules.experiment_marker import (
    MEASUREMENT,
    marker_line,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "roles" / "grafana" / "files" / "dashboards" / "replication.json"
DATASOURCE = {"type": "influxdb", "uid": "inventium-influxdb"}


def annotation():
    found = [a for a in json.loads(DASHBOARD.read_text())["annotations"]["list"] if a.get("name") == "Experiments"]
    assert len(found) == 1, "the Replication dashboard has one annotation named Experiments"
    return found[0]


def parse_line(text):
    """Line protocol -> (measurement, tags, field names). Enough for the marker's plain keys."""
    head, fields, _timestamp = text.rsplit(" ", 2)
    measurement, *tags = head.split(",")
    return measurement, dict(t.split("=", 1) for t in tags), {f.split("=", 1)[0] for f in fields.split(",")}


def test_annotation_is_an_influxql_query_on_the_provisioned_datasource():
    anno = annotation()
    assert anno["datasource"] == DATASOURCE
    assert anno["enable"] is True
    assert anno["hide"] is False
    target = anno["target"]
    assert target["rawQuery"] is True
    assert target["fromAnnotations"] is True
    query = target["query"]
    assert query.startswith("SELECT ")
    assert query.endswith("WHERE $timeFilter"), "annotations must be limited to the dashboard's time range"
    assert "GROUP BY" not in query, "each marker is its own annotation"


def test_annotation_selects_what_the_markers_carry():
    measurement, tags, fields = parse_line(marker_line("streaming", "off", 2, "start", run=3, timestamp_ns=1))
    assert measurement == MEASUREMENT == "experiment"
    assert {"experiment", "variant", "repetition"} <= set(tags)
    assert "event" in fields
    target = annotation()["target"]
    assert re.findall(r'FROM "(\w+)"', target["query"]) == [MEASUREMENT]
    selected = re.findall(r'"(\w+)"', target["query"].split(" FROM ")[0])
    assert set(selected) <= set(tags) | fields
    assert any(column in fields for column in selected), "InfluxQL needs at least one field in SELECT"
    assert target["textColumn"] == "event"
    assert target["textColumn"] in selected
    assert target["tagsColumn"].split(",") == ["experiment", "variant", "repetition"]
    assert set(target["tagsColumn"].split(",")) <= set(selected)


def test_dashboard_json_keeps_its_formatting():
    text = DASHBOARD.read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
