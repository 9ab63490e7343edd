# Private to the inventium.logical_replication collection: not a public API.
# Copyright (c) 2025, Inventium logical replication team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Goodreads library export (CSV): parsing, validation and the idempotent upsert.

Used by the ``goodreads_import`` module. Parsing is pure (no database) and validates the whole
file before anything is written: the header must be exactly Goodreads' 24 columns (any order),
every field must convert to its column's type, ``book_id`` must be unique. Any problem raises
:class:`GoodreadsError` naming the file's PHYSICAL line (reviews may span several lines; a row's
line is the line it starts on), the column and the reason.

The load (:func:`upsert`) runs in the caller's single transaction: COPY into a temporary table,
then ``INSERT ... ON CONFLICT (book_id) DO UPDATE ... WHERE (row) IS DISTINCT FROM (new row)``, so
loading the same file twice touches no row (and writes no WAL for them) and reports nothing
changed. The table's DDL is ``roles/publisher/files/schema/goodreads_books.sql``.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from decimal import Decimal, InvalidOperation

try:
    from psycopg import sql
except ImportError:  # pragma: no cover - the module reports the missing library
    sql = None

# (CSV header, column, type) in Goodreads' order. Types: see _CONVERTERS.
COLUMNS = (
    ("Book Id", "book_id", "id"),
    ("Title", "title", "title"),
    ("Author", "author", "text"),
    ("Author l-f", "author_l_f", "text"),
    ("Additional Authors", "additional_authors", "text"),
    ("ISBN", "isbn", "isbn10"),
    ("ISBN13", "isbn13", "isbn13"),
    ("My Rating", "my_rating", "rating"),
    ("Average Rating", "average_rating", "average"),
    ("Publisher", "publisher", "text"),
    ("Binding", "binding", "text"),
    ("Number of Pages", "number_of_pages", "count"),
    ("Year Published", "year_published", "year"),
    ("Original Publication Year", "original_publication_year", "year"),
    ("Date Read", "date_read", "date"),
    ("Date Added", "date_added", "date"),
    ("Bookshelves", "bookshelves", "list"),
    ("Bookshelves with positions", "bookshelves_with_positions", "list"),
    ("Exclusive Shelf", "exclusive_shelf", "text"),
    ("My Review", "my_review", "text"),
    ("Spoiler", "spoiler", "bool"),
    ("Private Notes", "private_notes", "text"),
    ("Read Count", "read_count", "count"),
    ("Owned Copies", "owned_copies", "count"),
)
HEADERS = tuple(header for header, _column, _kind in COLUMNS)
COLUMN_NAMES = tuple(column for _header, column, _kind in COLUMNS)
# PostgreSQL types of the temporary staging table (the target table has the same types).
SQL_TYPES = {
    "id": "bigint",
    "title": "text",
    "text": "text",
    "isbn10": "text",
    "isbn13": "text",
    "rating": "smallint",
    "average": "numeric(3,2)",
    "count": "integer",
    "year": "integer",
    "date": "date",
    "list": "text[]",
    "bool": "boolean",
}

_EXCEL_QUOTED = re.compile(r'="(.*)"\Z', re.S)
_INTEGER = re.compile(r"[+-]?\d+\Z")
_ISBN10 = re.compile(r"\d{9}[\dX]\Z")
_ISBN13 = re.compile(r"\d{13}\Z")
_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})\Z")
_MAX_INT = 2**31 - 1
_MAX_BIGINT = 2**63 - 1


def snake_case(header):
    """``Author l-f`` -> ``author_l_f``, ``Bookshelves with positions`` -> ``bookshelves_with_positions``."""
    return re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")


class GoodreadsError(ValueError):
    """A file that cannot be imported: ``line`` (physical, 1-based), ``column`` and ``reason``."""

    def __init__(self, reason, line=None, column=None, path=None):
        self.reason = reason
        self.line = line
        self.column = column
        self.path = path
        super().__init__(self.describe())

    def describe(self):
        where = []
        if self.path:
            where.append(str(self.path))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class FieldError(ValueError):
    """A field that does not convert; turned into a :class:`GoodreadsError` with its line and column."""


def unexcel(value):
    """Strip Excel's formula quoting: ``="0596522690"`` -> ``0596522690``, ``=""`` -> ``''``."""
    match = _EXCEL_QUOTED.match(value)
    return match.group(1) if match else value


