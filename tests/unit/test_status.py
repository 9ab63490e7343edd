"""The status rule (0 healthy, 1 warnings, 2 critical), the node_unreachable finding and the filter (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.inventium.logical_replication.plugins.filter import status as status_filter
from ansible_collections.inventium.logical_replication.plugins.module_utils import health
from ansible_collections.inventium.logical_replication.plugins.module_utils._checks import (
    SEVERITIES,
    STATUS_EXIT_CODES,
    STATUS_NAMES,
    node_unreachable,
    status_exit_code,
)

FILTER_DOC = Path(status_filter.__file__).with_name("status_exit_code.yml")


def found(*severities):
    return [{"severity": s, "code": f"code_{i}", "message": "m", "hint": "h"} for i, s in enumerate(severities)]


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        (None, 0),
        ([], 0),
        (found("info"), 0),
        (found("info", "info"), 0),
        (found("warning"), 1),
        (found("info", "warning", "info"), 1),
        (found("error"), 2),
        (found("warning", "error", "info"), 2),
        (found("info", "warning", "error"), 2),
        # Unknown or missing severities are never ignored.
        (found("critical"), 2),
        (found("fatal", "info"), 2),
        ([{"code": "no_severity"}], 2),
        ([{"severity": None}], 2),
        # A generator of findings works as well as a list.
        ((f for f in found("warning")), 1),
    ],
)
def test_status_exit_code(checks, expected):
    assert status_exit_code(checks) == expected


def test_every_severity_is_mapped_explicitly():
    assert set(STATUS_EXIT_CODES) == set(SEVERITIES)
    assert STATUS_EXIT_CODES == {"error": 2, "warning": 1, "info": 0}
    assert STATUS_NAMES == ("healthy", "warnings", "critical")


@pytest.mark.parametrize("bad", ["error", b"error", {"severity": "error"}, 2, ["error"], [None], [["x"]]])
def test_status_exit_code_rejects_what_is_not_a_list_of_findings(bad):
    with pytest.raises(TypeError, match="expected a"):
        status_exit_code(bad)


def test_node_unreachable():
    error = (
        "Unable to connect to PostgreSQL at host 127.0.0.1 port 5434 as user postgres database subscriber: "
        "connection failed: Connection refused"
    )
    finding = node_unreachable(error)
    assert set(finding) == {"severity", "code", "message", "hint"}
    assert finding["severity"] == "error"
    assert finding["code"] == "node_unreachable"
    assert finding["message"].endswith(": " + error)
    assert "replication state is unknown" in finding["message"]
    assert "pg_hba.conf" in finding["hint"]
    assert "retains WAL" in finding["hint"]
    assert status_exit_code([finding]) == 2
    # Re-exported where health.<name> is used.
    assert health.node_unreachable is node_unreachable
    assert health.status_exit_code is status_exit_code


def test_filter_plugin():
    filters = status_filter.FilterModule().filters()
    assert set(filters) == {"status_exit_code"}
    code = filters["status_exit_code"]
    assert code(found("info")) == 0
    assert code(found("warning", "info")) == 1
    assert code([node_unreachable("x"), *found("warning")]) == 2
    assert code(None) == 0
    with pytest.raises(AnsibleFilterError, match="status_exit_code: expected a list of findings, got str"):
        code("error")
    with pytest.raises(AnsibleFilterError, match="expected a finding"):
        code([1])


def test_filter_documentation():
    """The filter's docs (a YAML file beside the plugin, as ansible-doc reads it) match what it does."""
    doc = yaml.safe_load(FILTER_DOC.read_text())
    assert set(doc) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = doc["DOCUMENTATION"]
    assert documentation["name"] == "status_exit_code"
    assert documentation["positional"] == "_input"
    assert documentation["options"]["_input"]["type"] == "list"
    assert doc["RETURN"]["_value"]["type"] == "int"
    examples = yaml.safe_load(doc["EXAMPLES"])
    assert any("inventium.logical_replication.status_exit_code" in str(task) for task in examples)
    text = " ".join(documentation["description"])
    for severity, code in STATUS_EXIT_CODES.items():
        assert f"V({code})" in text
        assert f"V({severity})" in text
