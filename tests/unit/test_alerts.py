"""The alert rules generated from ``_thresholds.py`` (no Grafana, no InfluxDB needed).

- Every rule's number is the threshold of ``_thresholds.py`` it names (or the override given), and
  the other places that use a threshold (``_checks``, ``replication_info``'s option defaults) have
  the same number.
- The provisioning document is what Grafana's file provisioning reads (``apiVersion: 1``, one
  group, unique uids within Grafana's 40 characters, query ``A`` on the InfluxDB data source, reduce
  ``B``, threshold ``C`` as the condition), and the queries use only the measurements, fields and
  tags the sampler documents.
- The ``grafana`` role's render step (real ansible-playbook, its real template and the filter)
  writes exactly that document, and with ``grafana_alerts_enabled: false`` a deletion of the same
  rule uids.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from test_dashboards import DATASOURCE_UID, documented, render

from ansible_collections.inventium.logical_replication.plugins.filter.alerts import alert_rule_groups
from ansible_collections.inventium.logical_replication.plugins.module_utils import _alert_rules, _checks, _thresholds
from ansible_collections.inventium.logical_replication.plugins.module_utils._server_log import DEFAULT_ERROR_WINDOW

FOLDER = "Logical replication"
# Rules that compare with a fixed 1 (the 0/1 flags: "never 1 during the window") read their
# threshold as the window; these are the names whose number is a window in minutes.
WINDOW_THRESHOLDS = {"slot_inactive_minutes", "subscription_disabled_minutes", "subscription_not_running_minutes"}


def rules(overrides=None):
    return _alert_rules.alert_rules(overrides)


def test_every_rule_uses_its_threshold() -> None:
    for rule in rules():
        name = rule["threshold"]
        assert name in _thresholds.THRESHOLDS, rule["uid"]
        if name in WINDOW_THRESHOLDS:
            assert rule["window_seconds"] == _thresholds.THRESHOLDS[name] * 60, rule["uid"]
            assert rule["evaluator"] == "lt", rule["uid"]
            assert rule["value"] == 1, rule["uid"]
        else:
            assert rule["value"] == _thresholds.THRESHOLDS[name], rule["uid"]


def test_the_named_constants_are_the_table() -> None:
    assert _thresholds.THRESHOLDS["lag_seconds_warning"] == _thresholds.LAG_SECONDS_WARNING
    assert _thresholds.THRESHOLDS["lag_seconds_critical"] == _thresholds.LAG_SECONDS_CRITICAL
    assert _thresholds.THRESHOLDS["retained_wal_bytes"] == _thresholds.RETAINED_WAL_BYTES
    assert _thresholds.LAG_SECONDS_WARNING < _thresholds.LAG_SECONDS_CRITICAL
    assert _thresholds.RETAINED_WAL_FRACTION_WARNING < _thresholds.RETAINED_WAL_FRACTION_CRITICAL <= 1


def test_the_errors_rule_counts_in_its_window() -> None:
    (rule,) = [r for r in rules() if r["threshold"] == "subscription_errors_max"]
    assert rule["window_seconds"] == _thresholds.SUBSCRIPTION_ERRORS_WINDOW_MINUTES * 60
    assert rule["evaluator"] == "gt"


def test_every_threshold_has_a_rule() -> None:
    used = {rule["threshold"] for rule in rules()} | {"subscription_errors_window_minutes"}
    assert set(_thresholds.THRESHOLDS) - used == set()


def test_the_checks_and_replication_info_use_the_same_numbers() -> None:
    from ansible_collections.inventium.logical_replication.plugins.modules import replication_info

    assert _checks.DEFAULT_RETAINED_WAL_THRESHOLD == _thresholds.RETAINED_WAL_BYTES
    spec = replication_info.argument_spec()
    assert _checks.parse_bytes(spec["retained_wal_threshold"]["default"]) == _thresholds.RETAINED_WAL_BYTES
    assert spec["error_window"]["default"] == _thresholds.SUBSCRIPTION_ERRORS_WINDOW_MINUTES
    assert DEFAULT_ERROR_WINDOW == _thresholds.SUBSCRIPTION_ERRORS_WINDOW_MINUTES


def test_overrides_change_only_the_named_threshold() -> None:
    default = {r["uid"]: r for r in rules()}
    changed = {r["uid"]: r for r in rules({"lag_seconds_warning": 2, "slot_inactive_minutes": 0.25})}
    assert changed["inventium-lag-warning"]["value"] == 2
    assert changed["inventium-slot-inactive"]["window_seconds"] == 15
    for uid, rule in default.items():
        if uid not in ("inventium-lag-warning", "inventium-slot-inactive"):
            assert changed[uid] == rule


@pytest.mark.parametrize("overrides", [{"lag_seconds": 1}, {"lag_seconds_warning": -1}, {"retained_wal_bytes": "1GB"}])
def test_bad_overrides_are_refused(overrides: dict) -> None:
    with pytest.raises(ValueError, match="threshold"):
        rules(overrides)


def test_provisioning_document() -> None:
    document = alert_rule_groups(DATASOURCE_UID, FOLDER)
    assert document["apiVersion"] == 1
    (group,) = document["groups"]
    assert group["folder"] == FOLDER
    assert group["orgId"] == 1
    assert re.fullmatch(r"\d+[smh]", group["interval"])
    uids = [rule["uid"] for rule in group["rules"]]
    assert len(set(uids)) == len(uids)
    assert len({rule["title"] for rule in group["rules"]}) == len(uids)
    for rule in group["rules"]:
        assert len(rule["uid"]) <= 40
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", rule["uid"])
        assert rule["condition"] == "C"
        query, reduce, threshold = rule["data"]
        assert query["datasourceUid"] == DATASOURCE_UID
        assert query["model"]["rawQuery"] is True
        assert query["relativeTimeRange"]["from"] > 0
        assert "$timeFilter" in query["model"]["query"]
        assert reduce["datasourceUid"] == "__expr__"
        assert reduce["model"]["type"] == "reduce"
        assert reduce["model"]["expression"] == "A"
        assert threshold["model"]["type"] == "threshold"
        assert threshold["model"]["expression"] == "B"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_queries_use_only_documented_names() -> None:
    names = documented()
    for rule in rules():
        measurements = re.findall(r'FROM "(\w+)"', rule["query"])
        assert measurements, rule["uid"]
        for measurement in measurements:
            fields, tags = names[measurement]
            aliases = set(re.findall(r'AS "(\w+)"', rule["query"]))
            quoted = set(re.findall(r'"(\w+)"', rule["query"])) - {measurement} - aliases
            assert quoted <= fields | tags, f"{rule['uid']}: {quoted - fields - tags} not documented"


def test_the_filter_refuses_bad_input() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="data source uid"):
        alert_rule_groups("", FOLDER)
    with pytest.raises(AnsibleFilterError, match="unknown threshold"):
        alert_rule_groups(DATASOURCE_UID, FOLDER, overrides={"nope": 1})


INFLUXDB_1 = {"url": "http://influxdb:8086", "api": 1, "database": "pglab", "username": "pglab", "password_file": ""}


def test_role_renders_the_generated_rules(tmp_path: Path) -> None:
    overrides = {"lag_seconds_warning": 7}
    out = render(tmp_path, INFLUXDB_1, extra_vars={"grafana_alerts_thresholds": overrides})
    rendered = yaml.safe_load((out / "provisioning/alerting/inventium.yml").read_text())
    assert rendered == alert_rule_groups(DATASOURCE_UID, FOLDER, overrides=overrides)
    assert rendered != alert_rule_groups(DATASOURCE_UID, FOLDER)


def test_role_deletes_the_rules_when_disabled(tmp_path: Path) -> None:
    out = render(tmp_path, INFLUXDB_1, extra_vars={"grafana_alerts_enabled": False})
    rendered = yaml.safe_load((out / "provisioning/alerting/inventium.yml").read_text())
    assert "groups" not in rendered
    assert rendered["apiVersion"] == 1
    assert rendered["deleteRules"] == [{"orgId": 1, "uid": r["uid"]} for r in rules()]
