"""Generate tests/data/goodreads_sample.csv: a SYNTHETIC Goodreads library export.

Every title, author, publisher, review and note is made up from the word lists below with a
seeded random generator (no real personal data); the output is byte-for-byte reproducible:

    python3 tests/data/make_goodreads_sample.py            # rewrite the sample
    python3 tests/data/make_goodreads_sample.py --check    # exit 1 when the sample is stale

The file has the export's exact header and its quirks: ISBNs Excel-quoted (``="0596522690"``,
empty ones as ``=""``), dates ``YYYY/MM/DD``, many empty fields, shelves as comma-separated lists,
reviews with commas, double quotes, ``<br/>`` and real newlines, non-ASCII names, an ancient work
with a negative original publication year.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "goodreads_sample.csv"
SEED = 20231017
ROWS = 120

HEADER = [
    "Book Id",
    "Title",
    "Author",
    "Author l-f",
    "Additional Authors",
    "ISBN",
    "ISBN13",
    "My Rating",
    "Average Rating",
    "Publisher",
    "Binding",
    "Number of Pages",
    "Year Published",
    "Original Publication Year",
    "Date Read",
    "Date Added",
    "Bookshelves",
    "Bookshelves with positions",
    "Exclusive Shelf",
    "My Review",
    "Spoiler",
    "Private Notes",
    "Read Count",
    "Owned Copies",
]
FIRST = [
    "Ada",
    "Bruno",
    "Céline",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hiroshi",
    "Inés",
    "Jonas",
    "Kwame",
    "Lena",
    "Mateo",
    "Noor",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tamsin",
    "Ugo",
    "Vera",
]
LAST = [
    "Abernathy",
    "Brightwater",
    "Castellano",
    "Dunmore",
    "Eriksen",
    "Fairbank",
    "Grünwald",
    "Holloway",
    "Ishikawa",
    "Jovanović",
    "Kestrel",
    "Lindqvist",
    "Marchetti",
    "Northcott",
    "O'Sullivan",
    "Pemberton",
]
ADJ = [
    "Silent",
    "Practical",
    "Evolutionary",
    "Hidden",
    "Distributed",
    "Patient",
    "Curious",
    "Broken",
    "Scalable",
    "Gentle",
    "Last",
    "Clockwork",
    "Salted",
    "Idempotent",
    "Northern",
    "Paper",
]
NOUN = [
    "Garden",
    "Replica",
    "Lighthouse",
    "Ledger",
    "Architecture",
    "Orchard",
    "Protocol",
    "Harbor",
    "Teams",
    "Compass",
    "Archive",
    "Engine",
    "Atlas",
    "Migration",
    "Choir",
    "Cartographer",
]
SERIES = ["The Slot Trilogy", "Chronicles of the WAL", "Harbor Tales", "The Ledger Cycle"]
PUBLISHERS = [
    "Fictional House",
    "Imaginary Press",
    "Nowhere Books",
    "Placeholder & Sons",
    "Sample Publishing, Inc.",
    "Synthetic Editions",
]
BINDINGS = ["Paperback", "Hardcover", "Kindle Edition", "ebook", "Mass Market Paperback", "Audiobook"]
SHELVES = ["favorites", "technical", "leadership", "fiction", "history", "owned", "book-club", "2023-reads"]
PHRASES = [
    "A slow start, but it pays off.",
    'The author calls it "the only sane design", which, frankly, it is not.',
    "Loved the chapter on replication slots; skimmed the rest.",
    "Three stars, rounded up, because the appendix is great.",
    'My copy had a typo on page 12 ("teh").',
    "Would read again, with coffee, on a rainy day.",
    "Not for everyone: dense, opinionated, occasionally brilliant.",
    "The ending; oh, the ending.",
]


def isbn10_check(digits: str) -> str:
    total = sum((10 - i) * int(d) for i, d in enumerate(digits))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def isbn13_check(digits: str) -> str:
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


def review(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return ""
    sentences = rng.sample(PHRASES, rng.randint(1, 4))
    if kind < 0.65:
        return " ".join(sentences)
    if kind < 0.85:
        return "<br/><br/>".join(sentences)
    return "\n".join(sentences) + ("\n\nP.S. a second paragraph, after an empty line." if kind > 0.95 else "")


def make_rows(rng: random.Random) -> list[list[str]]:
    rows = []
    book_id = 1000
    for n in range(ROWS):
        book_id += rng.randint(1, 90000)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        title = f"{rng.choice(ADJ)} {rng.choice(NOUN)}"
        if rng.random() < 0.2:
            title += f" ({rng.choice(SERIES)}, #{rng.randint(1, 5)})"
        additional = ", ".join(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _author in range(rng.randint(1, 2)))
        if rng.random() < 0.15:
            isbn = isbn13 = ""
        else:
            body = f"{rng.randint(0, 999999999):09d}"
            isbn = body + isbn10_check(body)
            isbn13 = "978" + body + isbn13_check("978" + body)
        shelf = rng.choices(["read", "to-read", "currently-reading"], weights=[6, 3, 1])[0]
        extra = rng.sample(SHELVES, rng.randint(0, 3))
        positions = [f"{s} (#{rng.randint(1, 300)})" for s in [*extra, shelf] if s != "read"]
        year = rng.randint(1950, 2023)
        original = "" if rng.random() < 0.3 else str(year - rng.randint(0, 40))
        if n == 7:
            title, original = "The Ancient Epic of the Wine-Dark Replica", "-750"
        read = shelf == "read"
        added = f"{rng.randint(2012, 2023)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
        date_read = (
            f"{rng.randint(2012, 2023)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
            if read and rng.random() < 0.7
            else ""
        )
        rows.append(
            [
                str(book_id),
                title,
                f"{first} {last}",
                f"{last}, {first}",
                additional if rng.random() < 0.25 else "",
                f'="{isbn}"',
                f'="{isbn13}"',
                str(rng.randint(1, 5) if read else 0),
                f"{rng.uniform(2.5, 4.9):.2f}",
                rng.choice(PUBLISHERS) if rng.random() < 0.9 else "",
                rng.choice(BINDINGS),
                str(rng.randint(90, 1200)) if rng.random() < 0.9 else "",
                str(year) if rng.random() < 0.9 else "",
                original,
                date_read,
                added,
                ", ".join(s for s in [*extra, shelf] if s != "read"),
                ", ".join(positions),
                shelf,
                review(rng) if read else "",
                "",
                "Lent to a (fictional) friend, ask back." if rng.random() < 0.05 else "",
                str(rng.randint(1, 3) if read else 0),
                str(rng.randint(0, 2)),
            ]
        )
    return rows


def render() -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    writer.writerows(make_rows(random.Random(SEED)))
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the sample is up to date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10))} lines, {ROWS} books)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
