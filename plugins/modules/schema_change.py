#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: schema_change
short_description: Apply a schema migration to one node of a logical replication setup, in one transaction
version_added: 0.2.0
description:
  - Runs a migration (SQL text or a list of statements) on the node it connects to, in ONE transaction -
    a statement that fails rolls back the whole migration, so nothing is half-applied on the node.
  - What the migration changes is not guessed from its text. PostgreSQL runs it, and the catalog is read
    before and after inside the same transaction - every user table with its columns (by C(attnum), types
    by C(format_type)) and indexes. The difference is returned as RV(delta) - added, dropped and renamed
    tables, added, dropped and renamed columns, type changes, added and dropped indexes.
  - A change that would stop the apply worker of logical replication is destructive - dropping or renaming
    a replicated column, changing its type, dropping or renaming a replicated table. On a publisher a table
    is replicated when a publication publishes it (C(pg_publication_tables); a column that the publication's
    column list leaves out is not replicated); on a subscriber when a subscription replicates into it
    (C(pg_subscription_rel); every column counts there). A destructive migration is rolled back and the
    module fails with the safe sequence for each change, unless O(allow_destructive=true).
  - Statements PostgreSQL cannot run inside a transaction block (C(CREATE INDEX CONCURRENTLY), C(VACUUM),
    ...) are refused with a clear message and nothing applied; run them on their own. Transaction control
    (C(BEGIN), C(COMMIT), C(SAVEPOINT) ...) in the migration is refused before anything runs.
  - Idempotent as the migration is - a migration whose statements change nothing (C(CREATE TABLE IF NOT
    EXISTS) of a table that exists, C(ADD COLUMN IF NOT EXISTS) of a column that exists) reports
    C(changed=false). The module reports a change when the catalog snapshot differs or when the transaction
    wrote anything (it was assigned a transaction id - data changes, comments, grants).
  - This module changes ONE node. The order across the publisher and its subscribers (additive changes on
    the subscribers first, then the publisher) is the job of C(playbooks/schema_change.yml).
author:
  - Inventium logical replication team (@inventium)
