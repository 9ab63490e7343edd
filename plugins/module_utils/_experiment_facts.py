# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The facts an experiment's plan is validated against (``experiment_plan``): each node's version and
``pg_settings``, and the publisher's publications and tables - read with the core's own queries
(``_settings.SETTINGS_QUERY``, ``_publications.publication_query``)."""

from __future__ import annotations

import os

from ansible_collections.inventium.logical_replication.plugins.module_utils._catalog import fetch_rows
from ansible_collections.inventium.logical_replication.plugins.module_utils._publications import publication_query
from ansible_collections.inventium.logical_replication.plugins.module_utils._settings import SETTINGS_QUERY
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (
    connect,
    connection_argument_spec,
)

TABLES_QUERY = (
    "SELECT lower(n.nspname || '.' || c.relname) AS name FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
)
"""The publisher's tables (lower-case ``schema.table``), for the experiment's table references."""

VERSION_QUERY = (
    "SELECT current_setting('server_version_num')::int AS version_num, current_setting('server_version') AS version"
)


def display_name(path):
    """``/repo/experiments/streaming.yml`` -> ``experiments/streaming.yml``; other paths as given."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return f"experiments/{os.path.basename(path)}" if parent == "experiments" else path


def connection_params(given):
    """The connection options of ``given`` with the collection's defaults for the missing ones."""
    params = {key: spec.get("default") for key, spec in connection_argument_spec().items()}
    params.update({key: value for key, value in given.items() if key in params and value is not None})
    return params


def read_facts(given, publisher=False):
    """Version and pg_settings of one server (the publisher: also its publications and tables).

    Raises PgConnectionError / psycopg.Error.
    """
    conn = connect(connection_params(given))
    try:
        version = fetch_rows(conn, VERSION_QUERY)[0]
        major = version["version_num"] // 10000
        facts = {
            "major": major,
            "version": version["version"].split()[0],
            "version_num": version["version_num"],
            "settings": {row["name"].lower(): row for row in fetch_rows(conn, SETTINGS_QUERY)},
        }
        if publisher:
            rows = fetch_rows(conn, publication_query(major, by_name=False))
            facts["publications"] = sorted(row["pubname"] for row in rows)
            facts["tables"] = sorted(row["name"] for row in fetch_rows(conn, TABLES_QUERY))
    finally:
        conn.close()
    return facts