def _integer(value, minimum=None, maximum=_MAX_INT, what="an integer"):
    if not _INTEGER.match(value):
        raise FieldError(f"{value!r} is not {what}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise FieldError(f"{value!r} is below {minimum}")
    if number > maximum:
        raise FieldError(f"{value!r} is above {maximum}")
    return number


def _convert_id(value):
    if value == "":
        raise FieldError("the book id is empty")
    return _integer(value, minimum=1, maximum=_MAX_BIGINT, what="a book id (a positive integer)")


def _convert_title(value):
    if value.strip() == "":
        raise FieldError("the title is empty")
    return value


def _convert_text(value):
    return value if value != "" else None


def _convert_isbn(pattern, label):
    def convert(value):
        value = unexcel(value).strip()
        if value == "":
            return None
        if not pattern.match(value.upper()):
            raise FieldError(f"{value!r} is not an {label}")
        return value.upper()

    return convert


def _convert_rating(value):
    if value == "":
        return None
    return _integer(value, minimum=0, maximum=5, what="a rating (0 to 5)")


def _convert_average(value):
    if value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise FieldError(f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0 or number > 5:
        raise FieldError(f"{value!r} is not an average rating (0 to 5)")
    return number.quantize(Decimal("0.01"))


def _convert_count(value):
    if value == "":
        return None
    return _integer(value, minimum=0, what="a non-negative integer")


def _convert_year(value):
    if value == "":
        return None
    # Original publication years of ancient works are negative (-800 for the Iliad).
    return _integer(value, minimum=-9999, maximum=9999, what="a year")


def _convert_date(value):
    if value == "":
        return None
    match = _DATE.match(value)
    if not match:
        raise FieldError(f"{value!r} is not a date (YYYY/MM/DD)")
    try:
        return datetime.date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise FieldError(f"{value!r} is not a valid date ({exc})") from None


def _convert_list(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def _convert_bool(value):
    lowered = value.strip().lower()
    if lowered == "":
        return None
    if lowered in ("true", "t", "yes", "1"):
        return True
    if lowered in ("false", "f", "no", "0"):
        return False
    raise FieldError(f"{value!r} is not a boolean (true/false)")


_CONVERTERS = {
    "id": _convert_id,
    "title": _convert_title,
    "text": _convert_text,
    "isbn10": _convert_isbn(_ISBN10, "ISBN-10"),
    "isbn13": _convert_isbn(_ISBN13, "ISBN-13"),
    "rating": _convert_rating,
    "average": _convert_average,
    "count": _convert_count,
    "year": _convert_year,
    "date": _convert_date,
    "list": _convert_list,
    "bool": _convert_bool,
}


def check_header(header):
    """Map each expected column to its index in ``header``; raise :class:`GoodreadsError` (line 1)."""
    names = [name.strip() for name in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:]
    seen = {}
    for index, name in enumerate(names):
        if name in seen:
            raise GoodreadsError(f"the header repeats column {name!r}", line=1)
        seen[name] = index
    missing = [h for h in HEADERS if h not in seen]
    unknown = [n for n in names if n not in HEADERS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(m) for m in missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(u) for u in unknown))
        raise GoodreadsError(
            "not a Goodreads library export header (" + "; ".join(parts) + "). Expected: " + ",".join(HEADERS),
            line=1,
        )
    return [seen[h] for h in HEADERS]


def convert_row(fields, positions, line):
    """Convert one CSV record (list of strings) into a dict of typed column values."""
    if len(fields) != len(positions):
        raise GoodreadsError(f"expected {len(positions)} fields, found {len(fields)}", line=line)
    row = {}
    for (header, column, kind), index in zip(COLUMNS, positions):  # noqa: B905 - Python 3.8 targets
        try:
            row[column] = _CONVERTERS[kind](fields[index])
        except FieldError as exc:
            raise GoodreadsError(str(exc), line=line, column=header) from None
    return row


def parse(text, path=None):
    """Parse and validate a whole export (``str``); return the list of typed rows (dicts).

    Raises :class:`GoodreadsError` with the physical line number for the first problem found:
    wrong header, a field that does not convert, a wrong number of fields, a quote that is never
    closed or a stray quote, a duplicate ``book_id``.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise GoodreadsError(f"malformed CSV header: {exc}", line=1, path=path) from None
    if header is None:
        raise GoodreadsError("the file is empty (no header)", line=1, path=path)
    try:
        positions = check_header(header)
    except GoodreadsError as exc:
        raise GoodreadsError(exc.reason, line=exc.line, path=path) from None
    rows = []
    first_line = {}
    line = reader.line_num + 1  # the line the next record starts on
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            reason = str(exc)
            if "unexpected end of data" in reason or "EOF" in reason:
                reason = f"a quoted field that starts in this record is never closed ({exc})"
            else:
                reason = f"malformed CSV ({exc})"
                if reader.line_num > line:
                    reason += (
                        f"; the record starting on this line runs on to line {reader.line_num}: probably a quoted"
                        " field that is never closed"
                    )
            raise GoodreadsError(reason, line=line, path=path) from None
        if not fields:
            line = reader.line_num + 1
            continue  # a blank line
        try:
            row = convert_row(fields, positions, line)
        except GoodreadsError as exc:
            raise GoodreadsError(exc.reason, line=exc.line, column=exc.column, path=path) from None
        book_id = row["book_id"]
        if book_id in first_line:
            raise GoodreadsError(
                f"book id {book_id} appears again (first on line {first_line[book_id]})",
                line=line,
                column="Book Id",
                path=path,
            )
        first_line[book_id] = line
        rows.append(row)
        line = reader.line_num + 1
    return rows


def read_file(path, name=None):
    """Read ``path`` (UTF-8, with or without BOM) and :func:`parse` it; messages call it ``name`` (or ``path``)."""
    name = name or path
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise GoodreadsError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=name) from None
    except OSError as exc:
        raise GoodreadsError(f"cannot read the file: {exc.strerror}", path=name) from None
    return parse(text, path=name)


# ----------------------------------------------------------------------------------------------
# Database side
# ----------------------------------------------------------------------------------------------

STAGING_TABLE = "inventium_goodreads_staging"


def staging_ddl():
    """``CREATE TEMPORARY TABLE ... ON COMMIT DROP`` with the export's columns and types."""
    return sql.SQL("CREATE TEMPORARY TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(STAGING_TABLE),
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(SQL_TYPES[kind]))
            for _header, column, kind in COLUMNS
        ),
    )


