"""goodreads_import module against a real PostgreSQL server (one major: the parsing is version-blind).

The synthetic sample export (tests/data/goodreads_sample.csv) is imported, re-imported (nothing
changes), edited (one update), predicted in check mode; malformed exports (bad number, bad date,
unterminated quote, wrong header) fail with the physical line number and leave the table exactly
as it was, even though valid rows (a new book, an edited title) precede the bad one.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support.ansible import run_module

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "goodreads_sample.csv"
SCHEMA = REPO / "roles" / "publisher" / "files" / "schema" / "goodreads_books.sql"


@pytest.fixture
def library(pg_harness, pg_majors, pg_database_factory):
    """A fresh database with the lab's goodreads_books table, on the lowest selected major."""
    database = pg_database_factory(pg_harness.shared_server(pg_majors[0]), "gr")
    with database.connect() as conn:
        conn.execute(SCHEMA.read_text())
    return database


def preload(database) -> None:
    """Load the sample directly with the module's own code (faster than a module run)."""
    from psycopg.rows import dict_row

    from ansible_collections.inventium.logical_replication.plugins.module_utils import _workload_goodreads as goodreads

    with database.connect() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        inserted, _updated = goodreads.upsert(cur, goodreads.read_file(SAMPLE))
    assert len(inserted) == 120


def snapshot(database) -> list[tuple]:
    return database.execute("SELECT * FROM goodreads_books ORDER BY book_id")


def records() -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(SAMPLE.read_text(encoding="utf-8"), newline="")))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def args(database, path) -> dict:
    return {**database.login_args(), "path": str(path)}


def test_import_is_idempotent_and_typed(library, tmp_path):
    first = run_module("goodreads_import", args(library, SAMPLE))
    assert first["changed"] is True
    assert (first["rows"], first["inserted"], first["updated"], first["unchanged"]) == (120, 120, 0, 0)
    assert first["rate"] > 0
    assert library.scalar("SELECT count(*) FROM goodreads_books") == 120
    # Excel quoting gone, arrays and dates typed, the negative year of an ancient work kept.
    assert library.scalar("SELECT count(*) FROM goodreads_books WHERE isbn LIKE '=%' OR isbn13 LIKE '%\"%'") == 0
    assert library.scalar("SELECT min(original_publication_year) FROM goodreads_books") == -750
    assert library.scalar("SELECT count(*) FROM goodreads_books WHERE my_review LIKE %s", ["%\n%"]) > 0
    assert library.scalar("SELECT pg_typeof(bookshelves)::text FROM goodreads_books LIMIT 1") == "text[]"
    before = snapshot(library)

    again = run_module("goodreads_import", args(library, SAMPLE))
    assert again["changed"] is False
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 120)
    assert snapshot(library) == before

    header, rows = records()
    rows[5][header.index("My Rating")] = "1" if rows[5][header.index("My Rating")] != "1" else "2"
    edited = write_csv(tmp_path / "edited.csv", header, rows)
    predicted = run_module("goodreads_import", args(library, edited), check=True)
    assert predicted["changed"] is True
    assert predicted["updated_ids"] == [int(rows[5][0])]
    assert snapshot(library) == before  # check mode rolled back
    updated = run_module("goodreads_import", args(library, edited))
    assert updated["updated_ids"] == [int(rows[5][0])]
    assert updated["inserted"] == 0
    assert (
        library.scalar("SELECT my_rating::text FROM goodreads_books WHERE book_id = %s", [int(rows[5][0])])
        == (rows[5][header.index("My Rating")])
    )


def _malformed(kind: str, tmp_path: Path) -> tuple[Path, int, str]:
    """A broken export whose first rows are valid changes; returns (path, line, message fragment)."""
    header, rows = records()
    new_book = list(rows[0])
    new_book[0] = "999999999"
    rows[1][header.index("Title")] = "An Edited Title"
    rows.insert(0, new_book)
    path = tmp_path / f"{kind}.csv"
    if kind == "wrong_header":
        header = [*header[:-1], "Owned Copies (approx)"]
        write_csv(path, header, rows)
        return path, 1, "not a Goodreads library export header"
    bad = 40
    if kind == "bad_number":
        rows[bad][header.index("Number of Pages")] = "three hundred"
        fragment = "'three hundred' is not a non-negative integer"
    elif kind == "bad_date":
        rows[bad][header.index("Date Added")] = "2023-13-45"
        fragment = "is not a date (YYYY/MM/DD)"
    write_text = kind == "unterminated_quote"
    if not write_text:
        write_csv(path, header, rows)
    else:
        write_csv(path, header, rows[:bad])
        with path.open("a", encoding="utf-8") as handle:
            handle.write('888888888,"A title whose quote never closes,Author\n')
            csv.writer(handle, lineterminator="\n").writerows(rows[bad:])
        fragment = "never closed"
    # The physical line of record `bad`: header line + the lines of the records before it.
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows[:bad]])
    line = out.getvalue().count("\n") + 1
    return path, line, fragment


@pytest.mark.parametrize("kind", ["bad_number", "bad_date", "unterminated_quote", "wrong_header"])
def test_malformed_export_fails_with_line_and_changes_nothing(library, tmp_path, kind):
    preload(library)
    before = snapshot(library)
    path, line, fragment = _malformed(kind, tmp_path)
    result = run_module("goodreads_import", args(library, path), expect_fail=True)
    assert result["error_line"] == line
    assert f"line {line}" in result["msg"]
    assert fragment in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert snapshot(library) == before
    assert library.scalar("SELECT count(*) FROM goodreads_books WHERE book_id = 999999999") == 0


def test_missing_table_is_a_clear_error(pg_harness, pg_majors, pg_database_factory):
    database = pg_database_factory(pg_harness.shared_server(pg_majors[0]), "gr")
    result = run_module("goodreads_import", args(database, SAMPLE), expect_fail=True)
    assert "goodreads_books does not exist" in result["msg"]
