# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Server-side generation of synthetic rows (module ``synthetic_data``, benchmark ``synthetic_rows.py``).

Rows are produced by PostgreSQL itself, ``INSERT INTO t SELECT ... FROM generate_series(a, b)``,
one statement and one COMMIT per chunk, so millions of rows never travel through Python and a
long run is visible (and replicated) chunk by chunk. Every value is a deterministic function of
the row id (a multiplicative hash), so the same ids always give the same rows, and realistic
enough to look at: ISBN-shaped codes, titles from word lists, author names, topics, prices and
dates; the wide table mixes 64 columns of eight types; the document table has a TOASTed text body
of a configurable size (md5 words: compressible about like prose) and a nested jsonb document.

The tables are created by ``roles/publisher/files/schema/synthetic.sql``; :data:`TABLES` maps the
short names (``books``, ``wide``, ``docs``) to them. :func:`execute` runs the ``synthetic_data``
module.
"""

from __future__ import annotations

import time

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    sql = None

from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_markers import Markers
from ansible_collections.inventium.logical_replication.plugins.module_utils.connection import format_db_error, psycopg

TABLES = {"books": "synthetic_books", "wide": "synthetic_wide", "docs": "synthetic_docs"}
"""Short name -> table (in the schema given to the functions, default ``public``)."""

DEFAULT_DOC_BYTES = 4096
MD5_WORD = 33  # 32 hex characters and a space

ADJECTIVES = (
    "Practical",
    "Elegant",
    "Pragmatic",
    "Hidden",
    "Modern",
    "Quiet",
    "Distributed",
    "Effective",
    "Lost",
    "Patient",
    "Clean",
    "Secret",
    "Evolutionary",
    "Reliable",
    "Brief",
    "Complete",
    "Curious",
    "Wild",
    "Gentle",
    "Infinite",
    "Scalable",
    "Functional",
    "Ancient",
    "Last",
)
NOUNS = (
    "Architecture",
    "Garden",
    "Database",
    "Leadership",
    "River",
    "Replication",
    "Teams",
    "Patterns",
    "Design",
    "Kingdom",
    "Algorithms",
    "Systems",
    "Journey",
    "Compilers",
    "Habits",
    "Ocean",
    "Networks",
    "Choices",
    "Mountains",
    "Queries",
    "Letters",
    "Engines",
    "Machines",
    "Cities",
)
FIRST_NAMES = (
    "Ada",
    "Grace",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Alan",
    "Margaret",
    "Ken",
    "Radia",
    "Niklaus",
    "Sophie",
    "Tony",
    "Anita",
    "John",
    "Lynn",
    "Martin",
    "Mary",
    "Leslie",
    "Hedy",
)
LAST_NAMES = (
    "Lovelace",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Turing",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Wirth",
    "Wilson",
    "Hoare",
    "Borg",
    "Backus",
    "Conway",
    "Fowler",
    "Shaw",
    "Lamport",
    "Lamarr",
)
TOPICS = ("technical", "leadership", "fiction", "history", "science", "poetry", "travel", "cooking")
BINDINGS = ("Paperback", "Hardcover", "Kindle Edition", "ebook", "Audiobook", "Mass Market Paperback")


def _text_array(values):
    return sql.SQL("(ARRAY[{}]::text[])").format(sql.SQL(", ").join(sql.Literal(v) for v in values))


def _pick(values, hash_expr):
    """``(ARRAY[...])[1 + hash % n]``: a deterministic choice among ``values``."""
    return sql.SQL("{}[1 + ({}) % {}]").format(_text_array(values), hash_expr, sql.Literal(len(values)))


def _h(shift):
    """The row hash ``h`` (a non-negative bigint below 2^32) shifted right by ``shift`` bits."""
    return sql.SQL("(h >> {})").format(sql.Literal(shift)) if shift else sql.SQL("h")


def _hash_source(first, last):
    """The ids ``first .. last`` and their multiplicative hash ``h`` (Knuth), below 2^32, once per row."""
    return sql.SQL(
        "(SELECT g AS id, ((g * 2654435761) % 4294967296) AS h FROM generate_series({}::bigint, {}::bigint) AS g) AS s"
    ).format(sql.Literal(int(first)), sql.Literal(int(last)))


def _books_columns():
    return [
        ("id", sql.SQL("id")),
        (
            "isbn13",
            sql.SQL("'978' || lpad(((h * 7 + id) % 1000000000)::text, 9, '0') || ((h >> 3) % 10)::text"),
        ),
        ("title", sql.SQL("{} || ' ' || {}").format(_pick(ADJECTIVES, _h(0)), _pick(NOUNS, _h(5)))),
        ("author", sql.SQL("{} || ' ' || {}").format(_pick(FIRST_NAMES, _h(10)), _pick(LAST_NAMES, _h(15)))),
        ("topic", _pick(TOPICS, _h(20))),
        ("pages", sql.SQL("(80 + (h >> 7) % 900)::integer")),
        ("price", sql.SQL("((499 + (h >> 9) % 6000) / 100.0)::numeric(7, 2)")),
        ("published", sql.SQL("(date '1950-01-01' + ((h >> 11) % 27000)::integer)")),
    ]


def _wide_columns():
    columns = [("id", sql.SQL("id"))]
    for i in range(1, 17):
        columns.append((f"i{i:02d}", sql.SQL(f"((h >> {i}) % 100000)::integer")))
    for i in range(1, 9):
        columns.append((f"b{i:02d}", sql.SQL(f"(h * {i + 1} + id)")))
    for i in range(1, 9):
        columns.append((f"n{i:02d}", sql.SQL(f"(((h >> {i + 2}) % 10000000) / 100.0)::numeric(12, 2)")))
    for i in range(1, 17):
        words = NOUNS if i % 2 else ADJECTIVES
        columns.append(
            (
                f"t{i:02d}",
                sql.SQL("{} || ' ' || ((h >> {}) % 1000)::text").format(_pick(words, _h(i)), sql.Literal(i + 4)),
            )
        )
    for i in range(1, 5):
        columns.append((f"d{i:02d}", sql.SQL(f"(date '2000-01-01' + ((h >> {i * 3}) % 9000)::integer)")))
    for i in range(1, 5):
        expr = f"(timestamptz '2020-01-01 00:00:00+00' + ((h >> {i}) % 157680000) * interval '1 second')"
        columns.append((f"ts{i:02d}", sql.SQL(expr)))
    for i in range(1, 5):
        columns.append((f"f{i:02d}", sql.SQL(f"((h >> {i + 8}) % 2 = 0)")))
    for i in range(1, 4):
        columns.append((f"u{i:02d}", sql.SQL(f"md5((id * {i})::text || 'u')::uuid")))
    return columns


def _docs_columns(doc_bytes):
    words = max(1, -(-int(doc_bytes) // MD5_WORD))
    body = sql.SQL("(SELECT string_agg(md5((id * {} + k)::text), ' ') FROM generate_series(1, {}) AS k)").format(
        sql.Literal(words + 1), sql.Literal(words)
    )
    attrs = sql.SQL(
        "jsonb_build_object("
        "'title', {title}, 'topic', {topic}, 'binding', {binding}, "
        "'tags', jsonb_build_array({tag1}, {tag2}, {tag3}), "
        "'ratings', jsonb_build_object('average', ((h >> 4) % 500) / 100.0, 'count', (h >> 6) % 100000), "
        "'editions', jsonb_build_array("
        "jsonb_build_object('year', 1950 + (h >> 8) % 70, 'pages', 80 + (h >> 9) % 900), "
        "jsonb_build_object('year', 1960 + (h >> 10) % 60, 'pages', 80 + (h >> 11) % 900)), "
        "'in_print', (h >> 12) % 2 = 0)"
    ).format(
        title=sql.SQL("{} || ' ' || {}").format(_pick(ADJECTIVES, _h(0)), _pick(NOUNS, _h(5))),
        topic=_pick(TOPICS, _h(20)),
        binding=_pick(BINDINGS, _h(13)),
        tag1=_pick(NOUNS, _h(1)),
        tag2=_pick(NOUNS, _h(2)),
        tag3=_pick(ADJECTIVES, _h(3)),
    )
    return [
        ("id", sql.SQL("id")),
        ("book_id", sql.SQL("(1 + (h % 1000000))")),
        ("body", body),
        ("attrs", attrs),
    ]


def columns(kind, doc_bytes=DEFAULT_DOC_BYTES):
    """``[(column, expression)]`` generating a row of table ``kind`` from ``id`` and ``h``."""
    if kind == "books":
        return _books_columns()
    if kind == "wide":
        return _wide_columns()
    if kind == "docs":
        return _docs_columns(doc_bytes)
    raise ValueError(f"unknown synthetic table {kind!r}; choose from {', '.join(TABLES)}")


def insert_statement(kind, first, last, schema="public", table=None, doc_bytes=DEFAULT_DOC_BYTES):
    """``INSERT INTO schema.table (...) SELECT ... FROM generate_series(first, last)`` (ids inclusive)."""
    cols = columns(kind, doc_bytes)
    return sql.SQL("INSERT INTO {table} ({names}) SELECT {exprs} FROM {source}").format(
        table=sql.Identifier(schema, table or TABLES[kind]),
        names=sql.SQL(", ").join(sql.Identifier(name) for name, _expr in cols),
        exprs=sql.SQL(", ").join(expr for _name, expr in cols),
        source=_hash_source(first, last),
    )


def chunks(first_id, rows, chunk_size):
    """``[(first, last), ...]`` id ranges (inclusive) of at most ``chunk_size`` rows covering ``rows`` rows."""
    if rows < 0 or chunk_size < 1:
        raise ValueError("rows must be >= 0 and chunk_size >= 1")
    out = []
    start = int(first_id)
    end = start + int(rows)
    while start < end:
        stop = min(start + int(chunk_size), end)
        out.append((start, stop - 1))
        start = stop
    return out


def progress_line(done, total, elapsed):
    """``rows 300000/1000000 (30%), 210000 rows/s``."""
    percent = 100.0 * done / total if total else 100.0
    rate = done / elapsed if elapsed > 0 else 0.0
    return f"rows {done}/{total} ({percent:.0f}%), {rate:.0f} rows/s"


def generate(
    conn, kind, first_id, rows, chunk_size, schema="public", table=None, doc_bytes=DEFAULT_DOC_BYTES, progress=None
):
    """Insert ``rows`` rows with ids ``first_id ..`` in committed chunks on ``conn`` (autocommit session).

    Each chunk runs as its own transaction (``BEGIN; INSERT ... SELECT; COMMIT``). ``progress`` is
    called after each chunk with ``(done, total, elapsed_seconds)``. Returns a dict with ``rows``,
    ``first_id``, ``last_id``, ``chunks`` (count), ``seconds`` and ``rows_per_second``.
    """
    ranges = chunks(first_id, rows, chunk_size)
    start = time.monotonic()
    done = 0
    for first, last in ranges:
        with conn.transaction():
            conn.execute(insert_statement(kind, first, last, schema=schema, table=table, doc_bytes=doc_bytes))
        done += last - first + 1
        if progress is not None:
            progress(done, rows, time.monotonic() - start)
    seconds = time.monotonic() - start
    return {
        "rows": done,
        "first_id": ranges[0][0] if ranges else None,
        "last_id": ranges[-1][1] if ranges else None,
        "chunks": len(ranges),
        "seconds": round(seconds, 3),
        "rows_per_second": round(done / seconds, 1) if seconds > 0 else None,
    }


# --------------------------------------------------------------------------- the module's steps
def execute(m):
    """The ``synthetic_data`` module's steps after argument parsing (``m``: its PgModule)."""
    p = m.params
    if p["rows"] < 0 or p["chunk_size"] < 1 or p["doc_bytes"] < 1:
        m.fail("rows must be >= 0, chunk_size and doc_bytes >= 1")
    name = TABLES[p["table"]]
    target = sql.Identifier(p["schema"], name)
    conn = m.connect()
    exists = m.query_one("SELECT to_regclass(%s) IS NOT NULL AS present", [f'"{p["schema"]}"."{name}"'])["present"]
    if not exists:
        m.fail(
            f"table {p['schema']}.{name} does not exist (create it with roles/publisher/files/schema/synthetic.sql, "
            "the publisher role's publisher_schema_files)"
        )
    first_id = p.get("first_id")
    if p["truncate"]:
        m.queries.append(m.render(sql.SQL("TRUNCATE {}").format(target)))
        first_id = first_id or 1
    if first_id is None:
        first_id = m.query_one(sql.SQL("SELECT coalesce(max(id), 0) + 1 AS next FROM {}").format(target))["next"]
    ranges = chunks(first_id, p["rows"], p["chunk_size"])
    if ranges:
        m.queries.append(
            m.render(
                insert_statement(p["table"], ranges[0][0], ranges[0][1], schema=p["schema"], doc_bytes=p["doc_bytes"])
            )
        )
    if m.check_mode:
        m.exit(
            changed=bool(ranges) or p["truncate"],
            table=f"{p['schema']}.{name}",
            rows=p["rows"],
            first_id=first_id,
            last_id=ranges[-1][1] if ranges else None,
            chunks=len(ranges),
            seconds=0.0,
            rate=None,
            progress=[],
            table_bytes=None,
            markers=[],
        )
    markers = Markers(m, p.get("influx_endpoints"), node=p["influx_node"], workload="synthetic")
    if "start" in p["influx_phases"]:
        markers.start(planned_rows=p["rows"], table=name)
    progress = []
    try:
        if p["truncate"]:
            conn.execute(sql.SQL("TRUNCATE {}").format(target))
        result = generate(
            conn,
            p["table"],
            first_id,
            p["rows"],
            p["chunk_size"],
            schema=p["schema"],
            doc_bytes=p["doc_bytes"],
            progress=lambda done, total, elapsed: progress.append(progress_line(done, total, elapsed)),
        )
    except psycopg.Error as exc:
        m.fail(
            format_db_error(
                exc, (), f"generating rows into {p['schema']}.{name} failed after {len(progress)} committed chunk(s)"
            ),
            sqlstate=exc.sqlstate,
            progress=progress,
        )
    size = m.query_one("SELECT pg_total_relation_size(%s::regclass) AS bytes", [f'"{p["schema"]}"."{name}"'])["bytes"]
    if "stop" in p["influx_phases"]:
        markers.stop(rows=result["rows"], seconds=result["seconds"], rate=result["rows_per_second"], table=name)
    m.exit(
        changed=result["rows"] > 0 or p["truncate"],
        table=f"{p['schema']}.{name}",
        rows=result["rows"],
        first_id=result["first_id"],
        last_id=result["last_id"],
        chunks=result["chunks"],
        seconds=result["seconds"],
        rate=result["rows_per_second"],
        progress=progress,
        table_bytes=size,
        markers=markers.written,
    )