def upsert_statement(schema, table):
    """The idempotent upsert from the staging table; returns one row per inserted or updated book."""
    target = sql.Identifier(schema, table)
    cols = [sql.Identifier(c) for c in COLUMN_NAMES]
    updatable = [sql.Identifier(c) for c in COLUMN_NAMES if c != "book_id"]
    return sql.SQL(
        "INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {staging} "
        "ON CONFLICT (book_id) DO UPDATE SET {sets} "
        "WHERE ({old}) IS DISTINCT FROM ({new}) "
        "RETURNING t.book_id, (t.xmax = 0) AS inserted"
    ).format(
        target=target,
        cols=sql.SQL(", ").join(cols),
        staging=sql.Identifier(STAGING_TABLE),
        sets=sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(c, c) for c in updatable),
        old=sql.SQL(", ").join(sql.SQL("t.{}").format(c) for c in updatable),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in updatable),
    )


def table_columns_statement():
    return (
        "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM pg_catalog.pg_attribute a"
        " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
    )


def missing_columns(existing):
    """Export columns the target table lacks (``existing``: iterable of column names)."""
    have = set(existing)
    return [c for c in COLUMN_NAMES if c not in have]


def upsert(cursor, rows, schema="public", table="goodreads_books"):
    """Stage ``rows`` with COPY and upsert them in the cursor's current transaction.

    Returns ``(inserted_ids, updated_ids)``. The caller owns the transaction (commit, or roll
    back for check mode).
    """
    cursor.execute(staging_ddl())
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(STAGING_TABLE), sql.SQL(", ").join(sql.Identifier(c) for c in COLUMN_NAMES)
    )
    with cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in COLUMN_NAMES])
    cursor.execute(upsert_statement(schema, table))
    inserted, updated = [], []
    for record in cursor.fetchall():
        book_id, was_inserted = (record["book_id"], record["inserted"]) if isinstance(record, dict) else record
        (inserted if was_inserted else updated).append(book_id)
    return sorted(inserted), sorted(updated)
