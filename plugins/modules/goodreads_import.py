#!/usr/bin/python
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: goodreads_import
short_description: Lab workload - import a Goodreads library export (CSV) into a table, idempotently and all-or-nothing
version_added: 0.1.0
description:
  - Reads a Goodreads library export (C(goodreads_library_export.csv)) on the managed host and upserts its
    books into O(table), one row per C(Book Id).
  - The whole file is validated before anything is written - the header must hold exactly Goodreads' 24
    columns (in any order), every field must convert to its column's type (numbers, V(YYYY/MM/DD) dates,
    ISBNs, booleans), book ids must be unique. The first problem fails the module with the file's physical
    line number (reviews may span lines; a row's line is the one it starts on), the column and the reason,
    and the table is not touched.
  - ISBNs lose Excel's formula quoting (V(="0596522690") becomes V(0596522690)); the shelves become text
    arrays; empty fields become NULL (the shelves, an empty array).
  - The rows are loaded in ONE transaction - COPY into a temporary table, then
    C(INSERT ... ON CONFLICT (book_id) DO UPDATE ... WHERE old row IS DISTINCT FROM new row). Importing the
    same file again changes no row and reports C(changed=false). Books missing from the file are kept.
  - In check mode the same statements run and are rolled back, so the predicted counts are exact.
author:
  - Inventium logical replication team (@inventium)
options:
  path:
    description:
      - The CSV file on the managed host (UTF-8, with or without a byte order mark).
    type: path
    required: true
  table:
    description:
      - The table to load. It must exist with the columns of C(roles/publisher/files/schema/goodreads_books.sql)
        (snake_case names of the header, for example C(book_id), C(author_l_f), C(isbn13)) and a primary key
        or unique constraint on C(book_id).
    type: str
    default: goodreads_books
  schema:
    description:
      - Schema of O(table).
    type: str
    default: public
  source_name:
    description:
      - Name of the file in messages (for example the controller's path when O(path) is a temporary copy).
      - Defaults to O(path).
    type: str
extends_documentation_fragment:
  - inventium.logical_replication.connection
  - inventium.logical_replication.workload_markers
  - inventium.logical_replication.attributes
  - inventium.logical_replication.attributes.platform
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - The table is published in the lab's C(library_pub); the subscribers receive the imported rows.
  - Supports PostgreSQL 13 and later.
seealso:
  - name: Goodreads export
    description: Where a library export is downloaded (My Books, Import and export).
    link: https://www.goodreads.com/review/import
"""

EXAMPLES = r"""
- name: Import a Goodreads export into the lab's publisher
  inventium.logical_replication.goodreads_import:
    login_host: 127.0.0.1
    login_password: "{{ publisher_password }}"
    login_db: publisher
    path: /tmp/goodreads_library_export.csv
  register: imported

- name: Report
  ansible.builtin.debug:
    msg: "{{ imported.rows }} books: {{ imported.inserted }} new, {{ imported.updated }} updated"
"""

RETURN = r"""
rows:
  description: Number of books in the file.
  returned: always
  type: int
  sample: 120
inserted:
  description: Number of books that were not in the table and were inserted.
  returned: always
  type: int
  sample: 3
updated:
  description: Number of books whose row differed and was updated.
  returned: always
  type: int
  sample: 1
unchanged:
  description: Number of books already present with identical values.
  returned: always
  type: int
  sample: 116
inserted_ids:
  description: Book ids inserted (at most 100 listed).
  returned: always
  type: list
  elements: int
updated_ids:
  description: Book ids updated (at most 100 listed).
  returned: always
  type: list
  elements: int
seconds:
  description: Duration of parsing and loading, in seconds.
  returned: always
  type: float
  sample: 0.21
rate:
  description: Books processed per second (O(path) rows / RV(seconds)).
  returned: always
  type: float
  sample: 571.4
error_line:
  description: Physical line of the file with the first problem.
  returned: on failure caused by the file
  type: int
  sample: 17
markers:
  description: Phases of the C(workload) measurement written to InfluxDB (V(start), V(stop)); empty without one.
  returned: always
  type: list
  elements: str
error_column:
  description: Column of the first problem (CSV header name), when a field is at fault.
  returned: on failure caused by the file
  type: str
  sample: Date Read
queries:
  description: The statements that changed something (the upsert; the rows themselves are not listed).
  returned: always
  type: list
  elements: str
"""

import time  # noqa: E402 - Ansible modules import after their documentation

from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_goodreads as goodreads  # noqa: E402
from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import (  # noqa: E402
    Markers,
    marker_argument_spec,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import (  # noqa: E402
    format_db_error,
    psycopg,
)
from ansible_collections.inventium.logical_replication.plugins.module_utils.pg_module import PgModule  # noqa: E402

LISTED_IDS = 100


def main():
    m = PgModule(
        argument_spec=dict(
            **marker_argument_spec(),
            path=dict(type="path", required=True),
            table=dict(type="str", default="goodreads_books"),
            schema=dict(type="str", default="public"),
            source_name=dict(type="str"),
        )
    )
    p = m.params
    start = time.monotonic()
    try:
        rows = goodreads.read_file(p["path"], name=p.get("source_name"))
    except goodreads.GoodreadsError as exc:
        m.fail(f"Goodreads import failed, nothing was changed: {exc}", error_line=exc.line, error_column=exc.column)
    conn = m.connect()
    existing = m.query(goodreads.table_columns_statement(), [p["schema"], p["table"]])
    if not existing:
        m.fail(
            f"table {p['schema']}.{p['table']} does not exist (create it with roles/publisher/files/schema/"
            "goodreads_books.sql, the publisher role's publisher_schema_files)"
        )
    missing = goodreads.missing_columns(row["name"] for row in existing)
    if missing:
        m.fail(f"table {p['schema']}.{p['table']} lacks the column(s) {', '.join(missing)} of a Goodreads export")

    markers = Markers(m, p.get("influx_endpoints"), node=p["influx_node"], workload="goodreads")
    if not m.check_mode:
        markers.start(planned_rows=len(rows))
    statement = goodreads.upsert_statement(p["schema"], p["table"])
    m.queries.append(m.render(statement))
    try:
        with conn.transaction() as tx:
            with conn.cursor() as cur:
                inserted, updated = goodreads.upsert(cur, rows, schema=p["schema"], table=p["table"])
            if m.check_mode:
                raise psycopg.Rollback(tx)  # check mode: exact counts, nothing kept
    except psycopg.Error as exc:
        m.fail(format_db_error(exc, (), "Goodreads import failed, nothing was changed"), sqlstate=exc.sqlstate)
    seconds = time.monotonic() - start
    rate = round(len(rows) / seconds, 1) if seconds > 0 else None
    if not m.check_mode:
        markers.stop(rows=len(rows), seconds=round(seconds, 3), rate=rate, inserted=len(inserted), updated=len(updated))
    m.exit(
        changed=bool(inserted or updated),
        rows=len(rows),
        inserted=len(inserted),
        updated=len(updated),
        unchanged=len(rows) - len(inserted) - len(updated),
        inserted_ids=inserted[:LISTED_IDS],
        updated_ids=updated[:LISTED_IDS],
        seconds=round(seconds, 3),
        rate=rate,
        markers=markers.written,
    )


if __name__ == "__main__":
    main()
