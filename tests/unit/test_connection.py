"""Connection layer and module base pieces that need no database."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
import yaml

from ansible_collections.inventium.logical_replication.plugins.doc_fragments.connection import ModuleDocFragment
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    APPLICATION_NAME,
    PgConnectionError,
    connect,
    connection_argument_spec,
    connection_kwargs,
    describe_target,
    psycopg_version_ok,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import (
    format_db_error,
    server_major,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import MASK

DEFAULTS = {name: spec.get("default") for name, spec in connection_argument_spec().items()}


def _documented_matches(spec, documented):
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        doc = documented[name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("choices") == option.get("choices"), name
        assert sorted(doc.get("aliases", [])) == sorted(option.get("aliases", [])), name
        assert doc.get("description"), name


def test_doc_fragment_matches_argument_spec():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    _documented_matches(connection_argument_spec(), doc["options"])
    assert "psycopg >= 3.1" in doc["requirements"]


def test_server_settings_documentation_matches_argument_spec():
    module = importlib.import_module(
        "ansible_collections.inventium.logical_replication.plugins.modules.server_settings"
    )
    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["version_added"] == "0.1.0"
    assert doc["extends_documentation_fragment"] == [
        "inventium.logical_replication.connection",
        "inventium.logical_replication.attributes",
        "inventium.logical_replication.attributes.platform",
    ]
    spec = {"settings": {"type": "dict"}, "reset": {"type": "list", "elements": "str"}}
    _documented_matches(spec, doc["options"])
    yaml.safe_load(module.EXAMPLES)
    returned = yaml.safe_load(module.RETURN)
    assert {"queries", "settings", "previous", "restart_required", "pending_restart", "diff"} <= set(returned)


def test_argument_spec_is_a_fresh_copy():
    spec = connection_argument_spec()
    spec["login_port"]["default"] = 1
    assert connection_argument_spec()["login_port"]["default"] == 5432
    assert spec["login_password"]["no_log"] is True


def test_connection_kwargs():
    params = {**DEFAULTS, "login_host": "127.0.0.1", "login_password": "pw", "login_db": "app"}
    assert connection_kwargs(params) == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "password": "pw",
        "dbname": "app",
        "sslmode": "prefer",
        "connect_timeout": 10,
        "application_name": APPLICATION_NAME,
    }
    socket = connection_kwargs({**params, "login_unix_socket": "/run/pg", "login_password": ""})
    assert socket["host"] == "/run/pg"
    assert "password" not in socket
    ssl = connection_kwargs({**DEFAULTS, "ssl_mode": "verify-full", "ssl_rootcert": "/ca", "ssl_cert": "/c",
                             "ssl_key": "/k"})  # fmt: skip
    assert (ssl["sslmode"], ssl["sslrootcert"], ssl["sslcert"], ssl["sslkey"]) == ("verify-full", "/ca", "/c", "/k")
    assert "host" not in ssl


def test_describe_target_never_shows_the_password():
    params = {**DEFAULTS, "login_host": "db", "login_password": "pw", "login_db": "app"}
    assert describe_target(params) == "host db port 5432 as user postgres database app"
    assert "unix socket directory /run/pg" in describe_target({**params, "login_unix_socket": "/run/pg"})
    assert "pw" not in describe_target(params)


def test_unreachable_server_message_is_helpful_and_redacted():
    params = {**DEFAULTS, "login_host": "127.0.0.1", "login_port": 1, "login_password": "Sup3r-S3cret",
              "connect_timeout": 2}  # fmt: skip
    with pytest.raises(PgConnectionError) as info:
        connect(params)
    text = str(info.value)
    assert text.startswith("Unable to connect to PostgreSQL at host 127.0.0.1 port 1 as user postgres: ")
    assert "Connection refused" in text
    assert "Sup3r-S3cret" not in text
    assert "\n" not in text


def test_psycopg_version_ok():
    assert psycopg_version_ok()


def test_server_major():
    assert server_major(150004) == 15
    assert server_major(170000) == 17
    assert server_major(180001) == 18


def _fake_error(**diag):
    base = dict(sqlstate="42704", message_primary="unrecognized configuration parameter \"x\"", message_detail=None,
                message_hint=None, severity="ERROR", severity_nonlocalized="ERROR")  # fmt: skip
    base.update(diag)
    return SimpleNamespace(sqlstate=base["sqlstate"], diag=SimpleNamespace(**base))


def test_format_db_error():
    assert format_db_error(_fake_error()) == 'ERROR 42704: unrecognized configuration parameter "x"'
    text = format_db_error(
        _fake_error(message_detail="password=abc is wrong", message_hint="Use pw1."), ["pw1"], "creating x failed"
    )
    assert (
        text == f'creating x failed: ERROR 42704: unrecognized configuration parameter "x" DETAIL: password={MASK}'
        f" is wrong HINT: Use {MASK}."
    )
