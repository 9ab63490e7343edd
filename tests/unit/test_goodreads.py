"""Goodreads export parsing and validation (no database): module_utils/_workload_goodreads.py."""

from __future__ import annotations

import csv
import datetime
import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ansible_collections.inventium.logical_replication.plugins.module_utils._workload_goodreads import (
    COLUMN_NAMES,
    HEADERS,
    GoodreadsError,
    check_header,
    parse,
    read_file,
    snake_case,
    unexcel,
)

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "goodreads_sample.csv"

GOOD = {
    "Book Id": "42",
    "Title": "Practical Replication",
    "Author": "Ada Example",
    "Author l-f": "Example, Ada",
    "Additional Authors": "",
    "ISBN": '="059652269X"',
    "ISBN13": '="9780596522698"',
    "My Rating": "4",
    "Average Rating": "3.97",
    "Publisher": "Imaginary Press",
    "Binding": "Paperback",
    "Number of Pages": "320",
    "Year Published": "2009",
    "Original Publication Year": "2008",
    "Date Read": "2023/10/01",
    "Date Added": "2023/09/15",
    "Bookshelves": "technical, favorites",
    "Bookshelves with positions": "technical (#3), favorites (#12)",
    "Exclusive Shelf": "read",
    "My Review": 'Great, "really"\ngreat.',
    "Spoiler": "",
    "Private Notes": "",
    "Read Count": "1",
    "Owned Copies": "0",
}


def render(*rows: dict[str, str], header: list[str] | None = None) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = header or list(HEADERS)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    return out.getvalue()


def with_(**changes: str) -> dict[str, str]:
    row = dict(GOOD)
    for key, value in changes.items():
        row[key.replace("_", " ")] = value
    return row


def error_of(text: str) -> GoodreadsError:
    with pytest.raises(GoodreadsError) as info:
        parse(text)
    return info.value


def test_snake_case_matches_the_column_names():
    assert [snake_case(h) for h in HEADERS] == list(COLUMN_NAMES)
    assert snake_case("Author l-f") == "author_l_f"
    assert snake_case("Bookshelves with positions") == "bookshelves_with_positions"


def test_unexcel():
    assert unexcel('="0596522690"') == "0596522690"
    assert unexcel('=""') == ""
    assert unexcel("0596522690") == "0596522690"


def test_a_good_row_gets_proper_types():
    (row,) = parse(render(GOOD))
    assert row == {
        "book_id": 42,
        "title": "Practical Replication",
        "author": "Ada Example",
        "author_l_f": "Example, Ada",
        "additional_authors": None,
        "isbn": "059652269X",
        "isbn13": "9780596522698",
        "my_rating": 4,
        "average_rating": Decimal("3.97"),
        "publisher": "Imaginary Press",
        "binding": "Paperback",
        "number_of_pages": 320,
        "year_published": 2009,
        "original_publication_year": 2008,
        "date_read": datetime.date(2023, 10, 1),
        "date_added": datetime.date(2023, 9, 15),
        "bookshelves": ["technical", "favorites"],
        "bookshelves_with_positions": ["technical (#3)", "favorites (#12)"],
        "exclusive_shelf": "read",
        "my_review": 'Great, "really"\ngreat.',
        "spoiler": None,
        "private_notes": None,
        "read_count": 1,
        "owned_copies": 0,
    }


def test_empty_fields_are_null_and_shelves_empty_lists():
    empty = {h: "" for h in HEADERS}
    empty.update({"Book Id": "7", "Title": "T", "ISBN": '=""', "ISBN13": '=""'})
    (row,) = parse(render(empty))
    assert row["isbn"] is None
    assert row["isbn13"] is None
    assert row["bookshelves"] == []
    assert row["bookshelves_with_positions"] == []
    filled = ("book_id", "title", "bookshelves", "bookshelves_with_positions")
    assert all(row[c] is None for c in COLUMN_NAMES if c not in filled)