options:
  migration:
    description:
      - The migration. SQL text (several statements separated by semicolons; read a file with
        C(lookup('file', ...))) or a list of statements.
      - Text is split at the semicolons that end statements (quotes, dollar quotes and comments are
        respected); a SQL-standard function body (C(BEGIN ATOMIC ... END)) has semicolons of its own, give
        such a migration as a list.
    type: raw
    required: true
  allow_destructive:
    description:
      - Apply a migration that drops or renames a replicated column or table or changes a replicated column's
        type. Without it such a migration is rolled back and the module fails, naming each change and its
        safe sequence.
    type: bool
    default: false
  lock_timeout:
    description:
      - C(lock_timeout) of the migration's transaction. C(ALTER TABLE) takes an exclusive lock; while it waits
        for a long transaction every writer of the table queues behind it, so a bounded wait fails the
        migration (nothing applied) instead of stalling the workload. Empty - the server's setting.
    type: str
    default: 10s
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
    details: >-
      Check mode runs the migration and rolls it back, so the delta and the classification are exactly
      what PostgreSQL would do. It takes the same locks as a real run, briefly (an C(ALTER TABLE) blocks the
      table's writers until the rollback).
  diff_mode:
    support: full
notes:
  - Supports PostgreSQL 13 and later.
  - Sequences, data and other objects than tables are changed as the migration says but not classified.
seealso:
  - name: Logical replication restrictions
    description: The database schema and DDL commands are not replicated.
    link: https://www.postgresql.org/docs/current/logical-replication-restrictions.html
  - module: inventium.logical_replication.publication
  - module: inventium.logical_replication.subscription
"""

EXAMPLES = r"""
- name: Add a column on a subscriber (subscribers first, then the publisher)
  inventium.logical_replication.schema_change:
    login_db: subscriber
    migration: "ALTER TABLE public.books ADD COLUMN IF NOT EXISTS isbn text"

- name: Plan a migration file on the publisher (runs it and rolls back)
  inventium.logical_replication.schema_change:
    login_db: publisher
    migration: "{{ lookup('ansible.builtin.file', 'migrations/0004_orders.sql') }}"
  check_mode: true
  register: plan

- name: Show what it would change
  ansible.builtin.debug:
    var: plan.delta

- name: Drop a column that was removed from the publication's column list, knowingly
  inventium.logical_replication.schema_change:
    login_db: publisher
    migration:
      - ALTER TABLE public.books DROP COLUMN legacy_code
    allow_destructive: true
"""

RETURN = r"""
statements:
  description: The migration's statements, as run (in check mode, as run and rolled back).
  returned: always
  type: list
  elements: str
  sample: ["ALTER TABLE public.books ADD COLUMN IF NOT EXISTS isbn text"]
queries:
  description: Same as RV(statements) - the statements that changed (or would change) the node.
  returned: always
  type: list
  elements: str
delta:
  description: What the migration changed in the tables, each a list (empty when nothing of that kind).
  returned: success, and when refused as destructive
  type: dict
  contains:
    added_tables:
      description: New tables - C(table), C(columns) (C(name type)).
      type: list
      elements: dict
    dropped_tables:
      description: Dropped tables - C(table).
      type: list
      elements: dict
    renamed_tables:
      description: Renamed tables - C(from), C(to).
      type: list
      elements: dict
    added_columns:
      description: New columns - C(table), C(column), C(type).
      type: list
      elements: dict
    dropped_columns:
      description: Dropped columns - C(table), C(column), C(type).
      type: list
      elements: dict
    renamed_columns:
      description: Renamed columns (same position, new name) - C(table), C(from), C(to).
      type: list
      elements: dict
    type_changes:
      description: Columns whose type changed - C(table), C(column), C(from), C(to).
      type: list
      elements: dict
    added_indexes:
      description: New indexes - C(table), C(index).
      type: list
      elements: dict
    dropped_indexes:
      description: Dropped indexes - C(table), C(index).
      type: list
      elements: dict
  sample:
    added_columns: [{table: public.books, column: isbn, type: text}]
destructive:
  description:
    - The destructive changes - C(kind) (C(dropped_column), C(renamed_column), C(type_change),
      C(dropped_table), C(renamed_table)), C(table), C(column), C(used_by) (publications or subscriptions),
      C(message) and C(safe_sequence). Empty when there is none.
  returned: success, and when refused as destructive
  type: list
  elements: dict
added_table_publications:
  description:
    - For each added table, the publications of this node that publish it after the change (for example a
      C(FOR ALL TABLES) or C(TABLES IN SCHEMA) publication). An empty list - no publication publishes it yet.
  returned: success
  type: dict
  sample: {public.reviews: []}
added_table_sequences:
  description:
    - For each added table, its sequences (serial and identity columns, defaults calling C(nextval)) - what a
      replication role needs C(SELECT) on to read their values (M(inventium.logical_replication.sequences)).
  returned: success
  type: dict
  sample: {public.reviews: [public.reviews_id_seq]}
committed:
  description: Whether the transaction was committed (false in check mode - it was rolled back).
  returned: success
  type: bool
failed_statement:
  description: The statement that failed or was refused - C(index) (from 1) and C(statement).
  returned: when a statement fails
  type: dict
sqlstate:
  description: PostgreSQL's SQLSTATE of the failed statement.
  returned: when a statement fails
  type: str
diff:
  description: The affected tables' columns (C(name type)) before and after; with C(--diff).
  returned: success, in diff mode
  type: dict
"""

from ansible_collections.inventium.logical_replication.plugins.module_utils._schema_change import (  # noqa: E402
    MigrationError,
    normalize_migration,
    run_migration,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    format_db_error,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402


def main():
    m = PgModule(
        argument_spec=dict(
            migration=dict(type="raw", required=True),
            allow_destructive=dict(type="bool", default=False),
            lock_timeout=dict(type="str", default="10s"),
        )
    )
    migration = m.params["migration"]
    if not isinstance(migration, (str, list)):
        m.fail(f"migration must be SQL text or a list of statements, not {type(migration).__name__}")
    try:
        statements = normalize_migration(migration)
    except MigrationError as exc:
        m.fail(str(exc), statements=[], **exc.details)
    m.connect()
    m.require_versions("schema_change module", [])
    m.queries = list(statements)
    try:
        result = run_migration(
            m.conn,
            m.server_major,
            statements,
            allow_destructive=m.params["allow_destructive"],
            check_mode=m.check_mode,
            lock_timeout=m.params["lock_timeout"] or None,
        )
    except MigrationError as exc:
        m.fail(str(exc), statements=statements, changed=False, **exc.details)
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, action="schema_change failed, nothing was applied"), statements=statements)
    m.exit(
        changed=result["changed"],
        diff=result["diff"],
        statements=statements,
        delta=result["delta"],
        destructive=result["destructive"],
        added_table_publications=result["publications"],
        added_table_sequences=result["sequences"],
        committed=result["committed"],
    )


if __name__ == "__main__":
    main()
