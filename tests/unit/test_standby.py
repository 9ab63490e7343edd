"""The physical standby helpers (plugins/module_utils/_standby.py): primary_conninfo, passfile line, standby slots."""

from __future__ import annotations

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._standby import (
    missing_keys,
    pgpass_line,
    primary_conninfo,
    standby_slots,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import parse_conninfo

PRIMARY = {"host": "primary18", "user": "replicator", "password": "s3cret", "dbname": "publisher", "slot": "standby18"}


def test_conninfo_has_dbname_and_passfile_but_no_password() -> None:
    text = primary_conninfo(PRIMARY, "/etc/postgresql/replication/pgpass", "standby18")
    assert parse_conninfo(text) == {
        "host": "primary18",
        "port": "5432",
        "user": "replicator",
        "dbname": "publisher",
        "passfile": "/etc/postgresql/replication/pgpass",
        "application_name": "standby18",
    }
    assert "s3cret" not in text


def test_conninfo_quotes_what_libpq_would_misread() -> None:
    primary = dict(PRIMARY, dbname="my db", user="o'brien", port=6543, application_name="dr site")
    parsed = parse_conninfo(primary_conninfo(primary, "/run/pg pass", "ignored"))
    assert parsed["dbname"] == "my db"
    assert parsed["user"] == "o'brien"
    assert parsed["port"] == "6543"
    assert parsed["passfile"] == "/run/pg pass"
    assert parsed["application_name"] == "dr site"


@pytest.mark.parametrize("key", ["host", "user", "dbname"])
def test_conninfo_refuses_a_primary_without(key: str) -> None:
    with pytest.raises(ValueError, match=key):
        primary_conninfo(dict(PRIMARY, **{key: ""}), "/p", "s")


def test_missing_keys_in_a_fixed_order() -> None:
    assert missing_keys(PRIMARY) == []
    assert missing_keys({"host": "h", "password": None}) == ["user", "password", "dbname", "slot"]
    assert missing_keys(None) == ["host", "user", "password", "dbname", "slot"]


def test_pgpass_line_escapes_colons_and_backslashes() -> None:
    assert pgpass_line("replicator", "s3cret") == "*:*:*:replicator:s3cret"
    assert pgpass_line("rep:l", "a\\b:c", host="h", port=5432, dbname="db") == "h:5432:db:rep\\:l:a\\\\b\\:c"


@pytest.mark.parametrize("password", ["", None, "two\nlines"])
def test_pgpass_line_refuses(password: object) -> None:
    with pytest.raises(ValueError, match="field"):
        pgpass_line("replicator", password)


def test_standby_slots_default_to_the_names_once_each() -> None:
    standbys = [{"name": "standby18"}, {"name": "dr", "slot": "dr_slot"}, {"name": "again", "slot": "standby18"}]
    assert standby_slots(standbys) == "standby18,dr_slot"
    assert standby_slots([]) == ""
    with pytest.raises(ValueError, match="name"):
        standby_slots([{"address": "10.0.0.0/8"}])
