# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Physical standbys: the standby's ``primary_conninfo``, its passfile line, the primary's standby slots.

Used through the filters of ``plugins/filter/standby.py`` by the ``postgresql`` role
(``postgresql_standby_of``) and the ``publisher`` role (``publisher_standbys``). Pure Python.
"""

from __future__ import annotations

from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import make_conninfo

# What postgresql_standby_of must give (port and application_name have defaults).
REQUIRED_KEYS = ("host", "user", "password", "dbname", "slot")


def missing_keys(standby_of):
    """The required keys of ``standby_of`` that are absent or empty, in a fixed order."""
    standby_of = standby_of or {}
    return [key for key in REQUIRED_KEYS if standby_of.get(key) in (None, "")]


def primary_conninfo(standby_of, passfile, application_name):
    """The standby's ``primary_conninfo``: the primary's address, user and ``dbname`` (17+ slot
    synchronization connects there), the password left to ``passfile``, never in the string (a
    setting is readable in ``pg_settings`` and shows in the settings module's output)."""
    missing = [key for key in missing_keys(standby_of) if key not in ("password", "slot")]
    if missing:
        raise ValueError(f"the standby's primary needs {', '.join(missing)}")
    return make_conninfo(
        {
            "host": standby_of["host"],
            "port": int(standby_of.get("port") or 5432),
            "user": standby_of["user"],
            "dbname": standby_of["dbname"],
            "passfile": passfile,
            "application_name": standby_of.get("application_name") or application_name,
        }
    )


def _pgpass_field(value):
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(user, password, host="*", port="*", dbname="*"):
    """One line of a libpq password file; ``:`` and ``\\`` in a field are escaped (``*`` matches any)."""
    fields = [host, port, dbname, user, password]
    if any(field is None or str(field) == "" for field in fields):
        raise ValueError("a password file line needs every field (use * for any)")
    if any("\n" in str(field) for field in fields):
        raise ValueError("a password file field cannot hold a line break")
    return ":".join(_pgpass_field(field) for field in fields)


def standby_slots(standbys):
    """``synchronized_standby_slots`` for the primary: each standby's ``slot`` (default its ``name``),
    in order, without duplicates."""
    out = []
    for standby in standbys or []:
        slot = standby.get("slot") or standby.get("name")
        if not slot:
            raise ValueError("every standby needs a name (or a slot)")
        if slot not in out:
            out.append(slot)
    return ",".join(out)
