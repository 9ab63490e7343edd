#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: publication
short_description: Create, change and drop PostgreSQL logical replication publications
version_added: 0.1.0
description:
  - Creates, alters and drops a publication (C(CREATE/ALTER/DROP PUBLICATION)) in the database
    O(login_db) and converges every difference to the desired state in one transaction - tables
    added or removed, a table's row filter or column list, schemas, C(publish) operations,
    C(publish_via_partition_root), C(publish_generated_columns), owner and comment.
  - Options that are not given are not managed; for example without O(tables) the publication's
    tables are left alone, while O(tables=[]) removes all of them.
  - Row filters and column lists are compared the way PostgreSQL stores them. The desired definition
    is first created as a throwaway publication inside a transaction that is rolled back, and
    PostgreSQL's own deparsed row filter (C(pg_get_expr)) and column list (C(prattrs)) of it are
    compared with those of the real publication. So C(topic='x') and C((topic = 'x'::text)) are
    the same filter and a re-run reports no change. The same step validates the whole desired
    definition (unknown columns, volatile functions in a row filter, relations that cannot be
    published ...) before anything is changed, also in check mode.
  - Names are written as in SQL - unquoted names are folded to lower case, double-quoted names
    keep their case and may contain any character, for example V("LeadPub") or
    V("Sales Data"."Order Items").
  - Every option is validated before anything is changed. Features the server lacks fail with the
    option's name and the PostgreSQL version that introduced it.
  - Several publications of the database in one call - O(publications), a list of items with the options of
    the single form. Every item is validated and planned (including the throwaway publication that validates
    its definition) before the first change; bad input in any item (an invalid or duplicate name, a missing
    table, schema or owner, an option the server's version lacks, a definition PostgreSQL rejects, ...) fails
    with a message that starts with the item's index and name, as in "publications[2] (name=foo)", with
    nothing changed. Errors that Ansible finds in the arguments (an unknown suboption, a value of the wrong
    type or not among the choices) fail before the module runs; Ansible's message names the option and
    O(publications).
  - All changes of all items are made in one transaction - all or nothing. When a statement of item k fails,
    the module fails naming item k, and RV(queries) lists the statements that ran (all rolled back).
author:
  - Inventium logical replication team (@inventium)
options:
  name:
    description:
      - Name of the publication, as an SQL identifier (quote it to keep upper-case letters, for example
        V("LeadPub")).
      - Required unless O(publications) is given; mutually exclusive with O(publications).
    type: str
  publications:
    description:
      - Several publications in one call, each item with the options of the single form. Mutually exclusive
        with every other option of the module except the connection options.
      - The result lists one entry per item in RV(publications); RV(diff) is keyed by publication name.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the publication, see O(name). Each publication at most once in the list.
        type: str
        required: true
      state:
        description: See O(state).
        type: str
        choices: [present, absent]
        default: present
      all_tables:
        description: See O(all_tables).
        type: bool
      tables:
        description: See O(tables).
        type: list
        elements: raw
      schemas:
        description: See O(schemas).
        type: list
        elements: str
      publish:
        description: See O(publish).
        type: list
        elements: str
      publish_via_partition_root:
        description: See O(publish_via_partition_root).
        type: bool
      publish_generated_columns:
        description: See O(publish_generated_columns).
        type: str
        choices: [none, stored]
      owner:
        description: See O(owner).
        type: str
      comment:
        description: See O(comment).
        type: str
  state:
    description:
      - V(present) creates or changes the publication, V(absent) drops it.
    type: str
    choices: [present, absent]
    default: present
  all_tables:
    description:
      - V(true) publishes all tables of the database, including tables created later
        (C(FOR ALL TABLES); needs a superuser).
      - V(false) makes the publication one with an explicit list of O(tables) and O(schemas).
      - PostgreSQL cannot switch an existing publication between both kinds with C(ALTER PUBLICATION);
        the module then drops and re-creates the publication in the same transaction, keeps its owner,
        comment and options, and emits a warning. Subscribers must C(REFRESH PUBLICATION) afterwards.
      - When not set, the kind of an existing publication is kept, unless O(tables) or O(schemas) are
        given (they imply V(false)).
      - Cannot be V(true) together with a non-empty O(tables) or O(schemas).
    type: bool
  tables:
    description:
      - The tables the publication contains, besides those of O(schemas). Tables not listed are removed.
      - Each element is either a table name (V(books), V(public.books), V("Sales Data"."Order Items");
        without a schema V(public) is assumed) or a dictionary with the keys C(name) (required),
        C(columns) (a list of column names, the column list; PostgreSQL 15 or later) and C(where) (a
        row filter expression, without the keyword C(WHERE); PostgreSQL 15 or later).
      - Tables that do not exist make the module fail, naming all of them, before anything is changed.
      - Tables with child tables by inheritance include the children, as in SQL.
      - Changing a row filter or a column list is one atomic C(ALTER PUBLICATION ... SET TABLE ...)
        statement that also repeats the publication's schemas.
    type: list
    elements: raw
  schemas:
    description:
      - Schemas all of whose tables are published (C(TABLES IN SCHEMA); PostgreSQL 15 or later). Schemas
        not listed are removed.
      - PostgreSQL does not allow schemas together with tables that have a column list.
    type: list
    elements: str
  publish:
    description:
      - The operations to publish, any of V(insert), V(update), V(delete), V(truncate).
      - Order, case, duplicates and white space do not matter; a comma-separated string such as
        V(insert, update) is accepted too. An empty list publishes no operation.
      - When not set, an existing publication keeps its operations and a new one publishes all of them
        (PostgreSQL's default).
    type: list
    elements: str
  publish_via_partition_root:
    description:
      - Publish changes of partitions as changes of their partitioned root table (PostgreSQL 13 or later).
      - When not set, an existing publication keeps its value and a new one gets PostgreSQL's default
        (V(false)).
    type: bool
  publish_generated_columns:
    description:
      - Whether stored generated columns of the tables are published (PostgreSQL 18 or later).
      - When not set, an existing publication keeps its value and a new one gets PostgreSQL's default
        (V(none)).
    type: str
    choices: [none, stored]
  owner:
    description:
      - The role owning the publication (C(ALTER PUBLICATION ... OWNER TO)), as an SQL identifier.
      - When not set, a new publication is owned by O(login_user) and an existing one keeps its owner.
    type: str
  comment:
    description:
      - Comment on the publication (C(COMMENT ON PUBLICATION)). V('') removes the comment.
      - When not set, the comment is not managed.
    type: str
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later. Row filters, column lists and O(schemas) need PostgreSQL 15,
    O(publish_generated_columns) PostgreSQL 18.
  - The login role needs C(CREATE) on the database and ownership of the listed tables (the throwaway
    publication that validates the desired definition is created with them); C(FOR ALL TABLES) and
    C(TABLES IN SCHEMA) need a superuser.
  - All changes of one run are made in one transaction; when PostgreSQL rejects one of them nothing is
    changed.
  - The module warns when a published table has no primary key or replica identity while O(publish)
    includes C(update) or C(delete), and when a row filter or column list does not cover the replica
    identity - PostgreSQL then refuses C(UPDATE) and C(DELETE) on that table on the publisher.
  - The module warns when C(wal_level) is not C(logical); see
    M(inventium.logical_replication.server_settings).
seealso:
  - name: CREATE PUBLICATION
    description: PostgreSQL documentation of CREATE PUBLICATION.
    link: https://www.postgresql.org/docs/current/sql-createpublication.html
  - name: ALTER PUBLICATION
    description: PostgreSQL documentation of ALTER PUBLICATION.
    link: https://www.postgresql.org/docs/current/sql-alterpublication.html
  - module: inventium.logical_replication.replication_slot
"""

EXAMPLES = r"""
- name: Publish the leadership books only (row filter)
  inventium.logical_replication.publication:
    login_host: 127.0.0.1
    login_password: "{{ postgres_password }}"
    login_db: publisher
    name: leadership_pub
    tables:
      - name: public.books
        where: topic = 'leadership'
    comment: Leadership books for subscriber1

- name: Quoted names, a column list and only some operations
  inventium.logical_replication.publication:
    login_db: sales
    name: '"LeadPub"'
    tables:
      - public.customers
      - name: '"Sales Data"."Order Items"'
        columns: [id, qty, '"Unit Price"']
    publish: insert, update, truncate
    publish_via_partition_root: true
    owner: replication_admin

- name: Everything in two schemas plus one table (PostgreSQL 15+)
  inventium.logical_replication.publication:
    login_db: app
    name: app_pub
    schemas: [sales, inventory]
    tables: [public.settings]

- name: Publish all tables (re-creates a publication that had a table list, with a warning)
  inventium.logical_replication.publication:
    login_db: app
    name: everything
    all_tables: true

- name: Several publications in one call (one connection, one transaction)
  inventium.logical_replication.publication:
    login_db: app
    publications:
      - name: orders_pub
        tables: [public.orders, public.order_lines]
      - name: customers_pub
        tables: [public.customers]
        publish: insert, update
      - name: old_pub
        state: absent
  register: pubs

- name: Show which publications changed
  ansible.builtin.debug:
    msg: "{{ pubs.publications | selectattr('changed') | map(attribute='name') }}"

- name: Drop a publication
  inventium.logical_replication.publication:
    login_db: app
    name: old_pub
    state: absent
"""

RETURN = r"""
queries:
  description:
    - The statements that changed the publication (in check mode, the statements that would have
      been executed). Validation and reads are not listed.
  returned: always
  type: list
  elements: str
  sample:
    - CREATE PUBLICATION "leadership_pub" FOR TABLE "public"."books" WHERE (topic = 'leadership')
    - COMMENT ON PUBLICATION "leadership_pub" IS 'Leadership books for subscriber1'
publications:
  description: One entry per item of O(publications), in order.
  returned: when O(publications) is given
  type: list
  elements: dict
  contains:
    name:
      description: Name of the publication (exact, not quoted).
      type: str
      sample: orders_pub
    changed:
      description: Whether this publication was (in check mode, would be) created, changed or dropped.
      type: bool
      sample: true
    publication:
      description: The publication after the run, as RV(publication) of the single form.
      type: dict
    queries:
      description: The statements of this publication, as RV(queries).
      type: list
      elements: str
    diff:
      description: Before and after state of this publication, as RV(diff) of the single form.
      returned: when diff mode is enabled
      type: dict
publication:
  description:
    - The publication after the run (in check mode, the predicted state), as PostgreSQL stores it.
    - Empty when the publication does not exist.
  returned: when O(name) is given
  type: dict
  contains:
    name:
      description: Name of the publication (exact, not quoted).
      type: str
      sample: LeadPub
    owner:
      description: The owning role.
      type: str
      sample: postgres
    all_tables:
      description: Whether the publication is C(FOR ALL TABLES).
      type: bool
      sample: false
    tables:
      description: The tables listed in the publication (not those published via O(schemas) or O(all_tables)), sorted.
      type: list
      elements: dict
      contains:
        name:
          description: Qualified name, quoted where needed (it can be passed back in O(tables)).
          type: str
          sample: '"Sales Data"."Order Items"'
        schema:
          description: Schema name (exact).
          type: str
          sample: Sales Data
        table:
          description: Table name (exact).
          type: str
          sample: Order Items
        columns:
          description: The column list in table order, V(null) when all columns are published.
          type: list
          elements: str
          sample: [id, qty]
        where:
          description: The row filter as PostgreSQL deparses it, V(null) when there is none.
          type: str
          sample: (topic = 'leadership'::text)
    schemas:
      description: The schemas published with C(TABLES IN SCHEMA), sorted.
      type: list
      elements: str
      sample: [sales]
    publish:
      description: The published operations, in the order insert, update, delete, truncate.
      type: list
      elements: str
      sample: [insert, update, delete, truncate]
    publish_via_partition_root:
      description: Value of C(publish_via_partition_root).
      type: bool
      sample: false
    publish_generated_columns:
      description: Value of C(publish_generated_columns), V(none) or V(stored).
      type: str
      returned: on PostgreSQL 18 and later
      sample: none
    comment:
      description: The comment, V(null) when there is none.
      type: str
      sample: Leadership books
diff:
  description:
    - Before and after state of the publication (see RV(publication)), with C(--diff).
    - With O(publications), C(before) and C(after) map each publication name to its state; a publication that
      does not exist on that side has no key.
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: State before the run (empty when the publication did not exist).
      type: dict
    after:
      description: State after the run, predicted in check mode (empty when dropped).
      type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._object_list import (  # noqa: E402
    check_items,
    run_items,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils._publication_plan import (  # noqa: E402
    GENERATED_COLUMNS_VALUES,
    SESSION_QUERY,
    Desired,
    OptionError,
    PublicationModule,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def publication_options(top_level):
    """The options of one publication (``name`` is optional at the top level, where ``publications`` may replace it)."""
    return dict(
        name=dict(type="str", required=not top_level),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        all_tables=dict(type="bool"),
        tables=dict(type="list", elements="raw"),
        schemas=dict(type="list", elements="str"),
        publish=dict(type="list", elements="str"),
        publish_via_partition_root=dict(type="bool"),
        publish_generated_columns=dict(type="str", choices=list(GENERATED_COLUMNS_VALUES)),
        owner=dict(type="str"),
        comment=dict(type="str"),
    )


def argument_spec():
    return dict(
        **publication_options(top_level=True),
        publications=dict(type="list", elements="dict", options=publication_options(top_level=False)),
    )


def run_list(m):
    items = m.params["publications"]
    desired = check_items(m, "publications", items, Desired, key=lambda d: d.name)
    m.connect()
    session = dict(m.query_one(SESSION_QUERY))
    publications = {item["name"]: PublicationModule(m, desired[i], session) for i, item in enumerate(items)}

    def plan(item):
        publication = publications[item["name"]]
        return publication, publication.prepare()

    def apply(planned):
        publication, prepared = planned
        return publication.apply(prepared)

    run_items(m, "publications", items, plan, apply, transactional=True)


def main():
    m = PgModule(
        argument_spec=argument_spec(),
        required_one_of=[("name", "publications")],
        mutually_exclusive=[("publications", key) for key in publication_options(True)],
    )
    if m.params["publications"] is not None:
        run_list(m)
        return
    try:
        desired = Desired(m.params)
    except OptionError as exc:
        m.fail(str(exc))
    m.connect()
    PublicationModule(m, desired).run()


if __name__ == "__main__":
    main()
