"""Version facts and catalog code maps are kept once (``_versions.py``); every reader agrees on them.

Before the replication core, the subscription module and ``health.py`` each had a streaming code map
and a two-phase state map, the publication module and ``health.py`` each had ``PUBLISH_OPERATIONS``
and the generated-columns gate, and four files had ``MIN_SERVER_MAJOR``. These tests feed the same
catalog rows to the module's reader and to ``replication_info``'s and check that they say the same.
"""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils import (
    _publications,
    _subscription_plan,
    _subscriptions,
    _versions,
)

SUBSCRIPTION_ROW = {
    "oid": 16402,
    "name": "s",
    "owner": "postgres",
    "enabled": True,
    "publications": ["p"],
    "conninfo": None,
    "slot_name": "s",
    "synchronous_commit": "off",
    "binary": False,
    "disable_on_error": False,
    "skip_lsn": "0/0",
    "workers": [],
    "tables": [],
}


@pytest.mark.parametrize("code", ["f", "t", "p", "false", "true", "x"])
def test_streaming_codes_read_alike(code):
    row = dict(SUBSCRIPTION_ROW, streaming=code, two_phase_state="d")
    module = _subscription_plan.state_from_row(row)["streaming"]
    info = _subscriptions.subscription_state(row, 16)["streaming"]
    assert module == info == _versions.STREAMING_FROM_CATALOG.get(code, code)


@pytest.mark.parametrize(("code", "name"), [("d", "disabled"), ("p", "pending"), ("e", "enabled")])
def test_two_phase_states_read_alike(code, name):
    row = dict(SUBSCRIPTION_ROW, streaming="f", two_phase_state=code)
    module = _subscription_plan.state_from_row(row)
    assert module["two_phase_state"] == _subscriptions.subscription_state(row, 15)["two_phase"] == name
    assert module["two_phase"] is (code != "d")


def _publication_row(**flags):
    row = {
        "oid": 1,
        "pubname": "p",
        "owner": "postgres",
        "puballtables": False,
        "pubviaroot": False,
        "pubgencols": "s",
        "comment": None,
        "tables": [],
        "schemas": [],
        "published_table_count": 0,
    }
    row.update({"pub" + op: flags.get(op, False) for op in _versions.PUBLISH_OPERATIONS})
    return row


@pytest.mark.parametrize("major", [17, 18])
@pytest.mark.parametrize("published", [(), ("insert",), ("update", "truncate"), _versions.PUBLISH_OPERATIONS])
def test_publications_read_alike(published, major):
    row = _publication_row(**{op: True for op in published})
    info = _publications.publication_state(row, major)

    def run(query, params=None):
        return [row] if "pg_publication p" in query.as_string(None) else []

    module = _publications.read_publication(run, "p", major)
    assert info["publish"] == module["publish"] == list(published)
    shared = set(info) & set(module)
    assert {key: info[key] for key in shared} == {key: module[key] for key in shared}
    # The generated-columns gate: both readers report publish_generated_columns from PostgreSQL 18 on.
    assert ("publish_generated_columns" in info) is ("publish_generated_columns" in module) is (major >= 18)


@pytest.mark.parametrize("major", [12, 13, 17])
def test_one_minimum_major(major):
    message = _versions.require_supported(major, "publication module")
    if major < 13:
        assert message == f"the publication module supports PostgreSQL 13 and later (server is {major})"
    else:
        assert message is None


def test_subscription_readers_share_their_columns():
    for major in (13, 14, 15, 16, 17, 18):
        one = _subscriptions.subscription_query(major, True).as_string(None)
        every = _subscriptions.subscriptions_query(major, True).as_string(None)
        columns = ", ".join(_subscriptions.subscription_columns(major, True))
        assert columns in one
        assert columns in every


def test_server_settings_names_the_major_of_a_newer_parameter():
    from ansible_collections.inventium.logical_replication.plugins.module_utils import _settings

    known = {"work_mem": object()}
    names = ["sync_replication_slots", "Idle_Replication_Slot_Timeout", "work_mem", "wal_levl"]
    errors, gated = _settings.version_errors(names, known, 16)
    assert errors == [
        "parameter sync_replication_slots requires PostgreSQL >= 17 (server is 16)",
        "parameter idle_replication_slot_timeout requires PostgreSQL >= 18 (server is 16)",
    ]
    assert gated == {"sync_replication_slots", "Idle_Replication_Slot_Timeout"}
    # a server that has it (even a newer one missing it from pg_settings is left to "unknown parameter")
    assert _settings.version_errors(["sync_replication_slots"], {"sync_replication_slots": object()}, 17) == ([], set())
    assert _settings.version_errors(["idle_replication_slot_timeout"], {}, 18) == ([], set())