def test_header_in_another_order_and_with_a_bom():
    header = list(reversed(HEADERS))
    text = "\ufeff" + render(GOOD, header=header)
    (row,) = parse(text)
    assert row["book_id"] == 42
    assert row["isbn"] == "059652269X"


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ([h for h in HEADERS if h != "ISBN13"], "missing 'ISBN13'"),
        ([*HEADERS, "Shelf Color"], "unknown 'Shelf Color'"),
        (["id", "title", "author"], "not a Goodreads library export header"),
        ([*HEADERS[:-1], "Title"], "repeats column 'Title'"),
    ],
)
def test_wrong_header(header, fragment):
    with pytest.raises(GoodreadsError) as info:
        check_header(header)
    assert info.value.line == 1
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("changes", "column", "fragment"),
    [
        ({"Number of Pages": "12x"}, "Number of Pages", "'12x' is not a non-negative integer"),
        ({"Book Id": "abc"}, "Book Id", "not a book id"),
        ({"Book Id": ""}, "Book Id", "empty"),
        ({"Average Rating": "four"}, "Average Rating", "'four' is not a number"),
        ({"Average Rating": "7.5"}, "Average Rating", "not an average rating"),
        ({"My Rating": "6"}, "My Rating", "above 5"),
        ({"Date Read": "2023-10-01"}, "Date Read", "not a date (YYYY/MM/DD)"),
        ({"Date Added": "2023/02/30"}, "Date Added", "not a valid date"),
        ({"ISBN": '="12345"'}, "ISBN", "not an ISBN-10"),
        ({"ISBN13": '="97805965226981"'}, "ISBN13", "not an ISBN-13"),
        ({"Spoiler": "maybe"}, "Spoiler", "not a boolean"),
        ({"Title": "  "}, "Title", "title is empty"),
        ({"Original Publication Year": "1999.5"}, "Original Publication Year", "not a year"),
    ],
)
def test_bad_fields_name_line_and_column(changes, column, fragment):
    # Row 1 spans lines 2-3 (its review has a newline), so row 2 starts on line 4.
    error = error_of(render(GOOD, with_(**{"Book Id": "43", **changes})))
    assert error.line == 4
    assert error.column == column
    assert fragment in error.reason
    assert "line 4" in str(error)
    assert repr(column) in str(error)


def test_physical_line_numbers_count_newlines_inside_reviews():
    review = "one\ntwo\nthree"
    text = render(
        with_(My_Review=review),
        with_(**{"Book Id": "2", "My Review": review}),
        with_(**{"Book Id": "3", "Date Read": "yesterday"}),
    )
    # header: line 1; row 1: lines 2-4; row 2: lines 5-7; row 3 starts on line 8.
    assert error_of(text).line == 8


def test_unterminated_quote_reports_the_line_where_the_record_starts():
    good = render(GOOD)  # lines 1-3
    broken = '43,"An unterminated title,Author\n44,Next,Author\n'
    error = error_of(good + broken)
    assert error.line == 4
    assert "never closed" in error.reason


def test_stray_quote_is_malformed_csv():
    row_text = '43,"Title "x"y",A' + "," * 21 + "\n"
    error = error_of(render(GOOD) + row_text)
    assert error.line == 4
    assert "malformed CSV" in error.reason


def test_wrong_number_of_fields():
    text = render(GOOD) + "43,Short row\n"
    error = error_of(text)
    assert error.line == 4
    assert "expected 24 fields, found 2" in error.reason


def test_duplicate_book_id():
    error = error_of(render(GOOD, with_(Title="Again")))
    assert error.line == 4
    assert "appears again (first on line 2)" in error.reason


def test_empty_file_and_blank_lines():
    assert error_of("").line == 1
    assert parse(render(GOOD) + "\n\n") == parse(render(GOOD))


def test_the_shipped_sample():
    rows = read_file(SAMPLE)
    assert 50 <= len(rows) <= 200
    assert len({r["book_id"] for r in rows}) == len(rows)
    reviews = [r["my_review"] for r in rows if r["my_review"]]
    assert any("\n" in r for r in reviews)
    assert any('"' in r for r in reviews)
    assert any("," in r for r in reviews)
    assert any(r["isbn"] is None for r in rows)
    assert any(r["isbn13"] for r in rows)
    assert any(r["original_publication_year"] is not None and r["original_publication_year"] < 0 for r in rows)
    raw = SAMPLE.read_text(encoding="utf-8")
    assert '"=""' in raw  # Excel-quoted ISBNs, as Goodreads writes them


def test_the_sample_is_what_its_generator_makes():
    proc = subprocess.run(
        [sys.executable, str(DATA / "make_goodreads_sample.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_unreadable_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(render(with_(Title="Caf\u00e9")).encode("latin-1"))
    with pytest.raises(GoodreadsError) as info:
        read_file(path)
    assert "not UTF-8" in str(info.value)
