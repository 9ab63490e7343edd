# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The publisher option of the modules that connect to a subscriber's publisher themselves (sequences,
    # subscription_pause, replication_info): plugins/module_utils/conninfo.py publisher_option_spec().
    # A module's own `publisher` entry (description) overrides this one's; the suboptions stay.
    DOCUMENTATION = r"""
options:
  publisher:
    description:
      - The publisher, as the host the module runs on reaches it, with the keys of the
        M(inventium.logical_replication.subscription) module's
        O(inventium.logical_replication.subscription#module:publisher) option (libpq keywords). The password never
        appears in the output.
    type: dict
    suboptions:
      host:
        description: Host name, IP address or Unix socket directory of the publisher (libpq C(host)).
        type: str
      port:
        description: Port of the publisher (libpq C(port)).
        type: int
      dbname:
        description: Database on the publisher that holds the published tables (libpq C(dbname)).
        type: str
      user:
        description: Role to connect as (libpq C(user)).
        type: str
      password:
        description: Password of O(publisher.user) (libpq C(password)). Never shown in the output.
        type: str
      sslmode:
        description: libpq C(sslmode).
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      sslrootcert:
        description: Certificate authorities file on the host the module runs on (libpq C(sslrootcert)).
        type: str
      sslcert:
        description: Client certificate file (libpq C(sslcert)).
        type: str
      sslkey:
        description: Client key file (libpq C(sslkey)).
        type: str
      connect_timeout:
        description: Seconds to wait for the publisher's connection (libpq C(connect_timeout)).
        type: int
      application_name:
        description:
          - Accepted so that a subscription's O(publisher) dict can be passed as it is; the module's session
            uses the collection's application name.
        type: str
      keepalives:
        description: libpq C(keepalives).
        type: int
        choices: [0, 1]
      keepalives_idle:
        description: libpq C(keepalives_idle).
        type: int
      keepalives_interval:
        description: libpq C(keepalives_interval).
        type: int
      keepalives_count:
        description: libpq C(keepalives_count).
        type: int
      tcp_user_timeout:
        description: libpq C(tcp_user_timeout).
        type: int
"""
