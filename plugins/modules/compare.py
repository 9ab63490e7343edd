#!/usr/bin/python
# Copyright (c) 2026, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: compare
short_description: Prove that a logical replication subscriber holds exactly what its publisher publishes to it
version_added: 0.1.0
description:
  - Runs against a SUBSCRIBER (the C(login_*) options, database O(login_db)) and reads its publisher through
    O(publisher) - the module connects to both, from the host it runs on. Read-only - nothing is written on either
    server (both sessions are C(default_transaction_read_only)); C(changed) is always V(false).
  - For each table of the subscription's publications (or of O(tables)), the row count and a checksum on the
    publisher and on the subscriber, restricted to what the subscription should hold - only the published columns
    (column lists) and only the rows the row filters let through (ORed over the subscription's publications, as
    PostgreSQL applies them). The checksum is the sum of the first 60 bits of each row's md5 over the row's text,
    in sessions with the same C(TimeZone), C(DateStyle), C(IntervalStyle), float, C(bytea) and C(money) output on
    both sides, so different majors (and the databases' own output settings) give the same text for the same row.
  - A table with a primary key - else a unique index over NOT NULL published columns without a predicate or an
    expression - is compared in chunks of O(chunk_rows) publisher rows along that key (method V(chunked)) - the
    chunk boundaries are found on the publisher by keyset, then each key range is counted and summed on both
    sides, so memory stays bounded and no query aggregates more than a chunk. Text-like key columns are ordered
    and compared C(COLLATE "C") on both sides (servers of different majors or C libraries may sort a language
    collation differently). A differing chunk is bisected down to one row per side and reported as
    RV(tables[].first_difference); every chunk is still compared, so RV(tables[].differing_chunks) counts them.
  - A table without such a key is compared with one whole-table checksum (method V(whole_table)), with a warning
    naming the table and its size.
  - By default the module first waits until the publisher's walsender of this subscription has confirmed the
    publisher's current WAL position (O(wait_caught_up), O(timeout)), so that a quiet publisher compares equal.
    A chunk that still differs - a table written all the time, such as a heartbeat, differs for the milliseconds
    its change takes to arrive - is re-read up to O(retries) times.
  - Bad input fails before anything is compared - an unknown O(subscription) (the message lists the database's
    subscriptions), none given while the database has several, a name in O(tables) that the subscription's
    publications do not publish. Everything found is reported instead - a table published but missing on the
    subscriber or not in the subscription, published columns missing there, tables not C(ready), the subscription's
    slot missing on the publisher (a wrong O(publisher)), a subscription that does not catch up in time - in
    RV(problems), with RV(equal) false.
author:
  - Inventium logical replication team (@inventium)
options:
  publisher:
    description:
      - The publisher of the subscription, as the host the module runs on reaches it (libpq keywords, the keys of
        the M(inventium.logical_replication.subscription) module's
        O(inventium.logical_replication.subscription#module:publisher) option). O(publisher.dbname) is the
        publisher's database of the published tables. The password never appears in the output.
      - The role needs C(SELECT) on the published tables, nothing else (the wait reads the slot's confirmed position
        in C(pg_replication_slots), which every role sees).
    type: dict
    required: true
  subscription:
    description:
      - The subscription to compare, an SQL identifier (V(sub1), V('"MySub"')), in the database O(login_db).
      - Default - the database's only subscription; with none or several the module fails, naming them.
    type: str
  tables:
    description:
      - Compare only these tables, as SQL names (V(books) is C(public.books), V(sales.orders),
        V('"Sales"."Order Items"')). Each must be published to the subscription, else the module fails naming it,
        having compared nothing.
      - Default (also an empty list) - every table of the subscription's publications.
    type: list
    elements: str
  chunk_rows:
    description:
      - Publisher rows per chunk of a table with a key. Smaller chunks are more queries; larger ones longer
        queries.
    type: int
    default: 100000
  wait_caught_up:
    description:
      - Wait until the walsender of the subscription's slot on the publisher has confirmed (C(replay_lsn)) the
        publisher's WAL position taken at the start, before comparing. A disabled subscription or tables not yet
        C(ready) cannot catch up - a problem, not waited for.
      - V(false) compares at once (e.g. a subscription disabled on purpose); a disabled subscription is then a
        warning, not a problem.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for O(wait_caught_up). Not caught up by then is a problem; the tables are still compared.
    type: float
    default: 300
  retries:
    description:
      - How many times a differing chunk (or whole table) is read again, 0.35 s apart, before it counts as different -
        until the table's first chunk that differs every time; the table's later chunks are read once.
    type: int
    default: 9
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.publisher
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode changes nothing.
  diff_mode:
    support: none
notes:
  - Privileges - C(SELECT) on the tables on both sides; the catalogs the module reads (C(pg_subscription) without
    the connection string, C(pg_publication_tables), C(pg_replication_slots)) are readable by every role.
  - Supports PostgreSQL 13 and later on both sides; row filters and column lists exist from PostgreSQL 15 (before,
    every column and row is published).
  - The chunk queries use the key's index on a side only when the index orders like the comparison - a text key
    whose index has a language collation is read whole per chunk on that side (one sort or scan per chunk).
  - A column whose values have no stable text form (e.g. a C(float) computed differently, a type whose output
    depends on a setting not fixed here) can make rows differ although they were replicated exactly.
seealso:
  - name: Row filters
    description: Which rows a publication sends.
    link: https://www.postgresql.org/docs/current/logical-replication-row-filter.html
  - name: Column lists
    description: Which columns a publication sends.
    link: https://www.postgresql.org/docs/current/logical-replication-col-lists.html
  - module: inventium.logical_replication.subscription
  - module: inventium.logical_replication.sequences
  - module: inventium.logical_replication.replication_info
"""

EXAMPLES = r"""
- name: Is my replica complete? (the database's only subscription, every published table)
  inventium.logical_replication.compare:
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
  register: compared

- name: Stop unless every table is equal
  ansible.builtin.assert:
    that: compared.equal
    fail_msg: "{{ compared.problems }}"

- name: Two tables of one subscription, without waiting (the subscription is disabled on purpose), smaller chunks
  inventium.logical_replication.compare:
    login_db: subscriber
    publisher: "{{ subscriber_publisher }}"
    subscription: orders_sub
    tables: [public.orders, '"Sales"."Order Items"']
    wait_caught_up: false
    chunk_rows: 20000
"""

RETURN = r"""
equal:
  description: V(true) when every compared table is equal and there is no problem (see RV(problems)).
  returned: always
  type: bool
  sample: true
subscription:
  description: The subscription compared.
  returned: always
  type: str
  sample: subscriber1_sub
publications:
  description: The subscription's publications (their names on the publisher).
  returned: always
  type: list
  elements: str
  sample: [leadership_pub]
tables:
  description: One entry per table compared, sorted by name (in the order of O(tables) when given).
  returned: always
  type: list
  elements: dict
  contains:
    table:
      description: The table, schema-qualified and quoted where needed.
      type: str
      sample: public.books
    equal:
      description: Row counts and checksums equal on both sides (in every chunk).
      type: bool
    method:
      description:
        - V(chunked) (by RV(tables[].key)) or V(whole_table) (no usable key; a warning says so); V(null) when the
          table was not compared (see RV(tables[].reason)).
      type: str
      sample: chunked
    key:
      description: The key columns of the chunks (the primary key's, else a unique index's); empty for V(whole_table).
      type: list
      elements: str
      sample: [id]
    chunks:
      description: Key ranges compared (the last one is open-ended, so it may be empty).
      type: int
      sample: 11
    differing_chunks:
      description: Key ranges whose rows differ.
      type: int
      sample: 0
    publisher_rows:
      description: Rows on the publisher that the subscription should hold (row filters applied).
      type: int
      sample: 1000000
    subscriber_rows:
      description: Rows on the subscriber.
      type: int
      sample: 1000000
    publisher_checksum:
      description: Sum of the rows' checksums on the publisher (published columns only), as text.
      type: str
      sample: "576088202171598417061004"
    subscriber_checksum:
      description: The same on the subscriber.
      type: str
    first_difference:
      description:
        - The first differing key range, narrowed to at most one row per side where the key allows it - V(null)
          when the table is equal or was compared whole.
        - C(from_key) and C(to_key) - the smallest and largest key found in the range on either side, inclusive, as
          lists of text (one per key column); C(publisher_rows) and C(subscriber_rows) - the rows in that range.
      type: dict
      sample: {from_key: ["42"], to_key: ["42"], publisher_rows: 1, subscriber_rows: 0}
    seconds:
      description: Seconds this table took.
      type: float
      sample: 2.41
    reason:
      description:
        - Why the table is not equal or was not compared - missing on the subscriber, not in the subscription,
          published columns missing there, not C(ready), a database error; V(null) otherwise.
      type: str
caught_up_seconds:
  description: Seconds waited for the subscription to catch up; V(null) when not waited (or not caught up).
  returned: always
  type: float
  sample: 0.21
problems:
  description:
    - One line per problem - each differing or uncompared table (with its first difference), the subscription
      disabled, tables not C(ready), a publication or the subscription's slot missing on the publisher, not caught
      up within O(timeout).
  returned: always
  type: list
  elements: str
seconds:
  description: Seconds the whole comparison took, waiting included.
  returned: always
  type: float
  sample: 12.3
queries:
  description: Statements that changed something - always empty (the module only reads).
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._replication_compare import (  # noqa: E402
    DEFAULT_CHUNK_ROWS,
    DEFAULT_RETRIES,
    run_compare,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.conninfo import (  # noqa: E402
    publisher_option_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            publisher=dict(publisher_option_spec(), required=True),
            subscription=dict(type="str"),
            tables=dict(type="list", elements="str"),
            chunk_rows=dict(type="int", default=DEFAULT_CHUNK_ROWS),
            wait_caught_up=dict(type="bool", default=True),
            timeout=dict(type="float", default=300.0),
            retries=dict(type="int", default=DEFAULT_RETRIES),
        ),
    )
    run_compare(m)


if __name__ == "__main__":
    main()
