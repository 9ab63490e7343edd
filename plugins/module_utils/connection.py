# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection's one connection layer: options, psycopg import guard, connect().

Option names follow community.postgresql (users know them); the code is our own.
Documentation of the options lives in ``plugins/doc_fragments/connection.py``;
keep both in sync. Modules normally use
:class:`~ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module.PgModule`,
which wires all of this up.
"""

from __future__ import annotations

import re
import traceback

from ansible_collections.inventium.logical_replication.plugins.module_utils.redaction import redact

__all__ = [
    "APPLICATION_NAME",
    "HAS_PSYCOPG",
    "MIN_PSYCOPG_VERSION",
    "PSYCOPG_IMPORT_ERROR",
    "PSYCOPG_REQUIREMENT",
    "SSL_MODES",
    "PgConnectionError",
    "connect",
    "connect_publisher",
    "connection_argument_spec",
    "connection_kwargs",
    "describe_target",
    "dict_row",
    "format_db_error",
    "psycopg",
    "psycopg_version_ok",
    "sql",
]

PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg
    from psycopg import sql  # re-exported: modules compose SQL with it
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    psycopg = None
    sql = None
    dict_row = None
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG = True

PSYCOPG_REQUIREMENT = "psycopg >= 3.1"
"""Text for ``missing_required_lib()`` and the docs."""
MIN_PSYCOPG_VERSION = (3, 1)

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's ``sslmode`` values."""

APPLICATION_NAME = "ansible-inventium.logical_replication"
"""``application_name`` of the modules' sessions (visible in ``pg_stat_activity``)."""


class PgConnectionError(Exception):
    """Connecting failed; ``str()`` is a complete, redacted message for the user."""


def connection_argument_spec():
    """Return a fresh copy of the connection options every module accepts.

    Merge it into a module's own ``argument_spec`` (``PgModule`` does this for you).
    """
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", no_log=True),
        login_db=dict(type="str", aliases=["db"]),
        login_unix_socket=dict(type="str"),
        ssl_mode=dict(type="str", default="prefer", choices=list(SSL_MODES)),
        ssl_rootcert=dict(type="path", aliases=["ca_cert"]),
        ssl_cert=dict(type="path"),
        ssl_key=dict(type="path", no_log=False),
        connect_timeout=dict(type="int", default=10),
    )


def psycopg_version_ok():
    """True when the imported psycopg is at least :data:`MIN_PSYCOPG_VERSION`."""
    if not HAS_PSYCOPG:
        return False
    numbers = re.findall(r"\d+", psycopg.__version__)[:2]
    return tuple(int(x) for x in numbers) >= MIN_PSYCOPG_VERSION


def connection_kwargs(params, application_name=APPLICATION_NAME):
    """Translate module parameters into ``psycopg.connect()`` keyword arguments (libpq names).

    ``login_unix_socket`` (a directory) takes precedence over ``login_host``; with
    neither, libpq's defaults apply (``PGHOST`` or the default socket directory).
    Empty values are left out so libpq's environment defaults (``PGPASSWORD``,
    ``~/.pgpass``, ...) keep working.
    """
    kwargs = {
        "user": params.get("login_user"),
        "port": params.get("login_port"),
        "sslmode": params.get("ssl_mode"),
        "connect_timeout": params.get("connect_timeout"),
        "application_name": application_name,
    }
    host = params.get("login_unix_socket") or params.get("login_host")
    optional = {
        "host": host,
        "password": params.get("login_password"),
        "dbname": params.get("login_db"),
        "sslrootcert": params.get("ssl_rootcert"),
        "sslcert": params.get("ssl_cert"),
        "sslkey": params.get("ssl_key"),
    }
    kwargs.update({k: v for k, v in optional.items() if v not in (None, "")})
    return {k: v for k, v in kwargs.items() if v is not None}


def describe_target(params):
    """Human description of where a module connects, e.g. ``host 127.0.0.1 port 5432 as user postgres``.

    Never includes the password.
    """
    if params.get("login_unix_socket"):
        where = "unix socket directory {} port {}".format(params["login_unix_socket"], params.get("login_port"))
    elif params.get("login_host"):
        where = "host {} port {}".format(params["login_host"], params.get("login_port"))
    else:
        where = "the default host (libpq defaults) port {}".format(params.get("login_port"))
    text = "{} as user {}".format(where, params.get("login_user"))
    if params.get("login_db"):
        text += " database {}".format(params["login_db"])
    return text


def _one_line(text):
    return re.sub(r"\s*\n\s*", " ", str(text)).strip()


def connect(params, autocommit=True, application_name=APPLICATION_NAME):
    """Open a psycopg connection (``dict_row`` rows) from module parameters.

    Raises :class:`PgConnectionError` with a message naming host, port, user and
    database plus libpq's reason, with the password redacted. ``application_name`` names the
    session in ``pg_stat_activity`` (the metrics sampler gives its own).
    """
    if not HAS_PSYCOPG:
        raise PgConnectionError(f"{PSYCOPG_REQUIREMENT} is required")
    kwargs = connection_kwargs(params, application_name)
    try:
        conn = psycopg.connect(autocommit=autocommit, row_factory=dict_row, **kwargs)
    except psycopg.Error as exc:
        message = f"Unable to connect to PostgreSQL at {describe_target(params)}: {_one_line(exc)}"
        raise PgConnectionError(redact(message, [params.get("login_password")])) from None
    return conn


def connect_publisher(params):
    """An autocommit ``dict_row`` psycopg connection to a publisher with ``params`` (libpq keywords; a
    ``conninfo`` key is a whole connection string).

    The connection a module makes itself to read the publisher (``sequences``, ``subscription_pause``,
    ``replication_info``), as opposed to the one a subscription stores.

    Raises :class:`~.connection.PgConnectionError` naming the publisher's host, port, user and
    database and libpq's reason (the caller redacts the password).
    """
    if not HAS_PSYCOPG:
        raise PgConnectionError(f"{PSYCOPG_REQUIREMENT} is required")
    try:
        return psycopg.connect(autocommit=True, row_factory=dict_row, **params)
    except psycopg.Error as exc:
        where = describe_target(
            {
                "login_host": params.get("host"),
                "login_port": params.get("port") or 5432,
                "login_user": params.get("user"),
                "login_db": params.get("dbname"),
            }
        )
        reason = " ".join(str(exc).split())
        raise PgConnectionError(f"Unable to connect to the publisher at {where}: {reason}") from None


def format_db_error(exc, secrets=(), action=None):
    """Format a psycopg error as ``[action: ]ERROR <SQLSTATE>: message. DETAIL: ... HINT: ...``, redacted."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or (diag.sqlstate if diag is not None else None)
    primary = diag.message_primary if diag is not None else None
    if not primary:
        primary = " ".join(str(exc).split())
    parts = []
    severity = (diag.severity_nonlocalized or diag.severity) if diag is not None else None
    parts.append("{} {}: {}".format(severity or "ERROR", sqlstate or "(no SQLSTATE)", primary))
    if diag is not None and diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag is not None and diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    text = " ".join(parts)
    if action:
        text = f"{action}: {text}"
    return redact(text, secrets)
