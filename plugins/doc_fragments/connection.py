# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every module of the collection.
    # Keep in sync with connection_argument_spec() in plugins/module_utils/connection.py.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - When neither O(login_host) nor O(login_unix_socket) is set, libpq's defaults apply
        (the E(PGHOST) environment variable, else the default Unix socket directory).
    type: str
  login_port:
    description:
      - TCP port of the server (also the suffix of the Unix socket file).
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description:
      - The role to connect as.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user).
      - When not set, libpq's usual sources apply (E(PGPASSWORD), the password file E(PGPASSFILE) or
        C(~/.pgpass)).
      - Never shown in results, C(queries), warnings or error messages.
    type: str
  login_db:
    description:
      - The database to connect to.
      - Defaults to libpq's default, a database named like O(login_user).
    type: str
    aliases: [db]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, for example V(/var/run/postgresql).
      - Takes precedence over O(login_host).
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode) of the connection.
      - See U(https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION).
    type: str
    default: prefer
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_rootcert:
    description:
      - File with the certificate authorities that signed the server certificate (libpq C(sslrootcert)).
      - Checked with O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
    type: path
    aliases: [ca_cert]
  ssl_cert:
    description:
      - Client certificate file (libpq C(sslcert)).
    type: path
  ssl_key:
    description:
      - Private key file of the client certificate (libpq C(sslkey)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection to be established (libpq C(connect_timeout)).
      - V(0) waits indefinitely.
    type: int
    default: 10
requirements:
  - psycopg >= 3.1
notes:
  - The modules connect with psycopg 3 (C(pip install 'psycopg[binary]>=3.1')) on the host the
    module runs on. psycopg2 is not used.
  - The session's C(application_name) is C(ansible-inventium.logical_replication).
  - "The connection options can be set once for all modules with
    C(module_defaults: {group/inventium.logical_replication.postgresql: {...}})."
"""
