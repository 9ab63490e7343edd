#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: sequences
short_description: Copy sequence values from a logical replication publisher to a subscriber
version_added: 0.1.0
description:
  - Logical replication does not replicate sequence values. After a cutover (writes moving to the
    subscriber) its sequences would hand out ids the publisher has used already and inserts fail on
    duplicate keys. This module copies the publisher's sequence values to the subscriber in the database
    O(login_db), optionally with a safety O(margin), so the subscriber is ready to take over.
  - Runs against the SUBSCRIBER (the C(login_*) options) and reads the publisher through O(publisher) or
    O(conninfo) - the module connects to both, from the host the module runs on.
  - Which sequences - O(sequences), a list of names; or the sequences of the tables of O(publications)
    (owned by a C(serial) or identity column, or called by a column default C(nextval(...)), also of a
    partitioned table's parent); by default the publications of every subscription in O(login_db).
  - For each sequence the desired value is the publisher's C(last_value) plus O(margin), in the sequence's
    direction. A subscriber sequence behind it is moved forward with
    C(SELECT pg_catalog.setval(name::regclass, value, true)); one at that value already is left alone (a
    re-run changes nothing); one AHEAD of it is never moved backwards unless O(allow_backwards=true) - it
    is reported (action V(ahead)) with a warning. A sequence never used on the publisher is not copied.
  - Every C(setval) runs in ONE transaction on the subscriber. Everything is read and planned first - a
    sequence missing (or unreadable) on either side, or a value outside the subscriber's sequence range,
    fails the module naming every such sequence, with nothing applied.
  - The publisher's password never appears in the output.
  - O(method=native) uses PostgreSQL 19's own C(ALTER SUBSCRIPTION ... REFRESH SEQUENCES) instead, on a
    subscriber of PostgreSQL 19 or later only.
author:
  - Inventium logical replication team (@inventium)
options:
  publisher:
    description:
      - The connection to the publisher, with the keys of the M(inventium.logical_replication.subscription)
        module's O(inventium.logical_replication.subscription#module:publisher) option (libpq keywords).
        Mutually exclusive with O(conninfo); one of them is required with O(method=setval).
      - Unlike the subscription's, this connection is made by the module, from the host it runs on; the
        role needs C(SELECT) or C(USAGE) on the sequences (see the notes).
    type: dict
  conninfo:
    description:
      - The connection to the publisher as a libpq connection string or URI. Mutually exclusive with
        O(publisher). Never shown in the output.
    type: str
  publications:
    description:
      - Sync the sequences of the tables of these publications (names on the publisher, SQL identifiers).
      - Default (neither O(publications) nor O(sequences)) - the publications of every subscription in the
        database O(login_db) of the subscriber. A publication missing on the publisher is an error.
      - With O(method=native), the subscriptions refreshed are those that subscribe to any of them.
      - Mutually exclusive with O(sequences).
    type: list
    elements: str
  sequences:
    description:
      - Sync exactly these sequences, as SQL names - V(orders_id_seq) (schema C(public)),
        V(sales.orders_id_seq), V("Sales"."Order Ids"). Each must exist on both sides.
      - Mutually exclusive with O(publications).
    type: list
    elements: str
  margin:
    description:
      - Set the subscriber's sequences this much further than the publisher's value (in the sequence's
        direction), so that ids the publisher hands out until the cutover is complete do not collide.
      - A whole number >= 0 (added to the value, not multiplied by the increment).
    type: int
    default: 0
  allow_backwards:
    description:
      - Also move a subscriber sequence that is AHEAD of the desired value back to it. Ids between the two
        values may then be handed out twice - only when you know they are unused on the subscriber.
    type: bool
    default: false
  method:
    description:
      - V(setval) - read both sides and set the subscriber's values as described above (any version).
      - V(native) - C(ALTER SUBSCRIPTION ... REFRESH SEQUENCES) for the subscriptions (PostgreSQL 19 or later
        on the subscriber; fails naming the version otherwise). The subscriber's sequence synchronization
        worker then copies the values of the sequences the subscription has - the publications must
        publish them (C(FOR ALL SEQUENCES)) - exactly as the publisher has them, in the background, so
        O(margin) and O(sequences) cannot be used, a value may move backwards and the result lists no values.
        Always reported as changed.
    type: str
    choices: [setval, native]
    default: setval
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.publisher
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later on both sides.
  - Privileges - on the publisher C(SELECT) or C(USAGE) on each sequence (without it C(pg_sequences) shows
    no value; the module fails naming the sequence and the C(GRANT)); reading the publications' tables
    needs nothing. On the subscriber C(SELECT) or C(USAGE) to read and C(UPDATE) to C(setval) (the owner
    or a superuser has them); O(method=native) needs the subscription's owner or a superuser.
  - A sequence that was never used (C(last_value) is C(NULL) in C(pg_sequences)) counts as being at its
    C(start_value). The value set is always marked as used (C(is_called)), so the next C(nextval) on the
    subscriber returns the value after it.
  - A C(CYCLE) sequence that wrapped around compares by value, so it can look ahead or behind wrongly.
seealso:
  - name: Logical replication restrictions
    description: Sequence data is not replicated (PostgreSQL 18 and earlier).
    link: https://www.postgresql.org/docs/current/logical-replication-restrictions.html
  - name: Sequence manipulation functions
    description: setval and friends.
    link: https://www.postgresql.org/docs/current/functions-sequence.html
  - module: inventium.logical_replication.subscription
  - module: inventium.logical_replication.replication_info
"""

EXAMPLES = r"""
- name: Copy the sequences of the subscribed publications before a cutover, 1000 ids of headroom
  inventium.logical_replication.sequences:
    login_host: 127.0.0.1
    login_port: 5433
    login_password: "{{ subscriber_password }}"
    login_db: subscriber
    publisher:
      host: 192.0.2.10
      port: 5432
      dbname: publisher
      user: replicator
      password: "{{ replicator_password }}"
    margin: 1000
  register: seqs

- name: Show what moved
  ansible.builtin.debug:
    msg: "{{ seqs.sequences | selectattr('action', 'equalto', 'set') | map(attribute='name') }}"

- name: Exactly these sequences, given as a connection string (read-only preview with --check --diff)
  inventium.logical_replication.sequences:
    login_db: subscriber
    conninfo: "host=pub.example.com dbname=app user=reader password={{ vaulted_password }} sslmode=verify-full"
    sequences: [public.orders_id_seq, '"Sales"."Invoice Numbers"']
  check_mode: true
  diff: true

- name: The sequences of one publication's tables; move a sequence back if it is ahead (know why first)
  inventium.logical_replication.sequences:
    login_db: subscriber
    publisher: "{{ subscriber_publisher }}"
    publications: [orders_pub]
    allow_backwards: true

- name: PostgreSQL 19 subscribers - let PostgreSQL refresh the published sequences itself
  inventium.logical_replication.sequences:
    login_db: subscriber
    method: native

# The lab (and any inventory of the collection's roles): playbooks/sync_sequences.yml runs this module
# on every subscriber:
#   ansible-playbook playbooks/sync_sequences.yml -i inventory/lab -e sync_sequences_margin=1000 [--check --diff]
"""

RETURN = r"""
sequences:
  description:
    - One entry per sequence, in the order of O(sequences), else sorted by name. Empty with O(method=native).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The sequence, schema-qualified and quoted where needed.
      type: str
      sample: public.books_id_seq
    publisher_value:
      description: The publisher's C(last_value); V(null) when the sequence was never used there.
      type: int
      sample: 1042
    subscriber_before:
      description: The subscriber's C(last_value) before the run; V(null) when never used.
      type: int
      sample: 5
    subscriber_after:
      description: The subscriber's C(last_value) after the run (in check mode, what it would be).
      type: int
      sample: 2042
    action:
      description:
        - V(set) - moved forward; V(set_backwards) - moved back (O(allow_backwards)); V(none) - at the desired
          value already; V(ahead) - ahead of the desired value and left alone; V(unused) - never used on the
          publisher, nothing to copy.
      type: str
      sample: set
publications:
  description:
    - The publications whose tables' sequences were synced - O(publications), or those of the subscriptions in
      O(login_db) when neither O(publications) nor O(sequences) is given.
  returned: with O(method=setval), unless O(sequences) is given
  type: list
  elements: str
  sample: [leadership_pub, heartbeat_pub]
subscriptions:
  description: The subscriptions refreshed with O(method=native).
  returned: when O(method=native)
  type: list
  elements: str
queries:
  description: The statements run on the subscriber (in check mode, those that would run). Reads are not listed.
  returned: always
  type: list
  elements: str
  sample: ["SELECT pg_catalog.setval('public.books_id_seq'::regclass, 2042, true)"]
diff:
  description: Subscriber value per sequence name, before and after (V(null) - never used), with C(--diff).
  returned: when diff mode is enabled
  type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._sequences import (  # noqa: E402
    METHODS,
    SequenceError,
    SequenceSync,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            publisher=publisher_option_spec(),
            conninfo=dict(type="str", no_log=True),
            publications=dict(type="list", elements="str"),
            sequences=dict(type="list", elements="str"),
            margin=dict(type="int", default=0),
            allow_backwards=dict(type="bool", default=False),
            method=dict(type="str", default="setval", choices=list(METHODS)),
        ),
        mutually_exclusive=[("publisher", "conninfo"), ("publications", "sequences")],
        required_if=[("method", "setval", ("publisher", "conninfo"), True)],
    )
    try:
        SequenceSync(m).run()
    except SequenceError as exc:
        m.fail(str(exc))


if __name__ == "__main__":
    main()
