#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: replication_heartbeat
short_description: Write or read the replicated heartbeat row, to prove that replication flows
version_added: 0.2.0
description:
  - Works on the lab's replicated heartbeat table C(public.replication_heartbeat)
    (C(roles/publisher/files/schema/heartbeat.sql), publication C(heartbeat_pub)), the table the metrics
    sampler beats into.
  - O(mode=beat) on the publisher upserts the row of O(node) (C(beat_at = clock_timestamp()),
    C(seq = seq + 1)), the sampler's own beat, and returns the beat's RV(seq).
  - O(mode=read) on a subscriber reads the rows that have arrived - per publisher node its newest RV(seq)
    and that beat's age. A beat written after a change has arrived when the subscriber's C(seq) of that
    node reaches the returned one; C(playbooks/schema_change.yml) polls this with a bounded number of
    retries.
  - Without the table, RV(present=false) and nothing is written or read (the heartbeat is optional).
author:
  - Inventium logical replication team (@inventium)
options:
  mode:
    description: V(beat) writes the heartbeat (publisher), V(read) reads it (subscriber).
    type: str
    choices: [beat, read]
    required: true
  node:
    description:
      - The publisher's node name, the key of its heartbeat row (the sampler uses the inventory name).
      - Required with O(mode=beat); with O(mode=read) only this node's row is returned in RV(seq).
    type: str
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
    details: In check mode O(mode=beat) writes nothing (RV(seq) is null); O(mode=read) reads as always.
  diff_mode:
    support: none
notes:
  - Supports PostgreSQL 13 and later.
seealso:
  - module: inventium.logical_replication.schema_change
"""

EXAMPLES = r"""
- name: Beat on the publisher
  inventium.logical_replication.replication_heartbeat:
    login_db: publisher
    mode: beat
    node: publisher
  register: beat

- name: Wait until the beat has arrived on a subscriber (at most 60 s)
  inventium.logical_replication.replication_heartbeat:
    login_port: 5433
    login_db: subscriber
    mode: read
    node: publisher
  register: seen
  until: not seen.present or (seen.seq | default(0, true)) >= beat.seq
  retries: 30
  delay: 2
"""

RETURN = r"""
present:
  description: Whether C(public.replication_heartbeat) exists in the database.
  returned: always
  type: bool
seq:
  description:
    - O(mode=beat) - the beat written. O(mode=read) - the newest beat of O(node) seen here (null when none).
  returned: always
  type: int
  sample: 1042
replicated:
  description:
    - O(mode=read) - whether a subscription of this database replicates C(public.replication_heartbeat)
      into it (C(pg_subscription_rel)); a beat cannot arrive otherwise.
  returned: when O(mode=read)
  type: bool
beats:
  description: O(mode=read) - every heartbeat row here - C(node), C(seq), C(lag_seconds) (the beat's age).
  returned: when O(mode=read)
  type: list
  elements: dict
queries:
  description: The heartbeat upsert, when written (or, in check mode, when it would be).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._metrics import (  # noqa: E402
    HEARTBEAT_BEAT_QUERY,
    collect_heartbeat,
    heartbeat_present,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402

REPLICATED_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel"
    " WHERE srrelid = 'public.replication_heartbeat'::regclass) AS replicated"
)


def main():
    m = PgModule(
        argument_spec=dict(
            mode=dict(type="str", choices=["beat", "read"], required=True),
            node=dict(type="str"),
        ),
        required_if=[("mode", "beat", ("node",))],
    )
    m.connect()
    m.require_versions("replication_heartbeat module", [])
    node = m.params["node"]
    if not heartbeat_present(m.conn):
        extra = {"beats": [], "replicated": False} if m.params["mode"] == "read" else {}
        m.exit(changed=False, present=False, seq=None, **extra)
    if m.params["mode"] == "beat":
        rows = m.execute(HEARTBEAT_BEAT_QUERY, [node])
        m.exit(changed=True, present=True, seq=rows[0]["seq"] if rows else None)
    beats = collect_heartbeat(m.conn, m.server_major)
    seq = next((b["seq"] for b in beats if b["node"] == node), None) if node else None
    replicated = m.query_one(REPLICATED_QUERY)["replicated"]
    m.exit(changed=False, present=True, seq=seq, beats=beats, replicated=replicated)


if __name__ == "__main__":
    main()
