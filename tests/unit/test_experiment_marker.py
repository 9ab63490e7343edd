"""The experiment markers (plugins/modules/experiment_marker.py) match the dashboard's annotation query.

The replication dashboard selects ``event``, ``experiment``, ``variant`` and ``repetition`` from the
measurement ``experiment``; a marker must carry exactly those as the dashboard reads them (tags for the
names, the field ``event``), and escape names the way InfluxDB's line protocol needs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ansible_collections.inventium.logical_replication.plugins.modules.experiment_marker import marker_line

DASHBOARD = Path(__file__).resolve().parents[2] / "roles" / "grafana" / "files" / "dashboards" / "replication.json"


def test_marker_line_has_the_tags_and_fields_of_the_contract():
    line = marker_line("streaming", "parallel", 2, "start", run=5, timestamp_ns=1733235600000000000)
    assert line == (
        "experiment,experiment=streaming,node=all,repetition=2,variant=parallel "
        'event="start",run=5i 1733235600000000000'
    )


def test_marker_line_escapes_names():
    line = marker_line("my exp", "a,b=c", 1, "stop")
    assert line.startswith("experiment,experiment=my\\ exp,node=all,repetition=1,variant=a\\,b\\=c ")
    assert 'event="stop"' in line


def test_dashboard_annotation_reads_what_the_marker_writes():
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [a["target"]["query"] for a in dashboard["annotations"]["list"] if "experiment" in a["target"]["query"]]
    assert queries
    selected = re.findall(r'"(\w+)"', queries[0].split(" FROM ")[0])
    line = marker_line("e", "v", 1, "start")
    tags_part, fields_part = line.split(" ", maxsplit=2)[:2]
    written = {pair.split("=")[0] for pair in tags_part.split(",")[1:]} | {
        pair.split("=")[0] for pair in fields_part.split(",")
    }
    assert set(selected) <= written
    assert 'FROM "experiment"' in queries[0]
